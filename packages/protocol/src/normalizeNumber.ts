/**
 * `normalizeNumber` with the number metadata (libphonenumber's `min`, without formatting rules) bundled statically
 * — for Node and the relay. Browser
 * code should prefer `loadNumberMetadata()` + `normalizeNumberWith()` so the metadata is fetched lazily.
 * @module
 */
import type { CountryCode } from 'libphonenumber-js/core'
import minMetadata from './gen/numberMetadata.js'
import { normalizeNumberWith } from './phoneNumbers.js'

/**
 * Normalises a phone number to E.164 (docs/architecture.md §4.1).
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
  return normalizeNumberWith(minMetadata, input, defaultRegion)
}
