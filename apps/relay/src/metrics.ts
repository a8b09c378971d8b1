/**
 * Prometheus metrics on the relay's own registry (served at `/metrics`).
 * @module
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client'

/** Creates the registry and every metric the relay updates. */
export function createMetrics() {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'parley_relay_' })
  const registers = [registry]
  return {
    registry,
    connections: new Gauge({
      name: 'parley_relay_connections',
      help: 'Open WebSocket connections',
      registers,
    }),
    authenticated: new Gauge({
      name: 'parley_relay_authenticated_connections',
      help: 'Open authenticated connections',
      registers,
    }),
    frames: new Counter({
      name: 'parley_relay_frames_total',
      help: 'Client frames received, by body type',
      labelNames: ['type'] as const,
      registers,
    }),
    preAuthPaused: new Counter({
      name: 'parley_relay_pre_auth_reads_paused_total',
      help: 'Times a connection that had not authenticated was paused for reading more than --pre-auth-bytes-per-second',
      registers,
    }),
    retainedMail: new Counter({
      name: 'parley_relay_retained_mail_total',
      help:
        'Unread messages of a replaced device: retained for its identity key, or restored to a device that ' +
        'activated again with that key',
      labelNames: ['outcome'] as const,
      registers,
    }),
    bundlesServed: new Counter({
      name: 'parley_relay_prekey_bundles_served_total',
      help: 'Prekey bundles handed out (each starts a new session)',
      registers,
    }),
    addressRebinds: new Counter({
      name: 'parley_relay_address_rebinds_total',
      help: 'RebindAddress outcomes after an OPRF key rotation: moved, current (already there), refused, conflict',
      labelNames: ['outcome'] as const,
      registers,
    }),
    oprfKeysServed: new Gauge({
      name: 'parley_relay_oprf_keys_served',
      help: 'OPRF key epochs served in ServerHello (2 during a rotation grace period)',
      registers,
    }),
    devicesReplaced: new Counter({
      name: 'parley_relay_devices_replaced_total',
      help: 'Connections told DeviceReplaced before being closed, by reason: reactivated (another device took the number), erased',
      labelNames: ['reason'] as const,
      registers,
    }),
    refusedUndecoded: new Counter({
      name: 'parley_relay_frames_refused_undecoded_total',
      help: 'Frames refused from their top level alone, without decoding the body (authenticated-only bodies before authentication), by body type',
      labelNames: ['type'] as const,
      registers,
    }),
    errors: new Counter({
      name: 'parley_relay_errors_total',
      help: 'Error frames sent, by code',
      labelNames: ['code'] as const,
      registers,
    }),
    accepted: new Counter({
      name: 'parley_relay_messages_accepted_total',
      help: 'Messages stored',
      registers,
    }),
    delivered: new Counter({
      name: 'parley_relay_messages_delivered_total',
      help: 'Deliveries pushed',
      registers,
    }),
    acked: new Counter({
      name: 'parley_relay_messages_acked_total',
      help: 'Messages acked and deleted',
      registers,
    }),
    expired: new Counter({
      name: 'parley_relay_messages_expired_total',
      help: 'Messages expired by TTL',
      registers,
    }),
    mailboxFull: new Counter({
      name: 'parley_relay_mailbox_full_total',
      help:
        'Messages refused with MAILBOX_FULL, nothing stored and nothing evicted, by the limit: messages or bytes ' +
        '(the recipient mailbox) or disk (free space of the data directory below --min-free-disk-bytes)',
      labelNames: ['limit'] as const,
      registers,
    }),
    malformedEnvelopes: new Counter({
      name: 'parley_relay_malformed_envelopes_total',
      help: 'Messages refused with BAD_REQUEST because the envelope is not shaped as a v1 SealedEnvelope',
      registers,
    }),
    rateLimited: new Counter({
      name: 'parley_relay_rate_limited_total',
      help: 'Requests refused by a quota, by scope',
      labelNames: ['scope'] as const,
      registers,
    }),
    membershipAddresses: new Counter({
      name: 'parley_relay_membership_addresses_total',
      help: 'Addresses returned by membership queries',
      registers,
    }),
    membershipPrefixBits: new Gauge({
      name: 'parley_relay_membership_prefix_bits',
      help: 'Membership prefix length announced in ServerHello (adapts to the registered population)',
      registers,
    }),
    signatureChecks: new Counter({
      name: 'parley_relay_signature_checks_total',
      help: 'Ed25519 signatures verified, by the frame that carried them',
      labelNames: ['frame'] as const,
      registers,
    }),
    certificatesIssued: new Counter({
      name: 'parley_relay_sender_certificates_issued_total',
      help: 'Sender certificates issued',
      registers,
    }),
    unidentified: new Counter({
      name: 'parley_relay_unidentified_sends_total',
      help: 'Unidentified (sender-hidden) sends, by outcome; never labelled with a sender',
      labelNames: ['outcome'] as const,
      registers,
    }),
    oprfEvaluations: new Counter({
      name: 'parley_relay_oprf_evaluations_total',
      help: 'OPRF elements evaluated',
      registers,
    }),
    activations: new Counter({
      name: 'parley_relay_activations_total',
      help: 'Activation events, by outcome',
      labelNames: ['outcome'] as const,
      registers,
    }),
    registrationLock: new Counter({
      name: 'parley_relay_registration_lock_total',
      help:
        'Registration-lock events: set, cleared; at activation proved, missing (no PIN sent), wrong, exhausted (no ' +
        'guesses left), lapsed (account inactive past the lapse period; the lock is dropped)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    smsSent: new Counter({
      name: 'parley_relay_sms_sent_total',
      help: 'Verification codes the verifier accepted to send (each an SMS the operator pays for)',
      registers,
    }),
    smsPerMinute: new Gauge({
      name: 'parley_relay_sms_per_minute',
      help: 'SMS sent in the last minute (every node sharing the rate limiter), as last estimated for the proof of work',
      registers,
    }),
    activationPowBits: new Gauge({
      name: 'parley_relay_activation_pow_bits',
      help: 'Proof-of-work difficulty (leading zero bits) last announced in ServerHello',
      registers,
    }),
    powRefused: new Counter({
      name: 'parley_relay_pow_refused_total',
      help: 'ActivationStart frames refused for their proof of work, by reason: missing, invalid, replayed',
      labelNames: ['reason'] as const,
      registers,
    }),
    closedConnections: new Counter({
      name: 'parley_relay_connections_closed_total',
      help: 'Connections closed by the relay, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    mailboxPages: new Counter({
      name: 'parley_relay_mailbox_pages_total',
      help: 'Mailbox pages read from the store for Delivery pushes',
      registers,
    }),
    mailboxPageBytesMax: new MaxGauge({
      name: 'parley_relay_mailbox_page_bytes_max',
      help: 'Envelope bytes of the largest mailbox page read for pushes since the relay started',
      registers,
    }),
    pushHeldBytesMax: new MaxGauge({
      name: 'parley_relay_push_held_bytes_max',
      help:
        'Most bytes one connection held for mailbox pushes at once since the relay started: its unsent data ' +
        'plus the envelopes of its fetched page not yet sent',
      registers,
    }),
    pushesPaused: new Gauge({
      name: 'parley_relay_pushes_paused_connections',
      help: 'Connections whose mailbox pushes wait for the client to read (unsent data above the high-water mark)',
      registers,
    }),
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
