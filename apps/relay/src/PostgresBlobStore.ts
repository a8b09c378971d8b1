/**
 * The scale-out {@link BlobStore}: attachment blobs in PostgreSQL, beside the {@link PostgresStore}'s tables (the
 * same database and schema; the tables come with the store's migration 10), so that a blob granted and uploaded
 * through one relay node can be downloaded through any other. The same semantics as {@link FileBlobStore}, held
 * to them by one conformance suite (test/conformance/blobStore.ts):
 *
 * - `blobs` holds the metadata; `blob_chunks` the ciphertext, in chunks of at most {@link BLOB_CHUNK_BYTES}, which
 *   are deleted with their row. Bytes are never readable before the row says `complete`, and that row is
 *   written only after every chunk is committed.
 * - An owner's byte limit is checked and the grant inserted in one transaction under an advisory lock of that
 *   owner, so concurrent grants on different nodes cannot both pass.
 * - `begin` claims a grant with one conditional UPDATE and a fresh upload generation that only this process
 *   knows; every chunk and the completion are written only while the row still has that generation. An upload
 *   whose node died (its row `uploading`, with no chunk for {@link UPLOAD_LEASE_MS}) can be claimed again, and
 *   the sweep removes it once its upload token has expired.
 * - A download reads one chunk at a time. A blob deleted during a download (its last other download, its expiry)
 *   cuts that download short: the stream fails instead of ending, and the reader's digest check would refuse
 *   what it got in any case.
 *
 * The relay never has the blob's key: what PostgreSQL holds is ciphertext under a random id, as in files.
 * @module
 */
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import type pg from 'pg'
import type { BlobMeta, BlobState, BlobStore, BlobSweep, CountedDownload } from './BlobStore.js'
import { openPool } from './PostgresStore.js'

/** The largest ciphertext chunk stored in one `blob_chunks` row. */
export const BLOB_CHUNK_BYTES = 1024 * 1024

/**
 * How long an upload under way may go without writing a chunk before another process may claim its grant again
 * (its node is taken for dead). Longer than a chunk takes at the slowest upload the relay allows.
 */
export const UPLOAD_LEASE_MS = 120_000

/** The schema version that has the blob tables. */
const BLOB_SCHEMA_VERSION = 10

const ID_RE = /^[0-9a-f]{64}$/
/** The bytes an owner's blobs hold, pending ones included (the quota's measure). */
const OWNER_BYTES = 'SELECT coalesce(sum(size), 0)::bigint AS n FROM blobs WHERE owner = $1'

/** Options of {@link PostgresBlobStore.open}. */
export interface PostgresBlobStoreOptions {
  /** The store's URL (`postgres://…[?schema=name]`): the blob tables are in the same schema. */
  url: string
  /** Most pooled connections (default 4). */
  maxConnections?: number
  /** Connect timeout (default 5 s). */
  connectTimeoutMs?: number
}

interface BlobRow {
  id: Buffer
  owner: string
  size: number
  downloads_left: number
  expires_at_ms: number
  upload_expires_at_ms: number
  token_hash: string
  state: BlobState
}

const toMeta = (r: BlobRow): BlobMeta => ({
  id: r.id.toString('hex'),
  owner: r.owner,
  size: r.size,
  downloadsLeft: r.downloads_left,
  expiresAtMs: r.expires_at_ms,
  uploadExpiresAtMs: r.upload_expires_at_ms,
  tokenHash: r.token_hash,
  state: r.state,
})

/** The id as the BYTEA key, or undefined when it is not a blob id. */
const key = (id: string): Buffer | undefined => (ID_RE.test(id) ? Buffer.from(id, 'hex') : undefined)

/** PostgreSQL implementation of {@link BlobStore}. */
export class PostgresBlobStore implements BlobStore {
  readonly #pool: pg.Pool
  /** The upload generation of each upload this process runs, by blob id. */
  readonly #uploads = new Map<string, string>()
  readonly #now: () => number

  private constructor(pool: pg.Pool, now: () => number) {
    this.#pool = pool
    this.#now = now
  }

