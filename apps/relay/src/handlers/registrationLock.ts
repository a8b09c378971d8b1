/**
 * Registration lock (SIM-swap protection): `SetRegistrationLock` stores a slow salted verifier of the user's PIN
 * (the PIN never reaches the relay); an `ActivationConfirm` of the number with the right code must then carry
 * the PIN's proof, until the account has been inactive for `--registration-lock-lapse-seconds`. PIN guesses are
 * limited per account (`--registration-lock-guesses-per-day`) in a bucket filed under the account's quota id,
 * so it outlives restarts and is the same on every node.
 * @module
 */
import { timingSafeEqual } from 'node:crypto'
import {
  type ClientBodyOf,
  isRegistrationLockLogN,
  ParleyError,
  REGISTRATION_LOCK_PROOF_BYTES,
  REGISTRATION_LOCK_SALT_BYTES,
  registrationLockVerifier,
} from '@parley/protocol'
import type { DeviceScope, RequestScope } from './scope.js'
import { notPrimaryOrGone, quotaId, type Reply } from './util.js'

/** `SetRegistrationLock` → `RegistrationLockSet`: sets, replaces or (with an empty verifier) clears the lock. */
export async function setRegistrationLock(
  scope: DeviceScope,
  request: ClientBodyOf<'setRegistrationLock'>,
): Promise<Reply> {
  const device = scope.device
  const f = request
  const verifier = f.verifier
  const { store, metrics } = scope.ctx
  if (verifier.length === 0) {
    if (!(await store.setRegistrationLock(device.address, device.deviceId, null)))
      throw await notPrimaryOrGone(scope, 'set the registration lock')
    metrics.registrationLock.inc({ outcome: 'cleared' })
    return { registrationLockSet: {} }
  }
  if (verifier.length !== REGISTRATION_LOCK_PROOF_BYTES)
    throw new ParleyError('BAD_REQUEST', 'verifier must be 32 bytes, or empty to clear the lock')
  const salt = f.salt
  if (salt.length !== REGISTRATION_LOCK_SALT_BYTES)
    throw new ParleyError('BAD_REQUEST', `salt must be ${REGISTRATION_LOCK_SALT_BYTES} bytes`)
  if (!isRegistrationLockLogN(f.logN)) throw new ParleyError('BAD_REQUEST', 'log_n must be from 14 to 17')
  const lock = { salt, logN: f.logN, verifier, setAtMs: Date.now() }
  if (!(await store.setRegistrationLock(device.address, device.deviceId, lock)))
    throw await notPrimaryOrGone(scope, 'set the registration lock')
  metrics.registrationLock.inc({ outcome: 'set' })
  scope.ctx.log.info({ conn: scope.id }, 'registration lock set')
  return { registrationLockSet: {} }
}

/**
 * Called by `ActivationConfirm` once the code has matched and before anything is registered: whether the
 * activation may go on, and whether the account's lock stays with the new device.
 * @param address - the address the number maps to
 * @param proof - `ActivationConfirm.registration_lock_proof` (empty when none was sent)
 * @returns true when a lock is in force and the proof is right (the lock stays); false when there is no lock in
 *   force (none, or lapsed: it is then dropped by the registration)
 * @throws ParleyError `REGISTRATION_LOCKED` (with the challenge) for a missing or wrong proof or when no guess
 *   is left; `BAD_REQUEST` for a proof of the wrong length
 */
export async function checkRegistrationLock(
  conn: RequestScope,
  address: Uint8Array,
  proof: Uint8Array,
): Promise<boolean> {
  const { store, limiter, policies, config, metrics, log } = conn.ctx
  const lock = await store.getRegistrationLock(address)
  if (!lock) return false
  const account = await store.getAccount(address)
  const nowMs = Date.now()
  const lapsesAtMs =
    Math.max(account?.lastActiveMs ?? 0, lock.setAtMs) + config.registrationLockLapseSeconds * 1000
  if (!account || nowMs >= lapsesAtMs) {
    metrics.registrationLock.inc({ outcome: 'lapsed' })
    log.info({ conn: conn.id }, 'registration lock lapsed; the activation goes ahead without it')
    return false
  }
  const key = `reglock:${quotaId(conn, address)}`
  const policy = policies.registrationLockGuesses
  const locked = (message: string, attemptsLeft: number, retryAfterMs: number): ParleyError =>
    new ParleyError('REGISTRATION_LOCKED', message, {
      retryAfterMs: Math.min(retryAfterMs, lapsesAtMs - nowMs),
      registrationLock: {
        salt: lock.salt,
        logN: lock.logN,
        attemptsLeft,
        lapsesInMs: lapsesAtMs - nowMs,
      },
    })
  if (proof.length === 0) {
    // A peek: a request without a proof spends no guess (it had to get the code right to come this far).
    const peek = await limiter.take(key, 0, policy)
    const wait = peek.remaining >= 1 ? 0 : (await limiter.take(key, 1, policy)).retryAfterMs
    metrics.registrationLock.inc({ outcome: 'missing' })
    throw locked('this number’s account has a registration lock: enter its PIN', peek.remaining, wait)
  }
  if (proof.length !== REGISTRATION_LOCK_PROOF_BYTES)
    throw new ParleyError('BAD_REQUEST', 'registration_lock_proof must be 32 bytes')
  const taken = await limiter.take(key, 1, policy)
  if (!taken.allowed) {
    metrics.registrationLock.inc({ outcome: 'exhausted' })
    throw locked('no PIN guesses left for now', 0, taken.retryAfterMs)
  }
  if (!timingSafeEqual(registrationLockVerifier(proof), lock.verifier)) {
    metrics.registrationLock.inc({ outcome: 'wrong' })
    const wait = taken.remaining >= 1 ? 0 : (await limiter.take(key, 1, policy)).retryAfterMs
    throw locked(
      taken.remaining >= 1
        ? `wrong PIN; ${taken.remaining} guesses left`
        : 'wrong PIN; no guesses left for now',
      taken.remaining,
      wait,
    )
  }
  // The owner proved the PIN: the guesses they spent come back.
  await limiter.reset(key)
  metrics.registrationLock.inc({ outcome: 'proved' })
  return true
}
