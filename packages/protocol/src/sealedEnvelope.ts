/**
 * Sealed envelopes (docs/architecture.md §6, after Signal's sealed sender v1): the relay sees the recipient address and
 * opaque bytes; the sender's address, device, identity key and relay-issued sender certificate travel inside the
 * ciphertext. {@link openEnvelope} only proves which identity key sealed it; {@link openSealedMessage} also
 * proves, through the certificate, that this key belongs to the address, device and number the sender claims.
 *
 * Construction (version 1), with e a fresh X25519 key, R and S the X25519 forms of the recipient's and the
 * sender's identity keys:
 *   chain ‖ k1 = HKDF-SHA-256(ikm DH(e, R), salt R ‖ e_pub, "Parley_Sealed_Ephemeral")
 *   encrypted_sender_key = ChaCha20-Poly1305(k1, 0^12, IK_S, ad e_pub)
 *   k2 = HKDF-SHA-256(ikm DH(S, R), salt chain ‖ encrypted_sender_key, "Parley_Sealed_Static")
 *   ciphertext = ChaCha20-Poly1305(k2, 0^12, SealedContent, ad e_pub ‖ R)
 * The static-static DH makes a successful open prove that the sender holds IK_S. A zero nonce is safe: both
 * keys depend on the fresh e.
 *
 * Version 2 ({@link sealForDevices}, after sealed sender v2) seals one message for many devices with one content
 * encryption and, per device, two X25519 and two HKDF calls. With M a fresh 32-byte message key:
 *   e ‖ K = HKDF-SHA-256(ikm M, salt empty, "Parley_Sealed_Shared_Message"), E = X25519(e, 9)
 *   ciphertext = ChaCha20-Poly1305(K, 0^12, SealedContent, ad E), h = SHA-256(ciphertext)
 *   per device R: wrapped_key = M ⊕ HKDF(ikm DH(e, R), salt E ‖ R, "Parley_Sealed_Shared_Wrap")
 *                 auth_tag = HKDF(ikm DH(S, R), salt E ‖ R ‖ wrapped_key ‖ h ‖ IK_S, "Parley_Sealed_Shared_Auth")[0..16]
 * The device unmasks M, derives e and K again and refuses unless X25519(e, 9) = E, opens the ciphertext, reads
 * IK_S from it and refuses unless the tag recomputes under DH(R, S): so the tag proves that the holder of IK_S
 * sealed exactly this ciphertext for this device, and another member who learnt M cannot change it for anyone.
 * Every copy holds the same E and ciphertext (the relay already sees them sent together).
 * @module
 */

import { bytesToHex } from '@noble/hashes/utils.js'
import { opensNumberCommitment, type SenderCertificate, verifySenderCertificate } from './certificates.js'
import type { CryptoOptions } from './cryptoProvider.js'
import { ParleyError } from './errors.js'
import { assertIdentityKeyPair, type IdentityKeyPair } from './identity.js'
import { ADDRESS_BYTES, abytes, au32, concatBytes, equalBytes, IDENTITY_KEY_BYTES } from './internal/bytes.js'
import {
  aeadOpen,
  aeadSeal,
  defaultRandom,
  dh,
  dhEach,
  draw,
  hkdf256,
  identityDhPublic,
  identityDhSecret,
  label,
  own,
  type Primitives,
  primitives,
  type RandomSource,
  X25519_BYTES,
  x25519KeyPair,
} from './internal/e2eCrypto.js'
import { decodeOrRefuse, encodeBytesField, encodeMessage } from './internal/pb.js'
import type { CiphertextMessage } from './Session.js'

/**
 * A group message to carry in a sealed envelope: an encoded `SenderKeyMessage` (`senderKeyEncrypt`), the same
 * bytes for every member device, opened with `senderKeyDecrypt` rather than a session.
 */
export interface GroupCiphertext {
  /** Always `'senderKey'`. */
  readonly kind: 'senderKey'
  /** The encoded `parley.v1.SenderKeyMessage`. */
  readonly body: Uint8Array
}

/** What a sealed envelope carries: a session message, or a group message under a sender key. */
export type SealedMessage = CiphertextMessage | GroupCiphertext

/** The SealedContent field of each kind of message. */
const MESSAGE_FIELD = { prekey: 4, ratchet: 5, senderKey: 10 } as const

/** The version {@link sealEnvelope} writes: one envelope for one device. */
export const SEALED_ENVELOPE_VERSION = 1
/** The version {@link sealForDevices} writes: one message sealed once for many devices. */
export const SHARED_ENVELOPE_VERSION = 2
/** The relay's envelope limit (docs/architecture.md §3). */
export const MAX_ENVELOPE_BYTES = 256 * 1024

