/**
 * Chooses the scale-out engines from the configuration: `--store postgres://…` opens a {@link PostgresStore}
 * (with the store key from `<dataDir>/store-key.json`, created on first start);
 * `--redis redis://…` opens the Redis fan-out, rate limiter and shared pending activations. Whatever is not
 * chosen here is left to the in-process defaults of `startRelay`.
 * @module
 */
import type { PendingActivations } from './Activations.js'
import type { RelayConfig } from './config.js'
import type { Fanout } from './Fanout.js'
import { connectRedis, parseRedisUrl } from './internal/redis.js'
import type { Logger } from './logger.js'
import type { PostgresBlobStore } from './PostgresBlobStore.js'
import { PostgresStore } from './PostgresStore.js'
import type { RateLimiter } from './RateLimiter.js'
import { RedisActivations } from './RedisActivations.js'
import { RedisFanout } from './RedisFanout.js'
import { RedisRateLimiter } from './RedisRateLimiter.js'
import type { Store } from './Store.js'
import { openStoreKeyFile } from './storeKeyFile.js'

/** The engines opened for a configuration; absent ones fall back to the in-process defaults. */
export interface ScaleOutEngines {
  store?: Store
  fanout?: Fanout
  limiter?: RateLimiter
  activations?: PendingActivations
  /** Closes what only this module knows about (the activations' Redis connection). */
  close(): Promise<void>
}

/** Whether a `--store` value selects PostgreSQL. */
export const isPostgresUrl = (store: string): boolean => /^postgres(ql)?:\/\//.test(store)

/**
 * Whether blobs go to PostgreSQL ({@link PostgresBlobStore}): `--blob-store postgres`, or `auto` (the default) with a
 * PostgreSQL store, so that every node of a scaled-out relay serves every blob.
 */
export const blobsInPostgres = (config: Pick<RelayConfig, 'blobStore' | 'store'>): boolean =>
  config.blobStore === 'postgres' || (config.blobStore === 'auto' && isPostgresUrl(config.store))

/** The URL with any password replaced, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '(unparseable URL)'
  }
}

/**
 * Opens the engines the configuration asks for, skipping any port the caller supplies itself.
 * @param config - the validated configuration (`store`, `redis`, `numberHashKey`, code settings)
 * @param want - which ports still need an implementation
 * @param log - where connection trouble is reported
 * @throws Error when PostgreSQL or Redis cannot be reached at start-up
 */
export async function openScaleOut(
  config: RelayConfig,
  want: { store: boolean; fanout: boolean; limiter: boolean },
  log: Logger,
): Promise<ScaleOutEngines> {
  const engines: ScaleOutEngines = { close: async () => {} }
  const opened: { close(): Promise<void> }[] = []
  try {
    if (want.store && isPostgresUrl(config.store)) {
      // The store key wraps every account's data key; it lives beside the OPRF key file, never in PostgreSQL.
      // A data directory of ':memory:' (tests) has no file: the data keys are then stored unwrapped.
      const storeKey =
        config.dataDir === ':memory:' ? undefined : openStoreKeyFile(config.dataDir, (m) => log.warn(m))
      engines.store = await PostgresStore.open({ url: config.store, storeKey })
      opened.push(engines.store)
      log.info({ store: redactUrl(config.store) }, 'PostgreSQL store ready')
    }
    if (config.redis !== '') {
      // Fail fast on a wrong URL or a Redis that is down, rather than on the first request.
      const probe = connectRedis(parseRedisUrl(config.redis), 'parley-probe')
      try {
        await probe.ping()
      } finally {
        probe.disconnect()
      }
      const onError = (err: Error) => log.warn({ err: { message: err.message } }, 'redis fan-out')
      if (want.fanout) {
        engines.fanout = new RedisFanout({ url: config.redis, onError })
        opened.push(engines.fanout)
      }
      if (want.limiter) {
        engines.limiter = new RedisRateLimiter({ url: config.redis })
        opened.push(engines.limiter)
      }
      const activations = new RedisActivations({
        url: config.redis,
        hashKey: Buffer.from(config.numberHashKey, 'hex'),
        ttlSeconds: config.codeTtlSeconds,
        attempts: config.codeAttempts,
      })
      engines.activations = activations
      engines.close = () => activations.close()
      log.info({ redis: redactUrl(config.redis) }, 'Redis fan-out, rate limits and activations ready')
    }
  } catch (err) {
    await Promise.allSettled(opened.map((o) => o.close()))
    throw err
  }
  return engines
}
