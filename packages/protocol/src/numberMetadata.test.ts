// The generated number metadata (src/gen/numberMetadata.ts: libphonenumber-js's `min` metadata without its
// formatting rules) against the full `min` metadata it was made from: over numbers of every region — the
// library's example number in national, international and IDD form, and thousands of random digit strings of
// plausible and implausible lengths, with and without the national prefix — both give the same E.164 number or
// the same refusal. Also: the generated file is what `pnpm gen` makes from the installed library.
import { createRequire } from 'node:module'
import type { CountryCode, MetadataJson } from 'libphonenumber-js/core'
import fullMetadata from 'libphonenumber-js/min/metadata'
import { describe, expect, it } from 'vitest'
import stripped from './gen/numberMetadata.js'
import { normalizeNumberWith } from './phoneNumbers.js'

const require = createRequire(import.meta.url)
const examples = require('libphonenumber-js/examples.mobile.json') as Record<string, string>
const full = fullMetadata as unknown as MetadataJson

/** What normalising gives: the number, or the refusal's message. */
function outcome(metadata: MetadataJson, input: string, region?: CountryCode): string {
  try {
    return normalizeNumberWith(metadata, input, region)
  } catch (err) {
    return `${(err as Error).name}: ${(err as Error).message}`
  }
}

/** A small deterministic generator (xorshift32), so a failure names inputs that can be tried again. */
function digitsFrom(seed: number): (n: number) => string {
  let x = seed >>> 0 || 1
  return (n) => {
    let out = ''
    for (let i = 0; i < n; i++) {
      x ^= x << 13
      x >>>= 0
      x ^= x >>> 17
      x ^= x << 5
      x >>>= 0
      out += String(x % 10)
    }
    return out
  }
}

type Entry = [string, string, string, number[], unknown[], string?]

describe('the generated number metadata', () => {
  it('holds every region and calling code of the full metadata, only without formats', () => {
    expect(Object.keys(stripped.countries).sort()).toEqual(Object.keys(full.countries).sort())
    expect(stripped.country_calling_codes).toEqual(full.country_calling_codes)
    for (const [region, entry] of Object.entries(full.countries) as [string, Entry][]) {
      const mine = (stripped.countries as Record<string, unknown>)[region] as Entry
      expect(mine[4]).toEqual(Array.isArray(entry[4]) && entry[4].length > 0 ? [] : entry[4])
      expect([...mine.slice(0, 4), ...mine.slice(5)]).toEqual([...entry.slice(0, 4), ...entry.slice(5)])
    }
  })

  it('normalises every input as the full metadata does, over numbers of every region', () => {
    const digits = digitsFrom(0x5eed)
    let compared = 0
    let valid = 0
    const differ: string[] = []
    const regions = Object.keys(full.countries) as CountryCode[]
    for (const region of regions) {
      const entry = full.countries[region] as unknown as Entry
      const cc = entry[0]
      const idd = entry[1]
      const prefix = entry[5]
      const lengths = entry[3] ?? [8]
      const inputs: [string, CountryCode | undefined][] = []
      const example = examples[region]
      if (example !== undefined) {
        inputs.push([example, region], [`+${cc} ${example}`, undefined], [`+${cc}${example}`, 'US'])
        if (prefix) inputs.push([`${prefix}${example}`, region])
        if (/^\d+$/.test(idd)) inputs.push([`${idd}${cc}${example}`, region])
      }
      for (let i = 0; i < 12; i++) {
        const n = (lengths[i % lengths.length] ?? 8) + ((i % 3) - 1)
        const national = digits(Math.max(1, n))
        inputs.push([national, region], [`+${cc}${national}`, undefined])
        if (prefix) inputs.push([`${prefix}${national}`, region])
      }
      for (const [input, r] of inputs) {
        const want = outcome(full, input, r)
        const got = outcome(stripped, input, r)
        compared++
        if (want.startsWith('+')) valid++
        if (want !== got) differ.push(`${JSON.stringify(input)} in ${r}: ${want} ≠ ${got}`)
      }
    }
    expect(differ).toEqual([])
    // Enough of each kind for the comparison to mean something.
    expect(compared).toBeGreaterThan(8000)
    expect(valid).toBeGreaterThan(1000)
  })
})
