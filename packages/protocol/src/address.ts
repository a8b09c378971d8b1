/**
 * Account addresses and their prefixes (docs/architecture.md §4.3–4.4). An address is the account's public
 * pseudonym, derived from the OPRF token of its number; discovery sends only the first `b` bits of each
 * address so the relay learns prefixes, not contacts.
 * @module
 */
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha512 } from '@noble/hashes/sha2.js'
import { OPRF_OUTPUT_BYTES } from './oprf.js'

/** Length of an account address. */
export const ADDRESS_BYTES = 32

const ADDRESS_INFO = new TextEncoder().encode('parley/v1/address')
const EMPTY = new Uint8Array(0)
const MAX_PREFIX_BITS = ADDRESS_BYTES * 8

function assertBytes(value: unknown, length: number, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`)
  if (value.length !== length) throw new RangeError(`${name} must be ${length} bytes`)
}

function assertBits(bits: unknown): asserts bits is number {
  if (typeof bits !== 'number') throw new TypeError('bits must be a number')
  if (!Number.isInteger(bits) || bits < 1 || bits > MAX_PREFIX_BITS) {
    throw new RangeError(`bits must be an integer from 1 to ${MAX_PREFIX_BITS}`)
  }
}

/** Mask for the last byte of a `bits`-bit prefix: its high `bits mod 8` bits, or all of it. */
function lastByteMask(bits: number): number {
  const rem = bits % 8
  return rem === 0 ? 0xff : (0xff << (8 - rem)) & 0xff
}

/**
 * Derives an account address from its OPRF token (docs/architecture.md §4.3):
 * `HKDF-SHA512(ikm = token, salt = empty, info = "parley/v1/address")`, first 32 bytes (RFC 5869).
 * An empty salt is, per RFC 5869 §2.2, the same as a salt of 64 zero bytes.
 *
 * @param token - the 64-byte OPRF output for the number (`oprfFinalize` / `oprfEvaluate`, RFC 9497 §3.3.2)
 * @returns the 32-byte address
 * @throws TypeError if `token` is not a Uint8Array; RangeError if it is not 64 bytes
 * @example
 * const [token] = oprfFinalize([input], [blind], evaluated, [blindedElement], proof, pinnedKey)
 * const address = addressFromToken(token)
 */
export function addressFromToken(token: Uint8Array): Uint8Array {
  assertBytes(token, OPRF_OUTPUT_BYTES, 'token')
  return hkdf(sha512, token, EMPTY, ADDRESS_INFO, ADDRESS_BYTES)
}

/**
 * The first `bits` bits of an address (docs/architecture.md §4.4), as `ceil(bits / 8)` bytes, most significant bit
 * first, with the unused low bits of the last byte set to zero.
 *
 * @param address - a 32-byte address
 * @param bits - how many leading bits to keep, 1 to 256 (discovery's default is 16)
 * @returns the prefix, `ceil(bits / 8)` bytes
 * @throws TypeError for a non-Uint8Array address or non-number `bits`; RangeError if the address is not
 *   32 bytes or `bits` is not an integer from 1 to 256
 * @example
 * addressPrefix(address, 12) // 2 bytes: address[0], then the high nibble of address[1]
 */
export function addressPrefix(address: Uint8Array, bits: number): Uint8Array {
  assertBytes(address, ADDRESS_BYTES, 'address')
  assertBits(bits)
  const prefix = address.slice(0, Math.ceil(bits / 8))
  prefix[prefix.length - 1]! &= lastByteMask(bits)
  return prefix
}

/**
 * Whether an address starts with the given `bits`-bit prefix (docs/architecture.md §4.4). Only the first `bits` bits
 * of `prefix` are compared: unused low bits of its last byte are ignored, so a prefix matches exactly the
 * addresses for which {@link addressPrefix} gives the same leading bits.
 *
 * @param address - a 32-byte address
 * @param prefix - a prefix of exactly `ceil(bits / 8)` bytes
 * @param bits - the prefix length in bits, 1 to 256
 * @returns `true` if the first `bits` bits of `address` and `prefix` are equal
 * @throws TypeError / RangeError for a wrong-type or wrong-length address or prefix, or invalid `bits`
 * @example
 * addressHasPrefix(address, addressPrefix(address, 16), 16) // true
 */
export function addressHasPrefix(address: Uint8Array, prefix: Uint8Array, bits: number): boolean {
  assertBytes(address, ADDRESS_BYTES, 'address')
  assertBits(bits)
  const length = Math.ceil(bits / 8)
  assertBytes(prefix, length, 'prefix')
  for (let i = 0; i < length - 1; i++) if (address[i] !== prefix[i]) return false
  const mask = lastByteMask(bits)
  return (address[length - 1]! & mask) === (prefix[length - 1]! & mask)
}
