// What the SQL stores (SqliteStore, PostgresStore) decide about mailboxes, apart from the SQL that reads and
// writes the rows: who may receive, where a message goes, what a page holds, which seqs an ack names and how
// the TTL sweep groups what it deletes. The byte and page arithmetic it builds on is in ./rows.ts.

import type {
  EnqueueInput,
  EnqueueResult,
  GapKind,
  MailboxEntry,
  MailboxGapRange,
  MailboxLimit,
  MailboxPage,
} from '../Store.js'
import { type AccountRow, mailboxLimitHit, u8 } from './rows.js'

/** Most mail rows one transaction of the TTL sweep (Store.expire) deletes; a shorter batch is the last. */
export const EXPIRE_BATCH_ROWS = 5000

/** The mailbox columns of an account row that the mail paths read. */
export type MailboxState = Pick<
  AccountRow,
  'device_id' | 'mailbox_head_seq' | 'mailbox_count' | 'mailbox_bytes'
>

/**
 * Why Store.enqueue refuses mail for a device that is not the registered one (see `isDevice`): there is no
 * account at the address (`row` undefined), or another device of it is registered now.
 */
export function enqueueRefusal(row: Pick<AccountRow, 'device_id'> | undefined): EnqueueResult {
  return row ? { status: 'stale_device', currentDeviceId: row.device_id } : { status: 'not_found' }
}

/**
 * Where a new message goes in the mailbox `row` describes: its sequence number and the mailbox's count and
 * bytes with it — or, when it would take the mailbox over a limit, the refusal (nothing is stored then, and
 * nothing already stored is evicted to make room).
 */
export function placeMessage(
  row: MailboxState,
  input: Pick<EnqueueInput, 'envelope' | 'maxMessages' | 'maxBytes'>,
): { status: 'full'; limit: MailboxLimit } | { status: 'fits'; seq: number; count: number; bytes: number } {
  const limit = mailboxLimitHit(row.mailbox_count, row.mailbox_bytes, input)
  if (limit) return { status: 'full', limit }
  return {
    status: 'fits',
    seq: row.mailbox_head_seq + 1,
    count: row.mailbox_count + 1,
    bytes: row.mailbox_bytes + input.envelope.length,
  }
}

/** The page Store.fetchMailbox returns to a device that is not the registered one: nothing. */
export function emptyPage(): MailboxPage {
  return { entries: [], gaps: [], headSeq: 0 }
}

/** A mailbox row as a page entry, with its envelope as stored (SQLite) or opened (PostgreSQL). */
export function toEntry(
  r: { seq: number; message_id: Buffer; received_at_ms: number },
  envelope: Uint8Array,
): MailboxEntry {
  return { seq: r.seq, messageId: u8(r.message_id), envelope, receivedAtMs: r.received_at_ms }
}

/**
 * The last seq whose gaps a page holds: a full page (`cutPage`'s `full`) ends at its last entry; any other page
 * runs to the head and takes every later gap.
 */
export function gapsUpTo(cut: { lastSeq: number; full: boolean }, headSeq: number): number {
  return cut.full ? cut.lastSeq : headSeq
}

/** Gap records overlapping a page after `afterSeq`, as the port's ranges, clipped to start after the cursor. */
export function clipGaps(
  rows: { first_seq: number; last_seq: number; reason: GapKind }[],
  afterSeq: number,
): MailboxGapRange[] {
  return rows.map(
    (g): MailboxGapRange => ({
      firstSeq: Math.max(g.first_seq, afterSeq + 1),
      lastSeq: g.last_seq,
      reason: g.reason,
    }),
  )
}

/** The seqs an ack deletes (Store.ack): each once, and only safe integers (the others match nothing). */
export function ackedSeqs(seqs: number[]): number[] {
  return [...new Set(seqs)].filter((s) => Number.isSafeInteger(s))
}

/**
 * Mail rows of the TTL sweep (in address, device and seq order), grouped by their device's mailbox: each group
 * is deleted, recorded as gaps and taken off that device's counters together.
 */
export function groupByDevice<R extends { address: Buffer; device_id: number }>(
  rows: R[],
): { address: Buffer; deviceId: number; rows: R[] }[] {
  const byDevice = new Map<string, { address: Buffer; deviceId: number; rows: R[] }>()
  for (const r of rows) {
    const key = `${r.address.toString('hex')}/${r.device_id}`
    let group = byDevice.get(key)
    if (!group) {
      group = { address: r.address, deviceId: r.device_id, rows: [] }
      byDevice.set(key, group)
    }
    group.rows.push(r)
  }
  return [...byDevice.values()]
}
