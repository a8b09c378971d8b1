// The engine's keyspace: every key it keeps in the Store port and the record stored under it, in one place.
// These keys and record shapes are what every device has on disk: change one only with a migration (and a new
// KEYSPACE_VERSION). The helpers build single writes; every change is still one atomic `store.write([...])`
// batch, put together by the part that makes it. Not exported from the package.

import { decodeRecord, encodeRecord, pad, toHex } from '../internal/codec.js'
import type { Store, StoreEntry, StoreWrite } from '../Store.js'

/**
 * The version of the layout below. It is not stored (no store written so far carries one); bump it, and migrate,
 * with any change to a key or to the shape of a record.
 */
export const KEYSPACE_VERSION = 1

/** How long after a number change the account's envelopes carry its address-change notice (30 days). */
export const ADDRESS_CHANGE_CARRY_MS = 30 * 86_400_000

// ───────────────────────────── records ─────────────────────────────

export interface AccountRecord {
  e164: string
  address: Uint8Array
  deviceId: number
  identity: { publicKey: Uint8Array; secretKey: Uint8Array }
  /** Opens the number commitment the relay certified at activation (absent for accounts from before it). */
  numberSalt?: Uint8Array
  /** This account's delivery token, shared with contacts in every message; its verifier is on the relay. */
  deliveryToken?: Uint8Array
  /** Whether the relay has the current token's verifier. */
  deliveryTokenSet?: boolean
  /** The OPRF key epoch the address is derived under (absent in records from before key rotation). */
  keyId?: number
  /**
   * On a linked device: the account identity (the primary's key, which contacts pinned and the device list is
   * signed by); `identity` is then this device's own device key. Absent on the primary, whose device key is the
   * account identity.
   */
  accountIdentityKey?: Uint8Array
  /** The account's newest signed device list this device knows (absent: it never had one; the primary alone). */
  devices?: DeviceListRecord
  /** On the primary: the highest device id the account has used (a new linked device gets one above it). */
  maxDeviceId?: number
  /**
   * After a number change: the signed notice (an encoded `AddressChange`, old address → this one) carried in every
   * envelope sealed until `until` (ms), so that a contact who missed the notice message still follows.
   */
  addressChange?: { notice: Uint8Array; until: number }
}

/** A linked device's first prekey upload: public keys and their signatures, as `PrekeyUpload` carries them. */
export interface LinkUploadRecord {
  signedPrekey: { keyId: number; publicKey: Uint8Array; signature: Uint8Array }
  oneTimePrekeys: { keyId: number; publicKey: Uint8Array }[]
  lastResortKemPrekey: { keyId: number; publicKey: Uint8Array; signature: Uint8Array }
  oneTimeKemPrekeys: { keyId: number; publicKey: Uint8Array; signature: Uint8Array }[]
}

/** One device of a verified device list. */
export interface DeviceEntryRecord {
  deviceId: number
  deviceKey: Uint8Array
}

/** An account's device list as this device verified it (its own account's, or a contact's). */
export interface DeviceListRecord {
  version: number
  primaryDeviceId: number
  /** Every device, the primary included, ordered by id. */
  devices: DeviceEntryRecord[]
  /** The signed list as the relay served it (empty for an account that never published one). */
  list: Uint8Array
}

/** What a replaced device keeps of its account to take the number back with the same identity. */
export interface PreviousRecord {
  e164: string
  identity: { publicKey: Uint8Array; secretKey: Uint8Array }
}

export interface PendingRecord {
  e164: string
  activationId: Uint8Array
  expiresAt: number
}

export interface PrekeyMeta {
  nextOtpId: number
  nextKemId: number
  signedPrekeyId: number
  lastResortKemId: number
  /** When the current signed prekey was made (absent in stores from before rotation existed). */
  signedPrekeyAt?: number
  /** Replaced signed prekeys, kept for mail still in flight until `retiredAt + SIGNED_PREKEY_GRACE_MS`. */
  retiredSignedPrekeys?: { id: number; retiredAt: number }[]
}

export type PrekeyKind = 'spk' | 'otp' | 'kem'

