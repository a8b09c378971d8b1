/**
 * Linking a new device without SMS (docs/architecture.md §9.3). The primary gets a one-use rendezvous from the
 * relay and shows a **link code**: `parley-link:` + base64url(version ‖ rendezvous id ‖ link secret), the secret
 * never reaching the relay. The two devices then talk through the rendezvous in **link messages** sealed under
 * keys derived from the secret, one key per direction:
 *
 *   key = HKDF-SHA-256(ikm secret, salt rendezvousId, info "parley/v1/link/" ‖ direction, 32 bytes)
 *   message = nonce (12 random bytes) ‖ ChaCha20-Poly1305(key, nonce, plaintext, ad version ‖ rendezvousId ‖ info)
 *
 * so a message opens only with the secret, only for its rendezvous, and only in the direction it was sealed
 * for. What travels: a `LinkRequest` (new device → primary) and a `LinkGrant` (primary → new device).
 * @module
 */

import { sha256 } from '@noble/hashes/sha2.js'
import { COMMITMENT_BYTES } from './certificates.js'
import type { CryptoOptions } from './cryptoProvider.js'
import { ParleyError } from './errors.js'
import type * as wire from './gen/types.js'
import { fromBase64url, toBase64url } from './internal/base64url.js'
import { ADDRESS_BYTES, abytes, au32, concatBytes, IDENTITY_KEY_BYTES } from './internal/bytes.js'
import {
  aeadOpen,
  aeadSeal,
  defaultRandom,
  draw,
  hkdf256,
  identityDhPublic,
  label,
  own,
  type Primitives,
  primitives,
  type RandomSource,
} from './internal/e2eCrypto.js'
import { encodeMessage } from './internal/pb.js'
import { decodeCanonical } from './internal/signedBody.js'

/** The text every link code starts with. */
export const LINK_CODE_PREFIX = 'parley-link:'
/** The link code version this package makes and reads; it is also bound into every link message. */
export const LINK_CODE_VERSION = 1
/** Length of a rendezvous id (chosen by the relay). */
export const RENDEZVOUS_ID_BYTES = 16
/** Length of a link secret (chosen by the primary, never sent to the relay). */
export const LINK_SECRET_BYTES = 32
/** Length of the random nonce that starts every link message. */
export const LINK_NONCE_BYTES = 12

const CODE_BYTES = 1 + RENDEZVOUS_ID_BYTES + LINK_SECRET_BYTES
/** Which way a link message goes: from the new device to the primary, or back. */
export type LinkDirection = 'to-primary' | 'to-new-device'

const INFO: Readonly<Record<LinkDirection, Uint8Array>> = {
  'to-primary': label('parley/v1/link/to-primary'),
  'to-new-device': label('parley/v1/link/to-new-device'),
}

/** What a link code carries. */
export interface LinkCode {
  /** The relay's 16-byte rendezvous id. */
  readonly rendezvousId: Uint8Array
  /** The primary's 32-byte link secret. */
  readonly secret: Uint8Array
}

/** What {@link sealLinkMessage} seals. */
export interface SealLinkInput extends LinkCode {
  /** Which way the message goes; it opens only for the same direction. */
  readonly direction: LinkDirection
  /** The message, e.g. from {@link encodeLinkRequest} or {@link encodeLinkGrant}. */
  readonly plaintext: Uint8Array
}

/** What {@link openLinkMessage} opens. */
export interface OpenLinkInput extends LinkCode {
  /** The direction the message was sealed for. */
  readonly direction: LinkDirection
  /** The sealed message from the rendezvous (network input). */
  readonly sealed: Uint8Array
}

/** What a new device sends the primary: its device key. */
export interface LinkRequestFields {
  /** The new device's 32-byte Ed25519 device key. */
  readonly deviceKey: Uint8Array
}

