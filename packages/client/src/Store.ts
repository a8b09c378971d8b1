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

/** Durable key/value storage with atomic batches, injected into the engine. */
export interface Store {
  /** Reads one key. */
  get(key: string): Promise<Uint8Array | undefined>
  /** Applies every change of the batch atomically: after a crash, all or none of it is visible. */
  write(batch: readonly StoreWrite[]): Promise<void>
  /** Every entry whose key starts with `prefix`, in ascending key order (by UTF-16 code units). */
  list(prefix: string): Promise<StoreEntry[]>
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
  async close(): Promise<void> {
    this.#closed = true
  }

  #check(): void {
    if (this.#closed) throw new Error('store is closed')
  }
}
