// The relay's envelope-shape check (src/handlers/envelopeShape.ts): it accepts every envelope sealEnvelope makes,
// and sealForDevices's copies make, never throws, and refuses whatever is not a v1 or v2 SealedEnvelope — random
// bytes, text, truncations, wrong lengths, one version's fields in the other.
import { randomBytes } from 'node:crypto'
import { generateIdentity, joinSealed, sealEnvelope, sealForDevices } from '@parley/protocol'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { envelopeShapeProblem } from '../src/handlers/envelopeShape.js'
import { junkEnvelope, sealedShape } from '../testing/index.js'

const sender = generateIdentity()
const recipient = generateIdentity()
const bytes = (n: number) => new Uint8Array(randomBytes(n))

/** A real sealed envelope around a `bodyBytes`-byte session message. */
const sealed = (bodyBytes = 60, certificateBytes = 120, kind: 'prekey' | 'ratchet' = 'ratchet') =>
  sealEnvelope({
    senderAddress: bytes(32),
    senderDeviceId: 3,
    senderIdentity: sender,
    recipientIdentityKey: recipient.publicKey,
    message: { kind, body: bytes(bodyBytes) },
    senderCertificate: bytes(certificateBytes),
  })

/** A protobuf field: key byte(s), then the value bytes (a varint, or a length and the bytes). */
const field = (key: number[], value: number[]) => [...key, ...value]
const len = (n: number, fill = 7) => [n, ...new Array<number>(n).fill(fill)]
const V1 = field([0x08], [1])
const EPH = field([0x12], len(32))
const ESK = field([0x1a], len(48))
const CT = field([0x22], len(10))
const V2 = field([0x08], [2])
const WK = field([0x2a], len(32))
const TAG = field([0x32], len(16))
const shape = (...parts: number[][]) => envelopeShapeProblem(new Uint8Array(parts.flat()))

