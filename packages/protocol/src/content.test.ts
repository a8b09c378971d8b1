// Padded content: every encoding is a multiple of 160 bytes and decodes to what was encoded.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CONTENT_BUCKET_BYTES, decodeContent, encodeContent, ParleyError } from './index.js'

describe('content padding', () => {
  it('pads to 160-byte buckets and round-trips text and data', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.nat({ max: 2 ** 45 }),
        fc.oneof(
          fc.string({ maxLength: 700 }).map((text) => ({ text })),
          fc.uint8Array({ maxLength: 20_000 }).map((data) => ({ data })),
        ),
        (messageId, sentAtMs, body) => {
          const bytes = encodeContent({ messageId, sentAtMs, ...body })
          expect(bytes.length % CONTENT_BUCKET_BYTES).toBe(0)
          expect(decodeContent(bytes)).toEqual({ messageId, sentAtMs, ...body })
        },
      ),
      { numRuns: 400 },
    )
  })

  it("carries a sent transcript's conversation address, and refuses one that is not 32 bytes", () => {
    const messageId = new Uint8Array(16).fill(3)
    const transcriptTo = new Uint8Array(32).fill(9)
    const back = decodeContent(encodeContent({ messageId, sentAtMs: 5, text: 'hi', transcriptTo }))
    expect(back.transcriptTo).toEqual(transcriptTo)
    expect(decodeContent(encodeContent({ messageId, sentAtMs: 5, text: 'hi' })).transcriptTo).toBeUndefined()
    expect(() =>
      encodeContent({ messageId, sentAtMs: 5, text: 'hi', transcriptTo: new Uint8Array(31) }),
    ).toThrow(RangeError)
  })

  it('gives the same length to messages of similar size', () => {
    const id = new Uint8Array(16)
    expect(encodeContent({ messageId: id, sentAtMs: 1, text: 'hi' }).length).toBe(160)
    expect(encodeContent({ messageId: id, sentAtMs: 1, text: 'hello there, how are you?' }).length).toBe(160)
  })

  it('rejects caller mistakes with TypeError / RangeError', () => {
    const id = new Uint8Array(16)
    expect(() => encodeContent({ messageId: new Uint8Array(15), sentAtMs: 1, text: '' })).toThrow(RangeError)
    expect(() => encodeContent({ messageId: id, sentAtMs: -1, text: '' })).toThrow(RangeError)
    expect(() => encodeContent({ messageId: id, sentAtMs: 1 })).toThrow(TypeError)
    expect(() => encodeContent({ messageId: id, sentAtMs: 1, text: 'a', data: new Uint8Array() })).toThrow(
      TypeError,
    )
    expect(() => decodeContent('x' as never)).toThrow(TypeError)
  })

  it('refuses garbage with ParleyError BAD_REQUEST', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
        try {
          decodeContent(junk)
        } catch (err) {
          expect(ParleyError.is(err, 'BAD_REQUEST')).toBe(true)
        }
      }),
      { numRuns: 500 },
    )
  })
})
