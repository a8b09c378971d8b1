// The durable outbox (docs/architecture.md §8): `send()` stores the message and returns; flushes deliver the
// queue in order, a window of sends at a time, across reconnects and restarts. A full recipient mailbox defers
// that recipient only; account-wide refusals halt the queue until a timer or a reconnect. Not exported.
import { ParleyError } from '@parley/protocol'
import { toHex } from '../internal/codec.js'
import * as e2e from '../internal/e2e.js'
import type { StoreWrite } from '../Store.js'
import type { SendOptions, SendResult, SmsFallback } from '../types.js'
import type { Engine } from './context.js'
import type { ConversationEntry, Conversations } from './conversations.js'
import { type Delivery, isControl, isTyping } from './delivery.js'
import type { Discovery } from './discovery.js'
import {
  type AttachmentRecord,
  contactRecord,
  decodeEntry,
  del,
  get,
  K,
  type OutboxRecord,
  type OutgoingBody,
  put,
  type UnresolvedSendRecord,
} from './keyspace.js'

const MAX_TEXT_BYTES = 64 * 1024
/** Most outbox messages awaiting the relay's MessageAccepted at once. */
const OUTBOX_WINDOW = 16
/** How long a full mailbox (MAILBOX_FULL) defers its recipient when the relay gives no `retryAfterMs`. */
const MAILBOX_FULL_RETRY_MS = 60_000
/** Bounds on that deferral: no hot loop on a relay that says 0, and no recipient put off forever by one that lies. */
const MIN_DEFERRAL_MS = 1000
const MAX_DEFERRAL_MS = 10 * 60_000

/** The SMS route: the app's hook and, as a policy, how long a queued message may wait for the relay. */
export interface SmsRoute {
  send: SmsFallback
  afterMs?: number
}

/** A typing indicator not sent within this long of being queued is dropped unsent. */
export const TYPING_TTL_MS = 10_000

/** The codes of a lookup that found no connection to the relay (as opposed to an answer). */
const NO_CONNECTION = new Set(['TIMEOUT', 'UNAVAILABLE', 'CLOSED'])

export class Outbox {
  readonly #engine: Engine
  readonly #delivery: Delivery
  readonly #discovery: Discovery
  readonly #sms: SmsRoute | undefined
  #smsTimer: unknown = null
  readonly #discoveryTtlMs: number
  readonly #conversations: Conversations
  #outboxSeq = 0
  #retryTimer: unknown = null
  /** A kick came while the outbox was being flushed: flush once more when it ends. */
  #kickAgain = false
  /**
   * Recipients (address hex) whose mailbox was full, and the time (on the injected clock) before which none of
   * their queued messages is sent; everyone else's are. In memory: a restart tries them at once.
   */
  readonly #deferred = new Map<string, number>()
  #deferralTimer: unknown = null
  #deferralDue = 0

  constructor(
    engine: Engine,
    delivery: Delivery,
    discovery: Discovery,
    sms: SmsRoute | undefined,
    discoveryTtlMs: number,
    conversations: Conversations,
  ) {
    this.#conversations = conversations
    this.#engine = engine
    this.#delivery = delivery
    this.#discovery = discovery
    this.#sms = sms
    this.#discoveryTtlMs = discoveryTtlMs
  }

