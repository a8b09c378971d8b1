// What the SQL stores decide about linked devices (docs/architecture.md §9), apart from the SQL that reads and
// writes the rows: which device a device id names, what a new signed device list changes (or why it is refused),
// who may post to or read a link rendezvous. Each store passes in its values as stored (SQLite) or opened under
// the account's data key (PostgreSQL).

import type {
  PutDeviceListInput,
  PutDeviceListResult,
  RendezvousPostResult,
  RendezvousSide,
} from '../Store.js'
import { buf } from './rows.js'

/** A linked device as a device list names it: its id and its device key. */
export interface ListedDevice {
  deviceId: number
  deviceKey: Uint8Array
}

/** An account's devices as {@link planDeviceList} weighs a new list against them. */
export interface CurrentDevices {
  /** The registered primary's device id. */
  primaryDeviceId: number
  /** The version of the stored list; 0 when the account never published one. */
  listVersion: number
  /**
   * The highest device id the address ever used, the primary's included (the stored high-water mark, or the
   * primary's id when that is higher: an account activated before linked devices existed has no mark).
   */
  highestDeviceId: number
  /** The linked devices the account has now, with their keys (opened, on PostgreSQL). */
  linked: ListedDevice[]
}

/** What a list {@link planDeviceList} accepts changes: the devices to add and remove, and the new high-water mark. */
export interface DeviceListPlan {
  status: 'stored'
  /** New linked devices, in ascending id order. */
  added: ListedDevice[]
  /** Ids of the linked devices the list no longer names, ascending: erased with their keys, mail and gaps. */
  removed: number[]
  /** The address's highest device id once the list is stored. */
  highestDeviceId: number
}

/**
 * The Store.putDeviceList rules, checked in the port's order: `not_found` (no account, or the publisher is not
 * its primary), `stale_version` (not above the stored version), `over_limit` (more than `maxLinked` linked
 * devices), `bad_device_id` (a new device whose id is not above every id the address used, a kept device whose
 * key changed, or an id the list names twice — the first offender in the list's order). Otherwise the plan.
 */
export function planDeviceList(
  current: CurrentDevices | undefined,
  input: Pick<PutDeviceListInput, 'primaryDeviceId' | 'version' | 'linked' | 'maxLinked'>,
): DeviceListPlan | Exclude<PutDeviceListResult, { status: 'stored' }> {
  if (!current || current.primaryDeviceId !== input.primaryDeviceId) return { status: 'not_found' }
  if (!(input.version > current.listVersion))
    return { status: 'stale_version', currentVersion: current.listVersion }
  if (input.linked.length > input.maxLinked) return { status: 'over_limit' }
  const now = new Map(current.linked.map((d) => [d.deviceId, d.deviceKey]))
  const seen = new Set<number>()
  const added: ListedDevice[] = []
  for (const d of input.linked) {
    // Named twice: the list cannot mean two devices (or two keys) with one id.
    if (seen.has(d.deviceId)) return { status: 'bad_device_id', deviceId: d.deviceId }
    seen.add(d.deviceId)
    const key = now.get(d.deviceId)
    if (key !== undefined) {
      // A kept device keeps its key: a new key under an old id would let the relay swap a device in silently.
      if (!buf(key).equals(d.deviceKey)) return { status: 'bad_device_id', deviceId: d.deviceId }
      continue
    }
    // Ids are never reused, so a contact's session with an earlier device cannot be taken for a new one's.
    if (!Number.isSafeInteger(d.deviceId) || d.deviceId <= current.highestDeviceId)
      return { status: 'bad_device_id', deviceId: d.deviceId }
    added.push(d)
  }
  added.sort((x, y) => x.deviceId - y.deviceId)
  const removed = current.linked
    .map((d) => d.deviceId)
    .filter((id) => !seen.has(id))
    .sort((x, y) => x - y)
  const highestDeviceId = added.reduce((m, d) => Math.max(m, d.deviceId), current.highestDeviceId)
  return { status: 'stored', added, removed, highestDeviceId }
}

/** The highest device id an address used: its stored mark (none: undefined) or its primary's, whichever is higher. */
export function highestDeviceId(
  mark: number | undefined,
  primaryDeviceId: number | undefined,
): number | undefined {
  if (mark === undefined) return primaryDeviceId
  if (primaryDeviceId === undefined) return mark
  return Math.max(mark, primaryDeviceId)
}

/** A rendezvous as {@link rendezvousPostRefusal} sees it. */
export interface RendezvousState {
  address: Uint8Array
  expiresAtMs: number
  /** Whether the side asked about has its message already. */
  posted: boolean
}

/** Whether a rendezvous is still usable at `nowMs` (it is not from its expiry on). */
export function rendezvousLive(r: { expiresAtMs: number } | undefined, nowMs: number): boolean {
  return r !== undefined && nowMs < r.expiresAtMs
}

/**
 * Why Store.postRendezvous refuses a message, or null when it may be posted: `not_found` (no such rendezvous, or
 * expired), `forbidden` (the `device` side, which carries the primary's answer, from anyone but the opener),
 * `taken` (that side has its one message already).
 */
export function rendezvousPostRefusal(
  r: RendezvousState | undefined,
  side: RendezvousSide,
  address: Uint8Array | null,
  nowMs: number,
): Exclude<RendezvousPostResult, 'posted'> | null {
  if (!r || !rendezvousLive(r, nowMs)) return 'not_found'
  if (side === 'device' && !isOpener(r, address)) return 'forbidden'
  if (r.posted) return 'taken'
  return null
}

/** Whether `address` opened the rendezvous (null: an unauthenticated caller, never the opener). */
export function isOpener(r: { address: Uint8Array }, address: Uint8Array | null): boolean {
  return address !== null && buf(r.address).equals(address)
}
