// The stores' operator holds (bans, revoked devices, the actions relays poll), the operator's account listing,
// and the SQLite → PostgreSQL snapshot of `parley-relay migrate`: on SQLite always, on PostgreSQL when it is up
// (a fresh schema per store, dropped afterwards).
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { PostgresStore } from '../src/PostgresStore.js'
import { SqliteStore } from '../src/SqliteStore.js'
import type { Store } from '../src/Store.js'
import { tempDir } from '../testing/index.js'
import { describeWith, PG_URL, probePostgres, uniqueName } from './conformance/services.js'
import { bytes, enqueue, hex, register, registration } from './conformance/store.js'

const absent = await probePostgres()
const DAY = 86_400_000

function holdsSuite(open: () => Promise<Store>) {
  it('bans an address with or without an account, across erasure and re-activation, until unbanned', async () => {
    const s = await open()
    const { address } = await register(s)
    const nobody = bytes(32)
    expect(await s.operatorHold(address, 0)).toBeNull()
    expect(await s.setBanned(address, true, 5000)).toBe(true)
    expect(await s.setBanned(address, true, 5001)).toBe(false)
    expect(await s.setBanned(nobody, true, 5002)).toBe(true)
    expect(await s.operatorHold(address, 0)).toBe('banned')
    expect(await s.operatorHold(address, 1)).toBe('banned')
    expect(await s.operatorHold(nobody, 0)).toBe('banned')
    expect((await s.accountSummary(address))!.banned).toBe(true)
    await s.deleteAccount(address)
    await register(s, address)
    expect(await s.operatorHold(address, 1)).toBe('banned')
    expect(await s.setBanned(address, false, 6000)).toBe(true)
    expect(await s.setBanned(address, false, 6001)).toBe(false)
    expect(await s.operatorHold(address, 1)).toBeNull()
    expect(await s.operatorHold(nobody, 0)).toBe('banned')
  })

  it('revokes the registered device only; a re-activation (the next device) is not revoked', async () => {
    const s = await open()
    const { address } = await register(s)
    expect(await s.revokeDevice(address, 2, 5000)).toBe(false)
    expect(await s.revokeDevice(bytes(32), 1, 5000)).toBe(false)
    expect(await s.operatorHold(address, 1)).toBeNull()
    expect(await s.revokeDevice(address, 1, 5000)).toBe(true)
    expect(await s.operatorHold(address, 1)).toBe('revoked')
    expect(await s.operatorHold(address, 0)).toBeNull()
    expect((await s.accountSummary(address))!).toMatchObject({ deviceId: 1, revoked: true, banned: false })
    await register(s, address)
    expect(await s.operatorHold(address, 2)).toBeNull()
    expect((await s.accountSummary(address))!).toMatchObject({ deviceId: 2, revoked: false })
  })

  it('records bans and revocations as actions in order, after a cursor and a time, and drops them after a day', async () => {
    const s = await open()
    const a = (await register(s)).address
    const b = (await register(s)).address
    const t = Date.now()
    await s.setBanned(a, true, t)
    await s.revokeDevice(b, 1, t + 1)
    await s.setBanned(a, false, t + 2) // an unban closes nothing: no action
    const all = await s.operatorActions(0, 0, 10)
    expect(all.map((x) => [hex(x.address), x.deviceId, x.atMs])).toEqual([
      [hex(a), 0, t],
      [hex(b), 1, t + 1],
    ])
    expect(all[1]!.seq).toBeGreaterThan(all[0]!.seq)
    expect((await s.operatorActions(all[0]!.seq, 0, 10)).map((x) => x.deviceId)).toEqual([1])
    expect(await s.operatorActions(0, t + 1, 10)).toHaveLength(1)
    expect(await s.operatorActions(0, 0, 1)).toHaveLength(1)
    // A day later, a new action drops the old ones.
    await s.setBanned(bytes(32), true, t + DAY + 10)
    expect((await s.operatorActions(0, 0, 10)).map((x) => x.atMs)).toEqual([t + DAY + 10])
  })

  it('lists accounts in address order, page by page, with their mailbox depth', async () => {
    const s = await open()
    const addresses = [bytes(32), bytes(32), bytes(32)]
    for (const address of addresses) await register(s, address)
    await enqueue(s, addresses[1]!, 1, { size: 30 })
    await enqueue(s, addresses[1]!, 1, { size: 12 })
    const sorted = addresses.map(hex).sort()
    const first = await s.listAccounts(null, 2)
    expect(first.map((x) => hex(x.address))).toEqual(sorted.slice(0, 2))
    const rest = await s.listAccounts(first[1]!.address, 2)
    expect(rest.map((x) => hex(x.address))).toEqual(sorted.slice(2))
    expect(await s.accountSummary(addresses[1]!)).toMatchObject({
      deviceId: 1,
      mailboxMessages: 2,
      mailboxBytes: 42,
      createdAtMs: 1000,
      lastActiveMs: 1000,
      banned: false,
      revoked: false,
    })
    expect(await s.accountSummary(bytes(32))).toBeNull()
  })
}

