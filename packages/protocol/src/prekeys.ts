/**
 * Prekeys and prekey bundles for PQXDH (Signal PQXDH §3.2, docs/architecture.md §6): a signed X25519 prekey, one-time
 * X25519 prekeys, and signed ML-KEM-768 prekeys (last-resort and one-time alike).
 *
 * Signatures are Ed25519 by the identity key over the payloads of `signing.ts` — `"parley/v1/signed-prekey" ‖
 * u32be(id) ‖ key` rather than PQXDH §2.3's bare `EncodeEC(SPK)` — so that the relay can check them and a
 * signature for one purpose never verifies for another.
 * @module
 */
import { ed25519 } from '@noble/curves/ed25519.js'
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js'
import type { CryptoOptions } from './cryptoProvider.js'
import { ParleyError } from './errors.js'
import type * as wire from './gen/types.js'
import { assertIdentityKeyPair, type IdentityKeyPair } from './identity.js'
import { ADDRESS_BYTES, abytes, au32, IDENTITY_KEY_BYTES, SIGNATURE_BYTES } from './internal/bytes.js'
import {
  defaultRandom,
  draw,
  own,
  type Primitives,
  primitives,
  type RandomSource,
  X25519_BYTES,
  x25519KeyPair,
} from './internal/e2eCrypto.js'
import { kemPrekeyPayload, signedPrekeyPayload, verifySignature } from './signing.js'

/** ML-KEM-768 encapsulation key length (FIPS 203 Table 3). */
export const KEM_PUBLIC_KEY_BYTES = 1184
/** ML-KEM-768 ciphertext length (FIPS 203 Table 3). */
export const KEM_CIPHERTEXT_BYTES = 1088

/** A signed X25519 prekey with its secret half (kept on the device). */
export interface SignedPrekeyPair {
  /** u32 id chosen by the device; a new one at each rotation. */
  readonly keyId: number
  /** 32-byte X25519 public key, uploaded and handed out in bundles. */
  readonly publicKey: Uint8Array
  /** 32-byte X25519 secret key; never leaves the device. */
  readonly secretKey: Uint8Array
  /** Ed25519 signature by the identity key over `signedPrekeyPayload(keyId, publicKey)`. */
  readonly signature: Uint8Array
}

/** A one-time X25519 prekey with its secret half. */
export interface OneTimePrekeyPair {
  /** u32 id chosen by the device, unique among its one-time X25519 prekeys. */
  readonly keyId: number
  /** 32-byte X25519 public key, uploaded and handed out in at most one bundle. */
  readonly publicKey: Uint8Array
  /** 32-byte X25519 secret key; never leaves the device. Delete it once a message has used it. */
  readonly secretKey: Uint8Array
}

/** A signed ML-KEM-768 prekey with its decapsulation key. */
export interface KemPrekeyPair {
  /** u32 id chosen by the device, unique among its KEM prekeys, last-resort and one-time alike. */
  readonly keyId: number
  /** 1184-byte encapsulation key. */
  readonly publicKey: Uint8Array
  /** 2400-byte decapsulation key (FIPS 203 §7.1). */
  readonly secretKey: Uint8Array
  /** Ed25519 signature by the identity key over `kemPrekeyPayload(keyId, publicKey)`. */
  readonly signature: Uint8Array
}

