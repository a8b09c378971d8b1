/**
 * The plaintext of every message (`parley.v1.Content`), padded to 160-byte buckets so that ciphertext length
 * reveals less about the message (docs/architecture.md §6; the bucket size is Signal's message padding block).
 * @module
 */
import { ATTACHMENT_DIGEST_BYTES, ATTACHMENT_KEY_BYTES, attachmentCiphertextSize } from './attachment.js'
import { ParleyError } from './errors.js'
import { messages } from './gen/schema.js'
import type * as wire from './gen/types.js'
import { ReceiptKind } from './gen/types.js'
import { abytes } from './internal/bytes.js'
import { own } from './internal/e2eCrypto.js'
import { decodeOrRefuse, encodeMessage } from './internal/pb.js'

/** Padded plaintexts are a multiple of this many bytes. */
export const CONTENT_BUCKET_BYTES = 160
/** Length of a message id. */
export const MESSAGE_ID_BYTES = 16
/** Length of an attachment's blob id (the relay's id of the blob, and the capability to download it). */
export const BLOB_ID_BYTES = 32
/** Largest attachment preview, in bytes. */
export const MAX_PREVIEW_BYTES = 64 * 1024
/** Largest reaction, in UTF-8 bytes. */
export const MAX_REACTION_BYTES = 32
/** Most message ids one receipt may name. */
export const MAX_RECEIPT_IDS = 100
/** Length of a group id. */
export const GROUP_ID_BYTES = 32

/** A file sent as a message: what fetches, checks and opens its encrypted blob (`encryptAttachment`'s result). */
export interface AttachmentFields {
  /** 32 random bytes: the relay's id of the blob, and the capability to download it. */
  readonly blobId: Uint8Array
  /** The 32-byte attachment key. */
  readonly key: Uint8Array
  /** SHA-256 of the whole encrypted blob (32 bytes). */
  readonly digest: Uint8Array
  /** The file's size in bytes, before encryption. */
  readonly size: number
  /** The blob's size in bytes; must be `attachmentCiphertextSize(size, chunkSize)`. */
  readonly ciphertextSize: number
  /** Plaintext bytes per chunk of the blob. */
  readonly chunkSize: number
  /** The file's media type, e.g. `image/jpeg`; absent when unknown. */
  readonly mimeType?: string | undefined
  /** The file's name; absent when not given. */
  readonly fileName?: string | undefined
  /** A small image to show before the file is fetched, at most {@link MAX_PREVIEW_BYTES}. */
  readonly preview?: Uint8Array | undefined
  /** Text shown with the file. */
  readonly caption?: string | undefined
}

/** A reaction to a message, or the removal of one. */
export interface ReactionFields {
  /** The 16-byte id of the message reacted to. */
  readonly targetId: Uint8Array
  /** The reaction: 1 to {@link MAX_REACTION_BYTES} UTF-8 bytes (that it is one emoji is the app's concern). */
  readonly emoji: string
  /** True to take back the sender's earlier reaction with this emoji; always set on a decoded reaction. */
  readonly remove?: boolean | undefined
}

/** A new text for one of the sender's own text messages. */
export interface EditFields {
  /** The 16-byte id of the message edited. */
  readonly targetId: Uint8Array
  /** Its new text. */
  readonly text: string
}

/** A delivery or read receipt. */
export interface ReceiptFields {
  /** Whether the messages were delivered to the receipt's sender, or shown to it. */
  readonly kind: 'delivered' | 'read'
  /** The 16-byte ids of the messages it is about: 1 to {@link MAX_RECEIPT_IDS}. */
  readonly messageIds: readonly Uint8Array[]
}

/** A typing indicator. */
export interface TypingFields {
  /** True when the sender started typing, false when it stopped. */
  readonly started: boolean
}