/**
 * A prekey's secret (internal/e2e.ts writes and reads them): a signed prekey keeps its public key too, and the
 * last-resort KEM prekey is marked so that using it consumes nothing.
 */
export interface PrekeySecret {
  publicKey?: Uint8Array
  secretKey: Uint8Array
  lastResort?: boolean
}

export interface ContactRecord {
  e164: string
  address: Uint8Array
  registered: boolean
  checkedAt: number
  /** The OPRF key epoch `address` was derived under; absent when unknown (older records, or learned from mail). */
  keyId?: number
}

export interface SessionRecord {
  deviceId: number
  identityKey: Uint8Array
  state: Uint8Array
  /** Archived sessions with the same contact (any identity), tried when the current one cannot decrypt. */
  previous?: Uint8Array[]
  /** The contact's device was replaced (CONFLICT): still decrypts, but the next send starts a new session. */
  stale?: boolean
}

/**
 * A message sent while offline to a number whose registration is unknown (never looked up, or not lately, and
 * last seen not on Parley): it waits here until the client is online and has looked the number up, then moves
 * to the outbox (on Parley) or fails with `sendFailed` NOT_FOUND (not, and no `smsFallback`).
 */
export interface UnresolvedSendRecord {
  id: string
  /** The recipient's number (E.164). */
  to: string
  text: string
  sentAt: number
  replyTo?: string
}

export interface OutboxRecord {
  id: string
  to: string
  address: Uint8Array
  text: string
  sentAt: number
  /**
   * A part of this account's history for its other devices (an encoded `HistoryChunk`), sent instead of `text`
   * after a link; such an entry goes to this account's own devices only.
   */
  history?: Uint8Array
  /**
   * An address-change notice (after a number change) instead of `text`: to a contact, or to this account's own
   * other devices (`address` is then this account's, and the new number goes with it). Never reported to the app
   * (no `delivered` or `sendFailed`).
   */
  notice?: true
  /**
   * Instead of `text`: a reaction, an edit, a deletion for everyone, a receipt (ids in hex) or a typing indicator.
   * Like a notice, never reported to the app as a message of its own, and never sent by SMS.
   */
  body?: OutgoingBody
  /** With `text`: the id (hex) of the message this one quotes. */
  replyTo?: string
  /** The session message once encrypted; a retry reseals (with a current certificate) the same message. */
  message?: { kind: 'prekey' | 'ratchet'; body: Uint8Array }
  /** A group message (engine/groups.ts): encrypted once, then sealed for every member device. */
  group?: GroupSendRecord
  /**
   * Instead of `text`, to one member account of a group (engine/groups.ts): the group's new state (an encoded
   * `GroupUpdate`) or this device's sender key for it (an encoded `GroupKey`). A control message, like `body`.
   */
  groupControl?: { groupId: string; update?: Uint8Array; key?: Uint8Array }
  /** The recipient device's identity key the message was encrypted for. */
  recipientIdentityKey?: Uint8Array
  deviceId?: number
  /**
   * Set once the message goes to several devices (the recipient has linked devices, or this account has): the
   * copies encrypted so far, per device, for the recipient (`copies`, at list version `listVersion`) and for this
   * account's other devices as sent transcripts (`transcripts`); `recipientDone` once the relay took the
   * recipient's copies.
   */
  multi?: {
    listVersion: number
    copies: CopyRecord[]
    recipientDone?: boolean
    ownVersion?: number
    transcripts: CopyRecord[]
  }
}

/** An attachment as this device keeps it: where its blob is (hex id) and how to open it. */
export interface AttachmentRecord {
  blobId: string
  key: Uint8Array
  digest: Uint8Array
  size: number
  ciphertextSize: number
  chunkSize: number
  mimeType?: string
  fileName?: string
  caption?: string
  preview?: Uint8Array
}

