/**
 * Registration lock (frames.proto `SetRegistrationLock`, `ActivationConfirm.registration_lock_proof`).
 *
 * A user may protect their number's account with a PIN: a later activation of the number on another device must
 * then prove the PIN, so that whoever receives the SMS code (a SIM swap, a ported number) cannot take the account
 * over. The PIN never leaves the device: the device stretches it with scrypt into a *proof*
 * (`scrypt(PIN, salt, N = 2^logN, r = 8, p = 1)`, 32 bytes), and the relay keeps only the *verifier*
 * `SHA-256("parley/v1/registration-lock" ‖ proof)`. Testing one PIN against a stolen verifier costs one scrypt;
 * testing one against the relay costs one of the account's few guesses.
 * Pure and isomorphic.
 * @module
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { abytes } from './internal/bytes.js'
import { scrypt } from './internal/scrypt.js'

/** Domain-separation label of the verifier digest. */
export const REGISTRATION_LOCK_LABEL = 'parley/v1/registration-lock'
/** Length of the salt a device chooses for its lock. */
export const REGISTRATION_LOCK_SALT_BYTES = 16
/** Length of a proof and of a verifier. */
export const REGISTRATION_LOCK_PROOF_BYTES = 32
/** The scrypt cost a device uses for a new lock: N = 2^15 (32 MiB of memory with r = 8). */
export const REGISTRATION_LOCK_LOG_N = 15
/** The lowest scrypt cost a relay accepts and a device computes. */
export const MIN_REGISTRATION_LOCK_LOG_N = 14
/** The highest scrypt cost a relay accepts and a device computes (2^17: 128 MiB), so neither can be made to
 * spend more. */
export const MAX_REGISTRATION_LOCK_LOG_N = 17
/** Shortest PIN, in characters after normalisation. */
export const MIN_PIN_LENGTH = 4
/** Longest PIN, in characters after normalisation. */
export const MAX_PIN_LENGTH = 64

const LABEL = new TextEncoder().encode(REGISTRATION_LOCK_LABEL)

/**
 * The form of a PIN that is stretched: Unicode NFKD, surrounding whitespace removed, so the same PIN typed on
 * two keyboards gives the same proof.
 * @throws TypeError when it is not a string of {@link MIN_PIN_LENGTH}–{@link MAX_PIN_LENGTH} characters
 */
export function normalizePin(pin: unknown): string {
  if (typeof pin !== 'string') throw new TypeError('the PIN must be a string')
  const p = pin.normalize('NFKD').trim()
  if ([...p].length < MIN_PIN_LENGTH || [...p].length > MAX_PIN_LENGTH) {
    throw new TypeError(`the PIN must have ${MIN_PIN_LENGTH} to ${MAX_PIN_LENGTH} characters`)
  }
  return p
}

/** Whether `logN` is a scrypt cost a lock may use. */
export function isRegistrationLockLogN(logN: unknown): logN is number {
  return (
    typeof logN === 'number' &&
    Number.isInteger(logN) &&
    logN >= MIN_REGISTRATION_LOCK_LOG_N &&
    logN <= MAX_REGISTRATION_LOCK_LOG_N
  )
}

/**
 * The proof of a PIN: `scrypt(normalizePin(pin), salt, N = 2^logN, r = 8, p = 1, dkLen = 32)`. Takes about a
 * tenth of a second natively and up to a second in a browser at the default cost; yields to the event loop
 * while it runs.
 * @param pin - the user's PIN
 * @param salt - the lock's salt (any length; locks use {@link REGISTRATION_LOCK_SALT_BYTES})
 * @param logN - the lock's cost, {@link MIN_REGISTRATION_LOCK_LOG_N}–{@link MAX_REGISTRATION_LOCK_LOG_N}
 * @throws TypeError for a PIN {@link normalizePin} refuses; RangeError for a cost out of range; ParleyError
 *   `UNSUPPORTED` without WebCrypto (a browser page not served over https or from localhost)
 * @example const proof = await registrationLockProof('4921', salt, REGISTRATION_LOCK_LOG_N)
 */
export async function registrationLockProof(
  pin: string,
  salt: Uint8Array,
  logN: number,
): Promise<Uint8Array> {
  const p = normalizePin(pin)
  abytes(salt, undefined, 'salt')
  if (!isRegistrationLockLogN(logN)) {
    throw new RangeError(
      `logN must be an integer from ${MIN_REGISTRATION_LOCK_LOG_N} to ${MAX_REGISTRATION_LOCK_LOG_N}`,
    )
  }
  return scrypt(new TextEncoder().encode(p), salt, 2 ** logN, 8, REGISTRATION_LOCK_PROOF_BYTES)
}

/**
 * What the relay stores for a lock: `SHA-256("parley/v1/registration-lock" ‖ proof)`.
 * @throws TypeError / RangeError unless `proof` is {@link REGISTRATION_LOCK_PROOF_BYTES} bytes
 */
export function registrationLockVerifier(proof: Uint8Array): Uint8Array {
  abytes(proof, REGISTRATION_LOCK_PROOF_BYTES, 'proof')
  const input = new Uint8Array(LABEL.length + proof.length)
  input.set(LABEL)
  input.set(proof, LABEL.length)
  return sha256(input)
}
