/**
 * Shared Redis plumbing for the scale-out ports: URL parsing (with the relay's `?prefix=` parameter) and
 * connections configured so that a Redis outage surfaces as errors within seconds instead of hanging requests.
 * @module
 */
import { Redis } from 'ioredis'

/** A Redis URL split into what ioredis reads and the relay's key prefix. */
export interface RedisTarget {
  /** `redis://…` or `rediss://…` without the `prefix` parameter. */
  url: string
  /** Prepended to every key and channel (default `parley:`), so several deployments can share one Redis. */
  prefix: string
}

/**
 * Parses `redis://[user:password@]host:port[/db][?prefix=<p>]`.
 * @throws RangeError for another scheme or a prefix with characters outside `[A-Za-z0-9:_.-]`
 */
export function parseRedisUrl(url: string): RedisTarget {
  const u = new URL(url)
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new RangeError('the Redis URL must start with redis:// or rediss://')
  const prefix = u.searchParams.get('prefix') ?? 'parley:'
  if (!/^[A-Za-z0-9:_.-]{0,64}$/.test(prefix))
    throw new RangeError('the Redis key prefix may only contain letters, digits and : _ . -')
  u.searchParams.delete('prefix')
  return { url: u.toString(), prefix }
}

/** Opens a connection; commands fail after a few seconds of outage rather than queueing forever. */
export function connectRedis(target: RedisTarget, name: string): Redis {
  const redis = new Redis(target.url, {
    connectionName: name,
    connectTimeout: 5000,
    maxRetriesPerRequest: 3,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  })
  // ioredis reconnects by itself; without a listener an 'error' event would crash the process.
  redis.on('error', () => {})
  return redis
}
