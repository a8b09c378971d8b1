// @parley/node — the public API is exactly what this file exports.

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
  ParleyClientOptions,
  ParleyEvents,
  RegistrationLockChallenge,
  RelayKeys,
  SendFailedEvent,
  SendResult,
  SmsFallback,
  Store,
  Transport,
} from '@parley/client'
export { ERROR_CODES, MemoryStore, ParleyClient, ParleyError } from '@parley/client'
export type { NodeClientOptions } from './createClient.js'
export { createClient } from './createClient.js'
export { nodeCryptoProvider } from './nodeCrypto.js'
export { SqliteStore } from './SqliteStore.js'
export type { WsTransportOptions } from './WsTransport.js'
export { WsTransport } from './WsTransport.js'
