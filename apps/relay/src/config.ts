/**
 * Relay configuration: one table drives the defaults, the CLI flags, the environment variables and `--help`,
 * so that every flag has an env var and the help text cannot drift from what is parsed.
 * @module
 */
import { DEFAULT_LIMITS } from '@parley/protocol'
import { webhookSigningKey } from './Verifier.js'

/** A token bucket: `capacity` tokens, refilled continuously at `refillTokens` per `refillIntervalMs`. */
export interface BucketPolicy {
  capacity: number
  refillTokens: number
  refillIntervalMs: number
}

/** Everything the relay can be configured with. */
export interface RelayConfig {
  /** TCP port; 0 picks a free one. */
  port: number
  /** Interface to bind. */
  host: string
  /**
   * A development relay: allows the console verifier (codes printed to the log), unsigned webhook calls, and
   * turns the demo page on unless `demo` says otherwise. Never in production.
   */
  dev: boolean
  /** Directory for the SQLite database and the OPRF key file. */
  dataDir: string
  /** `console` (development only: prints codes) or `webhook`. */
  verifier: 'console' | 'webhook'
  /** With `verifier: 'webhook'`: the operator's URL that receives the code and sends the SMS. */
  webhookUrl: string
  /**
   * With `verifier: 'webhook'`: the key that signs each call (`webhook-signature`, Standard Webhooks style); `whsec_`
   * followed by base64 is the base64-decoded bytes, anything else its UTF-8 bytes (at least 16). Required unless `dev`.
   */
  webhookSecret: string
  /** Webhook request timeout. */
  webhookTimeoutMs: number
  /** pino level: fatal, error, warn, info, debug, trace, silent. */
  logLevel: string
  /**
   * Take the client IP from the right-most `X-Forwarded-For` entry (every such header, joined in order), the one
   * the relay's own proxy appended; the TCP peer address when there is none. Only behind a trusted proxy.
   */
  trustProxy: boolean
  /** Serve the demo page at `/`; `null` (the default): only when `dev`. */
  demo: boolean | null
  /**
   * `host:port` of the separate listener that serves `/metrics` (port 0: any free port); `''` or `off`: no
   * metrics listener. `/metrics` is never served on the client port.
   */
  metricsListen: string
  /** Hex key for the keyed hash of numbers (rate limits); random per process when empty. */
  numberHashKey: string
  /** `sqlite` (one file in `dataDir`) or `postgres://…[?schema=<name>]` (shared by every node). */
  store: string
  /** `redis://…[?prefix=<p>]`: fan-out, rate limits and pending activations shared by every node; '' = in-process. */
  redis: string

  maxFrameBytes: number
  maxEnvelopeBytes: number
  maxDiscoveryBatch: number
  maxMailboxMessages: number
  /** Envelope bytes of unread mail a device's mailbox may hold; mail beyond is refused (MAILBOX_FULL). */
  maxMailboxBytes: number
  /** Free bytes of the data directory's file system below which new mail is refused; 0: off. */
  minFreeDiskBytes: number
  /** Most sequence numbers in one `AckMessages` (TOO_LARGE beyond); also half the per-connection ack burst. */
  maxAcksPerFrame: number
  /** Acked sequence numbers per connection per second (burst: twice `maxAcksPerFrame`; RATE_LIMITED beyond). */
  acksPerSecond: number
  messageTtlSeconds: number
  /** The longest address prefix a membership query uses (the length announced when the population allows). */
  membershipPrefixBits: number
  /**
   * Registered addresses a membership bucket should hold on average: the announced prefix length is the longest
   * (up to `membershipPrefixBits`) at which registered accounts / 2^bits is still at least this; 0 always
   * announces `membershipPrefixBits`.
   */
  membershipMinBucket: number
  /** Addresses that membership queries may return to one account (capacity / refill per day). */
  membershipAddressesCapacity: number
  membershipAddressesPerDay: number
  maxPrekeysPerUpload: number
  /** Most one-time prekeys (each kind) stored per account. */
  maxStoredPrekeys: number

