// The size budget (issue 6; 84 KB since issue 13, 87 KB since issue 15, 89 KB since issue 16, 90 KB since issue 17, see scripts/size.mjs): the whole SDK,
// minified ESM as a user's bundler would ship it, ≤ BUDGET_KB gzip in
// all — what loads up front plus the number metadata, a separate chunk fetched when the first number is
// normalised.
import { describe, expect, it } from 'vitest'
// @ts-expect-error: a plain .mjs script without type declarations
import { BUDGET_KB, byPackage, measure, summary } from '../scripts/size.mjs'

describe('bundle size', () => {
  it(`ships the whole SDK, number metadata included, in at most ${BUDGET_KB} KB min+gzip`, async () => {
    const { kb, lazyKb, totalKb, lazy, inputs } = (await measure()) as {
      kb: number
      lazyKb: number
      totalKb: number
      lazy: [string, number][]
      inputs: [string, number][]
    }
    console.log(summary(kb, lazyKb))
    // The only lazily loaded chunk is the number metadata (generated without formats); nothing else may hide
    // behind import(), and the library's own metadata is in no chunk.
    expect(lazy.map(([input]) => /protocol\/src\/gen\/numberMetadata\.ts$/.test(input))).toEqual([true])
    expect(inputs.some(([path]) => /metadata\.min\.json|min\/metadata/.test(path))).toBe(false)
    if (totalKb > BUDGET_KB) {
      const top = (byPackage(inputs) as [string, number][])
        .slice(0, 6)
        .map(([name, bytes]) => `${name} ${(bytes / 1024).toFixed(1)} KB min`)
      console.log(`largest parts: ${top.join(', ')} (node scripts/size.mjs --why)`)
    }
    expect(totalKb).toBeLessThanOrEqual(BUDGET_KB)
  })
})
