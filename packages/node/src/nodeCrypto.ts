/**
 * The `node:crypto` fast path (docs/architecture.md §2): X25519, ChaCha20-Poly1305 and HKDF-SHA-256 through OpenSSL,
 * given to each client as its `crypto` option by `createClient()`. Pure-JS X25519 costs ~0.6 ms per scalar
 * multiplication, and every Double Ratchet step and sealed envelope needs several; OpenSSL's takes ~0.13 ms
 * including the key imports.
 * Every function here is bit-for-bit identical to the `@noble/*` default (tested in nodeCrypto.test.ts),
 * so a client using it interoperates with one that does not.
 * @module
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto'
import type { CryptoProvider } from '@parley/protocol'

// DER prefix of an RFC 8410 PKCS #8 structure for X25519 (OID 1.3.101.110); the raw 32-byte key follows.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex')
const KEY_BYTES = 32
const TAG_BYTES = 16

function checkKey(key: Uint8Array, name: string): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) {
    throw new RangeError(`${name} must be ${KEY_BYTES} bytes`)
  }
}

// A placeholder for the JWK `x` member, which Node requires but does not use when importing a private key:
// it derives the public key from `d`. Importing through JWK (EVP_PKEY_new_raw_private_key) takes ~50 µs;
// through PKCS #8 DER (OpenSSL 3's decoders) ~600 µs, more than pure JS. The bit-for-bit tests would catch a
// Node that checked `x`, and the DER path is kept as the fallback for one that refused the placeholder.
const UNUSED_X = Buffer.alloc(KEY_BYTES).toString('base64url')

// DER prefix of an RFC 8410 PKCS #8 structure for Ed25519 (OID 1.3.101.112); the 32-byte seed follows.
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex')
/** Per curve: its PKCS #8 prefix, and whether the JWK import still works (false once it was refused). */
const IMPORTS = {
  X25519: { der: PKCS8_X25519, jwk: true },
  Ed25519: { der: PKCS8_ED25519, jwk: true },
}

/** A private key of `crv` from its 32 raw bytes (an X25519 secret, an Ed25519 seed): JWK first, DER if refused. */
function privateKeyOf(crv: keyof typeof IMPORTS, secretKey: Uint8Array): KeyObject {
  checkKey(secretKey, `${crv} secret key`)
  const how = IMPORTS[crv]
  // Like the bigints inside the pure-JS path, the base64url string cannot be zeroed; the DER buffer is.
  if (how.jwk) {
    try {
      const d = Buffer.from(secretKey.buffer, secretKey.byteOffset, secretKey.length).toString('base64url')
      return createPrivateKey({ key: { kty: 'OKP', crv, d, x: UNUSED_X }, format: 'jwk' })
    } catch {
      how.jwk = false
    }
  }
  const der = Buffer.concat([how.der, secretKey])
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
  } finally {
    der.fill(0)
  }
}

const privateKey = (secretKey: Uint8Array) => privateKeyOf('X25519', secretKey)

function publicKey(key: Uint8Array): KeyObject {
  checkKey(key, 'X25519 public key')
  const x = Buffer.from(key.buffer, key.byteOffset, key.length).toString('base64url')
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' })
}

/** Imported public keys of the peers of `getSharedSecrets`, by their base64url form, oldest first. */
const identityKeys = new Map<string, KeyObject>()
const IDENTITY_KEYS_HELD = 4096

/** {@link publicKey}, remembered: an import costs about as much as the agreement itself. */
function identityPublicKey(key: Uint8Array): KeyObject {
  checkKey(key, 'X25519 public key')
  const x = Buffer.from(key.buffer, key.byteOffset, key.length).toString('base64url')
  let out = identityKeys.get(x)
  if (out === undefined) {
    out = publicKey(key)
    if (identityKeys.size >= IDENTITY_KEYS_HELD) identityKeys.delete(identityKeys.keys().next().value!)
    identityKeys.set(x, out)
  }
  return out
}

/** X25519 with an imported secret; RFC 7748 §6.1: an all-zero result (a low-order peer key) is refused. */
function agree(secret: KeyObject, peer: Uint8Array, peerKey = publicKey(peer)): Uint8Array {
  const shared = diffieHellman({ privateKey: secret, publicKey: peerKey })
  let acc = 0
  for (const b of shared) acc |= b
  if (acc === 0) throw new RangeError('X25519 produced the all-zero value (low-order public key)')
  const out = own(shared)
  shared.fill(0)
  return out
}

