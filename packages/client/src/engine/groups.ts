// Groups (docs/architecture.md §6.10): the group's state lives only in members' stores, carried by
// `GroupUpdate`s over pairwise sessions; each device has its own sender key chain per group, handed to every
// other member device over the pairwise session before its first message on it; a group message is one
// `SenderKeyMessage`, sealed per member device by the delivery (engine/delivery.ts). A removal makes every
// remaining member's device start a new chain on its next send, given only to the members left. Not exported.
import {
  createSenderKey,
  decodeGroupKey,
  decodeGroupUpdate,
  encodeContent,
  encodeGroupKey,
  encodeGroupUpdate,
  type GroupMemberFields,
  type GroupUpdateCandidate,
  type GroupUpdateFields,
  groupMember,
  groupUpdateHash,
  judgeGroupUpdate,
  MAX_GROUP_MEMBERS,
  openSenderKeyDistribution,
  ParleyError,
  peekSenderKeyMessage,
  senderKeyDecrypt,
  senderKeyDistribution,
  senderKeyEncrypt,
  withAdmin,
} from '@parley/protocol'
import { fromHex, toHex } from '../internal/codec.js'
import * as e2e from '../internal/e2e.js'
import type { StoreWrite } from '../Store.js'
import type { CreateGroupOptions, GroupInfo, GroupRoute, GroupSendResult, SmsFallback } from '../types.js'
import type { Engine } from './context.js'
import { type Conversations, GROUP_PEER } from './conversations.js'
import { bodyContent } from './delivery.js'
import type { Devices } from './devices.js'
import type { Discovery } from './discovery.js'
import {
  type AttachmentRecord,
  contactRecord,
  del,
  type GroupChangeRecord,
  type GroupRecord,
  get,
  groupHeldPrefix,
  type HeldRecord,
  K,
  type OutboxRecord,
  type OutgoingBody,
  type PeerSenderKeyRecord,
  put,
  type StoredMessage,
} from './keyspace.js'

const GROUP_ID = /^[0-9a-f]{64}$/
const MAX_TEXT_BYTES = 64 * 1024
/** The most sender keys one account may leave here for groups this device does not hold (yet). */
const MAX_UNKNOWN_GROUP_KEYS = 64
/** Group messages held under chains not given yet: from one account, and in all. */
const MAX_HELD_GROUP_PER_SENDER = 32
const MAX_HELD_GROUP = 256

/** Queues outbox entries in one write with `writes` (the outbox's `enqueue`), wired in by the facade. */
export type Enqueue = (build: (nextSeq: () => number) => Promise<StoreWrite[]>) => Promise<void>

/** What a received group message became: the writes to make, and the message to show once they are made. */
export interface GroupReceived {
  writes: StoreWrite[]
  message?: StoredMessage
  emit?: () => void
}

export class Groups {
  readonly #engine: Engine
  readonly #discovery: Discovery
  readonly #devices: Devices
  readonly #conversations: Conversations
  readonly #sms: SmsFallback | undefined
  readonly #maxMembers: number
  /** Set by the facade once the outbox exists. */
  enqueue: Enqueue | null = null

  constructor(
    engine: Engine,
    discovery: Discovery,
    devices: Devices,
    conversations: Conversations,
    sms: SmsFallback | undefined,
    maxMembers: number = MAX_GROUP_MEMBERS,
  ) {
    this.#maxMembers = maxMembers
    this.#engine = engine
    this.#discovery = discovery
    this.#devices = devices
    this.#conversations = conversations
    this.#sms = sms
  }

  // ───────────────────────────── the app's calls ─────────────────────────────

