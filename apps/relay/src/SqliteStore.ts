/**
 * The default {@link port.Store | Store}: one SQLite file through better-sqlite3, in WAL mode, so that a
 * committed message survives a crash or power loss before `MessageAccepted` is sent: `synchronous = FULL` for
 * every write, except the hot paths — the group commit of mail (`enqueue`, `ack`), prekey uploads and bundle
 * hand-outs — whose fsync of the WAL runs on libuv's thread pool, off the event loop, and settles the callers only
 * once it is done.
 * Versioned migrations, prepared statements, one transaction per operation. What it shares with
 * {@link PostgresStore} beside the SQL — the decisions and row mappings — is in `store/`.
 * @module
 */
import { closeSync, fsync, fsyncSync, openSync } from 'node:fs'
import Database from 'better-sqlite3'
import type * as port from './Store.js'
import * as accounts from './store/accounts.js'
import * as devices from './store/devices.js'
import { storeClosed } from './store/errors.js'
import * as forwards from './store/forwards.js'
import * as mail from './store/mailbox.js'
import { ACTION_RETENTION_MS, SUMMARY_QUERY, type SummaryRow, toSummary } from './store/operator.js'
import { type AccountRow, buf, bufOrNull, cutPage, runs, u8, u8OrEmpty } from './store/rows.js'
import type { AccountSnapshot, LinkedDeviceSnapshot, MailRow, StoreSnapshot } from './store/snapshot.js'

