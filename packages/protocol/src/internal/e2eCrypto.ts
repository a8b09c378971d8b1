// Primitive wrappers for the end-to-end layer (docs/architecture.md §6). Not exported from the package.
// Every function that handles data from a peer turns library exceptions into ParleyError, so a malformed
// key can never escape as a bare Error.
import { chacha20poly1305 } from '@noble/ciphers/chacha.js'
import { ed25519, x25519 } from '@noble/curves/ed25519.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { hmac } from '@noble/hashes/hmac.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, randomBytes } from '@noble/hashes/utils.js'
import {
  type AeadProvider,
  assertCryptoProvider,
  type CryptoProvider,
  type Sha256Hasher,
  type X25519Provider,
} from '../cryptoProvider.js'
import { ParleyError } from '../errors.js'

/** A source of cryptographically secure random bytes. */
export type RandomSource = (length: number) => Uint8Array

/** The platform CSPRNG (crypto.getRandomValues through noble). */
export const defaultRandom: RandomSource = (n) => randomBytes(n)

export const X25519_BYTES = 32
export const AEAD_TAG_BYTES = 16
const encoder = new TextEncoder()

/** UTF-8 bytes of an ASCII label. */
export const label = (s: string): Uint8Array => encoder.encode(s)

/** Draws `n` bytes from `random` and checks that the source honoured the length. */
export function draw(random: RandomSource, n: number): Uint8Array {
  const out = random(n)
  if (!(out instanceof Uint8Array) || out.length !== n) throw new TypeError(`random must return ${n} bytes`)
  return out
}

/**
 * The primitives one call or object uses: a {@link CryptoProvider} with every gap filled by the `@noble/*`
 * default. Made by {@link primitives}; passed down explicitly, never held in module state.
 */
export interface Primitives {
  readonly x25519: X25519Provider
  readonly aead: AeadProvider
  readonly hkdf: (ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number) => Uint8Array
  /** Strict RFC 8032 verification; false (never a throw) for anything that does not verify. */
  readonly ed25519Verify: (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean
  /** RFC 8032 signing with a 32-byte seed. */
  readonly ed25519Sign: (secretKey: Uint8Array, message: Uint8Array) => Uint8Array
  /** A fresh incremental SHA-256. */
  readonly sha256: () => Sha256Hasher
}

/** zip215: false — strict RFC 8032 verification, as every signer of what Parley verifies follows RFC 8032. */
function nobleVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  return ed25519.verify(signature, message, publicKey, { zip215: false })
}

/** The pure-JS defaults. */
const noble: Primitives = {
  x25519,
  aead: {
    seal: (key, nonce, plaintext, ad) => chacha20poly1305(key, nonce, ad).encrypt(plaintext),
    open: (key, nonce, sealed, ad) => chacha20poly1305(key, nonce, ad).decrypt(sealed),
  },
  hkdf: (ikm, salt, info, length) => hkdf(sha256, ikm, salt, info, length),
  ed25519Verify: guardVerify(nobleVerify),
  ed25519Sign: (secretKey, message) => ed25519.sign(message, secretKey),
  sha256: () => sha256.create(),
}
export const NOBLE: Primitives = Object.freeze(noble)

function guardVerify(verify: Primitives['ed25519Verify']): Primitives['ed25519Verify'] {
  return (publicKey, message, signature) => {
    try {
      return verify(publicKey, message, signature) === true
    } catch {
      return false
    }
  }
}

const resolved = new WeakMap<CryptoProvider, Primitives>()

/**
 * The primitives of a `crypto` option: the defaults for `undefined`, otherwise the provider's with the gaps
 * filled. Checked and resolved once per provider object (what it holds at first use is what is used).
 * @throws TypeError for a value that is not a {@link CryptoProvider}
 */
export function primitives(provider: CryptoProvider | undefined): Primitives {
  if (provider === undefined) return NOBLE
  let out = resolved.get(provider)
  if (out === undefined) {
    assertCryptoProvider(provider)
    const verify = provider.ed25519Verify
    out = Object.freeze({
      x25519: provider.x25519 ?? NOBLE.x25519,
      aead: provider.chacha20poly1305 ?? NOBLE.aead,
      hkdf: provider.hkdfSha256 ?? NOBLE.hkdf,
      ed25519Verify: verify ? guardVerify(verify) : NOBLE.ed25519Verify,
      ed25519Sign: provider.ed25519Sign ?? NOBLE.ed25519Sign,
      sha256: provider.sha256 ?? NOBLE.sha256,
    })
    resolved.set(provider, out)
  }
  return out
}

/** A fresh X25519 key pair (RFC 7748 §6.1; noble clamps the scalar). */
export function x25519KeyPair(
  c: Primitives,
  random: RandomSource,
): { secretKey: Uint8Array; publicKey: Uint8Array } {
  const secretKey = draw(random, X25519_BYTES)
  return { secretKey, publicKey: c.x25519.getPublicKey(secretKey) }
}

