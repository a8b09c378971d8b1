/**
 * The scale-out {@link RateLimiter}: token buckets in Redis, each take one Lua script run atomically by Redis, so
 * a quota holds across every node (an enumerator spreading calls over N nodes still gets one bucket's worth).
 * Same arithmetic as {@link MemoryRateLimiter} (the conformance suite holds both to it). A bucket's key expires
 * once it would have refilled completely: a missing bucket is a full one, so idle keys cost no memory.
 * @module
 */
import type { Redis } from 'ioredis'
import type { BucketPolicy } from './config.js'
import { connectRedis, parseRedisUrl, type RedisTarget } from './internal/redis.js'
import type { RateLimiter, RateLimitResult } from './RateLimiter.js'

// KEYS[1] bucket; ARGV: capacity, refillTokens, refillIntervalMs, cost, nowMs (-1: use the Redis clock).
// Using Redis's clock by default means the nodes' clocks need not agree. Doubles are stored with %.17g so the
// fractional token count survives the round trip exactly (Lua's tostring keeps only 14 digits).
const TAKE = `
local capacity = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local rate = refill / interval
local state = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil then
  tokens = capacity
  updated = now
end
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
elseif cost > capacity or rate <= 0 then
  retry = interval
else
  retry = math.ceil((cost - tokens) / rate)
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'u', string.format('%d', now))
local ttl = interval
if rate > 0 then ttl = math.ceil((capacity - tokens) / rate) end
redis.call('PEXPIRE', KEYS[1], math.max(1000, ttl + 1000))
return {allowed, math.floor(tokens), retry}
`

type WithTake = Redis & {
  parleyTake(key: string, ...args: string[]): Promise<[number, number, number]>
}

/** Redis implementation of {@link RateLimiter}. */
export class RedisRateLimiter implements RateLimiter {
  readonly #target: RedisTarget
  readonly #redis: WithTake
  #closed = false

  /** @param options.url - `redis://host:port[/db][?prefix=<p>]` */
  constructor(options: { url: string }) {
    this.#target = parseRedisUrl(options.url)
    const redis = connectRedis(this.#target, 'parley-limits')
    // EVALSHA with a fallback to EVAL when the script cache is cold (after a Redis restart).
    redis.defineCommand('parleyTake', { numberOfKeys: 1, lua: TAKE })
    this.#redis = redis as WithTake
  }

  #key(key: string): string {
    return `${this.#target.prefix}rl:${key}`
  }

  async take(key: string, cost: number, policy: BucketPolicy, nowMs?: number): Promise<RateLimitResult> {
    if (this.#closed) throw new Error('rate limiter is closed')
    const [allowed, remaining, retryAfterMs] = await this.#redis.parleyTake(
      this.#key(key),
      String(policy.capacity),
      String(policy.refillTokens),
      String(policy.refillIntervalMs),
      String(cost),
      String(nowMs === undefined ? -1 : Math.floor(nowMs)),
    )
    return { allowed: allowed === 1, remaining, retryAfterMs }
  }

  async reset(key: string): Promise<void> {
    if (this.#closed) return
    await this.#redis.del(this.#key(key))
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#redis.quit().catch(() => {})
  }
}
