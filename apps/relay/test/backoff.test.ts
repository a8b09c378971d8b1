// The per-number code-request backoff (src/Backoff.ts), on the in-memory limiter and on Redis with an explicit
// clock, and the SMS load meter and proof-of-work difficulty (src/SmsGuard.ts) on the same limiters.
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { type BackoffPolicy, backoffWaitMs, takeBackoff } from '../src/Backoff.js'
import { MemoryRateLimiter, type RateLimiter } from '../src/RateLimiter.js'
import { RedisRateLimiter } from '../src/RedisRateLimiter.js'
import { powBitsFor, SmsLoad } from '../src/SmsGuard.js'
import { cleanVetoReason, retryAfterHeaderMs } from '../src/Verifier.js'
import { describeWith, probeRedis, REDIS_URL, uniqueName } from './conformance/services.js'

const S = 1000
const POLICY: BackoffPolicy = { baseMs: 30 * S, maxMs: 3600 * S, forgetMs: 3600 * S }

/** The backoff tests, for limiters made by `make` (a fresh key space each call). */
function backoffSuite(make: () => Promise<RateLimiter>) {
  it('waits 0, 30 s, 60 s, 120 s … between allowed requests, refusing earlier ones with the time left', async () => {
    const l = await make()
    let t = 1_000_000
    const retries: number[] = []
    expect(await takeBackoff(l, 'n', POLICY, t)).toMatchObject({ allowed: true, previous: 0 })
    for (let n = 1; n <= 6; n++) {
      const wait = backoffWaitMs(n, POLICY)
      expect(wait).toBe(30 * S * 2 ** (n - 1))
      const early = await takeBackoff(l, 'n', POLICY, t + 1)
      expect(early).toMatchObject({ allowed: false, previous: n, retryAfterMs: wait - 1 })
      retries.push(early.retryAfterMs)
      // One millisecond short is still refused; the exact wait is allowed.
      expect((await takeBackoff(l, 'n', POLICY, t + wait - 1)).allowed).toBe(false)
      t += wait
      expect(await takeBackoff(l, 'n', POLICY, t)).toMatchObject({ allowed: true, previous: n })
    }
    // Each refusal asked for twice the wait of the one before.
    for (let i = 1; i < retries.length; i++) expect(retries[i]! + 1).toBe(2 * (retries[i - 1]! + 1))
  })

  it('caps the wait at maxMs', async () => {
    const l = await make()
    const p = { baseMs: 30 * S, maxMs: 100 * S, forgetMs: 3600 * S }
    let t = 0
    for (let i = 0; i < 6; i++) {
      t += backoffWaitMs(i, p)
      expect((await takeBackoff(l, 'cap', p, t)).allowed).toBe(true)
    }
    const refused = await takeBackoff(l, 'cap', p, t)
    expect(refused.retryAfterMs).toBe(100 * S)
  })

  it('keeps numbers apart and forgets earlier requests, one per forgetMs', async () => {
    const l = await make()
    expect((await takeBackoff(l, 'a', POLICY, 0)).allowed).toBe(true)
    expect((await takeBackoff(l, 'b', POLICY, 0)).allowed).toBe(true)
    expect((await takeBackoff(l, 'a', POLICY, 30 * S)).allowed).toBe(true) // a: 2 requests
    // Two hours later both are forgotten: no wait, and the next one owes only the base wait again.
    const later = 30 * S + 2 * 3600 * S
    expect(await takeBackoff(l, 'a', POLICY, later)).toMatchObject({ allowed: true, previous: 0 })
    expect(await takeBackoff(l, 'a', POLICY, later + 1)).toMatchObject({ allowed: false, previous: 1 })
  })

  it('lets exactly one of many concurrent requests through', async () => {
    const l = await make()
    const results = await Promise.all(Array.from({ length: 20 }, () => takeBackoff(l, 'race', POLICY, 5000)))
    expect(results.filter((r) => r.allowed)).toHaveLength(1)
  })

  it('is off with baseMs 0', async () => {
    const l = await make()
    const off = { ...POLICY, baseMs: 0 }
    for (let i = 0; i < 5; i++) expect((await takeBackoff(l, 'off', off, 0)).allowed).toBe(true)
  })

  it('counts SMS per minute (sliding window) for the proof-of-work difficulty', async () => {
    const l = await make()
    const load = new SmsLoad(l)
    const t0 = 600 * 60 * S // a minute boundary
    expect(await load.perMinute(t0)).toBe(0)
    for (let i = 0; i < 40; i++) await load.record(t0 + 10 * S)
    expect(await load.perMinute(t0 + 30 * S)).toBe(40)
    // Half-way through the next minute, half of the previous minute still counts.
    for (let i = 0; i < 10; i++) await load.record(t0 + 70 * S)
    const estimate = await load.perMinute(t0 + 90 * S)
    expect(estimate).toBeGreaterThanOrEqual(10 + 20 - 2)
    expect(estimate).toBeLessThanOrEqual(10 + 20)
    expect(await load.perMinute(t0 + 200 * S)).toBe(0)
  })
}

