/**
 * The browser SDK's durable {@link Store}: one IndexedDB database with one object store of key → bytes,
 * every batch in one readwrite transaction.
 * @module
 */
import { type PageOptions, ParleyError, type Store, type StoreEntry, type StoreWrite } from '@parley/client'

const SCHEMA_VERSION = 1
const KV = 'kv'
/** How long opening waits for another tab's hold on the same store to end (a reload's old document). */
const LOCK_WAIT_MS = 2000

/** Options of {@link IndexedDbStore.open}. */
export interface IndexedDbStoreOptions {
  /** The IndexedDB factory to use (default: the global `indexedDB`; tests pass `fake-indexeddb`'s). */
  indexedDB?: IDBFactory
  /** The key range class that goes with `indexedDB` (default: the global `IDBKeyRange`). */
  keyRange?: typeof IDBKeyRange
  /** The Web Locks manager that keeps a second tab out (default: `navigator.locks`; none: no lock is taken). */
  locks?: LockManager | null
}

/**
 * Holds the exclusive Web Lock `parley-store:<name>` until the returned function is called (or the tab goes):
 * two tabs of one origin over one database would be one device twice, each advancing the same ratchets from
 * its own copy, and the first message either of them then sends or opens could break the sessions of both.
 * @throws ParleyError `INVALID_STATE` when another tab (or another client in this one) still holds it after
 *   {@link LOCK_WAIT_MS}
 */
function holdStoreLock(locks: LockManager, name: string): Promise<() => void> {
  return new Promise((resolve, reject) => {
    // A short wait rather than none: a reloading tab's old document may still hold the lock for a moment.
    locks
      .request(
        `parley-store:${name}`,
        { mode: 'exclusive', signal: AbortSignal.timeout(LOCK_WAIT_MS) },
        () => {
          // Held as long as this promise is pending.
          return new Promise<void>((release) => resolve(release))
        },
      )
      .catch((err: unknown) => {
        const kind = (err as { name?: string } | null)?.name
        if (kind !== 'AbortError' && kind !== 'TimeoutError') return reject(err)
        reject(
          new ParleyError(
            'INVALID_STATE',
            `the Parley store ${name} is open in another tab (or client); close it there first — one device, one tab`,
          ),
        )
      })
  })
}

/**
 * A {@link Store} in an IndexedDB database. A batch is committed whole or not at all, with `strict`
 * durability so that a queued message survives a crash or a closed tab.
 *
 * Give each client its own database name: two clients over one database would be one device twice.
 * @example const store = await IndexedDbStore.open('parley-alice')
 */
export class IndexedDbStore implements Store {
  readonly #db: IDBDatabase
  readonly #keyRange: typeof IDBKeyRange
  readonly #unlock: () => void
  #closed = false

  private constructor(db: IDBDatabase, keyRange: typeof IDBKeyRange, unlock: () => void) {
    this.#db = db
    this.#keyRange = keyRange
    this.#unlock = unlock
    // Another tab wants to upgrade or delete the database: let it, and fail our own calls loudly from now on.
    db.onversionchange = () => {
      this.#closed = true
      db.close()
      unlock()
    }
  }

