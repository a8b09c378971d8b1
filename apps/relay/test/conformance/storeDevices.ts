// The Store conformance suite for linked devices (docs/architecture.md §9): the device list, the linked devices'
// prekeys and mailboxes, what erasure, re-activation, rebind and the TTL sweep do to them, and the link
// rendezvous. Every implementation runs exactly these tests beside `storeConformance`. The table names the row
// counts name ({@link LINKED_TABLES}, `device_lists`, `rendezvous`) are part of what the stores share.
import { expect, it } from 'vitest'
import type { PrekeySet, PutDeviceListInput, Store } from '../../src/Store.js'
import { bytes, enqueue, hex, key, register, registration, type StoreHarness } from './store.js'

/** Tables that hold rows of linked devices, beside the shared `mailbox` and `mailbox_gaps`. */
export const LINKED_TABLES = ['linked_devices', 'linked_one_time_prekeys', 'linked_kem_prekeys']

/** Every table a linked device or the device list leaves rows in. */
const DEVICE_TABLES = [...LINKED_TABLES, 'device_lists', 'mailbox', 'mailbox_gaps']

/** A linked device of a list: its id and a fresh device key. */
const dev = (deviceId: number) => ({ deviceId, deviceKey: bytes(32) })

/** A full first upload of a linked device: signed prekey, last-resort KEM prekey, two one-time keys of each kind. */
const firstUpload = (): Required<PrekeySet> => ({
  signedPrekey: key(7),
  lastResortKemPrekey: key(8, 1184),
  oneTimePrekeys: [
    { keyId: 12, publicKey: bytes(32) },
    { keyId: 11, publicKey: bytes(32) },
  ],
  oneTimeKemPrekeys: [key(21, 1184), key(22, 1184)],
})

