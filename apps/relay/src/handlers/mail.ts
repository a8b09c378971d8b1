/**
 * Mailboxes (docs/architecture.md §7): durable write before `MessageAccepted`, live push, ack-only deletion, resume from a
 * cursor with gap notices. A full mailbox (`--max-mailbox-messages`, `--max-mailbox-bytes`) or a nearly full disk
 * (`--min-free-disk-bytes`) refuses new mail with MAILBOX_FULL; unread mail is never evicted to make room.
 * @module
 */
import { type ClientBodyOf, ParleyError } from '@parley/protocol'
import type { Store } from '../Store.js'
import { pushEphemeral } from './ephemeral.js'
import { refuseFull, refuseLinkedSet, requireEnvelope } from './mailboxGuard.js'
import type { DeviceScope } from './scope.js'
import { charge, type Reply, requireBytes } from './util.js'

/**
 * The second half of a split request: awaits the durability of a write that the first half already submitted,
 * and builds the reply. Never called before the first half has resolved.
 */
export type Commit = () => Promise<Reply>

/**
 * `SendMessage`, first half ("admit"): validation and the per-message quota, then the store write is
 * *submitted* (not awaited). The connection runs admit halves strictly one after another in arrival order, so
 * writes are submitted in arrival order; with a store whose `ordersConcurrentWrites` is true that is also the
 * order of their sequence numbers. Throws for every refusal that needs no store write. An ephemeral message
 * (`SendMessage.ephemeral`) is checked and charged the same, then handed to the fan-out instead of the store.
 */
export async function admitSendMessage(
  scope: DeviceScope,
  request: ClientBodyOf<'sendMessage'>,
): Promise<Commit> {
  const { store, fanout, config, policies, metrics } = scope.ctx
  const m = request
  const address = requireBytes(m.recipientAddress, 32, 'recipient_address')
  const messageId = requireBytes(m.messageId, 16, 'message_id')
  const envelope = requireEnvelope(scope.ctx, m.envelope)
  if (await scope.ctx.disk.low()) refuseFull(scope.ctx, 'disk')
  await charge(scope, 'send', `send:acct:${scope.device.quotaId}`, 1, policies.send)
  // Bytes too, over all recipients: the mailbox quota bounds what one victim holds, this what one account
  // spreads over many (--send-bytes-*).
  await charge(scope, 'send_bytes', `sendb:acct:${scope.device.quotaId}`, envelope.length, policies.sendBytes)
  const deviceId = m.recipientDeviceId
  if (m.ephemeral) {
    const reply = await pushEphemeral(scope.ctx, address, messageId, { deviceId, envelope }, () => {
      throw new ParleyError('NOT_FOUND', 'no account at this address')
    })
    return async () => reply
  }
  await refuseLinked(store, address)
  const written = store.enqueue({
    address,
    deviceId,
    messageId,
    envelope,
    receivedAtMs: Date.now(),
    maxMessages: config.maxMailboxMessages,
    maxBytes: config.maxMailboxBytes,
  })
  // Awaited by the commit half; this only keeps a rejection from counting as unhandled in between.
  written.catch(() => {})
  /** Second half: `MessageAccepted` only once the message is committed to the recipient's mailbox. */
  return async () => {
    const result = await written
    switch (result.status) {
      case 'not_found':
        throw new ParleyError('NOT_FOUND', 'no account at this address')
      case 'stale_device':
        throw new ParleyError('CONFLICT', 'the recipient has a new device; fetch a new prekey bundle')
      case 'duplicate':
        return { messageAccepted: { messageId } }
      case 'full':
        return refuseFull(scope.ctx, result.limit)
      case 'stored': {
        metrics.accepted.inc()
        await fanout.publish(Buffer.from(address).toString('hex'), {
          kind: 'mail',
          deviceId,
          seq: result.seq,
        })
        return { messageAccepted: { messageId } }
      }
    }
  }
}

/**
 * A single-device send to an account that has linked devices would reach only one of them: refused with
 * STALE_DEVICES (and the list version), so that a sender who does not know of them fetches the device list and
 * sends a `MultiSend` instead.
 */
export async function refuseLinked(store: Store, address: Uint8Array): Promise<void> {
  refuseLinkedSet(await store.deviceSet(address))
}

/** `SendMessage` → `MessageAccepted`, only once the message is committed to the recipient's mailbox. */
export async function sendMessage(scope: DeviceScope, request: ClientBodyOf<'sendMessage'>): Promise<Reply> {
  return (await admitSendMessage(scope, request))()
}

/**
 * `AckMessages`, first half: validation and the connection's ack budget, then the deletion (one statement) is
 * submitted (see {@link admitSendMessage}). A list over `--max-acks-per-frame` is TOO_LARGE; acking faster than
 * `--acks-per-second` is RATE_LIMITED — each acked seq costs a row deletion on the store's thread.
 */
export async function admitAckMessages(
  scope: DeviceScope,
  request: ClientBodyOf<'ackMessages'>,
): Promise<Commit> {
  const device = scope.device
  const seqs = request.seqs
  const { maxAcksPerFrame } = scope.ctx.config
  if (seqs.length > maxAcksPerFrame) {
    throw new ParleyError(
      'TOO_LARGE',
      `at most ${maxAcksPerFrame} sequence numbers per AckMessages; send several`,
    )
  }
  scope.chargeAcks(seqs.length)
  const deleted = scope.ctx.store.ack(device.address, device.deviceId, seqs)
  deleted.catch(() => {})
  return async () => {
    const count = await deleted
    scope.ctx.metrics.acked.inc(count)
    return { acked: { count } }
  }
}

/** `AckMessages` → `Acked`: deletes the owner's entries; other devices' sequence numbers match nothing. */
export async function ackMessages(scope: DeviceScope, request: ClientBodyOf<'ackMessages'>): Promise<Reply> {
  return (await admitAckMessages(scope, request))()
}

/** `SyncMailbox` → Delivery / MailboxGap pushes after the cursor, then `SyncDone`; live pushes follow. */
export async function syncMailbox(scope: DeviceScope, request: ClientBodyOf<'syncMailbox'>): Promise<Reply> {
  const after = request.afterSeq
  const head = await scope.sync(after)
  return { syncDone: { headSeq: head } }
}
