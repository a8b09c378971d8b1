/**
 * The Parley client engine (docs/architecture.md §8): activation, private discovery, end-to-end encrypted sessions,
 * a durable outbox and an exactly-once inbox, over an injected transport and store.
 * @module
 */
import { assertCryptoProvider, type IdentityKeyPair, ParleyError } from '@parley/protocol'
import { systemClock } from './Clock.js'
import type { Listener } from './Emitter.js'
import { Activator } from './engine/activation.js'
import { Attachments } from './engine/attachments.js'
import { Backups } from './engine/backup.js'
import { Contacts } from './engine/contacts.js'
import { Engine } from './engine/context.js'
import { Conversations } from './engine/conversations.js'
import { Delivery } from './engine/delivery.js'
import { Devices } from './engine/devices.js'
import { DEFAULT_DISCOVERY_TTL_MS, Discovery } from './engine/discovery.js'
import { Groups } from './engine/groups.js'
import { Inbox } from './engine/inbox.js'
import { get, K } from './engine/keyspace.js'
import { createLinks } from './engine/links.js'
import { Outbox, type SmsRoute } from './engine/outbox.js'
import { Prekeys } from './engine/prekeys.js'
import { parseTrustRoot, RelaySession } from './engine/session.js'
import { fromHex, toHex } from './internal/codec.js'
import type { ConnectionState } from './RelayLink.js'
import type {
  ActivateOptions,
  Activation,
  ActivationPending,
  CallOptions,
  ConfirmOptions,
  Conversation,
  ConversationPage,
  CreateGroupOptions,
  DeviceInfo,
  DiscoveryResult,
  GroupInfo,
  GroupSendResult,
  HistoryPageOptions,
  IncomingMessage,
  LinkCodeOptions,
  LinkedAccount,
  LinkInvitation,
  NumberChange,
  OutgoingAttachment,
  ParleyClientOptions,
  ParleyEvents,
  RestoredBackup,
  SendOptions,
  SendResult,
} from './types.js'