/** What an outbox entry carries besides a text (`OutboxRecord.body`). */
export type OutgoingBody =
  | { attachment: AttachmentRecord }
  | { reaction: { targetId: string; emoji: string; remove: boolean } }
  | { edit: { targetId: string; text: string } }
  | { deleteForEveryone: string }
  | { receipt: { kind: 'delivered' | 'read'; messageIds: string[] } }
  /** A typing indicator: sent ephemeral (never stored by the relay), dropped rather than retried. */
  | { typing: boolean }

/** The group part of an outbox entry: the one `SenderKeyMessage`, and the member accounts it goes to. */
export interface GroupSendRecord {
  /** The group id (hex). */
  id: string
  /** The encoded `SenderKeyMessage`, the same for every member device. */
  message: Uint8Array
  /** The encoded `GroupKey` of the chain at this message: for a member device that turns out to lack it. */
  key: Uint8Array
  /** The member accounts (address hex) to send to: every Parley member but this account. */
  to: string[]
  /** Those whose mailboxes took it (or refused it for good) so far. */
  done: string[]
  /** Whether this account's other devices have their copies. */
  ownDone?: true
}

/** A group as this device holds it (engine/groups.ts). */
export interface GroupRecord {
  /** The group id (hex). */
  id: string
  /** The encoded `GroupUpdate` in force. */
  current: Uint8Array
  /** The one it replaced, to judge a concurrent change built on it. */
  previous?: Uint8Array
  /** This account's own change not yet known to have won (re-applied on top if a concurrent one beat it). */
  mine?: GroupChangeRecord
}

/** A change this account made to a group, as an operation that can be applied again to a newer state. */
export type GroupChangeRecord =
  | { add: { address?: string; e164: string }[] }
  | { remove: string[] }
  | { admin: { address: string; admin: boolean } }
  | { rename: string }

/** This device's own sender key chain for a group. */
export interface OwnSenderKeyRecord {
  distributionId: Uint8Array
  iteration: number
  chainKey: Uint8Array
  signingKey: Uint8Array
  signingSecret: Uint8Array
  /** The member accounts (address hex) given this chain, with the device list version they had then. */
  sentTo: Record<string, number>
  /** A member was removed since this chain began: the next send starts a new one. */
  rekey?: true
}

/** Another device's sender key chain for a group, as it gave it to this device over their pairwise session. */
export interface PeerSenderKeyRecord {
  /** The group id (hex). */
  groupId: string
  /** The identity key of the device that gave it: only that device's messages open with it. */
  identityKey: Uint8Array
  /** When it arrived (ms): of one device's chains for one group, only the two newest are kept. */
  receivedAt?: number
  distributionId: Uint8Array
  iteration: number
  chainKey: Uint8Array
  signingKey: Uint8Array
  skipped: { iteration: number; messageKey: Uint8Array }[]
}

/** One device's copy of a multi-device message: the session message made for it and the key it is for. */
export interface CopyRecord {
  deviceId: number
  identityKey: Uint8Array
  message: { kind: 'prekey' | 'ratchet'; body: Uint8Array }
}

export interface HeldRecord {
  envelope: Uint8Array
  receivedAtMs: number
}

export interface StoredMessage {
  id: string
  from: string | null
  fromAddress: string
  text: string
  sentAt: number
  receivedAt: number
  /** The relay's mailbox sequence number, when it gave one (records stored before 2026-12 have none). */
  seq?: number
  /** A sent transcript: another device of this account sent it, to this number (null: not resolved). */
  to?: string | null
  /** A sent transcript: the address it was sent to. */
  toAddress?: string
  /** A body this SDK does not show yet; `text` is the sender's fallback text. */
  unsupported?: true
  /** The id (hex) of the message it quotes. */
  replyTo?: string
  /** An attachment (the text is its caption). */
  attachment?: AttachmentRecord
  /** A group message: the group's id (hex). */
  group?: string
}

/** A conversation (engine/conversations.ts): one per peer. */
export interface ConversationRecord {
  /** 32 hex digits, random, chosen when the first message arrived or was sent. */
  id: string
  /** A Parley account's address (hex), `sms:` + E.164 for a number reached only by SMS, or `group:` + its id. */
  peer: string
  /** The peer's number when known. */
  number: string | null
  /** Received messages not marked read. */
  unread: number
  /** The newest message's time (ms). */
  updatedAt: number
  /** The newest message: its key and id. */
  last?: { key: string; id: string }
}