  /** `ParleyClient.createGroup`. */
  async create(options: CreateGroupOptions): Promise<GroupInfo> {
    const engine = this.#engine
    if (typeof options !== 'object' || options === null) throw new TypeError('options are required')
    if (!Array.isArray(options.members)) throw new TypeError('members must be an array of numbers')
    const account = engine.requireAccount()
    const members = await this.#resolveMembers(options.members)
    const all: GroupMemberFields[] = [
      { address: account.address, e164: account.e164, admin: true },
      ...members.filter((m) => m.address === undefined || !e2e.equal(m.address, account.address)),
    ]
    if (all.length > this.#maxMembers) throw new RangeError(`a group has at most ${this.#maxMembers} members`)
    const update: GroupUpdateFields = {
      groupId: engine.random(32),
      revision: 0,
      author: account.address,
      name: options.name,
      members: all,
    }
    const encoded = encodeGroupUpdate(update)
    const id = toHex(update.groupId)
    await this.#ready()((nextSeq) => this.#publish(id, encoded, undefined, [], undefined, nextSeq))
    return this.#published(encoded)
  }

  /** `ParleyClient.groups`: every group this device holds, in id order. */
  async list(): Promise<GroupInfo[]> {
    const engine = this.#engine
    const entries = await engine.store.list(K.group.prefix)
    return entries.map((e) => this.#info(decodeGroupUpdate(K.group.codec.decode(e.value).current)))
  }

  /** `ParleyClient.group`. */
  async get(groupId: string): Promise<GroupInfo | null> {
    const record = await this.#record(groupId)
    return record === undefined ? null : this.#info(decodeGroupUpdate(record.current))
  }

  /** `addGroupMembers`, `removeGroupMembers`, `setGroupAdmin`, `renameGroup`, `leaveGroup`. */
  async change(groupId: string, op: GroupChangeRecord | 'leave'): Promise<GroupInfo> {
    const engine = this.#engine
    const account = engine.requireAccount()
    if (!GROUP_ID.test(groupId)) throw new TypeError('a group id is 64 hex digits')
    let encoded: Uint8Array | undefined
    await this.#ready()(async (nextSeq) => {
      const record = await this.#record(groupId)
      if (record === undefined) throw new ParleyError('NOT_FOUND', 'no such group here')
      const current = decodeGroupUpdate(record.current)
      const me = groupMember(current, account.address)
      if (me === undefined) throw new ParleyError('FORBIDDEN', 'this account is not a member of the group')
      const change = op === 'leave' ? { remove: [toHex(account.address)] } : op
      if (op !== 'leave' && !me.admin)
        throw new ParleyError('FORBIDDEN', 'only an admin may change the group')
      const next = applyChange(current, change, account.address, groupUpdateHash(record.current))
      if (next.members.length > Math.max(this.#maxMembers, current.members.length))
        throw new RangeError(`a group has at most ${this.#maxMembers} members`)
      if (sameGroup(next, current)) {
        // Nothing to change (a change made again on a winner that already holds it): no new revision.
        encoded = record.current
        return []
      }
      encoded = encodeGroupUpdate(next)
      // Everyone who was or is a member hears of it: a removed member learns it was removed.
      const mine = op === 'leave' ? undefined : change
      return this.#publish(groupId, encoded, record, current.members, mine, nextSeq)
    })
    return this.#published(encoded!)
  }

  /** `ParleyClient.sendGroup`. */
  async send(groupId: string, text: string, options: { replyTo?: string } = {}): Promise<GroupSendResult> {
    const engine = this.#engine
    if (!GROUP_ID.test(groupId)) throw new TypeError('a group id is 64 hex digits')
    if (typeof text !== 'string') throw new TypeError('text must be a string')
    if (new TextEncoder().encode(text).length > MAX_TEXT_BYTES)
      throw new ParleyError('TOO_LARGE', 'the text is over 64 KiB of UTF-8')
    const replyTo = options.replyTo
    if (replyTo !== undefined && !/^[0-9a-f]{32}$/.test(replyTo))
      throw new TypeError('replyTo must be a message id (32 hex digits)')
    const account = engine.requireAccount()
    if (engine.banned !== null) throw engine.banned
    const id = toHex(engine.random(16))
    const sentAt = engine.clock.now()
    const state = await this.#queue(groupId, id, sentAt, {
      text,
      ...(replyTo === undefined ? {} : { replyTo }),
    })
    // Members not on Parley get the text through the app's hook, as a group MMS would; it is never uploaded.
    const sms = this.#sms
    if (sms !== undefined) {
      const group = { id: groupId, name: state.name }
      for (const m of state.members) if (m.address === undefined) await sms(m.e164, text, { group })
    }
    return { id, routes: routesOf(state, account.address, sms === undefined ? 'unreached' : 'sms') }
  }

