// @parley/browser — the public API is exactly what this file exports.

export type {
  ActivateOptions,
  Activation,
  ActivationPending,
  CallOptions,
  ConfirmOptions,
  ConnectionEvent,
  ConnectionState,
  DeliveredEvent,
  DeviceReplacedEvent,
  DiscoveryResult,
  ErrorCode,
  IdentityChange,
  IncomingMessage,
  MailboxGapEvent,
  ParleyEvents,
  RegistrationLockChallenge,
  RelayKeys,
  SendFailedEvent,
  SendResult,
  SmsFallback,
  Store,
  StoreEntry,
  StoreWrite,
  Transport,
  TransportSocket,
} from '@parley/client'
export { MemoryStore, ParleyClient, ParleyError } from '@parley/client'
export type { BrowserClientOptions } from './createClient.js'
export { createClient } from './createClient.js'
export type { IndexedDbStoreOptions } from './IndexedDbStore.js'
export { IndexedDbStore } from './IndexedDbStore.js'
export type { WebSocketTransportOptions } from './WebSocketTransport.js'
export { WebSocketTransport } from './WebSocketTransport.js'
