// @parley/relay — the programmatic API: start a relay in-process, or reuse its ports and implementations.

export type { PendingActivations, StartedActivation } from './Activations.js'
export { Activations } from './Activations.js'
export type {
  BlobMeta,
  BlobState,
  BlobStore,
  BlobSweep,
  CountedDownload,
  FileBlobStoreOptions,
} from './BlobStore.js'
export { FileBlobStore } from './BlobStore.js'
export type { BucketPolicy, RelayConfig } from './config.js'
export { DEFAULT_CONFIG, helpText, parseConfig } from './config.js'
export type { Fanout, FanoutEvent, FanoutListener } from './Fanout.js'
export { LocalFanout } from './Fanout.js'
export type { OprfKey } from './OprfKeyring.js'
export { OprfKeyring } from './OprfKeyring.js'
export type { PostgresBlobStoreOptions } from './PostgresBlobStore.js'
export { BLOB_CHUNK_BYTES, PostgresBlobStore, UPLOAD_LEASE_MS } from './PostgresBlobStore.js'
export type { PostgresStoreOptions } from './PostgresStore.js'
export { PostgresStore } from './PostgresStore.js'
export type { RateLimiter, RateLimitResult } from './RateLimiter.js'
export { MemoryRateLimiter } from './RateLimiter.js'
export type { RedisActivationsOptions } from './RedisActivations.js'
export { RedisActivations } from './RedisActivations.js'
export type { RedisFanoutOptions } from './RedisFanout.js'
export { RedisFanout } from './RedisFanout.js'
export { RedisRateLimiter } from './RedisRateLimiter.js'
export { SqliteStore } from './SqliteStore.js'
export type {
  Account,
  EnqueueInput,
  EnqueueResult,
  MailboxEntry,
  MailboxGapRange,
  MailboxPage,
  PrekeyBundle,
  PrekeyCounts,
  PrekeySet,
  PutPrekeysResult,
  Store,
} from './Store.js'
export type { RelayOptions, RunningRelay } from './server.js'
export { startRelay } from './server.js'
export type { VerificationRequest, Verifier, WebhookVerifierOptions } from './Verifier.js'
export { ConsoleVerifier, VerifierVeto, WebhookVerifier } from './Verifier.js'
