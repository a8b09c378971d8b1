/**
 * The Parley client engine (docs/architecture.md §8): activation, private discovery, end-to-end encrypted sessions,
 * a durable outbox and an exactly-once inbox, over an injected transport and store.
 * @module
 */
import {
  activationPayload,
  addressFromToken,
  addressPrefix,
  authPayload,
  deliveryTokenVerifier,
  GapReason,
  generateIdentity,
  type IdentityKeyPair,
  isRegistrationLockLogN,
  loadNumberMetadata,
  type NumberMetadata,
  normalizeNumberWith,
  normalizePin,
  numberToOprfInput,
  type OprfBlinded,
  opensNumberCommitment,
  oprfBlind,
  oprfFinalize,
  ParleyError,
  REGISTRATION_LOCK_LOG_N,
  REGISTRATION_LOCK_SALT_BYTES,
  type RegistrationLockChallenge,
  registrationLockProof,
  registrationLockVerifier,
  type SenderCertificate,
  type ServerFrame,
  solveActivationPow,
  verifyOprfKeyCertificate,
  verifySenderCertificate,
} from '@parley/protocol'
import { type Clock, systemClock } from './Clock.js'
import { Emitter, type Listener } from './Emitter.js'
import { decodeRecord, encodeRecord, fromHex, pad, toHex } from './internal/codec.js'
import * as e2e from './internal/e2e.js'
import { SerialQueue } from './internal/SerialQueue.js'
import { type ConnectionState, RelayLink, type ServerHello } from './RelayLink.js'
import type { Store, StoreWrite } from './Store.js'
import type {
  ActivateOptions,
  Activation,
  ActivationPending,
  CallOptions,
  ConfirmOptions,
  DiscoveryResult,
  IncomingMessage,
  ParleyClientOptions,
  ParleyEvents,
  SendResult,
  SmsFallback,
} from './types.js'

const ONE_TIME_PREKEY_BATCH = 100
const ONE_TIME_PREKEY_LOW_WATER = 10
const KEM_PREKEY_BATCH = 10
const KEM_PREKEY_LOW_WATER = 3
const MAX_TEXT_BYTES = 64 * 1024
const DEFAULT_DISCOVERY_TTL_MS = 24 * 3600_000
const ACK_BATCH = 500
const BUSY_RETRIES = 5
/** OPRF elements per request when pipelining discovery (smaller chunks overlap more; each costs a proof). */
const OPRF_PIPELINE_CHUNK = 125
const SIGNED_PREKEY_ROTATE_MS = 7 * 24 * 3600_000
const SIGNED_PREKEY_GRACE_MS = 31 * 24 * 3600_000
const ACK_DELAY_MS = 10
/** Most outbox messages awaiting the relay's MessageAccepted at once. */
const OUTBOX_WINDOW = 16
/** How long a full mailbox (MAILBOX_FULL) defers its recipient when the relay gives no `retryAfterMs`. */
const MAILBOX_FULL_RETRY_MS = 60_000
/** Bounds on that deferral: no hot loop on a relay that says 0, and no recipient put off forever by one that lies. */
const MIN_DEFERRAL_MS = 1000
const MAX_DEFERRAL_MS = 10 * 60_000
/** A sender certificate with less validity left than this is replaced before the next send. */
const CERTIFICATE_REFRESH_MS = 6 * 3600_000
/** The unidentified connection is closed after this long without a send (the relay closes idle ones too). */
const ANONYMOUS_IDLE_MS = 30_000
/** Most messages held for one contact whose verified identity changed; older ones are dropped (and counted). */
const MAX_HELD_PER_CONTACT = 1000

/** Store keys (one namespace per concern). */
const K = {
  account: 'account',
  pending: 'activation/pending',
  /** This device's identity after another device took the number over: used again if it activates the number. */
  previous: 'account/previous',
  cursor: 'mailbox/cursor',
  prekeyMeta: 'prekey/meta',
  prekey: (kind: 'spk' | 'otp' | 'kem', id: number) => `prekey/${kind}/${pad(id)}`,
  oprfPin: (keyId: number) => `oprf/pin/${pad(keyId)}`,
  /** The relay's trust root, pinned at first use (or given in the options). */
  trustRoot: 'relay/trust-root',
  /** This device's current sender certificate. */
  senderCertificate: 'account/sender-certificate',
  /** A contact's identity key that the user verified (compared safety numbers). */
  verified: (addressHex: string) => `verified/${addressHex}`,
  /** Envelopes held because a verified contact's identity changed, until the app approves it. */
  held: (addressHex: string, seq: number) => `held/${addressHex}/${pad(seq)}`,
  /** A contact's delivery token, for unidentified sends to it. */
  peerToken: (addressHex: string) => `delivery/peer/${addressHex}`,
  /** First messages already accepted, by signed prekey and base key (replay cache). */
  replay: (signedPrekeyId: number, baseKeyHex: string) => `replay/${pad(signedPrekeyId)}/${baseKeyHex}`,
  token: (keyId: number, e164: string) => `oprf/token/${pad(keyId)}/${e164}`,
  contact: (e164: string) => `contact/${e164}`,
  byAddress: (addressHex: string) => `address/${addressHex}`,
  session: (addressHex: string) => `session/${addressHex}`,
  /** The last identity key seen for a contact, kept even when the session is dropped. */
  identity: (addressHex: string) => `identity/${addressHex}`,
  outbox: (seq: number) => `outbox/${pad(seq)}`,
  seen: (idHex: string) => `inbox/seen/${idHex}`,
  inbox: (at: number, idHex: string) => `inbox/message/${pad(at)}/${idHex}`,
}

interface AccountRecord {
  e164: string
  address: Uint8Array
  deviceId: number
  identity: { publicKey: Uint8Array; secretKey: Uint8Array }
  /** Opens the number commitment the relay certified at activation (absent for accounts from before it). */
  numberSalt?: Uint8Array
  /** This account's delivery token, shared with contacts in every message; its verifier is on the relay. */
  deliveryToken?: Uint8Array
  /** Whether the relay has the current token's verifier. */
  deliveryTokenSet?: boolean
  /** The OPRF key epoch the address is derived under (absent in records from before key rotation). */
  keyId?: number
}

/** What a replaced device keeps of its account to take the number back with the same identity. */
interface PreviousRecord {
  e164: string
  identity: { publicKey: Uint8Array; secretKey: Uint8Array }
}

interface PendingRecord {
  e164: string
  activationId: Uint8Array
  expiresAt: number
}

interface PrekeyMeta {
  nextOtpId: number
  nextKemId: number
  signedPrekeyId: number
  lastResortKemId: number
  /** When the current signed prekey was made (absent in stores from before rotation existed). */
  signedPrekeyAt?: number
  /** Replaced signed prekeys, kept for mail still in flight until `retiredAt + SIGNED_PREKEY_GRACE_MS`. */
  retiredSignedPrekeys?: { id: number; retiredAt: number }[]
}

interface ContactRecord {
  e164: string
  address: Uint8Array
  registered: boolean
  checkedAt: number
  /** The OPRF key epoch `address` was derived under; absent when unknown (older records, or learned from mail). */
  keyId?: number
}

interface SessionRecord {
  deviceId: number
  identityKey: Uint8Array
  state: Uint8Array
  /** Archived sessions with the same contact (any identity), tried when the current one cannot decrypt. */
  previous?: Uint8Array[]
  /** The contact's device was replaced (CONFLICT): still decrypts, but the next send starts a new session. */
  stale?: boolean
}

interface OutboxRecord {
  id: string
  to: string
  address: Uint8Array
  text: string
  sentAt: number
  /** The session message once encrypted; a retry reseals (with a current certificate) the same message. */
  message?: { kind: 'prekey' | 'ratchet'; body: Uint8Array }
  /** The recipient device's identity key the message was encrypted for. */
  recipientIdentityKey?: Uint8Array
  deviceId?: number
}

interface HeldRecord {
  envelope: Uint8Array
  receivedAtMs: number
}

interface StoredMessage {
  id: string
  from: string | null
  fromAddress: string
  text: string
  sentAt: number
  receivedAt: number
}

/**
 * A Parley client: one device of one account.
 *
 * Created by a platform SDK (`@parley/node`, `@parley/browser`) or directly with an injected transport and store.
 * Nothing is sent, and no connection is opened, before {@link ParleyClient.activate} with `consent: true`
 * (or, on later starts, unless the device was activated before).
 *
 * @example
 * const parley = await ParleyClient.create({ relayUrl, transport, store, defaultRegion: 'US' })
 * await parley.activate({ phoneNumber: '+1 415 555 0100', consent: true })
 * await parley.confirm('123456')
 * await parley.send('+1 415 555 0101', 'hi')
 */
export class ParleyClient {
  readonly #store: Store
  readonly #clock: Clock
  readonly #random: (n: number) => Uint8Array
  readonly #region: ParleyClientOptions['defaultRegion']
  readonly #smsFallback: SmsFallback | undefined
  readonly #discoveryTtlMs: number
  readonly #events: Emitter<ParleyEvents>
  readonly #link: RelayLink
  /** A second connection that never authenticates: unidentified sends go here, so the relay cannot name their sender. */
  readonly #anonymous: RelayLink
  readonly #givenTrustRoot: Uint8Array | undefined
  /** The pinned trust root once a handshake has checked it (read on every received message). */
  #pinnedRoot: Uint8Array | undefined
  #certificate: { bytes: Uint8Array; cert: SenderCertificate } | null = null
  #anonymousIdle: unknown = null
  #anonymousInFlight = 0
  readonly #stats = { senderUnverified: 0, replaysRefused: 0, held: 0, unidentifiedSent: 0 }
  readonly #serial = new SerialQueue()
  #account: AccountRecord | null = null
  #authenticated = false
  /** Set when the relay said DeviceReplaced: this device no longer has an account there. */
  #replaced = false
  #closed = false
  #outboxSeq = 0
  #flushing: Promise<void> | null = null
  #iterators = new Set<(m: IncomingMessage | null) => void>()
  #acks: number[] = []
  #ackTimer: unknown = null
  #retryTimer: unknown = null
  /** A kick came while the outbox was being flushed: flush once more when it ends. */
  #kickAgain = false
  /**
   * Recipients (address hex) whose mailbox was full, and the time (on the injected clock) before which none of
   * their queued messages is sent; everyone else's are. In memory: a restart tries them at once.
   */
  readonly #deferred = new Map<string, number>()
  #deferralTimer: unknown = null
  #deferralDue = 0
  #numberMetadata: Promise<NumberMetadata> | null = null
  /** The PIN given to `activate` (memory only), and the relay's lock challenge for the pending activation. */
  #pendingPin: string | undefined
  #lockChallenge: { activationId: Uint8Array; challenge: RegistrationLockChallenge } | undefined

