/**
 * Public types of the client engine: options, results and events.
 * @module
 */
import type { CountryCode, CryptoProvider, ParleyError } from '@parley/protocol'
import type { Clock } from './Clock.js'
import type { ConnectionState } from './RelayLink.js'
import type { Store } from './Store.js'
import type { Transport } from './Transport.js'

/** Sends a text by the carrier's SMS when the recipient is not on Parley. The text is never uploaded. */
export type SmsFallback = (to: string, text: string, context?: SmsContext) => void | Promise<void>

/** What an {@link SmsFallback} is told beside the text: set for a group message to a member not on Parley. */
export interface SmsContext {
  /** The group the text was sent to, as a group MMS would name it. */
  group?: SmsGroup
}

/** The group of an SMS ({@link SmsContext}). */
export interface SmsGroup {
  /** The group's id (64 hex digits). */
  id: string
  /** Its name. */
  name: string
}

/**
 * An {@link SmsFallback} that also takes over when IP fails: a message to a Parley contact that the relay has not
 * taken within `after` goes by SMS instead (and never also over IP), and so does a message to a number whose
 * registration is unknown when there is no connection to the relay.
 */
export interface SmsFallbackPolicy {
  /** Sends the text by SMS (the app's hook). */
  send: SmsFallback
  /** How long a message may wait for the relay: milliseconds, or `'30s'`, `'5m'`, `'1h'`. */
  after: number | string
}

/** Options of {@link ParleyClient.create}. Platform SDKs fill `transport` and `store` for you. */
export interface ParleyClientOptions {
  /** The relay's WebSocket URL, e.g. `wss://relay.example.org` (the `/v1/ws` path is added when missing). */
  relayUrl: string
  /** How to open connections to the relay. */
  transport: Transport
  /** Where keys, sessions, the outbox and received messages live. */
  store: Store
  /** Region for numbers written without a country code, e.g. `'US'`. */
  defaultRegion?: CountryCode
  /**
   * Called for recipients who are not on Parley; without it, such a `send()` fails with `NOT_FOUND`. As a
   * {@link SmsFallbackPolicy}, also when IP fails.
   */
  smsFallback?: SmsFallback | SmsFallbackPolicy
  /** Time source (tests inject a fake one). */
  clock?: Clock
  /** CSPRNG returning `n` bytes (tests inject a seeded one). */
  random?: (n: number) => Uint8Array
  /**
   * Faster implementations of the end-to-end primitives for this client only (`@parley/node`'s `createClient`
   * passes `node:crypto`'s); omitted: the pure-JS defaults. Outputs must be bit-for-bit the defaults'.
   * @throws TypeError from the constructor when it is not a `CryptoProvider`
   */
  crypto?: CryptoProvider
  /**
   * End-to-end receipts this device sends: `delivery` when a message was decrypted here, `read` when the app
   * marks messages read. Both on by default. Turning one off sends none of that kind; the states of this
   * account's own messages still move on with its contacts' receipts.
   */
  receipts?: {
    /** Send delivery receipts (default true). */
    delivery?: boolean
    /** Send read receipts (default true). */
    read?: boolean
  }
  /** How long one request may wait for the relay (default 20 s). */
  requestTimeoutMs?: number
  /** Reconnect backoff: first delay (default 250 ms) and cap (default 30 s); full jitter is applied. */
  reconnect?: {
    /** The first delay, in milliseconds (default 250). */
    minDelayMs?: number
    /** The longest delay, in milliseconds (default 30,000). */
    maxDelayMs?: number
  }
  /** How long a discovery result counts as fresh before `send()` asks again (default 24 h). */
  discoveryTtlMs?: number
  /**
   * The relay's public keys, for apps that ship them. Without it the client pins the relay's trust root at its
   * first connection (trust on first use); with it, a relay announcing another root is refused from the start.
   */
  relayKeys?: RelayKeys
  /**
   * How an attachment given as a `stream` ({@link OutgoingAttachment}) goes to the relay: as a streaming request
   * body, encrypted as it is read and never held whole (true, the default: Node); or encrypted as it is read into
   * a `Blob` that is then uploaded (false: the browser SDK's default, as browsers stream request bodies only over
   * HTTP/2, and a browser may keep a large Blob on disk rather than in memory).
   */
  streamUploads?: boolean
  /**
   * The most members (this account included, SMS members too) a group made or changed on this device may have:
   * 2 to 1,000 (the protocol's limit, and the default). A group another member grew beyond it still works here.
   */
  maxGroupMembers?: number
}