/** What the primary answers a new device with. */
export interface LinkGrantFields {
  /** The account's 32-byte address. */
  readonly address: Uint8Array
  /** The id the primary gave the new device (u32, not 0, and not the primary's). */
  readonly deviceId: number
  /**
   * The encoded `DeviceList` with the new device in it, signed by the account identity; not checked here: the
   * new device verifies it with `verifyDeviceList` once it knows the identity to check it against.
   */
  readonly deviceList: Uint8Array
  /** The account's number in E.164 form (at most 32 characters). */
  readonly number: string
  /** The 32-byte salt that opens the account's number commitment with `number`. */
  readonly numberSalt: Uint8Array
  /** A 32-byte key the primary's history upload is sealed under; empty when no history is sent. */
  readonly historyKey: Uint8Array
  /**
   * The account identity (32-byte Ed25519 public key) that signed `deviceList`; empty in grants from before it
   * was carried. The new device verifies the list, and later ones, under it.
   */
  readonly accountIdentity?: Uint8Array
}

function aDirection(direction: unknown): asserts direction is LinkDirection {
  if (direction !== 'to-primary' && direction !== 'to-new-device') {
    throw new TypeError("direction must be 'to-primary' or 'to-new-device'")
  }
}

function aLinkCode(code: LinkCode): void {
  if (typeof code !== 'object' || code === null) throw new TypeError('the link code must be an object')
  abytes(code.rendezvousId, RENDEZVOUS_ID_BYTES, 'rendezvousId')
  abytes(code.secret, LINK_SECRET_BYTES, 'secret')
}

function linkKey(c: Primitives, code: LinkCode, direction: LinkDirection) {
  return {
    key: hkdf256(c, code.secret, code.rendezvousId, INFO[direction], 32),
    ad: concatBytes(Uint8Array.of(LINK_CODE_VERSION), code.rendezvousId, INFO[direction]),
  }
}

/**
 * A fresh link secret.
 * @param random - source of random bytes; defaults to the platform CSPRNG (pass a seeded one only in tests)
 * @returns {@link LINK_SECRET_BYTES} random bytes
 * @throws TypeError if `random` does not return 32 bytes
 * @example const code = encodeLinkCode({ rendezvousId, secret: createLinkSecret() })
 */
export function createLinkSecret(random: RandomSource = defaultRandom): Uint8Array {
  return draw(random, LINK_SECRET_BYTES).slice()
}

/**
 * The text of a link code, to show as a QR code: {@link LINK_CODE_PREFIX} + unpadded base64url of
 * `version ‖ rendezvousId ‖ secret` (RFC 4648 §5).
 * @param code - the relay's rendezvous id and the primary's link secret
 * @returns the link code
 * @throws TypeError / RangeError for wrong lengths
 * @example const text = encodeLinkCode({ rendezvousId, secret })
 */
export function encodeLinkCode(code: LinkCode): string {
  aLinkCode(code)
  return (
    LINK_CODE_PREFIX +
    toBase64url(concatBytes(Uint8Array.of(LINK_CODE_VERSION), code.rendezvousId, code.secret))
  )
}

/**
 * Reads a link code (scanned or typed, so untrusted input).
 * @param text - the link code
 * @returns its rendezvous id and link secret
 * @throws ParleyError `BAD_REQUEST` for anything but a link code of the right prefix, canonical base64url and
 *   length; ParleyError `UNSUPPORTED` for a link code of another version
 * @example const { rendezvousId, secret } = decodeLinkCode(scanned)
 */
export function decodeLinkCode(text: string): LinkCode {
  const malformed = (): never => {
    throw new ParleyError('BAD_REQUEST', 'not a Parley link code')
  }
  if (typeof text !== 'string' || !text.startsWith(LINK_CODE_PREFIX)) malformed()
  const bytes = fromBase64url(text.slice(LINK_CODE_PREFIX.length))
  if (bytes === undefined || bytes.length === 0) return malformed()
  if (bytes[0] !== LINK_CODE_VERSION) throw new ParleyError('UNSUPPORTED', 'unknown link code version')
  if (bytes.length !== CODE_BYTES) malformed()
  return {
    rendezvousId: bytes.slice(1, 1 + RENDEZVOUS_ID_BYTES),
    secret: bytes.slice(1 + RENDEZVOUS_ID_BYTES),
  }
}

/**
 * Seals a link message for one direction of a rendezvous (see the module's construction).
 * @param input - the link code's rendezvous id and secret, the direction, and the plaintext
 * @param options - `random` for tests; `crypto`: faster primitives (see {@link CryptoOptions})
 * @returns `nonce ‖ ciphertext ‖ tag`
 * @throws TypeError / RangeError for malformed input
 * @example const sealed = sealLinkMessage({ ...code, direction: 'to-primary', plaintext: encodeLinkRequest({ deviceKey }) })
 */
