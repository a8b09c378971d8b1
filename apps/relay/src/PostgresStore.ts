/**
 * The scale-out {@link Store}: PostgreSQL through a `pg` connection pool, shared by any number of relay nodes.
 * Same semantics as {@link SqliteStore} (the shared conformance suite in `test/conformance/` holds both to it):
 * one transaction per operation, the message committed before `MessageAccepted`, and every write to an account's
 * keys or mailbox serialised by a row lock on its `accounts` row (`SELECT … FOR UPDATE`), so sequence numbers,
 * the mailbox limits, acks, the TTL sweep and one-time prekey consumption are race-free across nodes. Locks are always
 * taken account row first, then its keys or mail, so concurrent transactions cannot deadlock on each other.
 * @module
 */
import pg from 'pg'
import {
  type AccountRow,
  buf,
  bufOrNull,
  cutPage,
  mailboxLimitHit,
  runs,
  u8,
  u8OrEmpty,
} from './internal/rows.js'
import type {
  Account,
  EnqueueInput,
  EnqueueResult,
  GapKind,
  MailboxGapRange,
  MailboxPage,
  OneTimeKey,
  PrekeyBundle,
  PrekeyCounts,
  PrekeySet,
  PutPrekeysResult,
  SignedKey,
  Store,
} from './Store.js'

/** Ordered schema migrations; a released entry is never edited, only new ones appended. */
const MIGRATIONS: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE accounts (
        address BYTEA PRIMARY KEY,
        device_id BIGINT NOT NULL,
        identity_key BYTEA NOT NULL,
        signed_prekey_id BIGINT NOT NULL,
        signed_prekey BYTEA NOT NULL,
        signed_prekey_sig BYTEA NOT NULL,
        kem_prekey_id BIGINT NOT NULL,
        kem_prekey BYTEA NOT NULL,
        kem_prekey_sig BYTEA NOT NULL,
        mailbox_head_seq BIGINT NOT NULL DEFAULT 0,
        mailbox_count BIGINT NOT NULL DEFAULT 0,
        created_at_ms BIGINT NOT NULL
      );
      CREATE TABLE one_time_prekeys (
        address BYTEA NOT NULL,
        key_id BIGINT NOT NULL,
        public_key BYTEA NOT NULL,
        PRIMARY KEY (address, key_id)
      );
      CREATE TABLE kem_prekeys (
        address BYTEA NOT NULL,
        key_id BIGINT NOT NULL,
        public_key BYTEA NOT NULL,
        signature BYTEA NOT NULL,
        PRIMARY KEY (address, key_id)
      );
      -- No sender column, by design (DESIGN.md P6).
      CREATE TABLE mailbox (
        address BYTEA NOT NULL,
        device_id BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        message_id BYTEA NOT NULL,
        envelope BYTEA NOT NULL,
        received_at_ms BIGINT NOT NULL,
        PRIMARY KEY (address, device_id, seq)
      );
      CREATE UNIQUE INDEX mailbox_by_message_id ON mailbox (address, device_id, message_id);
      CREATE INDEX mailbox_by_received_at ON mailbox (received_at_ms);
      CREATE TABLE mailbox_gaps (
        address BYTEA NOT NULL,
        device_id BIGINT NOT NULL,
        first_seq BIGINT NOT NULL,
        last_seq BIGINT NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('expired', 'evicted')),
        recorded_at_ms BIGINT NOT NULL,
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
      ALTER TABLE accounts ADD COLUMN number_commitment BYTEA, ADD COLUMN delivery_verifier BYTEA;
    `,
  },
  {
    // The mailbox byte quota: the envelope bytes of each device's unread mail, kept beside mailbox_count and
    // computed here for the mail already stored (octet_length of a TOASTed bytea reads its header only).
    version: 3,
    sql: `
      ALTER TABLE accounts ADD COLUMN mailbox_bytes BIGINT NOT NULL DEFAULT 0;
      UPDATE accounts a SET mailbox_bytes = m.n
        FROM (SELECT address, device_id, sum(octet_length(envelope)) AS n FROM mailbox GROUP BY address, device_id) m
        WHERE m.address = a.address AND m.device_id = a.device_id;
    `,
  },
]

/** The highest schema version this code knows. */
export const PG_SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version

/** Options of {@link PostgresStore.open}. */
export interface PostgresStoreOptions {
  /**
   * `postgres://user:password@host:port/database`, optionally with `?schema=<name>` (default `public`): the
   * relay's tables live in that schema, created if missing. Other query parameters go to `pg` unchanged.
   */
  url: string
  /** Most pooled connections per node (default 10). */
  maxConnections?: number
  /** Connect timeout (default 5 s). */
  connectTimeoutMs?: number
}