  /** Verification code lifetime. */
  codeTtlSeconds: number
  /** Wrong codes allowed before the activation is locked. */
  codeAttempts: number
  /** Code requests per number per hour. */
  codeRequestsPerHour: number
  /** Activation starts per IP per hour. */
  activationsPerIpPerHour: number
  /** Most pending activations held in memory. */
  maxPendingActivations: number
  /** Wait before a number's second code request; each further one waits twice as long (0: no backoff). */
  codeBackoffBaseMs: number
  /** Longest backoff wait; also how long until one earlier code request of a number stops counting. */
  codeBackoffMaxMs: number
  /** Code guesses per number per hour, summed over all its activations (wrong or not; RATE_LIMITED beyond). */
  codeGuessesPerNumberPerHour: number
  /**
   * Seconds of account inactivity (no authentication of its device) after which a registration lock lapses, so
   * a user who lost both phone and PIN can activate again (Signal: 7 days).
   */
  registrationLockLapseSeconds: number
  /** Registration-lock PIN guesses per account per day (a bucket of this many, refilled over a day). */
  registrationLockGuessesPerDay: number
  /** SMS per hour to numbers that share their first 4 digits after '+' (country + area code). */
  smsPerPrefixPerHour: number
  /** SMS per hour in total (every number, every node sharing the rate limiter). */
  smsPerHour: number
  /** Base proof-of-work difficulty of an `ActivationStart`, in leading zero bits (0: no proof of work at all). */
  activationPowBits: number
  /** Highest difficulty the load can raise it to. */
  activationPowMaxBits: number
  /** SMS per minute above which the difficulty rises by one bit per doubling (0: it never rises). */
  activationPowLoadPerMinute: number

  /** Per-account OPRF evaluation bucket (docs/architecture.md §4). */
  oprfAccountCapacity: number
  oprfAccountPerDay: number
  /** OPRF evaluations per source network, across all its accounts (Sybil accounts on one network share it). */
  oprfIpCapacity: number
  oprfIpPerDay: number
  /** Per-account message sends. */
  sendCapacity: number
  sendPerMinute: number
  /** Per-account prekey bundle fetches (each consumes a one-time prekey). */
  bundleCapacity: number
  bundlePerHour: number
  /** Envelope bytes an account may send, over all recipients (capacity / refill per day). */
  sendBytesCapacity: number
  sendBytesPerDay: number
  /** Prekey signatures the relay checks for one account's uploads (capacity / refill per day). */
  prekeySignaturesCapacity: number
  prekeySignaturesPerDay: number
  /** Unidentified sends per recipient (the relay does not know the sender). */
  unidentifiedRecipientCapacity: number
  unidentifiedRecipientPerMinute: number
  /** Unidentified sends per source network (IPv4 /24, IPv6 /56). */
  unidentifiedNetworkCapacity: number
  unidentifiedNetworkPerMinute: number
  /** Lifetime of a sender certificate. */
  senderCertificateTtlSeconds: number
  /** Per-connection frame flood limit. */
  framesBurst: number
  framesPerSecond: number
  /** Bad frames (undecodable, unknown) tolerated on one connection before it is closed. */
  maxBadFrames: number
  /** Most connections from one source network. */
  maxConnectionsPerIp: number
  /** Prefix lengths that name a source network for every IP-based limit. */
  ipv4NetworkBits: number
  ipv6NetworkBits: number
  /** `ActivationConfirm` frames per source network per hour (each may carry signatures to check). */
  activationConfirmsPerNetworkPerHour: number
  /** Most signed prekeys (the signed prekey, KEM prekeys) an `ActivationConfirm` may carry. */
  maxActivationSignedPrekeys: number
  /** How long a connection may stay unauthenticated after `Hello` without sending a request (0: forever). */
  preAuthIdleMs: number
  /**
   * Bytes per second read from a connection that has neither authenticated nor sent unidentified mail (burst:
   * twice `maxFrameBytes`); beyond, its socket is paused until the budget refills (0: no limit).
   */
  preAuthBytesPerSecond: number
  /** Most concurrent authenticated connections of one device. */
  maxConnectionsPerAccount: number
  /** How long a new WebSocket may take to send Hello before it is closed (slow or idle clients). */
  helloTimeoutMs: number
  /** How long a client may take to send its HTTP request headers (slowloris). */
  headersTimeoutMs: number

  /** How often expired mail is swept. */
  sweepIntervalSeconds: number
  /** How long shutdown waits for in-flight requests. */
  shutdownTimeoutMs: number
}

type Kind = 'int' | 'string' | 'bool' | 'enum'

interface Option {
  key: keyof RelayConfig
  kind: Kind
  help: string
  values?: readonly string[]
  /** What `--help` shows as the default, when not the default value itself. */
  shownDefault?: string
}

const HOUR = 3600_000
const DAY = 24 * HOUR

