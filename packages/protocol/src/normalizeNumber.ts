/**
 * Phone number normalisation (DESIGN.md §4.1): whatever the user typed or the address book holds becomes
 * one canonical E.164 string, so the same number always hashes to the same OPRF input and address.
 *
 * Uses the `libphonenumber-js/min` build (smallest metadata that still validates numbers per region).
 * `isValid()` with this metadata accepts the fictional 555-01xx numbers used in our README and tests
 * (e.g. +1 415 555 0100), so no `isPossible()` fallback is needed.
 * @module
 */
import { type CountryCode, isSupportedCountry, parsePhoneNumberWithError } from 'libphonenumber-js/min'
import { ParleyError } from './errors.js'

/** An ISO 3166-1 alpha-2 region code known to libphonenumber, e.g. `'US'`, `'GB'` (the `defaultRegion`). */
export type { CountryCode } from 'libphonenumber-js/min'

/** E.164: a `+`, a non-zero country code digit, at most 15 digits in all (ITU-T E.164). */
const E164 = /^\+[1-9]\d{6,14}$/
const encoder = new TextEncoder()

/**
 * Normalises a phone number to E.164 (DESIGN.md §4.1).
 *
 * The whole string must be a phone number: surrounding whitespace is ignored, but other text around it
 * ("call +1 …") and letters (vanity numbers such as 1-800-FLOWERS) are refused. National formats need
 * `defaultRegion`; numbers with a `+` or an international prefix (00, 011) do not.
 *
 * Deviation from plain libphonenumber behaviour: a number with an extension ("ext. 5") is refused
 * rather than silently stripped, since the extension would change who is reached but not the address.
 *
 * @param input - the number as typed or stored, e.g. `'(415) 555-0102'` or `'+44 20 7946 0000'`
 * @param defaultRegion - ISO 3166-1 alpha-2 region for numbers written in national format, e.g. `'US'`
 * @returns the number in E.164, e.g. `'+14155550102'`
 * @throws ParleyError `INVALID_NUMBER` if the input is not a valid number for its region (the message
 *   never contains the input or any of its digits); TypeError if `input` is not a string; RangeError if
 *   `defaultRegion` is not a supported region code
 * @example
 * normalizeNumber('(415) 555-0102', 'US') // '+14155550102'
 * normalizeNumber('020 7946 0000', 'GB') // '+442079460000'
 */
export function normalizeNumber(input: string, defaultRegion?: CountryCode): string {
  if (typeof input !== 'string') throw new TypeError('input must be a string')
  if (defaultRegion !== undefined && !isSupportedCountry(defaultRegion)) {
    throw new RangeError('defaultRegion is not a supported ISO 3166-1 region code')
  }
  const text = input.trim()
  if (text === '') throw new ParleyError('INVALID_NUMBER', 'the phone number is empty')
  let parsed: ReturnType<typeof parsePhoneNumberWithError>
  try {
    // extract: false — the whole string must be the number, not a number found somewhere inside it.
    parsed = parsePhoneNumberWithError(text, { defaultCountry: defaultRegion, extract: false })
  } catch (err) {
    // libphonenumber's ParseError messages are fixed reason codes (NOT_A_NUMBER, TOO_SHORT, …), no digits.
    const reason = err instanceof Error && /^[A-Z_]+$/.test(err.message) ? ` (${err.message})` : ''
    throw new ParleyError('INVALID_NUMBER', `not a phone number${reason}`)
  }
  if (parsed.ext !== undefined) {
    throw new ParleyError('INVALID_NUMBER', 'phone numbers with an extension are not supported')
  }
  if (!parsed.isValid()) {
    throw new ParleyError('INVALID_NUMBER', 'not a valid phone number for its region')
  }
  const e164 = parsed.number
  // Belt and braces: never hand a non-E.164 string to the hashing layer. (No digits in messages, not even "E.164".)
  if (!E164.test(e164)) throw new ParleyError('INVALID_NUMBER', 'not a valid international phone number')
  return e164
}

/**
 * The OPRF input for a number: the UTF-8 bytes of its E.164 form (DESIGN.md §4.2–4.3). Always pass the
 * output of {@link normalizeNumber}, so that every way of writing a number yields the same input.
 *
 * @param e164 - a number in E.164, e.g. `'+14155550100'`
 * @returns the bytes to pass to `oprfBlind` / `oprfEvaluate`
 * @throws TypeError if `e164` is not a string matching `^\+[1-9]\d{6,14}$` (the message holds no digits)
 * @example
 * const { blind, blindedElement } = oprfBlind(numberToOprfInput(normalizeNumber('020 7946 0000', 'GB')))
 */
export function numberToOprfInput(e164: string): Uint8Array {
  if (typeof e164 !== 'string' || !E164.test(e164)) {
    throw new TypeError('expected a normalised international number (use normalizeNumber first)')
  }
  return encoder.encode(e164)
}
