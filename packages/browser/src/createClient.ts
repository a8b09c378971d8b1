/**
 * `createClient()` for the browser: the Parley engine wired to `WebSocket` and an IndexedDB store.
 * @module
 */
import { createPlatformClient, type ParleyClient, type PlatformClientOptions } from '@parley/client'
import { IndexedDbStore } from './IndexedDbStore.js'
import { WebSocketTransport } from './WebSocketTransport.js'

/**
 * Options of {@link createClient}: the same as `@parley/node`'s. `storePath` names an IndexedDB database, e.g.
 * `'parley'`; omit it (and pass no `store`) for an in-memory client that forgets everything on reload.
 */
export interface BrowserClientOptions extends PlatformClientOptions {
  /**
   * The IndexedDB database name, as `storePath` takes it now.
   * @deprecated Use `storePath`; `storeName` is still read in 0.x and will be removed in a later release.
   */
  storeName?: string
}

/**
 * Creates a Parley client for the browser. Nothing is sent before `activate({ consent: true })`.
 * @param options - `relayUrl`, `storePath`, `defaultRegion`, `smsFallback`, …
 * @returns the client
 * @throws TypeError for missing or malformed options (also for `storeName` with `storePath` or `store`); Error when
 *   the IndexedDB database cannot be opened
 * @example
 * import { createClient } from '@parley/browser'
 * const parley = await createClient({ relayUrl: 'wss://relay.example.org', storePath: 'parley', defaultRegion: 'US' })
 */
export async function createClient(options: BrowserClientOptions): Promise<ParleyClient> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options are required')
  const { storeName, ...rest } = options
  if (storeName !== undefined && (rest.storePath !== undefined || rest.store !== undefined)) {
    throw new TypeError('pass one of storePath (storeName is its old name) and store, not both')
  }
  return createPlatformClient(storeName === undefined ? rest : { ...rest, storePath: storeName }, {
    transport: () => new WebSocketTransport(),
    openStore: (storePath) => IndexedDbStore.open(storePath),
    // Browsers stream request bodies only over HTTP/2; a relay speaks HTTP/1.1.
    streamUploads: false,
  })
}
