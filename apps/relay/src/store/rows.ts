// Row shapes and byte helpers shared by the SQL stores (SQLite and PostgreSQL), so the two cannot drift.
import type { EnqueueInput, MailboxLimit } from '../Store.js'

/** An `accounts` row as both stores read it (bytes as Buffers, integers as numbers). */
export interface AccountRow {
  address: Buffer
  device_id: number
  identity_key: Buffer
  signed_prekey_id: number
  signed_prekey: Buffer
  signed_prekey_sig: Buffer
  kem_prekey_id: number
  kem_prekey: Buffer
  kem_prekey_sig: Buffer
  mailbox_head_seq: number
  mailbox_count: number
  /** Added in schema version 3: envelope bytes of the device's unread mail (the byte quota's running total). */
  mailbox_bytes: number
  created_at_ms: number
  /** Added in schema version 2: NULL for an account activated without one (or before version 2). */
  number_commitment: Buffer | null
  /** Added in schema version 2: NULL while unidentified delivery is off. */
  delivery_verifier: Buffer | null
  /** Added in schema version 4 (SQLite) / 5 (PostgreSQL): NULL until the first activity recorded since. */
  last_active_ms: number | null
  /**
   * Added in schema version 7 (SQLite): the highest device id the address ever used, primary or linked
   * (`highestDeviceId` in ./devices.ts reads it); absent where a store keeps it elsewhere or not yet.
   */
  max_device_id?: number | null
}

/** A Buffer from the database as a plain Uint8Array view. */
export const u8 = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.length)
/** A Uint8Array as a Buffer view, for the database driver. */
export const buf = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.length)
/** An optional byte string for a nullable column: empty is stored as NULL. */
export const bufOrNull = (b: Uint8Array): Buffer | null => (b.length === 0 ? null : buf(b))
/** A nullable column as bytes: NULL (or an empty value) reads back as an empty Uint8Array. */
export const u8OrEmpty = (b: Buffer | null): Uint8Array =>
  b === null || b.length === 0 ? new Uint8Array(0) : u8(b)

/**
 * Which limit refuses a new message in a mailbox that holds `count` messages and `bytes` envelope bytes
 * (`Store.enqueue`), or null when it fits. Reaching a limit exactly is within it.
 */
export function mailboxLimitHit(
  count: number,
  bytes: number,
  input: Pick<EnqueueInput, 'envelope' | 'maxMessages' | 'maxBytes'>,
): MailboxLimit | null {
  if (count + 1 > input.maxMessages) return 'messages'
  if (bytes + input.envelope.length > input.maxBytes) return 'bytes'
  return null
}

/** Groups sorted sequence numbers into runs of consecutive integers (for gap notices). */
export function runs(seqs: number[]): [number, number][] {
  const out: [number, number][] = []
  for (const s of seqs) {
    const last = out[out.length - 1]
    if (last && last[1] + 1 === s) last[1] = s
    else out.push([s, s])
  }
  return out
}

/**
 * Where a mailbox page ends (`Store.fetchMailbox`), from the envelope sizes of the first `limit` entries after
 * the cursor, in seq order: the first entry always, then each next one while the running total stays within
 * `maxBytes`. `full` says the page was ended by the count or by the byte budget with entries left after it — a
 * full page covers the cursor to its last entry only; any other page runs to the head.
 */
export function cutPage(
  sizes: { seq: number; n: number }[],
  limit: number,
  maxBytes: number,
): { count: number; lastSeq: number; full: boolean } {
  let count = 0
  let total = 0
  for (const { n } of sizes) {
    if (count >= limit || (count > 0 && total + n > maxBytes)) break
    total += n
    count++
  }
  const full = count > 0 && (count === limit || count < sizes.length)
  return { count, lastSeq: count > 0 ? sizes[count - 1]!.seq : 0, full }
}
