/**
 * Phone number normalisation (docs/architecture.md §4.1), with the metadata passed in: `normalizeNumber.ts` wraps this with
 * the bundled metadata; keeping the two apart lets browser bundles load the metadata lazily: whatever the user typed or the address book holds becomes
 * one canonical E.164 string, so the same number always hashes to the same OPRF input and address.
 *
 * Uses libphonenumber-js's `min` metadata (the smallest that still validates numbers per region) without its
 * formatting rules, which parsing and validation never read (src/gen/numberMetadata.ts, made by `pnpm gen`).
 * `isValid()` with this metadata accepts the fictional 555-01xx numbers used in our README and tests
 * (e.g. +1 415 555 0100), so no `isPossible()` fallback is needed.
 * @module
 */
import {
  type CountryCode,
  isSupportedCountry,
  type MetadataJson,
  parsePhoneNumberWithError,
} from 'libphonenumber-js/core'
import { ParleyError } from './errors.js'

/** An ISO 3166-1 alpha-2 region code known to libphonenumber, e.g. `'US'`, `'GB'` (the `defaultRegion`). */
export type { CountryCode } from 'libphonenumber-js/core'
/** libphonenumber metadata, as {@link loadNumberMetadata} returns it. */
export type NumberMetadata = MetadataJson

/** E.164: a `+`, a non-zero country code digit, at most 15 digits in all (ITU-T E.164). */
const E164 = /^\+[1-9]\d{6,14}$/
const encoder = new TextEncoder()

/**
 * Loads the number metadata that {@link normalizeNumberWith} needs, as a separate chunk: a browser bundle that
 * uses only this and `normalizeNumberWith` (as `@parley/client` does) does not carry the metadata (~10 KB
 * gzipped) in its initial download, only when the first number is normalised.
 * @returns libphonenumber-js's `min` metadata without its formatting rules
 * @example const metadata = await loadNumberMetadata(); normalizeNumberWith(metadata, '(415) 555-0102', 'US')
 */
export async function loadNumberMetadata(): Promise<NumberMetadata> {
  const mod = await import('./gen/numberMetadata.js')
  return mod.default
}

/**
 * {@link normalizeNumber} with explicitly supplied metadata (from {@link loadNumberMetadata}); same rules,
 * same errors.
 * @param metadata - libphonenumber metadata
 * @param input - the number as typed or stored
 * @param defaultRegion - region for national formats
 * @returns the number in E.164
 * @throws ParleyError `INVALID_NUMBER`; TypeError / RangeError for bad arguments
 * @example normalizeNumberWith(await loadNumberMetadata(), '(415) 555-0102', 'US') // '+14155550102'
 */
export function normalizeNumberWith(
  metadata: NumberMetadata,
  input: string,
  defaultRegion?: CountryCode,
): string {
  if (typeof input !== 'string') throw new TypeError('input must be a string')
  if (typeof metadata !== 'object' || metadata === null)
    throw new TypeError('metadata must be libphonenumber metadata')
  if (defaultRegion !== undefined && !isSupportedCountry(defaultRegion, metadata)) {
    throw new RangeError('defaultRegion is not a supported ISO 3166-1 region code')
  }
  const text = input.trim()
  if (text === '') throw new ParleyError('INVALID_NUMBER', 'the phone number is empty')
  let parsed: ReturnType<typeof parsePhoneNumberWithError>
  try {
    // extract: false — the whole string must be the number, not a number found somewhere inside it.
    parsed = parsePhoneNumberWithError(text, { defaultCountry: defaultRegion, extract: false }, metadata)
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
 * The OPRF input for a number: the UTF-8 bytes of its E.164 form (docs/architecture.md §4.2–4.3). Always pass the
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
