/**
 * The option handling that `@parley/node` and `@parley/browser` share: one option shape for both SDKs and one
 * place that turns it into {@link ParleyClient.create}'s options with the platform's default transport and store.
 * @module
 */

import type { CryptoProvider } from '@parley/protocol'
import { ParleyClient } from './Client.js'
import { EncryptedStore } from './EncryptedStore.js'
import { MemoryStore, type Store } from './Store.js'
import { refuseSealedWithoutKey } from './storeSealMark.js'
import type { Transport } from './Transport.js'
import type { ParleyClientOptions } from './types.js'

/**
 * Options of a platform SDK's `createClient()` (`@parley/node` and `@parley/browser` take the same ones): the
 * engine's {@link ParleyClientOptions}, with the transport and the store made for you.
 */
export interface PlatformClientOptions extends Omit<ParleyClientOptions, 'transport' | 'store'> {
  /**
   * Where keys, sessions, the outbox and received messages are kept: a SQLite file in Node (e.g. `'./alice.db'`,
   * needs the `better-sqlite3` package), an IndexedDB database name in the browser (e.g. `'parley'`). Omit it, and
   * pass no `store`, for an in-memory client that forgets everything when it stops.
   */
  storePath?: string
  /** A store of your own instead of `storePath`. */
  store?: Store
  /**
   * 32 random bytes that seal the store at rest (`storePath`'s or your own `store`): every record is encrypted
   * (XChaCha20-Poly1305) and the phone numbers in record names are hashed, so the file or IndexedDB database
   * reveals no message, key, contact or number without it — only record counts, sizes and opaque names. Keep it
   * in the platform's keystore: a sealed store does not open without it (`INVALID_STATE`) or under another key
   * (`DECRYPT_FAILED`). Applies to a new store; one written without it is refused rather than converted.
   */
  storeEncryptionKey?: Uint8Array
  /** A transport of your own instead of the platform's WebSocket. */
  transport?: Transport
}

/** What a platform package brings to {@link createPlatformClient}: how to make its default transport and store. */
export interface PlatformDefaults {
  /** Makes the transport used when the app passes none. */
  transport(): Transport
  /**
   * Opens the durable store at `storePath`, checking it (a TypeError for a bad one). It is closed again when the
   * client cannot be made.
   * @param storePath - the app's `storePath`, as given
   */
  openStore(storePath: string): Store | Promise<Store>
  /** The platform's faster primitives, used unless the app passes its own `crypto` (e.g. `node:crypto`'s). */
  crypto?: CryptoProvider
  /** Whether the platform's `fetch` can stream a request body to the relay (default true; the app's option wins). */
  streamUploads?: boolean
}

/**
 * Makes a client from a platform SDK's options: checks them, opens the platform's store at `storePath` (or an
 * in-memory one), picks the platform's transport unless the app passes its own, and closes a store it opened
 * when the client cannot be made. For platform packages; apps call their SDK's `createClient()`.
 * @param options - the app's options, see {@link PlatformClientOptions}
 * @param platform - the platform's default transport and store
 * @returns the client, as {@link ParleyClient.create} returns it
 * @throws TypeError when `options` is not an object, both `storePath` and `store` are given, or
 *   {@link ParleyClient.create} refuses the options, or `storeEncryptionKey` is not 32 bytes; ParleyError
 *   `INVALID_STATE` for a sealed store without its key (or a plain one with a key), `DECRYPT_FAILED` for a sealed
 *   store under another key; whatever `platform.openStore` throws (a bad `storePath`)
 * @example
 * export const createClient = (options: PlatformClientOptions) =>
 *   createPlatformClient(options, { transport: () => new MyTransport(), openStore: (path) => MyStore.open(path) })
 */
export async function createPlatformClient(
  options: PlatformClientOptions,
  platform: PlatformDefaults,
): Promise<ParleyClient> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options are required')
  const { storePath, store, transport, storeEncryptionKey, ...rest } = options
  if (storePath !== undefined && store !== undefined) throw new TypeError('pass storePath or store, not both')
  if (
    storeEncryptionKey !== undefined &&
    !(storeEncryptionKey instanceof Uint8Array && storeEncryptionKey.length === 32)
  )
    throw new TypeError('storeEncryptionKey must be 32 bytes')
  const opened = store ?? (storePath === undefined ? new MemoryStore() : await platform.openStore(storePath))
  try {
    let used: Store = opened
    if (storeEncryptionKey !== undefined) used = await EncryptedStore.open(opened, storeEncryptionKey)
    else await refuseSealedWithoutKey(opened)
    return await ParleyClient.create({
      crypto: platform.crypto,
      ...(platform.streamUploads === undefined ? {} : { streamUploads: platform.streamUploads }),
      ...rest,
      transport: transport ?? platform.transport(),
      store: used,
    })
  } catch (err) {
    // A store opened here is ours to close when the client cannot be made; the app's own store stays open.
    if (store === undefined) await opened.close().catch(() => {})
    throw err
  }
}
