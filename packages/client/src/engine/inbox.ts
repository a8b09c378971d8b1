// The inbox (docs/architecture.md §6, §8): the relay's pushes, each delivery opened, its sender proved and then
// decrypted, in one atomic write with its dedupe marker; mail from a changed verified identity held until the
// app approves it; acks in batches, which move the resume cursor. Not exported.
import {
  type AddressChangeFields,
  addressChangeClaims,
  decodeHistoryChunk,
  GapReason,
  ParleyError,
  type ServerBodyOf,
  type ServerFrame,
  verifyAddressChange,
} from '@parley/protocol'
import { toHex } from '../internal/codec.js'
import * as e2e from '../internal/e2e.js'
import type { StoreWrite } from '../Store.js'
import type { CallOptions, IncomingMessage, NumberChangedEvent } from '../types.js'
import type { Contacts } from './contacts.js'
import type { Engine } from './context.js'
import { attachmentInfo, type Conversations, entryOfStored } from './conversations.js'
import { accountIdentity, type Devices } from './devices.js'
import type { Discovery } from './discovery.js'
import type { Groups } from './groups.js'
import {
  type AccountRecord,
  ADDRESS_CHANGE_CARRY_MS,
  contactRecord,
  decodeEntry,
  del,
  get,
  type HeldRecord,
  heldPrefix,
  K,
  put,
  type SessionRecord,
  type StoredMessage,
} from './keyspace.js'
import type { Prekeys } from './prekeys.js'
import type { RelaySession } from './session.js'

const ACK_BATCH = 500
const ACK_DELAY_MS = 10
/**
 * Most messages held for one contact whose verified identity changed; beyond it the oldest is dropped to make
 * room, counted in `stats.heldDropped`.
 */
const MAX_HELD_PER_CONTACT = 1000

/** Room per history chunk in the order key of imported messages (a chunk holds far fewer). */
const HISTORY_ORDER_STRIDE = 1_000_000

export class Inbox {
  readonly #engine: Engine
  readonly #session: RelaySession
  readonly #contacts: Contacts
  readonly #discovery: Discovery
  readonly #prekeys: Prekeys
  readonly #devices: Devices
  #acks: number[] = []
  #ackTimer: unknown = null

  readonly #conversations: Conversations
  readonly #groups: Groups

  constructor(
    engine: Engine,
    session: RelaySession,
    contacts: Contacts,
    discovery: Discovery,
    prekeys: Prekeys,
    devices: Devices,
    conversations: Conversations,
    groups: Groups,
  ) {
    this.#groups = groups
    this.#conversations = conversations
    this.#devices = devices
    this.#engine = engine
    this.#session = session
    this.#contacts = contacts
    this.#discovery = discovery
    this.#prekeys = prekeys
  }

