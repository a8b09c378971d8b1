// The Fanout, RateLimiter and pending-activations conformance suites against the in-process implementations
// (always) and Redis (when it is up: each cluster under a fresh key prefix, deleted afterwards).
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { Activations } from '../../src/Activations.js'
import { LocalFanout } from '../../src/Fanout.js'
import { MemoryRateLimiter } from '../../src/RateLimiter.js'
import { RedisActivations } from '../../src/RedisActivations.js'
import { RedisFanout } from '../../src/RedisFanout.js'
import { RedisRateLimiter } from '../../src/RedisRateLimiter.js'
import { activationsConformance } from './activations.js'
import { fanoutConformance } from './fanout.js'
import { rateLimiterConformance } from './rateLimiter.js'
import { describeWith, probeRedis, REDIS_URL, uniqueName } from './services.js'

const HASH_KEY = new Uint8Array(32).fill(7)

describe('Fanout conformance: LocalFanout', () => {
  fanoutConformance({
    async cluster() {
      const f = new LocalFanout()
      return [f, f]
    },
    async cleanup() {},
  })
})

describe('RateLimiter conformance: MemoryRateLimiter', () => {
  rateLimiterConformance({
    async cluster() {
      const l = new MemoryRateLimiter()
      return [l, l]
    },
    async cleanup() {},
  })
})

describe('Activations conformance: in-process Activations', () => {
  activationsConformance({
    async cluster(ttlSeconds) {
      const a = new Activations({ hashKey: HASH_KEY, ttlSeconds, attempts: 5, max: 100 })
      return [a, a]
    },
    async cleanup() {},
  })
})

const redisAbsent = await probeRedis()

/** Fresh key prefixes for one describe block, and their deletion. */
function prefixes() {
  const used: string[] = []
  const closers: (() => Promise<void>)[] = []
  return {
    url() {
      const prefix = `${uniqueName('t')}:`
      used.push(prefix)
      return `${REDIS_URL}?prefix=${prefix}`
    },
    track(close: () => Promise<void>) {
      closers.push(close)
    },
    async keys(prefix: string): Promise<string[]> {
      const r = new Redis(REDIS_URL)
      try {
        return await r.keys(`${prefix}*`)
      } finally {
        r.disconnect()
      }
    },
    async cleanup() {
      await Promise.all(closers.splice(0).map((c) => c()))
      const r = new Redis(REDIS_URL)
      try {
        for (const p of used.splice(0)) {
          const keys = await r.keys(`${p}*`)
          if (keys.length > 0) await r.del(...keys)
        }
      } finally {
        r.disconnect()
      }
    },
    used,
  }
}

describeWith('Fanout conformance: RedisFanout', [redisAbsent], () => {
  const p = prefixes()
  fanoutConformance({
    async cluster() {
      const url = p.url()
      const a = new RedisFanout({ url })
      const b = new RedisFanout({ url })
      p.track(() => a.close())
      p.track(() => b.close())
      return [a, b]
    },
    cleanup: () => p.cleanup(),
  })
})

describeWith('RateLimiter conformance: RedisRateLimiter', [redisAbsent], () => {
  const p = prefixes()
  rateLimiterConformance({
    async cluster() {
      const url = p.url()
      const a = new RedisRateLimiter({ url })
      const b = new RedisRateLimiter({ url })
      p.track(() => a.close())
      p.track(() => b.close())
      return [a, b]
    },
    cleanup: () => p.cleanup(),
  })

  it('lets an idle bucket expire once it would be full again', async () => {
    const url = p.url()
    const l = new RedisRateLimiter({ url })
    p.track(() => l.close())
    await l.take('k', 1, { capacity: 5, refillTokens: 5, refillIntervalMs: 1000 })
    const r = new Redis(REDIS_URL)
    const ttl = await r.pttl(`${p.used.at(-1)}rl:k`)
    r.disconnect()
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(1200)
  })
})

describeWith('Activations conformance: RedisActivations', [redisAbsent], () => {
  const p = prefixes()
  const open = (url: string, ttlSeconds: number) => {
    const a = new RedisActivations({ url, hashKey: HASH_KEY, ttlSeconds, attempts: 5 })
    p.track(() => a.close())
    return a
  }
  activationsConformance({
    async cluster(ttlSeconds) {
      const url = p.url()
      return [open(url, ttlSeconds), open(url, ttlSeconds)]
    },
    cleanup: () => p.cleanup(),
  })

  it('keeps the number only encrypted, under the activation id, for the code lifetime', async () => {
    const url = p.url()
    const prefix = p.used.at(-1)!
    const a = open(url, 600)
    const s = await a.start('+14155550199')
    const r = new Redis(REDIS_URL)
    try {
      const keys = (await r.keys(`${prefix}*`)).sort()
      expect(keys).toEqual([`${prefix}act:${s.activationIdHex}`, `${prefix}act:${s.activationIdHex}:t`])
      const data = await r.hgetall(keys[0]!)
      const dump = JSON.stringify(data) + (await r.get(keys[1]!))
      for (const needle of ['4155550199', '14155550199', s.code]) expect(dump).not.toContain(needle)
      const ttl = await r.pttl(keys[0]!)
      expect(ttl).toBeGreaterThan(590_000)
      expect(ttl).toBeLessThanOrEqual(600_000)
      // A node with another hash key cannot read it.
      const stranger = new RedisActivations({
        url,
        hashKey: new Uint8Array(32).fill(9),
        ttlSeconds: 600,
        attempts: 5,
      })
      p.track(() => stranger.close())
      await expect(stranger.confirm(s.activationIdHex, s.code)).rejects.toThrow()
    } finally {
      r.disconnect()
    }
  })
})
