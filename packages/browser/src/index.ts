// @parley/browser — the public API is exactly what this file exports: everything @parley/client exports (the same
// list as @parley/node's), and the browser parts.

export * from '@parley/client'
export type { BrowserClientOptions } from './createClient.js'
export { createClient } from './createClient.js'
export type { IndexedDbStoreOptions } from './IndexedDbStore.js'
export { IndexedDbStore } from './IndexedDbStore.js'
export type { WebSocketTransportOptions } from './WebSocketTransport.js'
export { WebSocketTransport } from './WebSocketTransport.js'