/**
 * X25519(secret, public) with RFC 7748 §6.1's all-zero check: noble refuses low-order points.
 * A refused peer key is a peer's fault, so it is a ParleyError.
 */
export function dh(c: Primitives, secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  if (publicKey.length !== X25519_BYTES) {
    throw new ParleyError('VERIFICATION_FAILED', 'X25519 public key must be 32 bytes')
  }
  try {
    return c.x25519.getSharedSecret(secretKey, publicKey)
  } catch (cause) {
    throw new ParleyError('VERIFICATION_FAILED', 'refused a low-order or invalid X25519 public key', {
      cause,
    })
  }
}

/**
 * {@link dh} for each public key, in order, with one secret key: through the provider's `getSharedSecrets` when it
 * has one (a platform imports the secret once), otherwise one call each.
 */
export function dhEach(
  c: Primitives,
  secretKey: Uint8Array,
  publicKeys: readonly Uint8Array[],
): Uint8Array[] {
  if (publicKeys.some((p) => p.length !== X25519_BYTES)) {
    throw new ParleyError('VERIFICATION_FAILED', 'X25519 public key must be 32 bytes')
  }
  const many = c.x25519.getSharedSecrets
  if (many === undefined) return publicKeys.map((p) => dh(c, secretKey, p))
  let out: Uint8Array[]
  try {
    out = many.call(c.x25519, secretKey, publicKeys)
  } catch (cause) {
    throw new ParleyError('VERIFICATION_FAILED', 'refused a low-order or invalid X25519 public key', {
      cause,
    })
  }
  if (!Array.isArray(out) || out.length !== publicKeys.length) {
    throw new TypeError('crypto.x25519.getSharedSecrets must return one secret per public key')
  }
  return out
}

/** Recently converted identity keys (public values). Every sealed envelope converts two or three. */
const montgomeryCache = new Map<string, Uint8Array>()
const MONTGOMERY_CACHE_SIZE = 512

/**
 * The X25519 (Montgomery) form of an Ed25519 identity public key (RFC 7748 §4.1 birational map).
 * Refuses encodings that are not points and the small-order points. Results are memoised (a bounded cache of
 * public keys): the decompression and small-order check cost ~0.3 ms in pure JS, about a tenth of a message.
 */
export function identityDhPublic(identityKey: Uint8Array): Uint8Array {
  const id = identityKey instanceof Uint8Array ? bytesToHex(identityKey) : undefined
  const cached = id === undefined ? undefined : montgomeryCache.get(id)
  if (cached) return cached.slice()
  let out: Uint8Array
  try {
    const point = ed25519.Point.fromBytes(identityKey, false)
    if (point.isSmallOrder()) throw new Error('small order')
    out = ed25519.utils.toMontgomery(identityKey)
  } catch (cause) {
    throw new ParleyError('VERIFICATION_FAILED', 'identity key is not a valid Ed25519 public key', { cause })
  }
  if (id !== undefined) {
    if (montgomeryCache.size >= MONTGOMERY_CACHE_SIZE)
      montgomeryCache.delete(montgomeryCache.keys().next().value!)
    montgomeryCache.set(id, out.slice())
  }
  return out
}

/** The X25519 scalar of an Ed25519 identity secret key (its clamped SHA-512 expansion, RFC 8032 §5.1.5). */
export function identityDhSecret(identitySecret: Uint8Array): Uint8Array {
  return ed25519.utils.toMontgomerySecret(identitySecret)
}

/** HKDF-SHA-256 (RFC 5869). */
export function hkdf256(
  c: Primitives,
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  return c.hkdf(ikm, salt, info, length)
}

/** HMAC-SHA-256 (RFC 2104). */
export function hmac256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return hmac(sha256, key, data)
}

/** ChaCha20-Poly1305 encryption (RFC 8439 §2.8). */
export function aeadSeal(
  c: Primitives,
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  ad: Uint8Array,
): Uint8Array {
  return c.aead.seal(key, nonce, plaintext, ad)
}

/** ChaCha20-Poly1305 decryption; a bad tag is a peer's fault, so DECRYPT_FAILED. */
export function aeadOpen(
  c: Primitives,
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  ad: Uint8Array,
): Uint8Array {
  if (ciphertext.length < AEAD_TAG_BYTES) throw new ParleyError('DECRYPT_FAILED', 'ciphertext is too short')
  try {
    return c.aead.open(key, nonce, ciphertext, ad)
  } catch (cause) {
    throw new ParleyError('DECRYPT_FAILED', 'message authentication failed', { cause })
  }
}

/** Copies bytes out of a decoded protobuf field (possibly absent) into a fresh Uint8Array the caller owns. */
export function own(bytes: Uint8Array | null | undefined): Uint8Array {
  const out = new Uint8Array(bytes ? bytes.length : 0)
  if (bytes) out.set(bytes)
  return out
}
