/**
 * The scale-out {@link port.Store | Store}: PostgreSQL through a `pg` connection pool, shared by any number of
 * relay nodes. Same semantics as {@link SqliteStore} (the shared conformance suite in `test/conformance/` holds
 * both to it, and the decisions and row mappings beside the SQL are the same code, in `store/`):
 * one transaction per operation, the message committed before `MessageAccepted`, and every write to an account's
 * keys or mailbox serialised by a row lock on its `accounts` row (`SELECT … FOR UPDATE`), so sequence numbers,
 * the mailbox limits, acks, the TTL sweep and one-time prekey consumption are race-free across nodes. Locks are always
 * taken account row first, then its keys or mail, so concurrent transactions cannot deadlock on each other.
 *
 * **Erasure is crypto-shredding** (SECURITY.md, "Erasure"). PostgreSQL does not overwrite what it deletes: dead row
 * versions stay in table, index and TOAST pages until vacuum and later writes reuse the space, and every write is
 * in the WAL (and any WAL archive or physical backup) until the segment is recycled. So every value of an account
 * beyond its lookup keys — identity key, signed and KEM prekeys and their signatures, one-time prekeys, number
 * commitment, delivery verifier, the envelopes in its mailbox, the identity key its retained mail was sealed to,
 * its linked devices' device keys and prekeys, its signed device list — is stored sealed (AES-256-GCM, a fresh
 * random nonce per value, the row's table, column, address and ids as associated data) under a random data key of
 * that account alone. The data key is one small row of `account_keys`, wrapped under the store key
 * ({@link PostgresStoreOptions.storeKey}), which is kept outside the database. Deactivation deletes that row in
 * the same transaction as the rest, and a re-activation that replaces the device gets a new data key, so whatever
 * PostgreSQL leaves behind of the old account is ciphertext under a key that exists nowhere. The mail a re-activation keeps
 * (retained for the replaced device's identity key, or restored to the new device) is resealed under the new key
 * first: every mail row of an address is sealed under the account's current key.
 *
 * What stays in the clear, because the store must query it: the address (primary key of every table and the
 * membership directory's range scans), device ids, sequence numbers, message ids (the idempotency key), prekey ids,
 * arrival times, mailbox counts and sizes, gap ranges, a retained mailbox's head and retention time, the device
 * list's version and the highest device id, and a rendezvous' id, opener and expiry (its messages are stored as the
 * devices sealed them, under a secret the relay never has: see {@link PostgresStore.postRendezvous}). A deleted
 * account's address therefore remains in old pages and WAL until PostgreSQL reuses them — the known limit
 * documented in SECURITY.md. An address forward (a number change, {@link PostgresStore.rebindAddress}) holds
 * neither address in the clear: it is keyed by a hash of the old address and its target is sealed under a key
 * derived from the old address (store/forwards.ts), the same opaque row as in SQLite.
 * @module
 */
import { type KeyObject, timingSafeEqual } from 'node:crypto'
import pg from 'pg'
import {
  boundTo,
  DataKeyCache,
  dataKeyObject,
  newDataKey,
  open,
  SEAL_OVERHEAD,
  StoreKey,
  seal,
} from './internal/accountKeys.js'
import type * as port from './Store.js'
import * as accounts from './store/accounts.js'
import * as devices from './store/devices.js'
import { storeClosed } from './store/errors.js'
import * as forwards from './store/forwards.js'
import * as mail from './store/mailbox.js'
import { ACTION_RETENTION_MS, SUMMARY_QUERY, type SummaryRow, toSummary } from './store/operator.js'
import { type AccountRow, buf, cutPage, runs, u8 } from './store/rows.js'
import type { AccountSnapshot, StoreSnapshot } from './store/snapshot.js'

type Tx = pg.PoolClient

/** What a migration that rewrites rows in code (not only SQL) is given. */
interface MigrationContext {
  /** Wraps a new data key for `account_keys.data_key` (under the store key, when there is one). */
  wrap(address: Buffer, keyId: Buffer, raw: Buffer): Buffer
  /** Opens a stored data key. */
  unwrap(address: Buffer, keyId: Buffer, stored: Buffer): KeyObject
  /** The store key's check value for `store_meta`, or null without a store key. */
  storeKeyCheck: Buffer | null
}

