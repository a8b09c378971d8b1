// The node:crypto fast path must be bit-for-bit the pure-JS (@noble) default: primitive by primitive on random
// inputs, on the frozen end-to-end known-answer vectors, and in whole sessions between a client using it and
// one that does not.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ParleyClient } from '@parley/client'
import {
  type CiphertextMessage,
  type CryptoProvider,
  createSenderKey,
  decryptAttachment,
  encryptAttachment,
  joinSealed,
  openEnvelope,
  Session,
  sealEnvelope,
  sealForDevices,
  senderKeyEncrypt,
} from '@parley/protocol'
import { describe, expect, it, vi } from 'vitest'
// The pure-JS primitives (the protocol's defaults).
import * as noble from '../../protocol/src/internal/e2eCrypto.js'
import { makeDevice, seededRandom } from '../../protocol/test/e2e/helpers.js'
import { computeVectors } from '../../protocol/test/e2e/vectors.js'
import { createClient } from './createClient.js'
import { nodeCryptoProvider as fast } from './nodeCrypto.js'

const rand = (n: number) => new Uint8Array(randomBytes(n))
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const outcome = (f: () => Uint8Array): string => {
  try {
    return hex(f())
  } catch {
    return 'refused'
  }
}

/** `fast`, counting every call that reaches it. */
function counted(): { crypto: CryptoProvider; calls: { n: number } } {
  const calls = { n: 0 }
  const wrap =
    <A extends unknown[], R>(f: (...a: A) => R) =>
    (...a: A): R => {
      calls.n++
      return f(...a)
    }
  const crypto: CryptoProvider = {
    x25519: {
      getPublicKey: wrap(fast.x25519.getPublicKey),
      getSharedSecret: wrap(fast.x25519.getSharedSecret),
    },
    chacha20poly1305: { seal: wrap(fast.chacha20poly1305.seal), open: wrap(fast.chacha20poly1305.open) },
    hkdfSha256: wrap(fast.hkdfSha256),
    ed25519Verify: wrap(fast.ed25519Verify),
    ed25519Sign: wrap(fast.ed25519Sign),
    sha256: wrap(fast.sha256),
  }
  return { crypto, calls }
}

describe('node:crypto X25519', () => {
  it('derives the same public keys as noble for random (unclamped) secret keys', () => {
    for (let i = 0; i < 200; i++) {
      const sk = rand(32)
      expect(hex(fast.x25519.getPublicKey(sk))).toBe(hex(noble.NOBLE.x25519.getPublicKey(sk)))
    }
  })

  it('computes the same shared secrets in both directions', () => {
    for (let i = 0; i < 200; i++) {
      const a = rand(32)
      const b = rand(32)
      const A = noble.NOBLE.x25519.getPublicKey(a)
      const B = noble.NOBLE.x25519.getPublicKey(b)
      const ab = fast.x25519.getSharedSecret(a, B)
      expect(hex(ab)).toBe(hex(noble.dh(noble.NOBLE, a, B)))
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
      expect(outcome(() => fast.x25519.getSharedSecret(sk, peer))).toBe(
        outcome(() => noble.dh(noble.NOBLE, sk, peer)),
      )
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
      expect(outcome(() => noble.dh(noble.NOBLE, sk, peer))).toBe('refused')
    }
  })

  it('computes many shared secrets with one secret key as getSharedSecret does each, refusing a low-order one', () => {
    const sk = rand(32)
    const peers = Array.from({ length: 50 }, () => noble.NOBLE.x25519.getPublicKey(rand(32)))
    expect(fast.x25519.getSharedSecrets!(sk, peers).map(hex)).toEqual(
      peers.map((p) => hex(noble.dh(noble.NOBLE, sk, p))),
    )
    expect(fast.x25519.getSharedSecrets!(sk, [])).toEqual([])
    expect(() => fast.x25519.getSharedSecrets!(sk, [peers[0]!, new Uint8Array(32)])).toThrow()
  })

  it('refuses keys of the wrong length with a RangeError', () => {
    expect(() => fast.x25519.getPublicKey(rand(31))).toThrow(RangeError)
    expect(() => fast.x25519.getSharedSecret(rand(32), rand(33))).toThrow(RangeError)
  })
})