/** What a relay hands out for one device (`parley.v1.PrekeyBundle`), with bytes as plain `Uint8Array`. */
export interface PrekeyBundle {
  /** 32-byte account address of the device's owner. */
  readonly address: Uint8Array
  /** The device's id (u32), which a `SendMessage` to it must name as `recipientDeviceId`. */
  readonly deviceId: number
  /** 32-byte Ed25519 identity key. */
  readonly identityKey: Uint8Array
  /** The device's current signed X25519 prekey (PQXDH SPK_B). */
  readonly signedPrekey: {
    /** u32 id chosen by the device. */
    readonly keyId: number
    /** 32-byte X25519 public key. */
    readonly publicKey: Uint8Array
    /** 64-byte Ed25519 signature by `identityKey` over `signedPrekeyPayload(keyId, publicKey)`. */
    readonly signature: Uint8Array
  }
  /** Absent when the device has run out of one-time prekeys. */
  readonly oneTimePrekey?:
    | {
        /** u32 id chosen by the device. */
        readonly keyId: number
        /** 32-byte X25519 public key. */
        readonly publicKey: Uint8Array
      }
    | undefined
  /** An ML-KEM-768 prekey (PQXDH PQOPK_B, or PQSPK_B when `kemPrekeyIsLastResort`). */
  readonly kemPrekey: {
    /** u32 id chosen by the device. */
    readonly keyId: number
    /** 1184-byte encapsulation key. */
    readonly publicKey: Uint8Array
    /** 64-byte Ed25519 signature by `identityKey` over `kemPrekeyPayload(keyId, publicKey)`. */
    readonly signature: Uint8Array
  }
  /**
   * True when `kemPrekey` is the device's last-resort key (it had no one-time KEM prekey left), which stays
   * in use for later bundles; false for a one-time KEM prekey.
   */
  readonly kemPrekeyIsLastResort: boolean
}

/**
 * Generates a signed X25519 prekey (PQXDH §3.2 SPK_B). Rotate it weekly; keep old secrets a while for messages in flight.
 * @param identity - the device identity that signs it
 * @param keyId - u32 id chosen by the device
 * @param random - CSPRNG; defaults to the platform's
 * @param options - `crypto`: faster primitives (see {@link CryptoOptions})
 * @returns the key pair and its signature
 * @throws TypeError / RangeError for a malformed identity or key id
 * @example const spk = generateSignedPrekey(identity, 1)
 */
export function generateSignedPrekey(
  identity: IdentityKeyPair,
  keyId: number,
  random: RandomSource = defaultRandom,
  options: CryptoOptions = {},
): SignedPrekeyPair {
  assertIdentityKeyPair(identity)
  au32(keyId, 'keyId')
  const { secretKey, publicKey } = x25519KeyPair(primitives(options.crypto), random)
  const signature = ed25519.sign(signedPrekeyPayload(keyId, publicKey), identity.secretKey)
  return { keyId, publicKey, secretKey: secretKey.slice(), signature }
}

/**
 * Generates `count` one-time X25519 prekeys with ids `startId, startId + 1, …` (PQXDH §3.2 OPK_B).
 * @param startId - id of the first key (u32; the last id must also fit in u32)
 * @param count - how many, 0…1000
 * @param random - CSPRNG; defaults to the platform's
 * @param options - `crypto`: faster primitives (see {@link CryptoOptions})
 * @returns the key pairs in id order
 * @throws RangeError for ids out of range or a bad count
 * @example const batch = generateOneTimePrekeys(101, 100)
 */
export function generateOneTimePrekeys(
  startId: number,
  count: number,
  random: RandomSource = defaultRandom,
  options: CryptoOptions = {},
): OneTimePrekeyPair[] {
  const c = primitives(options.crypto)
  au32(startId, 'startId')
  if (!Number.isInteger(count) || count < 0 || count > 1000) throw new RangeError('count must be 0…1000')
  au32(startId + Math.max(count - 1, 0), 'startId + count - 1')
  const out: OneTimePrekeyPair[] = []
  for (let i = 0; i < count; i++) {
    const { secretKey, publicKey } = x25519KeyPair(c, random)
    out.push({ keyId: startId + i, publicKey, secretKey: secretKey.slice() })
  }
  return out
}

/**
 * Generates a signed ML-KEM-768 prekey (PQXDH §3.2 PQSPK_B / PQOPK_B). The same shape serves as the
 * last-resort key and as one-time KEM keys; the caller decides which it uploads as which.
 * @param identity - the device identity that signs it
 * @param keyId - u32 id chosen by the device
 * @param random - CSPRNG (64 bytes are drawn for the FIPS 203 seed); defaults to the platform's
 * @returns the key pair and its signature
 * @throws TypeError / RangeError for a malformed identity or key id
 * @example const lastResort = generateKemPrekey(identity, 1)
 */
