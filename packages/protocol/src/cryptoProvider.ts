/**
 * Replaceable primitives: a platform may pass faster implementations of the end-to-end layer's primitives
 * (docs/architecture.md §2: `@parley/node` passes `node:crypto`'s) as the `crypto` option of the calls and objects
 * that use them, e.g. `ParleyClient`'s. The default is the pure-JS `@noble/*` code; nothing is process-wide. An implementation must be bit-for-bit identical to the default:
 * a session made with one must interoperate with a peer using the other. `@parley/node` tests that.
 * @module
 */

/** X25519 (RFC 7748 §5, §6.1). */
export interface X25519Provider {
  /** The public key of a 32-byte secret key (clamped as RFC 7748 §5 says). */
  getPublicKey(secretKey: Uint8Array): Uint8Array
  /**
   * X25519(secretKey, publicKey). Must throw (any error) for a result of all zeros, i.e. a low-order
   * public key (RFC 7748 §6.1), as the default does.
   */
  getSharedSecret(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array
  /**
   * Optional: `getSharedSecret(secretKey, p)` for each `p`, in order, so that a platform can import the secret key
   * once (a message sealed for many devices makes two such calls). Must throw as `getSharedSecret` does if any
   * result is all zeros. Left out, `getSharedSecret` is called for each.
   */
  getSharedSecrets?(secretKey: Uint8Array, publicKeys: readonly Uint8Array[]): Uint8Array[]
}

/** ChaCha20-Poly1305 (RFC 8439 §2.8) with 12-byte nonces and 16-byte tags appended to the ciphertext. */
export interface AeadProvider {
  /** Returns `ciphertext ‖ tag`. */
  seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array
  /** Returns the plaintext; must throw (any error) when the tag does not verify. */
  open(key: Uint8Array, nonce: Uint8Array, ciphertextAndTag: Uint8Array, ad: Uint8Array): Uint8Array
}

/** An incremental SHA-256 (FIPS 180-4), as `node:crypto`'s `createHash('sha256')` or noble's `sha256.create()`. */
export interface Sha256Hasher {
  /** Adds bytes to the hash. */
  update(data: Uint8Array): unknown
  /** The 32-byte digest of everything added; called once, last. */
  digest(): Uint8Array
}

/** Optional replacements; a primitive left out keeps its default. */
export interface CryptoProvider {
  /** X25519, used by every Double Ratchet step, PQXDH and sealed envelopes. */
  x25519?: X25519Provider
  /** ChaCha20-Poly1305, used for every message and envelope. */
  chacha20poly1305?: AeadProvider
  /** HKDF-SHA-256 (RFC 5869), used by the ratchet's root and chain steps. */
  hkdfSha256?: (ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number) => Uint8Array
  /**
   * Strict Ed25519 verification (RFC 8032 §5.1.7), used for relay certificates on every received message.
   * Must return false (or throw) for anything that does not verify.
   */
  ed25519Verify?: (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean
  /**
   * Ed25519 signing (RFC 8032 §5.1.6) with a 32-byte secret seed, returning the 64-byte signature; used for every
   * group message (its sender key's signature). Deterministic, so the same bytes as the default.
   */
  ed25519Sign?: (secretKey: Uint8Array, message: Uint8Array) => Uint8Array
  /** A fresh incremental SHA-256, used for the digest of every attachment (over its whole encrypted blob). */
  sha256?: () => Sha256Hasher
}

/** The `crypto` option of the functions and classes that use the end-to-end primitives. */
export interface CryptoOptions {
  /**
   * Faster implementations of the primitives for this call or object (`@parley/node` passes `node:crypto`'s);
   * omitted, or a primitive left out: the pure-JS `@noble/*` default. There is no process-wide setting, so two
   * clients (or two copies of this package) in one process never change each other's primitives.
   */
  readonly crypto?: CryptoProvider | undefined
}

/**
 * Checks that a value has the shape of a {@link CryptoProvider} (each given primitive an object or function
 * of the expected shape). The functions that take a `crypto` option check it on first use; a platform package
 * or an app calls this to refuse a bad provider at construction instead.
 *
 * @param provider - the value to check
 * @throws TypeError if it is not an object, or a given primitive is not of the expected shape
 * @example
 * assertCryptoProvider({ x25519: { getPublicKey, getSharedSecret } })
 */
export function assertCryptoProvider(provider: unknown): asserts provider is CryptoProvider {
  if (typeof provider !== 'object' || provider === null) throw new TypeError('crypto must be an object')
  const { x25519, chacha20poly1305, hkdfSha256, ed25519Verify, ed25519Sign, sha256 } =
    provider as CryptoProvider
  if (
    x25519 !== undefined &&
    (typeof x25519?.getPublicKey !== 'function' || typeof x25519.getSharedSecret !== 'function')
  ) {
    throw new TypeError('crypto.x25519 must have getPublicKey and getSharedSecret functions')
  }
  if (x25519?.getSharedSecrets !== undefined && typeof x25519.getSharedSecrets !== 'function') {
    throw new TypeError('crypto.x25519.getSharedSecrets must be a function')
  }
  if (
    chacha20poly1305 !== undefined &&
    (typeof chacha20poly1305?.seal !== 'function' || typeof chacha20poly1305.open !== 'function')
  ) {
    throw new TypeError('crypto.chacha20poly1305 must have seal and open functions')
  }
  if (hkdfSha256 !== undefined && typeof hkdfSha256 !== 'function') {
    throw new TypeError('crypto.hkdfSha256 must be a function')
  }
  if (ed25519Verify !== undefined && typeof ed25519Verify !== 'function') {
    throw new TypeError('crypto.ed25519Verify must be a function')
  }
  if (ed25519Sign !== undefined && typeof ed25519Sign !== 'function') {
    throw new TypeError('crypto.ed25519Sign must be a function')
  }
  if (sha256 !== undefined && typeof sha256 !== 'function') {
    throw new TypeError('crypto.sha256 must be a function')
  }
}
