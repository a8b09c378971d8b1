// Sealed envelopes: round trip, sender authentication, tampering, wrong recipient, bad input.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { errorCode, makeDevice, seededRandom } from '../test/fixtures.js'
import {
  type CiphertextMessage,
  createSenderKey,
  openEnvelope,
  openSenderKeyDistribution,
  type SealedMessage,
  sealEnvelope,
  senderKeyDecrypt,
  senderKeyDistribution,
  senderKeyEncrypt,
} from './index.js'
import { decodeMessage, encodeMessage } from './internal/pb.js'

const random = seededRandom('sealed')
const alice = makeDevice('alice', random, 1)
const bob = makeDevice('bob', random, 2)
const ratchetBody = new Uint8Array(
  encodeMessage('RatchetMessage', { ratchetKey: random(32), counter: 3, ciphertext: random(60) }),
)
const prekeyBody = new Uint8Array(
  encodeMessage('PrekeyMessage', {
    identityKey: alice.identity.publicKey,
    baseKey: random(32),
    signedPrekeyId: 1,
    kemPrekeyId: 2,
    kemCiphertext: random(1088),
    message: decodeMessage('RatchetMessage', ratchetBody),
  }),
)
const message: CiphertextMessage = { kind: 'ratchet', body: ratchetBody }
const seal = (m: SealedMessage = message, addressChange?: Uint8Array) =>
  sealEnvelope({
    senderAddress: alice.address,
    senderDeviceId: 7,
    senderIdentity: alice.identity,
    recipientIdentityKey: bob.identity.publicKey,
    message: m,
    senderCertificate: random(100),
    ...(addressChange === undefined ? {} : { addressChange }),
  })

describe('sealed envelopes', () => {
  it('round-trips sender, device, identity and both message kinds', () => {
    for (const [kind, body] of [
      ['ratchet', ratchetBody],
      ['prekey', prekeyBody],
    ] as const) {
      const opened = openEnvelope(bob.identity, seal({ kind, body }))
      expect(opened.senderAddress).toEqual(alice.address)
      expect(opened.senderDeviceId).toBe(7)
      expect(opened.senderIdentityKey).toEqual(alice.identity.publicKey)
      expect(opened.message.kind).toBe(kind)
      expect(opened.message.body).toEqual(body)
    }
    // The secret key alone works too.
    expect(openEnvelope(bob.identity.secretKey, seal()).senderDeviceId).toBe(7)
  })

  it('carries a group message (a sender key message) as its own kind, which its chain opens', () => {
    const chain = createSenderKey({ random })
    const receiver = openSenderKeyDistribution(senderKeyDistribution(chain))
    const { message: body } = senderKeyEncrypt(chain, new TextEncoder().encode('to the group'))
    const opened = openEnvelope(bob.identity, seal({ kind: 'senderKey', body }))
    expect(opened.message).toEqual({ kind: 'senderKey', body })
    expect(new TextDecoder().decode(senderKeyDecrypt(receiver, opened.message.body).plaintext)).toBe(
      'to the group',
    )
    // Field 10 of the sealed content: not the session kinds' 4 and 5.
    expect(() => seal({ kind: 'group', body } as unknown as SealedMessage)).toThrow(TypeError)
  })

  it('carries an address-change notice, bounded, and nothing when none was given', () => {
    const notice = random(150)
    const sealed = seal(message, notice)
    expect(openEnvelope(bob.identity, sealed).addressChange).toEqual(notice)
    expect(Buffer.from(sealed).indexOf(Buffer.from(notice))).toBe(-1)
    expect(openEnvelope(bob.identity, seal()).addressChange).toEqual(new Uint8Array(0))
    for (const bad of [new Uint8Array(0), new Uint8Array(513)]) {
      expect(() => seal(message, bad)).toThrow(RangeError)
    }
  })

  it('shows the relay neither the sender address nor the identity key', () => {
    const env = seal()
    const hay = Buffer.from(env)
    expect(hay.indexOf(Buffer.from(alice.address))).toBe(-1)
    expect(hay.indexOf(Buffer.from(alice.identity.publicKey))).toBe(-1)
  })

  it('cannot be opened by another device', () => {
    expect(errorCode(() => openEnvelope(alice.identity, seal()))).toBe('DECRYPT_FAILED')
  })

  it('refuses every single-bit change', () => {
    const env = seal()
    for (let i = 0; i < env.length; i++) {
      const bad = env.slice()
      bad[i]! ^= 1 << (i % 8)
      expect(['DECRYPT_FAILED', 'BAD_REQUEST', 'UNSUPPORTED', 'VERIFICATION_FAILED']).toContain(
        errorCode(() => openEnvelope(bob.identity, bad)),
      )
    }
  })

  it('refuses garbage with a ParleyError, never another error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (junk) => {
        expect(['DECRYPT_FAILED', 'BAD_REQUEST', 'UNSUPPORTED', 'VERIFICATION_FAILED']).toContain(
          errorCode(() => openEnvelope(bob.identity, junk)),
        )
      }),
      { numRuns: 300 },
    )
  })

  it('throws TypeError / RangeError for caller mistakes', () => {
    expect(errorCode(() => openEnvelope(new Uint8Array(31), seal()))).toBe('RangeError')
    expect(errorCode(() => openEnvelope(bob.identity, 'x' as never))).toBe('TypeError')
    expect(errorCode(() => sealEnvelope(null as never))).toBe('TypeError')
    expect(
      errorCode(() =>
        sealEnvelope({
          senderAddress: alice.address,
          senderDeviceId: 1,
          senderIdentity: alice.identity,
          recipientIdentityKey: bob.identity.publicKey,
          message: { kind: 'x', body: new Uint8Array() } as never,
          senderCertificate: new Uint8Array(0),
        }),
      ),
    ).toBe('TypeError')
    expect(errorCode(() => sealEnvelope({ senderAddress: new Uint8Array(3) } as never))).toBe('RangeError')
  })

  it('refuses an envelope larger than 256 KiB with TOO_LARGE', () => {
    expect(errorCode(() => seal({ kind: 'ratchet', body: new Uint8Array(256 * 1024) }))).toBe('TOO_LARGE')
    expect(errorCode(() => openEnvelope(bob.identity, new Uint8Array(256 * 1024 + 1)))).toBe('TOO_LARGE')
  })
})
