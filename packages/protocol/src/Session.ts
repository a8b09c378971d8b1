/**
 * An end-to-end session with one remote device: PQXDH to start it (Signal PQXDH §3), the Double Ratchet to
 * run it (Signal Double Ratchet §3), as docs/architecture.md §6 describes.
 *
 * Persistence: `encrypt` and `decrypt` change the session only when they succeed, so the caller stores
 * `serialize()` together with the message it just sent or received, in one transaction. If that transaction
 * fails, reload the session from the last stored bytes.
 * @module
 */
import type { CryptoOptions } from './cryptoProvider.js'
import { ParleyError } from './errors.js'
import { assertIdentityKeyPair, type IdentityKeyPair } from './identity.js'
import { ADDRESS_BYTES, abytes, au32, equalBytes, IDENTITY_KEY_BYTES } from './internal/bytes.js'
import { defaultRandom, type Primitives, primitives, type RandomSource } from './internal/e2eCrypto.js'
import {
  type DecodedPrekeyMessage,
  decodePrekeyMessage,
  decodeRatchetMessage,
  encodePrekeyMessage,
  encodeRatchetMessage,
} from './internal/messages.js'
import { associatedData, pqxdhInitiate, pqxdhRespond } from './internal/pqxdh.js'
import { initAlice, initBob, ratchetDecrypt, ratchetEncrypt } from './internal/ratchet.js'
import { decodeSessionRecord, encodeSessionRecord, type SessionData } from './internal/sessionRecord.js'
import { assertBundleShape, type PrekeyBundle } from './prekeys.js'

/** Longest plaintext `encrypt` accepts: the relay's 256 KiB envelope limit leaves room for headers. */
export const MAX_PLAINTEXT_BYTES = 255 * 1024

/**
 * An encrypted message of a session: a PQXDH `PrekeyMessage` (`kind: 'prekey'`, sent until the peer has
 * answered) or a Double Ratchet `RatchetMessage` (`kind: 'ratchet'`); `body` is its protobuf encoding.
 */
export interface CiphertextMessage {
  /** `'prekey'` until the peer has answered, then `'ratchet'`. */
  readonly kind: 'prekey' | 'ratchet'
  /** The encoded `parley.v1.PrekeyMessage` or `parley.v1.RatchetMessage`, as `kind` says. */
  readonly body: Uint8Array
}

/** A value or a promise of it. */
export type MaybePromise<T> = T | Promise<T>

/**
 * How `Session.respond` finds the private halves of the prekeys a `PrekeyMessage` names. Return `undefined`
 * for an unknown (or already used) id. Lookups only read: the caller deletes the consumed one-time keys itself,
 * in the same transaction that stores the new session (see `RespondResult.consumed`).
 */
export interface PrekeyLookup {
  /** The signed prekey (current or recently rotated) with this id. */
  signedPrekey(keyId: number): MaybePromise<
    | {
        /** Its 32-byte X25519 public key. */
        publicKey: Uint8Array
        /** Its 32-byte X25519 secret key. */
        secretKey: Uint8Array
      }
    | undefined
  >
  /** The unused one-time X25519 prekey with this id. */
  oneTimePrekey(keyId: number): MaybePromise<
    | {
        /** Its 32-byte X25519 secret key. */
        secretKey: Uint8Array
      }
    | undefined
  >
  /** The ML-KEM-768 prekey (one-time and unused, or last-resort) with this id; `secretKey` is 2400 bytes. */
  kemPrekey(keyId: number): MaybePromise<
    | {
        /** Its 2400-byte ML-KEM-768 decapsulation key. */
        secretKey: Uint8Array
      }
    | undefined
  >
}

/** Who sent a prekey message, as `openEnvelope` reports it. */
export interface PrekeySender {
  /** The sender account's 32-byte address (claimed by the envelope), bound into the associated data. */
  readonly senderAddress: Uint8Array
  /** The sender device's id (u32, claimed by the envelope), bound into the associated data. */
  readonly senderDeviceId: number
  /** Authenticated by the sealed envelope; must equal the identity key inside the prekey message. */
  readonly senderIdentityKey: Uint8Array
  /** The session message; `Session.respond` needs one of kind `'prekey'`. */
  readonly message: CiphertextMessage
}