const sqliteStores: Store[] = []
describe('operator holds: SqliteStore', () => {
  afterAll(async () => {
    for (const s of sqliteStores.splice(0)) await s.close()
  })
  holdsSuite(async () => {
    const s = new SqliteStore(join(tempDir(), 'relay.db'))
    sqliteStores.push(s)
    return s
  })
})

describeWith('operator holds: PostgresStore', [absent], () => {
  const opened: PostgresStore[] = []
  const openPg = async () => {
    const s = await PostgresStore.open({
      url: `${PG_URL}?schema=${uniqueName('ops')}`,
      maxConnections: 4,
      storeKey: new Uint8Array(randomBytes(32)),
    })
    opened.push(s)
    return s
  }
  afterAll(async () => {
    for (const s of opened.splice(0)) await s.dropSchemaAndClose()
  })
  holdsSuite(openPg)

  it('imports a SQLite snapshot: same accounts, keys, mail, gaps, locks, retained mail and holds; refuses a second', async () => {
    const path = join(tempDir(), 'relay.db')
    const src = new SqliteStore(path)
    const address = bytes(32)
    const [oldKey, newKey] = [bytes(32), bytes(32)]
    // A device with mail, replaced by another: the old mail is retained for its identity key.
    await src.registerDevice({ ...registration(address), identityKey: oldKey })
    await enqueue(src, address, 1)
    await src.registerDevice({ ...registration(address), identityKey: newKey, nowMs: 2000 })
    await enqueue(src, address, 2, { at: 10 }) // expires below, leaving a gap
    await src.expire(11)
    const kept = await enqueue(src, address, 2, { size: 33 })
    const lock = { salt: bytes(16), logN: 14, verifier: bytes(32), setAtMs: 3000 }
    await src.setRegistrationLock(address, 2, lock)
    await src.setDeliveryVerifier(address, 2, bytes(32))
    const other = (await register(src)).address
    await src.revokeDevice(other, 1, 4000)
    const banned = bytes(32)
    await src.setBanned(banned, true, 4000)
    const expected = {
      account: await src.getAccount(address),
      page: await src.fetchMailbox(address, 2, 0, 100),
      lock: await src.getRegistrationLock(address),
      counts: await src.countPrekeys(address, 2),
      summary: await src.accountSummary(address),
    }
    await src.close()

    const target = await openPg()
    const snapshot = SqliteStore.openSnapshot(path)
    try {
      expect(await target.importSnapshot(snapshot)).toEqual({ accounts: 2, messages: 2 })
      await expect(target.importSnapshot(snapshot)).rejects.toThrow(/not empty/)
    } finally {
      snapshot.close()
    }
    expect(await target.getAccount(address)).toEqual(expected.account)
    expect(await target.fetchMailbox(address, 2, 0, 100)).toEqual(expected.page)
    expect(expected.page.gaps).toHaveLength(1)
    expect(expected.page.entries.map((e) => e.seq)).toEqual([kept.status === 'stored' ? kept.seq : -1])
    expect(await target.getRegistrationLock(address)).toEqual(expected.lock)
    expect(await target.countPrekeys(address, 2)).toEqual(expected.counts)
    expect(await target.accountSummary(address)).toEqual(expected.summary)
    expect(await target.operatorHold(other, 1)).toBe('revoked')
    expect(await target.operatorHold(banned, 0)).toBe('banned')
    // The retained mail: restored when the old identity key activates again, with its seq.
    const back = await target.registerDevice({ ...registration(address), identityKey: oldKey, nowMs: 5000 })
    expect(back).toMatchObject({ deviceId: 3, restoredMessages: 1 })
    expect((await target.fetchMailbox(address, 3, 0, 10)).entries.map((e) => e.seq)).toEqual([1])
  })
})