const EPHEMERAL_INFO = label('Parley_Sealed_Ephemeral')
const STATIC_INFO = label('Parley_Sealed_Static')
const SHARED_MESSAGE_INFO = label('Parley_Sealed_Shared_Message')
const SHARED_WRAP_INFO = label('Parley_Sealed_Shared_Wrap')
const SHARED_AUTH_INFO = label('Parley_Sealed_Shared_Auth')
const ZERO_NONCE = new Uint8Array(12)
const EMPTY = new Uint8Array(0)
const MESSAGE_KEY_BYTES = 32
const AUTH_TAG_BYTES = 16

/** What {@link sealEnvelope} needs. */
export interface SealInput {
  /** The sender account's 32-byte address. */
  readonly senderAddress: Uint8Array
  /** The sender device's id (u32); the recipient refuses the message unless its certificate names it. */
  readonly senderDeviceId: number
  /** The sender device's identity key pair. */
  readonly senderIdentity: IdentityKeyPair
  /** The recipient device's 32-byte Ed25519 identity key (from its bundle or session). */
  readonly recipientIdentityKey: Uint8Array
  /** The session message (or group message) to carry. */
  readonly message: SealedMessage
  /** The sender device's current certificate from the relay (`SenderCertificateIssued.certificate`). */
  readonly senderCertificate: Uint8Array
  /** The sender's own number and the salt that opens its certificate's commitment, to state who wrote. */
  readonly senderNumber?:
    | {
        /** The sender's number in E.164 form, as committed at activation (at most 32 characters). */
        readonly e164: string
        /** The 32-byte salt of `ActivationConfirm.number_salt` that, with `e164`, opens the commitment. */
        readonly salt: Uint8Array
      }
    | undefined
  /**
   * After the sender's account changed its number: the encoded `AddressChange` notice (`signAddressChange`) that
   * moves the account from the address the recipient knew to `senderAddress`; at most
   * {@link MAX_ADDRESS_CHANGE_BYTES}.
   */
  readonly addressChange?: Uint8Array | undefined
}

/** What {@link sealForDevices} needs: a {@link SealInput} with many recipient devices instead of one. */
export interface SharedSealInput extends Omit<SealInput, 'recipientIdentityKey'> {
  /** Each recipient device's 32-byte Ed25519 identity key, at least one. */
  readonly recipientIdentityKeys: readonly Uint8Array[]
}

/** What {@link sealForDevices} returns: what every copy shares, and each device's own part. */
export interface SharedSeal {
  /**
   * The bytes every copy shares (`MultiRecipientSend.shared`): the ephemeral key and the ciphertext, an encoded
   * fragment of a version-2 `SealedEnvelope`.
   */
  readonly shared: Uint8Array
  /**
   * One per recipient, in `recipientIdentityKeys` order: its version, wrapped key and tag
   * (`DeviceEnvelope.envelope` beside `shared`). {@link joinSealed} makes the whole envelope the device opens.
   */
  readonly parts: readonly Uint8Array[]
}

/** The largest `SealInput.addressChange` (an `AddressChange` notice is about 150 bytes). */
export const MAX_ADDRESS_CHANGE_BYTES = 512

/** What {@link openEnvelope} returns: nothing in it but `senderIdentityKey` is proven yet. */
export interface OpenedEnvelope {
  /** Claimed; proven only by {@link openSealedMessage}. */
  readonly senderAddress: Uint8Array
  /** Claimed; proven only by {@link openSealedMessage}. */
  readonly senderDeviceId: number
  /** Authenticated: the sender proved it holds this identity key. Compare it with the one you pinned. */
  readonly senderIdentityKey: Uint8Array
  /**
   * What it carried: a session message, for `Session.decrypt` or `Session.respond`, or (kind `'senderKey'`) a
   * group message, for `senderKeyDecrypt`.
   */
  readonly message: SealedMessage
  /** The encoded sender certificate (empty when the sender sent none). */
  readonly senderCertificate: Uint8Array
  /** The stated number, E.164 (empty when not stated). */
  readonly senderNumber: string
  /** The stated salt opening the certificate's commitment to `senderNumber`; empty when not stated. */
  readonly senderNumberSalt: Uint8Array
  /** The carried address-change notice, not yet verified (`verifyAddressChange`); empty when none. */
  readonly addressChange: Uint8Array
}

/** What {@link openSealedMessage} returns: every field is proven. */
export interface VerifiedSender {
  /** The sender account's 32-byte address, as certified. */
  readonly address: Uint8Array
  /** The sender device's id, as certified. */
  readonly deviceId: number
  /** The sender device's 32-byte Ed25519 identity key: certified, and the key that sealed the envelope. */
  readonly identityKey: Uint8Array
  /** The sender's number (E.164) when it stated it and it opened the certified commitment. */
  readonly number: string | undefined
  /** The verified certificate. */
  readonly certificate: SenderCertificate
  /**
   * The address-change notice the sender carried, if any: the envelope authenticates who carried it, but what it
   * says is proven only by `verifyAddressChange` against the identity pinned for the old address.
   */
  readonly addressChange: Uint8Array | undefined
}

