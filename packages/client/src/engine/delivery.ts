// Delivery of one outbox entry (docs/architecture.md §6, §8): encrypted once with the contact's session (started
// from its prekey bundle when there is none), sealed with the current sender certificate, and sent by
// unidentified delivery when the contact gave us its token, else on the authenticated connection. A moved
// recipient is followed; a replaced recipient device gets a new session. Not exported.
import {
  type ClientFrameInput,
  type Content,
  joinSealed,
  opensNumberCommitment,
  ParleyError,
  type SealedMessage,
  type ServerFrame,
} from '@parley/protocol'
import { fromHex, toHex } from '../internal/codec.js'
import * as e2e from '../internal/e2e.js'
import type { StoreWrite } from '../Store.js'
import type { Contacts } from './contacts.js'
import { type Engine, expectBody } from './context.js'
import type { Conversations } from './conversations.js'
import { accountIdentity, type Devices } from './devices.js'
import {
  type AccountRecord,
  type CopyRecord,
  type DeviceListRecord,
  del,
  get,
  K,
  type OutboxRecord,
  type OutgoingBody,
  put,
  putAt,
  type SessionRecord,
  sessionRecord,
} from './keyspace.js'
import type { RelaySession } from './session.js'

/** Most member accounts in one `MultiRecipientSend` (the relay takes up to --max-recipients-per-send, 500). */
const GROUP_BATCH = 100

/** One member account's part of a group message, as `MultiSend` carries it. */
interface GroupSend {
  recipientAddress: Uint8Array
  messageId: Uint8Array
  deviceListVersion: number
  envelopes: { deviceId: number; envelope: Uint8Array }[]
  deliveryToken?: Uint8Array
}

/** One member account's devices for a group message, each with the identity key its part is sealed to. */
interface GroupTarget {
  address: Uint8Array
  deviceListVersion: number
  devices: { deviceId: number; key: Uint8Array }[]
}

/** A send of device parts as whole envelopes (part ‖ shared), for the paths that take no `shared` bytes. */
function joinedSend(send: GroupSend, shared: Uint8Array): GroupSend {
  return {
    ...send,
    envelopes: send.envelopes.map((e) => ({ ...e, envelope: joinSealed(e.envelope, shared) })),
  }
}

/** The unidentified connection is closed after this long without a send (the relay closes idle ones too). */
const ANONYMOUS_IDLE_MS = 30_000

export class Delivery {
  readonly #engine: Engine
  readonly #session: RelaySession
  readonly #contacts: Contacts
  readonly #devices: Devices
  readonly #conversations: Conversations
  #anonymousIdle: unknown = null
  #anonymousInFlight = 0
  /**
   * Queues a group's sender key (`key`, at the message being sent) for the member account `memberHex` again: its
   * device list changed, and a device of it may lack the chain. Wired in by the facade (engine/groups.ts).
   */
  resendGroupKey: ((groupId: string, memberHex: string, key: Uint8Array) => Promise<void>) | null = null

  constructor(
    engine: Engine,
    session: RelaySession,
    contacts: Contacts,
    devices: Devices,
    conversations: Conversations,
  ) {
    this.#conversations = conversations
    this.#engine = engine
    this.#session = session
    this.#contacts = contacts
    this.#devices = devices
  }