  /** Continues the outbox's numbering after the last entry queued before this start. */
  async load(): Promise<void> {
    const outbox = await this.#engine.store.list(K.outbox.prefix)
    const unresolved = await this.#engine.store.list(K.unresolved.prefix)
    // One numbering for both: a send queued offline keeps its place among the sends after it.
    const seqOf = (key: string | undefined, prefix: string) =>
      key === undefined ? 0 : Number(key.slice(prefix.length))
    this.#outboxSeq = Math.max(
      seqOf(outbox.at(-1)?.key, K.outbox.prefix),
      seqOf(unresolved.at(-1)?.key, K.unresolved.prefix),
    )
    if (outbox.length > 0) this.#scheduleSms()
  }

  /**
   * With an SMS policy: a timer for the oldest queued message's deadline (`sentAt + after`), which hands every
   * message past its deadline to the SMS hook ({@link #smsDue}).
   */
  #scheduleSms(): void {
    const engine = this.#engine
    const afterMs = this.#sms?.afterMs
    if (afterMs === undefined || this.#smsTimer !== null || engine.closed) return
    void engine.store
      .list(K.outbox.prefix)
      .then((entries) => {
        const due = entries
          .map((e) => decodeEntry(K.outbox, e))
          .filter(smsEligible)
          .reduce((min, e) => Math.min(min, e.sentAt + afterMs), Number.POSITIVE_INFINITY)
        if (!Number.isFinite(due) || this.#smsTimer !== null || engine.closed) return
        this.#smsTimer = engine.clock.setTimeout(
          () => {
            this.#smsTimer = null
            this.#smsDue().catch((err) => engine.emitRecoverable(err))
          },
          Math.max(0, due - engine.clock.now()),
        )
      })
      .catch((err) => engine.emitRecoverable(err))
  }

  /**
   * Every queued message past its deadline that is not being sent right now leaves the outbox and its state
   * becomes `sms`, in one write (in the serial queue, so no send can start on it after), and only then goes to
   * the SMS hook: it is never sent both ways. A hook that throws fails the message (`sendFailed`).
   */
  async #smsDue(): Promise<void> {
    const engine = this.#engine
    const sms = this.#sms
    if (sms?.afterMs === undefined || engine.closed) return
    const afterMs = sms.afterMs
    const taken = await engine.serial.run(async () => {
      const now = engine.clock.now()
      const due = (await engine.store.list(K.outbox.prefix))
        .map((e) => ({ key: e.key, entry: decodeEntry(K.outbox, e) }))
        .filter(
          ({ entry }) => smsEligible(entry) && now >= entry.sentAt + afterMs && !engine.sending.has(entry.id),
        )
      if (due.length === 0) return due
      const writes: StoreWrite[] = []
      for (const { key, entry } of due)
        writes.push(del(key), ...(await this.#conversations.setState(entry.id, 'sms')))
      await engine.store.write(writes)
      return due
    })
    for (const { entry } of taken) {
      try {
        await sms.send(entry.to, entry.text)
        engine.events.emit('sentBySms', { id: entry.id, to: entry.to })
      } catch (err) {
        const error = new ParleyError('UNAVAILABLE', 'the SMS fallback failed', { cause: err })
        await engine.serial.run(async () =>
          engine.store.write(await this.#conversations.setState(entry.id, 'failed')),
        )
        engine.events.emit('sendFailed', { id: entry.id, to: entry.to, error })
      }
    }
    this.#scheduleSms()
  }

  /** `ParleyClient.send`, after the open check. */
  async send(
    to: string,
    text: string,
    options: SendOptions & {
      /** For an attachment: encrypts and uploads the file for `downloads` devices, once the recipient is known. */
      attachment?: (address: Uint8Array) => Promise<AttachmentRecord>
    },
  ): Promise<SendResult> {
    const engine = this.#engine
    const { store, clock } = engine
    if (typeof text !== 'string') throw new TypeError('text must be a string')
    const replyTo = options.replyTo
    if (replyTo !== undefined && (typeof replyTo !== 'string' || !/^[0-9a-f]{32}$/.test(replyTo)))
      throw new TypeError('replyTo must be a message id (32 hex digits)')
    // User content, not a programming mistake: the limit is in UTF-8 bytes, which `text.length` does not tell.
    if (new TextEncoder().encode(text).length > MAX_TEXT_BYTES) {
      throw new ParleyError('TOO_LARGE', 'the text is over 64 KiB of UTF-8')
    }
    const e164 = await this.#discovery.normalize(to)
    engine.requireAccount()
    // Queued, it would wait for a connection that the ban keeps closed.
    if (engine.banned !== null) throw engine.banned
    const id = toHex(engine.random(16))
    // Earlier sends to this number still wait for its lookup: this one goes after them, never before.
    let waiting = (await this.#unresolved()).some((u) => u.entry.to === e164)
    if (waiting && engine.link.state === 'online') waiting = !(await this.#resolveUnresolved(options.signal))
    let contact = await contactRecord(store, e164)
    if (waiting || contact === null || clock.now() - contact.checkedAt > this.#discoveryTtlMs) {
      // Without a connection nothing waits for one. With an SMS policy, a number never looked up goes by SMS
      // now; without one, a number not known to be on Parley is queued until the client can look it up. A number
      // found on Parley before is sent to as it was registered then (by SMS after the deadline if IP stays
      // down). An attachment needs the recipient's devices, so it still waits for the lookup.
      const policy = this.#sms?.afterMs !== undefined
      let offline = engine.link.state !== 'online' && options.attachment === undefined
      if (!offline) {
        try {
          await this.#discovery.lookup([e164], options.signal)
        } catch (err) {
          if (!NO_CONNECTION.has(ParleyError.fromUnknown(err).code) || options.attachment !== undefined)
            throw err
          offline = true
        }
      }
      contact = await contactRecord(store, e164)
      if (!policy && offline && (waiting || contact === null || !contact.registered)) {
        const entry: UnresolvedSendRecord = {
          id,
          to: e164,
          text,
          sentAt: clock.now(),
          ...(replyTo === undefined ? {} : { replyTo }),
        }
        // Shown at once in the number's conversation (one without an address: whether the number is on Parley is
        // not known yet), queued; it moves to the contact's conversation once the lookup finds the number.
        await engine.serial.run(async () => {
          const seq = ++this.#outboxSeq
          const account = engine.requireAccount()
          const shown = outgoing(`sms:${e164}`, e164, id, text, entry.sentAt, 'queued', account.e164, seq)
          if (replyTo !== undefined) shown.message.replyTo = replyTo
          await store.write([put(K.unresolved(seq), entry), ...(await this.#conversations.add(shown))])
        })
        return { id, route: 'pending' }
      }
    }
    if ((contact === null || !contact.registered) && options.attachment !== undefined) {
      throw new ParleyError('NOT_FOUND', 'the recipient is not on Parley: attachments go end to end only')
    }
    if (contact === null || !contact.registered) {
      if (this.#sms === undefined) {
        throw new ParleyError('NOT_FOUND', 'the recipient is not on Parley and no smsFallback is configured')
      }
      await this.#sms.send(e164, text)
      await engine.serial.run(async () => {
        await store.write(
          await this.#conversations.add(
            outgoing(
              `sms:${e164}`,
              e164,
              id,
              text,
              clock.now(),
              'sms',
              engine.requireAccount().e164,
              ++this.#outboxSeq,
            ),
          ),
        )
      })
      return { id, route: 'sms' }
    }
    const attachment =
      options.attachment === undefined ? undefined : await options.attachment(contact.address)
    const entry: OutboxRecord = {
      id,
      to: e164,
      address: contact.address,
      text,
      sentAt: clock.now(),
      ...(replyTo === undefined ? {} : { replyTo }),
      ...(attachment === undefined ? {} : { body: { attachment } }),
    }
    await engine.serial.run(async () => {
      const seq = ++this.#outboxSeq
      const conversation = outgoing(
        toHex(contact.address),
        e164,
        id,
        text,
        entry.sentAt,
        'queued',
        engine.requireAccount().e164,
        seq,
      )
      if (replyTo !== undefined) conversation.message.replyTo = replyTo
      if (attachment !== undefined) conversation.message.attachment = attachment
      await store.write([put(K.outbox(seq), entry), ...(await this.#conversations.add(conversation))])
    })
    this.kick()
    this.#scheduleSms()
    return { id, route: 'ip' }
  }

  /**
   * Queues parts of this account's history for its other devices (after a link); each is sent like a message,
   * durably and retried, to every other device of the account.
   */
  async queueHistory(chunks: Uint8Array[]): Promise<void> {
    const engine = this.#engine
    const account = engine.requireAccount()
    await engine.serial.run(async () => {
      const writes = chunks.map((history) => {
        const entry: OutboxRecord = {
          id: toHex(engine.random(16)),
          to: account.e164,
          address: account.address,
          text: '',
          sentAt: engine.clock.now(),
          history,
        }
        return put(K.outbox(++this.#outboxSeq), entry)
      })
      await engine.store.write(writes)
    })
    this.kick()
  }

  /**
   * Queues this account's number-change notice (`AccountRecord.addressChange`) for each contact at `to` (its
   * number, or '' when none is known) and, when the account has other devices, for them; sent like messages,
   * durably and retried, never reported to the app as messages.
   */
  async queueNotices(to: { address: Uint8Array; number: string }[]): Promise<void> {
    const engine = this.#engine
    const account = engine.requireAccount()
    await engine.serial.run(async () => {
      const entry = (address: Uint8Array, number: string): OutboxRecord => ({
        id: toHex(engine.random(16)),
        to: number,
        address,
        text: '',
        sentAt: engine.clock.now(),
        notice: true,
      })
      const entries = to.map((c) => entry(c.address, c.number))
      if ((account.devices?.devices.length ?? 0) > 1) entries.unshift(entry(account.address, account.e164))
      await engine.store.write(entries.map((e) => put(K.outbox(++this.#outboxSeq), e)))
    })
    this.kick()
  }

  /**
   * Queues a control message (a reaction, edit, deletion or receipt) for the account at `address` (`number`: its
   * number, or '' when none is known); sent like a message, durably, never reported to the app as one.
   */
  async queueControl(address: Uint8Array, number: string, body: OutgoingBody): Promise<string> {
    const engine = this.#engine
    engine.requireAccount()
    const id = toHex(engine.random(16))
    await engine.serial.run(async () => {
      const entry: OutboxRecord = { id, to: number, address, text: '', sentAt: engine.clock.now(), body }
      await engine.store.write([put(K.outbox(++this.#outboxSeq), entry)])
    })
    this.kick()
    return id
  }

  /**
   * Queues entries built by `build` (which numbers them with `nextSeq`, in order) in one write with whatever else
   * it returns, in the serial queue: the group messages and changes of engine/groups.ts.
   */
  async enqueue(build: (nextSeq: () => number) => Promise<StoreWrite[]>): Promise<void> {
    const engine = this.#engine
    engine.requireAccount()
    await engine.serial.run(async () => {
      const writes = await build(() => ++this.#outboxSeq)
      await engine.store.write(writes)
    })
    this.kick()
  }

  /**
   * Queues a typing indicator for the contact at `address`, sent ephemeral (the relay stores it nowhere). Only
   * online, and only in a session the contact has answered: resolves false, queuing nothing, otherwise. One
   * that cannot go at once is dropped, never retried: after {@link TYPING_TTL_MS} it means nothing.
   */
  async queueTyping(address: Uint8Array, number: string, started: boolean): Promise<boolean> {
    const engine = this.#engine
    engine.requireAccount()
    if (engine.link.state !== 'online' || engine.banned !== null) return false
    const session = await get(engine.store, K.session(toHex(address)))
    if (session === undefined || session.stale === true || e2e.awaitingReply(session.state)) return false
    await this.queueControl(address, number, { typing: started })
    return true
  }

  /** `ParleyClient.pendingCount`, after the open check. */
  async pendingCount(): Promise<number> {
    // Notices, reactions, edits, deletions and receipts are not the app's messages.
    const entries = await this.#engine.store.list(K.outbox.prefix)
    const unresolved = await this.#engine.store.list(K.unresolved.prefix)
    return entries.filter((e) => !isControl(decodeEntry(K.outbox, e))).length + unresolved.length
  }

  /** The sends waiting for their number's lookup, in sending order. */
  async #unresolved(): Promise<{ key: string; entry: UnresolvedSendRecord }[]> {
    const listed = await this.#engine.store.list(K.unresolved.prefix)
    return listed.map((e) => ({ key: e.key, entry: decodeEntry(K.unresolved, e) }))
  }

  #resolving: Promise<boolean> | null = null

  /**
   * Looks up the numbers of the sends queued while offline (one batch), then moves each to the outbox (its
   * number is on Parley: it appears in the conversation, queued, at the time it was sent) or fails it with
   * `sendFailed` NOT_FOUND (it is not, and there is no SMS policy to hand it to). Runs once at a time.
   * @returns true when none is left waiting; false when the lookup failed for want of a connection
   */
  #resolveUnresolved(signal?: AbortSignal): Promise<boolean> {
    this.#resolving ??= this.#resolveOnce(signal).finally(() => {
      this.#resolving = null
    })
    return this.#resolving
  }

  async #resolveOnce(signal?: AbortSignal): Promise<boolean> {
    const engine = this.#engine
    const { store } = engine
    const waiting = await this.#unresolved()
    if (waiting.length === 0) return true
    try {
      await this.#discovery.lookup([...new Set(waiting.map((w) => w.entry.to))], signal)
    } catch (err) {
      if (NO_CONNECTION.has(ParleyError.fromUnknown(err).code)) return false
      throw err
    }
    const failed: UnresolvedSendRecord[] = []
    await engine.serial.run(async () => {
      const account = engine.requireAccount()
      // One write each: a conversation's next entry builds on what the previous one wrote.
      for (const { key, entry: u } of waiting) {
        const contact = await contactRecord(store, u.to)
        if (contact === null || !contact.registered) {
          failed.push(u)
          await store.write([del(key), ...(await this.#conversations.setState(u.id, 'failed'))])
          continue
        }
        const entry: OutboxRecord = {
          id: u.id,
          to: u.to,
          address: contact.address,
          text: u.text,
          sentAt: u.sentAt,
          ...(u.replyTo === undefined ? {} : { replyTo: u.replyTo }),
        }
        const seq = ++this.#outboxSeq
        const conversation = outgoing(
          toHex(contact.address),
          u.to,
          u.id,
          u.text,
          u.sentAt,
          'queued',
          account.e164,
          seq,
        )
        if (u.replyTo !== undefined) conversation.message.replyTo = u.replyTo
        // Out of the number's conversation (gone with it when it held nothing else) into the contact's.
        const moved = await this.#conversations.removal(u.id, { dropEmpty: true })
        await store.write([
          del(key),
          put(K.outbox(seq), entry),
          ...moved,
          ...(await this.#conversations.add(conversation, moved)),
        ])
      }
    })
    for (const u of failed) {
      engine.events.emit('sendFailed', {
        id: u.id,
        to: u.to,
        error: new ParleyError(
          'NOT_FOUND',
          'the recipient is not on Parley and no smsFallback is configured',
        ),
      })
    }
    return true
  }

  /** Forgets every deferral (the account is gone). */
  clearDeferrals(): void {
    this.#deferred.clear()
  }

  /** Cancels the retry and deferral timers (the client is closing). */
  stopTimers(): void {
    const { clock } = this.#engine
    if (this.#retryTimer !== null) clock.clearTimeout(this.#retryTimer)
    if (this.#deferralTimer !== null) clock.clearTimeout(this.#deferralTimer)
    if (this.#smsTimer !== null) clock.clearTimeout(this.#smsTimer)
  }

  /**
   * The account is banned (a FORBIDDEN login): once the running flush has ended (its sends in flight fail with
   * the same error), every message still queued leaves the outbox with a `sendFailed` event carrying `error`.
   */
  async failQueued(error: ParleyError): Promise<void> {
    const engine = this.#engine
    await engine.flushing?.catch(() => {})
    await engine.serial.run(async () => {
      if (engine.banned !== error) return // logged in again meanwhile
      const queued: { key: string; entry: OutboxRecord | UnresolvedSendRecord }[] = [
        ...(await engine.store.list(K.outbox.prefix)).map((e) => ({
          key: e.key,
          entry: decodeEntry(K.outbox, e),
        })),
        ...(await this.#unresolved()),
      ]
      if (queued.length === 0) return
      const states: StoreWrite[] = []
      for (const { entry } of queued) states.push(...(await this.#conversations.setState(entry.id, 'failed')))
      await engine.store.write([...queued.map((q) => del(q.key)), ...states])
      for (const { entry } of queued) {
        if (!('address' in entry && isControl(entry)))
          engine.events.emit('sendFailed', { id: entry.id, to: entry.to, error })
      }
    })
  }

  /** Starts a flush, or asks the running one to look at the outbox once more. */
  kick(): void {
    const engine = this.#engine
    if (engine.account === null || engine.closed || engine.banned !== null) return
    if (engine.flushing !== null) {
      // The running flush may already have taken its last look at the outbox (or at a deferral that just ended).
      this.#kickAgain = true
      return
    }
    this.#kickAgain = false
    engine.flushing = this.#flush()
      .catch((err) => engine.emitRecoverable(err))
      .finally(() => {
        engine.flushing = null
        if (this.#kickAgain) this.kick()
      })
  }

  async #flush(): Promise<void> {
    // Up to OUTBOX_WINDOW sends in flight. Encryption still runs in queue order (engine.serial) and the relay
    // handles a connection's frames in order, so mailboxes still receive queue order; what changes is that
    // encrypting the next message overlaps the relay's durable commit of the previous ones instead of alternating
    // with it (one at a time capped the SDK at ~300 msg/s on loopback, bench/README.md). Each entry starts once
    // per flush, except one refused for a full mailbox, which starts again when its recipient's deferral ends.
    //
    // A recipient whose mailbox is full is passed over, not the whole outbox: its entries stay queued (in order:
    // none starts while an earlier one of the same recipient waits) and the rest go on. When its deferral ends,
    // its oldest entry goes alone first, and the others follow only once the relay has accepted it.
    const engine = this.#engine
    const { store, clock } = engine
    // Sends queued offline to numbers not looked up go first: they were sent before anything queued since.
    if (!(await this.#resolveUnresolved())) return
    const inFlight = new Map<string, Promise<void>>()
    const started = new Set<string>()
    /** Groups with a message in flight (see below). */
    const groupsInFlight = new Set<string>()
    /** The group parts of each entry looked at, by key (decoded once per flush: they never change). */
    const groupParts = new Map<string, GroupParts>()
    /** The recipient (address hex) of each entry looked at, by key; an entry's recipient never changes. */
    const recipients = new Map<string, string>()
    /** Recipients whose deferral ended and whose oldest entry is in flight alone. */
    const probing = new Set<string>()
    /** Recipients passed over since the outbox was last read: none of their later entries may go first. */
    let passedOver = new Set<string>()
    const recipientOf = (e: { key: string; value: Uint8Array }): string => {
      let to = recipients.get(e.key)
      if (to === undefined) {
        to = toHex(decodeEntry(K.outbox, e).address)
        recipients.set(e.key, to)
      }
      return to
    }
    const waits = (to: string): boolean => {
      if (passedOver.has(to) || probing.has(to) || (this.#deferred.get(to) ?? 0) > clock.now()) {
        passedOver.add(to)
        return true
      }
      return false
    }
    let queue: { key: string; value: Uint8Array }[] = []
    let halt = false
    while (!halt && !engine.closed && engine.account !== null && engine.link.state === 'online') {
      if (inFlight.size >= OUTBOX_WINDOW) {
        await Promise.race(inFlight.values())
        continue
      }
      const next = queue.shift()
      if (next === undefined) {
        const all = await store.list(K.outbox.prefix)
        queue = withoutBlockedGroups(all, groupsInFlight, groupParts).filter((e) => !started.has(e.key))
        passedOver = new Set()
        if (this.#deferred.size > 0 || probing.size > 0) {
          queue = queue.filter((e) => !waits(recipientOf(e)))
          this.#forgetDeferrals(new Set(all.map(recipientOf)))
        }
        if (queue.length > 0) continue
        if (inFlight.size === 0) return
        await Promise.race(inFlight.values())
        continue
      }
      const key = next.key
      const entry = decodeEntry(K.outbox, next)
      if (isTyping(entry) && clock.now() - entry.sentAt > TYPING_TTL_MS) {
        // Held up (a reconnect, a full mailbox before it): stale, so dropped unsent.
        await store.write([del(key)])
        continue
      }
      const to = toHex(entry.address)
      recipients.set(key, to)
      if (waits(to)) continue
      // One message of a group at a time: its sends to the members' mailboxes are several requests, and the next
      // message must not overtake them.
      const group = entry.group?.id
      if (group !== undefined && groupsInFlight.has(group)) continue
      if (group !== undefined) groupsInFlight.add(group)
      started.add(key)
      // A deferral that has ended but is still on record: this entry is the probe of the recipient's mailbox.
      const probe = this.#deferred.has(to)
      if (probe) probing.add(to)
      const sending = this.#delivery
        .deliver(key, entry)
        .then(() => {
          if (probe) this.#deferred.delete(to)
        })
        .catch(async (err) => {
          const outcome = await this.#sendFailed(key, entry, err)
          if (outcome === 'halt') halt = true
          else if (outcome === 'defer') started.delete(key)
        })
        .finally(() => {
          inFlight.delete(key)
          if (probe) probing.delete(to)
          if (group !== undefined) groupsInFlight.delete(group)
        })
      inFlight.set(key, sending)
    }
    await Promise.all(inFlight.values())
  }

  /**
   * Handles a send that failed: `halt` when the whole outbox must stop until a retry timer or a reconnect,
   * `defer` when only the entry's recipient waits (its mailbox is full), `dropped` when the entry is gone.
   */
  async #sendFailed(key: string, entry: OutboxRecord, err: unknown): Promise<'halt' | 'defer' | 'dropped'> {
    const engine = this.#engine
    const e = ParleyError.fromUnknown(err)
    if (isTyping(entry)) {
      // Ephemeral: whatever kept it from going (no answered session, a quota, the connection), it is not retried.
      await engine.store.write([del(key)])
      return 'dropped'
    }
    if (e.code === 'MAILBOX_FULL') {
      // Nothing is dropped, on either side: tried again when the relay says the recipient may have read some
      // mail. Kept across reconnects and new sends (the mailbox is no emptier for them), but never for longer
      // than MAX_DEFERRAL_MS at a time.
      this.#defer(toHex(entry.address), e.retryAfterMs)
      return 'defer'
    }
    if (e.code === 'RATE_LIMITED' || (e.code === 'UNAVAILABLE' && e.retryAfterMs !== undefined)) {
      // Account-wide: retried when the relay's quota allows or the unidentified connection is back; and on the
      // next reconnect or send.
      if (this.#retryTimer === null) {
        this.#retryTimer = engine.clock.setTimeout(() => {
          this.#retryTimer = null
          this.kick()
        }, e.retryAfterMs ?? 1000)
      }
      return 'halt'
    }
    if (e.code === 'UNAVAILABLE' || e.code === 'TIMEOUT' || e.code === 'CLOSED') return 'halt' // retried on reconnect
    // Permanent: tell the app and drop the entry so the queue moves on.
    // A control message is not the app's message: its loss is reported as a background error.
    if (isControl(entry)) {
      await engine.store.write([del(key)])
      engine.emitRecoverable(e)
      return 'dropped'
    }
    await engine.store.write([del(key), ...(await this.#conversations.setState(entry.id, 'failed'))])
    engine.events.emit('sendFailed', { id: entry.id, to: entry.to, error: e })
    return 'dropped'
  }

  /** Holds back a recipient's queued messages until `retryAfterMs` (bounded) from now, and schedules the retry. */
  #defer(to: string, retryAfterMs: number | undefined): void {
    const asked = Number.isFinite(retryAfterMs) ? (retryAfterMs as number) : MAILBOX_FULL_RETRY_MS
    const ms = Math.min(Math.max(asked, MIN_DEFERRAL_MS), MAX_DEFERRAL_MS)
    const until = this.#engine.clock.now() + ms
    this.#deferred.set(to, Math.max(this.#deferred.get(to) ?? 0, until))
    this.#scheduleDeferralEnd()
  }

  /** Keeps one timer, for the earliest deferral still running, that flushes the outbox when it ends. */
  #scheduleDeferralEnd(): void {
    const { clock } = this.#engine
    const now = clock.now()
    let due = Number.POSITIVE_INFINITY
    for (const until of this.#deferred.values()) if (until > now && until < due) due = until
    if (due === Number.POSITIVE_INFINITY) return
    if (this.#deferralTimer !== null) {
      if (this.#deferralDue <= due) return
      clock.clearTimeout(this.#deferralTimer)
    }
    this.#deferralDue = due
    this.#deferralTimer = clock.setTimeout(() => {
      this.#deferralTimer = null
      this.#scheduleDeferralEnd() // the next deferral, or this one again if the timer fired a little early
      this.kick()
    }, due - now)
  }

  /** Forgets the deferrals that have ended for recipients with nothing left in the outbox. */
  #forgetDeferrals(queued: Set<string>): void {
    const now = this.#engine.clock.now()
    for (const [to, until] of this.#deferred) if (until <= now && !queued.has(to)) this.#deferred.delete(to)
  }
}

/** A message sent from this device, for its conversation with `peer`. */
function outgoing(
  peer: string,
  number: string,
  id: string,
  text: string,
  sentAt: number,
  state: 'queued' | 'sms',
  from: string,
  seq: number,
): ConversationEntry {
  return { peer, number, message: { id, outgoing: true, from, text, sentAt, receivedAt: null, state, seq } }
}

/**
 * The outbox without the group messages that must wait: one goes only once no sender key of its group is queued
 * (every one has been taken by the relay), so that each member's mailbox holds the key before the message — also a
 * key queued after it, for a member device found to lack it (engine/delivery.ts) — and while no other message of
 * its group is in flight.
 */
function withoutBlockedGroups<E extends { key: string; value: Uint8Array }>(
  all: E[],
  inFlight: ReadonlySet<string>,
  known: Map<string, GroupParts>,
): E[] {
  const parts = all.map((e) => {
    let p = known.get(e.key)
    if (p === undefined) {
      const entry = decodeEntry(K.outbox, e)
      p = {
        ...(entry.group === undefined ? {} : { message: entry.group.id }),
        ...(entry.groupControl?.key === undefined ? {} : { key: entry.groupControl.groupId }),
      }
      known.set(e.key, p)
    }
    return p
  })
  const keyed = new Set(inFlight)
  for (const p of parts) if (p.key !== undefined) keyed.add(p.key)
  if (keyed.size === 0) return all
  return all.filter((_, i) => parts[i]!.message === undefined || !keyed.has(parts[i]!.message!))
}

/** What the flush needs of an entry for the group barrier: the group of its message, or of the key it carries. */
interface GroupParts {
  message?: string
  key?: string
}

/** Whether a queued entry may go by SMS: the app's message to a contact (not a notice or history, nor our own). */
function smsEligible(entry: OutboxRecord): boolean {
  return (
    entry.body === undefined &&
    entry.group === undefined &&
    entry.groupControl === undefined &&
    entry.history === undefined &&
    entry.to !== '' &&
    entry.multi?.recipientDone !== true
  )
}
