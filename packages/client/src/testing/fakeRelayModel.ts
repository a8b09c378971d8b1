/**
 * The state and default answers of the `FakeRelay`: accounts, prekeys, mailboxes, pending activations, the
 * trust root, its signing key and the OPRF keys, and one handler per client frame — the relay side of the wire
 * protocol (docs/architecture.md §3–§7), built from `@parley/protocol` alone. It mirrors what `apps/relay` does
 * for a well-behaved client, leaving out its quotas, persistence and scale-out; scripted answers live in
 * `FakeRelay.ts`. Test-only.
 * @module
 */
import {
  activationPayload,
  addressFromToken,
  addressHasPrefix,
  authPayload,
  type ClientBody,
  type ClientFrame,
  type CryptoProvider,
  checkActivationPow,
  createOprfKeyCertificate,
  createSenderCertificate,
  createServerCertificate,
  DEFAULT_LIMITS,
  deliveryTokenVerifier,
  generateIdentity,
  type IdentityKeyPair,
  isRegistrationLockLogN,
  kemPrekeyPayload,
  numberCommitment,
  numberToOprfInput,
  oprfBlindEvaluate,
  oprfEvaluate,
  oprfGenerateKeyPair,
  ParleyError,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  REGISTRATION_LOCK_PROOF_BYTES,
  REGISTRATION_LOCK_SALT_BYTES,
  registrationLockVerifier,
  type ServerFrameInput,
  signedPrekeyPayload,
  verifyIdentitySignature,
} from '@parley/protocol'
import type { Clock } from '../Clock.js'

/** A relay answer: one server body, without the request id. */
export type FakeReply = Omit<ServerFrameInput, 'requestId'>

/** A signed prekey (X25519 signed prekey or ML-KEM prekey) as uploaded. */
export interface FakeSignedKey {
  /** The key's id, chosen by the device. */
  keyId: number
  /** X25519 (32 bytes) or ML-KEM-768 encapsulation key (1,184 bytes). */
  publicKey: Uint8Array
  /** Ed25519 signature by the device's identity key. */
  signature: Uint8Array
}

/** One message waiting in a mailbox until its recipient acks it. */
export interface FakeMail {
  /** Its sequence number in the recipient's mailbox. */
  readonly seq: number
  /** The sender's message id (16 bytes); a second send of the same id is accepted without being stored. */
  readonly messageId: Uint8Array
  /** The sealed envelope, as the sender sent it (the relay cannot open it). */
  readonly envelope: Uint8Array
  /** When the relay stored it (on the relay's clock). */
  readonly receivedAtMs: number
  /** Whether it came by unidentified delivery (authorised by a delivery token, no sender known). */
  readonly unidentified: boolean
}

/** What the fake relay keeps of an account (more than the real one: it is there to be inspected). */
export interface FakeAccount {
  /** The account's address (32 bytes): the OPRF of its number under {@link FakeAccount.keyId}. */
  address: Uint8Array
  /** The same, in hex (what `ParleyClient.address` shows). */
  addressHex: string
  /** The current device's id: 1, and one more at each takeover. */
  deviceId: number
  /** The current device's Ed25519 identity key. */
  identityKey: Uint8Array
  /** The commitment to the number made at activation (32 bytes), or empty. */
  numberCommitment: Uint8Array
  /** The OPRF key epoch the address is derived under. */
  keyId: number
  /** The signed X25519 prekey served in every bundle. */
  signedPrekey: FakeSignedKey
  /** The ML-KEM prekey served when no one-time KEM prekey is left. */
  lastResortKemPrekey: FakeSignedKey
  /** One-time X25519 prekeys not yet served, oldest first (each bundle takes one). */
  oneTimePrekeys: { keyId: number; publicKey: Uint8Array }[]
  /** One-time ML-KEM prekeys not yet served, oldest first (each bundle takes one). */
  oneTimeKemPrekeys: FakeSignedKey[]
  /** The verifier of the account's delivery token, or null when unidentified delivery is off. */
  deliveryVerifier: Uint8Array | null
  /** The registration lock: salt and cost of the PIN's proof, its verifier, and the guesses left. */
  registrationLock: {
    salt: Uint8Array
    logN: number
    verifier: Uint8Array
    setAtMs: number
    guessesLeft: number
  } | null
  /** The last activation or authentication (the lock lapses after a week without). */
  lastActiveMs: number
  /** Unacked mail of the current device, in seq order. */
  mailbox: FakeMail[]
  /** The last seq given out at this address. */
  headSeq: number
  /** Mail of a replaced device, kept for its identity key until that key activates the number again. */
  retained: { identityKey: Uint8Array; mail: FakeMail[] } | null
}

