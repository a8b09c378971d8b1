/**
 * Opt-in activation (DESIGN.md §5): `ActivationStart` has the verifier deliver a code; `ActivationConfirm`
 * checks it, registers the device and binds the address the relay derives itself from the number:
 * `addressFromToken(OPRF-Evaluate(sk, number))` — the same address a client computes through the blind OPRF.
 * The number is never logged or stored; requests per number are limited by its keyed hash.
 * @module
 */
import {
  activationPayload,
  addressFromToken,
  type ClientFrame,
  normalizeNumber,
  numberCommitment,
  numberToOprfInput,
  oprfEvaluate,
  ParleyError,
  verifyIdentitySignature,
} from '@parley/protocol'
import type { Connection } from '../Connection.js'
import { validatePrekeys } from './prekeys.js'
import { refuseOnAnonymous } from './session.js'
import { charge, type Reply, requireBytes } from './util.js'

/** `ActivationStart` → `ActivationStarted`. */
export async function activationStart(conn: Connection, frame: ClientFrame): Promise<Reply> {
  const { activations, verifier, policies, metrics, log } = conn.ctx
  const a = frame.activationStart!
  refuseOnAnonymous(conn)
  conn.activating = true
  if (a.consent !== true)
    throw new ParleyError('BAD_REQUEST', 'activation needs the user’s consent (consent: true)')
  const raw = typeof a.phoneNumber === 'string' ? a.phoneNumber : ''
  if (!/^\+[1-9]\d{6,14}$/.test(raw))
    throw new ParleyError('INVALID_NUMBER', 'the number must be in E.164 form')
  const e164 = normalizeNumber(raw)
  await charge(conn, 'activation_ip', `act:ip:${conn.ip}`, 1, policies.activationIp)
  await charge(conn, 'code_requests', `code:${activations.numberKey(e164)}`, 1, policies.codeRequests)
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
    metrics.activations.inc({ outcome: 'verifier_failed' })
    log.error(
      { conn: conn.id, verifier: verifier.name, err: { type: (err as Error)?.name } },
      'verifier failed',
    )
    throw ParleyError.is(err) ? err : new ParleyError('UNAVAILABLE', 'the verification service failed')
  }
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

/** `ActivationConfirm` → `Activated`; the connection is then authenticated as the new device. */
export async function activationConfirm(conn: Connection, frame: ClientFrame): Promise<Reply> {
  const { activations, store, oprf, fanout, metrics, log, config } = conn.ctx
  const c = frame.activationConfirm!
  refuseOnAnonymous(conn)
  conn.activating = true
  const activationId = requireBytes(c.activationId, 16, 'activation_id')
  const identityKey = requireBytes(c.identityKey, 32, 'identity_key')
  const signature = c.identitySignature instanceof Uint8Array ? c.identitySignature : new Uint8Array()
  if (!verifyIdentitySignature(identityKey, activationPayload(activationId, identityKey), signature)) {
    throw new ParleyError('UNAUTHENTICATED', 'the identity signature does not verify')
  }
  const prekeys = validatePrekeys(c.prekeys, identityKey, config.maxPrekeysPerUpload, true)
  if (
    prekeys.oneTimePrekeys.length > config.maxStoredPrekeys ||
    prekeys.oneTimeKemPrekeys.length > config.maxStoredPrekeys
  ) {
    throw new ParleyError('TOO_LARGE', 'too many one-time prekeys')
  }
  const salt = c.numberSalt instanceof Uint8Array ? c.numberSalt : new Uint8Array(0)
  if (salt.length !== 0 && salt.length !== 32)
    throw new ParleyError('BAD_REQUEST', 'number_salt must be 32 bytes')
  const activationIdHex = Buffer.from(activationId).toString('hex')
  let number: string
  try {
    number = await activations.confirm(activationIdHex, typeof c.code === 'string' ? c.code : '')
  } catch (err) {
    metrics.activations.inc({ outcome: ParleyError.is(err) ? err.code.toLowerCase() : 'error' })
    throw err
  }
  const address = addressFromToken(oprfEvaluate(oprf.current.secretKey, numberToOprfInput(number)))
  // The commitment is all that is kept: the salt stays with the device, so the relay cannot test numbers
  // against it later. A device that sends no salt gets certificates without a number.
  const commitment = salt.length === 32 ? numberCommitment(number, salt) : new Uint8Array(0)
  // This connection may be bound to the device being replaced; it must not be revoked with it.
  await conn.unbind()
  const { deviceId, replacedDevice } = await store.registerDevice({
    address,
    identityKey,
    signedPrekey: prekeys.signedPrekey!,
    lastResortKemPrekey: prekeys.lastResortKemPrekey!,
    oneTimePrekeys: prekeys.oneTimePrekeys,
    oneTimeKemPrekeys: prekeys.oneTimeKemPrekeys,
    numberCommitment: commitment,
    nowMs: Date.now(),
  })
  const addressHex = Buffer.from(address).toString('hex')
  if (replacedDevice) await fanout.publish(addressHex, { kind: 'revoked', keepDeviceId: deviceId })
  await conn.bind(address, deviceId)
  metrics.activations.inc({ outcome: 'completed' })
  log.info({ conn: conn.id, activation: activationIdHex.slice(0, 8), replacedDevice }, 'activation completed')
  return { activated: { address, deviceId, replacedDevice } }
}
