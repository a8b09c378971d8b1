/**
 * Activation proof of work (frames.proto `ServerHello.activation_pow_bits`, `ActivationStart.pow_solution`).
 *
 * Every `ActivationStart` makes the relay's verifier send an SMS the operator pays for; under load the relay asks
 * for a proof of work first, so that every SMS a botnet makes it send costs CPU. The digest is
 * `SHA-256("parley/v1/activation-pow" ‖ auth_nonce ‖ UTF-8(phone_number) ‖ pow_solution)`; a solution is good for
 * `bits` when the digest starts with at least `bits` zero bits (most significant bit of byte 0 first). The auth
 * nonce is the connection's (`ServerHello.auth_nonce`), so a solution is worth one connection and one number.
 * Pure and isomorphic: the relay checks with {@link checkActivationPow}, a client solves with
 * {@link solveActivationPow}.
 * @module
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { randomBytes } from '@noble/hashes/utils.js'
import { ParleyError } from './errors.js'
import { abytes } from './internal/bytes.js'
import type { RandomSource } from './internal/e2eCrypto.js'

/** Domain-separation label at the start of every activation proof-of-work digest. */
export const ACTIVATION_POW_LABEL = 'parley/v1/activation-pow'
/** Longest `ActivationStart.pow_solution` a relay accepts. */
export const MAX_POW_SOLUTION_BYTES = 32
/** Highest difficulty {@link solveActivationPow} attempts (about 4 × 10⁹ hashes on average). */
export const MAX_ACTIVATION_POW_BITS = 32

const encoder = new TextEncoder()
const LABEL = encoder.encode(ACTIVATION_POW_LABEL)
/** Solutions {@link solveActivationPow} produces: 8 random bytes, then an 8-byte big-endian counter. */
const SOLUTION_BYTES = 16

function checkInputs(nonce: unknown, e164: unknown): asserts nonce is Uint8Array {
  abytes(nonce, undefined, 'nonce')
  if (typeof e164 !== 'string') throw new TypeError('phoneNumber must be a string')
}

function checkBits(bits: unknown, max: number): asserts bits is number {
  if (typeof bits !== 'number' || !Number.isInteger(bits) || bits < 0 || bits > max) {
    throw new RangeError(`bits must be an integer from 0 to ${max}`)
  }
}

/** Leading zero bits of `digest`, counted up to `bits` (enough to decide). */
function hasLeadingZeroBits(digest: Uint8Array, bits: number): boolean {
  const whole = bits >>> 3
  for (let i = 0; i < whole; i++) if (digest[i] !== 0) return false
  const rest = bits & 7
  return rest === 0 || digest[whole]! >>> (8 - rest) === 0
}

/**
 * The digest a proof of work is judged by:
 * `SHA-256("parley/v1/activation-pow" ‖ nonce ‖ UTF-8(e164) ‖ solution)`.
 * @param nonce - the connection's `ServerHello.auth_nonce` (32 bytes from a relay)
 * @param e164 - the number exactly as sent in `ActivationStart.phone_number`
 * @param solution - the candidate `pow_solution`
 * @returns the 32-byte digest
 * @throws TypeError when an argument has the wrong type
 * @example const digest = activationPowDigest(hello.authNonce, '+14155550100', solution)
 */
export function activationPowDigest(nonce: Uint8Array, e164: string, solution: Uint8Array): Uint8Array {
  checkInputs(nonce, e164)
  abytes(solution, undefined, 'solution')
  return sha256.create().update(LABEL).update(nonce).update(encoder.encode(e164)).update(solution).digest()
}