/** Ordered schema migrations; a released entry is never edited, only new ones appended. */
const MIGRATIONS: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE accounts (
        address BLOB PRIMARY KEY,
        device_id INTEGER NOT NULL,
        identity_key BLOB NOT NULL,
        signed_prekey_id INTEGER NOT NULL,
        signed_prekey BLOB NOT NULL,
        signed_prekey_sig BLOB NOT NULL,
        kem_prekey_id INTEGER NOT NULL,
        kem_prekey BLOB NOT NULL,
        kem_prekey_sig BLOB NOT NULL,
        mailbox_head_seq INTEGER NOT NULL DEFAULT 0,
        mailbox_count INTEGER NOT NULL DEFAULT 0,
        created_at_ms INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE one_time_prekeys (
        address BLOB NOT NULL,
        key_id INTEGER NOT NULL,
        public_key BLOB NOT NULL,
        PRIMARY KEY (address, key_id)
      ) WITHOUT ROWID;
      CREATE TABLE kem_prekeys (
        address BLOB NOT NULL,
        key_id INTEGER NOT NULL,
        public_key BLOB NOT NULL,
        signature BLOB NOT NULL,
        PRIMARY KEY (address, key_id)
      ) WITHOUT ROWID;
      -- No sender column, by design (DESIGN.md P6).
      CREATE TABLE mailbox (
        address BLOB NOT NULL,
        device_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        message_id BLOB NOT NULL,
        envelope BLOB NOT NULL,
        received_at_ms INTEGER NOT NULL,
        PRIMARY KEY (address, device_id, seq)
      );
      CREATE UNIQUE INDEX mailbox_by_message_id ON mailbox (address, device_id, message_id);
      CREATE INDEX mailbox_by_received_at ON mailbox (received_at_ms);
      CREATE TABLE mailbox_gaps (
        address BLOB NOT NULL,
        device_id INTEGER NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('expired', 'evicted')),
        recorded_at_ms INTEGER NOT NULL,
        PRIMARY KEY (address, device_id, first_seq)
      );
      CREATE INDEX mailbox_gaps_by_recorded_at ON mailbox_gaps (recorded_at_ms);
    `,
  },
  {
    // Sender certificates and unidentified delivery. Both nullable: accounts activated before this version
    // (or without a commitment) read back as empty, and a device starts with no delivery verifier.
    version: 2,
    sql: `
      ALTER TABLE accounts ADD COLUMN number_commitment BLOB;
      ALTER TABLE accounts ADD COLUMN delivery_verifier BLOB;
    `,
  },
  {
    // The mailbox byte quota: the envelope bytes of each device's unread mail, kept beside mailbox_count and
    // computed here for the mail already stored. length() of a BLOB reads the record header, not the value.
    version: 3,
    sql: `
      ALTER TABLE accounts ADD COLUMN mailbox_bytes INTEGER NOT NULL DEFAULT 0;
      UPDATE accounts SET mailbox_bytes = (
        SELECT coalesce(sum(length(m.envelope)), 0) FROM mailbox m
        WHERE m.address = accounts.address AND m.device_id = accounts.device_id
      );
    `,
  },
  {
    // Registration locks (one per account, kept across a re-activation that proved the PIN) and the account
    // activity they lapse by; NULL last_active_ms (accounts from before this version) reads as created_at_ms.
    version: 4,
    sql: `
      ALTER TABLE accounts ADD COLUMN last_active_ms INTEGER;
      CREATE TABLE registration_locks (
        address BLOB PRIMARY KEY,
        salt BLOB NOT NULL,
        log_n INTEGER NOT NULL,
        verifier BLOB NOT NULL,
        set_at_ms INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    // Mail of a replaced device, kept for its identity key (Store.registerDevice): which device's, and its head.
    version: 5,
    sql: `
      CREATE TABLE retained_mail (
        address BLOB PRIMARY KEY,
        device_id INTEGER NOT NULL,
        identity_key BLOB NOT NULL,
        head_seq INTEGER NOT NULL,
        retained_at_ms INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    // Operator holds (`parley-relay admin`): banned addresses (kept across erasure and re-activation), revoked
    // devices, and the recent actions running relays poll to close the connections concerned.
    version: 6,
    sql: `
      CREATE TABLE account_bans (
        address BLOB PRIMARY KEY,
        banned_at_ms INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE revoked_devices (
        address BLOB NOT NULL,
        device_id INTEGER NOT NULL,
        revoked_at_ms INTEGER NOT NULL,
        PRIMARY KEY (address, device_id)
      ) WITHOUT ROWID;
      CREATE TABLE operator_actions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        address BLOB NOT NULL,
        device_id INTEGER NOT NULL,
        at_ms INTEGER NOT NULL
      );
    `,
  },
  {
    // Linked devices (docs/architecture.md §9). The primary stays the accounts row; a linked device's bundle keys
    // are NULL until its first upload, and its mailbox counters live in its row while its mail shares mailbox
    // and mailbox_gaps (keyed by device). max_device_id is the high-water mark ids are never reused below,
    // starting at the registered device's. Rendezvous hold the link messages (a history transfer can be large):
    // a rowid table, so that a big message sits in overflow pages rather than in the index.
    version: 7,
    sql: `
      ALTER TABLE accounts ADD COLUMN max_device_id INTEGER NOT NULL DEFAULT 0;
      UPDATE accounts SET max_device_id = device_id;
      CREATE TABLE linked_devices (
        address BLOB NOT NULL,
        device_id INTEGER NOT NULL,
        device_key BLOB NOT NULL,
        signed_prekey_id INTEGER,
        signed_prekey BLOB,
        signed_prekey_sig BLOB,
        kem_prekey_id INTEGER,
        kem_prekey BLOB,
        kem_prekey_sig BLOB,
        mailbox_head_seq INTEGER NOT NULL DEFAULT 0,
        mailbox_count INTEGER NOT NULL DEFAULT 0,
        mailbox_bytes INTEGER NOT NULL DEFAULT 0,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (address, device_id)
      ) WITHOUT ROWID;
      CREATE TABLE linked_one_time_prekeys (
        address BLOB NOT NULL,
        device_id INTEGER NOT NULL,
        key_id INTEGER NOT NULL,
        public_key BLOB NOT NULL,
        PRIMARY KEY (address, device_id, key_id)
      ) WITHOUT ROWID;
      CREATE TABLE linked_kem_prekeys (
        address BLOB NOT NULL,
        device_id INTEGER NOT NULL,
        key_id INTEGER NOT NULL,
        public_key BLOB NOT NULL,
        signature BLOB NOT NULL,
        PRIMARY KEY (address, device_id, key_id)
      ) WITHOUT ROWID;
      CREATE TABLE device_lists (
        address BLOB PRIMARY KEY,
        version INTEGER NOT NULL,
        list BLOB NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE rendezvous (
        id BLOB NOT NULL UNIQUE,
        address BLOB NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        to_primary BLOB,
        to_device BLOB
      );
      CREATE INDEX rendezvous_by_address ON rendezvous (address);
      CREATE INDEX rendezvous_by_expiry ON rendezvous (expires_at_ms);
    `,
  },
  {
    // Address forwards (Store.rebindAddress with forwardUntilMs, Store.addressForward): opaque rows, as
    // store/forwards.ts writes them — a hash of the old address, a hash of the new one (erased with its account),
    // the new address sealed under a key derived from the old one, and the forward's end (the sweep's index).
    version: 8,
    sql: `
      CREATE TABLE address_forwards (
        old_key BLOB PRIMARY KEY,
        new_key BLOB NOT NULL,
        target BLOB NOT NULL,
        expires_at_ms INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX address_forwards_by_to ON address_forwards (new_key);
      CREATE INDEX address_forwards_by_expiry ON address_forwards (expires_at_ms);
    `,
  },
]

/** The highest schema version this code knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version

/** How the store makes a file durable: `node:fs`'s `fsync`, or a test's (to hold a commit back). */
export type Fsync = (fd: number, done: (err: NodeJS.ErrnoException | null) => void) => void

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /** Replaces `node:fs`'s `fsync` for the group commit's WAL sync (tests). */
  fsync?: Fsync
  /**
   * The longest an erasure waits for its scrub, in milliseconds: the `VACUUM` that rewrites the file so that no
   * stale copy of an erased row stays in unused page space (see {@link SqliteStore.scrub}). Erasures meanwhile
   * share one scrub, so however many there are, the store stalls for one at most this often. 0: at once, before
   * the erasing call returns. Default 60 000.
   */
  scrubDelayMs?: number
  /** Told when an erasure makes a scrub due, and when a scrub ran (its duration) or failed (its error). */
  onScrub?: (event: ScrubEvent) => void
}

/** What {@link SqliteStoreOptions.onScrub} is told. */
export type ScrubEvent = { kind: 'due' } | { kind: 'done'; ms: number } | { kind: 'failed'; error: Error }

/** {@link SqliteStoreOptions.scrubDelayMs}'s default. */
export const DEFAULT_SCRUB_DELAY_MS = 60_000

/** SQLite implementation of {@link port.Store | Store}. */
export class SqliteStore implements port.Store {
  /**
   * True: `enqueue` and `ack` push their work onto the group-commit batch synchronously when called, and the
   * batch runs (and, on failure, retries one by one) in push order, so call order is the order of effect.
   */
  readonly ordersConcurrentWrites = true
  readonly #db: Database.Database
  readonly #s: ReturnType<SqliteStore['prepare']>
  #closed = false
  readonly #batch: { work: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = []
  /** The WAL file, for the group commit's own fsync; undefined for an in-memory database. */
  readonly #walPath: string | undefined
  #walFd: number | undefined
  readonly #fsync: Fsync
  /** Settles group-committed work once the WAL is durable: called with the sync's error, or null. */
  #durableWaiters: ((err: Error | null) => void)[] = []
  /** The fsync in flight, if any; a second waits for it (and then covers everything committed meanwhile). */
  #syncing: Promise<void> | undefined
  readonly #scrubDelayMs: number
  readonly #onScrub: (event: ScrubEvent) => void
  /** An erasure happened since the last scrub. */
  #scrubDue = false
  #scrubTimer: NodeJS.Timeout | undefined

  /**
   * Opens (creating if needed) and migrates the database.
   * @param path - file path, or `':memory:'` for tests
   * @throws Error when the file was written by a newer schema version
   */
  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.#db = new Database(path)
    const mode = this.#db.pragma('journal_mode = WAL', { simple: true })
    this.#walPath = mode === 'wal' ? `${this.#db.name}-wal` : undefined
    this.#fsync = options.fsync ?? fsync
    this.#scrubDelayMs = options.scrubDelayMs ?? DEFAULT_SCRUB_DELAY_MS
    this.#onScrub = options.onScrub ?? (() => {})
    this.#db.pragma('synchronous = FULL')
    this.#db.pragma('foreign_keys = ON')
    this.#db.pragma('busy_timeout = 5000')
    // Erasure must reach the disk (P8): deleted rows are overwritten, not left in free pages. Not enough on its
    // own: see scrub.
    this.#db.pragma('secure_delete = ON')
    this.migrate()
    this.#s = this.prepare()
  }

  /** The schema version of the open database. */
  get schemaVersion(): number {
    const row = this.#db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as {
      v: number | null
    }
    return row.v ?? 0
  }

  private migrate(): void {
    this.#db.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)',
    )
    const current = this.schemaVersion
    if (current > SCHEMA_VERSION) {
      throw new Error(`database schema version ${current} is newer than this relay (${SCHEMA_VERSION})`)
    }
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue
      this.#db.transaction(() => {
        this.#db.exec(m.sql)
        this.#db
          .prepare('INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?, ?)')
          .run(m.version, Date.now())
      })()
    }
  }

  private prepare() {
    const db = this.#db
    return {
      getAccount: db.prepare('SELECT * FROM accounts WHERE address = ?'),
      // The mail paths need only these: reading the whole row copies the account's keys (~1.5 KB) each time.
      getMailboxState: db.prepare(
        'SELECT device_id, mailbox_head_seq, mailbox_count, mailbox_bytes FROM accounts WHERE address = ?',
      ),
      insertAccount:
        db.prepare(`INSERT INTO accounts (address, device_id, identity_key, signed_prekey_id, signed_prekey,
        signed_prekey_sig, kem_prekey_id, kem_prekey, kem_prekey_sig, mailbox_head_seq, mailbox_count, mailbox_bytes,
        created_at_ms, number_commitment, last_active_ms, max_device_id)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?, ?)`),
      getLock: db.prepare(
        'SELECT salt, log_n, verifier, set_at_ms FROM registration_locks WHERE address = ?',
      ),
      putLock: db.prepare(`INSERT INTO registration_locks (address, salt, log_n, verifier, set_at_ms)
        VALUES (?, ?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET salt = excluded.salt, log_n = excluded.log_n,
        verifier = excluded.verifier, set_at_ms = excluded.set_at_ms`),
      deleteLock: db.prepare('DELETE FROM registration_locks WHERE address = ?'),
      touch: db.prepare('UPDATE accounts SET last_active_ms = ? WHERE address = ? AND device_id = ?'),
      setDeliveryVerifier: db.prepare(
        'UPDATE accounts SET delivery_verifier = ? WHERE address = ? AND device_id = ?',
      ),
      deleteAccount: db.prepare('DELETE FROM accounts WHERE address = ?'),
      deleteOtpks: db.prepare('DELETE FROM one_time_prekeys WHERE address = ?'),
      deleteKems: db.prepare('DELETE FROM kem_prekeys WHERE address = ?'),
      deleteMail: db.prepare('DELETE FROM mailbox WHERE address = ?'),
      deleteGaps: db.prepare('DELETE FROM mailbox_gaps WHERE address = ?'),
      // rebindAddress: every row of an account moved from one address (the second parameter) to another.
      moveOtpks: db.prepare('UPDATE one_time_prekeys SET address = ? WHERE address = ?'),
      moveKems: db.prepare('UPDATE kem_prekeys SET address = ? WHERE address = ?'),
      moveMail: db.prepare('UPDATE mailbox SET address = ? WHERE address = ?'),
      moveGaps: db.prepare('UPDATE mailbox_gaps SET address = ? WHERE address = ?'),
      moveLock: db.prepare('UPDATE registration_locks SET address = ? WHERE address = ?'),
      moveAccount: db.prepare('UPDATE accounts SET address = ? WHERE address = ?'),
      prefix: db.prepare(
        'SELECT address FROM accounts WHERE address >= ? AND address <= ? ORDER BY address LIMIT ?',
      ),
      putOtpk: db.prepare(
        'INSERT OR REPLACE INTO one_time_prekeys (address, key_id, public_key) VALUES (?, ?, ?)',
      ),
      putKem: db.prepare(
        'INSERT OR REPLACE INTO kem_prekeys (address, key_id, public_key, signature) VALUES (?, ?, ?, ?)',
      ),
      setSigned: db.prepare(
        'UPDATE accounts SET signed_prekey_id = ?, signed_prekey = ?, signed_prekey_sig = ? WHERE address = ?',
      ),
      setLastResort: db.prepare(
        'UPDATE accounts SET kem_prekey_id = ?, kem_prekey = ?, kem_prekey_sig = ? WHERE address = ?',
      ),
      countOtpk: db.prepare('SELECT count(*) AS n FROM one_time_prekeys WHERE address = ?'),
      countKem: db.prepare('SELECT count(*) AS n FROM kem_prekeys WHERE address = ?'),
      firstOtpk: db.prepare(
        'SELECT key_id, public_key FROM one_time_prekeys WHERE address = ? ORDER BY key_id LIMIT 1',
      ),
      firstKem: db.prepare(
        'SELECT key_id, public_key, signature FROM kem_prekeys WHERE address = ? ORDER BY key_id LIMIT 1',
      ),
      delOtpk: db.prepare('DELETE FROM one_time_prekeys WHERE address = ? AND key_id = ?'),
      delKem: db.prepare('DELETE FROM kem_prekeys WHERE address = ? AND key_id = ?'),
      findMessage: db.prepare(
        'SELECT seq FROM mailbox WHERE address = ? AND device_id = ? AND message_id = ?',
      ),
      delSeq: db.prepare('DELETE FROM mailbox WHERE address = ? AND device_id = ? AND seq = ?'),
      // One statement for a whole ack: the list arrives as a JSON array; IN matches each row once, however often
      // its seq is listed, and only rows of this device. RETURNING gives the sizes for the byte total.
      delSeqs: db.prepare(
        `DELETE FROM mailbox WHERE address = ? AND device_id = ? AND seq IN (SELECT value FROM json_each(?))
        RETURNING length(envelope) AS n`,
      ),
      insertMail:
        db.prepare(`INSERT INTO mailbox (address, device_id, seq, message_id, envelope, received_at_ms)
        VALUES (?, ?, ?, ?, ?, ?)`),
      setMailbox: db.prepare(
        'UPDATE accounts SET mailbox_head_seq = ?, mailbox_count = ?, mailbox_bytes = ? WHERE address = ?',
      ),
      // By device too: expiring a replaced device's retained mail must not lower the current device's counters.
      lowerMailbox: db.prepare(`UPDATE accounts SET mailbox_count = max(0, mailbox_count - ?),
        mailbox_bytes = max(0, mailbox_bytes - ?) WHERE address = ? AND device_id = ?`),
      getRetained: db.prepare(
        'SELECT device_id, identity_key, head_seq, retained_at_ms FROM retained_mail WHERE address = ?',
      ),
      putRetained:
        db.prepare(`INSERT INTO retained_mail (address, device_id, identity_key, head_seq, retained_at_ms)
        VALUES (?, ?, ?, ?, ?)`),
      deleteRetained: db.prepare('DELETE FROM retained_mail WHERE address = ?'),
      expireRetained: db.prepare('DELETE FROM retained_mail WHERE retained_at_ms < ?'),
      moveRetained: db.prepare('UPDATE retained_mail SET address = ? WHERE address = ?'),
      eraseOtherMail: db.prepare('DELETE FROM mailbox WHERE address = ? AND device_id NOT IN (?, ?)'),
      eraseOtherGaps: db.prepare('DELETE FROM mailbox_gaps WHERE address = ? AND device_id NOT IN (?, ?)'),
      restoreMail: db.prepare('UPDATE mailbox SET device_id = ? WHERE address = ? AND device_id = ?'),
      restoreGaps: db.prepare('UPDATE mailbox_gaps SET device_id = ? WHERE address = ? AND device_id = ?'),
      mailStats: db.prepare(`SELECT count(*) AS n, coalesce(sum(length(envelope)), 0) AS bytes
        FROM mailbox WHERE address = ? AND device_id = ?`),
      setMailboxState: db.prepare(
        'UPDATE accounts SET mailbox_head_seq = ?, mailbox_count = ?, mailbox_bytes = ? WHERE address = ?',
      ),
      // length() of a BLOB reads the record header only, not the value (nor its overflow pages).
      pageSizes: db.prepare(`SELECT seq, length(envelope) AS n FROM mailbox
        WHERE address = ? AND device_id = ? AND seq > ? ORDER BY seq LIMIT ?`),
      page: db.prepare(`SELECT seq, message_id, envelope, received_at_ms FROM mailbox
        WHERE address = ? AND device_id = ? AND seq > ? AND seq <= ? ORDER BY seq`),
      gapsAfter: db.prepare(`SELECT first_seq, last_seq, reason FROM mailbox_gaps
        WHERE address = ? AND device_id = ? AND last_seq > ? AND first_seq <= ? ORDER BY first_seq`),
      extendGap: db.prepare(`UPDATE mailbox_gaps SET last_seq = ?, recorded_at_ms = ?
        WHERE address = ? AND device_id = ? AND last_seq = ? AND reason = ?`),
      insertGap:
        db.prepare(`INSERT INTO mailbox_gaps (address, device_id, first_seq, last_seq, reason, recorded_at_ms)
        VALUES (?, ?, ?, ?, ?, ?)`),
      expiredBatch: db.prepare(`SELECT address, device_id, seq, length(envelope) AS n FROM mailbox
        WHERE received_at_ms < ? ORDER BY address, device_id, seq LIMIT ?`),
      expireGaps: db.prepare('DELETE FROM mailbox_gaps WHERE recorded_at_ms < ?'),
      // Linked devices. Their mail is in mailbox / mailbox_gaps under their own device ids.
      primaryKey: db.prepare('SELECT device_id, identity_key FROM accounts WHERE address = ?'),
      deviceListState: db.prepare('SELECT device_id, max_device_id FROM accounts WHERE address = ?'),
      setMaxDeviceId: db.prepare('UPDATE accounts SET max_device_id = ? WHERE address = ?'),
      linkedDevices: db.prepare(
        'SELECT device_id, device_key, created_at_ms FROM linked_devices WHERE address = ? ORDER BY device_id',
      ),
      linkedDevice: db.prepare(
        'SELECT device_id, device_key, created_at_ms FROM linked_devices WHERE address = ? AND device_id = ?',
      ),
      linkedBundleKeys:
        db.prepare(`SELECT device_id, device_key, signed_prekey_id, signed_prekey, signed_prekey_sig,
        kem_prekey_id, kem_prekey, kem_prekey_sig FROM linked_devices WHERE address = ? AND device_id = ?`),
      insertLinked: db.prepare(
        'INSERT INTO linked_devices (address, device_id, device_key, created_at_ms) VALUES (?, ?, ?, ?)',
      ),
      linkedMailboxState: db.prepare(`SELECT device_id, mailbox_head_seq, mailbox_count, mailbox_bytes
        FROM linked_devices WHERE address = ? AND device_id = ?`),
      setLinkedMailbox: db.prepare(`UPDATE linked_devices SET mailbox_head_seq = ?, mailbox_count = ?,
        mailbox_bytes = ? WHERE address = ? AND device_id = ?`),
      lowerLinkedMailbox: db.prepare(`UPDATE linked_devices SET mailbox_count = max(0, mailbox_count - ?),
        mailbox_bytes = max(0, mailbox_bytes - ?) WHERE address = ? AND device_id = ?`),
      setLinkedSigned: db.prepare(`UPDATE linked_devices SET signed_prekey_id = ?, signed_prekey = ?,
        signed_prekey_sig = ? WHERE address = ? AND device_id = ?`),
      setLinkedLastResort: db.prepare(`UPDATE linked_devices SET kem_prekey_id = ?, kem_prekey = ?,
        kem_prekey_sig = ? WHERE address = ? AND device_id = ?`),
      putLinkedOtpk: db.prepare(`INSERT OR REPLACE INTO linked_one_time_prekeys (address, device_id, key_id,
        public_key) VALUES (?, ?, ?, ?)`),
      putLinkedKem:
        db.prepare(`INSERT OR REPLACE INTO linked_kem_prekeys (address, device_id, key_id, public_key,
        signature) VALUES (?, ?, ?, ?, ?)`),
      countLinkedOtpk: db.prepare(
        'SELECT count(*) AS n FROM linked_one_time_prekeys WHERE address = ? AND device_id = ?',
      ),
      countLinkedKem: db.prepare(
        'SELECT count(*) AS n FROM linked_kem_prekeys WHERE address = ? AND device_id = ?',
      ),
      firstLinkedOtpk: db.prepare(`SELECT key_id, public_key FROM linked_one_time_prekeys
        WHERE address = ? AND device_id = ? ORDER BY key_id LIMIT 1`),
      firstLinkedKem: db.prepare(`SELECT key_id, public_key, signature FROM linked_kem_prekeys
        WHERE address = ? AND device_id = ? ORDER BY key_id LIMIT 1`),
      delLinkedOtpk: db.prepare(
        'DELETE FROM linked_one_time_prekeys WHERE address = ? AND device_id = ? AND key_id = ?',
      ),
      delLinkedKem: db.prepare(
        'DELETE FROM linked_kem_prekeys WHERE address = ? AND device_id = ? AND key_id = ?',
      ),
      // One removed device: its row, prekeys, mail and gaps.
      eraseLinkedDevice: db.prepare('DELETE FROM linked_devices WHERE address = ? AND device_id = ?'),
      eraseLinkedOtpks: db.prepare('DELETE FROM linked_one_time_prekeys WHERE address = ? AND device_id = ?'),
      eraseLinkedKems: db.prepare('DELETE FROM linked_kem_prekeys WHERE address = ? AND device_id = ?'),
      eraseDeviceMail: db.prepare('DELETE FROM mailbox WHERE address = ? AND device_id = ?'),
      eraseDeviceGaps: db.prepare('DELETE FROM mailbox_gaps WHERE address = ? AND device_id = ?'),
      // Every linked device and the list of an address (erasure, re-activation).
      deleteLinked: db.prepare('DELETE FROM linked_devices WHERE address = ?'),
      deleteLinkedOtpks: db.prepare('DELETE FROM linked_one_time_prekeys WHERE address = ?'),
      deleteLinkedKems: db.prepare('DELETE FROM linked_kem_prekeys WHERE address = ?'),
      deleteDeviceList: db.prepare('DELETE FROM device_lists WHERE address = ?'),
      deleteRendezvousOf: db.prepare('DELETE FROM rendezvous WHERE address = ?'),
      moveLinked: db.prepare('UPDATE linked_devices SET address = ? WHERE address = ?'),
      moveLinkedOtpks: db.prepare('UPDATE linked_one_time_prekeys SET address = ? WHERE address = ?'),
      moveLinkedKems: db.prepare('UPDATE linked_kem_prekeys SET address = ? WHERE address = ?'),
      moveDeviceList: db.prepare('UPDATE device_lists SET address = ? WHERE address = ?'),
      moveRendezvous: db.prepare('UPDATE rendezvous SET address = ? WHERE address = ?'),
      getDeviceList: db.prepare('SELECT version, list FROM device_lists WHERE address = ?'),
      listVersion: db.prepare('SELECT version FROM device_lists WHERE address = ?'),
      linkedIds: db.prepare('SELECT device_id FROM linked_devices WHERE address = ? ORDER BY device_id'),
      putDeviceList: db.prepare(`INSERT INTO device_lists (address, version, list) VALUES (?, ?, ?)
        ON CONFLICT (address) DO UPDATE SET version = excluded.version, list = excluded.list`),
      openRendezvous: db.prepare(`INSERT INTO rendezvous (id, address, expires_at_ms) VALUES (?, ?, ?)
        ON CONFLICT (id) DO NOTHING`),
      getRendezvous: db.prepare(`SELECT address, expires_at_ms, to_primary IS NOT NULL AS has_primary,
        to_device IS NOT NULL AS has_device FROM rendezvous WHERE id = ?`),
      postToPrimary: db.prepare('UPDATE rendezvous SET to_primary = ? WHERE id = ?'),
      postToDevice: db.prepare('UPDATE rendezvous SET to_device = ? WHERE id = ?'),
      readToPrimary: db.prepare(
        'SELECT address, to_primary FROM rendezvous WHERE id = ? AND expires_at_ms > ?',
      ),
      // The answer's one read ends the rendezvous, in one statement: two readers cannot both get it.
      takeToDevice:
        db.prepare(`DELETE FROM rendezvous WHERE id = ? AND expires_at_ms > ? AND to_device IS NOT NULL
        RETURNING to_device`),
      expireRendezvous: db.prepare('DELETE FROM rendezvous WHERE expires_at_ms <= ?'),
      // Address forwards (store/forwards.ts): by the hash of the old address, or of the new one.
      getForward: db.prepare(
        'SELECT old_key, new_key, target, expires_at_ms FROM address_forwards WHERE old_key = ?',
      ),
      putForward: db.prepare(`INSERT INTO address_forwards (old_key, new_key, target, expires_at_ms)
        VALUES (?, ?, ?, ?) ON CONFLICT (old_key) DO UPDATE SET new_key = excluded.new_key,
        target = excluded.target, expires_at_ms = excluded.expires_at_ms`),
      deleteForwardFrom: db.prepare('DELETE FROM address_forwards WHERE old_key = ?'),
      deleteForwardsTo: db.prepare('DELETE FROM address_forwards WHERE new_key = ?'),
      expireForwards: db.prepare('DELETE FROM address_forwards WHERE expires_at_ms < ?'),
      hasAccount: db.prepare('SELECT 1 AS x FROM accounts WHERE address = ?'),
      setCommitment: db.prepare('UPDATE accounts SET number_commitment = ? WHERE address = ?'),
    }
  }

  #open(): void {
    if (this.#closed) throw storeClosed()
  }

  /**
   * Group commit: `work` runs in the next shared write transaction, which commits everything queued during this
   * turn of the event loop, and the promise settles only after the WAL holding that commit has been synced to disk,
   * so nothing is acknowledged before it is durable. One fsync per message capped the relay at ~900 messages/s on
   * loopback (bench/README.md). The transaction commits with `synchronous = NORMAL` (no fsync on the event loop;
   * a disk's fsync takes up to tens of ms, during which every other client would wait) and the fsync runs on the
   * thread pool ({@link SqliteStore.#whenDurable}). If the shared transaction fails, each piece of work is retried
   * in its own transaction so only the failing one rejects.
   */
  #grouped<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#batch.push({ work, resolve: resolve as (v: unknown) => void, reject })
      if (this.#batch.length === 1) setImmediate(() => this.#flush())
    })
  }

  #flush(): void {
    const batch = this.#batch.splice(0)
    if (batch.length === 0) return
    if (this.#closed) {
      for (const b of batch) b.reject(storeClosed())
      return
    }
    const done: { resolve: (v: unknown) => void; reject: (e: unknown) => void; value: unknown }[] = []
    this.#withoutSync(() => {
      try {
        const results = this.#db.transaction(() => batch.map((b) => b.work()))()
        for (const [i, b] of batch.entries()) done.push({ ...b, value: results[i] })
      } catch (err) {
        if (batch.length === 1) batch[0]!.reject(err)
        else {
          for (const b of batch) {
            try {
              done.push({ ...b, value: this.#db.transaction(b.work)() })
            } catch (e) {
              b.reject(e)
            }
          }
        }
      }
    })
    if (done.length === 0) return
    this.#whenDurable((err) => {
      for (const d of done) {
        if (err) d.reject(err)
        else d.resolve(d.value)
      }
    })
  }

  /**
   * One transaction of the hot write paths other than mail (prekey uploads, bundle hand-outs): committed with
   * `synchronous = NORMAL`, settled after the WAL fsync on the thread pool, as the group commit is.
   */
  async #durably<T>(work: () => T): Promise<T> {
    const result = this.#withoutSync(() => this.#db.transaction(work)())
    await new Promise<void>((resolve, reject) => this.#whenDurable((err) => (err ? reject(err) : resolve())))
    return result
  }

  /**
   * Runs `fn` with `synchronous = NORMAL`: its commits do no fsync on the event loop, and the caller must wait
   * for {@link SqliteStore.#whenDurable} before telling anyone they are durable. Back to `FULL` afterwards.
   */
  #withoutSync<T>(fn: () => T): T {
    if (!this.#walPath) return fn()
    this.#db.pragma('synchronous = NORMAL')
    try {
      return fn()
    } finally {
      this.#db.pragma('synchronous = FULL')
    }
  }

  /**
   * Calls `then` once everything committed so far is on disk: at once for an in-memory database, otherwise after
   * an fsync of the WAL on the thread pool. Syncs do not overlap: callers that arrive while one is in flight share
   * the next, which covers everything committed until it starts.
   */
  #whenDurable(then: (err: Error | null) => void): void {
    if (!this.#walPath) {
      then(null)
      return
    }
    this.#durableWaiters.push(then)
    if (!this.#syncing) this.#syncing = this.#syncWal()
  }

  async #syncWal(): Promise<void> {
    while (this.#durableWaiters.length > 0) {
      const waiters = this.#durableWaiters
      this.#durableWaiters = []
      let failure: Error | null = null
      try {
        this.#walFd ??= openSync(this.#walPath!, 'r')
        const fd = this.#walFd
        await new Promise<void>((resolve, reject) =>
          this.#fsync(fd, (err) => (err ? reject(err) : resolve())),
        )
      } catch (err) {
        failure = err as Error
      }
      for (const w of waiters) w(failure)
    }
    this.#syncing = undefined
  }

  #row(address: Uint8Array): AccountRow | undefined {
    return this.#s.getAccount.get(buf(address)) as AccountRow | undefined
  }

  #mailboxState(address: Uint8Array): mail.MailboxState | undefined {
    return this.#s.getMailboxState.get(buf(address)) as mail.MailboxState | undefined
  }

  /**
   * The mailbox of device `deviceId` at `address` (`state`): the account row's counters for the primary, the
   * device's own row for a linked device (`linked`), or none. `primary` is the account row, for the refusal.
   */
  #deviceMailbox(
    address: Uint8Array,
    deviceId: number,
  ): { primary: mail.MailboxState | undefined; state: mail.MailboxState | undefined; linked: boolean } {
    const primary = this.#mailboxState(address)
    // The primary's mail is the hot path: one read, as before linked devices.
    if (!primary || primary.device_id === deviceId) return { primary, state: primary, linked: false }
    const state = this.#s.linkedMailboxState.get(buf(address), deviceId) as mail.MailboxState | undefined
    return { primary, state, linked: true }
  }

  /**
   * Takes acked or expired mail off its device's counters: the account row's when the device is the primary,
   * else its linked row's. Mail of neither (retained for a replaced device) counts nowhere.
   */
  #lowerMailbox(address: Buffer, deviceId: number, count: number, bytes: number): void {
    if (this.#s.lowerMailbox.run(count, bytes, address, deviceId).changes === 0) {
      this.#s.lowerLinkedMailbox.run(count, bytes, address, deviceId)
    }
  }

  /** Erases every linked device of an address (rows, prekeys) and its device list; their mail is the caller's. */
  #eraseLinked(address: Buffer): void {
    this.#s.deleteLinked.run(address)
    this.#s.deleteLinkedOtpks.run(address)
    this.#s.deleteLinkedKems.run(address)
    this.#s.deleteDeviceList.run(address)
  }

  /** Erases one linked device a new list removed: its row, prekeys, mail and gap records. */
  #eraseLinkedDevice(address: Buffer, deviceId: number): void {
    for (const erase of [
      this.#s.eraseLinkedDevice,
      this.#s.eraseLinkedOtpks,
      this.#s.eraseLinkedKems,
      this.#s.eraseDeviceMail,
      this.#s.eraseDeviceGaps,
    ]) {
      erase.run(address, deviceId)
    }
  }

  #linkedCounts(address: Buffer, deviceId: number): port.PrekeyCounts {
    return {
      oneTimeCount: (this.#s.countLinkedOtpk.get(address, deviceId) as { n: number }).n,
      kemOneTimeCount: (this.#s.countLinkedKem.get(address, deviceId) as { n: number }).n,
    }
  }

  #eraseKeysAndMail(address: Buffer): void {
    this.#s.deleteOtpks.run(address)
    this.#s.deleteKems.run(address)
    this.#s.deleteMail.run(address)
    this.#s.deleteGaps.run(address)
  }

  #putKeys(
    address: Buffer,
    keys: { oneTimePrekeys: port.OneTimeKey[]; oneTimeKemPrekeys: port.SignedKey[] },
  ): void {
    for (const k of keys.oneTimePrekeys) this.#s.putOtpk.run(address, k.keyId, buf(k.publicKey))
    for (const k of keys.oneTimeKemPrekeys)
      this.#s.putKem.run(address, k.keyId, buf(k.publicKey), buf(k.signature))
  }

  #counts(address: Buffer): port.PrekeyCounts {
    return {
      oneTimeCount: (this.#s.countOtpk.get(address) as { n: number }).n,
      kemOneTimeCount: (this.#s.countKem.get(address) as { n: number }).n,
    }
  }

  /**
   * Records a device's expired seqs (sorted) as `expired` gaps: each run of consecutive seqs extends the gap
   * that ends just before it, or is a new one.
   */
  #recordExpired(address: Buffer, deviceId: number, seqs: number[], nowMs: number): void {
    for (const [first, last] of runs(seqs)) {
      const extended = this.#s.extendGap.run(last, nowMs, address, deviceId, first - 1, 'expired')
      if (extended.changes === 0) this.#s.insertGap.run(address, deviceId, first, last, 'expired', nowMs)
    }
  }

  async ping(): Promise<void> {
    this.#open()
    this.#db.prepare('SELECT 1').get()
  }

  async accountCount(): Promise<number> {
    this.#open()
    return (this.#db.prepare('SELECT count(*) AS n FROM accounts').get() as { n: number }).n
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#flush() // commit what callers are already waiting for
    // A stopped relay's file holds nothing erased (a copy of it is what a thief of the disk would read).
    if (this.#scrubDue) this.scrub()
    this.#closed = true
    // ... and let them hear that it is on disk before the WAL file is closed under the sync.
    while (this.#syncing) await this.#syncing
    if (this.#walFd !== undefined) {
      fsyncSync(this.#walFd)
      closeSync(this.#walFd)
      this.#walFd = undefined
    }
    // Folds the WAL back into the main file so a plain file copy after shutdown is a complete backup.
    this.#db.pragma('wal_checkpoint(TRUNCATE)')
    this.#db.close()
  }

  async registerDevice(input: Parameters<port.Store['registerDevice']>[0]): Promise<port.RegisteredDevice> {
    this.#open()
    let erasedForward = false
    const result = this.#db.transaction((): port.RegisteredDevice => {
      const address = buf(input.address)
      const old = this.#row(input.address)
      let restore: { deviceId: number; headSeq: number } | undefined
      let retainedMessages = 0
      if (old) {
        const retained = this.#s.getRetained.get(address) as
          | { device_id: number; identity_key: Buffer; head_seq: number; retained_at_ms: number }
          | undefined
        const plan = accounts.planKeptMail(
          {
            deviceId: old.device_id,
            identityKey: old.identity_key,
            headSeq: old.mailbox_head_seq,
            count: old.mailbox_count,
          },
          retained && {
            deviceId: retained.device_id,
            identityKey: retained.identity_key,
            headSeq: retained.head_seq,
          },
          input.identityKey,
        )
        restore = plan.restore
        retainedMessages = plan.retainedMessages
        // Everything else of the address's mail goes (device ids start at 1: -1 keeps nothing).
        const [keepA = -1, keepB = -1] = plan.keep
        this.#s.deleteOtpks.run(address)
        this.#s.deleteKems.run(address)
        this.#s.eraseOtherMail.run(address, keepA, keepB)
        this.#s.eraseOtherGaps.run(address, keepA, keepB)
        this.#s.deleteRetained.run(address)
        // The linked devices were linked by the identity being replaced; their mail went with eraseOtherMail.
        this.#eraseLinked(address)
        this.#s.deleteAccount.run(address)
        if (plan.retainOld) {
          this.#s.putRetained.run(address, old.device_id, old.identity_key, old.mailbox_head_seq, input.nowMs)
        } else if (plan.keepRetained) {
          this.#s.putRetained.run(
            address,
            retained!.device_id,
            retained!.identity_key,
            retained!.head_seq,
            retained!.retained_at_ms,
          )
        }
      }
      // Above every id the address used, linked devices' too: a contact's session with one is not the new device's.
      const deviceId = accounts.nextDeviceId(old && devices.highestDeviceId(old))
      const { signedPrekey: spk, lastResortKemPrekey: kem } = input
      this.#s.insertAccount.run(
        address,
        deviceId,
        buf(input.identityKey),
        spk.keyId,
        buf(spk.publicKey),
        buf(spk.signature),
        kem.keyId,
        buf(kem.publicKey),
        buf(kem.signature),
        input.nowMs,
        bufOrNull(input.numberCommitment),
        input.nowMs,
        deviceId,
      )
      let restoredMessages = 0
      if (restore) {
        this.#s.restoreMail.run(deviceId, address, restore.deviceId)
        this.#s.restoreGaps.run(deviceId, address, restore.deviceId)
        const stats = this.#s.mailStats.get(address, deviceId) as { n: number; bytes: number }
        this.#s.setMailboxState.run(restore.headSeq, stats.n, stats.bytes, address)
        restoredMessages = stats.n
      }
      if (input.keepRegistrationLock !== true) this.#s.deleteLock.run(address)
      // The address is this new account's now: a forward kept from it (an account that moved away) goes.
      erasedForward = this.#s.deleteForwardFrom.run(forwards.forwardFromKey(address)).changes > 0
      this.#putKeys(address, input)
      return { deviceId, replacedDevice: old !== undefined, restoredMessages, retainedMessages }
    })()
    if (result.replacedDevice || erasedForward) this.#foldErasures()
    return result
  }

  async getAccount(address: Uint8Array): Promise<port.Account | null> {
    this.#open()
    const row = this.#row(address)
    if (!row) return null
    return accounts.toAccount(row, {
      identityKey: u8(row.identity_key),
      numberCommitment: u8OrEmpty(row.number_commitment),
      deliveryVerifier: u8OrEmpty(row.delivery_verifier),
    })
  }

  async getRegistrationLock(address: Uint8Array): Promise<port.RegistrationLock | null> {
    this.#open()
    const row = this.#s.getLock.get(buf(address)) as
      | { salt: Buffer; log_n: number; verifier: Buffer; set_at_ms: number }
      | undefined
    if (!row) return null
    return { salt: u8(row.salt), logN: row.log_n, verifier: u8(row.verifier), setAtMs: row.set_at_ms }
  }

  async setRegistrationLock(
    address: Uint8Array,
    deviceId: number,
    lock: port.RegistrationLock | null,
  ): Promise<boolean> {
    this.#open()
    return this.#db.transaction(() => {
      const a = buf(address)
      if (!accounts.isDevice(this.#mailboxState(address), deviceId)) return false
      if (lock === null) this.#s.deleteLock.run(a)
      else this.#s.putLock.run(a, buf(lock.salt), lock.logN, buf(lock.verifier), lock.setAtMs)
      return true
    })()
  }

  async touchAccount(address: Uint8Array, deviceId: number, nowMs: number): Promise<void> {
    this.#open()
    this.#s.touch.run(nowMs, buf(address), deviceId)
  }

  async setDeliveryVerifier(address: Uint8Array, deviceId: number, verifier: Uint8Array): Promise<boolean> {
    this.#open()
    // One statement in its own transaction: committed (and, with synchronous = FULL, durable) when it returns.
    return this.#db.transaction(
      () => this.#s.setDeliveryVerifier.run(bufOrNull(verifier), buf(address), deviceId).changes > 0,
    )()
  }

  async deleteAccount(address: Uint8Array): Promise<boolean> {
    this.#open()
    const deleted = this.#db.transaction(() => {
      const a = buf(address)
      this.#eraseKeysAndMail(a)
      this.#eraseLinked(a)
      this.#s.deleteRendezvousOf.run(a)
      this.#s.deleteLock.run(a)
      this.#s.deleteRetained.run(a)
      this.#s.deleteForwardsTo.run(forwards.forwardToKey(address))
      return this.#s.deleteAccount.run(a).changes > 0
    })()
    this.#foldErasures()
    return deleted
  }

  /**
   * One transaction: the account row is checked first (the device must be the registered one, the new address
   * free), then every table's rows move by their address column alone — the values need no rewriting here —
   * with the account row last. Rows under `to` that belong to no account (none should exist: erasure takes them
   * with the account) are erased first, so they can neither collide with a moved primary key nor join the
   * moved account. Then the WAL is folded, as after an erasure: `from` is gone from the main file (secure_delete
   * zeroes the pages the rows left) but not yet from the WAL's copies of those pages. A new number commitment
   * replaces the moved row's, and a forward from `from` (store/forwards.ts) is written in the same transaction,
   * in place of any forward kept from `from` before.
   */
  async rebindAddress(
    from: Uint8Array,
    deviceId: number,
    to: Uint8Array,
    options: port.RebindOptions = {},
  ): Promise<port.RebindResult> {
    this.#open()
    forwards.checkRebindOptions(options)
    // Mail and acks called before the move take effect before it (call order, as ordersConcurrentWrites says):
    // the group commit waiting for this turn of the event loop commits now, and its mail moves with the account.
    this.#flush()
    const result = this.#db.transaction((): port.RebindResult => {
      if (!accounts.isDevice(this.#mailboxState(from), deviceId)) return 'not_found'
      // Also when `to` is `from`: the address is held, by this very account.
      if (this.#mailboxState(to)) return 'taken'
      const a = buf(from)
      const b = buf(to)
      this.#eraseKeysAndMail(b)
      this.#eraseLinked(b)
      this.#s.deleteRendezvousOf.run(b)
      this.#s.deleteLock.run(b)
      for (const move of [
        this.#s.moveOtpks,
        this.#s.moveKems,
        this.#s.moveMail,
        this.#s.moveGaps,
        this.#s.moveLock,
        this.#s.moveRetained,
        this.#s.moveLinked,
        this.#s.moveLinkedOtpks,
        this.#s.moveLinkedKems,
        this.#s.moveDeviceList,
        this.#s.moveRendezvous,
        this.#s.moveAccount,
      ]) {
        move.run(b, a)
      }
      if (options.numberCommitment) this.#s.setCommitment.run(buf(options.numberCommitment), b)
      // `to` is this account's now: a forward kept from it (an account that moved away, maybe this one) goes.
      this.#s.deleteForwardFrom.run(forwards.forwardFromKey(to))
      if (options.forwardUntilMs !== undefined) {
        const f = forwards.forwardRow(from, to, options.forwardUntilMs)
        this.#s.putForward.run(f.old_key, f.new_key, f.target, f.expires_at_ms)
      }
      return 'moved'
    })()
    if (result === 'moved') this.#foldErasures()
    return result
  }

  async addressForward(from: Uint8Array, nowMs: number): Promise<Uint8Array | undefined> {
    this.#open()
    return forwards.followForwards(from, nowMs, {
      forward: (fromKey) => this.#s.getForward.get(fromKey) as forwards.ForwardRow | undefined,
      hasAccount: (address) => this.#s.hasAccount.get(buf(address)) !== undefined,
    })
  }

  /**
   * After an erasure, folds the WAL into the main file and truncates it: the WAL still holds the old page
   * images with the erased address and keys until then (secure_delete only zeroes the main file's pages). Then
   * the scrub of the main file is made due: at once when `scrubDelayMs` is 0, else by a timer that the erasures
   * until it fires share.
   */
  #foldErasures(): void {
    this.#db.pragma('wal_checkpoint(TRUNCATE)')
    if (!this.#scrubDue) this.#onScrub({ kind: 'due' })
    this.#scrubDue = true
    if (this.#scrubDelayMs === 0) {
      this.scrub()
      return
    }
    if (this.#scrubTimer) return
    this.#scrubTimer = setTimeout(() => {
      this.#scrubTimer = undefined
      if (!this.#closed && this.#scrubDue) this.scrub()
    }, this.#scrubDelayMs)
    this.#scrubTimer.unref()
  }

  /**
   * Rewrites the whole file (`VACUUM`, then the WAL folded and truncated), so that nothing erased stays in it.
   * `secure_delete` zeroes deleted cells and freed pages, but not everything: when SQLite rebalances a b-tree
   * page it rebuilds the page's cells from the end, and the bytes between the old and the new start of the cell
   * area stay as they were — copies of cells that now live elsewhere, and once those are deleted, the only copy
   * left (measured: SQLite 3.51, 60,000 mailbox rows with acks and then 10 addresses erased left 4 of them in such
   * gaps; a scrub left none). A rewrite builds every page afresh. It takes the event loop for about 8 ms per MB
   * of database, which is why erasures share it (`scrubDelayMs`). Called by the store itself; public for the
   * operator's tools and tests.
   * @returns true when it ran, false when it failed (reported to `onScrub`; it is tried again at the next erasure
   *   or at `close`)
   */
  scrub(): boolean {
    this.#open()
    this.#flush() // VACUUM runs outside any transaction; what is queued commits first
    if (this.#scrubTimer) {
      clearTimeout(this.#scrubTimer)
      this.#scrubTimer = undefined
    }
    const start = performance.now()
    try {
      this.#db.exec('VACUUM')
      this.#db.pragma('wal_checkpoint(TRUNCATE)')
    } catch (err) {
      this.#onScrub({ kind: 'failed', error: err as Error })
      return false
    }
    this.#scrubDue = false
    this.#onScrub({ kind: 'done', ms: performance.now() - start })
    return true
  }

  /** Whether an erasure awaits its scrub. */
  get scrubDue(): boolean {
    return this.#scrubDue
  }

  async addressesWithPrefix(prefix: Uint8Array, bits: number, limit: number): Promise<Uint8Array[]> {
    this.#open()
    const { lo, hi } = accounts.prefixRange(prefix, bits)
    const rows = this.#s.prefix.all(lo, hi, limit) as { address: Buffer }[]
    return rows.map((r) => u8(r.address))
  }

  async putPrekeys(
    address: Uint8Array,
    deviceId: number,
    keys: port.PrekeySet,
    maxStored: number,
  ): Promise<port.PutPrekeysResult> {
    this.#open()
    return this.#durably((): port.PutPrekeysResult => {
      const a = buf(address)
      const primary = this.#mailboxState(address)
      if (!primary) return { status: 'not_found' }
      if (!accounts.isDevice(primary, deviceId)) return this.#putLinkedPrekeys(a, deviceId, keys, maxStored)
      const before = this.#counts(a)
      if (accounts.exceedsPrekeyLimit(before, keys, maxStored))
        return { status: 'over_limit', counts: before }
      if (keys.signedPrekey) {
        const k = keys.signedPrekey
        this.#s.setSigned.run(k.keyId, buf(k.publicKey), buf(k.signature), a)
      }
      if (keys.lastResortKemPrekey) {
        const k = keys.lastResortKemPrekey
        this.#s.setLastResort.run(k.keyId, buf(k.publicKey), buf(k.signature), a)
      }
      this.#putKeys(a, keys)
      return { status: 'stored', counts: this.#counts(a) }
    })
  }

  /** A linked device's upload (Store.putPrekeys): the first must complete its bundle. */
  #putLinkedPrekeys(
    a: Buffer,
    deviceId: number,
    keys: port.PrekeySet,
    maxStored: number,
  ): port.PutPrekeysResult {
    const row = this.#s.linkedBundleKeys.get(a, deviceId) as devices.LinkedKeysRow | undefined
    if (!row || !devices.completesBundle(row, keys)) return { status: 'not_found' }
    const before = this.#linkedCounts(a, deviceId)
    if (accounts.exceedsPrekeyLimit(before, keys, maxStored)) return { status: 'over_limit', counts: before }
    if (keys.signedPrekey) {
      const k = keys.signedPrekey
      this.#s.setLinkedSigned.run(k.keyId, buf(k.publicKey), buf(k.signature), a, deviceId)
    }
    if (keys.lastResortKemPrekey) {
      const k = keys.lastResortKemPrekey
      this.#s.setLinkedLastResort.run(k.keyId, buf(k.publicKey), buf(k.signature), a, deviceId)
    }
    for (const k of keys.oneTimePrekeys) this.#s.putLinkedOtpk.run(a, deviceId, k.keyId, buf(k.publicKey))
    for (const k of keys.oneTimeKemPrekeys) {
      this.#s.putLinkedKem.run(a, deviceId, k.keyId, buf(k.publicKey), buf(k.signature))
    }
    return { status: 'stored', counts: this.#linkedCounts(a, deviceId) }
  }

  /** A linked device's bundle (Store.takePrekeyBundle), its device key as the identity; null before its upload. */
  #takeLinkedBundle(address: Buffer, deviceId: number): port.PrekeyBundle | null {
    const row = this.#s.linkedBundleKeys.get(address, deviceId) as devices.LinkedKeysRow | undefined
    const keys = row && devices.bundleKeys(row)
    if (!keys) return null
    const otpk = this.#s.firstLinkedOtpk.get(address, deviceId) as
      | { key_id: number; public_key: Buffer }
      | undefined
    if (otpk) this.#s.delLinkedOtpk.run(address, deviceId, otpk.key_id)
    const kem = this.#s.firstLinkedKem.get(address, deviceId) as
      | { key_id: number; public_key: Buffer; signature: Buffer }
      | undefined
    if (kem) this.#s.delLinkedKem.run(address, deviceId, kem.key_id)
    return accounts.toPrekeyBundle(
      { address, device_id: deviceId },
      {
        identityKey: u8(row.device_key),
        signedPrekey: keys.signedPrekey,
        oneTimePrekey: otpk && { keyId: otpk.key_id, publicKey: u8(otpk.public_key) },
        oneTimeKemPrekey: kem && {
          keyId: kem.key_id,
          publicKey: u8(kem.public_key),
          signature: u8(kem.signature),
        },
        lastResortKemPrekey: () => keys.lastResortKemPrekey,
      },
    )
  }

  async takePrekeyBundle(address: Uint8Array, deviceId = 0): Promise<port.PrekeyBundle | null> {
    this.#open()
    return this.#durably(() => {
      const a = buf(address)
      const row = this.#row(address)
      if (!row) return null
      if (deviceId !== 0 && deviceId !== row.device_id) return this.#takeLinkedBundle(a, deviceId)
      const otpk = this.#s.firstOtpk.get(a) as { key_id: number; public_key: Buffer } | undefined
      if (otpk) this.#s.delOtpk.run(a, otpk.key_id)
      const kem = this.#s.firstKem.get(a) as
        | { key_id: number; public_key: Buffer; signature: Buffer }
        | undefined
      if (kem) this.#s.delKem.run(a, kem.key_id)
      return accounts.toPrekeyBundle(row, {
        identityKey: u8(row.identity_key),
        signedPrekey: {
          keyId: row.signed_prekey_id,
          publicKey: u8(row.signed_prekey),
          signature: u8(row.signed_prekey_sig),
        },
        oneTimePrekey: otpk && { keyId: otpk.key_id, publicKey: u8(otpk.public_key) },
        oneTimeKemPrekey: kem && {
          keyId: kem.key_id,
          publicKey: u8(kem.public_key),
          signature: u8(kem.signature),
        },
        lastResortKemPrekey: () => ({
          keyId: row.kem_prekey_id,
          publicKey: u8(row.kem_prekey),
          signature: u8(row.kem_prekey_sig),
        }),
      })
    })
  }

  async countPrekeys(address: Uint8Array, deviceId: number): Promise<port.PrekeyCounts> {
    this.#open()
    const primary = this.#mailboxState(address)
    if (!primary) return accounts.noPrekeys()
    // Another id counts the linked tables, which hold nothing of a device the account does not have.
    if (!accounts.isDevice(primary, deviceId)) return this.#linkedCounts(buf(address), deviceId)
    return this.#counts(buf(address))
  }

  async enqueue(input: port.EnqueueInput): Promise<port.EnqueueResult> {
    this.#open()
    return this.#grouped((): port.EnqueueResult => {
      const a = buf(input.address)
      const box = this.#deviceMailbox(input.address, input.deviceId)
      const row = box.state
      if (!row) return mail.enqueueRefusal(box.primary)
      const existing = this.#s.findMessage.get(a, input.deviceId, buf(input.messageId)) as
        | { seq: number }
        | undefined
      if (existing) return { status: 'duplicate', seq: existing.seq }
      const place = mail.placeMessage(row, input)
      if (place.status === 'full') return place
      const { seq } = place
      this.#s.insertMail.run(
        a,
        input.deviceId,
        seq,
        buf(input.messageId),
        buf(input.envelope),
        input.receivedAtMs,
      )
      if (box.linked) this.#s.setLinkedMailbox.run(seq, place.count, place.bytes, a, input.deviceId)
      else this.#s.setMailbox.run(seq, place.count, place.bytes, a)
      return { status: 'stored', seq }
    })
  }

  async fetchMailbox(
    address: Uint8Array,
    deviceId: number,
    afterSeq: number,
    limit: number,
    maxBytes = Number.POSITIVE_INFINITY,
  ): Promise<port.MailboxPage> {
    this.#open()
    return this.#db.transaction((): port.MailboxPage => {
      const a = buf(address)
      const row = this.#deviceMailbox(address, deviceId).state
      if (!row) return mail.emptyPage()
      // Sizes first, then only the envelopes that fit: the page never loads more than it returns.
      const sizes = this.#s.pageSizes.all(a, deviceId, afterSeq, limit) as { seq: number; n: number }[]
      const cut = cutPage(sizes, limit, maxBytes)
      const rows =
        cut.count === 0
          ? []
          : (this.#s.page.all(a, deviceId, afterSeq, cut.lastSeq) as {
              seq: number
              message_id: Buffer
              envelope: Buffer
              received_at_ms: number
            }[])
      const entries = rows.map((r) => mail.toEntry(r, u8(r.envelope)))
      const gapRows = this.#s.gapsAfter.all(
        a,
        deviceId,
        afterSeq,
        mail.gapsUpTo(cut, row.mailbox_head_seq),
      ) as {
        first_seq: number
        last_seq: number
        reason: port.GapKind
      }[]
      return { entries, gaps: mail.clipGaps(gapRows, afterSeq), headSeq: row.mailbox_head_seq }
    })()
  }

  async mailboxHead(address: Uint8Array, deviceId: number): Promise<number> {
    this.#open()
    return this.#deviceMailbox(address, deviceId).state?.mailbox_head_seq ?? 0
  }

  async ack(address: Uint8Array, deviceId: number, seqs: number[]): Promise<number> {
    this.#open()
    const unique = mail.ackedSeqs(seqs)
    if (unique.length === 0) return 0
    const list = JSON.stringify(unique)
    return this.#grouped(() => {
      const a = buf(address)
      const sizes = this.#s.delSeqs.all(a, deviceId, list) as { n: number }[]
      if (sizes.length > 0) {
        this.#lowerMailbox(
          a,
          deviceId,
          sizes.length,
          sizes.reduce((sum, r) => sum + r.n, 0),
        )
      }
      return sizes.length
    })
  }

  async expire(cutoffMs: number, nowMs = Date.now()): Promise<number> {
    this.#open()
    let total = 0
    // Bounded batches keep each write transaction short, so senders are not blocked for long.
    for (;;) {
      const n = this.#db.transaction(() => {
        const rows = this.#s.expiredBatch.all(cutoffMs, mail.EXPIRE_BATCH_ROWS) as {
          address: Buffer
          device_id: number
          seq: number
          n: number
        }[]
        const now = Date.now()
        for (const g of mail.groupByDevice(rows)) {
          const seqs = g.rows.map((r) => r.seq)
          for (const seq of seqs) this.#s.delSeq.run(g.address, g.deviceId, seq)
          this.#recordExpired(g.address, g.deviceId, seqs, now)
          const bytes = g.rows.reduce((sum, r) => sum + r.n, 0)
          this.#lowerMailbox(g.address, g.deviceId, seqs.length, bytes)
        }
        return rows.length
      })()
      total += n
      if (n < mail.EXPIRE_BATCH_ROWS) break
    }
    this.#s.expireGaps.run(cutoffMs)
    this.#s.expireRetained.run(cutoffMs)
    this.#s.expireRendezvous.run(nowMs)
    this.#s.expireForwards.run(nowMs)
    return total
  }

  async getDevice(address: Uint8Array, deviceId: number): Promise<port.DeviceRecord | null> {
    this.#open()
    const a = buf(address)
    // One read transaction: the primary and the linked rows as of one state.
    return this.#db.transaction((): port.DeviceRecord | null => {
      const primary = this.#s.primaryKey.get(a) as { device_id: number; identity_key: Buffer } | undefined
      if (!primary) return null
      if (primary.device_id === deviceId) return { deviceId, key: u8(primary.identity_key), primary: true }
      const linked = this.#s.linkedDevice.get(a, deviceId) as devices.LinkedDeviceRow | undefined
      return linked ? { deviceId, key: u8(linked.device_key), primary: false } : null
    })()
  }

  async deviceSet(address: Uint8Array): Promise<port.DeviceSet | null> {
    this.#open()
    const a = buf(address)
    return this.#db.transaction((): port.DeviceSet | null => {
      const primary = this.#s.deviceListState.get(a) as { device_id: number } | undefined
      if (!primary) return null
      const ids = (this.#s.linkedIds.all(a) as { device_id: number }[]).map((r) => r.device_id)
      const list = this.#s.listVersion.get(a) as { version: number } | undefined
      return devices.toDeviceSet(primary.device_id, ids, list?.version ?? 0)
    })()
  }

  async linkedDevices(address: Uint8Array): Promise<port.LinkedDevice[]> {
    this.#open()
    const rows = this.#s.linkedDevices.all(buf(address)) as devices.LinkedDeviceRow[]
    return rows.map(devices.toLinkedDevice)
  }

  async getDeviceList(address: Uint8Array): Promise<port.StoredDeviceList | null> {
    this.#open()
    const row = this.#s.getDeviceList.get(buf(address)) as { version: number; list: Buffer } | undefined
    return row ? { version: row.version, list: u8(row.list) } : null
  }

  /**
   * One immediate transaction (the write lock first, so that two nodes' lists of one version cannot both read
   * the old one), committed with `synchronous = FULL`: the relay tells the primary and closes removed devices'
   * connections only once the list is durable. Then the WAL is folded when a device was erased, as after an
   * account erasure.
   */
  async putDeviceList(input: port.PutDeviceListInput): Promise<port.PutDeviceListResult> {
    this.#open()
    // Mail and acks called before the list take effect before it (ordersConcurrentWrites): a removed device's
    // mail already queued is erased with it rather than stored after it.
    this.#flush()
    const result = this.#db
      .transaction((): port.PutDeviceListResult => {
        const a = buf(input.address)
        const account = this.#s.deviceListState.get(a) as
          | { device_id: number; max_device_id: number }
          | undefined
        const state = account && {
          primaryDeviceId: account.device_id,
          highestDeviceId: devices.highestDeviceId(account),
          version: (this.#s.listVersion.get(a) as { version: number } | undefined)?.version ?? 0,
          linked: this.#s.linkedDevices.all(a) as devices.LinkedDeviceRow[],
        }
        const plan = devices.planDeviceList(state, input)
        if (plan.status !== 'stored') return plan
        for (const id of plan.removed) this.#eraseLinkedDevice(a, id)
        for (const d of plan.added) this.#s.insertLinked.run(a, d.deviceId, buf(d.deviceKey), input.nowMs)
        this.#s.setMaxDeviceId.run(plan.highestDeviceId, a)
        this.#s.putDeviceList.run(a, input.version, buf(input.list))
        return { status: 'stored', added: plan.added.map((d) => d.deviceId), removed: plan.removed }
      })
      .immediate()
    if (result.status === 'stored' && result.removed.length > 0) this.#foldErasures()
    return result
  }

  async openRendezvous(id: Uint8Array, address: Uint8Array, expiresAtMs: number): Promise<boolean> {
    this.#open()
    return this.#s.openRendezvous.run(buf(id), buf(address), expiresAtMs).changes > 0
  }

  async postRendezvous(
    id: Uint8Array,
    side: port.RendezvousSide,
    message: Uint8Array,
    address: Uint8Array | null,
    nowMs: number,
  ): Promise<port.RendezvousPostResult> {
    this.#open()
    const i = buf(id)
    // Immediate: the side is checked empty and written under one write lock, so a second post is `taken`.
    return this.#db
      .transaction((): port.RendezvousPostResult => {
        const row = this.#s.getRendezvous.get(i) as devices.RendezvousRow | undefined
        const outcome = devices.rendezvousPost(row, side, address, nowMs)
        if (outcome === 'posted') {
          ;(side === 'primary' ? this.#s.postToPrimary : this.#s.postToDevice).run(buf(message), i)
        }
        return outcome
      })
      .immediate()
  }

  async readRendezvous(
    id: Uint8Array,
    side: port.RendezvousSide,
    address: Uint8Array | null,
    nowMs: number,
  ): Promise<Uint8Array | null> {
    this.#open()
    const i = buf(id)
    if (side === 'device') {
      const taken = this.#s.takeToDevice.get(i, nowMs) as { to_device: Buffer } | undefined
      return taken ? u8(taken.to_device) : null
    }
    const row = this.#s.readToPrimary.get(i, nowMs) as
      | { address: Buffer; to_primary: Buffer | null }
      | undefined
    if (!row || row.to_primary === null || !devices.isOpener(row.address, address)) return null
    return u8(row.to_primary)
  }

  /**
   * Writes a consistent copy of the database to a new file, online: one read transaction (`VACUUM INTO`), so
   * the relay writing through another connection meanwhile is neither blocked (WAL) nor half-copied. Chosen over
   * the page-by-page backup API, which restarts whenever another connection writes (a busy relay's group commits
   * could keep it from ever finishing), and because it writes live rows only: no free page of the copy holds
   * what an erasure deleted. The copy is in rollback-journal mode, a complete file on its own.
   * @param path - the new file; refused when it exists
   * @throws Error when the file exists or cannot be written
   */
  async backupTo(path: string): Promise<void> {
    this.#open()
    this.#flush()
    this.#db.prepare('VACUUM INTO ?').run(path)
  }

  /**
   * Reads a whole database in one read transaction on a connection of its own (for `parley-relay migrate`):
   * what it returns is one consistent state, however long the caller takes, even beside a running relay (WAL);
   * mail written after it began is not in it. The database must be at this code's schema version (open it as a
   * store once to migrate it).
   * @param path - the database file
   * @returns the snapshot; the caller closes it
   * @throws Error when the file is missing or at another schema version
   */
  static openSnapshot(path: string): StoreSnapshot {
    const db = new Database(path, { readonly: true, fileMustExist: true })
    try {
      db.exec('BEGIN')
      const v = (db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number }).v
      if (v !== SCHEMA_VERSION) {
        throw new Error(
          `${path} is at schema version ${v}, not ${SCHEMA_VERSION}: start this relay on it once`,
        )
      }
    } catch (err) {
      db.close()
      throw err
    }
    const addresses = (
      db.prepare('SELECT address FROM accounts ORDER BY address').all() as { address: Buffer }[]
    ).map((r) => r.address)
    const q = {
      account: db.prepare('SELECT * FROM accounts WHERE address = ?'),
      otpks: db.prepare('SELECT key_id, public_key FROM one_time_prekeys WHERE address = ? ORDER BY key_id'),
      kems: db.prepare(
        'SELECT key_id, public_key, signature FROM kem_prekeys WHERE address = ? ORDER BY key_id',
      ),
      mail: db.prepare(`SELECT device_id, seq, message_id, envelope, received_at_ms FROM mailbox
        WHERE address = ? AND (device_id, seq) > (?, ?) ORDER BY device_id, seq LIMIT 200`),
      gaps: db.prepare(`SELECT device_id, first_seq, last_seq, reason, recorded_at_ms FROM mailbox_gaps
        WHERE address = ? ORDER BY device_id, first_seq`),
      lock: db.prepare('SELECT salt, log_n, verifier, set_at_ms FROM registration_locks WHERE address = ?'),
      retained: db.prepare(
        'SELECT device_id, identity_key, head_seq, retained_at_ms FROM retained_mail WHERE address = ?',
      ),
      linked: db.prepare('SELECT * FROM linked_devices WHERE address = ? ORDER BY device_id'),
      linkedOtpks: db.prepare(
        'SELECT key_id, public_key FROM linked_one_time_prekeys WHERE address = ? AND device_id = ? ORDER BY key_id',
      ),
      linkedKems: db.prepare(
        'SELECT key_id, public_key, signature FROM linked_kem_prekeys WHERE address = ? AND device_id = ? ORDER BY key_id',
      ),
      list: db.prepare('SELECT version, list FROM device_lists WHERE address = ?'),
    }
    /** A linked device row as the snapshot carries it, with its one-time prekeys. */
    const linkedOf = (address: Buffer): LinkedDeviceSnapshot[] =>
      (q.linked.all(address) as devices.LinkedDeviceColumns[]).map((d) => ({
        deviceId: d.device_id,
        deviceKey: u8(d.device_key),
        createdAtMs: d.created_at_ms,
        signedPrekey:
          d.signed_prekey_id === null
            ? null
            : {
                keyId: d.signed_prekey_id,
                publicKey: u8(d.signed_prekey!),
                signature: u8(d.signed_prekey_sig!),
              },
        lastResortKemPrekey:
          d.kem_prekey_id === null
            ? null
            : { keyId: d.kem_prekey_id, publicKey: u8(d.kem_prekey!), signature: u8(d.kem_prekey_sig!) },
        mailboxHeadSeq: d.mailbox_head_seq,
        mailboxCount: d.mailbox_count,
        mailboxBytes: d.mailbox_bytes,
        oneTimePrekeys: (
          q.linkedOtpks.all(address, d.device_id) as { key_id: number; public_key: Buffer }[]
        ).map((k) => ({ keyId: k.key_id, publicKey: u8(k.public_key) })),
        oneTimeKemPrekeys: (
          q.linkedKems.all(address, d.device_id) as {
            key_id: number
            public_key: Buffer
            signature: Buffer
          }[]
        ).map((k) => ({ keyId: k.key_id, publicKey: u8(k.public_key), signature: u8(k.signature) })),
      }))
    const bans = (
      db.prepare('SELECT address, banned_at_ms FROM account_bans ORDER BY address').all() as {
        address: Buffer
        banned_at_ms: number
      }[]
    ).map((r) => ({ address: u8(r.address), bannedAtMs: r.banned_at_ms }))
    const revoked = (
      db.prepare('SELECT address, device_id, revoked_at_ms FROM revoked_devices ORDER BY address').all() as {
        address: Buffer
        device_id: number
        revoked_at_ms: number
      }[]
    ).map((r) => ({ address: u8(r.address), deviceId: r.device_id, revokedAtMs: r.revoked_at_ms }))
    const forwardRows = (
      db
        .prepare('SELECT old_key, new_key, target, expires_at_ms FROM address_forwards ORDER BY old_key')
        .all() as forwards.ForwardRow[]
    ).map((r) => ({
      fromKey: u8(r.old_key),
      toKey: u8(r.new_key),
      target: u8(r.target),
      expiresAtMs: r.expires_at_ms,
    }))
    function* mail(address: Buffer): Iterable<MailRow[]> {
      for (let after: [number, number] = [-1, -1]; ; ) {
        const rows = q.mail.all(address, ...after) as {
          device_id: number
          seq: number
          message_id: Buffer
          envelope: Buffer
          received_at_ms: number
        }[]
        if (rows.length === 0) return
        yield rows.map((r) => ({
          deviceId: r.device_id,
          seq: r.seq,
          messageId: u8(r.message_id),
          envelope: u8(r.envelope),
          receivedAtMs: r.received_at_ms,
        }))
        const last = rows[rows.length - 1]!
        after = [last.device_id, last.seq]
      }
    }
    function* accountsOf(): Iterable<AccountSnapshot> {
      for (const address of addresses) {
        const r = q.account.get(address) as AccountRow
        const lock = q.lock.get(address) as
          | { salt: Buffer; log_n: number; verifier: Buffer; set_at_ms: number }
          | undefined
        const kept = q.retained.get(address) as
          | { device_id: number; identity_key: Buffer; head_seq: number; retained_at_ms: number }
          | undefined
        yield {
          address: u8(address),
          deviceId: r.device_id,
          identityKey: u8(r.identity_key),
          signedPrekey: {
            keyId: r.signed_prekey_id,
            publicKey: u8(r.signed_prekey),
            signature: u8(r.signed_prekey_sig),
          },
          lastResortKemPrekey: {
            keyId: r.kem_prekey_id,
            publicKey: u8(r.kem_prekey),
            signature: u8(r.kem_prekey_sig),
          },
          numberCommitment: u8OrEmpty(r.number_commitment),
          deliveryVerifier: u8OrEmpty(r.delivery_verifier),
          createdAtMs: r.created_at_ms,
          lastActiveMs: r.last_active_ms,
          mailboxHeadSeq: r.mailbox_head_seq,
          mailboxCount: r.mailbox_count,
          mailboxBytes: r.mailbox_bytes,
          oneTimePrekeys: (q.otpks.all(address) as { key_id: number; public_key: Buffer }[]).map((k) => ({
            keyId: k.key_id,
            publicKey: u8(k.public_key),
          })),
          oneTimeKemPrekeys: (
            q.kems.all(address) as { key_id: number; public_key: Buffer; signature: Buffer }[]
          ).map((k) => ({ keyId: k.key_id, publicKey: u8(k.public_key), signature: u8(k.signature) })),
          mail: () => mail(address),
          gaps: (
            q.gaps.all(address) as {
              device_id: number
              first_seq: number
              last_seq: number
              reason: port.GapKind
              recorded_at_ms: number
            }[]
          ).map((g) => ({
            deviceId: g.device_id,
            firstSeq: g.first_seq,
            lastSeq: g.last_seq,
            reason: g.reason,
            recordedAtMs: g.recorded_at_ms,
          })),
          lock: lock
            ? { salt: u8(lock.salt), logN: lock.log_n, verifier: u8(lock.verifier), setAtMs: lock.set_at_ms }
            : null,
          retained: kept
            ? {
                deviceId: kept.device_id,
                identityKey: u8(kept.identity_key),
                headSeq: kept.head_seq,
                retainedAtMs: kept.retained_at_ms,
              }
            : null,
          linked: linkedOf(address),
          deviceList: (() => {
            const l = q.list.get(address) as { version: number; list: Buffer } | undefined
            return l ? { version: l.version, list: u8(l.list) } : null
          })(),
          highestDeviceId: r.max_device_id ?? null,
        }
      }
    }
    return {
      accounts: accountsOf,
      bans,
      revoked,
      forwards: forwardRows,
      close: () => {
        if (!db.open) return
        db.exec('COMMIT')
        db.close()
      },
    }
  }

  async listAccounts(after: Uint8Array | null, limit: number): Promise<port.AccountSummary[]> {
    this.#open()
    const rows = this.#db
      .prepare(`${SUMMARY_QUERY} WHERE a.address > ? ORDER BY a.address LIMIT ?`)
      .all(after ? buf(after) : Buffer.alloc(0), limit) as SummaryRow[]
    return rows.map(toSummary)
  }

  async accountSummary(address: Uint8Array): Promise<port.AccountSummary | null> {
    this.#open()
    const row = this.#db.prepare(`${SUMMARY_QUERY} WHERE a.address = ?`).get(buf(address)) as
      | SummaryRow
      | undefined
    return row ? toSummary(row) : null
  }

  async setBanned(address: Uint8Array, banned: boolean, nowMs: number): Promise<boolean> {
    this.#open()
    const a = buf(address)
    return this.#db.transaction(() => {
      if (!banned) return this.#db.prepare('DELETE FROM account_bans WHERE address = ?').run(a).changes > 0
      const added = this.#db
        .prepare('INSERT INTO account_bans (address, banned_at_ms) VALUES (?, ?) ON CONFLICT DO NOTHING')
        .run(a, nowMs).changes
      this.#recordAction(a, 0, nowMs)
      return added > 0
    })()
  }

  async revokeDevice(address: Uint8Array, deviceId: number, nowMs: number): Promise<boolean> {
    this.#open()
    const a = buf(address)
    return this.#db.transaction(() => {
      if (!accounts.isDevice(this.#mailboxState(address), deviceId)) return false
      this.#db
        .prepare(
          'INSERT INTO revoked_devices (address, device_id, revoked_at_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
        )
        .run(a, deviceId, nowMs)
      this.#recordAction(a, deviceId, nowMs)
      return true
    })()
  }

  /**
   * Records an operator action, and drops what no relay needs any more: actions older than a day, and
   * revocations of devices that are no longer registered (replaced, or erased with their account).
   */
  #recordAction(address: Buffer, deviceId: number, nowMs: number): void {
    this.#db
      .prepare('INSERT INTO operator_actions (address, device_id, at_ms) VALUES (?, ?, ?)')
      .run(address, deviceId, nowMs)
    this.#db.prepare('DELETE FROM operator_actions WHERE at_ms < ?').run(nowMs - ACTION_RETENTION_MS)
    this.#db
      .prepare(`DELETE FROM revoked_devices WHERE NOT EXISTS (SELECT 1 FROM accounts a
        WHERE a.address = revoked_devices.address AND a.device_id = revoked_devices.device_id)`)
      .run()
  }

  async operatorHold(address: Uint8Array, deviceId: number): Promise<port.OperatorHold> {
    this.#open()
    const a = buf(address)
    const row = this.#db
      .prepare(`SELECT EXISTS (SELECT 1 FROM account_bans WHERE address = ?) AS banned,
        EXISTS (SELECT 1 FROM revoked_devices WHERE address = ? AND device_id = ?) AS revoked`)
      .get(a, a, deviceId) as { banned: number; revoked: number }
    return row.banned ? 'banned' : row.revoked ? 'revoked' : null
  }

  async operatorActions(afterSeq: number, sinceMs: number, limit: number): Promise<port.OperatorAction[]> {
    this.#open()
    const rows = this.#db
      .prepare(`SELECT seq, address, device_id, at_ms FROM operator_actions WHERE seq > ? AND at_ms >= ?
        ORDER BY seq LIMIT ?`)
      .all(afterSeq, sinceMs, limit) as { seq: number; address: Buffer; device_id: number; at_ms: number }[]
    return rows.map((r) => ({ seq: r.seq, address: u8(r.address), deviceId: r.device_id, atMs: r.at_ms }))
  }
}
