// The Store conformance suite: every implementation (SQLite, PostgreSQL) runs exactly these tests, so their
// semantics — sequence numbers, idempotency, gaps, mailbox limits, TTL sweep, erasure — cannot drift apart. The
// "two nodes" tests open a second store over the same data, as a second relay process would.
import { randomBytes } from 'node:crypto'
import { afterAll, expect, it } from 'vitest'
import type { PrekeySet, Store } from '../../src/Store.js'

/** How the suite gets stores of one implementation. */
export interface StoreHarness {
  /** A fresh, empty store (a new file or schema). */
  open(): Promise<Store>
  /** A second store over the same data as `store`, as another relay node would open it. */
  peer(store: Store): Promise<Store>
  /** Rows in a table of `store`'s data. */
  rows(store: Store, table: string): Promise<number>
  /** Column names of a table of `store`'s data. */
  columns(store: Store, table: string): Promise<string[]>
  /** Every byte string (BLOB / bytea column value) of every row of a table of `store`'s data, as stored. */
  values(store: Store, table: string): Promise<Uint8Array[]>
  /** Runs one SQL statement (the same text in SQLite and PostgreSQL) on `store`'s data, behind its back. */
  run(store: Store, sql: string): Promise<void>
  /** The mailbox count and byte total kept in the account row of `address`, or null when there is none. */
  mailbox(store: Store, address: Uint8Array): Promise<{ count: number; bytes: number } | null>
  /**
   * Puts `store`'s data back to schema version 2 in place (no mailbox byte column, version 3 not applied), as
   * a relay of that version left it. Absent for PostgreSQL, whose rows are sealed since version 4 and cannot go
   * back in place: `test/postgresShredding.test.ts` builds a real version-2 database there instead.
   */
  toVersion2?(store: Store): Promise<void>
  /** Closes every store opened and deletes their data. */
  cleanup(): Promise<void>
}

/** Random bytes. */
export const bytes = (n: number) => new Uint8Array(randomBytes(n))
/** A signed prekey stand-in (random key and signature: stores do not verify). */
export const key = (keyId: number, n = 32) => ({ keyId, publicKey: bytes(n), signature: bytes(64) })
/** Lower-case hex. */
export const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** The empty byte string: no number commitment, no delivery verifier. */
export const EMPTY = new Uint8Array(0)

/** The input of a registration of `address` with fresh keys, at time 1000. */
export function registration(address: Uint8Array) {
  return {
    address,
    identityKey: bytes(32),
    signedPrekey: key(1),
    lastResortKemPrekey: key(1, 1184),
    oneTimePrekeys: [{ keyId: 1, publicKey: bytes(32) }],
    oneTimeKemPrekeys: [key(5, 1184)],
    numberCommitment: EMPTY,
    nowMs: 1000,
  }
}

/** Registers a device with a few prekeys (and, unless given one, no number commitment) at `address`. */
export function register(
  store: Store,
  address = bytes(32),
  extra: Partial<PrekeySet> & { numberCommitment?: Uint8Array } = {},
) {
  return store
    .registerDevice({
      address,
      identityKey: bytes(32),
      signedPrekey: key(1),
      lastResortKemPrekey: key(1, 1184),
      oneTimePrekeys: extra.oneTimePrekeys ?? [
        { keyId: 2, publicKey: bytes(32) },
        { keyId: 1, publicKey: bytes(32) },
      ],
      oneTimeKemPrekeys: extra.oneTimeKemPrekeys ?? [key(5, 1184)],
      numberCommitment: extra.numberCommitment ?? EMPTY,
      nowMs: 1000,
    })
    .then((r) => ({ ...r, address }))
}

/** Enqueues one random envelope for a device. */
export const enqueue = (
  store: Store,
  address: Uint8Array,
  deviceId = 1,
  opts: { at?: number; max?: number; maxBytes?: number; id?: Uint8Array; size?: number } = {},
) =>
  store.enqueue({
    address,
    deviceId,
    messageId: opts.id ?? bytes(16),
    envelope: bytes(opts.size ?? 20),
    receivedAtMs: opts.at ?? Date.now(),
    maxMessages: opts.max ?? 100,
    maxBytes: opts.maxBytes ?? 1 << 30,
  })

const seqOf = (r: Awaited<ReturnType<Store['enqueue']>>) =>
  r.status === 'stored' || r.status === 'duplicate' ? r.seq : -1

