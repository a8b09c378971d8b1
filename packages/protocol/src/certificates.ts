/**
 * Sender certificates (after Signal's sealed sender): the relay's long-term Ed25519 **trust root** certifies
 * short-lived **signer** keys (`ServerCertificate`); a signer certifies, for hours, that an authenticated device
 * holds an identity key at an address (`SenderCertificate`), with a commitment to the account's number made at
 * activation. A sender puts its certificate inside every sealed envelope; the recipient refuses the message
 * unless the certificate chains to the trust root it pinned and names exactly the identity key that opened the
 * envelope. This is what stops one account from posing as another.
 *
 * Signatures cover a distinct ASCII label followed by the encoded body, and the body travels as the exact
 * bytes that were signed, so no re-encoding can change what is verified.
 * @module
 */
import { ed25519 } from '@noble/curves/ed25519.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import type { CryptoOptions } from './cryptoProvider.js'
import { ParleyError } from './errors.js'
import type * as wire from './gen/types.js'
import {
  ADDRESS_BYTES,
  abytes,
  au32,
  concatBytes,
  equalBytes,
  IDENTITY_KEY_BYTES,
  SIGNATURE_BYTES,
} from './internal/bytes.js'
import { label, own, type Primitives, primitives } from './internal/e2eCrypto.js'
import { decodeMessage, decodeOrRefuse, encodeMessage } from './internal/pb.js'

const LABEL_SERVER_CERT = label('parley/v1/server-certificate')
const LABEL_SENDER_CERT = label('parley/v1/sender-certificate')
const LABEL_NUMBER_COMMITMENT = label('parley/v1/number-commitment')
const LABEL_DELIVERY_TOKEN = label('parley/v1/delivery-token')

/** Length of a number commitment, a number salt, a delivery token and its verifier. */
export const COMMITMENT_BYTES = 32
/** Clock skew tolerated when checking a certificate's expiry (5 minutes). */
export const CERTIFICATE_SKEW_MS = 5 * 60_000

/** What a sender certificate says, once verified. */
export interface SenderCertificate {
  /** The sender account's 32-byte address. */
  readonly address: Uint8Array
  /** The sender device's id. */
  readonly deviceId: number
  /** The sender device's 32-byte Ed25519 identity key. */
  readonly identityKey: Uint8Array
  /** When the certificate stops being valid (ms since the epoch). */
  readonly expiresAtMs: number
  /** The commitment to the account's number made at activation (32 bytes), or empty when it has none. */
  readonly numberCommitment: Uint8Array
  /** Id of the relay signing key that issued it. */
  readonly signerKeyId: number
  /** When that signing key's own certificate expires. */
  readonly signerExpiresAtMs: number
}

/** What the relay certifies about a device; see {@link createSenderCertificate}. */
export interface SenderCertificateFields {
  /** The account's 32-byte address. */
  readonly address: Uint8Array
  /** The device's id (u32), as the relay assigned it at activation. */
  readonly deviceId: number
  /** The device's 32-byte Ed25519 identity key. */
  readonly identityKey: Uint8Array
  /**
   * When the certificate stops being valid (ms since the epoch); no later than the signing key's own expiry, or
   * verification refuses it.
   */
  readonly expiresAtMs: number
  /** 32 bytes, or empty for an account without one. */
  readonly numberCommitment: Uint8Array
}

function refuse(message: string, cause?: unknown): never {
  throw new ParleyError('SENDER_UNVERIFIED', message, cause === undefined ? undefined : { cause })
}

function verifyEd25519(
  c: Primitives,
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (publicKey.length !== 32 || signature.length !== SIGNATURE_BYTES) return false
  return c.ed25519Verify(publicKey, message, signature)
}

