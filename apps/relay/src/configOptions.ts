/**
 * The relay's options: ONE table (name, type, default, secret, help) from which the configuration type, the
 * defaults, the command-line flags, the environment variables, the config-file keys and `--help` are all
 * derived, so none of them can drift from what is parsed.
 * @module
 */
import { DEFAULT_LIMITS } from '@parley/protocol'

/** How an option's value is written and read. */
export type OptionKind = 'int' | 'string' | 'bool' | 'enum' | 'maybeBool'

/** One row of {@link OPTIONS}. `T` is the value's type in {@link RelayConfig}. */
export interface OptionSpec<K extends string = string, T = unknown> {
  /** The field of {@link RelayConfig}; the flag, env var and file key are derived from it ({@link flagOf} …). */
  readonly key: K
  readonly kind: OptionKind
  readonly default: T
  readonly help: string
  /** The allowed values of an `enum`. */
  readonly values?: readonly string[]
  /**
   * A secret (a key, or a URL that may hold a password): it also has a `…-file` variant (`--webhook-secret-file`,
   * `PARLEY_WEBHOOK_SECRET_FILE`, `webhook-secret-file` in the config file) so it need not be on the command
   * line, and its value is never printed.
   */
  readonly secret?: boolean
  /** What `--help` shows as the default, when not the default value itself. */
  readonly shown?: string
}

interface Extra {
  secret?: boolean
  shown?: string
}

const row = <K extends string, T>(key: K, kind: OptionKind, def: T, help: string, extra?: Extra) =>
  ({ key, kind, default: def, help, ...extra }) as OptionSpec<K, T>
const int = <K extends string>(key: K, def: number, help: string, extra?: Extra) =>
  row(key, 'int', def, help, extra)
const text = <K extends string>(key: K, def: string, help: string, extra?: Extra) =>
  row(key, 'string', def, help, extra)
const bool = <K extends string>(key: K, def: boolean, help: string, extra?: Extra) =>
  row(key, 'bool', def, help, extra)
const maybeBool = <K extends string>(key: K, def: boolean | null, help: string, extra?: Extra) =>
  row(key, 'maybeBool', def, help, extra)
const oneOf = <K extends string, V extends string>(key: K, values: readonly V[], def: V, help: string) =>
  ({ ...row(key, 'enum', def, help), values }) as OptionSpec<K, V>