// BIGINT columns hold sequence numbers, device ids and millisecond times, all far below 2^53: read them as
// numbers rather than pg's default strings. Scoped to this store's pool, not set globally on `pg`.
const INT8_OID = 20
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
}

/** SQLSTATEs after which a transaction is retried: serialization failure, deadlock, unique violation. */
const RETRYABLE = new Set(['40001', '40P01', '23505'])

/** Splits `?schema=` off a connection URL (pg would otherwise see it as an unknown parameter). */
export function parsePostgresUrl(url: string): { connectionString: string; schema: string } {
  const u = new URL(url)
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:')
    throw new RangeError('the store URL must start with postgres://')
  const schema = u.searchParams.get('schema') ?? 'public'
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema))
    throw new RangeError('schema must be a lower-case SQL identifier (a-z, 0-9, _)')
  u.searchParams.delete('schema')
  return { connectionString: u.toString(), schema }
}

type Tx = pg.PoolClient

/** PostgreSQL implementation of {@link Store}. */
export class PostgresStore implements Store {
  /**
   * False: each write is its own transaction on whichever pooled connection is free, and two in flight may
   * commit in either order, so a connection's sends must be handled one after another to keep seq order.
   */
  readonly ordersConcurrentWrites = false
  readonly #pool: pg.Pool
  readonly #schema: string
  #closed = false

  private constructor(pool: pg.Pool, schema: string) {
    this.#pool = pool
    this.#schema = schema
  }

  /**
   * Connects, creates the schema if needed and applies pending migrations (under an advisory lock, so nodes
   * starting together migrate once).
   * @throws Error when the database cannot be reached, or its schema version is newer than this relay's
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const { connectionString, schema } = parsePostgresUrl(options.url)
    const pool = new pg.Pool({
      connectionString,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 30_000,
      // Every pooled connection resolves unqualified table names in the relay's schema.
      options: `-c search_path=${schema}`,
      types,
    })
    // An idle client's error (e.g. the server restarted) must not crash the process; the pool replaces it.
    pool.on('error', () => {})
    const store = new PostgresStore(pool, schema)
    try {
      await store.#migrate()
    } catch (err) {
      await pool.end()
      throw err
    }
    return store
  }

  /** The schema this store's tables live in. */
  get schema(): string {
    return this.#schema
  }

  /** The schema version of the database. */
  async schemaVersion(): Promise<number> {
    const r = await this.#pool.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations')
    return r.rows[0]?.v ?? 0
  }