/** What `Session.respond` returns. */
export interface RespondResult {
  /** The new session with the sender's device; store its `serialize()` with the message. */
  readonly session: Session
  /** The decrypted first message, as the sender gave it to `encrypt` (padded content: `decodeContent`). */
  readonly plaintext: Uint8Array
  /**
   * The prekeys the message used. Delete `oneTimePrekeyId` (if set) and, unless it is your last-resort key,
   * `kemPrekeyId`, atomically with storing `session`: that is what makes one-time prekeys one-time.
   */
  readonly consumed: {
    /** Id of the signed prekey it used (keep it: signed prekeys are not one-time). */
    signedPrekeyId: number
    /** Id of the one-time X25519 prekey it used; undefined when the bundle had none. */
    oneTimePrekeyId: number | undefined
    /** Id of the ML-KEM-768 prekey it used, one-time or last-resort. */
    kemPrekeyId: number
  }
}

/**
 * Options of session constructors. `crypto` (see {@link CryptoOptions}) is kept by the session for every
 * later `encrypt` and `decrypt`.
 */
export interface SessionOptions extends CryptoOptions {
  /** CSPRNG for ratchet keys; defaults to the platform's. Seeded sources are for tests only. */
  random?: RandomSource
}

function assertAddress(address: unknown, deviceId: unknown, name: string): void {
  abytes(address, ADDRESS_BYTES, `${name}Address`)
  au32(deviceId, `${name}DeviceId`)
}

function assertMessage(message: unknown): asserts message is CiphertextMessage {
  const m = message as CiphertextMessage | null
  if (typeof m !== 'object' || m === null || (m.kind !== 'prekey' && m.kind !== 'ratchet')) {
    throw new TypeError("message must be { kind: 'prekey' | 'ratchet', body }")
  }
  abytes(m.body, undefined, 'message.body')
}

/**
 * A Double Ratchet session with one remote device. Create it with {@link Session.initiate} (you fetched the
 * peer's bundle) or {@link Session.respond} (the peer's first message arrived); restore it with
 * {@link Session.deserialize}.
 */
export class Session {
  readonly #f: SessionData
  readonly #random: RandomSource
  readonly #crypto: Primitives

  private constructor(fields: SessionData, options: SessionOptions) {
    this.#f = fields
    this.#random = options.random ?? defaultRandom
    this.#crypto = primitives(options.crypto)
  }

  /**
   * Starts a session from a peer's prekey bundle (PQXDH §3.3): verifies both prekey signatures, refuses
   * low-order points and invalid KEM keys, and derives the first root key. Until the peer answers, every
   * `encrypt` returns a `'prekey'` message that carries the PQXDH values.
   * @param ourIdentity - this device's identity key pair
   * @param ourAddress - this account's 32-byte address
   * @param ourDeviceId - this device's id
   * @param bundle - the peer's bundle, e.g. from `prekeyBundleFromWire`
   * @param options - `random` for tests; `crypto`: faster primitives, kept for the session's life
   * @returns `{ session }`
   * @throws TypeError / RangeError for malformed arguments; ParleyError `VERIFICATION_FAILED` for a bad
   *   signature, a low-order or invalid key
   * @example
   * const { session } = Session.initiate(me, myAddress, myDeviceId, prekeyBundleFromWire(frame.prekeyBundle))
   * const first = session.encrypt(encodeContent({ messageId, sentAtMs: Date.now(), text: 'hi' })) // kind 'prekey'
   */
  static initiate(
    ourIdentity: IdentityKeyPair,
    ourAddress: Uint8Array,
    ourDeviceId: number,
    bundle: PrekeyBundle,
    options: SessionOptions = {},
  ): {
    /** The new session; its messages are of kind `'prekey'` until the peer answers. */
    session: Session
  } {
    assertIdentityKeyPair(ourIdentity, 'ourIdentity')
    assertAddress(ourAddress, ourDeviceId, 'our')
    assertBundleShape(bundle)
    const random = options.random ?? defaultRandom
    const c = primitives(options.crypto)
    const { sharedKey, baseKey, kemCiphertext } = pqxdhInitiate(c, ourIdentity, bundle, random)
    const ratchet = initAlice(c, sharedKey, bundle.signedPrekey.publicKey.slice(), random)
    sharedKey.fill(0)
    baseKey.secretKey.fill(0)
    const ad = associatedData(
      ourIdentity.publicKey,
      bundle.identityKey,
      ourAddress,
      ourDeviceId,
      bundle.address,
      bundle.deviceId,
    )
    const session = new Session(
      {
        localIdentityKey: ourIdentity.publicKey.slice(),
        remoteIdentityKey: bundle.identityKey.slice(),
        remoteAddress: bundle.address.slice(),
        remoteDeviceId: bundle.deviceId,
        associatedData: ad,
        baseKey: baseKey.publicKey,
        ratchet,
        pending: {
          signedPrekeyId: bundle.signedPrekey.keyId,
          oneTimePrekeyId: bundle.oneTimePrekey?.keyId,
          kemPrekeyId: bundle.kemPrekey.keyId,
          kemCiphertext,
        },
        accepted: undefined,
      },
      options,
    )
    return { session }
  }

