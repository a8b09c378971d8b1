// Session: PQXDH set-up both ways, Double Ratchet limits, duplicates, tampering, atomic state (Signal PQXDH §3,
// Double Ratchet §3; docs/architecture.md §6).
import { ed25519 } from '@noble/curves/ed25519.js'
import { describe, expect, it } from 'vitest'
import { errorCode, errorCodeAsync, makeDevice, respondTo, seededRandom, senderOf } from '../test/fixtures.js'
import {
  type CiphertextMessage,
  openEnvelope,
  type PrekeyBundle,
  Session,
  sealEnvelope,
  signedPrekeyPayload,
} from './index.js'
import { decodeMessage, encodeMessage } from './internal/pb.js'

const enc = new TextEncoder()
const dec = new TextDecoder()
async function pair(label: string, bundleOpts?: { oneTime?: boolean; oneTimeKem?: boolean }) {
  const random = seededRandom(label)
  const alice = makeDevice('alice', random, 1)
  const bob = makeDevice('bob', random, 2)
  const { session: a } = Session.initiate(
    alice.identity,
    alice.address,
    alice.deviceId,
    bob.bundle(bundleOpts),
    {
      random,
    },
  )
  const first = a.encrypt(enc.encode('hello bob'))
  const res = await respondTo(bob, senderOf(alice, first), { random })
  return { random, alice, bob, a, b: res.session, first, res }
}

describe('Session set-up (PQXDH)', () => {
  it('agrees with a one-time prekey and a one-time KEM prekey, and reports what it consumed', async () => {
    const { a, b, first, res } = await pair('otp')
    expect(first.kind).toBe('prekey')
    expect(dec.decode(res.plaintext)).toBe('hello bob')
    expect(res.consumed).toEqual({ signedPrekeyId: 1, oneTimePrekeyId: 100, kemPrekeyId: 2 })
    const reply = b.encrypt(enc.encode('hi alice'))
    expect(reply.kind).toBe('ratchet')
    expect(a.awaitingReply).toBe(true)
    expect(dec.decode(a.decrypt(reply))).toBe('hi alice')
    expect(a.awaitingReply).toBe(false)
    expect(a.encrypt(enc.encode('x')).kind).toBe('ratchet')
  })

  it('agrees without a one-time prekey, with the last-resort KEM prekey', async () => {
    const { res, a, b } = await pair('no-otp', { oneTime: false, oneTimeKem: false })
    expect(res.consumed).toEqual({ signedPrekeyId: 1, oneTimePrekeyId: undefined, kemPrekeyId: 1 })
    expect(dec.decode(a.decrypt(b.encrypt(enc.encode('ok'))))).toBe('ok')
  })

  it('binds identities, addresses and devices on both sides', async () => {
    const { a, b, alice, bob } = await pair('bind')
    expect(a.remoteIdentityKey).toEqual(bob.identity.publicKey)
    expect(b.remoteIdentityKey).toEqual(alice.identity.publicKey)
    expect(b.remoteAddress).toEqual(alice.address)
    expect(b.remoteDeviceId).toBe(1)
    expect(a.remoteDeviceId).toBe(2)
  })

  it('accepts repeated prekey messages of the same session before the reply', async () => {
    const { a, b } = await pair('repeat')
    const second = a.encrypt(enc.encode('second'))
    expect(second.kind).toBe('prekey')
    expect(b.matchesPrekeyMessage(second)).toBe(true)
    expect(dec.decode(b.decrypt(second))).toBe('second')
  })

  it('refuses a replayed prekey message once its one-time prekey is consumed', async () => {
    const { bob, alice, first, res } = await pair('replay')
    bob.consume(res.consumed)
    expect(await errorCodeAsync(respondTo(bob, senderOf(alice, first)))).toBe('DECRYPT_FAILED')
  })

  it('refuses a prekey message whose identity differs from the sealed sender', async () => {
    const { bob, first } = await pair('mismatch')
    const other = makeDevice('mallory', seededRandom('m'))
    expect(await errorCodeAsync(respondTo(bob, senderOf(other, first)))).toBe('VERIFICATION_FAILED')
  })

  const tampered = (
    label: string,
    edit: (b: PrekeyBundle, sign: (p: Uint8Array) => Uint8Array) => PrekeyBundle,
  ) => {
    const random = seededRandom(label)
    const alice = makeDevice('alice', random)
    const bob = makeDevice('bob', random)
    const bundle = edit(bob.bundle(), (p) => ed25519.sign(p, bob.identity.secretKey))
    return errorCode(() => Session.initiate(alice.identity, alice.address, 1, bundle, { random }))
  }

  it('refuses a bundle with a bad signed-prekey or KEM-prekey signature', () => {
    const flip = (s: Uint8Array) => s.map((x, i) => (i === 0 ? x ^ 1 : x))
    expect(
      tampered('sig1', (b) => ({
        ...b,
        signedPrekey: { ...b.signedPrekey, signature: flip(b.signedPrekey.signature) },
      })),
    ).toBe('VERIFICATION_FAILED')
    expect(
      tampered('sig2', (b) => ({
        ...b,
        kemPrekey: { ...b.kemPrekey, signature: flip(b.kemPrekey.signature) },
      })),
    ).toBe('VERIFICATION_FAILED')
    expect(tampered('sig3', (b) => ({ ...b, signedPrekey: { ...b.signedPrekey, keyId: 9 } }))).toBe(
      'VERIFICATION_FAILED',
    )
  })

  it('refuses low-order points even when validly signed', () => {
    // RFC 7748 §6.1: these encode points of small order on curve25519.
    const lowOrder = [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))]
    for (const point of lowOrder) {
      expect(
        tampered('lo1', (b, sign) => ({
          ...b,
          signedPrekey: { keyId: 1, publicKey: point, signature: sign(signedPrekeyPayload(1, point)) },
        })),
      ).toBe('VERIFICATION_FAILED')
      expect(tampered('lo2', (b) => ({ ...b, oneTimePrekey: { keyId: 5, publicKey: point } }))).toBe(
        'VERIFICATION_FAILED',
      )
    }
  })

  it('refuses a small-order identity key', () => {
    // The Ed25519 identity point (0, 1) encoded: signatures by it cannot verify and its X25519 form is low order.
    const identity = Uint8Array.of(1, ...new Uint8Array(31))
    expect(tampered('lo3', (b) => ({ ...b, identityKey: identity }))).toBe('VERIFICATION_FAILED')
  })

  it('refuses a KEM ciphertext of the wrong length with BAD_REQUEST', async () => {
    const { bob, alice, first } = await pair('kemlen')
    const m = decodeMessage('PrekeyMessage', first.body)
    m.kemCiphertext = m.kemCiphertext.subarray(0, 1087)
    const body = encodeMessage('PrekeyMessage', m)
    expect(await errorCodeAsync(respondTo(bob, senderOf(alice, { kind: 'prekey', body })))).toBe(
      'BAD_REQUEST',
    )
  })

  it('refuses a forged KEM ciphertext (implicit rejection makes the first message fail)', async () => {
    const { bob, alice, first } = await pair('kemforge')
    const m = decodeMessage('PrekeyMessage', first.body)
    m.kemCiphertext = m.kemCiphertext.map((x, i) => (i === 7 ? x ^ 0x40 : x))
    const body = encodeMessage('PrekeyMessage', m)
    expect(await errorCodeAsync(respondTo(bob, senderOf(alice, { kind: 'prekey', body })))).toBe(
      'DECRYPT_FAILED',
    )
  })
})