function ephemeralKeys(c: Primitives, dhOut: Uint8Array, recipient: Uint8Array, ephemeral: Uint8Array) {
  const out = hkdf256(c, dhOut, concatBytes(recipient, ephemeral), EPHEMERAL_INFO, 64)
  return { chain: out.subarray(0, 32), key: out.subarray(32) }
}

function staticKey(
  c: Primitives,
  dhOut: Uint8Array,
  chain: Uint8Array,
  encryptedSenderKey: Uint8Array,
): Uint8Array {
  return hkdf256(c, dhOut, concatBytes(chain, encryptedSenderKey), STATIC_INFO, 32)
}

/**
 * Seals a session message for one recipient device.
 * @param input - sender, recipient identity key and message
 * @param options - `random` for tests; `crypto`: faster primitives (see {@link CryptoOptions})
 * @returns the `SendMessage.envelope` bytes (a `parley.v1.SealedEnvelope`)
 * @throws TypeError / RangeError for malformed input; ParleyError `VERIFICATION_FAILED` for an invalid
 *   recipient key; ParleyError `TOO_LARGE` if the envelope would exceed {@link MAX_ENVELOPE_BYTES}
 * @example
 * const envelope = sealEnvelope({ senderAddress, senderDeviceId, senderIdentity: me,
 *   recipientIdentityKey: session.remoteIdentityKey, message: session.encrypt(content) })
 */
export function sealEnvelope(
  input: SealInput,
  options: {
    readonly random?: RandomSource
    /** Static secrets remembered between this device's calls (see {@link SealAgreements}). */
    readonly agreements?: SealAgreements
  } & CryptoOptions = {},
): Uint8Array {
  if (typeof input !== 'object' || input === null) throw new TypeError('input must be an object')
  const content = sealedContent(input)
  abytes(input.recipientIdentityKey, IDENTITY_KEY_BYTES, 'recipientIdentityKey')
  const random = options.random ?? defaultRandom
  const c = primitives(options.crypto)

  const recipient = identityDhPublic(input.recipientIdentityKey)
  const e = x25519KeyPair(c, random)
  const { chain, key } = ephemeralKeys(c, dh(c, e.secretKey, recipient), recipient, e.publicKey)
  const encryptedSenderKey = aeadSeal(c, key, ZERO_NONCE, input.senderIdentity.publicKey, e.publicKey)
  const [statics] = staticAgreements(c, input.senderIdentity, [recipient], options.agreements)
  const k2 = staticKey(c, statics!, chain, encryptedSenderKey)
  if (options.agreements === undefined) statics!.fill(0)
  e.secretKey.fill(0)

  const ciphertext = aeadSeal(c, k2, ZERO_NONCE, content, concatBytes(e.publicKey, recipient))
  const envelope = encodeMessage('SealedEnvelope', {
    version: SEALED_ENVELOPE_VERSION,
    ephemeralKey: e.publicKey,
    encryptedSenderKey,
    ciphertext,
  })
  if (envelope.length > MAX_ENVELOPE_BYTES) throw new ParleyError('TOO_LARGE', 'envelope exceeds 256 KiB')
  return envelope
}

/**
 * Seals one message for many recipient devices (version 2, see the module doc): the content is encrypted once,
 * and each device gets a 54-byte part that unmasks its key and proves the sender to it. Each device opens
 * `joinSealed(parts[i], shared)` with {@link openEnvelope} / {@link openSealedMessage}, as a version-1 envelope.
 * @param input - sender, the recipients' identity keys and the message
 * @param options - `random` for tests; `crypto`: faster primitives (see {@link CryptoOptions}; a provider's
 *   `x25519.getSharedSecrets` saves a key import per device); `agreements`: a {@link SealAgreements} this sender
 *   keeps, so each device costs one X25519 instead of two from its second message on
 * @returns the shared bytes and one part per recipient, in order
 * @throws TypeError / RangeError for malformed input; ParleyError `VERIFICATION_FAILED` for an invalid
 *   recipient key; ParleyError `TOO_LARGE` if an envelope would exceed {@link MAX_ENVELOPE_BYTES}
 * @example
 * const { shared, parts } = sealForDevices({ senderAddress, senderDeviceId, senderIdentity: me,
 *   recipientIdentityKeys: members.map((m) => m.identityKey), message: { kind: 'senderKey', body },
 *   senderCertificate })
 */