/**
 * A message's content: exactly one body (`text`, `data`, `history`, `addressChange`, `attachment`, `reaction`,
 * `edit`, `deleteForEveryone`, `receipt`, `typing`, `groupUpdate` or `groupKey`), or, on a decoded message whose
 * body this version does not know, `unsupported`.
 */
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
  /** A body: a file, whose encrypted blob is stored apart (`encryptAttachment`). */
  readonly attachment?: AttachmentFields | undefined
  /** A body: a reaction to a message, or the removal of one. */
  readonly reaction?: ReactionFields | undefined
  /** A body: a new text for one of the sender's own text messages. */
  readonly edit?: EditFields | undefined
  /** A body: the 16-byte id of one of the sender's own messages, which every receiver removes. */
  readonly deleteForEveryone?: Uint8Array | undefined
  /** A body: that messages were delivered or read. */
  readonly receipt?: ReceiptFields | undefined
  /** A body: that the sender started or stopped typing (ephemeral, never shown as a message). */
  readonly typing?: TypingFields | undefined
  /** A body: a group's new state, an encoded `GroupUpdate` ({@link encodeGroupUpdate}). A control message. */
  readonly groupUpdate?: Uint8Array | undefined
  /** A body: the sender device's sender key for a group, an encoded `GroupKey` ({@link encodeGroupKey}). */
  readonly groupKey?: Uint8Array | undefined
  /**
   * With `text`, `attachment`, `reaction`, `edit` or `deleteForEveryone` in a group message: the 32-byte id of the
   * group it belongs to.
   */
  readonly groupId?: Uint8Array | undefined
  /** With `text` or `attachment`: the 16-byte id of the message this one quotes. Ignored beside other bodies. */
  readonly replyTo?: Uint8Array | undefined
  /**
   * With any body but `text`: what a receiver that does not know the body shows instead. Senders set it for
   * every body a person would see; decoded beside every body but `text`, absent when empty.
   */
  readonly fallbackText?: string | undefined
  /**
   * Set only by {@link decodeContent}: the body is none this version knows (a newer sender's). Such a content
   * has only `messageId`, `sentAtMs`, `fallbackText` (when the sender set one) and the `deliveryToken` /
   * `transcriptTo` / `senderNumber` beside the body; show `fallbackText`, or say that the message cannot be shown.
   */
  readonly unsupported?: true | undefined
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

/** The bodies of a Content, as {@link Content} names them; exactly one is set. */
const BODIES = [
  'text',
  'data',
  'history',
  'addressChange',
  'attachment',
  'reaction',
  'edit',
  'deleteForEveryone',
  'receipt',
  'typing',
  'groupUpdate',
  'groupKey',
] as const

const utf8 = new TextEncoder()
const anObject = (v: unknown, name: string) => {
  if (typeof v !== 'object' || v === null) throw new TypeError(`${name} must be an object`)
}
const aString = (v: unknown, name: string) => {
  if (typeof v !== 'string') throw new TypeError(`${name} must be a string`)
}
const anOptionalString = (v: unknown, name: string) => {
  if (v !== undefined) aString(v, name)
}

function checkAttachment(a: AttachmentFields): void {
  anObject(a, 'attachment')
  abytes(a.blobId, BLOB_ID_BYTES, 'attachment.blobId')
  abytes(a.key, ATTACHMENT_KEY_BYTES, 'attachment.key')
  abytes(a.digest, ATTACHMENT_DIGEST_BYTES, 'attachment.digest')
  if (attachmentCiphertextSize(a.size, a.chunkSize) !== a.ciphertextSize) {
    throw new RangeError('attachment.ciphertextSize does not match its size and chunkSize')
  }
  anOptionalString(a.mimeType, 'attachment.mimeType')
  anOptionalString(a.fileName, 'attachment.fileName')
  anOptionalString(a.caption, 'attachment.caption')
  if (a.preview !== undefined) {
    abytes(a.preview, undefined, 'attachment.preview')
    if (a.preview.length > MAX_PREVIEW_BYTES) {
      throw new RangeError(`attachment.preview must be at most ${MAX_PREVIEW_BYTES} bytes`)
    }
  }
}

function checkReaction(r: ReactionFields): void {
  anObject(r, 'reaction')
  abytes(r.targetId, MESSAGE_ID_BYTES, 'reaction.targetId')
  aString(r.emoji, 'reaction.emoji')
  const length = utf8.encode(r.emoji).length
  if (length === 0 || length > MAX_REACTION_BYTES) {
    throw new RangeError(`reaction.emoji must be 1 to ${MAX_REACTION_BYTES} UTF-8 bytes`)
  }
  if (r.remove !== undefined && typeof r.remove !== 'boolean') {
    throw new TypeError('reaction.remove must be a boolean')
  }
}

function checkEdit(e: EditFields): void {
  anObject(e, 'edit')
  abytes(e.targetId, MESSAGE_ID_BYTES, 'edit.targetId')
  aString(e.text, 'edit.text')
}

function checkReceipt(r: ReceiptFields): void {
  anObject(r, 'receipt')
  if (r.kind !== 'delivered' && r.kind !== 'read')
    throw new TypeError("receipt.kind must be 'delivered' or 'read'")
  if (!Array.isArray(r.messageIds)) throw new TypeError('receipt.messageIds must be an array')
  if (r.messageIds.length === 0 || r.messageIds.length > MAX_RECEIPT_IDS) {
    throw new RangeError(`receipt.messageIds must have 1 to ${MAX_RECEIPT_IDS} ids`)
  }
  for (const id of r.messageIds) abytes(id, MESSAGE_ID_BYTES, 'receipt.messageIds[]')
}

