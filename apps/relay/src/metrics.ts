/**
 * Prometheus metrics on the relay's own registry (served at `/metrics`), named as Prometheus asks
 * (https://prometheus.io/docs/practices/naming/): the process and Node.js metrics of prom-client's
 * `collectDefaultMetrics` unprefixed (`process_resident_memory_bytes`, as every exporter names them), the relay's own
 * under `parley_relay_`, counters ending in `_total` (the helper adds it), gauges without it, units in the name
 * (`_seconds`, `_bytes`), and `parley_relay_build_info{version}` = 1.
 * @module
 */
import { createRequire } from 'node:module'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

const PREFIX = 'parley_relay_'

/** The relay's version, from its package.json (`unknown` when it cannot be read, e.g. in a bundle). */
function relayVersion(): string {
  try {
    const pkg = createRequire(import.meta.url)('../package.json') as { version?: unknown }
    return typeof pkg.version === 'string' ? pkg.version : 'unknown'
  } catch {
    return 'unknown'
  }
}

/**
 * Creates the registry and every metric the relay updates.
 * @returns the registry and the metrics by the name the relay's code uses for them
 * @example
 * const metrics = createMetrics()
 * metrics.frames.inc({ type: 'hello' })
 * await metrics.registry.metrics() // the text exposition served at /metrics
 */