export function sealForDevices(
  input: SharedSealInput,
  options: {
    readonly random?: RandomSource
    /** Static secrets remembered between this sender's calls (see {@link SealAgreements}). */
    readonly agreements?: SealAgreements
  } & CryptoOptions = {},
): SharedSeal {
  if (typeof input !== 'object' || input === null) throw new TypeError('input must be an object')
  const keys = input.recipientIdentityKeys
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new TypeError('recipientIdentityKeys must be a non-empty array')
  }
  for (const [i, k] of keys.entries()) abytes(k, IDENTITY_KEY_BYTES, `recipientIdentityKeys[${i}]`)
  const content = sealedContent(input)
  const c = primitives(options.crypto)
  const recipients = keys.map((k) => identityDhPublic(k))

  const m = draw(options.random ?? defaultRandom, MESSAGE_KEY_BYTES)
  const { secret: e, publicKey: ephemeral, key } = messageKeys(c, m)
  const ciphertext = aeadSeal(c, key, ZERO_NONCE, content, ephemeral)
  key.fill(0)
  const shared = encodeMessage('SealedEnvelope', { ephemeralKey: ephemeral, ciphertext })
  if (shared.length + SHARED_PART_BYTES > MAX_ENVELOPE_BYTES) {
    throw new ParleyError('TOO_LARGE', 'envelope exceeds 256 KiB')
  }
  const digest = sha256Of(c, ciphertext)
  const masks = dhEach(c, e, recipients)
  e.fill(0)
  const statics = staticAgreements(c, input.senderIdentity, recipients, options.agreements)
  const parts = recipients.map((r, i) => {
    const wrappedKey = masked(c, masks[i]!, ephemeral, r, m)
    const authTag = sharedTag(
      c,
      statics[i]!,
      ephemeral,
      r,
      wrappedKey,
      digest,
      input.senderIdentity.publicKey,
    )
    masks[i]!.fill(0)
    return encodeMessage('SealedEnvelope', { version: SHARED_ENVELOPE_VERSION, wrappedKey, authTag })
  })
  if (options.agreements === undefined) for (const secret of statics) secret.fill(0)
  m.fill(0)
  return { shared, parts }
}

/**
 * Remembers X25519(sender identity, recipient identity) — the static secret each version-2 tag is made with —
 * between {@link sealForDevices} calls of one sender, so a group's next message costs one X25519 per device
 * instead of two. It holds secrets as sensitive as the identity key itself, in memory only, at most `maxEntries`
 * (the oldest forgotten first); it belongs to the first identity that uses it and empties itself when another
 * does. {@link SealAgreements.clear} zeroes it.
 * @example
 * const agreements = new SealAgreements()
 * sealForDevices(input, { crypto, agreements }) // and every later message of this device
 */
export class SealAgreements {
  /** @param maxEntries - how many recipient devices to remember (default 4,096, at least 1) */
  constructor(maxEntries = 4096) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError('maxEntries must be a positive integer')
    }
    agreementState.set(this, { max: maxEntries, owner: '', secrets: new Map() })
  }

  /** How many recipient devices it remembers. */
  get size(): number {
    return stateOf(this).secrets.size
  }

  /** Forgets (and zeroes) every secret. */
  clear(): void {
    const state = stateOf(this)
    for (const secret of state.secrets.values()) secret.fill(0)
    state.secrets.clear()
    state.owner = ''
  }
}

/** What a {@link SealAgreements} holds, out of reach of its users. */
interface AgreementState {
  readonly max: number
  owner: string
  /** Recipient (X25519 form, hex) → secret, oldest use first. */
  readonly secrets: Map<string, Uint8Array>
}
const agreementState = new WeakMap<SealAgreements, AgreementState>()

function stateOf(agreements: SealAgreements): AgreementState {
  const state = agreementState.get(agreements)
  if (state === undefined) throw new TypeError('agreements must be a SealAgreements')
  return state
}

/** The remembered secrets for `recipients` of `owner`, the missing ones computed and remembered. */
function takeAgreements(
  agreements: SealAgreements,
  owner: string,
  recipients: readonly Uint8Array[],
  compute: (missing: Uint8Array[]) => Uint8Array[],
): Uint8Array[] {
  const state = stateOf(agreements)
  if (owner !== state.owner) {
    agreements.clear()
    state.owner = owner
  }
  const ids = recipients.map((r) => bytesToHex(r))
  const missingAt = ids.flatMap((id, i) => (state.secrets.has(id) ? [] : [i]))
  const fresh = missingAt.length > 0 ? compute(missingAt.map((i) => recipients[i]!)) : []
  const found = new Map(missingAt.map((i, k) => [ids[i]!, fresh[k]!]))
  const out = ids.map((id) => {
    const secret = state.secrets.get(id) ?? found.get(id)!
    // Used now: the newest.
    state.secrets.delete(id)
    state.secrets.set(id, secret)
    return secret
  })
  while (state.secrets.size > state.max) {
    const [oldest, secret] = state.secrets.entries().next().value!
    // Not zeroed when this very call still returns it (more recipients than the cache holds).
    if (!out.includes(secret)) secret.fill(0)
    state.secrets.delete(oldest)
  }
  return out
}

