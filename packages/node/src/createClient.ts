/**
 * `createClient()` for Node: the Parley engine wired to `ws` and a SQLite store.
 * @module
 */
import { createPlatformClient, type ParleyClient, type PlatformClientOptions } from '@parley/client'
import { nodeCryptoProvider } from './nodeCrypto.js'
import { SqliteStore } from './SqliteStore.js'
import { WsTransport } from './WsTransport.js'

/**
 * Options of {@link createClient}: the same as `@parley/browser`'s. `storePath` is a SQLite file, which needs the
 * optional peer dependency `better-sqlite3`; omit it (and pass no `store`) for an in-memory client.
 */
export interface NodeClientOptions extends PlatformClientOptions {}

/**
 * Creates a Parley client for Node.js. Nothing is sent before `activate({ consent: true })`.
 * Uses the `node:crypto` fast path ({@link nodeCryptoProvider}) unless `crypto` says otherwise.
 * @param options - `relayUrl`, `storePath`, `defaultRegion`, `smsFallback`, …
 * @returns the client
 * @throws TypeError for missing or malformed options, and when `storePath` is given but the `better-sqlite3`
 *   package is not installed (the message says what to install); Error when the SQLite file cannot be opened
 * @example
 * import { createClient } from '@parley/node'
 * const parley = await createClient({ relayUrl: 'ws://localhost:8787', storePath: './alice.db', defaultRegion: 'US' })
 */
export async function createClient(options: NodeClientOptions): Promise<ParleyClient> {
  return createPlatformClient(options, {
    transport: () => new WsTransport(),
    openStore: (storePath) => SqliteStore.open(storePath),
    crypto: nodeCryptoProvider,
  })
}