function checkTyping(t: TypingFields): void {
  anObject(t, 'typing')
  if (typeof t.started !== 'boolean') throw new TypeError('typing.started must be a boolean')
}

/**
 * Encodes and pads a message's content; the result's length is a multiple of {@link CONTENT_BUCKET_BYTES}.
 * @param content - id, timestamp and exactly one body (`text`, `data`, `history`, `addressChange`, `attachment`,
 *   `reaction`, `edit`, `deleteForEveryone`, `receipt` or `typing`), with `replyTo` only beside `text` or
 *   `attachment` and `fallbackText` beside any body but `text`
 * @returns the bytes to give to `Session.encrypt`
 * @throws TypeError / RangeError for a bad id, timestamp, not exactly one body, a malformed body (ids not 16
 *   bytes, an attachment's keys not 32 or its sizes inconsistent, a preview over 64 KiB, a reaction over 32
 *   UTF-8 bytes, a receipt of no or over 100 ids), `replyTo` or `fallbackText` beside a body they do not go
 *   with, or `unsupported` set
 * @example const padded = encodeContent({ messageId: randomBytes(16), sentAtMs: Date.now(), text: 'hi' })
 */
export function encodeContent(content: Content): Uint8Array {
  if (typeof content !== 'object' || content === null) throw new TypeError('content must be an object')
  abytes(content.messageId, MESSAGE_ID_BYTES, 'messageId')
  if (!Number.isSafeInteger(content.sentAtMs) || content.sentAtMs < 0) {
    throw new RangeError('sentAtMs must be a non-negative safe integer')
  }
  if (content.unsupported !== undefined) throw new TypeError('unsupported is set only on decoded content')
  const bodies = BODIES.filter((b) => content[b] !== undefined)
  if (bodies.length !== 1) {
    throw new TypeError(`content needs exactly one of ${BODIES.join(', ')}`)
  }
  const body = bodies[0] as (typeof BODIES)[number]
  const hasNotice = body === 'addressChange'
  if (body === 'history') abytes(content.history, undefined, 'history')
  if (hasNotice) abytes(content.addressChange, undefined, 'addressChange')
  const account = content.accountNumber
  if (account !== undefined) {
    if (!hasNotice) throw new TypeError('accountNumber goes only with addressChange')
    aNumberText(account?.e164, 'accountNumber.e164')
    abytes(account.salt, 32, 'accountNumber.salt')
  }
  if (body === 'text' && typeof content.text !== 'string') throw new TypeError('text must be a string')
  if (body === 'data') abytes(content.data, undefined, 'data')
  if (body === 'attachment') checkAttachment(content.attachment as AttachmentFields)
  if (body === 'reaction') checkReaction(content.reaction as ReactionFields)
  if (body === 'edit') checkEdit(content.edit as EditFields)
  if (body === 'deleteForEveryone') abytes(content.deleteForEveryone, MESSAGE_ID_BYTES, 'deleteForEveryone')
  if (body === 'receipt') checkReceipt(content.receipt as ReceiptFields)
  if (body === 'typing') checkTyping(content.typing as TypingFields)
  if (body === 'groupUpdate') abytes(content.groupUpdate, undefined, 'groupUpdate')
  if (body === 'groupKey') abytes(content.groupKey, undefined, 'groupKey')
  if (content.groupId !== undefined) {
    if (!GROUP_BODIES.has(body))
      throw new TypeError('groupId goes only with text, attachment, reaction, edit or deleteForEveryone')
    abytes(content.groupId, GROUP_ID_BYTES, 'groupId')
  }
  if (content.replyTo !== undefined) {
    if (body !== 'text' && body !== 'attachment')
      throw new TypeError('replyTo goes only with text or attachment')
    abytes(content.replyTo, MESSAGE_ID_BYTES, 'replyTo')
  }
  if (content.fallbackText !== undefined) {
    if (body === 'text') throw new TypeError('fallbackText goes only with a body other than text')
    aString(content.fallbackText, 'fallbackText')
  }
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
  if (content.replyTo) props.replyTo = content.replyTo
  if (content.fallbackText) props.fallbackText = content.fallbackText
  if (content.groupId) props.groupId = content.groupId
  if (body === 'text') props.text = content.text as string
  else if (body === 'data') props.data = content.data as Uint8Array
  else if (body === 'history') props.history = content.history as Uint8Array
  else if (body === 'addressChange') props.addressChange = content.addressChange as Uint8Array
  else if (body === 'attachment') {
    const a = content.attachment as AttachmentFields
    props.attachment = {
      blobId: a.blobId,
      key: a.key,
      digest: a.digest,
      size: a.size,
      ciphertextSize: a.ciphertextSize,
      chunkSize: a.chunkSize,
      mimeType: a.mimeType ?? '',
      fileName: a.fileName ?? '',
      preview: a.preview ?? new Uint8Array(0),
      caption: a.caption ?? '',
    }
  } else if (body === 'reaction') {
    const r = content.reaction as ReactionFields
    props.reaction = { targetId: r.targetId, emoji: r.emoji, remove: r.remove === true }
  } else if (body === 'edit') {
    const e = content.edit as EditFields
    props.edit = { targetId: e.targetId, text: e.text }
  } else if (body === 'deleteForEveryone') props.deleteForEveryone = content.deleteForEveryone as Uint8Array
  else if (body === 'receipt') {
    const r = content.receipt as ReceiptFields
    props.receipt = {
      kind: r.kind === 'read' ? ReceiptKind.RECEIPT_KIND_READ : ReceiptKind.RECEIPT_KIND_DELIVERED,
      messageIds: [...r.messageIds],
    }
  } else if (body === 'groupUpdate') props.groupUpdate = content.groupUpdate as Uint8Array
  else if (body === 'groupKey') props.groupKey = content.groupKey as Uint8Array
  else props.typing = { started: (content.typing as TypingFields).started }
  // Padding (field 15) is not in props: it is appended below, after every field including those above 15.
  const encoded = encodeMessage('Content', props)
  // Append the padding field (tag ‖ varint length ‖ zeros) so the total lands exactly on a bucket boundary:
  // find the smallest bucket where some varint width w gives pad = bucket - body - 1 - w of that width.
  let pad = -1
  for (
    let bucket = Math.ceil((encoded.length + 2) / CONTENT_BUCKET_BYTES) * CONTENT_BUCKET_BYTES;
    pad < 0;
  ) {
    for (let w = 1; w <= 4 && pad < 0; w++) {
      const p = bucket - encoded.length - 1 - w
      if (p >= 0 && varintLength(p) === w) pad = p
    }
    bucket += CONTENT_BUCKET_BYTES
  }
  const out = new Uint8Array(encoded.length + 1 + varintLength(pad) + pad)
  out.set(encoded)
  let i = encoded.length
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

/** The bodies a group message may have: `groupId` goes with these alone. */
const GROUP_BODIES = new Set<string>(['text', 'attachment', 'reaction', 'edit', 'deleteForEveryone'])

/** The numbers of Content's fields in this version's schema. */
const CONTENT_FIELDS = new Set((messages.Content ?? []).map((f) => f[0]))

/** The field number in the tag that starts a raw (unknown) field. */
function fieldNumberOf(raw: Uint8Array): number {
  let tag = 0
  for (let i = 0; i < 5 && i < raw.length; i++) {
    tag += ((raw[i] as number) & 0x7f) * 2 ** (7 * i)
    if ((raw[i] as number) < 0x80) break
  }
  return Math.floor(tag / 8)
}

/** Runs a body's check on what a peer sent: a failure is the peer's, so BAD_REQUEST. */
function refuseUnless(check: () => void, what: string): void {
  try {
    check()
  } catch (cause) {
    throw new ParleyError('BAD_REQUEST', `malformed ${what}`, { cause })
  }
}

/**
 * Decodes content produced by {@link encodeContent}, ignoring its padding. Read with proto3 semantics: unknown
 * fields are skipped, and a content whose body is none this version knows (a newer sender's: only unknown
 * fields where the body would be) decodes as `{ messageId, sentAtMs, unsupported: true, fallbackText }` (with
 * `deliveryToken` / `transcriptTo` when set), never as an error. So does a receipt of a kind this version does
 * not know.
 * @param bytes - a decrypted plaintext
 * @returns the content
 * @throws TypeError if `bytes` is not a Uint8Array; ParleyError `BAD_REQUEST` for anything malformed: a known
 *   body that breaks {@link encodeContent}'s rules, a bad id, token or address, or no body and no unknown field
 * @example const { messageId, text } = decodeContent(session.decrypt(message))
 */
export function decodeContent(bytes: Uint8Array): Content {
  abytes(bytes, undefined, 'bytes')
  const c = decodeOrRefuse('Content', bytes, 'content', { keepUnknown: true })
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
  const groupId = own(c.groupId)
  if (groupId.length !== 0 && (groupId.length !== GROUP_ID_BYTES || !GROUP_BODIES.has(c.body ?? '')))
    throw new ParleyError('BAD_REQUEST', 'malformed group id')
  const stated = {
    ...(groupId.length === 0 ? {} : { groupId }),
    ...(c.senderNumber ? { senderNumber: c.senderNumber } : {}),
    ...(token.length === 32 ? { deliveryToken: token } : {}),
    ...(transcriptTo.length === 32 ? { transcriptTo } : {}),
  }
  const fallback = c.fallbackText ? { fallbackText: c.fallbackText } : {}
  const unsupported = (): Content => ({ messageId, sentAtMs, unsupported: true, ...fallback, ...stated })
  const replyTo = (): { replyTo?: Uint8Array } => {
    const id = own(c.replyTo)
    if (id.length !== 0 && id.length !== MESSAGE_ID_BYTES)
      throw new ParleyError('BAD_REQUEST', 'malformed reply target')
    return id.length === 0 ? {} : { replyTo: id }
  }
  if (c.body === 'text') return { messageId, sentAtMs, text: c.text ?? '', ...replyTo(), ...stated }
  if (c.body === 'data') return { messageId, sentAtMs, data: own(c.data), ...fallback, ...stated }
  if (c.body === 'history') return { messageId, sentAtMs, history: own(c.history), ...fallback, ...stated }
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
      ...fallback,
      ...stated,
    }
  }
  if (c.body === 'attachment') {
    const a = c.attachment
    const attachment: AttachmentFields = {
      blobId: own(a.blobId),
      key: own(a.key),
      digest: own(a.digest),
      size: a.size,
      ciphertextSize: a.ciphertextSize,
      chunkSize: a.chunkSize,
      ...(a.mimeType ? { mimeType: a.mimeType } : {}),
      ...(a.fileName ? { fileName: a.fileName } : {}),
      ...(a.preview.length > 0 ? { preview: own(a.preview) } : {}),
      ...(a.caption ? { caption: a.caption } : {}),
    }
    refuseUnless(() => checkAttachment(attachment), 'attachment')
    return { messageId, sentAtMs, attachment, ...replyTo(), ...fallback, ...stated }
  }
  if (c.body === 'reaction') {
    const reaction = {
      targetId: own(c.reaction.targetId),
      emoji: c.reaction.emoji,
      remove: c.reaction.remove,
    }
    refuseUnless(() => checkReaction(reaction), 'reaction')
    return { messageId, sentAtMs, reaction, ...fallback, ...stated }
  }
  if (c.body === 'edit') {
    const edit = { targetId: own(c.edit.targetId), text: c.edit.text }
    refuseUnless(() => checkEdit(edit), 'edit')
    return { messageId, sentAtMs, edit, ...fallback, ...stated }
  }
  if (c.body === 'deleteForEveryone') {
    const target = own(c.deleteForEveryone)
    if (target.length !== MESSAGE_ID_BYTES) throw new ParleyError('BAD_REQUEST', 'malformed delete target')
    return { messageId, sentAtMs, deleteForEveryone: target, ...fallback, ...stated }
  }
  if (c.body === 'receipt') {
    const kind = c.receipt.kind
    if (kind === ReceiptKind.RECEIPT_KIND_UNSPECIFIED)
      throw new ParleyError('BAD_REQUEST', 'malformed receipt')
    // A kind this version does not know is a newer sender's: not an error.
    if (kind !== ReceiptKind.RECEIPT_KIND_DELIVERED && kind !== ReceiptKind.RECEIPT_KIND_READ)
      return unsupported()
    const receipt: ReceiptFields = {
      kind: kind === ReceiptKind.RECEIPT_KIND_READ ? 'read' : 'delivered',
      messageIds: c.receipt.messageIds.map(own),
    }
    refuseUnless(() => checkReceipt(receipt), 'receipt')
    return { messageId, sentAtMs, receipt, ...fallback, ...stated }
  }
  if (c.body === 'groupUpdate')
    return { messageId, sentAtMs, groupUpdate: own(c.groupUpdate), ...fallback, ...stated }
  if (c.body === 'groupKey') return { messageId, sentAtMs, groupKey: own(c.groupKey), ...fallback, ...stated }
  if (c.body === 'typing')
    return { messageId, sentAtMs, typing: { started: c.typing.started }, ...fallback, ...stated }
  // No body this version knows. An unknown field (not a known one of the wrong wire type) is a newer sender's body.
  const unknowns = (c as { $unknowns?: Uint8Array[] }).$unknowns ?? []
  if (unknowns.some((raw) => !CONTENT_FIELDS.has(fieldNumberOf(raw)))) return unsupported()
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
