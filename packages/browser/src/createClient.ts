/**
 * `createClient()` for the browser: the Parley engine wired to `WebSocket` and an IndexedDB store.
 * @module
 */
import {
  MemoryStore,
  ParleyClient,
  type ParleyClientOptions,
  type Store,
  type Transport,
} from '@parley/client'
import { IndexedDbStore } from './IndexedDbStore.js'
import { WebSocketTransport } from './WebSocketTransport.js'

/** Options of {@link createClient}: the engine's options, with the transport and store made for you. */
export interface BrowserClientOptions extends Omit<ParleyClientOptions, 'transport' | 'store'> {
  /**
   * IndexedDB database name for keys, sessions, outbox and history, e.g. `'parley'`. Omit (and pass no
   * `store`) for an in-memory client that forgets everything on reload.
   */
  storeName?: string
  /** A custom store instead of `storeName`. */
  store?: Store
  /** A custom transport instead of the browser's `WebSocket`. */
  transport?: Transport
}

/**
 * Creates a Parley client for the browser. Nothing is sent before `activate({ consent: true })`.
 * @param options - `relayUrl`, `storeName`, `defaultRegion`, `smsFallback`, …
 * @returns the client
 * @throws TypeError for missing or malformed options; Error when the IndexedDB database cannot be opened
 * @example
 * import { createClient } from '@parley/browser'
 * const parley = await createClient({ relayUrl: 'wss://relay.example.org', storeName: 'parley', defaultRegion: 'US' })
 */
export async function createClient(options: BrowserClientOptions): Promise<ParleyClient> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options are required')
  const { storeName, store, transport, ...rest } = options
  if (storeName !== undefined && store !== undefined) throw new TypeError('pass storeName or store, not both')
  const opened = store ?? (storeName === undefined ? new MemoryStore() : await IndexedDbStore.open(storeName))
  try {
    return await ParleyClient.create({
      ...rest,
      transport: transport ?? new WebSocketTransport(),
      store: opened,
    })
  } catch (err) {
    // The store was ours to open, so it is ours to close when the client cannot be made.
    if (store === undefined) await opened.close().catch(() => {})
    throw err
  }
}