/** The defaults: with no configuration the relay listens on 8787 with SQLite in `./.parley-data`. */
export const DEFAULT_CONFIG: RelayConfig = {
  port: 8787,
  host: '0.0.0.0',
  dev: false,
  dataDir: './.parley-data',
  verifier: 'console',
  webhookUrl: '',
  webhookSecret: '',
  webhookTimeoutMs: 10_000,
  logLevel: 'info',
  trustProxy: false,
  demo: null,
  metricsListen: '127.0.0.1:9464',
  numberHashKey: '',
  store: 'sqlite',
  redis: '',
  maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes,
  maxEnvelopeBytes: DEFAULT_LIMITS.maxEnvelopeBytes,
  maxDiscoveryBatch: DEFAULT_LIMITS.maxDiscoveryBatch,
  maxMailboxMessages: DEFAULT_LIMITS.maxMailboxMessages,
  maxMailboxBytes: 64 * 1024 * 1024,
  minFreeDiskBytes: 256 * 1024 * 1024,
  maxAcksPerFrame: 500,
  acksPerSecond: 2000,
  messageTtlSeconds: DEFAULT_LIMITS.messageTtlSeconds,
  membershipPrefixBits: DEFAULT_LIMITS.membershipPrefixBits,
  membershipMinBucket: 32,
  membershipAddressesCapacity: 200_000,
  membershipAddressesPerDay: 50_000,
  maxPrekeysPerUpload: DEFAULT_LIMITS.maxPrekeysPerUpload,
  maxStoredPrekeys: 1000,
  codeTtlSeconds: 600,
  codeAttempts: 5,
  codeRequestsPerHour: 3,
  activationsPerIpPerHour: 30,
  maxPendingActivations: 100_000,
  codeBackoffBaseMs: 30_000,
  codeBackoffMaxMs: HOUR,
  codeGuessesPerNumberPerHour: 10,
  registrationLockLapseSeconds: 7 * 24 * 3600,
  registrationLockGuessesPerDay: 5,
  smsPerPrefixPerHour: 200,
  smsPerHour: 2000,
  activationPowBits: 0,
  activationPowMaxBits: 22,
  activationPowLoadPerMinute: 30,
  oprfAccountCapacity: 5000,
  oprfAccountPerDay: 200,
  oprfIpCapacity: 20_000,
  oprfIpPerDay: 20_000,
  unidentifiedRecipientCapacity: 600,
  unidentifiedRecipientPerMinute: 300,
  unidentifiedNetworkCapacity: 1200,
  unidentifiedNetworkPerMinute: 600,
  senderCertificateTtlSeconds: 24 * 3600,
  sendCapacity: 600,
  sendPerMinute: 120,
  bundleCapacity: 200,
  bundlePerHour: 100,
  sendBytesCapacity: 256 * 1024 * 1024,
  sendBytesPerDay: 1024 * 1024 * 1024,
  prekeySignaturesCapacity: 1000,
  prekeySignaturesPerDay: 1000,
  framesBurst: 200,
  framesPerSecond: 50,
  maxBadFrames: 5,
  maxConnectionsPerIp: 64,
  ipv4NetworkBits: 24,
  ipv6NetworkBits: 56,
  activationConfirmsPerNetworkPerHour: 60,
  maxActivationSignedPrekeys: 32,
  preAuthIdleMs: 60_000,
  preAuthBytesPerSecond: 256 * 1024,
  maxConnectionsPerAccount: 8,
  helloTimeoutMs: 10_000,
  headersTimeoutMs: 15_000,
  sweepIntervalSeconds: 60,
  shutdownTimeoutMs: 10_000,
}