  /**
   * `ParleyClient.sendGroupAttachment`: the file encrypted and uploaded once (`upload` is given how many devices
   * will fetch it: every member device and this account's others), then the group message that names it.
   */
  async sendAttachment(
    groupId: string,
    caption: string,
    upload: (downloads: number) => Promise<AttachmentRecord>,
  ): Promise<GroupSendResult> {
    const engine = this.#engine
    const account = engine.requireAccount()
    if (engine.banned !== null) throw engine.banned
    const record = await this.#record(groupId)
    if (record === undefined) throw new ParleyError('NOT_FOUND', 'no such group here')
    let downloads = this.#devices.ownOthers().length
    for (const m of decodeGroupUpdate(record.current).members) {
      if (m.address === undefined || e2e.equal(m.address, account.address)) continue
      downloads += Math.max(1, (await this.#devices.cached(m.address))?.devices.length ?? 1)
    }
    const attachment = await upload(downloads)
    const id = toHex(engine.random(16))
    const state = await this.#queue(groupId, id, engine.clock.now(), { text: caption, attachment })
    // Members not on Parley get no file (SMS has none): they are reported unreached.
    return { id, routes: routesOf(state, account.address, 'unreached') }
  }

  /**
   * `react`, `edit`, `deleteForEveryone` on a group's message (conversations.ts applied it here already): the
   * action as a group message, to every member.
   */
  async sendAction(groupId: string, action: OutgoingBody): Promise<void> {
    const engine = this.#engine
    engine.requireAccount()
    if (engine.banned !== null) throw engine.banned
    await this.#queue(groupId, toHex(engine.random(16)), engine.clock.now(), { action })
  }

  /**
   * Queues one group message — a text (shown in the group's conversation, queued) or an action — in one write
   * with what it needs first: this device's chain, new after a removal, to every member account (and this
   * account's other devices) that has not had it at its current device-list version, at this message's iteration.
   * @returns the group's state it was sent to
   */
  async #queue(
    groupId: string,
    id: string,
    sentAt: number,
    what: { text: string; replyTo?: string; attachment?: AttachmentRecord } | { action: OutgoingBody },
  ): Promise<GroupUpdateFields> {
    const engine = this.#engine
    const account = engine.requireAccount()
    let state: GroupUpdateFields | undefined
    await this.#ready()(async (nextSeq) => {
      const record = await this.#record(groupId)
      if (record === undefined) throw new ParleyError('NOT_FOUND', 'no such group here')
      state = decodeGroupUpdate(record.current)
      if (groupMember(state, account.address) === undefined)
        throw new ParleyError('FORBIDDEN', 'this account is no longer a member of the group')
      const others = state.members
        .filter((m) => m.address !== undefined && !e2e.equal(m.address, account.address))
        .map((m) => ({ hex: toHex(m.address!), e164: m.e164 }))
      const writes: StoreWrite[] = []
      let chain = await get(engine.store, K.groupOwnKey(groupId))
      if (chain === undefined || chain.rekey === true)
        chain = { ...createSenderKey({ random: engine.random }), sentTo: {} }
      const keyBytes = encodeGroupKey({
        groupId: fromHex(groupId),
        distribution: senderKeyDistribution(chain),
      })
      const targets = [...others]
      if (this.#devices.ownOthers().length > 0)
        targets.push({ hex: toHex(account.address), e164: account.e164 })
      const sentTo = { ...chain.sentTo }
      for (const t of targets) {
        const version =
          t.hex === toHex(account.address)
            ? (account.devices?.version ?? 0)
            : ((await this.#devices.cached(fromHex(t.hex)))?.version ?? 0)
        if (sentTo[t.hex] === version) continue
        sentTo[t.hex] = version
        writes.push(this.#control(nextSeq(), t.hex, t.e164, { groupId, key: keyBytes }))
      }
      const head = { messageId: fromHex(id), sentAtMs: sentAt, groupId: fromHex(groupId) }
      const reply = 'replyTo' in what && what.replyTo !== undefined ? { replyTo: fromHex(what.replyTo) } : {}
      const content =
        'action' in what
          ? { ...head, ...bodyContent(what.action) }
          : what.attachment !== undefined
            ? { ...head, ...bodyContent({ attachment: what.attachment }), ...reply }
            : { ...head, text: what.text, ...reply }
      const sealed = senderKeyEncrypt(chain, encodeContent(content), engine)
      const seq = nextSeq()
      const entry: OutboxRecord = {
        id,
        to: `${GROUP_PEER}${groupId}`,
        address: account.address,
        text: 'text' in what ? what.text : '',
        sentAt,
        group: {
          id: groupId,
          message: sealed.message,
          key: keyBytes,
          to: others.map((o) => o.hex),
          done: [],
        },
        ...('action' in what
          ? { body: what.action }
          : what.replyTo === undefined
            ? {}
            : { replyTo: what.replyTo }),
      }
      writes.push(put(K.groupOwnKey(groupId), { ...sealed.state, sentTo }), put(K.outbox(seq), entry))
      if ('text' in what) {
        const shown = {
          peer: `${GROUP_PEER}${groupId}`,
          number: null,
          message: {
            id,
            outgoing: true,
            from: account.e164,
            text: what.text,
            sentAt,
            receivedAt: null,
            state: 'queued' as const,
            seq,
            ...(what.replyTo === undefined ? {} : { replyTo: what.replyTo }),
            ...(what.attachment === undefined ? {} : { attachment: what.attachment }),
            groupReceipts: { to: others.map((o) => o.hex), delivered: [], read: [] },
          },
        }
        writes.push(...(await this.#conversations.add(shown, writes)))
      }
      return writes
    })
    return state!
  }

  /**
   * After a device was linked to this account: every group's state to this account's other devices (the new one
   * has none), and this device's chains to them again on its next send of each group.
   */
  async shareWithOwnDevices(): Promise<void> {
    const engine = this.#engine
    const account = engine.requireAccount()
    await this.#ready()(async (nextSeq) => {
      const writes: StoreWrite[] = []
      for (const e of await engine.store.list(K.group.prefix)) {
        const record = K.group.codec.decode(e.value)
        if (groupMember(decodeGroupUpdate(record.current), account.address) === undefined) continue
        const own = toHex(account.address)
        writes.push(
          this.#control(nextSeq(), own, account.e164, { groupId: record.id, update: record.current }),
        )
      }
      return writes
    })
  }

  /** Queues `key` (a chain at a message being sent) for the member account `memberHex` of a group again. */
  async resendKey(groupId: string, memberHex: string, key: Uint8Array): Promise<void> {
    const engine = this.#engine
    const account = engine.requireAccount()
    await this.#ready()(async (nextSeq) => {
      const record = await this.#record(groupId)
      const member =
        record === undefined ? undefined : groupMember(decodeGroupUpdate(record.current), fromHex(memberHex))
      if (member === undefined) return []
      const chain = await get(engine.store, K.groupOwnKey(groupId))
      const version = (await this.#devices.cached(fromHex(memberHex)))?.version ?? 0
      return [
        this.#control(nextSeq(), memberHex, member.e164, { groupId, key }),
        ...(chain === undefined || e2e.equal(fromHex(memberHex), account.address)
          ? []
          : [put(K.groupOwnKey(groupId), { ...chain, sentTo: { ...chain.sentTo, [memberHex]: version } })]),
      ]
    })
  }

  // ───────────────────────────── what arrives ─────────────────────────────

  /**
   * A `GroupUpdate` from `sender` (the address its pairwise session's certificate proved; this account's own for
   * another of its devices): taken when {@link judgeGroupUpdate} says so. A change that removed members makes this
   * device start a new chain on its next send; one that removed this account forgets the group's keys. When a
   * concurrent change beat this account's own, the own change is made again on top of the winner.
   */
  async receiveUpdate(
    sender: Uint8Array,
    bytes: Uint8Array,
    writes: StoreWrite[],
  ): Promise<(() => void) | undefined> {
    const engine = this.#engine
    const account = engine.requireAccount()
    let update: GroupUpdateFields
    try {
      update = decodeGroupUpdate(bytes)
    } catch (err) {
      engine.emitError(err)
      return undefined
    }
    const id = toHex(update.groupId)
    const record = await this.#record(id)
    const incoming: GroupUpdateCandidate = { update, hash: groupUpdateHash(bytes) }
    const current = record === undefined ? undefined : candidateOf(record.current)
    const previous = record?.previous === undefined ? undefined : candidateOf(record.previous)
    let verdict: 'apply' | 'ignore'
    try {
      // From another device of this account, a state is passed on as it came (a new device is given every
      // group's): judged as from its author, whose right to make it is still checked.
      const from = e2e.equal(sender, account.address) ? update.author : sender
      verdict = judgeGroupUpdate({ incoming, sender: from, current, previous })
    } catch (err) {
      engine.stats.groupRefused++
      engine.emitError(err)
      return undefined
    }
    if (verdict === 'ignore') return undefined
    // A new group that does not name this account is nobody's business here.
    if (current === undefined && groupMember(update, account.address) === undefined) return undefined
    const builtOnCurrent =
      current !== undefined && update.parent !== undefined && e2e.equal(update.parent, current.hash)
    const sibling =
      current !== undefined &&
      previous !== undefined &&
      update.parent !== undefined &&
      e2e.equal(update.parent, previous.hash)
    const next: GroupRecord = {
      id,
      current: bytes,
      ...(sibling
        ? { previous: record!.previous! }
        : current !== undefined
          ? { previous: record!.current }
          : {}),
    }
    // Our own change lost to a concurrent one: made again, on the winner, once this write is done.
    const lost =
      sibling && record?.mine !== undefined && e2e.equal(current!.update.author, account.address)
        ? record.mine
        : undefined
    if (record?.mine !== undefined && !builtOnCurrent && lost === undefined) next.mine = record.mine
    writes.push(put(K.group(id), next), ...(await this.#keysAfter(id, current?.update.members ?? [], update)))
    const stillMember = groupMember(update, account.address) !== undefined
    const own = e2e.equal(sender, account.address)
    const by = own
      ? null
      : (groupMember(update, sender)?.e164 ?? groupMember(current?.update ?? update, sender)?.e164 ?? null)
    const info = this.#info(update)
    return () => {
      engine.events.emit('groupUpdated', { group: info, by: by || null })
      if (lost !== undefined && stillMember) {
        void this.change(id, lost).catch((err) => engine.emitRecoverable(err))
      }
    }
  }

  /**
   * A `GroupKey` from a member device (its pairwise session proved the device and its identity key): kept, for
   * that device's messages only. A chain already held is not replaced (that would undo its progress).
   */
  async receiveKey(
    sender: { address: Uint8Array; deviceId: number; identityKey: Uint8Array },
    bytes: Uint8Array,
    writes: StoreWrite[],
  ): Promise<void> {
    const engine = this.#engine
    let record: PeerSenderKeyRecord
    try {
      const key = decodeGroupKey(bytes)
      const receiver = openSenderKeyDistribution(key.distribution)
      record = {
        groupId: toHex(key.groupId),
        identityKey: sender.identityKey,
        distributionId: receiver.distributionId,
        iteration: receiver.iteration,
        chainKey: receiver.chainKey,
        signingKey: receiver.signingKey,
        skipped: [],
        receivedAt: engine.clock.now(),
      }
    } catch (err) {
      engine.emitError(err)
      return
    }
    const senderHex = toHex(sender.address)
    const slot = K.groupPeerKey(senderHex, sender.deviceId, toHex(record.distributionId))
    if ((await engine.store.get(slot.key)) !== undefined) return
    // Bounded: a device's chains for one group, the newest two (the one before a rekey still opens mail in
    // flight); and from one account, keys for groups not held here (yet), at most MAX_UNKNOWN_GROUP_KEYS.
    const held = (await engine.store.list(`${K.groupPeerKey.prefix}${senderHex}/`)).map((e) => ({
      key: e.key,
      value: K.groupPeerKey.codec.decode(e.value),
    }))
    const mine = held
      .filter((h) => h.value.groupId === record.groupId && h.key.startsWith(slot.key.slice(0, -32)))
      .sort((a, b) => (a.value.receivedAt ?? 0) - (b.value.receivedAt ?? 0))
    for (const old of mine.slice(0, Math.max(0, mine.length - 1))) writes.push(del(old.key))
    if ((await this.#record(record.groupId)) === undefined) {
      const unknown = []
      for (const h of held) if ((await this.#record(h.value.groupId)) === undefined) unknown.push(h)
      if (unknown.length >= MAX_UNKNOWN_GROUP_KEYS) {
        engine.stats.groupRefused++
        engine.emitError(new ParleyError('RATE_LIMITED', 'too many sender keys for groups not held here'))
        return
      }
    }
    writes.push(put(slot, record))
  }

  /**
   * The prefix of the group messages held for the chain an encoded `GroupKey` from this sender device gives
   * (null for one that does not decode: receiveKey reported it).
   */
  heldFor(sender: { address: Uint8Array; deviceId: number }, groupKey: Uint8Array): string | null {
    try {
      const { distributionId } = openSenderKeyDistribution(decodeGroupKey(groupKey).distribution)
      return groupHeldPrefix(toHex(sender.address), {
        deviceId: sender.deviceId,
        distributionIdHex: toHex(distributionId),
      })
    } catch {
      return null
    }
  }

  /**
   * A group message (a `SenderKeyMessage` in a sealed envelope whose certificate proved the sender): opened with
   * the chain that very device gave this one, shown when the group is held here, this account is in it and the
   * sender still is. Refused otherwise (`stats.groupRefused`), changing nothing; a replay is `DUPLICATE`.
   */
  async receiveMessage(
    opened: e2e.Opened,
    received: { receivedAtMs: number; seq: number; envelope: Uint8Array; released?: boolean },
  ): Promise<GroupReceived> {
    const engine = this.#engine
    const account = engine.requireAccount()
    const refuse = (
      code: 'DECRYPT_FAILED' | 'FORBIDDEN' | 'SENDER_UNVERIFIED',
      why: string,
    ): GroupReceived => {
      engine.stats.groupRefused++
      engine.emitError(new ParleyError(code, why))
      return { writes: [] }
    }
    const body = opened.message.body
    let distributionId: Uint8Array
    try {
      distributionId = peekSenderKeyMessage(body).distributionId
    } catch (err) {
      engine.emitError(err)
      return { writes: [] }
    }
    const senderHex = toHex(opened.senderAddress)
    const slot = K.groupPeerKey(senderHex, opened.senderDeviceId, toHex(distributionId))
    const chain = await get(engine.store, slot)
    if (chain === undefined) {
      // Its key may still be on its way (another path, a device linked since): kept, bounded, until it comes.
      if (received.released === true)
        return refuse('DECRYPT_FAILED', 'a group message under a sender key this device was not given')
      const held = await engine.store.list(K.groupHeld.prefix)
      const mine = groupHeldPrefix(senderHex)
      if (
        held.length >= MAX_HELD_GROUP ||
        held.filter((e) => e.key.startsWith(mine)).length >= MAX_HELD_GROUP_PER_SENDER
      )
        return refuse('DECRYPT_FAILED', 'too many group messages held under sender keys not given')
      engine.stats.groupHeld++
      const n = received.seq > 0 ? received.seq : received.receivedAtMs
      const record: HeldRecord = { envelope: received.envelope.slice(), receivedAtMs: received.receivedAtMs }
      return {
        writes: [put(K.groupHeld(senderHex, opened.senderDeviceId, toHex(distributionId), n), record)],
      }
    }
    if (!e2e.equal(chain.identityKey, opened.senderIdentityKey))
      return refuse(
        'SENDER_UNVERIFIED',
        'a group message sealed by another device than the one that gave its key',
      )
    let plaintext: Uint8Array
    let receiver: ReturnType<typeof senderKeyDecrypt>['receiver']
    try {
      ;({ plaintext, receiver } = senderKeyDecrypt(chain, body, engine))
    } catch (err) {
      if (!ParleyError.is(err, 'DUPLICATE')) engine.emitError(err)
      return { writes: [] }
    }
    const writes: StoreWrite[] = [put(slot, { ...chain, ...receiver, skipped: [...receiver.skipped] })]
    const content = e2e.groupContent(plaintext)
    if (content.groupId !== chain.groupId)
      return refuse('FORBIDDEN', 'a group message that names another group than its key')
    const record = await this.#record(chain.groupId)
    const state = record === undefined ? undefined : decodeGroupUpdate(record.current)
    if (state === undefined || groupMember(state, account.address) === undefined)
      return refuse('FORBIDDEN', 'a message of a group this account is not in')
    const member = groupMember(state, opened.senderAddress)
    if (member === undefined) return refuse('FORBIDDEN', 'a group message from someone not in the group')
    const idHex = toHex(content.messageId)
    if ((await engine.store.get(K.seen(idHex).key)) !== undefined) return { writes }
    writes.push(put(K.seen(idHex), received.receivedAtMs))
    const own = e2e.equal(opened.senderAddress, account.address)
    if (content.action !== undefined) {
      // A reaction, edit or deletion on a message of the group's conversation (edits and deletions of the
      // sender's own messages only); receipts are not sent in groups, and one that comes is dropped.
      if ('receipt' in content.action) return { writes }
      const peer = `${GROUP_PEER}${chain.groupId}`
      const done = await this.#conversations.act(
        peer,
        own ? 'me' : senderHex,
        content.action,
        received.receivedAtMs,
      )
      writes.push(...done.writes)
      return { writes, ...(done.emit === undefined ? {} : { emit: done.emit }) }
    }
    // A typing indicator never comes this way (it is never stored): dropped, the chain having moved on.
    if (content.typing !== undefined) return { writes }
    const from = own ? account.e164 : (opened.senderNumber ?? (member.e164 || null))
    const message: StoredMessage = {
      id: idHex,
      from,
      fromAddress: senderHex,
      text: content.text,
      sentAt: content.sentAtMs,
      receivedAt: received.receivedAtMs,
      group: chain.groupId,
      ...(received.seq > 0 ? { seq: received.seq } : {}),
      ...(content.unsupported ? { unsupported: true as const } : {}),
      ...(content.replyTo === undefined ? {} : { replyTo: content.replyTo }),
      ...(content.attachment === undefined ? {} : { attachment: content.attachment }),
    }
    writes.push(put(K.inbox(received.receivedAtMs, idHex), message))
    const entry = {
      peer: `${GROUP_PEER}${chain.groupId}`,
      number: null,
      message: {
        id: idHex,
        outgoing: own,
        from,
        ...(own ? {} : { fromAddress: senderHex }),
        text: content.text,
        sentAt: content.sentAtMs,
        receivedAt: received.receivedAtMs,
        state: own ? ('sent' as const) : ('received' as const),
        ...(received.seq > 0 ? { seq: received.seq } : {}),
        ...(content.replyTo === undefined ? {} : { replyTo: content.replyTo }),
        ...(content.attachment === undefined ? {} : { attachment: content.attachment }),
      },
    }
    writes.push(...(await this.#conversations.add(entry, writes)))
    // The sender is told, pairwise, that a device of this account has it (batched; not for our own messages).
    const delivered = own ? undefined : () => this.#conversations.delivered(senderHex, from, idHex)
    return { writes, message, ...(delivered === undefined ? {} : { emit: delivered }) }
  }

  // ───────────────────────────── helpers ─────────────────────────────

  /** The write that queues a group's state or sender key (`control`) for the account at `hex`, as outbox `seq`. */
  #control(
    seq: number,
    hex: string,
    e164: string,
    control: NonNullable<OutboxRecord['groupControl']>,
  ): StoreWrite {
    const engine = this.#engine
    const entry: OutboxRecord = {
      id: toHex(engine.random(16)),
      to: e164,
      address: fromHex(hex),
      text: '',
      sentAt: engine.clock.now(),
      groupControl: control,
    }
    return put(K.outbox(seq), entry)
  }

  #ready(): Enqueue {
    const enqueue = this.enqueue
    if (enqueue === null) throw new ParleyError('INVALID_STATE', 'the client is not ready')
    return enqueue
  }

  async #record(groupId: string): Promise<GroupRecord | undefined> {
    if (typeof groupId !== 'string' || !GROUP_ID.test(groupId))
      throw new TypeError('a group id is 64 hex digits')
    return get(this.#engine.store, K.group(groupId))
  }

  /** Tells the app of a state made here, and returns it. */
  #published(encoded: Uint8Array): GroupInfo {
    const info = this.#info(decodeGroupUpdate(encoded))
    this.#engine.events.emit('groupUpdated', { group: info, by: null })
    return info
  }

  /**
   * The writes that store a new state made here and queue it for every member account of `before` and of the new state but
   * this one (each gets it over the pairwise session), and for this account's other devices. A removal makes this
   * device's next send start a new chain.
   */
  async #publish(
    id: string,
    encoded: Uint8Array,
    record: GroupRecord | undefined,
    before: readonly GroupMemberFields[],
    mine: GroupChangeRecord | undefined,
    nextSeq: () => number,
  ): Promise<StoreWrite[]> {
    const engine = this.#engine
    const account = engine.requireAccount()
    const update = decodeGroupUpdate(encoded)
    const targets = new Map<string, string>()
    for (const m of [...before, ...update.members]) {
      if (m.address !== undefined && !e2e.equal(m.address, account.address))
        targets.set(toHex(m.address), m.e164)
    }
    const writes: StoreWrite[] = [
      put(K.group(id), {
        id,
        current: encoded,
        ...(record === undefined ? {} : { previous: record.current }),
        ...(mine === undefined ? {} : { mine }),
      }),
    ]
    const control = { groupId: id, update: encoded }
    if (this.#devices.ownOthers().length > 0)
      writes.push(this.#control(nextSeq(), toHex(account.address), account.e164, control))
    for (const [hex, e164] of targets) writes.push(this.#control(nextSeq(), hex, e164, control))
    writes.push(...(await this.#keysAfter(id, before, update)))
    return writes
  }

  /**
   * What a new state does to the group's keys here, whoever made it: this account gone from it, this device's
   * chain and every chain held for the group are forgotten; members gone, this device's next send starts a new
   * chain and their chains are forgotten.
   */
  async #keysAfter(
    id: string,
    before: readonly GroupMemberFields[],
    after: GroupUpdateFields,
  ): Promise<StoreWrite[]> {
    const { store } = this.#engine
    const account = this.#engine.requireAccount()
    const ofGroup = async (prefix: string) =>
      (await store.list(prefix))
        .filter((e) => K.groupPeerKey.codec.decode(e.value).groupId === id)
        .map((e) => del(e.key))
    if (groupMember(after, account.address) === undefined)
      return [del(K.groupOwnKey(id)), ...(await ofGroup(K.groupPeerKey.prefix))]
    const gone = before.filter((m) => m.address !== undefined && groupMember(after, m.address) === undefined)
    if (gone.length === 0) return []
    const writes: StoreWrite[] = []
    const chain = await get(store, K.groupOwnKey(id))
    if (chain !== undefined) writes.push(put(K.groupOwnKey(id), { ...chain, rekey: true }))
    for (const m of gone) writes.push(...(await ofGroup(`${K.groupPeerKey.prefix}${toHex(m.address!)}/`)))
    return writes
  }

  /** Looks the numbers up: those on Parley become members by address, the others SMS members. */
  async #resolveMembers(numbers: readonly string[]): Promise<GroupMemberFields[]> {
    const engine = this.#engine
    const e164s = [...new Set(await Promise.all(numbers.map((n) => this.#discovery.normalize(n))))]
    if (e164s.length === 0) return []
    if (e164s.length >= this.#maxMembers)
      throw new RangeError(`a group has at most ${this.#maxMembers} members`)
    await this.#discovery.lookup(e164s)
    const members: GroupMemberFields[] = []
    for (const e164 of e164s) {
      const contact = await contactRecord(engine.store, e164)
      if (contact?.registered) members.push({ address: contact.address, e164, admin: false })
      else {
        if (this.#sms === undefined)
          throw new ParleyError('NOT_FOUND', `a member is not on Parley and no smsFallback is configured`)
        members.push({ e164, admin: false })
      }
    }
    return members
  }

  #info(update: GroupUpdateFields): GroupInfo {
    const account = this.#engine.requireAccount()
    const me = groupMember(update, account.address)
    return {
      id: toHex(update.groupId),
      name: update.name,
      revision: update.revision,
      members: update.members.map((m) => ({
        number: m.e164 || null,
        address: m.address === undefined ? null : toHex(m.address),
        admin: m.admin,
        self: m.address !== undefined && e2e.equal(m.address, account.address),
        route: m.address === undefined ? 'sms' : 'ip',
      })),
      admin: me?.admin === true,
      left: me === undefined,
    }
  }

  /** `changeGroup` arguments from the app: numbers resolved to members. */
  async addOp(numbers: readonly string[]): Promise<GroupChangeRecord> {
    const members = await this.#resolveMembers(numbers)
    return {
      add: members.map((m) => ({ ...(m.address ? { address: toHex(m.address) } : {}), e164: m.e164 })),
    }
  }

  /** The member keys (address hex, or `sms:` + number) of `numbers` in the group. */
  async memberKeys(groupId: string, numbers: readonly string[]): Promise<string[]> {
    const record = await this.#record(groupId)
    if (record === undefined) throw new ParleyError('NOT_FOUND', 'no such group here')
    const state = decodeGroupUpdate(record.current)
    const keys: string[] = []
    for (const n of numbers) {
      const e164 = await this.#discovery.normalize(n)
      const contact = await contactRecord(this.#engine.store, e164)
      const m = state.members.find(
        (x) =>
          x.e164 === e164 ||
          (contact?.registered === true && x.address !== undefined && e2e.equal(x.address, contact.address)),
      )
      if (m === undefined) throw new ParleyError('NOT_FOUND', 'no such member in the group')
      keys.push(m.address === undefined ? `sms:${m.e164}` : toHex(m.address))
    }
    return keys
  }
}

/** Whether two states have the same name, avatar and members (revision and author aside). */
function sameGroup(a: GroupUpdateFields, b: GroupUpdateFields): boolean {
  const key = (u: GroupUpdateFields) =>
    JSON.stringify([
      u.name,
      u.avatarKey === undefined ? '' : toHex(u.avatarKey),
      withAdmin(u.members).map((m) => [m.address === undefined ? '' : toHex(m.address), m.e164, m.admin]),
    ])
  return key(a) === key(b)
}

/** Every member but this account, and its route: over IP, or for a member not on Parley, `sms`. */
function routesOf(state: GroupUpdateFields, self: Uint8Array, sms: 'sms' | 'unreached'): GroupRoute[] {
  return state.members
    .filter((m) => m.address === undefined || !e2e.equal(m.address, self))
    .map((m) => ({
      number: m.e164 || null,
      address: m.address === undefined ? null : toHex(m.address),
      route: m.address === undefined ? sms : 'ip',
    }))
}

function candidateOf(bytes: Uint8Array): GroupUpdateCandidate {
  return { update: decodeGroupUpdate(bytes), hash: groupUpdateHash(bytes) }
}

/** The state after `change` to `base` by `author`: the next revision, built on `parentHash`. */
function applyChange(
  base: GroupUpdateFields,
  change: GroupChangeRecord,
  author: Uint8Array,
  parentHash: Uint8Array,
): GroupUpdateFields {
  const keyOf = (m: GroupMemberFields) => (m.address === undefined ? `sms:${m.e164}` : toHex(m.address))
  let members = [...base.members]
  let name = base.name
  if ('add' in change) {
    for (const a of change.add) {
      const key = a.address ?? `sms:${a.e164}`
      if (members.some((m) => keyOf(m) === key)) continue
      members.push({ ...(a.address ? { address: fromHex(a.address) } : {}), e164: a.e164, admin: false })
    }
  } else if ('remove' in change) {
    members = withAdmin(members.filter((m) => !change.remove.includes(keyOf(m))))
  } else if ('admin' in change) {
    const target = change.admin.address
    if (!members.some((m) => keyOf(m) === target))
      throw new ParleyError('NOT_FOUND', 'no such member in the group')
    members = members.map((m) => (keyOf(m) === target ? { ...m, admin: change.admin.admin } : m))
    if (!members.some((m) => m.admin)) throw new ParleyError('INVALID_STATE', 'a group needs an admin')
  } else name = change.rename
  return { ...base, revision: base.revision + 1, parent: parentHash, author, name, members }
}