/** Public keys of a relay that an app can ship, so that nothing is trusted on first use. */
export interface RelayKeys {
  /**
   * The relay's Ed25519 trust root (32 bytes, or 64 hex digits), as `parley-relay` prints it at start and keeps
   * in `relay-keys.json`. It certifies the keys that sign sender certificates.
   */
  trustRoot: Uint8Array | string
}

/** Options accepted by calls that can wait on the network. */
export interface CallOptions {
  /** Aborts the call; it then rejects with `ParleyError('ABORTED')`. */
  signal?: AbortSignal
}

/** Input of {@link ParleyClient.activate}. */
export interface ActivateOptions extends CallOptions {
  /** The user's own phone number, in any common format. */
  phoneNumber: string
  /** Must be `true`: the user agreed to turn Parley on. Nothing is sent before this. */
  consent: true
  /**
   * The account's registration-lock PIN, if the user set one on an earlier device: {@link ParleyClient.confirm}
   * then proves it when the relay asks. Held in memory only, until the activation completes.
   */
  pin?: string
}

/** Options of {@link ParleyClient.confirm}. */
export interface ConfirmOptions extends CallOptions {
  /**
   * The registration-lock PIN, when an earlier attempt failed with `ParleyError('REGISTRATION_LOCKED')`
   * (or to give it here rather than to `activate`).
   */
  pin?: string
}

/** What {@link ParleyClient.activate} returns. */
export interface ActivationPending {
  /** The number in E.164 form. */
  e164: string
  /** Seconds until the code expires. */
  expiresInSeconds: number
  /** Wrong codes allowed before the activation is locked. */
  attemptsLeft: number
}

/** What {@link ParleyClient.confirm} returns. */
export interface Activation {
  /** The account's public pseudonym (hex), derived from the number through the relay's OPRF. */
  address: string
  /** The relay's id for this device. */
  deviceId: number
  /** True when an earlier device of this number was replaced. */
  replacedDevice: boolean
  /**
   * Messages that were waiting for this device when another device took the number over, kept by the relay and
   * restored now that this device activated again with its own identity key; they arrive as usual.
   */
  restoredMessages: number
}

/** One answer of {@link ParleyClient.discover}. */
export interface DiscoveryResult {
  /** The number as given. */
  number: string
  /** Its E.164 form, or null if it is not a valid number. */
  e164: string | null
  /** Whether the number is on Parley. */
  registered: boolean
}

/** What {@link ParleyClient.send} returns. */
export interface SendResult {
  /** The message id (32 hex characters). */
  id: string
  /**
   * `'ip'`: end-to-end encrypted over Parley (queued durably); `'sms'`: handed to `smsFallback`; `'pending'`: sent
   * with no connection to a number not known to be on Parley and no `smsFallback` policy — queued durably until
   * the client is online and has looked the number up, then sent over IP, or reported by `sendFailed` with
   * NOT_FOUND when the number is not on Parley. Meanwhile it is shown, `queued`, in the number's conversation (one
   * with no `address`, as the number's registration is not known yet); once the number is found it moves to the
   * contact's conversation (the other is deleted if it held nothing else), and otherwise it stays, `failed`.
   */
  route: 'ip' | 'sms' | 'pending'
}

/** A received message. */
export interface IncomingMessage {
  /** The sender's message id (hex); each id is delivered once. */
  id: string
  /** The sender's number (E.164) when the sender stated it and it matched their address; else null. */
  from: string | null
  /** The sender's account address (hex). */
  fromAddress: string
  /** The text. */
  text: string
  /** When the sender says it sent the message. */
  sentAt: Date
  /** When the relay received it. */
  receivedAt: Date
  /**
   * Set on a sent transcript: a message another device of this account sent (`from` is then this account's own
   * number), to this number (null when this device has not resolved the address). Absent on received messages.
   */
  to?: string | null
  /** With `to`: the address the transcript's message was sent to (hex). */
  toAddress?: string
  /**
   * Set on a message of a kind this SDK version does not show yet — an attachment, a reaction, an edit, a
   * deletion, or a newer app's type: `text` is then the fallback text its sender gave (possibly empty).
   */
  unsupported?: boolean
  /** The id of the message it quotes (a reply), if any. */
  replyTo?: string
  /** Its attachment, if any ({@link ParleyClient.downloadAttachment} fetches the file). */
  attachment?: AttachmentInfo
  /** A group message: the group's id (see {@link ParleyClient.group}). */
  group?: string
}