/** X25519(sender identity, R) for each recipient: from `agreements` when given, else computed (and not kept). */
function staticAgreements(
  c: Primitives,
  sender: IdentityKeyPair,
  recipients: readonly Uint8Array[],
  agreements: SealAgreements | undefined,
): Uint8Array[] {
  return remembered(identityDhPublic(sender.publicKey), recipients, agreements, (keys) => {
    const senderSecret = identityDhSecret(sender.secretKey)
    try {
      return dhEach(c, senderSecret, keys)
    } finally {
      senderSecret.fill(0)
    }
  })
}

/**
 * X25519(own identity, peer) for each peer, `own` being this device's identity in X25519 form: the remembered
 * ones from `agreements` (never to be zeroed by the caller), the others computed; without `agreements`, all
 * computed, the caller's to zero. Sealing to a device and opening what it sealed use the same secret.
 */
function remembered(
  own: Uint8Array,
  peers: readonly Uint8Array[],
  agreements: SealAgreements | undefined,
  compute: (missing: Uint8Array[]) => Uint8Array[],
): Uint8Array[] {
  if (agreements === undefined) return compute([...peers])
  return takeAgreements(agreements, bytesToHex(own), peers, compute)
}

/** A version-2 part: version (2 bytes), wrapped_key (2 + 32), auth_tag (2 + 16). */
const SHARED_PART_BYTES = 2 + 2 + MESSAGE_KEY_BYTES + 2 + AUTH_TAG_BYTES

/**
 * The whole envelope a device opens: its part of {@link sealForDevices} followed by the shared bytes (the relay
 * stores the same for each `MultiRecipientSend` copy). Nothing is checked but the size; opening checks the rest.
 * @param part - one of `SharedSeal.parts`
 * @param shared - `SharedSeal.shared`
 * @returns the encoded version-2 `SealedEnvelope`
 * @throws TypeError for non-bytes; ParleyError `TOO_LARGE` beyond {@link MAX_ENVELOPE_BYTES}
 * @example
 * const envelope = joinSealed(parts[0], shared)
 */
export function joinSealed(part: Uint8Array, shared: Uint8Array): Uint8Array {
  abytes(part, undefined, 'part')
  abytes(shared, undefined, 'shared')
  if (part.length + shared.length > MAX_ENVELOPE_BYTES) {
    throw new ParleyError('TOO_LARGE', 'envelope exceeds 256 KiB')
  }
  return concatBytes(part, shared)
}

/**
 * `key` ⊕ HKDF(DH(e, R), E ‖ R, "Parley_Sealed_Shared_Wrap"): masks the message key for one device on sealing,
 * and unmasks it on opening (the same pad both ways).
 */
function masked(
  c: Primitives,
  dhOut: Uint8Array,
  ephemeral: Uint8Array,
  recipient: Uint8Array,
  key: Uint8Array,
): Uint8Array {
  const pad = hkdf256(c, dhOut, concatBytes(ephemeral, recipient), SHARED_WRAP_INFO, MESSAGE_KEY_BYTES)
  for (let j = 0; j < MESSAGE_KEY_BYTES; j++) pad[j]! ^= key[j]!
  return pad
}

/** M's keys (version 2): the ephemeral secret and public key, and the content key. */
function messageKeys(c: Primitives, m: Uint8Array) {
  const out = hkdf256(c, m, EMPTY, SHARED_MESSAGE_INFO, 64)
  const secret = out.slice(0, 32)
  const key = out.slice(32)
  out.fill(0)
  return { secret, publicKey: c.x25519.getPublicKey(secret), key }
}

function sha256Of(c: Primitives, data: Uint8Array): Uint8Array {
  const hasher = c.sha256()
  hasher.update(data)
  return hasher.digest()
}

/** A version-2 copy's tag: what only the sender and this device can compute, over this copy and the ciphertext. */
function sharedTag(
  c: Primitives,
  staticSecret: Uint8Array,
  ephemeral: Uint8Array,
  recipient: Uint8Array,
  wrappedKey: Uint8Array,
  digest: Uint8Array,
  senderIdentityKey: Uint8Array,
): Uint8Array {
  const salt = concatBytes(ephemeral, recipient, wrappedKey, digest, senderIdentityKey)
  return hkdf256(c, staticSecret, salt, SHARED_AUTH_INFO, AUTH_TAG_BYTES)
}

