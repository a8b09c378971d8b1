/**
 * The relay's storage port (docs/architecture.md §7). Every method is async so that a PostgreSQL implementation fits
 * behind it unchanged; SQLite (`SqliteStore`) is the default. The store holds addresses, public keys and
 * ciphertext only — never a phone number, and no sender beside a message.
 * @module
 */

/** A signed X25519 prekey or a signed ML-KEM-768 prekey. */
export interface SignedKey {
  keyId: number
  publicKey: Uint8Array
  signature: Uint8Array
}

/** A one-time X25519 prekey. */
export interface OneTimeKey {
  keyId: number
  publicKey: Uint8Array
}

/** Prekeys to add or replace; already validated (lengths, signatures) by the caller. */
export interface PrekeySet {
  signedPrekey?: SignedKey
  oneTimePrekeys: OneTimeKey[]
  lastResortKemPrekey?: SignedKey
  oneTimeKemPrekeys: SignedKey[]
}

/** The registered device of an account (one device per address; re-activation replaces it). */
export interface Account {
  address: Uint8Array
  deviceId: number
  identityKey: Uint8Array
  createdAtMs: number
  /**
   * SHA-256 commitment to the account's number under a salt only the device kept (32 bytes), certified in
   * sender certificates; empty for an account activated without one. Never the number itself.
   */
  numberCommitment: Uint8Array
  /** SHA-256 verifier of the account's delivery token (32 bytes), or empty: unidentified delivery off. */
  deliveryVerifier: Uint8Array
  /**
   * When the account's device last authenticated (or activated), to the hour or so ({@link Store.touchAccount});
   * a registration lock lapses after a period without it.
   */
  lastActiveMs: number
}

/** What {@link Store.registerDevice} did. */
export interface RegisteredDevice {
  deviceId: number
  replacedDevice: boolean
  /** Unread messages restored to the new device (retained mail sealed to its identity key); 0 otherwise. */
  restoredMessages: number
  /** Unread messages of the replaced device now retained for its identity key; 0 otherwise. */
  retainedMessages: number
}

/**
 * An account's registration lock: a later activation of its number must prove the PIN, unless the account has
 * been inactive for the lapse period. Only a slow salted verifier of the PIN, never the PIN.
 */
export interface RegistrationLock {
  /** The device's scrypt salt (16 bytes). */
  salt: Uint8Array
  /** scrypt cost (N = 2^logN). */
  logN: number
  /** SHA-256("parley/v1/registration-lock" ‖ scrypt(PIN, salt)), 32 bytes. */
  verifier: Uint8Array
  /** When it was set. */
  setAtMs: number
}

/** What a sender fetches to start a session; fetching consumes the one-time keys. */
export interface PrekeyBundle {
  address: Uint8Array
  deviceId: number
  identityKey: Uint8Array
  signedPrekey: SignedKey
  oneTimePrekey?: OneTimeKey
  kemPrekey: SignedKey
  kemPrekeyIsLastResort: boolean
}

/** Counts of stored one-time prekeys, for refill. */
export interface PrekeyCounts {
  oneTimeCount: number
  kemOneTimeCount: number
}

/** The outcome of a prekey upload. */
export type PutPrekeysResult =
  | { status: 'stored'; counts: PrekeyCounts }
  | { status: 'over_limit'; counts: PrekeyCounts }
  | { status: 'not_found' }

/** One mailbox entry. Deliberately no sender. */
export interface MailboxEntry {
  seq: number
  messageId: Uint8Array
  envelope: Uint8Array
  receivedAtMs: number
}

/**
 * Why mail is missing, as in the wire `GapReason`. Only `expired` is recorded now; `evicted` gaps were recorded
 * by relays that evicted the oldest mail at the mailbox limit, and are still reported until the sweep drops them.
 */
export type GapKind = 'expired' | 'evicted'

/** A range of sequence numbers that is gone for good. */
export interface MailboxGapRange {
  firstSeq: number
  lastSeq: number
  reason: GapKind
}

