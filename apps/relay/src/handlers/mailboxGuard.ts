/**
 * What every path that stores mail (`SendMessage`, `UnidentifiedSend`) checks and refuses the same way: the
 * envelope's size and shape (BAD_REQUEST / TOO_LARGE), and a full mailbox or a nearly full disk (MAILBOX_FULL,
 * nothing stored, nothing evicted). Each refusal is counted.
 * @module
 */
import { ParleyError } from '@parley/protocol'
import type { RelayContext } from '../context.js'
import type { DeviceSet, MailboxLimit } from '../Store.js'
import { envelopeShapeProblem } from './envelopeShape.js'

/** The part of the relay context these checks use (an unidentified scope has it too). */
export type GuardScope = Pick<RelayContext, 'config' | 'metrics' | 'disk'>

/**
 * When a refused sender should try again: the recipient has to read (and ack) mail, or the operator free
 * space, before anything fits; sooner would only cost both sides a round trip.
 */
export const MAILBOX_FULL_RETRY_MS = 60_000

/**
 * The envelope of a send, checked: non-empty, within `--max-envelope-bytes`, and shaped as a sealed envelope; with
 * `shared`, a device's part of a message sealed once, checked as part ‖ shared without joining them (the caller
 * joins each copy only as it stores it, so a request's many copies are never all in memory at once).
 * @throws ParleyError BAD_REQUEST (empty or malformed; malformed is counted), TOO_LARGE
 */
export function requireEnvelope(scope: GuardScope, value: unknown, shared?: Uint8Array): Uint8Array {
  const envelope = value instanceof Uint8Array ? value : new Uint8Array()
  if (envelope.length === 0) throw new ParleyError('BAD_REQUEST', 'envelope is empty')
  const max = scope.config.maxEnvelopeBytes
  if (envelope.length + (shared?.length ?? 0) > max) {
    throw new ParleyError('TOO_LARGE', `envelope is over the ${max}-byte limit`)
  }
  const problem = envelopeShapeProblem(envelope, shared)
  if (problem !== null) {
    scope.metrics.malformedEnvelopes.inc()
    throw new ParleyError('BAD_REQUEST', `envelope is not a sealed envelope: ${problem}`)
  }
  return envelope
}

/**
 * Refuses a message with MAILBOX_FULL, counted by the limit that was hit.
 * @throws ParleyError MAILBOX_FULL, always
 */
export function refuseFull(scope: GuardScope, limit: MailboxLimit | 'disk'): never {
  scope.metrics.mailboxFull.inc({ limit })
  const why =
    limit === 'disk'
      ? 'the relay is nearly out of disk space'
      : limit === 'bytes'
        ? `the recipient's mailbox holds ${scope.config.maxMailboxBytes} bytes of unread mail`
        : `the recipient's mailbox holds ${scope.config.maxMailboxMessages} unread messages`
  throw new ParleyError('MAILBOX_FULL', `${why}; nothing was stored, try again later`, {
    retryAfterMs: MAILBOX_FULL_RETRY_MS,
  })
}

/**
 * A single-device send to an account with linked devices (its device set, already read) is refused with
 * STALE_DEVICES and the list version (handlers/mail.ts `refuseLinked`).
 */
export function refuseLinkedSet(set: DeviceSet | null): void {
  if (set && set.linkedDeviceIds.length > 0) {
    throw new ParleyError('STALE_DEVICES', 'the recipient has linked devices; send to each with MultiSend', {
      deviceListVersion: set.listVersion,
    })
  }
}