/**
 * Signing-key certificates already verified under a trust root, by their exact bytes. A relay's signing key
 * changes about monthly, so every message after the first from any sender skips this signature check (about a
 * third of opening a sealed message with node:crypto). A miss only costs the check again; the sender
 * certificate's own signature is always verified. Kept per set of primitives, so what one provider verified
 * is never taken on trust by a caller that uses another.
 */
const verifiedSignersOf = new WeakMap<Primitives, Set<string>>()
const MAX_VERIFIED_SIGNERS = 16

function verifySigner(
  c: Primitives,
  trustRoot: Uint8Array,
  body: Uint8Array,
  signature: Uint8Array,
): boolean {
  const key = `${bytesToHex(trustRoot)}:${bytesToHex(body)}:${bytesToHex(signature)}`
  let verifiedSigners = verifiedSignersOf.get(c)
  if (verifiedSigners === undefined) {
    verifiedSigners = new Set()
    verifiedSignersOf.set(c, verifiedSigners)
  }
  if (verifiedSigners.has(key)) return true
  if (!verifyEd25519(c, trustRoot, concatBytes(LABEL_SERVER_CERT, body), signature)) return false
  if (verifiedSigners.size >= MAX_VERIFIED_SIGNERS) verifiedSigners.clear()
  verifiedSigners.add(key)
  return true
}