/** One device of an account, as its device list (signed by the account identity) names it. */
export interface DeviceInfo {
  /** The device's id within the account. */
  deviceId: number
  /** Whether it is the primary: the device holding the account identity, which links and removes devices. */
  primary: boolean
  /** Whether it is this device. */
  current: boolean
}

/** Payload of the `devicesChanged` event: an account's set of devices changed (the safety number did not). */
export interface DevicesChangedEvent {
  /** The account's number when known (null for one not resolved); this account's own for its own devices. */
  number: string | null
  /** The account's address (hex). */
  address: string
  /** Whether it is this device's own account. */
  own: boolean
  /** The device ids now in the account's verified list, ascending. */
  deviceIds: number[]
}

/**
 * Where a message stands: received (`received`); for one sent from this account, `queued` (in the outbox),
 * `sent` (the relay holds it for the recipient), `delivered` (a device of the recipient decrypted it: its
 * delivery receipt), `read` (the recipient's app marked it read: its read receipt), `failed` (it can never be
 * delivered over Parley), `sms` (it went by the app's SMS fallback).
 */
export type MessageState = 'queued' | 'sent' | 'delivered' | 'read' | 'failed' | 'sms' | 'received'

/** A message of a conversation, in either direction ({@link ParleyClient.conversationHistory}). */
export interface ConversationMessage {
  /** The message id (32 hex digits). */
  id: string
  /** The conversation's id. */
  conversation: string
  /** Sent by this account (from this device, or from another of its devices). */
  outgoing: boolean
  /** The sender's number when known (this account's own on an outgoing message). */
  from: string | null
  /** The text. */
  text: string
  /** When the sender says it sent the message. */
  sentAt: Date
  /** When the relay received it; null for a message sent from this device. */
  receivedAt: Date | null
  /** See {@link MessageState}. */
  state: MessageState
  /** Whether the app marked it read ({@link ParleyClient.markRead}); always true for an outgoing message. */
  read: boolean
  /** The id of the message it quotes (a reply), if any. */
  replyTo?: string
  /** Its reactions: who (an address in hex, or `'me'` for this account) reacted with which emoji. */
  reactions?: Record<string, string>
  /** Its sender edited it; `text` is the newest. */
  edited?: boolean
  /** Its sender deleted it for everyone; `text` is empty. */
  deleted?: boolean
  /**
   * A group message this account sent: the members (addresses, hex) whose devices got it, and those who read it.
   * Its `state` is `delivered` once every Parley member has it, `read` once every one read it.
   */
  receipts?: GroupReceipts
  /** Its attachment, if any. */
  attachment?: AttachmentInfo
}

/** An attachment of a message, as the app sees it ({@link ParleyClient.downloadAttachment} fetches the file). */
export interface AttachmentInfo {
  /** The file's size in bytes. */
  size: number
  /** Its media type, when the sender gave one. */
  mimeType: string | null
  /** Its name, when the sender gave one. */
  fileName: string | null
  /** Its caption (also the message's `text`). */
  caption: string | null
  /** A small preview image the sender included, if any. */
  preview: Uint8Array | null
}

/** What {@link ParleyClient.sendAttachment} sends. */
export interface OutgoingAttachment {
  /** The file's bytes (at most the relay's limit, 100 MiB by default); or give `stream` and `size` instead. */
  data?: Uint8Array
  /**
   * The file as a stream of bytes, instead of `data`: read once, encrypted and uploaded as it is read (see
   * {@link ParleyClientOptions.streamUploads}), so a file larger than memory can go. Needs `size`.
   */
  stream?: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>
  /** The exact length of `stream` in bytes (the relay reserves room for the file before it is read). */
  size?: number
  /** Its media type, e.g. `image/jpeg`. */
  mimeType?: string
  /** Its name. */
  fileName?: string
  /** Text shown with it. */
  caption?: string
  /** A small preview image (at most 64 KiB), sent inside the end-to-end message. */
  preview?: Uint8Array
}

/** Payload of the `reaction` event. */
export interface ReactionEvent {
  /** The conversation's id. */
  conversation: string
  /** The message reacted to. */
  messageId: string
  /** Who reacted: an address (hex), or `'me'` for another device of this account. */
  from: string
  /** The emoji. */
  emoji: string
  /** The reaction was taken back. */
  removed: boolean
}

/** Payload of the `messageEdited` and `messageDeleted` events. */
export interface MessageChangedEvent {
  /** The conversation's id. */
  conversation: string
  /** The message changed. */
  messageId: string
  /** Its new text (empty once deleted). */
  text: string
}