/** One message of a conversation, in either direction. */
export interface ConversationMessageRecord {
  /** The message id (hex). */
  id: string
  /** Sent by this account (from this device or, as a sent transcript, another of its devices). */
  outgoing: boolean
  /** The sender's number when known (this account's own for an outgoing message). */
  from: string | null
  /** In a group's conversation, a received message's sender (address hex): only it may edit or delete it. */
  fromAddress?: string
  /**
   * A group message sent by this account: the member accounts (address hex) it went to, and those whose delivery
   * and read receipts came back.
   */
  groupReceipts?: { to: string[]; delivered: string[]; read: string[] }
  text: string
  /** The sender's clock (ms). */
  sentAt: number
  /** When the relay received it (ms); null for a message sent from this device. */
  receivedAt: number | null
  /** See `MessageState`. */
  state: 'queued' | 'sent' | 'delivered' | 'read' | 'failed' | 'sms' | 'received'
  /** A received message the app marked read. */
  read?: boolean
  /** The id (hex) of the message this one quotes. */
  replyTo?: string
  /** Reactions, by who reacted (an address in hex; `me` for this account) to the emoji. */
  reactions?: Record<string, string>
  /** Its sender edited it (the text is the newest). */
  edited?: true
  /** Its sender deleted it for everyone (the text is gone). */
  deleted?: true
  /** An attachment (the text is its caption). */
  attachment?: AttachmentRecord
  /**
   * What orders messages of one millisecond: the mailbox sequence number of a received message or a sent
   * transcript, or the place in this device's outbox of a message sent from here.
   */
  seq?: number
}

// ───────────────────────────── keys ─────────────────────────────

/** How a value becomes the bytes stored under its key, and back. */
export interface Codec<T> {
  encode(value: T): Uint8Array
  decode(bytes: Uint8Array): T
}

/** One key, and the type of the value stored under it. */
export interface Slot<T> {
  readonly key: string
  readonly codec: Codec<T>
}

/** The keys under one prefix (`session/<address>`, …): called with its parts, it names one of them. */
export interface Family<A extends unknown[], T> {
  (...parts: A): Slot<T>
  /** What every key of the family starts with, for {@link Store.list}. */
  readonly prefix: string
  readonly codec: Codec<T>
}

/** Bytes stored as they are: keys, certificates, tokens. */
const bytes: Codec<Uint8Array> = { encode: (v) => v, decode: (b) => b }

/** A JSON record whose leaves may be bytes (internal/codec.ts). */
function json<T>(): Codec<T> {
  return { encode: (v) => encodeRecord(v), decode: (b) => decodeRecord<T>(b) }
}

function slot<T>(key: string, codec: Codec<T>): Slot<T> {
  return { key, codec }
}

function family<A extends unknown[], T>(
  prefix: string,
  codec: Codec<T>,
  rest: (...parts: A) => string,
): Family<A, T> {
  return Object.assign((...parts: A) => slot(prefix + rest(...parts), codec), { prefix, codec })
}

