import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { expectParleyError } from '../test/fixtures.js'
import { ParleyError } from './errors.js'
import {
  DEFAULT_LIMITS,
  decodeClientFrame,
  decodeServerFrame,
  encodeClientFrame,
  encodeServerFrame,
  parleyErrorFromWire,
  peekClientFrame,
  wireErrorFrom,
} from './frames.js'

const bytes = (n: number, fill = 7) => new Uint8Array(n).fill(fill)

describe('frame codecs', () => {
  it('round-trips a client frame with bytes, repeated and nested fields', () => {
    const frame = {
      requestId: 42,
      prekeyUpload: {
        signedPrekey: { keyId: 1, publicKey: bytes(32, 1), signature: bytes(64, 2) },
        oneTimePrekeys: [
          { keyId: 2, publicKey: bytes(32, 3) },
          { keyId: 3, publicKey: bytes(32, 4) },
        ],
        lastResortKemPrekey: { keyId: 9, publicKey: bytes(1184, 5), signature: bytes(64, 6) },
        oneTimeKemPrekeys: [],
      },
    }
    const decoded = decodeClientFrame(encodeClientFrame(frame))
    expect(decoded.body).toBe('prekeyUpload')
    expect(decoded.requestId).toBe(42)
    expect(decoded.prekeyUpload?.oneTimePrekeys?.[1]?.publicKey).toEqual(bytes(32, 4))
    expect(decoded.prekeyUpload?.lastResortKemPrekey?.publicKey).toEqual(bytes(1184, 5))
    expect(decoded.prekeyUpload?.signedPrekey?.signature?.constructor).toBe(Uint8Array)
  })

  it('decodes 64-bit fields as plain numbers', () => {
    const at = 1_764_000_000_123
    const decoded = decodeServerFrame(
      encodeServerFrame({
        requestId: 0,
        delivery: { seq: 2 ** 40, messageId: bytes(16), envelope: bytes(3), receivedAtMs: at },
      }),
    )
    expect(decoded.delivery?.seq).toBe(2 ** 40)
    expect(decoded.delivery?.receivedAtMs).toBe(at)
    expect(typeof decoded.delivery?.seq).toBe('number')
  })

  it('refuses to encode a frame without exactly one body', () => {
    expect(() => encodeClientFrame({ requestId: 1 })).toThrow(TypeError)
    expect(() => encodeClientFrame({ requestId: 1, ping: {}, deactivate: {} })).toThrow(TypeError)
  })

  it('rejects a frame larger than the limit with TOO_LARGE, both ways', () => {
    const big = {
      requestId: 1,
      sendMessage: {
        recipientAddress: bytes(32),
        recipientDeviceId: 1,
        messageId: bytes(16),
        envelope: bytes(2000),
      },
    }
    expectParleyError(() => encodeClientFrame(big, 1000), 'TOO_LARGE')
    const encoded = encodeClientFrame(big)
    expectParleyError(() => decodeClientFrame(encoded, 1000), 'TOO_LARGE')
    expectParleyError(() => decodeClientFrame(new Uint8Array(DEFAULT_LIMITS.maxFrameBytes + 1)), 'TOO_LARGE')
  })

  it('rejects truncated frames with BAD_REQUEST', () => {
    const encoded = encodeClientFrame({
      requestId: 7,
      oprfEvaluate: { keyId: 1, blindedElements: [bytes(32)] },
    })
    for (let cut = 1; cut < encoded.length; cut++) {
      expectParleyError(() => decodeClientFrame(encoded.subarray(0, cut)), 'BAD_REQUEST')
    }
  })

  it('rejects an unknown body with UNSUPPORTED and an empty frame with BAD_REQUEST', () => {
    // field 99, length-delimited, empty: a body type from a future minor version
    expectParleyError(() => decodeClientFrame(new Uint8Array([0x08, 0x01, 0x9a, 0x06, 0x00])), 'UNSUPPORTED')
    expectParleyError(() => decodeServerFrame(new Uint8Array([0x9a, 0x06, 0x00])), 'UNSUPPORTED')
    expectParleyError(() => decodeClientFrame(new Uint8Array([0x08, 0x05])), 'BAD_REQUEST')
    expectParleyError(() => decodeClientFrame(new Uint8Array(0)), 'BAD_REQUEST')
  })

  it('rejects a 64-bit value beyond the safe integer range', () => {
    // SyncMailbox{after_seq = 2^63}: varint of 10 bytes
    const inner = [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]
    const frame = new Uint8Array([0xaa, 0x01, inner.length, ...inner])
    expectParleyError(() => decodeClientFrame(frame), 'BAD_REQUEST')
  })

  it('rejects deep nesting without a stack overflow', () => {
    // a group start tag nested 10,000 times inside an unknown field
    const deep = new Uint8Array(20_000)
    for (let i = 0; i < deep.length; i += 2) {
      deep[i] = 0xa3
      deep[i + 1] = 0x06
    }
    expect(() => decodeClientFrame(deep)).toThrow(ParleyError)
  })

  it('never throws anything but ParleyError on random bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (input) => {
        for (const decode of [decodeClientFrame, decodeServerFrame]) {
          try {
            const frame = decode(input)
            // whatever decodes must name a body that is really set
            expect((frame as unknown as Record<string, unknown>)[frame.body]).toBeDefined()
          } catch (err) {
            if (!(err instanceof ParleyError)) throw err
          }
        }
      }),
      { numRuns: 5000 },
    )
  })

  it('round-trips every generated valid frame (property)', () => {
    const b = (max: number) => fc.uint8Array({ minLength: 1, maxLength: max })
    const u32 = fc.integer({ min: 1, max: 0xffffffff })
    const body = fc.oneof(
      fc.record({ hello: fc.record({ protocolMajor: u32, protocolMinor: u32 }) }),
      fc.record({ authenticate: fc.record({ address: b(32), deviceId: u32, signature: b(64) }) }),
      fc.record({
        oprfEvaluate: fc.record({
          keyId: u32,
          blindedElements: fc.array(b(32), { minLength: 1, maxLength: 5 }),
        }),
      }),
      fc.record({
        membershipQuery: fc.record({
          prefixBits: u32,
          prefixes: fc.array(b(2), { minLength: 1, maxLength: 5 }),
        }),
      }),
      fc.record({
        sendMessage: fc.record({
          recipientAddress: b(32),
          recipientDeviceId: u32,
          messageId: b(16),
          envelope: b(300),
          ephemeral: fc.boolean(),
        }),
      }),
      fc.record({
        ackMessages: fc.record({
          seqs: fc.array(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), { minLength: 1 }),
        }),
      }),
      fc.record({
        syncMailbox: fc.record({ afterSeq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }) }),
      }),
      fc.record({
        activationStart: fc.record({
          phoneNumber: fc.string({ minLength: 1 }),
          consent: fc.constant(true),
          powSolution: b(8),
        }),
      }),
    )
    fc.assert(
      fc.property(u32, body, (requestId, b) => {
        const frame = { requestId, ...b }
        const encoded = encodeClientFrame(frame)
        const decoded = decodeClientFrame(encoded)
        const { body: name, ...rest } = decoded
        expect(name).toBe(Object.keys(b)[0])
        expect(rest).toEqual(frame)
        // The top-level peek agrees with the full decode without decoding the body.
        expect(peekClientFrame(encoded)).toEqual({ requestId, body: name })
      }),
      { numRuns: 1000 },
    )
  })
})

