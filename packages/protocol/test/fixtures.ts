// The fixtures the protocol's unit tests share, in one module (not shipped: test/ is outside the package's
// `files` and its build): error assertions, and a device answering a first message. The seeded devices and relay
// keys are re-exported from ./e2e/helpers.ts, which the vector script and @parley/node's tests import directly.
import { expect } from 'vitest'
import {
  type CiphertextMessage,
  ParleyError,
  type PrekeySender,
  type RespondResult,
  Session,
  type SessionOptions,
} from '../src/index.js'
import type { Device } from './e2e/helpers.js'

export * from './e2e/helpers.js'

/** The code of a ParleyError, else the error's name. */
const codeOf = (err: unknown): string => (ParleyError.is(err) ? err.code : (err as Error).name)

/**
 * What `fn` throws, as a string to compare: a ParleyError's code, another error's name, or `'no error'`.
 * @example expect(errorCode(() => decodeFrame(junk))).toBe('BAD_REQUEST')
 */
export function errorCode(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    return codeOf(err)
  }
  return 'no error'
}

/** {@link errorCode} of a promise: what it rejects with, or `'no error'` when it resolves. */
export function errorCodeAsync(p: Promise<unknown>): Promise<string> {
  return p.then(() => 'no error', codeOf)
}

/**
 * Expects `fn` to throw a ParleyError with `code`.
 * @returns the error, for further checks of its message or fields
 */
export function expectParleyError(fn: () => unknown, code: string): ParleyError {
  let thrown: unknown
  try {
    fn()
  } catch (err) {
    thrown = err
  }
  expect(thrown).toBeInstanceOf(ParleyError)
  expect((thrown as ParleyError).code).toBe(code)
  return thrown as ParleyError
}

/** The sender of `message` as an opened envelope names it: `from`'s address, device and identity key. */
export function senderOf(from: Device, message: CiphertextMessage): PrekeySender {
  return {
    senderAddress: from.address,
    senderDeviceId: from.deviceId,
    senderIdentityKey: from.identity.publicKey,
    message,
  }
}

/** Device `to` answers a first (prekey) message from `sender`, with its own keys and prekeys. */
export function respondTo(
  to: Device,
  sender: PrekeySender,
  options?: SessionOptions,
): Promise<RespondResult> {
  return Session.respond(to.identity, to.address, to.deviceId, sender, to.lookup, options)
}
