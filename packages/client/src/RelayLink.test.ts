import { ParleyError } from '@parley/protocol'
import { describe, expect, it } from 'vitest'
import { RelayLink } from './RelayLink.js'
import type { Transport } from './Transport.js'
import { ManualClock } from './testing/ManualClock.js'

type LinkOptions = ConstructorParameters<typeof RelayLink>[0]

/**
 * A link to a test relay over `transport`, on a manual clock, its hooks doing nothing unless `onState` is given.
 */
function testLink(
  transport: Transport,
  options: Partial<Omit<LinkOptions, 'hooks'>> & { onState?: LinkOptions['hooks']['onState'] } = {},
) {
  const { onState = () => {}, ...rest } = options
  const clock = new ManualClock(0)
  const link = new RelayLink({
    url: 'ws://x/v1/ws',
    transport,
    clock,
    jitter: () => 0.5,
    ...rest,
    hooks: { onHandshake: async () => {}, onPush: () => {}, onState },
  })
  return { link, clock }
}

describe('RelayLink reconnection', () => {
  it('backs off exponentially with jitter, capped, while the relay is unreachable', async () => {
    let attempts = 0
    const transport: Transport = {
      open: async () => {
        attempts++
        throw new Error('refused')
      },
    }
    const states: { state: string; retryInMs?: number }[] = []
    const { link, clock } = testLink(transport, {
      jitter: () => 0.999,
      backoffMinMs: 100,
      backoffMaxMs: 2000,
      onState: (state, info) => states.push({ state, retryInMs: info.retryInMs }),
    })
    link.start()
    await clock.advance(60_000)
    link.stop(true)
    expect(attempts).toBeGreaterThan(8)
    const retries = states
      .filter((s) => s.state === 'offline' && s.retryInMs !== undefined)
      .map((s) => s.retryInMs!)
    // window 100·2^attempt capped at 2000; jitter ≈ 1 → just under the window
    expect(retries.slice(0, 6)).toEqual([199, 399, 799, 1599, 1999, 1999])
    expect(Math.max(...retries)).toBeLessThanOrEqual(2000)
    expect(states.at(-1)?.state).toBe('closed')
  })

  it('never retries faster than half the window, even with a jitter of 0', async () => {
    const transport: Transport = { open: async () => Promise.reject(new Error('refused')) }
    const retries: number[] = []
    const { link, clock } = testLink(transport, {
      jitter: () => 0,
      onState: (_s, info) => info.retryInMs !== undefined && retries.push(info.retryInMs),
    })
    link.start()
    await clock.advance(120_000)
    link.stop(true)
    // 250 ms → 30 s defaults: half-windows 250, 500, 1000, …, capped at 15,000
    expect(retries.slice(0, 4)).toEqual([250, 500, 1000, 2000])
    expect(Math.min(...retries)).toBe(250)
    expect(Math.max(...retries)).toBe(15_000)
  })

  it('times out a request on a link that never comes online, and honours abort', async () => {
    const { link, clock } = testLink({ open: () => new Promise(() => {}) }, { requestTimeoutMs: 1000 })
    const pending = link.request({ ping: {} }).catch((err: unknown) => err)
    await clock.advance(1001)
    expect(await pending).toMatchObject({ code: 'TIMEOUT' })
    const ac = new AbortController()
    const aborted = link.request({ ping: {} }, { signal: ac.signal })
    ac.abort()
    await expect(aborted).rejects.toBeInstanceOf(ParleyError)
    await expect(aborted).rejects.toMatchObject({ code: 'ABORTED' })
    link.stop(true)
  })
})
