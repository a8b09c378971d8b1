// The node:crypto fast path must be bit-for-bit the pure-JS (@noble) default: primitive by primitive on random
// inputs, on the frozen end-to-end known-answer vectors, and in whole sessions between a client using it and
// one that does not.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { getCryptoProvider, openEnvelope, Session, sealEnvelope, setCryptoProvider } from '@parley/protocol'
import { afterEach, describe, expect, it } from 'vitest'
// The pure-JS primitives, reached through the protocol with no provider installed.
import * as noble from '../../protocol/src/internal/e2eCrypto.js'
import { makeDevice, seededRandom } from '../../protocol/test/e2e/helpers.js'
import { computeVectors } from '../../protocol/test/e2e/vectors.js'
import { createClient } from './createClient.js'
import { nodeCryptoProvider as fast, installNodeCrypto } from './nodeCrypto.js'

const rand = (n: number) => new Uint8Array(randomBytes(n))
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const outcome = (f: () => Uint8Array): string => {
  try {
    return hex(f())
  } catch {
    return 'refused'
  }
}

afterEach(() => setCryptoProvider())

describe('node:crypto X25519', () => {
  it('derives the same public keys as noble for random (unclamped) secret keys', () => {
    for (let i = 0; i < 200; i++) {
      const sk = rand(32)
      expect(hex(fast.x25519.getPublicKey(sk))).toBe(hex(noble.x25519PublicKey(sk)))
    }
  })

  it('computes the same shared secrets in both directions', () => {
    for (let i = 0; i < 200; i++) {
      const a = rand(32)
      const b = rand(32)
      const A = noble.x25519PublicKey(a)
      const B = noble.x25519PublicKey(b)
      const ab = fast.x25519.getSharedSecret(a, B)
      expect(hex(ab)).toBe(hex(noble.dh(a, B)))
      expect(hex(fast.x25519.getSharedSecret(b, A))).toBe(hex(ab))
    }
  })

  it('treats arbitrary peer u-coordinates (top bit set, non-canonical) exactly as noble does', () => {
    const p = (1n << 255n) - 19n
    const le = (n: bigint) => {
      const out = new Uint8Array(32)
      for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn)
      return out
    }
    const peers = [
      ...Array.from({ length: 100 }, () => rand(32)),
      le(p), // non-canonical encodings of 0, 1 and 9
      le(p + 1n),
      le(p + 9n),
      le((1n << 255n) | 9n),
    ]
    for (const peer of peers) {
      const sk = rand(32)
      expect(outcome(() => fast.x25519.getSharedSecret(sk, peer))).toBe(outcome(() => noble.dh(sk, peer)))
    }
  })

  it('refuses every low-order public key, as noble does (RFC 7748 §6.1)', () => {
    // The small-order u-coordinates on Curve25519 and its twist (as listed by libsodium and the Signal tests).
    const lowOrder = [
      '0000000000000000000000000000000000000000000000000000000000000000',
      '0100000000000000000000000000000000000000000000000000000000000000',
      'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
      '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
      'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    ].map((h) => new Uint8Array(Buffer.from(h, 'hex')))
    for (const peer of lowOrder) {
      const sk = rand(32)
      expect(outcome(() => fast.x25519.getSharedSecret(sk, peer))).toBe('refused')
      expect(outcome(() => noble.dh(sk, peer))).toBe('refused')
    }
  })

  it('refuses keys of the wrong length with a RangeError', () => {
    expect(() => fast.x25519.getPublicKey(rand(31))).toThrow(RangeError)
    expect(() => fast.x25519.getSharedSecret(rand(32), rand(33))).toThrow(RangeError)
  })
})