  /** Cancels the timer that closes the idle unidentified connection (the client is closing). */
  stopTimers(): void {
    if (this.#anonymousIdle !== null) this.#engine.clock.clearTimeout(this.#anonymousIdle)
  }

  /**
   * Encrypts (once), seals and sends the outbox entry under `key`, and removes it once the relay accepted it: to
   * the recipient's one device as before linked devices existed, or, once the recipient or this account has
   * several, one copy per device (and sent transcripts for this account's other devices).
   */
  async deliver(key: string, entry: OutboxRecord): Promise<void> {
    try {
      await this.#deliver(key, entry)
    } catch (err) {
      // The entry left the outbox meanwhile (the SMS fallback took it): nothing more to do.
      if (!(err instanceof Gone)) throw err
    } finally {
      this.#engine.sending.delete(entry.id)
    }
  }

  /** {@link deliver}, which may throw {@link Gone}. */
  async #deliver(key: string, entry: OutboxRecord): Promise<void> {
    if (entry.group !== undefined) {
      await this.#deliverGroup(key, entry)
      return
    }
    if (
      entry.multi === undefined &&
      !ownOnly(entry, this.#engine.requireAccount()) &&
      !(await this.#needsMulti(entry))
    ) {
      try {
        await this.#deliverSingle(key, entry)
        return
      } catch (err) {
        const e = ParleyError.fromUnknown(err)
        if (e.code !== 'STALE_DEVICES') throw e
        // The recipient has linked devices: fetch its list and send to each device. The message already
        // encrypted for its primary (if any) becomes the primary's copy, so no ratchet step is wasted.
        await this.#devices.refresh(entry.address)
        const stored = await this.#engine.store.get(key)
        if (stored !== undefined) entry = K.outbox.codec.decode(stored)
      }
    }
    await this.#deliverMulti(key, entry)
  }

  /**
   * Claims the entry for a send to the relay, once connected: in the serial queue (where the SMS fallback takes
   * entries too), so that an entry is either still queued and now claimed, or gone (throws {@link Gone}). The
   * caller releases the claim (`engine.sending`) when the relay answered or the send failed.
   */
  async #claim(key: string, entry: OutboxRecord): Promise<void> {
    const engine = this.#engine
    await engine.link.waitOnline()
    await engine.serial.run(async () => {
      if ((await engine.store.get(key)) === undefined) throw new Gone()
      engine.sending.add(entry.id)
    })
  }

  /**
   * The relay holds the entry's message for its recipient: `writes` (the outbox's part) with the message's new
   * state in its conversation, then `delivered` (never for a notice, which is not the app's message).
   */
  async #accepted(entry: OutboxRecord, writes: StoreWrite[]): Promise<void> {
    const engine = this.#engine
    if (isControl(entry) || entry.history !== undefined) {
      await engine.store.write(writes)
      return
    }
    await engine.store.write([...writes, ...(await this.#conversations.setState(entry.id, 'sent'))])
    engine.events.emit('delivered', { id: entry.id, to: entry.to })
  }

  /** Whether the entry goes to several devices: this account has others, or the recipient's list has several. */
  async #needsMulti(entry: OutboxRecord): Promise<boolean> {
    if (this.#devices.ownOthers().length > 0) return true
    const list = await this.#devices.cached(entry.address)
    return list !== undefined && list.devices.length > 1
  }

  /** The single-device path: one envelope, `SendMessage` or `UnidentifiedSend`. */
  async #deliverSingle(key: string, entry: OutboxRecord): Promise<void> {
    const engine = this.#engine
    const { store, serial } = engine
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        // A new session fetches the recipient's bundle here: NOT_FOUND from it is followed like one from the send.
        if (entry.message === undefined) entry = await serial.run(() => this.#encryptEntry(key, entry))
        // An indicator in a session the contact has not answered yet would be a prekey message, whose loss (it is
        // stored nowhere) or early arrival could confuse the start of the session: not sent.
        const typing = isTyping(entry)
        if (typing && entry.message?.kind !== 'ratchet') throw noTyping('the contact has not answered yet')
        await this.#claim(key, entry)
        const account = engine.requireAccount()
        const envelope = await this.#seal(account, entry.recipientIdentityKey!, entry.message!)
        const base = {
          recipientAddress: entry.address,
          recipientDeviceId: entry.deviceId ?? 0,
          messageId: fromHex(entry.id),
          envelope,
          ...(typing ? { ephemeral: true } : {}),
        }
        const token = await get(store, K.peerToken(toHex(entry.address)))
        if (token !== undefined && entry.message?.kind === 'ratchet') {
          // The contact has written to us and gave us its token: the relay need not learn who sends this.
          if (
            await this.#sendUnidentified(
              { unidentifiedSend: { ...base, deliveryToken: token } },
              entry.address,
            )
          ) {
            engine.stats.unidentifiedSent++
            await this.#accepted(entry, [del(key)])
            engine.sending.delete(entry.id)
            return
          }
        }
        expectBody(await engine.link.request({ sendMessage: base }), 'messageAccepted')
        await this.#accepted(entry, [del(key)])
        engine.sending.delete(entry.id)
        return
      } catch (err) {
        engine.sending.delete(entry.id)
        if (err instanceof Gone) throw err
        const e = ParleyError.fromUnknown(err)
        if (e.code === 'NOT_FOUND' && attempt === 0 && !isControl(entry)) {
          // Nobody at the address any more: after an OPRF key rotation the contact may have moved to its address
          // under the new key. Followed there (the same session, unless it still waits for a first reply).
          const moved = await this.#contacts.followContact(entry.to, entry.address)
          if (moved === null) throw e
          const restart = moved.restart
          entry = restart
            ? {
                ...entry,
                address: moved.address,
                message: undefined,
                recipientIdentityKey: undefined,
                deviceId: undefined,
              }
            : { ...entry, address: moved.address }
          await store.write([putAt(K.outbox, key, entry)])
          continue
        }
        if (e.code !== 'CONFLICT' || attempt > 0) throw e
        // The recipient re-activated on a new device: start a new session and encrypt again (the old one stays
        // archived behind it, for mail from the old device still in flight).
        await serial.run(() => this.#retireSession(entry.address))
        entry = { ...entry, message: undefined, recipientIdentityKey: undefined, deviceId: undefined }
      }
    }
  }

  /**
   * Sends by unidentified delivery on the connection that never authenticates. Resolves false when the
   * recipient no longer accepts the token (rotated, or re-activated): the token is forgotten and the caller
   * sends on the authenticated path instead.
   */
  async #sendUnidentified(
    request: Pick<ClientFrameInput, 'unidentifiedSend'> | Pick<ClientFrameInput, 'multiSend'>,
    address: Uint8Array,
  ): Promise<boolean> {
    const engine = this.#engine
    try {
      expectBody(await this.#onAnonymous(request), 'messageAccepted')
      return true
    } catch (err) {
      const e = ParleyError.fromUnknown(err)
      if (e.code === 'FORBIDDEN') {
        await engine.store.write([del(K.peerToken(toHex(address)))])
        return false
      }
      throw e
    }
  }

  /**
   * One request on the connection that never authenticates, opened for it and closed once idle (an open socket
   * that never authenticates is what the relay closes anyway).
   */
  async #onAnonymous(request: ClientFrameInput): Promise<ServerFrame> {
    const engine = this.#engine
    const { clock, anonymous } = engine
    if (this.#anonymousIdle !== null) clock.clearTimeout(this.#anonymousIdle)
    this.#anonymousIdle = null
    this.#anonymousInFlight++
    anonymous.start()
    try {
      await anonymous.waitOnline()
      return await anonymous.request(request)
    } catch (err) {
      const e = ParleyError.fromUnknown(err)
      // Not the main connection's trouble: retry on a timer (a reconnect of the main link may never come), and
      // never fall back to naming the sender just because this connection failed.
      if (e.code === 'UNAVAILABLE' || e.code === 'TIMEOUT' || e.code === 'CLOSED') {
        throw new ParleyError('UNAVAILABLE', 'the unidentified connection is unavailable', {
          retryAfterMs: e.retryAfterMs ?? 2000,
          cause: e,
        })
      }
      throw e
    } finally {
      if (--this.#anonymousInFlight === 0 && !engine.closed) {
        this.#anonymousIdle = clock.setTimeout(() => {
          this.#anonymousIdle = null
          if (this.#anonymousInFlight === 0) anonymous.stop()
        }, ANONYMOUS_IDLE_MS)
      }
    }
  }

