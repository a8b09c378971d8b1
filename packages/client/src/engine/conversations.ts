// Conversations (docs/architecture.md §8, "Conversations"): one per peer — a Parley account (by address, so a number change
// keeps it) or a number reached only by SMS — with its messages in both directions in time order, an unread
// count and the newest message, kept in the same atomic writes as the messages themselves. History pages
// through the store's `page` (or `list`). Not exported.
import { ParleyError } from '@parley/protocol'
import { fromHex, toHex } from '../internal/codec.js'
import { type PageOptions, pageFromList, type Store, type StoreEntry, type StoreWrite } from '../Store.js'
import type {
  AttachmentInfo,
  Conversation,
  ConversationMessage,
  ConversationPage,
  HistoryPageOptions,
  MessageState,
} from '../types.js'
import type { Engine } from './context.js'
import type { Discovery } from './discovery.js'
import {
  type AttachmentRecord,
  type ConversationMessageRecord,
  type ConversationRecord,
  contactRecord,
  del,
  get,
  K,
  type OutgoingBody,
  put,
  type StoredMessage,
} from './keyspace.js'

/** The most messages one history page returns. */
export const MAX_PAGE = 500
const DEFAULT_PAGE = 50
const ID = /^[0-9a-f]{32}$/

/** What a new message brings to its conversation. */
export interface ConversationEntry {
  /** The peer: a Parley account's address (hex), or `sms:` + E.164 for a number reached only by SMS. */
  peer: string
  /** The peer's number when known. */
  number: string | null
  message: ConversationMessageRecord
}

/**
 * The conversation entry of a message stored in the inbox: a received one under its sender, a sent transcript
 * (another device of this account sent it) under its recipient; null for anything else.
 */
export function entryOfStored(
  m: StoredMessage,
  ownNumber: string,
  ownAddressHex: string,
): ConversationEntry | null {
  if (m.toAddress !== undefined) {
    return {
      peer: m.toAddress,
      number: m.to ?? null,
      message: {
        id: m.id,
        outgoing: true,
        from: ownNumber,
        text: m.text,
        sentAt: m.sentAt,
        receivedAt: m.receivedAt,
        state: 'sent',
        ...(m.seq === undefined ? {} : { seq: m.seq }),
        ...(m.replyTo === undefined ? {} : { replyTo: m.replyTo }),
        ...(m.attachment === undefined ? {} : { attachment: m.attachment }),
      },
    }
  }
  if (m.fromAddress === ownAddressHex) return null
  return {
    peer: m.fromAddress,
    number: m.from,
    message: {
      id: m.id,
      outgoing: false,
      from: m.from,
      text: m.text,
      sentAt: m.sentAt,
      receivedAt: m.receivedAt,
      state: 'received',
      ...(m.seq === undefined ? {} : { seq: m.seq }),
      ...(m.replyTo === undefined ? {} : { replyTo: m.replyTo }),
      ...(m.attachment === undefined ? {} : { attachment: m.attachment }),
    },
  }
}

/** The peer of a group's conversation: this, then the group id (hex). */
export const GROUP_PEER = 'group:'

/** Whether a conversation's peer is one Parley account (not a number reached by SMS, nor a group). */
function isAccountPeer(peer: string): boolean {
  return !peer.startsWith('sms:') && !peer.startsWith(GROUP_PEER)
}

/** How long after sending it a message may be edited or deleted for everyone (24 hours). */
export const EDIT_WINDOW_MS = 24 * 3600_000
/** Delivery receipts wait this long to go out together (one message for a burst of mail). */
const RECEIPT_BATCH_MS = 300
/** Most ids in one receipt. */
const RECEIPT_MAX_IDS = 100
/** How far each state is along: a receipt never moves a message back. */
const STATE_RANK: Record<string, number> = { queued: 0, sent: 1, delivered: 2, read: 3 }

/** Sends a control message (the outbox's `queueControl`), wired in by the facade. */
export type SendControl = (address: Uint8Array, number: string, body: OutgoingBody) => Promise<string>