const OPTIONS: Option[] = [
  {
    key: 'store',
    kind: 'string',
    help: 'storage: sqlite (in --data-dir) or postgres://user@host:5432/db[?schema=name] for several nodes',
  },
  {
    key: 'redis',
    kind: 'string',
    help: 'redis://host:6379[?prefix=p]: share fan-out, rate limits and activations across nodes (needs --number-hash-key)',
  },
  { key: 'port', kind: 'int', help: 'TCP port to listen on (0 = any free port)' },
  { key: 'host', kind: 'string', help: 'interface to bind' },
  {
    key: 'dev',
    kind: 'bool',
    help: 'development relay: allows the console verifier (codes in the log) and unsigned webhook calls, serves the demo page; never in production',
  },
  { key: 'dataDir', kind: 'string', help: 'directory for relay.db (SQLite) and oprf-keys.json' },
  {
    key: 'verifier',
    kind: 'enum',
    values: ['console', 'webhook'],
    help: 'how codes are sent: console prints them to the log (only with --dev); webhook POSTs them to your SMS gateway',
  },
  {
    key: 'webhookUrl',
    kind: 'string',
    help: 'webhook verifier: URL that receives {phone_number, code, ...}',
  },
  {
    key: 'webhookSecret',
    kind: 'string',
    help: 'webhook verifier: signing key (whsec_<base64>, or at least 16 bytes of text) for webhook-signature; required unless --dev',
  },
  { key: 'webhookTimeoutMs', kind: 'int', help: 'webhook verifier: request timeout in ms' },
  { key: 'logLevel', kind: 'string', help: 'fatal|error|warn|info|debug|trace|silent' },
  {
    key: 'trustProxy',
    kind: 'bool',
    help: 'client IP (for per-network limits) = the right-most X-Forwarded-For entry, the one your proxy appended (all such headers joined, left entries ignored); the TCP peer without one. Only when a proxy that appends it is the sole way in',
  },
  {
    key: 'demo',
    kind: 'bool',
    help: 'serve the demo page at / (--demo true without --dev, --demo false to turn it off)',
    shownDefault: 'only with --dev',
  },
  {
    key: 'metricsListen',
    kind: 'string',
    help: 'host:port of the separate /metrics listener (port 0 = any free port; off, or an empty --metrics-listen=, = none); never on --port',
  },
  {
    key: 'numberHashKey',
    kind: 'string',
    help: 'hex key for the keyed hash of numbers (share it across nodes)',
  },
  { key: 'maxFrameBytes', kind: 'int', help: 'largest frame accepted' },
  { key: 'maxEnvelopeBytes', kind: 'int', help: 'largest sealed envelope' },
  { key: 'maxDiscoveryBatch', kind: 'int', help: 'most elements or prefixes in one discovery request' },
  {
    key: 'maxMailboxMessages',
    kind: 'int',
    help: 'unread messages per device; new mail beyond it is refused (MAILBOX_FULL), none evicted',
  },
  {
    key: 'maxMailboxBytes',
    kind: 'int',
    help: 'envelope bytes of unread mail per device; new mail beyond is refused (MAILBOX_FULL), none evicted',
  },
  {
    key: 'minFreeDiskBytes',
    kind: 'int',
    help: 'refuse new mail (MAILBOX_FULL) while the data directory has less free space (0 = off)',
  },
  {
    key: 'maxAcksPerFrame',
    kind: 'int',
    help: 'most sequence numbers in one AckMessages (TOO_LARGE beyond)',
  },
  {
    key: 'acksPerSecond',
    kind: 'int',
    help: 'acked sequence numbers per connection per second (burst: 2 x max-acks-per-frame)',
  },
  { key: 'messageTtlSeconds', kind: 'int', help: 'message time-to-live' },
  {
    key: 'membershipPrefixBits',
    kind: 'int',
    help: 'most address prefix bits of a membership query (the length announced is the only one accepted)',
  },
  {
    key: 'membershipMinBucket',
    kind: 'int',
    help: 'registered addresses per membership bucket on average: shorter prefixes while fewer (0: always the most bits)',
  },
  {
    key: 'membershipAddressesCapacity',
    kind: 'int',
    help: 'addresses membership queries may return to one account: capacity',
  },
  {
    key: 'membershipAddressesPerDay',
    kind: 'int',
    help: 'addresses membership queries may return to one account: refill per day',
  },
  { key: 'maxPrekeysPerUpload', kind: 'int', help: 'most prekeys in one upload' },
  { key: 'maxStoredPrekeys', kind: 'int', help: 'most one-time prekeys of each kind stored per account' },
  { key: 'codeTtlSeconds', kind: 'int', help: 'verification code lifetime' },
  { key: 'codeAttempts', kind: 'int', help: 'wrong codes before an activation is locked' },
  { key: 'codeRequestsPerHour', kind: 'int', help: 'code requests per number per hour' },
  {
    key: 'activationsPerIpPerHour',
    kind: 'int',
    help: 'activation starts per source network (see --ipv4-network-bits) per hour',
  },
  {
    key: 'activationConfirmsPerNetworkPerHour',
    kind: 'int',
    help: 'activation confirms (code guesses) per source network per hour',
  },
  {
    key: 'maxActivationSignedPrekeys',
    kind: 'int',
    help: 'most signed prekeys an activation may upload (more come later, authenticated)',
  },
  { key: 'maxPendingActivations', kind: 'int', help: 'most pending activations in memory' },
  {
    key: 'codeBackoffBaseMs',
    kind: 'int',
    help: 'ms a number waits before its 2nd code request; each further one waits twice as long (0 = off)',
  },
  {
    key: 'codeBackoffMaxMs',
    kind: 'int',
    help: 'longest code-request backoff; also how long until one earlier request of a number is forgotten',
  },
  {
    key: 'codeGuessesPerNumberPerHour',
    kind: 'int',
    help: 'code guesses per number per hour, summed over all its activations',
  },
  {
    key: 'registrationLockLapseSeconds',
    kind: 'int',
    help: 'seconds without any authentication of an account after which its registration lock lapses',
  },
  {
    key: 'registrationLockGuessesPerDay',
    kind: 'int',
    help: 'registration-lock PIN guesses per account per day',
  },
  {
    key: 'smsPerPrefixPerHour',
    kind: 'int',
    help: 'SMS per hour to numbers sharing their first 4 digits after + (country + area code)',
  },
  { key: 'smsPerHour', kind: 'int', help: 'SMS per hour in total, across every number (and every node)' },
  {
    key: 'activationPowBits',
    kind: 'int',
    help: 'proof of work an ActivationStart must carry, in leading zero bits (0 = none, even under load)',
  },
  {
    key: 'activationPowMaxBits',
    kind: 'int',
    help: 'highest proof-of-work difficulty the SMS load can raise it to',
  },
  {
    key: 'activationPowLoadPerMinute',
    kind: 'int',
    help: 'SMS per minute above which the proof of work rises 1 bit per doubling (0 = never rises)',
  },
  { key: 'oprfAccountCapacity', kind: 'int', help: 'OPRF evaluations bucket per account: capacity' },
  { key: 'oprfAccountPerDay', kind: 'int', help: 'OPRF evaluations bucket per account: refill per day' },
  {
    key: 'oprfIpCapacity',
    kind: 'int',
    help: 'OPRF evaluations bucket per source network, across its accounts: capacity',
  },
  {
    key: 'oprfIpPerDay',
    kind: 'int',
    help: 'OPRF evaluations bucket per source network, across its accounts: refill per day',
  },
  { key: 'sendCapacity', kind: 'int', help: 'message sends per account: burst' },
  { key: 'sendPerMinute', kind: 'int', help: 'message sends per account: refill per minute' },
  { key: 'bundleCapacity', kind: 'int', help: 'prekey bundle fetches per account: burst' },
  { key: 'bundlePerHour', kind: 'int', help: 'prekey bundle fetches per account: refill per hour' },
  {
    key: 'sendBytesCapacity',
    kind: 'int',
    help: 'envelope bytes one account may send, over all its recipients: burst',
  },
  { key: 'sendBytesPerDay', kind: 'int', help: 'envelope bytes one account may send: refill per day' },
  {
    key: 'prekeySignaturesCapacity',
    kind: 'int',
    help: "prekey signatures checked for one account's uploads: burst (refused before any check beyond)",
  },
  {
    key: 'prekeySignaturesPerDay',
    kind: 'int',
    help: "prekey signatures checked for one account's uploads: refill per day",
  },
  {
    key: 'unidentifiedRecipientCapacity',
    kind: 'int',
    help: 'unidentified (sender-hidden) sends per recipient: burst',
  },
  {
    key: 'unidentifiedRecipientPerMinute',
    kind: 'int',
    help: 'unidentified sends per recipient: refill per minute',
  },
  {
    key: 'unidentifiedNetworkCapacity',
    kind: 'int',
    help: 'unidentified sends per source network (IPv4 /24, IPv6 /56): burst',
  },
  {
    key: 'unidentifiedNetworkPerMinute',
    kind: 'int',
    help: 'unidentified sends per source network: refill per minute',
  },
  {
    key: 'senderCertificateTtlSeconds',
    kind: 'int',
    help: 'lifetime of a sender certificate (clients refresh it before it expires)',
  },
  { key: 'framesBurst', kind: 'int', help: 'frames per connection: burst' },
  { key: 'framesPerSecond', kind: 'int', help: 'frames per connection: sustained rate' },
  { key: 'maxBadFrames', kind: 'int', help: 'undecodable frames before a connection is closed' },
  { key: 'maxConnectionsPerIp', kind: 'int', help: 'concurrent connections per source network' },
  {
    key: 'ipv4NetworkBits',
    kind: 'int',
    help: 'IPv4 prefix length that counts as one source network for every IP-based limit',
  },
  {
    key: 'ipv6NetworkBits',
    kind: 'int',
    help: 'IPv6 prefix length that counts as one source network for every IP-based limit',
  },
  {
    key: 'preAuthIdleMs',
    kind: 'int',
    help: 'ms a connection may stay unauthenticated and idle after Hello before it is closed (0: never)',
  },
  {
    key: 'preAuthBytesPerSecond',
    kind: 'int',
    help: 'bytes/s read from a connection before it authenticates or sends unidentified mail; its socket is paused beyond (burst 2 x max-frame-bytes; 0: no limit)',
  },
  { key: 'maxConnectionsPerAccount', kind: 'int', help: 'concurrent authenticated connections per device' },
  { key: 'helloTimeoutMs', kind: 'int', help: 'ms a new connection has to send Hello before it is closed' },
  { key: 'headersTimeoutMs', kind: 'int', help: 'ms a client has to send its HTTP request headers' },
  { key: 'sweepIntervalSeconds', kind: 'int', help: 'how often expired mail is swept' },
  { key: 'shutdownTimeoutMs', kind: 'int', help: 'how long shutdown waits for in-flight requests' },
]