  /**
   * Connects to the store's database and checks that its schema has the blob tables (the PostgreSQL store
   * creates them; open it first, or run `parley-relay migrate`).
   * @param now - the clock of upload leases (tests); default `Date.now`
   * @throws Error when the database cannot be reached or its schema is older than the blob tables
   */
  static async open(
    options: PostgresBlobStoreOptions,
    now: () => number = Date.now,
  ): Promise<PostgresBlobStore> {
    const { pool } = openPool(options.url, options.maxConnections ?? 4, options)
    const store = new PostgresBlobStore(pool, now)
    try {
      const r = await pool.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations')
      const version = r.rows[0]?.v ?? 0
      if (version < BLOB_SCHEMA_VERSION) {
        throw new Error(
          `the database schema (version ${version}) has no blob tables yet: open the PostgreSQL store first`,
        )
      }
    } catch (err) {
      await pool.end().catch(() => {})
      throw err
    }
    return store
  }

  async create(meta: BlobMeta, ownerLimit: number): Promise<boolean> {
    const id = key(meta.id)
    if (!id) return false
    const c = await this.#pool.connect()
    try {
      await c.query('BEGIN')
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`parley-blob-owner:${meta.owner}`])
      const held = await c.query<{ n: number }>(OWNER_BYTES, [meta.owner])
      if ((held.rows[0]?.n ?? 0) + meta.size > ownerLimit) {
        await c.query('ROLLBACK')
        return false
      }
      const r = await c.query(
        `INSERT INTO blobs (id, owner, size, downloads_left, expires_at_ms, upload_expires_at_ms, token_hash, state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending') ON CONFLICT (id) DO NOTHING`,
        [
          id,
          meta.owner,
          meta.size,
          meta.downloadsLeft,
          meta.expiresAtMs,
          meta.uploadExpiresAtMs,
          meta.tokenHash,
        ],
      )
      await c.query('COMMIT')
      return r.rowCount === 1
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      c.release()
    }
  }

  async get(id: string): Promise<BlobMeta | undefined> {
    const k = key(id)
    if (!k) return undefined
    const r = await this.#pool.query<BlobRow>('SELECT * FROM blobs WHERE id = $1', [k])
    return r.rows[0] && toMeta(r.rows[0])
  }

  async begin(id: string): Promise<boolean> {
    const k = key(id)
    if (!k) return false
    const gen = randomBytes(16).toString('hex')
    const now = this.#now()
    const r = await this.#pool.query(
      `UPDATE blobs SET state = 'uploading', upload_gen = $2, upload_seen_ms = $3
       WHERE id = $1 AND (state = 'pending' OR (state = 'uploading' AND upload_seen_ms < $4))`,
      [k, gen, now, now - UPLOAD_LEASE_MS],
    )
    if (r.rowCount !== 1) return false
    this.#uploads.set(id, gen)
    return true
  }

  async write(id: string, source: AsyncIterable<Uint8Array> | Readable): Promise<number> {
    const k = key(id)
    const gen = this.#uploads.get(id)
    if (!k || !gen) throw new Error('no upload of this blob under way')
    await this.#pool.query(
      `DELETE FROM blob_chunks c USING blobs b
       WHERE c.id = $1 AND b.id = c.id AND b.state = 'uploading' AND b.upload_gen = $2`,
      [k, gen],
    )
    let written = 0
    let idx = 0
    const put = async (bytes: Buffer) => {
      // The chunk goes in only while this process still holds the upload, which it renews.
      const r = await this.#pool.query(
        `WITH held AS (
           UPDATE blobs SET upload_seen_ms = $4 WHERE id = $1 AND state = 'uploading' AND upload_gen = $5 RETURNING id
         )
         INSERT INTO blob_chunks (id, idx, bytes) SELECT id, $2, $3 FROM held`,
        [k, idx, bytes, this.#now(), gen],
      )
      if (r.rowCount !== 1) throw new Error('this upload was taken over or its blob deleted')
      idx++
    }
    let pending: Buffer[] = []
    let pendingBytes = 0
    for await (const chunk of source) {
      let rest = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
      written += rest.length
      while (pendingBytes + rest.length >= BLOB_CHUNK_BYTES) {
        const take = BLOB_CHUNK_BYTES - pendingBytes
        pending.push(rest.subarray(0, take))
        rest = rest.subarray(take)
        await put(Buffer.concat(pending))
        pending = []
        pendingBytes = 0
      }
      if (rest.length > 0) {
        // Copied: the source may reuse its buffer once this turn of the loop is over.
        pending.push(Buffer.from(rest))
        pendingBytes += rest.length
      }
    }
    if (pendingBytes > 0) await put(Buffer.concat(pending))
    return written
  }

  async complete(id: string): Promise<boolean> {
    const k = key(id)
    const gen = this.#uploads.get(id)
    this.#uploads.delete(id)
    if (!k) return false
    const r = gen
      ? await this.#pool.query(
          `UPDATE blobs SET state = 'complete', upload_gen = NULL, upload_seen_ms = NULL
           WHERE id = $1 AND state = 'uploading' AND upload_gen = $2`,
          [k, gen],
        )
      : { rowCount: 0 }
    return r.rowCount === 1
  }

  async discard(id: string): Promise<void> {
    const k = key(id)
    if (!k) return
    this.#uploads.delete(id)
    await this.#pool.query(
      `DELETE FROM blob_chunks c USING blobs b WHERE c.id = $1 AND b.id = c.id AND b.state <> 'complete'`,
      [k],
    )
  }

  async read(id: string): Promise<Readable | undefined> {
    const k = key(id)
    if (!k) return undefined
    const meta = await this.get(id)
    if (meta?.state !== 'complete') return undefined
    const pool = this.#pool
    async function* chunks(): AsyncGenerator<Buffer> {
      let sent = 0
      for (let idx = 0; sent < meta!.size; idx++) {
        const r = await pool.query<{ bytes: Buffer }>(
          'SELECT bytes FROM blob_chunks WHERE id = $1 AND idx = $2',
          [k, idx],
        )
        const bytes = r.rows[0]?.bytes
        if (!bytes) throw new Error('the blob was deleted during its download')
        sent += bytes.length
        yield bytes
      }
    }
    return Readable.from(chunks(), { objectMode: false })
  }

  async countDownload(id: string): Promise<CountedDownload | undefined> {
    const k = key(id)
    if (!k) return undefined
    const r = await this.#pool.query<{ downloads_left: number }>(
      `UPDATE blobs SET downloads_left = downloads_left - 1 WHERE id = $1 AND state = 'complete'
       RETURNING downloads_left`,
      [k],
    )
    const left = r.rows[0]?.downloads_left
    if (left === undefined) return undefined
    if (left > 0) return { deleted: false }
    await this.delete(id)
    return { deleted: true }
  }

  async delete(id: string): Promise<void> {
    const k = key(id)
    if (!k) return
    this.#uploads.delete(id)
    await this.#pool.query('DELETE FROM blobs WHERE id = $1', [k])
  }

  async ownerBytes(owner: string): Promise<number> {
    const r = await this.#pool.query<{ n: number }>(OWNER_BYTES, [owner])
    return r.rows[0]?.n ?? 0
  }

  async storedBytes(): Promise<number> {
    const r = await this.#pool.query<{ n: number }>(
      "SELECT coalesce(sum(size), 0)::bigint AS n FROM blobs WHERE state = 'complete'",
    )
    return r.rows[0]?.n ?? 0
  }

  async sweep(nowMs: number): Promise<BlobSweep> {
    const r = await this.#pool.query<{ state: BlobState; size: number; expired: boolean }>(
      `DELETE FROM blobs
       WHERE expires_at_ms <= $1
          OR (upload_expires_at_ms <= $1 AND (state = 'pending' OR (state = 'uploading' AND upload_seen_ms < $2)))
       RETURNING state, size, expires_at_ms <= $1 AS expired`,
      [nowMs, nowMs - UPLOAD_LEASE_MS],
    )
    const result: BlobSweep = { expired: 0, abandoned: 0, bytes: 0 }
    for (const row of r.rows) {
      if (row.expired) {
        result.expired++
        if (row.state === 'complete') result.bytes += row.size
      } else result.abandoned++
    }
    return result
  }

  async close(): Promise<void> {
    this.#uploads.clear()
    await this.#pool.end().catch(() => {})
  }
}
