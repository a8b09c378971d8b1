/**
 * `ChangeNumber` (docs/architecture.md §9.8): the account's primary moves the account to a new number. The new
 * number is proven the way an activation proves one — an `ActivationStart` for it had the verifier send a code, on
 * any connection and under every SMS limit — and this frame, on the primary's authenticated connection, spends
 * the code. The relay derives the new address from the new number under the current OPRF key (so an account can
 * only move to a number it received a code for), then moves the account as `RebindAddress` does, with a new
 * number commitment, and keeps a forward from the old address for the account's other devices. The number lives
 * in this request's memory only.
 * @module
 */
import {
  addressFromToken,
  type ClientBodyOf,
  numberCommitment,
  numberToOprfInput,
  oprfEvaluate,
  ParleyError,
} from '@parley/protocol'
import { resetBackoff } from '../Backoff.js'
import { evaluateOwnNumber } from './discovery.js'
import { refuseHeld } from './holds.js'
import type { DeviceScope } from './scope.js'
import { charge, deviceGone, notPrimaryOrGone, quotaId, type Reply, requireBytes } from './util.js'

const DAY_MS = 86_400_000

/** `ChangeNumber` → `NumberChanged`. */
export async function changeNumber(
  scope: DeviceScope,
  request: ClientBodyOf<'changeNumber'>,
): Promise<Reply> {
  const { store, oprf, metrics, log, policies, activations, fanout, config } = scope.ctx
  const device = scope.device
  const r = request
  const activationId = requireBytes(r.activationId, 16, 'activation_id')
  const salt = requireBytes(r.numberSalt, 32, 'number_salt')
  const blinded = r.blindedNumber
  if (blinded.length !== 0 && blinded.length !== 32)
    throw new ParleyError('BAD_REQUEST', 'blinded_number must be 32 bytes')
  const code = typeof r.code === 'string' ? r.code : ''
  const account = await store.getAccount(device.address)
  if (!account || account.deviceId !== device.deviceId) {
    const err = await notPrimaryOrGone(scope, 'change the number')
    if (ParleyError.is(err, 'FORBIDDEN')) metrics.numberChanges.inc({ outcome: 'forbidden' })
    throw err
  }
  const activationIdHex = Buffer.from(activationId).toString('hex')
  // Every guess at a number's codes spends one of its hourly guesses, as at activation.
  const numberKey = await activations.numberKeyOf(activationIdHex)
  if (numberKey !== undefined)
    await charge(scope, 'code_guesses', `guess:${numberKey}`, 1, policies.codeGuesses)
  const key = oprf.current
  let number: string
  let address: Uint8Array
  try {
    // Checked first, keeping the code pending: a refusal below (the new number has an account) leaves the user
    // the same code to retry with once that is resolved.
    number = await activations.check(activationIdHex, code)
    // Charged once the code matched (wrong guesses are the code-guess quota's), under the account identity, which
    // a change keeps: an address-keyed bucket would start full again at every new address.
    await charge(
      scope,
      'number_change',
      `numchange:id:${quotaId(scope, account.identityKey)}`,
      1,
      policies.numberChange,
    )
    address = addressFromToken(oprfEvaluate(key.secretKey, numberToOprfInput(number)))
    refuseHeld(await store.operatorHold(address, 0))
    if (Buffer.from(address).equals(Buffer.from(device.address)))
      throw new ParleyError('CONFLICT', 'the account already has this number')
    if (await store.getAccount(address)) {
      throw new ParleyError(
        'CONFLICT',
        'the new number has a Parley account of its own; deactivate that one first',
      )
    }
    number = await activations.confirm(activationIdHex, code)
  } catch (err) {
    // Over the quota is counted where every quota's refusals are (parley_relay_rate_limited_total).
    if (!ParleyError.is(err, 'RATE_LIMITED'))
      metrics.numberChanges.inc({ outcome: ParleyError.is(err, 'CONFLICT') ? 'conflict' : 'refused' })
    throw err
  }
  const ownNumber = await evaluateOwnNumber(scope, key, blinded)
  const outcome = await store.rebindAddress(device.address, device.deviceId, address, {
    numberCommitment: numberCommitment(number, salt),
    forwardUntilMs: Date.now() + config.moveForwardDays * DAY_MS,
  })
  if (outcome === 'not_found') throw deviceGone()
  if (outcome === 'taken') {
    // The new number was activated by another device between the check and the move.
    metrics.numberChanges.inc({ outcome: 'conflict' })
    throw new ParleyError(
      'CONFLICT',
      'the new number has a Parley account of its own; deactivate that one first',
    )
  }
  const oldHex = device.addressHex
  await scope.move(address)
  // The account's other connections (its linked devices, this device's second connection) reconnect and follow.
  await fanout.publish(oldHex, { kind: 'moved' })
  await resetBackoff(scope.ctx.limiter, `code:bo:${activations.numberKey(number)}`)
  metrics.numberChanges.inc({ outcome: 'moved' })
  log.info({ conn: scope.id, keyId: key.keyId }, 'account moved to a new number')
  return { numberChanged: { address, keyId: key.keyId, ...(ownNumber ? { ownNumber } : {}) } }
}