describe('decoding under an entry limit (maxRepeated)', () => {
  const elements = (n: number) => Array.from({ length: n }, () => bytes(32))
  it('refuses a repeated field with one entry too many as TOO_LARGE, and accepts the limit', () => {
    const at = (n: number) =>
      encodeClientFrame({ requestId: 1, oprfEvaluate: { keyId: 1, blindedElements: elements(n) } })
    expect(
      decodeClientFrame(at(500), undefined, { maxRepeated: 500 }).oprfEvaluate!.blindedElements,
    ).toHaveLength(500)
    expectParleyError(() => decodeClientFrame(at(501), undefined, { maxRepeated: 500 }), 'TOO_LARGE')
    expect(decodeClientFrame(at(501)).oprfEvaluate!.blindedElements).toHaveLength(501) // no limit by default
  })

  it('counts packed scalars and entries of nested messages too', () => {
    const seqs = Array.from({ length: 11 }, (_, i) => i + 1)
    const acks = encodeClientFrame({ requestId: 2, ackMessages: { seqs } })
    expectParleyError(() => decodeClientFrame(acks, undefined, { maxRepeated: 10 }), 'TOO_LARGE')
    expect(decodeClientFrame(acks, undefined, { maxRepeated: 11 }).ackMessages!.seqs).toEqual(seqs)
    const upload = encodeClientFrame({
      requestId: 3,
      prekeyUpload: {
        oneTimePrekeys: Array.from({ length: 11 }, (_, i) => ({ keyId: i + 1, publicKey: bytes(32) })),
      },
    })
    expectParleyError(() => decodeClientFrame(upload, undefined, { maxRepeated: 10 }), 'TOO_LARGE')
  })

  it('stops at the limit instead of reading a frame packed with tiny entries', () => {
    // 80,000 two-byte prefixes, corrupt in the very last entry: a full decode reads them all and then fails
    // BAD_REQUEST; under a limit the decode stops at entry 501 with TOO_LARGE, never reaching the corruption.
    const prefixes = Array.from({ length: 80_000 }, () => bytes(2))
    const frame = encodeClientFrame(
      { requestId: 4, membershipQuery: { prefixBits: 16, prefixes } },
      10_000_000,
    )
    frame[frame.length - 4] = (2 << 3) | 7 // wire type 7 on the last prefix's tag
    expectParleyError(() => decodeClientFrame(frame, 10_000_000), 'BAD_REQUEST')
    expectParleyError(() => decodeClientFrame(frame, 10_000_000, { maxRepeated: 500 }), 'TOO_LARGE')
  })
})