export function createMetrics() {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const counter = <L extends string = never>(name: string, help: string, ...labelNames: L[]) =>
    new Counter<L>({ name: `${PREFIX}${name}_total`, help, labelNames, registers })
  const gauge = (name: string, help: string) => new Gauge({ name: `${PREFIX}${name}`, help, registers })
  const maxGauge = (name: string, help: string) => new MaxGauge({ name: `${PREFIX}${name}`, help, registers })
  const histogram = (name: string, help: string, buckets: number[]) =>
    new Histogram({ name: `${PREFIX}${name}`, help, buckets, registers })
  new Gauge({
    name: `${PREFIX}build_info`,
    help: 'Always 1; the relay version is in its label',
    labelNames: ['version'],
    registers,
  }).set({ version: relayVersion() }, 1)
  return {
    registry,
    connections: gauge('connections', 'Open WebSocket connections'),
    authenticated: gauge('authenticated_connections', 'Open authenticated connections'),
    frames: counter('frames', 'Client frames received, by body type', 'type'),
    preAuthPaused: counter(
      'pre_auth_reads_paused',
      'Times a connection that had not authenticated was paused for reading more than --pre-auth-bytes-per-second',
    ),
    readsPaused: counter(
      'reads_paused',
      'Times an authenticated (or unidentified-mail) connection was paused for reading more than --bytes-per-second',
    ),
    framesDeferred: counter(
      'frames_deferred',
      'Frames handled on the heavy lane, one per turn, rather than as read (before authentication, or larger than 4 KiB); the socket is not read meanwhile',
    ),
    retainedMail: counter(
      'retained_mail',
      'Unread messages of a replaced device: retained for its identity key, or restored to a device that ' +
        'activated again with that key',
      'outcome',
    ),
    bundlesServed: counter('prekey_bundles_served', 'Prekey bundles handed out (each starts a new session)'),
    deviceLists: counter(
      'device_lists',
      'PublishDeviceList outcomes: stored, refused (bad signature, stale version, over the limit, a reused id)',
      'outcome',
    ),
    linkedDevices: counter(
      'linked_devices',
      'Linked devices added and removed by published device lists',
      'change',
    ),
    rendezvous: counter(
      'rendezvous',
      'Link rendezvous events: opened, posted, taken (a second post to a side), missing (unknown or expired), read',
      'event',
    ),
    multiSends: counter(
      'multi_sends',
      'MultiSend outcomes: stored, ephemeral (handed to the fan-out, stored nowhere), stale (STALE_DEVICES: the sender named other devices or an older list), refused',
      'outcome',
    ),
    multiRecipients: counter(
      'multi_recipient_recipients',
      'Recipients of MultiRecipientSend (group messages): stored (every device, or pushed if ephemeral), refused (a wrong token, a stale device list, a full mailbox, a spent quota)',
      'outcome',
    ),
    ephemeral: counter(
      'ephemeral',
      'Ephemeral messages (typing indicators, never stored): accepted from a sender; pushed to an online connection of the recipient device; dropped by a connection too far behind on its pushes',
      'outcome',
    ),
    addressRebinds: counter(
      'address_rebinds',
      'RebindAddress outcomes after an OPRF key rotation: moved, current (already there), refused, conflict',
      'outcome',
    ),
    numberChanges: counter(
      'number_changes',
      'ChangeNumber outcomes: moved, refused (a wrong, expired or unknown code), conflict (the new number has an account), forbidden (a linked device)',
      'outcome',
    ),
    addressForwards: counter(
      'address_forwards',
      'Logins under an address the account moved away from: followed (the device logged in at the new address), missing (no forward, or it expired)',
      'outcome',
    ),
    oprfKeysServed: gauge(
      'oprf_keys_served',
      'OPRF key epochs served in ServerHello (2 during a rotation grace period)',
    ),
    devicesReplaced: counter(
      'devices_replaced',
      'Connections told DeviceReplaced before being closed, by reason: reactivated (another device took the number), erased, removed (the primary unlinked the device)',
      'reason',
    ),
    refusedUndecoded: counter(
      'frames_refused_undecoded',
      'Frames refused from their top level alone, without decoding the body (authenticated-only bodies before authentication), by body type',
      'type',
    ),
    errors: counter('errors', 'Error frames sent, by code', 'code'),
    accepted: counter('messages_accepted', 'Messages stored'),
    delivered: counter('messages_delivered', 'Deliveries pushed'),
    acked: counter('messages_acked', 'Messages acked and deleted'),
    expired: counter('messages_expired', 'Messages expired by TTL'),
    storeScrubs: counter(
      'store_scrubs',
      'SQLite: rewrites of the database file (VACUUM) after erasures, so no stale copy of an erased row stays in it, by outcome (done, failed)',
      'outcome',
    ),
    storeScrubDue: gauge(
      'store_scrub_due',
      'SQLite: 1 while an erasure awaits its scrub (--erasure-scrub-seconds)',
    ),
    storeScrubSeconds: gauge('store_scrub_seconds', 'SQLite: how long the last scrub held the event loop'),
    mailboxFull: counter(
      'mailbox_full',
      'Messages refused with MAILBOX_FULL, nothing stored and nothing evicted, by the limit: messages or bytes ' +
        '(the recipient mailbox) or disk (free space of the data directory below --min-free-disk-bytes)',
      'limit',
    ),
    malformedEnvelopes: counter(
      'malformed_envelopes',
      'Messages refused with BAD_REQUEST because the envelope is not shaped as a v1 SealedEnvelope',
    ),
    rateLimited: counter('rate_limited', 'Requests refused by a quota, by scope', 'scope'),
    blobs: counter(
      'blobs',
      'Blob (encrypted attachment) events: granted, uploaded, downloaded (complete downloads), deleted (downloads ' +
        'used up), expired, abandoned (a grant never uploaded before its token expired); refusals: ' +
        'refused_too_large, refused_downloads (not 1..64), refused_quota (bytes per account), refused_rate (grants ' +
        'per hour), refused_disk, ' +
        'refused_token (an unknown id, a wrong or expired token), refused_conflict (already uploaded or uploading), ' +
        'refused_oversize (a body longer than granted), refused_short (a body shorter than granted), refused_method ' +
        '(neither PUT, GET, HEAD nor OPTIONS), missing (GET ' +
        'of an unknown, incomplete or expired blob)',
      'event',
    ),
    blobBytes: gauge('blob_bytes', 'Ciphertext bytes of complete blobs stored'),
    membershipAddresses: counter('membership_addresses', 'Addresses returned by membership queries'),
    membershipPrefixBits: gauge(
      'membership_prefix_bits',
      'Membership prefix length announced in ServerHello (adapts to the registered population)',
    ),
    signatureChecks: counter(
      'signature_checks',
      'Ed25519 signatures verified, by the frame that carried them',
      'frame',
    ),
    certificatesIssued: counter('sender_certificates_issued', 'Sender certificates issued'),
    unidentified: counter(
      'unidentified_sends',
      'Unidentified (sender-hidden) sends, by outcome; never labelled with a sender',
      'outcome',
    ),
    oprfEvaluations: counter('oprf_evaluations', 'OPRF elements evaluated'),
    activations: counter('activations', 'Activation events, by outcome', 'outcome'),
    registrationLock: counter(
      'registration_lock',
      'Registration-lock events: set, cleared; at activation proved, missing (no PIN sent), wrong, exhausted (no ' +
        'guesses left), lapsed (account inactive past the lapse period; the lock is dropped)',
      'outcome',
    ),
    smsSent: counter(
      'sms_sent',
      'Verification codes the verifier accepted to send (each an SMS the operator pays for)',
    ),
    smsPerMinute: gauge(
      'sms_per_minute',
      'SMS sent in the last minute (every node sharing the rate limiter), as last estimated for the proof of work',
    ),
    activationPowBits: gauge(
      'activation_pow_bits',
      'Proof-of-work difficulty (leading zero bits) last announced in ServerHello',
    ),
    powRefused: counter(
      'pow_refused',
      'ActivationStart frames refused for their proof of work, by reason: missing, invalid, replayed',
      'reason',
    ),
    closedConnections: counter('connections_closed', 'Connections closed by the relay, by reason', 'reason'),
    mailboxPages: counter('mailbox_pages', 'Mailbox pages read from the store for Delivery pushes'),
    mailboxPageBytesMax: maxGauge(
      'mailbox_page_bytes_max',
      'Envelope bytes of the largest mailbox page read for pushes since the relay started',
    ),
    pushHeldBytesMax: maxGauge(
      'push_held_bytes_max',
      'Most bytes one connection held for mailbox pushes at once since the relay started: its unsent data ' +
        'plus the envelopes of its fetched page not yet sent',
    ),
    pushesPaused: gauge(
      'pushes_paused_connections',
      'Connections whose mailbox pushes wait for the client to read (unsent data above the high-water mark)',
    ),
    deliveryLatency: histogram(
      'delivery_latency_seconds',
      'Time from a message being stored to its Delivery push to the recipient device (pushes again after a reconnect count again)',
      [0.005, 0.025, 0.1, 0.5, 2.5, 10, 60, 600, 3600, 86_400, 604_800],
    ),
    mailboxDepth: histogram(
      'mailbox_depth_messages',
      'Unread messages waiting in the mailbox of a device when it authenticates',
      [0, 1, 10, 100, 1000, 10_000],
    ),
  }
}

/** A gauge that only rises: the largest value observed since the process started (a bound tests can assert). */
export class MaxGauge {
  #max = 0
  readonly #gauge: Gauge

  constructor(config: { name: string; help: string; registers: Registry[] }) {
    this.#gauge = new Gauge(config)
  }

  /** The largest value observed so far. */
  get value(): number {
    return this.#max
  }

  /** Raises the gauge to `value` if it is larger. */
  observe(value: number): void {
    if (value <= this.#max) return
    this.#max = value
    this.#gauge.set(value)
  }
}

/** The relay's metrics. */
export type Metrics = ReturnType<typeof createMetrics>