/** pino's levels, and `silent`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

const HOUR = 3600_000

/** Every option, in the order `--help` lists them. */
// biome-ignore format: a table reads best one option a line
export const OPTIONS = [
  text('store', 'sqlite', 'storage: sqlite (in --data-dir) or postgres://user@host:5432/db[?schema=name] for several nodes', { secret: true }),
  text('redis', '', 'redis://host:6379[?prefix=p]: share fan-out, rate limits and activations across nodes (needs --number-hash-key)', { secret: true }),
  int('port', 8787, 'TCP port to listen on (0 = any free port)'),
  text('host', '0.0.0.0', 'interface to bind'),
  bool('dev', false, 'development relay: allows the console verifier (codes in the log) and unsigned webhook calls, serves the demo page; never in production'),
  text('dataDir', './.parley-data', 'directory for relay.db (SQLite) and oprf-keys.json'),
  oneOf('verifier', ['console', 'webhook'], 'console', 'how codes are sent: console prints them to the log (only with --dev); webhook POSTs them to your SMS gateway'),
  text('webhookUrl', '', 'webhook verifier: URL that receives {phone_number, code, ...}'),
  text('webhookSecret', '', 'webhook verifier: signing key (whsec_<base64>, or at least 16 bytes of text) for webhook-signature; required unless --dev', { secret: true }),
  int('webhookTimeoutMs', 10_000, 'webhook verifier: request timeout in ms'),
  oneOf('logLevel', LOG_LEVELS, 'info', 'how much the relay logs (pino levels; silent = nothing)'),
  bool('trustProxy', false, 'client IP (for per-network limits) = the right-most X-Forwarded-For entry, the one your proxy appended (all such headers joined, left entries ignored); the TCP peer without one. Only when a proxy that appends it is the sole way in'),
  maybeBool('demo', null, 'serve the demo page at / (--demo true without --dev, --demo false to turn it off)', { shown: 'only with --dev' }),
  text('metricsListen', '127.0.0.1:9464', 'host:port of the separate /metrics listener (port 0 = any free port; off, or an empty --metrics-listen=, = none); never on --port'),
  text('numberHashKey', '', 'hex key for the keyed hash of numbers (share it across nodes)', { secret: true }),
  int('maxFrameBytes', DEFAULT_LIMITS.maxFrameBytes, 'largest frame accepted'),
  int('maxEnvelopeBytes', DEFAULT_LIMITS.maxEnvelopeBytes, 'largest sealed envelope'),
  int('maxDiscoveryBatch', DEFAULT_LIMITS.maxDiscoveryBatch, 'most elements or prefixes in one discovery request'),
  int('maxMailboxMessages', DEFAULT_LIMITS.maxMailboxMessages, 'unread messages per device; new mail beyond it is refused (MAILBOX_FULL), none evicted'),
  int('maxMailboxBytes', 67_108_864, 'envelope bytes of unread mail per device (64 MiB); new mail beyond is refused (MAILBOX_FULL), none evicted'),
  int('erasureScrubSeconds', 60, 'SQLite: the longest an erasure (deactivation, a replaced or removed device, a move) waits for the rewrite of relay.db (VACUUM) that leaves no stale copy of it in unused page space; erasures meanwhile share one, which holds the relay about 8 ms per MB of database (0 = at once)'),
  int('minFreeDiskBytes', 268_435_456, 'refuse new mail (MAILBOX_FULL) while the data directory has less free space, and new blob grants (UNAVAILABLE) while blobs are files there (256 MiB; 0 = off)'),
  int('maxRecipientsPerSend', 500, 'most recipients of one MultiRecipientSend (a group message; TOO_LARGE beyond; --max-frame-bytes bounds it too)'),
  int('maxAcksPerFrame', 500, 'most sequence numbers in one AckMessages (TOO_LARGE beyond)'),
  int('acksPerSecond', 2000, 'acked sequence numbers per connection per second (burst: 2 x max-acks-per-frame)'),
  int('messageTtlSeconds', DEFAULT_LIMITS.messageTtlSeconds, 'message time-to-live'),
  oneOf('blobStore', ['auto', 'files', 'postgres'], 'auto', 'where attachment blobs are kept: files in --data-dir/blobs (one node), or postgres, tables beside a --store postgres:// store that every node reads; auto = postgres with a PostgreSQL store, else files'),
  int('blobMaxBytes', 104_857_600, 'largest attachment file one BlobUploadRequest may reserve room for (100 MiB; its encrypted blob may be up to 1.6% larger; TOO_LARGE beyond)'),
  int('blobTtlSeconds', 2_592_000, 'how long a blob is kept at most, downloaded or not (30 days)'),
  int('blobUploadTtlSeconds', 3600, "how long a blob's single-use upload token is valid; a grant not uploaded by then is swept"),
  int('blobUploadTimeoutSeconds', 900, 'time one blob upload (PUT) may take from its request line to its last byte; the connection is closed after (15 min: 100 MiB at 115 KB/s)'),
  int('blobBytesPerAccount', 1_073_741_824, 'blob bytes one account may hold at once, granted sizes included until deleted (1 GiB; RATE_LIMITED beyond)'),
  int('blobUploadsPerHour', 200, 'blob upload grants per account per hour'),
  int('membershipPrefixBits', DEFAULT_LIMITS.membershipPrefixBits, 'most address prefix bits of a membership query (the length announced is the only one accepted)'),
  int('membershipMinBucket', 32, 'registered addresses per membership bucket on average: shorter prefixes while fewer (0: always the most bits)'),
  int('membershipAddressesCapacity', 200_000, 'addresses membership queries may return to one account: capacity'),
  int('membershipAddressesPerDay', 50_000, 'addresses membership queries may return to one account: refill per day'),
  int('maxPrekeysPerUpload', DEFAULT_LIMITS.maxPrekeysPerUpload, 'most prekeys in one upload'),
  int('maxStoredPrekeys', 1000, 'most one-time prekeys of each kind stored per account'),
  int('codeTtlSeconds', 600, 'verification code lifetime'),
  int('codeAttempts', 5, 'wrong codes before an activation is locked'),
  int('codeRequestsPerHour', 3, 'code requests per number per hour'),
  int('activationsPerIpPerHour', 30, 'activation starts per source network (see --ipv4-network-bits) per hour'),
  int('activationConfirmsPerNetworkPerHour', 60, 'activation confirms (code guesses) per source network per hour'),
  int('maxActivationSignedPrekeys', 32, 'most signed prekeys an activation may upload (more come later, authenticated)'),
  int('maxPendingActivations', 100_000, 'most pending activations in memory'),
  int('codeBackoffBaseMs', 30_000, 'ms a number waits before its 2nd code request; each further one waits twice as long (0 = off)'),
  int('codeBackoffMaxMs', HOUR, 'longest code-request backoff; also how long until one earlier request of a number is forgotten'),
  int('codeGuessesPerNumberPerHour', 10, 'code guesses per number per hour, summed over all its activations'),
  int('registrationLockLapseSeconds', 604_800, 'seconds without any authentication of an account after which its registration lock lapses (7 days)'),
  int('registrationLockGuessesPerDay', 5, 'registration-lock PIN guesses per account per day'),
  int('smsPerPrefixPerHour', 200, 'SMS per hour to numbers sharing their first 4 digits after + (country + area code)'),
  int('smsPerHour', 2000, 'SMS per hour in total, across every number (and every node)'),
  int('activationPowBits', 0, 'proof of work an ActivationStart must carry, in leading zero bits (0 = none, even under load)'),
  int('activationPowMaxBits', 22, 'highest proof-of-work difficulty the SMS load can raise it to'),
  int('activationPowLoadPerMinute', 30, 'SMS per minute above which the proof of work rises 1 bit per doubling (0 = never rises)'),
  int('oprfAccountCapacity', 5000, 'OPRF evaluations bucket per account: capacity'),
  int('oprfAccountPerDay', 200, 'OPRF evaluations bucket per account: refill per day'),
  int('oprfIpCapacity', 20_000, 'OPRF evaluations bucket per source network, across its accounts: capacity'),
  int('oprfIpPerDay', 20_000, 'OPRF evaluations bucket per source network, across its accounts: refill per day'),
  int('sendCapacity', 600, 'message sends per account: burst'),
  int('sendPerMinute', 120, 'message sends per account: refill per minute'),
  int('bundleCapacity', 200, 'prekey bundle fetches per account: burst'),
  int('bundlePerHour', 100, 'prekey bundle fetches per account: refill per hour'),
  int('maxLinkedDevices', 5, 'linked devices per account besides its primary (a device list with more is refused)'),
  int('linksPerHour', 10, 'link rendezvous an account may open per hour'),
  int('linkTtlSeconds', 600, 'how long a link code (its rendezvous) stays usable'),
  int('moveForwardDays', 30, "how long a moved account's devices may still log in under its old address and be sent to the new one (a number change, an OPRF rebind)"),
  int('numberChangesPerDay', 3, 'number changes an account may make per day'),
  int('rendezvousPerNetworkPerHour', 1200, 'rendezvous posts and reads before authentication, per source network per hour (a new device polls every 2 s while it waits)'),
  int('sendBytesCapacity', 268_435_456, 'envelope bytes one account may send, over all its recipients: burst (256 MiB)'),
  int('sendBytesPerDay', 1_073_741_824, 'envelope bytes one account may send: refill per day (1 GiB)'),
  int('prekeySignaturesCapacity', 1000, "prekey signatures checked for one account's uploads: burst (refused before any check beyond)"),
  int('prekeySignaturesPerDay', 1000, "prekey signatures checked for one account's uploads: refill per day"),
  int('unidentifiedRecipientCapacity', 600, 'unidentified (sender-hidden) sends per recipient: burst'),
  int('unidentifiedRecipientPerMinute', 300, 'unidentified sends per recipient: refill per minute'),
  int('unidentifiedNetworkCapacity', 1200, 'unidentified sends per source network (IPv4 /24, IPv6 /56): burst'),
  int('unidentifiedNetworkPerMinute', 600, 'unidentified sends per source network: refill per minute'),
  int('unidentifiedNetworkBytesCapacity', 268_435_456, 'envelope bytes stored by unidentified sends per source network, every copy counted: burst (256 MiB; a group message is written once per member device)'),
  int('unidentifiedNetworkBytesPerMinute', 67_108_864, 'envelope bytes stored by unidentified sends per source network: refill per minute (64 MiB)'),
  int('senderCertificateTtlSeconds', 86_400, 'lifetime of a sender certificate in seconds (1 day; clients refresh it before it expires)'),
  int('framesBurst', 200, 'frames per connection: burst'),
  int('framesPerSecond', 50, 'frames per connection: sustained rate'),
  int('maxBadFrames', 5, 'undecodable frames before a connection is closed'),
  int('maxConnectionsPerIp', 64, 'concurrent connections per source network'),
  int('ipv4NetworkBits', 24, 'IPv4 prefix length that counts as one source network for every IP-based limit'),
  int('ipv6NetworkBits', 56, 'IPv6 prefix length that counts as one source network for every IP-based limit'),
  int('preAuthIdleMs', 60_000, 'ms a connection may stay unauthenticated and idle after Hello before it is closed (0: never)'),
  int('preAuthBytesPerSecond', 262_144, 'bytes/s (256 KiB) read from a connection before it authenticates or sends unidentified mail; its socket is paused beyond (burst 2 x max-frame-bytes; 0: no limit)'),
  int('bytesPerSecond', 4_194_304, 'bytes/s (4 MiB) read from a connection once it authenticated or sent unidentified mail; its socket is paused beyond (burst: one second of it, at least 2 x max-frame-bytes; 0: no limit)'),
  int('maxConnectionsPerAccount', 8, 'concurrent authenticated connections per device'),
  int('helloTimeoutMs', 10_000, 'ms a new connection has to send Hello before it is closed'),
  int('headersTimeoutMs', 15_000, 'ms a client has to send its HTTP request headers'),
  int('sweepIntervalSeconds', 60, 'how often expired mail and blobs are swept'),
  int('shutdownTimeoutMs', 10_000, 'how long shutdown waits for in-flight requests'),
] as const