export class Conversations {
  readonly #engine: Engine
  readonly #discovery: Discovery
  readonly #receipts: { delivery: boolean; read: boolean }
  /** Set by the facade once the outbox exists. */
  sendControl: SendControl | null = null
  /** Sends an action on a group's message to the group (engine/groups.ts), wired in by the facade. */
  sendGroupAction: ((groupId: string, action: OutgoingBody) => Promise<void>) | null = null
  /** Delivery receipts not sent yet, by sender address (hex). */
  readonly #pendingReceipts = new Map<string, { number: string; ids: string[] }>()
  #receiptTimer: unknown = null

  constructor(engine: Engine, discovery: Discovery, receipts: { delivery?: boolean; read?: boolean } = {}) {
    this.#engine = engine
    this.#discovery = discovery
    this.#receipts = { delivery: receipts.delivery !== false, read: receipts.read !== false }
  }

  /**
   * A message from the contact at `senderHex` was decrypted and stored here: its delivery receipt goes out soon,
   * together with the others of a burst (unless delivery receipts are off).
   */
  delivered(senderHex: string, number: string | null, idHex: string): void {
    if (!this.#receipts.delivery) return
    const batch = this.#pendingReceipts.get(senderHex) ?? { number: number ?? '', ids: [] }
    batch.ids.push(idHex)
    this.#pendingReceipts.set(senderHex, batch)
    if (batch.ids.length >= RECEIPT_MAX_IDS) void this.flushReceipts()
    else if (this.#receiptTimer === null) {
      this.#receiptTimer = this.#engine.clock.setTimeout(() => void this.flushReceipts(), RECEIPT_BATCH_MS)
    }
  }

  /** Forgets the delivery receipts not sent yet, and their timer (the client is closing). */
  dropReceipts(): void {
    if (this.#receiptTimer !== null) this.#engine.clock.clearTimeout(this.#receiptTimer)
    this.#receiptTimer = null
    this.#pendingReceipts.clear()
  }

  /** Sends the delivery receipts waiting (a batch is full, or its time came). */
  async flushReceipts(): Promise<void> {
    const engine = this.#engine
    if (this.#receiptTimer !== null) engine.clock.clearTimeout(this.#receiptTimer)
    this.#receiptTimer = null
    const send = this.sendControl
    const queued: Promise<unknown>[] = []
    for (const [hex, batch] of this.#pendingReceipts) {
      this.#pendingReceipts.delete(hex)
      if (send === null || engine.account === null) continue
      for (let i = 0; i < batch.ids.length; i += RECEIPT_MAX_IDS) {
        const messageIds = batch.ids.slice(i, i + RECEIPT_MAX_IDS)
        queued.push(
          send(fromHex(hex), batch.number, { receipt: { kind: 'delivered', messageIds } }).catch((err) =>
            engine.emitRecoverable(err),
          ),
        )
      }
    }
    await Promise.all(queued)
  }

  /**
   * What a reaction, edit, deletion or receipt does to the conversation with `peer`, as `actor` (the contact's
   * address, or `me` for a sent transcript from another device of this account): the writes for the caller's
   * batch, and the event to emit once they are written. Edits and deletions apply only to the actor's own
   * messages within {@link EDIT_WINDOW_MS} of their sending; receipts only to this account's messages, and only
   * forward (`sent` → `delivered` → `read`). Anything else is ignored.
   */
  async act(
    peer: string,
    actor: string,
    action: OutgoingBody,
    atMs: number,
  ): Promise<{ writes: StoreWrite[]; emit?: () => void }> {
    const { store, events } = this.#engine
    const id = await get(store, K.convOf(peer))
    /** A message by id, with its key and the conversation it is in. */
    const find = async (idHex: string) => {
      const key = await get(store, K.messageIndex(idHex))
      const raw = key === undefined ? undefined : await store.get(key)
      if (key === undefined || raw === undefined) return undefined
      const conversation = key.slice(K.conversationMessage.prefix.length).split('/')[0]!
      return { key, conversation, m: K.conversationMessage.codec.decode(raw) }
    }
    const write = (key: string, m: ConversationMessageRecord) => ({
      key,
      value: K.conversationMessage.codec.encode(m),
    })
    if ('receipt' in action) {
      if (actor === 'me') return { writes: [] }
      const { kind, messageIds } = action.receipt
      const writes: StoreWrite[] = []
      /** The messages whose state moved, by conversation (a group message's receipt comes pairwise). */
      const moved = new Map<string, string[]>()
      for (const idHex of messageIds) {
        const t = await find(idHex)
        if (t === undefined || !t.m.outgoing) continue
        // In the conversation with the actor, the state moves forward; in a group's, the actor is counted and
        // the state moves once every member has it. A receipt names no message of any other conversation.
        const next =
          t.conversation === id
            ? (STATE_RANK[t.m.state] ?? 99) < STATE_RANK[kind]!
              ? { ...t.m, state: kind }
              : undefined
            : afterGroupReceipt(t.m, actor, kind)
        if (next === undefined) continue
        writes.push(write(t.key, next))
        if (next.state !== t.m.state) moved.set(t.conversation, [...(moved.get(t.conversation) ?? []), idHex])
      }
      if (moved.size === 0) return { writes }
      return {
        writes,
        emit: () => {
          for (const [conversation, ids] of moved)
            events.emit('receipt', { conversation, kind, messageIds: ids })
        },
      }
    }
    if (id === undefined) return { writes: [] }
    const target = async (idHex: string) => {
      const t = await find(idHex)
      return t?.conversation === id ? t : undefined
    }
    if ('reaction' in action) {
      const r = action.reaction
      const t = await target(r.targetId)
      if (t === undefined) return { writes: [] }
      const reactions = { ...(t.m.reactions ?? {}) }
      if (r.remove) {
        if (reactions[actor] !== r.emoji) return { writes: [] }
        delete reactions[actor]
      } else reactions[actor] = r.emoji
      const { reactions: _old, ...rest } = t.m
      const next = Object.keys(reactions).length > 0 ? { ...rest, reactions } : rest
      return {
        writes: [write(t.key, next)],
        emit: () =>
          events.emit('reaction', {
            conversation: id,
            messageId: r.targetId,
            from: actor,
            emoji: r.emoji,
            removed: r.remove,
          }),
      }
    }
    if ('attachment' in action || 'typing' in action) return { writes: [] }
    const targetId = 'edit' in action ? action.edit.targetId : action.deleteForEveryone
    const t = await target(targetId)
    // Only the actor's own message: a contact's incoming one, or (from another device of ours) our outgoing one;
    // in a group, the incoming one must be the actor's too.
    if (t === undefined || t.m.outgoing !== (actor === 'me') || t.m.deleted === true) return { writes: [] }
    if (actor !== 'me' && t.m.fromAddress !== undefined && t.m.fromAddress !== actor) return { writes: [] }
    if (atMs - t.m.sentAt > EDIT_WINDOW_MS) return { writes: [] }
    if ('edit' in action) {
      const text = action.edit.text
      return {
        writes: [write(t.key, { ...t.m, text, edited: true })],
        emit: () => events.emit('messageEdited', { conversation: id, messageId: targetId, text }),
      }
    }
    const { reactions: _r, edited: _e, ...rest } = t.m
    return {
      writes: [write(t.key, { ...rest, text: '', deleted: true })],
      emit: () => events.emit('messageDeleted', { conversation: id, messageId: targetId, text: '' }),
    }
  }

  /**
   * `ParleyClient.react`, `edit`, `deleteForEveryone`: an action on a message of a conversation, sent to the peer
   * (and, as sent transcripts, to this account's other devices) and applied here at once. Edits and deletions are
   * for this account's own messages, within {@link EDIT_WINDOW_MS}.
   */
  async sendAction(messageId: string, action: OutgoingBody): Promise<void> {
    const engine = this.#engine
    engine.requireAccount()
    if (!ID.test(messageId)) throw new TypeError('a message id is 32 hex digits')
    const send = this.sendControl
    if (send === null) throw new ParleyError('INVALID_STATE', 'the client is not ready')
    const found = await engine.serial.run(async () => {
      const key = await get(engine.store, K.messageIndex(messageId))
      const raw = key === undefined ? undefined : await engine.store.get(key)
      if (key === undefined || raw === undefined) throw new ParleyError('NOT_FOUND', 'no such message here')
      const m = K.conversationMessage.codec.decode(raw)
      const c = await get(
        engine.store,
        K.conversation(key.slice(K.conversationMessage.prefix.length).split('/')[0]!),
      )
      if (c === undefined || c.peer.startsWith('sms:'))
        throw new ParleyError('INVALID_STATE', 'only a message of a Parley conversation')
      if (!('reaction' in action)) {
        if (!m.outgoing || m.deleted === true) throw new ParleyError('FORBIDDEN', 'only your own messages')
        if (engine.clock.now() - m.sentAt > EDIT_WINDOW_MS)
          throw new ParleyError('EXPIRED', 'messages can be changed for 24 hours after sending')
      }
      const result = await this.act(c.peer, 'me', action, engine.clock.now())
      await engine.store.write(result.writes)
      return { c, emit: result.emit }
    })
    found.emit?.()
    const peer = found.c.peer
    if (peer.startsWith(GROUP_PEER)) {
      const sendGroup = this.sendGroupAction
      if (sendGroup === null) throw new ParleyError('INVALID_STATE', 'the client is not ready')
      await sendGroup(peer.slice(GROUP_PEER.length), action)
      return
    }
    await send(fromHex(peer), found.c.number ?? '', action)
  }

  /**
   * The writes that add `entry.message` to its peer's conversation (made on first use): the message, its index
   * entry, and the conversation's newest message, time and unread count. For the caller's batch, in the serial
   * queue. A message id already in the conversation is not added twice.
   */
  async add(entry: ConversationEntry, pending: StoreWrite[] = []): Promise<StoreWrite[]> {
    const { store, random } = this.#engine
    const m = entry.message
    // The batch's last write of a key wins over the store, a deletion included: two messages of one history chunk
    // share a conversation made in the batch, and a message moved here was deleted from its old index entry.
    const current = async (key: string): Promise<Uint8Array | undefined> => {
      for (let i = pending.length - 1; i >= 0; i--) if (pending[i]!.key === key) return pending[i]!.value
      return store.get(key)
    }
    if ((await current(K.messageIndex(m.id).key)) !== undefined) return []
    const ofKey = K.convOf(entry.peer).key
    const known = await current(ofKey)
    const id = known === undefined ? toHex(random(16)) : K.convOf.codec.decode(known)
    const convKey = K.conversation(id).key
    const raw = await current(convKey)
    const before: ConversationRecord =
      raw === undefined
        ? { id, peer: entry.peer, number: entry.number, unread: 0, updatedAt: 0 }
        : K.conversation.codec.decode(raw)
    const at = orderOf(m)
    const key = K.conversationMessage(id, at, m.seq ?? 0, m.id).key
    const newest = before.last === undefined || key >= before.last.key
    const next: ConversationRecord = {
      ...before,
      number: entry.number ?? before.number,
      unread: before.unread + (m.outgoing ? 0 : 1),
      updatedAt: Math.max(before.updatedAt, at),
      ...(newest ? { last: { key, id: m.id } } : {}),
    }
    return [
      ...(known === undefined ? [put(K.convOf(entry.peer), id)] : []),
      put(K.conversation(id), next),
      { key, value: K.conversationMessage.codec.encode(m) },
      put(K.messageIndex(m.id), key),
    ]
  }

  /** The record of a conversation by its id or its peer's number, if there is one. */
  async record(conversation: string): Promise<ConversationRecord | undefined> {
    return (await this.#resolve(conversation)) ?? undefined
  }

  /** The writes that set a sent message's state (`sent`, `failed`), if it is in a conversation. */
  async setState(idHex: string, state: MessageState): Promise<StoreWrite[]> {
    const { store } = this.#engine
    const key = await get(store, K.messageIndex(idHex))
    if (key === undefined) return []
    const raw = await store.get(key)
    if (raw === undefined) return []
    const m = K.conversationMessage.codec.decode(raw)
    if (m.state === state) return []
    return [{ key, value: K.conversationMessage.codec.encode({ ...m, state }) }]
  }

  /** `ParleyClient.conversations`: every conversation, the most recently active first. */
  async list(): Promise<Conversation[]> {
    const { store } = this.#engine
    this.#engine.requireAccount()
    const out: Conversation[] = []
    for (const e of await store.list(K.conversation.prefix)) {
      const c = K.conversation.codec.decode(e.value)
      const last = c.last === undefined ? undefined : await store.get(c.last.key)
      out.push(
        toConversation(
          c,
          last === undefined ? null : toMessage(c.id, K.conversationMessage.codec.decode(last)),
        ),
      )
    }
    return out.sort((a, b) => b.updatedAt.getTime() - a.updatedAt.getTime() || (a.id < b.id ? -1 : 1))
  }

  /**
   * `ParleyClient.conversationHistory`: one page of a conversation, oldest first. Without cursors, the newest
   * `limit` messages; `before` pages back from a cursor, `after` forward.
   */
  async page(conversation: string, options: HistoryPageOptions): Promise<ConversationPage> {
    const { store } = this.#engine
    this.#engine.requireAccount()
    const limit = options.limit ?? DEFAULT_PAGE
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE)
      throw new RangeError(`limit must be an integer from 1 to ${MAX_PAGE}`)
    if (options.before !== undefined && options.after !== undefined)
      throw new TypeError('give before or after, not both')
    const c = await this.#resolve(conversation)
    if (c === null) return { messages: [], before: null, after: null }
    const prefix = `${K.conversationMessage.prefix}${c.id}/`
    const cursor = (v: string | undefined) => {
      if (v === undefined) return undefined
      if (typeof v !== 'string' || !v.startsWith(prefix))
        throw new TypeError('not a cursor of this conversation')
      return v
    }
    const after = cursor(options.after)
    const before = cursor(options.before)
    const read = (o: PageOptions): Promise<StoreEntry[]> => readPage(store, prefix, o)
    // One more than asked tells whether there is a further page that way.
    let entries: StoreEntry[]
    let more: boolean
    if (after !== undefined) {
      entries = await read({ after, limit: limit + 1 })
      more = entries.length > limit
      entries = entries.slice(0, limit)
    } else {
      entries = (await read({ before, limit: limit + 1, reverse: true })).reverse()
      more = entries.length > limit
      entries = entries.slice(entries.length - Math.min(limit, entries.length))
    }
    const first = entries[0]?.key
    const last = entries[entries.length - 1]?.key
    const olderExists =
      first !== undefined &&
      (after === undefined ? more : (await read({ before: first, limit: 1, reverse: true })).length > 0)
    const newerExists =
      last !== undefined && (after !== undefined ? more : (await read({ after: last, limit: 1 })).length > 0)
    return {
      messages: entries.map((e) => toMessage(c.id, K.conversationMessage.codec.decode(e.value))),
      before: olderExists ? (first ?? null) : null,
      after: newerExists ? (last ?? null) : null,
    }
  }

  /**
   * `ParleyClient.markRead`: the conversation's received messages up to `upTo` (a message id; default: all) are
   * read; the unread count is what is left after it.
   */
  async markRead(conversation: string, upTo: string | undefined): Promise<number> {
    const engine = this.#engine
    engine.requireAccount()
    const done = await engine.serial.run(async () => {
      const c = await this.#resolve(conversation)
      if (c === null) throw new ParleyError('NOT_FOUND', 'no such conversation')
      let until: string | undefined
      if (upTo !== undefined) {
        until = await get(engine.store, K.messageIndex(upTo))
        if (until === undefined || !until.startsWith(`${K.conversationMessage.prefix}${c.id}/`))
          throw new ParleyError('NOT_FOUND', 'no such message in this conversation')
      }
      const writes: StoreWrite[] = []
      const read: string[] = []
      /** In a group: the messages read, by sender (address hex), each sender's receipt its own. */
      const bySender = new Map<string, { number: string; ids: string[] }>()
      let unread = 0
      for (const e of await engine.store.list(`${K.conversationMessage.prefix}${c.id}/`)) {
        const m = K.conversationMessage.codec.decode(e.value)
        if (m.outgoing || m.read === true) continue
        if (until === undefined || e.key <= until) {
          writes.push({ key: e.key, value: K.conversationMessage.codec.encode({ ...m, read: true }) })
          read.push(m.id)
          if (m.fromAddress !== undefined) {
            const s = bySender.get(m.fromAddress) ?? { number: m.from ?? '', ids: [] }
            s.ids.push(m.id)
            bySender.set(m.fromAddress, s)
          }
        } else unread++
      }
      writes.push(put(K.conversation(c.id), { ...c, unread }))
      await engine.store.write(writes)
      return { unread, read, c, bySender }
    })
    // Read receipts to the peer (a Parley contact), or in a group to each sender, unless they are off.
    const send = this.sendControl
    if (this.#receipts.read && send !== null && done.read.length > 0) {
      const to = isAccountPeer(done.c.peer)
        ? [{ address: done.c.peer, number: done.c.number ?? '', ids: done.read }]
        : [...done.bySender].map(([address, s]) => ({ address, number: s.number, ids: s.ids }))
      for (const r of to) {
        for (let i = 0; i < r.ids.length; i += RECEIPT_MAX_IDS) {
          const messageIds = r.ids.slice(i, i + RECEIPT_MAX_IDS)
          await send(fromHex(r.address), r.number, { receipt: { kind: 'read', messageIds } })
        }
      }
    }
    return done.unread
  }

  /** The attachment of a message on this device, if it has one. */
  async attachmentOf(idHex: string): Promise<AttachmentRecord | undefined> {
    const { store } = this.#engine
    if (!ID.test(idHex)) throw new TypeError('a message id is 32 hex digits')
    const key = await get(store, K.messageIndex(idHex))
    const raw = key === undefined ? undefined : await store.get(key)
    if (raw === undefined) return undefined
    const m = K.conversationMessage.codec.decode(raw)
    return m.deleted === true ? undefined : m.attachment
  }

  /** `ParleyClient.deleteMessage`: removes one message from this device (not from the peer's). */
  async deleteMessage(idHex: string): Promise<boolean> {
    const engine = this.#engine
    engine.requireAccount()
    if (!ID.test(idHex)) throw new TypeError('a message id is 32 hex digits')
    return engine.serial.run(async () => {
      const writes = await this.removal(idHex)
      if (writes.length === 0) return false
      await engine.store.write(writes)
      return true
    })
  }

  /**
   * The writes that take a message out of its conversation (none when it is in none): the message, its index
   * entry, and the conversation's unread count and newest message — or, with `dropEmpty`, the whole
   * conversation when that was its only message. For the caller's batch, in the serial queue.
   */
  async removal(idHex: string, options: { dropEmpty?: boolean } = {}): Promise<StoreWrite[]> {
    const { store } = this.#engine
    const key = await get(store, K.messageIndex(idHex))
    if (key === undefined) return []
    const raw = await store.get(key)
    const convId = key.slice(K.conversationMessage.prefix.length).split('/')[0]!
    const c = await get(store, K.conversation(convId))
    const writes: StoreWrite[] = [del(key), del(K.messageIndex(idHex))]
    if (c === undefined) return writes
    const prefix = `${K.conversationMessage.prefix}${convId}/`
    const m = raw === undefined ? undefined : K.conversationMessage.codec.decode(raw)
    const unread = c.unread - (m !== undefined && !m.outgoing && m.read !== true ? 1 : 0)
    // The entry before this one is read only when something needs it: the emptiness check, or a new newest.
    const [previous] =
      options.dropEmpty === true || c.last?.key === key ? await nextTo(store, prefix, { before: key }) : []
    if (options.dropEmpty === true && previous === undefined) {
      const [next] = await nextTo(store, prefix, { after: key })
      if (next === undefined) return [...writes, del(K.conversation(convId)), del(K.convOf(c.peer))]
    }
    let last = c.last
    if (last?.key === key) {
      last =
        previous === undefined
          ? undefined
          : { key: previous.key, id: K.conversationMessage.codec.decode(previous.value).id }
    }
    const { last: _dropped, ...rest } = c
    writes.push(
      put(K.conversation(convId), { ...rest, unread: Math.max(0, unread), ...(last ? { last } : {}) }),
    )
    return writes
  }

  /** `ParleyClient.deleteConversation`: removes a conversation and all its messages from this device. */
  async deleteConversation(conversation: string): Promise<number> {
    const engine = this.#engine
    engine.requireAccount()
    return engine.serial.run(async () => {
      const c = await this.#resolve(conversation)
      if (c === null) return 0
      const entries = await engine.store.list(`${K.conversationMessage.prefix}${c.id}/`)
      const writes: StoreWrite[] = [del(K.conversation(c.id)), del(K.convOf(c.peer))]
      for (const e of entries) {
        writes.push(del(e.key), del(K.messageIndex(K.conversationMessage.codec.decode(e.value).id)))
      }
      await engine.store.write(writes)
      return entries.length
    })
  }

  /** The conversation named by its id, or by the peer's number (any common format). */
  async #resolve(conversation: string): Promise<ConversationRecord | null> {
    const { store } = this.#engine
    if (typeof conversation !== 'string') throw new TypeError('conversation must be an id or a number')
    if (ID.test(conversation)) return (await get(store, K.conversation(conversation))) ?? null
    const e164 = await this.#discovery.normalize(conversation)
    const contact = await contactRecord(store, e164)
    for (const peer of [...(contact?.registered ? [toHex(contact.address)] : []), `sms:${e164}`]) {
      const id = await get(store, K.convOf(peer))
      if (id !== undefined) return (await get(store, K.conversation(id))) ?? null
    }
    return null
  }
}

/** One page under `prefix`: the store's own `page` when it has one, else cut from `list`. */
function readPage(store: Store, prefix: string, o: PageOptions): Promise<StoreEntry[]> {
  return store.page !== undefined
    ? store.page(prefix, o)
    : store.list(prefix).then((all) => pageFromList(all, o))
}

/** The entry just before (or just after) a key under `prefix`, if any. */
function nextTo(
  store: Store,
  prefix: string,
  at: { before: string } | { after: string },
): Promise<StoreEntry[]> {
  return readPage(
    store,
    prefix,
    'before' in at ? { before: at.before, limit: 1, reverse: true } : { after: at.after, limit: 1 },
  )
}

/** What the app sees of an attachment (its key and blob id stay in the store). */
export function attachmentInfo(a: AttachmentRecord): AttachmentInfo {
  return {
    size: a.size,
    mimeType: a.mimeType ?? null,
    fileName: a.fileName ?? null,
    caption: a.caption ?? null,
    preview: a.preview ?? null,
  }
}

/**
 * A member's receipt for one of this account's group messages: the member counted once, and the state moved on
 * once every member account it went to has it (`delivered`, then `read`). Undefined when the message is no group
 * message of this account's, or the member is not one it went to.
 */
function afterGroupReceipt(
  m: ConversationMessageRecord,
  actor: string,
  kind: 'delivered' | 'read',
): ConversationMessageRecord | undefined {
  const r = m.groupReceipts
  if (r === undefined || !r.to.includes(actor)) return undefined
  const delivered = r.delivered.includes(actor) ? r.delivered : [...r.delivered, actor]
  const read = kind === 'read' && !r.read.includes(actor) ? [...r.read, actor] : r.read
  const all = (list: string[]) => r.to.every((a) => list.includes(a))
  const state = all(read) ? 'read' : all(delivered) ? 'delivered' : m.state
  const moves = (STATE_RANK[state] ?? 0) > (STATE_RANK[m.state] ?? 99)
  return { ...m, state: moves ? state : m.state, groupReceipts: { ...r, delivered, read } }
}

/** Where a message sorts in its conversation: when it was received, or for one sent here, when it was sent. */
function orderOf(m: ConversationMessageRecord): number {
  return m.outgoing ? m.sentAt : (m.receivedAt ?? m.sentAt)
}

function toMessage(conversation: string, m: ConversationMessageRecord): ConversationMessage {
  return {
    id: m.id,
    conversation,
    outgoing: m.outgoing,
    from: m.from,
    text: m.text,
    sentAt: new Date(m.sentAt),
    receivedAt: m.receivedAt === null ? null : new Date(m.receivedAt),
    state: m.state,
    read: m.outgoing || m.read === true,
    ...(m.replyTo === undefined ? {} : { replyTo: m.replyTo }),
    ...(m.reactions === undefined ? {} : { reactions: { ...m.reactions } }),
    ...(m.edited ? { edited: true } : {}),
    ...(m.deleted ? { deleted: true } : {}),
    ...(m.attachment === undefined || m.deleted ? {} : { attachment: attachmentInfo(m.attachment) }),
    ...(m.groupReceipts === undefined
      ? {}
      : { receipts: { delivered: [...m.groupReceipts.delivered], read: [...m.groupReceipts.read] } }),
  }
}

function toConversation(c: ConversationRecord, last: ConversationMessage | null): Conversation {
  return {
    id: c.id,
    number: c.number,
    address: isAccountPeer(c.peer) ? c.peer : null,
    ...(c.peer.startsWith(GROUP_PEER) ? { group: c.peer.slice(GROUP_PEER.length) } : {}),
    unread: c.unread,
    updatedAt: new Date(c.updatedAt),
    lastMessage: last,
  }
}