describe('node:crypto ChaCha20-Poly1305 and HKDF-SHA-256', () => {
  it('seals and opens exactly as noble does, and refuses a tampered byte', () => {
    for (const length of [0, 1, 15, 16, 63, 64, 160, 1000, 70_000]) {
      const key = rand(32)
      const nonce = rand(12)
      const ad = rand(length % 97)
      const pt = rand(length)
      const sealed = fast.chacha20poly1305.seal(key, nonce, pt, ad)
      expect(hex(sealed)).toBe(hex(noble.aeadSeal(key, nonce, pt, ad)))
      expect(hex(fast.chacha20poly1305.open(key, nonce, sealed, ad))).toBe(hex(pt))
      const tampered = sealed.slice()
      tampered[length % sealed.length]! ^= 1
      expect(() => fast.chacha20poly1305.open(key, nonce, tampered, ad)).toThrow()
    }
  })

  it('derives the same HKDF output for any salt, info and length', () => {
    for (const length of [1, 32, 64, 80, 255]) {
      const ikm = rand(32 + (length % 7))
      const salt = length % 2 ? rand(32) : new Uint8Array(0)
      const info = rand(length % 40)
      expect(hex(fast.hkdfSha256(ikm, salt, info, length))).toBe(hex(noble.hkdf256(ikm, salt, info, length)))
    }
  })
})

describe('sessions with the fast path', () => {
  it('reproduces the frozen end-to-end known-answer vectors', async () => {
    const file = join(
      import.meta.dirname,
      '..',
      '..',
      'protocol',
      'test',
      'vectors',
      'parley-e2e',
      'kat.json',
    )
    installNodeCrypto()
    expect(await computeVectors()).toEqual(JSON.parse(readFileSync(file, 'utf8')))
  })

  /** A conversation with DH ratchet steps and sealed envelopes; each party runs under its own provider. */
  async function conversation(aliceFast: boolean, bobFast: boolean): Promise<string[]> {
    const as = <T>(isFast: boolean, f: () => T): T => {
      if (isFast) installNodeCrypto()
      else setCryptoProvider()
      try {
        return f()
      } finally {
        setCryptoProvider()
      }
    }
    const random = seededRandom('node-fast-path-interop')
    const alice = makeDevice('alice', random, 1)
    const bob = makeDevice('bob', random, 2)
    const enc = new TextEncoder()
    const wire: string[] = []
    const { session: a } = as(aliceFast, () =>
      Session.initiate(alice.identity, alice.address, 1, bob.bundle(), { random }),
    )
    const first = as(aliceFast, () => a.encrypt(enc.encode('hello')))
    const envelope = as(aliceFast, () =>
      sealEnvelope(
        {
          recipientIdentityKey: bob.identity.publicKey,
          senderIdentity: alice.identity,
          senderAddress: alice.address,
          senderDeviceId: 1,
          message: first,
          senderCertificate: new Uint8Array(0),
        },
        { random },
      ),
    )
    wire.push(hex(envelope))
    const opened = as(bobFast, () => openEnvelope(bob.identity, envelope))
    if (bobFast) installNodeCrypto()
    const res = await Session.respond(
      bob.identity,
      bob.address,
      2,
      {
        senderAddress: opened.senderAddress,
        senderDeviceId: opened.senderDeviceId,
        senderIdentityKey: opened.senderIdentityKey,
        message: opened.message,
      },
      bob.lookup,
      { random },
    )
    setCryptoProvider()
    const b = res.session
    expect(new TextDecoder().decode(res.plaintext)).toBe('hello')
    // Alternate senders so that every message carries a DH ratchet step; send bursts of three now and then.
    for (let i = 0; i < 30; i++) {
      const [from, to, fromFast, toFast] = i % 2 ? [a, b, aliceFast, bobFast] : [b, a, bobFast, aliceFast]
      const burst = i % 5 === 0 ? 3 : 1
      for (let j = 0; j < burst; j++) {
        const text = `message ${i}.${j}`
        const message = as(fromFast, () => from.encrypt(enc.encode(text)))
        wire.push(hex(message.body))
        const plaintext = as(toFast, () => to.decrypt(message))
        expect(new TextDecoder().decode(plaintext)).toBe(text)
      }
    }
    return wire
  }

  it('interoperates with a noble peer and puts the same bytes on the wire', async () => {
    const reference = await conversation(false, false)
    expect(await conversation(true, false)).toEqual(reference)
    expect(await conversation(false, true)).toEqual(reference)
    expect(await conversation(true, true)).toEqual(reference)
  })
})

describe('createClient', () => {
  it('installs the node:crypto fast path', async () => {
    const client = await createClient({ relayUrl: 'ws://127.0.0.1:9/v1/ws', defaultRegion: 'US' })
    expect(getCryptoProvider().x25519).toBe(fast.x25519)
    expect(getCryptoProvider().chacha20poly1305).toBe(fast.chacha20poly1305)
    await client.close()
  })
})
