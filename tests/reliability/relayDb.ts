// Consistency checks of a relay's SQLite database (apps/relay/src/SqliteStore.ts schema), run on the file
// the relay process left behind — after a SIGKILL too, when recovery replays the WAL.
import { join } from 'node:path'
import { Database } from './deps.js'

/** What the checks found; a consistent database has `integrity: 'ok'` and zeros everywhere else. */
export interface DbReport {
  integrity: string
  foreignKeyViolations: number
  orphanOneTimePrekeys: number
  orphanKemPrekeys: number
  orphanMail: number
  orphanGaps: number
  /**
   * Mail of a device that is neither the account's primary, nor one of its linked devices (`linked_devices`), nor
   * the one whose mail is retained (`retained_mail`).
   */
  mailForReplacedDevices: number
  wrongMailboxCounts: number
  /** Accounts whose `mailbox_bytes` (the byte quota's running total) is not the sum of their envelopes. */
  wrongMailboxBytes: number
  /** Mail above its device's head: the primary's, a linked device's or the retained device's. */
  mailAboveHead: number
  /** Linked devices of no account, and linked prekeys of no linked device. */
  orphanLinkedDevices: number
  orphanLinkedPrekeys: number
  /** Linked devices whose `mailbox_count` / `mailbox_bytes` are not the count / sum of their mail. */
  wrongLinkedMailboxCounts: number
  wrongLinkedMailboxBytes: number
  accounts: number
  mail: number
}

/** Opens `<dataDir>/relay.db` (the relay must be stopped) and checks it. */
export function checkRelayDb(dataDir: string): DbReport {
  const db = new Database(join(dataDir, 'relay.db'))
  try {
    const n = (sql: string) => (db.prepare(sql).get() as { n: number }).n
    const orphans = (table: string) =>
      n(
        `SELECT count(*) AS n FROM ${table} t WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.address = t.address)`,
      )
    return {
      integrity: (db.pragma('integrity_check') as { integrity_check: string }[])
        .map((r) => r.integrity_check)
        .join(),
      foreignKeyViolations: (db.pragma('foreign_key_check') as unknown[]).length,
      orphanOneTimePrekeys: orphans('one_time_prekeys'),
      orphanKemPrekeys: orphans('kem_prekeys'),
      orphanMail: orphans('mailbox'),
      orphanGaps: orphans('mailbox_gaps'),
      mailForReplacedDevices: n(
        `SELECT count(*) AS n FROM mailbox m JOIN accounts a ON a.address = m.address
         LEFT JOIN retained_mail r ON r.address = m.address
         WHERE m.device_id <> a.device_id AND (r.device_id IS NULL OR m.device_id <> r.device_id)
           AND NOT EXISTS (SELECT 1 FROM linked_devices l WHERE l.address = m.address AND l.device_id = m.device_id)`,
      ),
      wrongMailboxCounts: n(
        `SELECT count(*) AS n FROM accounts a
         WHERE a.mailbox_count <> (SELECT count(*) FROM mailbox m WHERE m.address = a.address AND m.device_id = a.device_id)`,
      ),
      wrongMailboxBytes: n(
        `SELECT count(*) AS n FROM accounts a
         WHERE a.mailbox_bytes <> (SELECT coalesce(sum(length(m.envelope)), 0) FROM mailbox m
           WHERE m.address = a.address AND m.device_id = a.device_id)`,
      ),
      mailAboveHead: n(
        `SELECT count(*) AS n FROM mailbox m JOIN accounts a ON a.address = m.address
         LEFT JOIN retained_mail r ON r.address = m.address
         WHERE (m.device_id = a.device_id AND m.seq > a.mailbox_head_seq)
            OR (m.device_id = r.device_id AND m.seq > r.head_seq)
            OR EXISTS (SELECT 1 FROM linked_devices l
                       WHERE l.address = m.address AND l.device_id = m.device_id AND m.seq > l.mailbox_head_seq)`,
      ),
      orphanLinkedDevices: orphans('linked_devices'),
      orphanLinkedPrekeys: ['linked_one_time_prekeys', 'linked_kem_prekeys']
        .map((t) =>
          n(
            `SELECT count(*) AS n FROM ${t} k WHERE NOT EXISTS
               (SELECT 1 FROM linked_devices l WHERE l.address = k.address AND l.device_id = k.device_id)`,
          ),
        )
        .reduce((a, b) => a + b, 0),
      wrongLinkedMailboxCounts: n(
        `SELECT count(*) AS n FROM linked_devices l
         WHERE l.mailbox_count <> (SELECT count(*) FROM mailbox m WHERE m.address = l.address AND m.device_id = l.device_id)`,
      ),
      wrongLinkedMailboxBytes: n(
        `SELECT count(*) AS n FROM linked_devices l
         WHERE l.mailbox_bytes <> (SELECT coalesce(sum(length(m.envelope)), 0) FROM mailbox m
           WHERE m.address = l.address AND m.device_id = l.device_id)`,
      ),
      accounts: n('SELECT count(*) AS n FROM accounts'),
      mail: n('SELECT count(*) AS n FROM mailbox'),
    }
  } finally {
    db.close()
  }
}

/** The report a consistent database gives, for `toMatchObject`. */
export const CONSISTENT = {
  integrity: 'ok',
  foreignKeyViolations: 0,
  orphanOneTimePrekeys: 0,
  orphanKemPrekeys: 0,
  orphanMail: 0,
  orphanGaps: 0,
  mailForReplacedDevices: 0,
  wrongMailboxCounts: 0,
  wrongMailboxBytes: 0,
  mailAboveHead: 0,
  orphanLinkedDevices: 0,
  orphanLinkedPrekeys: 0,
  wrongLinkedMailboxCounts: 0,
  wrongLinkedMailboxBytes: 0,
}

/** Scrapes a relay's metrics listener (`metricsUrl`, …/metrics) and parses the text into `name{labels}` → value. */
export async function scrape(metricsUrl: string | null): Promise<Map<string, number>> {
  if (!metricsUrl) throw new Error('the relay has no metrics listener (--metrics-listen off)')
  const res = await fetch(metricsUrl)
  if (res.status !== 200) throw new Error(`${metricsUrl} answered ${res.status}`)
  const text = await res.text()
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

/** A metric's value (0 when absent), e.g. `metric(m, 'parley_relay_errors_total', { code: 'INTERNAL' })`. */
export function metric(m: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  const l = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')
  return m.get(l === '' ? name : `${name}{${l}}`) ?? 0
}