describe('Session messages (Double Ratchet)', () => {
  it('decrypts out of order, refuses duplicates with DUPLICATE and leaves state untouched', async () => {
    const { a, b } = await pair('ooo')
    a.decrypt(b.encrypt(enc.encode('r')))
    const msgs = [0, 1, 2, 3, 4].map((i) => a.encrypt(enc.encode(`m${i}`)))
    expect(dec.decode(b.decrypt(msgs[3]!))).toBe('m3')
    expect(dec.decode(b.decrypt(msgs[0]!))).toBe('m0')
    const before = b.serialize()
    expect(errorCode(() => b.decrypt(msgs[3]!))).toBe('DUPLICATE')
    expect(errorCode(() => b.decrypt(msgs[0]!))).toBe('DUPLICATE')
    expect(b.serialize()).toEqual(before)
    for (const i of [4, 2, 1]) expect(dec.decode(b.decrypt(msgs[i]!))).toBe(`m${i}`)
  })

  it('refuses every single-byte change of a message and keeps working afterwards', async () => {
    const { a, b } = await pair('tamper')
    a.decrypt(b.encrypt(enc.encode('r')))
    const m = a.encrypt(enc.encode('tamper me'))
    const before = b.serialize()
    for (let i = 0; i < m.body.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const body = m.body.slice()
        body[i]! ^= bit
        const c = errorCode(() => b.decrypt({ kind: 'ratchet', body }))
        expect(['DECRYPT_FAILED', 'BAD_REQUEST', 'DUPLICATE']).toContain(c)
      }
    }
    expect(b.serialize()).toEqual(before)
    expect(dec.decode(b.decrypt(m))).toBe('tamper me')
  })

  it('keeps at most 2,000 skipped keys per chain, dropping the oldest', async () => {
    const { a, b } = await pair('skip')
    a.decrypt(b.encrypt(enc.encode('r')))
    const msgs: CiphertextMessage[] = []
    for (let i = 0; i < 2105; i++) msgs.push(a.encrypt(enc.encode(String(i))))
    expect(dec.decode(b.decrypt(msgs[2104]!))).toBe('2104')
    // 2,104 keys were skipped; the oldest 104 are gone.
    expect(errorCode(() => b.decrypt(msgs[103]!))).toBe('DUPLICATE')
    expect(dec.decode(b.decrypt(msgs[104]!))).toBe('104')
    expect(dec.decode(b.decrypt(msgs[2103]!))).toBe('2103')
  })

  it('refuses a forward jump above 25,000 without changing state', async () => {
    const { a, b } = await pair('jump')
    a.decrypt(b.encrypt(enc.encode('r')))
    // Forge Alice's sending counter (the receiver must refuse before deriving 25,001 keys).
    const rec = decodeMessage('SessionRecord', a.serialize())
    rec.sendingCounter = 25_001
    const forged = Session.deserialize(encodeMessage('SessionRecord', rec))
    const before = b.serialize()
    expect(errorCode(() => b.decrypt(forged.encrypt(enc.encode('far'))))).toBe('DECRYPT_FAILED')
    expect(b.serialize()).toEqual(before)
    expect(dec.decode(b.decrypt(a.encrypt(enc.encode('near'))))).toBe('near')
  })

  it('survives serialize/deserialize at every step of a conversation', async () => {
    let { a, b } = await pair('serial')
    const rt = (s: Session) => Session.deserialize(s.serialize())
    for (let i = 0; i < 30; i++) {
      const fromA = i % 3 !== 2
      const m = (fromA ? a : b).encrypt(enc.encode(`step ${i}`))
      a = rt(a)
      b = rt(b)
      expect(dec.decode((fromA ? b : a).decrypt(m))).toBe(`step ${i}`)
      a = rt(a)
      b = rt(b)
    }
  })

  it('refuses a prekey message of another session and a message of another session pair', async () => {
    const p1 = await pair('s1')
    const p2 = await pair('s2')
    const other = p2.a.encrypt(enc.encode('x'))
    expect(p1.b.matchesPrekeyMessage(other)).toBe(false)
    expect(errorCode(() => p1.b.decrypt(other))).toBe('DECRYPT_FAILED')
    p2.a.decrypt(p2.b.encrypt(enc.encode('r')))
    expect(errorCode(() => p1.b.decrypt(p2.a.encrypt(enc.encode('y'))))).toBe('DECRYPT_FAILED')
  })

  it('works end to end through sealed envelopes', async () => {
    const { a, b, alice, bob } = await pair('sealed')
    const env = sealEnvelope({
      senderAddress: bob.address,
      senderDeviceId: 2,
      senderIdentity: bob.identity,
      recipientIdentityKey: alice.identity.publicKey,
      message: b.encrypt(enc.encode('sealed hi')),
      senderCertificate: new Uint8Array(0),
    })
    const opened = openEnvelope(alice.identity, env)
    expect(opened.senderIdentityKey).toEqual(bob.identity.publicKey)
    expect(dec.decode(a.decrypt(opened.message as CiphertextMessage))).toBe('sealed hi')
  })
})