export function generateKemPrekey(
  identity: IdentityKeyPair,
  keyId: number,
  random: RandomSource = defaultRandom,
): KemPrekeyPair {
  assertIdentityKeyPair(identity)
  au32(keyId, 'keyId')
  const seed = draw(random, 64).slice()
  const { publicKey, secretKey } = ml_kem768.keygen(seed)
  seed.fill(0)
  const signature = ed25519.sign(kemPrekeyPayload(keyId, publicKey), identity.secretKey)
  return { keyId, publicKey, secretKey, signature }
}

const bad = (what: string) => new ParleyError('BAD_REQUEST', `prekey bundle: ${what}`)

function wireBytes(value: unknown, length: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) throw bad(`${what} must be ${length} bytes`)
  return own(value)
}

function wireU32(value: unknown, what: string): number {
  // uint32 fields decode as numbers; a Long here means a hand-built object, so accept only safe integers.
  const n = typeof value === 'number' ? value : Number(value ?? 0)
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw bad(`${what} is not a u32`)
  return n
}

/**
 * Converts a decoded `parley.v1.PrekeyBundle` (bytes may be any Uint8Array) to a {@link PrekeyBundle},
 * checking every length. Signatures are checked later, by `Session.initiate` (or {@link verifyPrekeyBundle}).
 * @param wire - the generated message object or its plain properties
 * @returns a bundle with fresh `Uint8Array` copies
 * @throws ParleyError `BAD_REQUEST` for a missing field or a wrong length
 * @example const bundle = prekeyBundleFromWire(frame.prekeyBundle)
 */
export function prekeyBundleFromWire(wire: wire.PrekeyBundleInput): PrekeyBundle {
  if (typeof wire !== 'object' || wire === null) throw bad('missing')
  const spk = wire.signedPrekey
  const kem = wire.kemPrekey
  if (!spk) throw bad('signed prekey missing')
  if (!kem) throw bad('KEM prekey missing')
  const otp = wire.oneTimePrekey
  return {
    address: wireBytes(wire.address, ADDRESS_BYTES, 'address'),
    deviceId: wireU32(wire.deviceId, 'device id'),
    identityKey: wireBytes(wire.identityKey, IDENTITY_KEY_BYTES, 'identity key'),
    signedPrekey: {
      keyId: wireU32(spk.keyId, 'signed prekey id'),
      publicKey: wireBytes(spk.publicKey, X25519_BYTES, 'signed prekey'),
      signature: wireBytes(spk.signature, SIGNATURE_BYTES, 'signed prekey signature'),
    },
    oneTimePrekey: otp
      ? {
          keyId: wireU32(otp.keyId, 'one-time prekey id'),
          publicKey: wireBytes(otp.publicKey, X25519_BYTES, 'one-time prekey'),
        }
      : undefined,
    kemPrekey: {
      keyId: wireU32(kem.keyId, 'KEM prekey id'),
      publicKey: wireBytes(kem.publicKey, KEM_PUBLIC_KEY_BYTES, 'KEM prekey'),
      signature: wireBytes(kem.signature, SIGNATURE_BYTES, 'KEM prekey signature'),
    },
    kemPrekeyIsLastResort: wire.kemPrekeyIsLastResort === true,
  }
}

/**
 * Converts a {@link PrekeyBundle} to `parley.v1.PrekeyBundle` properties, ready for a `ServerFrame.prekeyBundle`.
 * @param bundle - the bundle
 * @returns plain properties (the relay side builds these from its store)
 * @throws TypeError / RangeError for a malformed bundle
 * @example const bytes = encodeServerFrame({ requestId, prekeyBundle: prekeyBundleToWire(bundle) })
 */
