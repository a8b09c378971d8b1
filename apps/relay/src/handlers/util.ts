/**
 * Small validation and quota helpers shared by the handlers.
 * @module
 */
import { createHmac } from 'node:crypto'
import { ParleyError, type ServerFrameInput } from '@parley/protocol'
import type { BucketPolicy } from '../config.js'
import type { DeviceScope, RequestScope } from './scope.js'

/** A handler's reply: one server body, without the request id (added by the connection). */
export type Reply = Omit<ServerFrameInput, 'requestId'>

/**
 * The phone number of an `ActivationStart` or `RebindAddress`, checked for E.164 form (the only frames that carry
 * one); normalise it with `normalizeNumber` after.
 * @throws ParleyError `INVALID_NUMBER` for anything else
 */
export function requireE164(value: unknown): string {
  const raw = typeof value === 'string' ? value : ''
  if (!/^\+[1-9]\d{6,14}$/.test(raw))
    throw new ParleyError('INVALID_NUMBER', 'the number must be in E.164 form')
  return raw
}

/** Throws BAD_REQUEST unless `value` is a Uint8Array of `length` bytes. */
export function requireBytes(value: unknown, length: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new ParleyError('BAD_REQUEST', `${what} must be ${length} bytes`)
  }
  return value
}

/**
 * The refusal of a request from a device that is no longer its account's (replaced by a re-activation, or the
 * account erased) though its connection is still authenticated as it.
 */
export function deviceGone(): ParleyError {
  return new ParleyError('UNAUTHENTICATED', 'this device was replaced or the account was erased')
}

/**
 * The refusal of an account-wide change (delivery token, registration lock, address) that the store made only
 * for the account's primary and refused for this device. A linked device still registered is FORBIDDEN, as for
 * Deactivate: answering it {@link deviceGone} would tell it that it was removed, and it would act on that.
 * Read only once the store refused, so the primary's path costs nothing more.
 */
export async function notPrimaryOrGone(
  scope: Pick<DeviceScope, 'ctx' | 'device'>,
  what: string,
): Promise<ParleyError> {
  const known = await scope.ctx.store.getDevice(scope.device.address, scope.device.deviceId)
  if (known && !known.primary)
    return new ParleyError('FORBIDDEN', `only the account's primary device may ${what}`)
  return deviceGone()
}

/** Throws RATE_LIMITED (counted in metrics) when the bucket is empty. */
export async function charge(
  conn: RequestScope,
  scope: string,
  key: string,
  cost: number,
  policy: BucketPolicy,
): Promise<void> {
  const result = await conn.ctx.limiter.take(key, cost, policy)
  if (result.allowed) return
  conn.ctx.metrics.rateLimited.inc({ scope })
  // Logged once per connection and scope: a flood of refusals is not a flood of log lines (the metric counts).
  if (conn.firstRefusal(scope)) {
    conn.ctx.log.warn({ conn: conn.id, scope, retryAfterMs: result.retryAfterMs }, 'quota exhausted')
  }
  const err = new ParleyError('RATE_LIMITED', `${scope} quota exhausted`, {
    retryAfterMs: result.retryAfterMs,
  })
  quotaScopes.set(err, scope)
  throw err
}

/** The quota scope of RATE_LIMITED errors thrown by {@link charge}. */
const quotaScopes = new WeakMap<Error, string>()

/** The quota scope (`parley_relay_rate_limited_total{scope}`) of an error thrown by {@link charge}, if it is one. */
export function quotaScopeOf(err: unknown): string | undefined {
  return err instanceof Error ? quotaScopes.get(err) : undefined
}

/**
 * The name an account's abuse counters are filed under: a keyed hash of its address (and so of its number,
 * which the address is derived from), under a relay secret. It is the same after deactivation and
 * re-activation of the number and after a restart, so counters outlive both; it is not the address, so
 * counters kept past an erasure do not name the account.
 */
export function quotaId(conn: Pick<RequestScope, 'ctx'>, address: Uint8Array): string {
  return createHmac('sha256', conn.ctx.relayKeys.quotaKey)
    .update('parley/relay/quota\0')
    .update(address)
    .digest('hex')
    .slice(0, 32)
}