  private constructor(options: ParleyClientOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options are required')
    if (typeof options.relayUrl !== 'string' || !/^wss?:\/\//.test(options.relayUrl)) {
      throw new TypeError('relayUrl must be a ws:// or wss:// URL')
    }
    if (typeof options.transport?.open !== 'function') throw new TypeError('transport must implement open()')
    if (typeof options.store?.write !== 'function')
      throw new TypeError('store must implement the Store interface')
    if (options.smsFallback !== undefined && typeof options.smsFallback !== 'function') {
      throw new TypeError('smsFallback must be a function')
    }
    this.#store = options.store
    this.#clock = options.clock ?? systemClock
    this.#random = options.random ?? ((n) => crypto.getRandomValues(new Uint8Array(n)))
    this.#region = options.defaultRegion
    this.#smsFallback = options.smsFallback
    this.#discoveryTtlMs = options.discoveryTtlMs ?? DEFAULT_DISCOVERY_TTL_MS
    this.#givenTrustRoot = parseTrustRoot(options.relayKeys)
    this.#events = new Emitter<ParleyEvents>((err) => this.#emitError(err))
    const url = new URL(options.relayUrl)
    if (url.pathname === '/' || url.pathname === '') url.pathname = '/v1/ws'
    const linkOptions = {
      url: url.toString(),
      transport: options.transport,
      clock: this.#clock,
      jitter: () => {
        const b = this.#random(4)
        return (((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0) / 2 ** 32
      },
      requestTimeoutMs: options.requestTimeoutMs ?? 20_000,
      backoffMinMs: options.reconnect?.minDelayMs ?? 250,
      backoffMaxMs: options.reconnect?.maxDelayMs ?? 30_000,
    }
    this.#anonymous = new RelayLink({
      ...linkOptions,
      hooks: {
        // The same pins as the main connection; nothing else is ever sent on this one but unidentified mail.
        onHandshake: (hello) => this.#checkPins(hello),
        onPush: () => {},
        onState: () => {},
      },
    })
    this.#link = new RelayLink({
      ...linkOptions,
      hooks: {
        onHandshake: (hello, link) => this.#onHandshake(hello, link),
        onPush: (frame) => this.#onPush(frame),
        onState: (state, info) => {
          if (state !== 'online') this.#authenticated = false
          this.#events.emit('connection', { state, ...info })
          if (state === 'online' && this.#account !== null) this.#afterOnline()
        },
      },
    })
  }

  /**
   * Creates a client over the given store, restoring any earlier activation. Opens a connection only if
   * this device was activated before.
   * @param options - see {@link ParleyClientOptions}
   * @returns the client
   * @throws TypeError for missing or malformed options
   * @example const parley = await ParleyClient.create({ relayUrl: 'ws://localhost:8787', transport, store })
   */
  static async create(options: ParleyClientOptions): Promise<ParleyClient> {
    const client = new ParleyClient(options)
    await client.#load()
    return client
  }

  async #load(): Promise<void> {
    const account = await this.#store.get(K.account)
    this.#account = account === undefined ? null : decodeRecord<AccountRecord>(account)
    const outbox = await this.#store.list('outbox/')
    const last = outbox.at(-1)
    this.#outboxSeq = last === undefined ? 0 : Number(last.key.slice('outbox/'.length))
    if (this.#account !== null) this.#link.start()
  }

  // ───────────────────────────── public API ─────────────────────────────

  /** Whether this device has an active account. */
  get activated(): boolean {
    return this.#account !== null
  }

  /** The account's address (hex), once activated. */
  get address(): string | null {
    return this.#account === null ? null : toHex(this.#account.address)
  }

  /** The connection state. */
  get connectionState(): ConnectionState {
    return this.#link.state
  }

  /**
   * Subscribes to an event; returns a function that unsubscribes.
   * @example parley.on('message', (m) => console.log(m.from, m.text))
   */
  on<K extends keyof ParleyEvents>(event: K, listener: Listener<ParleyEvents[K]>): () => void {
    return this.#events.on(event, listener)
  }

  /** Removes an event listener. */
  off<K extends keyof ParleyEvents>(event: K, listener: Listener<ParleyEvents[K]>): void {
    this.#events.off(event, listener)
  }

  /**
   * Received messages as an async iterator, from now until {@link close}.
   * @example for await (const m of parley.messages()) console.log(m.text)
   */
  messages(options: CallOptions = {}): AsyncIterableIterator<IncomingMessage> {
    const queue: IncomingMessage[] = []
    let wake: (() => void) | null = null
    let done = this.#closed
    const push = (m: IncomingMessage | null) => {
      if (m === null) done = true
      else queue.push(m)
      wake?.()
    }
    this.#iterators.add(push)
    const finish = () => {
      done = true
      this.#iterators.delete(push)
      wake?.()
    }
    options.signal?.addEventListener('abort', finish, { once: true })
    const iterator: AsyncIterableIterator<IncomingMessage> = {
      [Symbol.asyncIterator]: () => iterator,
      next: async () => {
        while (queue.length === 0 && !done) await new Promise<void>((r) => (wake = r))
        wake = null
        const value = queue.shift()
        return value === undefined ? { done: true, value: undefined } : { done: false, value }
      },
      return: async () => {
        finish()
        return { done: true, value: undefined }
      },
    }
    return iterator
  }

  /**
   * Starts activation: the relay asks its verifier to send a code to `phoneNumber`. This is the first call
   * that sends anything, and only with `consent: true`.
   * @param options - `phoneNumber`, `consent: true`, and an optional `signal`
   * @returns the E.164 number and the code's lifetime
   * @throws TypeError when `consent` is not `true` or `pin` is too short; ParleyError `INVALID_NUMBER`,
   *   `RATE_LIMITED`, `UNAVAILABLE`
   * @example await parley.activate({ phoneNumber: '+1 415 555 0100', consent: true })
   */
  async activate(options: ActivateOptions): Promise<ActivationPending> {
    this.#checkOpen()
    if (typeof options !== 'object' || options === null || options.consent !== true) {
      throw new TypeError('activate() needs { consent: true }: the user must agree before anything is sent')
    }
    const e164 = await this.#normalize(options.phoneNumber)
    const pin = options.pin === undefined ? undefined : normalizePin(options.pin)
    this.#link.start()
    await this.#link.waitOnline(options.signal)
    // A relay under load asks for proof of work per code request, bound to this connection's nonce.
    const hello = this.#link.hello
    const bits = hello?.activationPowBits ?? 0
    const powSolution =
      bits > 0 && hello?.authNonce ? solveActivationPow(hello.authNonce, e164, bits) : new Uint8Array(0)
    const frame = await this.#link.request(
      { activationStart: { phoneNumber: e164, consent: true, ...(bits > 0 ? { powSolution } : {}) } },
      { signal: options.signal },
    )
    const started = expectBody(frame, 'activationStarted')
    const pending: PendingRecord = {
      e164,
      activationId: started.activationId ?? new Uint8Array(0),
      expiresAt: this.#clock.now() + (started.expiresInSeconds ?? 0) * 1000,
    }
    await this.#store.write([{ key: K.pending, value: encodeRecord(pending) }])
    this.#pendingPin = pin
    this.#lockChallenge = undefined
    return { e164, expiresInSeconds: started.expiresInSeconds ?? 0, attemptsLeft: started.attemptsLeft ?? 0 }
  }

  /**
   * Completes activation with the code the user received: creates this device's keys, registers them,
   * and checks that the address the relay assigned is the one the OPRF gives for the number.
   *
   * When the number's account has a registration lock (set on an earlier device with
   * {@link ParleyClient.setRegistrationLock}), the code is not enough: the PIN given here or to `activate` is
   * proved to the relay (it never sees the PIN itself). Without one, or with a wrong one, this rejects
   * `REGISTRATION_LOCKED` with `registrationLock.attemptsLeft` and `lapsesInMs`; the activation stays pending,
   * so call `confirm(code, { pin })` again with the same code.
   * @param code - the six-digit code
   * @param options - `pin` (the registration-lock PIN) and `signal`
   * @returns the account's address and device id, and how many messages the relay restored (mail that was
   *   waiting when another device took the number from this one, kept for this device's identity key)
   * @throws TypeError for a code that is not six digits or a PIN of fewer than 4 characters; ParleyError
   *   `INVALID_STATE` (no pending activation), `INVALID_CODE`, `EXPIRED`, `RATE_LIMITED`, `REGISTRATION_LOCKED`
   *   (with `retryAfterMs` when no guess is left for now), `VERIFICATION_FAILED`
   * @example await parley.confirm('123456')
   * @example await parley.confirm('123456', { pin: '4921' }) // after REGISTRATION_LOCKED
   */
  async confirm(code: string, options: ConfirmOptions = {}): Promise<Activation> {
    this.#checkOpen()
    if (typeof code !== 'string' || !/^\d{6}$/.test(code.trim()))
      throw new TypeError('code must be six digits')
    const pin = options.pin === undefined ? this.#pendingPin : normalizePin(options.pin)
    const raw = await this.#store.get(K.pending)
    if (raw === undefined) throw new ParleyError('INVALID_STATE', 'call activate() first')
    const pending = decodeRecord<PendingRecord>(raw)
    if (pending.expiresAt < this.#clock.now()) {
      await this.#store.write([{ key: K.pending }])
      throw new ParleyError('EXPIRED', 'the activation expired; call activate() again')
    }
    // A device the number was taken from activates again with its own identity: its contacts' sessions and the
    // mail the relay kept for that identity carry on, and its earlier prekeys (which that mail may use) stay.
    const previousRaw = await this.#store.get(K.previous)
    const previous = previousRaw === undefined ? undefined : decodeRecord<PreviousRecord>(previousRaw)
    const reuse = previous !== undefined && previous.e164 === pending.e164
    const identity = reuse ? previous.identity : generateIdentity(this.#random)
    const metaRaw = reuse ? await this.#store.get(K.prekeyMeta) : undefined
    const used = metaRaw === undefined ? undefined : decodeRecord<PrekeyMeta>(metaRaw)
    const keys = e2e.generateInitialPrekeys(
      identity,
      this.#random,
      ONE_TIME_PREKEY_BATCH,
      KEM_PREKEY_BATCH,
      used === undefined
        ? undefined
        : { spk: used.signedPrekeyId + 1, otp: used.nextOtpId, kem: used.nextKemId },
    )
    // The relay keeps only a commitment to the number under this salt; the salt stays here, to prove the
    // number to the recipients of our messages.
    const numberSalt = this.#random(32)
    this.#link.start()
    await this.#link.waitOnline(options.signal)
    // Our own number, blinded, for the relay to evaluate with the activation: checking the address we are given
    // then spends no discovery quota (which a re-activation may find used up).
    const oprfKey = this.#link.hello?.oprfKeys?.[0]
    const ownInput = numberToOprfInput(pending.e164)
    const ownBlind = oprfKey?.publicKey ? oprfBlind(ownInput) : undefined
    const identitySignature = e2e.sign(identity, activationPayload(pending.activationId, identity.publicKey))
    // A lock challenge already received for this activation lets the PIN be proved in the first request.
    let proof = await this.#lockProof(pending.activationId, pin)
    let frame: ServerFrame
    for (;;) {
      try {
        frame = await this.#link.request(
          {
            activationConfirm: {
              activationId: pending.activationId,
              code: code.trim(),
              identityKey: identity.publicKey,
              identitySignature,
              prekeys: keys.upload,
              numberSalt,
              ...(ownBlind ? { blindedNumber: ownBlind.blindedElement } : {}),
              ...(proof ? { registrationLockProof: proof } : {}),
            },
          },
          { signal: options.signal },
        )
        break
      } catch (err) {
        if (!ParleyError.is(err, 'REGISTRATION_LOCKED') || !err.registrationLock) throw err
        this.#lockChallenge = { activationId: pending.activationId, challenge: err.registrationLock }
        // Asked for the PIN and holding one not yet proved: prove it once; anything else is the app's to handle.
        if (proof !== undefined || pin === undefined || err.registrationLock.attemptsLeft < 1) throw err
        proof = await this.#lockProof(pending.activationId, pin)
        if (proof === undefined) throw err
      }
    }
    this.#pendingPin = undefined
    this.#lockChallenge = undefined
    const activated = expectBody(frame, 'activated')
    const address = activated.address ?? new Uint8Array(0)
    const deviceId = activated.deviceId ?? 0
    // The relay computed our address from the number with its OPRF key; check it against our own evaluation,
    // which is verified against the pinned key, so a relay cannot bind us to someone else's address.
    const token =
      this.#ownToken(ownInput, ownBlind, activated.ownNumber) ??
      (await this.#tokens([pending.e164], options.signal))[0]
    if (token === undefined || !e2e.equal(addressFromToken(token), address)) {
      throw new ParleyError(
        'VERIFICATION_FAILED',
        'the relay assigned an address that does not match the number',
      )
    }
    const account: AccountRecord = {
      e164: pending.e164,
      address,
      deviceId,
      identity,
      numberSalt,
      deliveryToken: this.#random(32),
      deliveryTokenSet: false,
      ...(typeof oprfKey?.keyId === 'number' ? { keyId: oprfKey.keyId } : {}),
    }
    const meta: PrekeyMeta = {
      nextOtpId: keys.nextOtpId,
      nextKemId: keys.nextKemId,
      signedPrekeyId: keys.signedPrekeyId,
      lastResortKemId: keys.lastResortKemId,
      signedPrekeyAt: this.#clock.now(),
    }
    await this.#store.write([
      ...keys.secrets,
      { key: K.prekeyMeta, value: encodeRecord(meta) },
      { key: K.account, value: encodeRecord(account) },
      { key: K.pending },
      { key: K.previous },
      // A new device's mailbox: read from its start (mail restored from the replaced device keeps its old seqs).
      { key: K.cursor },
      // A certificate of the device this number had before is no use to this one.
      { key: K.senderCertificate },
    ])
    this.#account = account
    this.#replaced = false
    this.#certificate = null
    // Authenticate on this connection now; later connections authenticate in the handshake.
    const hello = this.#link.hello
    if (hello !== null && this.#link.state === 'online') {
      await this.#authenticate(hello, this.#link)
      this.#afterOnline()
    } else {
      this.#link.drop('activated')
    }
    return {
      address: toHex(address),
      deviceId,
      replacedDevice: activated.replacedDevice === true,
      restoredMessages: activated.restoredMessages ?? 0,
    }
  }

  /** The proof of `pin` for the lock challenge held for this activation, if both are there. */
  async #lockProof(activationId: Uint8Array, pin: string | undefined): Promise<Uint8Array | undefined> {
    const held = this.#lockChallenge
    if (pin === undefined || held === undefined || !e2e.equal(held.activationId, activationId))
      return undefined
    const { salt, logN } = held.challenge
    // A relay may not make this device spend more than the protocol's highest cost (or accept a trivial one).
    if (!isRegistrationLockLogN(logN) || salt.length !== REGISTRATION_LOCK_SALT_BYTES) {
      throw new ParleyError(
        'VERIFICATION_FAILED',
        'the relay asked for a registration-lock proof out of range',
      )
    }
    return registrationLockProof(pin, salt, logN)
  }

  /**
   * Sets (or replaces) this account's registration lock: activating the number on another device will then
   * need `pin` as well as the SMS code, until the account has been inactive for the relay's lapse period
   * (7 days by default), so that whoever gets hold of the number (a SIM swap, a ported number) cannot take the
   * account over. The PIN never leaves this device: it is stretched with scrypt, and the relay keeps a hash of
   * the result. Nothing is stored here, so the user must remember the PIN.
   * @param pin - 4 to 64 characters (digits or any text), compared after Unicode NFKD normalisation
   * @throws TypeError for a PIN that is too short or too long; ParleyError `INVALID_STATE` before activation,
   *   `UNAVAILABLE` when the relay cannot be reached
   * @example await parley.setRegistrationLock('4921')
   */
  async setRegistrationLock(pin: string, options: CallOptions = {}): Promise<void> {
    this.#checkOpen()
    const p = normalizePin(pin)
    this.#requireAccount()
    const salt = this.#random(REGISTRATION_LOCK_SALT_BYTES)
    const verifier = registrationLockVerifier(await registrationLockProof(p, salt, REGISTRATION_LOCK_LOG_N))
    const frame = await this.#link.request(
      { setRegistrationLock: { salt, logN: REGISTRATION_LOCK_LOG_N, verifier } },
      { signal: options.signal },
    )
    expectBody(frame, 'registrationLockSet')
  }

  /**
   * Removes this account's registration lock: the SMS code alone activates the number again.
   * @throws ParleyError `INVALID_STATE` before activation, `UNAVAILABLE` when the relay cannot be reached
   * @example await parley.clearRegistrationLock()
   */
  async clearRegistrationLock(options: CallOptions = {}): Promise<void> {
    this.#checkOpen()
    this.#requireAccount()
    const frame = await this.#link.request({ setRegistrationLock: {} }, { signal: options.signal })
    expectBody(frame, 'registrationLockSet')
  }

  /**
   * Finds out which numbers are on Parley without revealing them: each number is blinded (RFC 9497 VOPRF),
   * evaluated by the relay with a proof checked against its pinned key, and looked up by a short address
   * prefix. Results are cached, so asking again costs no quota.
   * @param numbers - phone numbers in any common format (at most 10,000 per call)
   * @returns one result per number, in order; invalid numbers come back with `e164: null`
   * @throws ParleyError `INVALID_STATE` before activation, `RATE_LIMITED` (with `retryAfterMs`),
   *   `VERIFICATION_FAILED` when the relay's proof does not verify
   * @example const found = await parley.discover(['+1 415 555 0101', '(415) 555-0102'])
   */
  async discover(numbers: readonly string[], options: CallOptions = {}): Promise<DiscoveryResult[]> {
    this.#checkOpen()
    if (!Array.isArray(numbers) || numbers.some((n) => typeof n !== 'string')) {
      throw new TypeError('numbers must be an array of strings')
    }
    if (numbers.length > 10_000) throw new RangeError('at most 10,000 numbers per discover() call')
    this.#requireAccount()
    const metadata = await this.#metadata()
    const e164s = numbers.map((n) => {
      try {
        return normalizeNumberWith(metadata, n, this.#region)
      } catch {
        return null
      }
    })
    const unique = [...new Set(e164s.filter((n): n is string => n !== null))]
    const registered = await this.#lookup(unique, options.signal)
    return numbers.map((number, i) => {
      const e164 = e164s[i] ?? null
      return { number, e164, registered: e164 !== null && registered.get(e164) === true }
    })
  }

  /**
   * Sends a text. To a number on Parley it is end-to-end encrypted and queued durably before this
   * resolves (`route: 'ip'`), then delivered when possible, across reconnects and restarts. When the
   * recipient's mailbox on the relay is full (`MAILBOX_FULL`), only messages to that recipient wait: they
   * stay queued, in order, and are tried again when the relay's `retryAfterMs` ends (at most 10 minutes
   * later, or at once after a restart), while messages to everyone else go on. To a number not on Parley it
   * is handed to `smsFallback` (`route: 'sms'`) and nothing is uploaded.
   * @param to - the recipient's number
   * @param text - the message (at most 64 KiB of UTF-8)
   * @returns the message id and its route
   * @throws TypeError / RangeError for bad arguments; ParleyError `INVALID_NUMBER`, `INVALID_STATE` before
   *   activation, `NOT_FOUND` when the recipient is not on Parley and there is no `smsFallback`
   * @example const { id, route } = await parley.send('+1 415 555 0101', 'hi')
   */
  async send(to: string, text: string, options: CallOptions = {}): Promise<SendResult> {
    this.#checkOpen()
    if (typeof text !== 'string') throw new TypeError('text must be a string')
    if (new TextEncoder().encode(text).length > MAX_TEXT_BYTES) throw new RangeError('text is over 64 KiB')
    const e164 = await this.#normalize(to)
    this.#requireAccount()
    const id = toHex(this.#random(16))
    let contact = await this.#contact(e164)
    if (contact === null || this.#clock.now() - contact.checkedAt > this.#discoveryTtlMs) {
      await this.#lookup([e164], options.signal)
      contact = await this.#contact(e164)
    }
    if (contact === null || !contact.registered) {
      if (this.#smsFallback === undefined) {
        throw new ParleyError('NOT_FOUND', 'the recipient is not on Parley and no smsFallback is configured')
      }
      await this.#smsFallback(e164, text)
      return { id, route: 'sms' }
    }
    const entry: OutboxRecord = { id, to: e164, address: contact.address, text, sentAt: this.#clock.now() }
    await this.#serial.run(async () => {
      const seq = ++this.#outboxSeq
      await this.#store.write([{ key: K.outbox(seq), value: encodeRecord(entry) }])
    })
    this.#kickOutbox()
    return { id, route: 'ip' }
  }

  /**
   * The safety number (60 digits, in 12 groups of 5) of this device and a contact's current identity.
   * Compare it in person or by scanning a QR code to rule out a man in the middle.
   * @param number - the contact's number
   * @returns the safety number, or null when there is no session with the contact yet (send a message first)
   * @example const sn = await parley.safetyNumber('+1 415 555 0101')
   */
  async safetyNumber(number: string): Promise<string | null> {
    this.#checkOpen()
    const account = this.#requireAccount()
    const e164 = await this.#normalize(number)
    const contact = await this.#contact(e164)
    if (contact === null) return null
    let session = await this.#session(contact.address)
    if (session === null && this.#flushing !== null) {
      // A message to this contact may be establishing the session right now.
      await this.#flushing.catch(() => {})
      session = await this.#session(contact.address)
    }
    if (session === null) return null
    return e2e.safetyNumber(account.identity.publicKey, account.address, session.identityKey, contact.address)
  }

  /**
   * Messages received so far (persisted), oldest first.
   * @example for (const m of await parley.history()) console.log(m.text)
   */
  async history(): Promise<IncomingMessage[]> {
    this.#checkOpen()
    const entries = await this.#store.list('inbox/message/')
    return entries.map((e) => toIncoming(decodeRecord<StoredMessage>(e.value)))
  }

  /**
   * Marks a contact's current identity as verified, after the user compared safety numbers. From then on,
   * messages under any other identity of that contact are held (not shown) and sends to it are refused with
   * `IDENTITY_UNTRUSTED`, until {@link ParleyClient.approveIdentity}.
   * @param number - the contact's number
   * @param options - `safetyNumber`: the number the user compared; refused if it is no longer the current one
   * @throws ParleyError `NOT_FOUND` when there is no session with the contact yet, `VERIFICATION_FAILED` when
   *   `safetyNumber` differs from the current one
   * @example if (userConfirmed) await parley.markVerified('+1 415 555 0101', { safetyNumber: shown })
   */
  async markVerified(number: string, options: { safetyNumber?: string } = {}): Promise<void> {
    this.#checkOpen()
    const account = this.#requireAccount()
    const e164 = await this.#normalize(number)
    await this.#serial.run(async () => {
      const contact = await this.#contact(e164)
      const identity =
        contact === null ? undefined : await this.#store.get(K.identity(toHex(contact.address)))
      if (contact === null || identity === undefined) {
        throw new ParleyError('NOT_FOUND', 'no identity known for this contact yet; exchange a message first')
      }
      if (
        options.safetyNumber !== undefined &&
        e2e.safetyNumber(account.identity.publicKey, account.address, identity, contact.address) !==
          options.safetyNumber.replace(/\s+/g, ' ').trim()
      ) {
        throw new ParleyError('VERIFICATION_FAILED', 'the safety number is not the current one')
      }
      await this.#store.write([{ key: K.verified(toHex(contact.address)), value: identity }])
    })
  }

  /**
   * Whether a contact is verified (see {@link ParleyClient.markVerified}) and its identity has not changed since.
   * @example const ok = await parley.isVerified('+1 415 555 0101')
   */
  async isVerified(number: string): Promise<boolean> {
    this.#checkOpen()
    this.#requireAccount()
    const contact = await this.#contact(await this.#normalize(number))
    if (contact === null) return false
    const hex = toHex(contact.address)
    const [verified, current] = [
      await this.#store.get(K.verified(hex)),
      await this.#store.get(K.identity(hex)),
    ]
    return verified !== undefined && current !== undefined && e2e.equal(verified, current)
  }

  /**
   * Accepts the new identity of a verified contact whose identity changed: the contact becomes unverified (call
   * {@link ParleyClient.markVerified} again after comparing the new safety number), the messages held for it are
   * delivered now, in order, and sends to it work again.
   * @param number - the contact's number
   * @returns how many held messages were delivered
   * @example parley.on('identityChanged', async (c) => { if (await askUser(c)) await parley.approveIdentity(c.number) })
   */
  async approveIdentity(number: string): Promise<number> {
    this.#checkOpen()
    this.#requireAccount()
    const contact = await this.#contact(await this.#normalize(number))
    if (contact === null) return 0
    const hex = toHex(contact.address)
    const held = await this.#serial.run(async () => {
      const entries = await this.#store.list(`held/${hex}/`)
      await this.#store.write([{ key: K.verified(hex) }])
      return entries
    })
    let delivered = 0
    for (const e of held) {
      const h = decodeRecord<HeldRecord>(e.value)
      const shown = await this.#serial.run(async () => {
        const ok = await this.#receive({ seq: 0, envelope: h.envelope, receivedAtMs: h.receivedAtMs })
        await this.#store.write([{ key: e.key }])
        return ok
      })
      if (shown) delivered++
    }
    return delivered
  }

  /**
   * Replaces this account's delivery token: contacts that hold the old one can no longer send to it without
   * revealing themselves to the relay (their sends fall back to the authenticated path); contacts learn the
   * new one from the next message sent to them. This is how to stop unwanted unidentified senders.
   * @example await parley.rotateDeliveryToken()
   */
  async rotateDeliveryToken(options: CallOptions = {}): Promise<void> {
    this.#checkOpen()
    this.#requireAccount()
    await this.#serial.run(async () => {
      const account = this.#requireAccount()
      const next: AccountRecord = { ...account, deliveryToken: this.#random(32), deliveryTokenSet: false }
      await this.#store.write([{ key: K.account, value: encodeRecord(next) }])
      this.#account = next
    })
    await this.#link.waitOnline(options.signal)
    await this.#serial.run(() => this.#registerDeliveryToken())
  }

  /**
   * Counters of what this client refused or held since it was created: messages refused for an unproven sender
   * (`senderUnverified`), replayed first messages (`replaysRefused`), messages held for a changed verified
   * identity (`held`), and messages sent by unidentified delivery (`unidentifiedSent`).
   */
  get stats(): Readonly<{
    senderUnverified: number
    replaysRefused: number
    held: number
    unidentifiedSent: number
  }> {
    return { ...this.#stats }
  }

  /** Number of messages queued in the outbox, not yet accepted by the relay. */
  async pendingCount(): Promise<number> {
    this.#checkOpen()
    return (await this.#store.list('outbox/')).length
  }

  /**
   * Deactivates the account: the relay erases its address, keys, prekeys and pending mail, and this device
   * forgets its keys, sessions and contacts. The client stays usable for a new activation.
   * @throws ParleyError `INVALID_STATE` when not activated, `UNAVAILABLE` when the relay cannot be reached
   * @example await parley.deactivate()
   */
  async deactivate(options: CallOptions = {}): Promise<void> {
    this.#checkOpen()
    this.#requireAccount()
    const frame = await this.#link.request({ deactivate: {} }, { signal: options.signal })
    expectBody(frame, 'deactivated')
    await this.#serial.run(async () => {
      const all = await this.#store.list('')
      await this.#store.write(all.map((e) => ({ key: e.key })))
      this.#account = null
      this.#authenticated = false
      this.#deferred.clear()
    })
    this.#link.stop()
    this.#anonymous.stop()
  }

  /**
   * Closes the connection and the store. Queued messages stay in the outbox for the next start.
   * @example await parley.close()
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#retryTimer !== null) this.#clock.clearTimeout(this.#retryTimer)
    if (this.#deferralTimer !== null) this.#clock.clearTimeout(this.#deferralTimer)
    if (this.#anonymousIdle !== null) this.#clock.clearTimeout(this.#anonymousIdle)
    this.#flushAcks()
    this.#link.stop(true)
    this.#anonymous.stop(true)
    for (const push of this.#iterators) push(null)
    this.#iterators.clear()
    await this.#serial.run(async () => {})
    await this.#flushing?.catch(() => {})
    await this.#store.close()
  }

  // ───────────────────────────── connection ─────────────────────────────

  async #onHandshake(hello: ServerHello, link: RelayLink): Promise<void> {
    await this.#checkPins(hello)
    if (this.#account === null) return
    await this.#authenticate(hello, link)
    try {
      await this.#rebindIfRotated(hello, link)
    } catch (err) {
      // The account still works at its old address while the previous key is served; tried again next time.
      this.#emitRecoverable(err)
    }
  }

  /**
   * After an OPRF key rotation (a current key other than the one this account's address is derived under), moves
   * the account to its address under the current key, where contacts who discover the number now will look: the
   * number and salt open the commitment the relay certified, the relay evaluates the number under the new key,
   * and the address it answers is checked against this device's own (blinded, proven) evaluation.
   */
  async #rebindIfRotated(hello: ServerHello, link: RelayLink): Promise<void> {
    const account = this.#account
    const current = hello.oprfKeys?.[0]
    if (account === null || !this.#authenticated || !current?.publicKey || typeof current.keyId !== 'number')
      return
    if (account.keyId === current.keyId) return
    if (account.keyId === undefined && (hello.oprfKeys?.length ?? 0) <= 1) {
      // A record from before rotations existed, on a relay that has never rotated: its address is current.
      await this.#updateAccount((a) => ({ ...a, keyId: current.keyId as number }))
      return
    }
    if (account.numberSalt === undefined) {
      throw new ParleyError(
        'INVALID_STATE',
        'the relay rotated its OPRF key, and this account (activated before number commitments) must activate again',
      )
    }
    const input = numberToOprfInput(account.e164)
    const blind = oprfBlind(input)
    const frame = await link.request(
      {
        rebindAddress: {
          phoneNumber: account.e164,
          numberSalt: account.numberSalt,
          keyId: current.keyId,
          blindedNumber: blind.blindedElement,
        },
      },
      { raw: true },
    )
    const rebound = expectBody(frame, 'addressRebound')
    const address = rebound.address ?? new Uint8Array(0)
    const token = this.#ownToken(input, blind, rebound.ownNumber, current)
    if (token === undefined || !e2e.equal(addressFromToken(token), address)) {
      throw new ParleyError(
        'VERIFICATION_FAILED',
        'the relay moved this account to an address that is not its own',
      )
    }
    const moved = !e2e.equal(address, account.address)
    // Written here, not in the serial queue (which may be waiting for this very handshake): the connection is
    // already bound to the new address, and so is every later one.
    const now = this.#account
    if (now === null || !e2e.equal(now.address, account.address)) return
    const next: AccountRecord = { ...now, address, keyId: current.keyId }
    this.#account = next
    if (moved) this.#certificate = null
    await this.#store.write([
      { key: K.account, value: encodeRecord(next) },
      // The certificate names the old address.
      ...(moved ? [{ key: K.senderCertificate }] : []),
    ])
    if (!moved) return
    // Our first messages not yet answered were bound to the old address: the next send to each starts afresh.
    void this.#serial
      .run(async () => {
        const writes: StoreWrite[] = []
        for (const e of await this.#store.list('session/')) {
          const record = decodeRecord<SessionRecord>(e.value)
          if (!record.stale && e2e.awaitingReply(record.state)) {
            writes.push({ key: e.key, value: encodeRecord({ ...record, stale: true }) })
          }
        }
        if (writes.length > 0) await this.#store.write(writes)
      })
      .catch((err) => this.#emitRecoverable(err))
  }

  /** Rewrites the account record (in the serial queue). */
  async #updateAccount(change: (a: AccountRecord) => AccountRecord): Promise<void> {
    await this.#serial.run(async () => {
      if (this.#account === null) return
      const next = change(this.#account)
      await this.#store.write([{ key: K.account, value: encodeRecord(next) }])
      this.#account = next
    })
  }

  async #authenticate(hello: ServerHello, link: RelayLink): Promise<void> {
    const account = this.#account
    if (account === null || !hello.authNonce) return
    const signature = e2e.sign(
      account.identity,
      authPayload(hello.authNonce, account.address, account.deviceId, await this.#trustRoot()),
    )
    try {
      const frame = await link.request(
        { authenticate: { address: account.address, deviceId: account.deviceId, signature } },
        { raw: true },
      )
      expectBody(frame, 'authenticated')
      this.#authenticated = true
    } catch (err) {
      const e = ParleyError.fromUnknown(err)
      if (e.code === 'UNAUTHENTICATED' || e.code === 'NOT_FOUND') {
        // This device was replaced (or the account erased) while it was offline: tell the app, keep the history,
        // stop reconnecting, and keep the identity to take the number back with (as on a DeviceReplaced push).
        this.#emitError(
          new ParleyError('UNAUTHENTICATED', 'the relay no longer accepts this device', { cause: e }),
        )
        await this.#onReplaced(false)
      }
      throw e
    }
  }

  async #checkPins(hello: ServerHello): Promise<void> {
    const root = hello.trustRoot
    if (!(root instanceof Uint8Array) || root.length !== 32) {
      throw new ParleyError('UNSUPPORTED', 'the relay announced no trust root; it is too old for this SDK')
    }
    if (this.#givenTrustRoot !== undefined && !e2e.equal(this.#givenTrustRoot, root)) {
      throw new ParleyError('VERIFICATION_FAILED', "the relay's trust root is not the one this app was given")
    }
    const pinnedRoot = await this.#store.get(K.trustRoot)
    if (pinnedRoot === undefined) await this.#store.write([{ key: K.trustRoot, value: root.slice() }])
    else if (!e2e.equal(pinnedRoot, root)) {
      throw new ParleyError('VERIFICATION_FAILED', "the relay's trust root differs from the pinned one")
    }
    this.#pinnedRoot = root.slice()
    for (const key of hello.oprfKeys ?? []) {
      if (!key.publicKey || key.keyId === undefined || key.keyId === null) continue
      // Only keys the pinned root certified: a key injected by anyone else, or one past its grace period, is
      // refused before it is pinned or used (VERIFICATION_FAILED).
      verifyOprfKeyCertificate(
        key.certificate,
        root,
        { keyId: key.keyId, publicKey: key.publicKey },
        this.#clock.now(),
      )
      const pinned = await this.#store.get(K.oprfPin(key.keyId))
      if (pinned === undefined) {
        await this.#store.write([{ key: K.oprfPin(key.keyId), value: key.publicKey }])
      } else if (!e2e.equal(pinned, key.publicKey)) {
        throw new ParleyError(
          'VERIFICATION_FAILED',
          `the relay's OPRF key ${key.keyId} differs from the pinned one`,
        )
      }
    }
  }

  #afterOnline(): void {
    void this.#serial.run(() => this.#registerDeliveryToken()).catch((err) => this.#emitRecoverable(err))
    void this.#serial.run(() => this.#sync()).catch((err) => this.#emitRecoverable(err))
    this.#kickOutbox()
    void this.#serial.run(() => this.#refillPrekeys()).catch((err) => this.#emitRecoverable(err))
  }

  /** Gives the relay the verifier of this account's delivery token, once per token. */
  async #registerDeliveryToken(): Promise<void> {
    const account = this.#account
    if (account === null || !this.#authenticated || account.deliveryTokenSet !== false) return
    const token = account.deliveryToken
    if (token === undefined) return
    expectBody(
      await this.#link.request({ setDeliveryToken: { verifier: deliveryTokenVerifier(token) } }),
      'deliveryTokenSet',
    )
    // The account may have been replaced meanwhile (rotation, deactivation): record only for this token.
    const now = this.#account
    if (now === null || now.deliveryToken === undefined || !e2e.equal(now.deliveryToken, token)) return
    const next: AccountRecord = { ...now, deliveryTokenSet: true }
    await this.#store.write([{ key: K.account, value: encodeRecord(next) }])
    this.#account = next
  }

  /** The pinned trust root (set by the first handshake). */
  async #trustRoot(): Promise<Uint8Array> {
    const root = this.#givenTrustRoot ?? this.#pinnedRoot ?? (await this.#store.get(K.trustRoot))
    if (root === undefined) throw new ParleyError('INVALID_STATE', 'no relay trust root is pinned yet')
    return root
  }

  /**
   * This device's sender certificate, fetched from the relay when there is none or it expires within
   * {@link CERTIFICATE_REFRESH_MS}. Checked before use: a certificate that would make our messages refused
   * (wrong root, another key or address) is an error here, not at every recipient.
   */
  async #senderCertificate(account: AccountRecord): Promise<{ bytes: Uint8Array; cert: SenderCertificate }> {
    const now = this.#clock.now()
    const mine = (c: SenderCertificate) =>
      e2e.equal(c.identityKey, account.identity.publicKey) &&
      e2e.equal(c.address, account.address) &&
      c.deviceId === account.deviceId
    const fresh = (c: SenderCertificate) => c.expiresAtMs - now > CERTIFICATE_REFRESH_MS && mine(c)
    const cached = this.#certificate
    if (cached !== null && fresh(cached.cert)) return cached
    const trustRoot = await this.#trustRoot()
    const stored = await this.#store.get(K.senderCertificate)
    if (stored !== undefined) {
      try {
        const cert = verifySenderCertificate(stored, { trustRoot, atMs: now, skewMs: 0 })
        if (fresh(cert)) {
          this.#certificate = { bytes: stored, cert }
          return this.#certificate
        }
      } catch {}
    }
    const frame = await this.#link.request({ senderCertificateRequest: {} })
    const bytes = expectBody(frame, 'senderCertificateIssued').certificate ?? new Uint8Array(0)
    const cert = verifySenderCertificate(bytes, { trustRoot, atMs: now })
    if (!mine(cert))
      throw new ParleyError('VERIFICATION_FAILED', 'the relay issued a certificate for another device')
    await this.#store.write([{ key: K.senderCertificate, value: bytes }])
    this.#certificate = { bytes, cert }
    return this.#certificate
  }

  async #sync(): Promise<void> {
    if (!this.#authenticated) return
    const raw = await this.#store.get(K.cursor)
    const afterSeq = raw === undefined ? 0 : decodeRecord<number>(raw)
    // Deliveries arrive as pushes and queue behind this task; SyncDone only says the backlog was sent.
    void this.#link.request({ syncMailbox: { afterSeq } }).catch((err) => this.#emitRecoverable(err))
  }

  #onPush(frame: ServerFrame): void {
    if (frame.body === 'delivery' && frame.delivery) {
      const delivery = frame.delivery
      void this.#serial.run(() => this.#receive(delivery)).catch((err) => this.#emitError(err))
    } else if (frame.body === 'mailboxGap' && frame.mailboxGap) {
      const g = frame.mailboxGap
      const reason =
        g.reason === GapReason.GAP_REASON_EXPIRED
          ? 'expired'
          : g.reason === GapReason.GAP_REASON_EVICTED
            ? 'evicted'
            : 'unknown'
      this.#events.emit('gap', { firstSeq: g.firstSeq ?? 0, lastSeq: g.lastSeq ?? 0, reason })
    } else if (frame.body === 'deviceReplaced') {
      const erased = frame.deviceReplaced?.erased === true
      this.#replaced = true
      void this.#serial.run(() => this.#onReplaced(erased)).catch((err) => this.#emitError(err))
    } else if (frame.body === 'error' && frame.error) {
      const err = ParleyError.fromUnknown(e2e.wireError(frame.error))
      // The relay's UNAUTHENTICATED that follows DeviceReplaced says nothing the event did not.
      if (this.#replaced && err.code === 'UNAUTHENTICATED') return
      this.#emitError(err)
    }
  }

  /**
   * The relay says another device took the account over (or it was erased): forget the account (keeping
   * history, contacts and the outbox), stop reconnecting, and tell the app.
   */
  async #onReplaced(erased: boolean): Promise<void> {
    const account = this.#account
    if (account === null) return
    this.#account = null
    this.#authenticated = false
    // Replaced (not erased): the relay keeps the mail that was waiting for this identity, for this device to take
    // the number back with it.
    const previous: PreviousRecord = { e164: account.e164, identity: account.identity }
    await this.#store.write([
      { key: K.account },
      erased ? { key: K.previous } : { key: K.previous, value: encodeRecord(previous) },
    ])
    this.#link.stop()
    this.#anonymous.stop()
    this.#events.emit('deviceReplaced', { erased })
  }

  // ───────────────────────────── receiving ─────────────────────────────

  /**
   * Handles one delivery; resolves whether a message was shown. Order of checks: the envelope must open and
   * its certificate prove the sender before anything else happens; a message from a changed identity of a
   * verified contact is held; only then is a session used, made or promoted. A refused message changes
   * nothing but the counters.
   */
  async #receive(delivery: NonNullable<ServerFrame['delivery']>): Promise<boolean> {
    const account = this.#account
    if (account === null) return false
    const seq = delivery.seq ?? 0
    const ack = () => {
      this.#ack(seq)
      return false
    }
    const envelope = delivery.envelope ?? new Uint8Array(0)
    const receivedAtMs = delivery.receivedAtMs ?? this.#clock.now()
    let opened: e2e.Opened
    try {
      opened = e2e.open(account.identity, envelope, await this.#trustRoot(), receivedAtMs)
    } catch (err) {
      const e = ParleyError.fromUnknown(err, 'DECRYPT_FAILED')
      if (e.code === 'SENDER_UNVERIFIED') this.#stats.senderUnverified++
      this.#emitError(e)
      return ack()
    }
    await this.#followSender(opened)
    const senderHex = toHex(opened.senderAddress)
    const verified = await this.#store.get(K.verified(senderHex))
    if (verified !== undefined && !e2e.equal(verified, opened.senderIdentityKey)) {
      await this.#hold(senderHex, opened, envelope, receivedAtMs)
      return ack()
    }
    const existing = await this.#session(opened.senderAddress)
    const writes: StoreWrite[] = []
    let result: e2e.Decrypted
    try {
      result = await e2e.decrypt({
        ours: account,
        current: existing === null ? null : existing.state,
        previous: existing?.previous ?? [],
        opened,
        loadPrekey: async (kind, id) => this.#store.get(K.prekey(kind, id)),
        replayed: async (spk, baseKey) =>
          (await this.#store.get(K.replay(spk, toHex(baseKey)))) !== undefined,
      })
    } catch (err) {
      const e = ParleyError.fromUnknown(err, 'DECRYPT_FAILED')
      if (e.code === 'DUPLICATE' && opened.message.kind === 'prekey') this.#stats.replaysRefused++
      if (e.code !== 'DUPLICATE') this.#emitError(e)
      return ack()
    }
    const content = result.content
    const idHex = toHex(content.messageId)
    const record = this.#sessionAfter(existing, opened, result)
    if ((await this.#store.get(K.seen(idHex))) !== undefined) {
      // Same message again (a resend after a lost ACCEPTED): keep the session step, deliver nothing.
      await this.#store.write([{ key: K.session(senderHex), value: encodeRecord(record) }])
      return ack()
    }
    const identityChanged = await this.#identityChanged(senderHex, opened.senderIdentityKey)
    const from = await this.#provenSender(opened, writes)
    const message: StoredMessage = {
      id: idHex,
      from,
      fromAddress: senderHex,
      text: content.text,
      sentAt: content.sentAtMs,
      receivedAt: receivedAtMs,
    }
    for (const id of result.consumedOneTimePrekeys) writes.push({ key: K.prekey('otp', id) })
    for (const id of result.consumedKemPrekeys) writes.push({ key: K.prekey('kem', id) })
    if (result.replayKey) {
      const r = result.replayKey
      writes.push({ key: K.replay(r.signedPrekeyId, toHex(r.baseKey)), value: encodeRecord(receivedAtMs) })
    }
    if (content.deliveryToken) writes.push({ key: K.peerToken(senderHex), value: content.deliveryToken })
    writes.push(
      { key: K.session(senderHex), value: encodeRecord(record) },
      { key: K.seen(idHex), value: encodeRecord(receivedAtMs) },
      { key: K.inbox(receivedAtMs, idHex), value: encodeRecord(message) },
      { key: K.identity(senderHex), value: opened.senderIdentityKey },
    )
    // One atomic write: the ratchet step, the dedupe marker and the message stand or fall together.
    await this.#store.write(writes)
    if (identityChanged) this.#emitIdentityChanged(from, opened.senderAddress, opened.senderIdentityKey)
    const incoming = toIncoming(message)
    this.#events.emit('message', incoming)
    for (const push of this.#iterators) push(incoming)
    if (result.consumedOneTimePrekeys.length > 0 || result.consumedKemPrekeys.length > 0) {
      void this.#serial.run(() => this.#refillPrekeys()).catch((err) => this.#emitRecoverable(err))
    }
    ack()
    return true
  }

  /**
   * Mail from an address this device has no session with, whose sender proves a number we know under another
   * address with the same identity key: the contact moved (an OPRF key rotation). Its session, identity, verified
   * mark, delivery token and held mail follow it to the new address. A new identity is a new device, not a move.
   * Called from `#receive`, in the serial queue.
   */
  async #followSender(opened: e2e.Opened): Promise<void> {
    const e164 = opened.senderNumber
    if (e164 === undefined) return
    const newHex = toHex(opened.senderAddress)
    if ((await this.#store.get(K.session(newHex))) !== undefined) return
    const contact = await this.#contact(e164)
    if (contact === null || e2e.equal(contact.address, opened.senderAddress)) return
    const oldHex = toHex(contact.address)
    const identity = await this.#store.get(K.identity(oldHex))
    if (identity === undefined || !e2e.equal(identity, opened.senderIdentityKey)) return
    // #receive runs in the serial queue already.
    await this.#moveContact(contact, opened.senderAddress, undefined)
  }

  /**
   * A send to `e164` at `address` found nobody there: looks the number up again under the current OPRF key and,
   * when it is registered at another address, moves the contact there.
   * @returns the new address, and whether the queued message must be encrypted again (its session was still
   *   waiting for a first reply, bound to the old address); null when the contact did not move
   */
  async #followContact(
    e164: string,
    address: Uint8Array,
  ): Promise<{ address: Uint8Array; restart: boolean } | null> {
    let contact = await this.#contact(e164)
    const current = this.#link.hello?.oprfKeys?.[0]?.keyId
    if (contact?.registered && !e2e.equal(contact.address, address)) {
      // Already followed (an earlier entry of the outbox, or mail from the contact).
    } else {
      if (contact !== null && contact.keyId !== undefined && contact.keyId === current) return null
      await this.#lookup([e164])
      contact = await this.#contact(e164)
      if (contact === null || !contact.registered || e2e.equal(contact.address, address)) return null
    }
    const moved = contact
    return this.#serial.run(async () => {
      const old = await this.#session(address)
      const restart = old !== null && !old.stale && e2e.awaitingReply(old.state)
      await this.#moveContact({ ...moved, address }, moved.address, moved.keyId, restart)
      return { address: moved.address, restart }
    })
  }

  /** Moves everything kept about a contact from its old address to `to` (in the serial queue). */
  async #moveContact(
    contact: ContactRecord,
    to: Uint8Array,
    keyId: number | undefined,
    retire = false,
  ): Promise<void> {
    const from = toHex(contact.address)
    const next = toHex(to)
    if (from === next) return
    const writes: StoreWrite[] = []
    const move = async (oldKey: string, newKey: string, change?: (v: Uint8Array) => Uint8Array) => {
      const value = await this.#store.get(oldKey)
      if (value === undefined) return
      writes.push({ key: oldKey }, { key: newKey, value: change ? change(value) : value })
    }
    await move(K.session(from), K.session(next), (v) =>
      retire ? encodeRecord({ ...decodeRecord<SessionRecord>(v), stale: true }) : v,
    )
    await move(K.identity(from), K.identity(next))
    await move(K.verified(from), K.verified(next))
    await move(K.peerToken(from), K.peerToken(next))
    await move(K.byAddress(from), K.byAddress(next))
    for (const e of await this.#store.list(`held/${from}/`)) {
      writes.push(
        { key: e.key },
        { key: `held/${next}/${e.key.slice(`held/${from}/`.length)}`, value: e.value },
      )
    }
    const record: ContactRecord = {
      e164: contact.e164,
      address: to,
      registered: true,
      checkedAt: this.#clock.now(),
      ...(keyId !== undefined ? { keyId } : {}),
    }
    writes.push({ key: K.contact(contact.e164), value: encodeRecord(record) })
    writes.push({ key: K.byAddress(next), value: encodeRecord(contact.e164) })
    await this.#store.write(writes)
  }

  /** The contact's session record after a successful decrypt: the session that decrypted is current. */
  #sessionAfter(existing: SessionRecord | null, opened: e2e.Opened, result: e2e.Decrypted): SessionRecord {
    // A decrypt under an older session of the same device keeps the record's device and staleness.
    const sameDevice = existing !== null && existing.deviceId === opened.senderDeviceId
    return {
      deviceId: opened.senderDeviceId,
      identityKey: opened.senderIdentityKey,
      state: result.state,
      previous: result.previous,
      ...(sameDevice && existing.stale ? { stale: true } : {}),
    }
  }

  /**
   * Keeps a message from a verified contact whose identity changed, unopened, until the app approves the new
   * identity; tells the app once per new identity.
   */
  async #hold(
    senderHex: string,
    opened: e2e.Opened,
    envelope: Uint8Array,
    receivedAtMs: number,
  ): Promise<void> {
    const held = await this.#store.list(`held/${senderHex}/`)
    const writes: StoreWrite[] = []
    if (held.length >= MAX_HELD_PER_CONTACT) writes.push({ key: held[0]!.key })
    const last = held.at(-1)
    const n = last === undefined ? 1 : Number(last.key.slice(last.key.lastIndexOf('/') + 1)) + 1
    const record: HeldRecord = { envelope: envelope.slice(), receivedAtMs }
    writes.push({ key: K.held(senderHex, n), value: encodeRecord(record) })
    const announced = await this.#store.get(K.identity(senderHex))
    const first = announced === undefined || !e2e.equal(announced, opened.senderIdentityKey)
    if (first) writes.push({ key: K.identity(senderHex), value: opened.senderIdentityKey })
    await this.#store.write(writes)
    this.#stats.held++
    if (first) {
      const known = await this.#store.get(K.byAddress(senderHex))
      const number = known === undefined ? null : decodeRecord<string>(known)
      this.#emitIdentityChanged(number, opened.senderAddress, opened.senderIdentityKey, true)
    }
  }

  /** Queues an ack; acks go out in batches so a burst of mail costs few frames. */
  #ack(seq: number): void {
    if (seq <= 0) return
    this.#acks.push(seq)
    if (this.#acks.length >= ACK_BATCH) this.#flushAcks()
    else if (this.#ackTimer === null)
      this.#ackTimer = this.#clock.setTimeout(() => this.#flushAcks(), ACK_DELAY_MS)
  }

  #flushAcks(): void {
    if (this.#ackTimer !== null) this.#clock.clearTimeout(this.#ackTimer)
    this.#ackTimer = null
    const seqs = this.#acks.splice(0, ACK_BATCH)
    if (seqs.length === 0) return
    void this.#link
      .request({ ackMessages: { seqs } }, { raw: true })
      .then(async () => {
        const max = Math.max(...seqs)
        const raw = await this.#store.get(K.cursor)
        const cursor = raw === undefined ? 0 : decodeRecord<number>(raw)
        if (max > cursor) await this.#store.write([{ key: K.cursor, value: encodeRecord(max) }])
      })
      .catch((err) => {
        const e = ParleyError.fromUnknown(err)
        if (e.code === 'RATE_LIMITED' && !this.#closed) {
          // The relay paces acks per connection: these go again once it allows, before newer ones.
          this.#acks.unshift(...seqs)
          if (this.#ackTimer !== null) this.#clock.clearTimeout(this.#ackTimer)
          this.#ackTimer = this.#clock.setTimeout(() => this.#flushAcks(), e.retryAfterMs ?? 100)
          return
        }
        // Not acked: the relay redelivers after reconnecting and the inbox's dedupe drops the copy.
        this.#emitRecoverable(e)
      })
    if (this.#acks.length > 0) this.#flushAcks()
  }

  /** Whether `identityKey` differs from the one last seen for the address (none seen yet: not a change). */
  async #identityChanged(addressHex: string, identityKey: Uint8Array): Promise<boolean> {
    const previous = await this.#store.get(K.identity(addressHex))
    return previous !== undefined && !e2e.equal(previous, identityKey)
  }

  #emitIdentityChanged(
    number: string | null,
    address: Uint8Array,
    identityKey: Uint8Array,
    held = false,
  ): void {
    const account = this.#requireAccount()
    this.#events.emit('identityChanged', {
      number,
      address: toHex(address),
      safetyNumber: e2e.safetyNumber(account.identity.publicKey, account.address, identityKey, address),
      held,
    })
  }

  /**
   * The number to show for a proven sender: the one this device resolved to the address itself (discovery,
   * through the OPRF), else the one the sender proved with its certified commitment. Never a bare claim, and
   * never an OPRF evaluation spent on a sender's say-so.
   */
  async #provenSender(opened: e2e.Opened, writes: StoreWrite[]): Promise<string | null> {
    const addressHex = toHex(opened.senderAddress)
    const raw = await this.#store.get(K.byAddress(addressHex))
    if (raw !== undefined) return decodeRecord<string>(raw)
    const e164 = opened.senderNumber
    if (e164 === undefined) return null
    const contact = await this.#contact(e164)
    // Our own discovery said this number has another address: the relay contradicts itself; show no number.
    if (contact !== null && !e2e.equal(contact.address, opened.senderAddress)) return null
    if (contact === null || !contact.registered) {
      const record: ContactRecord = {
        e164,
        address: opened.senderAddress,
        registered: true,
        checkedAt: this.#clock.now(),
      }
      writes.push({ key: K.contact(e164), value: encodeRecord(record) })
    }
    writes.push({ key: K.byAddress(addressHex), value: encodeRecord(e164) })
    return e164
  }

  // ───────────────────────────── sending ─────────────────────────────

  #kickOutbox(): void {
    if (this.#account === null || this.#closed) return
    if (this.#flushing !== null) {
      // The running flush may already have taken its last look at the outbox (or at a deferral that just ended).
      this.#kickAgain = true
      return
    }
    this.#kickAgain = false
    this.#flushing = this.#flushOutbox()
      .catch((err) => this.#emitRecoverable(err))
      .finally(() => {
        this.#flushing = null
        if (this.#kickAgain) this.#kickOutbox()
      })
  }

  async #flushOutbox(): Promise<void> {
    // Up to OUTBOX_WINDOW sends in flight. Encryption still runs in queue order (#serial) and the relay handles
    // a connection's frames in order, so mailboxes still receive queue order; what changes is that encrypting
    // the next message overlaps the relay's durable commit of the previous ones instead of alternating with it
    // (one at a time capped the SDK at ~300 msg/s on loopback, bench/README.md). Each entry starts once per flush,
    // except one refused for a full mailbox, which starts again when its recipient's deferral ends.
    //
    // A recipient whose mailbox is full is passed over, not the whole outbox: its entries stay queued (in order:
    // none starts while an earlier one of the same recipient waits) and the rest go on. When its deferral ends,
    // its oldest entry goes alone first, and the others follow only once the relay has accepted it.
    const inFlight = new Map<string, Promise<void>>()
    const started = new Set<string>()
    /** The recipient (address hex) of each entry looked at, by key; an entry's recipient never changes. */
    const recipients = new Map<string, string>()
    /** Recipients whose deferral ended and whose oldest entry is in flight alone. */
    const probing = new Set<string>()
    /** Recipients passed over since the outbox was last read: none of their later entries may go first. */
    let passedOver = new Set<string>()
    const recipientOf = (e: { key: string; value: Uint8Array }): string => {
      let to = recipients.get(e.key)
      if (to === undefined) {
        to = toHex(decodeRecord<OutboxRecord>(e.value).address)
        recipients.set(e.key, to)
      }
      return to
    }
    const waits = (to: string): boolean => {
      if (passedOver.has(to) || probing.has(to) || (this.#deferred.get(to) ?? 0) > this.#clock.now()) {
        passedOver.add(to)
        return true
      }
      return false
    }
    let queue: { key: string; value: Uint8Array }[] = []
    let halt = false
    while (!halt && !this.#closed && this.#account !== null && this.#link.state === 'online') {
      if (inFlight.size >= OUTBOX_WINDOW) {
        await Promise.race(inFlight.values())
        continue
      }
      const next = queue.shift()
      if (next === undefined) {
        const all = await this.#store.list('outbox/')
        queue = all.filter((e) => !started.has(e.key))
        passedOver = new Set()
        if (this.#deferred.size > 0 || probing.size > 0) {
          queue = queue.filter((e) => !waits(recipientOf(e)))
          this.#forgetDeferrals(new Set(all.map(recipientOf)))
        }
        if (queue.length > 0) continue
        if (inFlight.size === 0) return
        await Promise.race(inFlight.values())
        continue
      }
      const key = next.key
      const entry = decodeRecord<OutboxRecord>(next.value)
      const to = toHex(entry.address)
      recipients.set(key, to)
      if (waits(to)) continue
      started.add(key)
      // A deferral that has ended but is still on record: this entry is the probe of the recipient's mailbox.
      const probe = this.#deferred.has(to)
      if (probe) probing.add(to)
      const sending = this.#deliver(key, entry)
        .then(() => {
          if (probe) this.#deferred.delete(to)
        })
        .catch(async (err) => {
          const outcome = await this.#sendFailed(key, entry, err)
          if (outcome === 'halt') halt = true
          else if (outcome === 'defer') started.delete(key)
        })
        .finally(() => {
          inFlight.delete(key)
          if (probe) probing.delete(to)
        })
      inFlight.set(key, sending)
    }
    await Promise.all(inFlight.values())
  }

  /**
   * Handles a send that failed: `halt` when the whole outbox must stop until a retry timer or a reconnect,
   * `defer` when only the entry's recipient waits (its mailbox is full), `dropped` when the entry is gone.
   */
  async #sendFailed(key: string, entry: OutboxRecord, err: unknown): Promise<'halt' | 'defer' | 'dropped'> {
    const e = ParleyError.fromUnknown(err)
    if (e.code === 'MAILBOX_FULL') {
      // Nothing is dropped, on either side: tried again when the relay says the recipient may have read some
      // mail. Kept across reconnects and new sends (the mailbox is no emptier for them), but never for longer
      // than MAX_DEFERRAL_MS at a time.
      this.#defer(toHex(entry.address), e.retryAfterMs)
      return 'defer'
    }
    if (e.code === 'RATE_LIMITED' || (e.code === 'UNAVAILABLE' && e.retryAfterMs !== undefined)) {
      // Account-wide: retried when the relay's quota allows or the unidentified connection is back; and on the
      // next reconnect or send.
      if (this.#retryTimer === null) {
        this.#retryTimer = this.#clock.setTimeout(() => {
          this.#retryTimer = null
          this.#kickOutbox()
        }, e.retryAfterMs ?? 1000)
      }
      return 'halt'
    }
    if (e.code === 'UNAVAILABLE' || e.code === 'TIMEOUT' || e.code === 'CLOSED') return 'halt' // retried on reconnect
    // Permanent: tell the app and drop the entry so the queue moves on.
    await this.#store.write([{ key }])
    this.#events.emit('sendFailed', { id: entry.id, to: entry.to, error: e })
    return 'dropped'
  }

  /** Holds back a recipient's queued messages until `retryAfterMs` (bounded) from now, and schedules the retry. */
  #defer(to: string, retryAfterMs: number | undefined): void {
    const asked = Number.isFinite(retryAfterMs) ? (retryAfterMs as number) : MAILBOX_FULL_RETRY_MS
    const ms = Math.min(Math.max(asked, MIN_DEFERRAL_MS), MAX_DEFERRAL_MS)
    const until = this.#clock.now() + ms
    this.#deferred.set(to, Math.max(this.#deferred.get(to) ?? 0, until))
    this.#scheduleDeferralEnd()
  }

  /** Keeps one timer, for the earliest deferral still running, that flushes the outbox when it ends. */
  #scheduleDeferralEnd(): void {
    const now = this.#clock.now()
    let due = Number.POSITIVE_INFINITY
    for (const until of this.#deferred.values()) if (until > now && until < due) due = until
    if (due === Number.POSITIVE_INFINITY) return
    if (this.#deferralTimer !== null) {
      if (this.#deferralDue <= due) return
      this.#clock.clearTimeout(this.#deferralTimer)
    }
    this.#deferralDue = due
    this.#deferralTimer = this.#clock.setTimeout(() => {
      this.#deferralTimer = null
      this.#scheduleDeferralEnd() // the next deferral, or this one again if the timer fired a little early
      this.#kickOutbox()
    }, due - now)
  }

  /** Forgets the deferrals that have ended for recipients with nothing left in the outbox. */
  #forgetDeferrals(queued: Set<string>): void {
    const now = this.#clock.now()
    for (const [to, until] of this.#deferred) if (until <= now && !queued.has(to)) this.#deferred.delete(to)
  }

  async #deliver(key: string, entry: OutboxRecord): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        // A new session fetches the recipient's bundle here: NOT_FOUND from it is followed like one from the send.
        if (entry.message === undefined) entry = await this.#serial.run(() => this.#encryptEntry(key, entry))
        const account = this.#requireAccount()
        const envelope = await this.#sealEntry(account, entry)
        const base = {
          recipientAddress: entry.address,
          recipientDeviceId: entry.deviceId ?? 0,
          messageId: fromHex(entry.id),
          envelope,
        }
        const token = await this.#store.get(K.peerToken(toHex(entry.address)))
        if (token !== undefined && entry.message?.kind === 'ratchet') {
          // The contact has written to us and gave us its token: the relay need not learn who sends this.
          if (await this.#sendUnidentified(base, token, entry.address)) {
            this.#stats.unidentifiedSent++
            await this.#store.write([{ key }])
            this.#events.emit('delivered', { id: entry.id, to: entry.to })
            return
          }
        }
        expectBody(await this.#link.request({ sendMessage: base }), 'messageAccepted')
        await this.#store.write([{ key }])
        this.#events.emit('delivered', { id: entry.id, to: entry.to })
        return
      } catch (err) {
        const e = ParleyError.fromUnknown(err)
        if (e.code === 'NOT_FOUND' && attempt === 0) {
          // Nobody at the address any more: after an OPRF key rotation the contact may have moved to its address
          // under the new key. Followed there (the same session, unless it still waits for a first reply).
          const moved = await this.#followContact(entry.to, entry.address)
          if (moved === null) throw e
          const restart = moved.restart
          entry = restart
            ? {
                ...entry,
                address: moved.address,
                message: undefined,
                recipientIdentityKey: undefined,
                deviceId: undefined,
              }
            : { ...entry, address: moved.address }
          await this.#store.write([{ key, value: encodeRecord(entry) }])
          continue
        }
        if (e.code !== 'CONFLICT' || attempt > 0) throw e
        // The recipient re-activated on a new device: start a new session and encrypt again (the old one stays
        // archived behind it, for mail from the old device still in flight).
        await this.#serial.run(() => this.#retireSession(entry.address))
        entry = { ...entry, message: undefined, recipientIdentityKey: undefined, deviceId: undefined }
      }
    }
  }

  /**
   * Sends by unidentified delivery on the connection that never authenticates. Resolves false when the
   * recipient no longer accepts the token (rotated, or re-activated): the token is forgotten and the caller
   * sends on the authenticated path instead.
   */
  async #sendUnidentified(
    base: {
      recipientAddress: Uint8Array
      recipientDeviceId: number
      messageId: Uint8Array
      envelope: Uint8Array
    },
    token: Uint8Array,
    address: Uint8Array,
  ): Promise<boolean> {
    if (this.#anonymousIdle !== null) this.#clock.clearTimeout(this.#anonymousIdle)
    this.#anonymousIdle = null
    this.#anonymousInFlight++
    this.#anonymous.start()
    try {
      await this.#anonymous.waitOnline()
      const frame = await this.#anonymous.request({ unidentifiedSend: { ...base, deliveryToken: token } })
      expectBody(frame, 'messageAccepted')
      return true
    } catch (err) {
      const e = ParleyError.fromUnknown(err)
      if (e.code === 'FORBIDDEN') {
        await this.#store.write([{ key: K.peerToken(toHex(address)) }])
        return false
      }
      // Not the main connection's trouble: retry on a timer (a reconnect of the main link may never come), and
      // never fall back to naming the sender just because this connection failed.
      if (e.code === 'UNAVAILABLE' || e.code === 'TIMEOUT' || e.code === 'CLOSED') {
        throw new ParleyError('UNAVAILABLE', 'the unidentified connection is unavailable', {
          retryAfterMs: e.retryAfterMs ?? 2000,
          cause: e,
        })
      }
      throw e
    } finally {
      // Closed once idle: an open socket that never authenticates is what the relay closes anyway.
      if (--this.#anonymousInFlight === 0 && !this.#closed) {
        this.#anonymousIdle = this.#clock.setTimeout(() => {
          this.#anonymousIdle = null
          if (this.#anonymousInFlight === 0) this.#anonymous.stop()
        }, ANONYMOUS_IDLE_MS)
      }
    }
  }

  /** Seals an encrypted outbox entry with the current certificate (and the number, when it is certified). */
  async #sealEntry(account: AccountRecord, entry: OutboxRecord): Promise<Uint8Array> {
    const { bytes, cert } = await this.#senderCertificate(account)
    const salt = account.numberSalt
    // Stating a number the certificate does not commit to would make every recipient refuse the message.
    const number =
      salt !== undefined && opensNumberCommitment(cert, account.e164, salt)
        ? { e164: account.e164, salt }
        : undefined
    return e2e.seal({
      ours: account,
      recipientIdentityKey: entry.recipientIdentityKey!,
      message: entry.message!,
      certificate: bytes,
      number,
    })
  }

  /** Keeps a contact's session record but marks it replaced: the next send starts a new session. */
  async #retireSession(address: Uint8Array): Promise<void> {
    const record = await this.#session(address)
    if (record === null) return
    await this.#store.write([
      { key: K.session(toHex(address)), value: encodeRecord({ ...record, stale: true }) },
    ])
  }

  async #encryptEntry(key: string, entry: OutboxRecord): Promise<OutboxRecord> {
    const account = this.#requireAccount()
    const addressHex = toHex(entry.address)
    let session = await this.#session(entry.address)
    let identityChanged = false
    if (session === null || session.stale === true) {
      const frame = await this.#link.request({ prekeyBundleQuery: { address: entry.address } })
      const bundle = expectBody(frame, 'prekeyBundle')
      const started = e2e.initiate(account, entry.address, bundle, this.#random)
      const verified = await this.#store.get(K.verified(addressHex))
      if (verified !== undefined && !e2e.equal(verified, started.identityKey)) {
        throw new ParleyError(
          'IDENTITY_UNTRUSTED',
          "the contact's verified identity changed; approveIdentity() after comparing safety numbers",
        )
      }
      identityChanged = await this.#identityChanged(addressHex, started.identityKey)
      // Earlier sessions (another identity, or mail still in flight) stay archived behind the new one.
      const old = session
      session = {
        deviceId: started.deviceId,
        identityKey: started.identityKey,
        state: started.state,
        previous:
          old === null ? [] : [old.state, ...(old.previous ?? [])].slice(0, e2e.MAX_PREVIOUS_SESSIONS),
      }
    }
    const token = account.deliveryTokenSet === true ? account.deliveryToken : undefined
    const sealed = e2e.encrypt({
      session: session.state,
      content: {
        messageId: fromHex(entry.id),
        sentAtMs: entry.sentAt,
        text: entry.text,
        ...(token === undefined ? {} : { deliveryToken: token }),
      },
      random: this.#random,
    })
    const updated: OutboxRecord = {
      ...entry,
      message: sealed.message,
      recipientIdentityKey: session.identityKey,
      deviceId: session.deviceId,
    }
    const record: SessionRecord = { ...session, state: sealed.state }
    // The ratchet step and the message that used it are persisted together, so a retry resends the same message.
    await this.#store.write([
      { key: K.session(addressHex), value: encodeRecord(record) },
      { key, value: encodeRecord(updated) },
      { key: K.byAddress(addressHex), value: encodeRecord(entry.to) },
      { key: K.identity(addressHex), value: session.identityKey },
    ])
    if (identityChanged) this.#emitIdentityChanged(entry.to, entry.address, session.identityKey)
    return updated
  }

  // ───────────────────────────── discovery ─────────────────────────────

  /** Resolves numbers to registration status, caching OPRF tokens per key epoch and contacts. */
  async #lookup(e164s: string[], signal?: AbortSignal): Promise<Map<string, boolean>> {
    const out = new Map<string, boolean>()
    if (e164s.length === 0) return out
    const keyId = this.#link.hello?.oprfKeys?.[0]?.keyId ?? undefined
    const tokens = await this.#tokens(e164s, signal)
    const bits = this.#link.hello?.limits?.membershipPrefixBits || 16
    const addresses = tokens.map((t) => addressFromToken(t))
    const prefixes = new Map<string, Uint8Array>()
    for (const a of addresses) {
      const p = addressPrefix(a, bits)
      prefixes.set(toHex(p), p)
    }
    const registered = new Set<string>()
    const batch = this.#link.hello?.limits?.maxDiscoveryBatch || 500
    const all = [...prefixes.values()]
    for (let i = 0; i < all.length; i += batch) {
      const frame = await this.#link.request(
        { membershipQuery: { prefixBits: bits, prefixes: all.slice(i, i + batch) } },
        { signal },
      )
      for (const bucket of expectBody(frame, 'membershipResult').buckets ?? []) {
        for (const a of bucket.addresses ?? []) registered.add(toHex(a))
      }
    }
    const now = this.#clock.now()
    const writes: StoreWrite[] = []
    e164s.forEach((e164, i) => {
      const address = addresses[i]!
      const isRegistered = registered.has(toHex(address))
      out.set(e164, isRegistered)
      const record: ContactRecord = {
        e164,
        address,
        registered: isRegistered,
        checkedAt: now,
        ...(typeof keyId === 'number' ? { keyId } : {}),
      }
      writes.push({ key: K.contact(e164), value: encodeRecord(record) })
      if (isRegistered) writes.push({ key: K.byAddress(toHex(address)), value: encodeRecord(e164) })
    })
    await this.#store.write(writes)
    return out
  }

  /**
   * The token of our own number from the evaluation that came with `Activated`, checked against the pinned
   * OPRF key like any other (`oprfFinalize` verifies the proof); undefined when the relay sent none.
   */
  #ownToken(
    input: Uint8Array,
    blinded: OprfBlinded | undefined,
    evaluation: NonNullable<ServerFrame['activated']>['ownNumber'],
    key = this.#link.hello?.oprfKeys?.[0],
  ): Uint8Array | undefined {
    if (!blinded || !evaluation || !key?.publicKey || evaluation.keyId !== key.keyId) return undefined
    const [token] = oprfFinalize(
      [input],
      [blinded.blind],
      evaluation.evaluatedElements ?? [],
      [blinded.blindedElement],
      evaluation.proof ?? new Uint8Array(0),
      key.publicKey,
    )
    return token
  }

  /** OPRF tokens for E.164 numbers under the relay's current key, evaluating only those not cached. */
  async #tokens(e164s: string[], signal?: AbortSignal): Promise<Uint8Array[]> {
    await this.#link.waitOnline(signal)
    const key = this.#link.hello?.oprfKeys?.[0]
    if (!key?.publicKey || key.keyId === undefined || key.keyId === null) {
      throw new ParleyError('UNSUPPORTED', 'the relay announced no OPRF key')
    }
    const keyId = key.keyId
    const pinned = await this.#store.get(K.oprfPin(keyId))
    if (pinned === undefined || !e2e.equal(pinned, key.publicKey)) {
      throw new ParleyError('VERIFICATION_FAILED', 'the relay OPRF key is not the pinned one')
    }
    const tokens = new Map<string, Uint8Array>()
    const missing: string[] = []
    for (const e164 of e164s) {
      const cached = await this.#store.get(K.token(keyId, e164))
      if (cached === undefined) missing.push(e164)
      else tokens.set(e164, cached)
    }
    // Pipelined: while the relay evaluates one chunk, this thread blinds the next and finalises the last, so
    // the client's and the relay's arithmetic overlap instead of taking turns.
    const size = Math.min(this.#link.hello?.limits?.maxDiscoveryBatch || 500, OPRF_PIPELINE_CHUNK)
    type InFlight = {
      chunk: string[]
      inputs: Uint8Array[]
      blinded: OprfBlinded[]
      reply: Promise<ServerFrame>
    }
    const finish = async (f: InFlight): Promise<void> => {
      const evaluated = expectBody(await f.reply, 'oprfEvaluated')
      if (evaluated.keyId !== keyId) {
        throw new ParleyError('VERIFICATION_FAILED', 'the relay evaluated with another key')
      }
      const outputs = oprfFinalize(
        f.inputs,
        f.blinded.map((b) => b.blind),
        evaluated.evaluatedElements ?? [],
        f.blinded.map((b) => b.blindedElement),
        evaluated.proof ?? new Uint8Array(0),
        pinned,
      )
      const writes: StoreWrite[] = []
      f.chunk.forEach((e164, j) => {
        tokens.set(e164, outputs[j]!)
        writes.push({ key: K.token(keyId, e164), value: outputs[j]! })
      })
      await this.#store.write(writes)
    }
    // Tokens finished before a failure stay cached; the rest are asked again next time.
    let previous: InFlight | null = null
    for (let i = 0; i < missing.length; i += size) {
      const chunk = missing.slice(i, i + size)
      const inputs = chunk.map((n) => numberToOprfInput(n))
      const blinded = inputs.map((input) => oprfBlind(input))
      const reply = this.#requestBusyAware(
        { oprfEvaluate: { keyId, blindedElements: blinded.map((b) => b.blindedElement) } },
        signal,
      )
      reply.catch(() => {}) // awaited in finish(); must not count as unhandled while the previous one finishes
      if (previous !== null) await finish(previous)
      previous = { chunk, inputs, blinded, reply }
    }
    if (previous !== null) await finish(previous)
    return e164s.map((n) => tokens.get(n)!)
  }

  /**
   * A request that a busy relay may refuse with `UNAVAILABLE` + `retryAfterMs` (its OPRF workers are
   * saturated): waits as told and tries again, a few times, before giving up.
   */
  async #requestBusyAware(
    body: Parameters<RelayLink['request']>[0],
    signal?: AbortSignal,
  ): Promise<ServerFrame> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#link.request(body, { signal })
      } catch (err) {
        const e = ParleyError.fromUnknown(err)
        if (e.code !== 'UNAVAILABLE' || e.retryAfterMs === undefined || attempt >= BUSY_RETRIES) throw e
        await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, e.retryAfterMs ?? 0))
        if (signal?.aborted) throw new ParleyError('ABORTED', 'aborted', { cause: signal.reason })
      }
    }
  }

  // ───────────────────────────── prekeys ─────────────────────────────

  async #refillPrekeys(): Promise<void> {
    const account = this.#account
    if (account === null || !this.#authenticated) return
    await this.#rotateSignedPrekey(account)
    const frame = await this.#link.request({ prekeyCountQuery: {} })
    const count = expectBody(frame, 'prekeyCount')
    const needOtp = (count.oneTimeCount ?? 0) < ONE_TIME_PREKEY_LOW_WATER
    const needKem = (count.kemOneTimeCount ?? 0) < KEM_PREKEY_LOW_WATER
    if (!needOtp && !needKem) return
    const rawMeta = await this.#store.get(K.prekeyMeta)
    if (rawMeta === undefined) return
    const meta = decodeRecord<PrekeyMeta>(rawMeta)
    const refill = e2e.generateRefill(
      account.identity,
      this.#random,
      needOtp ? { startId: meta.nextOtpId, count: ONE_TIME_PREKEY_BATCH } : null,
      needKem ? { startId: meta.nextKemId, count: KEM_PREKEY_BATCH } : null,
    )
    const nextMeta: PrekeyMeta = {
      ...meta,
      nextOtpId: needOtp ? meta.nextOtpId + ONE_TIME_PREKEY_BATCH : meta.nextOtpId,
      nextKemId: needKem ? meta.nextKemId + KEM_PREKEY_BATCH : meta.nextKemId,
    }
    // Secrets first, then the upload: a crash in between leaves unused secrets, never unusable public keys.
    await this.#store.write([...refill.secrets, { key: K.prekeyMeta, value: encodeRecord(nextMeta) }])
    await this.#link.request({ prekeyUpload: refill.upload })
  }

  /** Replaces the signed prekey once a week (docs/architecture.md §6); old ones stay for mail in flight, then go. */
  async #rotateSignedPrekey(account: AccountRecord): Promise<void> {
    const rawMeta = await this.#store.get(K.prekeyMeta)
    if (rawMeta === undefined) return
    const meta = decodeRecord<PrekeyMeta>(rawMeta)
    const now = this.#clock.now()
    const retired = meta.retiredSignedPrekeys ?? []
    const expired = retired.filter((r) => now - r.retiredAt > SIGNED_PREKEY_GRACE_MS)
    if (
      meta.signedPrekeyAt !== undefined &&
      now - meta.signedPrekeyAt < SIGNED_PREKEY_ROTATE_MS &&
      expired.length === 0
    ) {
      return
    }
    const rotate = meta.signedPrekeyAt === undefined || now - meta.signedPrekeyAt >= SIGNED_PREKEY_ROTATE_MS
    const next = rotate
      ? e2e.generateSignedPrekeyWrite(account.identity, meta.signedPrekeyId + 1, this.#random)
      : null
    const nextMeta: PrekeyMeta = {
      ...meta,
      signedPrekeyId: next === null ? meta.signedPrekeyId : meta.signedPrekeyId + 1,
      signedPrekeyAt: next === null ? meta.signedPrekeyAt : now,
      retiredSignedPrekeys: [
        ...retired.filter((r) => !expired.includes(r)),
        ...(next === null ? [] : [{ id: meta.signedPrekeyId, retiredAt: now }]),
      ],
    }
    await this.#store.write([
      ...(next === null ? [] : [next.secret]),
      ...expired.map((r) => ({ key: K.prekey('spk', r.id) })),
      { key: K.prekeyMeta, value: encodeRecord(nextMeta) },
    ])
    if (next !== null) await this.#link.request({ prekeyUpload: { signedPrekey: next.upload } })
  }

  // ───────────────────────────── helpers ─────────────────────────────

  async #contact(e164: string): Promise<ContactRecord | null> {
    const raw = await this.#store.get(K.contact(e164))
    return raw === undefined ? null : decodeRecord<ContactRecord>(raw)
  }

  async #session(address: Uint8Array): Promise<SessionRecord | null> {
    const raw = await this.#store.get(K.session(toHex(address)))
    return raw === undefined ? null : decodeRecord<SessionRecord>(raw)
  }

  /** Number metadata, loaded on first use (a separate chunk in browser bundles). */
  #metadata(): Promise<NumberMetadata> {
    this.#numberMetadata ??= loadNumberMetadata().catch((err: unknown) => {
      this.#numberMetadata = null
      throw new ParleyError('UNAVAILABLE', 'could not load phone number metadata', { cause: err })
    })
    return this.#numberMetadata
  }

  async #normalize(input: string): Promise<string> {
    return normalizeNumberWith(await this.#metadata(), input, this.#region)
  }

  #requireAccount(): AccountRecord {
    if (this.#account === null) {
      throw new ParleyError('INVALID_STATE', 'activate this device first (nothing is sent before activation)')
    }
    return this.#account
  }

  #checkOpen(): void {
    if (this.#closed) throw new ParleyError('CLOSED', 'the client is closed')
  }

  #emitError(err: unknown): void {
    const e = ParleyError.fromUnknown(err)
    if (!this.#events.emit('error', e)) {
      // No listener: do not crash the app, but do not swallow silently either.
      console.warn(`[parley] ${e.code}: ${e.message}`)
    }
  }

  /** Errors that the engine retries by itself are reported only when they are not plain connectivity. */
  #emitRecoverable(err: unknown): void {
    const e = ParleyError.fromUnknown(err)
    if (e.code === 'UNAVAILABLE' || e.code === 'TIMEOUT' || e.code === 'CLOSED') return
    this.#emitError(e)
  }
}

