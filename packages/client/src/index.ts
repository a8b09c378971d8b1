// @parley/client — the public API is exactly what this file exports.

export type { ErrorCode, RegistrationLockChallenge } from '@parley/protocol'
export { ERROR_CODES, ParleyError } from '@parley/protocol'
export { ParleyClient } from './Client.js'
export type { Clock } from './Clock.js'
export { systemClock } from './Clock.js'
export type { PlatformClientOptions, PlatformDefaults } from './createPlatformClient.js'
export { createPlatformClient } from './createPlatformClient.js'
export type { Listener } from './Emitter.js'
export { Emitter } from './Emitter.js'
export { EncryptedStore } from './EncryptedStore.js'
export type { ConnectionState } from './RelayLink.js'
export type { PageOptions, Store, StoreEntry, StoreWrite } from './Store.js'
export { MemoryStore, pageFromList } from './Store.js'
export type { Transport, TransportSocket } from './Transport.js'
export type {
  ActivateOptions,
  Activation,
  ActivationPending,
  AttachmentInfo,
  CallOptions,
  ConfirmOptions,
  ConnectionEvent,
  Conversation,
  ConversationMessage,
  ConversationPage,
  CreateGroupOptions,
  DeliveredEvent,
  DeviceInfo,
  DeviceReplacedEvent,
  DevicesChangedEvent,
  DiscoveryResult,
  GroupInfo,
  GroupMemberInfo,
  GroupReceipts,
  GroupRoute,
  GroupSendResult,
  GroupUpdatedEvent,
  HistoryEvent,
  HistoryPageOptions,
  IdentityChange,
  IncomingMessage,
  LinkCodeOptions,
  LinkedAccount,
  LinkedDevice,
  LinkInvitation,
  MailboxGapEvent,
  MessageChangedEvent,
  MessageState,
  NumberChange,
  NumberChangedEvent,
  OutgoingAttachment,
  ParleyClientOptions,
  ParleyEvents,
  ReactionEvent,
  ReceiptEvent,
  RelayKeys,
  RestoredBackup,
  SendFailedEvent,
  SendOptions,
  SendResult,
  SentBySmsEvent,
  SmsContext,
  SmsFallback,
  SmsFallbackPolicy,
  SmsGroup,
  TypingEvent,
} from './types.js'
