// PostgresStore's linked devices beyond the shared conformance suite (conformance/storeDevices.ts): what
// `importSnapshot` (`parley-relay migrate`) writes of an account's linked devices, device list and highest device
// id when the snapshot carries them — sealed as the store writes them, and read back through the port — and of
// its address forwards, copied as they are.

import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import { afterAll, afterEach, expect, it } from 'vitest'
import { PostgresStore } from '../src/PostgresStore.js'
import { SqliteStore } from '../src/SqliteStore.js'
import type { AccountSnapshot, StoreSnapshot } from '../src/store/snapshot.js'
import { tempDir } from '../testing/index.js'
import { describeWith, PG_URL, probePostgres, uniqueName } from './conformance/services.js'
import { bytes, EMPTY, hex, key, register } from './conformance/store.js'

const pgAbsent = await probePostgres()

describeWith('PostgresStore linked devices', [pgAbsent], () => {
  const schemas: string[] = []
  const opened: PostgresStore[] = []
  const admin = async <T extends pg.QueryResultRow>(sql: string, params: unknown[] = []) => {
    const client = new pg.Client({ connectionString: PG_URL })
    await client.connect()
    try {
      return (await client.query<T>(sql, params)).rows
    } finally {
      await client.end()
    }
  }
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close()
  })
  afterAll(async () => {
    for (const schema of schemas) await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  })

  it('imports a snapshot’s linked devices, their prekeys and mail, the device list and the highest id, sealed', async () => {
    const schema = uniqueName('devices')
    schemas.push(schema)
    const s = await PostgresStore.open({
      url: `${PG_URL}?schema=${schema}`,
      maxConnections: 4,
      storeKey: bytes(32),
    })
    opened.push(s)
    const address = bytes(32)
    const d2 = {
      deviceId: 2,
      deviceKey: bytes(32),
      createdAtMs: 1500,
      signedPrekey: key(7),
      lastResortKemPrekey: key(8, 1184),
      mailboxHeadSeq: 4,
      mailboxCount: 1,
      mailboxBytes: 30,
      oneTimePrekeys: [{ keyId: 11, publicKey: bytes(32) }],
      oneTimeKemPrekeys: [key(21, 1184)],
    }
    // Linked before its first prekey upload: no bundle yet.
    const d5 = {
      ...d2,
      deviceId: 5,
      deviceKey: bytes(32),
      signedPrekey: null,
      lastResortKemPrekey: null,
      mailboxHeadSeq: 0,
      mailboxCount: 0,
      mailboxBytes: 0,
      oneTimePrekeys: [],
      oneTimeKemPrekeys: [],
    }
    const envelope = bytes(30)
    const list = { version: 3, list: bytes(150) }
    const account: AccountSnapshot = {
      address,
      deviceId: 1,
      identityKey: bytes(32),
      signedPrekey: key(1),
      lastResortKemPrekey: key(1, 1184),
      numberCommitment: EMPTY,
      deliveryVerifier: EMPTY,
      createdAtMs: 1000,
      lastActiveMs: null,
      mailboxHeadSeq: 0,
      mailboxCount: 0,
      mailboxBytes: 0,
      oneTimePrekeys: [],
      oneTimeKemPrekeys: [],
      *mail() {
        yield [{ deviceId: 2, seq: 4, messageId: bytes(16), envelope, receivedAtMs: Date.now() }]
      },
      gaps: [{ deviceId: 2, firstSeq: 1, lastSeq: 3, reason: 'expired', recordedAtMs: Date.now() }],
      lock: null,
      retained: null,
      linked: [d2, d5],
      deviceList: list,
      // Device 6 was linked once and removed.
      highestDeviceId: 6,
    }
    const snapshot: StoreSnapshot = {
      accounts: () => [account],
      bans: [],
      revoked: [],
      close() {},
    }
    expect(await s.importSnapshot(snapshot)).toEqual({ accounts: 1, messages: 1 })

    expect(await s.deviceSet(address)).toEqual({
      primaryDeviceId: 1,
      linkedDeviceIds: [2, 5],
      listVersion: 3,
    })
    expect(await s.getDeviceList(address)).toEqual(list)
    expect(await s.linkedDevices(address)).toEqual([
      { deviceId: 2, deviceKey: d2.deviceKey, createdAtMs: 1500 },
      { deviceId: 5, deviceKey: d5.deviceKey, createdAtMs: 1500 },
    ])
    const page = await s.fetchMailbox(address, 2, 0, 10)
    expect([page.headSeq, page.entries.map((e) => hex(e.envelope)), page.gaps]).toEqual([
      4,
      [hex(envelope)],
      [{ firstSeq: 1, lastSeq: 3, reason: 'expired' }],
    ])
    expect(await s.countPrekeys(address, 2)).toEqual({ oneTimeCount: 1, kemOneTimeCount: 1 })
    expect(await s.takePrekeyBundle(address, 2)).toEqual({
      address,
      deviceId: 2,
      identityKey: d2.deviceKey,
      signedPrekey: d2.signedPrekey,
      oneTimePrekey: d2.oneTimePrekeys[0],
      kemPrekey: d2.oneTimeKemPrekeys[0],
      kemPrekeyIsLastResort: false,
    })
    expect(await s.takePrekeyBundle(address, 5)).toBeNull()
    // The mailbox goes on from its head and counters; the highest id (6) holds.
    expect(
      await s.enqueue({
        address,
        deviceId: 2,
        messageId: bytes(16),
        envelope: bytes(10),
        receivedAtMs: Date.now(),
        maxMessages: 2,
        maxBytes: 1 << 20,
      }),
    ).toEqual({ status: 'stored', seq: 5 })
    const keep = [
      { deviceId: 2, deviceKey: d2.deviceKey },
      { deviceId: 5, deviceKey: d5.deviceKey },
    ]
    const put = (deviceId: number) =>
      s.putDeviceList({
        address,
        primaryDeviceId: 1,
        version: 4,
        list: bytes(40),
        linked: [...keep, { deviceId, deviceKey: bytes(32) }],
        maxLinked: 5,
        nowMs: 2000,
      })
    expect(await put(6)).toEqual({ status: 'bad_device_id', deviceId: 6 })
    expect(await put(7)).toEqual({ status: 'stored', added: [7], removed: [] })
    // Nothing of it is in the clear.
    const rows = await admin<{ t: string }>(
      `SELECT t::text AS t FROM ${schema}.linked_devices t UNION ALL SELECT t::text FROM ${schema}.device_lists t
       UNION ALL SELECT t::text FROM ${schema}.linked_one_time_prekeys t
       UNION ALL SELECT t::text FROM ${schema}.linked_kem_prekeys t UNION ALL SELECT t::text FROM ${schema}.mailbox t`,
    )
    const text = rows.map((r) => r.t).join('\n')
    const secrets = [
      d2.deviceKey,
      d5.deviceKey,
      d2.signedPrekey.publicKey,
      d2.lastResortKemPrekey.signature,
      list.list,
    ]
    expect(secrets.filter((v) => text.includes(hex(v.subarray(0, 16))))).toEqual([])
  })

  it('carries what a SQLite relay holds of linked devices through its snapshot (parley-relay migrate)', async () => {
    const path = join(tempDir(), 'relay.db')
    const sqlite = new SqliteStore(path)
    const address = bytes(32)
    await register(sqlite, address)
    const laptop = { deviceId: 2, deviceKey: bytes(32) }
    const list = bytes(120)
    expect(
      await sqlite.putDeviceList({
        address,
        primaryDeviceId: 1,
        version: 9,
        list,
        linked: [laptop],
        maxLinked: 5,
        nowMs: 1,
      }),
    ).toMatchObject({ status: 'stored', added: [2] })
    const upload = {
      signedPrekey: key(3),
      lastResortKemPrekey: key(4, 1184),
      oneTimePrekeys: [{ keyId: 5, publicKey: bytes(32) }],
      oneTimeKemPrekeys: [],
    }
    expect((await sqlite.putPrekeys(address, 2, upload, 100)).status).toBe('stored')
    const envelope = bytes(40)
    const mail = {
      address,
      deviceId: 2,
      messageId: bytes(16),
      envelope,
      receivedAtMs: Date.now(),
      maxMessages: 10,
      maxBytes: 1 << 20,
    }
    expect(await sqlite.enqueue(mail)).toEqual({ status: 'stored', seq: 1 })
    // Device 3 linked, then removed: the highest id used is 3.
    await sqlite.putDeviceList({
      address,
      primaryDeviceId: 1,
      version: 10,
      list,
      linked: [laptop, { deviceId: 3, deviceKey: bytes(32) }],
      maxLinked: 5,
      nowMs: 2,
    })
    await sqlite.putDeviceList({
      address,
      primaryDeviceId: 1,
      version: 11,
      list,
      linked: [laptop],
      maxLinked: 5,
      nowMs: 3,
    })
    await sqlite.close()

    const schema = uniqueName('migrated')
    schemas.push(schema)
    const s = await PostgresStore.open({
      url: `${PG_URL}?schema=${schema}`,
      maxConnections: 4,
      storeKey: bytes(32),
    })
    opened.push(s)
    const snapshot = SqliteStore.openSnapshot(path)
    try {
      expect(await s.importSnapshot(snapshot)).toEqual({ accounts: 1, messages: 1 })
    } finally {
      snapshot.close()
    }
    expect(await s.deviceSet(address)).toEqual({ primaryDeviceId: 1, linkedDeviceIds: [2], listVersion: 11 })
    expect(await s.getDeviceList(address)).toEqual({ version: 11, list })
    expect(await s.getDevice(address, 2)).toEqual({ deviceId: 2, key: laptop.deviceKey, primary: false })
    expect((await s.fetchMailbox(address, 2, 0, 10)).entries.map((e) => hex(e.envelope))).toEqual([
      hex(envelope),
    ])
    expect((await s.takePrekeyBundle(address, 2))?.oneTimePrekey).toEqual(upload.oneTimePrekeys[0])
    const again = (deviceId: number) =>
      s.putDeviceList({
        address,
        primaryDeviceId: 1,
        version: 12,
        list,
        linked: [laptop, { deviceId, deviceKey: bytes(32) }],
        maxLinked: 5,
        nowMs: 4,
      })
    expect(await again(3)).toEqual({ status: 'bad_device_id', deviceId: 3 })
  })

  it('carries a SQLite relay’s address forwards through its snapshot as they are (parley-relay migrate)', async () => {
    const path = join(tempDir(), 'relay.db')
    const sqlite = new SqliteStore(path)
    const [a, b, c] = [bytes(32), bytes(32), bytes(32)]
    await register(sqlite, a)
    expect(await sqlite.rebindAddress(a, 1, b, { forwardUntilMs: 10_000 })).toBe('moved')
    expect(await sqlite.rebindAddress(b, 1, c, { forwardUntilMs: 20_000 })).toBe('moved')
    await sqlite.close()
    const raw = (sql: string) => {
      const db = new Database(path, { readonly: true })
      try {
        return db.prepare(sql).all() as Record<string, unknown>[]
      } finally {
        db.close()
      }
    }
    const before = raw(
      'SELECT old_key, new_key, target, expires_at_ms FROM address_forwards ORDER BY old_key',
    )

    const schema = uniqueName('forwards')
    schemas.push(schema)
    const s = await PostgresStore.open({
      url: `${PG_URL}?schema=${schema}`,
      maxConnections: 4,
      storeKey: bytes(32),
    })
    opened.push(s)
    const snapshot = SqliteStore.openSnapshot(path)
    try {
      expect(snapshot.forwards).toHaveLength(2)
      expect(await s.importSnapshot(snapshot)).toEqual({ accounts: 1, messages: 0 })
    } finally {
      snapshot.close()
    }
    const after = await admin<Record<string, unknown>>(
      `SELECT old_key, new_key, target, expires_at_ms FROM ${schema}.address_forwards ORDER BY old_key`,
    )
    expect(after.map((r) => ({ ...r, expires_at_ms: Number(r.expires_at_ms) }))).toEqual(before)
    expect(hex((await s.addressForward(a, 5000))!)).toBe(hex(c))
    expect(await s.addressForward(a, 15_000)).toBeUndefined()
    expect(hex((await s.addressForward(b, 15_000))!)).toBe(hex(c))
  })
})
