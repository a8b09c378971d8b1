/**
 * A {@link Store} that keeps every record sealed at rest under an app-provided key (`storeEncryptionKey`),
 * over any other store (SQLite in Node, IndexedDB in the browser): values are XChaCha20-Poly1305 under a key
 * derived from the app's, bound to their names, and the phone numbers in names are replaced by a keyed hash
 * (`@parley/protocol`'s storeSeal). What stays readable without the key: how many records there are, their
 * sizes, and the rest of their names (contact addresses in hex, message ids, times, sequence numbers).
 * @module
 */
import {
  deriveStoreKeys,
  openStoreRecord,
  ParleyError,
  type StoreKeys,
  sealStoreRecord,
  storedName,
} from '@parley/protocol'
import { type PageOptions, pageFromList, type Store, type StoreEntry, type StoreWrite } from './Store.js'
import { CHECK, CHECK_VALUE } from './storeSealMark.js'

/** See the module. Open one with {@link EncryptedStore.open}. */
export class EncryptedStore implements Store {
  readonly #inner: Store
  readonly #keys: StoreKeys

  private constructor(inner: Store, keys: StoreKeys) {
    this.#inner = inner
    this.#keys = keys
  }

  /**
   * Seals `inner` under `key`: a new (empty) store is marked sealed; a sealed one must open under this key.
   * @param inner - the store that holds the sealed records
   * @param key - the app's 32-byte key (keep it in the platform's keystore; without it the store is lost)
   * @returns the sealing store
   * @throws TypeError unless `key` is 32 bytes; ParleyError `DECRYPT_FAILED` for a store sealed under another key,
   *   `INVALID_STATE` for one written without encryption (it is not converted in place)
   * @example const store = await EncryptedStore.open(await IndexedDbStore.open('parley'), key)
   */
  static async open(inner: Store, key: Uint8Array): Promise<EncryptedStore> {
    const keys = deriveStoreKeys(key)
    const store = new EncryptedStore(inner, keys)
    const check = await inner.get(storedName(keys, CHECK))
    if (check === undefined) {
      if ((await inner.list('')).length > 0) {
        throw new ParleyError(
          'INVALID_STATE',
          'this store was written without encryption; a storeEncryptionKey applies to a new store only',
        )
      }
      await store.write([{ key: CHECK, value: CHECK_VALUE }])
    } else {
      // DECRYPT_FAILED for another key.
      openStoreRecord(keys, storedName(keys, CHECK), check)
    }
    return store
  }

  /** @inheritDoc */
  async get(key: string): Promise<Uint8Array | undefined> {
    const stored = storedName(this.#keys, key)
    const sealed = await this.#inner.get(stored)
    return sealed === undefined ? undefined : openStoreRecord(this.#keys, stored, sealed).value
  }

  /** @inheritDoc */
  write(batch: readonly StoreWrite[]): Promise<void> {
    return this.#inner.write(
      batch.map((w) => ({
        key: storedName(this.#keys, w.key),
        value: w.value === undefined ? undefined : sealStoreRecord(this.#keys, w.key, w.value),
      })),
    )
  }

  /** @inheritDoc */
  async list(prefix: string): Promise<StoreEntry[]> {
    return this.#open(await this.#inner.list(storedName(this.#keys, prefix)))
  }

  /** @inheritDoc */
  async page(prefix: string, options: PageOptions): Promise<StoreEntry[]> {
    const map = (k: string | undefined) => (k === undefined ? undefined : storedName(this.#keys, k))
    const mapped = { ...options, after: map(options.after), before: map(options.before) }
    const stored = storedName(this.#keys, prefix)
    const inner = this.#inner
    return this.#open(
      inner.page ? await inner.page(stored, mapped) : pageFromList(await inner.list(stored), mapped),
    )
  }

  /** @inheritDoc */
  close(): Promise<void> {
    return this.#inner.close()
  }

  #open(entries: StoreEntry[]): StoreEntry[] {
    const out: StoreEntry[] = []
    for (const e of entries) {
      const { name, value } = openStoreRecord(this.#keys, e.key, e.value)
      if (name !== CHECK) out.push({ key: name, value })
    }
    return out
  }
}