/** Payload of the `receipt` event: a contact's device got, or its app showed, messages this account sent. */
export interface ReceiptEvent {
  /** The conversation's id. */
  conversation: string
  /** `delivered` or `read`. */
  kind: 'delivered' | 'read'
  /** The messages it is about (those in the conversation). */
  messageIds: string[]
}

/**
 * Payload of the `typing` event: a contact started or stopped typing in a conversation. Ephemeral: it reaches
 * only a device online at the time, and the app should let a `started` lapse on its own after a few seconds
 * without another one (the contact may have gone offline without a `stopped`).
 */
export interface TypingEvent {
  /** The conversation's id. */
  conversation: string
  /** The contact's number, when this device knows it. */
  from: string | null
  /** True when the contact started typing, false when it stopped. */
  started: boolean
}

/** Options of {@link ParleyClient.send}. */
export interface SendOptions extends CallOptions {
  /** The id of a message of the conversation this one quotes (a reply). */
  replyTo?: string
}

/** A conversation: everything exchanged with one peer ({@link ParleyClient.conversations}). */
export interface Conversation {
  /** The conversation's id (32 hex digits), stable across the peer's number changes. */
  id: string
  /** The peer's number when known. */
  number: string | null
  /** The peer's address (hex); null for a number reached only by SMS, and for a group. */
  address: string | null
  /** A group's conversation: the group's id (see {@link ParleyClient.group}). */
  group?: string
  /** Received messages not marked read. */
  unread: number
  /** When its newest message was sent or received. */
  updatedAt: Date
  /** Its newest message. */
  lastMessage: ConversationMessage | null
}

/** Which page of a conversation {@link ParleyClient.conversationHistory} returns. */
export interface HistoryPageOptions {
  /** Messages older than this cursor (a page's `before`); without a cursor, the newest messages. */
  before?: string
  /** Messages newer than this cursor (a page's `after`). */
  after?: string
  /** At most this many messages (1 to 500; 50 by default). */
  limit?: number
}

/** One page of a conversation, oldest first. */
export interface ConversationPage {
  /** The messages, oldest first. */
  messages: ConversationMessage[]
  /** The cursor for the page before this one (older messages), or null at the start. */
  before: string | null
  /** The cursor for the page after this one (newer messages), or null at the end. */
  after: string | null
}

/** What {@link ParleyClient.confirmNumberChange} returns. */
export interface NumberChange {
  /** The account's new number, E.164. */
  e164: string
  /** The account's new address (hex): the new number's, through the relay's OPRF. */
  address: string
  /** How many contacts (sessions) were sent the signed notice. */
  contactsNotified: number
}

/**
 * Payload of the `numberChanged` event: a contact (proven by the identity this device pinned for it) moved its
 * account to a new number, or this account did (on a linked device, told by its primary).
 */
export interface NumberChangedEvent {
  /** The number this device knew the account by, when it had one. */
  previousNumber: string | null
  /** The new number when the account stated it (its certified commitment opened to it), else null. */
  number: string | null
  /** The account's new address (hex). */
  address: string
  /** Whether it is this device's own account. */
  own: boolean
}

/** Payload of the `history` event: one part of a history transfer was added to `history()`. */
export interface HistoryEvent {
  /** Messages added (those already here are skipped). */
  added: number
  /** This part's place (0-based) among `total`. */
  index: number
  /** How many parts the transfer has. */
  total: number
}

/** What {@link ParleyClient.createLinkCode} returns: the code to show the new device, and the link's outcome. */
export interface LinkInvitation {
  /** `parley-link:…`: show it as a QR code or text on this device; it holds the link secret, never sent to the relay. */
  code: string
  /** When the code stops working. */
  expiresAt: Date
  /**
   * Resolves with the new device's id once a device used the code, `confirm` (if given) accepted it, and the
   * account's new device list is on the relay; rejects with `EXPIRED` when no device came in time, `ABORTED`
   * (the signal, or `confirm` said no), or the relay's error.
   */
  linked: Promise<LinkedDevice>
}

/** Options of {@link ParleyClient.createLinkCode}. */
export interface LinkCodeOptions {
  /**
   * Asked before the device is added, with a short fingerprint of its device key (the new device shows the same
   * one): resolve false to refuse it. Default: accept.
   */
  confirm?: (request: { fingerprint: string }) => boolean | Promise<boolean>
  /** Aborts the wait for a device (the code then stops working). */
  signal?: AbortSignal
  /**
   * Also send the new device this device's message history (the newest 10,000 messages, end-to-end encrypted
   * to the account's other devices, through their mailboxes). Default false.
   */
  history?: boolean
}