/** Store keys (one namespace per concern). */
export const K = {
  account: slot('account', json<AccountRecord>()),
  pending: slot('activation/pending', json<PendingRecord>()),
  /** A number change waiting for the new number's code (`changeNumber` → `confirmNumberChange`). */
  numberChange: slot('account/number-change', json<PendingRecord>()),
  /** This device's identity after another device took the number over: used again if it activates the number. */
  previous: slot('account/previous', json<PreviousRecord>()),
  /** The highest mailbox seq acked, where the next sync resumes. */
  cursor: slot('mailbox/cursor', json<number>()),
  prekeyMeta: slot('prekey/meta', json<PrekeyMeta>()),
  /** A linked device's first prekeys (public parts), until the relay has them. */
  linkUpload: slot('link/prekey-upload', json<LinkUploadRecord>()),
  prekey: family('prekey/', json<PrekeySecret>(), (kind: PrekeyKind, id: number) => `${kind}/${pad(id)}`),
  oprfPin: family('oprf/pin/', bytes, (keyId: number) => pad(keyId)),
  /** The relay's trust root, pinned at first use (or given in the options). */
  trustRoot: slot('relay/trust-root', bytes),
  /** This device's current sender certificate. */
  senderCertificate: slot('account/sender-certificate', bytes),
  /** A contact's identity key that the user verified (compared safety numbers). */
  verified: family('verified/', bytes, (addressHex: string) => addressHex),
  /** Envelopes held because a verified contact's identity changed, until the app approves it. */
  held: family('held/', json<HeldRecord>(), (addressHex: string, seq: number) => `${addressHex}/${pad(seq)}`),
  /** A contact's delivery token, for unidentified sends to it. */
  peerToken: family('delivery/peer/', bytes, (addressHex: string) => addressHex),
  /** First messages already accepted, by signed prekey and base key (replay cache): when, received. */
  replay: family(
    'replay/',
    json<number>(),
    (signedPrekeyId: number, baseKeyHex: string) => `${pad(signedPrekeyId)}/${baseKeyHex}`,
  ),
  token: family('oprf/token/', bytes, (keyId: number, e164: string) => `${pad(keyId)}/${e164}`),
  contact: family('contact/', json<ContactRecord>(), (e164: string) => e164),
  /** The number this device resolved an address to. */
  byAddress: family('address/', json<string>(), (addressHex: string) => addressHex),
  session: family('session/', json<SessionRecord>(), (addressHex: string) => addressHex),
  /**
   * The session with a linked device of an account (a contact's, or this account's own other devices); the
   * session with an account's primary stays under `session/`.
   */
  deviceSession: family(
    'device-session/',
    json<SessionRecord>(),
    (addressHex: string, deviceId: number) => `${addressHex}/${pad(deviceId)}`,
  ),
  /** The conversation of a peer (an address in hex, or `sms:` + E.164): its id. */
  convOf: family('conversation/of/', json<string>(), (peer: string) => peer),
  conversation: family('conversation/record/', json<ConversationRecord>(), (id: string) => id),
  conversationMessage: family(
    'conversation/message/',
    json<ConversationMessageRecord>(),
    // Time, then the relay's mailbox order for mail received in the same millisecond, then the id.
    (id: string, at: number, seq: number, idHex: string) => `${id}/${pad(at)}/${pad(seq)}/${idHex}`,
  ),
  /** Where a conversation message is stored (its key), by message id. */
  messageIndex: family('conversation/index/', json<string>(), (idHex: string) => idHex),
  /** A contact's device list, verified against the identity pinned for it. */
  deviceList: family('device-list/', json<DeviceListRecord>(), (addressHex: string) => addressHex),
  /** The last identity key seen for a contact, kept even when the session is dropped. */
  identity: family('identity/', bytes, (addressHex: string) => addressHex),
  outbox: family('outbox/', json<OutboxRecord>(), (seq: number) => pad(seq)),
  /** The groups this account is (or was) a member of. */
  group: family('group/state/', json<GroupRecord>(), (idHex: string) => idHex),
  /** This device's own sender key for a group. */
  groupOwnKey: family('group/own-key/', json<OwnSenderKeyRecord>(), (idHex: string) => idHex),
  /** Other devices' sender keys: by sender address, device and chain. */
  groupPeerKey: family(
    'group/peer-key/',
    json<PeerSenderKeyRecord>(),
    (addressHex: string, deviceId: number, distributionIdHex: string) =>
      `${addressHex}/${pad(deviceId)}/${distributionIdHex}`,
  ),
  /**
   * Group messages under a chain this device has not been given yet, by sender, device and chain, until its
   * key comes (then opened again, in arrival order).
   */
  groupHeld: family(
    'group/held/',
    json<HeldRecord>(),
    (addressHex: string, deviceId: number, distributionIdHex: string, n: number) =>
      `${addressHex}/${pad(deviceId)}/${distributionIdHex}/${pad(n)}`,
  ),
  /** Sends waiting for the client to be online to look their number up (in sending order). */
  unresolved: family('unresolved/', json<UnresolvedSendRecord>(), (seq: number) => pad(seq)),
  /** Message ids already delivered (the inbox's dedupe): when, received. */
  seen: family('inbox/seen/', json<number>(), (idHex: string) => idHex),
  inbox: family(
    'inbox/message/',
    json<StoredMessage>(),
    (at: number, idHex: string) => `${pad(at)}/${idHex}`,
  ),
}

