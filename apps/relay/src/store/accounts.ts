// What the SQL stores (SqliteStore, PostgresStore) decide about accounts and prekeys, apart from the SQL that
// reads and writes the rows: device ids, the mail a re-activation keeps, the membership range scan, prekey
// limits, and rows as the Store port's objects. Each store passes in its values as stored (SQLite) or opened
// under the account's data key (PostgreSQL).

import type { Account, OneTimeKey, PrekeyBundle, PrekeyCounts, PrekeySet, SignedKey } from '../Store.js'
import { type AccountRow, buf, u8 } from './rows.js'

/** Whether `row` is the account row of device `deviceId`: only the registered device may act for its account. */
export function isDevice<R extends { device_id: number }>(row: R | undefined, deviceId: number): row is R {
  return row !== undefined && row.device_id === deviceId
}

/** The device id after `previous` (1 after 2^32 − 1), or 1 for an address without an account. */
export function nextDeviceId(previous: number | undefined): number {
  return previous === undefined ? 1 : (previous % 0xffffffff) + 1
}

/** A device's mail as a re-activation weighs it: whose it is, the identity key it was sealed to, its head. */
export interface MailOwner {
  deviceId: number
  identityKey: Uint8Array
  headSeq: number
}

/** What a re-activation does with the mail of an address ({@link planKeptMail}). */
export interface KeptMailPlan {
  /** The mail restored to the new device, sealed to its identity key: whose it is, and that device's head. */
  restore: { deviceId: number; headSeq: number } | undefined
  /** The replaced device's unread mail is retained now, in place of what was retained before. */
  retainOld: boolean
  /** What was retained before stays retained, with its record's head and time. */
  keepRetained: boolean
  /** The devices whose mail and gap records stay (the restored one, the retained one); the rest goes. */
  keep: number[]
  /** How many messages are newly retained (the replaced device's unread count when `retainOld`, else 0). */
  retainedMessages: number
}

/**
 * The Store.registerDevice rules for the mail of an address whose device `old` (holding `old.count` unread
 * messages) is replaced by a device with `identityKey`, `retained` being the mail retained before, if any. The
 * mail sealed to the new identity key — the replaced device's, or else the retained one's — is restored. The
 * replaced device's unread mail, unless restored, is retained; when it has none, what was retained before
 * (unless restored) stays, so that activating the number again and again with empty devices cannot flush a
 * victim's mail out.
 */
export function planKeptMail(
  old: MailOwner & { count: number },
  retained: MailOwner | undefined,
  identityKey: Uint8Array,
): KeptMailPlan {
  let restore: KeptMailPlan['restore']
  if (buf(old.identityKey).equals(identityKey)) restore = { deviceId: old.deviceId, headSeq: old.headSeq }
  else if (retained && buf(retained.identityKey).equals(identityKey))
    restore = { deviceId: retained.deviceId, headSeq: retained.headSeq }
  const retainOld = restore?.deviceId !== old.deviceId && old.count > 0
  const keepRetained = !retainOld && retained !== undefined && restore?.deviceId !== retained.deviceId
  const keep: number[] = []
  if (restore) keep.push(restore.deviceId)
  if (retainOld) keep.push(old.deviceId)
  if (keepRetained) keep.push(retained.deviceId)
  return { restore, retainOld, keepRetained, keep, retainedMessages: retainOld ? old.count : 0 }
}

/**
 * The lowest and the highest 32-byte address whose first `bits` bits are `prefix`'s: Store.addressesWithPrefix
 * is the range scan between them on the primary key (SQLite BLOBs and PostgreSQL bytea compare bytewise).
 */
export function prefixRange(prefix: Uint8Array, bits: number): { lo: Buffer; hi: Buffer } {
  const lo = new Uint8Array(32)
  const hi = new Uint8Array(32).fill(0xff)
  const whole = bits >> 3
  lo.set(prefix.subarray(0, whole))
  hi.set(prefix.subarray(0, whole))
  if (bits & 7) {
    const mask = 0xff << (8 - (bits & 7))
    lo[whole] = prefix[whole]! & mask
    hi[whole] = (prefix[whole]! & mask) | (~mask & 0xff)
  }
  return { lo: buf(lo), hi: buf(hi) }
}

/** Counts of a device that is not the registered one (Store.countPrekeys): none. */
export function noPrekeys(): PrekeyCounts {
  return { oneTimeCount: 0, kemOneTimeCount: 0 }
}

/** Whether an upload of `keys` would take either kind of one-time prekey over `maxStored` (Store.putPrekeys). */
export function exceedsPrekeyLimit(
  before: PrekeyCounts,
  keys: Pick<PrekeySet, 'oneTimePrekeys' | 'oneTimeKemPrekeys'>,
  maxStored: number,
): boolean {
  return (
    before.oneTimeCount + keys.oneTimePrekeys.length > maxStored ||
    before.kemOneTimeCount + keys.oneTimeKemPrekeys.length > maxStored
  )
}

/** An account row as the port's {@link Account}, with the values the store read (and, sealed, opened). */
export function toAccount(
  row: Pick<AccountRow, 'address' | 'device_id' | 'created_at_ms' | 'last_active_ms'>,
  values: Pick<Account, 'identityKey' | 'numberCommitment' | 'deliveryVerifier'>,
): Account {
  return {
    address: u8(row.address),
    deviceId: row.device_id,
    identityKey: values.identityKey,
    createdAtMs: row.created_at_ms,
    numberCommitment: values.numberCommitment,
    deliveryVerifier: values.deliveryVerifier,
    // NULL: no activity recorded since the column was added; the account counts as active since its creation.
    lastActiveMs: row.last_active_ms ?? row.created_at_ms,
  }
}

/**
 * The bundle Store.takePrekeyBundle hands out: the account's keys, the one-time prekey and one-time KEM prekey
 * it took (if there were any), and the last-resort KEM prekey only when there was no one-time KEM prekey (read
 * then, by `lastResortKemPrekey`).
 */
export function toPrekeyBundle(
  row: Pick<AccountRow, 'address' | 'device_id'>,
  keys: {
    identityKey: Uint8Array
    signedPrekey: SignedKey
    oneTimePrekey: OneTimeKey | undefined
    oneTimeKemPrekey: SignedKey | undefined
    lastResortKemPrekey: () => SignedKey
  },
): PrekeyBundle {
  const bundle: PrekeyBundle = {
    address: u8(row.address),
    deviceId: row.device_id,
    identityKey: keys.identityKey,
    signedPrekey: keys.signedPrekey,
    kemPrekey: keys.oneTimeKemPrekey ?? keys.lastResortKemPrekey(),
    kemPrekeyIsLastResort: !keys.oneTimeKemPrekey,
  }
  if (keys.oneTimePrekey) bundle.oneTimePrekey = keys.oneTimePrekey
  return bundle
}