export function prekeyBundleToWire(bundle: PrekeyBundle): wire.PrekeyBundleInput {
  assertBundleShape(bundle)
  const out: wire.PrekeyBundleInput = {
    address: bundle.address,
    deviceId: bundle.deviceId,
    identityKey: bundle.identityKey,
    signedPrekey: { ...bundle.signedPrekey },
    kemPrekey: { ...bundle.kemPrekey },
    kemPrekeyIsLastResort: bundle.kemPrekeyIsLastResort,
  }
  if (bundle.oneTimePrekey) out.oneTimePrekey = { ...bundle.oneTimePrekey }
  return out
}

/** @internal Caller-side shape check of a bundle (TypeError / RangeError). */
export function assertBundleShape(bundle: PrekeyBundle): void {
  if (typeof bundle !== 'object' || bundle === null) throw new TypeError('bundle must be a PrekeyBundle')
  abytes(bundle.address, ADDRESS_BYTES, 'bundle.address')
  au32(bundle.deviceId, 'bundle.deviceId')
  abytes(bundle.identityKey, IDENTITY_KEY_BYTES, 'bundle.identityKey')
  if (typeof bundle.signedPrekey !== 'object' || bundle.signedPrekey === null) {
    throw new TypeError('bundle.signedPrekey is required')
  }
  au32(bundle.signedPrekey.keyId, 'bundle.signedPrekey.keyId')
  abytes(bundle.signedPrekey.publicKey, X25519_BYTES, 'bundle.signedPrekey.publicKey')
  abytes(bundle.signedPrekey.signature, SIGNATURE_BYTES, 'bundle.signedPrekey.signature')
  if (bundle.oneTimePrekey !== undefined) {
    if (typeof bundle.oneTimePrekey !== 'object' || bundle.oneTimePrekey === null) {
      throw new TypeError('bundle.oneTimePrekey must be an object when present')
    }
    au32(bundle.oneTimePrekey.keyId, 'bundle.oneTimePrekey.keyId')
    abytes(bundle.oneTimePrekey.publicKey, X25519_BYTES, 'bundle.oneTimePrekey.publicKey')
  }
  if (typeof bundle.kemPrekey !== 'object' || bundle.kemPrekey === null) {
    throw new TypeError('bundle.kemPrekey is required')
  }
  au32(bundle.kemPrekey.keyId, 'bundle.kemPrekey.keyId')
  abytes(bundle.kemPrekey.publicKey, KEM_PUBLIC_KEY_BYTES, 'bundle.kemPrekey.publicKey')
  abytes(bundle.kemPrekey.signature, SIGNATURE_BYTES, 'bundle.kemPrekey.signature')
  if (typeof bundle.kemPrekeyIsLastResort !== 'boolean') {
    throw new TypeError('bundle.kemPrekeyIsLastResort must be a boolean')
  }
}

/**
 * Verifies both prekey signatures of a bundle against its identity key (PQXDH §3.3: "Alice verifies the
 * prekey signatures and aborts the protocol if verification fails").
 * @param bundle - the bundle, as from {@link prekeyBundleFromWire}
 * @param options - `crypto`: a faster Ed25519 verifier (see {@link CryptoOptions})
 * @throws TypeError / RangeError for a malformed bundle; ParleyError `VERIFICATION_FAILED` for a bad signature
 * @example verifyPrekeyBundle(bundle) // throws unless both signatures are valid
 */
export function verifyPrekeyBundle(bundle: PrekeyBundle, options: CryptoOptions = {}): void {
  checkPrekeyBundle(primitives(options?.crypto), bundle)
}

/** {@link verifyPrekeyBundle} with resolved primitives (for PQXDH). */
export function checkPrekeyBundle(c: Primitives, bundle: PrekeyBundle): void {
  assertBundleShape(bundle)
  const { identityKey, signedPrekey: spk, kemPrekey: kem } = bundle
  if (!verifySignature(c, identityKey, signedPrekeyPayload(spk.keyId, spk.publicKey), spk.signature)) {
    throw new ParleyError('VERIFICATION_FAILED', 'signed prekey signature is invalid')
  }
  if (!verifySignature(c, identityKey, kemPrekeyPayload(kem.keyId, kem.publicKey), kem.signature)) {
    throw new ParleyError('VERIFICATION_FAILED', 'KEM prekey signature is invalid')
  }
}
