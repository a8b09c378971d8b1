import { describe, expect, it } from 'vitest'
import { HeavyLane } from '../src/internal/lane.js'

describe('heavy lane', () => {
  it('runs one slice per event-loop turn, taking turns between callers in the order they asked', async () => {
    const lane = new HeavyLane()
    const order: string[] = []
    const a = lane.map([1, 2, 3], 1, (x) => order.push(`a${x}`))
    const b = lane.map([1, 2, 3], 1, (x) => order.push(`b${x}`))
    await Promise.all([a, b])
    expect(order).toEqual(['a1', 'b1', 'a2', 'b2', 'a3', 'b3'])
    expect(lane.slices).toBe(6)
    expect(lane.queued).toBe(0)
  })

  it('lets other callbacks of the event loop run between two slices', async () => {
    const lane = new HeavyLane()
    const order: string[] = []
    let ticking = true
    const tick = () => {
      order.push('t')
      if (ticking) setImmediate(tick)
    }
    setImmediate(tick)
    await lane.map([1, 2, 3, 4], 2, (x) => order.push(`s${x}`))
    ticking = false
    // Never two slices without a turn of the ticker between them.
    const slices = order.map((x, i) => (x === 's1' || x === 's3' ? i : -1)).filter((i) => i >= 0)
    expect(slices).toHaveLength(2)
    expect(order.slice(slices[0]!, slices[1]!)).toContain('t')
  })

  it('returns results in order and passes a slice’s error to its caller only', async () => {
    const lane = new HeavyLane()
    expect(await lane.map([1, 2, 3, 4, 5], 2, (x) => x * 10)).toEqual([10, 20, 30, 40, 50])
    const failing = lane.slice(() => {
      throw new Error('boom')
    })
    const fine = lane.slice(() => 'ok')
    await expect(failing).rejects.toThrow('boom')
    expect(await fine).toBe('ok')
  })
})
