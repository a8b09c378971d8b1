// PQXDH key agreement (Signal, "The PQXDH Key Agreement Protocol", revision 3, §3). Not exported from the package:
// Session.initiate / Session.respond are the public entry points.
//
// Parameters (§2.1): curve = curve25519, hash = SHA-256, info = "Parley_PQXDH_CURVE25519_SHA-256_ML-KEM-768",
// pqkem = ML-KEM-768 (FIPS 203), EncodeEC / EncodeKEM = the raw RFC 7748 / FIPS 203 encodings.
// Deviation: identity keys are Ed25519 and enter DH through the RFC 7748 §4.1 birational map instead of being
// X25519 keys signing with XEdDSA (see identity.ts); AD uses the 32-byte Ed25519 encodings.
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js'
import { ParleyError } from '../errors.js'
import type { IdentityKeyPair } from '../identity.js'
import { checkPrekeyBundle, KEM_CIPHERTEXT_BYTES, type PrekeyBundle } from '../prekeys.js'
import { concatBytes, u32be } from './bytes.js'
import {
  dh,
  draw,
  hkdf256,
  identityDhPublic,
  identityDhSecret,
  label,
  type Primitives,
  type RandomSource,
  x25519KeyPair,
} from './e2eCrypto.js'

export const PQXDH_INFO = label('Parley_PQXDH_CURVE25519_SHA-256_ML-KEM-768')
// §2.2: F is 32 0xFF bytes for curve25519 (domain separation from XEdDSA), salt is hash-length zeros.
const F = new Uint8Array(32).fill(0xff)
const ZERO_SALT = new Uint8Array(32)

/** §3.3 KDF(DH1 ‖ DH2 ‖ DH3 [‖ DH4] ‖ SS) = HKDF(F ‖ KM, salt 0^32, info) → 32-byte SK. */
export function pqxdhKdf(c: Primitives, parts: Uint8Array[]): Uint8Array {
  const km = concatBytes(F, ...parts)
  const sk = hkdf256(c, km, ZERO_SALT, PQXDH_INFO, 32)
  km.fill(0)
  return sk
}

/**
 * §3.3 AD = EncodeEC(IK_A) ‖ EncodeEC(IK_B), followed (as §3.3 allows, "such as usernames") by both
 * addresses and device ids, so a session is bound to the routing identities as well.
 */
export function associatedData(
  initiatorIdentity: Uint8Array,
  responderIdentity: Uint8Array,
  initiatorAddress: Uint8Array,
  initiatorDeviceId: number,
  responderAddress: Uint8Array,
  responderDeviceId: number,
): Uint8Array {
  return concatBytes(
    initiatorIdentity,
    responderIdentity,
    initiatorAddress,
    u32be(initiatorDeviceId),
    responderAddress,
    u32be(responderDeviceId),
  )
}

export interface PqxdhInitiation {
  sharedKey: Uint8Array
  baseKey: { secretKey: Uint8Array; publicKey: Uint8Array }
  kemCiphertext: Uint8Array
}

/** §3.3, Alice's side: verifies the bundle, then derives SK. */
export function pqxdhInitiate(
  c: Primitives,
  identity: IdentityKeyPair,
  bundle: PrekeyBundle,
  random: RandomSource,
): PqxdhInitiation {
  checkPrekeyBundle(c, bundle)
  const ikB = identityDhPublic(bundle.identityKey)
  const ikA = identityDhSecret(identity.secretKey)
  const ek = x25519KeyPair(c, random)
  let kem: { cipherText: Uint8Array; sharedSecret: Uint8Array }
  try {
    kem = ml_kem768.encapsulate(bundle.kemPrekey.publicKey, draw(random, 32))
  } catch (cause) {
    throw new ParleyError('VERIFICATION_FAILED', 'KEM prekey is not a valid ML-KEM-768 key', { cause })
  }
  const spk = bundle.signedPrekey.publicKey
  const parts = [dh(c, ikA, spk), dh(c, ek.secretKey, ikB), dh(c, ek.secretKey, spk)]
  if (bundle.oneTimePrekey) parts.push(dh(c, ek.secretKey, bundle.oneTimePrekey.publicKey))
  parts.push(kem.sharedSecret)
  const sharedKey = pqxdhKdf(c, parts)
  for (const p of parts) p.fill(0)
  ikA.fill(0)
  return { sharedKey, baseKey: ek, kemCiphertext: kem.cipherText }
}

/** §3.4, Bob's side: the private halves were looked up by the ids in the prekey message. */
export function pqxdhRespond(
  c: Primitives,
  identity: IdentityKeyPair,
  signedPrekeySecret: Uint8Array,
  oneTimePrekeySecret: Uint8Array | undefined,
  kemSecret: Uint8Array,
  initiatorIdentityKey: Uint8Array,
  baseKey: Uint8Array,
  kemCiphertext: Uint8Array,
): Uint8Array {
  if (kemCiphertext.length !== KEM_CIPHERTEXT_BYTES) {
    throw new ParleyError('BAD_REQUEST', `KEM ciphertext must be ${KEM_CIPHERTEXT_BYTES} bytes`)
  }
  const ikA = identityDhPublic(initiatorIdentityKey)
  const ikB = identityDhSecret(identity.secretKey)
  let ss: Uint8Array
  try {
    // ML-KEM decapsulation never fails on a well-sized ciphertext (implicit rejection, FIPS 203 §6.3); a forged
    // one yields a pseudorandom secret and the first message then fails to decrypt.
    ss = ml_kem768.decapsulate(kemCiphertext, kemSecret)
  } catch (cause) {
    throw new ParleyError('DECRYPT_FAILED', 'KEM decapsulation failed', { cause })
  }
  const parts = [dh(c, signedPrekeySecret, ikA), dh(c, ikB, baseKey), dh(c, signedPrekeySecret, baseKey)]
  if (oneTimePrekeySecret) parts.push(dh(c, oneTimePrekeySecret, baseKey))
  parts.push(ss)
  const sharedKey = pqxdhKdf(c, parts)
  for (const p of parts) p.fill(0)
  ikB.fill(0)
  return sharedKey
}
