import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ParleyError } from './errors.js'
import { normalizeNumber } from './normalizeNumber.js'
import { type CountryCode, numberToOprfInput } from './phoneNumbers.js'

function invalidNumberError(input: string, region?: CountryCode): ParleyError {
  let thrown: unknown
  try {
    normalizeNumber(input, region)
  } catch (err) {
    thrown = err
  }
  expect(thrown).toBeInstanceOf(ParleyError)
  expect((thrown as ParleyError).code).toBe('INVALID_NUMBER')
  return thrown as ParleyError
}

describe('normalizeNumber', () => {
  const valid: [string, CountryCode | undefined, string][] = [
    ['(415) 555-0102', 'US', '+14155550102'],
    ['415.555.0102', 'US', '+14155550102'],
    ['1 415 555 0102', 'US', '+14155550102'],
    ['+1 415 555 0100', undefined, '+14155550100'],
    ['+1-415-555-0100', 'GB', '+14155550100'],
    ['  +1 (415) 555-0100  ', undefined, '+14155550100'],
    ['+44 20 7946 0000', undefined, '+442079460000'],
    ['+44 (0)20 7946 0000', undefined, '+442079460000'],
    ['020 7946 0000', 'GB', '+442079460000'],
    ['00 44 20 7946 0000', 'DE', '+442079460000'],
    ['011 44 20 7946 0000', 'US', '+442079460000'],
    ['+33 6 12 34 56 78', undefined, '+33612345678'],
    ['06 12 34 56 78', 'FR', '+33612345678'],
    ['030 901820', 'DE', '+4930901820'],
    ['03-1234-5678', 'JP', '+81312345678'],
    ['０２０ ７９４６ ００００', 'GB', '+442079460000'],
  ]
  for (const [input, region, e164] of valid) {
    it(`normalises ${JSON.stringify(input)}${region ? ` in ${region}` : ''} to ${e164}`, () => {
      expect(normalizeNumber(input, region)).toBe(e164)
    })
  }

  it('accepts the fictional 555-01xx numbers our README uses (isValid() with the min metadata)', () => {
    for (let i = 100; i <= 199; i++) {
      expect(normalizeNumber(`+1 415 555 0${i}`)).toBe(`+14155550${i}`)
    }
  })

  const invalid: [string, string, CountryCode | undefined][] = [
    ['empty', '', 'US'],
    ['blank', '   ', 'US'],
    ['garbage', '!!@@##', 'US'],
    ['letters only', 'abcdefg', 'US'],
    ['letters mixed in', '415-555-01AB', 'US'],
    ['a vanity number', '1-800-FLOWERS', 'US'],
    ['text around the number', 'call (415) 555-0102 today', 'US'],
    ['too short', '12345', 'US'],
    ['a bare plus', '+', undefined],
    ['a single digit', '7', 'GB'],
    ['too long', '+1 415 555 0100 0000 0000', undefined],
    ['a national number without a region', '415 555 0102', undefined],
    ['an unassigned country code', '+999 1234567', undefined],
    ['a number invalid in its region', '+1 555 555 0100', undefined],
    ['a number with an extension', '+1 415 555 0100 ext. 5', undefined],
    ['a UK number with a truncated subscriber number', '020 7946', 'GB'],
  ]
  for (const [what, input, region] of invalid) {
    it(`refuses ${what} with INVALID_NUMBER and no digits of the input in the message`, () => {
      const err = invalidNumberError(input, region)
      for (const digit of input.replace(/\D/g, '')) expect(err.message).not.toContain(digit)
      expect(err.message).not.toMatch(/\d/)
    })
  }

  it('never puts a digit in an INVALID_NUMBER message, whatever the input (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 40 }),
        fc.constantFrom<CountryCode | undefined>('US', 'GB', 'DE', undefined),
        (s, region) => {
          try {
            const e164 = normalizeNumber(s, region)
            expect(e164).toMatch(/^\+[1-9]\d{6,14}$/)
          } catch (err) {
            expect(ParleyError.is(err, 'INVALID_NUMBER')).toBe(true)
            expect((err as Error).message).not.toMatch(/\d/)
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  it('throws TypeError for a non-string input and RangeError for an unknown region', () => {
    expect(() => normalizeNumber(4155550102 as unknown as string, 'US')).toThrow(TypeError)
    expect(() => normalizeNumber('(415) 555-0102', 'XX' as CountryCode)).toThrow(RangeError)
  })
})

describe('numberToOprfInput', () => {
  it('encodes the E.164 string as UTF-8 bytes', () => {
    expect(numberToOprfInput('+14155550100')).toEqual(new TextEncoder().encode('+14155550100'))
    expect(Array.from(numberToOprfInput('+4930901820'))).toEqual([
      0x2b, 0x34, 0x39, 0x33, 0x30, 0x39, 0x30, 0x31, 0x38, 0x32, 0x30,
    ])
  })

  it('gives every spelling of a number the same input', () => {
    const a = numberToOprfInput(normalizeNumber('(415) 555-0102', 'US'))
    const b = numberToOprfInput(normalizeNumber('+1 415 555 0102'))
    expect(a).toEqual(b)
  })

  it('throws TypeError for anything that is not E.164, without digits in the message', () => {
    for (const bad of [
      '14155550100',
      '+04155550100',
      '+1415555010000000',
      '+12345',
      ' +14155550100',
      '+1 415 555 0100',
      '',
    ]) {
      expect(() => numberToOprfInput(bad)).toThrow(TypeError)
      try {
        numberToOprfInput(bad)
      } catch (err) {
        expect((err as Error).message).not.toMatch(/\d/)
      }
    }
    expect(() => numberToOprfInput(14155550100 as unknown as string)).toThrow(TypeError)
  })

  it('accepts the E.164 length bounds (7 and 15 digits)', () => {
    expect(numberToOprfInput('+1234567').length).toBe(8)
    expect(numberToOprfInput('+123456789012345').length).toBe(16)
  })
})

describe('normalizeNumberWith (lazily loaded metadata)', () => {
  it('gives exactly what normalizeNumber gives, errors included', async () => {
    const { loadNumberMetadata, normalizeNumberWith } = await import('./phoneNumbers.js')
    const metadata = await loadNumberMetadata()
    const cases: [string, CountryCode | undefined][] = [
      ['(415) 555-0102', 'US'],
      ['+44 20 7946 0000', undefined],
      ['020 7946 0000', 'GB'],
      ['garbage', 'US'],
      ['', 'US'],
      ['+1 415 555 0100 ext. 5', undefined],
    ]
    for (const [input, region] of cases) {
      const a = (() => {
        try {
          return normalizeNumber(input, region)
        } catch (err) {
          return (err as { code?: string }).code
        }
      })()
      const b = (() => {
        try {
          return normalizeNumberWith(metadata, input, region)
        } catch (err) {
          return (err as { code?: string }).code
        }
      })()
      expect(b).toBe(a)
    }
    expect(normalizeNumberWith(metadata, '(415) 555-0102', 'US')).toBe('+14155550102')
  })

  it('refuses missing metadata with a TypeError', async () => {
    const { normalizeNumberWith } = await import('./phoneNumbers.js')
    expect(() => normalizeNumberWith(null as never, '+14155550102')).toThrow(TypeError)
  })
})