const flagOf = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
const envOf = (key: string) => `PARLEY_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`

function parseValue(opt: Option, raw: string, source: string): RelayConfig[keyof RelayConfig] {
  switch (opt.kind) {
    case 'int': {
      if (!/^\d+$/.test(raw)) throw new RangeError(`${source} must be a non-negative integer`)
      return Number(raw)
    }
    case 'bool': {
      if (['1', 'true', 'yes', 'on', ''].includes(raw.toLowerCase())) return true
      if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false
      throw new RangeError(`${source} must be true or false`)
    }
    case 'enum': {
      if (!opt.values!.includes(raw))
        throw new RangeError(`${source} must be one of ${opt.values!.join(', ')}`)
      return raw
    }
    default:
      return raw
  }
}

/**
 * Builds the configuration from defaults, then environment variables, then command-line flags.
 * @param argv - arguments after the script name (`--port 0`, `--port=0`, `--trust-proxy`)
 * @param env - environment (`PARLEY_PORT`, ...)
 * @returns the configuration, or `'help'` when `--help` was given
 * @throws RangeError on an unknown flag or a malformed value
 */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv = {}): RelayConfig | 'help' {
  const config: RelayConfig = { ...DEFAULT_CONFIG }
  const set = (opt: Option, value: RelayConfig[keyof RelayConfig]) => {
    ;(config as unknown as Record<string, unknown>)[opt.key] = value
  }
  for (const opt of OPTIONS) {
    const raw = env[envOf(opt.key)]
    if (raw !== undefined && raw !== '') set(opt, parseValue(opt, raw, envOf(opt.key)))
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help' || arg === '-h') return 'help'
    const [flag, inline] = arg.includes('=')
      ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
      : [arg]
    const opt = OPTIONS.find((o) => flagOf(o.key) === flag)
    if (!opt) throw new RangeError(`unknown option ${flag} (see --help)`)
    let raw = inline
    if (raw === undefined) {
      const next = argv[i + 1]
      if (opt.kind === 'bool' && (next === undefined || next.startsWith('--'))) raw = 'true'
      else {
        if (next === undefined) throw new RangeError(`${flag} needs a value`)
        raw = next
        i++
      }
    }
    set(opt, parseValue(opt, raw, flag))
  }
  validateConfig(config)
  return config
}

