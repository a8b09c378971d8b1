/**
 * `createClient()` for Node: the Parley engine wired to `ws` and a SQLite store.
 * @module
 */
import {
  MemoryStore,
  ParleyClient,
  type ParleyClientOptions,
  type Store,
  type Transport,
} from '@parley/client'
import { nodeCryptoProvider } from './nodeCrypto.js'
import { SqliteStore } from './SqliteStore.js'
import { WsTransport } from './WsTransport.js'

/** Options of {@link createClient}: the engine's options, with the transport and store made for you. */
export interface NodeClientOptions extends Omit<ParleyClientOptions, 'transport' | 'store'> {
  /** SQLite file for keys, sessions, outbox and history. Omit (and pass no `store`) for an in-memory client. */
  storePath?: string
  /** A custom store instead of `storePath`. */
  store?: Store
  /** A custom transport instead of `ws`. */
  transport?: Transport
}

/**
 * Creates a Parley client for Node.js. Nothing is sent before `activate({ consent: true })`.
 * Uses the `node:crypto` fast path ({@link nodeCryptoProvider}) unless `crypto` says otherwise.
 * @param options - `relayUrl`, `storePath`, `defaultRegion`, `smsFallback`, …
 * @returns the client
 * @throws TypeError for missing or malformed options
 * @example
 * import { createClient } from '@parley/node'
 * const parley = await createClient({ relayUrl: 'ws://localhost:8787', storePath: './alice.db', defaultRegion: 'US' })
 */
export async function createClient(options: NodeClientOptions): Promise<ParleyClient> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options are required')
  const { storePath, store, transport, ...rest } = options
  if (storePath !== undefined && store !== undefined) throw new TypeError('pass storePath or store, not both')
  return ParleyClient.create({
    crypto: nodeCryptoProvider,
    ...rest,
    transport: transport ?? new WsTransport(),
    store: store ?? (storePath === undefined ? new MemoryStore() : SqliteStore.open(storePath)),
  })
}