  /**
   * Accepts a peer's first message (PQXDH §3.4): looks up the named prekeys, derives the root key and decrypts
   * the message. Nothing is consumed or stored here; see `RespondResult.consumed`.
   * @param ourIdentity - this device's identity key pair
   * @param ourAddress - this account's 32-byte address
   * @param ourDeviceId - this device's id
   * @param sender - what `openEnvelope` returned, with a `'prekey'` message
   * @param prekeys - lookup of this device's private prekeys by id
   * @param options - `random` for tests; `crypto`: faster primitives, kept for the session's life
   * @returns the new session, the plaintext and the prekey ids it used
   * @throws TypeError / RangeError for malformed arguments; ParleyError `BAD_REQUEST` (malformed message),
   *   `VERIFICATION_FAILED` (identity mismatch or low-order key), `DECRYPT_FAILED` (unknown prekey, forged message)
   * @example
   * const opened = openEnvelope(me.secretKey, envelope)
   * if (opened.message.kind === 'prekey') {
   *   const { session, plaintext, consumed } = await Session.respond(me, myAddress, myDeviceId, opened, store)
   * }
   */
  static async respond(
    ourIdentity: IdentityKeyPair,
    ourAddress: Uint8Array,
    ourDeviceId: number,
    sender: PrekeySender,
    prekeys: PrekeyLookup,
    options: SessionOptions = {},
  ): Promise<RespondResult> {
    assertIdentityKeyPair(ourIdentity, 'ourIdentity')
    assertAddress(ourAddress, ourDeviceId, 'our')
    if (typeof sender !== 'object' || sender === null)
      throw new TypeError('sender must be an opened envelope')
    assertAddress(sender.senderAddress, sender.senderDeviceId, 'sender.sender')
    abytes(sender.senderIdentityKey, IDENTITY_KEY_BYTES, 'sender.senderIdentityKey')
    assertMessage(sender.message)
    if (sender.message.kind !== 'prekey') throw new TypeError("respond needs a message of kind 'prekey'")
    if (typeof prekeys !== 'object' || prekeys === null) throw new TypeError('prekeys must be a PrekeyLookup')
    const random = options.random ?? defaultRandom
    const c = primitives(options.crypto)

    const m = decodePrekeyMessage(sender.message.body)
    if (!equalBytes(m.identityKey, sender.senderIdentityKey)) {
      throw new ParleyError('VERIFICATION_FAILED', 'prekey message identity differs from the envelope sender')
    }
    const spk = await prekeys.signedPrekey(m.signedPrekeyId)
    if (!spk) throw new ParleyError('DECRYPT_FAILED', 'unknown signed prekey')
    const opk = m.oneTimePrekeyId === undefined ? undefined : await prekeys.oneTimePrekey(m.oneTimePrekeyId)
    if (m.oneTimePrekeyId !== undefined && !opk) {
      throw new ParleyError('DECRYPT_FAILED', 'unknown or already used one-time prekey')
    }
    const kem = await prekeys.kemPrekey(m.kemPrekeyId)
    if (!kem) throw new ParleyError('DECRYPT_FAILED', 'unknown or already used KEM prekey')
    abytes(spk.secretKey, 32, 'signedPrekey.secretKey')
    abytes(spk.publicKey, 32, 'signedPrekey.publicKey')
    if (opk) abytes(opk.secretKey, 32, 'oneTimePrekey.secretKey')
    abytes(kem.secretKey, 2400, 'kemPrekey.secretKey')

    const sharedKey = pqxdhRespond(
      c,
      ourIdentity,
      spk.secretKey,
      opk?.secretKey,
      kem.secretKey,
      m.identityKey,
      m.baseKey,
      m.kemCiphertext,
    )
    const ratchet = initBob(sharedKey, { secretKey: spk.secretKey.slice(), publicKey: spk.publicKey.slice() })
    sharedKey.fill(0)
    const ad = associatedData(
      m.identityKey,
      ourIdentity.publicKey,
      sender.senderAddress,
      sender.senderDeviceId,
      ourAddress,
      ourDeviceId,
    )
    const plaintext = ratchetDecrypt(c, ratchet, m.message.header, m.message.ciphertext, ad, random)
    const session = new Session(
      {
        localIdentityKey: ourIdentity.publicKey.slice(),
        remoteIdentityKey: m.identityKey,
        remoteAddress: sender.senderAddress.slice(),
        remoteDeviceId: sender.senderDeviceId,
        associatedData: ad,
        baseKey: m.baseKey,
        ratchet,
        pending: undefined,
        accepted: {
          signedPrekeyId: m.signedPrekeyId,
          oneTimePrekeyId: m.oneTimePrekeyId,
          kemPrekeyId: m.kemPrekeyId,
          kemCiphertext: m.kemCiphertext,
        },
      },
      options,
    )
    return {
      session,
      plaintext,
      consumed: {
        signedPrekeyId: m.signedPrekeyId,
        oneTimePrekeyId: m.oneTimePrekeyId,
        kemPrekeyId: m.kemPrekeyId,
      },
    }
  }

