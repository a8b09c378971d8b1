/**
 * The plaintext of every message (`parley.v1.Content`), padded to 160-byte buckets so that ciphertext length
 * reveals less about the message (docs/architecture.md §6; the bucket size is Signal's message padding block).
 * @module
 */
import { ParleyError } from './errors.js'
import type * as wire from './gen/types.js'
import { abytes } from './internal/bytes.js'
import { own } from './internal/e2eCrypto.js'
import { decodeOrRefuse, encodeMessage } from './internal/pb.js'

/** Padded plaintexts are a multiple of this many bytes. */
export const CONTENT_BUCKET_BYTES = 160
/** Length of a message id. */
export const MESSAGE_ID_BYTES = 16

/** A message's content: exactly one of `text` or `data`. */
export interface Content {
  /** 16 random bytes chosen by the sender; also `SendMessage.message_id`. */
  readonly messageId: Uint8Array
  /** Sender's clock at send time, milliseconds since the epoch. */
  readonly sentAtMs: number
  /** The message's text; set exactly when `data` is not. */
  readonly text?: string | undefined
  /** Application-defined bytes. */
  readonly data?: Uint8Array | undefined
  /**
   * Superseded: a number claimed here proves nothing and must not be shown. State the number in the sealed
   * envelope (`sealEnvelope`'s `senderNumber`), where the sender certificate proves it. Still decoded so that
   * old messages parse.
   */
  readonly senderNumber?: string | undefined
  /** The sender's 32-byte delivery token, so the recipient can answer by unidentified delivery. */
  readonly deliveryToken?: Uint8Array | undefined
  /**
   * On a sent transcript (a copy of a message this account sent, for its other devices): the 32-byte address of
   * the recipient. A receiver honours it only on a message from its own account.
   */
  readonly transcriptTo?: Uint8Array | undefined
  /**
   * Instead of `text` or `data`: a part of the account's history for its other devices ({@link encodeHistoryChunk});
   * a receiver honours it only on a message from its own account.
   */
  readonly history?: Uint8Array | undefined
  /**
   * Instead of `text`, `data` or `history`: the sender's account changed its number, an encoded `AddressChange`
   * (`signAddressChange`). A control message, not shown as a message.
   */
  readonly addressChange?: Uint8Array | undefined
  /**
   * With `addressChange`, from an account's primary to its own other devices: the new number and the 32-byte salt
   * of its new commitment. Ignored on a message from another account.
   */
  readonly accountNumber?:
    | {
        /** The account's new number, E.164. */
        readonly e164: string
        /** The 32-byte salt of the account's new number commitment. */
        readonly salt: Uint8Array
      }
    | undefined
}

/** One message of a {@link HistoryChunkFields} transfer. */
export interface HistoryEntryFields {
  /** The sender's 16-byte message id. */
  readonly messageId: Uint8Array
  /** The sender's proven number (E.164), or null. */
  readonly from: string | null
  /** The sender's 32-byte address. */
  readonly fromAddress: Uint8Array
  /** The message's text. */
  readonly text: string
  /** When the sender says it sent it (ms since the Unix epoch). */
  readonly sentAtMs: number
  /** When the relay received it (ms since the Unix epoch). */
  readonly receivedAtMs: number
  /** For a message the account sent (a sent transcript): the 32-byte address it went to. */
  readonly toAddress?: Uint8Array | undefined
  /** With `toAddress`: the recipient's number (E.164) when known, else null. */
  readonly to?: string | null | undefined
}

/** A part of an account's history, from its primary to its other devices after a link. */
export interface HistoryChunkFields {
  /** The messages, oldest first. */
  readonly entries: readonly HistoryEntryFields[]
  /** This chunk's place among `total` (0-based). */
  readonly index: number
  /** How many chunks the transfer has. */
  readonly total: number
}

const PADDING_TAG = (15 << 3) | 2

function varintLength(n: number): number {
  let len = 1
  while (n >= 0x80) {
    n = Math.floor(n / 128)
    len++
  }
  return len
}

/**
 * Encodes and pads a message's content; the result's length is a multiple of {@link CONTENT_BUCKET_BYTES}.
 * @param content - id, timestamp and exactly one of `text` / `data`
 * @returns the bytes to give to `Session.encrypt`
 * @throws TypeError / RangeError for a bad id, timestamp, or not exactly one body
 * @example const padded = encodeContent({ messageId: randomBytes(16), sentAtMs: Date.now(), text: 'hi' })
 */