/** Registers the conformance tests of {@link Store} for one implementation (call inside a describe). */
export function storeConformance(h: StoreHarness): void {
  const open = () => h.open()
  afterAll(() => h.cleanup())

  it('has no sender column in the mailbox', async () => {
    const s = await open()
    expect((await h.columns(s, 'mailbox')).sort()).toEqual([
      'address',
      'device_id',
      'envelope',
      'message_id',
      'received_at_ms',
      'seq',
    ])
  })

  it('registers a device, and a re-activation replaces it with the next device id and none of its mail', async () => {
    const s = await open()
    const a = await register(s)
    expect(a).toMatchObject({ deviceId: 1, replacedDevice: false })
    await enqueue(s, a.address)
    expect(await h.mailbox(s, a.address)).toEqual({ count: 1, bytes: 20 })
    const b = await register(s, a.address)
    expect(b).toMatchObject({ deviceId: 2, replacedDevice: true })
    expect(await s.mailboxHead(a.address, 2)).toBe(0)
    expect((await s.fetchMailbox(a.address, 2, 0, 10)).entries).toEqual([])
    expect(await h.mailbox(s, a.address)).toEqual({ count: 0, bytes: 0 })
    const account = (await s.getAccount(a.address))!
    expect(account.deviceId).toBe(2)
    expect(hex(account.address)).toBe(hex(a.address))
    expect(account.createdAtMs).toBe(1000)
    expect(await s.getAccount(bytes(32))).toBeNull()
  })

  it('retains a replaced device’s unread mail for its identity key, and restores it when that key activates again', async () => {
    const s = await open()
    const address = bytes(32)
    const [i1, i2, i3] = [bytes(32), bytes(32), bytes(32)]
    const as = (identityKey: Uint8Array, nowMs = 1000) =>
      s.registerDevice({ ...registration(address), identityKey, nowMs })
    expect(await as(i1)).toEqual({
      deviceId: 1,
      replacedDevice: false,
      restoredMessages: 0,
      retainedMessages: 0,
    })
    const ids = [bytes(16), bytes(16), bytes(16), bytes(16)]
    await enqueue(s, address, 1, { at: 1, id: ids[0] })
    for (const id of ids.slice(1)) await enqueue(s, address, 1, { id })
    expect(await s.expire(2)).toBe(1) // seq 1 expires: a gap
    expect(await s.ack(address, 1, [3])).toBe(1)
    const unread = (await s.fetchMailbox(address, 1, 0, 10)).entries
    expect(unread.map((e) => e.seq)).toEqual([2, 4])
    // Someone else's key takes the number: device 1's two unread messages are retained, not handed over.
    expect(await as(i2)).toEqual({
      deviceId: 2,
      replacedDevice: true,
      restoredMessages: 0,
      retainedMessages: 2,
    })
    expect(await s.fetchMailbox(address, 2, 0, 10)).toEqual({ entries: [], gaps: [], headSeq: 0 })
    expect(await h.mailbox(s, address)).toEqual({ count: 0, bytes: 0 })
    expect((await enqueue(s, address, 2)).status).toBe('stored')
    expect((await enqueue(s, address, 1)).status).toBe('stale_device')
    // Device 1's key comes back: its mail is restored, same seqs, envelopes, ids and gap; device 2's is retained.
    expect(await as(i1)).toEqual({
      deviceId: 3,
      replacedDevice: true,
      restoredMessages: 2,
      retainedMessages: 1,
    })
    const page = await s.fetchMailbox(address, 3, 0, 10)
    expect(page.entries.map((e) => [e.seq, hex(e.messageId), hex(e.envelope)])).toEqual(
      unread.map((e) => [e.seq, hex(e.messageId), hex(e.envelope)]),
    )
    expect(page.gaps).toEqual([{ firstSeq: 1, lastSeq: 1, reason: 'expired' }])
    expect(await s.mailboxHead(address, 3)).toBe(4)
    expect(await h.mailbox(s, address)).toEqual({ count: 2, bytes: 40 })
    expect(await enqueue(s, address, 3)).toEqual({ status: 'stored', seq: 5 })
    expect(await enqueue(s, address, 3, { id: ids[1] })).toEqual({ status: 'duplicate', seq: 2 })
    expect(await s.ack(address, 3, [2])).toBe(1)
    expect(await h.mailbox(s, address)).toEqual({ count: 2, bytes: 40 })
    // A third key: device 3's unread mail (seqs 4, 5) is retained, device 2's (retained for i2) erased.
    expect(await as(i3)).toMatchObject({ deviceId: 4, restoredMessages: 0, retainedMessages: 2 })
    // Activations with devices that have no unread mail do not flush it out: device 3's stays retained…
    expect(await as(i2)).toMatchObject({ deviceId: 5, restoredMessages: 0, retainedMessages: 0 })
    expect(await as(bytes(32))).toMatchObject({ deviceId: 6, restoredMessages: 0, retainedMessages: 0 })
    expect(await h.rows(s, 'mailbox')).toBe(2)
    // …until its key comes back for it.
    expect(await as(i1)).toMatchObject({ deviceId: 7, restoredMessages: 2, retainedMessages: 0 })
    expect((await s.fetchMailbox(address, 7, 0, 10)).entries.map((e) => e.seq)).toEqual([4, 5])
    expect(await h.rows(s, 'retained_mail')).toBe(0)
    // A replaced device with unread mail of its own takes the retained place; nobody's is erased silently.
    await enqueue(s, address, 7)
    expect(await as(i2)).toMatchObject({ deviceId: 8, restoredMessages: 0, retainedMessages: 3 })
    expect(await s.deleteAccount(address)).toBe(true)
    expect(await h.rows(s, 'mailbox')).toBe(0)
    expect(await h.rows(s, 'retained_mail')).toBe(0)
  })

  it('retained mail expires without touching the current device’s counters, and goes with the account', async () => {
    const s = await open()
    const address = bytes(32)
    const i1 = bytes(32)
    await s.registerDevice({ ...registration(address), identityKey: i1 })
    for (let i = 0; i < 3; i++) await enqueue(s, address, 1, { at: 50 })
    expect(await s.registerDevice({ ...registration(address), nowMs: 100 })).toMatchObject({
      retainedMessages: 3,
    })
    await enqueue(s, address, 2, { at: 500 })
    await enqueue(s, address, 2, { at: 500 })
    expect(await h.mailbox(s, address)).toEqual({ count: 2, bytes: 40 })
    expect(await s.expire(200)).toBe(3)
    expect(await h.mailbox(s, address)).toEqual({ count: 2, bytes: 40 })
    expect(await h.rows(s, 'retained_mail')).toBe(0)
    expect(await s.registerDevice({ ...registration(address), identityKey: i1 })).toMatchObject({
      restoredMessages: 0,
      retainedMessages: 2,
    })
    expect(await h.rows(s, 'retained_mail')).toBe(1)
    expect(await s.deleteAccount(address)).toBe(true)
    for (const table of ['accounts', 'mailbox', 'mailbox_gaps', 'retained_mail']) {
      expect(await h.rows(s, table)).toBe(0)
    }
  })

  it('retained mail moves with a rebind and is restored at the new address', async () => {
    const s = await open()
    const [a, b, i1] = [bytes(32), bytes(32), bytes(32)]
    await s.registerDevice({ ...registration(a), identityKey: i1 })
    await enqueue(s, a, 1)
    await s.registerDevice(registration(a))
    expect(await s.rebindAddress(a, 2, b)).toBe('moved')
    expect(await s.registerDevice({ ...registration(b), identityKey: i1 })).toMatchObject({
      deviceId: 3,
      restoredMessages: 1,
    })
    expect((await s.fetchMailbox(b, 3, 0, 10)).entries.map((e) => e.seq)).toEqual([1])
    expect(await h.rows(s, 'retained_mail')).toBe(0)
  })

  it('counts accounts: a re-activation is still one, a deleted one is gone', async () => {
    const s = await open()
    expect(await s.accountCount()).toBe(0)
    const a = await register(s)
    await register(s)
    await register(s, a.address)
    expect(await s.accountCount()).toBe(2)
    expect(await s.deleteAccount(a.address)).toBe(true)
    expect(await s.accountCount()).toBe(1)
  })

  it('stores the number commitment given at registration, and none as an empty one', async () => {
    const s = await open()
    expect(await h.columns(s, 'accounts')).toEqual(
      expect.arrayContaining(['number_commitment', 'delivery_verifier']),
    )
    const commitment = bytes(32)
    const a = await register(s, bytes(32), { numberCommitment: commitment })
    const b = await register(s)
    const withOne = (await s.getAccount(a.address))!
    expect(withOne.numberCommitment).toBeInstanceOf(Uint8Array)
    expect(hex(withOne.numberCommitment)).toBe(hex(commitment))
    expect(withOne.deliveryVerifier).toBeInstanceOf(Uint8Array)
    expect(withOne.deliveryVerifier).toHaveLength(0)
    const without = (await s.getAccount(b.address))!
    expect(without.numberCommitment).toBeInstanceOf(Uint8Array)
    expect(without.numberCommitment).toHaveLength(0)
    expect(without.deliveryVerifier).toHaveLength(0)
  })

  it('sets, replaces and clears the delivery verifier; refuses a stale device or an unknown address', async () => {
    const s = await open()
    const commitment = bytes(32)
    const { address } = await register(s, bytes(32), { numberCommitment: commitment })
    const verifierOf = async () => hex((await s.getAccount(address))!.deliveryVerifier)
    const v1 = bytes(32)
    const v2 = bytes(32)
    expect(await s.setDeliveryVerifier(address, 1, v1)).toBe(true)
    expect(await verifierOf()).toBe(hex(v1))
    expect(await s.setDeliveryVerifier(address, 1, v2)).toBe(true)
    expect(await verifierOf()).toBe(hex(v2))
    // Setting the same value again still names the registered device: true.
    expect(await s.setDeliveryVerifier(address, 1, v2)).toBe(true)
    // Refused, and nothing changed.
    expect(await s.setDeliveryVerifier(address, 2, v1)).toBe(false)
    expect(await s.setDeliveryVerifier(address, 0, EMPTY)).toBe(false)
    expect(await verifierOf()).toBe(hex(v2))
    const unknown = bytes(32)
    expect(await s.setDeliveryVerifier(unknown, 1, v1)).toBe(false)
    expect(await s.getAccount(unknown)).toBeNull()
    expect(await h.rows(s, 'accounts')).toBe(1)
    // The commitment is untouched by any of it.
    expect(hex((await s.getAccount(address))!.numberCommitment)).toBe(hex(commitment))
    // An empty verifier clears it.
    expect(await s.setDeliveryVerifier(address, 1, EMPTY)).toBe(true)
    const cleared = (await s.getAccount(address))!
    expect(cleared.deliveryVerifier).toBeInstanceOf(Uint8Array)
    expect(cleared.deliveryVerifier).toHaveLength(0)
    expect(hex(cleared.numberCommitment)).toBe(hex(commitment))
  })

  it('a re-activation starts without a delivery verifier and with the new number commitment', async () => {
    const s = await open()
    const c1 = bytes(32)
    const c2 = bytes(32)
    const { address } = await register(s, bytes(32), { numberCommitment: c1 })
    expect(await s.setDeliveryVerifier(address, 1, bytes(32))).toBe(true)
    expect(await register(s, address, { numberCommitment: c2 })).toMatchObject({
      deviceId: 2,
      replacedDevice: true,
    })
    const account = (await s.getAccount(address))!
    expect(account.deliveryVerifier).toHaveLength(0)
    expect(hex(account.numberCommitment)).toBe(hex(c2))
    // The replaced device can no longer set one; the new device can.
    const v = bytes(32)
    expect(await s.setDeliveryVerifier(address, 1, v)).toBe(false)
    expect((await s.getAccount(address))!.deliveryVerifier).toHaveLength(0)
    expect(await s.setDeliveryVerifier(address, 2, v)).toBe(true)
    expect(hex((await s.getAccount(address))!.deliveryVerifier)).toBe(hex(v))
    // A re-activation without a commitment leaves none of the old one.
    await register(s, address)
    const third = (await s.getAccount(address))!
    expect(third.deviceId).toBe(3)
    expect(third.numberCommitment).toHaveLength(0)
    expect(third.deliveryVerifier).toHaveLength(0)
  })

  it('erases the number commitment and the delivery verifier with the account', async () => {
    const s = await open()
    const { address } = await register(s, bytes(32), { numberCommitment: bytes(32) })
    expect(await s.setDeliveryVerifier(address, 1, bytes(32))).toBe(true)
    expect(await s.deleteAccount(address)).toBe(true)
    expect(await s.getAccount(address)).toBeNull()
    expect(await h.rows(s, 'accounts')).toBe(0)
    expect(await s.setDeliveryVerifier(address, 1, bytes(32))).toBe(false)
    expect(await h.rows(s, 'accounts')).toBe(0)
    // Activating the address again starts from nothing.
    await register(s, address)
    const fresh = (await s.getAccount(address))!
    expect(fresh.deviceId).toBe(1)
    expect(fresh.numberCommitment).toHaveLength(0)
    expect(fresh.deliveryVerifier).toHaveLength(0)
  })

  it('keeps a registration lock across a re-activation that proved it, drops it otherwise, erases it with the account', async () => {
    const s = await open()
    const { address } = await register(s)
    const lock = { salt: bytes(16), logN: 15, verifier: bytes(32), setAtMs: 5000 }
    expect(await s.getRegistrationLock(address)).toBeNull()
    expect(await s.setRegistrationLock(address, 2, lock)).toBe(false)
    expect(await s.setRegistrationLock(bytes(32), 1, lock)).toBe(false)
    expect(await s.getRegistrationLock(address)).toBeNull()
    expect(await s.setRegistrationLock(address, 1, lock)).toBe(true)
    expect(await s.getRegistrationLock(address)).toEqual(lock)
    // Replaced by a device that proved the PIN: the lock stays, readable under the new device's keys.
    await s.registerDevice({ ...registration(address), keepRegistrationLock: true })
    expect((await s.getAccount(address))!.deviceId).toBe(2)
    expect(await s.getRegistrationLock(address)).toEqual(lock)
    const replaced = { ...lock, salt: bytes(16), verifier: bytes(32), logN: 16, setAtMs: 6000 }
    expect(await s.setRegistrationLock(address, 1, replaced)).toBe(false)
    expect(await s.setRegistrationLock(address, 2, replaced)).toBe(true)
    expect(await s.getRegistrationLock(address)).toEqual(replaced)
    // Replaced without the PIN (the lock had lapsed): it is gone.
    await s.registerDevice(registration(address))
    expect(await s.getRegistrationLock(address)).toBeNull()
    expect(await h.rows(s, 'registration_locks')).toBe(0)
    expect(await s.setRegistrationLock(address, 3, lock)).toBe(true)
    expect(await s.setRegistrationLock(address, 3, null)).toBe(true)
    expect(await s.getRegistrationLock(address)).toBeNull()
    expect(await s.setRegistrationLock(address, 3, lock)).toBe(true)
    expect(await s.deleteAccount(address)).toBe(true)
    expect(await s.getRegistrationLock(address)).toBeNull()
    expect(await h.rows(s, 'registration_locks')).toBe(0)
    await register(s, address)
    expect(await s.getRegistrationLock(address)).toBeNull()
  })

  it('records account activity: the registration time, then what touchAccount says for the registered device', async () => {
    const s = await open()
    const { address } = await register(s)
    expect((await s.getAccount(address))!.lastActiveMs).toBe(1000)
    await s.touchAccount(address, 1, 90_000)
    expect((await s.getAccount(address))!.lastActiveMs).toBe(90_000)
    await s.touchAccount(address, 2, 95_000)
    expect((await s.getAccount(address))!.lastActiveMs).toBe(90_000)
    await s.registerDevice({ ...registration(address), nowMs: 120_000 })
    expect((await s.getAccount(address))!.lastActiveMs).toBe(120_000)
  })

  it('finds addresses by bit prefix, including non-byte-aligned prefixes', async () => {
    const s = await open()
    const mk = (first: number[]) => {
      const a = bytes(32)
      a.set(first)
      return a
    }
    const inside = [mk([0xab, 0xc0]), mk([0xab, 0xcf]), mk([0xab, 0xc7, 0xff])]
    const outside = [mk([0xab, 0xd0]), mk([0xab, 0xbf]), mk([0xac, 0x00])]
    for (const a of [...inside, ...outside]) await register(s, a)
    const found = (await s.addressesWithPrefix(new Uint8Array([0xab, 0xc0]), 12, 100)).map(hex).sort()
    expect(found).toEqual(inside.map(hex).sort())
    expect((await s.addressesWithPrefix(new Uint8Array([0xab]), 8, 100)).length).toBe(5)
    expect((await s.addressesWithPrefix(new Uint8Array([0xab]), 8, 2)).length).toBe(2)
    // High bytes compare unsigned on every engine.
    const high = mk([0xff, 0xff])
    await register(s, high)
    expect((await s.addressesWithPrefix(new Uint8Array([0xff, 0xff]), 16, 10)).map(hex)).toEqual([hex(high)])
  })

  it('hands out one-time prekeys once each, lowest id first, then the last-resort KEM prekey', async () => {
    const s = await open()
    const { address } = await register(s)
    const b1 = (await s.takePrekeyBundle(address))!
    expect(b1.oneTimePrekey!.keyId).toBe(1)
    expect(b1.kemPrekey.keyId).toBe(5)
    expect(b1.kemPrekeyIsLastResort).toBe(false)
    expect(b1.deviceId).toBe(1)
    expect(b1.signedPrekey.keyId).toBe(1)
    const b2 = (await s.takePrekeyBundle(address))!
    expect(b2.oneTimePrekey!.keyId).toBe(2)
    expect(b2.kemPrekeyIsLastResort).toBe(true)
    expect(b2.kemPrekey.publicKey.length).toBe(1184)
    const b3 = (await s.takePrekeyBundle(address))!
    expect(b3.oneTimePrekey).toBeUndefined()
    expect(await s.takePrekeyBundle(bytes(32))).toBeNull()
    expect(await s.countPrekeys(address, 1)).toEqual({ oneTimeCount: 0, kemOneTimeCount: 0 })
  })

  it('adds prekeys, replaces the signed prekey, and refuses to store beyond the limit', async () => {
    const s = await open()
    const { address } = await register(s)
    const spk = key(9)
    const r = await s.putPrekeys(
      address,
      1,
      { signedPrekey: spk, oneTimePrekeys: [{ keyId: 3, publicKey: bytes(32) }], oneTimeKemPrekeys: [] },
      10,
    )
    expect(r).toEqual({ status: 'stored', counts: { oneTimeCount: 3, kemOneTimeCount: 1 } })
    // The same key id replaces rather than adds.
    const again = await s.putPrekeys(
      address,
      1,
      { oneTimePrekeys: [{ keyId: 3, publicKey: bytes(32) }], oneTimeKemPrekeys: [key(5, 1184)] },
      10,
    )
    expect(again).toEqual({ status: 'stored', counts: { oneTimeCount: 3, kemOneTimeCount: 1 } })
    expect((await s.takePrekeyBundle(address))!.signedPrekey.keyId).toBe(9)
    const many = Array.from({ length: 9 }, (_, i) => ({ keyId: 100 + i, publicKey: bytes(32) }))
    expect(await s.putPrekeys(address, 1, { oneTimePrekeys: many, oneTimeKemPrekeys: [] }, 10)).toEqual({
      status: 'over_limit',
      counts: { oneTimeCount: 2, kemOneTimeCount: 0 },
    })
    expect((await s.putPrekeys(address, 7, { oneTimePrekeys: [], oneTimeKemPrekeys: [] }, 10)).status).toBe(
      'not_found',
    )
    expect(await s.countPrekeys(address, 7)).toEqual({ oneTimeCount: 0, kemOneTimeCount: 0 })
  })

  it('assigns increasing sequence numbers, is idempotent by message id, and refuses stale devices', async () => {
    const s = await open()
    const { address } = await register(s)
    const a = await enqueue(s, address)
    const b = await enqueue(s, address)
    expect([a, b].map(seqOf)).toEqual([1, 2])
    const input = {
      address,
      deviceId: 1,
      messageId: bytes(16),
      envelope: bytes(4),
      receivedAtMs: 1,
      maxMessages: 100,
      maxBytes: 1000,
    }
    expect(await s.enqueue(input)).toEqual({ status: 'stored', seq: 3 })
    expect(await s.enqueue(input)).toEqual({ status: 'duplicate', seq: 3 })
    expect(await s.enqueue({ ...input, deviceId: 2 })).toEqual({ status: 'stale_device', currentDeviceId: 1 })
    expect(await s.enqueue({ ...input, address: bytes(32) })).toEqual({ status: 'not_found' })
    expect(await s.mailboxHead(address, 1)).toBe(3)
    expect(await s.mailboxHead(address, 2)).toBe(0)
    const page = await s.fetchMailbox(address, 1, 2, 10)
    expect(page.entries).toEqual([
      { seq: 3, messageId: input.messageId, envelope: input.envelope, receivedAtMs: 1 },
    ])
  })

  it('deletes only acked entries of the owner, and pages after a cursor', async () => {
    const s = await open()
    const { address } = await register(s)
    const other = (await register(s)).address
    for (let i = 0; i < 5; i++) await enqueue(s, address)
    expect(await s.ack(other, 1, [1, 2, 3])).toBe(0)
    expect(await s.ack(address, 2, [1])).toBe(0)
    expect(await s.ack(address, 1, [2, 2, 4, 99])).toBe(2)
    expect(await s.ack(address, 1, [])).toBe(0)
    const page = await s.fetchMailbox(address, 1, 0, 2)
    expect(page.entries.map((e) => e.seq)).toEqual([1, 3])
    expect((await s.fetchMailbox(address, 1, 3, 10)).entries.map((e) => e.seq)).toEqual([5])
    expect(page.headSeq).toBe(5)
    expect(await s.fetchMailbox(address, 2, 0, 10)).toEqual({ entries: [], gaps: [], headSeq: 0 })
  })

  it('acks a 500-seq list with duplicates and foreign seqs in one call: exactly the listed rows, counted once', async () => {
    const s = await open()
    const { address } = await register(s)
    const other = await register(s)
    // Concurrent enqueues: SQLite shares their commits (seqs follow call order); PostgreSQL still numbers them 1..n.
    await Promise.all(Array.from({ length: 300 }, () => enqueue(s, address, 1, { max: 1000 })))
    await Promise.all(Array.from({ length: 40 }, () => enqueue(s, other.address, 1, { max: 1000 })))
    expect(await s.ack(address, 1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])).toBe(10)
    const present = new Set(Array.from({ length: 290 }, (_, i) => i + 11))
    // 500 entries: every even seq (five of them acked already), each listed twice; seqs past the head; and the
    // acked 1..10 five times each. The other account's mailbox holds seqs 1..40 too, and must keep them.
    const list: number[] = []
    for (let seq = 2; seq <= 300; seq += 2) list.push(seq, seq)
    for (let seq = 301; seq <= 450; seq++) list.push(seq)
    for (let i = 0; i < 50; i++) list.push((i % 10) + 1)
    expect(list).toHaveLength(500)
    list.sort(() => Math.random() - 0.5)
    const expected = [...new Set(list)].filter((seq) => present.has(seq))
    expect(expected).toHaveLength(145)
    // Another device of the account, or another account, matches nothing.
    expect(await s.ack(address, 2, list)).toBe(0)
    expect(await s.ack(bytes(32), 1, list)).toBe(0)
    expect(await s.ack(address, 1, list)).toBe(expected.length)
    expect(await s.ack(address, 1, list)).toBe(0)
    for (const seq of expected) present.delete(seq)
    const page = await s.fetchMailbox(address, 1, 0, 1000)
    expect(page.entries.map((e) => e.seq)).toEqual([...present])
    expect(page.gaps).toEqual([])
    expect((await s.fetchMailbox(other.address, 1, 0, 1000)).entries).toHaveLength(40)
    expect(await h.rows(s, 'mailbox')).toBe(present.size + 40)
    // The mailbox count and bytes went down by exactly the rows deleted (20 bytes each): a limit of present + 1
    // takes one more message, then refuses.
    expect(await h.mailbox(s, address)).toEqual({ count: present.size, bytes: 20 * present.size })
    expect(await h.mailbox(s, other.address)).toEqual({ count: 40, bytes: 800 })
    const max = present.size + 1
    expect(await enqueue(s, address, 1, { max })).toEqual({ status: 'stored', seq: 301 })
    expect(await enqueue(s, address, 1, { max })).toEqual({ status: 'full', limit: 'messages' })
    expect(await enqueue(s, other.address, 1, { max: 41 })).toMatchObject({ status: 'stored', seq: 41 })
  })

  it('pages by bytes: stops before the entry that would exceed maxBytes, always returns one, keeps gap semantics', async () => {
    const s = await open()
    const { address } = await register(s)
    const now = Date.now()
    const old = now - 10_000
    // seq:   1    2    3    4    5    6    7
    // bytes: 100  100  100  500  100  100  100
    // age:   new  old  old  new  new  new  old    → expired: gaps 2..3 and 7..7; entries 1, 4, 5, 6
    const plan = [
      { size: 100, at: now },
      { size: 100, at: old },
      { size: 100, at: old },
      { size: 500, at: now },
      { size: 100, at: now },
      { size: 100, at: now },
      { size: 100, at: old },
    ]
    for (const p of plan) await enqueue(s, address, 1, p)
    expect(await s.expire(now - 5000)).toBe(3)
    const fetch = async (after: number, limit: number, maxBytes?: number) => {
      const page = await s.fetchMailbox(address, 1, after, limit, maxBytes)
      expect(page.headSeq).toBe(7)
      return { seqs: page.entries.map((e) => e.seq), gaps: page.gaps.map((g) => [g.firstSeq, g.lastSeq]) }
    }
    // Without a byte bound, or with a large one: everything, and every gap up to the head.
    const all = {
      seqs: [1, 4, 5, 6],
      gaps: [
        [2, 3],
        [7, 7],
      ],
    }
    expect(await fetch(0, 10)).toEqual(all)
    expect(await fetch(0, 10, 800)).toEqual(all)
    // Ended by bytes (4 would make 600 > 150): the page ends at 1 and the gap after it waits for the next page.
    expect(await fetch(0, 10, 150)).toEqual({ seqs: [1], gaps: [] })
    // 4 alone is over the budget: returned anyway (progress), with the gap before it.
    expect(await fetch(1, 10, 150)).toEqual({ seqs: [4], gaps: [[2, 3]] })
    expect(await fetch(0, 10, 0)).toEqual({ seqs: [1], gaps: [] })
    // Exactly at the budget is within it: 500 + 100 = 600.
    expect(await fetch(3, 10, 600)).toEqual({ seqs: [4, 5], gaps: [] })
    expect(await fetch(3, 10, 599)).toEqual({ seqs: [4], gaps: [] })
    // Ended by bytes with 6 left: no trailing gap yet. The last entry, whatever the budget: runs to the head.
    expect(await fetch(4, 10, 150)).toEqual({ seqs: [5], gaps: [] })
    expect(await fetch(5, 10, 150)).toEqual({ seqs: [6], gaps: [[7, 7]] })
    expect(await fetch(5, 10, 1)).toEqual({ seqs: [6], gaps: [[7, 7]] })
    // Ended by count, with room in the budget: still a full page ending at its last entry.
    expect(await fetch(4, 2, 10_000)).toEqual({ seqs: [5, 6], gaps: [] })
    expect(await fetch(0, 1, 10_000)).toEqual({ seqs: [1], gaps: [] })
    expect(await fetch(6, 10, 150)).toEqual({ seqs: [], gaps: [[7, 7]] })
    expect(await fetch(7, 10, 150)).toEqual({ seqs: [], gaps: [] })
    // Paging by a byte budget from the cursor, as the relay does, delivers every entry and gap exactly once.
    const seen: number[][] = []
    let cursor = 0
    for (let i = 0; i < 20; i++) {
      const page = await s.fetchMailbox(address, 1, cursor, 10, 150)
      if (page.entries.length === 0 && page.gaps.length === 0) break
      for (const g of page.gaps) seen.push([g.firstSeq, g.lastSeq])
      for (const e of page.entries) seen.push([e.seq, e.seq])
      cursor = Math.max(cursor, ...page.entries.map((e) => e.seq), ...page.gaps.map((g) => g.lastSeq))
    }
    expect(seen.sort((x, y) => x[0]! - y[0]!)).toEqual([
      [1, 1],
      [2, 3],
      [4, 4],
      [5, 5],
      [6, 6],
      [7, 7],
    ])
    // The entries are whole.
    const [entry] = (await s.fetchMailbox(address, 1, 3, 10, 1)).entries
    expect(entry!.envelope).toHaveLength(500)
    expect(entry!.messageId).toHaveLength(16)
  })

  it('refuses mail beyond the mailbox limit: nothing stored, nothing evicted, no gap; takes mail again after an ack', async () => {
    const s = await open()
    const { address } = await register(s)
    const ids = Array.from({ length: 6 }, () => bytes(16))
    const results = []
    for (const id of ids) results.push(await enqueue(s, address, 1, { max: 3, id }))
    expect(results).toEqual([
      { status: 'stored', seq: 1 },
      { status: 'stored', seq: 2 },
      { status: 'stored', seq: 3 },
      { status: 'full', limit: 'messages' },
      { status: 'full', limit: 'messages' },
      { status: 'full', limit: 'messages' },
    ])
    // The oldest unread mail is all still there, whole, and no sequence number was spent on a refusal.
    const page = await s.fetchMailbox(address, 1, 0, 10)
    expect(page.entries.map((e) => [e.seq, hex(e.messageId)])).toEqual(
      ids.slice(0, 3).map((id, i) => [i + 1, hex(id)]),
    )
    expect(page.gaps).toEqual([])
    expect(page.headSeq).toBe(3)
    expect(await h.rows(s, 'mailbox')).toBe(3)
    expect(await h.rows(s, 'mailbox_gaps')).toBe(0)
    expect(await h.mailbox(s, address)).toEqual({ count: 3, bytes: 60 })
    // A resent message that is stored already is a duplicate, full or not; a refused one is still refused.
    expect(await enqueue(s, address, 1, { max: 3, id: ids[1]! })).toEqual({ status: 'duplicate', seq: 2 })
    expect(await enqueue(s, address, 1, { max: 3, id: ids[3]! })).toEqual({
      status: 'full',
      limit: 'messages',
    })
    // Reading (acking) makes room for exactly as much as was acked.
    expect(await s.ack(address, 1, [2])).toBe(1)
    expect(await enqueue(s, address, 1, { max: 3, id: ids[3]! })).toEqual({ status: 'stored', seq: 4 })
    expect(await enqueue(s, address, 1, { max: 3, id: ids[4]! })).toEqual({
      status: 'full',
      limit: 'messages',
    })
    expect((await s.fetchMailbox(address, 1, 0, 10)).entries.map((e) => e.seq)).toEqual([1, 3, 4])
    expect(await h.mailbox(s, address)).toEqual({ count: 3, bytes: 60 })
  })

  it('keeps the unread bytes of each mailbox through enqueue, ack and expiry, and refuses beyond maxBytes', async () => {
    const s = await open()
    const { address } = await register(s)
    const other = await register(s)
    const now = Date.now()
    const put = (size: number, opts: { at?: number; id?: Uint8Array } = {}) =>
      enqueue(s, address, 1, { size, maxBytes: 1000, max: 100, ...opts })
    const first = bytes(16)
    expect(await put(100, { id: first, at: now - 10_000 })).toEqual({ status: 'stored', seq: 1 })
    expect(await put(200)).toEqual({ status: 'stored', seq: 2 })
    expect(await h.mailbox(s, address)).toEqual({ count: 2, bytes: 300 })
    // Up to the limit exactly is within it; one byte more is refused, and changes nothing.
    expect(await put(700)).toEqual({ status: 'stored', seq: 3 })
    expect(await h.mailbox(s, address)).toEqual({ count: 3, bytes: 1000 })
    expect(await put(1)).toEqual({ status: 'full', limit: 'bytes' })
    expect(await put(1)).toEqual({ status: 'full', limit: 'bytes' })
    expect(await h.mailbox(s, address)).toEqual({ count: 3, bytes: 1000 })
    expect(await s.mailboxHead(address, 1)).toBe(3)
    expect(await h.rows(s, 'mailbox')).toBe(3)
    // A duplicate is recognised before the limit; another account's mailbox has its own total.
    expect(await put(100, { id: first })).toEqual({ status: 'duplicate', seq: 1 })
    expect(await enqueue(s, other.address, 1, { size: 900, maxBytes: 1000 })).toEqual({
      status: 'stored',
      seq: 1,
    })
    expect(await h.mailbox(s, other.address)).toEqual({ count: 1, bytes: 900 })
    // An ack lowers the total by the acked envelopes only (a repeated, foreign or unknown seq counts nothing).
    expect(await s.ack(address, 1, [2, 2, 99])).toBe(1)
    expect(await s.ack(address, 1, [2])).toBe(0)
    expect(await s.ack(address, 2, [3])).toBe(0)
    expect(await s.ack(other.address, 1, [3])).toBe(0)
    expect(await h.mailbox(s, address)).toEqual({ count: 2, bytes: 800 })
    expect(await h.mailbox(s, other.address)).toEqual({ count: 1, bytes: 900 })
    expect(await put(201)).toEqual({ status: 'full', limit: 'bytes' })
    expect(await put(200)).toEqual({ status: 'stored', seq: 4 })
    expect(await h.mailbox(s, address)).toEqual({ count: 3, bytes: 1000 })
    // Expiry lowers it by the expired envelopes (seq 1, 100 bytes) and records only the expiry as a gap.
    expect(await s.expire(now - 5000)).toBe(1)
    expect(await h.mailbox(s, address)).toEqual({ count: 2, bytes: 900 })
    expect((await s.fetchMailbox(address, 1, 0, 10)).gaps).toEqual([
      { firstSeq: 1, lastSeq: 1, reason: 'expired' },
    ])
    expect(await put(100)).toEqual({ status: 'stored', seq: 5 })
    // The count limit is checked as well: whichever is hit first refuses.
    expect(await enqueue(s, address, 1, { size: 1, max: 3, maxBytes: 10_000 })).toEqual({
      status: 'full',
      limit: 'messages',
    })
    // The totals match the rows, and erasure takes them with the account.
    const held = (await s.fetchMailbox(address, 1, 0, 100)).entries.reduce((n, e) => n + e.envelope.length, 0)
    expect(await h.mailbox(s, address)).toEqual({ count: 3, bytes: held })
    expect(await s.deleteAccount(address)).toBe(true)
    expect(await h.mailbox(s, address)).toBeNull()
    await register(s, address)
    expect(await h.mailbox(s, address)).toEqual({ count: 0, bytes: 0 })
    expect(await h.mailbox(s, other.address)).toEqual({ count: 1, bytes: 900 })
  })

  // Where the engine cannot go back to version 2 in place (PostgreSQL), its own test covers migration 3.
  const toVersion2 = h.toVersion2
  if (toVersion2) {
    it('migration 3 computes the unread bytes of the mail stored before it', async () => {
      const s = await open()
      const a = await register(s)
      const b = await register(s)
      const c = await register(s)
      for (const size of [100, 250, 1]) await enqueue(s, a.address, 1, { size })
      await enqueue(s, b.address, 1, { size: 7 })
      await s.ack(a.address, 1, [2])
      // Back to the version-2 schema (no byte column, version 3 not applied), then opened as a relay would.
      await toVersion2(s)
      expect(await h.columns(s, 'accounts')).not.toContain('mailbox_bytes')
      const p = await h.peer(s)
      expect(await h.columns(p, 'accounts')).toContain('mailbox_bytes')
      expect(await h.mailbox(p, a.address)).toEqual({ count: 2, bytes: 101 })
      expect(await h.mailbox(p, b.address)).toEqual({ count: 1, bytes: 7 })
      expect(await h.mailbox(p, c.address)).toEqual({ count: 0, bytes: 0 })
      // The quota holds for the migrated mail.
      expect(await enqueue(p, a.address, 1, { size: 900, maxBytes: 1000 })).toEqual({
        status: 'full',
        limit: 'bytes',
      })
      expect(await enqueue(p, a.address, 1, { size: 899, maxBytes: 1000 })).toEqual({
        status: 'stored',
        seq: 4,
      })
    })
  }

  it('expires old mail into gaps of consecutive runs, keeps newer mail, and forgets old gap records', async () => {
    const s = await open()
    const { address } = await register(s)
    const now = Date.now()
    for (let i = 0; i < 4; i++) await enqueue(s, address, 1, { at: now - 10_000 })
    await enqueue(s, address, 1, { at: now })
    await s.ack(address, 1, [2])
    expect(await s.expire(now - 5000)).toBe(3)
    expect(await s.expire(now - 5000)).toBe(0)
    const page = await s.fetchMailbox(address, 1, 0, 10)
    expect(page.entries.map((e) => e.seq)).toEqual([5])
    expect(page.gaps).toEqual([
      { firstSeq: 1, lastSeq: 1, reason: 'expired' },
      { firstSeq: 3, lastSeq: 4, reason: 'expired' },
    ])
    // New mail still fits the mailbox count after expiry.
    expect(await enqueue(s, address, 1, { max: 2 })).toMatchObject({ status: 'stored', seq: 6 })
    const b = await register(s)
    for (let i = 0; i < 2; i++) await enqueue(s, b.address, 1, { at: now - 20_000 })
    expect(await s.expire(now - 15_000)).toBe(2)
    expect((await s.fetchMailbox(b.address, 1, 0, 10)).gaps).toEqual([
      { firstSeq: 1, lastSeq: 2, reason: 'expired' },
    ])
    expect((await s.fetchMailbox(address, 1, 0, 10)).entries.map((e) => e.seq)).toEqual([5, 6])
    // Gap records are themselves dropped once recorded before the cutoff; the ones this sweep records (or
    // extends: 5..6 joins 3..4) stay.
    await new Promise((r) => setTimeout(r, 5))
    expect(await s.expire(Date.now())).toBe(2)
    expect((await s.fetchMailbox(b.address, 1, 0, 10)).gaps).toEqual([])
    expect((await s.fetchMailbox(address, 1, 0, 10)).gaps).toEqual([
      { firstSeq: 3, lastSeq: 6, reason: 'expired' },
    ])
    expect(await h.mailbox(s, address)).toEqual({ count: 0, bytes: 0 })
  })

  it('erases every row of an account on delete, and nothing of other accounts', async () => {
    const s = await open()
    const { address } = await register(s)
    const keep = await register(s)
    await enqueue(s, address, 1, { at: 1 })
    expect(await s.expire(2)).toBe(1)
    for (let i = 0; i < 2; i++) await enqueue(s, address)
    await enqueue(s, keep.address)
    expect(await h.rows(s, 'mailbox_gaps')).toBe(1)
    expect(await s.deleteAccount(address)).toBe(true)
    expect(await s.deleteAccount(address)).toBe(false)
    expect(await s.getAccount(address)).toBeNull()
    expect(await h.rows(s, 'accounts')).toBe(1)
    expect(await h.rows(s, 'one_time_prekeys')).toBe(2)
    expect(await h.rows(s, 'kem_prekeys')).toBe(1)
    expect(await h.rows(s, 'mailbox')).toBe(1)
    expect(await h.rows(s, 'mailbox_gaps')).toBe(0)
    await s.deleteAccount(keep.address)
    for (const table of ['accounts', 'one_time_prekeys', 'kem_prekeys', 'mailbox', 'mailbox_gaps']) {
      expect(await h.rows(s, table)).toBe(0)
    }
  })

  it('after deactivation no read returns anything of the account, and activating it again starts from nothing', async () => {
    const s = await open()
    const { address } = await register(s, bytes(32), { numberCommitment: bytes(32) })
    expect(await s.setDeliveryVerifier(address, 1, bytes(32))).toBe(true)
    const more = { oneTimePrekeys: [{ keyId: 9, publicKey: bytes(32) }], oneTimeKemPrekeys: [key(9, 1184)] }
    expect((await s.putPrekeys(address, 1, more, 100)).status).toBe('stored')
    for (let i = 0; i < 3; i++) await enqueue(s, address, 1, { at: i === 0 ? 1 : Date.now() })
    expect(await s.expire(2)).toBe(1)
    expect(await s.deleteAccount(address)).toBe(true)
    expect(await s.getAccount(address)).toBeNull()
    expect(await s.takePrekeyBundle(address)).toBeNull()
    expect(await s.countPrekeys(address, 1)).toEqual({ oneTimeCount: 0, kemOneTimeCount: 0 })
    expect(await s.mailboxHead(address, 1)).toBe(0)
    expect(await s.fetchMailbox(address, 1, 0, 100)).toEqual({ entries: [], gaps: [], headSeq: 0 })
    expect(await s.addressesWithPrefix(address, 256, 10)).toEqual([])
    expect(await s.accountCount()).toBe(0)
    expect(await s.ack(address, 1, [1, 2, 3])).toBe(0)
    expect(await enqueue(s, address)).toEqual({ status: 'not_found' })
    expect((await s.putPrekeys(address, 1, more, 100)).status).toBe('not_found')
    expect(await s.setDeliveryVerifier(address, 1, bytes(32))).toBe(false)
    // Activated again: device 1, its own keys only, an empty mailbox without the old gap, no commitment.
    expect(await register(s, address)).toMatchObject({ deviceId: 1, replacedDevice: false })
    const account = (await s.getAccount(address))!
    expect([account.numberCommitment.length, account.deliveryVerifier.length]).toEqual([0, 0])
    expect(await s.countPrekeys(address, 1)).toEqual({ oneTimeCount: 2, kemOneTimeCount: 1 })
    const bundle = (await s.takePrekeyBundle(address))!
    expect([bundle.oneTimePrekey?.keyId, bundle.kemPrekey.keyId]).toEqual([1, 5])
    expect(await s.fetchMailbox(address, 1, 0, 100)).toEqual({ entries: [], gaps: [], headSeq: 0 })
  })

  /** Every table a move must carry an account through (the tables both stores share). */
  const accountTables = [
    'accounts',
    'one_time_prekeys',
    'kem_prekeys',
    'mailbox',
    'mailbox_gaps',
    'registration_locks',
  ]
  /** Row counts of {@link accountTables}: a move neither adds rows nor removes any. */
  const rowCounts = async (s: Store) => {
    const out: Record<string, number> = {}
    for (const table of accountTables) out[table] = await h.rows(s, table)
    return out
  }
  /** What every read of the store returns for the account at `address` (taking no prekey bundle). */
  const readsOf = async (s: Store, address: Uint8Array, deviceId: number) => ({
    account: await s.getAccount(address),
    page: await s.fetchMailbox(address, deviceId, 0, 1000),
    head: await s.mailboxHead(address, deviceId),
    counts: await s.countPrekeys(address, deviceId),
    lock: await s.getRegistrationLock(address),
    mailbox: await h.mailbox(s, address),
    listed: (await s.addressesWithPrefix(address, 256, 10)).map(hex),
  })
  /** What the reads return for an address that holds nothing. */
  const nothingAt = {
    account: null,
    page: { entries: [], gaps: [], headSeq: 0 },
    head: 0,
    counts: { oneTimeCount: 0, kemOneTimeCount: 0 },
    lock: null,
    mailbox: null,
    listed: [],
  }

  it('rebinds an account to a new address with everything it holds, and leaves nothing under the old one', async () => {
    const s = await open()
    const from = bytes(32)
    const to = bytes(32)
    const bystander = await register(s)
    await enqueue(s, bystander.address)
    // Every kind of value an account holds: keys of each kind, commitment, verifier, mail, a gap, a lock.
    const input = { ...registration(from), numberCommitment: bytes(32) }
    expect(await s.registerDevice(input)).toMatchObject({ deviceId: 1, replacedDevice: false })
    expect(await s.setDeliveryVerifier(from, 1, bytes(32))).toBe(true)
    const more = {
      signedPrekey: key(3),
      lastResortKemPrekey: key(4, 1184),
      oneTimePrekeys: [{ keyId: 9, publicKey: bytes(32) }],
      oneTimeKemPrekeys: [key(9, 1184)],
    }
    expect((await s.putPrekeys(from, 1, more, 100)).status).toBe('stored')
    const ids = [bytes(16), bytes(16), bytes(16), bytes(16)]
    await enqueue(s, from, 1, { id: ids[0]!, at: 1 })
    for (const [i, id] of ids.slice(1).entries()) await enqueue(s, from, 1, { id, size: 100 * (i + 1) })
    expect(await s.expire(2)).toBe(1)
    const lock = { salt: bytes(16), logN: 15, verifier: bytes(32), setAtMs: 5000 }
    expect(await s.setRegistrationLock(from, 1, lock)).toBe(true)
    await s.touchAccount(from, 1, 90_000)
    // Another node reads the account first (and, where there are data keys, holds the account's).
    const p = await h.peer(s)
    const before = await readsOf(p, from, 1)
    expect(before.page.entries.map((e) => e.seq)).toEqual([2, 3, 4])
    expect(before.page.gaps).toEqual([{ firstSeq: 1, lastSeq: 1, reason: 'expired' }])
    expect(before.lock).toEqual(lock)
    expect(before.account!.lastActiveMs).toBe(90_000)
    const rows = await rowCounts(s)
    const others = await readsOf(s, bystander.address, 1)

    expect(await s.rebindAddress(from, 1, to)).toBe('moved')

    // Everything reads the same under the new address, on either node; nothing under the old one.
    const moved = { ...before, account: { ...before.account!, address: to }, listed: [hex(to)] }
    expect(await readsOf(s, to, 1)).toEqual(moved)
    expect(await readsOf(p, to, 1)).toEqual(moved)
    expect(await readsOf(s, from, 1)).toEqual(nothingAt)
    expect(await readsOf(p, from, 1)).toEqual(nothingAt)
    expect(await s.accountCount()).toBe(2)
    expect(await rowCounts(s)).toEqual(rows)
    expect(await readsOf(s, bystander.address, 1)).toEqual(others)
    expect(await s.takePrekeyBundle(from)).toBeNull()
    expect(await enqueue(s, from)).toEqual({ status: 'not_found' })
    expect(await s.ack(from, 1, [2, 3, 4])).toBe(0)
    expect(await s.setDeliveryVerifier(from, 1, bytes(32))).toBe(false)
    expect(await s.setRegistrationLock(from, 1, lock)).toBe(false)
    // Every prekey moved whole, in order: both one-time pairs, then the last-resort KEM prekey.
    const identity = {
      address: to,
      deviceId: 1,
      identityKey: input.identityKey,
      signedPrekey: more.signedPrekey,
    }
    expect(await p.takePrekeyBundle(to)).toEqual({
      ...identity,
      oneTimePrekey: input.oneTimePrekeys[0],
      kemPrekey: input.oneTimeKemPrekeys[0],
      kemPrekeyIsLastResort: false,
    })
    expect(await s.takePrekeyBundle(to)).toEqual({
      ...identity,
      oneTimePrekey: more.oneTimePrekeys[0],
      kemPrekey: more.oneTimeKemPrekeys[0],
      kemPrekeyIsLastResort: false,
    })
    expect(await p.takePrekeyBundle(to)).toEqual({
      ...identity,
      kemPrekey: more.lastResortKemPrekey,
      kemPrekeyIsLastResort: true,
    })
    // The mailbox goes on where it was: the next seq, old message ids still idempotent, acks and limits exact.
    expect(await enqueue(p, to, 1, { size: 7 })).toEqual({ status: 'stored', seq: 5 })
    expect(await enqueue(s, to, 1, { id: ids[2]! })).toEqual({ status: 'duplicate', seq: 3 })
    expect(await enqueue(s, to, 1, { max: 4 })).toEqual({ status: 'full', limit: 'messages' })
    expect(await p.ack(to, 1, [2, 4])).toBe(2)
    expect(await h.mailbox(s, to)).toEqual({ count: 2, bytes: 207 })
    expect((await s.fetchMailbox(to, 1, 0, 10)).entries.map((e) => e.seq)).toEqual([3, 5])
    // The account's device stays the one that may change it, now at its new address.
    const verifier = bytes(32)
    expect(await p.setDeliveryVerifier(to, 1, verifier)).toBe(true)
    expect(hex((await s.getAccount(to))!.deliveryVerifier)).toBe(hex(verifier))
    // And erasing it at its new address takes everything it brought.
    expect(await s.deleteAccount(to)).toBe(true)
    expect(await readsOf(p, to, 1)).toEqual(nothingAt)
    await s.deleteAccount(bystander.address)
    for (const table of accountTables) expect(await h.rows(s, table), table).toBe(0)
  })

  it('rebinds a large mailbox: every entry, whole and in order, beyond any one batch of rows or bytes', async () => {
    const s = await open()
    const { address: from } = await register(s)
    const to = bytes(32)
    const sent: { seq: number; messageId: Uint8Array; envelope: Uint8Array; receivedAtMs: number }[] = []
    // 460 messages: 440 small ones, and 20 of 256 KiB (5 MiB) among them.
    for (let i = 0; i < 460; i++) {
      const entry = {
        seq: i + 1,
        messageId: bytes(16),
        envelope: bytes(i % 23 === 0 ? 256 << 10 : 40),
        receivedAtMs: 1000 + i,
      }
      sent.push(entry)
      const put = await s.enqueue({
        address: from,
        deviceId: 1,
        ...entry,
        maxMessages: 1000,
        maxBytes: 1 << 30,
      })
      expect(put).toEqual({ status: 'stored', seq: entry.seq })
    }
    const held = await h.mailbox(s, from)
    expect(await s.rebindAddress(from, 1, to)).toBe('moved')
    const page = await s.fetchMailbox(to, 1, 0, 1000)
    expect(page.entries.length).toBe(sent.length)
    expect(page.entries.map((e) => [e.seq, hex(e.messageId), hex(e.envelope), e.receivedAtMs])).toEqual(
      sent.map((e) => [e.seq, hex(e.messageId), hex(e.envelope), e.receivedAtMs]),
    )
    expect(page.headSeq).toBe(460)
    expect(await h.mailbox(s, to)).toEqual(held)
    expect(await h.rows(s, 'mailbox')).toBe(460)
    expect(await s.fetchMailbox(from, 1, 0, 10)).toEqual({ entries: [], gaps: [], headSeq: 0 })
  })

  it('refuses a rebind from another device or an unknown address (not_found), or onto an account (taken), changing nothing', async () => {
    const s = await open()
    const a = await register(s, bytes(32), { numberCommitment: bytes(32) })
    const b = await register(s)
    for (const address of [a.address, a.address, b.address]) await enqueue(s, address)
    expect(
      await s.setRegistrationLock(a.address, 1, {
        salt: bytes(16),
        logN: 15,
        verifier: bytes(32),
        setAtMs: 1,
      }),
    ).toBe(true)
    const before = [await readsOf(s, a.address, 1), await readsOf(s, b.address, 1)]
    const rows = await rowCounts(s)
    const free = bytes(32)
    expect(await s.rebindAddress(a.address, 2, free)).toBe('not_found')
    expect(await s.rebindAddress(a.address, 0, free)).toBe('not_found')
    expect(await s.rebindAddress(free, 1, bytes(32))).toBe('not_found')
    expect(await s.rebindAddress(free, 1, a.address)).toBe('not_found')
    expect(await s.rebindAddress(a.address, 1, b.address)).toBe('taken')
    expect(await s.rebindAddress(b.address, 1, a.address)).toBe('taken')
    // Onto itself: the address is held, by the account itself.
    expect(await s.rebindAddress(a.address, 1, a.address)).toBe('taken')
    expect([await readsOf(s, a.address, 1), await readsOf(s, b.address, 1)]).toEqual(before)
    expect(await readsOf(s, free, 1)).toEqual(nothingAt)
    expect(await rowCounts(s)).toEqual(rows)
    expect(await s.accountCount()).toBe(2)
    // A replaced device can no longer move the account; the device that replaced it can, and again after that.
    await register(s, a.address)
    expect(await s.rebindAddress(a.address, 1, free)).toBe('not_found')
    expect(await s.rebindAddress(a.address, 2, free)).toBe('moved')
    const third = bytes(32)
    expect(await s.rebindAddress(free, 2, third)).toBe('moved')
    expect((await s.getAccount(third))!.deviceId).toBe(2)
    expect(await s.getAccount(free)).toBeNull()
    expect(await s.getAccount(a.address)).toBeNull()
    expect(await s.accountCount()).toBe(2)
  })

  it('two nodes: concurrent sends to one mailbox get distinct, gap-free sequence numbers', async () => {
    const s = await open()
    const p = await h.peer(s)
    const { address } = await register(s)
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => enqueue(i % 2 ? s : p, address)))
    expect(results.map(seqOf).sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1))
    expect(await p.mailboxHead(address, 1)).toBe(60)
    // The mailbox count and bytes stayed exact: a limit of 61 takes one more, then refuses.
    expect(await h.mailbox(p, address)).toEqual({ count: 60, bytes: 1200 })
    expect(await enqueue(p, address, 1, { max: 61 })).toEqual({ status: 'stored', seq: 61 })
    expect(await enqueue(s, address, 1, { max: 61 })).toEqual({ status: 'full', limit: 'messages' })
  })

  it('two nodes: the same message sent through both is stored once', async () => {
    const s = await open()
    const p = await h.peer(s)
    const { address } = await register(s)
    const id = bytes(16)
    const results = await Promise.all([enqueue(s, address, 1, { id }), enqueue(p, address, 1, { id })])
    expect(results.map((r) => r.status).sort()).toEqual(['duplicate', 'stored'])
    expect(results.map(seqOf)).toEqual([1, 1])
  })

  it('two nodes: concurrent sends to one mailbox fill it exactly to its limits and refuse the rest', async () => {
    const s = await open()
    const p = await h.peer(s)
    const { address } = await register(s)
    const other = await register(s)
    // By count: 40 sends, room for 10.
    const byCount = await Promise.all(
      Array.from({ length: 40 }, (_, i) => enqueue(i % 2 ? s : p, address, 1, { max: 10 })),
    )
    expect(byCount.filter((r) => r.status === 'stored')).toHaveLength(10)
    expect(byCount.filter((r) => r.status === 'full')).toHaveLength(30)
    const page = await s.fetchMailbox(address, 1, 0, 100)
    expect(page.entries.map((e) => e.seq)).toEqual(Array.from({ length: 10 }, (_, i) => 1 + i))
    expect(page.gaps).toEqual([])
    // By bytes: 40 sends of 100 bytes, room for 1,000.
    const byBytes = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        enqueue(i % 2 ? s : p, other.address, 1, { size: 100, maxBytes: 1000 }),
      ),
    )
    expect(byBytes.filter((r) => r.status === 'stored')).toHaveLength(10)
    expect(byBytes.filter((r) => r.status === 'full' && r.limit === 'bytes')).toHaveLength(30)
    expect(await h.mailbox(p, other.address)).toEqual({ count: 10, bytes: 1000 })
    expect(await h.mailbox(s, address)).toEqual({ count: 10, bytes: 200 })
    expect(await h.rows(s, 'mailbox')).toBe(20)
    expect(await h.rows(s, 'mailbox_gaps')).toBe(0)
  })

  it('two nodes: no one-time prekey is handed out twice', async () => {
    const s = await open()
    const p = await h.peer(s)
    const oneTimePrekeys = Array.from({ length: 20 }, (_, i) => ({ keyId: i + 1, publicKey: bytes(32) }))
    const oneTimeKemPrekeys = Array.from({ length: 10 }, (_, i) => key(100 + i, 1184))
    const { address } = await register(s, bytes(32), { oneTimePrekeys, oneTimeKemPrekeys })
    const bundles = await Promise.all(
      Array.from({ length: 30 }, (_, i) => (i % 2 ? s : p).takePrekeyBundle(address)),
    )
    const otpk = bundles.map((b) => b!.oneTimePrekey?.keyId).filter((k) => k !== undefined)
    expect(otpk.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    const kems = bundles.filter((b) => !b!.kemPrekeyIsLastResort).map((b) => b!.kemPrekey.keyId)
    expect(new Set(kems).size).toBe(10)
    expect(bundles.filter((b) => b!.kemPrekeyIsLastResort)).toHaveLength(20)
  })

  it('two nodes: a concurrent TTL sweep expires each message once and records each gap once', async () => {
    const s = await open()
    const p = await h.peer(s)
    const { address } = await register(s)
    const other = await register(s)
    const now = Date.now()
    for (let i = 0; i < 30; i++) await enqueue(s, i % 3 ? address : other.address, 1, { at: now - 10_000 })
    const [a, b] = await Promise.all([s.expire(now - 5000), p.expire(now - 5000)])
    expect(a + b).toBe(30)
    expect((await p.fetchMailbox(address, 1, 0, 100)).gaps).toEqual([
      { firstSeq: 1, lastSeq: 20, reason: 'expired' },
    ])
    expect((await s.fetchMailbox(other.address, 1, 0, 100)).gaps).toEqual([
      { firstSeq: 1, lastSeq: 10, reason: 'expired' },
    ])
    expect(await h.mailbox(s, address)).toEqual({ count: 0, bytes: 0 })
    expect(await h.mailbox(p, other.address)).toEqual({ count: 0, bytes: 0 })
    expect(await enqueue(p, address, 1, { max: 1 })).toEqual({ status: 'stored', seq: 21 })
  })

  it('two nodes: concurrent first activations of one address end as two activations in sequence', async () => {
    const s = await open()
    const p = await h.peer(s)
    const address = bytes(32)
    const [a, b] = await Promise.all([register(s, address), register(p, address)])
    expect([a.deviceId, b.deviceId].sort()).toEqual([1, 2])
    expect([a.replacedDevice, b.replacedDevice].sort()).toEqual([false, true])
    expect((await s.getAccount(address))!.deviceId).toBe(2)
    expect(await h.rows(s, 'one_time_prekeys')).toBe(2)
  })

  it('two nodes: a delivery verifier set on one node is seen by the other at once', async () => {
    const s = await open()
    const p = await h.peer(s)
    const { address } = await register(s)
    const v = bytes(32)
    expect(await p.setDeliveryVerifier(address, 1, v)).toBe(true)
    expect(hex((await s.getAccount(address))!.deliveryVerifier)).toBe(hex(v))
    expect(await s.setDeliveryVerifier(address, 1, EMPTY)).toBe(true)
    expect((await p.getAccount(address))!.deliveryVerifier).toHaveLength(0)
  })

  it('two nodes: mail sent while the account moves is moved with it or refused, never lost or left behind', async () => {
    const s = await open()
    const p = await h.peer(s)
    const { address: from } = await register(s)
    const to = bytes(32)
    for (let i = 0; i < 20; i++) await enqueue(s, from)
    const send = (i: number) => enqueue(i % 2 ? s : p, from, 1, { max: 1000 })
    const early = Array.from({ length: 20 }, (_, i) => send(i))
    const move = p.rebindAddress(from, 1, to)
    const late = Array.from({ length: 20 }, (_, i) => send(i))
    const [moved, ...results] = await Promise.all([move, ...early, ...late])
    expect(moved).toBe('moved')
    expect(results.filter((r) => r.status !== 'stored' && r.status !== 'not_found')).toEqual([])
    const stored = results.filter((r) => r.status === 'stored').length
    // Every message stored is under the new address, numbered on from the moved mail without a hole.
    const page = await s.fetchMailbox(to, 1, 0, 1000)
    expect(page.entries.map((e) => e.seq)).toEqual(Array.from({ length: 20 + stored }, (_, i) => i + 1))
    expect(page.gaps).toEqual([])
    expect(await h.mailbox(p, to)).toEqual({ count: 20 + stored, bytes: 20 * (20 + stored) })
    expect(await h.rows(s, 'mailbox')).toBe(20 + stored)
    expect(await p.fetchMailbox(from, 1, 0, 10)).toEqual({ entries: [], gaps: [], headSeq: 0 })
    expect(await enqueue(s, from)).toEqual({ status: 'not_found' })
    expect(await enqueue(s, to)).toEqual({ status: 'stored', seq: 21 + stored })
  })

  it('two nodes: erasure on one node is seen by the other at once', async () => {
    const s = await open()
    const p = await h.peer(s)
    const { address } = await register(s)
    await enqueue(s, address)
    expect(await p.deleteAccount(address)).toBe(true)
    expect(await s.getAccount(address)).toBeNull()
    expect(await enqueue(s, address)).toEqual({ status: 'not_found' })
    expect(await s.takePrekeyBundle(address)).toBeNull()
    expect(await s.fetchMailbox(address, 1, 0, 10)).toEqual({ entries: [], gaps: [], headSeq: 0 })
  })
}
