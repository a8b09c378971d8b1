import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { SCHEMA_VERSION, SqliteStore } from '../src/SqliteStore.js'
import { bytes, enqueue, hex, key, register } from './conformance/store.js'
import { tempDir } from './helpers.js'

describe('SqliteStore', () => {
  const stores: SqliteStore[] = []
  const open = (path = ':memory:') => {
    const s = new SqliteStore(path)
    stores.push(s)
    return s
  }
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close()
  })

  it('migrates a new file to the latest schema, in WAL mode, and reopens it without re-running migrations', async () => {
    const path = join(tempDir(), 'relay.db')
    const s = open(path)
    expect(s.schemaVersion).toBe(SCHEMA_VERSION)
    await s.close()
    const db = new Database(path)
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
    expect(db.prepare('SELECT count(*) AS n FROM schema_migrations').get()).toEqual({ n: SCHEMA_VERSION })
    db.close()
    expect(open(path).schemaVersion).toBe(SCHEMA_VERSION)
  })

  it('refuses a database written by a newer schema', async () => {
    const path = join(tempDir(), 'relay.db')
    await open(path).close()
    const db = new Database(path)
    db.prepare('INSERT INTO schema_migrations VALUES (?, 0)').run(SCHEMA_VERSION + 1)
    db.close()
    expect(() => new SqliteStore(path)).toThrow(/newer/)
  })

  it('has no sender column in the mailbox', async () => {
    const path = join(tempDir(), 'relay.db')
    await open(path).close()
    const db = new Database(path)
    const cols = (db.prepare('PRAGMA table_info(mailbox)').all() as { name: string }[]).map((c) => c.name)
    db.close()
    expect(cols.sort()).toEqual(['address', 'device_id', 'envelope', 'message_id', 'received_at_ms', 'seq'])
  })

  it('registers a device, and a re-activation replaces it with the next device id and erases its mail', async () => {
    const s = open()
    const a = await register(s)
    expect(a).toMatchObject({ deviceId: 1, replacedDevice: false })
    await enqueue(s, a.address)
    const b = await register(s, a.address)
    expect(b).toMatchObject({ deviceId: 2, replacedDevice: true })
    expect(await s.mailboxHead(a.address, 2)).toBe(0)
    expect((await s.fetchMailbox(a.address, 2, 0, 10)).entries).toEqual([])
    expect((await s.getAccount(a.address))!.deviceId).toBe(2)
  })

  it('finds addresses by bit prefix, including non-byte-aligned prefixes', async () => {
    const s = open()
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
  })

  it('hands out one-time prekeys once each, lowest id first, then the last-resort KEM prekey', async () => {
    const s = open()
    const { address } = await register(s)
    const b1 = (await s.takePrekeyBundle(address))!
    expect(b1.oneTimePrekey!.keyId).toBe(1)
    expect(b1.kemPrekey.keyId).toBe(5)
    expect(b1.kemPrekeyIsLastResort).toBe(false)
    const b2 = (await s.takePrekeyBundle(address))!
    expect(b2.oneTimePrekey!.keyId).toBe(2)
    expect(b2.kemPrekeyIsLastResort).toBe(true)
    const b3 = (await s.takePrekeyBundle(address))!
    expect(b3.oneTimePrekey).toBeUndefined()
    expect(await s.takePrekeyBundle(bytes(32))).toBeNull()
    expect(await s.countPrekeys(address, 1)).toEqual({ oneTimeCount: 0, kemOneTimeCount: 0 })
  })

  it('adds prekeys, replaces the signed prekey, and refuses to store beyond the limit', async () => {
    const s = open()
    const { address } = await register(s)
    const spk = key(9)
    const r = await s.putPrekeys(
      address,
      1,
      { signedPrekey: spk, oneTimePrekeys: [{ keyId: 3, publicKey: bytes(32) }], oneTimeKemPrekeys: [] },
      10,
    )
    expect(r).toEqual({ status: 'stored', counts: { oneTimeCount: 3, kemOneTimeCount: 1 } })
    expect((await s.takePrekeyBundle(address))!.signedPrekey.keyId).toBe(9)
    const many = Array.from({ length: 9 }, (_, i) => ({ keyId: 100 + i, publicKey: bytes(32) }))
    expect((await s.putPrekeys(address, 1, { oneTimePrekeys: many, oneTimeKemPrekeys: [] }, 10)).status).toBe(
      'over_limit',
    )
    expect((await s.putPrekeys(address, 7, { oneTimePrekeys: [], oneTimeKemPrekeys: [] }, 10)).status).toBe(
      'not_found',
    )
  })

  it('assigns increasing sequence numbers, is idempotent by message id, and refuses stale devices', async () => {
    const s = open()
    const { address } = await register(s)
    const a = await enqueue(s, address)
    const b = await enqueue(s, address)
    expect([a, b].map((r) => (r.status === 'stored' ? r.seq : -1))).toEqual([1, 2])
    const id = bytes(16)
    const input = {
      address,
      deviceId: 1,
      messageId: id,
      envelope: bytes(4),
      receivedAtMs: 1,
      maxMessages: 100,
    }
    expect(await s.enqueue(input)).toMatchObject({ status: 'stored', seq: 3 })
    expect(await s.enqueue(input)).toEqual({ status: 'duplicate', seq: 3 })
    expect(await s.enqueue({ ...input, deviceId: 2 })).toEqual({ status: 'stale_device', currentDeviceId: 1 })
    expect(await s.enqueue({ ...input, address: bytes(32) })).toEqual({ status: 'not_found' })
    expect(await s.mailboxHead(address, 1)).toBe(3)
  })

  it('deletes only acked entries of the owner, and pages after a cursor', async () => {
    const s = open()
    const { address } = await register(s)
    const other = (await register(s)).address
    for (let i = 0; i < 5; i++) await enqueue(s, address)
    expect(await s.ack(other, 1, [1, 2, 3])).toBe(0)
    expect(await s.ack(address, 2, [1])).toBe(0)
    expect(await s.ack(address, 1, [2, 2, 4, 99])).toBe(2)
    const page = await s.fetchMailbox(address, 1, 0, 2)
    expect(page.entries.map((e) => e.seq)).toEqual([1, 3])
    expect((await s.fetchMailbox(address, 1, 3, 10)).entries.map((e) => e.seq)).toEqual([5])
    expect(page.headSeq).toBe(5)
  })

  it('evicts the oldest beyond the mailbox limit and records the range as one growing gap', async () => {
    const s = open()
    const { address } = await register(s)
    for (let i = 0; i < 6; i++) await enqueue(s, address, 1, { max: 3 })
    const page = await s.fetchMailbox(address, 1, 0, 10)
    expect(page.entries.map((e) => e.seq)).toEqual([4, 5, 6])
    expect(page.gaps).toEqual([{ firstSeq: 1, lastSeq: 3, reason: 'evicted' }])
    // A cursor inside the gap clips it.
    expect((await s.fetchMailbox(address, 1, 2, 10)).gaps).toEqual([
      { firstSeq: 3, lastSeq: 3, reason: 'evicted' },
    ])
    expect((await s.fetchMailbox(address, 1, 3, 10)).gaps).toEqual([])
  })

  it('expires old mail into gaps of consecutive runs and keeps newer mail', async () => {
    const s = open()
    const { address } = await register(s)
    const now = Date.now()
    for (let i = 0; i < 4; i++) await enqueue(s, address, 1, { at: now - 10_000 })
    await enqueue(s, address, 1, { at: now })
    await s.ack(address, 1, [2])
    expect(await s.expire(now - 5000)).toBe(3)
    const page = await s.fetchMailbox(address, 1, 0, 10)
    expect(page.entries.map((e) => e.seq)).toEqual([5])
    expect(page.gaps).toEqual([
      { firstSeq: 1, lastSeq: 1, reason: 'expired' },
      { firstSeq: 3, lastSeq: 4, reason: 'expired' },
    ])
    // New mail still fits the mailbox count after expiry.
    expect(await enqueue(s, address, 1, { max: 2 })).toMatchObject({ status: 'stored', evicted: 0 })
  })

  it('erases every row of an account on delete', async () => {
    const path = join(tempDir(), 'relay.db')
    const s = open(path)
    const { address } = await register(s)
    for (let i = 0; i < 3; i++) await enqueue(s, address, 1, { max: 2 })
    expect(await s.deleteAccount(address)).toBe(true)
    expect(await s.deleteAccount(address)).toBe(false)
    await s.close()
    const db = new Database(path)
    for (const table of ['accounts', 'one_time_prekeys', 'kem_prekeys', 'mailbox', 'mailbox_gaps']) {
      expect(db.prepare(`SELECT count(*) AS n FROM ${table}`).get()).toEqual({ n: 0 })
    }
    db.close()
  })
})
