/**
 * Unidentified delivery: a sealed envelope accepted without knowing who sends it, authorised by the
 * recipient's delivery token. The handler receives an {@link AnonymousScope}, built from a connection that has
 * never authenticated: it has no account, device or connection object to read a sender from, so nothing here
 * can log, count or store one. Limits are per recipient and per source network, never per sender.
 * @module
 */
import { timingSafeEqual } from 'node:crypto'
import { type ClientBodyOf, deliveryTokenVerifier, ParleyError } from '@parley/protocol'
import type { RelayContext } from '../context.js'
import { pushEphemeral } from './ephemeral.js'
import { refuseLinked } from './mail.js'
import { refuseFull, requireEnvelope } from './mailboxGuard.js'
import { type Reply, requireBytes } from './util.js'

/** What an unidentified request may touch: shared ports, and the source network for its limit. */
export interface AnonymousScope {
  readonly store: RelayContext['store']
  readonly fanout: RelayContext['fanout']
  readonly limiter: RelayContext['limiter']
  readonly config: RelayContext['config']
  readonly policies: RelayContext['policies']
  readonly metrics: RelayContext['metrics']
  /** The disk high-water mark: relay-wide, it says nothing about any recipient. */
  readonly disk: RelayContext['disk']
  /** The source network (IPv4 /24, IPv6 /56) of the connection, for its limit. */
  readonly network: string
  /**
   * What a recipient's quota is filed under: a keyed hash of its address (handlers/util.ts `quotaId`), never the
   * address, so that the persisted quotas name no account (nor one deactivated since).
   */
  readonly recipientQuotaId: (address: Uint8Array) => string
}

/**
 * Charges one unidentified send to the source network's or the recipient's bucket (`ud:<kind>:<key>`); RATE_LIMITED,
 * counted in `rate_limited{scope="unidentified_<kind>"}`, when it is empty. Shared with the unidentified MultiSend.
 */
export async function chargeUnidentified(
  scope: AnonymousScope,
  kind: 'recipient' | 'network',
  key: string,
): Promise<void> {
  const policy =
    kind === 'recipient' ? scope.policies.unidentifiedRecipient : scope.policies.unidentifiedNetwork
  const result = await scope.limiter.take(`ud:${kind}:${key}`, 1, policy)
  if (result.allowed) return
  scope.metrics.rateLimited.inc({ scope: `unidentified_${kind}` })
  throw new ParleyError('RATE_LIMITED', `unidentified sends to this ${kind} are over quota`, {
    retryAfterMs: result.retryAfterMs,
  })
}

/**
 * Charges the source network the envelope bytes an unidentified send stores, every copy counted: a message sealed
 * once for many devices is read once but written once per device, so its bytes are what bound the network.
 * @throws ParleyError RATE_LIMITED beyond `--unidentified-network-bytes-*`
 */
export async function chargeUnidentifiedBytes(scope: AnonymousScope, bytes: number): Promise<void> {
  const result = await scope.limiter.take(
    `ud:bytes:${scope.network}`,
    bytes,
    scope.policies.unidentifiedNetworkBytes,
  )
  if (result.allowed) return
  scope.metrics.rateLimited.inc({ scope: 'unidentified_network_bytes' })
  throw new ParleyError('RATE_LIMITED', 'unidentified sends from this network stored too many bytes', {
    retryAfterMs: result.retryAfterMs,
  })
}

/** {@link chargeUnidentified}, with a refusal also counted among UnidentifiedSend's outcomes. */
async function charge(scope: AnonymousScope, kind: 'recipient' | 'network', key: string): Promise<void> {
  try {
    await chargeUnidentified(scope, kind, key)
  } catch (err) {
    scope.metrics.unidentified.inc({ outcome: 'rate_limited' })
    throw err
  }
}

/**
 * Whether `token` is the delivery token of the account at `address`. One answer (false) for "no such account",
 * "no token set" and "wrong token", so that a path refusing on it reveals no registration.
 */
export async function deliveryTokenOpens(
  store: AnonymousScope['store'],
  address: Uint8Array,
  token: Uint8Array,
): Promise<boolean> {
  const expected = (await store.getAccount(address))?.deliveryVerifier
  return (
    expected !== undefined &&
    expected.length === 32 &&
    timingSafeEqual(Buffer.from(deliveryTokenVerifier(token)), Buffer.from(expected))
  )
}

/** `UnidentifiedSend` → `MessageAccepted`, once the message is committed to the recipient's mailbox. */
export async function unidentifiedSend(
  scope: AnonymousScope,
  request: ClientBodyOf<'unidentifiedSend'>,
): Promise<Reply> {
  const m = request
  const address = requireBytes(m.recipientAddress, 32, 'recipient_address')
  const messageId = requireBytes(m.messageId, 16, 'message_id')
  const token = requireBytes(m.deliveryToken, 32, 'delivery_token')
  const envelope = requireEnvelope(scope, m.envelope)
  if (await scope.disk.low()) {
    scope.metrics.unidentified.inc({ outcome: 'mailbox_full' })
    refuseFull(scope, 'disk')
  }
  // The network pays first, so guessing tokens for many recipients costs the guesser's own budget.
  await charge(scope, 'network', scope.network)
  const addressHex = Buffer.from(address).toString('hex')
  if (!(await deliveryTokenOpens(scope.store, address, token))) {
    scope.metrics.unidentified.inc({ outcome: 'forbidden' })
    throw new ParleyError('FORBIDDEN', 'the delivery token is not valid for this recipient')
  }
  await charge(scope, 'recipient', scope.recipientQuotaId(address))
  if (!m.ephemeral) await chargeUnidentifiedBytes(scope, envelope.length)
  const deviceId = m.recipientDeviceId
  if (m.ephemeral) {
    const reply = await pushEphemeral(scope, address, messageId, { deviceId, envelope }, () => {
      scope.metrics.unidentified.inc({ outcome: 'forbidden' })
      throw new ParleyError('FORBIDDEN', 'the delivery token is not valid for this recipient')
    })
    scope.metrics.unidentified.inc({ outcome: 'ephemeral' })
    return reply
  }
  await refuseLinked(scope.store, address)
  const result = await scope.store.enqueue({
    address,
    deviceId,
    messageId,
    envelope,
    receivedAtMs: Date.now(),
    maxMessages: scope.config.maxMailboxMessages,
    maxBytes: scope.config.maxMailboxBytes,
  })
  switch (result.status) {
    case 'not_found':
      scope.metrics.unidentified.inc({ outcome: 'forbidden' })
      throw new ParleyError('FORBIDDEN', 'the delivery token is not valid for this recipient')
    case 'stale_device':
      scope.metrics.unidentified.inc({ outcome: 'conflict' })
      throw new ParleyError('CONFLICT', 'the recipient has a new device; fetch a new prekey bundle')
    case 'duplicate':
      scope.metrics.unidentified.inc({ outcome: 'duplicate' })
      return { messageAccepted: { messageId } }
    case 'full':
      // Only a holder of the recipient's token gets here, so this tells no one else anything about the account.
      scope.metrics.unidentified.inc({ outcome: 'mailbox_full' })
      return refuseFull(scope, result.limit)
    case 'stored':
      scope.metrics.accepted.inc()
      scope.metrics.unidentified.inc({ outcome: 'stored' })
      await scope.fanout.publish(addressHex, { kind: 'mail', deviceId, seq: result.seq })
      return { messageAccepted: { messageId } }
  }
}