/** One option of {@link OPTIONS}. */
export type RelayOption = (typeof OPTIONS)[number]

/**
 * Everything the relay can be configured with: one field per row of {@link OPTIONS}, whose `help` says what it
 * does (`parley-relay --help` lists them all).
 */
export type RelayConfig = { -readonly [O in RelayOption as O['key']]: O['default'] }

/** The defaults: with no configuration the relay listens on 8787 with SQLite in `./.parley-data`. */
export const DEFAULT_CONFIG: Readonly<RelayConfig> = Object.freeze(
  Object.fromEntries(OPTIONS.map((o) => [o.key, o.default])) as RelayConfig,
)

const dashed = (key: string, sep: string) => key.replace(/[A-Z]/g, (c) => `${sep}${c.toLowerCase()}`)

/**
 * The command-line flag of an option.
 * @param key - the option's name, e.g. `webhookSecret`
 * @returns e.g. `--webhook-secret`
 */
export const flagOf = (key: string): string => `--${dashed(key, '-')}`

/**
 * The environment variable of an option.
 * @param key - the option's name, e.g. `webhookSecret`
 * @returns e.g. `PARLEY_WEBHOOK_SECRET`
 */
export const envOf = (key: string): string => `PARLEY_${dashed(key, '_').toUpperCase()}`

/**
 * The key of an option in a config file: its flag without the dashes.
 * @param key - the option's name, e.g. `webhookSecret`
 * @returns e.g. `webhook-secret`
 */
export const fileKeyOf = (key: string): string => dashed(key, '-')

/** The file variants of a secret option's flag, env var and file key (`--webhook-secret-file` …). */
export const FILE_SUFFIX = { flag: '-file', env: '_FILE', key: '-file' } as const

/** Milliseconds in an hour and a day, for the rate-limit policies. */
export const TIME = { HOUR, DAY: 24 * HOUR } as const
