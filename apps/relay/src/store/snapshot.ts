// A whole store as one consistent read, in the shape both SQL stores understand: what `parley-relay migrate`
// reads from SQLite (`SqliteStore.openSnapshot`) and writes into PostgreSQL (`PostgresStore.importSnapshot`),
// values in the clear between the two (the PostgreSQL side seals them under fresh account data keys).
import type { GapKind, OneTimeKey, RegistrationLock, SignedKey, StoredDeviceList } from '../Store.js'

/** One mail row: of the account's device, or of the replaced device whose mail is retained. */
export interface MailRow {
  deviceId: number
  seq: number
  messageId: Uint8Array
  envelope: Uint8Array
  receivedAtMs: number
}

/** One gap record. */
export interface GapRow {
  deviceId: number
  firstSeq: number
  lastSeq: number
  reason: GapKind
  recordedAtMs: number
}

/** A linked device of an account (docs/architecture.md §9), with its keys, mailbox counters and one-time prekeys. */
export interface LinkedDeviceSnapshot {
  deviceId: number
  deviceKey: Uint8Array
  createdAtMs: number
  /** Null before the device's first prekey upload (then both are). */
  signedPrekey: SignedKey | null
  lastResortKemPrekey: SignedKey | null
  mailboxHeadSeq: number
  mailboxCount: number
  mailboxBytes: number
  oneTimePrekeys: OneTimeKey[]
  oneTimeKemPrekeys: SignedKey[]
}

/** Everything a store holds of one account. */
export interface AccountSnapshot {
  address: Uint8Array
  deviceId: number
  identityKey: Uint8Array
  signedPrekey: SignedKey
  lastResortKemPrekey: SignedKey
  /** Empty when none. */
  numberCommitment: Uint8Array
  /** Empty when none. */
  deliveryVerifier: Uint8Array
  createdAtMs: number
  /** Null when none was recorded (read as `createdAtMs`). */
  lastActiveMs: number | null
  mailboxHeadSeq: number
  mailboxCount: number
  mailboxBytes: number
  oneTimePrekeys: OneTimeKey[]
  oneTimeKemPrekeys: SignedKey[]
  /** The address's mail rows in (device, seq) order, in batches (a mailbox can hold gigabytes). */
  mail(): Iterable<MailRow[]>
  gaps: GapRow[]
  lock: RegistrationLock | null
  retained: { deviceId: number; identityKey: Uint8Array; headSeq: number; retainedAtMs: number } | null
  /**
   * The account's linked devices (their mail is in {@link mail} and {@link gaps} under their ids). Optional so
   * that a source which does not read them yet still type-checks: absent means none are carried.
   */
  linked?: LinkedDeviceSnapshot[]
  /** The newest signed device list the account published, if any (absent: none carried). */
  deviceList?: StoredDeviceList | null
  /** The highest device id the address ever used, when one is recorded beyond the primary's id. */
  highestDeviceId?: number | null
}

/**
 * An address forward (Store.rebindAddress with `forwardUntilMs`) as both stores keep it: opaque bytes the
 * migration copies as they are (store/forwards.ts; the target is sealed under a key derived from the old address,
 * not under an account's data key, so it needs no resealing).
 */
export interface ForwardSnapshot {
  fromKey: Uint8Array
  toKey: Uint8Array
  target: Uint8Array
  expiresAtMs: number
}

/**
 * A store read in one transaction. The operator actions running relays poll are not part of it: they concern
 * the connections of the relays that recorded them. Nor are link rendezvous: they live ten minutes, and a link in
 * progress during a migration is simply tried again.
 */
export interface StoreSnapshot {
  /** Every account, in address order; valid until {@link close}. */
  accounts(): Iterable<AccountSnapshot>
  /** Banned addresses (with or without an account). */
  bans: { address: Uint8Array; bannedAtMs: number }[]
  /** Revoked devices. */
  revoked: { address: Uint8Array; deviceId: number; revokedAtMs: number }[]
  /** Address forwards (absent: none carried, as from a source that does not read them). */
  forwards?: ForwardSnapshot[]
  /** Ends the read. */
  close(): void
}
