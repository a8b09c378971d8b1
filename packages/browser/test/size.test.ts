// The size budget (issue 6): the whole SDK, minified ESM as a user's bundler would ship it, ≤ 80 KB gzip.
import { describe, expect, it } from 'vitest'
// @ts-expect-error: a plain .mjs script without type declarations
import { BUDGET_KB, byPackage, measure, summary } from '../scripts/size.mjs'

describe('bundle size', () => {
  it(`ships the whole SDK in at most 80 KB min+gzip`, async () => {
    const { kb, inputs } = (await measure()) as { kb: number; inputs: [string, number][] }
    console.log(summary(kb))
    if (kb > BUDGET_KB) {
      const top = (byPackage(inputs) as [string, number][])
        .slice(0, 6)
        .map(([name, bytes]) => `${name} ${(bytes / 1024).toFixed(1)} KB min`)
      console.log(`largest parts: ${top.join(', ')} (node scripts/size.mjs --why)`)
    }
    expect(kb).toBeLessThanOrEqual(BUDGET_KB)
  })
})
