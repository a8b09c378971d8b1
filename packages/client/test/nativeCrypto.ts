// Native X25519 and Ed25519 verification for the engine tests, given to each client and the FakeRelay as their
// `crypto` option (what @parley/node passes in production, bit-for-bit equal to the pure code): activating a
// device makes 100 one-time prekeys, and with pure-JS X25519 that is most of what these tests cost.
// PARLEY_PURE_CRYPTO=1 runs them on the pure code instead.
import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject, verify } from 'node:crypto'
import type { CryptoProvider } from '@parley/protocol'

const b64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64url')
const x25519Private = (secretKey: Uint8Array): KeyObject =>
  // Node derives the public key from `d` and ignores `x` on import.
  createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: b64(secretKey), x: b64(new Uint8Array(32)) },
    format: 'jwk',
  })
const okpPublic = (crv: 'X25519' | 'Ed25519', key: Uint8Array): KeyObject =>
  createPublicKey({ key: { kty: 'OKP', crv, x: b64(key) }, format: 'jwk' })

/** node:crypto's X25519 and Ed25519 verification. */
export const native = {
  x25519: {
    getPublicKey: (secretKey) =>
      Uint8Array.from(
        Buffer.from(createPublicKey(x25519Private(secretKey)).export({ format: 'jwk' }).x!, 'base64url'),
      ),
    getSharedSecret: (secretKey, peer) => {
      const shared = diffieHellman({
        privateKey: x25519Private(secretKey),
        publicKey: okpPublic('X25519', peer),
      })
      if (shared.every((b) => b === 0)) throw new RangeError('X25519 produced the all-zero value')
      return Uint8Array.from(shared)
    },
  },
  ed25519Verify: (key, message, signature) => {
    if (key.length !== 32 || signature.length !== 64) return false
    try {
      return verify(null, message, okpPublic('Ed25519', key), signature)
    } catch {
      return false
    }
  },
} satisfies CryptoProvider

/** The primitives the engine tests give their clients and relay (undefined with PARLEY_PURE_CRYPTO=1). */
export const testCrypto: CryptoProvider | undefined =
  process.env.PARLEY_PURE_CRYPTO === '1' ? undefined : native