/** A message for one recipient device. */
export interface EnqueueInput {
  address: Uint8Array
  deviceId: number
  messageId: Uint8Array
  envelope: Uint8Array
  receivedAtMs: number
  /**
   * Most unread messages the mailbox may hold. A message beyond it is refused (`full`): nothing is stored and
   * nothing already stored is evicted to make room, so a flood cannot push out a device's unread mail.
   */
  maxMessages: number
  /** Most envelope bytes of unread mail the mailbox may hold; a message that would exceed it is refused (`full`). */
  maxBytes: number
}

/** Which mailbox limit refused a message. */
export type MailboxLimit = 'messages' | 'bytes'

/** The outcome of an enqueue. */
export type EnqueueResult =
  | { status: 'stored'; seq: number }
  | { status: 'duplicate'; seq: number }
  /** The mailbox is at `maxMessages` or the envelope would take it over `maxBytes`; nothing was stored. */
  | { status: 'full'; limit: MailboxLimit }
  | { status: 'not_found' }
  | { status: 'stale_device'; currentDeviceId: number }

/** A page of a mailbox after a cursor. */
export interface MailboxPage {
  entries: MailboxEntry[]
  /** Gaps overlapping the page's range (clipped to start after the cursor). */
  gaps: MailboxGapRange[]
  headSeq: number
}

/**
 * The outcome of {@link Store.rebindAddress}: `moved`; `not_found` when the old address has no account or
 * another device; `taken` when the new address already has an account.
 */
export type RebindResult = 'moved' | 'not_found' | 'taken'

/** What a move of {@link Store.rebindAddress} changes besides the address. */
export interface RebindOptions {
  /** A number change: the account's new number commitment (32 bytes). */
  numberCommitment?: Uint8Array
  /** Keep a forward from the old address to the new one until this time (ms since the epoch). */
  forwardUntilMs?: number
}

/** How many forwards {@link Store.addressForward} follows (an account moved again before its devices followed). */
export const MAX_FORWARD_HOPS = 4

/**
 * An account as the operator sees it (`parley-relay admin`): its address and counters, never a key or a number.
 */
export interface AccountSummary {
  address: Uint8Array
  deviceId: number
  createdAtMs: number
  lastActiveMs: number
  /** Unread messages in the device's mailbox. */
  mailboxMessages: number
  /** Envelope bytes of that mail. */
  mailboxBytes: number
  /** Whether the operator banned the address ({@link Store.setBanned}). */
  banned: boolean
  /** Whether the operator revoked the registered device ({@link Store.revokeDevice}). */
  revoked: boolean
}

/** Why the operator refuses an address or a device: banned address, revoked device, or null for neither. */
export type OperatorHold = 'banned' | 'revoked' | null

/** A ban or a device revocation, as running relays poll them to close the connections concerned. */
export interface OperatorAction {
  /** Increasing in the order the actions were recorded. */
  seq: number
  address: Uint8Array
  /** The revoked device, or 0 for a ban (every device of the address). */
  deviceId: number
  atMs: number
}

/**
 * A linked device of an account (docs/architecture.md §9): a device other than the primary, added by a device list
 * the account identity signed. Its device key authenticates it and signs its prekeys.
 */
export interface LinkedDevice {
  deviceId: number
  /** The device's Ed25519 device key (32 bytes), as the signed list gives it. */
  deviceKey: Uint8Array
  createdAtMs: number
}

/** A device of an account as authentication and sender certificates see it: the primary or a linked device. */
export interface DeviceRecord {
  deviceId: number
  /** The primary's identity key (the account identity), or the linked device's device key. */
  key: Uint8Array
  primary: boolean
}

/** The account's devices, as a multi-device send is checked against. */
export interface DeviceSet {
  /** The registered primary device's id. */
  primaryDeviceId: number
  /** The linked devices' ids, ascending. */
  linkedDeviceIds: number[]
  /** The version of the stored signed list; 0 when the account never published one. */
  listVersion: number
}