/** The trust root given in the options (32 bytes or 64 hex digits), validated at once. */
function parseTrustRoot(keys: ParleyClientOptions['relayKeys']): Uint8Array | undefined {
  if (keys === undefined) return undefined
  const root = typeof keys?.trustRoot === 'string' ? fromHexStrict(keys.trustRoot) : keys?.trustRoot
  if (!(root instanceof Uint8Array) || root.length !== 32) {
    throw new TypeError('relayKeys.trustRoot must be 32 bytes (a Uint8Array or 64 hex digits)')
  }
  return root.slice()
}

function fromHexStrict(hex: string): Uint8Array | undefined {
  return /^[0-9a-fA-F]{64}$/.test(hex) ? fromHex(hex.toLowerCase()) : undefined
}

function toIncoming(m: StoredMessage): IncomingMessage {
  return {
    id: m.id,
    from: m.from,
    fromAddress: m.fromAddress,
    text: m.text,
    sentAt: new Date(m.sentAt),
    receivedAt: new Date(m.receivedAt),
  }
}

type Bodies = { [K in NonNullable<ServerFrame['body']>]: NonNullable<ServerFrame[K]> }

function expectBody<K extends keyof Bodies>(frame: ServerFrame, body: K): Bodies[K] {
  const value = (frame as unknown as Record<string, unknown>)[body]
  if (frame.body !== body || value === undefined || value === null) {
    throw new ParleyError('BAD_REQUEST', `the relay answered ${frame.body} where ${body} was expected`)
  }
  return value as Bodies[K]
}

export type { IdentityKeyPair }