/** A duration option: omitted, or a positive finite number of milliseconds (a RangeError otherwise). */
function positiveMs(value: unknown, name: string): void {
  if (value === undefined) return
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number of milliseconds`)
  }
}

/** How long close() waits for the relay to take the acks still queued. */
const CLOSE_ACK_WAIT_MS = 1_000

/**
 * A Parley client: one device of one account.
 *
 * Created by a platform SDK (`@parley/node`, `@parley/browser`) or directly with an injected transport and store.
 * Nothing is sent, and no connection is opened, before {@link ParleyClient.activate} with `consent: true`
 * (or, on later starts, unless the device was activated before).
 *
 * @example
 * const parley = await ParleyClient.create({ relayUrl, transport, store, defaultRegion: 'US' })
 * await parley.activate({ phoneNumber: '+1 415 555 0100', consent: true })
 * await parley.confirm('123456')
 * await parley.send('+1 415 555 0101', 'hi')
 */
export class ParleyClient {
  // The facade: the options are checked and the parts (engine/) wired here; each call goes to the part that owns it.
  readonly #engine: Engine
  readonly #session: RelaySession
  readonly #prekeys: Prekeys
  readonly #inbox: Inbox
  readonly #outbox: Outbox
  readonly #delivery: Delivery
  readonly #attachments: Attachments
  readonly #conversations: Conversations
  readonly #devices: Devices
  readonly #backups: Backups
  readonly #contacts: Contacts
  readonly #discovery: Discovery
  readonly #activation: Activator
  readonly #groups: Groups

  private constructor(options: ParleyClientOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options are required')
    if (typeof options.relayUrl !== 'string' || !/^wss?:\/\//.test(options.relayUrl)) {
      throw new TypeError('relayUrl must be a ws:// or wss:// URL')
    }
    if (typeof options.transport?.open !== 'function') throw new TypeError('transport must implement open()')
    if (typeof options.store?.write !== 'function')
      throw new TypeError('store must implement the Store interface')
    const sms = smsPolicy(options.smsFallback)
    const r = options.receipts
    if (
      r !== undefined &&
      (typeof r !== 'object' ||
        r === null ||
        (r.delivery !== undefined && typeof r.delivery !== 'boolean') ||
        (r.read !== undefined && typeof r.read !== 'boolean'))
    ) {
      throw new TypeError('receipts must be { delivery?: boolean, read?: boolean }')
    }
    if (options.crypto !== undefined) assertCryptoProvider(options.crypto)
    if (options.streamUploads !== undefined && typeof options.streamUploads !== 'boolean')
      throw new TypeError('streamUploads must be a boolean')
    const maxMembers = options.maxGroupMembers
    if (maxMembers !== undefined && (!Number.isInteger(maxMembers) || maxMembers < 2 || maxMembers > 1000))
      throw new RangeError('maxGroupMembers must be an integer from 2 to 1,000')
    positiveMs(options.requestTimeoutMs, 'requestTimeoutMs')
    positiveMs(options.discoveryTtlMs, 'discoveryTtlMs')
    positiveMs(options.reconnect?.minDelayMs, 'reconnect.minDelayMs')
    positiveMs(options.reconnect?.maxDelayMs, 'reconnect.maxDelayMs')
    const { minDelayMs, maxDelayMs } = options.reconnect ?? {}
    if (minDelayMs !== undefined && maxDelayMs !== undefined && minDelayMs > maxDelayMs) {
      throw new RangeError('reconnect.minDelayMs must not exceed reconnect.maxDelayMs')
    }
    const clock = options.clock ?? systemClock
    const random = options.random ?? ((n: number) => crypto.getRandomValues(new Uint8Array(n)))
    const givenTrustRoot = parseTrustRoot(options.relayKeys)
    const { link, anonymous } = createLinks(options, clock, random, {
      anonymous: {
        // The same pins as the main connection; nothing else is ever sent on this one but unidentified mail.
        onHandshake: (hello) => this.#session.checkPins(hello),
        onPush: () => {},
        onState: () => {},
      },
      main: {
        onHandshake: (hello, link) => this.#session.onHandshake(hello, link),
        onPush: (frame) => this.#inbox.onPush(frame),
        onState: (state, info) => {
          if (state !== 'online') this.#engine.authenticated = false
          this.#engine.events.emit('connection', { state, ...info })
          if (state === 'online' && this.#engine.account !== null) this.#afterOnline()
        },
      },
    })
    const engine = new Engine({
      store: options.store,
      clock,
      random,
      crypto: options.crypto,
      link,
      anonymous,
    })
    const discovery = new Discovery(engine, options.defaultRegion)
    const prekeys = new Prekeys(engine)
    const session = new RelaySession(engine, discovery, givenTrustRoot, {
      banned: (error) => {
        void this.#outbox.failQueued(error).catch((err) => engine.emitError(err))
      },
      moved: () => {
        void this.#devices.republish().catch((err) => engine.emitRecoverable(err))
      },
    })
    const conversations = new Conversations(engine, discovery, options.receipts)
    const contacts = new Contacts(engine, discovery)
    const devices = new Devices(engine, prekeys, {
      linked: async () => {
        // Log in on this connection now (as after an activation), then hand the relay this device's prekeys.
        const hello = link.hello
        if (hello !== null && link.state === 'online') {
          await session.authenticate(hello, link)
          this.#afterOnline()
        } else {
          link.drop('linked')
        }
      },
      queueHistory: (chunks) => this.#outbox.queueHistory(chunks),
      linkedDevice: () => this.#groups.shareWithOwnDevices(),
    })
    const delivery = new Delivery(engine, session, contacts, devices, conversations)
    delivery.resendGroupKey = (groupId, memberHex, key) => this.#groups.resendKey(groupId, memberHex, key)
    const ttl = options.discoveryTtlMs ?? DEFAULT_DISCOVERY_TTL_MS
    const outbox = new Outbox(engine, delivery, discovery, sms, ttl, conversations)
    const groups = new Groups(engine, discovery, devices, conversations, sms?.send, options.maxGroupMembers)
    groups.enqueue = (build) => outbox.enqueue(build)
    this.#groups = groups
    this.#inbox = new Inbox(engine, session, contacts, discovery, prekeys, devices, conversations, groups)
    this.#conversations = conversations
    this.#attachments = new Attachments(engine, options.relayUrl, undefined, options.streamUploads ?? true)
    conversations.sendControl = (address, number, body) => outbox.queueControl(address, number, body)
    conversations.sendGroupAction = (groupId, action) => groups.sendAction(groupId, action)
    this.#devices = devices
    this.#backups = new Backups(engine)
    this.#activation = new Activator(engine, session, discovery, prekeys, {
      afterOnline: () => this.#afterOnline(),
      deactivated: () => outbox.clearDeferrals(),
      queueNotices: (to) => outbox.queueNotices(to),
    })
    this.#engine = engine
    this.#discovery = discovery
    this.#prekeys = prekeys
    this.#session = session
    this.#contacts = contacts
    this.#delivery = delivery
    this.#outbox = outbox
  }

  /**
   * Creates a client over the given store, restoring any earlier activation. Opens a connection only if
   * this device was activated before.
   * @param options - see {@link ParleyClientOptions}
   * @returns the client
   * @throws TypeError for missing or malformed options
   * @example const parley = await ParleyClient.create({ relayUrl: 'ws://localhost:8787', transport, store })
   */
  static async create(options: ParleyClientOptions): Promise<ParleyClient> {
    const client = new ParleyClient(options)
    await client.#load()
    return client
  }

  async #load(): Promise<void> {
    const engine = this.#engine
    engine.account = (await get(engine.store, K.account)) ?? null
    await this.#outbox.load()
    if (engine.account !== null) engine.link.start()
  }

  // ───────────────────────────── public API ─────────────────────────────

  /** Whether this device has an active account. */
  get activated(): boolean {
    return this.#engine.account !== null
  }

  /** The account's address (hex), once activated. */
  get address(): string | null {
    const account = this.#engine.account
    return account === null ? null : toHex(account.address)
  }

  /** The connection state. */
  get connectionState(): ConnectionState {
    return this.#engine.link.state
  }

  /**
   * Subscribes to an event; returns a function that unsubscribes.
   * @example parley.on('message', (m) => console.log(m.from, m.text))
   */
  on<K extends keyof ParleyEvents>(event: K, listener: Listener<ParleyEvents[K]>): () => void {
    return this.#engine.events.on(event, listener)
  }

  /** Removes an event listener. */
  off<K extends keyof ParleyEvents>(event: K, listener: Listener<ParleyEvents[K]>): void {
    this.#engine.events.off(event, listener)
  }

  /**
   * Received messages as an async iterator, from now until {@link close}.
   * @example for await (const m of parley.messages()) console.log(m.text)
   */
  messages(options: CallOptions = {}): AsyncIterableIterator<IncomingMessage> {
    return this.#inbox.messages(options)
  }

  /**
   * Starts activation: the relay asks its verifier to send a code to `phoneNumber`. This is the first call
   * that sends anything, and only with `consent: true`.
   * @param options - `phoneNumber`, `consent: true`, and an optional `signal`
   * @returns the E.164 number and the code's lifetime
   * @throws TypeError when `consent` is not `true` or `pin` is too short; ParleyError `INVALID_NUMBER`,
   *   `RATE_LIMITED`, `UNAVAILABLE`
   * @example await parley.activate({ phoneNumber: '+1 415 555 0100', consent: true })
   */
  async activate(options: ActivateOptions): Promise<ActivationPending> {
    this.#engine.checkOpen()
    return this.#activation.activate(options)
  }

  /**
   * Completes activation with the code the user received: creates this device's keys, registers them,
   * and checks that the address the relay assigned is the one the OPRF gives for the number.
   *
   * When the number's account has a registration lock (set on an earlier device with
   * {@link ParleyClient.setRegistrationLock}), the code is not enough: the PIN given here or to `activate` is
   * proved to the relay (it never sees the PIN itself). Without one, or with a wrong one, this rejects
   * `REGISTRATION_LOCKED` with `registrationLock.attemptsLeft` and `lapsesInMs`; the activation stays pending,
   * so call `confirm(code, { pin })` again with the same code.
   * @param code - the six-digit code
   * @param options - `pin` (the registration-lock PIN) and `signal`
   * @returns the account's address and device id, and how many messages the relay restored (mail that was
   *   waiting when another device took the number from this one, kept for this device's identity key)
   * @throws TypeError for a code that is not six digits or a PIN of fewer than 4 characters; ParleyError
   *   `INVALID_STATE` (no pending activation), `INVALID_CODE`, `EXPIRED`, `RATE_LIMITED`, `REGISTRATION_LOCKED`
   *   (with `retryAfterMs` when no guess is left for now), `VERIFICATION_FAILED`
   * @example await parley.confirm('123456')
   * @example await parley.confirm('123456', { pin: '4921' }) // after REGISTRATION_LOCKED
   */
  async confirm(code: string, options: ConfirmOptions = {}): Promise<Activation> {
    this.#engine.checkOpen()
    return this.#activation.confirm(code, options)
  }

  /**
   * Starts moving this account to a new number (the user got a new SIM, say): the relay has its verifier send a
   * code to `number`, as for an activation. Nothing changes until {@link ParleyClient.confirmNumberChange}.
   * Only the primary device (the one that activated the number) can.
   * @param number - the new number, in any common format
   * @param options - `signal`
   * @returns the new number in E.164 form and the code's lifetime
   * @throws ParleyError `INVALID_STATE` before activation, on a linked device, or for the account's own number;
   *   `INVALID_NUMBER`, `RATE_LIMITED`, `UNAVAILABLE`
   * @example await parley.changeNumber('+1 415 555 0199')
   */
  async changeNumber(number: string, options: CallOptions = {}): Promise<ActivationPending> {
    this.#engine.checkOpen()
    return this.#activation.changeNumber(number, options)
  }

  /**
   * Completes a number change with the code sent to the new number. The account keeps its identity (safety
   * numbers do not change), sessions, linked devices and waiting mail; it moves to the new number's address, and
   * every contact is sent a notice signed by the account identity, so its conversation continues under the new
   * number (`numberChanged` on its side). Linked devices follow when they next connect. The old number no longer
   * leads to this account.
   * @param code - the six-digit code sent to the new number
   * @param options - `signal`
   * @returns the new number and address, and how many contacts the notice was queued for
   * @throws TypeError for a code that is not six digits; ParleyError `INVALID_STATE` (no pending change, or a
   *   linked device), `INVALID_CODE`, `EXPIRED`, `CONFLICT` (the new number has a Parley account of its own:
   *   deactivate that one first, then confirm again with the same code), `RATE_LIMITED`, `VERIFICATION_FAILED`
   * @example const { e164 } = await parley.confirmNumberChange('123456')
   */
  async confirmNumberChange(code: string, options: CallOptions = {}): Promise<NumberChange> {
    this.#engine.checkOpen()
    return this.#activation.confirmNumberChange(code, options)
  }

  /**
   * Sets (or replaces) this account's registration lock: activating the number on another device will then
   * need `pin` as well as the SMS code, until the account has been inactive for the relay's lapse period
   * (7 days by default), so that whoever gets hold of the number (a SIM swap, a ported number) cannot take the
   * account over. The PIN never leaves this device: it is stretched with scrypt, and the relay keeps a hash of
   * the result. Nothing is stored here, so the user must remember the PIN.
   * @param pin - 4 to 64 characters (digits or any text), compared after Unicode NFKD normalisation
   * @throws TypeError for a PIN that is too short or too long; ParleyError `INVALID_STATE` before activation,
   *   `UNAVAILABLE` when the relay cannot be reached
   * @example await parley.setRegistrationLock('4921')
   */
  async setRegistrationLock(pin: string, options: CallOptions = {}): Promise<void> {
    this.#engine.checkOpen()
    return this.#activation.setRegistrationLock(pin, options)
  }

  /**
   * Removes this account's registration lock: the SMS code alone activates the number again.
   * @throws ParleyError `INVALID_STATE` before activation, `UNAVAILABLE` when the relay cannot be reached
   * @example await parley.clearRegistrationLock()
   */
  async clearRegistrationLock(options: CallOptions = {}): Promise<void> {
    this.#engine.checkOpen()
    return this.#activation.clearRegistrationLock(options)
  }

  /**
   * Finds out which numbers are on Parley without revealing them: each number is blinded (RFC 9497 VOPRF),
   * evaluated by the relay with a proof checked against its pinned key, and looked up by a short address
   * prefix. Results are cached, so asking again costs no quota.
   * @param numbers - phone numbers in any common format (at most 10,000 per call)
   * @returns one result per number, in order; invalid numbers come back with `e164: null`
   * @throws TypeError when `numbers` is not an array of strings, RangeError for more than 10,000; ParleyError
   *   `INVALID_STATE` before activation, `RATE_LIMITED` (with `retryAfterMs`), `VERIFICATION_FAILED` when the
   *   relay's proof does not verify
   * @example const found = await parley.discover(['+1 415 555 0101', '(415) 555-0102'])
   */
  async discover(numbers: readonly string[], options: CallOptions = {}): Promise<DiscoveryResult[]> {
    this.#engine.checkOpen()
    return this.#discovery.discover(numbers, options)
  }

  /**
   * Sends a text. To a number on Parley it is end-to-end encrypted and queued durably before this
   * resolves (`route: 'ip'`), then delivered when possible, across reconnects and restarts. When the
   * recipient's mailbox on the relay is full (`MAILBOX_FULL`), only messages to that recipient wait: they
   * stay queued, in order, and are tried again when the relay's `retryAfterMs` ends (at most 10 minutes
   * later, or at once after a restart), while messages to everyone else go on. To a number not on Parley it
   * is handed to `smsFallback` (`route: 'sms'`) and nothing is uploaded. With an SMS policy
   * (`smsFallback: { send, after }`), a queued message the relay has not taken within `after` goes by SMS
   * instead (`sentBySms`), and with no connection a number never looked up goes by SMS at once.
   * @param to - the recipient's number
   * @param text - the message (at most 64 KiB of UTF-8)
   * @returns the message id and its route
   * @throws TypeError when `text` is not a string; ParleyError `TOO_LARGE` for a text over 64 KiB of UTF-8,
   *   `INVALID_NUMBER`, `INVALID_STATE` before activation, `NOT_FOUND` when the recipient is not on Parley and there
   *   is no `smsFallback`, `FORBIDDEN` once the relay has refused this account's login (a ban; see the `error` event)
   * @example const { id, route } = await parley.send('+1 415 555 0101', 'hi')
   */
  async send(to: string, text: string, options: SendOptions = {}): Promise<SendResult> {
    this.#engine.checkOpen()
    return this.#outbox.send(to, text, options)
  }

  // ───────────────────────────── groups ─────────────────────────────

  /**
   * Creates an end-to-end encrypted group with this account as its admin (docs/architecture.md §6.10). Its
   * state — id, name, members, admins — is sent to each member over the pairwise session and lives only on
   * members' devices; the relay never learns it. Members not on Parley are reached through `smsFallback`.
   * @param options - `name`, and the other members' numbers
   * @returns the group
   * @throws ParleyError `NOT_FOUND` when a member is not on Parley and there is no `smsFallback`,
   *   `INVALID_NUMBER`; RangeError over 1,000 members or a name over 256 UTF-8 bytes
   * @example const group = await parley.createGroup({ name: 'Hikers', members: ['+1 415 555 0101'] })
   */
  async createGroup(options: CreateGroupOptions): Promise<GroupInfo> {
    this.#engine.checkOpen()
    return this.#groups.create(options)
  }

  /**
   * The groups this device holds (those it left, or was removed from, included, with `left` set).
   * @example for (const g of await parley.groups()) console.log(g.name, g.members.length)
   */
  async groups(): Promise<GroupInfo[]> {
    this.#engine.checkOpen()
    return this.#groups.list()
  }

  /**
   * One group by its id, or null when this device holds no such group.
   * @param groupId - the group's id (64 hex digits)
   */
  async group(groupId: string): Promise<GroupInfo | null> {
    this.#engine.checkOpen()
    return this.#groups.get(groupId)
  }

  /**
   * Sends a text to a group: encrypted once under this device's sender key, then sealed for every member device
   * and sent in one request per up to 100 members; members not on Parley get it through `smsFallback` (with the
   * group named in its context), never uploaded. Queued durably like {@link ParleyClient.send}.
   * @param groupId - the group's id
   * @param text - the message (at most 64 KiB of UTF-8)
   * @param options - `replyTo`: the id of a message it quotes
   * @returns the message id and each member's route
   * @throws ParleyError `NOT_FOUND` (no such group), `FORBIDDEN` (no longer a member), `TOO_LARGE`
   * @example await parley.sendGroup(group.id, 'on my way')
   */
  async sendGroup(
    groupId: string,
    text: string,
    options: { replyTo?: string } = {},
  ): Promise<GroupSendResult> {
    this.#engine.checkOpen()
    return this.#groups.send(groupId, text, options)
  }

  /**
   * Sends a file to a group: encrypted on this device and uploaded once, with room for every member device to
   * fetch it (the relay grants a download per device, up to 5,000 for a small file and 64 for one of the relay's
   * largest size, in proportion between; it deletes the file after them, or after 30 days: when it grants fewer
   * than the group's devices, an `error` event says so, and the last to fetch it may find it gone), then named
   * with its key and digest in one group message.
   * Members not on Parley are reported `unreached` (SMS carries no file).
   * @param groupId - the group's id
   * @param file - as {@link ParleyClient.sendAttachment}: `data` or `{ stream, size }`, `mimeType`, `fileName`,
   *   `caption`, `preview`
   * @returns the message id and each member's route
   * @throws as {@link ParleyClient.sendAttachment} and {@link ParleyClient.sendGroup}
   * @example await parley.sendGroupAttachment(group.id, { data: photo, mimeType: 'image/jpeg', fileName: 'a.jpg' })
   */
  async sendGroupAttachment(groupId: string, file: OutgoingAttachment): Promise<GroupSendResult> {
    this.#engine.checkOpen()
    Attachments.check(file)
    return this.#groups.sendAttachment(groupId, file.caption ?? '', (downloads) =>
      this.#attachments.upload(file, downloads),
    )
  }

  /**
   * Adds members to a group (admins only). They receive the group's state; each member's next message gives them
   * its sender key, so they read what is sent from then on, never what was sent before.
   * @param groupId - the group's id
   * @param numbers - the new members' numbers
   * @throws ParleyError `FORBIDDEN` for a member who is not an admin, `NOT_FOUND` (no such group, or a number
   *   not on Parley without `smsFallback`)
   */
  async addGroupMembers(groupId: string, numbers: readonly string[]): Promise<GroupInfo> {
    this.#engine.checkOpen()
    return this.#groups.change(groupId, await this.#groups.addOp(numbers))
  }

  /**
   * Removes members from a group (admins only). Every remaining member device starts a new sender key on its
   * next send, given only to those left: the removed members cannot read anything sent after they learn of it.
   * @param groupId - the group's id
   * @param numbers - the members' numbers
   * @throws ParleyError `FORBIDDEN` for a member who is not an admin, `NOT_FOUND` for a number not in the group
   */
  async removeGroupMembers(groupId: string, numbers: readonly string[]): Promise<GroupInfo> {
    this.#engine.checkOpen()
    return this.#groups.change(groupId, { remove: await this.#groups.memberKeys(groupId, numbers) })
  }

  /**
   * Makes a member an admin, or no longer one (admins only; a group keeps at least one admin).
   * @param groupId - the group's id
   * @param number - the member's number
   * @param admin - true to promote, false to demote
   */
  async setGroupAdmin(groupId: string, number: string, admin: boolean): Promise<GroupInfo> {
    this.#engine.checkOpen()
    if (typeof admin !== 'boolean') throw new TypeError('admin must be a boolean')
    const [address] = await this.#groups.memberKeys(groupId, [number])
    if (address!.startsWith('sms:'))
      throw new ParleyError('INVALID_STATE', 'an SMS member cannot be an admin')
    return this.#groups.change(groupId, { admin: { address: address!, admin } })
  }

  /**
   * Renames a group (admins only).
   * @param groupId - the group's id
   * @param name - the new name (at most 256 UTF-8 bytes)
   */
  async renameGroup(groupId: string, name: string): Promise<GroupInfo> {
    this.#engine.checkOpen()
    return this.#groups.change(groupId, { rename: name })
  }

  /**
   * Leaves a group: the other members are told, and this device forgets the group's keys. A last admin who
   * leaves hands the group to the first remaining member.
   * @param groupId - the group's id
   */
  async leaveGroup(groupId: string): Promise<GroupInfo> {
    this.#engine.checkOpen()
    return this.#groups.change(groupId, 'leave')
  }

  /**
   * The safety number (60 digits, in 12 groups of 5) of this device and a contact's current identity.
   * Compare it in person or by scanning a QR code to rule out a man in the middle.
   * @param number - the contact's number
   * @returns the safety number, or null when there is no session with the contact yet (send a message first)
   * @example const sn = await parley.safetyNumber('+1 415 555 0101')
   */
  async safetyNumber(number: string): Promise<string | null> {
    this.#engine.checkOpen()
    return this.#contacts.safetyNumber(number)
  }

  /**
   * Every conversation on this device, the most recently active first: one per peer (a Parley contact, kept
   * across its number changes, or a number reached only by SMS), with its newest message and unread count.
   * Messages in both directions are kept as they are received or sent (and as sent transcripts from this
   * account's other devices).
   * @example for (const c of await parley.conversations()) console.log(c.number, c.unread, c.lastMessage?.text)
   */
  async conversations(): Promise<Conversation[]> {
    this.#engine.checkOpen()
    return this.#conversations.list()
  }

  /**
   * One page of a conversation, oldest first: without a cursor the newest `limit` messages (50 by default);
   * pass a page's `before` for the page of older messages, its `after` for newer ones. Sent messages carry
   * their state (`queued`, `sent`, `failed`, `sms`).
   * @param conversation - a conversation's id, or the peer's number (any common format)
   * @param options - `before` or `after` (a cursor from an earlier page), `limit` (1–500)
   * @returns the messages and the cursors of the neighbouring pages (null where there is none)
   * @throws TypeError for a cursor of another conversation; RangeError for a limit out of range
   * @example
   * let page = await parley.conversationHistory('+1 415 555 0100')
   * while (page.before) page = await parley.conversationHistory('+1 415 555 0100', { before: page.before })
   */
  async conversationHistory(
    conversation: string,
    options: HistoryPageOptions = {},
  ): Promise<ConversationPage> {
    this.#engine.checkOpen()
    return this.#conversations.page(conversation, options)
  }

  /**
   * Marks a conversation's received messages read on this device, up to and including the message `upTo`
   * (default: all of them).
   * @returns the unread count left
   * @throws ParleyError `NOT_FOUND` for an unknown conversation or a message not in it
   * @example await parley.markRead(conversation.id)
   */
  async markRead(conversation: string, upTo?: string): Promise<number> {
    this.#engine.checkOpen()
    return this.#conversations.markRead(conversation, upTo)
  }

  /**
   * Sends a file, end to end: it is encrypted here with a fresh key (chunked ChaCha20-Poly1305), its encrypted
   * blob is uploaded to the relay's blob store under a random id, and the key, digest and id travel inside the
   * end-to-end message. The relay sees only ciphertext. The recipient's devices (and this account's others) get a
   * message with `attachment` and call {@link downloadAttachment}; the relay deletes the blob once each has fetched
   * it, or after 30 days.
   * @param to - the recipient's number (on Parley: attachments never go by SMS)
   * @param file - `data` (or `stream` and its `size`, for a file read, encrypted and uploaded piece by piece),
   *   and optionally `mimeType`, `fileName`, `caption` (the message's text), `preview`
   * @returns the message id and its route (`ip`)
   * @throws TypeError for a malformed file; RangeError for a stream longer or shorter than its `size` (or the
   *   stream's own error), nothing sent; ParleyError `NOT_FOUND` for a number not on Parley, `TOO_LARGE` over the
   *   relay's size limit, `RATE_LIMITED` over the account's upload quotas, `UNAVAILABLE` when the upload fails
   * @example await parley.sendAttachment('+1 415 555 0101', { data: jpeg, mimeType: 'image/jpeg', caption: 'look' })
   * @example
   * // Node: a file larger than memory
   * const { size } = await stat(path)
   * await parley.sendAttachment(to, { stream: createReadStream(path), size, fileName: 'video.mp4' })
   */
  async sendAttachment(to: string, file: OutgoingAttachment, options: SendOptions = {}): Promise<SendResult> {
    this.#engine.checkOpen()
    Attachments.check(file)
    return this.#outbox.send(to, file.caption ?? '', {
      ...options,
      attachment: async (address) => {
        const list = (await this.#devices.cached(address)) ?? (await this.#devices.refresh(address))
        const downloads = Math.max(1, list.devices.length) + this.#devices.ownOthers().length
        return this.#attachments.upload(file, downloads)
      },
    })
  }

  /**
   * Downloads and decrypts the file of a message that has an `attachment`, checking it is the one the message
   * named.
   * @param messageId - the message's id
   * @returns the file's bytes
   * @throws ParleyError `NOT_FOUND` for a message without an attachment here, or one the relay no longer has
   *   (every device it was for fetched it, or it expired); `VERIFICATION_FAILED` for a blob that is not the one
   *   the message named (corrupted or replaced); `UNAVAILABLE` when the download fails
   * @example const bytes = await parley.downloadAttachment(message.id)
   */
  async downloadAttachment(messageId: string): Promise<Uint8Array> {
    this.#engine.checkOpen()
    const record = await this.#conversations.attachmentOf(messageId)
    if (record === undefined)
      throw new ParleyError('NOT_FOUND', 'no attachment of that message on this device')
    return this.#attachments.download(record)
  }

  /**
   * Downloads the file of a message that has an `attachment` as a stream of its decrypted bytes, for files too
   * large to hold whole. Every piece has been authenticated; the newest is held back until the next one is, and
   * the last until the whole blob matched the message's digest, so the stream **closes only for the file the
   * message named** and otherwise errors before its end: keep what it gave only once it closed.
   * @param messageId - the message's id
   * @returns the file's bytes as a stream
   * @throws ParleyError `NOT_FOUND` and `UNAVAILABLE` as {@link downloadAttachment}; the stream errors with
   *   `VERIFICATION_FAILED` for a blob that is not the one the message named, `UNAVAILABLE` when the download
   *   breaks off
   * @example
   * const file = await parley.downloadAttachmentStream(message.id)
   * await pipeline(Readable.fromWeb(file), createWriteStream(tmp)) // then rename tmp into place
   */
  async downloadAttachmentStream(messageId: string): Promise<ReadableStream<Uint8Array>> {
    this.#engine.checkOpen()
    const record = await this.#conversations.attachmentOf(messageId)
    if (record === undefined)
      throw new ParleyError('NOT_FOUND', 'no attachment of that message on this device')
    return this.#attachments.downloadStream(record)
  }

  /**
   * Reacts to a message of a conversation with an emoji (or, with `remove`, takes the reaction back): sent end to
   * end to the peer and to this account's other devices; the peer gets a `reaction` event.
   * @param messageId - a message of a Parley conversation (32 hex digits)
   * @param emoji - 1 to 32 UTF-8 bytes
   * @throws ParleyError `NOT_FOUND` for a message not on this device, `INVALID_STATE` for one reached by SMS
   * @example await parley.react(message.id, '👍')
   */
  async react(messageId: string, emoji: string, options: { remove?: boolean } = {}): Promise<void> {
    this.#engine.checkOpen()
    if (typeof emoji !== 'string' || emoji.length === 0 || new TextEncoder().encode(emoji).length > 32)
      throw new TypeError('emoji must be 1 to 32 UTF-8 bytes')
    return this.#conversations.sendAction(messageId, {
      reaction: { targetId: messageId, emoji, remove: options.remove === true },
    })
  }

  /**
   * Tells the peer of a conversation that this user started (or, with `false`, stopped) typing: an end-to-end
   * encrypted indicator that the relay never stores. It reaches the peer's devices online at the moment (a
   * `typing` event there) and is dropped otherwise; it goes to no other device of this account. Sent only while
   * this client is online and in a session the peer has already answered; nothing is queued otherwise. Apps
   * usually send `true` when the user starts typing, again every few seconds while the user goes on, and `false`
   * when the user stops or sends.
   * @param conversation - a conversation's id ({@link conversations}), or the peer's number (any common format)
   * @param started - true (default) when typing started, false when it stopped
   * @returns whether the indicator was handed to the outbox (false: offline, an SMS conversation, or no answered
   *   session yet); not whether the peer saw it
   * @throws ParleyError `NOT_FOUND` for an unknown conversation; TypeError for a `conversation` that is no string
   *   or a `started` that is no boolean
   * @example await parley.typing(conversation.id)
   */
  async typing(conversation: string, started = true): Promise<boolean> {
    this.#engine.checkOpen()
    if (typeof started !== 'boolean') throw new TypeError('started must be a boolean')
    const record = await this.#conversations.record(conversation)
    if (record === undefined) throw new ParleyError('NOT_FOUND', 'no such conversation')
    if (record.peer.startsWith('sms:')) return false
    return this.#outbox.queueTyping(fromHex(record.peer), record.number ?? '', started)
  }

  /**
   * Replaces the text of one of this account's own messages, within 24 hours of sending it; the peer's copy
   * changes too (`messageEdited` there).
   * @throws ParleyError `NOT_FOUND`, `FORBIDDEN` (not this account's message, or deleted), `EXPIRED` (over 24 hours)
   * @example await parley.edit(sent.id, 'see you at 8')
   */
  async edit(messageId: string, text: string): Promise<void> {
    this.#engine.checkOpen()
    if (typeof text !== 'string') throw new TypeError('text must be a string')
    return this.#conversations.sendAction(messageId, { edit: { targetId: messageId, text } })
  }

  /**
   * Deletes one of this account's own messages for everyone, within 24 hours of sending it: its text is gone
   * here, on the peer's devices (`messageDeleted`) and on this account's other devices.
   * @throws ParleyError `NOT_FOUND`, `FORBIDDEN` (not this account's message), `EXPIRED` (over 24 hours)
   * @example await parley.deleteForEveryone(sent.id)
   */
  async deleteForEveryone(messageId: string): Promise<void> {
    this.#engine.checkOpen()
    return this.#conversations.sendAction(messageId, { deleteForEveryone: messageId })
  }

  /**
   * Deletes a message from this device's conversations (not from anyone else's).
   * @param id - the message id (32 hex digits)
   * @returns whether it was there
   * @example await parley.deleteMessage(message.id)
   */
  async deleteMessage(id: string): Promise<boolean> {
    this.#engine.checkOpen()
    return this.#conversations.deleteMessage(id)
  }

  /**
   * Deletes a conversation and all its messages from this device (not from the peer's).
   * @returns how many messages were deleted
   * @example await parley.deleteConversation(conversation.id)
   */
  async deleteConversation(conversation: string): Promise<number> {
    this.#engine.checkOpen()
    return this.#conversations.deleteConversation(conversation)
  }

  /**
   * Messages received so far (persisted), oldest first.
   * @example for (const m of await parley.history()) console.log(m.text)
   */
  async history(): Promise<IncomingMessage[]> {
    this.#engine.checkOpen()
    return this.#inbox.history()
  }

  /**
   * Marks a contact's current identity as verified, after the user compared safety numbers. From then on,
   * messages under any other identity of that contact are held (not shown) and sends to it are refused with
   * `IDENTITY_UNTRUSTED`, until {@link ParleyClient.approveIdentity}.
   * @param number - the contact's number
   * @param options - `safetyNumber`: the number the user compared; refused if it is no longer the current one
   * @throws ParleyError `NOT_FOUND` when there is no session with the contact yet, `VERIFICATION_FAILED` when
   *   `safetyNumber` differs from the current one
   * @example if (userConfirmed) await parley.markVerified('+1 415 555 0101', { safetyNumber: shown })
   */
  async markVerified(number: string, options: { safetyNumber?: string } = {}): Promise<void> {
    this.#engine.checkOpen()
    return this.#contacts.markVerified(number, options)
  }

  /**
   * Whether a contact is verified (see {@link ParleyClient.markVerified}) and its identity has not changed since.
   * @example const ok = await parley.isVerified('+1 415 555 0101')
   */
  async isVerified(number: string): Promise<boolean> {
    this.#engine.checkOpen()
    return this.#contacts.isVerified(number)
  }

  /**
   * Accepts the new identity of a verified contact whose identity changed: the contact becomes unverified (call
   * {@link ParleyClient.markVerified} again after comparing the new safety number), the messages held for it are
   * delivered now, in order, and sends to it work again.
   * @param number - the contact's number
   * @returns how many held messages were delivered
   * @example parley.on('identityChanged', async (c) => { if (await askUser(c)) await parley.approveIdentity(c.number) })
   */
  async approveIdentity(number: string): Promise<number> {
    this.#engine.checkOpen()
    return this.#inbox.approveIdentity(number)
  }

  /**
   * Replaces this account's delivery token: contacts that hold the old one can no longer send to it without
   * revealing themselves to the relay (their sends fall back to the authenticated path); contacts learn the
   * new one from the next message sent to them. This is how to stop unwanted unidentified senders.
   * @example await parley.rotateDeliveryToken()
   */
  async rotateDeliveryToken(options: CallOptions = {}): Promise<void> {
    this.#engine.checkOpen()
    return this.#session.rotateDeliveryToken(options)
  }

  /**
   * Counters of what this client refused or held since it was created: messages refused for an unproven sender
   * (`senderUnverified`), replayed first messages (`replaysRefused`), messages held for a changed verified
   * identity (`held`), held messages dropped because a contact's hold was full (`heldDropped`, at 1,000 held per
   * contact the oldest goes), messages sent by unidentified delivery (`unidentifiedSent`), and pushes the relay
   * stored nowhere that were anything but a typing indicator in an answered session (`ephemeralRefused`).
   */
  get stats(): Readonly<{
    /** Messages refused because their sender was not proven (`SENDER_UNVERIFIED`). */
    senderUnverified: number
    /** Replayed first messages refused (`DUPLICATE`). */
    replaysRefused: number
    /** Messages held for a verified contact whose identity changed. */
    held: number
    /** Held messages dropped because the contact's hold was full (1,000; the oldest goes). */
    heldDropped: number
    /** Messages sent by unidentified delivery (the relay not told the sender). */
    unidentifiedSent: number
    /**
     * Ephemeral pushes (never stored by the relay) refused because they carried something other than a typing
     * indicator, or came outside a session this device had answered: shown nothing, changed nothing.
     */
    ephemeralRefused: number
    /**
     * Group messages and changes refused: a change by a member who is not an admin (or names another author), a
     * message under a key this device was not given (once its hold is full, or when it still does not open after
     * the key came), or from someone not in the group, or of a group this account is not in.
     */
    groupRefused: number
    /**
     * Group messages that came before the sender key they need, kept (at most 32 per sender account, 256 in all)
     * and opened once that key comes.
     */
    groupHeld: number
  }> {
    return { ...this.#engine.stats }
  }

  /**
   * On the primary device: opens a link for a new device of this account (no SMS). Show `code` on this screen
   * (as a QR code, or text); the new device passes it to {@link ParleyClient.link}. The exchange is end-to-end
   * encrypted between the two devices under the code's secret, which the relay never sees; `linked` resolves
   * once the device was added to the account's signed device list. The code works once, for ten minutes.
   * @param options - `confirm`: asked with the new device's key fingerprint before it is added; `signal`
   * @returns the code, when it expires, and the pending outcome
   * @throws ParleyError `INVALID_STATE` on a linked device or before activation; `RATE_LIMITED` (links per hour)
   * @example
   * const { code, linked } = await phone.createLinkCode()
   * showQr(code)
   * const { deviceId } = await linked
   */
  async createLinkCode(options: LinkCodeOptions = {}): Promise<LinkInvitation> {
    this.#engine.checkOpen()
    return this.#devices.createLinkCode(options)
  }

  /**
   * On a new device (not activated): becomes a linked device of the account whose primary showed `code`. It gets
   * its own device key, sessions and mailbox; contacts encrypt to it as well; messages this device sends show
   * on the account's other devices. Waits (polling the relay) until the primary answers.
   * @param code - the `parley-link:` code from {@link ParleyClient.createLinkCode}
   * @param options - `timeoutMs` (default 10 minutes) and `signal`
   * @returns the account's address and number, this device's id and key fingerprint
   * @throws ParleyError `INVALID_STATE` when this device has an account; `BAD_REQUEST` for a malformed code;
   *   `CONFLICT` (the code was used already), `NOT_FOUND` (expired or unknown), `EXPIRED` (no answer in time),
   *   `VERIFICATION_FAILED` (an answer that does not hold this device)
   * @example const account = await browser.link(scannedCode)
   */
  async link(code: string, options: CallOptions & { timeoutMs?: number } = {}): Promise<LinkedAccount> {
    this.#engine.checkOpen()
    positiveMs(options.timeoutMs, 'timeoutMs')
    return this.#devices.link(code, options)
  }

  /**
   * This account's devices, from the device list on the relay (verified against the account identity).
   * @returns each device's id, whether it is the primary and whether it is this one
   * @throws ParleyError `INVALID_STATE` before activation; `VERIFICATION_FAILED` for a list that does not verify
   * @example const devices = await parley.devices()
   */
  async devices(): Promise<DeviceInfo[]> {
    this.#engine.checkOpen()
    return this.#devices.list()
  }

  /**
   * On the primary: removes a linked device (a lost laptop, say). The account signs a device list without it;
   * the relay erases the device's keys and mail and closes its connections, and contacts stop encrypting to it.
   * @param deviceId - the device's id, from {@link ParleyClient.devices}
   * @throws ParleyError `INVALID_STATE` on a linked device or for the primary itself; `NOT_FOUND` for an unknown id
   * @example await phone.removeDevice(2)
   */
  async removeDevice(deviceId: number): Promise<void> {
    this.#engine.checkOpen()
    if (!Number.isSafeInteger(deviceId) || deviceId <= 0)
      throw new RangeError('deviceId must be a positive integer')
    return this.#devices.remove(deviceId)
  }

  /**
   * On the primary: this account as an encrypted archive, for a new phone after this one is lost — the account
   * identity, prekey secrets, sessions, contacts, verified safety numbers, history and the outbox, sealed under a
   * key derived from `passphrase` with scrypt (N = 2^17 by default: about two seconds here, on purpose) and
   * ChaCha20-Poly1305. Keep it somewhere safe: whoever has it and the passphrase can read the history it holds
   * (not later messages, which need the new device's keys).
   * @param passphrase - at least 12 characters
   * @param options - `logN`: the scrypt cost, 14–18
   * @returns the archive (a versioned binary format)
   * @throws RangeError for a short passphrase or a cost out of range; ParleyError `INVALID_STATE` on a linked
   *   device (it does not hold the account identity) or before activation
   * @example const archive = await parley.exportBackup('correct horse battery staple')
   */
  async exportBackup(passphrase: string, options: { logN?: number } = {}): Promise<Uint8Array> {
    this.#engine.checkOpen()
    return this.#backups.export(passphrase, options)
  }

  /**
   * On a fresh device (an empty store, not activated): restores an archive from {@link ParleyClient.exportBackup}.
   * Then `activate()` the same number and `confirm()` its SMS code as usual: the device takes the account back with
   * the restored identity, so contacts see no new safety number, and `history()` holds the restored messages.
   * Restored sessions still decrypt mail that was in flight; the first message to each contact starts a fresh
   * session (forward secrecy from there on does not depend on the archive).
   * @returns the account's number and how many messages the history holds
   * @throws ParleyError `INVALID_STATE` (an account or a non-empty store here), `DECRYPT_FAILED` (wrong passphrase
   *   or a damaged archive), `UNSUPPORTED` (another format), `BAD_REQUEST`
   * @example const { number } = await fresh.restoreBackup(archive, passphrase); await fresh.activate({ phoneNumber: number, consent: true })
   */
  async restoreBackup(archive: Uint8Array, passphrase: string): Promise<RestoredBackup> {
    this.#engine.checkOpen()
    if (!(archive instanceof Uint8Array)) throw new TypeError('archive must be a Uint8Array')
    return this.#backups.restore(archive, passphrase)
  }

  /** Number of messages queued in the outbox, not yet accepted by the relay. */
  async pendingCount(): Promise<number> {
    this.#engine.checkOpen()
    return this.#outbox.pendingCount()
  }

  /**
   * Deactivates the account: the relay erases its address, keys, prekeys and pending mail, and this device
   * forgets its keys, sessions and contacts. The client stays usable for a new activation.
   * @throws ParleyError `INVALID_STATE` when not activated, `UNAVAILABLE` when the relay cannot be reached
   * @example await parley.deactivate()
   */
  async deactivate(options: CallOptions = {}): Promise<void> {
    this.#engine.checkOpen()
    return this.#activation.deactivate(options)
  }

  /**
   * Closes the connection and the store. Queued messages stay in the outbox for the next start.
   * @example await parley.close()
   */
  async close(): Promise<void> {
    const engine = this.#engine
    if (engine.closed) return
    engine.close()
    this.#outbox.stopTimers()
    this.#delivery.stopTimers()
    // Delivery receipts still waiting for their batch (300 ms) are dropped: they are best effort. (Queuing them
    // here changed what the closing client still wrote of a link's first prekeys: see the closing note.)
    this.#conversations.dropReceipts()
    // Acks still queued go out before the connection closes: otherwise the relay redelivers those messages
    // at the next start (the dedupe drops them, but they cost a download and a decrypt each). Bounded, so
    // close() never waits on an unresponsive relay.
    if (engine.link.state === 'online') {
      let timer: unknown
      await Promise.race([
        this.#inbox.flushAcks(),
        new Promise<void>((r) => {
          timer = engine.clock.setTimeout(r, CLOSE_ACK_WAIT_MS)
        }),
      ])
      engine.clock.clearTimeout(timer)
    }
    engine.link.stop(true)
    engine.anonymous.stop(true)
    for (const push of engine.iterators) push(null)
    engine.iterators.clear()
    await engine.serial.run(async () => {})
    await engine.flushing?.catch(() => {})
    await engine.store.close()
  }

  /** Once the main connection is online with an account: what waited for it. */
  #afterOnline(): void {
    const engine = this.#engine
    void engine.serial
      .run(() => this.#session.registerDeliveryToken())
      .catch((err) => engine.emitRecoverable(err))
    // A linked device's first prekeys, if the relay does not have them yet (before anything that needs them).
    void engine.serial
      .run(() => this.#devices.uploadLinkPrekeys())
      .catch((err) => engine.emitRecoverable(err))
    void engine.serial.run(() => this.#session.sync()).catch((err) => engine.emitRecoverable(err))
    this.#outbox.kick()
    void engine.serial.run(() => this.#prekeys.refill()).catch((err) => engine.emitRecoverable(err))
  }
}

export type { IdentityKeyPair }

/** The SMS fallback as the outbox takes it: the hook, and how long a message may wait for IP (undefined: forever). */
function smsPolicy(option: ParleyClientOptions['smsFallback']): SmsRoute | undefined {
  if (option === undefined) return undefined
  if (typeof option === 'function') return { send: option }
  if (typeof option !== 'object' || option === null || typeof option.send !== 'function') {
    throw new TypeError('smsFallback must be a function or { send, after }')
  }
  const after = option.after
  let ms: number
  if (typeof after === 'number') ms = after
  else {
    const m = typeof after === 'string' ? /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/.exec(after.trim()) : null
    if (m === null)
      throw new TypeError("smsFallback.after must be milliseconds or a duration like '30s', '5m', '1h'")
    ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']
  }
  if (!Number.isFinite(ms) || ms < 1 || ms > 2 ** 31 - 1)
    throw new RangeError('smsFallback.after is out of range')
  return { send: option.send, afterMs: Math.round(ms) }
}
