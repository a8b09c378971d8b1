/**
 * The Node SDK's durable {@link Store}: one SQLite file (better-sqlite3) in WAL mode, one table of
 * key → blob, every batch in one transaction.
 * @module
 */
import type { PageOptions, Store, StoreEntry, StoreWrite } from '@parley/client'
import type Database from 'better-sqlite3'
import { loadSqlite } from './internal/loadSqlite.js'

const SCHEMA_VERSION = 1

/**
 * A {@link Store} in a SQLite file. Safe against crashes: a batch is committed whole or not at all. Needs the
 * `better-sqlite3` package (an optional peer dependency of `@parley/node`), loaded at the first `open()`.
 * @example const store = SqliteStore.open('./alice.db')
 */
export class SqliteStore implements Store {
  readonly #db: Database.Database
  readonly #get: Database.Statement<[string], { value: Buffer }>
  readonly #put: Database.Statement<[string, Uint8Array]>
  readonly #del: Database.Statement<[string]>
  readonly #range: Database.Statement<[string, string], { key: string; value: Buffer }>
  readonly #pageUp: Database.Statement<[string, string, number], { key: string; value: Buffer }>
  readonly #pageDown: Database.Statement<[string, string, number], { key: string; value: Buffer }>
  readonly #batch: (batch: readonly StoreWrite[]) => void

  private constructor(db: Database.Database) {
    this.#db = db
    this.#get = db.prepare('SELECT value FROM kv WHERE key = ?')
    this.#put = db.prepare(
      'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
    )
    this.#del = db.prepare('DELETE FROM kv WHERE key = ?')
    this.#range = db.prepare('SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key')
    this.#pageUp = db.prepare('SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?')
    this.#pageDown = db.prepare(
      'SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key DESC LIMIT ?',
    )
    this.#batch = db.transaction((batch: readonly StoreWrite[]) => {
      for (const { key, value } of batch) {
        if (value === undefined) this.#del.run(key)
        else this.#put.run(key, value)
      }
    })
  }

  /**
   * Opens (creating if needed) the store at `path`. Use `':memory:'` for a throwaway store.
   * @param path - file path of the SQLite database
   * @returns the store
   * @throws TypeError for an empty path, and when the `better-sqlite3` package is not installed (the message names
   *   it); Error if the file cannot be opened or was written by a newer version
   * @example const store = SqliteStore.open('./alice.db')
   */
  static open(path: string): SqliteStore {
    if (typeof path !== 'string' || path.length === 0) throw new TypeError('path must be a non-empty string')
    const Sqlite = loadSqlite()
    const db = new Sqlite(path)
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    const version = db.pragma('user_version', { simple: true }) as number
    if (version > SCHEMA_VERSION) {
      db.close()
      throw new Error(`store ${path} was written by a newer @parley/node (schema ${version})`)
    }
    if (version < 1) {
      db.exec('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID')
      db.pragma(`user_version = ${SCHEMA_VERSION}`)
    }
    return new SqliteStore(db)
  }

  /** @inheritDoc */
  async get(key: string): Promise<Uint8Array | undefined> {
    const row = this.#get.get(key)
    return row === undefined ? undefined : new Uint8Array(row.value)
  }

  /** @inheritDoc */
  async write(batch: readonly StoreWrite[]): Promise<void> {
    this.#batch(batch)
  }

  /** @inheritDoc */
  async list(prefix: string): Promise<StoreEntry[]> {
    // Keys are ASCII, so SQLite's byte order equals the Store contract's code-unit order.
    return this.#range
      .all(prefix, `${prefix}\uffff`)
      .map((r) => ({ key: r.key, value: new Uint8Array(r.value) }))
  }

  /** @inheritDoc */
  async page(prefix: string, options: PageOptions): Promise<StoreEntry[]> {
    const { after, before, limit } = options
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer')
    const lo = after !== undefined && after > prefix ? after : prefix
    const end = `${prefix}\uffff`
    const hi = before !== undefined && before < end ? before : end
    // `after` is exclusive: one more row, in case the first is `after` itself.
    const rows = (options.reverse === true ? this.#pageDown : this.#pageUp).all(lo, hi, limit + 1)
    return rows
      .filter((r) => r.key !== after)
      .slice(0, limit)
      .map((r) => ({ key: r.key, value: new Uint8Array(r.value) }))
  }

  /** @inheritDoc */
  async close(): Promise<void> {
    if (this.#db.open) this.#db.close()
  }
}