  /**
   * The PQXDH values a `'prekey'` message names, read without any key: what a replay cache needs to recognise
   * a first message it has already accepted (a message that used no one-time prekey could otherwise start the
   * same session again).
   * @param message - a `'prekey'` message
   * @returns its base key and the prekey ids it used
   * @throws TypeError for a message that is not of kind `'prekey'`; ParleyError `BAD_REQUEST` if undecodable
   * @example const { baseKey, oneTimePrekeyId } = Session.prekeyMessageInfo(opened.message)
   */
  static prekeyMessageInfo(message: CiphertextMessage): {
    /** The initiator's 32-byte X25519 ephemeral key (PQXDH EK_A), fresh for each session it starts. */
    baseKey: Uint8Array
    /** Id of the recipient's signed prekey it used. */
    signedPrekeyId: number
    /** Id of the recipient's one-time X25519 prekey it used; undefined when it used none. */
    oneTimePrekeyId: number | undefined
    /** Id of the recipient's ML-KEM-768 prekey it used. */
    kemPrekeyId: number
  } {
    assertMessage(message)
    if (message.kind !== 'prekey') throw new TypeError("prekeyMessageInfo needs a message of kind 'prekey'")
    const m = decodePrekeyMessage(message.body)
    return {
      baseKey: m.baseKey,
      signedPrekeyId: m.signedPrekeyId,
      oneTimePrekeyId: m.oneTimePrekeyId,
      kemPrekeyId: m.kemPrekeyId,
    }
  }

  /**
   * Restores a session from {@link Session.serialize} output.
   * @param bytes - a stored session record
   * @param options - `random` for tests; `crypto`: faster primitives, kept for the session's life
   * @returns the session
   * @throws TypeError if `bytes` is not a Uint8Array; ParleyError `BAD_REQUEST` for a corrupt record
   * @example const session = Session.deserialize(await store.get(key))
   */
  static deserialize(bytes: Uint8Array, options: SessionOptions = {}): Session {
    abytes(bytes, undefined, 'bytes')
    const d = decodeSessionRecord(bytes)
    return new Session(d, options)
  }

