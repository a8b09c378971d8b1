/**
 * Opt-in activation (docs/architecture.md §5): `ActivationStart` has the verifier deliver a code; `ActivationConfirm`
 * checks it, registers the device and binds the address the relay derives itself from the number:
 * `addressFromToken(OPRF-Evaluate(sk, number))` — the same address a client computes through the blind OPRF.
 * The number is never logged or stored; requests per number are limited by its keyed hash.
 *
 * Every `ActivationStart` that gets through costs the operator an SMS, so a start passes, cheapest first:
 * its proof of work (`ServerHello.activation_pow_bits`, raised under SMS load; checked before any quota is
 * spent), the source network's quota, the number's exponential backoff and hourly quota, the quota of the
 * number's prefix (first 4 digits after '+': country and area code, where SMS pumping concentrates) and the
 * global SMS quota; then the verifier, whose gateway may still veto it. Code guesses are limited per activation,
 * per network and per number across all its activations.
 * @module
 */
import {
  activationPayload,
  activationPowDigest,
  addressFromToken,
  type ClientBodyOf,
  checkActivationPow,
  MAX_POW_SOLUTION_BYTES,
  normalizeNumber,
  numberCommitment,
  numberToOprfInput,
  oprfEvaluate,
  ParleyError,
  verifyIdentitySignature,
} from '@parley/protocol'
import { resetBackoff, takeBackoff } from '../Backoff.js'
import { RELAY_CRYPTO } from '../internal/nodeVerify.js'
import { smsGuard } from '../SmsGuard.js'
import { VerifierVeto } from '../Verifier.js'
import { evaluateOwnNumber } from './discovery.js'
import { checkPrekeys, NO_PREKEYS, verifyPrekeys } from './prekeys.js'
import { checkRegistrationLock } from './registrationLock.js'
import type { Caller } from './scope.js'
import { refuseOnAnonymous } from './session.js'
import { charge, type Reply, requireBytes, requireE164 } from './util.js'

/**
 * Checks the connection's proof of work (`ServerHello.activation_pow_bits`); each solution is good for one SMS
 * per connection.
 * @returns the solution's digest (hex) to mark as spent once the SMS is sent, or undefined when none is asked
 * @throws ParleyError `BAD_REQUEST` when it is missing, wrong or already spent (counted)
 */
function checkPow(conn: Caller, phoneNumber: string, solution: Uint8Array): string | undefined {
  const { metrics } = conn.ctx
  if (solution.length > MAX_POW_SOLUTION_BYTES) {
    metrics.powRefused.inc({ reason: 'invalid' })
    throw new ParleyError('BAD_REQUEST', `pow_solution must be at most ${MAX_POW_SOLUTION_BYTES} bytes`)
  }
  const bits = conn.activationPowBits
  if (bits <= 0) return undefined
  if (solution.length === 0) {
    metrics.powRefused.inc({ reason: 'missing' })
    throw new ParleyError(
      'BAD_REQUEST',
      `this relay asks for a proof of work: solve ServerHello.activation_pow_bits (${bits}) into pow_solution`,
    )
  }
  if (!checkActivationPow(conn.nonce, phoneNumber, solution, bits)) {
    metrics.powRefused.inc({ reason: 'invalid' })
    throw new ParleyError(
      'BAD_REQUEST',
      `pow_solution does not solve ${bits} bits for this connection and number`,
    )
  }
  const digest = Buffer.from(activationPowDigest(conn.nonce, phoneNumber, solution)).toString('hex')
  if (smsGuard(conn.ctx).spent(conn, digest)) {
    metrics.powRefused.inc({ reason: 'replayed' })
    throw new ParleyError('BAD_REQUEST', 'this pow_solution was already used; solve a new one')
  }
  return digest
}

