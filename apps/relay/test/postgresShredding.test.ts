// Crypto-shredding in the PostgreSQL store (SECURITY.md, "Erasure"): what the rows hold, that sealed values are
// bound to their row, that erasure and re-activation change the data key and that other nodes drop it, the store
// key, and the migrations from plaintext databases (versions 2 and 3). The physical scan of PostgreSQL's files and
// WAL after a full scenario is tests/privacy/at-rest.test.ts.
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, afterEach, expect, it } from 'vitest'
import { PG_SCHEMA_VERSION, PostgresStore, type PostgresStoreOptions } from '../src/PostgresStore.js'
import { describeWith, PG_URL, probePostgres, uniqueName, waitFor } from './conformance/services.js'
import { bytes, enqueue, hex, key, register } from './conformance/store.js'

const pgAbsent = await probePostgres()

/** The sealed format's overhead: version byte, 12-byte nonce, 16-byte tag. */
const OVERHEAD = 29

describeWith('PostgresStore crypto-shredding', [pgAbsent], () => {
  const schemas: string[] = []
  const opened: PostgresStore[] = []
  const admin = async <T extends pg.QueryResultRow>(sql: string, params: unknown[] = []) => {
    const client = new pg.Client({ connectionString: PG_URL })
    await client.connect()
    try {
      return (await client.query<T>(sql, params)).rows
    } finally {
      await client.end()
    }
  }
  const fresh = () => {
    const schema = uniqueName('shred')
    schemas.push(schema)
    return schema
  }
  const urlOf = (schema: string) => `${PG_URL}?schema=${schema}`
  const openIn = async (schema: string, options: Partial<PostgresStoreOptions> = {}) => {
    const s = await PostgresStore.open({ url: urlOf(schema), maxConnections: 4, ...options })
    opened.push(s)
    return s
  }
  /** Every row of every table of a schema, as PostgreSQL's text form (bytea as lower-case hex). */
  const dump = async (schema: string) => {
    const tables = await admin<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1',
      [schema],
    )
    let text = ''
    for (const { table_name } of tables) {
      const rows = await admin<{ t: string }>(`SELECT t::text AS t FROM ${schema}.${table_name} t`)
      text += `${rows.map((r) => r.t).join('\n')}\n`
    }
    return text
  }
  const storeKey = () => new Uint8Array(randomBytes(32))

  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close()
  })
  afterAll(async () => {
    for (const schema of schemas) await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  })

  it('keeps no value of an account in the clear: keys, signatures, commitment, verifier, envelopes', async () => {
    const schema = fresh()
    const s = await openIn(schema, { storeKey: storeKey() })
    const address = bytes(32)
    const identityKey = bytes(32)
    const signedPrekey = key(1)
    const lastResortKemPrekey = key(2, 1184)
    const oneTimePrekeys = [1, 2, 3].map((keyId) => ({ keyId, publicKey: bytes(32) }))
    const oneTimeKemPrekeys = [key(7, 1184)]
    const numberCommitment = bytes(32)
    await s.registerDevice({
      address,
      identityKey,
      signedPrekey,
      lastResortKemPrekey,
      oneTimePrekeys,
      oneTimeKemPrekeys,
      numberCommitment,
      nowMs: 1,
    })
    const verifier = bytes(32)
    expect(await s.setDeliveryVerifier(address, 1, verifier)).toBe(true)
    const later = {
      signedPrekey: key(3),
      oneTimePrekeys: [{ keyId: 4, publicKey: bytes(32) }],
      oneTimeKemPrekeys: [],
    }
    expect((await s.putPrekeys(address, 1, later, 100)).status).toBe('stored')
    const envelopes = [bytes(200), bytes(3000), bytes(40_000)]
    for (const envelope of envelopes) {
      await s.enqueue({
        address,
        deviceId: 1,
        messageId: bytes(16),
        envelope,
        receivedAtMs: Date.now(),
        maxMessages: 100,
        maxBytes: 1 << 20,
      })
    }
    const lock = { salt: bytes(16), logN: 15, verifier: bytes(32), setAtMs: Date.now() }
    expect(await s.setRegistrationLock(address, 1, lock)).toBe(true)
    const secrets = [
      lock.salt,
      lock.verifier,
      identityKey,
      signedPrekey.publicKey,
      signedPrekey.signature,
      lastResortKemPrekey.publicKey,
      lastResortKemPrekey.signature,
      ...oneTimePrekeys.map((k) => k.publicKey),
      oneTimeKemPrekeys[0]!.publicKey,
      oneTimeKemPrekeys[0]!.signature,
      later.signedPrekey.publicKey,
      later.signedPrekey.signature,
      later.oneTimePrekeys[0]!.publicKey,
      numberCommitment,
      verifier,
      ...envelopes,
    ]
    const text = await dump(schema)
    // The address is a lookup key and is there; no value is, not even its first 16 bytes.
    expect(text).toContain(hex(address))
    expect(secrets.filter((v) => text.includes(hex(v.subarray(0, 16))))).toEqual([])
    // Each sealed envelope is its plaintext plus the overhead; the byte quota counts plaintext.
    const sizes = await admin<{ n: number }>(
      `SELECT octet_length(envelope) AS n FROM ${schema}.mailbox ORDER BY seq`,
    )
    expect(sizes.map((r) => r.n)).toEqual(envelopes.map((e) => e.length + OVERHEAD))
    const [acc] = await admin<{ bytes: string }>(`SELECT mailbox_bytes AS bytes FROM ${schema}.accounts`)
    expect(Number(acc!.bytes)).toBe(200 + 3000 + 40_000)
    // And the store reads every value back.
    const page = await s.fetchMailbox(address, 1, 0, 10)
    expect(page.entries.map((e) => hex(e.envelope))).toEqual(envelopes.map(hex))
    const account = (await s.getAccount(address))!
    expect([hex(account.identityKey), hex(account.numberCommitment), hex(account.deliveryVerifier)]).toEqual([
      hex(identityKey),
      hex(numberCommitment),
      hex(verifier),
    ])
    const bundle = (await s.takePrekeyBundle(address))!
    expect(hex(bundle.signedPrekey.publicKey)).toBe(hex(later.signedPrekey.publicKey))
    expect(hex(bundle.signedPrekey.signature)).toBe(hex(later.signedPrekey.signature))
    expect(hex(bundle.oneTimePrekey!.publicKey)).toBe(hex(oneTimePrekeys[0]!.publicKey))
    expect(hex(bundle.kemPrekey.signature)).toBe(hex(oneTimeKemPrekeys[0]!.signature))
    const lastResort = (await s.takePrekeyBundle(address))!
    expect(lastResort.kemPrekeyIsLastResort).toBe(true)
    expect(hex(lastResort.kemPrekey.publicKey)).toBe(hex(lastResortKemPrekey.publicKey))
  })

  it('keeps no value of a linked device in the clear (device keys, list, prekeys, mail), binds each to its device, and shreds them with the account', async () => {
    const schema = fresh()
    const s = await openIn(schema, { storeKey: storeKey() })
    const { address } = await register(s)
    const linked = [2, 3].map((deviceId) => ({ deviceId, deviceKey: bytes(32) }))
    const list = bytes(160)
    expect(
      await s.putDeviceList({
        address,
        primaryDeviceId: 1,
        version: 1,
        list,
        linked,
        maxLinked: 5,
        nowMs: 1,
      }),
    ).toEqual({ status: 'stored', added: [2, 3], removed: [] })
    const keys = {
      signedPrekey: key(7),
      lastResortKemPrekey: key(8, 1184),
      oneTimePrekeys: [{ keyId: 11, publicKey: bytes(32) }],
      oneTimeKemPrekeys: [key(21, 1184)],
    }
    for (const d of [2, 3]) expect((await s.putPrekeys(address, d, keys, 100)).status).toBe('stored')
    const envelope = bytes(3000)
    expect(
      await s.enqueue({
        address,
        deviceId: 2,
        messageId: bytes(16),
        envelope,
        receivedAtMs: Date.now(),
        maxMessages: 100,
        maxBytes: 1 << 20,
      }),
    ).toEqual({ status: 'stored', seq: 1 })
    const secrets = [
      ...linked.map((d) => d.deviceKey),
      list,
      keys.signedPrekey.publicKey,
      keys.signedPrekey.signature,
      keys.lastResortKemPrekey.publicKey,
      keys.lastResortKemPrekey.signature,
      keys.oneTimePrekeys[0]!.publicKey,
      keys.oneTimeKemPrekeys[0]!.publicKey,
      keys.oneTimeKemPrekeys[0]!.signature,
      envelope,
    ]
    // Addresses and ids are lookup keys and are there; no value is, not even its first 16 bytes.
    const plain = await dump(schema)
    expect(secrets.filter((v) => plain.includes(hex(v.subarray(0, 16))))).toEqual([])
    expect(await s.getDeviceList(address)).toEqual({ version: 1, list })
    // Device 2's sealed key and prekeys copied into device 3's row: bound to device 2, they do not open there.
    await admin(
      `UPDATE ${schema}.linked_devices t SET device_key = o.device_key, signed_prekey = o.signed_prekey
       FROM ${schema}.linked_devices o WHERE t.device_id = 3 AND o.device_id = 2`,
    )
    await expect(s.getDevice(address, 3)).rejects.toThrow(/does not open/)
    await expect(s.takePrekeyBundle(address, 3)).rejects.toThrow(/does not open/)
    expect((await s.getDevice(address, 2))!.key).toEqual(linked[0]!.deviceKey)
    // The list under another version: bound to its version.
    await admin(`UPDATE ${schema}.device_lists SET version = 2`)
    await expect(s.getDeviceList(address)).rejects.toThrow(/does not open/)
    // Erasure: the account's key row goes, and every linked row with it.
    expect(await s.deleteAccount(address)).toBe(true)
    for (const table of [
      'account_keys',
      'linked_devices',
      'linked_one_time_prekeys',
      'linked_kem_prekeys',
      'device_lists',
      'device_id_high_water',
      'mailbox',
    ]) {
      expect((await admin(`SELECT 1 FROM ${schema}.${table}`)).length, table).toBe(0)
    }
  })

  it('a rebind reseals linked devices, their prekeys and mail and the list under the new key, leaving no value or old address in any row', async () => {
    const schema = fresh()
    const s = await openIn(schema, { storeKey: storeKey() })
    const from = bytes(32)
    const to = bytes(32)
    await register(s, from)
    const device = { deviceId: 2, deviceKey: bytes(32) }
    const list = bytes(120)
    const linked = { address: from, primaryDeviceId: 1, list, linked: [device], maxLinked: 5, nowMs: 1 }
    expect((await s.putDeviceList({ ...linked, version: 1 })).status).toBe('stored')
    const keys = {
      signedPrekey: key(7),
      lastResortKemPrekey: key(8, 1184),
      oneTimePrekeys: [{ keyId: 11, publicKey: bytes(32) }],
      oneTimeKemPrekeys: [key(21, 1184)],
    }
    expect((await s.putPrekeys(from, 2, keys, 100)).status).toBe('stored')
    const envelope = bytes(500)
    const sent = {
      deviceId: 2,
      messageId: bytes(16),
      envelope,
      receivedAtMs: Date.now(),
      maxMessages: 100,
      maxBytes: 1 << 20,
    }
    expect(await s.enqueue({ ...sent, address: from })).toEqual({ status: 'stored', seq: 1 })
    const rid = bytes(16)
    expect(await s.openRendezvous(rid, from, Date.now() + 60_000)).toBe(true)
    const sealedKey = (
      await admin<{ device_key: Buffer }>(`SELECT device_key FROM ${schema}.linked_devices`)
    )[0]!

    expect(await s.rebindAddress(from, 1, to)).toBe('moved')

    const text = await dump(schema)
    expect(text).toContain(hex(to))
    expect(text).not.toContain(hex(from))
    const secrets = [
      device.deviceKey,
      list,
      keys.signedPrekey.publicKey,
      keys.signedPrekey.signature,
      keys.lastResortKemPrekey.publicKey,
      keys.oneTimePrekeys[0]!.publicKey,
      keys.oneTimeKemPrekeys[0]!.signature,
      envelope,
    ]
    expect(secrets.filter((v) => text.includes(hex(v.subarray(0, 16))))).toEqual([])
    expect(await s.getDeviceList(to)).toEqual({ version: 1, list })
    expect(hex((await s.fetchMailbox(to, 2, 0, 10)).entries[0]!.envelope)).toBe(hex(envelope))
    expect(await s.enqueue({ ...sent, address: to })).toEqual({ status: 'duplicate', seq: 1 })
    // The device key sealed before the move, put back (a replayed old page), does not open under the new key.
    await admin(`UPDATE ${schema}.linked_devices SET device_key = $1`, [sealedKey.device_key])
    await expect(s.getDevice(to, 2)).rejects.toThrow(/does not open/)
  })

  it('a sealed value opens only in its own row: swapped envelopes, keys or data keys are refused', async () => {
    const schema = fresh()
    const k = storeKey()
    const s = await openIn(schema, { storeKey: k })
    const a = await register(s)
    const b = await register(s)
    await enqueue(s, a.address)
    await enqueue(s, a.address)
    await enqueue(s, b.address)
    // Two envelopes of one mailbox swapped: each is bound to its seq and message id.
    await admin(
      `UPDATE ${schema}.mailbox m SET envelope = o.envelope FROM ${schema}.mailbox o
       WHERE m.address = $1 AND o.address = $1 AND m.seq + o.seq = 3`,
      [Buffer.from(a.address)],
    )
    await expect(s.fetchMailbox(a.address, 1, 0, 10)).rejects.toThrow(/does not open/)
    // An identity key moved to another account: bound to the address, and sealed under the other key.
    await admin(
      `UPDATE ${schema}.accounts SET identity_key = (SELECT identity_key FROM ${schema}.accounts WHERE address = $1)
       WHERE address = $2`,
      [Buffer.from(a.address), Buffer.from(b.address)],
    )
    await expect(s.getAccount(b.address)).rejects.toThrow(/does not open/)
    // Data keys swapped between two accounts: each is wrapped for its own address and key id. A node that has
    // not cached them reads them.
    await admin(
      `UPDATE ${schema}.account_keys k SET data_key = o.data_key FROM ${schema}.account_keys o
       WHERE k.address <> o.address`,
    )
    const cold = await openIn(schema, { storeKey: k })
    await expect(cold.fetchMailbox(a.address, 1, 0, 10)).rejects.toThrow(/data key does not open/)
    await expect(cold.takePrekeyBundle(b.address)).rejects.toThrow(/data key does not open/)
  })

  it('erasure and re-activation delete the data key; a re-activation seals under a new one', async () => {
    const schema = fresh()
    const s = await openIn(schema, { storeKey: storeKey() })
    const { address } = await register(s)
    await enqueue(s, address)
    const keyOf = async () =>
      (
        await admin<{ key_id: Buffer }>(`SELECT key_id FROM ${schema}.account_keys WHERE address = $1`, [
          Buffer.from(address),
        ])
      )[0]?.key_id.toString('hex')
    const first = await keyOf()
    const sealedBefore = (
      await admin<{ envelope: Buffer }>(`SELECT envelope FROM ${schema}.mailbox WHERE address = $1`, [
        Buffer.from(address),
      ])
    )[0]!.envelope
    expect(await register(s, address)).toMatchObject({ deviceId: 2, replacedDevice: true })
    const second = await keyOf()
    expect(second).toMatch(/^[0-9a-f]{32}$/)
    expect(second).not.toBe(first)
    expect(
      (await admin<{ key_id: Buffer }>(`SELECT key_id FROM ${schema}.accounts`)).map((r) =>
        r.key_id.toString('hex'),
      ),
    ).toEqual([second])
    // The old envelope, put back as the new device's mail (as a thief replaying an old page would), is refused.
    await enqueue(s, address, 2)
    await admin(`UPDATE ${schema}.mailbox SET envelope = $1 WHERE address = $2`, [
      sealedBefore,
      Buffer.from(address),
    ])
    await expect(s.fetchMailbox(address, 2, 0, 10)).rejects.toThrow(/does not open/)
    expect(await s.deleteAccount(address)).toBe(true)
    expect(await keyOf()).toBeUndefined()
    for (const table of ['accounts', 'account_keys', 'one_time_prekeys', 'kem_prekeys', 'mailbox']) {
      expect((await admin(`SELECT 1 FROM ${schema}.${table}`)).length, table).toBe(0)
    }
  })

  it('a number change seals the new commitment under the new key, and its forward holds neither address in the clear', async () => {
    const schema = fresh()
    const s = await openIn(schema, { storeKey: storeKey() })
    const [from, to] = [bytes(32), bytes(32)]
    const [oldCommitment, newCommitment] = [bytes(32), bytes(32)]
    await register(s, from, { numberCommitment: oldCommitment })
    expect(
      await s.rebindAddress(from, 1, to, { numberCommitment: newCommitment, forwardUntilMs: 10_000 }),
    ).toBe('moved')
    expect(hex((await s.getAccount(to))!.numberCommitment)).toBe(hex(newCommitment))
    expect(hex((await s.addressForward(from, 5000))!)).toBe(hex(to))
    const text = await dump(schema)
    expect(text).not.toContain(hex(from))
    expect(text).not.toContain(hex(newCommitment.subarray(0, 16)))
    expect(text).not.toContain(hex(oldCommitment.subarray(0, 16)))
    // The commitment is sealed under the account's (new) data key, bound to its row.
    const [row] = await admin<{ number_commitment: Buffer }>(
      `SELECT number_commitment FROM ${schema}.accounts`,
    )
    expect(row!.number_commitment.length).toBe(32 + OVERHEAD)
    const forwards = await admin<{ t: string }>(`SELECT t::text AS t FROM ${schema}.address_forwards t`)
    expect(forwards).toHaveLength(1)
    expect(forwards[0]!.t).not.toContain(hex(to))
  })

  it('a rebind reseals every value under a new data key for the new address, and erases the old key on every node', async () => {
    const schema = fresh()
    const k = storeKey()
    const s = await openIn(schema, { storeKey: k })
    const other = await openIn(schema, { storeKey: k })
    const from = bytes(32)
    const to = bytes(32)
    const input = {
      address: from,
      identityKey: bytes(32),
      signedPrekey: key(1),
      lastResortKemPrekey: key(2, 1184),
      oneTimePrekeys: [1, 2].map((keyId) => ({ keyId, publicKey: bytes(32) })),
      oneTimeKemPrekeys: [key(7, 1184)],
      numberCommitment: bytes(32),
      nowMs: 1,
    }
    await s.registerDevice(input)
    const verifier = bytes(32)
    expect(await s.setDeliveryVerifier(from, 1, verifier)).toBe(true)
    const envelopes = [bytes(200), bytes(40_000)]
    for (const envelope of envelopes) {
      await s.enqueue({
        address: from,
        deviceId: 1,
        messageId: bytes(16),
        envelope,
        receivedAtMs: Date.now(),
        maxMessages: 100,
        maxBytes: 1 << 20,
      })
    }
    const lock = { salt: bytes(16), logN: 15, verifier: bytes(32), setAtMs: 7 }
    expect(await s.setRegistrationLock(from, 1, lock)).toBe(true)
    // The other node holds the account's key, as after reading its mail.
    expect((await other.fetchMailbox(from, 1, 0, 10)).entries).toHaveLength(2)
    expect(other.dataKeyStats.cached).toBe(1)
    const keyIds = async () =>
      (await admin<{ key_id: Buffer }>(`SELECT key_id FROM ${schema}.account_keys`)).map((r) =>
        r.key_id.toString('hex'),
      )
    const [oldKey] = await keyIds()
    const sealedBefore = await admin<{ identity_key: Buffer; envelope: Buffer }>(
      `SELECT identity_key, envelope FROM ${schema}.accounts a JOIN ${schema}.mailbox m USING (address)
       WHERE m.seq = 1`,
    )

    expect(await s.rebindAddress(from, 1, to)).toBe('moved')

    // One data key, new, of the new address; every row carrying a key id names it; the old key row is gone.
    const [newKey] = await keyIds()
    expect((await keyIds()).length).toBe(1)
    expect(newKey).not.toBe(oldKey)
    for (const table of ['accounts', 'account_keys', 'registration_locks']) {
      const rows = await admin<{ address: Buffer; key_id: Buffer }>(
        `SELECT address, key_id FROM ${schema}.${table}`,
      )
      expect(
        rows.map((r) => [hex(r.address), r.key_id.toString('hex')]),
        table,
      ).toEqual([[hex(to), newKey]])
    }
    // Nothing of the account is in the clear, and the old address is in no row at all.
    const secrets = [
      input.identityKey,
      input.signedPrekey.publicKey,
      input.signedPrekey.signature,
      input.lastResortKemPrekey.publicKey,
      input.lastResortKemPrekey.signature,
      ...input.oneTimePrekeys.map((x) => x.publicKey),
      input.oneTimeKemPrekeys[0]!.publicKey,
      input.oneTimeKemPrekeys[0]!.signature,
      input.numberCommitment,
      verifier,
      lock.salt,
      lock.verifier,
      ...envelopes,
    ]
    const text = await dump(schema)
    expect(text).toContain(hex(to))
    expect(text).not.toContain(hex(from))
    expect(secrets.filter((v) => text.includes(hex(v.subarray(0, 16))))).toEqual([])
    // Resealing keeps every size: the sealed envelopes are still plaintext plus overhead, the quota unchanged.
    const sizes = await admin<{ n: number }>(
      `SELECT octet_length(envelope) AS n FROM ${schema}.mailbox ORDER BY seq`,
    )
    expect(sizes.map((r) => r.n)).toEqual(envelopes.map((e) => e.length + OVERHEAD))
    const [acc] = await admin<{ bytes: string }>(`SELECT mailbox_bytes AS bytes FROM ${schema}.accounts`)
    expect(Number(acc!.bytes)).toBe(200 + 40_000)
    // The other node dropped the old key at commit, and reads the account at its new address under the new one.
    await waitFor(() => other.dataKeyStats.cached === 0, 5000, 'the other node to drop the old key')
    expect((await other.fetchMailbox(to, 1, 0, 10)).entries.map((e) => hex(e.envelope))).toEqual(
      envelopes.map(hex),
    )
    expect(await other.getRegistrationLock(to)).toEqual(lock)
    // A value sealed before the move, put back under the new address (a replayed old page), does not open.
    await admin(`UPDATE ${schema}.mailbox SET envelope = $1 WHERE seq = 1`, [sealedBefore[0]!.envelope])
    await expect(s.fetchMailbox(to, 1, 0, 10)).rejects.toThrow(/does not open/)
    await admin(`UPDATE ${schema}.accounts SET identity_key = $1`, [sealedBefore[0]!.identity_key])
    await expect(other.getAccount(to)).rejects.toThrow(/does not open/)
  })

  it('retained and restored mail is resealed under each new data key, its identity key sealed, and moves with a rebind', async () => {
    const schema = fresh()
    const k = storeKey()
    const s = await openIn(schema, { storeKey: k })
    const from = bytes(32)
    const to = bytes(32)
    const [i1, i2] = [bytes(32), bytes(32)]
    const activate = (address: Uint8Array, identityKey: Uint8Array) =>
      s.registerDevice({
        address,
        identityKey,
        signedPrekey: key(1),
        lastResortKemPrekey: key(2, 1184),
        oneTimePrekeys: [],
        oneTimeKemPrekeys: [],
        numberCommitment: new Uint8Array(0),
        nowMs: Date.now(),
      })
    await activate(from, i1)
    const envelopes = [bytes(300), bytes(40_000)]
    for (const envelope of envelopes) {
      await s.enqueue({
        address: from,
        deviceId: 1,
        messageId: bytes(16),
        envelope,
        receivedAtMs: Date.now(),
        maxMessages: 100,
        maxBytes: 1 << 20,
      })
    }
    const sealedBefore = (
      await admin<{ envelope: Buffer }>(`SELECT envelope FROM ${schema}.mailbox WHERE seq = 1`)
    )[0]!.envelope
    // Another key takes the number: device 1's mail is retained, under the new data key only.
    expect(await activate(from, i2)).toMatchObject({ deviceId: 2, retainedMessages: 2 })
    const keyIds = async () =>
      (await admin<{ key_id: Buffer }>(`SELECT key_id FROM ${schema}.account_keys`)).map((r) =>
        r.key_id.toString('hex'),
      )
    expect((await keyIds()).length).toBe(1)
    const retained = await admin<{ device_id: string; n: number }>(
      `SELECT device_id, octet_length(identity_key) AS n FROM ${schema}.retained_mail`,
    )
    expect(retained.map((r) => [Number(r.device_id), r.n])).toEqual([[1, 32 + OVERHEAD]])
    const sizes = async () =>
      (
        await admin<{ d: string; n: number }>(
          `SELECT device_id AS d, octet_length(envelope) AS n FROM ${schema}.mailbox ORDER BY seq`,
        )
      ).map((r) => [Number(r.d), r.n])
    expect(await sizes()).toEqual(envelopes.map((e) => [1, e.length + OVERHEAD]))
    let text = await dump(schema)
    expect([i1, i2, ...envelopes].filter((v) => text.includes(hex(v.subarray(0, 16))))).toEqual([])
    expect(text).not.toContain(hex(sealedBefore.subarray(0, 16)))
    // A rebind moves the record and the mail, resealed for the new address: nothing is left under the old one.
    expect(await s.rebindAddress(from, 2, to)).toBe('moved')
    text = await dump(schema)
    expect(text).not.toContain(hex(from))
    expect([i1, i2, ...envelopes].filter((v) => text.includes(hex(v.subarray(0, 16))))).toEqual([])
    // A device with no unread mail replaces device 2: device 1's mail stays retained, resealed under the new key.
    const keyBefore = await keyIds()
    expect(await activate(to, bytes(32))).toMatchObject({ deviceId: 3, retainedMessages: 0 })
    expect(await keyIds()).not.toEqual(keyBefore)
    expect(await admin(`SELECT 1 FROM ${schema}.retained_mail`)).toHaveLength(1)
    text = await dump(schema)
    expect([i1, i2, ...envelopes].filter((v) => text.includes(hex(v.subarray(0, 16))))).toEqual([])
    // Device 1's key comes back: the mail is restored to device 4, under the current key, as a cold node reads it.
    expect(await activate(to, i1)).toMatchObject({ deviceId: 4, restoredMessages: 2, retainedMessages: 0 })
    expect(await admin(`SELECT 1 FROM ${schema}.retained_mail`)).toHaveLength(0)
    expect(await sizes()).toEqual(envelopes.map((e) => [4, e.length + OVERHEAD]))
    const [acc] = await admin<{ bytes: string }>(`SELECT mailbox_bytes AS bytes FROM ${schema}.accounts`)
    expect(Number(acc!.bytes)).toBe(300 + 40_000)
    const cold = await openIn(schema, { storeKey: k })
    expect((await cold.fetchMailbox(to, 4, 0, 10)).entries.map((e) => hex(e.envelope))).toEqual(
      envelopes.map(hex),
    )
    text = await dump(schema)
    expect([i1, i2, ...envelopes].filter((v) => text.includes(hex(v.subarray(0, 16))))).toEqual([])
    // The envelope as first sealed (old key, device 1, old address), put back, does not open as device 4's.
    await admin(`UPDATE ${schema}.mailbox SET envelope = $1 WHERE seq = 1`, [sealedBefore])
    await expect(cold.fetchMailbox(to, 4, 0, 10)).rejects.toThrow(/does not open/)
  })

  it('looks no data key up per message: one read per account, then the cache', async () => {
    const schema = fresh()
    const s = await openIn(schema, { storeKey: storeKey() })
    expect(s.dataKeyStats.caching).toBe(true)
    const { address } = await register(s)
    const before = s.dataKeyStats.reads
    for (let i = 0; i < 200; i++) await enqueue(s, address, 1, { max: 1000 })
    let after = 0
    for (;;) {
      const page = await s.fetchMailbox(address, 1, after, 50)
      if (page.entries.length === 0) break
      after = page.entries[page.entries.length - 1]!.seq
    }
    expect(after).toBe(200)
    // Registered on this node: the new key was cached at commit, and no message needed a read.
    expect(s.dataKeyStats.reads - before).toBe(0)
  })

  it('holds at most keyCacheSize keys; with 0, reads the key for every operation that seals or opens', async () => {
    const schema = fresh()
    const k = storeKey()
    const s = await openIn(schema, { storeKey: k, keyCacheSize: 3 })
    for (let i = 0; i < 10; i++) await register(s)
    expect(s.dataKeyStats.cached).toBe(3)
    const none = await openIn(schema, { storeKey: k, keyCacheSize: 0 })
    const { address } = await register(none)
    const reads = none.dataKeyStats.reads
    for (let i = 0; i < 5; i++) await enqueue(none, address)
    expect(none.dataKeyStats).toMatchObject({ cached: 0, reads: reads + 5 })
  })

  it('two nodes: each drops a data key the other erased or replaced, at once, and caches only while it hears', async () => {
    const schema = fresh()
    const k = storeKey()
    const a = await openIn(schema, { storeKey: k })
    const b = await openIn(schema, { storeKey: k })
    const { address } = await register(a)
    await enqueue(a, address)
    expect((await b.fetchMailbox(address, 1, 0, 10)).entries).toHaveLength(1)
    expect([a.dataKeyStats.cached, b.dataKeyStats.cached]).toEqual([1, 1])
    // B replaces the device: A's copy of the old key goes with the commit's notice.
    await register(b, address)
    await waitFor(() => a.dataKeyStats.cached === 0, 5000, 'node A to drop the replaced key')
    expect(b.dataKeyStats.cached).toBe(1) // the new key, cached by B at commit
    // A seals mail for the new device under the new key (read once), and B opens it.
    expect(await enqueue(a, address, 1)).toEqual({ status: 'stale_device', currentDeviceId: 2 })
    expect(await enqueue(a, address, 2)).toMatchObject({ status: 'stored', seq: 1 })
    expect((await b.fetchMailbox(address, 2, 0, 10)).entries).toHaveLength(1)
    expect(a.dataKeyStats.cached).toBe(1)
    // B erases the account: A drops the key.
    expect(await b.deleteAccount(address)).toBe(true)
    await waitFor(() => a.dataKeyStats.cached === 0 && b.dataKeyStats.cached === 0, 5000, 'both to drop it')
    expect(await a.getAccount(address)).toBeNull()
    // The listening connections drop: neither node caches (it could miss an erasure) until they are back.
    const other = await register(a)
    expect(a.dataKeyStats.cached).toBe(1)
    await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [
      `parley-erasure-listener ${schema}`.slice(0, 63),
    ])
    await waitFor(() => !a.dataKeyStats.caching && !b.dataKeyStats.caching, 5000, 'caching to stop')
    expect(a.dataKeyStats.cached).toBe(0)
    await enqueue(b, other.address)
    await waitFor(
      () => a.dataKeyStats.caching && b.dataKeyStats.caching,
      10_000,
      'the listeners to reconnect',
    )
    const reads = a.dataKeyStats.reads
    await enqueue(a, other.address)
    await enqueue(a, other.address)
    expect(a.dataKeyStats.reads).toBe(reads + 1)
    expect((await a.fetchMailbox(other.address, 1, 0, 10)).entries).toHaveLength(3)
  })

  it('binds a database to its store key: another key or none is refused; a keyless one gets wrapped', async () => {
    const k1 = storeKey()
    const bound = fresh()
    const s = await openIn(bound, { storeKey: k1 })
    const { address } = await register(s)
    await enqueue(s, address)
    await expect(openIn(bound, { storeKey: storeKey() })).rejects.toThrow(/does not match/)
    await expect(openIn(bound)).rejects.toThrow(/bound to a store key/)
    const wrapped = await admin<{ n: number }>(
      `SELECT octet_length(data_key) AS n FROM ${bound}.account_keys`,
    )
    expect(wrapped).toEqual([{ n: 32 + OVERHEAD }])
    // A database first opened without a store key keeps its data keys as they are, until a key is given.
    const keyless = fresh()
    const u = await openIn(keyless)
    const x = await register(u)
    await enqueue(u, x.address, 1, { size: 77 })
    expect(await admin(`SELECT octet_length(data_key) AS n FROM ${keyless}.account_keys`)).toEqual([
      { n: 32 },
    ])
    await u.close()
    const w = await openIn(keyless, { storeKey: k1 })
    expect(await admin(`SELECT octet_length(data_key) AS n FROM ${keyless}.account_keys`)).toEqual([
      { n: 32 + OVERHEAD },
    ])
    expect((await w.fetchMailbox(x.address, 1, 0, 10)).entries.map((e) => e.envelope.length)).toEqual([77])
    await expect(openIn(keyless)).rejects.toThrow(/bound to a store key/)
  })

  /** Creates `schema` as a relay of schema version `version` (2 or 3) left it, with plaintext rows. */
  async function plaintextDatabase(schema: string, version: 2 | 3) {
    await PostgresStore.migrateTo({ url: urlOf(schema) }, version)
    const q = (sql: string, params: unknown[]) =>
      admin(sql.replace(/INTO (\w+)/, `INTO ${schema}.$1`), params)
    const b = (u: Uint8Array) => Buffer.from(u)
    const accounts = [0, 1, 2].map((i) => ({
      address: bytes(32),
      deviceId: i + 1,
      identityKey: bytes(32),
      spk: key(10 + i),
      kem: key(20 + i, 1184),
      commitment: i === 0 ? bytes(32) : null,
      verifier: i === 0 ? bytes(32) : null,
      otpks: [1, 2].map((keyId) => ({ keyId, publicKey: bytes(32) })),
      kems: [key(30 + i, 1184)],
      mail: i === 2 ? [] : [bytes(100 + i), bytes(5000), bytes(7)],
      // The third account's mail, seqs 1 to 4, expired (a gap record).
      head: i === 2 ? 4 : 3,
    }))
    for (const a of accounts) {
      const unread = a.mail.reduce((n, m) => n + m.length, 0)
      await admin(
        `INSERT INTO ${schema}.accounts (address, device_id, identity_key, signed_prekey_id, signed_prekey,
           signed_prekey_sig, kem_prekey_id, kem_prekey, kem_prekey_sig, mailbox_head_seq, mailbox_count,
           created_at_ms, number_commitment, delivery_verifier${version === 3 ? ', mailbox_bytes' : ''})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 5, $12, $13${version === 3 ? ', $14' : ''})`,
        [
          b(a.address),
          a.deviceId,
          b(a.identityKey),
          a.spk.keyId,
          b(a.spk.publicKey),
          b(a.spk.signature),
          a.kem.keyId,
          b(a.kem.publicKey),
          b(a.kem.signature),
          a.head,
          a.mail.length,
          a.commitment && b(a.commitment),
          a.verifier && b(a.verifier),
          ...(version === 3 ? [unread] : []),
        ],
      )
      for (const k of a.otpks) {
        await q('INSERT INTO one_time_prekeys VALUES ($1, $2, $3)', [b(a.address), k.keyId, b(k.publicKey)])
      }
      for (const k of a.kems) {
        await q('INSERT INTO kem_prekeys VALUES ($1, $2, $3, $4)', [
          b(a.address),
          k.keyId,
          b(k.publicKey),
          b(k.signature),
        ])
      }
      for (const [i, m] of a.mail.entries()) {
        await q('INSERT INTO mailbox VALUES ($1, $2, $3, $4, $5, $6)', [
          b(a.address),
          a.deviceId,
          i + 1,
          b(bytes(16)),
          b(m),
          Date.now(),
        ])
      }
    }
    await q("INSERT INTO mailbox_gaps VALUES ($1, $2, 1, 4, 'expired', $3)", [
      b(accounts[2]!.address),
      3,
      Date.now(),
    ])
    // Mail of an address with no account (no relay writes this: erasure takes it with the account).
    const orphan = bytes(3000)
    await q('INSERT INTO mailbox VALUES ($1, 1, 1, $2, $3, 1)', [b(bytes(32)), b(bytes(16)), b(orphan)])
    return { accounts, orphan }
  }

  for (const version of [3, 2] as const) {
    it(`migrates a version-${version} database with plaintext rows: every value sealed, every read the same`, async () => {
      const schema = fresh()
      const { accounts, orphan } = await plaintextDatabase(schema, version)
      const plainText = await dump(schema)
      expect(plainText).toContain(hex(accounts[0]!.identityKey))
      const s = await openIn(schema, { storeKey: storeKey() })
      expect(await s.schemaVersion()).toBe(PG_SCHEMA_VERSION)
      const text = await dump(schema)
      const secrets = accounts.flatMap((a) => [
        a.identityKey,
        a.spk.publicKey,
        a.spk.signature,
        a.kem.publicKey,
        a.kem.signature,
        ...a.otpks.map((k) => k.publicKey),
        ...a.kems.flatMap((k) => [k.publicKey, k.signature]),
        ...(a.commitment ? [a.commitment, a.verifier!] : []),
        ...a.mail,
      ])
      expect(secrets.filter((v) => text.includes(hex(v.subarray(0, 16))))).toEqual([])
      expect(text).not.toContain(hex(orphan.subarray(0, 16)))
      expect(await admin(`SELECT 1 FROM ${schema}.account_keys`)).toHaveLength(3)
      for (const a of accounts) {
        const account = (await s.getAccount(a.address))!
        expect(account.deviceId).toBe(a.deviceId)
        expect(hex(account.identityKey)).toBe(hex(a.identityKey))
        expect(hex(account.numberCommitment)).toBe(a.commitment ? hex(a.commitment) : '')
        expect(hex(account.deliveryVerifier)).toBe(a.verifier ? hex(a.verifier) : '')
        const page = await s.fetchMailbox(a.address, a.deviceId, 0, 10)
        expect(page.entries.map((e) => hex(e.envelope))).toEqual(a.mail.map(hex))
        expect(page.headSeq).toBe(a.head)
        // Migration 3 (from version 2) counted the plaintext bytes; migration 4 kept them.
        const [row] = await admin<{ bytes: string }>(
          `SELECT mailbox_bytes AS bytes FROM ${schema}.accounts WHERE address = $1`,
          [Buffer.from(a.address)],
        )
        const unread = a.mail.reduce((n, m) => n + m.length, 0)
        expect(Number(row!.bytes)).toBe(unread)
        expect(
          await s.enqueue({
            address: a.address,
            deviceId: a.deviceId,
            messageId: bytes(16),
            envelope: bytes(10),
            receivedAtMs: Date.now(),
            maxMessages: 100,
            maxBytes: unread + 9,
          }),
        ).toEqual({ status: 'full', limit: 'bytes' })
        const bundle = (await s.takePrekeyBundle(a.address))!
        expect(hex(bundle.signedPrekey.signature)).toBe(hex(a.spk.signature))
        expect(hex(bundle.oneTimePrekey!.publicKey)).toBe(hex(a.otpks[0]!.publicKey))
        expect(hex(bundle.kemPrekey.publicKey)).toBe(hex(a.kems[0]!.publicKey))
        const second = (await s.takePrekeyBundle(a.address))!
        expect(hex(second.kemPrekey.signature)).toBe(hex(a.kem.signature))
      }
      expect((await s.fetchMailbox(accounts[2]!.address, 3, 0, 10)).gaps).toEqual([
        { firstSeq: 1, lastSeq: 4, reason: 'expired' },
      ])
      // Erasure after the migration takes the migrated key with it.
      expect(await s.deleteAccount(accounts[0]!.address)).toBe(true)
      expect(await admin(`SELECT 1 FROM ${schema}.account_keys`)).toHaveLength(2)
    })
  }
})