/** Checks the sender fields of `input` and encodes the `SealedContent` both versions encrypt. */
function sealedContent(input: Omit<SealInput, 'recipientIdentityKey'>): Uint8Array {
  abytes(input.senderAddress, ADDRESS_BYTES, 'senderAddress')
  au32(input.senderDeviceId, 'senderDeviceId')
  assertIdentityKeyPair(input.senderIdentity, 'senderIdentity')
  const m = input.message
  if (typeof m !== 'object' || m === null || !Object.hasOwn(MESSAGE_FIELD, m.kind)) {
    throw new TypeError("message must be { kind: 'prekey' | 'ratchet' | 'senderKey', body }")
  }
  abytes(m.body, undefined, 'message.body')
  abytes(input.senderCertificate, undefined, 'senderCertificate')
  const stated = input.senderNumber
  if (stated !== undefined) {
    if (typeof stated.e164 !== 'string' || stated.e164.length === 0 || stated.e164.length > 32) {
      throw new TypeError('senderNumber.e164 must be a non-empty string of at most 32 characters')
    }
    abytes(stated.salt, 32, 'senderNumber.salt')
  }
  const notice = input.addressChange
  if (notice !== undefined) {
    abytes(notice, undefined, 'addressChange')
    if (notice.length === 0 || notice.length > MAX_ADDRESS_CHANGE_BYTES) {
      throw new RangeError(`addressChange must be 1 to ${MAX_ADDRESS_CHANGE_BYTES} bytes`)
    }
  }
  // The session message is embedded as its own encoding (a length-delimited field is the same on the wire for
  // `bytes` and a nested message), so it is not decoded and re-encoded here.
  return concatBytes(
    encodeMessage('SealedContent', {
      senderAddress: input.senderAddress,
      senderDeviceId: input.senderDeviceId,
      senderIdentityKey: input.senderIdentity.publicKey,
    }),
    encodeBytesField(MESSAGE_FIELD[m.kind], m.body),
    encodeMessage('SealedContent', {
      senderCertificate: input.senderCertificate,
      ...(stated ? { senderNumber: stated.e164, senderNumberSalt: stated.salt } : {}),
      ...(notice ? { addressChange: notice } : {}),
    }),
  )
}

/**
 * Opens a sealed envelope addressed to this device and authenticates its sender's identity key.
 * @param recipientIdentity - this device's identity key pair (or just its 32-byte secret key, which costs one
 *   more scalar multiplication)
 * @param envelopeBytes - `Delivery.envelope`
 * @returns sender address, device, identity key, and the session message
 * @throws TypeError / RangeError for a malformed key; ParleyError `BAD_REQUEST` (undecodable), `UNSUPPORTED`
 *   (unknown version), `TOO_LARGE`, `DECRYPT_FAILED` (not for us, or tampered), `VERIFICATION_FAILED`
 *   (inconsistent sender or low-order key)
 * @param options - `crypto`: faster primitives (see {@link CryptoOptions})
 * @example
 * const { senderAddress, senderDeviceId, senderIdentityKey, message } = openEnvelope(me, delivery.envelope)
 */
