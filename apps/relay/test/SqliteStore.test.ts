// Unit tests of what is SQLite's own (migrations, schema version, erasure of every table, device replacement).
// Behaviour every store shares (prefixes, prekey hand-out, acks, mailbox limits, expiry) runs against SQLite too, in
// conformance/store.test.ts.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { SCHEMA_VERSION, type ScrubEvent, SqliteStore } from '../src/SqliteStore.js'
import { tempDir } from '../testing/index.js'
import { bytes, EMPTY, enqueue, hex, key, register } from './conformance/store.js'

/** The schema of version 1, frozen as released (a copy of MIGRATIONS[0]: a fixture, never to be edited). */
const SCHEMA_V1 = `
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
`

describe('SqliteStore', () => {
  const stores: SqliteStore[] = []
  const open = (path = ':memory:') => {
    const s = new SqliteStore(path)
    stores.push(s)
    return s
  }
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close()
  })

  it('settles an enqueue, an ack or a bundle hand-out only after its WAL fsync, which runs off the event loop', async () => {
    // A controllable fsync: each call waits until the test lets it finish (or fail).
    const calls: { fd: number; done: (err: NodeJS.ErrnoException | null) => void }[] = []
    const s = new SqliteStore(join(tempDir(), 'relay.db'), { fsync: (fd, done) => calls.push({ fd, done }) })
    stores.push(s)
    const { address } = await register(s)
    let settled = false
    const first = enqueue(s, address).then((r) => {
      settled = true
      return r
    })
    await new Promise((r) => setTimeout(r, 20))
    // Committed (another reader sees it) but not acknowledged: the sync has not finished.
    expect(await s.mailboxHead(address, 1)).toBe(1)
    expect(settled).toBe(false)
    expect(calls).toHaveLength(1)
    // Work committed while a sync is in flight waits for the next sync, which starts only after this one.
    const second = enqueue(s, address)
    const third = enqueue(s, address)
    await new Promise((r) => setTimeout(r, 20))
    expect(calls).toHaveLength(1)
    calls[0]!.done(null)
    expect((await first).status).toBe('stored')
    await new Promise((r) => setTimeout(r, 20))
    expect(calls).toHaveLength(2)
    const failure = Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' })
    calls[1]!.done(failure)
    // Not known to be durable: refused, so the sender sends again (the relay deduplicates by message id).
    await expect(second).rejects.toThrow(/EIO/)
    await expect(third).rejects.toThrow(/EIO/)
    const acked = s.ack(address, 1, [1])
    await new Promise((r) => setTimeout(r, 20))
    expect(calls).toHaveLength(3)
    calls[2]!.done(null)
    expect(await acked).toBe(1)
    // Prekey bundle hand-outs (a one-time key deleted) wait for their sync the same way.
    let handedOut = false
    const bundle = s.takePrekeyBundle(address).then((b) => {
      handedOut = true
      return b
    })
    await new Promise((r) => setTimeout(r, 20))
    expect(handedOut).toBe(false)
    expect(calls).toHaveLength(4)
    calls[3]!.done(null)
    expect((await bundle)?.oneTimePrekey).toBeDefined()
  })

  it('needs no WAL sync for an in-memory database', async () => {
    const s = new SqliteStore(':memory:', {
      fsync: () => {
        throw new Error('no fsync expected')
      },
    })
    stores.push(s)
    const { address } = await register(s)
    expect((await enqueue(s, address)).status).toBe('stored')
  })

  it('migrates a new file to the latest schema, in WAL mode, and reopens it without re-running migrations', async () => {
    const path = join(tempDir(), 'relay.db')
    const s = open(path)
    expect(s.schemaVersion).toBe(SCHEMA_VERSION)
    await s.close()
    const db = new Database(path)
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
    expect(db.prepare('SELECT count(*) AS n FROM schema_migrations').get()).toEqual({ n: SCHEMA_VERSION })
    db.close()
    expect(open(path).schemaVersion).toBe(SCHEMA_VERSION)
  })

  it('is at schema version 8', () => {
    expect(SCHEMA_VERSION).toBe(8)
  })

  it('migrates a version-1 file to version 8, keeping its accounts (with no commitment, verifier or lock) and mail', async () => {
    const path = join(tempDir(), 'relay.db')
    const address = bytes(32)
    const identityKey = bytes(32)
    const envelope = bytes(20)
    const v1 = new Database(path)
    v1.pragma('journal_mode = WAL')
    v1.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)')
    v1.exec(SCHEMA_V1)
    v1.prepare('INSERT INTO schema_migrations (version, applied_at_ms) VALUES (1, 0)').run()
    v1.prepare(
      `INSERT INTO accounts (address, device_id, identity_key, signed_prekey_id, signed_prekey, signed_prekey_sig,
         kem_prekey_id, kem_prekey, kem_prekey_sig, mailbox_head_seq, mailbox_count, created_at_ms)
       VALUES (?, 3, ?, 1, ?, ?, 1, ?, ?, 1, 1, 1234)`,
    ).run(address, identityKey, bytes(32), bytes(64), bytes(1184), bytes(64))
    v1.prepare('INSERT INTO one_time_prekeys (address, key_id, public_key) VALUES (?, 7, ?)').run(
      address,
      bytes(32),
    )
    v1.prepare(
      `INSERT INTO mailbox (address, device_id, seq, message_id, envelope, received_at_ms)
       VALUES (?, 3, 1, ?, ?, 99)`,
    ).run(address, bytes(16), envelope)
    v1.close()

    const s = open(path)
    expect(s.schemaVersion).toBe(8)
    const account = (await s.getAccount(address))!
    // No activity recorded before version 4: the registration time stands in.
    expect(account).toMatchObject({ deviceId: 3, createdAtMs: 1234, lastActiveMs: 1234 })
    expect(await s.getRegistrationLock(address)).toBeNull()
    expect(hex(account.address)).toBe(hex(address))
    expect(hex(account.identityKey)).toBe(hex(identityKey))
    expect(account.numberCommitment).toBeInstanceOf(Uint8Array)
    expect(account.numberCommitment).toHaveLength(0)
    expect(account.deliveryVerifier).toBeInstanceOf(Uint8Array)
    expect(account.deliveryVerifier).toHaveLength(0)
    const page = await s.fetchMailbox(address, 3, 0, 10)
    expect(page.entries.map((e) => [e.seq, hex(e.envelope)])).toEqual([[1, hex(envelope)]])
    expect((await s.takePrekeyBundle(address))!.oneTimePrekey!.keyId).toBe(7)
    // The migrated account takes a verifier like any other.
    const verifier = bytes(32)
    expect(await s.setDeliveryVerifier(address, 3, verifier)).toBe(true)
    expect(hex((await s.getAccount(address))!.deliveryVerifier)).toBe(hex(verifier))
    await s.close()

    const db = new Database(path)
    expect(db.prepare('SELECT version FROM schema_migrations ORDER BY version').all()).toEqual([
      { version: 1 },
      { version: 2 },
      { version: 3 },
      { version: 4 },
      { version: 5 },
      { version: 6 },
      { version: 7 },
      { version: 8 },
    ])
    const cols = db.prepare('PRAGMA table_info(accounts)').all() as {
      name: string
      type: string
      notnull: number
    }[]
    for (const name of ['number_commitment', 'delivery_verifier']) {
      expect(cols.find((c) => c.name === name)).toMatchObject({ type: 'BLOB', notnull: 0 })
    }
    expect(db.prepare('SELECT number_commitment FROM accounts').get()).toEqual({ number_commitment: null })
    // Version 3 computed the byte total of the mail already there.
    expect(cols.find((c) => c.name === 'mailbox_bytes')).toMatchObject({ type: 'INTEGER', notnull: 1 })
    expect(db.prepare('SELECT mailbox_count, mailbox_bytes FROM accounts').get()).toEqual({
      mailbox_count: 1,
      mailbox_bytes: envelope.length,
    })
    // Version 7 started the account's highest device id at its registered device's.
    expect(db.prepare('SELECT max_device_id FROM accounts').get()).toEqual({ max_device_id: 3 })
    db.close()
    // Reopening runs no migration again; the next activation's id is above the migrated device's.
    const again = open(path)
    expect(again.schemaVersion).toBe(8)
    expect((await register(again, address)).deviceId).toBe(4)
  })

  it('stores an empty commitment or verifier as NULL', async () => {
    const path = join(tempDir(), 'relay.db')
    const s = open(path)
    const { address } = await register(s)
    expect(await s.setDeliveryVerifier(address, 1, bytes(32))).toBe(true)
    expect(await s.setDeliveryVerifier(address, 1, EMPTY)).toBe(true)
    await s.close()
    const db = new Database(path, { readonly: true })
    expect(db.prepare('SELECT number_commitment, delivery_verifier FROM accounts').get()).toEqual({
      number_commitment: null,
      delivery_verifier: null,
    })
    db.close()
  })

  it('refuses a database written by a newer schema', async () => {
    const path = join(tempDir(), 'relay.db')
    await open(path).close()
    const db = new Database(path)
    db.prepare('INSERT INTO schema_migrations VALUES (?, 0)').run(SCHEMA_VERSION + 1)
    db.close()
    expect(() => new SqliteStore(path)).toThrow(/newer/)
  })

  it('has no sender column in the mailbox', async () => {
    const path = join(tempDir(), 'relay.db')
    await open(path).close()
    const db = new Database(path)
    const cols = (db.prepare('PRAGMA table_info(mailbox)').all() as { name: string }[]).map((c) => c.name)
    db.close()
    expect(cols.sort()).toEqual(['address', 'device_id', 'envelope', 'message_id', 'received_at_ms', 'seq'])
  })

  it('registers a device, and a re-activation replaces it with the next device id and erases its mail', async () => {
    const s = open()
    const a = await register(s)
    expect(a).toMatchObject({ deviceId: 1, replacedDevice: false })
    await enqueue(s, a.address)
    const b = await register(s, a.address)
    expect(b).toMatchObject({ deviceId: 2, replacedDevice: true })
    expect(await s.mailboxHead(a.address, 2)).toBe(0)
    expect((await s.fetchMailbox(a.address, 2, 0, 10)).entries).toEqual([])
    expect((await s.getAccount(a.address))!.deviceId).toBe(2)
  })

  it('adds prekeys, replaces the signed prekey, and refuses to store beyond the limit', async () => {
    const s = open()
    const { address } = await register(s)
    const spk = key(9)
    const r = await s.putPrekeys(
      address,
      1,
      { signedPrekey: spk, oneTimePrekeys: [{ keyId: 3, publicKey: bytes(32) }], oneTimeKemPrekeys: [] },
      10,
    )
    expect(r).toEqual({ status: 'stored', counts: { oneTimeCount: 3, kemOneTimeCount: 1 } })
    expect((await s.takePrekeyBundle(address))!.signedPrekey.keyId).toBe(9)
    const many = Array.from({ length: 9 }, (_, i) => ({ keyId: 100 + i, publicKey: bytes(32) }))
    expect((await s.putPrekeys(address, 1, { oneTimePrekeys: many, oneTimeKemPrekeys: [] }, 10)).status).toBe(
      'over_limit',
    )
    expect((await s.putPrekeys(address, 7, { oneTimePrekeys: [], oneTimeKemPrekeys: [] }, 10)).status).toBe(
      'not_found',
    )
  })

  it('assigns increasing sequence numbers, is idempotent by message id, and refuses stale devices', async () => {
    const s = open()
    const { address } = await register(s)
    const a = await enqueue(s, address)
    const b = await enqueue(s, address)
    expect([a, b].map((r) => (r.status === 'stored' ? r.seq : -1))).toEqual([1, 2])
    const id = bytes(16)
    const input = {
      address,
      deviceId: 1,
      messageId: id,
      envelope: bytes(4),
      receivedAtMs: 1,
      maxMessages: 100,
      maxBytes: 1000,
    }
    expect(await s.enqueue(input)).toMatchObject({ status: 'stored', seq: 3 })
    expect(await s.enqueue(input)).toEqual({ status: 'duplicate', seq: 3 })
    expect(await s.enqueue({ ...input, deviceId: 2 })).toEqual({ status: 'stale_device', currentDeviceId: 1 })
    expect(await s.enqueue({ ...input, address: bytes(32) })).toEqual({ status: 'not_found' })
    expect(await s.mailboxHead(address, 1)).toBe(3)
  })

  it('erases every row of an account on delete', async () => {
    const path = join(tempDir(), 'relay.db')
    const s = open(path)
    const { address } = await register(s)
    await enqueue(s, address, 1, { at: 1 })
    await s.expire(2) // a gap record to erase
    for (let i = 0; i < 2; i++) await enqueue(s, address)
    expect(await s.deleteAccount(address)).toBe(true)
    expect(await s.deleteAccount(address)).toBe(false)
    await s.close()
    const db = new Database(path)
    for (const table of ['accounts', 'one_time_prekeys', 'kem_prekeys', 'mailbox', 'mailbox_gaps']) {
      expect(db.prepare(`SELECT count(*) AS n FROM ${table}`).get()).toEqual({ n: 0 })
    }
    db.close()
  })

  describe('scrub after erasures', () => {
    /** A store whose fsync is a no-op (the churn below commits thousands of batches) and whose events are kept. */
    const scrubbing = (path: string, scrubDelayMs: number) => {
      const events: ScrubEvent['kind'][] = []
      const s = new SqliteStore(path, {
        fsync: (_fd, done) => done(null),
        scrubDelayMs,
        onScrub: (e) => events.push(e.kind),
      })
      stores.push(s)
      return { s, events }
    }
    /** How many of `needles` occur anywhere in the file at `path` or its WAL. */
    const foundIn = (path: string, needles: Uint8Array[]) => {
      const files = [path, `${path}-wal`].filter(existsSync).map((f) => readFileSync(f))
      return needles.filter((n) => files.some((f) => f.includes(Buffer.from(n)))).length
    }

    it('leaves no stale copy of an erased address in unused page space, which secure_delete alone does', async () => {
      const path = join(tempDir(), 'relay.db')
      const { s, events } = scrubbing(path, 3_600_000)
      const addresses: Uint8Array[] = []
      for (let i = 0; i < 20; i++) addresses.push((await register(s)).address)
      // Mail comes and is acked, as on a relay: b-tree pages fill, split and rebalance. A fixed sequence of acks
      // (a small LCG), so the page layout, and what SQLite leaves behind, is the same every run.
      let lcg = 12345
      const next = (n: number) => {
        lcg = (lcg * 1103515245 + 12345) % 2 ** 31
        return lcg % n
      }
      const live: { a: number; seq: number }[] = []
      for (let batch = 0; batch < 600; batch++) {
        const sent = await Promise.all(
          Array.from({ length: 100 }, (_, j) => {
            const a = (batch * 100 + j) % 20
            return enqueue(s, addresses[a]!, 1, {
              size: 200 + (((batch * 100 + j) * 37) % 400),
              max: 100_000,
            }).then((r) => ({ a, seq: r.status === 'stored' ? r.seq : -1 }))
          }),
        )
        live.push(...sent)
        const acks: { a: number; seq: number }[] = []
        while (live.length > 2000) acks.push(...live.splice(next(live.length), 1))
        await Promise.all(acks.map((m) => s.ack(addresses[m.a]!, 1, [m.seq])))
      }
      const erased = addresses.slice(0, 10)
      for (const a of erased) expect(await s.deleteAccount(a)).toBe(true)
      expect(s.scrubDue).toBe(true)
      expect(events).toEqual(['due'])
      // Every row is deleted and zeroed, the WAL folded — and still some of these addresses are in the file: the
      // bytes a page rebuild left between the cell pointers and the cell area (SqliteStore.scrub). Should SQLite
      // one day zero them itself, this fails, and the scrub may no longer be needed.
      expect(foundIn(path, erased)).toBeGreaterThan(0)
      expect(s.scrub()).toBe(true)
      expect(foundIn(path, erased)).toBe(0)
      expect(foundIn(path, addresses.slice(10))).toBe(10) // the rest of the data is all still there
      expect(s.scrubDue).toBe(false)
      expect(events).toEqual(['due', 'done'])
    }, 60_000)

    it('shares one scrub among the erasures of its delay, and runs it when the timer fires', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
      try {
        const path = join(tempDir(), 'relay.db')
        const { s, events } = scrubbing(path, 60_000)
        const addresses = [
          (await register(s)).address,
          (await register(s)).address,
          (await register(s)).address,
        ]
        for (const a of addresses) await s.deleteAccount(a)
        expect(events).toEqual(['due'])
        vi.advanceTimersByTime(59_999)
        expect(events).toEqual(['due'])
        vi.advanceTimersByTime(1)
        expect(events).toEqual(['due', 'done'])
        expect(s.scrubDue).toBe(false)
        // The next erasure starts the next delay.
        await s.deleteAccount((await register(s)).address)
        vi.advanceTimersByTime(60_000)
        expect(events).toEqual(['due', 'done', 'due', 'done'])
      } finally {
        vi.useRealTimers()
      }
    })

    it('scrubs before an erasing call returns when the delay is 0, and at close when one is due', async () => {
      const now = scrubbing(join(tempDir(), 'relay.db'), 0)
      await now.s.deleteAccount((await register(now.s)).address)
      expect(now.events).toEqual(['due', 'done'])
      const later = scrubbing(join(tempDir(), 'relay.db'), 3_600_000)
      await later.s.deleteAccount((await register(later.s)).address)
      // Mail and keys that are no erasure make nothing due.
      const { address } = await register(later.s)
      await enqueue(later.s, address)
      expect(later.events).toEqual(['due'])
      await later.s.close()
      expect(later.events).toEqual(['due', 'done'])
    })
  })

  it('leaves no byte of a removed linked device in the database file or its WAL', async () => {
    const path = join(tempDir(), 'relay.db')
    const s = open(path)
    const { address } = await register(s)
    const removed = { deviceId: 2, deviceKey: bytes(32) }
    const list = (version: number, linked: (typeof removed)[]) =>
      s.putDeviceList({
        address,
        primaryDeviceId: 1,
        version,
        list: bytes(64),
        linked,
        maxLinked: 5,
        nowMs: 1,
      })
    expect((await list(1, [removed])).status).toBe('stored')
    const spk = key(7)
    const keys = {
      signedPrekey: spk,
      lastResortKemPrekey: key(8, 1184),
      oneTimePrekeys: [],
      oneTimeKemPrekeys: [],
    }
    expect((await s.putPrekeys(address, 2, keys, 10)).status).toBe('stored')
    const envelope = bytes(64)
    await s.enqueue({
      address,
      deviceId: 2,
      messageId: bytes(16),
      envelope,
      receivedAtMs: Date.now(),
      maxMessages: 10,
      maxBytes: 1 << 20,
    })
    expect(await list(2, [])).toEqual({ status: 'stored', added: [], removed: [2] })
    const onDisk = (needle: Uint8Array) =>
      [path, `${path}-wal`].some((f) => existsSync(f) && readFileSync(f).includes(Buffer.from(needle)))
    for (const needle of [removed.deviceKey, spk.publicKey, envelope])
      expect(onDisk(needle), hex(needle)).toBe(false)
  })

  it('leaves no byte of the old address in the database file or its WAL after a move with a forward', async () => {
    const path = join(tempDir(), 'relay.db')
    const s = open(path)
    const { address: from } = await register(s)
    const to = bytes(32)
    expect(await s.rebindAddress(from, 1, to, { numberCommitment: bytes(32), forwardUntilMs: 10_000 })).toBe(
      'moved',
    )
    expect(hex((await s.addressForward(from, 5000))!)).toBe(hex(to))
    const onDisk = (needle: Uint8Array) =>
      [path, `${path}-wal`].some((f) => existsSync(f) && readFileSync(f).includes(Buffer.from(needle)))
    expect(onDisk(from)).toBe(false)
    // The new address is there (the account's key), but not in the forward's row.
    expect(onDisk(to)).toBe(true)
    await s.close()
    const db = new Database(path, { readonly: true })
    const rows = db.prepare('SELECT * FROM address_forwards').all() as Record<string, Buffer | number>[]
    db.close()
    expect(rows).toHaveLength(1)
    for (const v of Object.values(rows[0]!)) {
      if (Buffer.isBuffer(v)) for (const a of [from, to]) expect(v.includes(Buffer.from(a))).toBe(false)
    }
  })

  it('settles a linked device’s enqueue and bundle hand-out only after the WAL fsync, as the primary’s', async () => {
    const calls: { done: (err: NodeJS.ErrnoException | null) => void }[] = []
    const s = new SqliteStore(join(tempDir(), 'relay.db'), { fsync: (_fd, done) => calls.push({ done }) })
    stores.push(s)
    const { address } = await register(s)
    const linked = [{ deviceId: 2, deviceKey: bytes(32) }]
    await s.putDeviceList({
      address,
      primaryDeviceId: 1,
      version: 1,
      list: bytes(64),
      linked,
      maxLinked: 5,
      nowMs: 1,
    })
    const keys = {
      signedPrekey: key(7),
      lastResortKemPrekey: key(8, 1184),
      oneTimePrekeys: [],
      oneTimeKemPrekeys: [],
    }
    const upload = s.putPrekeys(address, 2, keys, 10)
    await new Promise((r) => setTimeout(r, 20))
    expect(calls).toHaveLength(1)
    calls[0]!.done(null)
    expect((await upload).status).toBe('stored')
    for (const [i, work] of [() => enqueue(s, address, 2), () => s.takePrekeyBundle(address, 2)].entries()) {
      let settled = false
      const pending = work().then((r) => {
        settled = true
        return r
      })
      await new Promise((r) => setTimeout(r, 20))
      expect(settled).toBe(false)
      expect(calls).toHaveLength(i + 2)
      calls[i + 1]!.done(null)
      expect(await pending).not.toBeNull()
    }
  })
})
