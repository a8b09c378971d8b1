/**
 * Safety numbers (docs/architecture.md §6): Signal's numeric fingerprint, version 2 (libsignal `fingerprint.rs`), over
 * Parley's 32-byte Ed25519 identity keys and 32-byte account addresses.
 *
 * Each side: h = SHA-512(u16be(0) ‖ key ‖ address), then 5199 times h = SHA-512(h ‖ key); the first 30 bytes
 * make six 5-digit groups (u40be mod 100000). The 60 digits are both halves, the smaller first, so both
 * devices show the same number. Deviation from Signal: keys are Ed25519 without the 0x05 type byte, and the
 * stable identifier is the address.
 * @module
 */
import { sha512 } from '@noble/hashes/sha2.js'
import { ADDRESS_BYTES, abytes, concatBytes, equalBytes, IDENTITY_KEY_BYTES } from './internal/bytes.js'

/** SHA-512 iterations per side (Signal's default). */
export const SAFETY_NUMBER_ITERATIONS = 5200
/** Version byte of {@link safetyNumberQr} payloads. */
export const SAFETY_NUMBER_QR_VERSION = 2

const FINGERPRINT_VERSION = new Uint8Array([0, 0])

function fingerprint(identityKey: Uint8Array, address: Uint8Array): Uint8Array {
  let h = sha512(concatBytes(FINGERPRINT_VERSION, identityKey, address))
  const buf = new Uint8Array(64 + identityKey.length)
  buf.set(identityKey, 64)
  for (let i = 1; i < SAFETY_NUMBER_ITERATIONS; i++) {
    buf.set(h, 0)
    h = sha512(buf)
  }
  return h.subarray(0, 32)
}

function digits(fp: Uint8Array): string {
  let out = ''
  for (let i = 0; i < 30; i += 5) {
    const n =
      fp[i]! * 2 ** 32 + (((fp[i + 1]! << 24) | (fp[i + 2]! << 16) | (fp[i + 3]! << 8) | fp[i + 4]!) >>> 0)
    out += String(n % 100000).padStart(5, '0')
  }
  return out
}

function check(
  localIdentityKey: Uint8Array,
  localAddress: Uint8Array,
  remoteIdentityKey: Uint8Array,
  remoteAddress: Uint8Array,
) {
  abytes(localIdentityKey, IDENTITY_KEY_BYTES, 'localIdentityKey')
  abytes(localAddress, ADDRESS_BYTES, 'localAddress')
  abytes(remoteIdentityKey, IDENTITY_KEY_BYTES, 'remoteIdentityKey')
  abytes(remoteAddress, ADDRESS_BYTES, 'remoteAddress')
}

/**
 * The 60-digit safety number of two identities, identical on both devices.
 * @param localIdentityKey - this device's 32-byte identity key
 * @param localAddress - this account's 32-byte address
 * @param remoteIdentityKey - the peer's identity key
 * @param remoteAddress - the peer's address
 * @returns 60 decimal digits (show them in 12 groups of 5)
 * @throws TypeError / RangeError for wrong types or lengths
 * @example safetyNumber(me.publicKey, myAddress, session.remoteIdentityKey, session.remoteAddress).match(/.{5}/g)
 */
export function safetyNumber(
  localIdentityKey: Uint8Array,
  localAddress: Uint8Array,
  remoteIdentityKey: Uint8Array,
  remoteAddress: Uint8Array,
): string {
  check(localIdentityKey, localAddress, remoteIdentityKey, remoteAddress)
  const local = digits(fingerprint(localIdentityKey, localAddress))
  const remote = digits(fingerprint(remoteIdentityKey, remoteAddress))
  return local < remote ? local + remote : remote + local
}

/**
 * The QR payload for in-person verification: `version ‖ local fingerprint (32) ‖ remote fingerprint (32)`,
 * as in Signal's scannable fingerprint. Check a scanned payload with {@link verifySafetyNumberQr}.
 * @param localIdentityKey - this device's identity key
 * @param localAddress - this account's address
 * @param remoteIdentityKey - the peer's identity key
 * @param remoteAddress - the peer's address
 * @returns 65 bytes
 * @throws TypeError / RangeError for wrong types or lengths
 * @example const qr = safetyNumberQr(me.publicKey, myAddress, peerKey, peerAddress)
 */
export function safetyNumberQr(
  localIdentityKey: Uint8Array,
  localAddress: Uint8Array,
  remoteIdentityKey: Uint8Array,
  remoteAddress: Uint8Array,
): Uint8Array {
  check(localIdentityKey, localAddress, remoteIdentityKey, remoteAddress)
  return concatBytes(
    Uint8Array.of(SAFETY_NUMBER_QR_VERSION),
    fingerprint(localIdentityKey, localAddress),
    fingerprint(remoteIdentityKey, remoteAddress),
  )
}

/**
 * Whether a QR payload scanned from the peer's screen matches: its local half must be our remote fingerprint
 * and vice versa.
 * @param localIdentityKey - this device's identity key
 * @param localAddress - this account's address
 * @param remoteIdentityKey - the peer's identity key
 * @param remoteAddress - the peer's address
 * @param scanned - bytes decoded from the peer's QR code (any value; garbage gives false)
 * @returns true if both identities match
 * @throws TypeError / RangeError for malformed keys or addresses (not for a malformed `scanned`)
 * @example if (!verifySafetyNumberQr(me.publicKey, myAddress, peerKey, peerAddress, scanned)) warn()
 */
export function verifySafetyNumberQr(
  localIdentityKey: Uint8Array,
  localAddress: Uint8Array,
  remoteIdentityKey: Uint8Array,
  remoteAddress: Uint8Array,
  scanned: Uint8Array,
): boolean {
  const ours = safetyNumberQr(localIdentityKey, localAddress, remoteIdentityKey, remoteAddress)
  if (!(scanned instanceof Uint8Array) || scanned.length !== ours.length) return false
  const mirrored = concatBytes(ours.subarray(0, 1), ours.subarray(33), ours.subarray(1, 33))
  return equalBytes(mirrored, scanned)
}