/** An OPRF key epoch of the relay. */
export interface FakeOprfKey {
  /** The epoch, from 1. */
  keyId: number
  /** The ristretto255 secret scalar (32 bytes). */
  secretKey: Uint8Array
  /** The public key clients pin for the epoch (32 bytes). */
  publicKey: Uint8Array
  /** When the epoch started, on the relay's clock. */
  createdAtMs: number
  /** 0 while current; after a rotation, the end of its grace period. */
  retireAtMs: number
}

/** A code the relay "texted" to a number. */
export interface FakeText {
  /** The number, in E.164 form. */
  readonly to: string
  /** The six-digit code. */
  readonly code: string
  /** When it was sent, on the relay's clock. */
  readonly atMs: number
}

/** Settings of the relay model; every one has a default in `FakeRelay`. */
export interface FakeRelayConfig {
  clock: Clock
  random: (n: number) => Uint8Array
  /** Primitives for the signatures it checks (the pure-JS defaults when undefined). */
  crypto: CryptoProvider | undefined
  /** The code to text for an activation of `e164`. */
  code: (e164: string) => string
  codeTtlSeconds: number
  codeAttempts: number
  membershipPrefixBits: number
  maxMailboxMessages: number
  maxDiscoveryBatch: number
  certificateTtlMs: number
  activationPowBits: number
  registrationLockLapseMs: number
  registrationLockGuesses: number
}

/** The relay's view of one connection: its protocol state and the two things the relay does to it. */
export interface PeerState {
  readonly id: number
  /** The nonce its `Authenticate` must sign; single use. */
  readonly nonce: Uint8Array
  helloDone: boolean
  nonceUsed: boolean
  activating: boolean
  anonymous: boolean
  device: { address: Uint8Array; addressHex: string; deviceId: number } | null
  /** Last seq pushed; null until the device's first `SyncMailbox`. */
  cursor: number | null
  closed: boolean
  push(body: FakeReply): void
  close(code: number, reason: string): void
}

interface PendingActivation {
  e164: string
  code: string
  expiresAtMs: number
  attemptsLeft: number
}

const DAY = 24 * 3600_000
const SIGNER_VALIDITY_MS = 30 * DAY
const SIGNER_RENEW_MS = 3 * DAY
const MAILBOX_FULL_RETRY_MS = 60_000
/** WebSocket close code the relay uses when a device is revoked (apps/relay/src/closeCodes.ts). */
export const REVOKED_CLOSE_CODE = 4001

/** Bodies refused `UNAUTHENTICATED` before the connection has authenticated. */
const NEEDS_AUTH: ReadonlySet<ClientBody> = new Set<ClientBody>([
  'oprfEvaluate',
  'membershipQuery',
  'prekeyUpload',
  'prekeyBundleQuery',
  'prekeyCountQuery',
  'sendMessage',
  'ackMessages',
  'syncMailbox',
  'deactivate',
  'senderCertificateRequest',
  'setDeliveryToken',
  'setRegistrationLock',
  'rebindAddress',
])

export const hex = (b: Uint8Array): string => {
  let s = ''
  for (const x of b) s += x.toString(16).padStart(2, '0')
  return s
}

const equal = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i])

function bytes(value: unknown, length: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new ParleyError('BAD_REQUEST', `${what} must be ${length} bytes`)
  }
  return value
}

const orEmpty = (value: unknown): Uint8Array => (value instanceof Uint8Array ? value : new Uint8Array(0))

/** The body of a client frame of one type. */
type Body<K extends ClientBody> = NonNullable<ClientFrame[K]>
type Upload = Body<'prekeyUpload'>

function signedKey(k: Upload['signedPrekey'] | Upload['lastResortKemPrekey'], what: string): FakeSignedKey {
  if (!k?.publicKey || k.publicKey.length === 0) throw new ParleyError('BAD_REQUEST', `${what} is missing`)
  return { keyId: k.keyId ?? 0, publicKey: k.publicKey, signature: orEmpty(k.signature) }
}

/** The relay's state and its default answer to every client frame. */
export class RelayModel {
  readonly config: FakeRelayConfig
  /** The trust root (Ed25519) that clients pin; it certifies the signing key and the OPRF keys. */
  readonly root: IdentityKeyPair
  /** OPRF keys, current last. */
  readonly oprfKeys: FakeOprfKey[] = []
  /** Accounts by address (hex). */
  readonly accounts = new Map<string, FakeAccount>()
  /** Every code texted, oldest first. */
  readonly texts: FakeText[] = []
  readonly #pending = new Map<string, PendingActivation>()
  readonly #oprfCertificates = new Map<string, Uint8Array>()
  readonly #peers: () => Iterable<PeerState>
  #signer: { keyId: number; key: IdentityKeyPair; expiresAtMs: number; certificate: Uint8Array }