export function openEnvelope(
  recipientIdentity: IdentityKeyPair | Uint8Array,
  envelopeBytes: Uint8Array,
  options: CryptoOptions & {
    /** Static secrets remembered between this device's calls (see {@link SealAgreements}). */
    readonly agreements?: SealAgreements | undefined
  } = {},
): OpenedEnvelope {
  const c = primitives(options?.crypto)
  let recipientSecret: Uint8Array
  let recipient: Uint8Array
  if (recipientIdentity instanceof Uint8Array) {
    abytes(recipientIdentity, IDENTITY_KEY_BYTES, 'recipientIdentity')
    recipientSecret = identityDhSecret(recipientIdentity)
    recipient = c.x25519.getPublicKey(recipientSecret)
  } else {
    assertIdentityKeyPair(recipientIdentity, 'recipientIdentity')
    recipientSecret = identityDhSecret(recipientIdentity.secretKey)
    recipient = identityDhPublic(recipientIdentity.publicKey)
  }
  abytes(envelopeBytes, undefined, 'envelopeBytes')
  if (envelopeBytes.length > MAX_ENVELOPE_BYTES)
    throw new ParleyError('TOO_LARGE', 'envelope exceeds 256 KiB')
  const env = decodeOrRefuse('SealedEnvelope', envelopeBytes, 'sealed envelope')
  if (env.version !== SEALED_ENVELOPE_VERSION && env.version !== SHARED_ENVELOPE_VERSION)
    throw new ParleyError('UNSUPPORTED', 'unknown sealed envelope version')
  const ephemeral = own(env.ephemeralKey)
  try {
    const mine = { secret: recipientSecret, x: recipient, agreements: options?.agreements }
    const { senderIdentityKey, sealed } =
      env.version === SEALED_ENVELOPE_VERSION
        ? openOne(c, env, mine, ephemeral)
        : openShared(c, env, mine, ephemeral)
    const senderAddress = own(sealed.senderAddress)
    if (senderAddress.length !== ADDRESS_BYTES)
      throw new ParleyError('BAD_REQUEST', 'malformed sender address')
    if (!equalBytes(own(sealed.senderIdentityKey), senderIdentityKey)) {
      throw new ParleyError('VERIFICATION_FAILED', 'sealed content names another sender identity')
    }
    let message: SealedMessage
    if (sealed.prekeyMessage)
      message = { kind: 'prekey', body: encodeMessage('PrekeyMessage', sealed.prekeyMessage) }
    else if (sealed.ratchetMessage) {
      message = { kind: 'ratchet', body: encodeMessage('RatchetMessage', sealed.ratchetMessage) }
    } else if (sealed.senderKeyMessage) {
      message = { kind: 'senderKey', body: encodeMessage('SenderKeyMessage', sealed.senderKeyMessage) }
    } else throw new ParleyError('BAD_REQUEST', 'sealed content carries no message')
    if ((sealed.addressChange?.length ?? 0) > MAX_ADDRESS_CHANGE_BYTES)
      throw new ParleyError('BAD_REQUEST', 'the address-change notice is too large')
    return {
      senderAddress,
      senderDeviceId: sealed.senderDeviceId ?? 0,
      senderIdentityKey,
      message,
      senderCertificate: own(sealed.senderCertificate),
      senderNumber: sealed.senderNumber ?? '',
      senderNumberSalt: own(sealed.senderNumberSalt),
      addressChange: own(sealed.addressChange),
    }
  } finally {
    recipientSecret.fill(0)
  }
}

type DecodedEnvelope = ReturnType<typeof decodeOrRefuse<'SealedEnvelope'>>
type Opened = { senderIdentityKey: Uint8Array; sealed: ReturnType<typeof decodeOrRefuse<'SealedContent'>> }
/** The opening device: its X25519 secret and public key, and the static secrets it remembers. */
type Mine = { secret: Uint8Array; x: Uint8Array; agreements: SealAgreements | undefined }

/** X25519(this device, the sender's identity), remembered when it can be; a computed one is zeroed by `use`. */
function withStatic<T>(
  c: Primitives,
  mine: Mine,
  senderIdentityKey: Uint8Array,
  use: (s: Uint8Array) => T,
): T {
  const [secret] = remembered(mine.x, [identityDhPublic(senderIdentityKey)], mine.agreements, (keys) =>
    keys.map((k) => dh(c, mine.secret, k)),
  )
  try {
    return use(secret!)
  } finally {
    if (mine.agreements === undefined) secret!.fill(0)
  }
}

/** Version 1: the sender's key from the ephemeral-static secret, then the content under the static-static one. */
function openOne(c: Primitives, env: DecodedEnvelope, mine: Mine, ephemeral: Uint8Array): Opened {
  const recipient = mine.x
  const encryptedSenderKey = own(env.encryptedSenderKey)
  if (
    ephemeral.length !== X25519_BYTES ||
    encryptedSenderKey.length !== IDENTITY_KEY_BYTES + 16 ||
    (env.wrappedKey?.length ?? 0) > 0 ||
    (env.authTag?.length ?? 0) > 0
  ) {
    throw new ParleyError('BAD_REQUEST', 'malformed sealed envelope')
  }
  const { chain, key } = ephemeralKeys(c, dh(c, mine.secret, ephemeral), recipient, ephemeral)
  const senderIdentityKey = aeadOpen(c, key, ZERO_NONCE, encryptedSenderKey, ephemeral)
  const k2 = withStatic(c, mine, senderIdentityKey, (s) => staticKey(c, s, chain, encryptedSenderKey))
  const content = aeadOpen(c, k2, ZERO_NONCE, own(env.ciphertext), concatBytes(ephemeral, recipient))
  return { senderIdentityKey, sealed: decodeOrRefuse('SealedContent', content, 'sealed content') }
}

/**
 * Version 2: the message key unmasked, the ephemeral key checked against it, the content opened, and only then
 * the tag checked under the static-static secret with the sender key the content names (DECRYPT_FAILED for
 * anything that does not match: another device's part, a changed ciphertext, a forged sender).
 */