export function encodeContent(content: Content): Uint8Array {
  if (typeof content !== 'object' || content === null) throw new TypeError('content must be an object')
  abytes(content.messageId, MESSAGE_ID_BYTES, 'messageId')
  if (!Number.isSafeInteger(content.sentAtMs) || content.sentAtMs < 0) {
    throw new RangeError('sentAtMs must be a non-negative safe integer')
  }
  const hasText = content.text !== undefined
  const hasData = content.data !== undefined
  const hasHistory = content.history !== undefined
  const hasNotice = content.addressChange !== undefined
  if (Number(hasText) + Number(hasData) + Number(hasHistory) + Number(hasNotice) !== 1) {
    throw new TypeError('content needs exactly one of text, data, history or addressChange')
  }
  if (hasHistory) abytes(content.history, undefined, 'history')
  if (hasNotice) abytes(content.addressChange, undefined, 'addressChange')
  const account = content.accountNumber
  if (account !== undefined) {
    if (!hasNotice) throw new TypeError('accountNumber goes only with addressChange')
    aNumberText(account?.e164, 'accountNumber.e164')
    abytes(account.salt, 32, 'accountNumber.salt')
  }
  if (hasText && typeof content.text !== 'string') throw new TypeError('text must be a string')
  if (hasData) abytes(content.data, undefined, 'data')
  if (
    content.senderNumber !== undefined &&
    (typeof content.senderNumber !== 'string' || content.senderNumber.length > 32)
  ) {
    throw new TypeError('senderNumber must be a string of at most 32 characters')
  }
  if (content.deliveryToken !== undefined) abytes(content.deliveryToken, 32, 'deliveryToken')
  if (content.transcriptTo !== undefined) abytes(content.transcriptTo, 32, 'transcriptTo')
  const props: wire.ContentInput = { messageId: content.messageId, sentAtMs: content.sentAtMs }
  if (content.senderNumber) props.senderNumber = content.senderNumber
  if (content.deliveryToken) props.deliveryToken = content.deliveryToken
  if (content.transcriptTo) props.transcriptTo = content.transcriptTo
  if (account) {
    props.accountNumber = account.e164
    props.accountNumberSalt = account.salt
  }
  if (hasText) props.text = content.text as string
  else if (hasData) props.data = content.data as Uint8Array
  else if (hasHistory) props.history = content.history as Uint8Array
  else props.addressChange = content.addressChange as Uint8Array
  const body = encodeMessage('Content', props)
  // Append the padding field (tag ‖ varint length ‖ zeros) so the total lands exactly on a bucket boundary:
  // find the smallest bucket where some varint width w gives pad = bucket - body - 1 - w of that width.
  let pad = -1
  for (let bucket = Math.ceil((body.length + 2) / CONTENT_BUCKET_BYTES) * CONTENT_BUCKET_BYTES; pad < 0; ) {
    for (let w = 1; w <= 4 && pad < 0; w++) {
      const p = bucket - body.length - 1 - w
      if (p >= 0 && varintLength(p) === w) pad = p
    }
    bucket += CONTENT_BUCKET_BYTES
  }
  const out = new Uint8Array(body.length + 1 + varintLength(pad) + pad)
  out.set(body)
  let i = body.length
  out[i++] = PADDING_TAG
  for (let n = pad; ; ) {
    if (n < 0x80) {
      out[i++] = n
      break
    }
    out[i++] = (n & 0x7f) | 0x80
    n = Math.floor(n / 128)
  }
  return out
}

/**
 * Decodes content produced by {@link encodeContent}, ignoring its padding.
 * @param bytes - a decrypted plaintext
 * @returns the content
 * @throws TypeError if `bytes` is not a Uint8Array; ParleyError `BAD_REQUEST` for anything malformed
 * @example const { messageId, text } = decodeContent(session.decrypt(message))
 */