const HASH_BYTES = 32
const NO_SALT = Buffer.alloc(HASH_BYTES)

/**
 * HKDF-SHA-256 (RFC 5869) from OpenSSL's HMAC: extract, then expand block by block. Half the time of `hkdfSync`,
 * which makes a KeyObject of the input on every call, and the end-to-end layer makes several calls per message.
 */
function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > 255 * HASH_BYTES) {
    throw new RangeError(`HKDF-SHA-256 length must be 0 to ${255 * HASH_BYTES}`)
  }
  const prk = createHmac('sha256', salt.length > 0 ? salt : NO_SALT)
    .update(ikm)
    .digest()
  const out = new Uint8Array(length)
  let block: Buffer = Buffer.alloc(0)
  for (let i = 0; i * HASH_BYTES < length; i++) {
    const next = createHmac('sha256', prk)
      .update(block)
      .update(info)
      .update(Uint8Array.of(i + 1))
      .digest()
    block.fill(0)
    block = next
    out.set(block.subarray(0, Math.min(HASH_BYTES, length - i * HASH_BYTES)), i * HASH_BYTES)
  }
  block.fill(0)
  prk.fill(0)
  return out
}

/** A plain Uint8Array copy (the protocol hands out no Buffers, STYLE.md §6). */
const own = (b: Uint8Array): Uint8Array => Uint8Array.from(b)

/**
 * The `node:crypto` implementations of the end-to-end primitives. `createClient()` passes it as the client's
 * `crypto` option; pass it yourself when you use `ParleyClient` directly.
 * @example
 * import { MemoryStore, nodeCryptoProvider, ParleyClient, WsTransport } from '@parley/node'
 * const client = await ParleyClient.create({ relayUrl, transport: new WsTransport(), store: new MemoryStore(),
 *   crypto: nodeCryptoProvider })
 */
export const nodeCryptoProvider: Required<CryptoProvider> = Object.freeze({
  x25519: {
    getPublicKey(secretKey: Uint8Array): Uint8Array {
      const { x } = createPublicKey(privateKey(secretKey)).export({ format: 'jwk' })
      return own(Buffer.from(x!, 'base64url'))
    },
    getSharedSecret(secretKey: Uint8Array, peer: Uint8Array): Uint8Array {
      return agree(privateKey(secretKey), peer)
    },
    getSharedSecrets(secretKey: Uint8Array, peers: readonly Uint8Array[]): Uint8Array[] {
      // The secret imported once: the import derives its public key, a scalar multiplication of its own. The
      // peers here are identity keys a device seals to again and again: their imports are remembered.
      const key = privateKey(secretKey)
      return peers.map((peer) => agree(key, peer, identityPublicKey(peer)))
    },
  },
  chacha20poly1305: {
    seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
      const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES })
      cipher.setAAD(ad, { plaintextLength: plaintext.length })
      const head = cipher.update(plaintext)
      const tail = cipher.final()
      const out = new Uint8Array(head.length + tail.length + TAG_BYTES)
      out.set(head)
      out.set(tail, head.length)
      out.set(cipher.getAuthTag(), head.length + tail.length)
      return out
    },
    open(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array {
      if (sealed.length < TAG_BYTES) throw new RangeError('ciphertext is shorter than the tag')
      const body = sealed.subarray(0, sealed.length - TAG_BYTES)
      const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES })
      decipher.setAAD(ad, { plaintextLength: body.length })
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
      const head = decipher.update(body)
      const tail = decipher.final() // throws when the tag does not verify
      const out = new Uint8Array(head.length + tail.length)
      out.set(head)
      out.set(tail, head.length)
      head.fill(0)
      return out
    },
  },
  sha256() {
    const hash = createHash('sha256')
    return {
      update(data: Uint8Array) {
        hash.update(data)
      },
      // A plain Uint8Array, not the Buffer node:crypto returns.
      digest: () => new Uint8Array(hash.digest()),
    }
  },
  hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
    return hkdf(ikm, salt, info, length)
  },
  ed25519Sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
    return own(sign(null, message, privateKeyOf('Ed25519', secretKey)))
  },
  ed25519Verify(key: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    if (key.length !== KEY_BYTES || signature.length !== 64) return false
    const x = Buffer.from(key.buffer, key.byteOffset, key.length).toString('base64url')
    try {
      const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' })
      return verify(null, message, publicKey, signature)
    } catch {
      return false // not a point on the curve, or otherwise malformed
    }
  },
})