  /**
   * Seals a session message for one recipient device with the current certificate (and the number, when it is
   * certified): an outbox entry's, or one device's copy of a multi-device message.
   */
  async #seal(
    account: AccountRecord,
    recipientIdentityKey: Uint8Array,
    message: SealedMessage,
  ): Promise<Uint8Array> {
    return e2e.seal({
      ours: account,
      recipientIdentityKey,
      message,
      ...(await this.#statement(account)),
      env: this.#engine,
    })
  }

  /** What every sealed message states of this device: its current certificate, its number and a recent notice. */
  async #statement(account: AccountRecord): Promise<e2e.SenderStatement> {
    const { bytes, cert } = await this.#session.senderCertificate(account)
    const salt = account.numberSalt
    // Stating a number the certificate does not commit to would make every recipient refuse the message.
    const number =
      salt !== undefined && opensNumberCommitment(cert, account.e164, salt)
        ? { e164: account.e164, salt }
        : undefined
    // For a while after a number change, every envelope carries the signed notice, for contacts that missed it.
    const change = account.addressChange
    const addressChange =
      change !== undefined && this.#engine.clock.now() < change.until ? change.notice : undefined
    return { certificate: bytes, number, addressChange }
  }

  /** Keeps a contact's session record but marks it replaced: the next send starts a new session. */
  async #retireSession(address: Uint8Array): Promise<void> {
    const { store } = this.#engine
    const record = await sessionRecord(store, address)
    if (record === null) return
    await store.write([put(K.session(toHex(address)), { ...record, stale: true })])
  }

  /**
   * Encrypts an outbox entry (in the serial queue): the ratchet step and the message that used it are persisted
   * together, so a retry resends the same message.
   */
  async #encryptEntry(key: string, entry: OutboxRecord): Promise<OutboxRecord> {
    const engine = this.#engine
    const { store, link } = engine
    const account = engine.requireAccount()
    // Taken by the SMS fallback meanwhile: writing the entry back would send it twice.
    if ((await store.get(key)) === undefined) throw new Gone()
    const addressHex = toHex(entry.address)
    let session = await sessionRecord(store, entry.address)
    let identityChanged = false
    // A session started here pins its identity; an existing one must not re-pin its (maybe older) identity over
    // one announced since (a held message's), which would make a changed verified contact look unchanged.
    let fresh = false
    if (session === null || session.stale === true) {
      if (isTyping(entry)) throw noTyping('no session with the contact')
      const frame = await link.request({ prekeyBundleQuery: { address: entry.address } })
      const bundle = expectBody(frame, 'prekeyBundle')
      const started = e2e.initiate(account, entry.address, bundle, engine)
      const verified = await get(store, K.verified(addressHex))
      if (verified !== undefined && !e2e.equal(verified, started.identityKey)) {
        throw new ParleyError(
          'IDENTITY_UNTRUSTED',
          "the contact's verified identity changed; approveIdentity() after comparing safety numbers",
        )
      }
      identityChanged = await this.#contacts.identityChanged(addressHex, started.identityKey)
      fresh = true
      // Earlier sessions (another identity, or mail still in flight) stay archived behind the new one.
      const old = session
      session = {
        deviceId: started.deviceId,
        identityKey: started.identityKey,
        state: started.state,
        previous:
          old === null ? [] : [old.state, ...(old.previous ?? [])].slice(0, e2e.MAX_PREVIOUS_SESSIONS),
      }
    }
    const token = account.deliveryTokenSet === true ? account.deliveryToken : undefined
    const sealed = e2e.encrypt({
      session: session.state,
      content: contentOf(entry, account, token, false),
      env: engine,
    })
    const updated: OutboxRecord = {
      ...entry,
      message: sealed.message,
      recipientIdentityKey: session.identityKey,
      deviceId: session.deviceId,
    }
    const record: SessionRecord = { ...session, state: sealed.state }
    // The ratchet step and the message that used it are persisted together, so a retry resends the same message.
    await store.write([
      put(K.session(addressHex), record),
      putAt(K.outbox, key, updated),
      ...(entry.to === '' ? [] : [put(K.byAddress(addressHex), entry.to)]),
      ...(fresh ? [put(K.identity(addressHex), session.identityKey)] : []),
    ])
    if (identityChanged) this.#contacts.emitIdentityChanged(entry.to, entry.address, session.identityKey)
    return updated
  }
  // ───────────────────────────── groups ─────────────────────────────

  /**
   * A group message (docs/architecture.md §6.10): the one `SenderKeyMessage` sealed once for every device of
   * every member account (a version-2 envelope: one content encryption, a 54-byte part per device), sent in
   * `MultiRecipientSend` requests with the shared bytes once each on the connection that never authenticates for
   * the members whose delivery token this device has, and as whole envelopes in one `MultiSend` each on the
   * authenticated one for the rest (and for this account's other devices). Each member gets its own random
   * message id; the rows the relay stores share their time, ephemeral key and ciphertext. Members done are
   * persisted after each request, so a retry after a crash or a lost connection sends only to the others; a
   * member whose list changed (STALE_DEVICES) is sent to again with its new list, and one refused for good (gone,
   * a full mailbox) is reported and dropped from this message.
   */
  async #deliverGroup(key: string, entry: OutboxRecord): Promise<void> {
    const engine = this.#engine
    let g = entry.group!
    const save = async () => {
      entry = { ...entry, group: g }
      await engine.store.write([putAt(K.outbox, key, entry)])
    }
    await this.#claim(key, entry)
    const refused: ParleyError[] = []
    let rekeyed = false
    for (let attempt = 0; attempt < 3 && !rekeyed; attempt++) {
      const pending = g.to.filter((hex) => !g.done.includes(hex))
      if (pending.length === 0) break
      const targets: { hex: string; target: GroupTarget }[] = []
      for (const hex of pending) {
        const target = await this.#groupTarget(fromHex(hex))
        if (target === null) {
          // No device key known for the member (nothing ever went to it): it cannot be sealed for.
          g = { ...g, done: [...g.done, hex] }
          refused.push(new ParleyError('NOT_FOUND', 'a group member has no known devices'))
          continue
        }
        targets.push({ hex, target })
      }
      if (targets.length === 0) continue
      // The content encrypted once for every pending member device; each gets a 54-byte part.
      const { shared, sends } = await this.#sealGroup(
        targets.map((t) => t.target),
        g.message,
      )
      const anonymousBatch: { hex: string; send: GroupSend }[] = []
      const named: { hex: string; send: GroupSend }[] = []
      for (const [i, { hex }] of targets.entries()) {
        const send = sends[i]!
        const token = await get(engine.store, K.peerToken(hex))
        if (token !== undefined) anonymousBatch.push({ hex, send: { ...send, deliveryToken: token } })
        else named.push({ hex, send: joinedSend(send, shared) })
      }
      const outcome = async (hex: string, error: ParleyError | null) => {
        if (error === null) {
          g = { ...g, done: [...g.done, hex] }
          return
        }
        if (error.code === 'STALE_DEVICES') {
          // A device was linked or removed: the list is fetched again, and the chain goes to the member again
          // (a new device has none); this message waits until the relay has taken that (the outbox's barrier).
          await this.#devices.refresh(fromHex(hex))
          await this.resendGroupKey?.(g.id, hex, g.key)
          rekeyed = true
          return
        }
        if (error.code === 'FORBIDDEN') {
          // The token was rotated or the member re-activated: the next attempt names this device instead.
          await engine.store.write([del(K.peerToken(hex))])
          return
        }
        if (error.code === 'RATE_LIMITED' || error.code === 'UNAVAILABLE' || error.code === 'TIMEOUT')
          throw error
        g = { ...g, done: [...g.done, hex] }
        refused.push(error)
      }
      // Requests of at most GROUP_BATCH recipients and about half a frame.
      let batch: { hex: string; send: GroupSend }[] = []
      let bytes = 0
      const flush = async () => {
        if (batch.length === 0) return
        const sent = batch
        batch = []
        bytes = 0
        const answer = expectBody(
          await this.#onAnonymous({ multiRecipientSend: { recipients: sent.map((b) => b.send), shared } }),
          'multiRecipientAccepted',
        )
        for (let i = 0; i < sent.length; i++) {
          const error = answer.outcomes[i]?.error
          await outcome(sent[i]!.hex, error ? e2e.wireError(error) : null)
        }
        engine.stats.unidentifiedSent += sent.length
        await save()
      }
      for (const b of anonymousBatch) {
        const size = b.send.envelopes.reduce((n, e) => n + e.envelope.length + 64, 64)
        const room = engine.anonymous.maxFrameBytes / 2 - shared.length
        if (batch.length >= GROUP_BATCH || bytes + size > room) await flush()
        batch.push(b)
        bytes += size
      }
      await flush()
      for (const n of named) {
        try {
          expectBody(await engine.link.request({ multiSend: n.send }), 'messageAccepted')
          await outcome(n.hex, null)
        } catch (err) {
          await outcome(n.hex, ParleyError.fromUnknown(err))
        }
        await save()
      }
    }
    // This account's other devices: their copies on the authenticated connection (as sent transcripts go).
    if (g.ownDone !== true && this.#devices.ownOthers().length > 0) {
      const own = await this.#groupTarget(engine.requireAccount().address, true)
      if (own !== null) {
        const { shared, sends } = await this.#sealGroup([own], g.message)
        await engine.link
          .request({ multiSend: joinedSend(sends[0]!, shared) })
          .catch((err: unknown) => refused.push(ParleyError.fromUnknown(err)))
      }
      g = { ...g, ownDone: true }
    }
    const left = g.to.filter((hex) => !g.done.includes(hex))
    if (left.length > 0) {
      await save()
      throw new ParleyError('UNAVAILABLE', 'some group members were not reached yet', { retryAfterMs: 2000 })
    }
    // An action (a reaction, edit or deletion) is none of the app's messages: no state, no `delivered`.
    const control = isControl(entry)
    await engine.store.write([
      del(key),
      ...(control ? [] : await this.#conversations.setState(entry.id, 'sent')),
    ])
    engine.sending.delete(entry.id)
    if (!control) engine.events.emit('delivered', { id: entry.id, to: entry.to })
    for (const e of refused) engine.emitRecoverable(e)
  }

  /**
   * Where one member account's copies of a group message go: each device of its verified list (the primary of an
   * account with no list, under the identity pinned for it) with its identity key; with `own`, this account's
   * other devices. Null when a device key is not known.
   */
  async #groupTarget(address: Uint8Array, own = false): Promise<GroupTarget | null> {
    const engine = this.#engine
    const account = engine.requireAccount()
    const list = own
      ? account.devices
      : ((await this.#devices.cached(address)) ?? (await this.#devices.refresh(address)))
    const pinned = own ? undefined : await get(engine.store, K.identity(toHex(address)))
    const devices = targetsOf(list, own ? account : null).map((t) => ({
      deviceId: t.deviceId,
      key: t.deviceKey ?? (t.primary ? pinned : undefined),
    }))
    if (devices.length === 0 || devices.some((d) => d.key === undefined)) return null
    return {
      address,
      deviceListVersion: list?.devices.length ? list.version : 0,
      devices: devices as { deviceId: number; key: Uint8Array }[],
    }
  }

  /**
   * A group message sealed once for every device of `targets` (a version-2 envelope): the shared bytes, and per
   * target its send with each device's part, under a fresh random message id per member (as every send has).
   */
  async #sealGroup(
    targets: readonly GroupTarget[],
    message: Uint8Array,
  ): Promise<{ shared: Uint8Array; sends: GroupSend[] }> {
    const engine = this.#engine
    const account = engine.requireAccount()
    const { shared, parts } = e2e.sealForMany({
      ours: account,
      recipientIdentityKeys: targets.flatMap((t) => t.devices.map((d) => d.key)),
      message: { kind: 'senderKey', body: message },
      ...(await this.#statement(account)),
      env: engine,
    })
    let at = 0
    const sends = targets.map((t) => ({
      recipientAddress: t.address,
      messageId: engine.random(16),
      deviceListVersion: t.deviceListVersion,
      envelopes: t.devices.map((d) => ({ deviceId: d.deviceId, envelope: parts[at++]! })),
    }))
    return { shared, sends }
  }

  // ───────────────────────────── several devices ─────────────────────────────

  /**
   * The multi-device path: one copy per device of the recipient's verified list in one `MultiSend` (again with
   * a fresh list after STALE_DEVICES), then one sent transcript per other device of this account. What is
   * encrypted is persisted with the session steps it used, so a retry after a crash resends the same copies.
   */
  async #deliverMulti(key: string, entry: OutboxRecord): Promise<void> {
    const engine = this.#engine
    const account = engine.requireAccount()
    let multi = entry.multi ?? {
      // A history chunk (or the number-change notice) goes to this account's other devices alone: there is no
      // recipient part.
      ...(ownOnly(entry, account) ? { recipientDone: true } : {}),
      listVersion: 0,
      // A message encrypted for the primary on the single-device path is that device's copy.
      copies:
        entry.message !== undefined &&
        entry.deviceId !== undefined &&
        entry.recipientIdentityKey !== undefined
          ? [{ deviceId: entry.deviceId, identityKey: entry.recipientIdentityKey, message: entry.message }]
          : [],
      transcripts: [],
    }
    entry = { ...entry, multi }
    if (multi.recipientDone !== true) {
      entry = await this.#sendCopies(key, entry, entry.address, 'copies')
      multi = { ...entry.multi!, recipientDone: true }
      entry = { ...entry, multi }
      await this.#accepted(entry, [putAt(K.outbox, key, entry)])
      engine.sending.delete(entry.id)
    }
    // A notice to a contact has no transcript (this account's devices get their own notice), nor has a receipt
    // or a typing indicator.
    const transcript =
      !(entry.notice === true && !ownOnly(entry, account)) &&
      !(entry.groupControl !== undefined && !ownOnly(entry, account)) &&
      !('receipt' in (entry.body ?? {})) &&
      !isTyping(entry)
    if (this.#devices.ownOthers().length > 0 && transcript) {
      await this.#sendCopies(key, entry, account.address, 'transcripts')
    }
    await engine.store.write([del(key)])
  }

  /**
   * Encrypts what is missing of one account's copies, seals them all and sends them in one `MultiSend`; on
   * STALE_DEVICES fetches the account's list again and sends to its devices now (copies for devices still in
   * it, with the same key, are kept). Resolves the entry as persisted.
   */
  async #sendCopies(
    key: string,
    entry: OutboxRecord,
    address: Uint8Array,
    field: 'copies' | 'transcripts',
  ): Promise<OutboxRecord> {
    const engine = this.#engine
    const own = field === 'transcripts'
    for (let attempt = 0; ; attempt++) {
      // Read again on every attempt: after STALE_DEVICES for this account's own list, `refresh` replaced the
      // account record, and the list held before it (say, from before later devices were linked) would be
      // refused again every time, so a device linked early could never send.
      const account = engine.requireAccount()
      const list =
        (own ? account.devices : await this.#devices.cached(address)) ??
        (own ? undefined : await this.#devices.refresh(address))
      const targets = targetsOf(list, own ? account : null)
      try {
        entry = await engine.serial.run(() => this.#encryptCopies(key, entry, address, targets, list, field))
      } catch (err) {
        if (err instanceof Gone) throw err
        const e = ParleyError.fromUnknown(err)
        const missing = e.cause
        if (!(missing instanceof NoBundle)) throw e
        // A linked device with no bundle: either it is gone from the account (the list held here is old: fetch
        // it again and send to the devices it has now), or it has not uploaded its prekeys yet (then the
        // message waits and is retried, never dropped as undeliverable).
        if (
          attempt >= 2 ||
          (await this.#devices.refresh(address)).devices.some((d) => d.deviceId === missing.deviceId)
        ) {
          throw new ParleyError('UNAVAILABLE', 'a linked device of the recipient has no prekeys yet', {
            retryAfterMs: 2000,
            cause: e,
          })
        }
        continue
      }
      const copies = entry.multi![field]
      if (copies.length === 0) return entry
      const typing = isTyping(entry)
      if (typing && copies.some((c) => c.message.kind !== 'ratchet')) {
        throw noTyping('a device of the contact has not answered yet')
      }
      // The recipient's part may still go by SMS instead (a sent transcript, after it, never does).
      if (!own) await this.#claim(key, entry)
      const envelopes = copies.map((c) => ({
        deviceId: c.deviceId,
        envelope: this.#seal(engine.requireAccount(), c.identityKey, c.message),
      }))
      const base = {
        recipientAddress: address,
        messageId: fromHex(entry.id),
        deviceListVersion: list?.devices.length ? list.version : 0,
        ...(typing ? { ephemeral: true } : {}),
      }
      try {
        const token = own ? undefined : await get(engine.store, K.peerToken(toHex(address)))
        const sealedAll = await Promise.all(
          envelopes.map(async (e) => ({ ...e, envelope: await e.envelope })),
        )
        if (token !== undefined && copies.every((c) => c.message.kind === 'ratchet')) {
          if (
            await this.#sendUnidentified(
              { multiSend: { ...base, envelopes: sealedAll, deliveryToken: token } },
              address,
            )
          ) {
            engine.stats.unidentifiedSent++
            return entry
          }
        }
        expectBody(
          await engine.link.request({ multiSend: { ...base, envelopes: sealedAll } }),
          'messageAccepted',
        )
        return entry
      } catch (err) {
        // Released here on failure; on success the caller releases it once `recipientDone` is written.
        if (!own) engine.sending.delete(entry.id)
        const e = ParleyError.fromUnknown(err)
        if (e.code !== 'STALE_DEVICES' || attempt >= 2) throw e
        await this.#devices.refresh(address)
      }
    }
  }

  /**
   * Encrypts the entry for every target device that has no copy yet (in the serial queue), starting a session
   * from the device's prekey bundle where there is none. A linked device's bundle must carry the key the
   * verified list gives it, and the primary's the identity pinned for the account: a relay that answers with
   * another key gets no ciphertext. Copies for devices no longer targeted are dropped. One atomic write.
   */
  async #encryptCopies(
    key: string,
    entry: OutboxRecord,
    address: Uint8Array,
    targets: Target[],
    list: DeviceListRecord | undefined,
    field: 'copies' | 'transcripts',
  ): Promise<OutboxRecord> {
    const engine = this.#engine
    const { store, link } = engine
    const account = engine.requireAccount()
    if ((await store.get(key)) === undefined) throw new Gone()
    const hex = toHex(address)
    const own = field === 'transcripts'
    const kept = entry.multi![field].filter((c) =>
      targets.some(
        (t) =>
          t.deviceId === c.deviceId && (t.deviceKey === undefined || e2e.equal(t.deviceKey, c.identityKey)),
      ),
    )
    const writes: StoreWrite[] = []
    const copies: CopyRecord[] = [...kept]
    let changedIdentity: Uint8Array | null = null
    const token = !own && account.deliveryTokenSet === true ? account.deliveryToken : undefined
    for (const t of targets) {
      if (copies.some((c) => c.deviceId === t.deviceId)) continue
      const slot = t.primary ? K.session(hex) : K.deviceSession(hex, t.deviceId)
      let session = (await get(store, slot)) ?? null
      const usable =
        session !== null &&
        session.stale !== true &&
        session.deviceId === t.deviceId &&
        (t.deviceKey === undefined || e2e.equal(session.identityKey, t.deviceKey))
      if (!usable) {
        if (isTyping(entry)) throw noTyping('no session with a device of the contact')
        const frame = await link
          .request({ prekeyBundleQuery: { address, deviceId: t.primary ? 0 : t.deviceId } })
          .catch((err: unknown) => {
            const e = ParleyError.fromUnknown(err)
            if (e.code !== 'NOT_FOUND' || t.primary) throw e
            // Decided by the caller (#sendCopies), which may fetch the list again first.
            throw new ParleyError('NOT_FOUND', 'a linked device of the recipient has no prekey bundle', {
              cause: new NoBundle(t.deviceId),
            })
          })
        const bundle = expectBody(frame, 'prekeyBundle')
        const started = e2e.initiate(account, address, bundle, engine)
        if (started.deviceId !== t.deviceId) {
          throw new ParleyError('STALE_DEVICES', 'the relay gave a bundle of another device', {
            deviceListVersion: list?.version ?? 0,
          })
        }
        const expected = t.deviceKey ?? (own ? accountIdentity(account) : undefined)
        if (expected !== undefined && !e2e.equal(expected, started.identityKey)) {
          throw new ParleyError(
            'VERIFICATION_FAILED',
            "the relay's prekey bundle is not signed by the device key in the account's device list",
          )
        }
        if (t.primary && !own) {
          const verified = await get(store, K.verified(hex))
          if (verified !== undefined && !e2e.equal(verified, started.identityKey)) {
            throw new ParleyError(
              'IDENTITY_UNTRUSTED',
              "the contact's verified identity changed; approveIdentity() after comparing safety numbers",
            )
          }
          if (await this.#contacts.identityChanged(hex, started.identityKey))
            changedIdentity = started.identityKey
          writes.push(put(K.identity(hex), started.identityKey))
        }
        const old = session
        session = {
          deviceId: started.deviceId,
          identityKey: started.identityKey,
          state: started.state,
          previous:
            old === null ? [] : [old.state, ...(old.previous ?? [])].slice(0, e2e.MAX_PREVIOUS_SESSIONS),
        }
      }
      const sealed = e2e.encrypt({
        session: session!.state,
        content: contentOf(entry, account, token, own),
        env: engine,
      })
      writes.push(put(slot, { ...session!, state: sealed.state }))
      copies.push({ deviceId: t.deviceId, identityKey: session!.identityKey, message: sealed.message })
    }
    const updated: OutboxRecord = {
      ...entry,
      multi: {
        ...entry.multi!,
        [field]: copies,
        ...(field === 'copies' ? { listVersion: list?.version ?? 0 } : { ownVersion: list?.version ?? 0 }),
      },
    }
    if (!own && entry.to !== '') writes.push(put(K.byAddress(hex), entry.to))
    // The ratchet steps and the copies that used them are persisted together.
    await store.write([...writes, putAt(K.outbox, key, updated)])
    if (changedIdentity !== null) this.#contacts.emitIdentityChanged(entry.to, address, changedIdentity)
    return updated
  }
}

/** Whether the entry goes to this account's other devices alone: a history chunk, or its own number-change notice. */
function ownOnly(entry: OutboxRecord, account: AccountRecord): boolean {
  return (
    entry.history !== undefined ||
    ((entry.notice === true || entry.groupControl !== undefined) && e2e.equal(entry.address, account.address))
  )
}

/**
 * What an outbox entry encrypts to: its text (with this account's delivery token, and on a sent transcript the
 * conversation's address), a history chunk, or the number-change notice (to this account's own devices with its
 * new number and salt). `own`: the copy is for one of this account's devices.
 */
function contentOf(
  entry: OutboxRecord,
  account: AccountRecord,
  token: Uint8Array | undefined,
  own: boolean,
): Content {
  const head = { messageId: fromHex(entry.id), sentAtMs: entry.sentAt }
  if (entry.history !== undefined) return { ...head, history: entry.history }
  const group = entry.groupControl
  if (group !== undefined) {
    const token = own || account.deliveryTokenSet !== true ? {} : { deliveryToken: account.deliveryToken! }
    if (group.update !== undefined) return { ...head, groupUpdate: group.update, ...token }
    return { ...head, groupKey: group.key!, ...token }
  }
  if (entry.notice === true) {
    const notice = account.addressChange?.notice
    if (notice === undefined) throw new ParleyError('INVALID_STATE', 'no number-change notice to send')
    const salt = account.numberSalt
    return {
      ...head,
      addressChange: notice,
      ...(own && salt !== undefined ? { accountNumber: { e164: account.e164, salt } } : {}),
    }
  }
  const context = {
    ...(token === undefined ? {} : { deliveryToken: token }),
    ...(own ? { transcriptTo: entry.address } : {}),
  }
  const body = entry.body
  if (body !== undefined) return { ...head, ...bodyContent(body), ...context }
  return {
    ...head,
    text: entry.text,
    ...(entry.replyTo === undefined ? {} : { replyTo: fromHex(entry.replyTo) }),
    ...context,
  }
}

/** The content of a reaction, edit, deletion, receipt or typing indicator, with a fallback text where one helps. */
export function bodyContent(body: OutgoingBody): Omit<Content, 'messageId' | 'sentAtMs'> {
  if ('attachment' in body) {
    const a = body.attachment
    return {
      attachment: {
        blobId: fromHex(a.blobId),
        key: a.key,
        digest: a.digest,
        size: a.size,
        ciphertextSize: a.ciphertextSize,
        chunkSize: a.chunkSize,
        ...(a.mimeType === undefined ? {} : { mimeType: a.mimeType }),
        ...(a.fileName === undefined ? {} : { fileName: a.fileName }),
        ...(a.caption === undefined ? {} : { caption: a.caption }),
        ...(a.preview === undefined ? {} : { preview: a.preview }),
      },
      fallbackText: a.caption ? `[file] ${a.caption}` : '[file]',
    }
  }
  if ('reaction' in body) {
    const r = body.reaction
    return {
      reaction: { targetId: fromHex(r.targetId), emoji: r.emoji, remove: r.remove },
      fallbackText: r.remove ? `took back ${r.emoji}` : `reacted ${r.emoji}`,
    }
  }
  if ('edit' in body) {
    return {
      edit: { targetId: fromHex(body.edit.targetId), text: body.edit.text },
      fallbackText: `edited: ${body.edit.text}`,
    }
  }
  if ('deleteForEveryone' in body) {
    return { deleteForEveryone: fromHex(body.deleteForEveryone), fallbackText: 'deleted a message' }
  }
  if ('typing' in body) return { typing: { started: body.typing } }
  return { receipt: { kind: body.receipt.kind, messageIds: body.receipt.messageIds.map(fromHex) } }
}

/** Whether an entry is a typing indicator: sent ephemeral, only in a session the contact has answered. */
export function isTyping(entry: OutboxRecord): boolean {
  return entry.body !== undefined && 'typing' in entry.body
}

/** What a typing indicator that cannot go now gets: dropped by the outbox, never retried or reported. */
function noTyping(why: string): ParleyError {
  return new ParleyError('NOT_FOUND', `typing indicator not sent: ${why}`)
}

/** Whether an entry is not the app's message but a control message (a notice, reaction, edit, deletion, receipt). */
export function isControl(entry: OutboxRecord): boolean {
  return (
    entry.notice === true ||
    entry.groupControl !== undefined ||
    (entry.body !== undefined && !('attachment' in entry.body))
  )
}

/** The entry left the outbox while it was being sent (the SMS fallback took it). */
class Gone {}

/** Why a copy could not be made: the relay has no prekey bundle for the linked device `deviceId`. */
class NoBundle {
  constructor(readonly deviceId: number) {}
}

/** One device a copy goes to: its id, the key the verified list gives it (absent: the primary of no list). */
interface Target {
  deviceId: number
  primary: boolean
  deviceKey?: Uint8Array
}

/**
 * The devices to send to: every device of the verified list, or the primary alone when the account has none;
 * for this account's own list (`own` set), every device but this one.
 */
function targetsOf(list: DeviceListRecord | undefined, own: AccountRecord | null): Target[] {
  if (list === undefined || list.devices.length === 0) {
    if (own !== null) return []
    return list === undefined ? [] : [{ deviceId: list.primaryDeviceId, primary: true }]
  }
  return list.devices
    .filter((d) => own === null || d.deviceId !== own.deviceId)
    .map((d) => ({
      deviceId: d.deviceId,
      primary: d.deviceId === list.primaryDeviceId,
      deviceKey: d.deviceKey,
    }))
}
