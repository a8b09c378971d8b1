// Independent implementations for the constructions' tests: node:crypto (OpenSSL) for Ed25519, X25519, SHA-2,
// HKDF-SHA-256, ChaCha20-Poly1305 and scrypt, and protobufjs' static codecs (test/gen) for the encodings, so
// that a test compares the package against code it does not share.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  scryptSync,
  sign,
  verify,
} from 'node:crypto'
import { parley } from './gen/parley.js'

/** protobufjs' static codec of a parley.v1 message. */
export const pbjs = (type: string) =>
  (parley.v1 as unknown as Record<string, { encode(m: object): { finish(): Uint8Array } }>)[type]!

/** protobufjs' encoding of `message` as `type`. */
export const pbEncode = (type: string, message: object): Uint8Array =>
  new Uint8Array(pbjs(type).encode(message).finish())

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex')

/** OpenSSL's Ed25519 signature of `message` by the 32-byte seed. */
export function nodeSign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' })
  return new Uint8Array(sign(null, message, key))
}

/** OpenSSL's Ed25519 verification with a raw 32-byte public key. */
export function nodeVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') },
    format: 'jwk',
  })
  return verify(null, message, key, signature)
}

/** OpenSSL's HKDF-SHA-256. */
export const nodeHkdf = (ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number) =>
  new Uint8Array(hkdfSync('sha256', ikm, salt, info, length))

/** OpenSSL's ChaCha20-Poly1305: `ciphertext ‖ tag`. */
export function nodeSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array) {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
  c.setAAD(ad, { plaintextLength: plaintext.length })
  return new Uint8Array(Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]))
}

/** OpenSSL's ChaCha20-Poly1305 opening of `ciphertext ‖ tag`; throws when the tag does not verify. */
export function nodeOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array) {
  const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
  d.setAAD(ad, { plaintextLength: sealed.length - 16 })
  d.setAuthTag(sealed.subarray(sealed.length - 16))
  return new Uint8Array(Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]))
}

/** OpenSSL's scrypt with p = 1. */
export const nodeScrypt = (password: Uint8Array, salt: Uint8Array, logN: number, r: number, length: number) =>
  new Uint8Array(scryptSync(password, salt, length, { N: 2 ** logN, r, p: 1, maxmem: 1024 * 1024 * 1024 }))

/** UTF-8 bytes of a label. */
export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

/** Concatenation of byte arrays. */
export const cat = (...parts: Uint8Array[]): Uint8Array<ArrayBuffer> => new Uint8Array(Buffer.concat(parts))

/** OpenSSL's SHA-256 or SHA-512. */
export const nodeHash = (algorithm: 'sha256' | 'sha512', data: Uint8Array): Uint8Array =>
  new Uint8Array(createHash(algorithm).update(data).digest())

const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex')
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex')
const x25519Secret = (secret: Uint8Array) =>
  createPrivateKey({ key: Buffer.concat([PKCS8_X25519, secret]), format: 'der', type: 'pkcs8' })

/** OpenSSL's X25519 public key of a 32-byte secret. */
export const nodeX25519Public = (secret: Uint8Array): Uint8Array =>
  new Uint8Array(createPublicKey(x25519Secret(secret)).export({ format: 'der', type: 'spki' }).subarray(12))

/** OpenSSL's X25519(secret, public). */
export const nodeX25519 = (secret: Uint8Array, peer: Uint8Array): Uint8Array =>
  new Uint8Array(
    diffieHellman({
      privateKey: x25519Secret(secret),
      publicKey: createPublicKey({ key: Buffer.concat([SPKI_X25519, peer]), format: 'der', type: 'spki' }),
    }),
  )

/**
 * The X25519 key pair of an Ed25519 identity seed (RFC 8032 §5.1.5's expanded scalar, as RFC 7748 uses it):
 * OpenSSL's SHA-512 of the seed, its first half as the X25519 secret, and that secret's public key.
 */
export function nodeIdentityX25519(seed: Uint8Array): { secret: Uint8Array; publicKey: Uint8Array } {
  const secret = nodeHash('sha512', seed).slice(0, 32)
  return { secret, publicKey: nodeX25519Public(secret) }
}
