// The RateLimiter conformance suite: MemoryRateLimiter and RedisRateLimiter run exactly these tests, with an
// explicit clock where the arithmetic matters. A "node" is one limiter instance; the in-memory one is its own
// whole cluster, so both nodes are the same instance there.
import { afterAll, expect, it } from 'vitest'
import type { RateLimiter } from '../../src/RateLimiter.js'

/** How the suite gets rate limiters of one implementation. */
export interface RateLimiterHarness {
  /** Two nodes of one fresh cluster (a fresh key prefix); they may be the same instance. */
  cluster(): Promise<[RateLimiter, RateLimiter]>
  /** Closes everything opened. */
  cleanup(): Promise<void>
}

const policy = { capacity: 3, refillTokens: 1, refillIntervalMs: 1000 }

/** Registers the conformance tests of {@link RateLimiter} for one implementation (call inside a describe). */
export function rateLimiterConformance(h: RateLimiterHarness): void {
  afterAll(() => h.cleanup())

  it('refills continuously and reports when enough tokens will be back', async () => {
    const [l] = await h.cluster()
    for (let i = 0; i < 3; i++)
      expect(await l.take('k', 1, policy, 0)).toMatchObject({ allowed: true, remaining: 2 - i })
    expect(await l.take('k', 1, policy, 0)).toEqual({ allowed: false, remaining: 0, retryAfterMs: 1000 })
    expect((await l.take('k', 1, policy, 1000)).allowed).toBe(true)
    // Half a token is back after 500 ms: two more need 1500 ms.
    expect(await l.take('k', 2, policy, 1500)).toEqual({ allowed: false, remaining: 0, retryAfterMs: 1500 })
    expect((await l.take('k', 1, policy, 2000)).allowed).toBe(true)
  })

  it('never refills beyond capacity, nor when the clock goes backwards', async () => {
    const [l] = await h.cluster()
    expect(await l.take('cap', 1, policy, 0)).toMatchObject({ allowed: true, remaining: 2 })
    expect(await l.take('cap', 1, policy, 1_000_000)).toMatchObject({ allowed: true, remaining: 2 })
    expect(await l.take('cap', 2, policy, 500_000)).toMatchObject({ allowed: true, remaining: 0 })
    expect((await l.take('cap', 1, policy, 500_000)).allowed).toBe(false)
  })

  it('refuses a cost above capacity with a full interval, and a bucket that never refills likewise', async () => {
    const [l] = await h.cluster()
    expect(await l.take('big', 4, policy, 0)).toEqual({ allowed: false, remaining: 3, retryAfterMs: 1000 })
    const never = { capacity: 1, refillTokens: 0, refillIntervalMs: 60_000 }
    expect((await l.take('never', 1, never, 0)).allowed).toBe(true)
    expect(await l.take('never', 1, never, 10_000_000)).toEqual({
      allowed: false,
      remaining: 0,
      retryAfterMs: 60_000,
    })
  })

  it('keeps buckets apart by key, and reset makes a bucket full again', async () => {
    const [l] = await h.cluster()
    for (let i = 0; i < 3; i++) await l.take('a', 1, policy, 0)
    expect((await l.take('a', 1, policy, 0)).allowed).toBe(false)
    expect((await l.take('b', 1, policy, 0)).allowed).toBe(true)
    await l.reset('a')
    await l.reset('never-used')
    expect(await l.take('a', 3, policy, 0)).toMatchObject({ allowed: true, remaining: 0 })
  })

  it('uses its own clock when none is given', async () => {
    const [l] = await h.cluster()
    const slow = { capacity: 2, refillTokens: 1, refillIntervalMs: 3_600_000 }
    expect((await l.take('clock', 1, slow)).allowed).toBe(true)
    expect((await l.take('clock', 1, slow)).allowed).toBe(true)
    const refused = await l.take('clock', 1, slow)
    expect(refused.allowed).toBe(false)
    expect(refused.retryAfterMs).toBeGreaterThan(3_590_000)
    expect(refused.retryAfterMs).toBeLessThanOrEqual(3_600_001) // ceil() of a float quotient
  })

  it('two nodes: a quota holds across nodes under concurrent takes', async () => {
    const [a, b] = await h.cluster()
    const quota = { capacity: 25, refillTokens: 1, refillIntervalMs: 86_400_000 }
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).take('shared', 1, quota, 1000)),
    )
    expect(results.filter((r) => r.allowed)).toHaveLength(25)
    expect((await a.take('shared', 1, quota, 1000)).allowed).toBe(false)
    await b.reset('shared')
    expect((await a.take('shared', 1, quota, 1000)).allowed).toBe(true)
  })
}
