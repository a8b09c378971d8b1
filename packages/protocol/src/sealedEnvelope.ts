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
 * @module
 */
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

/** Current sealed envelope version. */
export const SEALED_ENVELOPE_VERSION = 1
/** The relay's envelope limit (docs/architecture.md §3). */
export const MAX_ENVELOPE_BYTES = 256 * 1024

const EPHEMERAL_INFO = label('Parley_Sealed_Ephemeral')
const STATIC_INFO = label('Parley_Sealed_Static')
const ZERO_NONCE = new Uint8Array(12)

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
  options: { readonly random?: RandomSource } & CryptoOptions = {},
): Uint8Array {
  if (typeof input !== 'object' || input === null) throw new TypeError('input must be an object')
  abytes(input.senderAddress, ADDRESS_BYTES, 'senderAddress')
  au32(input.senderDeviceId, 'senderDeviceId')
  assertIdentityKeyPair(input.senderIdentity, 'senderIdentity')
  abytes(input.recipientIdentityKey, IDENTITY_KEY_BYTES, 'recipientIdentityKey')
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
  const random = options.random ?? defaultRandom
  const c = primitives(options.crypto)

  const recipient = identityDhPublic(input.recipientIdentityKey)
  const e = x25519KeyPair(c, random)
  const { chain, key } = ephemeralKeys(c, dh(c, e.secretKey, recipient), recipient, e.publicKey)
  const encryptedSenderKey = aeadSeal(c, key, ZERO_NONCE, input.senderIdentity.publicKey, e.publicKey)
  const senderSecret = identityDhSecret(input.senderIdentity.secretKey)
  const k2 = staticKey(c, dh(c, senderSecret, recipient), chain, encryptedSenderKey)
  senderSecret.fill(0)
  e.secretKey.fill(0)

  // The session message is embedded as its own encoding (a length-delimited field is the same on the wire for
  // `bytes` and a nested message), so it is not decoded and re-encoded here.
  const content = concatBytes(
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
  options: CryptoOptions = {},
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
  if (env.version !== SEALED_ENVELOPE_VERSION)
    throw new ParleyError('UNSUPPORTED', 'unknown sealed envelope version')
  const ephemeral = own(env.ephemeralKey)
  const encryptedSenderKey = own(env.encryptedSenderKey)
  if (ephemeral.length !== X25519_BYTES || encryptedSenderKey.length !== IDENTITY_KEY_BYTES + 16) {
    throw new ParleyError('BAD_REQUEST', 'malformed sealed envelope')
  }
  try {
    const { chain, key } = ephemeralKeys(c, dh(c, recipientSecret, ephemeral), recipient, ephemeral)
    const senderIdentityKey = aeadOpen(c, key, ZERO_NONCE, encryptedSenderKey, ephemeral)
    const k2 = staticKey(
      c,
      dh(c, recipientSecret, identityDhPublic(senderIdentityKey)),
      chain,
      encryptedSenderKey,
    )
    const content = aeadOpen(c, k2, ZERO_NONCE, own(env.ciphertext), concatBytes(ephemeral, recipient))
    const sealed = decodeOrRefuse('SealedContent', content, 'sealed content')
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
  options: { trustRoot: Uint8Array; receivedAtMs: number; skewMs?: number } & CryptoOptions,
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