function aTime(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer (ms since the epoch)`)
  }
}

/**
 * The commitment to a number that the relay certifies at activation:
 * `SHA-256("parley/v1/number-commitment" ‖ salt ‖ UTF-8(e164))`. With a 32-byte random salt it reveals
 * nothing about the number to whoever holds only the commitment.
 * @param e164 - the account's number in E.164 form
 * @param salt - 32 random bytes chosen by the device at activation
 * @returns the 32-byte commitment
 * @throws TypeError / RangeError for a non-string number or a salt of the wrong length
 * @example const c = numberCommitment('+14155550100', salt)
 */
export function numberCommitment(e164: string, salt: Uint8Array): Uint8Array {
  if (typeof e164 !== 'string' || e164.length === 0 || e164.length > 32) {
    throw new TypeError('e164 must be a non-empty string of at most 32 characters')
  }
  abytes(salt, COMMITMENT_BYTES, 'salt')
  return sha256(concatBytes(LABEL_NUMBER_COMMITMENT, salt, new TextEncoder().encode(e164)))
}

/**
 * What the relay stores for an account's delivery token: `SHA-256("parley/v1/delivery-token" ‖ token)`, so a
 * copy of the relay's database does not give anyone the right to send to the account.
 * @param token - the 32-byte delivery token
 * @returns the 32-byte verifier
 * @throws TypeError / RangeError for a token of the wrong length
 * @example const verifier = deliveryTokenVerifier(token)
 */
export function deliveryTokenVerifier(token: Uint8Array): Uint8Array {
  abytes(token, COMMITMENT_BYTES, 'token')
  return sha256(concatBytes(LABEL_DELIVERY_TOKEN, token))
}

/**
 * Certifies a relay signing key with the trust root (relay side).
 * @param rootSecretKey - the trust root's 32-byte Ed25519 secret key
 * @param signer - the signing key's id, 32-byte public key and expiry
 * @returns an encoded `parley.v1.ServerCertificate`
 * @throws TypeError / RangeError for malformed arguments
 * @example const cert = createServerCertificate(root.secretKey, { keyId: 1, publicKey, expiresAtMs })
 */
export function createServerCertificate(
  rootSecretKey: Uint8Array,
  signer: { keyId: number; publicKey: Uint8Array; expiresAtMs: number },
): Uint8Array {
  abytes(rootSecretKey, 32, 'rootSecretKey')
  au32(signer.keyId, 'keyId')
  abytes(signer.publicKey, 32, 'publicKey')
  aTime(signer.expiresAtMs, 'expiresAtMs')
  const body = encodeMessage('ServerCertificateBody', signer)
  const signature = ed25519.sign(concatBytes(LABEL_SERVER_CERT, body), rootSecretKey)
  return encodeMessage('ServerCertificate', { body, signature })
}

/**
 * Issues a sender certificate with a signing key (relay side).
 * @param signerSecretKey - the signing key's 32-byte Ed25519 secret key
 * @param serverCertificate - the signing key's certificate from {@link createServerCertificate}
 * @param fields - what is certified
 * @returns an encoded `parley.v1.SenderCertificate`
 * @throws TypeError / RangeError for malformed arguments; ParleyError `BAD_REQUEST` for an undecodable
 *   server certificate
 * @example const cert = createSenderCertificate(signer.secretKey, signer.certificate, { address, deviceId,
 *   identityKey, expiresAtMs: Date.now() + 86_400_000, numberCommitment })
 */
export function createSenderCertificate(
  signerSecretKey: Uint8Array,
  serverCertificate: Uint8Array,
  fields: SenderCertificateFields,
): Uint8Array {
  abytes(signerSecretKey, 32, 'signerSecretKey')
  abytes(serverCertificate, undefined, 'serverCertificate')
  abytes(fields.address, ADDRESS_BYTES, 'address')
  au32(fields.deviceId, 'deviceId')
  abytes(fields.identityKey, IDENTITY_KEY_BYTES, 'identityKey')
  aTime(fields.expiresAtMs, 'expiresAtMs')
  abytes(fields.numberCommitment, undefined, 'numberCommitment')
  if (fields.numberCommitment.length !== 0 && fields.numberCommitment.length !== COMMITMENT_BYTES) {
    throw new RangeError('numberCommitment must be empty or 32 bytes')
  }
  const signer = decodeOrRefuse('ServerCertificate', serverCertificate, 'server certificate')
  const body = encodeMessage('SenderCertificateBody', {
    address: fields.address,
    deviceId: fields.deviceId,
    identityKey: fields.identityKey,
    expiresAtMs: fields.expiresAtMs,
    numberCommitment: fields.numberCommitment,
    signer,
  })
  const signature = ed25519.sign(concatBytes(LABEL_SENDER_CERT, body), signerSecretKey)
  return encodeMessage('SenderCertificate', { body, signature })
}

/** Options of {@link verifySenderCertificate}. */
export interface VerifyCertificateOptions extends CryptoOptions {
  /** The relay's pinned 32-byte trust root. */
  readonly trustRoot: Uint8Array
  /**
   * The time the certificate must have been valid at: for a received message, when the relay received it
   * (`Delivery.received_at_ms`), so mail that waited in a mailbox is not refused for its age.
   */
  readonly atMs: number
  /** Tolerated clock skew (default {@link CERTIFICATE_SKEW_MS}). */
  readonly skewMs?: number
}

/**
 * Verifies a sender certificate: the signer's certificate is signed by `trustRoot`, the sender certificate by
 * the signer, neither had expired at `atMs` (± skew), and the sender certificate does not outlive its signer.
 * Never trusts anything in the certificate before its signature verified.
 * @param certificate - an encoded `parley.v1.SenderCertificate` (network input)
 * @param options - the pinned trust root and the time to check at; `crypto`: a faster Ed25519 verifier
 * @returns what the certificate says
 * @throws TypeError / RangeError for a malformed trust root or time (caller mistakes); ParleyError
 *   `SENDER_UNVERIFIED` for anything wrong with the certificate
 * @example const cert = verifySenderCertificate(bytes, { trustRoot, atMs: delivery.receivedAtMs })
 */
export function verifySenderCertificate(
  certificate: Uint8Array,
  options: VerifyCertificateOptions,
): SenderCertificate {
  abytes(options?.trustRoot, 32, 'trustRoot')
  aTime(options.atMs, 'atMs')
  const c = primitives(options.crypto)
  const skew = options.skewMs ?? CERTIFICATE_SKEW_MS
  aTime(skew, 'skewMs')
  if (!(certificate instanceof Uint8Array) || certificate.length === 0) refuse('no sender certificate')
  let outer: wire.SenderCertificate
  let body: wire.SenderCertificateBody
  let signerBody: wire.ServerCertificateBody
  try {
    outer = decodeMessage('SenderCertificate', certificate)
    body = decodeMessage('SenderCertificateBody', own(outer.body))
    const signer = body.signer
    if (!signer) refuse('the certificate names no signer')
    if (!verifySigner(c, options.trustRoot, own(signer.body), own(signer.signature))) {
      refuse('the signing key is not certified by the pinned trust root')
    }
    signerBody = decodeMessage('ServerCertificateBody', own(signer.body))
  } catch (cause) {
    if (ParleyError.is(cause, 'SENDER_UNVERIFIED')) throw cause
    refuse('malformed sender certificate', cause)
  }
  const signerKey = own(signerBody.publicKey)
  if (!verifyEd25519(c, signerKey, concatBytes(LABEL_SENDER_CERT, own(outer.body)), own(outer.signature))) {
    refuse('the sender certificate signature does not verify')
  }
  const signerExpiresAtMs = Number(signerBody.expiresAtMs ?? 0)
  const expiresAtMs = Number(body.expiresAtMs ?? 0)
  if (expiresAtMs > signerExpiresAtMs) refuse('the sender certificate outlives its signing key')
  if (expiresAtMs + skew < options.atMs) refuse('the sender certificate has expired')
  const address = own(body.address)
  const identityKey = own(body.identityKey)
  const commitment = own(body.numberCommitment)
  if (
    address.length !== ADDRESS_BYTES ||
    identityKey.length !== IDENTITY_KEY_BYTES ||
    (commitment.length !== 0 && commitment.length !== COMMITMENT_BYTES)
  ) {
    refuse('malformed sender certificate')
  }
  return {
    address,
    deviceId: body.deviceId ?? 0,
    identityKey,
    expiresAtMs,
    numberCommitment: commitment,
    signerKeyId: signerBody.keyId ?? 0,
    signerExpiresAtMs,
  }
}

/**
 * Whether `(e164, salt)` opens a certificate's number commitment (constant time).
 * @param cert - a verified certificate
 * @param e164 - the number the sender states
 * @param salt - the salt the sender gives
 * @returns true only when the certificate has a commitment and it opens to this number
 * @example if (!opensNumberCommitment(cert, stated, salt)) throw new ParleyError('SENDER_UNVERIFIED', '…')
 */
export function opensNumberCommitment(cert: SenderCertificate, e164: string, salt: Uint8Array): boolean {
  if (cert.numberCommitment.length !== COMMITMENT_BYTES) return false
  if (typeof e164 !== 'string' || e164.length === 0 || e164.length > 32) return false
  if (!(salt instanceof Uint8Array) || salt.length !== COMMITMENT_BYTES) return false
  return equalBytes(numberCommitment(e164, salt), cert.numberCommitment)
}

const LABEL_OPRF_KEY = label('parley/v1/oprf-key')

/** What an OPRF key certificate says, once verified. */
export interface OprfKeyCertificateFields {
  /** The key's epoch. */
  readonly keyId: number
  /** The 32-byte ristretto255 public key. */
  readonly publicKey: Uint8Array
  /** When the epoch started (ms since the epoch). */
  readonly validFromMs: number
  /** 0 while current; after a rotation, the end of its grace period. */
  readonly validUntilMs: number
}

/**
 * Certifies one OPRF key epoch with the trust root (relay side), so that clients can tell the relay's keys
 * from keys injected by anyone else, and a relay that hands clients different keys for one epoch signs
 * evidence of it.
 * @param rootSecretKey - the trust root's 32-byte Ed25519 secret key
 * @param key - the epoch, public key and validity to certify
 * @returns an encoded `parley.v1.OprfKeyCertificate`
 * @throws TypeError / RangeError for malformed arguments
 * @example const cert = createOprfKeyCertificate(root.secretKey, { keyId: 1, publicKey, validFromMs, validUntilMs: 0 })
 */
export function createOprfKeyCertificate(
  rootSecretKey: Uint8Array,
  key: OprfKeyCertificateFields,
): Uint8Array {
  abytes(rootSecretKey, 32, 'rootSecretKey')
  au32(key.keyId, 'keyId')
  abytes(key.publicKey, 32, 'publicKey')
  aTime(key.validFromMs, 'validFromMs')
  aTime(key.validUntilMs, 'validUntilMs')
  const body = encodeMessage('OprfKeyCertificateBody', key)
  const signature = ed25519.sign(concatBytes(LABEL_OPRF_KEY, body), rootSecretKey)
  return encodeMessage('OprfKeyCertificate', { body, signature })
}

/**
 * Verifies that an announced OPRF key is certified by the pinned trust root, for exactly this key id and
 * public key, and (when `atMs` is given) that its grace period has not ended.
 * @param certificate - an encoded `parley.v1.OprfKeyCertificate` (network input)
 * @param trustRoot - the pinned 32-byte trust root
 * @param key - the key id and public key as announced beside the certificate
 * @param atMs - the time to check the validity at, ± {@link CERTIFICATE_SKEW_MS}; omitted: not checked
 * @param options - `crypto`: a faster Ed25519 verifier (see {@link CryptoOptions})
 * @returns what the certificate says
 * @throws TypeError / RangeError for a malformed trust root (a caller mistake); ParleyError
 *   `VERIFICATION_FAILED` for a missing, malformed, forged, mismatched or expired certificate
 * @example verifyOprfKeyCertificate(k.certificate, root, { keyId: k.keyId, publicKey: k.publicKey }, Date.now())
 */
export function verifyOprfKeyCertificate(
  certificate: Uint8Array | null | undefined,
  trustRoot: Uint8Array,
  key: { keyId: number; publicKey: Uint8Array },
  atMs?: number,
  options: CryptoOptions = {},
): OprfKeyCertificateFields {
  abytes(trustRoot, 32, 'trustRoot')
  const c = primitives(options?.crypto)
  const fail = (why: string, cause?: unknown): never => {
    throw new ParleyError(
      'VERIFICATION_FAILED',
      `OPRF key ${key.keyId}: ${why}`,
      cause === undefined ? undefined : { cause },
    )
  }
  if (!(certificate instanceof Uint8Array) || certificate.length === 0)
    fail('not certified by the trust root')
  let outer: wire.OprfKeyCertificate
  let body: wire.OprfKeyCertificateBody
  try {
    outer = decodeMessage('OprfKeyCertificate', certificate!)
    if (!verifyEd25519(c, trustRoot, concatBytes(LABEL_OPRF_KEY, own(outer.body)), own(outer.signature))) {
      fail('the certificate is not signed by the pinned trust root')
    }
    body = decodeMessage('OprfKeyCertificateBody', own(outer.body))
  } catch (cause) {
    if (ParleyError.is(cause, 'VERIFICATION_FAILED')) throw cause
    return fail('malformed certificate', cause)
  }
  const publicKey = own(body.publicKey)
  if (
    (body.keyId ?? 0) !== key.keyId ||
    !(key.publicKey instanceof Uint8Array) ||
    !equalBytes(publicKey, key.publicKey)
  ) {
    fail('the certificate is for another key')
  }
  const validFromMs = Number(body.validFromMs ?? 0)
  const validUntilMs = Number(body.validUntilMs ?? 0)
  if (atMs !== undefined && validUntilMs !== 0 && validUntilMs + CERTIFICATE_SKEW_MS < atMs) {
    fail('its grace period has ended')
  }
  return { keyId: key.keyId, publicKey, validFromMs, validUntilMs }
}
