// The size budget (issue 6): the whole SDK, minified ESM as a user's bundler would ship it, ≤ 80 KB gzip up
// front; libphonenumber's metadata is a separate chunk fetched when the first number is normalised.
import { describe, expect, it } from 'vitest'
// @ts-expect-error: a plain .mjs script without type declarations
import { BUDGET_KB, byPackage, measure, summary } from '../scripts/size.mjs'

describe('bundle size', () => {
  it(`ships the whole SDK in at most 80 KB min+gzip up front, the number metadata on first use`, async () => {
    const { kb, lazyKb, lazy, inputs } = (await measure()) as {
      kb: number
      lazyKb: number
      lazy: [string, number][]
      inputs: [string, number][]
    }
    console.log(summary(kb, lazyKb))
    // The only lazily loaded chunk is libphonenumber's metadata; nothing else may hide behind import().
    expect(lazy.map(([input]) => /libphonenumber-js.*metadata/.test(input))).toEqual([true])
    expect(inputs.some(([path]) => /metadata\.min\.json/.test(path))).toBe(false)
    if (kb > BUDGET_KB) {
      const top = (byPackage(inputs) as [string, number][])
        .slice(0, 6)
        .map(([name, bytes]) => `${name} ${(bytes / 1024).toFixed(1)} KB min`)
      console.log(`largest parts: ${top.join(', ')} (node scripts/size.mjs --why)`)
    }
    expect(kb).toBeLessThanOrEqual(BUDGET_KB)
  })
})