/** The newest signed device list an account published, as stored (already verified by the relay). */
export interface StoredDeviceList {
  version: number
  /** The encoded `parley.v1.DeviceList`, exactly as the primary sent it. */
  list: Uint8Array
}

/** What {@link Store.putDeviceList} is given: a list the caller verified against the account identity. */
export interface PutDeviceListInput {
  address: Uint8Array
  /** The publishing device; the list is stored only when it is the registered primary. */
  primaryDeviceId: number
  version: number
  list: Uint8Array
  /** The list's devices other than the primary: exactly the linked devices the account has afterwards. */
  linked: { deviceId: number; deviceKey: Uint8Array }[]
  /** Most linked devices an account may have. */
  maxLinked: number
  nowMs: number
}

/**
 * The outcome of {@link Store.putDeviceList}. `stored`: the ids of the linked devices added and removed (a removed
 * device's row, prekeys, mailbox and gap records are erased in the same transaction). `not_found`: no account, or
 * the publisher is not its primary. `stale_version`: the version is not above the stored one. `over_limit`: more
 * than `maxLinked` linked devices. `bad_device_id`: a new device's id is not above every id the address used
 * before (ids are never reused, so a contact's session with an old device cannot be taken for a new one), or a
 * kept device's key changed.
 */
export type PutDeviceListResult =
  | { status: 'stored'; added: number[]; removed: number[] }
  | { status: 'not_found' }
  | { status: 'stale_version'; currentVersion: number }
  | { status: 'over_limit' }
  | { status: 'bad_device_id'; deviceId: number }

/** Which side of a link rendezvous a message goes to. */
export type RendezvousSide = 'primary' | 'device'

/** The outcome of {@link Store.postRendezvous}. */
export type RendezvousPostResult = 'posted' | 'not_found' | 'taken' | 'forbidden'

/** The storage port. */
export interface Store {
  /**
   * Whether mailbox writes (`enqueue`, `ack`) take effect in the order they are *called*, even when a caller
   * submits the next one before the previous one has resolved. When true, a connection may overlap its
   * consecutive sends and acks (submitting each in arrival order, awaiting their durability concurrently)
   * without reordering sequence numbers. When false (e.g. concurrent transactions on several pooled
   * connections that may commit in any order), callers must await each write before submitting the next.
   */
  readonly ordersConcurrentWrites: boolean
  /** Readiness probe: resolves when the store can serve requests. */
  ping(): Promise<void>
  /** How many accounts are registered (the membership prefix length adapts to it). */
  accountCount(): Promise<number>
  /** Flushes and closes; no call is valid afterwards. */
  close(): Promise<void>

