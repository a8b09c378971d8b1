// Operator holds (`parley-relay admin`) as both SQL stores read them: the summary query and its row mapping.

import type { AccountSummary } from '../Store.js'
import { u8 } from './rows.js'

/** How long operator actions are kept for running relays to poll (`Store.operatorActions`). */
export const ACTION_RETENTION_MS = 86_400_000

/**
 * The account summary columns with the account's holds; the caller appends its `WHERE` (placeholders in its
 * own dialect). Identical SQL in SQLite and PostgreSQL.
 */
export const SUMMARY_QUERY = `SELECT a.address, a.device_id, a.created_at_ms, a.last_active_ms, a.mailbox_count,
    a.mailbox_bytes, EXISTS (SELECT 1 FROM account_bans b WHERE b.address = a.address) AS banned,
    EXISTS (SELECT 1 FROM revoked_devices r WHERE r.address = a.address AND r.device_id = a.device_id) AS revoked
  FROM accounts a`

/** A row of {@link SUMMARY_QUERY} (SQLite gives the flags as 0 / 1, PostgreSQL as booleans). */
export interface SummaryRow {
  address: Buffer
  device_id: number
  created_at_ms: number
  last_active_ms: number | null
  mailbox_count: number
  mailbox_bytes: number
  banned: number | boolean
  revoked: number | boolean
}

/** A {@link SUMMARY_QUERY} row as an {@link AccountSummary}. */
export function toSummary(r: SummaryRow): AccountSummary {
  return {
    address: u8(r.address),
    deviceId: r.device_id,
    createdAtMs: r.created_at_ms,
    lastActiveMs: r.last_active_ms ?? r.created_at_ms,
    mailboxMessages: r.mailbox_count,
    mailboxBytes: r.mailbox_bytes,
    banned: Boolean(r.banned),
    revoked: Boolean(r.revoked),
  }
}