describe('peekClientFrame', () => {
  const elements = (n: number) => Array.from({ length: n }, () => bytes(32))
  it('names the body and request id of a frame without decoding the body', () => {
    const big = encodeClientFrame({
      requestId: 77,
      oprfEvaluate: { keyId: 1, blindedElements: elements(300) },
    })
    expect(peekClientFrame(big)).toEqual({ requestId: 77, body: 'oprfEvaluate' })
    // A corrupt body is not looked at: the peek still names it (the full decode will refuse it).
    const corrupt = big.slice()
    corrupt[corrupt.length - 33] = 0xff
    expect(peekClientFrame(corrupt)).toEqual({ requestId: 77, body: 'oprfEvaluate' })
    expect(peekClientFrame(new Uint8Array([0x08, 0x05]))).toEqual({ requestId: 5 })
  })

  it('says undefined for a malformed top level and never throws (property)', () => {
    expect(peekClientFrame(new Uint8Array([0x08]))).toBeUndefined() // truncated varint
    expect(peekClientFrame(new Uint8Array([0x7a, 0x10, 1]))).toBeUndefined() // length past the end
    expect(peekClientFrame(new Uint8Array([0x0f]))).toBeUndefined() // wire type 7
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (input) => {
        const peek = peekClientFrame(input)
        if (peek === undefined) return
        // whenever the full decode succeeds, the peek agrees with it
        try {
          const frame = decodeClientFrame(input)
          expect(peek.body).toBe(frame.body)
          expect(peek.requestId).toBe(frame.requestId)
        } catch (err) {
          if (!(err instanceof ParleyError)) throw err
        }
      }),
      { numRuns: 5000 },
    )
  })
})

describe('wire errors', () => {
  it('maps a ParleyError to the wire and back with code and retryAfterMs', () => {
    const wire = wireErrorFrom(new ParleyError('RATE_LIMITED', 'slow down', { retryAfterMs: 1500.2 }))
    expect(wire).toEqual({ code: 3, message: 'slow down', retryAfterMs: 1501 })
    const back = parleyErrorFromWire(wire)
    expect(back.code).toBe('RATE_LIMITED')
    expect(back.retryAfterMs).toBe(1501)
  })

  it('hides the message of an unexpected error', () => {
    expect(wireErrorFrom(new Error('secret key 0xdeadbeef'))).toEqual({
      code: 8,
      message: 'internal error',
      retryAfterMs: 0,
    })
  })

  it('maps an unknown wire code from a newer relay to INTERNAL', () => {
    expect(parleyErrorFromWire({ code: 999, message: 'x' }).code).toBe('INTERNAL')
  })

  it('survives an Error frame round trip', () => {
    const decoded = decodeServerFrame(
      encodeServerFrame({ requestId: 3, error: { code: 4, message: 'too big', retryAfterMs: 0 } }),
    )
    expect(decoded.body).toBe('error')
    expect(parleyErrorFromWire(decoded.error!).code).toBe('TOO_LARGE')
  })
})