  /**
   * Registers the device for an address with its identity key and initial prekeys, replacing (and erasing the
   * prekeys of) any earlier device. The new device id is one above the highest id the address used (its primary's
   * or a linked device's, {@link putDeviceList}), or 1. The account's linked devices (rows, prekeys, mailboxes,
   * gaps) and its device list are erased: they were linked by the identity being replaced. The account's registration
   * lock stays when `keepRegistrationLock` (the new device proved the PIN) and is removed otherwise. The new device
   * counts as active at `nowMs`. A forward kept from `address` (an account that moved away from it) is erased: the
   * address is a new account's now.
   *
   * Mail is not erased silently with the device it was sealed to. The replaced device's unread mail (and its gap
   * records) is *retained*, with its identity key, until it expires or the account is erased. At most one
   * device's mail is retained per address: a replaced device with unread mail takes the place of what an earlier
   * replacement retained (which is erased), one without keeps it retained. Mail sealed to the new device's
   * identity key (which the activation's signature proved) — the replaced device's own, or the retained one — is
   * *restored* to the new device instead, with its sequence numbers, and `restoredMessages` counts it. A device that
   * activates again with its own identity key (taking the number back after a takeover) thus gets the mail that
   * was waiting for it; anyone else gets none of it.
   */
  registerDevice(input: {
    address: Uint8Array
    identityKey: Uint8Array
    signedPrekey: SignedKey
    lastResortKemPrekey: SignedKey
    oneTimePrekeys: OneTimeKey[]
    oneTimeKemPrekeys: SignedKey[]
    /** 32 bytes, or empty. */
    numberCommitment: Uint8Array
    nowMs: number
    keepRegistrationLock?: boolean
  }): Promise<RegisteredDevice>
  /** The account registered at an address, if any. */
  getAccount(address: Uint8Array): Promise<Account | null>
  /**
   * Sets (or, with an empty verifier, clears) the account's delivery-token verifier; only the registered device
   * may. A new device starts with none. Resolves false when the device is not the registered one.
   */
  setDeliveryVerifier(address: Uint8Array, deviceId: number, verifier: Uint8Array): Promise<boolean>
  /** The account's registration lock, if it has one. */
  getRegistrationLock(address: Uint8Array): Promise<RegistrationLock | null>
  /**
   * Sets (or, with null, removes) the account's registration lock; only the registered device may. Resolves
   * false when the device is not the registered one.
   */
  setRegistrationLock(address: Uint8Array, deviceId: number, lock: RegistrationLock | null): Promise<boolean>
  /** Records that the registered device was active at `nowMs` (callers write at most about once an hour). */
  touchAccount(address: Uint8Array, deviceId: number, nowMs: number): Promise<void>
  /**
   * Erases the account: address, keys, prekeys, mail (retained mail too), gap records and registration lock, its
   * linked devices (rows, prekeys, mail, gaps), its device list, the rendezvous it opened, its highest device id
   * and the forwards that lead to its address. Resolves whether it existed.
   */
  deleteAccount(address: Uint8Array): Promise<boolean>
  /**
   * Moves the account registered at `from` (device `deviceId`) to the address `to` — after an OPRF key rotation,
   * its address under the new key — in one transaction: the account row (device id, keys, commitment, delivery
   * verifier, activity, mailbox counters and head), its one-time prekeys, mailbox entries (same sequence numbers),
   * gap records, registration lock, linked devices (with their prekeys, mail and gaps), device list and highest
   * device id are afterwards found under `to` only, and nothing of the account remains
   * readable under `from`. Resolves `moved`; `not_found` when `from` has no account or another device; `taken`
   * when `to` already has an account (nothing changes then).
   *
   * `options.numberCommitment` (a number change, `ChangeNumber`): the moved account's number commitment is
   * replaced by it (32 bytes). `options.forwardUntilMs`: in the same transaction, a *forward* from `from` to `to`
   * is kept until then, so that the account's devices that still log in under `from` find it
   * ({@link addressForward}). A forward is stored under a keyed hash of `from`, its target sealed under a key
   * derived from `from`, so the store alone does not link the two addresses. A forward kept from `to` (an account
   * that moved away from it, this one included) is erased: `to` is this account's now.
   */
  rebindAddress(
    from: Uint8Array,
    deviceId: number,
    to: Uint8Array,
    options?: RebindOptions,
  ): Promise<RebindResult>
  /**
   * Where an account that was at `from` is now: follows the forwards {@link rebindAddress} kept (at most
   * {@link MAX_FORWARD_HOPS} of them, each unexpired at `nowMs`) to an address that has an account. Resolves
   * undefined when `from` has no forward, one has expired, or the chain ends at no account. Callers ask only when
   * `from` itself has no account.
   */
  addressForward(from: Uint8Array, nowMs: number): Promise<Uint8Array | undefined>
  /** Every registered address whose first `bits` bits equal `prefix`'s. */
  addressesWithPrefix(prefix: Uint8Array, bits: number, limit: number): Promise<Uint8Array[]>

