// Independent implementations for the linked-device constructions' tests: node:crypto (OpenSSL) for Ed25519,
// HKDF-SHA-256, ChaCha20-Poly1305 and scrypt, and protobufjs' static codecs (test/gen) for the encodings, so
// that a test compares the package against code it does not share.
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
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