describe('backoff: MemoryRateLimiter', () => {
  backoffSuite(async () => new MemoryRateLimiter())

  it('survives a restart through snapshot / restore, and is dropped only once its wait has passed', async () => {
    const l = new MemoryRateLimiter()
    expect((await takeBackoff(l, 'k', POLICY, 0)).allowed).toBe(true)
    expect((await takeBackoff(l, 'k', POLICY, 30 * S)).allowed).toBe(true) // the next owes 60 s
    // 45 s later the gate has refilled under the 30 s wait, but it was re-filed under 60 s: not swept.
    l.sweep(75 * S)
    const saved = JSON.parse(JSON.stringify(l.snapshot(75 * S)))
    const restarted = new MemoryRateLimiter()
    expect(restarted.restore(saved)).toBe(2)
    expect(await takeBackoff(restarted, 'k', POLICY, 75 * S)).toMatchObject({ allowed: false, previous: 2 })
    expect((await takeBackoff(restarted, 'k', POLICY, 90 * S)).allowed).toBe(true)
  })
})

const redisAbsent = await probeRedis()

describeWith('backoff: RedisRateLimiter', [redisAbsent], () => {
  const opened: RedisRateLimiter[] = []
  const prefixes: string[] = []
  afterAll(async () => {
    await Promise.all(opened.map((l) => l.close()))
    const r = new Redis(REDIS_URL)
    for (const p of prefixes) {
      const keys = await r.keys(`${p}*`)
      if (keys.length > 0) await r.del(...keys)
    }
    r.disconnect()
  })
  backoffSuite(async () => {
    const prefix = `${uniqueName('bo')}:`
    prefixes.push(prefix)
    const l = new RedisRateLimiter({ url: `${REDIS_URL}?prefix=${prefix}` })
    opened.push(l)
    return l
  })
})

describe('proof-of-work difficulty and verifier veto parsing', () => {
  it('rises one bit per doubling of the SMS load over the threshold, capped, and is 0 when off', () => {
    expect(powBitsFor(12, 22, 0, 30)).toBe(12)
    expect(powBitsFor(12, 22, 30, 30)).toBe(12)
    expect(powBitsFor(12, 22, 31, 30)).toBe(13)
    expect(powBitsFor(12, 22, 60, 30)).toBe(13)
    expect(powBitsFor(12, 22, 61, 30)).toBe(14)
    expect(powBitsFor(12, 22, 30 * 2 ** 20, 30)).toBe(22)
    expect(powBitsFor(12, 22, 1_000_000, 0)).toBe(12)
    expect(powBitsFor(0, 22, 1_000_000, 30)).toBe(0)
  })

  it('logs a veto reason without digit runs or control characters, and reads Retry-After', () => {
    expect(cleanVetoReason('premium-rate destination +44 7700 900123\n')).toBe(
      'premium-rate destination [digits]',
    )
    expect(cleanVetoReason(42)).toBeUndefined()
    expect(cleanVetoReason('x'.repeat(500))).toHaveLength(200)
    expect(retryAfterHeaderMs('120')).toBe(120_000)
    expect(retryAfterHeaderMs(new Date(10_000 + 5000).toUTCString(), 10_000)).toBe(5000)
    expect(retryAfterHeaderMs('soon')).toBeUndefined()
    expect(retryAfterHeaderMs(null)).toBeUndefined()
    expect(retryAfterHeaderMs('99999999')).toBe(86_400_000)
  })
})