/** Registers the linked-device conformance tests of {@link Store} for one implementation (call inside a describe). */
export function storeDevicesConformance(h: StoreHarness): void {
  const open = () => h.open()

  /** A list publication by the primary (device 1 unless told), max 5 linked devices, at time 2000. */
  const put = (
    s: Store,
    address: Uint8Array,
    version: number,
    linked: PutDeviceListInput['linked'],
    extra: Partial<PutDeviceListInput> = {},
  ) =>
    s.putDeviceList({
      address,
      primaryDeviceId: 1,
      version,
      list: bytes(48 + linked.length * 40),
      linked,
      maxLinked: 5,
      nowMs: 2000,
      ...extra,
    })

  /** Sorted copy, so that a result's id lists compare whatever order a store gives them in. */
  const sorted = (ids: number[]) => [...ids].sort((a, b) => a - b)

  /** An account (primary device 1) with linked devices `ids` from list version 1. */
  const withLinked = async (s: Store, ids: number[]) => {
    const address = bytes(32)
    const input = registration(address)
    expect(await s.registerDevice(input)).toMatchObject({ deviceId: 1, replacedDevice: false })
    const linked = ids.map(dev)
    const r = await put(s, address, 1, linked)
    expect(r.status).toBe('stored')
    return { address, identityKey: input.identityKey, linked }
  }

  it('devices: stores a signed list, reports added and removed devices, and serves list, devices and set', async () => {
    const s = await open()
    const input = registration(bytes(32))
    await s.registerDevice(input)
    const address = input.address
    // Before any list: the primary alone, version 0.
    expect(await s.getDeviceList(address)).toBeNull()
    expect(await s.linkedDevices(address)).toEqual([])
    expect(await s.deviceSet(address)).toEqual({ primaryDeviceId: 1, linkedDeviceIds: [], listVersion: 0 })
    const [d2, d3, d4] = [dev(2), dev(3), dev(4)]
    const list1 = bytes(120)
    const r1 = await s.putDeviceList({
      address,
      primaryDeviceId: 1,
      version: 1,
      list: list1,
      linked: [d3, d2],
      maxLinked: 5,
      nowMs: 2000,
    })
    expect(r1.status).toBe('stored')
    if (r1.status !== 'stored') return
    expect(sorted(r1.added)).toEqual([2, 3])
    expect(r1.removed).toEqual([])
    expect(await s.getDeviceList(address)).toEqual({ version: 1, list: list1 })
    expect(await s.deviceSet(address)).toEqual({
      primaryDeviceId: 1,
      linkedDeviceIds: [2, 3],
      listVersion: 1,
    })
    expect(await s.linkedDevices(address)).toEqual([
      { deviceId: 2, deviceKey: d2.deviceKey, createdAtMs: 2000 },
      { deviceId: 3, deviceKey: d3.deviceKey, createdAtMs: 2000 },
    ])
    // The primary authenticates with the identity key, a linked device with its device key.
    expect(await s.getDevice(address, 1)).toEqual({ deviceId: 1, key: input.identityKey, primary: true })
    expect(await s.getDevice(address, 3)).toEqual({ deviceId: 3, key: d3.deviceKey, primary: false })
    expect(await s.getDevice(address, 4)).toBeNull()
    expect(await s.getDevice(bytes(32), 1)).toBeNull()
    // Version 5 (versions may skip): keeps 2 (its creation time too), removes 3, adds 4.
    const list5 = bytes(130)
    const r5 = await put(s, address, 5, [{ deviceId: 2, deviceKey: d2.deviceKey }, d4], {
      list: list5,
      nowMs: 3000,
    })
    expect(r5).toEqual({ status: 'stored', added: [4], removed: [3] })
    expect(await s.getDeviceList(address)).toEqual({ version: 5, list: list5 })
    expect(await s.linkedDevices(address)).toEqual([
      { deviceId: 2, deviceKey: d2.deviceKey, createdAtMs: 2000 },
      { deviceId: 4, deviceKey: d4.deviceKey, createdAtMs: 3000 },
    ])
    expect(await s.deviceSet(address)).toEqual({
      primaryDeviceId: 1,
      linkedDeviceIds: [2, 4],
      listVersion: 5,
    })
    expect(await s.getDevice(address, 3)).toBeNull()
    // A list with the same devices: stored, nothing added or removed. An empty list removes them all.
    expect(await put(s, address, 6, [d2, d4])).toEqual({ status: 'stored', added: [], removed: [] })
    const r7 = await put(s, address, 7, [])
    expect(r7.status).toBe('stored')
    if (r7.status === 'stored') expect([r7.added, sorted(r7.removed)]).toEqual([[], [2, 4]])
    expect(await s.linkedDevices(address)).toEqual([])
    expect(await s.deviceSet(address)).toEqual({ primaryDeviceId: 1, linkedDeviceIds: [], listVersion: 7 })
    expect(await h.rows(s, 'linked_devices')).toBe(0)
    expect(await h.rows(s, 'device_lists')).toBe(1)
  })

  it('devices: reads of an address without an account return nothing', async () => {
    const s = await open()
    const nobody = bytes(32)
    expect(await s.deviceSet(nobody)).toBeNull()
    expect(await s.linkedDevices(nobody)).toEqual([])
    expect(await s.getDeviceList(nobody)).toBeNull()
    expect(await s.getDevice(nobody, 1)).toBeNull()
  })

  it('devices: refuses a list for no account or from a device that is not the primary (not_found), changing nothing', async () => {
    const s = await open()
    expect(await put(s, bytes(32), 1, [dev(2)])).toEqual({ status: 'not_found' })
    const { address } = await withLinked(s, [2])
    // The linked device 2 cannot publish, nor can a device id the account does not have.
    expect(await put(s, address, 2, [dev(3)], { primaryDeviceId: 2 })).toEqual({ status: 'not_found' })
    expect(await put(s, address, 2, [dev(3)], { primaryDeviceId: 9 })).toEqual({ status: 'not_found' })
    expect(await s.deviceSet(address)).toEqual({ primaryDeviceId: 1, linkedDeviceIds: [2], listVersion: 1 })
    expect(await h.rows(s, 'device_lists')).toBe(1)
  })

  it('devices: refuses a version not above the stored one (stale_version), equal or lower, changing nothing', async () => {
    const s = await open()
    const { address, linked } = await withLinked(s, [2])
    expect((await put(s, address, 4, linked)).status).toBe('stored')
    const stored = await s.getDeviceList(address)
    expect(await put(s, address, 4, [...linked, dev(3)])).toEqual({
      status: 'stale_version',
      currentVersion: 4,
    })
    expect(await put(s, address, 2, [])).toEqual({ status: 'stale_version', currentVersion: 4 })
    expect(await s.getDeviceList(address)).toEqual(stored)
    expect(await s.deviceSet(address)).toEqual({ primaryDeviceId: 1, linkedDeviceIds: [2], listVersion: 4 })
  })

  it('devices: refuses more than maxLinked linked devices (over_limit); exactly maxLinked is within it', async () => {
    const s = await open()
    const { address } = await withLinked(s, [])
    expect(await put(s, address, 2, [dev(2), dev(3), dev(4)], { maxLinked: 2 })).toEqual({
      status: 'over_limit',
    })
    expect(await s.deviceSet(address)).toEqual({ primaryDeviceId: 1, linkedDeviceIds: [], listVersion: 1 })
    expect(await h.rows(s, 'linked_devices')).toBe(0)
    const r = await put(s, address, 2, [dev(2), dev(3)], { maxLinked: 2 })
    expect(r.status).toBe('stored')
  })

  it('devices: a new device id must be above every id ever used (primary’s, removed devices’), and a kept device keeps its key (bad_device_id)', async () => {
    const s = await open()
    const { address, linked } = await withLinked(s, [2, 3])
    const [d2] = linked
    // Remove 3: its id is never given to another device.
    expect(await put(s, address, 2, [d2!])).toEqual({ status: 'stored', added: [], removed: [3] })
    expect(await put(s, address, 3, [d2!, dev(3)])).toEqual({ status: 'bad_device_id', deviceId: 3 })
    // The primary's id, or below the highest ever used, is refused too.
    expect(await put(s, address, 3, [d2!, dev(1)])).toEqual({ status: 'bad_device_id', deviceId: 1 })
    // A kept device whose key changed.
    expect(await put(s, address, 3, [{ deviceId: 2, deviceKey: bytes(32) }])).toEqual({
      status: 'bad_device_id',
      deviceId: 2,
    })
    // Nothing changed with the refusals.
    expect(await s.deviceSet(address)).toEqual({ primaryDeviceId: 1, linkedDeviceIds: [2], listVersion: 2 })
    expect(await s.getDevice(address, 2)).toEqual({ deviceId: 2, key: d2!.deviceKey, primary: false })
    // Above the highest ever used (3): 4 is a new device.
    expect(await put(s, address, 3, [d2!, dev(4)])).toEqual({ status: 'stored', added: [4], removed: [] })
  })

  it('devices: on an account that never linked a device, the first linked id must be above the primary’s', async () => {
    const s = await open()
    const address = bytes(32)
    await register(s, address)
    expect((await register(s, address)).deviceId).toBe(2)
    expect(await put(s, address, 1, [dev(2)], { primaryDeviceId: 2 })).toEqual({
      status: 'bad_device_id',
      deviceId: 2,
    })
    expect(await put(s, address, 1, [dev(1)], { primaryDeviceId: 2 })).toEqual({
      status: 'bad_device_id',
      deviceId: 1,
    })
    expect(await put(s, address, 1, [dev(3)], { primaryDeviceId: 2 })).toEqual({
      status: 'stored',
      added: [3],
      removed: [],
    })
  })

  it('devices: a linked device uploads its own prekeys (the first with its signed ones) and hands out its own bundles', async () => {
    const s = await open()
    const { address, identityKey, linked } = await withLinked(s, [2, 3])
    const [d2] = linked
    const primaryCounts = await s.countPrekeys(address, 1)
    expect(primaryCounts).toEqual({ oneTimeCount: 1, kemOneTimeCount: 1 })
    // No prekeys yet: no bundle, no counts.
    expect(await s.takePrekeyBundle(address, 2)).toBeNull()
    expect(await s.countPrekeys(address, 2)).toEqual({ oneTimeCount: 0, kemOneTimeCount: 0 })
    const keys = firstUpload()
    // A first upload without the signed prekey or without the last-resort KEM prekey completes no bundle.
    const oneTimeOnly = { oneTimePrekeys: keys.oneTimePrekeys, oneTimeKemPrekeys: keys.oneTimeKemPrekeys }
    expect(await s.putPrekeys(address, 2, oneTimeOnly, 100)).toEqual({ status: 'not_found' })
    expect(await s.putPrekeys(address, 2, { ...oneTimeOnly, signedPrekey: keys.signedPrekey }, 100)).toEqual({
      status: 'not_found',
    })
    expect(
      await s.putPrekeys(address, 2, { ...oneTimeOnly, lastResortKemPrekey: keys.lastResortKemPrekey }, 100),
    ).toEqual({ status: 'not_found' })
    expect(await s.countPrekeys(address, 2)).toEqual({ oneTimeCount: 0, kemOneTimeCount: 0 })
    expect(await s.takePrekeyBundle(address, 2)).toBeNull()
    expect(await h.rows(s, 'linked_one_time_prekeys')).toBe(0)
    expect(await h.rows(s, 'linked_kem_prekeys')).toBe(0)
    // With both: stored, counted per device.
    expect(await s.putPrekeys(address, 2, keys, 100)).toEqual({
      status: 'stored',
      counts: { oneTimeCount: 2, kemOneTimeCount: 2 },
    })
    expect(await s.countPrekeys(address, 3)).toEqual({ oneTimeCount: 0, kemOneTimeCount: 0 })
    expect(await s.countPrekeys(address, 1)).toEqual(primaryCounts)
    // The device key is the bundle's identity; one-time keys go lowest id first, once each.
    const identity = { address, deviceId: 2, identityKey: d2!.deviceKey, signedPrekey: keys.signedPrekey }
    expect(await s.takePrekeyBundle(address, 2)).toEqual({
      ...identity,
      oneTimePrekey: keys.oneTimePrekeys[1],
      kemPrekey: keys.oneTimeKemPrekeys[0],
      kemPrekeyIsLastResort: false,
    })
    expect(await s.countPrekeys(address, 2)).toEqual({ oneTimeCount: 1, kemOneTimeCount: 1 })
    expect(await s.takePrekeyBundle(address, 2)).toEqual({
      ...identity,
      oneTimePrekey: keys.oneTimePrekeys[0],
      kemPrekey: keys.oneTimeKemPrekeys[1],
      kemPrekeyIsLastResort: false,
    })
    expect(await s.takePrekeyBundle(address, 2)).toEqual({
      ...identity,
      kemPrekey: keys.lastResortKemPrekey,
      kemPrekeyIsLastResort: true,
    })
    // Later uploads may carry one-time keys alone; the same key id replaces; the limit is the device's own.
    const more = { oneTimePrekeys: [{ keyId: 30, publicKey: bytes(32) }], oneTimeKemPrekeys: [key(31, 1184)] }
    expect(await s.putPrekeys(address, 2, more, 1)).toEqual({
      status: 'stored',
      counts: { oneTimeCount: 1, kemOneTimeCount: 1 },
    })
    // (The limit weighs the keys uploaded, replacing or not, as for the primary.)
    expect(await s.putPrekeys(address, 2, more, 2)).toEqual({
      status: 'stored',
      counts: { oneTimeCount: 1, kemOneTimeCount: 1 },
    })
    const two = { oneTimePrekeys: [{ keyId: 40, publicKey: bytes(32) }], oneTimeKemPrekeys: [] }
    expect(await s.putPrekeys(address, 2, two, 1)).toEqual({
      status: 'over_limit',
      counts: { oneTimeCount: 1, kemOneTimeCount: 1 },
    })
    // A new signed prekey replaces the old one in later bundles.
    const spk = key(9)
    expect((await s.putPrekeys(address, 2, { ...more, signedPrekey: spk }, 10)).status).toBe('stored')
    expect((await s.takePrekeyBundle(address, 2))!.signedPrekey).toEqual(spk)
    // The primary's bundle (by 0, omitted or its id) is untouched by all of it.
    const primary = (await s.takePrekeyBundle(address, 1))!
    expect([primary.deviceId, hex(primary.identityKey)]).toEqual([1, hex(identityKey)])
    expect([primary.oneTimePrekey?.keyId, primary.kemPrekey.keyId]).toEqual([1, 5])
    expect((await s.takePrekeyBundle(address, 0))!.deviceId).toBe(1)
    expect((await s.takePrekeyBundle(address))!.kemPrekeyIsLastResort).toBe(true)
    // Devices the account does not have.
    expect(await s.takePrekeyBundle(address, 9)).toBeNull()
    expect(await s.putPrekeys(address, 9, keys, 100)).toEqual({ status: 'not_found' })
    expect(await s.countPrekeys(address, 9)).toEqual({ oneTimeCount: 0, kemOneTimeCount: 0 })
  })

  it('devices: each linked device has its own mailbox: seqs, idempotency, pages, acks, head and limits', async () => {
    const s = await open()
    const { address } = await withLinked(s, [2, 3])
    const id = bytes(16)
    // Each device's seqs start at 1; the same message id to two devices is two messages.
    expect(await enqueue(s, address, 1, { id })).toEqual({ status: 'stored', seq: 1 })
    expect(await enqueue(s, address, 2, { id, size: 30 })).toEqual({ status: 'stored', seq: 1 })
    expect(await enqueue(s, address, 2, { id })).toEqual({ status: 'duplicate', seq: 1 })
    expect(await enqueue(s, address, 2, { size: 30 })).toEqual({ status: 'stored', seq: 2 })
    expect(await enqueue(s, address, 3)).toEqual({ status: 'stored', seq: 1 })
    expect(await enqueue(s, address, 9)).toEqual({ status: 'stale_device', currentDeviceId: 1 })
    expect([
      await s.mailboxHead(address, 1),
      await s.mailboxHead(address, 2),
      await s.mailboxHead(address, 3),
      await s.mailboxHead(address, 9),
    ]).toEqual([1, 2, 1, 0])
    // The account row's counters are the primary's alone.
    expect(await h.mailbox(s, address)).toEqual({ count: 1, bytes: 20 })
    const page = await s.fetchMailbox(address, 2, 0, 10)
    expect(page.entries.map((e) => [e.seq, e.envelope.length])).toEqual([
      [1, 30],
      [2, 30],
    ])
    expect(hex(page.entries[0]!.messageId)).toBe(hex(id))
    expect(page.headSeq).toBe(2)
    expect((await s.fetchMailbox(address, 2, 1, 10)).entries.map((e) => e.seq)).toEqual([2])
    expect(await s.fetchMailbox(address, 9, 0, 10)).toEqual({ entries: [], gaps: [], headSeq: 0 })
    // Limits count each device's own mail: device 2 holds 2 messages and 60 bytes.
    expect(await enqueue(s, address, 2, { max: 2 })).toEqual({ status: 'full', limit: 'messages' })
    expect(await enqueue(s, address, 2, { maxBytes: 79 })).toEqual({ status: 'full', limit: 'bytes' })
    expect(await enqueue(s, address, 3, { max: 2 })).toEqual({ status: 'stored', seq: 2 })
    expect(await enqueue(s, address, 1, { max: 2 })).toEqual({ status: 'stored', seq: 2 })
    expect(await enqueue(s, address, 2, { id, max: 2 })).toEqual({ status: 'duplicate', seq: 1 })
    // Acks delete only the named device's entries and free its room.
    expect(await s.ack(address, 3, [2])).toBe(1)
    expect(await s.ack(address, 2, [1, 1, 2, 7])).toBe(2)
    expect(await s.ack(address, 9, [1])).toBe(0)
    expect(await s.fetchMailbox(address, 2, 0, 10)).toEqual({ entries: [], gaps: [], headSeq: 2 })
    expect((await s.fetchMailbox(address, 3, 0, 10)).entries.map((e) => e.seq)).toEqual([1])
    expect((await s.fetchMailbox(address, 1, 0, 10)).entries.map((e) => e.seq)).toEqual([1, 2])
    expect(await h.mailbox(s, address)).toEqual({ count: 2, bytes: 40 })
    expect(await enqueue(s, address, 2, { max: 1, maxBytes: 20 })).toEqual({ status: 'stored', seq: 3 })
    expect(await enqueue(s, address, 2, { max: 1 })).toEqual({ status: 'full', limit: 'messages' })
  })

  it('devices: removing a device by a new list erases its row, prekeys, mailbox and gaps, and nothing of the others', async () => {
    const s = await open()
    const { address, linked } = await withLinked(s, [2, 3])
    for (const id of [2, 3])
      expect((await s.putPrekeys(address, id, firstUpload(), 100)).status).toBe('stored')
    for (const id of [1, 2, 3]) {
      await enqueue(s, address, id, { at: 1 })
      await enqueue(s, address, id)
    }
    expect(await s.expire(2)).toBe(3)
    expect(await h.rows(s, 'mailbox')).toBe(3)
    expect(await h.rows(s, 'mailbox_gaps')).toBe(3)
    expect(await h.rows(s, 'linked_one_time_prekeys')).toBe(4)
    expect(await h.rows(s, 'linked_kem_prekeys')).toBe(4)
    expect(await put(s, address, 2, [linked[0]!])).toEqual({ status: 'stored', added: [], removed: [3] })
    expect(await h.rows(s, 'linked_devices')).toBe(1)
    expect(await h.rows(s, 'linked_one_time_prekeys')).toBe(2)
    expect(await h.rows(s, 'linked_kem_prekeys')).toBe(2)
    expect(await h.rows(s, 'mailbox')).toBe(2)
    expect(await h.rows(s, 'mailbox_gaps')).toBe(2)
    // Nothing of device 3 is served any more.
    expect(await s.getDevice(address, 3)).toBeNull()
    expect(await s.takePrekeyBundle(address, 3)).toBeNull()
    expect(await s.countPrekeys(address, 3)).toEqual({ oneTimeCount: 0, kemOneTimeCount: 0 })
    expect(await s.fetchMailbox(address, 3, 0, 10)).toEqual({ entries: [], gaps: [], headSeq: 0 })
    expect(await s.mailboxHead(address, 3)).toBe(0)
    expect(await enqueue(s, address, 3)).toEqual({ status: 'stale_device', currentDeviceId: 1 })
    expect(await s.ack(address, 3, [2])).toBe(0)
    expect((await s.putPrekeys(address, 3, firstUpload(), 100)).status).toBe('not_found')
    // Device 2 and the primary keep theirs.
    const page2 = await s.fetchMailbox(address, 2, 0, 10)
    expect([page2.entries.map((e) => e.seq), page2.gaps]).toEqual([
      [2],
      [{ firstSeq: 1, lastSeq: 1, reason: 'expired' }],
    ])
    expect(await s.countPrekeys(address, 2)).toEqual({ oneTimeCount: 2, kemOneTimeCount: 2 })
    expect((await s.fetchMailbox(address, 1, 0, 10)).entries.map((e) => e.seq)).toEqual([2])
  })

  it('devices: the TTL sweep expires linked devices’ mail into their own gaps and lowers their own counts', async () => {
    const s = await open()
    const { address } = await withLinked(s, [2])
    for (let i = 0; i < 3; i++) await enqueue(s, address, 2, { at: 1 })
    await enqueue(s, address, 2)
    await enqueue(s, address, 1)
    expect(await enqueue(s, address, 2, { max: 4 })).toEqual({ status: 'full', limit: 'messages' })
    expect(await s.expire(2)).toBe(3)
    const page = await s.fetchMailbox(address, 2, 0, 10)
    expect(page.entries.map((e) => e.seq)).toEqual([4])
    expect(page.gaps).toEqual([{ firstSeq: 1, lastSeq: 3, reason: 'expired' }])
    expect(page.headSeq).toBe(4)
    expect((await s.fetchMailbox(address, 1, 0, 10)).gaps).toEqual([])
    expect(await h.mailbox(s, address)).toEqual({ count: 1, bytes: 20 })
    // Three messages' room came back: the device holds one now.
    expect(await enqueue(s, address, 2, { max: 2 })).toEqual({ status: 'stored', seq: 5 })
    expect(await enqueue(s, address, 2, { max: 2 })).toEqual({ status: 'full', limit: 'messages' })
  })

  it('devices: the TTL sweep deletes every rendezvous whose expiry is at or before nowMs', async () => {
    const s = await open()
    const { address } = await register(s)
    const [r1, r2, r3] = [bytes(16), bytes(16), bytes(16)]
    expect(await s.openRendezvous(r1, address, 5000)).toBe(true)
    expect(await s.openRendezvous(r2, address, 6000)).toBe(true)
    expect(await s.openRendezvous(r3, address, 6001)).toBe(true)
    expect(await s.postRendezvous(r3, 'primary', bytes(10), null, 5500)).toBe('posted')
    expect(await s.expire(0, 6000)).toBe(0)
    expect(await h.rows(s, 'rendezvous')).toBe(1)
    expect(await s.postRendezvous(r1, 'primary', bytes(10), null, 1000)).toBe('not_found')
    expect(await s.readRendezvous(r3, 'primary', address, 6000)).not.toBeNull()
    expect(await s.expire(0, 7000)).toBe(0)
    expect(await h.rows(s, 'rendezvous')).toBe(0)
  })

  it('devices: erasing the account erases its linked devices, list, rendezvous and highest device id', async () => {
    const s = await open()
    const bystander = await withLinked(s, [2])
    const { address } = await withLinked(s, [2, 3])
    expect((await s.putPrekeys(address, 2, firstUpload(), 100)).status).toBe('stored')
    await enqueue(s, address, 2, { at: 1 })
    await enqueue(s, address, 3)
    expect(await s.expire(2)).toBe(1)
    expect(await put(s, address, 2, [dev(4), dev(5)])).toMatchObject({ status: 'stored' })
    expect((await s.putPrekeys(address, 4, firstUpload(), 100)).status).toBe('stored')
    await enqueue(s, address, 4, { at: 1 })
    await enqueue(s, address, 5)
    expect(await s.expire(2)).toBe(1)
    const rid = bytes(16)
    expect(await s.openRendezvous(rid, address, 10_000)).toBe(true)
    const other = bytes(16)
    expect(await s.openRendezvous(other, bystander.address, 10_000)).toBe(true)
    expect(await s.deleteAccount(address)).toBe(true)
    expect(await s.linkedDevices(address)).toEqual([])
    expect(await s.getDeviceList(address)).toBeNull()
    expect(await s.deviceSet(address)).toBeNull()
    expect(await s.getDevice(address, 4)).toBeNull()
    expect(await s.takePrekeyBundle(address, 4)).toBeNull()
    expect(await s.fetchMailbox(address, 5, 0, 10)).toEqual({ entries: [], gaps: [], headSeq: 0 })
    expect(await s.postRendezvous(rid, 'primary', bytes(10), null, 1000)).toBe('not_found')
    // Only the bystander's rows remain: its device, its list, its rendezvous.
    expect(await h.rows(s, 'linked_devices')).toBe(1)
    expect(await h.rows(s, 'linked_one_time_prekeys')).toBe(0)
    expect(await h.rows(s, 'linked_kem_prekeys')).toBe(0)
    expect(await h.rows(s, 'mailbox')).toBe(0)
    expect(await h.rows(s, 'mailbox_gaps')).toBe(0)
    expect(await h.rows(s, 'device_lists')).toBe(1)
    expect(await h.rows(s, 'rendezvous')).toBe(1)
    // Activated again, the address starts from nothing: primary 1, and low ids are free again.
    expect((await register(s, address)).deviceId).toBe(1)
    expect(await s.deviceSet(address)).toEqual({ primaryDeviceId: 1, linkedDeviceIds: [], listVersion: 0 })
    expect(await put(s, address, 1, [dev(2)])).toEqual({ status: 'stored', added: [2], removed: [] })
    expect(await s.mailboxHead(address, 2)).toBe(0)
    expect(await s.countPrekeys(address, 2)).toEqual({ oneTimeCount: 0, kemOneTimeCount: 0 })
    await s.deleteAccount(address)
    await s.deleteAccount(bystander.address)
    for (const table of DEVICE_TABLES) expect(await h.rows(s, table), table).toBe(0)
    expect(await h.rows(s, 'rendezvous')).toBe(0)
  })

  it('devices: a re-activation erases linked devices and the list, and the new primary’s id is above every id used', async () => {
    const s = await open()
    const { address, linked } = await withLinked(s, [2, 3])
    expect((await s.putPrekeys(address, 3, firstUpload(), 100)).status).toBe('stored')
    await enqueue(s, address, 2, { at: 1 })
    await enqueue(s, address, 2)
    expect(await s.expire(2)).toBe(1)
    expect(await put(s, address, 2, [linked[0]!])).toEqual({ status: 'stored', added: [], removed: [3] })
    const input = registration(address)
    expect(await s.registerDevice(input)).toMatchObject({ deviceId: 4, replacedDevice: true })
    expect(await s.linkedDevices(address)).toEqual([])
    expect(await s.getDeviceList(address)).toBeNull()
    expect(await s.deviceSet(address)).toEqual({ primaryDeviceId: 4, linkedDeviceIds: [], listVersion: 0 })
    expect(await s.getDevice(address, 2)).toBeNull()
    expect(await s.getDevice(address, 4)).toEqual({ deviceId: 4, key: input.identityKey, primary: true })
    expect(await enqueue(s, address, 2)).toEqual({ status: 'stale_device', currentDeviceId: 4 })
    for (const table of DEVICE_TABLES) expect(await h.rows(s, table), table).toBe(0)
    // A new list starts over at any version, with ids above the new primary's.
    expect(await put(s, address, 1, [dev(4)], { primaryDeviceId: 4 })).toEqual({
      status: 'bad_device_id',
      deviceId: 4,
    })
    expect(await put(s, address, 1, [dev(5)], { primaryDeviceId: 4 })).toEqual({
      status: 'stored',
      added: [5],
      removed: [],
    })
    // And the next primary's id is above the linked one's.
    expect((await register(s, address)).deviceId).toBe(6)
  })

  it('devices: a rebind moves linked devices, their prekeys and mail, the list and the highest id', async () => {
    const s = await open()
    const { address: from, linked } = await withLinked(s, [2, 3])
    const to = bytes(32)
    const keys = firstUpload()
    expect((await s.putPrekeys(from, 2, keys, 100)).status).toBe('stored')
    await enqueue(s, from, 2, { at: 1 })
    const ids = [bytes(16), bytes(16)]
    for (const id of ids) await enqueue(s, from, 2, { id })
    expect(await s.expire(2)).toBe(1)
    expect(await put(s, from, 2, [linked[0]!, dev(4)])).toEqual({
      status: 'stored',
      added: [4],
      removed: [3],
    })
    const rid = bytes(16)
    expect(await s.openRendezvous(rid, from, 10_000)).toBe(true)
    const p = await h.peer(s)
    const reads = async (st: Store, address: Uint8Array) => ({
      set: await st.deviceSet(address),
      linked: await st.linkedDevices(address),
      list: await st.getDeviceList(address),
      device: await st.getDevice(address, 2),
      page: await st.fetchMailbox(address, 2, 0, 10),
      head: await st.mailboxHead(address, 2),
      counts: await st.countPrekeys(address, 2),
    })
    const before = await reads(p, from)
    expect(before.page.entries.map((e) => e.seq)).toEqual([2, 3])
    const rows: Record<string, number> = {}
    for (const table of DEVICE_TABLES) rows[table] = await h.rows(s, table)

    expect(await s.rebindAddress(from, 1, to)).toBe('moved')

    expect(await reads(s, to)).toEqual(before)
    expect(await reads(p, to)).toEqual(before)
    const nothing = {
      set: null,
      linked: [],
      list: null,
      device: null,
      page: { entries: [], gaps: [], headSeq: 0 },
      head: 0,
      counts: { oneTimeCount: 0, kemOneTimeCount: 0 },
    }
    expect(await reads(s, from)).toEqual(nothing)
    expect(await reads(p, from)).toEqual(nothing)
    for (const table of DEVICE_TABLES) expect(await h.rows(s, table), table).toBe(rows[table])
    // The device's bundle and mailbox go on where they were.
    expect(await s.takePrekeyBundle(to, 2)).toMatchObject({
      address: to,
      deviceId: 2,
      identityKey: linked[0]!.deviceKey,
      oneTimePrekey: keys.oneTimePrekeys[1],
    })
    expect(await s.takePrekeyBundle(from, 2)).toBeNull()
    expect(await enqueue(s, to, 2)).toEqual({ status: 'stored', seq: 4 })
    expect(await enqueue(s, to, 2, { id: ids[0] })).toEqual({ status: 'duplicate', seq: 2 })
    expect(await s.ack(to, 2, [2])).toBe(1)
    expect(await enqueue(s, from, 2)).toEqual({ status: 'not_found' })
    // The list's version and the highest id ever used (4, and 3 removed) came along.
    expect(await put(s, to, 2, [linked[0]!])).toEqual({ status: 'stale_version', currentVersion: 2 })
    expect(await put(s, to, 3, [linked[0]!, dev(3)])).toEqual({ status: 'bad_device_id', deviceId: 3 })
    expect(await put(s, from, 3, [dev(5)])).toEqual({ status: 'not_found' })
    // So did the rendezvous the account opened: its answer is the account's at its new address.
    expect(await s.postRendezvous(rid, 'device', bytes(10), from, 1000)).toBe('forbidden')
    expect(await s.postRendezvous(rid, 'device', bytes(10), to, 1000)).toBe('posted')
    expect((await register(s, to)).deviceId).toBe(5)
  })

  it('rendezvous: opens once per id, takes one message per side, the answer only from its opener, and ends when read', async () => {
    const s = await open()
    const { address } = await register(s)
    const stranger = bytes(32)
    const id = bytes(16)
    const now = 1000
    expect(await s.openRendezvous(id, address, 10_000)).toBe(true)
    expect(await s.openRendezvous(id, address, 20_000)).toBe(false)
    expect(await s.openRendezvous(id, stranger, 20_000)).toBe(false)
    // Nothing posted yet: both sides read null.
    expect(await s.readRendezvous(id, 'primary', address, now)).toBeNull()
    expect(await s.readRendezvous(id, 'device', null, now)).toBeNull()
    // The new device's request: anyone, once.
    const request = bytes(80)
    expect(await s.postRendezvous(id, 'primary', request, null, now)).toBe('posted')
    expect(await s.postRendezvous(id, 'primary', bytes(80), null, now)).toBe('taken')
    expect(await s.postRendezvous(id, 'primary', bytes(80), address, now)).toBe('taken')
    // Read by the opener only, as often as it likes.
    expect(await s.readRendezvous(id, 'primary', stranger, now)).toBeNull()
    expect(await s.readRendezvous(id, 'primary', null, now)).toBeNull()
    expect(await s.readRendezvous(id, 'primary', address, now)).toEqual(request)
    expect(await s.readRendezvous(id, 'primary', address, now)).toEqual(request)
    // The primary's answer: only the opener, once.
    const answer = bytes(300)
    expect(await s.postRendezvous(id, 'device', bytes(300), stranger, now)).toBe('forbidden')
    expect(await s.postRendezvous(id, 'device', bytes(300), null, now)).toBe('forbidden')
    expect(await s.readRendezvous(id, 'device', null, now)).toBeNull()
    expect(await s.postRendezvous(id, 'device', answer, address, now)).toBe('posted')
    expect(await s.postRendezvous(id, 'device', bytes(300), address, now)).toBe('taken')
    // Anyone with the id reads the answer, once: reading it ends the rendezvous.
    expect(await s.readRendezvous(id, 'device', null, now)).toEqual(answer)
    expect(await s.readRendezvous(id, 'device', null, now)).toBeNull()
    expect(await s.readRendezvous(id, 'primary', address, now)).toBeNull()
    expect(await s.postRendezvous(id, 'primary', bytes(80), null, now)).toBe('not_found')
    expect(await s.postRendezvous(id, 'device', bytes(80), address, now)).toBe('not_found')
    expect(await h.rows(s, 'rendezvous')).toBe(0)
    // An unknown id.
    expect(await s.postRendezvous(bytes(16), 'primary', bytes(80), null, now)).toBe('not_found')
    expect(await s.postRendezvous(bytes(16), 'device', bytes(80), address, now)).toBe('not_found')
    expect(await s.readRendezvous(bytes(16), 'device', null, now)).toBeNull()
  })

  it('rendezvous: from its expiry on (nowMs ≥ expiresAtMs) it takes no message and serves none', async () => {
    const s = await open()
    const { address } = await register(s)
    const id = bytes(16)
    expect(await s.openRendezvous(id, address, 5000)).toBe(true)
    const request = bytes(80)
    expect(await s.postRendezvous(id, 'primary', request, null, 4999)).toBe('posted')
    expect(await s.readRendezvous(id, 'primary', address, 4999)).toEqual(request)
    expect(await s.readRendezvous(id, 'primary', address, 5000)).toBeNull()
    expect(await s.postRendezvous(id, 'device', bytes(300), address, 5000)).toBe('not_found')
    expect(await s.postRendezvous(id, 'primary', bytes(80), null, 6000)).toBe('not_found')
    const late = bytes(16)
    expect(await s.openRendezvous(late, address, 5000)).toBe(true)
    expect(await s.postRendezvous(late, 'device', bytes(300), address, 4000)).toBe('posted')
    expect(await s.readRendezvous(late, 'device', null, 5000)).toBeNull()
  })

  it('two nodes: a list, its devices and a rendezvous written on one node are seen by the other at once', async () => {
    const s = await open()
    const p = await h.peer(s)
    const { address, linked } = await withLinked(s, [2, 3])
    expect(await p.deviceSet(address)).toEqual({
      primaryDeviceId: 1,
      linkedDeviceIds: [2, 3],
      listVersion: 1,
    })
    expect((await p.linkedDevices(address)).map((d) => [d.deviceId, hex(d.deviceKey)])).toEqual(
      linked.map((d) => [d.deviceId, hex(d.deviceKey)]),
    )
    expect(await p.getDevice(address, 3)).toEqual({ deviceId: 3, key: linked[1]!.deviceKey, primary: false })
    expect(await p.getDeviceList(address)).toEqual(await s.getDeviceList(address))
    // A prekey upload and mail on one node, read on the other.
    expect((await s.putPrekeys(address, 2, firstUpload(), 100)).status).toBe('stored')
    expect(await p.countPrekeys(address, 2)).toEqual({ oneTimeCount: 2, kemOneTimeCount: 2 })
    expect(await enqueue(s, address, 3)).toEqual({ status: 'stored', seq: 1 })
    expect(await enqueue(p, address, 3)).toEqual({ status: 'stored', seq: 2 })
    expect(await p.mailboxHead(address, 3)).toBe(2)
    // A version stored on one node is stale on the other.
    expect(
      await p.putDeviceList({
        address,
        primaryDeviceId: 1,
        version: 2,
        list: bytes(40),
        linked: [linked[0]!],
        maxLinked: 5,
        nowMs: 2000,
      }),
    ).toEqual({ status: 'stored', added: [], removed: [3] })
    expect(await put(s, address, 2, linked)).toEqual({ status: 'stale_version', currentVersion: 2 })
    expect(await s.getDevice(address, 3)).toBeNull()
    // A rendezvous opened on one node is used through the other.
    const id = bytes(16)
    expect(await s.openRendezvous(id, address, 10_000)).toBe(true)
    expect(await p.openRendezvous(id, address, 10_000)).toBe(false)
    const request = bytes(80)
    expect(await p.postRendezvous(id, 'primary', request, null, 1000)).toBe('posted')
    expect(await s.readRendezvous(id, 'primary', address, 1000)).toEqual(request)
    const answer = bytes(200)
    expect(await s.postRendezvous(id, 'device', answer, address, 1000)).toBe('posted')
    expect(await p.readRendezvous(id, 'device', null, 1000)).toEqual(answer)
    expect(await s.readRendezvous(id, 'device', null, 1000)).toBeNull()
  })

  it('two nodes: concurrent lists of one version are stored once; concurrent reads of an answer get it once', async () => {
    const s = await open()
    const p = await h.peer(s)
    const { address } = await withLinked(s, [])
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => put(i % 2 ? s : p, address, 2, [dev(2 + i)])),
    )
    expect(results.filter((r) => r.status === 'stored')).toHaveLength(1)
    expect(results.filter((r) => r.status === 'stale_version')).toHaveLength(5)
    expect((await s.deviceSet(address))!.linkedDeviceIds).toHaveLength(1)
    const id = bytes(16)
    expect(await s.openRendezvous(id, address, 10_000)).toBe(true)
    const answer = bytes(100)
    expect(await p.postRendezvous(id, 'device', answer, address, 1000)).toBe('posted')
    const reads = await Promise.all(
      Array.from({ length: 6 }, (_, i) => (i % 2 ? s : p).readRendezvous(id, 'device', null, 1000)),
    )
    expect(reads.filter((r) => r !== null).map((r) => hex(r!))).toEqual([hex(answer)])
  })
}