  /**
   * Adds one-time prekeys (same key id replaces) and replaces the signed / last-resort prekeys when given; stores
   * nothing when the device is not one of the account's (its primary or a linked device), or when more than
   * `maxStored` one-time keys would result. A linked device's first upload must carry its signed prekey and
   * last-resort KEM prekey (else `not_found`: it has no bundle to complete).
   */
  putPrekeys(
    address: Uint8Array,
    deviceId: number,
    keys: PrekeySet,
    maxStored: number,
  ): Promise<PutPrekeysResult>
  /**
   * Takes a bundle of the device `deviceId` (the primary when 0 or omitted; a linked device's bundle carries its
   * device key as `identityKey`), consuming one one-time prekey and one one-time KEM prekey when there are any.
   * Null when the address has no such device, or a linked device has uploaded no signed prekeys yet.
   */
  takePrekeyBundle(address: Uint8Array, deviceId?: number): Promise<PrekeyBundle | null>
  /** Counts of the remaining one-time prekeys. */
  countPrekeys(address: Uint8Array, deviceId: number): Promise<PrekeyCounts>

  /**
   * Durably stores a message for the primary or a linked device (idempotent by recipient device and message id;
   * `stale_device` with the primary's id when `deviceId` is neither) and assigns its sequence number, unless
   * the mailbox is full (`maxMessages`, `maxBytes`): then nothing changes. A duplicate is reported as such even
   * when the mailbox is full. The account row keeps the count and the envelope bytes of the unread mail, updated
   * in the same transaction by enqueue, ack and expire, and reset by registerDevice and deleteAccount; a linked
   * device's row keeps its own.
   */
  enqueue(input: EnqueueInput): Promise<EnqueueResult>
  /**
   * Entries with `seq > afterSeq`, in order, at most `limit` of them and, when `maxBytes` is given, no more than
   * `maxBytes` of envelopes in total — except that the first entry is always returned, however large, so a
   * caller paging through the mailbox always makes progress. Entries are taken in seq order until the next one
   * would exceed either bound; the store reads no envelope it does not return.
   *
   * Gaps: a *full* page (ended by `limit` or by `maxBytes`, with more entries after it) covers `afterSeq` to its
   * last entry and holds the gaps overlapping that range; any other page runs to the head and holds every gap
   * after the cursor. Either way, paging on from the last seq returned (or the last gap's end) misses nothing.
   */
  fetchMailbox(
    address: Uint8Array,
    deviceId: number,
    afterSeq: number,
    limit: number,
    maxBytes?: number,
  ): Promise<MailboxPage>
  /** Highest sequence number assigned to the device (0 before any). */
  mailboxHead(address: Uint8Array, deviceId: number): Promise<number>
  /**
   * Deletes the owner's entries with the given sequence numbers, in one statement however long the list (callers
   * bound its length), and lowers the mailbox count and bytes by what was deleted; resolves how many were deleted. A seq listed
   * twice counts once; seqs of other devices, already acked or never assigned match nothing.
   */
  ack(address: Uint8Array, deviceId: number, seqs: number[]): Promise<number>
  /**
   * Deletes mail received before `cutoffMs` (recording the ranges as `expired` gaps), gap records older than
   * `cutoffMs`, and the records of mail retained before `cutoffMs` (all of which has expired by then), for the
   * primary and linked devices alike; also every rendezvous whose expiry is at or before `nowMs` (default
   * `Date.now()`), and the forwards ({@link rebindAddress}) whose time ran out before `nowMs`. Resolves how many
   * messages expired.
   */
  expire(cutoffMs: number, nowMs?: number): Promise<number>

  // ── Linked devices (docs/architecture.md §9) ──

