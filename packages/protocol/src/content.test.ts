// Padded content: every encoding is a multiple of 160 bytes and decodes to what was encoded.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  attachmentCiphertextSize,
  CONTENT_BUCKET_BYTES,
  decodeContent,
  decodeHistoryChunk,
  decryptAttachment,
  encodeContent,
  encodeHistoryChunk,
  encryptAttachment,
  MAX_ATTACHMENT_CHUNK_BYTES,
  MAX_PREVIEW_BYTES,
  MAX_REACTION_BYTES,
  MAX_RECEIPT_IDS,
  MIN_ATTACHMENT_CHUNK_BYTES,
  ParleyError,
} from './index.js'
import { encodeMessage } from './internal/pb.js'

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

describe('typed content bodies', () => {
  const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n })
  const id16 = bytes(16)
  const attachment = fc
    .record(
      {
        blobId: bytes(32),
        key: bytes(32),
        digest: bytes(32),
        size: fc.nat({ max: 2 ** 40 }),
        chunkSize: fc.integer({ min: MIN_ATTACHMENT_CHUNK_BYTES, max: MAX_ATTACHMENT_CHUNK_BYTES }),
        mimeType: fc.string({ minLength: 1, maxLength: 40 }),
        fileName: fc.string({ minLength: 1, maxLength: 80 }),
        preview: fc.uint8Array({ minLength: 1, maxLength: 3000 }),
        caption: fc.string({ minLength: 1, maxLength: 200 }),
      },
      { requiredKeys: ['blobId', 'key', 'digest', 'size', 'chunkSize'] },
    )
    .map((a) => ({ ...a, ciphertextSize: attachmentCiphertextSize(a.size, a.chunkSize) }))
  const emoji = fc
    .string({ unit: 'grapheme', minLength: 1, maxLength: 4 })
    .filter((e) => new TextEncoder().encode(e).length <= MAX_REACTION_BYTES)
  const body = fc.oneof(
    attachment.map((a) => ({ attachment: a })),
    fc.record({ targetId: id16, emoji, remove: fc.boolean() }).map((reaction) => ({ reaction })),
    fc.record({ targetId: id16, text: fc.string({ maxLength: 300 }) }).map((edit) => ({ edit })),
    id16.map((deleteForEveryone) => ({ deleteForEveryone })),
    fc
      .record({
        kind: fc.constantFrom('delivered' as const, 'read' as const),
        messageIds: fc.array(id16, { minLength: 1, maxLength: MAX_RECEIPT_IDS }),
      })
      .map((receipt) => ({ receipt })),
    fc.boolean().map((started) => ({ typing: { started } })),
  )

  it('round-trips every new body, with fallbackText and replyTo where they go, in 160-byte buckets', () => {
    fc.assert(
      fc.property(
        id16,
        fc.nat({ max: 2 ** 45 }),
        body,
        fc.option(fc.string({ minLength: 1, maxLength: 100 }), { nil: undefined }),
        fc.option(id16, { nil: undefined }),
        fc.option(bytes(32), { nil: undefined }),
        (messageId, sentAtMs, b, fallbackText, replyTo, deliveryToken) => {
          const content = {
            messageId,
            sentAtMs,
            ...b,
            ...(fallbackText === undefined ? {} : { fallbackText }),
            ...(replyTo !== undefined && 'attachment' in b ? { replyTo } : {}),
            ...(deliveryToken === undefined ? {} : { deliveryToken }),
          }
          const encoded = encodeContent(content)
          expect(encoded.length % CONTENT_BUCKET_BYTES).toBe(0)
          expect(decodeContent(encoded)).toEqual(content)
        },
      ),
      { numRuns: 400 },
    )
  })

  it('carries replyTo beside a text, and a fallbackText beside the old bodies', () => {
    const messageId = new Uint8Array(16).fill(1)
    const replyTo = new Uint8Array(16).fill(2)
    const text = { messageId, sentAtMs: 3, text: 'quoted', replyTo }
    expect(decodeContent(encodeContent(text))).toEqual(text)
    const data = { messageId, sentAtMs: 3, data: new Uint8Array([1, 2]), fallbackText: 'an app message' }
    expect(decodeContent(encodeContent(data))).toEqual(data)
  })

  it('keeps the padding the last field, after fields 16–23, in the smallest bucket that fits', () => {
    const messageId = new Uint8Array(16)
    for (let n = 0; n < 700; n += 7) {
      const edit = { targetId: messageId, text: 'e'.repeat(n) }
      const fallbackText = 'f'.repeat(n % 50)
      const encoded = encodeContent({ messageId, sentAtMs: 1, edit, fallbackText })
      const unpadded = encodeMessage('Content', { messageId, sentAtMs: 1, edit, fallbackText })
      expect(encoded.length % CONTENT_BUCKET_BYTES).toBe(0)
      // The first bucket with room for the padding's tag and length byte, or the next one when no varint width
      // of the padding's length lands exactly on the first.
      const first = Math.ceil((unpadded.length + 2) / CONTENT_BUCKET_BYTES) * CONTENT_BUCKET_BYTES
      expect([first, first + CONTENT_BUCKET_BYTES]).toContain(encoded.length)
      // Everything else first, byte for byte; then field 15: its tag, its length, zeros to the end.
      expect(encoded.subarray(0, unpadded.length)).toEqual(unpadded)
      const rest = encoded.subarray(unpadded.length)
      expect(rest[0]).toBe((15 << 3) | 2)
      let length = 0
      let i = 1
      for (let shift = 1; ; shift *= 128) {
        const b = rest[i++]!
        length += (b & 0x7f) * shift
        if (b < 0x80) break
      }
      expect(i + length).toBe(rest.length)
      expect(rest.subarray(i).every((b) => b === 0)).toBe(true)
    }
    expect(encodeContent({ messageId, sentAtMs: 1, typing: { started: true } }).length).toBe(160)
  })

  it('carries what encryptAttachment gives, and opens the file with what it decodes', () => {
    const file = new Uint8Array(100_000).map((_, i) => i % 251)
    const { blob, ...secrets } = encryptAttachment(file)
    const messageId = new Uint8Array(16).fill(8)
    const content = decodeContent(
      encodeContent({
        messageId,
        sentAtMs: 9,
        attachment: { blobId: new Uint8Array(32).fill(1), ...secrets, mimeType: 'application/octet-stream' },
        fallbackText: 'a file',
      }),
    )
    expect(content.fallbackText).toBe('a file')
    expect(decryptAttachment(blob, content.attachment!)).toEqual(file)
  })

  it('rejects caller mistakes in the new bodies with TypeError / RangeError', () => {
    const messageId = new Uint8Array(16)
    const target = new Uint8Array(16)
    const ok = {
      blobId: new Uint8Array(32),
      key: new Uint8Array(32),
      digest: new Uint8Array(32),
      size: 10,
      ciphertextSize: 26,
      chunkSize: 65536,
    }
    const enc = (c: object) => () => encodeContent({ messageId, sentAtMs: 1, ...c } as never)
    expect(enc({ attachment: ok })).not.toThrow()
    expect(enc({ attachment: { ...ok, blobId: new Uint8Array(31) } })).toThrow(RangeError)
    expect(enc({ attachment: { ...ok, key: new Uint8Array(33) } })).toThrow(RangeError)
    expect(enc({ attachment: { ...ok, digest: 'd' } })).toThrow(TypeError)
    expect(enc({ attachment: { ...ok, ciphertextSize: 27 } })).toThrow(RangeError)
    expect(enc({ attachment: { ...ok, size: -1 } })).toThrow(RangeError)
    expect(enc({ attachment: { ...ok, chunkSize: 10, ciphertextSize: 26 } })).toThrow(RangeError)
    expect(enc({ attachment: { ...ok, preview: new Uint8Array(MAX_PREVIEW_BYTES + 1) } })).toThrow(RangeError)
    expect(enc({ attachment: { ...ok, preview: new Uint8Array(MAX_PREVIEW_BYTES) } })).not.toThrow()
    expect(enc({ attachment: { ...ok, mimeType: 7 } })).toThrow(TypeError)
    expect(enc({ attachment: null })).toThrow(TypeError)
    expect(enc({ reaction: { targetId: target, emoji: '' } })).toThrow(RangeError)
    expect(enc({ reaction: { targetId: target, emoji: '👍'.repeat(8) } })).not.toThrow()
    expect(enc({ reaction: { targetId: target, emoji: `${'👍'.repeat(8)}x` } })).toThrow(RangeError)
    expect(enc({ reaction: { targetId: target.subarray(1), emoji: '👍' } })).toThrow(RangeError)
    expect(enc({ reaction: { targetId: target, emoji: '👍', remove: 1 } })).toThrow(TypeError)
    expect(enc({ edit: { targetId: target, text: 5 } })).toThrow(TypeError)
    expect(enc({ edit: { targetId: new Uint8Array(17), text: 'x' } })).toThrow(RangeError)
    expect(enc({ deleteForEveryone: new Uint8Array(15) })).toThrow(RangeError)
    expect(enc({ receipt: { kind: 'seen', messageIds: [target] } })).toThrow(TypeError)
    expect(enc({ receipt: { kind: 'read', messageIds: [] } })).toThrow(RangeError)
    expect(enc({ receipt: { kind: 'read', messageIds: Array(MAX_RECEIPT_IDS).fill(target) } })).not.toThrow()
    expect(enc({ receipt: { kind: 'read', messageIds: Array(MAX_RECEIPT_IDS + 1).fill(target) } })).toThrow(
      RangeError,
    )
    expect(enc({ receipt: { kind: 'read', messageIds: [new Uint8Array(15)] } })).toThrow(RangeError)
    expect(enc({ typing: { started: 'yes' } })).toThrow(TypeError)
    expect(enc({ typing: { started: true }, edit: { targetId: target, text: '' } })).toThrow(TypeError)
    expect(enc({ text: 'x', replyTo: new Uint8Array(15) })).toThrow(RangeError)
    expect(enc({ typing: { started: true }, replyTo: target })).toThrow(TypeError)
    expect(enc({ data: new Uint8Array(1), replyTo: target })).toThrow(TypeError)
    expect(enc({ text: 'x', fallbackText: 'y' })).toThrow(TypeError)
    expect(enc({ typing: { started: true }, fallbackText: 3 })).toThrow(TypeError)
    expect(enc({ text: 'x', unsupported: true })).toThrow(TypeError)
  })

  /** A Content encoded field by field, as a newer peer (or a broken one) would write it. */
  const raw = (...fields: Uint8Array[]) =>
    new Uint8Array([0x0a, 0x10, ...new Uint8Array(16).fill(6), 0x10, 0x2a, ...fields.flatMap((f) => [...f])])
  const lengthDelimited = (tag: number[], value: Uint8Array) =>
    new Uint8Array([...tag, value.length, ...value])
  const FIELD_40 = [0xc2, 0x02] // (40 << 3) | 2 as a varint
  const FALLBACK = [0xba, 0x01] // (23 << 3) | 2
  const utf8 = (s: string) => new TextEncoder().encode(s)
  const code = (b: Uint8Array) => {
    try {
      decodeContent(b)
      return 'no error'
    } catch (e) {
      return e instanceof ParleyError ? `${e.code}: ${e.message}` : String(e)
    }
  }

  it("decodes a newer peer's body (an unknown field number) as unsupported, with its fallbackText", () => {
    const messageId = new Uint8Array(16).fill(6)
    const unknown = lengthDelimited(FIELD_40, new Uint8Array([1, 2, 3]))
    expect(decodeContent(raw(unknown))).toEqual({ messageId, sentAtMs: 42, unsupported: true })
    expect(decodeContent(raw(unknown, lengthDelimited(FALLBACK, utf8('a poll'))))).toEqual({
      messageId,
      sentAtMs: 42,
      unsupported: true,
      fallbackText: 'a poll',
    })
    // Before the fallback, as a varint, with padding after it: the same.
    const padding = lengthDelimited([0x7a], new Uint8Array(20))
    expect(
      decodeContent(raw(lengthDelimited(FALLBACK, utf8('x')), new Uint8Array([0xc0, 0x02, 0x05]), padding)),
    ).toEqual({ messageId, sentAtMs: 42, unsupported: true, fallbackText: 'x' })
    // A known body beside an unknown field: the unknown one is skipped.
    expect(decodeContent(raw(lengthDelimited([0x1a], utf8('hi')), unknown))).toEqual({
      messageId,
      sentAtMs: 42,
      text: 'hi',
    })
    // A receipt of a kind this version does not know is a newer peer's too.
    const receipt = lengthDelimited(
      [0xa2, 0x01],
      new Uint8Array([0x08, 0x03, 0x12, 0x10, ...new Uint8Array(16)]),
    )
    expect(decodeContent(raw(receipt))).toEqual({ messageId, sentAtMs: 42, unsupported: true })
  })

  it('still refuses a content with no body and no unknown field, or only a known field of the wrong type', () => {
    expect(code(raw())).toBe('BAD_REQUEST: content has no body')
    expect(code(raw(lengthDelimited(FALLBACK, utf8('x'))))).toBe('BAD_REQUEST: content has no body')
    expect(code(raw(new Uint8Array([0x18, 0x01])))).toBe('BAD_REQUEST: content has no body') // text as a varint
    expect(code(raw(lengthDelimited(FIELD_40, new Uint8Array([1])).subarray(0, 3)))).toMatch(/^BAD_REQUEST/)
  })

  it('refuses malformed known bodies with ParleyError BAD_REQUEST', () => {
    const id = (n: number) => new Uint8Array(n)
    const attachment = {
      blobId: id(32),
      key: id(32),
      digest: id(32),
      size: 10,
      ciphertextSize: 26,
      chunkSize: 65536,
    }
    const bad = (props: object) =>
      code(encodeMessage('Content', { messageId: id(16), sentAtMs: 1, ...props }))
    expect(bad({ attachment })).toBe('no error')
    expect(bad({ attachment: { ...attachment, blobId: id(31) } })).toMatch(
      /^BAD_REQUEST: malformed attachment/,
    )
    expect(bad({ attachment: { ...attachment, ciphertextSize: 25 } })).toMatch(/^BAD_REQUEST/)
    expect(bad({ attachment: { ...attachment, chunkSize: 0 } })).toMatch(/^BAD_REQUEST/)
    expect(bad({ attachment: { ...attachment, preview: id(MAX_PREVIEW_BYTES + 1) } })).toMatch(/^BAD_REQUEST/)
    expect(bad({ attachment, replyTo: id(15) })).toMatch(/^BAD_REQUEST: malformed reply/)
    expect(bad({ reaction: { targetId: id(16), emoji: '' } })).toMatch(/^BAD_REQUEST: malformed reaction/)
    expect(bad({ reaction: { targetId: id(16), emoji: 'x'.repeat(33) } })).toMatch(/^BAD_REQUEST/)
    expect(bad({ reaction: { targetId: id(0), emoji: 'x' } })).toMatch(/^BAD_REQUEST/)
    expect(bad({ edit: { targetId: id(15), text: 'x' } })).toMatch(/^BAD_REQUEST: malformed edit/)
    expect(bad({ deleteForEveryone: id(0) })).toMatch(/^BAD_REQUEST/)
    expect(bad({ receipt: { kind: 1, messageIds: [] } })).toMatch(/^BAD_REQUEST: malformed receipt/)
    expect(bad({ receipt: { kind: 0, messageIds: [id(16)] } })).toMatch(/^BAD_REQUEST/)
    expect(bad({ receipt: { kind: 2, messageIds: Array(101).fill(id(16)) } })).toMatch(/^BAD_REQUEST/)
    expect(bad({ receipt: { kind: 2, messageIds: [id(16), id(17)] } })).toMatch(/^BAD_REQUEST/)
    expect(bad({ text: 'x', replyTo: id(17) })).toMatch(/^BAD_REQUEST/)
    // replyTo beside a body it does not go with is ignored, as accountNumber is beside other bodies.
    const typing = decodeContent(
      encodeMessage('Content', {
        messageId: id(16),
        sentAtMs: 1,
        typing: { started: true },
        replyTo: id(16),
      }),
    )
    expect(typing).toEqual({ messageId: id(16), sentAtMs: 1, typing: { started: true } })
  })
})
