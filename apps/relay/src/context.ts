/**
 * What every connection and handler shares: configuration and the ports.
 * @module
 */
import type { PendingActivations } from './Activations.js'
import type { BlobStore } from './BlobStore.js'
import type { policies, RelayConfig } from './config.js'
import type { DiskGuard } from './DiskGuard.js'
import type { Fanout } from './Fanout.js'
import type { HeavyLane } from './internal/lane.js'
import type { Logger } from './logger.js'
import type { MembershipLength } from './MembershipLength.js'
import type { Metrics } from './metrics.js'
import type { OprfKeyring } from './OprfKeyring.js'
import type { OprfPool } from './OprfPool.js'
import type { RateLimiter } from './RateLimiter.js'
import type { RelayKeys } from './RelayKeys.js'
import type { Store } from './Store.js'
import type { Verifier } from './Verifier.js'

/** The relay's shared state. */
export interface RelayContext {
  config: RelayConfig
  policies: ReturnType<typeof policies>
  store: Store
  fanout: Fanout
  limiter: RateLimiter
  verifier: Verifier
  oprf: OprfKeyring
  /** Worker threads that evaluate OPRF batches off the event loop (closed with the relay). */
  oprfPool: OprfPool
  /** Authenticated connections per `addressHex/deviceId` on this node (`--max-connections-per-account`). */
  bound: Map<string, number>
  /** The trust root and the signing key of sender certificates. */
  relayKeys: RelayKeys
  activations: PendingActivations
  /** The disk high-water mark (`--min-free-disk-bytes`): new mail is refused while free space is below it. */
  disk: DiskGuard
  /** CPU-heavy work in slices, one per event-loop turn (prekey signatures, membership reads, mailbox pages). */
  lane: HeavyLane
  /** End-to-end encrypted attachments (handlers/blobs.ts grants them, blobHttp.ts moves their bytes). */
  blobs: BlobStore
  /**
   * The disk high-water mark for blobs (the data directory's file system, measured with every store): new blob
   * grants are refused UNAVAILABLE below it.
   */
  blobDisk: DiskGuard
  /** The membership prefix length announced now (adapts to the registered population). */
  membership: MembershipLength
  metrics: Metrics
  log: Logger
}
