// Valid phone numbers in several regions, for audits that must not be fooled by one country's format.
import { createRequire } from 'node:module'
import { type CountryCode, normalizeNumber } from '@parley/protocol'
import type { WatchedNumber } from './scan.js'

// libphonenumber-js is a dependency of @parley/protocol; its example numbers are real-format, valid numbers.
const require = createRequire(new URL('../../packages/protocol/package.json', import.meta.url))
const examples = require('libphonenumber-js/examples.mobile.json') as Record<string, string>
const { getCountryCallingCode } = require('libphonenumber-js/min') as {
  getCountryCallingCode(region: string): string
}

/** Regions with different lengths, country-code widths and trunk prefixes. */
export const REGIONS = ['US', 'GB', 'DE', 'FR', 'IN', 'BR', 'JP', 'AU', 'NG', 'MX', 'ZA', 'SE'] as const

/**
 * `count` distinct valid numbers, spread over {@link REGIONS}: each region's example mobile number with its
 * last digits varied from `start`, kept only when `normalizeNumber` accepts it.
 */
export function generateNumbers(
  count: number,
  start = 0,
  regions: readonly string[] = REGIONS,
): WatchedNumber[] {
  const perRegion = Math.ceil(count / regions.length)
  const out: WatchedNumber[] = []
  const seen = new Set<string>()
  for (const region of regions) {
    const example = examples[region]!
    const cc = getCountryCallingCode(region)
    let made = 0
    const tail = 5
    const width = 10 ** tail
    for (let i = start; made < perRegion && i < start + width; i++) {
      const national = example.slice(0, -tail) + String(i % width).padStart(tail, '0')
      let e164: string
      try {
        e164 = normalizeNumber(`+${cc}${national}`, region as CountryCode)
      } catch {
        continue
      }
      if (seen.has(e164)) continue
      seen.add(e164)
      out.push({ e164, national: e164.slice(1 + cc.length) })
      made++
    }
  }
  return out.slice(0, count)
}