/** Ordered schema migrations; a released entry is never edited, only new ones appended. */
const MIGRATIONS: { version: number; sql: string; run?: (c: Tx, ctx: MigrationContext) => Promise<void> }[] =
  [
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
    {
      // Crypto-shredding: a data key per account (its own row, so that erasure deletes it alone; `key_id` changes
      // with every new key), and every value written so far sealed under it, in this transaction. The plaintext
      // row versions this rewrite leaves behind are PostgreSQL's to reclaim (SECURITY.md: VACUUM FULL after the
      // upgrade). `mailbox_bytes` keeps counting plaintext envelope bytes.
      version: 4,
      sql: `
      CREATE TABLE account_keys (
        address BYTEA PRIMARY KEY,
        key_id BYTEA NOT NULL UNIQUE,
        data_key BYTEA NOT NULL
      );
      CREATE TABLE store_meta (
        name TEXT PRIMARY KEY,
        value BYTEA NOT NULL
      );
      ALTER TABLE accounts ADD COLUMN key_id BYTEA;
    `,
      async run(c, ctx) {
        await sealPlaintextRows(c, ctx)
        await c.query('ALTER TABLE accounts ALTER COLUMN key_id SET NOT NULL')
        if (ctx.storeKeyCheck) {
          await c.query("INSERT INTO store_meta (name, value) VALUES ('store_key_check', $1)", [
            ctx.storeKeyCheck,
          ])
        }
      },
    },
    {
      // Registration locks and the account activity they lapse by (NULL: none recorded since this version; read
      // as created_at_ms). The lock is sealed under the account's data key like the account's own secrets, and
      // resealed under the new key when a re-activation that proved the PIN keeps it.
      version: 5,
      sql: `
      ALTER TABLE accounts ADD COLUMN last_active_ms BIGINT;
      CREATE TABLE registration_locks (
        address BYTEA PRIMARY KEY,
        key_id BYTEA NOT NULL,
        lock BYTEA NOT NULL,
        set_at_ms BIGINT NOT NULL
      );
    `,
    },
    {
      // Mail of a replaced device, kept for its identity key (Store.registerDevice): which device's, the identity
      // key it was sealed to (sealed under the account's data key, like the account's own identity key) and its
      // head. The mail itself stays in `mailbox` under the replaced device's id, resealed under the new key.
      version: 6,
      sql: `
      CREATE TABLE retained_mail (
        address BYTEA PRIMARY KEY,
        device_id BIGINT NOT NULL,
        identity_key BYTEA NOT NULL,
        head_seq BIGINT NOT NULL,
        retained_at_ms BIGINT NOT NULL
      );
      CREATE INDEX retained_mail_by_retained_at ON retained_mail (retained_at_ms);
    `,
    },
    {
      // Operator holds (\`parley-relay admin\`): banned addresses (kept across erasure and re-activation), revoked
      // devices, and the recent actions running relays poll to close the connections concerned. Nothing sealed:
      // an address and a device id are lookup keys in every other table too.
      version: 7,
      sql: `
      CREATE TABLE account_bans (
        address BYTEA PRIMARY KEY,
        banned_at_ms BIGINT NOT NULL
      );
      CREATE TABLE revoked_devices (
        address BYTEA NOT NULL,
        device_id BIGINT NOT NULL,
        revoked_at_ms BIGINT NOT NULL,
        PRIMARY KEY (address, device_id)
      );
      CREATE TABLE operator_actions (
        seq BIGSERIAL PRIMARY KEY,
        address BYTEA NOT NULL,
        device_id BIGINT NOT NULL,
        at_ms BIGINT NOT NULL
      );
    `,
    },
    {
      // Linked devices (docs/architecture.md §9, Store.putDeviceList). A linked device's row holds its device key,
      // its signed and last-resort KEM prekeys (NULL until its first upload) and its own mailbox head and counters;
      // its mail and gaps go in `mailbox` / `mailbox_gaps` under its device id. Every key, the signed list (it
      // names the device keys) and every one-time prekey is sealed under the account's data key, as the primary's
      // are, so erasing the account's key row shreds them too. The high-water mark (ids are never reused) and the
      // rendezvous' opener, expiry and ids are lookup data, in the clear like every address and device id; the
      // rendezvous messages are stored as the clients sealed them (see PostgresStore.postRendezvous).
      version: 8,
      sql: `
      CREATE TABLE linked_devices (
        address BYTEA NOT NULL,
        device_id BIGINT NOT NULL,
        device_key BYTEA NOT NULL,
        signed_prekey_id BIGINT,
        signed_prekey BYTEA,
        signed_prekey_sig BYTEA,
        kem_prekey_id BIGINT,
        kem_prekey BYTEA,
        kem_prekey_sig BYTEA,
        mailbox_head_seq BIGINT NOT NULL DEFAULT 0,
        mailbox_count BIGINT NOT NULL DEFAULT 0,
        mailbox_bytes BIGINT NOT NULL DEFAULT 0,
        created_at_ms BIGINT NOT NULL,
        PRIMARY KEY (address, device_id)
      );
      CREATE TABLE linked_one_time_prekeys (
        address BYTEA NOT NULL,
        device_id BIGINT NOT NULL,
        key_id BIGINT NOT NULL,
        public_key BYTEA NOT NULL,
        PRIMARY KEY (address, device_id, key_id)
      );
      CREATE TABLE linked_kem_prekeys (
        address BYTEA NOT NULL,
        device_id BIGINT NOT NULL,
        key_id BIGINT NOT NULL,
        public_key BYTEA NOT NULL,
        signature BYTEA NOT NULL,
        PRIMARY KEY (address, device_id, key_id)
      );
      CREATE TABLE device_lists (
        address BYTEA PRIMARY KEY,
        version BIGINT NOT NULL,
        list BYTEA NOT NULL
      );
      CREATE TABLE device_id_high_water (
        address BYTEA PRIMARY KEY,
        device_id BIGINT NOT NULL
      );
      CREATE TABLE rendezvous (
        id BYTEA PRIMARY KEY,
        address BYTEA NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        to_primary BYTEA,
        to_device BYTEA
      );
      CREATE INDEX rendezvous_by_address ON rendezvous (address);
      CREATE INDEX rendezvous_by_expiry ON rendezvous (expires_at_ms);
    `,
    },
    {
      // Address forwards (Store.rebindAddress with forwardUntilMs, Store.addressForward): opaque rows, the same
      // as SQLite's (store/forwards.ts) — a hash of the old address, a hash of the new one (erased with its
      // account), the new address sealed under a key derived from the old one, and the forward's end. Not
      // sealed under an account's data key: a forward outlives the move that erased the old key, and leads from
      // an address that has no account. Neither address is in the clear in it.
      version: 9,
      sql: `
      CREATE TABLE address_forwards (
        old_key BYTEA PRIMARY KEY,
        new_key BYTEA NOT NULL,
        target BYTEA NOT NULL,
        expires_at_ms BIGINT NOT NULL
      );
      CREATE INDEX address_forwards_by_to ON address_forwards (new_key);
      CREATE INDEX address_forwards_by_expiry ON address_forwards (expires_at_ms);
    `,
    },
    {
      // Attachment blobs for PostgresBlobStore (PostgresBlobStore.ts): a blob's metadata — its random id, the
      // uploader's quota id (a keyed hash, not the address), sizes and times, the hash of its upload token — and
      // its ciphertext in chunks of at most 1 MiB, which go with it. `upload_gen` and `upload_seen_ms` belong to
      // an upload under way (the node running it, and its last sign of life); both are NULL otherwise.
      version: 10,
      sql: `
      CREATE TABLE blobs (
        id BYTEA PRIMARY KEY,
        owner TEXT NOT NULL,
        size BIGINT NOT NULL,
        downloads_left INTEGER NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        upload_expires_at_ms BIGINT NOT NULL,
        token_hash TEXT NOT NULL,
        state TEXT NOT NULL,
        upload_gen TEXT,
        upload_seen_ms BIGINT
      );
      CREATE INDEX blobs_by_owner ON blobs (owner);
      CREATE INDEX blobs_by_expiry ON blobs (expires_at_ms);
      CREATE TABLE blob_chunks (
        id BYTEA NOT NULL REFERENCES blobs (id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        bytes BYTEA NOT NULL,
        PRIMARY KEY (id, idx)
      );
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
  /**
   * 32 secret bytes kept **outside** the database (the relay keeps them in `<dataDir>/store-key.json`), the same
   * on every node. Each account's data key is stored wrapped under it, so that the key rows PostgreSQL leaves
   * behind after an erasure (in old pages and WAL, as it leaves every deleted row) open nothing without it.
   * Without one, data keys are stored as they are: values are still sealed and erased with their key row, but
   * the erased key row itself is recoverable from old pages until PostgreSQL reuses them. A database is bound
   * to the store key it was first opened with (a check value in `store_meta`): opening it with another key, or
   * without one, is refused; opening a keyless database with a key wraps its data keys.
   */
  storeKey?: Uint8Array
  /**
   * Most data keys a node keeps in memory (least recently used dropped first; default 10,000; 0 = none), so the
   * hot paths look no key up per message.
   */
  keyCacheSize?: number
  /** How long a cached data key is kept (default 60 s), erasure notices from other nodes aside. */
  keyCacheTtlMs?: number
}

// BIGINT columns hold sequence numbers, device ids and millisecond times, all far below 2^53: read them as
// numbers rather than pg's default strings. Scoped to this store's pool, not set globally on `pg`.
const INT8_OID = 20
/** `pg`'s type parsers with BIGINT read as a JS number, for the pools {@link openPool} makes. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
}

/**
 * A rebind, or a re-activation that keeps mail, reseals an account's mail in batches of at most this many rows
 * and (beyond the first row of a batch) this many envelope bytes, so that a full mailbox (thousands of envelopes
 * of up to 256 KiB) is never one query.
 */
const RESEAL_BATCH_ROWS = 200
const RESEAL_BATCH_BYTES = 4 << 20
/** A rebind reseals one-time prekeys in batches of at most this many rows. */
const REBIND_PREKEY_BATCH = 1000

/** SQLSTATEs after which a transaction is retried: serialization failure, deadlock, unique violation. */
const RETRYABLE = new Set(['40001', '40P01', '23505'])

/**
 * The channel on which an erasure (deactivation, or a re-activation replacing the device) names the erased key
 * id, `<schema> <key id hex>`, delivered at commit to every node's store, which drops that key from its cache.
 * A key id is random and belongs to a key that no longer exists: the notice says nothing about the account.
 */
const ERASED_CHANNEL = 'parley_key_erased'

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

/**
 * A pool of connections to the relay's schema (of this store, or of {@link PostgresBlobStore}, which shares it):
 * every connection resolves unqualified table names in that schema and reads BIGINT as a number.
 */
export function openPool(
  url: string,
  max: number,
  options: { connectTimeoutMs?: number | undefined },
): { pool: pg.Pool; schema: string; connectionString: string } {
  const { connectionString, schema } = parsePostgresUrl(url)
  const pool = new pg.Pool({
    connectionString,
    max,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    options: `-c search_path=${schema}`,
    types,
  })
  // An idle client's error (e.g. the server restarted) must not crash the process; the pool replaces it.
  pool.on('error', () => {})
  return { pool, schema, connectionString }
}

/** An `accounts` row of this store: the shared shape plus the id of the account's data key. */
type PgAccountRow = AccountRow & { key_id: Buffer }

/**
 * A `linked_devices` row: a linked device's device key and its signed and last-resort KEM prekeys (all sealed,
 * the prekeys NULL until its first upload), with its own mailbox head and counters (plaintext bytes, as the
 * account row's).
 */
type PgLinkedRow = devices.LinkedDeviceColumns & { address: Buffer }

/** Which one-time prekey tables a device's keys are in: the primary's (by address) or the linked devices'. */
type PrekeyTables = { kind: 'primary' } | { kind: 'linked'; deviceId: number }

/** The mail a re-activation keeps: the new device's mailbox (restored mail, or none) and how much is retained. */
interface KeptMail {
  mailbox: { headSeq: number; count: number; bytes: number }
  retainedMessages: number
}

/** A registration lock's secret part as one sealed value: salt ‖ logN (1 byte) ‖ verifier. */
function packLock(lock: port.RegistrationLock): Uint8Array {
  const out = new Uint8Array(lock.salt.length + 1 + lock.verifier.length)
  out.set(lock.salt)
  out[lock.salt.length] = lock.logN
  out.set(lock.verifier, lock.salt.length + 1)
  return out
}

/** The inverse of {@link packLock} (the verifier is the last 32 bytes). */
function unpackLock(packed: Uint8Array, setAtMs: number): port.RegistrationLock {
  const saltEnd = packed.length - 33
  return {
    salt: packed.slice(0, saltEnd),
    logN: packed[saltEnd]!,
    verifier: packed.slice(saltEnd + 1),
    setAtMs,
  }
}

/** Seals and opens the values of one account (its data key and address), each bound to its column and row ids. */
class Sealer {
  constructor(
    readonly key: KeyObject,
    readonly address: Buffer,
  ) {}

  seal(column: string, ids: number[], value: Uint8Array, tail?: Uint8Array): Buffer {
    return seal(this.key, boundTo(column, this.address, ids, tail), value)
  }

  open(column: string, ids: number[], value: Buffer | null, tail?: Uint8Array): Uint8Array {
    // NULL only in rows written before version 2 (no commitment, no verifier) and never sealed since.
    if (value === null) return new Uint8Array(0)
    return u8(open(this.key, boundTo(column, this.address, ids, tail), value, column))
  }

  /** The identity key, the signed and last-resort prekeys and the commitment, as stored in `accounts`. */
  accountValues(
    deviceId: number,
    v: {
      identityKey: Uint8Array
      signedPrekey: port.SignedKey
      lastResortKemPrekey: port.SignedKey
      numberCommitment: Uint8Array
    },
  ) {
    const spk = [deviceId, v.signedPrekey.keyId]
    const kem = [deviceId, v.lastResortKemPrekey.keyId]
    return {
      identityKey: this.seal('accounts.identity_key', [deviceId], v.identityKey),
      signedPrekey: this.seal('accounts.signed_prekey', spk, v.signedPrekey.publicKey),
      signedPrekeySig: this.seal('accounts.signed_prekey_sig', spk, v.signedPrekey.signature),
      kemPrekey: this.seal('accounts.kem_prekey', kem, v.lastResortKemPrekey.publicKey),
      kemPrekeySig: this.seal('accounts.kem_prekey_sig', kem, v.lastResortKemPrekey.signature),
      numberCommitment: this.seal('accounts.number_commitment', [deviceId], v.numberCommitment),
    }
  }

  /**
   * A linked device's signed prekey (`signed_prekey`) or last-resort KEM prekey (`kem_prekey`) as stored in its
   * `linked_devices` row: the public key and signature sealed, bound to the device and key ids.
   */
  linkedSignedKey(column: 'signed_prekey' | 'kem_prekey', deviceId: number, k: port.SignedKey) {
    const ids = [deviceId, k.keyId]
    return {
      publicKey: this.seal(`linked_devices.${column}`, ids, k.publicKey),
      signature: this.seal(`linked_devices.${column}_sig`, ids, k.signature),
    }
  }

  /**
   * A linked device's row with its device key and signed keys opened (NULL stays NULL: no upload yet), in the
   * shape the shared decisions of store/devices.ts read.
   */
  openLinked(row: PgLinkedRow): devices.LinkedKeysRow {
    const d = row.device_id
    const opened = (column: string, keyId: number | null, value: Buffer | null) =>
      keyId === null || value === null ? null : buf(this.open(`linked_devices.${column}`, [d, keyId], value))
    return {
      device_id: d,
      device_key: buf(this.open('linked_devices.device_key', [d], row.device_key)),
      signed_prekey_id: row.signed_prekey_id,
      signed_prekey: opened('signed_prekey', row.signed_prekey_id, row.signed_prekey),
      signed_prekey_sig: opened('signed_prekey_sig', row.signed_prekey_id, row.signed_prekey_sig),
      kem_prekey_id: row.kem_prekey_id,
      kem_prekey: opened('kem_prekey', row.kem_prekey_id, row.kem_prekey),
      kem_prekey_sig: opened('kem_prekey_sig', row.kem_prekey_id, row.kem_prekey_sig),
    }
  }

  /** The inverse of {@link openLinked}: the row's sealed columns (NULL for a key not uploaded yet). */
  sealLinked(row: devices.LinkedKeysRow) {
    const d = row.device_id
    const sealed = (column: string, keyId: number | null, value: Buffer | null) =>
      keyId === null || value === null ? null : this.seal(`linked_devices.${column}`, [d, keyId], value)
    return {
      deviceKey: this.seal('linked_devices.device_key', [d], row.device_key),
      signedPrekey: sealed('signed_prekey', row.signed_prekey_id, row.signed_prekey),
      signedPrekeySig: sealed('signed_prekey_sig', row.signed_prekey_id, row.signed_prekey_sig),
      kemPrekey: sealed('kem_prekey', row.kem_prekey_id, row.kem_prekey),
      kemPrekeySig: sealed('kem_prekey_sig', row.kem_prekey_id, row.kem_prekey_sig),
    }
  }
}

/**
 * Inserts a whole `accounts` row, its values sealed by `s`: what activation writes for a new device and what the
 * migration's import writes for each account.
 */
function insertAccount(
  c: Tx,
  s: Sealer,
  deviceId: number,
  keys: Parameters<Sealer['accountValues']>[1],
  row: {
    mailbox: { headSeq: number; count: number; bytes: number }
    createdAtMs: number
    lastActiveMs: number | null
    deliveryVerifier: Uint8Array
    keyId: Buffer
  },
) {
  const v = s.accountValues(deviceId, keys)
  return c.query(
    `INSERT INTO accounts (address, device_id, identity_key, signed_prekey_id, signed_prekey,
      signed_prekey_sig, kem_prekey_id, kem_prekey, kem_prekey_sig, mailbox_head_seq, mailbox_count, mailbox_bytes,
      created_at_ms, number_commitment, delivery_verifier, key_id, last_active_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
    [
      s.address,
      deviceId,
      v.identityKey,
      keys.signedPrekey.keyId,
      v.signedPrekey,
      v.signedPrekeySig,
      keys.lastResortKemPrekey.keyId,
      v.kemPrekey,
      v.kemPrekeySig,
      row.mailbox.headSeq,
      row.mailbox.count,
      row.mailbox.bytes,
      row.createdAtMs,
      v.numberCommitment,
      s.seal('accounts.delivery_verifier', [deviceId], row.deliveryVerifier),
      row.keyId,
      row.lastActiveMs,
    ],
  )
}

/** PostgreSQL implementation of {@link port.Store | Store}. */
export class PostgresStore implements port.Store {
  /**
   * False: each write is its own transaction on whichever pooled connection is free, and two in flight may
   * commit in either order, so a connection's sends must be handled one after another to keep seq order.
   */
  readonly ordersConcurrentWrites = false
  readonly #pool: pg.Pool
  readonly #schema: string
  readonly #connectionString: string
  readonly #connectTimeoutMs: number
  readonly #storeKey: StoreKey | undefined
  readonly #keys: DataKeyCache
  #listener: pg.Client | undefined
  #listenerRetryMs = 500
  #listenerTimer: NodeJS.Timeout | undefined
  #keyReads = 0
  #closed = false

  private constructor(
    pool: pg.Pool,
    schema: string,
    connectionString: string,
    options: PostgresStoreOptions,
  ) {
    this.#pool = pool
    this.#schema = schema
    this.#connectionString = connectionString
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5000
    this.#storeKey = options.storeKey ? new StoreKey(options.storeKey) : undefined
    this.#keys = new DataKeyCache({
      capacity: options.keyCacheSize ?? 10_000,
      ttlMs: options.keyCacheTtlMs ?? 60_000,
    })
    // Off until this node hears other nodes' erasure notices (#listen).
    this.#keys.setEnabled(false)
  }

  /**
   * Connects, creates the schema if needed and applies pending migrations (under an advisory lock, so nodes
   * starting together migrate once), and checks the store key against the database's.
   * @throws Error when the database cannot be reached, its schema version is newer than this relay's, or the
   *   store key is not the one the database was opened with
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const store = PostgresStore.#create(options)
    try {
      await store.#migrate(PG_SCHEMA_VERSION)
      await store.#listen()
    } catch (err) {
      await store.close()
      throw err
    }
    return store
  }

  /**
   * Applies the migrations up to `toVersion` only, then closes: a database left exactly as a relay of that
   * schema version left it (tests of later migrations; staged upgrades).
   */
  static async migrateTo(options: PostgresStoreOptions, toVersion: number): Promise<void> {
    const store = PostgresStore.#create(options)
    try {
      await store.#migrate(toVersion)
    } finally {
      await store.close()
    }
  }

  static #create(options: PostgresStoreOptions): PostgresStore {
    const { pool, schema, connectionString } = openPool(options.url, options.maxConnections ?? 10, options)
    return new PostgresStore(pool, schema, connectionString, options)
  }

  /** The schema this store's tables live in. */
  get schema(): string {
    return this.#schema
  }

  /**
   * The data key cache (for tests and diagnostics): keys held, whether caching is on (it is only while erasure
   * notices arrive), and how many times a key was read from `account_keys`.
   */
  get dataKeyStats(): { cached: number; caching: boolean; reads: number } {
    return { cached: this.#keys.size, caching: this.#keys.enabled, reads: this.#keyReads }
  }

  /** The schema version of the database. */
  async schemaVersion(): Promise<number> {
    const r = await this.#pool.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations')
    return r.rows[0]?.v ?? 0
  }

  async #migrate(toVersion: number): Promise<void> {
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
      const ctx: MigrationContext = {
        wrap: (a, id, raw) => this.#wrap(a, id, raw),
        unwrap: (a, id, stored) => this.#unwrap(a, id, stored),
        storeKeyCheck: this.#storeKey?.check ?? null,
      }
      for (const m of MIGRATIONS) {
        if (m.version <= current || m.version > toVersion) continue
        await client.query(m.sql)
        await m.run?.(client, ctx)
        await client.query('INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)', [
          m.version,
          Date.now(),
        ])
      }
      if (toVersion >= 4) await this.#checkStoreKey(client)
      await client.query('COMMIT')
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }

  /** Binds the database to this store key (or to none), under the migration lock. */
  async #checkStoreKey(c: Tx): Promise<void> {
    const stored = (
      await c.query<{ value: Buffer }>("SELECT value FROM store_meta WHERE name = 'store_key_check'")
    ).rows[0]?.value
    const mine = this.#storeKey?.check
    if (stored && mine) {
      if (stored.length !== mine.length || !timingSafeEqual(stored, mine)) {
        throw new Error(
          'the store key does not match this database (its account keys are wrapped under another one): give ' +
            'every node the same store-key.json',
        )
      }
      return
    }
    if (stored) {
      throw new Error('this database is bound to a store key (store-key.json) and none was given')
    }
    if (!mine) return
    // Data keys stored before there was a store key: wrap them now, then bind the database to this key.
    for (let after: Buffer = Buffer.alloc(0); ; ) {
      const rows = (
        await c.query<{ address: Buffer; key_id: Buffer; data_key: Buffer }>(
          'SELECT address, key_id, data_key FROM account_keys WHERE address > $1 ORDER BY address LIMIT 1000',
          [after],
        )
      ).rows
      if (rows.length === 0) break
      after = rows[rows.length - 1]!.address
      await c.query(
        `UPDATE account_keys k SET data_key = v.d FROM unnest($1::bytea[], $2::bytea[]) AS v(a, d)
         WHERE k.address = v.a`,
        [rows.map((r) => r.address), rows.map((r) => this.#storeKey!.wrap(r.address, r.key_id, r.data_key))],
      )
    }
    await c.query("INSERT INTO store_meta (name, value) VALUES ('store_key_check', $1)", [mine])
  }

  #wrap(address: Buffer, keyId: Buffer, raw: Buffer): Buffer {
    return this.#storeKey ? this.#storeKey.wrap(address, keyId, raw) : Buffer.from(raw)
  }

  #unwrap(address: Buffer, keyId: Buffer, stored: Buffer): KeyObject {
    const raw = this.#storeKey ? this.#storeKey.unwrap(address, keyId, stored) : stored
    try {
      return dataKeyObject(raw)
    } finally {
      raw.fill(0) // the key object holds its own copy; no raw key bytes stay on the JS heap
    }
  }

  /**
   * Listens for erasure notices on a connection of its own, and caches data keys only while it does: a node
   * that could miss another node's erasure must not hold keys. Reconnects with backoff when the connection drops.
   */
  async #listen(): Promise<void> {
    if (this.#closed) return
    const client = new pg.Client({
      connectionString: this.#connectionString,
      connectionTimeoutMillis: this.#connectTimeoutMs,
      application_name: `parley-erasure-listener ${this.#schema}`.slice(0, 63),
    })
    let dead = false
    const down = () => {
      if (dead) return
      dead = true
      client.end().catch(() => {})
      if (this.#listener === client) this.#listener = undefined
      if (this.#listener) return
      this.#keys.setEnabled(false)
      if (this.#closed || this.#listenerTimer) return
      this.#listenerTimer = setTimeout(() => {
        this.#listenerTimer = undefined
        void this.#listen()
      }, this.#listenerRetryMs)
      this.#listenerTimer.unref()
      this.#listenerRetryMs = Math.min(this.#listenerRetryMs * 2, 30_000)
    }
    client.on('error', down)
    client.on('end', down)
    client.on('notification', (n) => {
      if (n.channel !== ERASED_CHANNEL || !n.payload) return
      const [schema, keyId] = n.payload.split(' ')
      if (schema === this.#schema && keyId) this.#keys.forget(keyId)
    })
    try {
      await client.connect()
      await client.query(`LISTEN ${ERASED_CHANNEL}`)
      if (this.#closed) {
        await client.end()
        return
      }
      this.#listener = client
      this.#listenerRetryMs = 500
      this.#keys.setEnabled(true)
    } catch {
      down()
    }
  }

  /**
   * The data key with id `keyId` of the account at `address` (the id read from its `accounts` row in the same
   * transaction), from the cache or from `account_keys`; null when there is no such key (erased meanwhile).
   */
  async #dataKey(q: Tx | pg.Pool, address: Buffer, keyId: Buffer): Promise<KeyObject | null> {
    const cached = this.#keys.get(keyId)
    if (cached) return cached
    this.#keyReads++
    const row = (
      await q.query<{ data_key: Buffer }>(
        'SELECT data_key FROM account_keys WHERE address = $1 AND key_id = $2',
        [address, keyId],
      )
    ).rows[0]
    if (!row) return null
    const key = this.#unwrap(address, keyId, row.data_key)
    this.#keys.set(keyId, key)
    return key
  }

  /**
   * The sealer of an account whose row this transaction has read (locked, or in its snapshot), with the key id
   * read from that row: the key must exist.
   */
  async #sealer(c: Tx, address: Buffer, keyId: Buffer): Promise<Sealer> {
    const key = await this.#dataKey(c, address, keyId)
    if (!key) throw new Error('an account has no data key (the database is inconsistent)')
    return new Sealer(key, address)
  }

  /** Erases the data key of a locked account row, and tells every node to drop it (at commit). */
  async #eraseKey(c: Tx, address: Buffer, keyId: Buffer): Promise<void> {
    await c.query('DELETE FROM account_keys WHERE address = $1', [address])
    await c.query('SELECT pg_notify($1, $2)', [ERASED_CHANNEL, `${this.#schema} ${keyId.toString('hex')}`])
  }

  #open(): void {
    if (this.#closed) throw storeClosed()
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

  async #lockAccount(c: Tx, address: Buffer): Promise<PgAccountRow | undefined> {
    const r = await c.query<PgAccountRow>('SELECT * FROM accounts WHERE address = $1 FOR UPDATE', [address])
    return r.rows[0]
  }

  async #eraseKeysAndMail(c: Tx, address: Buffer): Promise<void> {
    await c.query('DELETE FROM one_time_prekeys WHERE address = $1', [address])
    await c.query('DELETE FROM kem_prekeys WHERE address = $1', [address])
    await c.query('DELETE FROM mailbox WHERE address = $1', [address])
    await c.query('DELETE FROM mailbox_gaps WHERE address = $1', [address])
  }

  /**
   * Adds one-time X25519 and KEM prekeys (same key id replaces), sealed: the primary's in `one_time_prekeys` /
   * `kem_prekeys` (bound to the key id), a linked device's in `linked_one_time_prekeys` / `linked_kem_prekeys`
   * (bound to its device id and the key id).
   */
  async #putKeys(
    c: Tx,
    s: Sealer,
    keys: { oneTimePrekeys: port.OneTimeKey[]; oneTimeKemPrekeys: port.SignedKey[] },
    tables: PrekeyTables = { kind: 'primary' },
  ): Promise<void> {
    if (tables.kind === 'linked') {
      const d = tables.deviceId
      if (keys.oneTimePrekeys.length > 0) {
        await c.query(
          `INSERT INTO linked_one_time_prekeys (address, device_id, key_id, public_key)
           SELECT $1, $2, k, p FROM unnest($3::bigint[], $4::bytea[]) AS t(k, p)
           ON CONFLICT (address, device_id, key_id) DO UPDATE SET public_key = excluded.public_key`,
          [
            s.address,
            d,
            keys.oneTimePrekeys.map((k) => k.keyId),
            keys.oneTimePrekeys.map((k) =>
              s.seal('linked_one_time_prekeys.public_key', [d, k.keyId], k.publicKey),
            ),
          ],
        )
      }
      if (keys.oneTimeKemPrekeys.length > 0) {
        await c.query(
          `INSERT INTO linked_kem_prekeys (address, device_id, key_id, public_key, signature)
           SELECT $1, $2, k, p, s FROM unnest($3::bigint[], $4::bytea[], $5::bytea[]) AS t(k, p, s)
           ON CONFLICT (address, device_id, key_id)
             DO UPDATE SET public_key = excluded.public_key, signature = excluded.signature`,
          [
            s.address,
            d,
            keys.oneTimeKemPrekeys.map((k) => k.keyId),
            keys.oneTimeKemPrekeys.map((k) =>
              s.seal('linked_kem_prekeys.public_key', [d, k.keyId], k.publicKey),
            ),
            keys.oneTimeKemPrekeys.map((k) =>
              s.seal('linked_kem_prekeys.signature', [d, k.keyId], k.signature),
            ),
          ],
        )
      }
      return
    }
    if (keys.oneTimePrekeys.length > 0) {
      await c.query(
        `INSERT INTO one_time_prekeys (address, key_id, public_key)
         SELECT $1, k, p FROM unnest($2::bigint[], $3::bytea[]) AS t(k, p)
         ON CONFLICT (address, key_id) DO UPDATE SET public_key = excluded.public_key`,
        [
          s.address,
          keys.oneTimePrekeys.map((k) => k.keyId),
          keys.oneTimePrekeys.map((k) => s.seal('one_time_prekeys.public_key', [k.keyId], k.publicKey)),
        ],
      )
    }
    if (keys.oneTimeKemPrekeys.length > 0) {
      await c.query(
        `INSERT INTO kem_prekeys (address, key_id, public_key, signature)
         SELECT $1, k, p, s FROM unnest($2::bigint[], $3::bytea[], $4::bytea[]) AS t(k, p, s)
         ON CONFLICT (address, key_id) DO UPDATE SET public_key = excluded.public_key, signature = excluded.signature`,
        [
          s.address,
          keys.oneTimeKemPrekeys.map((k) => k.keyId),
          keys.oneTimeKemPrekeys.map((k) => s.seal('kem_prekeys.public_key', [k.keyId], k.publicKey)),
          keys.oneTimeKemPrekeys.map((k) => s.seal('kem_prekeys.signature', [k.keyId], k.signature)),
        ],
      )
    }
  }

  async #counts(
    c: Tx | pg.Pool,
    address: Buffer,
    tables: PrekeyTables = { kind: 'primary' },
  ): Promise<port.PrekeyCounts> {
    const r =
      tables.kind === 'primary'
        ? await c.query<{ o: number; k: number }>(
            `SELECT (SELECT count(*) FROM one_time_prekeys WHERE address = $1) AS o,
                    (SELECT count(*) FROM kem_prekeys WHERE address = $1) AS k`,
            [address],
          )
        : await c.query<{ o: number; k: number }>(
            `SELECT (SELECT count(*) FROM linked_one_time_prekeys WHERE address = $1 AND device_id = $2) AS o,
                    (SELECT count(*) FROM linked_kem_prekeys WHERE address = $1 AND device_id = $2) AS k`,
            [address, tables.deviceId],
          )
    return { oneTimeCount: r.rows[0]!.o, kemOneTimeCount: r.rows[0]!.k }
  }

  /** The linked device `deviceId` of an address, locked (`FOR UPDATE`) when `lock`: after its account row. */
  async #linkedRow(
    c: Tx | pg.Pool,
    address: Buffer,
    deviceId: number,
    lock = false,
  ): Promise<PgLinkedRow | undefined> {
    // A device id the column cannot hold names no device (and must not reach PostgreSQL as an error).
    if (!Number.isSafeInteger(deviceId) || deviceId < 0) return undefined
    const r = await c.query<PgLinkedRow>(
      `SELECT * FROM linked_devices WHERE address = $1 AND device_id = $2${lock ? ' FOR UPDATE' : ''}`,
      [address, deviceId],
    )
    return r.rows[0]
  }

  /**
   * Erases linked devices of an address — `ids`, or all of them — with everything that is theirs: their rows
   * (device keys, signed prekeys, mailbox counters), one-time prekeys, mail and gap records. Their values were
   * sealed under the account's key like the rest; deleting the rows is what a removal does, erasing that key
   * (deactivation, re-activation) what shreds every copy PostgreSQL keeps.
   */
  async #eraseLinked(c: Tx, address: Buffer, ids?: number[]): Promise<void> {
    if (ids?.length === 0) return
    const which = ids
      ? 'device_id = ANY($2::bigint[])'
      : 'device_id IN (SELECT device_id FROM linked_devices WHERE address = $1)'
    const params = ids ? [address, ids] : [address]
    await c.query(`DELETE FROM mailbox WHERE address = $1 AND ${which}`, params)
    await c.query(`DELETE FROM mailbox_gaps WHERE address = $1 AND ${which}`, params)
    const own = ids ? ' AND device_id = ANY($2::bigint[])' : ''
    await c.query(`DELETE FROM linked_one_time_prekeys WHERE address = $1${own}`, params)
    await c.query(`DELETE FROM linked_kem_prekeys WHERE address = $1${own}`, params)
    await c.query(`DELETE FROM linked_devices WHERE address = $1${own}`, params)
  }

  /**
   * Erases what an address keeps of its devices beyond their rows: its device list, its highest device id, and
   * the rendezvous it opened (deactivation; a rebind clearing its target address).
   */
  async #eraseDeviceRecords(c: Tx, address: Buffer): Promise<void> {
    await c.query('DELETE FROM device_lists WHERE address = $1', [address])
    await c.query('DELETE FROM device_id_high_water WHERE address = $1', [address])
    await c.query('DELETE FROM rendezvous WHERE address = $1', [address])
  }

  /** The address's stored highest device id (none before its first linked device). */
  async #highWater(c: Tx, address: Buffer): Promise<number | undefined> {
    const r = await c.query<{ device_id: number }>(
      'SELECT device_id FROM device_id_high_water WHERE address = $1',
      [address],
    )
    return r.rows[0]?.device_id
  }

  /**
   * Records a device's expired seqs (sorted) as `expired` gaps: each run of consecutive seqs extends the gap
   * that ends just before it, or is a new one.
   */
  async #recordExpired(
    c: Tx,
    address: Buffer,
    deviceId: number,
    seqs: number[],
    nowMs: number,
  ): Promise<void> {
    for (const [first, last] of runs(seqs)) {
      const extended = await c.query(
        `UPDATE mailbox_gaps SET last_seq = $1, recorded_at_ms = $2
         WHERE address = $3 AND device_id = $4 AND last_seq = $5 AND reason = $6`,
        [last, nowMs, address, deviceId, first - 1, 'expired'],
      )
      if (extended.rowCount === 0) {
        await c.query(
          `INSERT INTO mailbox_gaps (address, device_id, first_seq, last_seq, reason, recorded_at_ms)
           VALUES ($1, $2, $3, $4, $5, $6)`,
          [address, deviceId, first, last, 'expired', nowMs],
        )
      }
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
    clearTimeout(this.#listenerTimer)
    const listener = this.#listener
    this.#listener = undefined
    this.#keys.setEnabled(false)
    await Promise.allSettled([listener?.end(), this.#pool.end()])
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

  /**
   * One transaction, the account row locked first. The replaced device's prekeys go, and with them every mail row
   * and gap record of the address but the mail kept for an identity key (see {@link PostgresStore.#keepMail}):
   * that mail is opened under the old data key and resealed under the new one before the old key is erased, so
   * every mail row of an address stays sealed under the account's current key, and whatever PostgreSQL keeps of
   * the rest is ciphertext under a key that exists nowhere.
   */
  async registerDevice(input: Parameters<port.Store['registerDevice']>[0]): Promise<port.RegisteredDevice> {
    let erased: Buffer | undefined
    const fresh = newDataKey()
    const key = dataKeyObject(fresh.raw)
    const result = await this.#tx(async (c): Promise<port.RegisteredDevice> => {
      const address = buf(input.address)
      const old = await this.#lockAccount(c, address)
      erased = old?.key_id
      // Above every id the address used, a linked device's too: a contact's session with an earlier device (of
      // this identity or the one replaced) cannot be taken for the new device's. The mark stays; deleteAccount
      // forgets it.
      const mark = await this.#highWater(c, address)
      const deviceId = accounts.nextDeviceId(
        old && devices.highestDeviceId({ device_id: old.device_id, max_device_id: mark }),
      )
      const s = new Sealer(key, address)
      // A lock the new device proved the PIN of stays with the account, resealed under the new key below.
      let keptLock: { lock: Uint8Array; setAtMs: number } | undefined
      if (old && input.keepRegistrationLock === true) {
        const row = (
          await c.query<{ lock: Buffer; key_id: Buffer; set_at_ms: number }>(
            'SELECT lock, key_id, set_at_ms FROM registration_locks WHERE address = $1',
            [address],
          )
        ).rows[0]
        const oldKey = row ? await this.#dataKey(c, address, row.key_id) : null
        if (row && oldKey) {
          keptLock = {
            lock: new Sealer(oldKey, address).open('registration_locks.lock', [], row.lock),
            setAtMs: row.set_at_ms,
          }
        }
      }
      await c.query('DELETE FROM registration_locks WHERE address = $1', [address])
      // The linked devices were linked by the identity being replaced: they go, with their keys, mail and gaps,
      // and the list that named them. Their mail is sealed to their device keys, so none of it is retained.
      await this.#eraseLinked(c, address)
      await c.query('DELETE FROM device_lists WHERE address = $1', [address])
      let kept: KeptMail = { mailbox: { headSeq: 0, count: 0, bytes: 0 }, retainedMessages: 0 }
      if (old) {
        kept = await this.#keepMail(c, old, s, deviceId, input)
        // Only now, with the kept mail resealed under the new key.
        await this.#eraseKey(c, address, old.key_id)
        await c.query('DELETE FROM accounts WHERE address = $1', [address])
      }
      // A new device gets a new data key: the replaced device's keys and erased mail, wherever PostgreSQL still
      // keeps copies of them, were sealed under the key just erased.
      await c.query('INSERT INTO account_keys (address, key_id, data_key) VALUES ($1, $2, $3)', [
        address,
        fresh.keyId,
        this.#wrap(address, fresh.keyId, fresh.raw),
      ])
      // Two nodes registering a new address at once: the loser's INSERT raises 23505 and #tx retries it,
      // now finding (and replacing) the winner's row — the same outcome as two activations in sequence.
      await insertAccount(c, s, deviceId, input, {
        mailbox: kept.mailbox,
        createdAtMs: input.nowMs,
        lastActiveMs: input.nowMs,
        // Sealed even when empty: whether unidentified delivery is on is not in the clear either.
        deliveryVerifier: new Uint8Array(0),
        keyId: fresh.keyId,
      })
      if (keptLock) {
        await c.query(
          'INSERT INTO registration_locks (address, key_id, lock, set_at_ms) VALUES ($1, $2, $3, $4)',
          [address, fresh.keyId, s.seal('registration_locks.lock', [], keptLock.lock), keptLock.setAtMs],
        )
        keptLock.lock.fill(0)
      }
      // The address is this new account's now: a forward kept from it (an account that moved away) goes.
      await c.query('DELETE FROM address_forwards WHERE old_key = $1', [forwards.forwardFromKey(address)])
      await this.#putKeys(c, s, input)
      return {
        deviceId,
        replacedDevice: old !== undefined,
        restoredMessages: kept.mailbox.count,
        retainedMessages: kept.retainedMessages,
      }
    }).finally(() => fresh.raw.fill(0))
    if (erased) this.#keys.forget(erased.toString('hex'))
    this.#keys.set(fresh.keyId, key)
    return result
  }

  /**
   * A re-activation's mail, as Store.registerDevice has it (decided by {@link accounts.planKeptMail}, as in
   * SQLite): the mail sealed to the new device's identity key — the replaced device's own, or the retained
   * device's — is restored to the new device `deviceId` (its rows and gap records take the new device id;
   * same seqs, message ids and envelopes). The replaced device's unread mail, if it has any and is not the
   * mail restored, is retained under its own device id with a new `retained_mail` record, taking the place of
   * what was retained before; when it has none, what was retained before (unless restored) stays retained,
   * with its record's head and time. The rest of the address's mail and gap records go, with the prekeys. The
   * identity keys are opened under the old data key; the kept mail and the record are sealed under the new
   * one (`s`). Resolves the new device's mailbox head and counters (plaintext bytes) and how many messages
   * are newly retained.
   */
  async #keepMail(
    c: Tx,
    old: PgAccountRow,
    s: Sealer,
    deviceId: number,
    input: { identityKey: Uint8Array; nowMs: number },
  ): Promise<KeptMail> {
    const address = old.address
    const was = await this.#sealer(c, address, old.key_id)
    const oldIdentity = buf(was.open('accounts.identity_key', [old.device_id], old.identity_key))
    // Locked after the account row, as all of its mail is: a concurrent sweep cannot drop it while we decide.
    const record = (
      await c.query<{ device_id: number; identity_key: Buffer; head_seq: number }>(
        'SELECT device_id, identity_key, head_seq FROM retained_mail WHERE address = $1 FOR UPDATE',
        [address],
      )
    ).rows[0]
    const retained = record && {
      deviceId: record.device_id,
      headSeq: record.head_seq,
      identityKey: buf(was.open('retained_mail.identity_key', [record.device_id], record.identity_key)),
    }
    const { restore, retainOld, keepRetained, keep, retainedMessages } = accounts.planKeptMail(
      {
        deviceId: old.device_id,
        identityKey: oldIdentity,
        headSeq: old.mailbox_head_seq,
        count: old.mailbox_count,
      },
      retained,
      input.identityKey,
    )
    // Everything else of the address's mail goes.
    await c.query('DELETE FROM one_time_prekeys WHERE address = $1', [address])
    await c.query('DELETE FROM kem_prekeys WHERE address = $1', [address])
    await c.query('DELETE FROM mailbox WHERE address = $1 AND device_id <> ALL($2::bigint[])', [
      address,
      keep,
    ])
    await c.query('DELETE FROM mailbox_gaps WHERE address = $1 AND device_id <> ALL($2::bigint[])', [
      address,
      keep,
    ])
    const mailbox = { headSeq: 0, count: 0, bytes: 0 }
    if (restore) {
      const restored = await this.#resealMail(c, was, s, { from: restore.deviceId, to: deviceId })
      await c.query('UPDATE mailbox_gaps SET device_id = $1 WHERE address = $2 AND device_id = $3', [
        deviceId,
        address,
        restore.deviceId,
      ])
      mailbox.headSeq = restore.headSeq
      mailbox.count = restored.count
      mailbox.bytes = restored.bytes
    }
    if (keepRetained && retained) {
      // Still retained: its mail and its record's identity key resealed under the new key, head and time kept.
      const d = retained.deviceId
      await this.#resealMail(c, was, s, { from: d, to: d })
      await c.query('UPDATE retained_mail SET identity_key = $1 WHERE address = $2', [
        s.seal('retained_mail.identity_key', [d], retained.identityKey),
        address,
      ])
      return { mailbox, retainedMessages: 0 }
    }
    await c.query('DELETE FROM retained_mail WHERE address = $1', [address])
    if (!retainOld) return { mailbox, retainedMessages: 0 }
    await this.#resealMail(c, was, s, { from: old.device_id, to: old.device_id })
    await c.query(
      `INSERT INTO retained_mail (address, device_id, identity_key, head_seq, retained_at_ms)
       VALUES ($1, $2, $3, $4, $5)`,
      [
        address,
        old.device_id,
        s.seal('retained_mail.identity_key', [old.device_id], oldIdentity),
        old.mailbox_head_seq,
        input.nowMs,
      ],
    )
    return { mailbox, retainedMessages }
  }

  async getAccount(address: Uint8Array): Promise<port.Account | null> {
    this.#open()
    const a = buf(address)
    const row = (
      await this.#pool.query<PgAccountRow>(
        `SELECT address, device_id, identity_key, created_at_ms, number_commitment, delivery_verifier, key_id,
           last_active_ms
         FROM accounts WHERE address = $1`,
        [a],
      )
    ).rows[0]
    if (!row) return null
    // Two statements, no transaction: a key erased in between means the account was erased in between.
    const key = await this.#dataKey(this.#pool, a, row.key_id)
    if (!key) return null
    const s = new Sealer(key, a)
    const d = [row.device_id]
    return accounts.toAccount(row, {
      identityKey: s.open('accounts.identity_key', d, row.identity_key),
      numberCommitment: s.open('accounts.number_commitment', d, row.number_commitment),
      deliveryVerifier: s.open('accounts.delivery_verifier', d, row.delivery_verifier),
    })
  }

  async getRegistrationLock(address: Uint8Array): Promise<port.RegistrationLock | null> {
    this.#open()
    const a = buf(address)
    const row = (
      await this.#pool.query<{ lock: Buffer; key_id: Buffer; set_at_ms: number }>(
        'SELECT lock, key_id, set_at_ms FROM registration_locks WHERE address = $1',
        [a],
      )
    ).rows[0]
    if (!row) return null
    const key = await this.#dataKey(this.#pool, a, row.key_id)
    if (!key) return null
    return unpackLock(new Sealer(key, a).open('registration_locks.lock', [], row.lock), row.set_at_ms)
  }

  async setRegistrationLock(
    address: Uint8Array,
    deviceId: number,
    lock: port.RegistrationLock | null,
  ): Promise<boolean> {
    return this.#tx(async (c) => {
      const a = buf(address)
      const row = await this.#lockAccount(c, a)
      if (!accounts.isDevice(row, deviceId)) return false
      if (lock === null) {
        await c.query('DELETE FROM registration_locks WHERE address = $1', [a])
        return true
      }
      const s = await this.#sealer(c, a, row.key_id)
      await c.query(
        `INSERT INTO registration_locks (address, key_id, lock, set_at_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (address) DO UPDATE SET key_id = excluded.key_id, lock = excluded.lock,
           set_at_ms = excluded.set_at_ms`,
        [a, row.key_id, s.seal('registration_locks.lock', [], packLock(lock)), lock.setAtMs],
      )
      return true
    })
  }

  async touchAccount(address: Uint8Array, deviceId: number, nowMs: number): Promise<void> {
    this.#open()
    await this.#pool.query('UPDATE accounts SET last_active_ms = $1 WHERE address = $2 AND device_id = $3', [
      nowMs,
      buf(address),
      deviceId,
    ])
  }

  async setDeliveryVerifier(address: Uint8Array, deviceId: number, verifier: Uint8Array): Promise<boolean> {
    this.#open()
    const a = buf(address)
    const row = (
      await this.#pool.query<{ device_id: number; key_id: Buffer }>(
        'SELECT device_id, key_id FROM accounts WHERE address = $1',
        [a],
      )
    ).rows[0]
    if (!accounts.isDevice(row, deviceId)) return false
    const key = await this.#dataKey(this.#pool, a, row.key_id)
    if (!key) return false
    // One autocommitted write (durable before it resolves), locking only the account row: lock order holds.
    // It applies only while the key it was sealed under is still the account's.
    const r = await this.#pool.query(
      'UPDATE accounts SET delivery_verifier = $1 WHERE address = $2 AND device_id = $3 AND key_id = $4',
      [new Sealer(key, a).seal('accounts.delivery_verifier', [deviceId], verifier), a, deviceId, row.key_id],
    )
    return (r.rowCount ?? 0) > 0
  }

  async deleteAccount(address: Uint8Array): Promise<boolean> {
    let erased: Buffer | undefined
    const existed = await this.#tx(async (c) => {
      const a = buf(address)
      const row = await this.#lockAccount(c, a)
      erased = row?.key_id
      await this.#eraseLinked(c, a)
      await this.#eraseKeysAndMail(c, a)
      await c.query('DELETE FROM registration_locks WHERE address = $1', [a])
      await c.query('DELETE FROM retained_mail WHERE address = $1', [a])
      await this.#eraseDeviceRecords(c, a)
      await c.query('DELETE FROM address_forwards WHERE new_key = $1', [forwards.forwardToKey(address)])
      if (row) await this.#eraseKey(c, a, row.key_id)
      const r = await c.query('DELETE FROM accounts WHERE address = $1', [a])
      return (r.rowCount ?? 0) > 0
    })
    if (erased) this.#keys.forget(erased.toString('hex'))
    return existed
  }

  /**
   * Every sealed value is bound to its address, so the account cannot just be relabelled: in one transaction,
   * with the `from` account row locked first (the documented lock order), the account gets a fresh data key
   * wrapped for `to`, every value of it is opened under the old key and resealed under the new one for `to` as
   * its row moves there (the account row first, then its prekeys, its mail — every device's, retained mail too —
   * in bounded batches, its gap records, its retained-mail record and its registration lock), and the old data
   * key is erased — so the row versions PostgreSQL keeps of the account under `from` are ciphertext under a key
   * that exists nowhere, as after a deactivation. Other nodes drop the old key at commit (the erasure notice);
   * this node caches the new one, as a registration does.
   * `mailbox_bytes` counts plaintext and a reseal keeps every size, so the account row's counters move as they are.
   * A new number commitment is sealed in the moved row in place of the old one (under the new key, as the rest),
   * and a forward from `from` (store/forwards.ts) is written in the same transaction, replacing any forward kept
   * from `from` before.
   */
  async rebindAddress(
    from: Uint8Array,
    deviceId: number,
    to: Uint8Array,
    options: port.RebindOptions = {},
  ): Promise<port.RebindResult> {
    forwards.checkRebindOptions(options)
    const fresh = newDataKey()
    const key = dataKeyObject(fresh.raw)
    const outcome = await this.#tx(
      async (c): Promise<{ status: 'moved'; erased: Buffer } | { status: 'not_found' | 'taken' }> => {
        const a = buf(from)
        const b = buf(to)
        const row = await this.#lockAccount(c, a)
        if (!accounts.isDevice(row, deviceId)) return { status: 'not_found' }
        // Also when `to` is `from`: the address is held, by this very account. A registration of `to` racing
        // this one collides with it below (account_keys' or accounts' primary key, 23505): the transaction,
        // the clean-up of `to` included, rolls back whole, and the retry finds the new account here.
        if ((await c.query('SELECT 1 FROM accounts WHERE address = $1', [b])).rows.length > 0) {
          return { status: 'taken' }
        }
        const old = await this.#sealer(c, a, row.key_id)
        const s = new Sealer(key, b)
        // Rows under `to` of no account (none should exist: erasure takes them with the account) would collide
        // with the moved primary keys, or join the moved account; they go first.
        await this.#eraseLinked(c, b)
        await this.#eraseKeysAndMail(c, b)
        await c.query('DELETE FROM registration_locks WHERE address = $1', [b])
        await c.query('DELETE FROM retained_mail WHERE address = $1', [b])
        await this.#eraseDeviceRecords(c, b)
        await c.query('DELETE FROM account_keys WHERE address = $1', [b])
        await c.query('INSERT INTO account_keys (address, key_id, data_key) VALUES ($1, $2, $3)', [
          b,
          fresh.keyId,
          this.#wrap(b, fresh.keyId, fresh.raw),
        ])
        await this.#moveAccountRow(c, row, old, s, fresh.keyId, options.numberCommitment)
        await this.#moveOneTimePrekeys(c, old, s)
        await this.#resealMail(c, old, s)
        await c.query('UPDATE mailbox_gaps SET address = $1 WHERE address = $2', [b, a])
        await this.#moveRetained(c, old, s)
        await this.#moveRegistrationLock(c, a, s, fresh.keyId)
        await this.#moveLinkedDevices(c, old, s)
        // `to` is this account's now: a forward kept from it (an account that moved away, maybe this one) goes.
        await c.query('DELETE FROM address_forwards WHERE old_key = $1', [forwards.forwardFromKey(to)])
        if (options.forwardUntilMs !== undefined) {
          const f = forwards.forwardRow(from, to, options.forwardUntilMs)
          await c.query(
            `INSERT INTO address_forwards (old_key, new_key, target, expires_at_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (old_key) DO UPDATE SET new_key = excluded.new_key, target = excluded.target,
               expires_at_ms = excluded.expires_at_ms`,
            [f.old_key, f.new_key, f.target, f.expires_at_ms],
          )
        }
        await this.#eraseKey(c, a, row.key_id)
        return { status: 'moved', erased: row.key_id }
      },
    ).finally(() => fresh.raw.fill(0))
    if (outcome.status !== 'moved') return outcome.status
    this.#keys.forget(outcome.erased.toString('hex'))
    this.#keys.set(fresh.keyId, key)
    return 'moved'
  }

  /**
   * One read snapshot: each forward and whether its target has an account, as of one state (store/forwards.ts
   * decides; the rows are opaque to PostgreSQL).
   */
  async addressForward(from: Uint8Array, nowMs: number): Promise<Uint8Array | undefined> {
    return this.#read((c) =>
      forwards.followForwards(from, nowMs, {
        forward: async (fromKey) =>
          (
            await c.query<forwards.ForwardRow>(
              'SELECT old_key, new_key, target, expires_at_ms FROM address_forwards WHERE old_key = $1',
              [fromKey],
            )
          ).rows[0],
        hasAccount: async (address) =>
          (await c.query('SELECT 1 FROM accounts WHERE address = $1', [buf(address)])).rows.length > 0,
      }),
    )
  }

  /**
   * A rebind's account row: its sealed values opened under the old sealer and resealed under the new one (same
   * device and prekey ids), written with the new address and key id; `numberCommitment`, when given, in place of
   * the old commitment. Everything else (device id, prekey ids, mailbox head, count and bytes, creation and
   * activity times) moves as it is.
   */
  async #moveAccountRow(
    c: Tx,
    row: PgAccountRow,
    old: Sealer,
    s: Sealer,
    keyId: Buffer,
    numberCommitment?: Uint8Array,
  ): Promise<void> {
    const d = row.device_id
    const spk = [d, row.signed_prekey_id]
    const kem = [d, row.kem_prekey_id]
    const v = s.accountValues(d, {
      identityKey: old.open('accounts.identity_key', [d], row.identity_key),
      signedPrekey: {
        keyId: row.signed_prekey_id,
        publicKey: old.open('accounts.signed_prekey', spk, row.signed_prekey),
        signature: old.open('accounts.signed_prekey_sig', spk, row.signed_prekey_sig),
      },
      lastResortKemPrekey: {
        keyId: row.kem_prekey_id,
        publicKey: old.open('accounts.kem_prekey', kem, row.kem_prekey),
        signature: old.open('accounts.kem_prekey_sig', kem, row.kem_prekey_sig),
      },
      numberCommitment:
        numberCommitment ?? old.open('accounts.number_commitment', [d], row.number_commitment),
    })
    const verifier = old.open('accounts.delivery_verifier', [d], row.delivery_verifier)
    await c.query(
      `UPDATE accounts SET address = $1, key_id = $2, identity_key = $3, signed_prekey = $4, signed_prekey_sig = $5,
         kem_prekey = $6, kem_prekey_sig = $7, number_commitment = $8, delivery_verifier = $9
       WHERE address = $10`,
      [
        s.address,
        keyId,
        v.identityKey,
        v.signedPrekey,
        v.signedPrekeySig,
        v.kemPrekey,
        v.kemPrekeySig,
        v.numberCommitment,
        s.seal('accounts.delivery_verifier', [d], verifier),
        old.address,
      ],
    )
  }

  /**
   * A rebind's one-time X25519 and KEM prekeys, resealed for the new address in batches. Each batch moves its
   * rows away from the old address, so the next one simply takes the lowest ids still there.
   */
  async #moveOneTimePrekeys(c: Tx, old: Sealer, s: Sealer): Promise<void> {
    for (;;) {
      const rows = (
        await c.query<{ key_id: number; public_key: Buffer }>(
          'SELECT key_id, public_key FROM one_time_prekeys WHERE address = $1 ORDER BY key_id LIMIT $2',
          [old.address, REBIND_PREKEY_BATCH],
        )
      ).rows
      if (rows.length === 0) break
      await c.query(
        `UPDATE one_time_prekeys t SET address = $1, public_key = v.p
         FROM unnest($2::bigint[], $3::bytea[]) AS v(k, p)
         WHERE t.address = $4 AND t.key_id = v.k`,
        [
          s.address,
          rows.map((r) => r.key_id),
          rows.map((r) =>
            s.seal(
              'one_time_prekeys.public_key',
              [r.key_id],
              old.open('one_time_prekeys.public_key', [r.key_id], r.public_key),
            ),
          ),
          old.address,
        ],
      )
    }
    for (;;) {
      const rows = (
        await c.query<{ key_id: number; public_key: Buffer; signature: Buffer }>(
          'SELECT key_id, public_key, signature FROM kem_prekeys WHERE address = $1 ORDER BY key_id LIMIT $2',
          [old.address, REBIND_PREKEY_BATCH],
        )
      ).rows
      if (rows.length === 0) break
      const reseal = (column: string, keyId: number, value: Buffer) =>
        s.seal(column, [keyId], old.open(column, [keyId], value))
      await c.query(
        `UPDATE kem_prekeys t SET address = $1, public_key = v.p, signature = v.s
         FROM unnest($2::bigint[], $3::bytea[], $4::bytea[]) AS v(k, p, s)
         WHERE t.address = $5 AND t.key_id = v.k`,
        [
          s.address,
          rows.map((r) => r.key_id),
          rows.map((r) => reseal('kem_prekeys.public_key', r.key_id, r.public_key)),
          rows.map((r) => reseal('kem_prekeys.signature', r.key_id, r.signature)),
          old.address,
        ],
      )
    }
  }

  /**
   * Reseals mail from `old` (an address and its data key) to `s`, with the same sequence numbers and message ids:
   * for a rebind, every device's mail of the old address, moved to the new one with its device ids; for a
   * re-activation (same address, new key), the mail of device `device.from` only, which becomes device
   * `device.to`'s. In (device id, seq) order and in batches of {@link RESEAL_BATCH_ROWS} rows and
   * {@link RESEAL_BATCH_BYTES} bytes (sizes first, read from the value headers, then only the envelopes of the
   * batch), after a cursor, since rows resealed in place stay where they were. The account row is locked, so
   * nothing else writes this mail meanwhile. Resolves how many messages were resealed and their plaintext bytes.
   */
  async #resealMail(
    c: Tx,
    old: Sealer,
    s: Sealer,
    device?: { from: number; to: number },
  ): Promise<{ count: number; bytes: number }> {
    const where = `address = $1 AND (device_id, seq) > ($2, $3)${device ? ' AND device_id = $4' : ''}`
    const done = { count: 0, bytes: 0 }
    for (let after = [-1, -1]; ; ) {
      const params = [old.address, after[0], after[1], ...(device ? [device.from] : [])]
      const sizes = (
        await c.query<{ n: number }>(
          `SELECT octet_length(envelope) AS n FROM mailbox WHERE ${where}
           ORDER BY device_id, seq LIMIT ${RESEAL_BATCH_ROWS}`,
          params,
        )
      ).rows
      if (sizes.length === 0) break
      let count = 0
      for (let total = 0; count < sizes.length; count++) {
        total += sizes[count]!.n
        if (count > 0 && total > RESEAL_BATCH_BYTES) break
      }
      const rows = (
        await c.query<{ device_id: number; seq: number; message_id: Buffer; envelope: Buffer }>(
          `SELECT device_id, seq, message_id, envelope FROM mailbox WHERE ${where}
           ORDER BY device_id, seq LIMIT ${count}`,
          params,
        )
      ).rows
      const last = rows[rows.length - 1]
      if (!last) break
      after = [last.device_id, last.seq]
      const to = rows.map((r) => device?.to ?? r.device_id)
      await c.query(
        `UPDATE mailbox m SET address = $1, device_id = v.t, envelope = v.e
         FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[]) AS v(d, s, t, e)
         WHERE m.address = $6 AND m.device_id = v.d AND m.seq = v.s`,
        [
          s.address,
          rows.map((r) => r.device_id),
          rows.map((r) => r.seq),
          to,
          rows.map((r, i) => {
            const envelope = old.open('mailbox.envelope', [r.device_id, r.seq], r.envelope, r.message_id)
            done.bytes += envelope.length
            return s.seal('mailbox.envelope', [to[i]!, r.seq], envelope, r.message_id)
          }),
          old.address,
        ],
      )
      done.count += rows.length
    }
    return done
  }

  /**
   * A rebind's linked devices (their mail moved with the account's, by {@link PostgresStore.#resealMail}): each
   * row's device key and prekeys, their one-time prekeys in batches, and the device list, opened under the old
   * sealer and resealed under the new one for the new address (same device, key and version ids); the highest
   * device id and the rendezvous the account opened move as they are (nothing of them is sealed).
   */
  async #moveLinkedDevices(c: Tx, old: Sealer, s: Sealer): Promise<void> {
    const rows = (
      await c.query<PgLinkedRow>('SELECT * FROM linked_devices WHERE address = $1 ORDER BY device_id', [
        old.address,
      ])
    ).rows
    for (const r of rows) {
      const d = r.device_id
      const v = s.sealLinked(old.openLinked(r))
      await c.query(
        `UPDATE linked_devices SET address = $1, device_key = $2, signed_prekey = $3, signed_prekey_sig = $4,
           kem_prekey = $5, kem_prekey_sig = $6
         WHERE address = $7 AND device_id = $8`,
        [
          s.address,
          v.deviceKey,
          v.signedPrekey,
          v.signedPrekeySig,
          v.kemPrekey,
          v.kemPrekeySig,
          old.address,
          d,
        ],
      )
    }
    const reseal = (column: string, ids: number[], value: Buffer) =>
      s.seal(column, ids, old.open(column, ids, value))
    for (;;) {
      const batch = (
        await c.query<{ device_id: number; key_id: number; public_key: Buffer }>(
          `SELECT device_id, key_id, public_key FROM linked_one_time_prekeys WHERE address = $1
           ORDER BY device_id, key_id LIMIT $2`,
          [old.address, REBIND_PREKEY_BATCH],
        )
      ).rows
      if (batch.length === 0) break
      await c.query(
        `UPDATE linked_one_time_prekeys t SET address = $1, public_key = v.p
         FROM unnest($2::bigint[], $3::bigint[], $4::bytea[]) AS v(d, k, p)
         WHERE t.address = $5 AND t.device_id = v.d AND t.key_id = v.k`,
        [
          s.address,
          batch.map((r) => r.device_id),
          batch.map((r) => r.key_id),
          batch.map((r) =>
            reseal('linked_one_time_prekeys.public_key', [r.device_id, r.key_id], r.public_key),
          ),
          old.address,
        ],
      )
    }
    for (;;) {
      const batch = (
        await c.query<{ device_id: number; key_id: number; public_key: Buffer; signature: Buffer }>(
          `SELECT device_id, key_id, public_key, signature FROM linked_kem_prekeys WHERE address = $1
           ORDER BY device_id, key_id LIMIT $2`,
          [old.address, REBIND_PREKEY_BATCH],
        )
      ).rows
      if (batch.length === 0) break
      await c.query(
        `UPDATE linked_kem_prekeys t SET address = $1, public_key = v.p, signature = v.s
         FROM unnest($2::bigint[], $3::bigint[], $4::bytea[], $5::bytea[]) AS v(d, k, p, s)
         WHERE t.address = $6 AND t.device_id = v.d AND t.key_id = v.k`,
        [
          s.address,
          batch.map((r) => r.device_id),
          batch.map((r) => r.key_id),
          batch.map((r) => reseal('linked_kem_prekeys.public_key', [r.device_id, r.key_id], r.public_key)),
          batch.map((r) => reseal('linked_kem_prekeys.signature', [r.device_id, r.key_id], r.signature)),
          old.address,
        ],
      )
    }
    const list = (
      await c.query<{ version: number; list: Buffer }>(
        'SELECT version, list FROM device_lists WHERE address = $1',
        [old.address],
      )
    ).rows[0]
    if (list) {
      await c.query('UPDATE device_lists SET address = $1, list = $2 WHERE address = $3', [
        s.address,
        reseal('device_lists.list', [list.version], list.list),
        old.address,
      ])
    }
    await c.query('UPDATE device_id_high_water SET address = $1 WHERE address = $2', [s.address, old.address])
    await c.query('UPDATE rendezvous SET address = $1 WHERE address = $2', [s.address, old.address])
  }

  /**
   * A rebind's retained-mail record (Store.registerDevice), its identity key resealed for the new address under
   * the new key; its device id, head and time move as they are.
   */
  async #moveRetained(c: Tx, old: Sealer, s: Sealer): Promise<void> {
    const row = (
      await c.query<{ device_id: number; identity_key: Buffer }>(
        'SELECT device_id, identity_key FROM retained_mail WHERE address = $1',
        [old.address],
      )
    ).rows[0]
    if (!row) return
    const ids = [row.device_id]
    const identityKey = old.open('retained_mail.identity_key', ids, row.identity_key)
    await c.query('UPDATE retained_mail SET address = $1, identity_key = $2 WHERE address = $3', [
      s.address,
      s.seal('retained_mail.identity_key', ids, identityKey),
      old.address,
    ])
  }

  /**
   * A rebind's registration lock, resealed for the new address under the new key. One that no longer opens
   * (its key is gone: no read returns it now either) is dropped rather than moved.
   */
  async #moveRegistrationLock(c: Tx, from: Buffer, s: Sealer, keyId: Buffer): Promise<void> {
    const row = (
      await c.query<{ lock: Buffer; key_id: Buffer; set_at_ms: number }>(
        'SELECT lock, key_id, set_at_ms FROM registration_locks WHERE address = $1',
        [from],
      )
    ).rows[0]
    if (!row) return
    await c.query('DELETE FROM registration_locks WHERE address = $1', [from])
    const lockKey = await this.#dataKey(c, from, row.key_id)
    if (!lockKey) return
    const lock = new Sealer(lockKey, from).open('registration_locks.lock', [], row.lock)
    await c.query(
      'INSERT INTO registration_locks (address, key_id, lock, set_at_ms) VALUES ($1, $2, $3, $4)',
      [s.address, keyId, s.seal('registration_locks.lock', [], lock), row.set_at_ms],
    )
    lock.fill(0)
  }

  async addressesWithPrefix(prefix: Uint8Array, bits: number, limit: number): Promise<Uint8Array[]> {
    this.#open()
    const { lo, hi } = accounts.prefixRange(prefix, bits)
    const r = await this.#pool.query<{ address: Buffer }>(
      'SELECT address FROM accounts WHERE address >= $1 AND address <= $2 ORDER BY address LIMIT $3',
      [lo, hi, limit],
    )
    return r.rows.map((row) => u8(row.address))
  }

  async putPrekeys(
    address: Uint8Array,
    deviceId: number,
    keys: port.PrekeySet,
    maxStored: number,
  ): Promise<port.PutPrekeysResult> {
    return this.#tx(async (c): Promise<port.PutPrekeysResult> => {
      const a = buf(address)
      const row = await this.#lockAccount(c, a)
      if (!row) return { status: 'not_found' }
      if (!accounts.isDevice(row, deviceId)) return this.#putLinkedPrekeys(c, row, deviceId, keys, maxStored)
      const before = await this.#counts(c, a)
      if (accounts.exceedsPrekeyLimit(before, keys, maxStored))
        return { status: 'over_limit', counts: before }
      const s = await this.#sealer(c, a, row.key_id)
      if (keys.signedPrekey) await this.#replaceSignedKey(c, s, 'signed_prekey', deviceId, keys.signedPrekey)
      if (keys.lastResortKemPrekey) {
        await this.#replaceSignedKey(c, s, 'kem_prekey', deviceId, keys.lastResortKemPrekey)
      }
      await this.#putKeys(c, s, keys)
      return { status: 'stored', counts: await this.#counts(c, a) }
    })
  }

  /**
   * Store.putPrekeys for a linked device, its account row locked: its row next, then its one-time prekeys. Its
   * first upload completes its bundle, so it must carry both signed keys.
   */
  async #putLinkedPrekeys(
    c: Tx,
    account: PgAccountRow,
    deviceId: number,
    keys: port.PrekeySet,
    maxStored: number,
  ): Promise<port.PutPrekeysResult> {
    const a = account.address
    const device = await this.#linkedRow(c, a, deviceId, true)
    if (!device) return { status: 'not_found' }
    if (!devices.completesBundle(device, keys)) return { status: 'not_found' }
    const tables: PrekeyTables = { kind: 'linked', deviceId }
    const before = await this.#counts(c, a, tables)
    // Weighed as the primary's upload: every key uploaded counts, whether it replaces one or not.
    if (accounts.exceedsPrekeyLimit(before, keys, maxStored)) return { status: 'over_limit', counts: before }
    const s = await this.#sealer(c, a, account.key_id)
    for (const column of ['signed_prekey', 'kem_prekey'] as const) {
      const k = column === 'signed_prekey' ? keys.signedPrekey : keys.lastResortKemPrekey
      if (!k) continue
      const sealed = s.linkedSignedKey(column, deviceId, k)
      await c.query(
        `UPDATE linked_devices SET ${column}_id = $1, ${column} = $2, ${column}_sig = $3
         WHERE address = $4 AND device_id = $5`,
        [k.keyId, sealed.publicKey, sealed.signature, a, deviceId],
      )
    }
    await this.#putKeys(c, s, keys, tables)
    return { status: 'stored', counts: await this.#counts(c, a, tables) }
  }

  /**
   * Replaces the account's signed prekey (`signed_prekey`) or last-resort KEM prekey (`kem_prekey`): its id in
   * the clear, its public key and signature sealed under the account's key, bound to the device and key ids.
   */
  async #replaceSignedKey(
    c: Tx,
    s: Sealer,
    column: 'signed_prekey' | 'kem_prekey',
    deviceId: number,
    k: port.SignedKey,
  ): Promise<void> {
    const ids = [deviceId, k.keyId]
    await c.query(
      `UPDATE accounts SET ${column}_id = $1, ${column} = $2, ${column}_sig = $3 WHERE address = $4`,
      [
        k.keyId,
        s.seal(`accounts.${column}`, ids, k.publicKey),
        s.seal(`accounts.${column}_sig`, ids, k.signature),
        s.address,
      ],
    )
  }

  async takePrekeyBundle(address: Uint8Array, deviceId = 0): Promise<port.PrekeyBundle | null> {
    return this.#tx(async (c) => {
      const a = buf(address)
      // The account lock serialises takers on every node: no one-time key is handed out twice.
      const row = await this.#lockAccount(c, a)
      if (!row) return null
      if (deviceId !== 0 && deviceId !== row.device_id) return this.#takeLinkedBundle(c, row, deviceId)
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
      const s = await this.#sealer(c, a, row.key_id)
      const d = row.device_id
      const spk = [d, row.signed_prekey_id]
      const lastResort = [d, row.kem_prekey_id]
      return accounts.toPrekeyBundle(row, {
        identityKey: s.open('accounts.identity_key', [d], row.identity_key),
        signedPrekey: {
          keyId: row.signed_prekey_id,
          publicKey: s.open('accounts.signed_prekey', spk, row.signed_prekey),
          signature: s.open('accounts.signed_prekey_sig', spk, row.signed_prekey_sig),
        },
        oneTimeKemPrekey: kem && {
          keyId: kem.key_id,
          publicKey: s.open('kem_prekeys.public_key', [kem.key_id], kem.public_key),
          signature: s.open('kem_prekeys.signature', [kem.key_id], kem.signature),
        },
        oneTimePrekey: otpk && {
          keyId: otpk.key_id,
          publicKey: s.open('one_time_prekeys.public_key', [otpk.key_id], otpk.public_key),
        },
        // Opened only when it is the bundle's KEM prekey.
        lastResortKemPrekey: () => ({
          keyId: row.kem_prekey_id,
          publicKey: s.open('accounts.kem_prekey', lastResort, row.kem_prekey),
          signature: s.open('accounts.kem_prekey_sig', lastResort, row.kem_prekey_sig),
        }),
      })
    })
  }

  /**
   * Store.takePrekeyBundle for a linked device, its account row locked: null until the device uploaded its
   * signed prekeys; its device key is the bundle's identity key.
   */
  async #takeLinkedBundle(c: Tx, account: PgAccountRow, deviceId: number): Promise<port.PrekeyBundle | null> {
    const a = account.address
    const device = await this.#linkedRow(c, a, deviceId, true)
    if (!device) return null
    const s = await this.#sealer(c, a, account.key_id)
    const opened = s.openLinked(device)
    // Before its first upload the device has no bundle, and no one-time key of it is taken.
    const keys = devices.bundleKeys(opened)
    if (!keys) return null
    const otpk = (
      await c.query<{ key_id: number; public_key: Buffer }>(
        `DELETE FROM linked_one_time_prekeys WHERE address = $1 AND device_id = $2 AND key_id =
           (SELECT min(key_id) FROM linked_one_time_prekeys WHERE address = $1 AND device_id = $2)
         RETURNING key_id, public_key`,
        [a, deviceId],
      )
    ).rows[0]
    const kem = (
      await c.query<{ key_id: number; public_key: Buffer; signature: Buffer }>(
        `DELETE FROM linked_kem_prekeys WHERE address = $1 AND device_id = $2 AND key_id =
           (SELECT min(key_id) FROM linked_kem_prekeys WHERE address = $1 AND device_id = $2)
         RETURNING key_id, public_key, signature`,
        [a, deviceId],
      )
    ).rows[0]
    return accounts.toPrekeyBundle(device, {
      identityKey: u8(opened.device_key),
      signedPrekey: keys.signedPrekey,
      oneTimeKemPrekey: kem && {
        keyId: kem.key_id,
        publicKey: s.open('linked_kem_prekeys.public_key', [deviceId, kem.key_id], kem.public_key),
        signature: s.open('linked_kem_prekeys.signature', [deviceId, kem.key_id], kem.signature),
      },
      oneTimePrekey: otpk && {
        keyId: otpk.key_id,
        publicKey: s.open('linked_one_time_prekeys.public_key', [deviceId, otpk.key_id], otpk.public_key),
      },
      lastResortKemPrekey: () => keys.lastResortKemPrekey,
    })
  }

  async countPrekeys(address: Uint8Array, deviceId: number): Promise<port.PrekeyCounts> {
    this.#open()
    const a = buf(address)
    const r = await this.#pool.query<{ device_id: number; linked: boolean }>(
      `SELECT device_id, EXISTS (SELECT 1 FROM linked_devices l WHERE l.address = $1 AND l.device_id = $2) AS linked
       FROM accounts WHERE address = $1`,
      [a, Number.isSafeInteger(deviceId) && deviceId >= 0 ? deviceId : -1],
    )
    const row = r.rows[0]
    const linked = row?.linked === true
    if (accounts.isDevice(row, deviceId)) return this.#counts(this.#pool, a)
    if (linked) return this.#counts(this.#pool, a, { kind: 'linked', deviceId })
    return accounts.noPrekeys()
  }

  async enqueue(input: port.EnqueueInput): Promise<port.EnqueueResult> {
    return this.#tx(async (c): Promise<port.EnqueueResult> => {
      const a = buf(input.address)
      // The row lock is the per-device sequence allocator: every enqueue to this address, on any node, waits
      // here, then reads the committed head, count and bytes — and the id of the account's current data key.
      const row = (
        await c.query<mail.MailboxState & { key_id: Buffer }>(
          `SELECT device_id, mailbox_head_seq, mailbox_count, mailbox_bytes, key_id FROM accounts
           WHERE address = $1 FOR UPDATE`,
          [a],
        )
      ).rows[0]
      if (!row) return mail.enqueueRefusal(row)
      // The primary's mailbox state is in its account row; a linked device's in its own row, locked next.
      const primary = accounts.isDevice(row, input.deviceId)
      const box: mail.MailboxState | undefined = primary
        ? row
        : await this.#linkedRow(c, a, input.deviceId, true)
      if (!box) return mail.enqueueRefusal(row)
      const existing = (
        await c.query<{ seq: number }>(
          'SELECT seq FROM mailbox WHERE address = $1 AND device_id = $2 AND message_id = $3',
          [a, input.deviceId, buf(input.messageId)],
        )
      ).rows[0]
      if (existing) return { status: 'duplicate', seq: existing.seq }
      const place = mail.placeMessage(box, input)
      if (place.status === 'full') return place
      const { seq } = place
      // Usually cached: no key lookup per message. The id came from the row this transaction holds locked.
      const s = await this.#sealer(c, a, row.key_id)
      await c.query(
        `INSERT INTO mailbox (address, device_id, seq, message_id, envelope, received_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)`,
        [
          a,
          input.deviceId,
          seq,
          buf(input.messageId),
          s.seal('mailbox.envelope', [input.deviceId, seq], input.envelope, input.messageId),
          input.receivedAtMs,
        ],
      )
      if (primary) {
        await c.query(
          'UPDATE accounts SET mailbox_head_seq = $1, mailbox_count = $2, mailbox_bytes = $3 WHERE address = $4',
          [seq, place.count, place.bytes, a],
        )
      } else {
        await c.query(
          `UPDATE linked_devices SET mailbox_head_seq = $1, mailbox_count = $2, mailbox_bytes = $3
           WHERE address = $4 AND device_id = $5`,
          [seq, place.count, place.bytes, a, input.deviceId],
        )
      }
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
    // One snapshot for the head, the sizes, the page, the gaps and the data key, as SQLite's read transaction
    // gives.
    return this.#tx(async (c): Promise<port.MailboxPage> => {
      const a = buf(address)
      const row = (
        await c.query<{ device_id: number; mailbox_head_seq: number; key_id: Buffer }>(
          'SELECT device_id, mailbox_head_seq, key_id FROM accounts WHERE address = $1',
          [a],
        )
      ).rows[0]
      if (!row) return mail.emptyPage()
      // A linked device's head is in its own row, read in the same snapshot.
      const headSeq = accounts.isDevice(row, deviceId)
        ? row.mailbox_head_seq
        : (await this.#linkedRow(c, a, deviceId))?.mailbox_head_seq
      if (headSeq === undefined) return mail.emptyPage()
      // Sizes first (octet_length of a TOASTed bytea reads its header, not the value; a sealed envelope is its
      // plaintext plus SEAL_OVERHEAD bytes), then only the envelopes that fit: the page never loads more than
      // it returns.
      const sizes = (
        await c.query<{ seq: number; n: number }>(
          `SELECT seq, octet_length(envelope) - ${SEAL_OVERHEAD} AS n FROM mailbox
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
      let entries: port.MailboxPage['entries'] = []
      if (rows.length > 0) {
        const s = await this.#sealer(c, a, row.key_id)
        entries = rows.map((r) =>
          mail.toEntry(r, s.open('mailbox.envelope', [deviceId, r.seq], r.envelope, r.message_id)),
        )
      }
      const gaps = (
        await c.query<{ first_seq: number; last_seq: number; reason: port.GapKind }>(
          `SELECT first_seq, last_seq, reason FROM mailbox_gaps
           WHERE address = $1 AND device_id = $2 AND last_seq > $3 AND first_seq <= $4 ORDER BY first_seq`,
          [a, deviceId, afterSeq, mail.gapsUpTo(cut, headSeq)],
        )
      ).rows
      return { entries, gaps: mail.clipGaps(gaps, afterSeq), headSeq }
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
  }

  async mailboxHead(address: Uint8Array, deviceId: number): Promise<number> {
    this.#open()
    const a = buf(address)
    // One statement: the account's primary, or a linked device of it (never one left behind by an erasure).
    const r = await this.#pool.query<{
      device_id: number
      mailbox_head_seq: number
      linked_head: number | null
    }>(
      `SELECT a.device_id, a.mailbox_head_seq, l.mailbox_head_seq AS linked_head FROM accounts a
       LEFT JOIN linked_devices l ON l.address = a.address AND l.device_id = $2
       WHERE a.address = $1`,
      [a, Number.isSafeInteger(deviceId) && deviceId >= 0 ? deviceId : -1],
    )
    const row = r.rows[0]
    const linkedHead = row?.linked_head ?? 0
    return accounts.isDevice(row, deviceId) ? row.mailbox_head_seq : linkedHead
  }

  async ack(address: Uint8Array, deviceId: number, seqs: number[]): Promise<number> {
    const unique = mail.ackedSeqs(seqs)
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
             RETURNING octet_length(envelope) - ${SEAL_OVERHEAD} AS size
           )
           SELECT count(*) AS n, coalesce(sum(size), 0)::bigint AS bytes FROM gone`,
          [a, deviceId, unique],
        )
      ).rows[0]!
      if (n > 0) await this.#lowerCounters(c, a, deviceId, n, bytes)
      return n
    })
  }

  /**
   * Takes `n` messages of `bytes` plaintext bytes off the counters of device `deviceId` of an address: the account
   * row's when it is the primary, else its linked device row's (neither, for mail retained for a replaced device:
   * its mail is counted nowhere). The account row is locked.
   */
  async #lowerCounters(c: Tx, address: Buffer, deviceId: number, n: number, bytes: number): Promise<void> {
    const primary = await c.query(
      `UPDATE accounts SET mailbox_count = GREATEST(0, mailbox_count - $1),
         mailbox_bytes = GREATEST(0, mailbox_bytes - $2) WHERE address = $3 AND device_id = $4`,
      [n, bytes, address, deviceId],
    )
    if ((primary.rowCount ?? 0) > 0) return
    await c.query(
      `UPDATE linked_devices SET mailbox_count = GREATEST(0, mailbox_count - $1),
         mailbox_bytes = GREATEST(0, mailbox_bytes - $2) WHERE address = $3 AND device_id = $4`,
      [n, bytes, address, deviceId],
    )
  }

  async expire(cutoffMs: number, nowMs = Date.now()): Promise<number> {
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
             ORDER BY address, device_id, seq LIMIT ${mail.EXPIRE_BATCH_ROWS}`,
            [cutoffMs],
          )
        ).rows
        const now = Date.now()
        let deleted = 0
        // Groups come in address order, so concurrent sweepers take account locks in the same order.
        for (const g of mail.groupByDevice(rows)) {
          await this.#lockAccount(c, g.address)
          const removed = (
            await c.query<{ seq: number; size: number }>(
              `DELETE FROM mailbox WHERE address = $1 AND device_id = $2 AND seq = ANY($3::bigint[])
               AND received_at_ms < $4 RETURNING seq, octet_length(envelope) - ${SEAL_OVERHEAD} AS size`,
              [g.address, g.deviceId, g.rows.map((r) => r.seq), cutoffMs],
            )
          ).rows
          const gone = removed.map((r) => r.seq).sort((x, y) => x - y)
          if (gone.length === 0) continue
          await this.#recordExpired(c, g.address, g.deviceId, gone, now)
          // By device too: a retained device's mail expiring must not lower the current device's counters.
          const bytes = removed.reduce((sum, r) => sum + r.size, 0)
          await this.#lowerCounters(c, g.address, g.deviceId, gone.length, bytes)
          deleted += gone.length
        }
        return { scanned: rows.length, n: deleted }
      })
      total += n
      if (scanned < mail.EXPIRE_BATCH_ROWS) break
    }
    await this.#pool.query('DELETE FROM mailbox_gaps WHERE recorded_at_ms < $1', [cutoffMs])
    // Mail retained before the cutoff was received before it too, and has just expired: its record goes.
    await this.#pool.query('DELETE FROM retained_mail WHERE retained_at_ms < $1', [cutoffMs])
    // A rendezvous is unusable from its expiry on (Store.postRendezvous): it goes, with what was posted to it.
    await this.#pool.query('DELETE FROM rendezvous WHERE expires_at_ms <= $1', [nowMs])
    // A forward holds through its end (store/forwards.ts), and goes once that has passed.
    await this.#pool.query('DELETE FROM address_forwards WHERE expires_at_ms < $1', [nowMs])
    return total
  }

  /**
   * Writes a whole store read elsewhere (`parley-relay migrate` from SQLite) into this empty one, in one
   * transaction: every account with the same address, device id, keys, prekeys, mailbox head and counters, mail
   * (same seqs and message ids), gap records, registration lock, retained mail and (when the snapshot carries
   * them) linked devices, device list and highest device id, so that its devices log in
   * and read on without activating again; the bans and revoked devices; and the address forwards (when the
   * snapshot carries them), copied as they are. Each account gets a fresh data key
   * and its values are sealed under it, as this store writes them.
   * @param snapshot - the source, read in one consistent transaction
   * @returns how many accounts and mail rows were written
   * @throws Error when this store holds any account, ban or revocation already (nothing is written)
   */
  async importSnapshot(snapshot: StoreSnapshot): Promise<{ accounts: number; messages: number }> {
    return this.#tx(async (c) => {
      // Whatever else runs on this database waits until the import commits.
      await c.query('LOCK TABLE accounts, account_bans, revoked_devices, address_forwards IN EXCLUSIVE MODE')
      const held = (
        await c.query<{ n: number }>(
          `SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM account_bans)
             + (SELECT count(*) FROM revoked_devices) + (SELECT count(*) FROM mailbox)
             + (SELECT count(*) FROM address_forwards) AS n`,
        )
      ).rows[0]!.n
      if (Number(held) > 0) {
        throw new Error('the target PostgreSQL store is not empty: migrate into a new database or schema')
      }
      let accounts = 0
      let messages = 0
      for (const a of snapshot.accounts()) {
        messages += await this.#importAccount(c, a)
        accounts++
      }
      for (const b of snapshot.bans) {
        await c.query('INSERT INTO account_bans (address, banned_at_ms) VALUES ($1, $2)', [
          buf(b.address),
          b.bannedAtMs,
        ])
      }
      for (const r of snapshot.revoked) {
        await c.query('INSERT INTO revoked_devices (address, device_id, revoked_at_ms) VALUES ($1, $2, $3)', [
          buf(r.address),
          r.deviceId,
          r.revokedAtMs,
        ])
      }
      // Opaque rows, copied as they are: their targets are sealed under keys derived from the old addresses.
      for (const f of snapshot.forwards ?? []) {
        await c.query(
          'INSERT INTO address_forwards (old_key, new_key, target, expires_at_ms) VALUES ($1, $2, $3, $4)',
          [buf(f.fromKey), buf(f.toKey), buf(f.target), f.expiresAtMs],
        )
      }
      return { accounts, messages }
    })
  }

  /** One account of {@link importSnapshot}, sealed under a fresh data key; resolves how many mail rows it had. */
  async #importAccount(c: Tx, a: AccountSnapshot): Promise<number> {
    const address = buf(a.address)
    const fresh = newDataKey()
    try {
      const s = new Sealer(dataKeyObject(fresh.raw), address)
      await c.query('INSERT INTO account_keys (address, key_id, data_key) VALUES ($1, $2, $3)', [
        address,
        fresh.keyId,
        this.#wrap(address, fresh.keyId, fresh.raw),
      ])
      await insertAccount(c, s, a.deviceId, a, {
        mailbox: { headSeq: a.mailboxHeadSeq, count: a.mailboxCount, bytes: a.mailboxBytes },
        createdAtMs: a.createdAtMs,
        lastActiveMs: a.lastActiveMs,
        deliveryVerifier: a.deliveryVerifier,
        keyId: fresh.keyId,
      })
      await this.#putKeys(c, s, a)
      let messages = 0
      for (const rows of a.mail()) {
        await c.query(
          `INSERT INTO mailbox (address, device_id, seq, message_id, envelope, received_at_ms)
           SELECT $1, d, q, m, e, t FROM unnest($2::bigint[], $3::bigint[], $4::bytea[], $5::bytea[], $6::bigint[])
             AS v(d, q, m, e, t)`,
          [
            address,
            rows.map((r) => r.deviceId),
            rows.map((r) => r.seq),
            rows.map((r) => buf(r.messageId)),
            rows.map((r) => s.seal('mailbox.envelope', [r.deviceId, r.seq], r.envelope, r.messageId)),
            rows.map((r) => r.receivedAtMs),
          ],
        )
        messages += rows.length
      }
      for (const g of a.gaps) {
        await c.query(
          `INSERT INTO mailbox_gaps (address, device_id, first_seq, last_seq, reason, recorded_at_ms)
           VALUES ($1, $2, $3, $4, $5, $6)`,
          [address, g.deviceId, g.firstSeq, g.lastSeq, g.reason, g.recordedAtMs],
        )
      }
      if (a.lock) {
        await c.query(
          'INSERT INTO registration_locks (address, key_id, lock, set_at_ms) VALUES ($1, $2, $3, $4)',
          [address, fresh.keyId, s.seal('registration_locks.lock', [], packLock(a.lock)), a.lock.setAtMs],
        )
      }
      await this.#importDevices(c, s, a)
      if (a.retained) {
        const r = a.retained
        await c.query(
          `INSERT INTO retained_mail (address, device_id, identity_key, head_seq, retained_at_ms)
           VALUES ($1, $2, $3, $4, $5)`,
          [
            address,
            r.deviceId,
            s.seal('retained_mail.identity_key', [r.deviceId], r.identityKey),
            r.headSeq,
            r.retainedAtMs,
          ],
        )
      }
      return messages
    } finally {
      fresh.raw.fill(0)
    }
  }

  // ── Linked devices (docs/architecture.md §9) ──

  /** A read of several statements in one snapshot (the account row, its devices and its data key agree). */
  #read<T>(fn: (c: Tx) => Promise<T>): Promise<T> {
    return this.#tx(fn, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
  }

  /** The account row's device id and data key id, or undefined when the address has no account. */
  async #accountKey(c: Tx, address: Buffer): Promise<{ device_id: number; key_id: Buffer } | undefined> {
    const r = await c.query<{ device_id: number; key_id: Buffer }>(
      'SELECT device_id, key_id FROM accounts WHERE address = $1',
      [address],
    )
    return r.rows[0]
  }

  /** The linked devices of an account, by id, with their device keys opened by `s`. */
  async #linkedKeys(c: Tx, s: Sealer): Promise<port.LinkedDevice[]> {
    const rows = (
      await c.query<{ device_id: number; device_key: Buffer; created_at_ms: number }>(
        'SELECT device_id, device_key, created_at_ms FROM linked_devices WHERE address = $1 ORDER BY device_id',
        [s.address],
      )
    ).rows
    return rows.map((r) =>
      devices.toLinkedDevice({
        ...r,
        device_key: buf(s.open('linked_devices.device_key', [r.device_id], r.device_key)),
      }),
    )
  }

  async getDevice(address: Uint8Array, deviceId: number): Promise<port.DeviceRecord | null> {
    return this.#read(async (c) => {
      const a = buf(address)
      const row = (
        await c.query<{ device_id: number; identity_key: Buffer; key_id: Buffer }>(
          'SELECT device_id, identity_key, key_id FROM accounts WHERE address = $1',
          [a],
        )
      ).rows[0]
      if (!row) return null
      const s = await this.#sealer(c, a, row.key_id)
      if (accounts.isDevice(row, deviceId))
        return { deviceId, key: s.open('accounts.identity_key', [deviceId], row.identity_key), primary: true }
      const device = await this.#linkedRow(c, a, deviceId)
      if (!device) return null
      return {
        deviceId,
        key: s.open('linked_devices.device_key', [deviceId], device.device_key),
        primary: false,
      }
    })
  }

  async deviceSet(address: Uint8Array): Promise<port.DeviceSet | null> {
    this.#open()
    // One statement, so the primary, its linked devices and the list version are of one snapshot; nothing sealed.
    const row = (
      await this.#pool.query<{ device_id: number; linked: number[] | null; version: number | null }>(
        `SELECT a.device_id,
           (SELECT array_agg(l.device_id ORDER BY l.device_id) FROM linked_devices l WHERE l.address = a.address)
             AS linked,
           (SELECT d.version FROM device_lists d WHERE d.address = a.address) AS version
         FROM accounts a WHERE a.address = $1`,
        [buf(address)],
      )
    ).rows[0]
    if (!row) return null
    // array_agg of BIGINT reads as strings (pg parses int8[] elements apart from int8).
    return devices.toDeviceSet(row.device_id, (row.linked ?? []).map(Number), row.version ?? 0)
  }

  async linkedDevices(address: Uint8Array): Promise<port.LinkedDevice[]> {
    return this.#read(async (c) => {
      const a = buf(address)
      const row = await this.#accountKey(c, a)
      if (!row) return []
      return this.#linkedKeys(c, await this.#sealer(c, a, row.key_id))
    })
  }

  async getDeviceList(address: Uint8Array): Promise<port.StoredDeviceList | null> {
    return this.#read(async (c) => {
      const a = buf(address)
      const row = await this.#accountKey(c, a)
      if (!row) return null
      const list = (
        await c.query<{ version: number; list: Buffer }>(
          'SELECT version, list FROM device_lists WHERE address = $1',
          [a],
        )
      ).rows[0]
      if (!list) return null
      const s = await this.#sealer(c, a, row.key_id)
      return { version: list.version, list: s.open('device_lists.list', [list.version], list.list) }
    })
  }

  /**
   * One transaction, the account row locked first (as by every write to its linked devices): the current
   * devices and list are read and opened, {@link devices.planDeviceList} decides (as in SQLite), and the plan is
   * written — the list sealed under the account's key (it names device keys) and bound to its version, the new
   * devices' keys sealed, the removed devices erased, the high-water mark raised.
   */
  async putDeviceList(input: port.PutDeviceListInput): Promise<port.PutDeviceListResult> {
    return this.#tx(async (c): Promise<port.PutDeviceListResult> => {
      const a = buf(input.address)
      const row = await this.#lockAccount(c, a)
      if (!row) return { status: 'not_found' }
      // The account row lock is enough: every write to its linked devices takes it first.
      const s = await this.#sealer(c, a, row.key_id)
      const version = (
        await c.query<{ version: number }>('SELECT version FROM device_lists WHERE address = $1', [a])
      ).rows[0]?.version
      const plan = devices.planDeviceList(
        {
          primaryDeviceId: row.device_id,
          version: version ?? 0,
          highestDeviceId: devices.highestDeviceId({
            device_id: row.device_id,
            max_device_id: await this.#highWater(c, a),
          }),
          linked: (await this.#linkedKeys(c, s)).map((d) => ({
            device_id: d.deviceId,
            device_key: buf(d.deviceKey),
          })),
        },
        input,
      )
      if (plan.status !== 'stored') return plan
      await this.#eraseLinked(c, a, plan.removed)
      if (plan.added.length > 0) {
        await c.query(
          `INSERT INTO linked_devices (address, device_id, device_key, created_at_ms)
           SELECT $1, d, k, $4 FROM unnest($2::bigint[], $3::bytea[]) AS v(d, k)`,
          [
            a,
            plan.added.map((d) => d.deviceId),
            plan.added.map((d) => s.seal('linked_devices.device_key', [d.deviceId], d.deviceKey)),
            input.nowMs,
          ],
        )
      }
      await c.query(
        `INSERT INTO device_id_high_water (address, device_id) VALUES ($1, $2)
         ON CONFLICT (address) DO UPDATE SET device_id = GREATEST(device_id_high_water.device_id, excluded.device_id)`,
        [a, plan.highestDeviceId],
      )
      await c.query(
        `INSERT INTO device_lists (address, version, list) VALUES ($1, $2, $3)
         ON CONFLICT (address) DO UPDATE SET version = excluded.version, list = excluded.list`,
        [a, input.version, s.seal('device_lists.list', [input.version], input.list)],
      )
      return { status: 'stored', added: plan.added.map((d) => d.deviceId), removed: plan.removed }
    })
  }

  async openRendezvous(id: Uint8Array, address: Uint8Array, expiresAtMs: number): Promise<boolean> {
    this.#open()
    const r = await this.#pool.query(
      `INSERT INTO rendezvous (id, address, expires_at_ms) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
      [buf(id), buf(address), expiresAtMs],
    )
    return (r.rowCount ?? 0) > 0
  }

  /**
   * The message is stored as it is, not sealed under the opener's data key: it is already ciphertext
   * (ChaCha20-Poly1305 under a key derived from the link secret, which travels in the link code from screen to
   * screen and never reaches the relay, docs/architecture.md §9.3), so the relay holds nothing it could read, and
   * the `primary` side is posted by a device that has no account, before the relay could bind it to one. It lives
   * ten minutes: read once (the `device` side), swept by Store.expire, or erased with the opener's account.
   */
  async postRendezvous(
    id: Uint8Array,
    side: port.RendezvousSide,
    message: Uint8Array,
    address: Uint8Array | null,
    nowMs: number,
  ): Promise<port.RendezvousPostResult> {
    const column = side === 'primary' ? 'to_primary' : 'to_device'
    return this.#tx(async (c): Promise<port.RendezvousPostResult> => {
      const r = (
        await c.query<devices.RendezvousRow>(
          `SELECT address, expires_at_ms, to_primary IS NOT NULL AS has_primary, to_device IS NOT NULL AS has_device
           FROM rendezvous WHERE id = $1 FOR UPDATE`,
          [buf(id)],
        )
      ).rows[0]
      const outcome = devices.rendezvousPost(r, side, address, nowMs)
      if (outcome !== 'posted') return outcome
      await c.query(`UPDATE rendezvous SET ${column} = $1 WHERE id = $2`, [buf(message), buf(id)])
      return 'posted'
    })
  }

  async readRendezvous(
    id: Uint8Array,
    side: port.RendezvousSide,
    address: Uint8Array | null,
    nowMs: number,
  ): Promise<Uint8Array | null> {
    this.#open()
    if (side === 'device') {
      // Its one use is over once read: taken and erased in one statement, so two readers cannot both get it.
      const r = await this.#pool.query<{ to_device: Buffer }>(
        `DELETE FROM rendezvous WHERE id = $1 AND expires_at_ms > $2 AND to_device IS NOT NULL
         RETURNING to_device`,
        [buf(id), nowMs],
      )
      return r.rows[0] ? u8(r.rows[0].to_device) : null
    }
    const r = (
      await this.#pool.query<{ address: Buffer; expires_at_ms: number; to_primary: Buffer | null }>(
        'SELECT address, expires_at_ms, to_primary FROM rendezvous WHERE id = $1',
        [buf(id)],
      )
    ).rows[0]
    if (!r || devices.rendezvousExpired(r, nowMs)) return null
    if (!devices.isOpener(r.address, address) || r.to_primary === null) return null
    return u8(r.to_primary)
  }

  /**
   * One account's linked devices, device list and highest device id of {@link importSnapshot} (its mail came with
   * the account's), sealed by `s` as this store writes them.
   */
  async #importDevices(c: Tx, s: Sealer, a: AccountSnapshot): Promise<void> {
    for (const d of a.linked ?? []) {
      const v = s.sealLinked({
        device_id: d.deviceId,
        device_key: buf(d.deviceKey),
        signed_prekey_id: d.signedPrekey?.keyId ?? null,
        signed_prekey: d.signedPrekey ? buf(d.signedPrekey.publicKey) : null,
        signed_prekey_sig: d.signedPrekey ? buf(d.signedPrekey.signature) : null,
        kem_prekey_id: d.lastResortKemPrekey?.keyId ?? null,
        kem_prekey: d.lastResortKemPrekey ? buf(d.lastResortKemPrekey.publicKey) : null,
        kem_prekey_sig: d.lastResortKemPrekey ? buf(d.lastResortKemPrekey.signature) : null,
      })
      await c.query(
        `INSERT INTO linked_devices (address, device_id, device_key, signed_prekey_id, signed_prekey,
           signed_prekey_sig, kem_prekey_id, kem_prekey, kem_prekey_sig, mailbox_head_seq, mailbox_count,
           mailbox_bytes, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
        [
          s.address,
          d.deviceId,
          v.deviceKey,
          d.signedPrekey?.keyId ?? null,
          v.signedPrekey,
          v.signedPrekeySig,
          d.lastResortKemPrekey?.keyId ?? null,
          v.kemPrekey,
          v.kemPrekeySig,
          d.mailboxHeadSeq,
          d.mailboxCount,
          d.mailboxBytes,
          d.createdAtMs,
        ],
      )
      await this.#putKeys(c, s, d, { kind: 'linked', deviceId: d.deviceId })
    }
    if (a.deviceList) {
      await c.query('INSERT INTO device_lists (address, version, list) VALUES ($1, $2, $3)', [
        s.address,
        a.deviceList.version,
        s.seal('device_lists.list', [a.deviceList.version], a.deviceList.list),
      ])
    }
    if (a.highestDeviceId != null) {
      await c.query('INSERT INTO device_id_high_water (address, device_id) VALUES ($1, $2)', [
        s.address,
        a.highestDeviceId,
      ])
    }
  }

  async listAccounts(after: Uint8Array | null, limit: number): Promise<port.AccountSummary[]> {
    this.#open()
    const { rows } = await this.#pool.query<SummaryRow>(
      `${SUMMARY_QUERY} WHERE a.address > $1 ORDER BY a.address LIMIT $2`,
      [after ? buf(after) : Buffer.alloc(0), limit],
    )
    return rows.map(toSummary)
  }

  async accountSummary(address: Uint8Array): Promise<port.AccountSummary | null> {
    this.#open()
    const { rows } = await this.#pool.query<SummaryRow>(`${SUMMARY_QUERY} WHERE a.address = $1`, [
      buf(address),
    ])
    return rows[0] ? toSummary(rows[0]) : null
  }

  async setBanned(address: Uint8Array, banned: boolean, nowMs: number): Promise<boolean> {
    const a = buf(address)
    return this.#tx(async (c) => {
      if (!banned)
        return ((await c.query('DELETE FROM account_bans WHERE address = $1', [a])).rowCount ?? 0) > 0
      const added = await c.query(
        'INSERT INTO account_bans (address, banned_at_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING',
        [a, nowMs],
      )
      await this.#recordAction(c, a, 0, nowMs)
      return (added.rowCount ?? 0) > 0
    })
  }

  async revokeDevice(address: Uint8Array, deviceId: number, nowMs: number): Promise<boolean> {
    const a = buf(address)
    return this.#tx(async (c) => {
      if (!accounts.isDevice(await this.#lockAccount(c, a), deviceId)) return false
      await c.query(
        `INSERT INTO revoked_devices (address, device_id, revoked_at_ms) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING`,
        [a, deviceId, nowMs],
      )
      await this.#recordAction(c, a, deviceId, nowMs)
      return true
    })
  }

  /**
   * Records an operator action, and drops what no relay needs any more: actions older than a day, and
   * revocations of devices that are no longer registered (replaced, or erased with their account).
   */
  async #recordAction(c: Tx, address: Buffer, deviceId: number, nowMs: number): Promise<void> {
    await c.query('INSERT INTO operator_actions (address, device_id, at_ms) VALUES ($1, $2, $3)', [
      address,
      deviceId,
      nowMs,
    ])
    await c.query('DELETE FROM operator_actions WHERE at_ms < $1', [nowMs - ACTION_RETENTION_MS])
    await c.query(`DELETE FROM revoked_devices r WHERE NOT EXISTS (SELECT 1 FROM accounts a
      WHERE a.address = r.address AND a.device_id = r.device_id)`)
  }

  async operatorHold(address: Uint8Array, deviceId: number): Promise<port.OperatorHold> {
    this.#open()
    const a = buf(address)
    const { rows } = await this.#pool.query<{ banned: boolean; revoked: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM account_bans WHERE address = $1) AS banned,
        EXISTS (SELECT 1 FROM revoked_devices WHERE address = $1 AND device_id = $2) AS revoked`,
      [a, deviceId],
    )
    return rows[0]!.banned ? 'banned' : rows[0]!.revoked ? 'revoked' : null
  }

  /**
   * As the port says. A BIGSERIAL seq is taken at insert, not commit, so two actions committing out of order
   * could let a poller skip the earlier one; actions are rare and the skipped device still fails its next
   * authentication.
   */
  async operatorActions(afterSeq: number, sinceMs: number, limit: number): Promise<port.OperatorAction[]> {
    this.#open()
    const { rows } = await this.#pool.query<{
      seq: number
      address: Buffer
      device_id: number
      at_ms: number
    }>(
      `SELECT seq, address, device_id, at_ms FROM operator_actions WHERE seq > $1 AND at_ms >= $2
       ORDER BY seq LIMIT $3`,
      [afterSeq, sinceMs, limit],
    )
    return rows.map((r) => ({ seq: r.seq, address: u8(r.address), deviceId: r.device_id, atMs: r.at_ms }))
  }
}