  /** The main connection's push hook: deliveries, mailbox gaps, device replacement and connection errors. */
  onPush(frame: ServerFrame): void {
    const engine = this.#engine
    if (frame.body === 'delivery' && frame.delivery) {
      const delivery = frame.delivery
      // seq 0: an ephemeral message, which the relay stored nowhere (a typing indicator, or nothing at all).
      const ephemeral = delivery.seq === 0
      void engine.serial
        .run(() => this.receive(delivery, { ephemeral }))
        .catch((err) => engine.emitError(err))
    } else if (frame.body === 'mailboxGap' && frame.mailboxGap) {
      const g = frame.mailboxGap
      const reason =
        g.reason === GapReason.GAP_REASON_EXPIRED
          ? 'expired'
          : g.reason === GapReason.GAP_REASON_EVICTED
            ? 'evicted'
            : 'unknown'
      engine.events.emit('gap', { firstSeq: g.firstSeq, lastSeq: g.lastSeq, reason })
    } else if (frame.body === 'deviceReplaced') {
      const erased = frame.deviceReplaced?.erased === true
      const removed = frame.deviceReplaced?.removed === true
      engine.replaced = true
      void engine.serial
        .run(() => this.#session.onReplaced(erased, removed))
        .catch((err) => engine.emitError(err))
    } else if (frame.body === 'error' && frame.error) {
      const err = ParleyError.fromUnknown(e2e.wireError(frame.error))
      // The relay's UNAUTHENTICATED that follows DeviceReplaced says nothing the event did not.
      if (engine.replaced && err.code === 'UNAUTHENTICATED') return
      engine.emitError(err)
    }
  }

  /** `ParleyClient.messages`: received messages as an async iterator, from now until the client closes. */
  messages(options: CallOptions): AsyncIterableIterator<IncomingMessage> {
    const iterators = this.#engine.iterators
    const queue: IncomingMessage[] = []
    let wake: (() => void) | null = null
    let done = this.#engine.closed
    const push = (m: IncomingMessage | null) => {
      if (m === null) done = true
      else queue.push(m)
      wake?.()
    }
    const signal = options.signal
    // Aborting or returning ends the iteration at once (what was queued is dropped, as for any listener that
    // stops listening); close() ends it after what was queued. Either way nothing stays registered.
    const finish = () => {
      done = true
      queue.length = 0
      release()
    }
    const release = () => {
      iterators.delete(push)
      signal?.removeEventListener('abort', finish)
      wake?.()
    }
    if (signal?.aborted) done = true
    else if (!done) {
      iterators.add(push)
      signal?.addEventListener('abort', finish, { once: true })
    }
    const iterator: AsyncIterableIterator<IncomingMessage> = {
      [Symbol.asyncIterator]: () => iterator,
      next: async () => {
        while (queue.length === 0 && !done) await new Promise<void>((r) => (wake = r))
        wake = null
        const value = queue.shift()
        if (value === undefined) {
          release()
          return { done: true, value: undefined }
        }
        return { done: false, value }
      },
      return: async () => {
        finish()
        return { done: true, value: undefined }
      },
    }
    return iterator
  }

  /**
   * The primary's notice of the account's own number change, on a linked device: verified against the account
   * identity, it must move the account to the address this device is at now (the relay's forward took it there);
   * the new number must open the commitment the relay certified for the primary's message. Undefined when any of
   * that fails (the notice is then dropped, and this device keeps stating its old number, which its certificate no
   * longer commits to: it states none).
   */
  #ownNumberChange(
    content: e2e.DecryptedContent,
    opened: e2e.Opened,
  ): { account: AccountRecord; event: NumberChangedEvent } | undefined {
    const engine = this.#engine
    const account = engine.requireAccount()
    const stated = content.accountNumber
    if (stated === undefined || content.addressChange === undefined) return undefined
    let fields: AddressChangeFields
    try {
      const claims = addressChangeClaims(content.addressChange)
      fields = verifyAddressChange(
        content.addressChange,
        { identityKey: accountIdentity(account), oldAddress: claims.oldAddress },
        { crypto: engine.crypto },
      )
    } catch (err) {
      engine.emitRecoverable(err)
      return undefined
    }
    if (!e2e.equal(fields.newAddress, account.address) || opened.senderNumber !== stated.e164)
      return undefined
    return {
      account: {
        ...account,
        e164: stated.e164,
        numberSalt: stated.salt,
        addressChange: { notice: content.addressChange, until: fields.changedAtMs + ADDRESS_CHANGE_CARRY_MS },
      },
      event: {
        previousNumber: account.e164,
        number: stated.e164,
        address: toHex(account.address),
        own: true,
      },
    }
  }

  /** `ParleyClient.history`, after the open check. */
  async history(): Promise<IncomingMessage[]> {
    const entries = await this.#engine.store.list(K.inbox.prefix)
    // Keys order by receipt time, then by message id (random); within one millisecond the relay's mailbox
    // sequence is the order it received them in. Array.prototype.sort is stable for records without one.
    const stored = entries.map((e) => decodeEntry(K.inbox, e))
    stored.sort((a, b) => a.receivedAt - b.receivedAt || (a.seq ?? 0) - (b.seq ?? 0))
    return stored.map(toIncoming)
  }

