/**
 * Device identity keys (docs/architecture.md §6): an Ed25519 key pair that signs prekeys and relay challenges, and whose
 * X25519 (Montgomery) form takes part in PQXDH and sealed envelopes.
 *
 * Signal's PQXDH §2.2 uses an X25519 identity key with XEdDSA signatures; Parley does the converse — an Ed25519
 * identity key converted with the RFC 7748 §4.1 birational map — so the relay can verify prekey signatures with
 * plain Ed25519 (`signing.ts`). Both give one key pair that serves for signing and for DH.
 * @module
 */
import { ed25519 } from '@noble/curves/ed25519.js'
import { IDENTITY_KEY_BYTES } from './internal/bytes.js'
import { defaultRandom, draw, type RandomSource } from './internal/e2eCrypto.js'

export type { RandomSource } from './internal/e2eCrypto.js'

/** A device's long-term identity: Ed25519 public key and 32-byte secret seed (RFC 8032 §5.1.5). */
export interface IdentityKeyPair {
  /** 32-byte Ed25519 public key; what peers pin and what the safety number is made of. */
  readonly publicKey: Uint8Array
  /** 32-byte Ed25519 secret seed. Never leaves the device. */
  readonly secretKey: Uint8Array
}

/**
 * Generates a device identity key pair.
 * @param random - source of 32 random bytes; defaults to the platform CSPRNG (pass a seeded one only in tests)
 * @returns a fresh {@link IdentityKeyPair}
 * @throws TypeError if `random` does not return 32 bytes
 * @example
 * const identity = generateIdentity()
 * identity.publicKey.length // 32
 */
export function generateIdentity(random: RandomSource = defaultRandom): IdentityKeyPair {
  const secretKey = draw(random, IDENTITY_KEY_BYTES).slice()
  return { publicKey: ed25519.getPublicKey(secretKey), secretKey }
}

/** @internal Checks the shape of an {@link IdentityKeyPair} given by the caller. */
export function assertIdentityKeyPair(value: unknown, name = 'identity'): asserts value is IdentityKeyPair {
  const v = value as IdentityKeyPair | null
  if (typeof v !== 'object' || v === null) throw new TypeError(`${name} must be an identity key pair`)
  if (!(v.publicKey instanceof Uint8Array) || v.publicKey.length !== IDENTITY_KEY_BYTES) {
    throw new TypeError(`${name}.publicKey must be a 32-byte Uint8Array`)
  }
  if (!(v.secretKey instanceof Uint8Array) || v.secretKey.length !== IDENTITY_KEY_BYTES) {
    throw new TypeError(`${name}.secretKey must be a 32-byte Uint8Array`)
  }
}
