/**
 * The rules a configuration must keep beyond each value's type: ranges, options that need each other, and what
 * only a development relay (`--dev`) may do.
 * @module
 */
import { flagOf, type RelayConfig } from './configOptions.js'
import { webhookSigningKey } from './Verifier.js'

/**
 * The metrics listener's address from `--metrics-listen`: `host:port` or `[ipv6]:port`.
 * @param value - the option's value
 * @returns the address, or `null` when the value is empty or `off` (no metrics listener)
 * @throws RangeError when the value is neither
 * @example
 * metricsAddress('127.0.0.1:9464') // { host: '127.0.0.1', port: 9464 }
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
  '    --verifier webhook --webhook-url https://sms.example.internal/parley --webhook-secret-file <file>',
  '  (apps/relay/README.md, "The webhook verifier").',
  '  For development, pass --dev (PARLEY_DEV=1); `pnpm relay` does.',
].join('\n')

const WEBHOOK_NEEDS_SECRET =
  'the webhook verifier needs --webhook-secret or, kept off the command line, --webhook-secret-file ' +
  '(PARLEY_WEBHOOK_SECRET_FILE) to sign its calls, so that your SMS gateway can reject forged and replayed ones: whsec_<base64> or at least 16 bytes of ' +
  'text (only --dev allows unsigned calls)'

/** Options that must be at least 1. */
const AT_LEAST_ONE = [
  'codeGuessesPerNumberPerHour',
  'smsPerPrefixPerHour',
  'smsPerHour',
  'registrationLockGuessesPerDay',
  'registrationLockLapseSeconds',
  'codeAttempts',
  'codeRequestsPerHour',
  'maxDiscoveryBatch',
  'maxMailboxMessages',
  'maxAcksPerFrame',
  'acksPerSecond',
  'linkTtlSeconds',
  'linksPerHour',
  'rendezvousPerNetworkPerHour',
  'moveForwardDays',
  'numberChangesPerDay',
  'blobMaxBytes',
  'blobTtlSeconds',
  'blobUploadTtlSeconds',
  'blobUploadTimeoutSeconds',
  'blobUploadsPerHour',
  'maxRecipientsPerSend',
] as const

/** `[broken, message]` pairs: each rule that does not depend on who supplies the verifier. */
function rules(c: RelayConfig): [boolean, string][] {
  let metrics: string | undefined
  try {
    metricsAddress(c.metricsListen)
  } catch (err) {
    metrics = (err as Error).message
  }
  return [
    [c.port > 65535, 'port must be at most 65535'],
    [metrics !== undefined, metrics ?? ''],
    [c.ipv4NetworkBits < 8 || c.ipv4NetworkBits > 32, 'ipv4-network-bits must be between 8 and 32'],
    [c.ipv6NetworkBits < 16 || c.ipv6NetworkBits > 128, 'ipv6-network-bits must be between 16 and 128'],
    [
      c.verifier === 'webhook' && !/^https?:\/\//.test(c.webhookUrl),
      'the webhook verifier needs --webhook-url (http:// or https://)',
    ],
    [
      c.maxEnvelopeBytes + 1024 > c.maxFrameBytes,
      'max-frame-bytes must exceed max-envelope-bytes by at least 1 KiB',
    ],
    [c.sendBytesCapacity < c.maxEnvelopeBytes, 'send-bytes-capacity must be at least max-envelope-bytes'],
    [
      c.prekeySignaturesCapacity < c.maxPrekeysPerUpload,
      'prekey-signatures-capacity must be at least max-prekeys-per-upload',
    ],
    [c.maxMailboxBytes < c.maxEnvelopeBytes, 'max-mailbox-bytes must be at least max-envelope-bytes'],
    [
      c.membershipPrefixBits < 1 || c.membershipPrefixBits > 256,
      'membership-prefix-bits must be between 1 and 256',
    ],
    [c.membershipMinBucket < 0, 'membership-min-bucket must not be negative'],
    [
      c.numberHashKey !== '' && !/^([0-9a-f]{2}){16,}$/i.test(c.numberHashKey),
      'number-hash-key must be at least 16 bytes of hex',
    ],
    [
      c.store !== 'sqlite' && !/^postgres(ql)?:\/\/./.test(c.store),
      'store must be sqlite or a postgres:// URL',
    ],
    [c.redis !== '' && !/^rediss?:\/\/./.test(c.redis), 'redis must be a redis:// or rediss:// URL'],
    // Every node must hash numbers (code-request quotas) and seal pending activations with the same key.
    [
      c.redis !== '' && c.numberHashKey === '',
      '--redis needs --number-hash-key (PARLEY_NUMBER_HASH_KEY): the same secret hex key, at least 16 bytes, on every node',
    ],
    [
      c.activationPowMaxBits > 32 || c.activationPowBits > c.activationPowMaxBits,
      'activation-pow-bits must be at most activation-pow-max-bits, which is at most 32',
    ],
    [c.codeBackoffMaxMs < c.codeBackoffBaseMs, 'code-backoff-max-ms must be at least code-backoff-base-ms'],
    [
      c.blobStore === 'postgres' && !/^postgres(ql)?:\/\/./.test(c.store),
      'blob-store postgres needs a postgres:// --store (the blob tables are in its database)',
    ],
    [c.blobBytesPerAccount < c.blobMaxBytes, 'blob-bytes-per-account must be at least blob-max-bytes'],
    [c.blobUploadTtlSeconds > c.blobTtlSeconds, 'blob-upload-ttl-seconds must be at most blob-ttl-seconds'],
    ...AT_LEAST_ONE.map((key): [boolean, string] => [
      c[key] < 1,
      `${flagOf(key).slice(2)} must be at least 1`,
    ]),
  ]
}

/**
 * Every problem of a configuration, one message each; a longer explanation's first line reads alone.
 * @param config - a configuration whose values have their types
 * @param options - `verifierGiven`: the caller supplies its own verifier, so `verifier` and the webhook settings
 *   are not used and not checked against `dev`
 * @returns the messages, empty when the configuration can run
 */
export function configProblems(config: RelayConfig, options: { verifierGiven?: boolean } = {}): string[] {
  const problems = rules(config)
    .filter(([broken]) => broken)
    .map(([, message]) => message)
  // Last, so that a malformed configuration is reported as such first: what only a development relay may do.
  if (options.verifierGiven || problems.length > 0) return problems
  if (config.verifier === 'console' && !config.dev) problems.push(CONSOLE_NEEDS_DEV)
  if (config.verifier === 'webhook' && config.webhookSecret === '' && !config.dev)
    problems.push(WEBHOOK_NEEDS_SECRET)
  if (config.verifier === 'webhook' && config.webhookSecret !== '') {
    try {
      if (webhookSigningKey(config.webhookSecret).length < 16)
        problems.push('webhook-secret must be whsec_<base64> or text of at least 16 bytes')
    } catch (err) {
      problems.push((err as Error).message)
    }
  }
  return problems
}

/**
 * Checks the rules of a configuration, including what only a development relay (`dev`) may do.
 * @param config - the configuration
 * @param options - see {@link configProblems}
 * @throws RangeError with the first problem when the configuration cannot work, or is development-only without `dev`
 * @example
 * validateConfig({ ...DEFAULT_CONFIG, dev: true })
 */
export function validateConfig(config: RelayConfig, options: { verifierGiven?: boolean } = {}): void {
  const [first] = configProblems(config, options)
  if (first !== undefined) throw new RangeError(first)
}
