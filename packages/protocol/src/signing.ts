/**
 * The exact byte strings that Parley's Ed25519 identity keys sign (docs/architecture.md §6–7).
 * Each starts with a distinct ASCII label so that a signature made for one purpose never verifies for another.
 * @module
 */
import { ed25519 } from '@noble/curves/ed25519.js'
import type { CryptoOptions } from './cryptoProvider.js'
import {
  ADDRESS_BYTES,
  abytes,
  concatBytes,
  IDENTITY_KEY_BYTES,
  SIGNATURE_BYTES,
  u32be,
} from './internal/bytes.js'
import { type Primitives, primitives } from './internal/e2eCrypto.js'

const encoder = new TextEncoder()
const LABEL_AUTH = encoder.encode('parley/v1/auth')
const LABEL_ACTIVATE = encoder.encode('parley/v1/activate')
const LABEL_SIGNED_PREKEY = encoder.encode('parley/v1/signed-prekey')
const LABEL_KEM_PREKEY = encoder.encode('parley/v1/kem-prekey')

/** Length of the relay's per-connection authentication nonce. */
export const AUTH_NONCE_BYTES = 32

/**
 * What a device signs to authenticate a connection:
 * `"parley/v1/auth" ‖ trustRoot ‖ nonce ‖ address ‖ u32be(deviceId)`. The relay's trust root names the relay
 * the signature is for, so a relay that passes another relay's nonce to a client (to log in there as that
 * client) gets a signature the other relay refuses.
 * @param nonce - the relay's `ServerHello.auth_nonce` (32 bytes)
 * @param address - the account's 32-byte address
 * @param deviceId - the device id the relay assigned at activation
 * @param trustRoot - the relay's 32-byte trust root (`ServerHello.trust_root`, as the client pinned it)
 * @returns the bytes to sign
 * @throws TypeError / RangeError on wrong lengths or a non-u32 device id
 * @example const msg = authPayload(hello.authNonce, address, 1, hello.trustRoot)
 */
export function authPayload(
  nonce: Uint8Array,
  address: Uint8Array,
  deviceId: number,
  trustRoot: Uint8Array,
): Uint8Array {
  abytes(nonce, AUTH_NONCE_BYTES, 'nonce')
  abytes(address, ADDRESS_BYTES, 'address')
  abytes(trustRoot, 32, 'trustRoot')
  return concatBytes(LABEL_AUTH, trustRoot, nonce, address, u32be(deviceId))
}

/**
 * What a device signs at activation to prove it holds its identity key:
 * `"parley/v1/activate" ‖ activationId ‖ identityKey`.
 * @example const msg = activationPayload(started.activationId, identity.publicKey)
 */
export function activationPayload(activationId: Uint8Array, identityKey: Uint8Array): Uint8Array {
  abytes(activationId, undefined, 'activationId')
  abytes(identityKey, IDENTITY_KEY_BYTES, 'identityKey')
  return concatBytes(LABEL_ACTIVATE, activationId, identityKey)
}

/**
 * What the identity key signs for a signed X25519 prekey: `"parley/v1/signed-prekey" ‖ u32be(keyId) ‖ publicKey`.
 * @example const msg = signedPrekeyPayload(7, prekey.publicKey)
 */
export function signedPrekeyPayload(keyId: number, publicKey: Uint8Array): Uint8Array {
  abytes(publicKey, undefined, 'publicKey')
  return concatBytes(LABEL_SIGNED_PREKEY, u32be(keyId), publicKey)
}

/**
 * What the identity key signs for an ML-KEM-768 prekey: `"parley/v1/kem-prekey" ‖ u32be(keyId) ‖ publicKey`.
 * @example const msg = kemPrekeyPayload(1, kem.publicKey)
 */
export function kemPrekeyPayload(keyId: number, publicKey: Uint8Array): Uint8Array {
  abytes(publicKey, undefined, 'publicKey')
  return concatBytes(LABEL_KEM_PREKEY, u32be(keyId), publicKey)
}

/**
 * Signs one of the payloads above with a device's Ed25519 identity secret key (RFC 8032).
 * @param identitySecretKey - the 32-byte Ed25519 secret seed
 * @param message - the payload
 * @returns the 64-byte signature
 * @throws TypeError / RangeError for a malformed key
 * @example const sig = signWithIdentity(identity.secretKey, authPayload(nonce, address, deviceId, root))
 */
export function signWithIdentity(identitySecretKey: Uint8Array, message: Uint8Array): Uint8Array {
  abytes(identitySecretKey, 32, 'identitySecretKey')
  abytes(message, undefined, 'message')
  return ed25519.sign(message, identitySecretKey)
}

/**
 * Verifies an Ed25519 signature by an identity key, returning false (never throwing) on any malformed input,
 * so that data from the network cannot crash the caller.
 * @param identityKey - 32-byte Ed25519 public key
 * @param message - the signed bytes (from one of the payload functions above)
 * @param signature - 64-byte signature
 * @param options - `crypto`: a faster Ed25519 verifier, e.g. OpenSSL's (see {@link CryptoOptions})
 * @returns whether the signature is valid
 * @example if (!verifyIdentitySignature(key, authPayload(nonce, address, id, root), sig)) throw ...
 */
export function verifyIdentitySignature(
  identityKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  options: CryptoOptions = {},
): boolean {
  return verifySignature(primitives(options?.crypto), identityKey, message, signature)
}

/** {@link verifyIdentitySignature} with resolved primitives. */
export function verifySignature(
  c: Primitives,
  identityKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (!(identityKey instanceof Uint8Array) || identityKey.length !== IDENTITY_KEY_BYTES) return false
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) return false
  if (!(message instanceof Uint8Array)) return false
  return c.ed25519Verify(identityKey, message, signature)
}