  /**
   * The session's state as bytes (a `parley.v1.SessionRecord`): secret, for local storage only.
   * @returns the record
   * @example await store.put(key, session.serialize())
   */
  serialize(): Uint8Array {
    return encodeSessionRecord(this.#f)
  }

  /** The peer's 32-byte Ed25519 identity key. */
  get remoteIdentityKey(): Uint8Array {
    return this.#f.remoteIdentityKey.slice()
  }

  /** The peer's 32-byte account address. */
  get remoteAddress(): Uint8Array {
    return this.#f.remoteAddress.slice()
  }

  /** The peer's device id. */
  get remoteDeviceId(): number {
    return this.#f.remoteDeviceId
  }

  /** This device's identity key the session was made with. */
  get localIdentityKey(): Uint8Array {
    return this.#f.localIdentityKey.slice()
  }

  /** True while the peer has not answered: `encrypt` still produces `'prekey'` messages. */
  get awaitingReply(): boolean {
    return this.#f.pending !== undefined
  }

  /**
   * Encrypts one message (Double Ratchet §3.4 RatchetEncrypt). Pad the plaintext first (`encodeContent`).
   * @param plaintext - bytes to encrypt, at most {@link MAX_PLAINTEXT_BYTES}
   * @returns a `'prekey'` message while {@link Session.awaitingReply}, else a `'ratchet'` message
   * @throws TypeError / RangeError for a bad plaintext; ParleyError `INVALID_STATE` if the chain is exhausted
   * @example const msg = session.encrypt(encodeContent({ messageId, sentAtMs, text: 'hello' }))
   */
  encrypt(plaintext: Uint8Array): CiphertextMessage {
    abytes(plaintext, undefined, 'plaintext')
    if (plaintext.length > MAX_PLAINTEXT_BYTES)
      throw new RangeError(`plaintext exceeds ${MAX_PLAINTEXT_BYTES} bytes`)
    const f = this.#f
    const inner = ratchetEncrypt(this.#crypto, f.ratchet, plaintext, f.associatedData)
    if (!f.pending) return { kind: 'ratchet', body: encodeRatchetMessage(inner) }
    const body = encodePrekeyMessage({
      identityKey: f.localIdentityKey,
      baseKey: f.baseKey,
      ...f.pending,
      message: inner,
    })
    return { kind: 'prekey', body }
  }

  /**
   * Decrypts one message (Double Ratchet §3.5 RatchetDecrypt, with skipped message keys). The session changes
   * only if the message authenticates; on any error it is exactly as before and keeps working.
   * A `'prekey'` message is accepted when it belongs to this session (same base key and identity), as the
   * initiator repeats it until answered.
   * @param message - from `openEnvelope(...).message`
   * @returns the plaintext
   * @throws TypeError for a malformed argument; ParleyError `DUPLICATE` (already received, or its key was
   *   dropped), `DECRYPT_FAILED` (forged, tampered, from another session, or more than 25,000 ahead),
   *   `BAD_REQUEST` (undecodable)
   * @example
   * const plaintext = session.decrypt(opened.message)
   * await db.transaction(() => { saveSession(session.serialize()); saveMessage(decodeContent(plaintext)) })
   */
  decrypt(message: CiphertextMessage): Uint8Array {
    assertMessage(message)
    const f = this.#f
    let inner: ReturnType<typeof decodeRatchetMessage>
    if (message.kind === 'prekey') {
      const m: DecodedPrekeyMessage = decodePrekeyMessage(message.body)
      // Every PQXDH value must be the one this session was made from: they are not covered by the inner AEAD.
      const a = f.accepted
      if (
        !a ||
        !equalBytes(m.baseKey, f.baseKey) ||
        !equalBytes(m.identityKey, f.remoteIdentityKey) ||
        m.signedPrekeyId !== a.signedPrekeyId ||
        m.oneTimePrekeyId !== a.oneTimePrekeyId ||
        m.kemPrekeyId !== a.kemPrekeyId ||
        !equalBytes(m.kemCiphertext, a.kemCiphertext)
      ) {
        throw new ParleyError('DECRYPT_FAILED', 'prekey message does not belong to this session')
      }
      inner = m.message
    } else {
      inner = decodeRatchetMessage(message.body)
    }
    const plaintext = ratchetDecrypt(
      this.#crypto,
      f.ratchet,
      inner.header,
      inner.ciphertext,
      f.associatedData,
      this.#random,
    )
    f.pending = undefined
    return plaintext
  }

  /**
   * Whether a `'prekey'` message continues this session (same base key), rather than starting a new one
   * that `Session.respond` must accept.
   * @param message - a `'prekey'` message
   * @returns true if `decrypt` should handle it
   * @throws ParleyError `BAD_REQUEST` if the message is undecodable
   * @example if (existing?.matchesPrekeyMessage(msg)) existing.decrypt(msg); else await Session.respond(...)
   */
  matchesPrekeyMessage(message: CiphertextMessage): boolean {
    assertMessage(message)
    if (message.kind !== 'prekey') return false
    return equalBytes(decodePrekeyMessage(message.body).baseKey, this.#f.baseKey)
  }
}