export function sealLinkMessage(
  input: SealLinkInput,
  options: { readonly random?: RandomSource } & CryptoOptions = {},
): Uint8Array {
  aLinkCode(input)
  aDirection(input.direction)
  abytes(input.plaintext, undefined, 'plaintext')
  const c = primitives(options?.crypto)
  const nonce = draw(options?.random ?? defaultRandom, LINK_NONCE_BYTES)
  const { key, ad } = linkKey(c, input, input.direction)
  try {
    return concatBytes(nonce, aeadSeal(c, key, nonce, input.plaintext, ad))
  } finally {
    key.fill(0)
  }
}

/**
 * Opens a link message sealed by {@link sealLinkMessage} for this rendezvous and direction.
 * @param input - the link code's rendezvous id and secret, the direction it was sealed for, and the message
 * @param options - `crypto`: faster primitives (see {@link CryptoOptions})
 * @returns the plaintext
 * @throws TypeError / RangeError for a malformed code or direction (caller mistakes); ParleyError
 *   `DECRYPT_FAILED` for a message that is too short, or was not sealed with this secret for this rendezvous and
 *   direction, or was changed
 * @example const request = decodeLinkRequest(openLinkMessage({ ...code, direction: 'to-primary', sealed }))
 */
export function openLinkMessage(input: OpenLinkInput, options: CryptoOptions = {}): Uint8Array {
  aLinkCode(input)
  aDirection(input.direction)
  abytes(input.sealed, undefined, 'sealed')
  const c = primitives(options?.crypto)
  const { key, ad } = linkKey(c, input, input.direction)
  try {
    // Shorter than a nonce and a tag, the ciphertext is shorter than a tag, which aeadOpen refuses.
    const nonce = input.sealed.subarray(0, LINK_NONCE_BYTES)
    return aeadOpen(c, key, nonce, input.sealed.subarray(LINK_NONCE_BYTES), ad)
  } finally {
    key.fill(0)
  }
}

/**
 * Encodes what a new device sends the primary.
 * @param fields - the new device's device key
 * @returns an encoded `parley.v1.LinkRequest`, to seal `'to-primary'`
 * @throws TypeError / RangeError unless the key is 32 bytes
 * @example const plaintext = encodeLinkRequest({ deviceKey: device.publicKey })
 */
export function encodeLinkRequest(fields: LinkRequestFields): Uint8Array {
  if (typeof fields !== 'object' || fields === null) throw new TypeError('fields must be an object')
  abytes(fields.deviceKey, IDENTITY_KEY_BYTES, 'deviceKey')
  return encodeMessage('LinkRequest', { deviceKey: fields.deviceKey })
}

