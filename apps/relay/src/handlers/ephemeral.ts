/**
 * Ephemeral messages (`ephemeral` on `SendMessage`, `UnidentifiedSend` and `MultiSend`): typing indicators. The
 * same checks as mail — sizes, quotas, the recipient's account and devices — but nothing is written: each copy is
 * handed to the fan-out, whose connections of that device that are online now push it as a Delivery with seq 0,
 * and it is gone when there are none. The sender is answered `MessageAccepted` either way, so the answer says
 * nothing about the recipient being online.
 * @module
 */
import { ParleyError } from '@parley/protocol'
import type { RelayContext } from '../context.js'
import { refuseLinkedSet } from './mailboxGuard.js'
import type { Reply } from './util.js'

/** What an ephemeral send uses (identified or not). */
type EphemeralParts = Pick<RelayContext, 'store' | 'fanout' | 'metrics'>

/** One device's copy of an ephemeral message. */
export interface EphemeralCopy {
  deviceId: number
  envelope: Uint8Array
}

/**
 * A single-device ephemeral message (`SendMessage`, `UnidentifiedSend`), after one read of the recipient's device
 * set: `notFound` when there is no account, STALE_DEVICES when it has linked devices (as for mail), CONFLICT when
 * `copy.deviceId` is not its device; then handed to the fan-out.
 */
export async function pushEphemeral(
  parts: EphemeralParts,
  address: Uint8Array,
  messageId: Uint8Array,
  copy: EphemeralCopy,
  notFound: () => never,
): Promise<Reply> {
  const set = await parts.store.deviceSet(address)
  if (!set) return notFound()
  refuseLinkedSet(set)
  if (copy.deviceId !== set.primaryDeviceId) {
    throw new ParleyError('CONFLICT', 'the recipient has a new device; fetch a new prekey bundle')
  }
  return publishEphemeral(parts, address, messageId, [copy])
}

/** Hands each (checked) copy of an ephemeral message to the fan-out; nothing is stored. */
export async function publishEphemeral(
  parts: Pick<EphemeralParts, 'fanout' | 'metrics'>,
  address: Uint8Array,
  messageId: Uint8Array,
  copies: EphemeralCopy[],
): Promise<Reply> {
  const hex = Buffer.from(address).toString('hex')
  for (const c of copies) {
    parts.metrics.ephemeral.inc({ outcome: 'accepted' })
    await parts.fanout.publish(hex, {
      kind: 'ephemeral',
      deviceId: c.deviceId,
      messageId,
      envelope: c.envelope,
    })
  }
  return { messageAccepted: { messageId } }
}