/**
 * The metrics listener's address from `--metrics-listen`: `host:port` or `[ipv6]:port`.
 * @returns the address, or `null` when the value is empty or `off` (no metrics listener)
 * @throws RangeError when the value is neither
 */
export function metricsAddress(value: string): { host: string; port: number } | null {
  const v = value.trim()
  if (v === '' || v.toLowerCase() === 'off') return null
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(v)
  if (m === null || Number(m[3]) > 65535) {
    throw new RangeError(
      'metrics-listen must be host:port (e.g. 127.0.0.1:9464, [::1]:9464, 127.0.0.1:0 for any free port) or off',
    )
  }
  return { host: (m[1] ?? m[2])!, port: Number(m[3]) }
}

/** Why the console verifier is refused outside `--dev`, and what to do instead. */
const CONSOLE_NEEDS_DEV = [
  'the console verifier prints every verification code to the log, so anyone who can read the log can activate',
  'any number; it only runs on a development relay.',
  '  In production, send codes through your SMS gateway:',
  '    --verifier webhook --webhook-url https://sms.example.internal/parley --webhook-secret <key>',
  '  (apps/relay/README.md, "The webhook verifier").',
  '  For development, pass --dev (PARLEY_DEV=1); `pnpm relay` does.',
].join('\n')

