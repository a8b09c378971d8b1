/**
 * `RebindAddress` (after an OPRF key rotation): the account moves to its address under the current key. The
 * relay never kept the number, only a commitment to it under the device's salt; the device opens that
 * commitment, the relay checks it and evaluates the number under the current key itself — so an account can
 * move only to its own number's address, never claim another's. The number lives in this request's memory only.
 * @module
 */
import { timingSafeEqual } from 'node:crypto'
import {
  addressFromToken,
  type ClientBodyOf,
  normalizeNumber,
  numberCommitment,
  numberToOprfInput,
  oprfEvaluate,
  ParleyError,
} from '@parley/protocol'
import { evaluateOwnNumber } from './discovery.js'
import type { DeviceScope } from './scope.js'
import { charge, deviceGone, notPrimaryOrGone, type Reply, requireE164 } from './util.js'

/** `RebindAddress` → `AddressRebound`. */
export async function rebindAddress(
  scope: DeviceScope,
  request: ClientBodyOf<'rebindAddress'>,
): Promise<Reply> {
  const { store, oprf, metrics, log, policies, fanout, config } = scope.ctx
  const device = scope.device
  const r = request
  const raw = requireE164(r.phoneNumber)
  const salt = r.numberSalt
  if (salt.length !== 32) throw new ParleyError('BAD_REQUEST', 'number_salt must be 32 bytes')
  const blinded = r.blindedNumber
  if (blinded.length !== 0 && blinded.length !== 32)
    throw new ParleyError('BAD_REQUEST', 'blinded_number must be 32 bytes')
  const key = oprf.current
  if (r.keyId !== key.keyId) {
    metrics.addressRebinds.inc({ outcome: 'conflict' })
    throw new ParleyError('CONFLICT', `key ${r.keyId} is not the current OPRF key (${key.keyId}); reconnect`)
  }
  // Each rebind is one OPRF evaluation the requester did not pay discovery quota for.
  await charge(scope, 'rebind', `rebind:acct:${device.quotaId}`, 1, policies.rebind)
  const account = await store.getAccount(device.address)
  if (!account || account.deviceId !== device.deviceId)
    throw await notPrimaryOrGone(scope, 'move the address')
  const e164 = normalizeNumber(raw)
  const commitment = account.numberCommitment
  if (commitment.length !== 32 || !timingSafeEqual(numberCommitment(e164, salt), commitment)) {
    metrics.addressRebinds.inc({ outcome: 'refused' })
    throw new ParleyError(
      'FORBIDDEN',
      commitment.length === 32
        ? 'the number and salt do not open this account’s commitment'
        : 'this account has no number commitment (activated by an old SDK); activate it again instead',
    )
  }
  const address = addressFromToken(oprfEvaluate(key.secretKey, numberToOprfInput(e164)))
  const ownNumber = await evaluateOwnNumber(scope, key, blinded)
  const reply = { addressRebound: { address, keyId: key.keyId, ...(ownNumber ? { ownNumber } : {}) } }
  if (Buffer.from(address).equals(Buffer.from(device.address))) {
    metrics.addressRebinds.inc({ outcome: 'current' })
    return reply
  }
  const outcome = await store.rebindAddress(device.address, device.deviceId, address, {
    forwardUntilMs: Date.now() + config.moveForwardDays * 86_400_000,
  })
  if (outcome === 'not_found') throw deviceGone()
  if (outcome === 'taken') {
    // The number was activated again under the current key, on another device: that one is the account now.
    metrics.addressRebinds.inc({ outcome: 'conflict' })
    throw new ParleyError('CONFLICT', 'the number has a newer account at its new address; activate again')
  }
  // This connection follows the account.
  const oldHex = device.addressHex
  await scope.move(address)
  // The account's other connections (its linked devices) reconnect and follow the forward to the new address.
  await fanout.publish(oldHex, { kind: 'moved' })
  metrics.addressRebinds.inc({ outcome: 'moved' })
  log.info({ conn: scope.id, keyId: key.keyId }, 'account moved to its address under the current OPRF key')
  return reply
}