/** What {@link ParleyClient.restoreBackup} resolves with. */
export interface RestoredBackup {
  /** The account's number (E.164): activate it on this device next. */
  number: string
  /** How many messages the restored history holds. */
  messages: number
}

/** What {@link ParleyClient.createLinkCode}'s `linked` resolves with: the device now in the account's list. */
export interface LinkedDevice {
  /** The new device's id within the account. */
  deviceId: number
}

/** What {@link ParleyClient.link} resolves with. */
export interface LinkedAccount {
  /** The account's address (hex). */
  address: string
  /** This device's id within the account. */
  deviceId: number
  /** The account's number, E.164. */
  number: string
  /** The fingerprint of this device's key, which the primary was shown. */
  fingerprint: string
}

/** Payload of the `identityChanged` event. */
export interface IdentityChange {
  /** The contact's number if known, else null. */
  number: string | null
  /** The contact's address (hex). */
  address: string
  /** The safety number with the new identity. */
  safetyNumber: string
  /**
   * True when the contact was verified: its messages under the new identity are held, and sends to it are
   * refused, until `approveIdentity(number)`.
   */
  held: boolean
}

/** Payload of the `gap` event: mail the relay expired or evicted before this device could fetch it. */
export interface MailboxGapEvent {
  /** Mailbox sequence number of the first message lost. */
  firstSeq: number
  /** Mailbox sequence number of the last message lost (equal to `firstSeq` for one message). */
  lastSeq: number
  /** Why: kept past the relay's retention (`expired`), pushed out of a full mailbox (`evicted`), or not said. */
  reason: 'expired' | 'evicted' | 'unknown'
}

/**
 * Payload of the `deviceReplaced` event: the relay no longer serves this device. Either the number was
 * activated on another device — which took the account over: if that was not the user, their number (or SIM)
 * is in someone else's hands — or the account was deactivated from another connection. This device keeps its
 * history and contacts, is no longer activated, and may `activate()` the number again: it then keeps its identity
 * key (contacts see no new safety number) and gets the mail that was waiting for it when it was replaced, which
 * the relay kept for that key (`Activation.restoredMessages`). Told on the next connection attempt when the device
 * was offline at the time (with `erased: false`, and an `error` event `UNAUTHENTICATED`).
 */
export interface DeviceReplacedEvent {
  /** True when the account was deactivated (erased); false when another device activated the number. */
  erased: boolean
  /** True when this was a linked device and the account's primary removed it. */
  removed?: boolean
}

/** Payload of the `connection` event. */
export interface ConnectionEvent {
  /** The connection's new state. */
  state: ConnectionState
  /** Reconnection attempt number (0 once online). */
  attempt: number
  /** With `offline`: milliseconds until the next attempt. */
  retryInMs?: number
  /** With `offline`: why. */
  error?: ParleyError
}

/** Payload of the `delivered` event: the relay has the message durably in the recipient's mailbox. */
export interface DeliveredEvent {
  /** The message id that `send()` returned. */
  id: string
  /** The recipient's number, in E.164. */
  to: string
}

/** Payload of the `sentBySms` event. */
export interface SentBySmsEvent {
  /** The message id that `send()` returned. */
  id: string
  /** The recipient's number, in E.164. */
  to: string
}

/** Payload of the `sendFailed` event: a queued message that can never be delivered over Parley. */
export interface SendFailedEvent {
  /** The message id that `send()` returned. */
  id: string
  /** The recipient's number, in E.164. */
  to: string
  /**
   * Why it can never be delivered, e.g. `IDENTITY_UNTRUSTED` or `NOT_FOUND`; `FORBIDDEN` when the relay refused
   * this account's login (its operator banned it).
   */
  error: ParleyError
}

