// @parley/node — the public API is exactly what this file exports: everything @parley/client exports (the same list
// as @parley/browser's), and the Node parts.

export * from '@parley/client'
export type { NodeClientOptions } from './createClient.js'
export { createClient } from './createClient.js'
export { nodeCryptoProvider } from './nodeCrypto.js'
export { SqliteStore } from './SqliteStore.js'
export type { WsTransportOptions } from './WsTransport.js'
export { WsTransport } from './WsTransport.js'