/** `ActivationStart` → `ActivationStarted`. */
export async function activationStart(
  conn: Caller,
  request: ClientBodyOf<'activationStart'>,
): Promise<Reply> {
  const { activations, verifier, policies, metrics, log, config, limiter } = conn.ctx
  const a = request
  refuseOnAnonymous(conn)
  conn.activating = true
  if (a.consent !== true)
    throw new ParleyError('BAD_REQUEST', 'activation needs the user’s consent (consent: true)')
  const raw = requireE164(a.phoneNumber)
  const e164 = normalizeNumber(raw)
  // Before any quota: a request without its proof of work costs the relay one hash and nobody an SMS.
  const pow = checkPow(conn, raw, a.powSolution)
  await charge(conn, 'activation_ip', `act:net:${conn.network}`, 1, policies.activationIp)
  const numberKey = activations.numberKey(e164)
  // Keyed like the other per-number quotas; reset once an activation of the number completes.
  const backoff = await takeBackoff(limiter, `code:bo:${numberKey}`, {
    baseMs: config.codeBackoffBaseMs,
    maxMs: config.codeBackoffMaxMs,
    forgetMs: config.codeBackoffMaxMs,
  })
  if (!backoff.allowed) {
    metrics.rateLimited.inc({ scope: 'code_backoff' })
    log.warn(
      {
        conn: conn.id,
        scope: 'code_backoff',
        previous: backoff.previous,
        retryAfterMs: backoff.retryAfterMs,
      },
      'quota exhausted',
    )
    throw new ParleyError('RATE_LIMITED', 'code requested again too soon for this number', {
      retryAfterMs: backoff.retryAfterMs,
    })
  }
  await charge(conn, 'code_requests', `code:${numberKey}`, 1, policies.codeRequests)
  // The prefix is the first 4 digits after '+' (country code and the start of the area code): not a number.
  await charge(conn, 'sms_prefix', `sms:prefix:${e164.slice(1, 5)}`, 1, policies.smsPrefix)
  await charge(conn, 'sms_global', 'sms:global', 1, policies.smsGlobal)
  const started = await activations.start(e164)
  try {
    await verifier.sendCode({
      phoneNumber: e164,
      code: started.code,
      activationId: started.activationIdHex,
      expiresInSeconds: started.expiresInSeconds,
    })
  } catch (err) {
    await activations.cancel(started.activationIdHex)
    // A veto: the webhook's 403 / 429, or any verifier refusing with FORBIDDEN.
    if (err instanceof VerifierVeto || ParleyError.is(err, 'FORBIDDEN')) {
      const veto = err instanceof VerifierVeto ? err : undefined
      metrics.activations.inc({ outcome: 'vetoed' })
      log.warn(
        {
          conn: conn.id,
          verifier: verifier.name,
          status: veto?.status ?? null,
          reason: veto?.reason ?? null,
        },
        'verifier vetoed the activation',
      )
      throw err
    }
    metrics.activations.inc({ outcome: 'verifier_failed' })
    log.error(
      { conn: conn.id, verifier: verifier.name, err: { type: (err as Error)?.name } },
      'verifier failed',
    )
    throw ParleyError.is(err) ? err : new ParleyError('UNAVAILABLE', 'the verification service failed')
  }
  const guard = smsGuard(conn.ctx)
  if (pow) guard.spend(conn, pow)
  await guard.smsSent()
  metrics.activations.inc({ outcome: 'started' })
  log.info({ conn: conn.id, activation: started.activationIdHex.slice(0, 8) }, 'activation started')
  return {
    activationStarted: {
      activationId: started.activationId,
      expiresInSeconds: started.expiresInSeconds,
      attemptsLeft: started.attemptsLeft,
    },
  }
}

/**
 * `ActivationConfirm` → `Activated`; the connection is then authenticated as the new device.
 *
 * Order matters against a pre-login attacker: everything cheap is checked first (lengths, counts, the salt),
 * then the network's confirm quota is charged, then the code is checked (each wrong one spends one of the
 * activation's few attempts); only a request with the right code gets its signatures verified, at most
 * `--max-activation-signed-prekeys` + 1 of them. Someone without the code therefore costs the relay no
 * signature check at all (`parley_relay_signature_checks_total{frame="activation_confirm"}` counts them).
 * When the number's account has a registration lock in force, the right code is not enough: the PIN's proof
 * must match too (`REGISTRATION_LOCKED` otherwise, the activation left pending for a retry with the PIN).
 */
