// The BlobStore conformance suite against the file store (always) and PostgreSQL (when it is up: each run in a
// fresh schema, dropped afterwards), and what only a store shared by several nodes must do: an upload whose node
// died can be claimed again, and the node that lost it can no longer write.
import { Readable } from 'node:stream'
import pg from 'pg'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { BlobStore } from '../../src/BlobStore.js'
import { FileBlobStore } from '../../src/BlobStore.js'
import { BLOB_CHUNK_BYTES, PostgresBlobStore, UPLOAD_LEASE_MS } from '../../src/PostgresBlobStore.js'
import { PostgresStore } from '../../src/PostgresStore.js'
import { tempDir } from '../../testing/index.js'
import { blobMeta, blobStoreConformance, bytesOf, NOW } from './blobStore.js'
import { describeWith, PG_URL, probePostgres, uniqueName } from './services.js'

describe('BlobStore conformance: FileBlobStore', () => {
  blobStoreConformance({ open: () => FileBlobStore.open(tempDir()) })
})

const pgAbsent = await probePostgres()

describeWith('BlobStore conformance: PostgresBlobStore', [pgAbsent], () => {
  const schemas: string[] = []
  const urls = new Map<BlobStore, string>()
  const stores: PostgresStore[] = []
  /** A fresh schema with the store's tables, and a blob store on it. */
  const fresh = async (now?: () => number) => {
    const schema = uniqueName('blobs')
    schemas.push(schema)
    const url = `${PG_URL}?schema=${schema}`
    stores.push(await PostgresStore.open({ url, maxConnections: 2 }))
    const s = await PostgresBlobStore.open({ url }, now)
    urls.set(s, url)
    return s
  }
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close()
  })
  afterAll(async () => {
    const c = new pg.Client({ connectionString: PG_URL })
    await c.connect()
    for (const schema of schemas) await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    await c.end()
  })

  blobStoreConformance({
    open: () => fresh(),
    async peer(store) {
      const s = await PostgresBlobStore.open({ url: urls.get(store)! })
      urls.set(s, urls.get(store)!)
      return s
    },
  })

  it("refuses a schema without the blob tables, and stores nothing but the ciphertext's chunks", async () => {
    const schema = uniqueName('blobs')
    schemas.push(schema)
    const url = `${PG_URL}?schema=${schema}`
    await PostgresStore.migrateTo({ url }, 9)
    await expect(PostgresBlobStore.open({ url })).rejects.toThrow(/no blob tables/)
    const s = await fresh()
    const m = blobMeta({ size: BLOB_CHUNK_BYTES * 2 + 1 })
    await s.create(m, 1 << 30)
    await s.begin(m.id)
    await s.write(m.id, Readable.from([Buffer.alloc(m.size, 7)]))
    await s.complete(m.id)
    const c = new pg.Client({ connectionString: PG_URL })
    await c.connect()
    try {
      const at = schemas[schemas.length - 1]
      const rows = await c.query<{ idx: number; n: number }>(
        `SELECT idx, length(bytes) AS n FROM ${at}.blob_chunks ORDER BY idx`,
      )
      expect(rows.rows).toEqual([
        { idx: 0, n: BLOB_CHUNK_BYTES },
        { idx: 1, n: BLOB_CHUNK_BYTES },
        { idx: 2, n: 1 },
      ])
      // Deleting the blob deletes its chunks.
      await s.delete(m.id)
      expect((await c.query(`SELECT count(*)::int AS n FROM ${at}.blob_chunks`)).rows[0].n).toBe(0)
    } finally {
      await c.end()
    }
    await s.close()
  })

  it('gives the upload of a node that stopped writing to another, and the first can no longer write', async () => {
    let clock = NOW
    const now = () => clock
    const a = await fresh(now)
    const b = await PostgresBlobStore.open({ url: urls.get(a)! }, now)
    const m = blobMeta({ size: BLOB_CHUNK_BYTES + 10, uploadExpiresAtMs: NOW + 10 * UPLOAD_LEASE_MS })
    await a.create(m, 1 << 30)
    expect(await a.begin(m.id)).toBe(true)
    // The lease is held while it is fresh.
    clock += UPLOAD_LEASE_MS - 1
    expect(await b.begin(m.id)).toBe(false)
    clock += 2
    expect(await b.begin(m.id)).toBe(true)
    const bytes = Buffer.alloc(m.size, 3)
    await expect(a.write(m.id, Readable.from([Buffer.alloc(m.size, 9)]))).rejects.toThrow(/taken over/)
    expect(await a.complete(m.id)).toBe(false)
    await b.write(m.id, Readable.from([bytes]))
    expect(await b.complete(m.id)).toBe(true)
    expect((await bytesOf(await a.read(m.id)))?.equals(bytes)).toBe(true)
    await Promise.all([a.close(), b.close()])
  })

  it('sweeps an upload whose node died once its token has expired, and not while it still writes', async () => {
    let clock = NOW
    const s = await fresh(() => clock)
    const m = blobMeta({ uploadExpiresAtMs: NOW + 1000 })
    await s.create(m, 1 << 30)
    await s.begin(m.id)
    expect(await s.sweep(NOW + 1000)).toEqual({ expired: 0, abandoned: 0, bytes: 0 })
    clock = NOW + UPLOAD_LEASE_MS + 1
    expect(await s.sweep(clock)).toEqual({ expired: 0, abandoned: 1, bytes: 0 })
    expect(await s.get(m.id)).toBeUndefined()
    await s.close()
  })
})