/**
 * Whether `solution` proves `bits` of work for this connection and number. Never throws on the solution itself
 * (which comes from the network): one longer than {@link MAX_POW_SOLUTION_BYTES} is simply not good.
 * @param nonce - the connection's auth nonce
 * @param e164 - the number exactly as sent in `ActivationStart.phone_number`
 * @param solution - `ActivationStart.pow_solution` (empty is good for 0 bits)
 * @param bits - the difficulty announced in `ServerHello.activation_pow_bits`; 0 accepts anything up to 32 bytes
 * @returns true when the digest has at least `bits` leading zero bits
 * @throws TypeError when `nonce`, `e164` or `solution` has the wrong type; RangeError when `bits` is not an
 *   integer from 0 to 256
 * @example if (!checkActivationPow(conn.nonce, phoneNumber, powSolution, conn.activationPowBits)) refuse()
 */
export function checkActivationPow(
  nonce: Uint8Array,
  e164: string,
  solution: Uint8Array,
  bits: number,
): boolean {
  checkInputs(nonce, e164)
  abytes(solution, undefined, 'solution')
  checkBits(bits, 256)
  if (solution.length > MAX_POW_SOLUTION_BYTES) return false
  if (bits === 0) return true
  return hasLeadingZeroBits(activationPowDigest(nonce, e164, solution), bits)
}

/**
 * Finds a proof of work for an `ActivationStart`: 8 random bytes followed by an 8-byte counter 0, 1, 2, … until
 * the digest is good (on average `2^bits` SHA-256 computations; about 4 × 10⁶ at 22 bits, seconds in a browser).
 * The random part makes every call find a fresh solution: a relay accepts a solution once per connection, so a
 * second code request on the same connection needs a second call. Synchronous: run it off the UI thread for
 * high difficulties.
 * @param nonce - the connection's `ServerHello.auth_nonce`
 * @param e164 - the number exactly as it will be sent in `ActivationStart.phone_number`
 * @param bits - `ServerHello.activation_pow_bits` (0: nothing to prove)
 * @param options.maxTries - give up after this many hashes (default `2^(bits + 8)`: failing is then
 *   astronomically unlikely)
 * @param options.random - source of the 8 random bytes (default: the platform CSPRNG; fixed in tests)
 * @returns the `pow_solution` to send: empty for 0 bits, else 16 bytes
 * @throws TypeError for wrong argument types; RangeError when `bits` is not an integer from 0 to
 *   {@link MAX_ACTIVATION_POW_BITS} or `maxTries` is not a positive integer; ParleyError `TIMEOUT` when no
 *   solution was found within `maxTries`
 * @example
 * const powSolution = solveActivationPow(hello.authNonce, e164, hello.activationPowBits ?? 0)
 * await request({ activationStart: { phoneNumber: e164, consent: true, powSolution } })
 */
export function solveActivationPow(
  nonce: Uint8Array,
  e164: string,
  bits: number,
  options: { maxTries?: number; random?: RandomSource } = {},
): Uint8Array {
  checkInputs(nonce, e164)
  checkBits(bits, MAX_ACTIVATION_POW_BITS)
  if (bits === 0) return new Uint8Array(0)
  const maxTries = options.maxTries ?? 2 ** (bits + 8)
  if (!Number.isSafeInteger(maxTries) || maxTries < 1) {
    throw new RangeError('maxTries must be a positive integer')
  }
  // Hash the fixed prefix once; each try continues a copy of that state with its counter.
  const prefix = sha256.create().update(LABEL).update(nonce).update(encoder.encode(e164))
  const state = sha256.create()
  const digest = new Uint8Array(32)
  const salt = (options.random ?? randomBytes)(8)
  abytes(salt, 8, 'random(8)')
  const solution = new Uint8Array(SOLUTION_BYTES)
  solution.set(salt)
  const view = new DataView(solution.buffer)
  for (let i = 0; i < maxTries; i++) {
    view.setUint32(8, Math.floor(i / 2 ** 32), false)
    view.setUint32(12, i >>> 0, false)
    prefix._cloneInto(state)
    state.update(solution).digestInto(digest)
    if (hasLeadingZeroBits(digest, bits)) return solution
  }
  throw new ParleyError('TIMEOUT', `no ${bits}-bit activation proof of work within ${maxTries} tries`)
}