describe('node:crypto Ed25519 signing', () => {
  it('signs the RFC 8032 §7.1 test vectors and exactly as noble does, and refuses a wrong-length seed', () => {
    const b = (h: string) => new Uint8Array(Buffer.from(h, 'hex'))
    expect(
      hex(
        fast.ed25519Sign(
          b('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'),
          new Uint8Array(0),
        ),
      ),
    ).toBe(
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    )
    expect(
      hex(fast.ed25519Sign(b('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb'), b('72'))),
    ).toBe(
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
    )
    for (let i = 0; i < 50; i++) {
      const seed = rand(32)
      const message = rand(i * 7)
      const signature = fast.ed25519Sign(seed, message)
      expect(hex(signature)).toBe(hex(noble.NOBLE.ed25519Sign(seed, message)))
      expect(Object.getPrototypeOf(signature)).toBe(Uint8Array.prototype)
    }
    expect(() => fast.ed25519Sign(rand(31), rand(5))).toThrow(RangeError)
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
      expect(hex(sealed)).toBe(hex(noble.aeadSeal(noble.NOBLE, key, nonce, pt, ad)))
      expect(hex(fast.chacha20poly1305.open(key, nonce, sealed, ad))).toBe(hex(pt))
      const tampered = sealed.slice()
      tampered[length % sealed.length]! ^= 1
      expect(() => fast.chacha20poly1305.open(key, nonce, tampered, ad)).toThrow()
    }
  })

  it('hashes attachments as noble does: the same SHA-256, fed in pieces, and the same blob digest', () => {
    for (const length of [0, 1, 63, 64, 65, 1000, 70_000]) {
      const data = rand(length)
      const h = fast.sha256()
      for (let at = 0; at < length; at += 777) h.update(data.subarray(at, at + 777))
      const reference = noble.NOBLE.sha256()
      reference.update(data)
      expect(hex(h.digest())).toBe(hex(reference.digest()))
    }
    const file = rand(200_000)
    const key = rand(32)
    const viaNode = encryptAttachment(file, { key, crypto: fast })
    expect(hex(viaNode.digest)).toBe(hex(encryptAttachment(file, { key }).digest))
    // A plain Uint8Array (a Buffer would be stored as { type: 'Buffer', data } by JSON records).
    expect(Object.getPrototypeOf(viaNode.digest)).toBe(Uint8Array.prototype)
    expect(Object.getPrototypeOf(fast.sha256().digest())).toBe(Uint8Array.prototype)
    expect(hex(decryptAttachment(viaNode.blob, { ...viaNode, crypto: fast }))).toBe(hex(file))
  })

  it('derives the RFC 5869 test vectors (A.1-A.3), and refuses a length HKDF cannot give', () => {
    const b = (h: string) => new Uint8Array(Buffer.from(h, 'hex'))
    const range = (from: number, to: number) => Uint8Array.from({ length: to - from + 1 }, (_, i) => from + i)
    const cases = [
      [
        b('0b'.repeat(22)),
        range(0, 12),
        range(0xf0, 0xf9),
        42,
        '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
      ],
      [
        range(0, 0x4f),
        range(0x60, 0xaf),
        range(0xb0, 0xff),
        82,
        'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87',
      ],
      [
        b('0b'.repeat(22)),
        new Uint8Array(0),
        new Uint8Array(0),
        42,
        '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
      ],
    ] as const
    for (const [ikm, salt, info, length, okm] of cases) {
      expect(hex(fast.hkdfSha256(ikm, salt, info, length))).toBe(okm)
    }
    expect(() => fast.hkdfSha256(rand(32), rand(32), rand(8), 255 * 32 + 1)).toThrow(RangeError)
    expect(() => fast.hkdfSha256(rand(32), rand(32), rand(8), -1)).toThrow(RangeError)
  })

  it('derives the same HKDF output for any salt, info and length', () => {
    for (const length of [0, 1, 31, 32, 33, 64, 80, 255, 255 * 32]) {
      const ikm = rand(32 + (length % 7))
      const salt = length % 2 ? rand(32 + (length % 100)) : new Uint8Array(0)
      const info = rand(length % 40)
      expect(hex(fast.hkdfSha256(ikm, salt, info, length))).toBe(
        hex(noble.hkdf256(noble.NOBLE, ikm, salt, info, length)),
      )
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
    expect(await computeVectors(fast)).toEqual(JSON.parse(readFileSync(file, 'utf8')))
  })

  /**
   * A conversation with DH ratchet steps and sealed envelopes; each party passes its own `crypto` option (the
   * fast path, counted, or none). Returns the wire bytes and how many calls reached each party's fast path.
   */
  async function conversation(
    aliceFast: boolean,
    bobFast: boolean,
  ): Promise<{ wire: string[]; aliceCalls: number[]; bobCalls: number[] }> {
    const ac = counted()
    const bc = counted()
    const aliceCrypto = aliceFast ? ac.crypto : undefined
    const bobCrypto = bobFast ? bc.crypto : undefined
    const random = seededRandom('node-fast-path-interop')
    const alice = makeDevice('alice', random, 1)
    const bob = makeDevice('bob', random, 2)
    const enc = new TextEncoder()
    const wire: string[] = []
    const { session: a } = Session.initiate(alice.identity, alice.address, 1, bob.bundle(), {
      random,
      crypto: aliceCrypto,
    })
    const first = a.encrypt(enc.encode('hello'))
    const envelope = sealEnvelope(
      {
        recipientIdentityKey: bob.identity.publicKey,
        senderIdentity: alice.identity,
        senderAddress: alice.address,
        senderDeviceId: 1,
        message: first,
        senderCertificate: new Uint8Array(0),
      },
      { random, crypto: aliceCrypto },
    )
    wire.push(hex(envelope))
    const opened = openEnvelope(bob.identity, envelope, { crypto: bobCrypto })
    const res = await Session.respond(
      bob.identity,
      bob.address,
      2,
      {
        senderAddress: opened.senderAddress,
        senderDeviceId: opened.senderDeviceId,
        senderIdentityKey: opened.senderIdentityKey,
        message: opened.message as CiphertextMessage,
      },
      bob.lookup,
      { random, crypto: bobCrypto },
    )
    const b = res.session
    expect(new TextDecoder().decode(res.plaintext)).toBe('hello')
    const setup = [ac.calls.n, bc.calls.n]
    // Alternate senders so that every message carries a DH ratchet step; send bursts of three now and then.
    for (let i = 0; i < 30; i++) {
      const [from, to] = i % 2 ? [a, b] : [b, a]
      const burst = i % 5 === 0 ? 3 : 1
      for (let j = 0; j < burst; j++) {
        const text = `message ${i}.${j}`
        const message = from.encrypt(enc.encode(text))
        wire.push(hex(message.body))
        expect(new TextDecoder().decode(to.decrypt(message))).toBe(text)
      }
    }
    // Calls while starting the session, then while the sessions ran on their own.
    return {
      wire,
      aliceCalls: [setup[0]!, ac.calls.n - setup[0]!],
      bobCalls: [setup[1]!, bc.calls.n - setup[1]!],
    }
  }

  it('interoperates with a noble peer and puts the same bytes on the wire', async () => {
    const reference = await conversation(false, false)
    expect(reference).toMatchObject({ aliceCalls: [0, 0], bobCalls: [0, 0] })
    for (const [aliceFast, bobFast] of [
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      const run = await conversation(aliceFast, bobFast)
      expect(run.wire).toEqual(reference.wire)
      // Each session and envelope used the primitives it was given, and only those; a session keeps them.
      expect(run.aliceCalls.map((n) => n > 0)).toEqual([aliceFast, aliceFast])
      expect(run.bobCalls.map((n) => n > 0)).toEqual([bobFast, bobFast])
    }
  })
})

describe('one message sealed for many devices with the fast path', () => {
  it('writes the same bytes as noble, opens either way, and imports each secret once', () => {
    const random = () => seededRandom('node-fast-path-shared')
    const r = random()
    const alice = makeDevice('alice', r, 1)
    const devices = ['bob', 'carol', 'dave'].map((n, i) => makeDevice(n, r, i + 2))
    const input = {
      senderAddress: alice.address,
      senderDeviceId: 1,
      senderIdentity: alice.identity,
      recipientIdentityKeys: devices.map((d) => d.identity.publicKey),
      message: { kind: 'senderKey' as const, body: senderKeyEncrypt(createSenderKey(), rand(40)).message },
      senderCertificate: rand(100),
    }
    let batches = 0
    const crypto: CryptoProvider = {
      ...fast,
      x25519: {
        ...fast.x25519,
        getSharedSecrets: (sk, peers) => {
          batches++
          return fast.x25519.getSharedSecrets!(sk, peers)
        },
      },
    }
    const withFast = sealForDevices(input, { random: random(), crypto })
    const withNoble = sealForDevices(input, { random: random() })
    expect(hex(withFast.shared)).toBe(hex(withNoble.shared))
    expect(withFast.parts.map(hex)).toEqual(withNoble.parts.map(hex))
    // One batch for the ephemeral secret, one for the sender's identity: not one import per device.
    expect(batches).toBe(2)
    for (const [i, d] of devices.entries()) {
      const envelope = joinSealed(withFast.parts[i]!, withFast.shared)
      expect(openEnvelope(d.identity, envelope, { crypto: fast }).senderIdentityKey).toEqual(
        alice.identity.publicKey,
      )
      expect(openEnvelope(d.identity, envelope).message.body).toEqual(input.message.body)
    }
  })
})

describe('createClient', () => {
  it('gives the client the node:crypto fast path, and nothing process-wide changes', async () => {
    const seen: unknown[] = []
    const Original = ParleyClient.create
    const spy = vi.spyOn(ParleyClient, 'create').mockImplementation((options) => {
      seen.push(options.crypto)
      return Original.call(ParleyClient, options)
    })
    try {
      const client = await createClient({ relayUrl: 'ws://127.0.0.1:9/v1/ws', defaultRegion: 'US' })
      await client.close()
      const own = counted()
      const other = await createClient({ relayUrl: 'ws://127.0.0.1:9/v1/ws', crypto: own.crypto })
      await other.close()
    } finally {
      spy.mockRestore()
    }
    expect(seen[0]).toBe(fast)
    expect(seen[1]).not.toBe(fast) // an app's own choice wins
  })
})
