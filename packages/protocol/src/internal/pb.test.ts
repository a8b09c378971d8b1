import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parley } from '../../test/gen/parley.js'
import { type Field, messages } from '../gen/schema.js'
import { ErrorCode, GapReason } from '../gen/types.js'
import { decodeMessage, encodeBytesField, encodeMessage, type MessageName } from './pb.js'

// The reference: protobufjs' static codecs, generated into test/gen by scripts/gen.mjs from the same .proto files.
type Static = {
  encode(m: object): { finish(): Uint8Array }
  decode(b: Uint8Array): object
}
const reference = (type: string) => (parley.v1 as unknown as Record<string, Static>)[type] as Static
const enumValues = [...Object.values(ErrorCode), ...Object.values(GapReason)] as number[]

function scalar(t: number): fc.Arbitrary<unknown> {
  switch (t) {
    case 0:
      return fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffffffff }))
    case 1:
      return fc.oneof(fc.constant(0), fc.maxSafeNat(), fc.integer({ min: 0, max: 0xffffffff }))
    case 2:
      return fc.boolean()
    case 3:
      return fc.oneof(fc.constant(''), fc.string({ unit: 'binary', maxLength: 20 }))
    case 4:
      return fc.uint8Array({ maxLength: 40 })
    default:
      return fc.oneof(fc.constantFrom(...enumValues), fc.integer({ min: -3, max: 200 }))
  }
}

function field([, , t, repeated]: Field, depth: number): fc.Arbitrary<unknown> {
  const one = typeof t === 'string' ? message(t, depth + 1) : scalar(t)
  return repeated ? fc.array(one, { maxLength: 4 }) : one
}

const cache = new Map<string, fc.Arbitrary<Record<string, unknown>>>()
function message(type: string, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  let arb = cache.get(type)
  if (!arb) {
    if (depth > 8) throw new Error(`${type} nests too deeply for this generator`)
    const fields = messages[type] ?? []
    const plain = fields.filter((f) => f[4] === undefined)
    const record = fc.record(Object.fromEntries(plain.map((f) => [f[1], field(f, depth)])), {
      requiredKeys: [],
    })
    // At most one member of each oneof: with two, the decoder keeps only the last, as protobufjs does.
    const oneofs = [...new Set(fields.map((f) => f[4]).filter((o) => o !== undefined))].map((o) =>
      fc.option(
        fc.oneof(
          ...fields
            .filter((f) => f[4] === o)
            .map((f) => field(f, depth).map((v): Record<string, unknown> => ({ [f[1]]: v }))),
        ),
        { nil: {} },
      ),
    )
    arb = fc
      .tuple(record, ...oneofs)
      .map(([r, ...members]) => Object.assign({}, r, ...members) as Record<string, unknown>)
    cache.set(type, arb)
  }
  return arb
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const names = Object.keys(messages) as MessageName[]
/** A decoder-agnostic view of an unknown value, for calls whose message type is only known at run time. */
const loose = (v: unknown) => v as Record<string, unknown>

/**
 * protobufjs' decoded shape with what its prototypes default to made explicit, as our decoder sets it: every
 * implicit-presence scalar that is absent gets its proto3 zero value, deeply.
 */
function withDefaults(type: string, v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v
  const out: Record<string, unknown> = { ...(v as Record<string, unknown>) }
  for (const [, name, t, repeated, oneof] of messages[type] ?? []) {
    if (typeof t === 'string') {
      if (repeated) out[name] = (out[name] as unknown[]).map((x) => withDefaults(t, x))
      else if (out[name] !== undefined) out[name] = withDefaults(t, out[name])
    } else if (!repeated && oneof === undefined && !(name in out)) {
      out[name] = t === 4 ? '' : t === 3 ? '' : t === 2 ? false : 0
    }
  }
  return out
}

/** A decoded object's own enumerable properties, deeply, with bytes as hex and protobufjs' Longs as numbers. */
function shape(v: unknown): unknown {
  if (v instanceof Uint8Array) return hex(v)
  if (Array.isArray(v)) return v.map(shape)
  if (v === null || typeof v !== 'object') return v
  if ('low' in v && 'high' in v && 'unsigned' in v) return (v as unknown as { toNumber(): number }).toNumber()
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shape(x)]))
}