  async #migrate(): Promise<void> {
    const client = await this.#pool.connect()
    try {
      await client.query('BEGIN')
      // One lock per schema: hashtext() gives a stable int4 key for the advisory lock.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`parley-migrate:${this.#schema}`])
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.#schema}`)
      await client.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms BIGINT NOT NULL)',
      )
      const r = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations')
      const current = r.rows[0]?.v ?? 0
      if (current > PG_SCHEMA_VERSION) {
        throw new Error(`database schema version ${current} is newer than this relay (${PG_SCHEMA_VERSION})`)
      }
      for (const m of MIGRATIONS) {
        if (m.version <= current) continue
        await client.query(m.sql)
        await client.query('INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)', [
          m.version,
          Date.now(),
        ])
      }
      await client.query('COMMIT')
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }

  #open(): void {
    if (this.#closed) throw new Error('store is closed')
  }

  /** Runs `fn` in a transaction, retrying a few times on deadlock, serialization failure or a lost insert race. */
  async #tx<T>(fn: (c: Tx) => Promise<T>, begin = 'BEGIN'): Promise<T> {
    this.#open()
    for (let attempt = 1; ; attempt++) {
      const client = await this.#pool.connect()
      let broken = false
      try {
        await client.query(begin)
        const result = await fn(client)
        await client.query('COMMIT')
        return result
      } catch (err) {
        try {
          await client.query('ROLLBACK')
        } catch {
          broken = true
        }
        const code = (err as { code?: string }).code
        if (attempt < 5 && code !== undefined && RETRYABLE.has(code)) continue
        throw err
      } finally {
        client.release(broken)
      }
    }
  }

  async #lockAccount(c: Tx, address: Buffer): Promise<AccountRow | undefined> {
    const r = await c.query<AccountRow>('SELECT * FROM accounts WHERE address = $1 FOR UPDATE', [address])
    return r.rows[0]
  }

  async #eraseKeysAndMail(c: Tx, address: Buffer): Promise<void> {
    await c.query('DELETE FROM one_time_prekeys WHERE address = $1', [address])
    await c.query('DELETE FROM kem_prekeys WHERE address = $1', [address])
    await c.query('DELETE FROM mailbox WHERE address = $1', [address])
    await c.query('DELETE FROM mailbox_gaps WHERE address = $1', [address])
  }

  async #putKeys(
    c: Tx,
    address: Buffer,
    keys: { oneTimePrekeys: OneTimeKey[]; oneTimeKemPrekeys: SignedKey[] },
  ): Promise<void> {
    if (keys.oneTimePrekeys.length > 0) {
      await c.query(
        `INSERT INTO one_time_prekeys (address, key_id, public_key)
         SELECT $1, k, p FROM unnest($2::bigint[], $3::bytea[]) AS t(k, p)
         ON CONFLICT (address, key_id) DO UPDATE SET public_key = excluded.public_key`,
        [address, keys.oneTimePrekeys.map((k) => k.keyId), keys.oneTimePrekeys.map((k) => buf(k.publicKey))],
      )
    }
    if (keys.oneTimeKemPrekeys.length > 0) {
      await c.query(
        `INSERT INTO kem_prekeys (address, key_id, public_key, signature)
         SELECT $1, k, p, s FROM unnest($2::bigint[], $3::bytea[], $4::bytea[]) AS t(k, p, s)
         ON CONFLICT (address, key_id) DO UPDATE SET public_key = excluded.public_key, signature = excluded.signature`,
        [
          address,
          keys.oneTimeKemPrekeys.map((k) => k.keyId),
          keys.oneTimeKemPrekeys.map((k) => buf(k.publicKey)),
          keys.oneTimeKemPrekeys.map((k) => buf(k.signature)),
        ],
      )
    }
  }

  async #counts(c: Tx | pg.Pool, address: Buffer): Promise<PrekeyCounts> {
    const r = await c.query<{ o: number; k: number }>(
      `SELECT (SELECT count(*) FROM one_time_prekeys WHERE address = $1) AS o,
              (SELECT count(*) FROM kem_prekeys WHERE address = $1) AS k`,
      [address],
    )
    return { oneTimeCount: r.rows[0]!.o, kemOneTimeCount: r.rows[0]!.k }
  }

  async #recordGap(
    c: Tx,
    address: Buffer,
    deviceId: number,
    first: number,
    last: number,
    reason: GapKind,
    nowMs: number,
  ): Promise<void> {
    const extended = await c.query(
      `UPDATE mailbox_gaps SET last_seq = $1, recorded_at_ms = $2
       WHERE address = $3 AND device_id = $4 AND last_seq = $5 AND reason = $6`,
      [last, nowMs, address, deviceId, first - 1, reason],
    )
    if (extended.rowCount === 0) {
      await c.query(
        `INSERT INTO mailbox_gaps (address, device_id, first_seq, last_seq, reason, recorded_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)`,
        [address, deviceId, first, last, reason, nowMs],
      )
    }
  }

  async ping(): Promise<void> {
    this.#open()
    await this.#pool.query('SELECT 1')
  }

  async accountCount(): Promise<number> {
    this.#open()
    const { rows } = await this.#pool.query<{ n: string }>('SELECT count(*) AS n FROM accounts')
    return Number(rows[0]!.n)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#pool.end()
  }

  /**
   * Drops the store's schema and everything in it, then closes. For tests and for tearing down a deployment;
   * refuses to drop `public`.
   */
  async dropSchemaAndClose(): Promise<void> {
    if (this.#schema === 'public') throw new Error('refusing to drop the public schema')
    this.#open()
    await this.#pool.query(`DROP SCHEMA IF EXISTS ${this.#schema} CASCADE`)
    await this.close()
  }

  async registerDevice(
    input: Parameters<Store['registerDevice']>[0],
  ): Promise<{ deviceId: number; replacedDevice: boolean }> {
    return this.#tx(async (c) => {
      const address = buf(input.address)
      const old = await this.#lockAccount(c, address)
      if (old) {
        await this.#eraseKeysAndMail(c, address)
        await c.query('DELETE FROM accounts WHERE address = $1', [address])
      }
      const deviceId = old ? (old.device_id % 0xffffffff) + 1 : 1
      const { signedPrekey: spk, lastResortKemPrekey: kem } = input
      // Two nodes registering a new address at once: the loser's INSERT raises 23505 and #tx retries it,
      // now finding (and replacing) the winner's row — the same outcome as two activations in sequence.
      await c.query(
        `INSERT INTO accounts (address, device_id, identity_key, signed_prekey_id, signed_prekey,
          signed_prekey_sig, kem_prekey_id, kem_prekey, kem_prekey_sig, mailbox_head_seq, mailbox_count, mailbox_bytes,
          created_at_ms, number_commitment)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0, 0, $10, $11)`,
        [
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
        ],
      )
      await this.#putKeys(c, address, input)
      return { deviceId, replacedDevice: old !== undefined }
    })
  }

  async getAccount(address: Uint8Array): Promise<Account | null> {
    this.#open()
    const r = await this.#pool.query<AccountRow>(
      `SELECT address, device_id, identity_key, created_at_ms, number_commitment, delivery_verifier
       FROM accounts WHERE address = $1`,
      [buf(address)],
    )
    const row = r.rows[0]
    if (!row) return null
    return {
      address: u8(row.address),
      deviceId: row.device_id,
      identityKey: u8(row.identity_key),
      createdAtMs: row.created_at_ms,
      numberCommitment: u8OrEmpty(row.number_commitment),
      deliveryVerifier: u8OrEmpty(row.delivery_verifier),
    }
  }

  async setDeliveryVerifier(address: Uint8Array, deviceId: number, verifier: Uint8Array): Promise<boolean> {
    this.#open()
    // One autocommitted statement (durable before it resolves). It locks only the account row: lock order holds.
    const r = await this.#pool.query(
      'UPDATE accounts SET delivery_verifier = $1 WHERE address = $2 AND device_id = $3',
      [bufOrNull(verifier), buf(address), deviceId],
    )
    return (r.rowCount ?? 0) > 0
  }

  async deleteAccount(address: Uint8Array): Promise<boolean> {
    return this.#tx(async (c) => {
      const a = buf(address)
      await this.#lockAccount(c, a)
      await this.#eraseKeysAndMail(c, a)
      const r = await c.query('DELETE FROM accounts WHERE address = $1', [a])
      return (r.rowCount ?? 0) > 0
    })
  }

  async addressesWithPrefix(prefix: Uint8Array, bits: number, limit: number): Promise<Uint8Array[]> {
    this.#open()
    const lo = new Uint8Array(32)
    const hi = new Uint8Array(32).fill(0xff)
    const whole = bits >> 3
    lo.set(prefix.subarray(0, whole))
    hi.set(prefix.subarray(0, whole))
    if (bits & 7) {
      const mask = 0xff << (8 - (bits & 7))
      lo[whole] = prefix[whole]! & mask
      hi[whole] = (prefix[whole]! & mask) | (~mask & 0xff)
    }
    // bytea compares bytewise, like SQLite's BLOB memcmp, so this is the same range scan on the primary key.
    const r = await this.#pool.query<{ address: Buffer }>(
      'SELECT address FROM accounts WHERE address >= $1 AND address <= $2 ORDER BY address LIMIT $3',
      [buf(lo), buf(hi), limit],
    )
    return r.rows.map((row) => u8(row.address))
  }

  async putPrekeys(
    address: Uint8Array,
    deviceId: number,
    keys: PrekeySet,
    maxStored: number,
  ): Promise<PutPrekeysResult> {
    return this.#tx(async (c): Promise<PutPrekeysResult> => {
      const a = buf(address)
      const row = await this.#lockAccount(c, a)
      if (!row || row.device_id !== deviceId) return { status: 'not_found' }
      const before = await this.#counts(c, a)
      if (
        before.oneTimeCount + keys.oneTimePrekeys.length > maxStored ||
        before.kemOneTimeCount + keys.oneTimeKemPrekeys.length > maxStored
      ) {
        return { status: 'over_limit', counts: before }
      }
      if (keys.signedPrekey) {
        const k = keys.signedPrekey
        await c.query(
          'UPDATE accounts SET signed_prekey_id = $1, signed_prekey = $2, signed_prekey_sig = $3 WHERE address = $4',
          [k.keyId, buf(k.publicKey), buf(k.signature), a],
        )
      }
      if (keys.lastResortKemPrekey) {
        const k = keys.lastResortKemPrekey
        await c.query(
          'UPDATE accounts SET kem_prekey_id = $1, kem_prekey = $2, kem_prekey_sig = $3 WHERE address = $4',
          [k.keyId, buf(k.publicKey), buf(k.signature), a],
        )
      }
      await this.#putKeys(c, a, keys)
      return { status: 'stored', counts: await this.#counts(c, a) }
    })
  }

  async takePrekeyBundle(address: Uint8Array): Promise<PrekeyBundle | null> {
    return this.#tx(async (c) => {
      const a = buf(address)
      // The account lock serialises takers on every node: no one-time key is handed out twice.
      const row = await this.#lockAccount(c, a)
      if (!row) return null
      const otpk = (
        await c.query<{ key_id: number; public_key: Buffer }>(
          `DELETE FROM one_time_prekeys WHERE address = $1 AND key_id =
             (SELECT min(key_id) FROM one_time_prekeys WHERE address = $1)
           RETURNING key_id, public_key`,
          [a],
        )
      ).rows[0]
      const kem = (
        await c.query<{ key_id: number; public_key: Buffer; signature: Buffer }>(
          `DELETE FROM kem_prekeys WHERE address = $1 AND key_id =
             (SELECT min(key_id) FROM kem_prekeys WHERE address = $1)
           RETURNING key_id, public_key, signature`,
          [a],
        )
      ).rows[0]
      const bundle: PrekeyBundle = {
        address: u8(row.address),
        deviceId: row.device_id,
        identityKey: u8(row.identity_key),
        signedPrekey: {
          keyId: row.signed_prekey_id,
          publicKey: u8(row.signed_prekey),
          signature: u8(row.signed_prekey_sig),
        },
        kemPrekey: kem
          ? { keyId: kem.key_id, publicKey: u8(kem.public_key), signature: u8(kem.signature) }
          : { keyId: row.kem_prekey_id, publicKey: u8(row.kem_prekey), signature: u8(row.kem_prekey_sig) },
        kemPrekeyIsLastResort: !kem,
      }
      if (otpk) bundle.oneTimePrekey = { keyId: otpk.key_id, publicKey: u8(otpk.public_key) }
      return bundle
    })
  }

  async countPrekeys(address: Uint8Array, deviceId: number): Promise<PrekeyCounts> {
    this.#open()
    const a = buf(address)
    const r = await this.#pool.query<{ device_id: number }>(
      'SELECT device_id FROM accounts WHERE address = $1',
      [a],
    )
    if (r.rows[0]?.device_id !== deviceId) return { oneTimeCount: 0, kemOneTimeCount: 0 }
    return this.#counts(this.#pool, a)
  }

  async enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    return this.#tx(async (c): Promise<EnqueueResult> => {
      const a = buf(input.address)
      // The row lock is the per-device sequence allocator: every enqueue to this address, on any node, waits
      // here, then reads the committed head, count and bytes.
      const row = (
        await c.query<{
          device_id: number
          mailbox_head_seq: number
          mailbox_count: number
          mailbox_bytes: number
        }>(
          `SELECT device_id, mailbox_head_seq, mailbox_count, mailbox_bytes FROM accounts
           WHERE address = $1 FOR UPDATE`,
          [a],
        )
      ).rows[0]
      if (!row) return { status: 'not_found' }
      if (row.device_id !== input.deviceId) return { status: 'stale_device', currentDeviceId: row.device_id }
      const existing = (
        await c.query<{ seq: number }>(
          'SELECT seq FROM mailbox WHERE address = $1 AND device_id = $2 AND message_id = $3',
          [a, input.deviceId, buf(input.messageId)],
        )
      ).rows[0]
      if (existing) return { status: 'duplicate', seq: existing.seq }
      // Full: refused, and nothing already stored is touched (the oldest unread mail is never evicted).
      const limit = mailboxLimitHit(row.mailbox_count, row.mailbox_bytes, input)
      if (limit) return { status: 'full', limit }
      const seq = row.mailbox_head_seq + 1
      await c.query(
        `INSERT INTO mailbox (address, device_id, seq, message_id, envelope, received_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)`,
        [a, input.deviceId, seq, buf(input.messageId), buf(input.envelope), input.receivedAtMs],
      )
      await c.query(
        'UPDATE accounts SET mailbox_head_seq = $1, mailbox_count = $2, mailbox_bytes = $3 WHERE address = $4',
        [seq, row.mailbox_count + 1, row.mailbox_bytes + input.envelope.length, a],
      )
      return { status: 'stored', seq }
    })
  }

  async fetchMailbox(
    address: Uint8Array,
    deviceId: number,
    afterSeq: number,
    limit: number,
    maxBytes = Number.POSITIVE_INFINITY,
  ): Promise<MailboxPage> {
    // One snapshot for the head, the sizes, the page and the gaps, as SQLite's read transaction gives.
    return this.#tx(async (c): Promise<MailboxPage> => {
      const a = buf(address)
      const row = (
        await c.query<{ device_id: number; mailbox_head_seq: number }>(
          'SELECT device_id, mailbox_head_seq FROM accounts WHERE address = $1',
          [a],
        )
      ).rows[0]
      if (!row || row.device_id !== deviceId) return { entries: [], gaps: [], headSeq: 0 }
      // Sizes first (octet_length of a TOASTed bytea reads its header, not the value), then only the envelopes
      // that fit: the page never loads more than it returns.
      const sizes = (
        await c.query<{ seq: number; n: number }>(
          `SELECT seq, octet_length(envelope) AS n FROM mailbox
           WHERE address = $1 AND device_id = $2 AND seq > $3 ORDER BY seq LIMIT $4`,
          [a, deviceId, afterSeq, limit],
        )
      ).rows
      const cut = cutPage(sizes, limit, maxBytes)
      const rows =
        cut.count === 0
          ? []
          : (
              await c.query<{ seq: number; message_id: Buffer; envelope: Buffer; received_at_ms: number }>(
                `SELECT seq, message_id, envelope, received_at_ms FROM mailbox
                 WHERE address = $1 AND device_id = $2 AND seq > $3 AND seq <= $4 ORDER BY seq`,
                [a, deviceId, afterSeq, cut.lastSeq],
              )
            ).rows
      const entries = rows.map((r) => ({
        seq: r.seq,
        messageId: u8(r.message_id),
        envelope: u8(r.envelope),
        receivedAtMs: r.received_at_ms,
      }))
      // A full page ends at its last entry; otherwise the page runs to the head and takes every later gap.
      const upTo = cut.full ? cut.lastSeq : row.mailbox_head_seq
      const gaps = (
        await c.query<{ first_seq: number; last_seq: number; reason: GapKind }>(
          `SELECT first_seq, last_seq, reason FROM mailbox_gaps
           WHERE address = $1 AND device_id = $2 AND last_seq > $3 AND first_seq <= $4 ORDER BY first_seq`,
          [a, deviceId, afterSeq, upTo],
        )
      ).rows.map(
        (g): MailboxGapRange => ({
          firstSeq: Math.max(g.first_seq, afterSeq + 1),
          lastSeq: g.last_seq,
          reason: g.reason,
        }),
      )
      return { entries, gaps, headSeq: row.mailbox_head_seq }
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
  }

  async mailboxHead(address: Uint8Array, deviceId: number): Promise<number> {
    this.#open()
    const r = await this.#pool.query<{ device_id: number; mailbox_head_seq: number }>(
      'SELECT device_id, mailbox_head_seq FROM accounts WHERE address = $1',
      [buf(address)],
    )
    const row = r.rows[0]
    return row && row.device_id === deviceId ? row.mailbox_head_seq : 0
  }

  async ack(address: Uint8Array, deviceId: number, seqs: number[]): Promise<number> {
    const unique = [...new Set(seqs)].filter((s) => Number.isSafeInteger(s))
    if (unique.length === 0) {
      this.#open()
      return 0
    }
    return this.#tx(async (c) => {
      const a = buf(address)
      await this.#lockAccount(c, a)
      const { n, bytes } = (
        await c.query<{ n: number; bytes: number }>(
          `WITH gone AS (
             DELETE FROM mailbox WHERE address = $1 AND device_id = $2 AND seq = ANY($3::bigint[])
             RETURNING octet_length(envelope) AS size
           )
           SELECT count(*) AS n, coalesce(sum(size), 0)::bigint AS bytes FROM gone`,
          [a, deviceId, unique],
        )
      ).rows[0]!
      if (n > 0) {
        await c.query(
          `UPDATE accounts SET mailbox_count = GREATEST(0, mailbox_count - $1),
             mailbox_bytes = GREATEST(0, mailbox_bytes - $2) WHERE address = $3`,
          [n, bytes, a],
        )
      }
      return n
    })
  }

  async expire(cutoffMs: number): Promise<number> {
    this.#open()
    let total = 0
    // Bounded batches keep each write transaction short, so senders are not blocked for long. Several nodes may
    // sweep at once: each deletes with RETURNING under the account locks, so a message expires (and is recorded
    // in a gap) exactly once, and one acked meanwhile on another node is not recorded at all.
    for (;;) {
      const { scanned, n } = await this.#tx(async (c) => {
        const rows = (
          await c.query<{ address: Buffer; device_id: number; seq: number }>(
            `SELECT address, device_id, seq FROM mailbox WHERE received_at_ms < $1
             ORDER BY address, device_id, seq LIMIT 5000`,
            [cutoffMs],
          )
        ).rows
        const byDevice = new Map<string, { address: Buffer; deviceId: number; seqs: number[] }>()
        for (const r of rows) {
          const key = `${r.address.toString('hex')}/${r.device_id}`
          let group = byDevice.get(key)
          if (!group) {
            group = { address: r.address, deviceId: r.device_id, seqs: [] }
            byDevice.set(key, group)
          }
          group.seqs.push(r.seq)
        }
        const now = Date.now()
        let deleted = 0
        // Groups come in address order, so concurrent sweepers take account locks in the same order.
        for (const g of byDevice.values()) {
          await this.#lockAccount(c, g.address)
          const removed = (
            await c.query<{ seq: number; size: number }>(
              `DELETE FROM mailbox WHERE address = $1 AND device_id = $2 AND seq = ANY($3::bigint[])
               AND received_at_ms < $4 RETURNING seq, octet_length(envelope) AS size`,
              [g.address, g.deviceId, g.seqs, cutoffMs],
            )
          ).rows
          const gone = removed.map((r) => r.seq).sort((x, y) => x - y)
          if (gone.length === 0) continue
          for (const [first, last] of runs(gone))
            await this.#recordGap(c, g.address, g.deviceId, first, last, 'expired', now)
          await c.query(
            `UPDATE accounts SET mailbox_count = GREATEST(0, mailbox_count - $1),
               mailbox_bytes = GREATEST(0, mailbox_bytes - $2) WHERE address = $3`,
            [gone.length, removed.reduce((sum, r) => sum + r.size, 0), g.address],
          )
          deleted += gone.length
        }
        return { scanned: rows.length, n: deleted }
      })
      total += n
      if (scanned < 5000) break
    }
    await this.#pool.query('DELETE FROM mailbox_gaps WHERE recorded_at_ms < $1', [cutoffMs])
    return total
  }
}
