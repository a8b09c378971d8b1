// Primitives cross-checked against node:crypto (an independent implementation), where no official vector
// covers our exact use: X25519 (RFC 7748), the Ed25519→X25519 map, ChaCha20-Poly1305 (RFC 8439), HKDF (RFC 5869).
import { createCipheriv, createPrivateKey, createPublicKey, diffieHellman, hkdfSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../test/e2e/helpers.js'
import { generateIdentity } from '../identity.js'
import {
  aeadOpen,
  aeadSeal,
  dh,
  hkdf256,
  identityDhPublic,
  identityDhSecret,
  NOBLE,
  x25519KeyPair,
} from './e2eCrypto.js'

const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url')
const nodeX25519 = (secret: Uint8Array, pub: Uint8Array) =>
  new Uint8Array(
    diffieHellman({
      privateKey: createPrivateKey({
        key: { kty: 'OKP', crv: 'X25519', d: b64u(secret), x: b64u(pub) },
        format: 'jwk',
      }),
      publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(pub) }, format: 'jwk' }),
    }),
  )

describe('primitives against node:crypto', () => {
  const random = seededRandom('primitives')

  it('X25519 agrees, including with identity keys in Montgomery form', () => {
    for (let i = 0; i < 20; i++) {
      const a = x25519KeyPair(NOBLE, random)
      const b = x25519KeyPair(NOBLE, random)
      expect(dh(NOBLE, a.secretKey, b.publicKey)).toEqual(nodeX25519(a.secretKey, b.publicKey))
      const id = generateIdentity(random)
      const idSecret = identityDhSecret(id.secretKey)
      expect(dh(NOBLE, idSecret, b.publicKey)).toEqual(
        nodeX25519(b.secretKey, identityDhPublic(id.publicKey)),
      )
    }
  })

  it('ChaCha20-Poly1305 agrees and refuses a changed tag', () => {
    for (let i = 0; i < 20; i++) {
      const key = random(32)
      const nonce = random(12)
      const ad = random(i * 3)
      const pt = random(i * 37)
      const ours = aeadSeal(NOBLE, key, nonce, pt, ad)
      const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
      c.setAAD(ad, { plaintextLength: pt.length })
      const theirs = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()])
      expect(Buffer.from(ours)).toEqual(theirs)
      expect(aeadOpen(NOBLE, key, nonce, ours, ad)).toEqual(pt)
      ours[ours.length - 1]! ^= 1
      expect(() => aeadOpen(NOBLE, key, nonce, ours, ad)).toThrow(/authentication/)
    }
  })

  it('HKDF-SHA-256 agrees', () => {
    for (let i = 0; i < 20; i++) {
      const ikm = random(32 + i)
      const salt = random(i)
      const info = random(i % 7)
      expect(Buffer.from(hkdf256(NOBLE, ikm, salt, info, 64))).toEqual(
        Buffer.from(hkdfSync('sha256', ikm, salt, info, 64)),
      )
    }
  })
})