  constructor(config: FakeRelayConfig, peers: () => Iterable<PeerState>) {
    this.config = config
    this.#peers = peers
    this.root = generateIdentity(config.random)
    this.#signer = this.#newSigner(1)
    this.rotateOprfKey(0)
  }

  get #now(): number {
    return this.config.clock.now()
  }

  /** The OPRF key that evaluates new requests. */
  get currentKey(): FakeOprfKey {
    return this.oprfKeys.at(-1)!
  }

  /** Starts a new OPRF key epoch; the previous current key is served for `graceMs` more. */
  rotateOprfKey(graceMs: number): FakeOprfKey {
    const previous = this.oprfKeys.at(-1)
    if (previous !== undefined) previous.retireAtMs = this.#now + graceMs
    const pair = oprfGenerateKeyPair(this.config.random(64))
    const key: FakeOprfKey = {
      keyId: (previous?.keyId ?? 0) + 1,
      secretKey: pair.secretKey,
      publicKey: pair.publicKey,
      createdAtMs: this.#now,
      retireAtMs: 0,
    }
    this.oprfKeys.push(key)
    return key
  }

  /** The trust root's certificate of an OPRF key epoch, signed again only when its validity changes. */
  #certifyOprfKey(k: FakeOprfKey): Uint8Array {
    const id = `${k.keyId}:${k.retireAtMs}`
    let cert = this.#oprfCertificates.get(id)
    if (cert === undefined) {
      cert = createOprfKeyCertificate(this.root.secretKey, {
        keyId: k.keyId,
        publicKey: k.publicKey,
        validFromMs: k.createdAtMs,
        validUntilMs: k.retireAtMs,
      })
      this.#oprfCertificates.set(id, cert)
    }
    return cert
  }

  /** The address (hex) of a number's account under whichever served key it is at; its current address if none. */
  accountAddressOf(e164: string): string {
    for (let i = this.oprfKeys.length - 1; i >= 0; i--) {
      const address = hex(this.addressOf(e164, this.oprfKeys[i]))
      if (this.accounts.has(address)) return address
    }
    return hex(this.addressOf(e164))
  }

  /** The address of a number (E.164) under an OPRF key (the current one by default). */
  addressOf(e164: string, key: FakeOprfKey = this.currentKey): Uint8Array {
    return addressFromToken(oprfEvaluate(key.secretKey, numberToOprfInput(e164)))
  }

  /**
   * The answer to one frame, with its effects on the relay's state.
   * @throws ParleyError for every refusal
   */
  handle(peer: PeerState, frame: ClientFrame): FakeReply {
    if (frame.requestId === 0) throw new ParleyError('BAD_REQUEST', 'request_id must be non-zero')
    if (!peer.helloDone && frame.body !== 'hello' && frame.body !== 'ping') {
      throw new ParleyError('BAD_REQUEST', 'send Hello first')
    }
    if (NEEDS_AUTH.has(frame.body) && peer.device === null) {
      throw new ParleyError('UNAUTHENTICATED', 'authenticate first')
    }
    if (
      (frame.body === 'authenticate' ||
        frame.body === 'activationStart' ||
        frame.body === 'activationConfirm') &&
      peer.anonymous
    ) {
      throw new ParleyError(
        'BAD_REQUEST',
        'this connection sends unidentified mail; authenticate on another one',
      )
    }
    switch (frame.body) {
      case 'hello':
        return this.#hello(peer, frame.hello!)
      case 'ping':
        return { pong: { serverTimeMs: this.#now } }
      case 'authenticate':
        return this.#authenticate(peer, frame.authenticate!)
      case 'activationStart':
        return this.#activationStart(peer, frame.activationStart!)
      case 'activationConfirm':
        return this.#activationConfirm(peer, frame.activationConfirm!)
      case 'oprfEvaluate':
        return this.#oprfEvaluate(frame.oprfEvaluate!)
      case 'membershipQuery':
        return this.#membershipQuery(frame.membershipQuery!)
      case 'prekeyUpload':
        return this.#prekeyUpload(this.#account(peer), frame.prekeyUpload!)
      case 'prekeyBundleQuery':
        return this.#prekeyBundle(frame.prekeyBundleQuery!)
      case 'prekeyCountQuery':
        return { prekeyCount: this.prekeyCounts(this.#account(peer)) }
      case 'sendMessage':
        return this.#enqueue(frame.sendMessage!, false)
      case 'unidentifiedSend':
        return this.#unidentifiedSend(peer, frame.unidentifiedSend!)
      case 'ackMessages':
        return this.#ack(this.#account(peer), frame.ackMessages!)
      case 'syncMailbox':
        return this.#sync(peer, frame.syncMailbox!)
      case 'senderCertificateRequest':
        return this.#senderCertificate(this.#account(peer))
      case 'setDeliveryToken':
        return this.#setDeliveryToken(this.#account(peer), frame.setDeliveryToken!)
      case 'setRegistrationLock':
        return this.#setRegistrationLock(this.#account(peer), frame.setRegistrationLock!)
      case 'rebindAddress':
        return this.#rebind(peer, this.#account(peer), frame.rebindAddress!)
      case 'deactivate':
        return this.#deactivate(peer, this.#account(peer))
      default:
        throw new ParleyError('UNSUPPORTED', 'unknown frame type')
    }
  }

  /** One-time prekeys left for an account. */
  prekeyCounts(account: FakeAccount): { oneTimeCount: number; kemOneTimeCount: number } {
    return { oneTimeCount: account.oneTimePrekeys.length, kemOneTimeCount: account.oneTimeKemPrekeys.length }
  }

  /**
   * Tells every connection of the account's device (but `except`) that it was replaced or erased, then closes
   * it, as the real relay does: `DeviceReplaced`, then an `UNAUTHENTICATED` error push, then close 4001.
   */
  revoke(addressHex: string, keepDeviceId: number, except?: PeerState): void {
    for (const peer of this.#peers()) {
      const d = peer.device
      if (peer === except || peer.closed || d === null || d.addressHex !== addressHex) continue
      if (d.deviceId === keepDeviceId) continue
      peer.push({ deviceReplaced: { erased: keepDeviceId === 0 } })
      peer.push({
        error: {
          code: 2,
          message: 'this device was replaced or the account was erased',
          retryAfterMs: 0,
        },
      })
      peer.device = null
      peer.close(REVOKED_CLOSE_CODE, 'device revoked')
    }
  }

  /** Pushes the account's unread mail to each of its device's connections that has synced, after its cursor. */
  pushMail(account: FakeAccount): void {
    for (const peer of this.#peers()) {
      const d = peer.device
      if (peer.closed || peer.cursor === null || d === null) continue
      if (d.addressHex !== account.addressHex || d.deviceId !== account.deviceId) continue
      for (const mail of account.mailbox) {
        if (mail.seq <= peer.cursor) continue
        peer.push({
          delivery: {
            seq: mail.seq,
            messageId: mail.messageId,
            envelope: mail.envelope,
            receivedAtMs: mail.receivedAtMs,
          },
        })
        peer.cursor = mail.seq
      }
    }
  }

  // ─────────────────────────── handshake and activation ───────────────────────────

  #hello(peer: PeerState, h: Body<'hello'>): FakeReply {
    if (peer.helloDone) throw new ParleyError('BAD_REQUEST', 'Hello was already sent')
    if (h.protocolMajor !== PROTOCOL_MAJOR) {
      throw new ParleyError('UNSUPPORTED', `protocol major ${h.protocolMajor ?? 0} is not supported`)
    }
    peer.helloDone = true
    const c = this.config
    return {
      serverHello: {
        protocolMajor: PROTOCOL_MAJOR,
        protocolMinor: PROTOCOL_MINOR,
        limits: {
          maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes,
          maxEnvelopeBytes: DEFAULT_LIMITS.maxEnvelopeBytes,
          maxDiscoveryBatch: c.maxDiscoveryBatch,
          maxMailboxMessages: c.maxMailboxMessages,
          messageTtlSeconds: DEFAULT_LIMITS.messageTtlSeconds,
          membershipPrefixBits: c.membershipPrefixBits,
          maxPrekeysPerUpload: DEFAULT_LIMITS.maxPrekeysPerUpload,
        },
        // Current first, as the real relay serves them.
        oprfKeys: [...this.oprfKeys].reverse().map((k) => ({
          keyId: k.keyId,
          publicKey: k.publicKey,
          retireAtMs: k.retireAtMs,
          certificate: this.#certifyOprfKey(k),
        })),
        authNonce: peer.nonce,
        serverTimeMs: this.#now,
        trustRoot: this.root.publicKey,
        activationPowBits: c.activationPowBits,
      },
    }
  }

  #authenticate(peer: PeerState, a: Body<'authenticate'>): FakeReply {
    if (peer.nonceUsed) throw new ParleyError('UNAUTHENTICATED', 'the auth nonce was already used; reconnect')
    peer.nonceUsed = true
    const address = bytes(a.address, 32, 'address')
    const deviceId = a.deviceId ?? 0
    const account = this.accounts.get(hex(address))
    if (account === undefined || account.deviceId !== deviceId) {
      throw new ParleyError('UNAUTHENTICATED', 'unknown device; it may have been replaced or deactivated')
    }
    const payload = authPayload(peer.nonce, address, deviceId, this.root.publicKey)
    if (!verifyIdentitySignature(account.identityKey, payload, orEmpty(a.signature), this.config)) {
      throw new ParleyError('UNAUTHENTICATED', 'the auth signature does not verify')
    }
    peer.device = { address: account.address, addressHex: account.addressHex, deviceId }
    peer.cursor = null
    account.lastActiveMs = this.#now
    return { authenticated: { mailboxHeadSeq: account.headSeq } }
  }

  #activationStart(peer: PeerState, a: Body<'activationStart'>): FakeReply {
    peer.activating = true
    if (a.consent !== true) throw new ParleyError('BAD_REQUEST', 'activation needs the user’s consent')
    const e164 = a.phoneNumber ?? ''
    if (!/^\+[1-9]\d{6,14}$/.test(e164)) {
      throw new ParleyError('INVALID_NUMBER', 'the number must be in E.164 form')
    }
    const bits = this.config.activationPowBits
    if (bits > 0 && !checkActivationPow(peer.nonce, e164, orEmpty(a.powSolution), bits)) {
      throw new ParleyError('BAD_REQUEST', `pow_solution does not solve ${bits} bits`)
    }
    const activationId = this.config.random(16)
    const code = this.config.code(e164)
    const ttl = this.config.codeTtlSeconds
    this.#pending.set(hex(activationId), {
      e164,
      code,
      expiresAtMs: this.#now + ttl * 1000,
      attemptsLeft: this.config.codeAttempts,
    })
    this.texts.push({ to: e164, code, atMs: this.#now })
    return {
      activationStarted: { activationId, expiresInSeconds: ttl, attemptsLeft: this.config.codeAttempts },
    }
  }

  /** Checks a code, spending an attempt when it is wrong; the activation stays pending. */
  #checkCode(activationIdHex: string, code: string): PendingActivation {
    const p = this.#pending.get(activationIdHex)
    if (p === undefined) throw new ParleyError('NOT_FOUND', 'unknown activation; request a new code')
    if (p.attemptsLeft <= 0) throw new ParleyError('EXPIRED', 'too many wrong codes; request a new code')
    if (this.#now >= p.expiresAtMs) throw new ParleyError('EXPIRED', 'the activation has expired')
    if (code !== p.code) {
      p.attemptsLeft--
      throw new ParleyError('INVALID_CODE', `wrong code; ${p.attemptsLeft} attempts left`)
    }
    return p
  }

  #activationConfirm(peer: PeerState, c: Body<'activationConfirm'>): FakeReply {
    peer.activating = true
    const activationId = bytes(c.activationId, 16, 'activation_id')
    const identityKey = bytes(c.identityKey, 32, 'identity_key')
    const upload: Upload | undefined = c.prekeys ?? undefined
    const signedPrekey = signedKey(upload?.signedPrekey, 'a signed prekey')
    const lastResort = signedKey(upload?.lastResortKemPrekey, 'a last-resort KEM prekey')
    const salt = orEmpty(c.numberSalt)
    if (salt.length !== 0 && salt.length !== 32)
      throw new ParleyError('BAD_REQUEST', 'number_salt must be 32 bytes')
    const pending = this.#checkCode(hex(activationId), c.code ?? '')
    const key = this.currentKey
    const address = this.addressOf(pending.e164, key)
    const addressHex = hex(address)
    const old = this.accounts.get(addressHex)
    const keepLock = this.#checkRegistrationLock(old, orEmpty(c.registrationLockProof))
    this.#pending.delete(hex(activationId))
    if (
      !verifyIdentitySignature(
        identityKey,
        activationPayload(activationId, identityKey),
        orEmpty(c.identitySignature),
        this.config,
      )
    ) {
      throw new ParleyError('UNAUTHENTICATED', 'the identity signature does not verify')
    }
    const account: FakeAccount = {
      address,
      addressHex,
      deviceId: old === undefined ? 1 : old.deviceId + 1,
      identityKey,
      numberCommitment: salt.length === 32 ? numberCommitment(pending.e164, salt) : new Uint8Array(0),
      keyId: key.keyId,
      signedPrekey,
      lastResortKemPrekey: lastResort,
      oneTimePrekeys: [],
      oneTimeKemPrekeys: [],
      deliveryVerifier: null,
      registrationLock: keepLock && old ? old.registrationLock : null,
      lastActiveMs: this.#now,
      mailbox: [],
      headSeq: old?.headSeq ?? 0,
      retained: null,
    }
    this.#checkAndAddPrekeys(account, upload)
    // A takeover: the replaced device's unread mail is kept for its identity key, and mail kept for this
    // identity key (this device was replaced earlier) comes back.
    let restored = 0
    if (old !== undefined) {
      const own = equal(old.identityKey, identityKey)
      const back = own
        ? old.mailbox
        : old.retained && equal(old.retained.identityKey, identityKey)
          ? old.retained.mail
          : []
      account.mailbox = [...back]
      restored = back.length
      account.retained =
        !own && old.mailbox.length > 0
          ? { identityKey: old.identityKey, mail: old.mailbox }
          : old.retained && back !== old.retained.mail
            ? old.retained
            : null
    }
    const ownNumber = this.#evaluateOwn(key, orEmpty(c.blindedNumber))
    // This connection may be bound to the device being replaced; it must not be revoked with it.
    peer.device = null
    this.accounts.set(addressHex, account)
    if (old !== undefined) this.revoke(addressHex, account.deviceId, peer)
    peer.device = { address, addressHex, deviceId: account.deviceId }
    peer.cursor = null
    return {
      activated: {
        address,
        deviceId: account.deviceId,
        replacedDevice: old !== undefined,
        restoredMessages: restored,
        ...(ownNumber ? { ownNumber } : {}),
      },
    }
  }

  /**
   * Whether the account's registration lock (if any, and not lapsed) lets this activation through and stays.
   * @throws ParleyError `REGISTRATION_LOCKED` with the challenge for a missing or wrong proof
   */
  #checkRegistrationLock(account: FakeAccount | undefined, proof: Uint8Array): boolean {
    const lock = account?.registrationLock
    if (!account || !lock) return false
    const lapsesAtMs = Math.max(account.lastActiveMs, lock.setAtMs) + this.config.registrationLockLapseMs
    if (this.#now >= lapsesAtMs) return false
    const locked = (message: string) =>
      new ParleyError('REGISTRATION_LOCKED', message, {
        registrationLock: {
          salt: lock.salt,
          logN: lock.logN,
          attemptsLeft: lock.guessesLeft,
          lapsesInMs: lapsesAtMs - this.#now,
        },
        ...(lock.guessesLeft > 0 ? {} : { retryAfterMs: DAY }),
      })
    if (proof.length === 0) throw locked('this number’s account has a registration lock: enter its PIN')
    if (proof.length !== REGISTRATION_LOCK_PROOF_BYTES) {
      throw new ParleyError('BAD_REQUEST', 'registration_lock_proof must be 32 bytes')
    }
    if (lock.guessesLeft <= 0) throw locked('no PIN guesses left for now')
    if (!equal(registrationLockVerifier(proof), lock.verifier)) {
      lock.guessesLeft--
      throw locked(`wrong PIN; ${lock.guessesLeft} guesses left`)
    }
    lock.guessesLeft = this.config.registrationLockGuesses
    return true
  }

  #evaluateOwn(key: FakeOprfKey, blinded: Uint8Array) {
    if (blinded.length !== 32) return undefined
    const { evaluatedElements, proof } = oprfBlindEvaluate(key.secretKey, key.publicKey, [blinded])
    return { keyId: key.keyId, evaluatedElements, proof }
  }

  #setRegistrationLock(account: FakeAccount, f: Body<'setRegistrationLock'>): FakeReply {
    const verifier = orEmpty(f.verifier)
    if (verifier.length === 0) {
      account.registrationLock = null
      return { registrationLockSet: {} }
    }
    bytes(verifier, REGISTRATION_LOCK_PROOF_BYTES, 'verifier')
    const salt = bytes(f.salt, REGISTRATION_LOCK_SALT_BYTES, 'salt')
    if (!isRegistrationLockLogN(f.logN)) throw new ParleyError('BAD_REQUEST', 'log_n must be from 14 to 17')
    account.registrationLock = {
      salt,
      logN: f.logN,
      verifier,
      setAtMs: this.#now,
      guessesLeft: this.config.registrationLockGuesses,
    }
    return { registrationLockSet: {} }
  }

  // ─────────────────────────── discovery ───────────────────────────

  #oprfEvaluate(req: Body<'oprfEvaluate'>): FakeReply {
    const keyId = req.keyId ?? 0
    const key = this.oprfKeys.find((k) => k.keyId === keyId)
    if (key === undefined) throw new ParleyError('NOT_FOUND', 'unknown OPRF key id')
    const elements = req.blindedElements ?? []
    if (elements.length === 0) throw new ParleyError('BAD_REQUEST', 'no blinded elements')
    if (elements.length > this.config.maxDiscoveryBatch) throw new ParleyError('TOO_LARGE', 'batch too large')
    const { evaluatedElements, proof } = oprfBlindEvaluate(key.secretKey, key.publicKey, elements)
    return { oprfEvaluated: { keyId, evaluatedElements, proof } }
  }

  #membershipQuery(q: Body<'membershipQuery'>): FakeReply {
    const bits = q.prefixBits ?? 0
    if (bits !== this.config.membershipPrefixBits) {
      throw new ParleyError(
        'BAD_REQUEST',
        `prefix_bits must be ${this.config.membershipPrefixBits}, as announced`,
      )
    }
    const prefixes = q.prefixes ?? []
    if (prefixes.length === 0) throw new ParleyError('BAD_REQUEST', 'no prefixes')
    const all = [...this.accounts.values()].map((a) => a.address)
    const buckets = prefixes.map((p) => {
      const prefix = bytes(p, Math.ceil(bits / 8), 'prefix')
      return { prefix, addresses: all.filter((a) => addressHasPrefix(a, prefix, bits)) }
    })
    return { membershipResult: { buckets } }
  }

  #rebind(peer: PeerState, account: FakeAccount, r: Body<'rebindAddress'>): FakeReply {
    const key = this.currentKey
    if ((r.keyId ?? 0) !== key.keyId) throw new ParleyError('CONFLICT', 'not the current OPRF key; reconnect')
    const salt = bytes(r.numberSalt, 32, 'number_salt')
    const e164 = r.phoneNumber ?? ''
    if (
      account.numberCommitment.length !== 32 ||
      !equal(numberCommitment(e164, salt), account.numberCommitment)
    ) {
      throw new ParleyError('FORBIDDEN', 'the number and salt do not open this account’s commitment')
    }
    const address = this.addressOf(e164, key)
    const ownNumber = this.#evaluateOwn(key, orEmpty(r.blindedNumber))
    const reply = { addressRebound: { address, keyId: key.keyId, ...(ownNumber ? { ownNumber } : {}) } }
    if (equal(address, account.address)) return reply
    if (this.accounts.has(hex(address))) throw new ParleyError('CONFLICT', 'the number has a newer account')
    this.accounts.delete(account.addressHex)
    account.address = address
    account.addressHex = hex(address)
    account.keyId = key.keyId
    this.accounts.set(account.addressHex, account)
    peer.device = { address, addressHex: account.addressHex, deviceId: account.deviceId }
    return reply
  }

  // ─────────────────────────── prekeys ───────────────────────────

  #checkAndAddPrekeys(account: FakeAccount, upload: Upload | undefined): void {
    if (upload === undefined) return
    const identity = account.identityKey
    const check = (k: FakeSignedKey, payload: (id: number, pub: Uint8Array) => Uint8Array, what: string) => {
      if (!verifyIdentitySignature(identity, payload(k.keyId, k.publicKey), k.signature, this.config)) {
        throw new ParleyError('BAD_REQUEST', `${what} ${k.keyId}: signature does not verify`)
      }
    }
    if (upload.signedPrekey) {
      const k = signedKey(upload.signedPrekey, 'signed prekey')
      check(k, signedPrekeyPayload, 'signed prekey')
      account.signedPrekey = k
    }
    if (upload.lastResortKemPrekey) {
      const k = signedKey(upload.lastResortKemPrekey, 'last-resort KEM prekey')
      check(k, kemPrekeyPayload, 'last-resort KEM prekey')
      account.lastResortKemPrekey = k
    }
    // One-time KEM prekeys are stored unchecked (the real relay checks them too): a sender verifies every key it
    // is served, and ten more signature checks per activation would make every test here slower.
    for (const w of upload.oneTimeKemPrekeys ?? [])
      account.oneTimeKemPrekeys.push(signedKey(w, 'one-time KEM prekey'))
    for (const k of upload.oneTimePrekeys ?? []) {
      account.oneTimePrekeys.push({
        keyId: k.keyId ?? 0,
        publicKey: bytes(k.publicKey, 32, 'one-time prekey'),
      })
    }
  }

  #prekeyUpload(account: FakeAccount, upload: Upload): FakeReply {
    this.#checkAndAddPrekeys(account, upload)
    return { prekeyUploaded: this.prekeyCounts(account) }
  }

  #prekeyBundle(q: Body<'prekeyBundleQuery'>): FakeReply {
    const account = this.accounts.get(hex(bytes(q.address, 32, 'address')))
    if (account === undefined) throw new ParleyError('NOT_FOUND', 'no account at this address')
    const otp = account.oneTimePrekeys.shift()
    const kem = account.oneTimeKemPrekeys.shift()
    return {
      prekeyBundle: {
        address: account.address,
        deviceId: account.deviceId,
        identityKey: account.identityKey,
        signedPrekey: account.signedPrekey,
        oneTimePrekey: otp ?? null,
        kemPrekey: kem ?? account.lastResortKemPrekey,
        kemPrekeyIsLastResort: kem === undefined,
      },
    }
  }

  // ─────────────────────────── mail ───────────────────────────

  #enqueue(m: Body<'sendMessage'>, unidentified: boolean): FakeReply {
    const address = bytes(m.recipientAddress, 32, 'recipient_address')
    const messageId = bytes(m.messageId, 16, 'message_id')
    const envelope = orEmpty(m.envelope)
    if (envelope.length === 0) throw new ParleyError('BAD_REQUEST', 'envelope is empty')
    const account = this.accounts.get(hex(address))
    if (account === undefined) {
      if (unidentified)
        throw new ParleyError('FORBIDDEN', 'the delivery token is not valid for this recipient')
      throw new ParleyError('NOT_FOUND', 'no account at this address')
    }
    if ((m.recipientDeviceId ?? 0) !== account.deviceId) {
      throw new ParleyError('CONFLICT', 'the recipient has a new device; fetch a new prekey bundle')
    }
    if (account.mailbox.some((x) => equal(x.messageId, messageId))) return { messageAccepted: { messageId } }
    if (account.mailbox.length >= this.config.maxMailboxMessages) {
      throw new ParleyError('MAILBOX_FULL', 'the recipient’s mailbox is full; try again later', {
        retryAfterMs: MAILBOX_FULL_RETRY_MS,
      })
    }
    account.headSeq++
    account.mailbox.push({ seq: account.headSeq, messageId, envelope, receivedAtMs: this.#now, unidentified })
    // Answered first, then pushed: the recipient's push follows the sender's MessageAccepted.
    queueMicrotask(() => this.pushMail(account))
    return { messageAccepted: { messageId } }
  }

  #unidentifiedSend(peer: PeerState, m: Body<'unidentifiedSend'>): FakeReply {
    if (peer.device !== null || peer.nonceUsed || peer.activating) {
      throw new ParleyError('BAD_REQUEST', 'send unidentified mail on a connection that never authenticated')
    }
    peer.anonymous = true
    const token = bytes(m.deliveryToken, 32, 'delivery_token')
    const account = this.accounts.get(hex(bytes(m.recipientAddress, 32, 'recipient_address')))
    const expected = account?.deliveryVerifier
    if (!expected || !equal(deliveryTokenVerifier(token), expected)) {
      throw new ParleyError('FORBIDDEN', 'the delivery token is not valid for this recipient')
    }
    return this.#enqueue(m, true)
  }

  #ack(account: FakeAccount, a: Body<'ackMessages'>): FakeReply {
    const seqs = new Set(a.seqs ?? [])
    const before = account.mailbox.length
    account.mailbox = account.mailbox.filter((m) => !seqs.has(m.seq))
    return { acked: { count: before - account.mailbox.length } }
  }

  #sync(peer: PeerState, s: Body<'syncMailbox'>): FakeReply {
    const account = this.#account(peer)
    peer.cursor = s.afterSeq ?? 0
    this.pushMail(account)
    return { syncDone: { headSeq: account.headSeq } }
  }

  // ─────────────────────────── certificates, tokens, deactivation ───────────────────────────

  #newSigner(keyId: number) {
    const key = generateIdentity(this.config.random)
    const expiresAtMs = this.#now + SIGNER_VALIDITY_MS
    const certificate = createServerCertificate(this.root.secretKey, {
      keyId,
      publicKey: key.publicKey,
      expiresAtMs,
    })
    return { keyId, key, expiresAtMs, certificate }
  }

  #senderCertificate(account: FakeAccount): FakeReply {
    const ttl = this.config.certificateTtlMs
    if (this.#signer.expiresAtMs - this.#now < Math.max(SIGNER_RENEW_MS, ttl)) {
      this.#signer = this.#newSigner(this.#signer.keyId + 1)
    }
    const certificate = createSenderCertificate(this.#signer.key.secretKey, this.#signer.certificate, {
      address: account.address,
      deviceId: account.deviceId,
      identityKey: account.identityKey,
      numberCommitment: account.numberCommitment,
      expiresAtMs: Math.min(this.#now + ttl, this.#signer.expiresAtMs),
    })
    return { senderCertificateIssued: { certificate } }
  }

  #setDeliveryToken(account: FakeAccount, t: Body<'setDeliveryToken'>): FakeReply {
    const verifier = orEmpty(t.verifier)
    if (verifier.length !== 0 && verifier.length !== 32) {
      throw new ParleyError('BAD_REQUEST', 'verifier must be 32 bytes, or empty')
    }
    account.deliveryVerifier = verifier.length === 0 ? null : verifier
    return { deliveryTokenSet: {} }
  }

  #deactivate(peer: PeerState, account: FakeAccount): FakeReply {
    peer.device = null
    peer.cursor = null
    this.accounts.delete(account.addressHex)
    this.revoke(account.addressHex, 0, peer)
    return { deactivated: {} }
  }

  /** The account the connection is authenticated as; refused when it was replaced or erased meanwhile. */
  #account(peer: PeerState): FakeAccount {
    const d = peer.device
    const account = d === null ? undefined : this.accounts.get(d.addressHex)
    if (account === undefined || account.deviceId !== d?.deviceId) {
      throw new ParleyError('UNAUTHENTICATED', 'this device was replaced or the account was erased')
    }
    return account
  }
}
