// The Store conformance suite against SQLite (always) and PostgreSQL (when it is up: each run in a fresh
// schema, dropped afterwards).
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import { afterEach, describe } from 'vitest'
import { PostgresStore } from '../../src/PostgresStore.js'
import { SqliteStore } from '../../src/SqliteStore.js'
import type { Store } from '../../src/Store.js'
import { tempDir } from '../../testing/index.js'
import { describeWith, PG_URL, probePostgres, uniqueName } from './services.js'
import { type StoreHarness, storeConformance } from './store.js'
import { storeDevicesConformance } from './storeDevices.js'
import { storeForwardsConformance } from './storeForwards.js'

describe('Store conformance: SqliteStore', () => {
  const paths = new Map<Store, string>()
  const opened: Store[] = []
  const query = <T>(store: Store, sql: string) => {
    const db = new Database(paths.get(store)!, { readonly: true })
    try {
      return db.prepare(sql).all() as T[]
    } finally {
      db.close()
    }
  }
  const harness: StoreHarness = {
    async open() {
      const path = join(tempDir(), 'relay.db')
      const s = new SqliteStore(path)
      paths.set(s, path)
      opened.push(s)
      return s
    },
    async peer(store) {
      const s = new SqliteStore(paths.get(store)!)
      paths.set(s, paths.get(store)!)
      opened.push(s)
      return s
    },
    async rows(store, table) {
      return query<{ n: number }>(store, `SELECT count(*) AS n FROM ${table}`)[0]!.n
    },
    async columns(store, table) {
      return query<{ name: string }>(store, `PRAGMA table_info(${table})`).map((c) => c.name)
    },
    async run(store, sql) {
      const db = new Database(paths.get(store)!)
      try {
        db.exec(sql)
      } finally {
        db.close()
      }
    },
    async values(store, table) {
      return query<Record<string, unknown>>(store, `SELECT * FROM ${table}`).flatMap((row) =>
        Object.values(row).filter((v): v is Buffer => Buffer.isBuffer(v)),
      )
    },
    async mailbox(store, address) {
      const hex = Buffer.from(address).toString('hex')
      const [row] = query<{ count: number; bytes: number }>(
        store,
        `SELECT mailbox_count AS count, mailbox_bytes AS bytes FROM accounts WHERE address = X'${hex}'`,
      )
      return row ?? null
    },
    async toVersion2(store) {
      const db = new Database(paths.get(store)!)
      try {
        db.exec(`ALTER TABLE accounts DROP COLUMN mailbox_bytes; ALTER TABLE accounts DROP COLUMN last_active_ms;
          DROP TABLE registration_locks; DROP TABLE retained_mail; DROP TABLE account_bans;
          DROP TABLE revoked_devices; DROP TABLE operator_actions; ALTER TABLE accounts DROP COLUMN max_device_id;
          DROP TABLE linked_devices; DROP TABLE linked_one_time_prekeys; DROP TABLE linked_kem_prekeys;
          DROP TABLE device_lists; DROP TABLE rendezvous; DROP TABLE address_forwards;
          DELETE FROM schema_migrations WHERE version >= 3`)
      } finally {
        db.close()
      }
    },
    async cleanup() {
      for (const s of opened.splice(0)) await s.close()
    },
  }
  storeConformance(harness)
  storeDevicesConformance(harness)
  storeForwardsConformance(harness)
})

const pgAbsent = await probePostgres()

describeWith('Store conformance: PostgresStore', [pgAbsent], () => {
  const schemas = new Map<Store, string>()
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
  // Each store holds its pool and a connection listening for erasure notices: close a test's stores when it
  // ends (the schemas are dropped after the last test), so that the suite stays well below max_connections.
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close()
  })
  // As the relay runs it: data keys wrapped under a store key (one per schema, shared by its "nodes").
  const storeKeys = new Map<string, Uint8Array>()
  const openIn = async (schema: string) => {
    if (!storeKeys.has(schema)) storeKeys.set(schema, new Uint8Array(randomBytes(32)))
    const storeKey = storeKeys.get(schema)!
    const s = await PostgresStore.open({ url: `${PG_URL}?schema=${schema}`, maxConnections: 4, storeKey })
    schemas.set(s, schema)
    opened.push(s)
    return s
  }
  const harness: StoreHarness = {
    open: () => openIn(uniqueName('store')),
    peer: (store) => openIn(schemas.get(store)!),
    async rows(store, table) {
      return Number(
        (await admin<{ n: string }>(`SELECT count(*) AS n FROM ${schemas.get(store)}.${table}`))[0]!.n,
      )
    },
    async columns(store, table) {
      return (
        await admin<{ column_name: string }>(
          'SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2',
          [schemas.get(store), table],
        )
      ).map((r) => r.column_name)
    },
    async run(store, sql) {
      await admin(`SET search_path = ${schemas.get(store)}; ${sql}`)
    },
    async values(store, table) {
      return (await admin<Record<string, unknown>>(`SELECT * FROM ${schemas.get(store)}.${table}`)).flatMap(
        (row) => Object.values(row).filter((v): v is Buffer => Buffer.isBuffer(v)),
      )
    },
    async mailbox(store, address) {
      const [row] = await admin<{ count: string; bytes: string }>(
        `SELECT mailbox_count AS count, mailbox_bytes AS bytes FROM ${schemas.get(store)}.accounts
         WHERE address = $1`,
        [Buffer.from(address)],
      )
      return row ? { count: Number(row.count), bytes: Number(row.bytes) } : null
    },
    async cleanup() {
      for (const s of opened.splice(0)) await s.close()
      for (const schema of new Set(schemas.values())) await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
      schemas.clear()
    },
  }
  storeConformance(harness)
  storeDevicesConformance(harness)
  storeForwardsConformance(harness)
})
