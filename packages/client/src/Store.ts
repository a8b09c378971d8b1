/**
 * The client engine's persistence port. A platform package provides the implementation (SQLite in Node,
 * IndexedDB in the browser); {@link MemoryStore} is the in-memory one for tests.
 *
 * The model is an ordered key/value map with atomic batches: every state change that must survive a crash
 * together (a ratchet step and the message it decrypted, an outbox entry and its ciphertext) is one
 * {@link Store.write} call.
 * @module
 */

/** One change in an atomic batch: `value` set puts the key, `value` undefined deletes it. */
export interface StoreWrite {
  /** The key; the engine uses `/`-separated namespaces such as `session/<address>`. */
  key: string
  /** New value, or undefined to delete. */
  value?: Uint8Array | undefined
}

/** An entry returned by {@link Store.list}. */
export interface StoreEntry {
  /** The key, as written. */
  key: string
  /** Its value. */
  value: Uint8Array
}

/** Which part of a prefix {@link Store.page} reads. */
export interface PageOptions {
  /** Only keys after this one (exclusive). */
  after?: string | undefined
  /** Only keys before this one (exclusive). */
  before?: string | undefined
  /** At most this many entries (a positive integer). */
  limit: number
  /** Descending key order (the last `limit` keys of the range, last first) instead of ascending. */
  reverse?: boolean | undefined
}

/**
 * The entries of {@link Store.page}, computed from {@link Store.list} (what the engine does for a store without
 * `page`; also a reference for implementations).
 */
export function pageFromList(entries: readonly StoreEntry[], options: PageOptions): StoreEntry[] {
  const { after, before, limit } = options
  const inRange = entries.filter(
    (e) => (after === undefined || e.key > after) && (before === undefined || e.key < before),
  )
  return options.reverse === true ? inRange.slice(-limit).reverse() : inRange.slice(0, limit)
}

/** Durable key/value storage with atomic batches, injected into the engine. */
export interface Store {
  /** Reads one key. */
  get(key: string): Promise<Uint8Array | undefined>
  /** Applies every change of the batch atomically: after a crash, all or none of it is visible. */
  write(batch: readonly StoreWrite[]): Promise<void>
  /** Every entry whose key starts with `prefix`, in ascending key order (by UTF-16 code units). */
  list(prefix: string): Promise<StoreEntry[]>
  /**
   * Optional: one page of the entries under `prefix` (what {@link pageFromList} gives from `list`), read without
   * reading the rest — conversation history pages through it. A store without it is paged through `list`.
   */
  page?(prefix: string, options: PageOptions): Promise<StoreEntry[]>
  /** Releases the underlying resources. Further calls reject. */
  close(): Promise<void>
}

/**
 * A {@link Store} in memory: nothing survives the process. For tests and for ephemeral clients.
 * @example const client = await ParleyClient.create({ store: new MemoryStore(), ... })
 */
export class MemoryStore implements Store {
  readonly #map = new Map<string, Uint8Array>()
  #closed = false

  /** @inheritDoc */
  async get(key: string): Promise<Uint8Array | undefined> {
    this.#check()
    const v = this.#map.get(key)
    return v === undefined ? undefined : v.slice()
  }

  /** @inheritDoc */
  async write(batch: readonly StoreWrite[]): Promise<void> {
    this.#check()
    for (const { key, value } of batch) {
      if (value === undefined) this.#map.delete(key)
      else this.#map.set(key, value.slice())
    }
  }

  /** @inheritDoc */
  async list(prefix: string): Promise<StoreEntry[]> {
    this.#check()
    const out: StoreEntry[] = []
    for (const [key, value] of this.#map) if (key.startsWith(prefix)) out.push({ key, value: value.slice() })
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  }

  /** @inheritDoc */
  async page(prefix: string, options: PageOptions): Promise<StoreEntry[]> {
    return pageFromList(await this.list(prefix), options)
  }

  /** @inheritDoc */
  async close(): Promise<void> {
    this.#closed = true
  }

  #check(): void {
    if (this.#closed) throw new Error('store is closed')
  }
}