  /** `ParleyClient.approveIdentity`, after the open check. */
  async approveIdentity(number: string): Promise<number> {
    const { store, serial } = this.#engine
    this.#engine.requireAccount()
    const contact = await contactRecord(store, await this.#discovery.normalize(number))
    if (contact === null) return 0
    const hex = toHex(contact.address)
    const held = await serial.run(async () => {
      const entries = await store.list(heldPrefix(hex))
      await store.write([del(K.verified(hex))])
      return entries
    })
    let delivered = 0
    for (const e of held) {
      const h: HeldRecord = decodeEntry(K.held, e)
      const shown = await serial.run(async () => {
        const ok = await this.receive({
          seq: 0,
          messageId: new Uint8Array(0),
          envelope: h.envelope,
          receivedAtMs: h.receivedAtMs,
        })
        await store.write([del(e.key)])
        return ok
      })
      if (shown) delivered++
    }
    return delivered
  }

  /**
   * Handles one delivery; resolves whether a message was shown. Order of checks: the envelope must open and
   * its certificate prove the sender before anything else happens; a message from a changed identity of a
   * verified contact is held; only then is a session used, made or promoted. A refused message changes
   * nothing but the counters.
   */
  async receive(
    delivery: ServerBodyOf<'delivery'>,
    options: { ephemeral?: boolean; released?: boolean } = {},
  ): Promise<boolean> {
    const engine = this.#engine
    const { store, stats } = engine
    const account = engine.account
    if (account === null) return false
    const seq = delivery.seq
    const ack = () => {
      this.#ack(seq)
      return false
    }
    const envelope = delivery.envelope
    // 0 is what an absent receipt time decodes as: the relay did not say, so the time it arrived here stands.
    const receivedAtMs = delivery.receivedAtMs || engine.clock.now()
    let opened: e2e.Opened
    try {
      opened = e2e.open(account.identity, envelope, await this.#session.trustRoot(), receivedAtMs, engine)
    } catch (err) {
      const e = ParleyError.fromUnknown(err, 'DECRYPT_FAILED')
      if (e.code === 'SENDER_UNVERIFIED') stats.senderUnverified++
      engine.emitError(e)
      return ack()
    }
    if (options.ephemeral === true && opened.message.kind !== 'ratchet') {
      // Stored nowhere, so it must not start (or restart) a session: only an answered session's indicator.
      stats.ephemeralRefused++
      return false
    }
    const own = e2e.equal(opened.senderAddress, account.address)
    if (!own && opened.addressChange !== undefined) await this.#contacts.followNumberChange(opened)
    if (!own) await this.#contacts.followSender(opened)
    const senderHex = toHex(opened.senderAddress)
    // A linked device of the sender's account seals with its own device key, which must be in the account's
    // device list as verified against the identity pinned for it (a relay cannot certify a device into it).
    const pinned = own ? accountIdentity(account) : await get(store, K.identity(senderHex))
    const linkedSender =
      (pinned === undefined || !e2e.equal(pinned, opened.senderIdentityKey)) &&
      (await this.#devices.linkedKey(opened.senderAddress, opened.senderDeviceId, opened.senderIdentityKey))
    if (
      own &&
      (opened.senderDeviceId === account.deviceId ||
        (!linkedSender && !e2e.equal(pinned!, opened.senderIdentityKey)))
    ) {
      stats.senderUnverified++
      engine.emitError(
        new ParleyError('SENDER_UNVERIFIED', "a message from a device not in this account's device list"),
      )
      return ack()
    }
    const verified = linkedSender ? undefined : await get(store, K.verified(senderHex))
    if (verified !== undefined && !e2e.equal(verified, opened.senderIdentityKey)) {
      // An indicator from a changed identity is not worth holding for the user's approval.
      if (options.ephemeral === true) return false
      await this.#hold(senderHex, opened, envelope, receivedAtMs)
      return ack()
    }
    if (opened.message.kind === 'senderKey') {
      // A group message: opened with the sender device's chain, no pairwise session involved.
      const got = await this.#groups.receiveMessage(opened, {
        receivedAtMs,
        seq,
        envelope,
        ...(options.released === true ? { released: true } : {}),
      })
      if (got.writes.length > 0) await store.write(got.writes)
      got.emit?.()
      if (got.message === undefined) return ack()
      this.#show(got.message)
      ack()
      return true
    }
    const session = opened as e2e.OpenedSession
    const slot = linkedSender ? K.deviceSession(senderHex, opened.senderDeviceId) : K.session(senderHex)
    const existing = (await get(store, slot)) ?? null
    const writes: StoreWrite[] = []
    let result: e2e.Decrypted
    try {
      result = await e2e.decrypt({
        ours: account,
        current: existing === null ? null : existing.state,
        previous: existing?.previous ?? [],
        opened: session,
        loadPrekey: async (kind, id) => store.get(K.prekey(kind, id).key),
        replayed: async (spk, baseKey) => (await store.get(K.replay(spk, toHex(baseKey)).key)) !== undefined,
        env: engine,
      })
    } catch (err) {
      const e = ParleyError.fromUnknown(err, 'DECRYPT_FAILED')
      if (e.code === 'DUPLICATE' && opened.message.kind === 'prekey') stats.replaysRefused++
      if (e.code !== 'DUPLICATE') engine.emitError(e)
      return ack()
    }
    const content = result.content
    if (options.ephemeral === true && content.typing === undefined) {
      // A message the relay stored nowhere would be lost with the next crash, and the sender's device may have
      // meant it for no one: only typing indicators come this way. The session step is not kept.
      stats.ephemeralRefused++
      return false
    }
    const idHex = toHex(content.messageId)
    const record = sessionAfter(existing, opened, result)
    if ((await store.get(K.seen(idHex).key)) !== undefined) {
      // Same message again (a resend after a lost ACCEPTED): keep the session step, deliver nothing.
      await store.write([put(slot, record)])
      return ack()
    }
    /** The prekeys this first message used, and its replay marker: written with whatever the message brings. */
    const consumed = () => {
      for (const id of result.consumedOneTimePrekeys) writes.push(del(K.prekey('otp', id)))
      for (const id of result.consumedKemPrekeys) writes.push(del(K.prekey('kem', id)))
      if (result.replayKey) {
        const r = result.replayKey
        writes.push(put(K.replay(r.signedPrekeyId, toHex(r.baseKey)), receivedAtMs))
      }
    }
    if (content.history !== undefined) {
      // Only this account's own devices send history; anyone else's is dropped (the session step is kept).
      if (own) await this.#importHistory(content.history, writes)
      consumed()
      writes.push(put(slot, record), put(K.seen(idHex), receivedAtMs))
      await store.write(writes)
      if (result.consumedOneTimePrekeys.length > 0 || result.consumedKemPrekeys.length > 0) {
        void engine.serial.run(() => this.#prekeys.refill()).catch((err) => engine.emitRecoverable(err))
      }
      ack()
      return false
    }
    if (content.action !== undefined) {
      // A reaction, edit, deletion or receipt: it changes messages of a conversation, and is none itself. From
      // another device of this account (a sent transcript) it is this account's own, on the conversation it names.
      const transcriptTo = own ? content.transcriptTo : undefined
      if (own && transcriptTo === undefined) return ack()
      const peer = transcriptTo !== undefined ? toHex(transcriptTo) : senderHex
      const done = await this.#conversations.act(peer, own ? 'me' : senderHex, content.action, receivedAtMs)
      consumed()
      writes.push(...done.writes, put(slot, record), put(K.seen(idHex), receivedAtMs))
      // A receipt carries its sender's delivery token too: a group member who only reads still gets this
      // device's next messages unidentified.
      if (content.deliveryToken && !own) writes.push(put(K.peerToken(senderHex), content.deliveryToken))
      await store.write(writes)
      done.emit?.()
      ack()
      return false
    }
    if (content.typing !== undefined) {
      // A typing indicator: consumed (the session step is kept), never shown as a message; told to the app only
      // from a contact with a conversation here (another device of this account has nothing to say by it).
      consumed()
      writes.push(put(slot, record), put(K.seen(idHex), receivedAtMs))
      const conversation = own ? undefined : await get(store, K.convOf(senderHex))
      await store.write(writes)
      if (conversation !== undefined) {
        const from = (await get(store, K.byAddress(senderHex))) ?? null
        engine.events.emit('typing', { conversation, from, started: content.typing.started })
      }
      ack()
      return false
    }
    if (content.addressChange !== undefined) {
      // A control message: a contact's notice was followed when its envelope was opened (above). From this
      // account's primary, it brings the account's new number to this device.
      consumed()
      writes.push(put(slot, record), put(K.seen(idHex), receivedAtMs))
      const change = own && !linkedSender ? this.#ownNumberChange(content, opened) : undefined
      if (change !== undefined) writes.push(put(K.account, change.account))
      await store.write(writes)
      if (change !== undefined) {
        engine.account = change.account
        engine.events.emit('numberChanged', change.event)
      }
      ack()
      return false
    }
    if (content.groupUpdate !== undefined || content.groupKey !== undefined) {
      // A group's state or a member device's sender key: control messages, never shown.
      consumed()
      writes.push(put(slot, record), put(K.seen(idHex), receivedAtMs))
      if (content.deliveryToken && !own) writes.push(put(K.peerToken(senderHex), content.deliveryToken))
      // The identity that sealed it is what this device's group messages to the sender are sealed for.
      if (!linkedSender && !own && pinned === undefined)
        writes.push(put(K.identity(senderHex), opened.senderIdentityKey))
      const emit =
        content.groupUpdate !== undefined
          ? await this.#groups.receiveUpdate(opened.senderAddress, content.groupUpdate, writes)
          : await this.#groups.receiveKey(
              {
                address: opened.senderAddress,
                deviceId: opened.senderDeviceId,
                identityKey: opened.senderIdentityKey,
              },
              content.groupKey!,
              writes,
            )
      await store.write(writes)
      emit?.()
      ack()
      // Group messages that came before this key (another path, a reordered mailbox): opened now, after this.
      const held =
        content.groupKey === undefined
          ? null
          : this.#groups.heldFor(
              { address: opened.senderAddress, deviceId: opened.senderDeviceId },
              content.groupKey,
            )
      if (held !== null) void engine.serial.run(() => this.#releaseGroupHeld(held))
      return false
    }
    if (content.groupId !== undefined) {
      // A group's text goes under its sender key, never in a pairwise session: refused, the session step kept.
      await store.write([put(slot, record), put(K.seen(idHex), receivedAtMs)])
      engine.stats.groupRefused++
      engine.emitError(new ParleyError('BAD_REQUEST', 'a group message sent in a pairwise session'))
      return ack()
    }
    const identityChanged =
      !linkedSender && !own && (await this.#contacts.identityChanged(senderHex, opened.senderIdentityKey))
    const from = own ? account.e164 : await this.#contacts.provenSender(opened, writes)
    // A sent transcript counts only from this account's own devices.
    const transcriptTo = own ? content.transcriptTo : undefined
    const message: StoredMessage = {
      id: idHex,
      from,
      fromAddress: senderHex,
      text: content.text,
      sentAt: content.sentAtMs,
      receivedAt: receivedAtMs,
      ...(delivery.seq > 0 ? { seq: delivery.seq } : {}),
      ...(content.unsupported ? { unsupported: true as const } : {}),
      ...(content.replyTo === undefined ? {} : { replyTo: content.replyTo }),
      ...(content.attachment === undefined ? {} : { attachment: content.attachment }),
      ...(transcriptTo === undefined
        ? {}
        : {
            to: (await get(store, K.byAddress(toHex(transcriptTo)))) ?? null,
            toAddress: toHex(transcriptTo),
          }),
    }
    consumed()
    if (content.deliveryToken && !own) writes.push(put(K.peerToken(senderHex), content.deliveryToken))
    writes.push(
      put(slot, record),
      put(K.seen(idHex), receivedAtMs),
      put(K.inbox(receivedAtMs, idHex), message),
    )
    const entry = entryOfStored(message, account.e164, toHex(account.address))
    if (entry !== null) writes.push(...(await this.#conversations.add(entry, writes)))
    // The identity pinned for an account is its primary's: a linked device's key never replaces it.
    if (!linkedSender && !own) writes.push(put(K.identity(senderHex), opened.senderIdentityKey))
    // One atomic write: the ratchet step, the dedupe marker and the message stand or fall together.
    await store.write(writes)
    if (identityChanged)
      this.#contacts.emitIdentityChanged(from, opened.senderAddress, opened.senderIdentityKey)
    // A device of the sender's contact decrypted it: the delivery receipt (batched; not for our own devices).
    if (!own) this.#conversations.delivered(senderHex, from, idHex)
    this.#show(message)
    if (result.consumedOneTimePrekeys.length > 0 || result.consumedKemPrekeys.length > 0) {
      void engine.serial.run(() => this.#prekeys.refill()).catch((err) => engine.emitRecoverable(err))
    }
    ack()
    return true
  }

  /**
   * Adds a history chunk from this account's primary to the history (each message once: one already here, by
   * its id, is skipped), into `writes`; tells the app how many it added. A malformed chunk adds nothing.
   */
  async #importHistory(bytes: Uint8Array, writes: StoreWrite[]): Promise<void> {
    const engine = this.#engine
    let chunk: ReturnType<typeof decodeHistoryChunk>
    try {
      chunk = decodeHistoryChunk(bytes)
    } catch (err) {
      engine.emitError(err)
      return
    }
    let added = 0
    for (const [i, e] of chunk.entries.entries()) {
      const id = toHex(e.messageId)
      if ((await engine.store.get(K.seen(id).key)) !== undefined) continue
      const message: StoredMessage = {
        id,
        from: e.from,
        fromAddress: toHex(e.fromAddress),
        text: e.text,
        sentAt: e.sentAtMs,
        receivedAt: e.receivedAtMs,
        // The transfer's order (the primary's), for messages received in the same millisecond: history() orders
        // by receipt time, then by this.
        seq: chunk.index * HISTORY_ORDER_STRIDE + i + 1,
        ...(e.toAddress === undefined ? {} : { to: e.to ?? null, toAddress: toHex(e.toAddress) }),
      }
      writes.push(put(K.seen(id), e.receivedAtMs), put(K.inbox(e.receivedAtMs, id), message))
      const account = engine.requireAccount()
      const entry = entryOfStored(message, account.e164, toHex(account.address))
      if (entry !== null) writes.push(...(await this.#conversations.add(entry, writes)))
      added++
    }
    engine.events.emit('history', { added, index: chunk.index, total: chunk.total })
  }

  /**
   * Opens again, in arrival order, the group messages held under the chain whose key just came (`prefix`, in the
   * serial queue after that key): shown now; one that still opens with no chain is refused as usual.
   */
  async #releaseGroupHeld(prefix: string): Promise<void> {
    const { store } = this.#engine
    try {
      for (const e of await store.list(prefix)) {
        const h: HeldRecord = decodeEntry(K.groupHeld, e)
        await this.receive(
          { seq: 0, messageId: new Uint8Array(0), envelope: h.envelope, receivedAtMs: h.receivedAtMs },
          { released: true },
        )
        await store.write([del(e.key)])
      }
    } catch (err) {
      this.#engine.emitError(err)
    }
  }

  /**
   * Keeps a message from a verified contact whose identity changed, unopened, until the app approves the new
   * identity; tells the app once per new identity.
   */
  async #hold(
    senderHex: string,
    opened: e2e.Opened,
    envelope: Uint8Array,
    receivedAtMs: number,
  ): Promise<void> {
    const { store } = this.#engine
    const held = await store.list(heldPrefix(senderHex))
    const writes: StoreWrite[] = []
    const dropping = held.length >= MAX_HELD_PER_CONTACT
    if (dropping) writes.push(del(held[0]!.key))
    const last = held.at(-1)
    const n = last === undefined ? 1 : Number(last.key.slice(last.key.lastIndexOf('/') + 1)) + 1
    const record: HeldRecord = { envelope: envelope.slice(), receivedAtMs }
    writes.push(put(K.held(senderHex, n), record))
    const announced = await get(store, K.identity(senderHex))
    const first = announced === undefined || !e2e.equal(announced, opened.senderIdentityKey)
    if (first) writes.push(put(K.identity(senderHex), opened.senderIdentityKey))
    await store.write(writes)
    this.#engine.stats.held++
    if (dropping) this.#engine.stats.heldDropped++
    if (first) {
      const number = (await get(store, K.byAddress(senderHex))) ?? null
      this.#contacts.emitIdentityChanged(number, opened.senderAddress, opened.senderIdentityKey, true)
    }
  }

  /** Tells the app of a message stored here: the `message` event and every `messages()` iterator. */
  #show(message: StoredMessage): void {
    const incoming = toIncoming(message)
    this.#engine.events.emit('message', incoming)
    for (const push of this.#engine.iterators) push(incoming)
  }

  /** Queues an ack; acks go out in batches so a burst of mail costs few frames. */
  #ack(seq: number): void {
    if (seq <= 0) return
    this.#acks.push(seq)
    if (this.#acks.length >= ACK_BATCH) this.flushAcks()
    else if (this.#ackTimer === null)
      this.#ackTimer = this.#engine.clock.setTimeout(() => this.flushAcks(), ACK_DELAY_MS)
  }

  /**
   * Sends the queued acks now; once the relay has them, the resume cursor moves past them. Resolves when the
   * relay answered (or the request failed, which is reported, never thrown).
   */
  flushAcks(): Promise<void> {
    const engine = this.#engine
    const { clock, store } = engine
    if (this.#ackTimer !== null) clock.clearTimeout(this.#ackTimer)
    this.#ackTimer = null
    const seqs = this.#acks.splice(0, ACK_BATCH)
    if (seqs.length === 0) return Promise.resolve()
    const sent = engine.link
      .request({ ackMessages: { seqs } }, { raw: true })
      .then(async () => {
        const max = Math.max(...seqs)
        const cursor = (await get(store, K.cursor)) ?? 0
        if (max > cursor) await store.write([put(K.cursor, max)])
      })
      .catch((err) => {
        const e = ParleyError.fromUnknown(err)
        if (e.code === 'RATE_LIMITED' && !engine.closed) {
          // The relay paces acks per connection: these go again once it allows, before newer ones.
          this.#acks.unshift(...seqs)
          if (this.#ackTimer !== null) clock.clearTimeout(this.#ackTimer)
          this.#ackTimer = clock.setTimeout(() => this.flushAcks(), e.retryAfterMs ?? 100)
          return
        }
        // Not acked: the relay redelivers after reconnecting and the inbox's dedupe drops the copy.
        engine.emitRecoverable(e)
      })
    return this.#acks.length > 0 ? Promise.all([sent, this.flushAcks()]).then(() => {}) : sent
  }
}

/** The contact's session record after a successful decrypt: the session that decrypted is current. */
function sessionAfter(
  existing: SessionRecord | null,
  opened: e2e.Opened,
  result: e2e.Decrypted,
): SessionRecord {
  // A decrypt under an older session of the same device keeps the record's device and staleness.
  const sameDevice = existing !== null && existing.deviceId === opened.senderDeviceId
  return {
    deviceId: opened.senderDeviceId,
    identityKey: opened.senderIdentityKey,
    state: result.state,
    previous: result.previous,
    ...(sameDevice && existing.stale ? { stale: true } : {}),
  }
}

function toIncoming(m: StoredMessage): IncomingMessage {
  return {
    id: m.id,
    from: m.from,
    fromAddress: m.fromAddress,
    text: m.text,
    sentAt: new Date(m.sentAt),
    receivedAt: new Date(m.receivedAt),
    ...(m.toAddress === undefined ? {} : { to: m.to ?? null, toAddress: m.toAddress }),
    ...(m.unsupported ? { unsupported: true } : {}),
    ...(m.replyTo === undefined ? {} : { replyTo: m.replyTo }),
    ...(m.attachment === undefined ? {} : { attachment: attachmentInfo(m.attachment) }),
    ...(m.group === undefined ? {} : { group: m.group }),
  }
}