  /**
   * Opens (creating if needed) the database `name`.
   * @param name - the IndexedDB database name, e.g. `'parley'`
   * @param options - an IndexedDB implementation other than the global one
   * @returns the store
   * @throws TypeError for an empty name or when IndexedDB is not available; ParleyError `INVALID_STATE` when
   *   another tab (or client) has the database open, held by a Web Lock until it closes; Error when the database
   *   cannot be opened (private browsing in some browsers, blocked by another tab, written by a newer SDK)
   * @example const store = await IndexedDbStore.open('parley')
   */
  static async open(name: string, options: IndexedDbStoreOptions = {}): Promise<IndexedDbStore> {
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('name must be a non-empty string')
    const factory = options.indexedDB ?? globalThis.indexedDB
    const keyRange = options.keyRange ?? globalThis.IDBKeyRange
    if (factory === undefined || keyRange === undefined) {
      throw new TypeError('IndexedDB is not available here; pass a store of your own')
    }
    const locks = options.locks === undefined ? globalThis.navigator?.locks : options.locks
    const unlock = locks ? await holdStoreLock(locks, name) : () => {}
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      let request: IDBOpenDBRequest
      try {
        request = factory.open(name, SCHEMA_VERSION)
      } catch (err) {
        reject(new Error(`cannot open IndexedDB database ${name}`, { cause: err }))
        return
      }
      request.onupgradeneeded = () => {
        const upgrading = request.result
        if (!upgrading.objectStoreNames.contains(KV)) upgrading.createObjectStore(KV)
      }
      request.onsuccess = () => resolve(request.result)
      request.onerror = () => {
        const err = request.error
        const newer = err?.name === 'VersionError'
        reject(
          new Error(
            newer
              ? `IndexedDB database ${name} was written by a newer @parley/browser`
              : `cannot open IndexedDB database ${name}`,
            { cause: err },
          ),
        )
      }
      request.onblocked = () => {
        reject(new Error(`IndexedDB database ${name} is held open by an older version in another tab`))
      }
    }).catch((err: unknown) => {
      unlock()
      throw err
    })
    return new IndexedDbStore(db, keyRange, unlock)
  }

  /** @inheritDoc */
  async get(key: string): Promise<Uint8Array | undefined> {
    const store = this.#transaction('readonly')
    const value = await done(store.get(key))
    return value === undefined ? undefined : toBytes(value)
  }

  /** @inheritDoc */
  write(batch: readonly StoreWrite[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#checkOpen()
      const tx = this.#db.transaction(KV, 'readwrite', { durability: 'strict' })
      tx.oncomplete = () => resolve()
      tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'))
      const store = tx.objectStore(KV)
      try {
        for (const { key, value } of batch) {
          if (value === undefined) store.delete(key)
          // slice(): a view over a larger buffer would otherwise be cloned with the whole buffer.
          else store.put(value.slice(), key)
        }
      } catch (err) {
        // A bad key or value throws synchronously: abort so that nothing of the batch is applied.
        tx.abort()
        reject(err)
      }
    })
  }

  /** @inheritDoc */
  async list(prefix: string): Promise<StoreEntry[]> {
    const store = this.#transaction('readonly')
    const range = this.#prefixRange(prefix)
    // IndexedDB orders string keys by UTF-16 code units, which is the Store contract's order; keys and values
    // read in one transaction over one range line up.
    const [keys, values] = await Promise.all([done(store.getAllKeys(range)), done(store.getAll(range))])
    return keys.map((key, i) => ({ key: key as string, value: toBytes(values[i]) }))
  }

  /** @inheritDoc */
  async page(prefix: string, options: PageOptions): Promise<StoreEntry[]> {
    const { after, before, limit } = options
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer')
    const whole = this.#prefixRange(prefix)
    const lo = after !== undefined && after >= prefix ? after : prefix
    const hi = whole?.upper as string | undefined
    const upper = before !== undefined && (hi === undefined || before < hi) ? before : hi
    const range =
      upper === undefined
        ? this.#keyRange.lowerBound(lo, after !== undefined && lo === after)
        : this.#keyRange.bound(lo, upper, after !== undefined && lo === after, true)
    const store = this.#transaction('readonly')
    const out: StoreEntry[] = []
    await new Promise<void>((resolve, reject) => {
      const request = store.openCursor(range, options.reverse === true ? 'prev' : 'next')
      request.onerror = () => reject(request.error ?? new Error('IndexedDB request failed'))
      request.onsuccess = () => {
        const cursor = request.result
        if (cursor === null || out.length >= limit) return resolve()
        out.push({ key: cursor.key as string, value: toBytes(cursor.value) })
        cursor.continue()
      }
    })
    return out
  }

  /** @inheritDoc */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#db.close()
    this.#unlock()
  }

  #transaction(mode: IDBTransactionMode): IDBObjectStore {
    this.#checkOpen()
    return this.#db.transaction(KV, mode).objectStore(KV)
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error('store is closed')
  }

  #prefixRange(prefix: string): IDBKeyRange | undefined {
    if (prefix === '') return undefined
    // The smallest string greater than every string starting with `prefix`: drop trailing U+FFFF units and
    // increment the last remaining one.
    let end = prefix
    while (end.length > 0 && end.charCodeAt(end.length - 1) === 0xffff) end = end.slice(0, -1)
    if (end.length === 0) return this.#keyRange.lowerBound(prefix)
    end = end.slice(0, -1) + String.fromCharCode(end.charCodeAt(end.length - 1) + 1)
    return this.#keyRange.bound(prefix, end, false, true)
  }
}

function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error ?? new Error('IndexedDB request failed'))
  })
}

function toBytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value
  if (value instanceof ArrayBuffer) return new Uint8Array(value)
  // Structured clone across realms (e.g. fake-indexeddb in tests) can yield a Uint8Array of another realm.
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
  throw new Error('IndexedDB returned a value that is not bytes')
}
