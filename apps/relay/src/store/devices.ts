// What the SQL stores (SqliteStore, PostgresStore) decide about linked devices (docs/architecture.md §9), apart
// from the SQL that reads and writes the rows: which device lists they take, which ids a new device may have,
// who may post to or read a side of a link rendezvous, and the rows as the Store port's objects.

import type {
  DeviceSet,
  LinkedDevice,
  PrekeySet,
  PutDeviceListInput,
  PutDeviceListResult,
  RendezvousPostResult,
  RendezvousSide,
  SignedKey,
} from '../Store.js'
import { buf, u8 } from './rows.js'

/** A `linked_devices` row as the device paths read it. */
export interface LinkedDeviceRow {
  device_id: number
  device_key: Buffer
  created_at_ms: number
}

/**
 * Every column of a `linked_devices` row, as both stores name them: the prekeys NULL until the device's first
 * upload, and the device's own mailbox head and counters (PostgreSQL seals the key and prekey values).
 */
export interface LinkedDeviceColumns extends LinkedDeviceRow {
  signed_prekey_id: number | null
  signed_prekey: Buffer | null
  signed_prekey_sig: Buffer | null
  kem_prekey_id: number | null
  kem_prekey: Buffer | null
  kem_prekey_sig: Buffer | null
  mailbox_head_seq: number
  mailbox_count: number
  mailbox_bytes: number
}

/**
 * The highest device id the address ever used: its high-water mark, which no row below version 7 (SQLite) had,
 * and never below the registered primary's id, which counts too.
 */
export function highestDeviceId(row: { device_id: number; max_device_id?: number | null }): number {
  return Math.max(row.max_device_id ?? 0, row.device_id)
}

/** What an account holds that a device list publication is weighed against ({@link planDeviceList}). */
export interface DeviceListState {
  primaryDeviceId: number
  highestDeviceId: number
  /** The stored list's version, 0 when none. */
  version: number
  linked: Pick<LinkedDeviceRow, 'device_id' | 'device_key'>[]
}

/** A device list the store takes: the devices to insert and erase, and the address's new high-water mark. */
export interface DeviceListPlan {
  status: 'stored'
  added: PutDeviceListInput['linked']
  removed: number[]
  highestDeviceId: number
}

/**
 * The Store.putDeviceList rules, in the order the refusals are checked: no account or not its primary
 * (`not_found`), a version not above the stored one, more linked devices than allowed, then each device of the
 * list in turn — a kept one must keep its key, a new one (or one listed twice) must have an id above every id the
 * address used, so that no contact's session with a removed device can be taken for a new one.
 */
export function planDeviceList(
  state: DeviceListState | undefined,
  input: PutDeviceListInput,
): DeviceListPlan | Exclude<PutDeviceListResult, { status: 'stored' }> {
  if (!state || state.primaryDeviceId !== input.primaryDeviceId) return { status: 'not_found' }
  if (input.version <= state.version) return { status: 'stale_version', currentVersion: state.version }
  if (input.linked.length > input.maxLinked) return { status: 'over_limit' }
  const current = new Map(state.linked.map((d) => [d.device_id, d.device_key]))
  const listed = new Set<number>()
  const added: PutDeviceListInput['linked'] = []
  let highest = state.highestDeviceId
  for (const d of input.linked) {
    const kept = current.get(d.deviceId)
    if (listed.has(d.deviceId)) return { status: 'bad_device_id', deviceId: d.deviceId }
    listed.add(d.deviceId)
    if (kept) {
      if (!kept.equals(buf(d.deviceKey))) return { status: 'bad_device_id', deviceId: d.deviceId }
    } else if (!Number.isSafeInteger(d.deviceId) || d.deviceId <= state.highestDeviceId) {
      return { status: 'bad_device_id', deviceId: d.deviceId }
    } else {
      added.push(d)
      highest = Math.max(highest, d.deviceId)
    }
  }
  added.sort((x, y) => x.deviceId - y.deviceId)
  const removed = [...current.keys()].filter((id) => !listed.has(id)).sort((x, y) => x - y)
  return { status: 'stored', added, removed, highestDeviceId: highest }
}