  /**
   * The device `deviceId` of the account at `address` — its primary or a linked device — with the key that
   * authenticates it, or null when the address has no such device.
   */
  getDevice(address: Uint8Array, deviceId: number): Promise<DeviceRecord | null>
  /** The account's devices and list version, or null when the address has no account. */
  deviceSet(address: Uint8Array): Promise<DeviceSet | null>
  /** The linked devices of the account at `address`, by id (empty when none or no account). */
  linkedDevices(address: Uint8Array): Promise<LinkedDevice[]>
  /** The newest signed device list the account published, or null (none, or no account). */
  getDeviceList(address: Uint8Array): Promise<StoredDeviceList | null>
  /**
   * Stores a signed device list and, in the same transaction, makes the account's linked devices those of
   * `linked`: adds the new ones (no prekeys, an empty mailbox, head 0), keeps the others, and erases the ones
   * missing (row, prekeys, mailbox, gaps). See {@link PutDeviceListResult} for the refusals (nothing changes then).
   * The address's highest device id ever used rises with every added device; {@link registerDevice} gives a new
   * primary an id above it, and the erasure of the account forgets it.
   */
  putDeviceList(input: PutDeviceListInput): Promise<PutDeviceListResult>

  /**
   * Opens a link rendezvous for the primary of `address`: an id (16 bytes, chosen by the caller) valid until
   * `expiresAtMs`, with no message on either side. Resolves false when the id exists already.
   */
  openRendezvous(id: Uint8Array, address: Uint8Array, expiresAtMs: number): Promise<boolean>
  /**
   * Posts the one message of one side of a rendezvous. `primary` (the new device's request) may be posted by
   * anyone who knows the id, once; `device` (the primary's answer) only by the account that opened it (`address`,
   * else `forbidden`), once. `not_found`: no such rendezvous, or it expired (`nowMs` ≥ its expiry); `taken`: that
   * side has its message already.
   */
  postRendezvous(
    id: Uint8Array,
    side: RendezvousSide,
    message: Uint8Array,
    address: Uint8Array | null,
    nowMs: number,
  ): Promise<RendezvousPostResult>
  /**
   * Reads the message of one side of a live rendezvous: null when it has none yet, or the rendezvous is missing or
   * expired. Reading the `device` side's message erases the rendezvous (its one use is over); reading the
   * `primary` side is allowed only to the opener (`address`; another address reads null).
   */
  readRendezvous(
    id: Uint8Array,
    side: RendezvousSide,
    address: Uint8Array | null,
    nowMs: number,
  ): Promise<Uint8Array | null>

  // ── Operator holds (`parley-relay admin`): bans by address and device revocations ──

  /**
   * Accounts in address order after `after` (null: from the first), at most `limit`, with their counters and
   * holds; for the operator's listing.
   */
  listAccounts(after: Uint8Array | null, limit: number): Promise<AccountSummary[]>
  /** One account's summary, or null when the address has no account. */
  accountSummary(address: Uint8Array): Promise<AccountSummary | null>
  /**
   * Bans (`banned` true) or unbans an address. A ban holds whether or not an account is registered there, and
   * survives its erasure and re-activation; it keeps the account, its keys and its mail (which expires as
   * usual). Banning records an {@link OperatorAction}. Resolves whether anything changed.
   */
  setBanned(address: Uint8Array, banned: boolean, nowMs: number): Promise<boolean>
  /**
   * Revokes the registered device of an address: its authentication fails from now on, until the number is
   * activated again (a new device). Records an {@link OperatorAction}. Resolves false when `deviceId` is not the
   * registered device (nothing changes then).
   */
  revokeDevice(address: Uint8Array, deviceId: number, nowMs: number): Promise<boolean>
  /**
   * What the operator holds against a device of an address: `banned` (the address), `revoked` (that device),
   * or null. `deviceId` 0 asks about the address alone (activation).
   */
  operatorHold(address: Uint8Array, deviceId: number): Promise<OperatorHold>
  /**
   * Operator actions with `seq > afterSeq` recorded at or after `sinceMs`, in seq order, at most `limit`.
   * Actions older than a day are dropped when a new one is recorded.
   */
  operatorActions(afterSeq: number, sinceMs: number, limit: number): Promise<OperatorAction[]>
}