/**
 * Checks cross-field rules of a configuration, including what only a development relay (`dev`) may do.
 * @param options - `verifierGiven`: the caller supplies its own verifier, so `verifier` and the webhook settings
 *   are not used and not checked against `dev`
 * @throws RangeError when the configuration cannot work, or is development-only without `dev`
 */
export function validateConfig(config: RelayConfig, options: { verifierGiven?: boolean } = {}): void {
  if (config.port > 65535) throw new RangeError('port must be at most 65535')
  metricsAddress(config.metricsListen)
  if (config.ipv4NetworkBits < 8 || config.ipv4NetworkBits > 32) {
    throw new RangeError('ipv4-network-bits must be between 8 and 32')
  }
  if (config.ipv6NetworkBits < 16 || config.ipv6NetworkBits > 128) {
    throw new RangeError('ipv6-network-bits must be between 16 and 128')
  }
  if (config.verifier === 'webhook' && !/^https?:\/\//.test(config.webhookUrl)) {
    throw new RangeError('the webhook verifier needs --webhook-url (http:// or https://)')
  }
  if (config.maxEnvelopeBytes + 1024 > config.maxFrameBytes) {
    throw new RangeError('max-frame-bytes must exceed max-envelope-bytes by at least 1 KiB')
  }
  if (config.sendBytesCapacity < config.maxEnvelopeBytes) {
    throw new RangeError('send-bytes-capacity must be at least max-envelope-bytes')
  }
  if (config.prekeySignaturesCapacity < config.maxPrekeysPerUpload) {
    throw new RangeError('prekey-signatures-capacity must be at least max-prekeys-per-upload')
  }
  if (config.maxMailboxBytes < config.maxEnvelopeBytes) {
    throw new RangeError('max-mailbox-bytes must be at least max-envelope-bytes')
  }
  if (config.membershipPrefixBits < 1 || config.membershipPrefixBits > 256) {
    throw new RangeError('membership-prefix-bits must be between 1 and 256')
  }
  if (config.membershipMinBucket < 0) throw new RangeError('membership-min-bucket must not be negative')
  if (config.numberHashKey !== '' && !/^([0-9a-f]{2}){16,}$/i.test(config.numberHashKey)) {
    throw new RangeError('number-hash-key must be at least 16 bytes of hex')
  }
  if (config.store !== 'sqlite' && !/^postgres(ql)?:\/\/./.test(config.store)) {
    throw new RangeError('store must be sqlite or a postgres:// URL')
  }
  if (config.redis !== '' && !/^rediss?:\/\/./.test(config.redis)) {
    throw new RangeError('redis must be a redis:// or rediss:// URL')
  }
  if (config.redis !== '' && config.numberHashKey === '') {
    // Every node must hash numbers (code-request quotas) and seal pending activations with the same key.
    throw new RangeError(
      '--redis needs --number-hash-key (PARLEY_NUMBER_HASH_KEY): the same secret hex key, at least 16 bytes, on every node',
    )
  }
  if (config.activationPowMaxBits > 32 || config.activationPowBits > config.activationPowMaxBits) {
    throw new RangeError('activation-pow-bits must be at most activation-pow-max-bits, which is at most 32')
  }
  if (config.codeBackoffMaxMs < config.codeBackoffBaseMs) {
    throw new RangeError('code-backoff-max-ms must be at least code-backoff-base-ms')
  }
  for (const key of [
    'codeGuessesPerNumberPerHour',
    'smsPerPrefixPerHour',
    'smsPerHour',
    'registrationLockGuessesPerDay',
    'registrationLockLapseSeconds',
  ] as const) {
    if (config[key] < 1) throw new RangeError(`${flagOf(key).slice(2)} must be at least 1`)
  }
  for (const key of [
    'codeAttempts',
    'codeRequestsPerHour',
    'maxDiscoveryBatch',
    'maxMailboxMessages',
    'maxAcksPerFrame',
    'acksPerSecond',
  ] as const) {
    if (config[key] < 1) throw new RangeError(`${flagOf(key).slice(2)} must be at least 1`)
  }
  // Last, so that a malformed configuration is reported as such first: what only a development relay may do.
  if (!options.verifierGiven && config.verifier === 'console' && !config.dev) {
    throw new RangeError(CONSOLE_NEEDS_DEV)
  }
  if (!options.verifierGiven && config.verifier === 'webhook') {
    if (config.webhookSecret === '' && !config.dev) {
      throw new RangeError(
        'the webhook verifier needs --webhook-secret (PARLEY_WEBHOOK_SECRET) to sign its calls, so that your SMS gateway ' +
          'can reject forged and replayed ones: whsec_<base64> or at least 16 bytes of text (only --dev allows unsigned calls)',
      )
    }
    if (config.webhookSecret !== '' && webhookSigningKey(config.webhookSecret).length < 16) {
      throw new RangeError('webhook-secret must be whsec_<base64> or text of at least 16 bytes')
    }
  }
}

