/**
 * Mailboxes (DESIGN.md §7): durable write before `MessageAccepted`, live push, ack-only deletion, resume from a
 * cursor with gap notices.
 * @module
 */
import { type ClientFrame, ParleyError } from '@parley/protocol'
import type { Connection } from '../Connection.js'
import { charge, type Reply, requireBytes } from './util.js'

/** `SendMessage` → `MessageAccepted`, only once the message is committed to the recipient's mailbox. */
export async function sendMessage(conn: Connection, frame: ClientFrame): Promise<Reply> {
  const { store, fanout, config, policies, metrics } = conn.ctx
  const m = frame.sendMessage!
  const address = requireBytes(m.recipientAddress, 32, 'recipient_address')
  const messageId = requireBytes(m.messageId, 16, 'message_id')
  const envelope = m.envelope instanceof Uint8Array ? m.envelope : new Uint8Array()
  if (envelope.length === 0) throw new ParleyError('BAD_REQUEST', 'envelope is empty')
  if (envelope.length > config.maxEnvelopeBytes) {
    throw new ParleyError('TOO_LARGE', `envelope is over the ${config.maxEnvelopeBytes}-byte limit`)
  }
  await charge(conn, 'send', `send:acct:${conn.device!.addressHex}`, 1, policies.send)
  const deviceId = m.recipientDeviceId ?? 0
  const result = await store.enqueue({
    address,
    deviceId,
    messageId,
    envelope,
    receivedAtMs: Date.now(),
    maxMessages: config.maxMailboxMessages,
  })
  switch (result.status) {
    case 'not_found':
      throw new ParleyError('NOT_FOUND', 'no account at this address')
    case 'stale_device':
      throw new ParleyError('CONFLICT', 'the recipient has a new device; fetch a new prekey bundle')
    case 'duplicate':
      return { messageAccepted: { messageId } }
    case 'stored': {
      metrics.accepted.inc()
      if (result.evicted > 0) metrics.evicted.inc(result.evicted)
      await fanout.publish(Buffer.from(address).toString('hex'), { kind: 'mail', deviceId, seq: result.seq })
      return { messageAccepted: { messageId } }
    }
  }
}

/** `AckMessages` → `Acked`: deletes the owner's entries; other devices' sequence numbers match nothing. */
export async function ackMessages(conn: Connection, frame: ClientFrame): Promise<Reply> {
  const device = conn.device!
  const seqs = frame.ackMessages!.seqs ?? []
  if (seqs.length > conn.ctx.config.maxMailboxMessages)
    throw new ParleyError('TOO_LARGE', 'too many sequence numbers')
  const count = await conn.ctx.store.ack(device.address, device.deviceId, seqs)
  conn.ctx.metrics.acked.inc(count)
  return { acked: { count } }
}

/** `SyncMailbox` → Delivery / MailboxGap pushes after the cursor, then `SyncDone`; live pushes follow. */
export async function syncMailbox(conn: Connection, frame: ClientFrame): Promise<Reply> {
  const after = frame.syncMailbox!.afterSeq ?? 0
  const head = await conn.sync(after)
  return { syncDone: { headSeq: head } }
}
