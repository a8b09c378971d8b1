/**
 * Number-change notices (docs/architecture.md §9.8): when an account moves to a new number, and so to a new
 * address, it sends each contact a notice signed by its account identity under `"parley/v1/address-change"`. A
 * contact follows the account to the new address only when the notice verifies against the identity it pinned
 * and names the address it knew.
 * @module
 */
import type { CryptoOptions } from './cryptoProvider.js'
import { ParleyError } from './errors.js'
import { ADDRESS_BYTES, abytes, equalBytes, IDENTITY_KEY_BYTES } from './internal/bytes.js'
import { label, own, primitives } from './internal/e2eCrypto.js'
import { decodeMessage } from './internal/pb.js'
import { openSignedBody, signBody } from './internal/signedBody.js'

const LABEL_ADDRESS_CHANGE = label('parley/v1/address-change')

/** What an address-change notice says. */
export interface AddressChangeFields {
  /** The account's 32-byte address before the change. */
  readonly oldAddress: Uint8Array
  /** The account's 32-byte address after the change; not the old one. */
  readonly newAddress: Uint8Array
  /** When the number changed, in ms since the Unix epoch (a non-negative safe integer). */
  readonly changedAtMs: number
}

/** What {@link verifyAddressChange} checks a notice against. */
export interface VerifyAddressChangeOptions {
  /** The account identity the contact pinned (32-byte Ed25519 public key). */
  readonly identityKey: Uint8Array
  /** The address the contact knows the account by (32 bytes); the notice must move from it. */
  readonly oldAddress: Uint8Array
}

function aTime(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer (ms since the epoch)`)
  }
}

/**
 * Signs an address-change notice with the account identity.
 * @param fields - the old and new addresses and when the number changed
 * @param identitySecretKey - the account identity's 32-byte Ed25519 secret seed
 * @returns an encoded `parley.v1.AddressChange`
 * @throws TypeError / RangeError for wrong lengths, a bad time, or equal addresses
 * @example const notice = signAddressChange({ oldAddress, newAddress, changedAtMs: Date.now() }, identity.secretKey)
 */
export function signAddressChange(fields: AddressChangeFields, identitySecretKey: Uint8Array): Uint8Array {
  if (typeof fields !== 'object' || fields === null) throw new TypeError('fields must be an object')
  abytes(identitySecretKey, 32, 'identitySecretKey')
  abytes(fields.oldAddress, ADDRESS_BYTES, 'oldAddress')
  abytes(fields.newAddress, ADDRESS_BYTES, 'newAddress')
  aTime(fields.changedAtMs, 'changedAtMs')
  if (equalBytes(fields.oldAddress, fields.newAddress)) throw new RangeError('newAddress is oldAddress')
  return signBody(
    'AddressChange',
    'AddressChangeBody',
    { oldAddress: fields.oldAddress, newAddress: fields.newAddress, changedAtMs: fields.changedAtMs },
    LABEL_ADDRESS_CHANGE,
    identitySecretKey,
  )
}

/**
 * Verifies an address-change notice from a contact: signed by the pinned account identity (checked before the
 * body is read), canonically encoded, moving from `oldAddress` to another 32-byte address.
 * @param notice - an encoded `parley.v1.AddressChange` (network input)
 * @param expected - the pinned identity and the address the contact is known by
 * @param options - `crypto`: a faster Ed25519 verifier (see {@link CryptoOptions})
 * @returns what the notice says
 * @throws TypeError / RangeError for malformed `expected` (caller mistakes); ParleyError `VERIFICATION_FAILED`
 *   for anything wrong with the notice
 * @example const { newAddress } = verifyAddressChange(bytes, { identityKey: pinned, oldAddress: contact.address })
 */
export function verifyAddressChange(
  notice: Uint8Array,
  expected: VerifyAddressChangeOptions,
  options: CryptoOptions = {},
): AddressChangeFields {
  if (typeof expected !== 'object' || expected === null) throw new TypeError('expected must be an object')
  abytes(expected.identityKey, IDENTITY_KEY_BYTES, 'identityKey')
  abytes(expected.oldAddress, ADDRESS_BYTES, 'oldAddress')
  const c = primitives(options?.crypto)
  const fail = (why: string): never => {
    throw new ParleyError('VERIFICATION_FAILED', `address change: ${why}`)
  }
  const body = openSignedBody(
    c,
    'AddressChange',
    'AddressChangeBody',
    notice,
    LABEL_ADDRESS_CHANGE,
    expected.identityKey,
    'address change',
  )
  const oldAddress = own(body.oldAddress)
  const newAddress = own(body.newAddress)
  if (!equalBytes(oldAddress, expected.oldAddress)) fail('it moves another address')
  if (newAddress.length !== ADDRESS_BYTES) fail('the new address is not 32 bytes')
  if (equalBytes(newAddress, oldAddress)) fail('the new address is the old one')
  return { oldAddress, newAddress, changedAtMs: body.changedAtMs }
}

/**
 * What an address-change notice *claims*, unverified: read to find the identity to verify it with (the one pinned
 * for `oldAddress`), never to act on. Act only on what {@link verifyAddressChange} returns.
 * @param notice - an encoded `parley.v1.AddressChange` (network input)
 * @returns the claimed addresses and time
 * @throws ParleyError `BAD_REQUEST` when it does not decode to two 32-byte addresses
 * @example const { oldAddress } = addressChangeClaims(bytes); const pinned = identityPinnedFor(oldAddress)
 */
export function addressChangeClaims(notice: Uint8Array): AddressChangeFields {
  abytes(notice, undefined, 'notice')
  try {
    const body = decodeMessage('AddressChangeBody', decodeMessage('AddressChange', notice).body)
    const oldAddress = own(body.oldAddress)
    const newAddress = own(body.newAddress)
    const changedAtMs = Number(body.changedAtMs ?? 0)
    if (
      oldAddress.length === ADDRESS_BYTES &&
      newAddress.length === ADDRESS_BYTES &&
      Number.isSafeInteger(changedAtMs)
    )
      return { oldAddress, newAddress, changedAtMs }
  } catch {}
  throw new ParleyError('BAD_REQUEST', 'malformed address change')
}