/**
 * Migration 4's rewrite: gives every account a data key and seals, under it, every value stored in the clear
 * before (accounts, prekeys, mail), in bounded batches in primary-key order, inside the migration's transaction.
 */
async function sealPlaintextRows(c: Tx, ctx: MigrationContext): Promise<void> {
  type V3Row = Omit<AccountRow, 'mailbox_head_seq' | 'mailbox_count' | 'mailbox_bytes' | 'created_at_ms'>
  const empty = new Uint8Array(0)
  for (let after: Buffer = Buffer.alloc(0); ; ) {
    const rows = (
      await c.query<V3Row>(
        `SELECT address, device_id, identity_key, signed_prekey_id, signed_prekey, signed_prekey_sig,
           kem_prekey_id, kem_prekey, kem_prekey_sig, number_commitment, delivery_verifier
         FROM accounts WHERE address > $1 ORDER BY address LIMIT 500`,
        [after],
      )
    ).rows
    if (rows.length === 0) break
    after = rows[rows.length - 1]!.address
    const keyRows = rows.map((r) => {
      const fresh = newDataKey()
      const s = new Sealer(dataKeyObject(fresh.raw), r.address)
      const wrapped = ctx.wrap(r.address, fresh.keyId, fresh.raw)
      fresh.raw.fill(0)
      const v = s.accountValues(r.device_id, {
        identityKey: r.identity_key,
        signedPrekey: {
          keyId: r.signed_prekey_id,
          publicKey: r.signed_prekey,
          signature: r.signed_prekey_sig,
        },
        lastResortKemPrekey: { keyId: r.kem_prekey_id, publicKey: r.kem_prekey, signature: r.kem_prekey_sig },
        numberCommitment: r.number_commitment ?? empty,
      })
      const verifier = s.seal('accounts.delivery_verifier', [r.device_id], r.delivery_verifier ?? empty)
      return { address: r.address, keyId: fresh.keyId, wrapped, v, verifier }
    })
    await c.query(
      `INSERT INTO account_keys (address, key_id, data_key)
       SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[])`,
      [keyRows.map((k) => k.address), keyRows.map((k) => k.keyId), keyRows.map((k) => k.wrapped)],
    )
    await c.query(
      `UPDATE accounts a SET key_id = v.k, identity_key = v.ik, signed_prekey = v.spk, signed_prekey_sig = v.spks,
         kem_prekey = v.kem, kem_prekey_sig = v.kems, number_commitment = v.nc, delivery_verifier = v.dv
       FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[], $7::bytea[],
         $8::bytea[], $9::bytea[]) AS v(a, k, ik, spk, spks, kem, kems, nc, dv)
       WHERE a.address = v.a`,
      [
        keyRows.map((k) => k.address),
        keyRows.map((k) => k.keyId),
        keyRows.map((k) => k.v.identityKey),
        keyRows.map((k) => k.v.signedPrekey),
        keyRows.map((k) => k.v.signedPrekeySig),
        keyRows.map((k) => k.v.kemPrekey),
        keyRows.map((k) => k.v.kemPrekeySig),
        keyRows.map((k) => k.v.numberCommitment),
        keyRows.map((k) => k.verifier),
      ],
    )
  }

  /** The data keys of the accounts a batch of child rows belongs to. */
  const sealersFor = async (addresses: Buffer[]): Promise<Map<string, Sealer>> => {
    const keys = (
      await c.query<{ address: Buffer; key_id: Buffer; data_key: Buffer }>(
        'SELECT address, key_id, data_key FROM account_keys WHERE address = ANY($1::bytea[])',
        [addresses],
      )
    ).rows
    return new Map(
      keys.map((k) => [
        k.address.toString('hex'),
        new Sealer(ctx.unwrap(k.address, k.key_id, k.data_key), k.address),
      ]),
    )
  }
  const sealerOf = (sealers: Map<string, Sealer>, address: Buffer): Sealer =>
    sealers.get(address.toString('hex'))!
  // Rows whose account is gone cannot be read through the store (none are written by it: erasure deletes them
  // with the account); they would stay in the clear, so they go. Every row left has an account, and a key.
  for (const table of ['one_time_prekeys', 'kem_prekeys', 'mailbox', 'mailbox_gaps']) {
    await c.query(
      `DELETE FROM ${table} t WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.address = t.address)`,
    )
  }

  /**
   * Seals one child table in primary-key order, 1,000 rows at a time: `select` reads the batch after a key
   * (`start`, then `keyOf` the last row read), `update` writes it back with each row sealed by `sealerFor`.
   */
  const sealTable = async <R extends { address: Buffer }>(
    start: unknown[],
    select: (after: unknown[]) => Promise<R[]>,
    keyOf: (row: R) => unknown[],
    update: (rows: R[], sealerFor: (row: R) => Sealer) => Promise<unknown>,
  ): Promise<void> => {
    for (let after = start; ; ) {
      const rows = await select(after)
      if (rows.length === 0) return
      after = keyOf(rows[rows.length - 1]!)
      const sealers = await sealersFor([...new Set(rows.map((r) => r.address))])
      await update(rows, (r) => sealerOf(sealers, r.address))
    }
  }
  const rowsOf = async <R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<R[]> =>
    (await c.query<R>(sql, params)).rows

  // One-time prekeys, then KEM prekeys, then mail.
  await sealTable(
    [Buffer.alloc(0), -1],
    (after) =>
      rowsOf<{ address: Buffer; key_id: number; public_key: Buffer }>(
        `SELECT address, key_id, public_key FROM one_time_prekeys WHERE (address, key_id) > ($1, $2)
         ORDER BY address, key_id LIMIT 1000`,
        after,
      ),
    (r) => [r.address, r.key_id],
    (rows, sealerFor) =>
      c.query(
        `UPDATE one_time_prekeys t SET public_key = v.p FROM unnest($1::bytea[], $2::bigint[], $3::bytea[]) AS v(a, k, p)
       WHERE t.address = v.a AND t.key_id = v.k`,
        [
          rows.map((r) => r.address),
          rows.map((r) => r.key_id),
          rows.map((r) => sealerFor(r).seal('one_time_prekeys.public_key', [r.key_id], r.public_key)),
        ],
      ),
  )
  await sealTable(
    [Buffer.alloc(0), -1],
    (after) =>
      rowsOf<{ address: Buffer; key_id: number; public_key: Buffer; signature: Buffer }>(
        `SELECT address, key_id, public_key, signature FROM kem_prekeys WHERE (address, key_id) > ($1, $2)
         ORDER BY address, key_id LIMIT 1000`,
        after,
      ),
    (r) => [r.address, r.key_id],
    (rows, sealerFor) =>
      c.query(
        `UPDATE kem_prekeys t SET public_key = v.p, signature = v.s
       FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bytea[]) AS v(a, k, p, s)
       WHERE t.address = v.a AND t.key_id = v.k`,
        [
          rows.map((r) => r.address),
          rows.map((r) => r.key_id),
          rows.map((r) => sealerFor(r).seal('kem_prekeys.public_key', [r.key_id], r.public_key)),
          rows.map((r) => sealerFor(r).seal('kem_prekeys.signature', [r.key_id], r.signature)),
        ],
      ),
  )
  await sealTable(
    [Buffer.alloc(0), -1, -1],
    (after) =>
      rowsOf<{ address: Buffer; device_id: number; seq: number; message_id: Buffer; envelope: Buffer }>(
        `SELECT address, device_id, seq, message_id, envelope FROM mailbox
         WHERE (address, device_id, seq) > ($1, $2, $3) ORDER BY address, device_id, seq LIMIT 1000`,
        after,
      ),
    (r) => [r.address, r.device_id, r.seq],
    (rows, sealerFor) =>
      c.query(
        `UPDATE mailbox m SET envelope = v.e
       FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::bytea[]) AS v(a, d, s, e)
       WHERE m.address = v.a AND m.device_id = v.d AND m.seq = v.s`,
        [
          rows.map((r) => r.address),
          rows.map((r) => r.device_id),
          rows.map((r) => r.seq),
          rows.map((r) =>
            sealerFor(r).seal('mailbox.envelope', [r.device_id, r.seq], r.envelope, r.message_id),
          ),
        ],
      ),
  )
}