function openShared(c: Primitives, env: DecodedEnvelope, mine: Mine, ephemeral: Uint8Array): Opened {
  const recipient = mine.x
  const wrappedKey = own(env.wrappedKey)
  const tag = own(env.authTag)
  if (
    ephemeral.length !== X25519_BYTES ||
    wrappedKey.length !== MESSAGE_KEY_BYTES ||
    tag.length !== AUTH_TAG_BYTES ||
    (env.encryptedSenderKey?.length ?? 0) > 0
  ) {
    throw new ParleyError('BAD_REQUEST', 'malformed sealed envelope')
  }
  const ciphertext = own(env.ciphertext)
  const mask = dh(c, mine.secret, ephemeral)
  const m = masked(c, mask, ephemeral, recipient, wrappedKey)
  mask.fill(0)
  const { secret, publicKey, key } = messageKeys(c, m)
  m.fill(0)
  secret.fill(0)
  if (!equalBytes(publicKey, ephemeral)) {
    key.fill(0)
    throw new ParleyError('DECRYPT_FAILED', 'the envelope is not for this device')
  }
  let content: Uint8Array
  try {
    content = aeadOpen(c, key, ZERO_NONCE, ciphertext, ephemeral)
  } finally {
    key.fill(0)
  }
  const sealed = decodeOrRefuse('SealedContent', content, 'sealed content')
  const senderIdentityKey = own(sealed.senderIdentityKey)
  if (senderIdentityKey.length !== IDENTITY_KEY_BYTES)
    throw new ParleyError('BAD_REQUEST', 'malformed sender identity key')
  const digest = sha256Of(c, ciphertext)
  const expected = withStatic(c, mine, senderIdentityKey, (s) =>
    sharedTag(c, s, ephemeral, recipient, wrappedKey, digest, senderIdentityKey),
  )
  if (!equalBytes(expected, tag)) {
    throw new ParleyError('DECRYPT_FAILED', 'the envelope does not authenticate its sender to this device')
  }
  return { senderIdentityKey, sealed }
}

/**
 * Opens a sealed envelope and proves its sender: the sender certificate must chain to `trustRoot`, have been
 * valid at `receivedAtMs`, name exactly the identity key that sealed the envelope, and name the claimed
 * address and device; a stated number must open the certified commitment. Anything else is refused before
 * any session state is touched.
 * @param recipientIdentity - this device's identity key pair
 * @param envelopeBytes - `Delivery.envelope`
 * @param options - the pinned trust root and when the relay received the message; `crypto`: faster primitives
 * @returns the proven sender and the session message
 * @throws everything {@link openEnvelope} throws; ParleyError `SENDER_UNVERIFIED` for a missing, invalid,
 *   expired or mismatched certificate or a wrong number opening
 * @example
 * const { sender, message } = openSealedMessage(me, delivery.envelope,
 *   { trustRoot, receivedAtMs: delivery.receivedAtMs })
 */
export function openSealedMessage(
  recipientIdentity: IdentityKeyPair | Uint8Array,
  envelopeBytes: Uint8Array,
  options: {
    trustRoot: Uint8Array
    receivedAtMs: number
    skewMs?: number
    /** Static secrets remembered between this device's calls (see {@link SealAgreements}). */
    agreements?: SealAgreements | undefined
  } & CryptoOptions,
): {
  /** The sender, proven by its certificate. */
  sender: VerifiedSender
  /** What it carried (a session message, or a group message), not yet decrypted. */
  message: SealedMessage
} {
  if (typeof options !== 'object' || options === null) throw new TypeError('options are required')
  abytes(options.trustRoot, 32, 'trustRoot')
  const opened = openEnvelope(recipientIdentity, envelopeBytes, options)
  const certificate = verifySenderCertificate(opened.senderCertificate, {
    trustRoot: options.trustRoot,
    atMs: options.receivedAtMs,
    ...(options.skewMs === undefined ? {} : { skewMs: options.skewMs }),
    crypto: options.crypto,
  })
  if (!equalBytes(certificate.identityKey, opened.senderIdentityKey)) {
    throw new ParleyError('SENDER_UNVERIFIED', 'the certificate is for another identity key')
  }
  if (!equalBytes(certificate.address, opened.senderAddress)) {
    throw new ParleyError('SENDER_UNVERIFIED', 'the certificate is for another address')
  }
  if (certificate.deviceId !== opened.senderDeviceId) {
    throw new ParleyError('SENDER_UNVERIFIED', 'the certificate is for another device')
  }
  let number: string | undefined
  if (opened.senderNumber !== '' || opened.senderNumberSalt.length > 0) {
    if (!opensNumberCommitment(certificate, opened.senderNumber, opened.senderNumberSalt)) {
      throw new ParleyError('SENDER_UNVERIFIED', 'the stated number is not the certified one')
    }
    number = opened.senderNumber
  }
  return {
    sender: {
      address: certificate.address,
      deviceId: certificate.deviceId,
      identityKey: certificate.identityKey,
      number,
      certificate,
      addressChange: opened.addressChange.length > 0 ? opened.addressChange : undefined,
    },
    message: opened.message,
  }
}