export async function activationConfirm(
  conn: Caller,
  request: ClientBodyOf<'activationConfirm'>,
): Promise<Reply> {
  const { activations, store, oprf, fanout, metrics, log, config, policies } = conn.ctx
  const c = request
  refuseOnAnonymous(conn)
  conn.activating = true
  const activationId = requireBytes(c.activationId, 16, 'activation_id')
  const identityKey = requireBytes(c.identityKey, 32, 'identity_key')
  const signature = c.identitySignature
  const upload = c.prekeys ?? NO_PREKEYS
  if (!upload.signedPrekey) throw new ParleyError('BAD_REQUEST', 'a signed prekey is required')
  if (!upload.lastResortKemPrekey)
    throw new ParleyError('BAD_REQUEST', 'a last-resort KEM prekey is required')
  const signedCount =
    upload.oneTimeKemPrekeys.length + (upload.signedPrekey ? 1 : 0) + (upload.lastResortKemPrekey ? 1 : 0)
  if (signedCount > config.maxActivationSignedPrekeys) {
    throw new ParleyError(
      'TOO_LARGE',
      `at most ${config.maxActivationSignedPrekeys} signed prekeys at activation; upload more once authenticated`,
    )
  }
  if (upload.oneTimePrekeys.length > Math.min(config.maxPrekeysPerUpload, config.maxStoredPrekeys)) {
    throw new ParleyError('TOO_LARGE', 'too many one-time prekeys')
  }
  const salt = c.numberSalt
  if (salt.length !== 0 && salt.length !== 32)
    throw new ParleyError('BAD_REQUEST', 'number_salt must be 32 bytes')
  const blinded = c.blindedNumber
  if (blinded.length !== 0 && blinded.length !== 32)
    throw new ParleyError('BAD_REQUEST', 'blinded_number must be 32 bytes')
  await charge(
    conn,
    'activation_confirm',
    `confirm:net:${conn.network}`,
    1,
    policies.activationConfirmNetwork,
  )
  const activationIdHex = Buffer.from(activationId).toString('hex')
  // Every guess at a number's codes, over all its activations, spends one of its hourly guesses; charged
  // before the code is checked, so a refused guess costs the activation none of its attempts.
  const numberKey = await activations.numberKeyOf(activationIdHex)
  if (numberKey !== undefined)
    await charge(conn, 'code_guesses', `guess:${numberKey}`, 1, policies.codeGuesses)
  const code = typeof c.code === 'string' ? c.code : ''
  const proof = c.registrationLockProof
  let number: string
  let keepRegistrationLock: boolean
  const key = oprf.current
  let address: Uint8Array
  try {
    // The code is checked first, keeping the activation pending: a registration lock may still refuse it, and
    // the owner then retries with the PIN and the same code.
    number = await activations.check(activationIdHex, code)
    address = addressFromToken(oprfEvaluate(key.secretKey, numberToOprfInput(number)))
    keepRegistrationLock = await checkRegistrationLock(conn, address, proof)
    number = await activations.confirm(activationIdHex, code)
  } catch (err) {
    metrics.activations.inc({ outcome: ParleyError.is(err) ? err.code.toLowerCase() : 'error' })
    throw err
  }
  // The code matched: now, and only now, the signatures.
  metrics.signatureChecks.inc({ frame: 'activation_confirm' }, 1 + signedCount)
  if (
    !verifyIdentitySignature(
      identityKey,
      activationPayload(activationId, identityKey),
      signature,
      RELAY_CRYPTO,
    )
  ) {
    metrics.activations.inc({ outcome: 'bad_signature' })
    throw new ParleyError('UNAUTHENTICATED', 'the identity signature does not verify; request a new code')
  }
  let prekeys: Awaited<ReturnType<typeof verifyPrekeys>>
  try {
    const checked = checkPrekeys(c.prekeys, config.maxPrekeysPerUpload, true)
    prekeys = await verifyPrekeys(checked, identityKey, conn.ctx.lane)
  } catch (err) {
    metrics.activations.inc({ outcome: 'bad_prekeys' })
    throw err
  }
  // The device's own number, evaluated blind with a proof: one per successful activation, which is itself
  // limited per number and network, so it needs no discovery quota.
  const ownNumber = await evaluateOwnNumber(conn, key, blinded)
  // The commitment is all that is kept: the salt stays with the device, so the relay cannot test numbers
  // against it later. A device that sends no salt gets certificates without a number.
  const commitment = salt.length === 32 ? numberCommitment(number, salt) : new Uint8Array(0)
  // This connection may be bound to the device being replaced; it must not be revoked with it.
  await conn.unbind()
  const { deviceId, replacedDevice, restoredMessages, retainedMessages } = await store.registerDevice({
    address,
    identityKey,
    signedPrekey: prekeys.signedPrekey!,
    lastResortKemPrekey: prekeys.lastResortKemPrekey!,
    oneTimePrekeys: prekeys.oneTimePrekeys,
    oneTimeKemPrekeys: prekeys.oneTimeKemPrekeys,
    numberCommitment: commitment,
    nowMs: Date.now(),
    keepRegistrationLock,
  })
  const addressHex = Buffer.from(address).toString('hex')
  if (replacedDevice) await fanout.publish(addressHex, { kind: 'revoked', keepDeviceId: deviceId })
  await conn.bind(address, deviceId)
  // The number's owner got the code and used it: a later code request (a new device) owes no backoff. The
  // hourly code-request and code-guess quotas still hold.
  await resetBackoff(conn.ctx.limiter, `code:bo:${activations.numberKey(number)}`)
  metrics.activations.inc({ outcome: 'completed' })
  if (retainedMessages > 0) metrics.retainedMail.inc({ outcome: 'retained' }, retainedMessages)
  if (restoredMessages > 0) metrics.retainedMail.inc({ outcome: 'restored' }, restoredMessages)
  log.info(
    {
      conn: conn.id,
      activation: activationIdHex.slice(0, 8),
      replacedDevice,
      restoredMessages,
      retainedMessages,
    },
    'activation completed',
  )
  return {
    activated: { address, deviceId, replacedDevice, restoredMessages, ...(ownNumber ? { ownNumber } : {}) },
  }
}