function decodeOrMalformed<N extends 'LinkRequest' | 'LinkGrant'>(type: N, bytes: Uint8Array, what: string) {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`)
  try {
    return decodeCanonical(type, bytes) as wire.Messages[N]
  } catch (cause) {
    throw new ParleyError('BAD_REQUEST', `malformed ${what}`, { cause })
  }
}

/**
 * Decodes what a new device sent (after {@link openLinkMessage}) and checks that its device key is a valid
 * Ed25519 public key of large order.
 * @param bytes - an encoded `parley.v1.LinkRequest`
 * @returns the device key
 * @throws ParleyError `BAD_REQUEST` for a non-canonical encoding or a key that is not 32 bytes;
 *   `VERIFICATION_FAILED` for a key that is not a valid point or has small order
 * @example const { deviceKey } = decodeLinkRequest(plaintext)
 */
export function decodeLinkRequest(bytes: Uint8Array): LinkRequestFields {
  const m = decodeOrMalformed('LinkRequest', bytes, 'link request')
  const deviceKey = own(m.deviceKey)
  if (deviceKey.length !== IDENTITY_KEY_BYTES)
    throw new ParleyError('BAD_REQUEST', 'malformed link request: device key')
  identityDhPublic(deviceKey)
  return { deviceKey }
}

function aNumber(value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 32) {
    throw new TypeError('number must be a non-empty string of at most 32 characters')
  }
}

/**
 * Encodes what the primary answers a new device with.
 * @param fields - address, the new device's id, the signed device list, the number, its salt and the history key
 * @returns an encoded `parley.v1.LinkGrant`, to seal `'to-new-device'`
 * @throws TypeError / RangeError for wrong lengths, a device id that is 0, or an empty device list
 * @example const plaintext = encodeLinkGrant({ address, deviceId: 2, deviceList, number, numberSalt, historyKey })
 */
export function encodeLinkGrant(fields: LinkGrantFields): Uint8Array {
  if (typeof fields !== 'object' || fields === null) throw new TypeError('fields must be an object')
  abytes(fields.address, ADDRESS_BYTES, 'address')
  au32(fields.deviceId, 'deviceId')
  if (fields.deviceId === 0) throw new RangeError('a device id must not be 0')
  abytes(fields.deviceList, undefined, 'deviceList')
  if (fields.deviceList.length === 0) throw new RangeError('deviceList must not be empty')
  aNumber(fields.number)
  abytes(fields.numberSalt, COMMITMENT_BYTES, 'numberSalt')
  abytes(fields.historyKey, undefined, 'historyKey')
  if (fields.historyKey.length !== 0 && fields.historyKey.length !== 32) {
    throw new RangeError('historyKey must be empty or 32 bytes')
  }
  const accountIdentity = fields.accountIdentity ?? new Uint8Array(0)
  abytes(accountIdentity, undefined, 'accountIdentity')
  if (accountIdentity.length !== 0 && accountIdentity.length !== 32) {
    throw new RangeError('accountIdentity must be empty or 32 bytes')
  }
  return encodeMessage('LinkGrant', {
    address: fields.address,
    deviceId: fields.deviceId,
    deviceList: fields.deviceList,
    number: fields.number,
    numberSalt: fields.numberSalt,
    historyKey: fields.historyKey,
    accountIdentity,
  })
}

/**
 * Decodes what the primary answered (after {@link openLinkMessage}). The device list inside is not verified
 * here: pass it to `verifyDeviceList` with the account identity, and check that it holds `deviceId` with
 * this device's key.
 * @param bytes - an encoded `parley.v1.LinkGrant`
 * @returns its fields
 * @throws ParleyError `BAD_REQUEST` for a non-canonical encoding or any field of the wrong length or range
 * @example const grant = decodeLinkGrant(openLinkMessage({ ...code, direction: 'to-new-device', sealed }))
 */
export function decodeLinkGrant(bytes: Uint8Array): LinkGrantFields {
  const m = decodeOrMalformed('LinkGrant', bytes, 'link grant')
  const fields = {
    address: own(m.address),
    deviceId: m.deviceId,
    deviceList: own(m.deviceList),
    number: m.number,
    numberSalt: own(m.numberSalt),
    historyKey: own(m.historyKey),
    accountIdentity: own(m.accountIdentity),
  }
  try {
    encodeLinkGrant(fields)
  } catch (cause) {
    throw new ParleyError('BAD_REQUEST', 'malformed link grant', { cause })
  }
  return fields
}

/**
 * A short fingerprint of a new device's key for the two screens of a link to show (the user checks that they
 * match): 12 decimal digits, in groups of four, from SHA-256(`"parley/v1/link-fingerprint"` ‖ key). It is a
 * convenience on top of the link secret, which already authenticates the exchange.
 * @param deviceKey - the new device's 32-byte Ed25519 device key
 * @returns e.g. `"0412 9931 7750"`
 * @throws TypeError / RangeError when `deviceKey` is not 32 bytes
 * @example linkFingerprint(request.deviceKey)
 */
export function linkFingerprint(deviceKey: Uint8Array): string {
  abytes(deviceKey, IDENTITY_KEY_BYTES, 'deviceKey')
  const digest = sha256(concatBytes(new TextEncoder().encode('parley/v1/link-fingerprint'), deviceKey))
  // 40 bits is 1.1e12 values; the first 12 decimal digits of it are close enough to uniform for a visual check.
  let n = 0n
  for (const byte of digest.subarray(0, 5)) n = (n << 8n) | BigInt(byte)
  const digits = (n % 1_000_000_000_000n).toString().padStart(12, '0')
  return `${digits.slice(0, 4)} ${digits.slice(4, 8)} ${digits.slice(8)}`
}