describe('pb (compact protobuf codec)', () => {
  it('has a schema entry for every message protobufjs knows', () => {
    const names = Object.keys(parley.v1).filter((k) => typeof reference(k).encode === 'function')
    expect(Object.keys(messages).sort()).toEqual(names.sort())
  })

  for (const type of names) {
    it(`encodes ${type} byte for byte as protobufjs does, and decodes it back (property)`, () => {
      fc.assert(
        fc.property(message(type), (msg) => {
          const bytes = encodeMessage(type, msg)
          expect(bytes.constructor).toBe(Uint8Array)
          expect(hex(bytes)).toBe(hex(reference(type).encode(msg).finish()))
          const back = decodeMessage(type, bytes)
          expect(hex(encodeMessage(type, back))).toBe(hex(bytes))
          expect(shape(back)).toEqual(withDefaults(type, shape(reference(type).decode(bytes))))
        }),
        { numRuns: 150 },
      )
    })
  }

  it('sets the oneof name, proto3 optional presence, and zero values for absent scalars', () => {
    const zeroContent = {
      messageId: new Uint8Array(0),
      sentAtMs: 0,
      senderNumber: '',
      deliveryToken: new Uint8Array(0),
      transcriptTo: new Uint8Array(0),
      accountNumber: '',
      accountNumberSalt: new Uint8Array(0),
      padding: new Uint8Array(0),
      replyTo: new Uint8Array(0),
      fallbackText: '',
      groupId: new Uint8Array(0),
    }
    const c = decodeMessage('Content', encodeMessage('Content', { sentAtMs: 0, text: '' }))
    expect(c).toEqual({ ...zeroContent, text: '' })
    expect(c.body).toBe('text')
    const p = decodeMessage('PrekeyMessage', encodeMessage('PrekeyMessage', { oneTimePrekeyId: 0 }))
    expect(p).toEqual({
      identityKey: new Uint8Array(0),
      baseKey: new Uint8Array(0),
      signedPrekeyId: 0,
      oneTimePrekeyId: 0,
      kemPrekeyId: 0,
      kemCiphertext: new Uint8Array(0),
    })
    expect(loose(p)._oneTimePrekeyId).toBe('oneTimePrekeyId')
    expect(decodeMessage('PrekeyMessage', new Uint8Array(0)).oneTimePrekeyId).toBeUndefined()
    // two members of a oneof on the wire: the last one wins
    const both = new Uint8Array([
      ...encodeMessage('Content', { data: new Uint8Array([1]) }),
      0x1a,
      0x01,
      0x41,
    ])
    const d = decodeMessage('Content', both)
    expect(d).toEqual({ ...zeroContent, text: 'A' })
    expect(d.body).toBe('text')
  })

  it('writes a lone surrogate as U+FFFD, unlike protobufjs, so that the string can be decoded', () => {
    const bytes = encodeMessage('Error', { message: 'a\ud800b' })
    expect(hex(bytes)).toBe('120561efbfbd62')
    expect(hex(reference('Error').encode({ message: 'a\ud800b' }).finish())).toBe('120561eda08062')
    expect(() =>
      reference('Error').decode(reference('Error').encode({ message: 'a\ud800b' }).finish()),
    ).toThrow()
    expect(decodeMessage('Error', bytes)).toEqual({
      code: 0,
      message: 'a\ufffdb',
      retryAfterMs: 0,
      deviceListVersion: 0,
    })
  })

  it('returns bytes as plain Uint8Array copies and 64-bit integers as numbers', () => {
    const input = Buffer.from(
      encodeMessage('Delivery', { seq: 2 ** 53 - 1, envelope: new Uint8Array([1, 2]) }),
    )
    const d = decodeMessage('Delivery', input)
    expect(d.seq).toBe(2 ** 53 - 1)
    expect(d.envelope.constructor).toBe(Uint8Array)
    input.fill(0)
    expect([...d.envelope]).toEqual([1, 2])
  })

  it('refuses a 64-bit integer beyond 2^53', () => {
    // Delivery.seq = 2^53: tag 0x08, varint 80 80 80 80 80 80 80 10
    const bytes = new Uint8Array([0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10])
    expect(() => decodeMessage('Delivery', bytes)).toThrow(/2\^53/)
  })

  it('reads repeated numbers packed or not', () => {
    const unpacked = new Uint8Array([0x08, 0x01, 0x08, 0x96, 0x01])
    const packed = new Uint8Array([0x0a, 0x03, 0x01, 0x96, 0x01])
    expect(decodeMessage('AckMessages', unpacked)).toEqual({ seqs: [1, 150] })
    expect(decodeMessage('Acked', new Uint8Array(0))).toEqual({ count: 0 })
    expect(decodeMessage('AckMessages', packed)).toEqual({ seqs: [1, 150] })
    expect(encodeMessage('AckMessages', { seqs: [1, 150] })).toEqual(packed)
  })

  it('throws on truncated or garbage input (property)', () => {
    fc.assert(
      fc.property(message('ServerFrame'), fc.nat(), (msg, cut) => {
        const bytes = encodeMessage('ServerFrame', msg)
        if (bytes.length === 0) return
        const n = cut % bytes.length
        try {
          decodeMessage('ServerFrame', bytes.subarray(0, n))
        } catch (err) {
          expect(err).toBeInstanceOf(Error)
        }
      }),
    )
    expect(() => decodeMessage('Hello', new Uint8Array([0x08]))).toThrow(RangeError)
    expect(() => decodeMessage('Hello', new Uint8Array([0x0a, 0x05, 0x01]))).toThrow(RangeError)
    expect(() => decodeMessage('Hello', new Uint8Array([0x08, ...new Array(10).fill(0xff)]))).toThrow()
    expect(() => decodeMessage('Hello', new Uint8Array([0x0f]))).toThrow(/wire type/)
    expect(() => decodeMessage('Hello', new Uint8Array([0x00, 0x00]))).toThrow(/field number 0/)
    expect(() => decodeMessage('ActivationStart', new Uint8Array([0x0a, 0x01, 0xff]))).toThrow()
    // an unterminated group, and groups nested past the limit
    expect(() => decodeMessage('Hello', new Uint8Array([0x1b]))).toThrow()
    expect(() => decodeMessage('Hello', new Uint8Array(400).fill(0x1b))).toThrow(/depth/)
    // a nested message whose length runs past its parent's
    expect(() => decodeMessage('ServerHello', new Uint8Array([0x1a, 0x02, 0x08]))).toThrow(RangeError)
  })

  it('never throws anything but an Error on random bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (input) => {
        for (const type of ['ClientFrame', 'ServerFrame', 'SessionRecord', 'Content'] as const) {
          try {
            decodeMessage(type, input)
          } catch (err) {
            expect(err).toBeInstanceOf(Error)
          }
        }
      }),
    )
  })

  it('reports unknown fields only when asked, and writes them back', () => {
    const hello = encodeMessage('Hello', { protocolMajor: 1 })
    const unknown = encodeBytesField(99, new Uint8Array([7, 7]))
    const bytes = new Uint8Array([...hello, ...unknown, 0x28, 0x05])
    const kept = decodeMessage('Hello', bytes, { keepUnknown: true })
    expect(kept).toEqual({ protocolMajor: 1, protocolMinor: 0 })
    expect(Object.keys(kept)).toEqual(['protocolMajor', 'protocolMinor'])
    expect((loose(kept).$unknowns as Uint8Array[]).map(hex)).toEqual([hex(unknown), '2805'])
    expect(hex(encodeMessage('Hello', kept))).toBe(hex(bytes))
    expect(loose(decodeMessage('Hello', bytes)).$unknowns).toBeUndefined()
    // a known field number with the wrong wire type is an unknown field, as in protobufjs
    const wrong = decodeMessage('Hello', new Uint8Array([0x0a, 0x00]), { keepUnknown: true })
    expect((loose(wrong).$unknowns as Uint8Array[]).map(hex)).toEqual(['0a00'])
  })
})
