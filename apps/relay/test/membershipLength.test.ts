import { describe, expect, it } from 'vitest'
import { MembershipLength, membershipBits } from '../src/MembershipLength.js'

describe('membership prefix length', () => {
  it('is the longest prefix whose buckets hold min-bucket addresses on average, between 1 and the most bits', () => {
    expect(membershipBits(0, 16, 32)).toBe(1)
    expect(membershipBits(63, 16, 32)).toBe(1)
    expect(membershipBits(64, 16, 32)).toBe(1)
    expect(membershipBits(128, 16, 32)).toBe(2)
    expect(membershipBits(1_000_000, 16, 32)).toBe(14) // 1e6 / 2^14 ≈ 61, / 2^15 ≈ 30.5
    expect(membershipBits(10_000_000, 16, 32)).toBe(16)
    expect(membershipBits(5, 16, 0)).toBe(16) // adaptation off
    for (let n = 64; n < 5000; n += 37) {
      const bits = membershipBits(n, 16, 32)
      expect(n / 2 ** bits).toBeGreaterThanOrEqual(32)
      expect(n / 2 ** (bits + 1)).toBeLessThan(32)
    }
  })

  it('starts at 1 bit and follows the count at each refresh; with adaptation off it never counts', async () => {
    let population = 0
    let counted = 0
    const m = new MembershipLength({
      maxBits: 16,
      minBucket: 4,
      count: async () => {
        counted++
        return population
      },
    })
    expect(m.bits).toBe(1)
    population = 40
    expect(await m.refresh()).toBe(3)
    expect(m.bits).toBe(3)
    expect(m.population).toBe(40)
    const off = new MembershipLength({
      maxBits: 12,
      minBucket: 0,
      count: async () => {
        counted++
        return 0
      },
    })
    expect(off.bits).toBe(12)
    expect(await off.refresh()).toBe(12)
    expect(counted).toBe(1)
  })
})
