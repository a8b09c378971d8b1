// Padded content: every encoding is a multiple of 160 bytes and decodes to what was encoded.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  CONTENT_BUCKET_BYTES,
  decodeContent,
  decodeHistoryChunk,
  encodeContent,
  encodeHistoryChunk,
  ParleyError,
} from './index.js'

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

  it('carries an address-change notice as a body, with the account number only beside it', () => {
    const messageId = new Uint8Array(16).fill(4)
    const notice = new Uint8Array(140).fill(7)
    const accountNumber = { e164: '+14155550100', salt: new Uint8Array(32).fill(5) }
    const back = decodeContent(
      encodeContent({ messageId, sentAtMs: 6, addressChange: notice, accountNumber }),
    )
    expect(back).toEqual({ messageId, sentAtMs: 6, addressChange: notice, accountNumber })
    const bare = decodeContent(encodeContent({ messageId, sentAtMs: 6, addressChange: notice }))
    expect(bare).toEqual({ messageId, sentAtMs: 6, addressChange: notice })
    expect(() => encodeContent({ messageId, sentAtMs: 6, text: 'x', addressChange: notice })).toThrow(
      TypeError,
    )
    expect(() => encodeContent({ messageId, sentAtMs: 6, text: 'x', accountNumber })).toThrow(TypeError)
    expect(() =>
      encodeContent({
        messageId,
        sentAtMs: 6,
        addressChange: notice,
        accountNumber: { e164: '+1', salt: new Uint8Array(31) },
      }),
    ).toThrow(RangeError)
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

  it('carries a history chunk as the body, read back entry by entry; a malformed chunk is BAD_REQUEST', () => {
    const id = (n: number) => new Uint8Array(16).fill(n)
    const entries = [
      {
        messageId: id(1),
        from: '+14155550100',
        fromAddress: new Uint8Array(32).fill(1),
        text: 'hi',
        sentAtMs: 5,
        receivedAtMs: 6,
      },
      {
        messageId: id(2),
        from: null,
        fromAddress: new Uint8Array(32).fill(2),
        text: 'sent',
        sentAtMs: 7,
        receivedAtMs: 8,
        toAddress: new Uint8Array(32).fill(3),
        to: null,
      },
    ]
    const chunk = encodeHistoryChunk({ entries, index: 1, total: 2 })
    const content = decodeContent(encodeContent({ messageId: id(9), sentAtMs: 1, history: chunk }))
    expect(content.text).toBeUndefined()
    expect(decodeHistoryChunk(content.history!)).toEqual({ entries, index: 1, total: 2 })
    expect(() => encodeContent({ messageId: id(9), sentAtMs: 1, text: 'x', history: chunk })).toThrow(
      TypeError,
    )
    expect(() => encodeHistoryChunk({ entries, index: 2, total: 2 })).toThrow(RangeError)
    expect(() =>
      encodeHistoryChunk({ entries: [{ ...entries[0]!, messageId: id(1).subarray(1) }], index: 0, total: 1 }),
    ).toThrow(RangeError)
    const code = (b: Uint8Array) => {
      try {
        decodeHistoryChunk(b)
        return 'no error'
      } catch (e) {
        return e instanceof ParleyError ? e.code : String(e)
      }
    }
    expect(code(chunk.subarray(0, chunk.length - 3))).toBe('BAD_REQUEST')
    expect(code(new Uint8Array([0x0a, 0x02, 0x0a, 0x00]))).toBe('BAD_REQUEST')
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