/** The prefix of the envelopes held for one contact. */
export function heldPrefix(addressHex: string): string {
  return `${K.held.prefix}${addressHex}/`
}

/** The prefix of the group messages held from one account, or from one of its devices under one chain. */
export function groupHeldPrefix(addressHex: string, chain?: { deviceId: number; distributionIdHex: string }) {
  return chain === undefined
    ? `${K.groupHeld.prefix}${addressHex}/`
    : `${K.groupHeld.prefix}${addressHex}/${pad(chain.deviceId)}/${chain.distributionIdHex}/`
}

// ───────────────────────────── typed access ─────────────────────────────

/** Reads and decodes the value under `slot`; undefined when there is none. */
export async function get<T>(store: Store, slot: Slot<T>): Promise<T | undefined> {
  const raw = await store.get(slot.key)
  return raw === undefined ? undefined : slot.codec.decode(raw)
}

/** The write that puts `value` under `slot`, for a batch. */
export function put<T>(slot: Slot<T>, value: T): StoreWrite {
  return { key: slot.key, value: slot.codec.encode(value) }
}

/** The write that deletes `slot` (or a key listed from the store), for a batch. */
export function del(slot: Slot<unknown> | string): StoreWrite {
  return { key: typeof slot === 'string' ? slot : slot.key }
}

/** Decodes an entry listed under a family's prefix. */
export function decodeEntry<T>(family: { readonly codec: Codec<T> }, entry: StoreEntry): T {
  return family.codec.decode(entry.value)
}

/** The write that puts `value` under a key listed from the store under `family`'s prefix. */
export function putAt<T>(family: { readonly codec: Codec<T> }, key: string, value: T): StoreWrite {
  return { key, value: family.codec.encode(value) }
}

/**
 * The writes that move everything kept under one address (a contact's, or this account's own: sessions with its
 * devices, device list, identity, verified mark, delivery token, the number it resolves to, held mail) to
 * another, for one batch. `retire` marks the session with the account's primary stale (the next send starts a new
 * one). The contact record (keyed by number) is the caller's.
 */
export async function moveAddressRecords(
  store: Store,
  fromHex: string,
  toHex: string,
  retire = false,
): Promise<StoreWrite[]> {
  const writes: StoreWrite[] = []
  const move = async (from: string, to: string, change?: (v: Uint8Array) => Uint8Array) => {
    const value = await store.get(from)
    if (value === undefined) return
    writes.push(del(from), { key: to, value: change ? change(value) : value })
  }
  await move(K.session(fromHex).key, K.session(toHex).key, (v) =>
    retire ? K.session.codec.encode({ ...K.session.codec.decode(v), stale: true }) : v,
  )
  for (const slot of [K.deviceList, K.identity, K.verified, K.peerToken, K.byAddress, K.convOf] as const) {
    await move(slot(fromHex).key, slot(toHex).key)
  }
  for (const prefix of [`${K.deviceSession.prefix}${fromHex}/`, heldPrefix(fromHex)]) {
    const next = prefix.replace(fromHex, toHex)
    for (const e of await store.list(prefix)) {
      writes.push(del(e.key), { key: next + e.key.slice(prefix.length), value: e.value })
    }
  }
  return writes
}

/** A contact's record, or null when the number was never looked up. */
export async function contactRecord(store: Store, e164: string): Promise<ContactRecord | null> {
  return (await get(store, K.contact(e164))) ?? null
}

/** The session record with the contact at `address`, or null. */
export async function sessionRecord(store: Store, address: Uint8Array): Promise<SessionRecord | null> {
  return (await get(store, K.session(toHex(address)))) ?? null
}