export function decodeContent(bytes: Uint8Array): Content {
  abytes(bytes, undefined, 'bytes')
  const c = decodeOrRefuse('Content', bytes, 'content')
  const messageId = own(c.messageId)
  if (messageId.length !== MESSAGE_ID_BYTES) throw new ParleyError('BAD_REQUEST', 'malformed message id')
  const sentAtMs = Number(c.sentAtMs ?? 0)
  if (!Number.isSafeInteger(sentAtMs)) throw new ParleyError('BAD_REQUEST', 'malformed timestamp')
  const token = own(c.deliveryToken)
  if (token.length !== 0 && token.length !== 32)
    throw new ParleyError('BAD_REQUEST', 'malformed delivery token')
  const transcriptTo = own(c.transcriptTo)
  if (transcriptTo.length !== 0 && transcriptTo.length !== 32)
    throw new ParleyError('BAD_REQUEST', 'malformed transcript address')
  const stated = {
    ...(c.senderNumber ? { senderNumber: c.senderNumber } : {}),
    ...(token.length === 32 ? { deliveryToken: token } : {}),
    ...(transcriptTo.length === 32 ? { transcriptTo } : {}),
  }
  if (c.body === 'text') return { messageId, sentAtMs, text: c.text ?? '', ...stated }
  if (c.body === 'data') return { messageId, sentAtMs, data: own(c.data), ...stated }
  if (c.body === 'history') return { messageId, sentAtMs, history: own(c.history), ...stated }
  if (c.body === 'addressChange') {
    const salt = own(c.accountNumberSalt)
    const number = c.accountNumber ?? ''
    if (
      (number === '') !== (salt.length === 0) ||
      (salt.length !== 0 && salt.length !== 32) ||
      number.length > 32
    )
      throw new ParleyError('BAD_REQUEST', 'malformed account number')
    return {
      messageId,
      sentAtMs,
      addressChange: own(c.addressChange),
      ...(number !== '' ? { accountNumber: { e164: number, salt } } : {}),
      ...stated,
    }
  }
  throw new ParleyError('BAD_REQUEST', 'content has no body')
}

const aNumberText = (v: unknown, name: string) => {
  if (typeof v !== 'string' || v.length > 32)
    throw new TypeError(`${name} must be a string of at most 32 characters`)
}

/**
 * Encodes a part of an account's history, to send in `Content.history` to the account's other devices.
 * @param chunk - the entries, oldest first, and the chunk's place in the transfer
 * @returns an encoded `parley.v1.HistoryChunk`
 * @throws TypeError / RangeError for malformed entries (ids not 16 bytes, addresses not 32, bad times or numbers)
 * @example const bytes = encodeHistoryChunk({ entries, index: 0, total: 1 })
 */
export function encodeHistoryChunk(chunk: HistoryChunkFields): Uint8Array {
  if (typeof chunk !== 'object' || chunk === null || !Array.isArray(chunk.entries)) {
    throw new TypeError('chunk must be an object with entries')
  }
  for (const n of [chunk.index, chunk.total]) {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError('index and total must be u32')
  }
  if (chunk.index >= chunk.total) throw new RangeError('index must be below total')
  const entries = chunk.entries.map((e) => {
    abytes(e.messageId, MESSAGE_ID_BYTES, 'messageId')
    abytes(e.fromAddress, 32, 'fromAddress')
    if (typeof e.text !== 'string') throw new TypeError('text must be a string')
    if (e.from !== null) aNumberText(e.from, 'from')
    for (const t of [e.sentAtMs, e.receivedAtMs]) {
      if (!Number.isSafeInteger(t) || t < 0) throw new RangeError('times must be non-negative safe integers')
    }
    if (e.toAddress !== undefined) abytes(e.toAddress, 32, 'toAddress')
    if (e.to !== undefined && e.to !== null) aNumberText(e.to, 'to')
    return {
      messageId: e.messageId,
      from: e.from ?? '',
      fromAddress: e.fromAddress,
      text: e.text,
      sentAtMs: e.sentAtMs,
      receivedAtMs: e.receivedAtMs,
      toAddress: e.toAddress ?? new Uint8Array(0),
      to: e.to ?? '',
    }
  })
  return encodeMessage('HistoryChunk', { entries, index: chunk.index, total: chunk.total })
}

/**
 * Decodes a part of an account's history (from `Content.history`).
 * @param bytes - an encoded `parley.v1.HistoryChunk` (from a decrypted message)
 * @returns its fields, with empty numbers as null and no `toAddress` on received messages
 * @throws ParleyError `BAD_REQUEST` for anything malformed
 * @example const { entries } = decodeHistoryChunk(content.history)
 */
export function decodeHistoryChunk(bytes: Uint8Array): HistoryChunkFields {
  abytes(bytes, undefined, 'bytes')
  const m = decodeOrRefuse('HistoryChunk', bytes, 'history chunk')
  const chunk: HistoryChunkFields = {
    index: m.index,
    total: m.total,
    entries: m.entries.map((e) => {
      const toAddress = own(e.toAddress)
      return {
        messageId: own(e.messageId),
        from: e.from === '' ? null : e.from,
        fromAddress: own(e.fromAddress),
        text: e.text,
        sentAtMs: Number(e.sentAtMs),
        receivedAtMs: Number(e.receivedAtMs),
        ...(toAddress.length === 0 ? {} : { toAddress, to: e.to === '' ? null : e.to }),
      }
    }),
  }
  try {
    encodeHistoryChunk(chunk)
  } catch (cause) {
    throw new ParleyError('BAD_REQUEST', 'malformed history chunk', { cause })
  }
  return chunk
}