describe('Session bad input', () => {
  it('throws TypeError / RangeError for caller mistakes', async () => {
    const { a, alice, bob } = await pair('bad')
    const bundle = bob.bundle()
    expect(errorCode(() => a.encrypt('x' as unknown as Uint8Array))).toBe('TypeError')
    expect(
      errorCode(() => a.decrypt({ kind: 'other', body: new Uint8Array() } as unknown as CiphertextMessage)),
    ).toBe('TypeError')
    expect(errorCode(() => Session.initiate(alice.identity, new Uint8Array(31), 1, bundle))).toBe(
      'RangeError',
    )
    expect(errorCode(() => Session.initiate(alice.identity, alice.address, -1, bundle))).toBe('RangeError')
    expect(errorCode(() => Session.initiate({} as never, alice.address, 1, bundle))).toBe('TypeError')
    expect(
      errorCode(() =>
        Session.initiate(alice.identity, alice.address, 1, { ...bundle, kemPrekey: undefined } as never),
      ),
    ).toBe('TypeError')
    expect(errorCode(() => Session.deserialize(null as never))).toBe('TypeError')
  })

  it('refuses garbage records and message bodies with ParleyError', async () => {
    const { a } = await pair('garbage')
    const r = seededRandom('g')
    for (let i = 0; i < 50; i++) {
      const junk = r(i * 7)
      expect(errorCode(() => Session.deserialize(junk))).toBe('BAD_REQUEST')
      expect(['BAD_REQUEST', 'DECRYPT_FAILED']).toContain(
        errorCode(() => a.decrypt({ kind: 'ratchet', body: junk })),
      )
      expect(['BAD_REQUEST', 'DECRYPT_FAILED']).toContain(
        errorCode(() => a.decrypt({ kind: 'prekey', body: junk })),
      )
    }
    const valid = a.serialize()
    for (let cut = 0; cut < valid.length; cut += 13) {
      expect(['BAD_REQUEST', 'no error']).toContain(
        errorCode(() => Session.deserialize(valid.subarray(0, cut))),
      )
    }
  })
})