/** Every event of {@link ParleyClient}, by name. */
export interface ParleyEvents {
  /** A message was received, its sender proven, and stored in `history()`. */
  message: IncomingMessage
  /** The relay holds a sent message durably in the recipient's mailbox. */
  delivered: DeliveredEvent
  /** A queued message can never be delivered over Parley and left the outbox. */
  sendFailed: SendFailedEvent
  /**
   * A queued message waited longer than `smsFallback.after` and was handed to the SMS hook instead; it left the
   * outbox and is never sent over IP.
   */
  sentBySms: SentBySmsEvent
  /** A contact's identity key changed: compare the new safety number. */
  identityChanged: IdentityChange
  /** The connection to the relay went online, offline or closed. */
  connection: ConnectionEvent
  /** Mail was lost on the relay before this device fetched it. */
  gap: MailboxGapEvent
  /** The relay no longer serves this device (the number was taken over, the account erased, or the device removed). */
  deviceReplaced: DeviceReplacedEvent
  /** A contact's (or this account's) set of devices changed. */
  devicesChanged: DevicesChangedEvent
  /** A part of the account's history arrived from its primary (after this device was linked with history). */
  history: HistoryEvent
  /**
   * A contact changed its number (a notice signed by the identity pinned for it): its conversation goes on under
   * the new number. Also this account's own change, seen on its linked devices.
   */
  numberChanged: NumberChangedEvent
  /** A contact (or another device of this account) reacted to a message, or took a reaction back. */
  reaction: ReactionEvent
  /** A contact edited one of its messages. */
  messageEdited: MessageChangedEvent
  /** A contact deleted one of its messages for everyone. */
  messageDeleted: MessageChangedEvent
  /** A contact's device got, or its app showed, messages this account sent (their state moved on). */
  receipt: ReceiptEvent
  /** A contact started or stopped typing (ephemeral: only while this device is online). */
  typing: TypingEvent
  /**
   * A group this account is in was created, changed (members, admins, name) or left, by an admin's authenticated
   * change or this account's own; also when this account was removed from it (`group.left`).
   */
  groupUpdated: GroupUpdatedEvent
  /**
   * Something failed in the background (a message refused, a connection lost); never thrown. `FORBIDDEN` when the
   * relay refuses this account's login (its operator banned it): the client stops connecting instead of retrying,
   * its queued messages fail (`sendFailed`), and calls that need the relay reject with the same error, until the
   * client is created again (or `activate()` is called) and a login succeeds; the account stays on this device.
   */
  error: ParleyError
}

/** One member of a group. */
export interface GroupMemberInfo {
  /** The member's number (E.164), as the admin who added it stated it (or this device knows it). */
  number: string | null
  /** The member's account address (hex); null for a member not on Parley. */
  address: string | null
  /** Whether the member may change the group. */
  admin: boolean
  /** Whether the member is this account. */
  self: boolean
  /** How the group's messages reach it: end to end over Parley, or through the app's SMS hook. */
  route: 'ip' | 'sms'
}

/** A group, as this device holds it (its state lives only on its members' devices, never on the relay). */
export interface GroupInfo {
  /** The group's id (64 hex digits). */
  id: string
  /** Its name. */
  name: string
  /** How many changes it has had (0 at creation). */
  revision: number
  /** Every member, this account included while it is one. */
  members: GroupMemberInfo[]
  /** Whether this account may change it. */
  admin: boolean
  /** This account is no longer a member (it left, or was removed): nothing more can be sent or read. */
  left: boolean
}

/** Options of {@link ParleyClient.createGroup}. */
export interface CreateGroupOptions {
  /** The group's name (at most 256 UTF-8 bytes). */
  name: string
  /** The other members' numbers (any common format); those not on Parley are reached by SMS. */
  members: readonly string[]
}

/** What {@link ParleyClient.sendGroup} did, member by member. */
export interface GroupSendResult {
  /** The message id (32 hex digits). */
  id: string
  /**
   * Each other member and the route its copy took: queued over IP, handed to the SMS hook, or `unreached`: a
   * member not on Parley, and this device has no `smsFallback` (another device of the account may).
   */
  routes: GroupRoute[]
}

/** Which members got and read a group message this account sent ({@link ConversationMessage.receipts}). */
export interface GroupReceipts {
  /** The members (addresses, hex) a device of whose got it. */
  delivered: string[]
  /** The members (addresses, hex) who read it. */
  read: string[]
}

/** How one member of a group got a message ({@link GroupSendResult}). */
export interface GroupRoute {
  /** The member's number (E.164), when known. */
  number: string | null
  /** The member's account address (hex); null for a member not on Parley. */
  address: string | null
  /** `ip`, `sms`, or `unreached` (not on Parley, and this device has no `smsFallback`). */
  route: 'ip' | 'sms' | 'unreached'
}

/** A `groupUpdated` event. */
export interface GroupUpdatedEvent {
  /** The group as it is now. */
  group: GroupInfo
  /** The number of the member who changed it (null when not known, or for this device's own change). */
  by: string | null
}