/** The text of `parley-relay --help`. */
export function helpText(): string {
  const lines = [
    'parley-relay — the Parley reference relay (activation, private discovery, prekeys, mailboxes)',
    '',
    'Usage: parley-relay [options]',
    '       parley-relay oprf rotate [--grace 30d] [--data-dir <dir>]   (start a new OPRF key epoch; see --help there)',
    '',
    'Every option can also be set by its environment variable; flags win over the environment.',
    '',
  ]
  for (const opt of OPTIONS) {
    const value = opt.kind === 'bool' ? '' : opt.kind === 'enum' ? ` <${opt.values!.join('|')}>` : ' <value>'
    const def = opt.shownDefault ?? String(DEFAULT_CONFIG[opt.key])
    lines.push(`  ${(flagOf(opt.key) + value).padEnd(40)} ${envOf(opt.key)}`)
    lines.push(`      ${opt.help}${def === '' ? '' : ` (default: ${def})`}`)
  }
  lines.push('  --help                                   show this text')
  return lines.join('\n')
}

/** Rate-limit policies derived from a configuration. */
export function policies(config: RelayConfig) {
  return {
    oprfAccount: {
      capacity: config.oprfAccountCapacity,
      refillTokens: config.oprfAccountPerDay,
      refillIntervalMs: DAY,
    },
    oprfIp: { capacity: config.oprfIpCapacity, refillTokens: config.oprfIpPerDay, refillIntervalMs: DAY },
    // "3 requests per number per hour": a bucket of 3 that refills one request per hour.
    codeRequests: { capacity: config.codeRequestsPerHour, refillTokens: 1, refillIntervalMs: HOUR },
    codeGuesses: {
      capacity: config.codeGuessesPerNumberPerHour,
      refillTokens: config.codeGuessesPerNumberPerHour,
      refillIntervalMs: HOUR,
    },
    registrationLockGuesses: {
      capacity: config.registrationLockGuessesPerDay,
      refillTokens: config.registrationLockGuessesPerDay,
      refillIntervalMs: DAY,
    },
    smsPrefix: {
      capacity: config.smsPerPrefixPerHour,
      refillTokens: config.smsPerPrefixPerHour,
      refillIntervalMs: HOUR,
    },
    smsGlobal: { capacity: config.smsPerHour, refillTokens: config.smsPerHour, refillIntervalMs: HOUR },
    activationConfirmNetwork: {
      capacity: config.activationConfirmsPerNetworkPerHour,
      refillTokens: config.activationConfirmsPerNetworkPerHour,
      refillIntervalMs: HOUR,
    },
    activationIp: {
      capacity: config.activationsPerIpPerHour,
      refillTokens: config.activationsPerIpPerHour,
      refillIntervalMs: HOUR,
    },
    send: { capacity: config.sendCapacity, refillTokens: config.sendPerMinute, refillIntervalMs: 60_000 },
    bundle: { capacity: config.bundleCapacity, refillTokens: config.bundlePerHour, refillIntervalMs: HOUR },
    sendBytes: {
      capacity: config.sendBytesCapacity,
      refillTokens: config.sendBytesPerDay,
      refillIntervalMs: DAY,
    },
    // RebindAddress: one OPRF evaluation each, needed once per key rotation; a few retries a day are plenty.
    rebind: { capacity: 10, refillTokens: 10, refillIntervalMs: DAY },
    prekeySignatures: {
      capacity: config.prekeySignaturesCapacity,
      refillTokens: config.prekeySignaturesPerDay,
      refillIntervalMs: DAY,
    },
    membership: {
      capacity: config.membershipAddressesCapacity,
      refillTokens: config.membershipAddressesPerDay,
      refillIntervalMs: DAY,
    },
    unidentifiedRecipient: {
      capacity: config.unidentifiedRecipientCapacity,
      refillTokens: config.unidentifiedRecipientPerMinute,
      refillIntervalMs: 60_000,
    },
    unidentifiedNetwork: {
      capacity: config.unidentifiedNetworkCapacity,
      refillTokens: config.unidentifiedNetworkPerMinute,
      refillIntervalMs: 60_000,
    },
  } satisfies Record<string, BucketPolicy>
}