/** A `linked_devices` row with its bundle keys: NULL until the device's first prekey upload. */
export interface LinkedKeysRow {
  device_id: number
  device_key: Buffer
  signed_prekey_id: number | null
  signed_prekey: Buffer | null
  signed_prekey_sig: Buffer | null
  kem_prekey_id: number | null
  kem_prekey: Buffer | null
  kem_prekey_sig: Buffer | null
}

/**
 * Whether a linked device's upload of `keys` leaves it a complete bundle (Store.putPrekeys): what it has not
 * stored yet — its signed prekey, its last-resort KEM prekey — the upload must carry, or a sender could get
 * one-time keys without the keys a session needs.
 */
export function completesBundle(
  row: Pick<LinkedKeysRow, 'signed_prekey' | 'kem_prekey'>,
  keys: Pick<PrekeySet, 'signedPrekey' | 'lastResortKemPrekey'>,
): boolean {
  return (
    (row.signed_prekey !== null || keys.signedPrekey !== undefined) &&
    (row.kem_prekey !== null || keys.lastResortKemPrekey !== undefined)
  )
}

/** A linked device's signed and last-resort KEM prekeys, or undefined before its first upload. */
export function bundleKeys(
  row: LinkedKeysRow,
): { signedPrekey: SignedKey; lastResortKemPrekey: SignedKey } | undefined {
  if (
    row.signed_prekey_id === null ||
    row.signed_prekey === null ||
    row.signed_prekey_sig === null ||
    row.kem_prekey_id === null ||
    row.kem_prekey === null ||
    row.kem_prekey_sig === null
  ) {
    return undefined
  }
  return {
    signedPrekey: {
      keyId: row.signed_prekey_id,
      publicKey: u8(row.signed_prekey),
      signature: u8(row.signed_prekey_sig),
    },
    lastResortKemPrekey: {
      keyId: row.kem_prekey_id,
      publicKey: u8(row.kem_prekey),
      signature: u8(row.kem_prekey_sig),
    },
  }
}

/** A `linked_devices` row as the port's {@link LinkedDevice}. */
export function toLinkedDevice(row: LinkedDeviceRow): LinkedDevice {
  return { deviceId: row.device_id, deviceKey: u8(row.device_key), createdAtMs: row.created_at_ms }
}

/** The port's {@link DeviceSet} from the primary's id, the linked devices' ids and the list version (0: none). */
export function toDeviceSet(primaryDeviceId: number, linkedIds: number[], version: number): DeviceSet {
  return {
    primaryDeviceId,
    linkedDeviceIds: [...linkedIds].sort((x, y) => x - y),
    listVersion: version,
  }
}

/** A rendezvous row as the post and read paths weigh it. */
export interface RendezvousRow {
  address: Buffer
  expires_at_ms: number
  /** Whether each side holds its message (SQLite gives 0 / 1, PostgreSQL booleans). */
  has_primary: number | boolean
  has_device: number | boolean
}

/** Whether the rendezvous is past its expiry at `nowMs` (its expiry instant is already too late). */
export function rendezvousExpired(row: Pick<RendezvousRow, 'expires_at_ms'>, nowMs: number): boolean {
  return nowMs >= row.expires_at_ms
}

/**
 * Whether `address` may use the opener's part of a rendezvous opened by `opener`: post the `device` side (the
 * primary's answer) or read the `primary` side (the new device's request). Anyone may do the rest.
 */
export function isOpener(opener: Buffer, address: Uint8Array | null): boolean {
  return address !== null && opener.equals(buf(address))
}

/**
 * Store.postRendezvous's outcome for `row` (the rendezvous before the post, if any): `posted` when the side may
 * take the message now, else why not — missing or expired, not the opener (for the `device` side), or taken.
 */
export function rendezvousPost(
  row: RendezvousRow | undefined,
  side: RendezvousSide,
  address: Uint8Array | null,
  nowMs: number,
): RendezvousPostResult {
  if (!row || rendezvousExpired(row, nowMs)) return 'not_found'
  if (side === 'device' && !isOpener(row.address, address)) return 'forbidden'
  const has = side === 'primary' ? row.has_primary : row.has_device
  return has ? 'taken' : 'posted'
}