describe('envelope shape check', () => {
  it('accepts real sealed envelopes of both message kinds, any size, and the test helpers’ envelopes', () => {
    for (const kind of ['ratchet', 'prekey'] as const) {
      for (const n of [0, 1, 100, 5000, 200 * 1024])
        expect(envelopeShapeProblem(sealed(n, 120, kind))).toBeNull()
    }
    expect(envelopeShapeProblem(sealedShape('hi'))).toBeNull()
    for (const n of [89, 215, 217, 100_000, 256 * 1024]) {
      expect(junkEnvelope(n)).toHaveLength(n)
      expect(envelopeShapeProblem(junkEnvelope(n))).toBeNull()
    }
    expect(() => junkEnvelope(216)).toThrow(RangeError)
    // Field order is free in protobuf.
    expect(shape(CT, ESK, EPH, V1)).toBeNull()
  })

  it('property: every envelope sealEnvelope makes is accepted', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 3000 }),
        fc.uint8Array({ maxLength: 400 }),
        fc.constantFrom('prekey' as const, 'ratchet' as const),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 }), { nil: undefined }),
        (body, certificate, kind, senderDeviceId, salt) => {
          const envelope = sealEnvelope({
            senderAddress: bytes(32),
            senderDeviceId,
            senderIdentity: sender,
            recipientIdentityKey: recipient.publicKey,
            message: { kind, body },
            senderCertificate: certificate,
            senderNumber: salt ? { e164: '+14155550100', salt } : undefined,
          })
          expect(envelopeShapeProblem(envelope)).toBeNull()
        },
      ),
      { numRuns: 200 },
    )
  })

  it('property: never throws on random bytes, and refuses almost all of them', () => {
    let accepted = 0
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (junk) => {
        const problem = envelopeShapeProblem(junk)
        expect(problem === null || typeof problem === 'string').toBe(true)
        if (problem === null) accepted++
      }),
      { numRuns: 5000 },
    )
    expect(accepted).toBe(0)
  })

  it('property: never throws on mutated real envelopes, and refuses every strict prefix of one', () => {
    const envelope = sealed(40, 20)
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: envelope.length - 1 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: envelope.length - 1 }),
        (at, value, cut) => {
          const mutated = envelope.slice()
          mutated[at] = value
          expect(() => envelopeShapeProblem(mutated)).not.toThrow()
          expect(envelopeShapeProblem(envelope.subarray(0, cut))).not.toBeNull()
        },
      ),
      { numRuns: 2000 },
    )
  })

  it('accepts every copy of a message sealed for many devices, in any field order', () => {
    for (const n of [0, 100, 5000]) {
      const { shared, parts } = sealForDevices({
        senderAddress: bytes(32),
        senderDeviceId: 3,
        senderIdentity: sender,
        recipientIdentityKeys: [recipient.publicKey, generateIdentity().publicKey],
        message: { kind: 'senderKey', body: bytes(n) },
        senderCertificate: bytes(120),
      })
      for (const part of parts) expect(envelopeShapeProblem(joinSealed(part, shared))).toBeNull()
      // Neither half alone is an envelope.
      expect(envelopeShapeProblem(shared)).toBe('version is not 1 or 2')
      expect(envelopeShapeProblem(parts[0]!)).toBe('ephemeral_key is not 32 bytes')
    }
    expect(shape(V2, EPH, WK, TAG, CT)).toBeNull()
    expect(shape(CT, TAG, EPH, WK, V2)).toBeNull()
  })

  it('checks a part and the shared bytes in place exactly as their joined envelope, a field cut at the seam refused', () => {
    const { shared, parts } = sealForDevices({
      senderAddress: bytes(32),
      senderDeviceId: 3,
      senderIdentity: sender,
      recipientIdentityKeys: [recipient.publicKey],
      message: { kind: 'senderKey', body: bytes(300) },
      senderCertificate: bytes(120),
    })
    const whole = joinSealed(parts[0]!, shared)
    expect(envelopeShapeProblem(parts[0]!, shared)).toBeNull()
    // Every split of a real envelope: in place it is what the joined bytes are at a field boundary, and a field
    // cut across the seam is refused.
    const boundaries = new Set<number>()
    for (let at = 0; at < whole.length; ) {
      boundaries.add(at)
      const length = whole[at + 1]! < 0x80 ? whole[at + 1]! : (whole[at + 1]! & 0x7f) + whole[at + 2]! * 128
      at += whole[at] === 0x08 ? 2 : 1 + (whole[at + 1]! < 0x80 ? 1 : 2) + length
    }
    for (let cut = 1; cut < whole.length; cut++) {
      const inPlace = envelopeShapeProblem(whole.subarray(0, cut), whole.subarray(cut))
      if (boundaries.has(cut)) expect(inPlace).toBeNull()
      else expect(inPlace).not.toBeNull()
    }
    // What the joined check refuses, the in-place one refuses too.
    expect(
      envelopeShapeProblem(parts[0]!, new Uint8Array([...shared, 0x1a, 48, ...new Uint8Array(48)])),
    ).toBe('a version-1 field in a version-2 envelope')
    expect(envelopeShapeProblem(whole, shared)).toBe('ephemeral_key repeated')
  })

  it('refuses a version-2 envelope with a missing, wrong-sized or version-1 field', () => {
    expect(shape(V2, EPH, TAG, CT)).toBe('wrapped_key is not 32 bytes')
    expect(shape(V2, EPH, field([0x2a], len(31)), TAG, CT)).toBe('wrapped_key is not 32 bytes')
    expect(shape(V2, EPH, WK, CT)).toBe('auth_tag is not 16 bytes')
    expect(shape(V2, EPH, WK, field([0x32], len(17)), CT)).toBe('auth_tag is not 16 bytes')
    expect(shape(V2, EPH, WK, TAG)).toBe('ciphertext is empty')
    expect(shape(V2, WK, TAG, CT)).toBe('ephemeral_key is not 32 bytes')
    expect(shape(V2, EPH, WK, TAG, CT, ESK)).toBe('a version-1 field in a version-2 envelope')
    expect(shape(V1, EPH, ESK, CT, WK)).toBe('a version-2 field in a version-1 envelope')
    expect(shape(V1, EPH, ESK, CT, TAG)).toBe('a version-2 field in a version-1 envelope')
    expect(shape(V2, EPH, WK, WK, TAG, CT)).toBe('wrapped_key repeated')
    expect(shape(V2, EPH, WK, TAG, TAG, CT)).toBe('auth_tag repeated')
  })

  it('refuses what is not a v1 sealed envelope, saying why', () => {
    expect(shape(V1, EPH, ESK, CT)).toBeNull()
    expect(envelopeShapeProblem(new Uint8Array())).toBe('version is not 1 or 2')
    expect(envelopeShapeProblem(new TextEncoder().encode('hi'))).toBe('unknown field')
    expect(envelopeShapeProblem(new Uint8Array(64).fill(1))).not.toBeNull()
    // Version: missing (proto3 default 0), 3, or not a varint.
    expect(shape(EPH, ESK, CT)).toBe('version is not 1 or 2')
    expect(shape(field([0x08], [3]), EPH, ESK, CT)).toBe('version is not 1 or 2')
    expect(shape(field([0x08], [0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]), EPH)).toBe(
      'truncated version',
    )
    expect(shape(field([0x0a], len(1)), EPH, ESK, CT)).toBe('version is not a varint')
    // Key lengths.
    expect(shape(V1, field([0x12], len(31)), ESK, CT)).toBe('ephemeral_key is not 32 bytes')
    expect(shape(V1, field([0x12], len(33)), ESK, CT)).toBe('ephemeral_key is not 32 bytes')
    expect(shape(V1, EPH, field([0x1a], len(32)), CT)).toBe('encrypted_sender_key is not 48 bytes')
    expect(shape(V1, EPH, CT)).toBe('encrypted_sender_key is not 48 bytes')
    // Ciphertext: missing or empty.
    expect(shape(V1, EPH, ESK)).toBe('ciphertext is empty')
    expect(shape(V1, EPH, ESK, field([0x22], [0]))).toBe('ciphertext is empty')
    // Each field once, nothing else, with its wire type.
    expect(shape(V1, V1, EPH, ESK, CT)).toBe('version repeated')
    expect(shape(V1, EPH, EPH, ESK, CT)).toBe('ephemeral_key repeated')
    expect(shape(V1, EPH, ESK, ESK, CT)).toBe('encrypted_sender_key repeated')
    expect(shape(V1, EPH, ESK, CT, CT)).toBe('ciphertext repeated')
    expect(shape(V1, EPH, ESK, CT, field([0x3a], len(3)))).toBe('unknown field') // field 7
    expect(shape(V1, EPH, ESK, CT, field([0x82, 0x01], len(3)))).toBe('unknown field') // field 16
    expect(shape(field([0x00], [1]), V1, EPH, ESK, CT)).toBe('unknown field') // field 0
    expect(shape(V1, field([0x10], [5]), ESK, CT)).toBe('wrong wire type')
    expect(shape(V1, field([0x15], [1, 2, 3, 4]), ESK, CT)).toBe('wrong wire type') // fixed32
    // Lengths past the end, or too long to be one.
    expect(shape(V1, EPH, ESK, [0x22, 11, ...new Array<number>(10).fill(1)])).toBe('truncated field')
    expect(shape(V1, EPH, ESK, [0x22, 0xff, 0xff, 0xff, 0xff, 0x0f])).toBe('truncated field')
    expect(shape(V1, EPH, ESK, [0x22, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])).toBe('truncated field')
    expect(shape(V1, EPH, ESK, [0x22])).toBe('truncated field')
  })
})
