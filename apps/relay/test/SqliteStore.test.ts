// Unit tests of what is SQLite's own (migrations, schema version, erasure of every table, device replacement).
// Behaviour every store shares (prefixes, prekey hand-out, acks, eviction, expiry) runs against SQLite too, in
// conformance/store.test.ts.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { SCHEMA_VERSION, SqliteStore } from '../src/SqliteStore.js'
import { bytes, enqueue, key, register } from './conformance/store.js'
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
