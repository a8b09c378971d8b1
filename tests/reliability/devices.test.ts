// Linked devices against a real relay process (docs/architecture.md §9), as an attacker and as a crash:
// 1. A modified relay that writes a device of its own into an account (a linked_devices row with a bundle, and a
//    device_lists row naming it) gets no ciphertext for that device: the sender verifies the list against the
//    identity it pinned and refuses it. The relay plays itself here, by writing into its own running database.
// 2. The relay SIGKILLed during a fan-out (a contact writing to a phone and its linked laptop, the phone writing
//    back with sent transcripts to the laptop) loses and duplicates nothing on any device.
import { join } from 'node:path'
import type { IncomingMessage, ParleyClient, SendFailedEvent } from '@parley/node'
import {
  generateIdentity,
  generateKemPrekey,
  generateOneTimePrekeys,
  generateSignedPrekey,
  type IdentityKeyPair,
  signDeviceList,
} from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  activatedClient,
  CodeInbox,
  clientDir,
  nodeClient,
  type Relay,
  startRelay,
  until,
} from '../contract/harness.js'
import { RUN, report, timeoutFor } from './config.js'
import { Database } from './deps.js'
import { CONSISTENT, checkRelayDb, metric, scrape } from './relayDb.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo))
const moments = (n: number, lo: number, hi: number) =>
  Array.from({ length: n }, () => rand(lo, hi)).sort((a, b) => a - b)

/** The messages each client is shown, in order. */
function inbox(client: ParleyClient): IncomingMessage[] {
  const seen: IncomingMessage[] = []
  client.on('message', (m) => seen.push(m))
  return seen
}

/** Opens the running relay's database as a second writer (WAL: the relay keeps serving), runs `fn`, closes it. */
/** A record of a client's Node store (`kv` table; JSON with bytes as {$b64}), read while the client runs. */
function withClientDb(path: string, key: string): unknown {
  const db = new Database(path, { readonly: true })
  try {
    const row = db.prepare('SELECT value FROM kv WHERE key = ?').get(key) as { value: Buffer }
    return JSON.parse(row.value.toString('utf8'), (_k, v) =>
      v !== null && typeof v === 'object' && typeof v.$b64 === 'string'
        ? new Uint8Array(Buffer.from(v.$b64, 'base64'))
        : v,
    )
  } finally {
    db.close()
  }
}

function withRelayDb<T>(relay: Relay, fn: (db: InstanceType<typeof Database>) => T): T {
  const db = new Database(join(relay.dataDir, 'relay.db'))
  try {
    db.pragma('busy_timeout = 10000')
    return db.transaction(() => fn(db))()
  } finally {
    db.close()
  }
}

interface AccountRow {
  address: Buffer
  device_id: number
  max_device_id: number
  identity_key: Buffer
}

describe('a device list the account did not sign, written by a modified relay', () => {
  const ALICE = '+1 415 555 0180'
  const BOB = '+1 415 555 0181'
  const codes = new CodeInbox()
  const dir = clientDir()
  let relay: Relay
  let alice: ParleyClient
  let bob: ParleyClient
  let aliceAddress: Buffer
  const got = { alice: [] as IncomingMessage[], bob: [] as IncomingMessage[] }
  const failed: SendFailedEvent[] = []
  const bobSawDevices: number[][] = []

  const account = (): AccountRow =>
    withRelayDb(
      relay,
      (db) =>
        db
          .prepare('SELECT address, device_id, max_device_id, identity_key FROM accounts WHERE address = ?')
          .get(aliceAddress) as AccountRow,
    )

  /**
   * The modified relay adds `attacker` as device `deviceId` of alice's account: the device row with a signed
   * prekey and a last-resort KEM key (so a bundle exists), one one-time prekey and one one-time KEM prekey, and
   * `list` as the account's stored device list at `version`.
   */
  function plant(deviceId: number, attacker: IdentityKeyPair, list: Uint8Array, version: number): void {
    const spk = generateSignedPrekey(attacker, 1)
    const lastResort = generateKemPrekey(attacker, 1)
    const [otp] = generateOneTimePrekeys(1, 1)
    const kem = generateKemPrekey(attacker, 2)
    withRelayDb(relay, (db) => {
      db.prepare(
        `INSERT INTO linked_devices (address, device_id, device_key, signed_prekey_id, signed_prekey,
           signed_prekey_sig, kem_prekey_id, kem_prekey, kem_prekey_sig, created_at_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        aliceAddress,
        deviceId,
        Buffer.from(attacker.publicKey),
        spk.keyId,
        Buffer.from(spk.publicKey),
        Buffer.from(spk.signature),
        lastResort.keyId,
        Buffer.from(lastResort.publicKey),
        Buffer.from(lastResort.signature),
        Date.now(),
      )
      db.prepare(
        'INSERT INTO linked_one_time_prekeys (address, device_id, key_id, public_key) VALUES (?, ?, ?, ?)',
      ).run(aliceAddress, deviceId, otp!.keyId, Buffer.from(otp!.publicKey))
      db.prepare(
        'INSERT INTO linked_kem_prekeys (address, device_id, key_id, public_key, signature) VALUES (?, ?, ?, ?, ?)',
      ).run(aliceAddress, deviceId, kem.keyId, Buffer.from(kem.publicKey), Buffer.from(kem.signature))
      db.prepare('INSERT OR REPLACE INTO device_lists (address, version, list) VALUES (?, ?, ?)').run(
        aliceAddress,
        version,
        Buffer.from(list),
      )
    })
  }

  /** Takes the planted device out again and puts back the device list the account had (or none). */
  function unplant(deviceId: number, genuine: { version: number; list: Buffer } | undefined): void {
    withRelayDb(relay, (db) => {
      for (const t of ['linked_devices', 'linked_one_time_prekeys', 'linked_kem_prekeys', 'mailbox']) {
        db.prepare(`DELETE FROM ${t} WHERE address = ? AND device_id = ?`).run(aliceAddress, deviceId)
      }
      db.prepare('DELETE FROM device_lists WHERE address = ?').run(aliceAddress)
      if (genuine) {
        db.prepare('INSERT INTO device_lists (address, version, list) VALUES (?, ?, ?)').run(
          aliceAddress,
          genuine.version,
          genuine.list,
        )
      }
    })
  }

  const storedList = () =>
    withRelayDb(
      relay,
      (db) =>
        db.prepare('SELECT version, list FROM device_lists WHERE address = ?').get(aliceAddress) as
          | { version: number; list: Buffer }
          | undefined,
    )

  /** What the relay holds for one device of alice's: mail, and one-time prekeys not yet handed out. */
  const heldFor = (deviceId: number) =>
    withRelayDb(relay, (db) => {
      const n = (sql: string) => (db.prepare(sql).get(aliceAddress, deviceId) as { n: number }).n
      return {
        mail: n('SELECT count(*) AS n FROM mailbox WHERE address = ? AND device_id = ?'),
        oneTimePrekeys: n(
          'SELECT count(*) AS n FROM linked_one_time_prekeys WHERE address = ? AND device_id = ?',
        ),
        kemPrekeys: n('SELECT count(*) AS n FROM linked_kem_prekeys WHERE address = ? AND device_id = ?'),
      }
    })

  /**
   * Bob writes to alice once and waits until the message left his outbox; resolves how it failed (null if it was
   * delivered) and how many prekey bundles the relay handed out meanwhile.
   */
  async function bobSends(text: string): Promise<{ failure: string | null; bundlesServed: number }> {
    const before = metric(await scrape(relay.metricsUrl), 'parley_relay_prekey_bundles_served_total')
    const sent = await bob.send(ALICE, text)
    await until(async () => (await bob.pendingCount()) === 0, 20_000, `"${text}" to leave bob's outbox`)
    const after = metric(await scrape(relay.metricsUrl), 'parley_relay_prekey_bundles_served_total')
    const failure = failed.find((f) => f.id === sent.id)
    return { failure: failure ? failure.error.code : null, bundlesServed: after - before }
  }

  beforeAll(async () => {
    await codes.start()
    relay = await startRelay(codes)
    alice = await activatedClient(relay, codes, ALICE, { storePath: join(dir, 'alice.db') })
    bob = await activatedClient(relay, codes, BOB, { storePath: join(dir, 'bob.db') })
    got.alice = inbox(alice)
    got.bob = inbox(bob)
    bob.on('sendFailed', (e) => failed.push(e))
    bob.on('devicesChanged', (e) => bobSawDevices.push(e.deviceIds))
    expect((await alice.discover([BOB]))[0]!.registered).toBe(true)
    expect((await bob.discover([ALICE]))[0]!.registered).toBe(true)
    // One message each way: bob has pinned alice's identity and holds a session with her primary.
    await alice.send(BOB, 'hello bob')
    await until(() => got.bob.length === 1, 20_000, 'hello to bob')
    await bob.send(ALICE, 'hello alice')
    await until(() => got.alice.length === 1, 20_000, 'hello to alice')
    aliceAddress = Buffer.from(got.bob[0]!.fromAddress, 'hex')
  })

  afterAll(async () => {
    await alice?.close()
    await bob?.close()
    await relay?.close()
    await codes.close()
  })

  it("refuses a list signed by the relay's key naming alice's real primary and the relay's device", async () => {
    const row = account()
    const attacker = generateIdentity()
    const attackerId = row.max_device_id + 1
    const version = Date.now()
    const list = signDeviceList(
      {
        address: aliceAddress,
        version,
        devices: [
          { deviceId: row.device_id, deviceKey: new Uint8Array(row.identity_key) },
          { deviceId: attackerId, deviceKey: attacker.publicKey },
        ],
      },
      attacker.secretKey,
    )
    plant(attackerId, attacker, list, version)
    const aliceBefore = got.alice.length
    try {
      const result = await bobSends('to alice, past the planted device')
      // The relay refused bob's one-device send (STALE_DEVICES: alice "has" a linked device); bob fetched the list,
      // which does not verify under alice's pinned identity: VERIFICATION_FAILED, and nothing was sent anywhere.
      // One assertion, so that a failure shows all of it: the code, the bundles handed out, and what the relay holds
      // for its device (no mail; its one-time prekeys still there, so no bundle of it was handed out).
      expect({ ...result, ...heldFor(attackerId) }).toEqual({
        failure: 'VERIFICATION_FAILED',
        bundlesServed: 0,
        mail: 0,
        oneTimePrekeys: 1,
        kemPrekeys: 1,
      })
      expect(got.alice.length).toBe(aliceBefore)
    } finally {
      unplant(attackerId, undefined)
    }
    expect(bobSawDevices).toEqual([])
    // With the relay honest again, bob reaches alice as before.
    expect(await bobSends('to alice, after the cleanup')).toEqual({ failure: null, bundlesServed: 0 })
    await until(() => got.alice.length === aliceBefore + 1, 20_000, 'alice to receive')
  })

  it('refuses a replayed older genuine list that still holds a removed device', async () => {
    // A genuine list v1 with a laptop, then v2 without it; bob sees both.
    const laptop = await nodeClient(relay, { storePath: join(dir, 'laptop.db') })
    const laptopGot = inbox(laptop)
    try {
      const invitation = await alice.createLinkCode()
      await laptop.link(invitation.code)
      const { deviceId: laptopId } = await invitation.linked
      expect(await bobSends('to both of alice')).toEqual({ failure: null, bundlesServed: 1 })
      await until(() => laptopGot.length === 1, 20_000, 'the laptop to receive')
      const v1 = storedList()!
      const saved = withRelayDb(relay, (db) => ({
        device: db
          .prepare('SELECT * FROM linked_devices WHERE address = ? AND device_id = ?')
          .get(aliceAddress, laptopId),
        otps: db
          .prepare('SELECT * FROM linked_one_time_prekeys WHERE address = ? AND device_id = ? LIMIT 5')
          .all(aliceAddress, laptopId),
      })) as { device: Record<string, unknown>; otps: Record<string, unknown>[] }
      await alice.removeDevice(laptopId)
      const aliceBefore = got.alice.length
      expect(await bobSends('to alice alone')).toMatchObject({ failure: null })
      await until(() => got.alice.length === aliceBefore + 1, 20_000, 'alice to receive')
      expect(bobSawDevices.at(-1)).toEqual([account().device_id])
      const v2 = storedList()!
      expect(v2.version).toBeGreaterThan(v1.version)
      // The modified relay serves v1 again and puts the removed laptop (keys and all) back.
      withRelayDb(relay, (db) => {
        const insert = (table: string, r: Record<string, unknown>) => {
          const cols = Object.keys(r)
          db.prepare(
            `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
          ).run(...cols.map((c) => r[c]))
        }
        insert('linked_devices', { ...saved.device, mailbox_head_seq: 0, mailbox_count: 0, mailbox_bytes: 0 })
        for (const otp of saved.otps) insert('linked_one_time_prekeys', otp)
        db.prepare('UPDATE device_lists SET version = ?, list = ? WHERE address = ?').run(
          v1.version,
          v1.list,
          aliceAddress,
        )
      })
      const heldBefore = heldFor(laptopId)
      const laptopBefore = laptopGot.length
      const result = await bobSends('to alice, past the replayed list')
      expect(result).toEqual({ failure: 'VERIFICATION_FAILED', bundlesServed: 0 })
      expect(heldFor(laptopId)).toEqual({ ...heldBefore, mail: 0 })
      expect(laptopGot.length).toBe(laptopBefore)
      unplant(laptopId, v2)
    } finally {
      await laptop.close()
    }
  })

  it('waits for a device of a genuine list that has no prekeys yet, and reaches it once it has: nothing dropped', async () => {
    // Alice's primary signs a list with a new device that has not uploaded its prekeys yet (the moment between a
    // link and the new device's first upload). The relay here is honest; the list is written straight into its
    // store with alice's identity, read from her device's store, as her phone would publish it.
    const record = withClientDb(join(dir, 'alice.db'), 'account') as {
      identity: { publicKey: Uint8Array; secretKey: Uint8Array }
    }
    const r = account()
    const device = generateIdentity()
    const deviceId = r.max_device_id + 1
    const version = Date.now()
    const list = signDeviceList(
      {
        address: aliceAddress,
        version,
        devices: [
          { deviceId: r.device_id, deviceKey: record.identity.publicKey },
          { deviceId, deviceKey: device.publicKey },
        ],
      },
      record.identity.secretKey,
    )
    withRelayDb(relay, (db) => {
      db.prepare(
        'INSERT INTO linked_devices (address, device_id, device_key, created_at_ms) VALUES (?, ?, ?, ?)',
      ).run(aliceAddress, deviceId, Buffer.from(device.publicKey), Date.now())
      // As the relay records every id an account used: no later device takes this one.
      db.prepare('UPDATE accounts SET max_device_id = ? WHERE address = ?').run(deviceId, aliceAddress)
      db.prepare('INSERT OR REPLACE INTO device_lists (address, version, list) VALUES (?, ?, ?)').run(
        aliceAddress,
        version,
        Buffer.from(list),
      )
    })
    const notFound = async () =>
      metric(await scrape(relay.metricsUrl), 'parley_relay_errors_total', { code: 'NOT_FOUND' })
    const failedBefore = failed.length
    const refusedBefore = await notFound()
    try {
      const sent = await bob.send(ALICE, 'to alice and her device to come')
      // Bob asks for the new device's bundle, is told there is none yet, and asks again later.
      await until(async () => (await notFound()) >= refusedBefore + 2, 30_000, 'two refused bundle requests')
      expect(await bob.pendingCount()).toBe(1)
      expect(failed.length).toBe(failedBefore)
      expect(heldFor(deviceId).mail).toBe(0)
      // The device uploads its prekeys (written as the relay's store would keep them).
      const spk = generateSignedPrekey(device, 1)
      const lastResort = generateKemPrekey(device, 1)
      withRelayDb(relay, (db) => {
        db.prepare(
          `UPDATE linked_devices SET signed_prekey_id = ?, signed_prekey = ?, signed_prekey_sig = ?, kem_prekey_id = ?,
             kem_prekey = ?, kem_prekey_sig = ? WHERE address = ? AND device_id = ?`,
        ).run(
          spk.keyId,
          Buffer.from(spk.publicKey),
          Buffer.from(spk.signature),
          lastResort.keyId,
          Buffer.from(lastResort.publicKey),
          Buffer.from(lastResort.signature),
          aliceAddress,
          deviceId,
        )
      })
      await until(async () => (await bob.pendingCount()) === 0, 30_000, "bob's message to leave his outbox")
      expect(failed.length).toBe(failedBefore)
      expect(heldFor(deviceId).mail).toBe(1)
      await until(() => got.alice.some((m) => m.id === sent.id), 20_000, 'alice to receive it')
    } finally {
      // As alice would remove the device: a newer list without it (restoring the older one would be a rollback,
      // which bob rightly refuses).
      const after = Date.now()
      const without = signDeviceList(
        {
          address: aliceAddress,
          version: after,
          devices: [{ deviceId: r.device_id, deviceKey: record.identity.publicKey }],
        },
        record.identity.secretKey,
      )
      unplant(deviceId, { version: after, list: Buffer.from(without) })
    }
  })

  it("gives no ciphertext to the relay's device when a stranger's key signs a list naming it alone beside a primary", async () => {
    // A list signed by a third key, which (as signing requires) it names as the primary, with the attacker device
    // as the only other one: to bob it reads as alice having activated again with a new identity.
    const r = account()
    const stranger = generateIdentity()
    const attacker = generateIdentity()
    const attackerId = r.max_device_id + 1
    const genuine = storedList()
    const version = Date.now()
    const list = signDeviceList(
      {
        address: aliceAddress,
        version,
        devices: [
          { deviceId: r.device_id, deviceKey: stranger.publicKey },
          { deviceId: attackerId, deviceKey: attacker.publicKey },
        ],
      },
      stranger.secretKey,
    )
    plant(attackerId, attacker, list, version)
    const aliceBefore = got.alice.length
    const changesBefore = bobSawDevices.length
    let result: Awaited<ReturnType<typeof bobSends>>
    try {
      result = await bobSends('to alice, past the stranger list')
      // To bob the list reads as alice having activated again with a new identity; he takes it only if alice's
      // primary's own bundle carries that identity too. It carries alice's pinned one: refused before any copy
      // (the attacker's included) was sealed or sent, and the list is not kept.
      expect(result.failure).toBe('VERIFICATION_FAILED')
      expect(heldFor(attackerId)).toEqual({ mail: 0, oneTimePrekeys: 1, kemPrekeys: 1 })
      expect(got.alice.length).toBe(aliceBefore)
      expect(bobSawDevices.length).toBe(changesBefore)
    } finally {
      unplant(attackerId, genuine)
    }
    // Once the relay is honest again, bob reaches alice: the forged list left nothing behind (no raised version
    // floor, no stored devices) that would block his later sends.
    const after = await bobSends('to alice, after the stranger list')
    expect(after.failure).toBeNull()
    await until(
      () => got.alice.length === aliceBefore + 1,
      20_000,
      'alice to receive after the stranger list',
    )
    report('planted device lists', { stranger: result, after, devicesChangedSeenByBob: bobSawDevices })
  })
})

describe('the relay SIGKILLed during a fan-out to linked devices', () => {
  const ALICE = '+1 415 555 0182'
  const BOB = '+1 415 555 0183'
  const N = Number(process.env.PARLEY_DEVICES_MESSAGES || (RUN.full ? 2_000 : 300))
  const codes = new CodeInbox()
  const dir = clientDir()
  let relay: Relay
  let phone: ParleyClient
  let laptop: ParleyClient
  let bob: ParleyClient
  const got = {
    phone: [] as IncomingMessage[],
    laptop: [] as IncomingMessage[],
    bob: [] as IncomingMessage[],
  }

  beforeAll(async () => {
    await codes.start()
    relay = await startRelay(codes)
    phone = await activatedClient(relay, codes, ALICE, { storePath: join(dir, 'phone.db') })
    bob = await activatedClient(relay, codes, BOB, { storePath: join(dir, 'bob.db') })
    laptop = await nodeClient(relay, { storePath: join(dir, 'laptop.db') })
    got.phone = inbox(phone)
    got.laptop = inbox(laptop)
    got.bob = inbox(bob)
    const invitation = await phone.createLinkCode()
    await laptop.link(invitation.code)
    await invitation.linked
    expect((await phone.discover([BOB]))[0]!.registered).toBe(true)
    expect((await bob.discover([ALICE]))[0]!.registered).toBe(true)
    // Sessions first (bob with both devices, the phone with bob and its laptop), so the run measures crashes.
    await phone.send(BOB, 'hello bob')
    await until(
      () => got.bob.length === 1 && got.laptop.length === 1,
      20_000,
      'hello to bob and its transcript',
    )
    await bob.send(ALICE, 'hello alice')
    await until(() => got.phone.length === 1 && got.laptop.length === 2, 20_000, 'hello to both devices')
    for (const seen of Object.values(got)) seen.length = 0
  })

  afterAll(async () => {
    await Promise.all([phone?.close(), laptop?.close(), bob?.close()])
    await relay?.close()
    await codes.close()
  })

  /** Checks that `got` holds exactly `prefix0 … prefix(n-1)`, in order, with distinct ids. */
  function exactlyOnceInOrder(seen: IncomingMessage[], prefix: string, n: number) {
    const lost = n - new Set(seen.map((m) => m.text)).size
    const duplicated = seen.length - new Set(seen.map((m) => m.id)).size
    expect({ prefix, lost, duplicated }).toEqual({ prefix, lost: 0, duplicated: 0 })
    expect(seen.map((m) => m.text)).toEqual(Array.from({ length: n }, (_, i) => `${prefix}${i}`))
    return { lost, duplicated }
  }

  it(
    `delivers ${N} messages to a phone and its laptop, and ${N / 2} back with transcripts, across ${RUN.relayKills} SIGKILLs`,
    async () => {
      const half = Math.floor(N / 2)
      const started = Date.now()
      let reconnects = 0
      for (const c of [phone, laptop, bob]) c.on('connection', (e) => e.state === 'online' && reconnects++)
      const sendAll = async (from: ParleyClient, to: string, prefix: string, count: number) => {
        for (let i = 0; i < count; i++) {
          await from.send(to, `${prefix}${i}`)
          if (i % 25 === 24) await sleep(5)
        }
      }
      const sending = Promise.all([sendAll(bob, ALICE, 'b', N), sendAll(phone, BOB, 'p', half)])
      // Bob's N reach two devices; the phone's half reach bob and, as transcripts, the laptop.
      const expected = 2 * N + 2 * half
      const received = () => got.phone.length + got.laptop.length + got.bob.length
      let restarts = 0
      for (const at of moments(RUN.relayKills, expected * 0.05, expected * 0.9)) {
        await until(() => received() >= at, timeoutFor(60_000, 300_000), `${at} received before a kill`)
        await sleep(rand(0, 40))
        await relay.stop('SIGKILL')
        await sleep(rand(0, 250))
        await relay.start()
        restarts++
      }
      await sending
      await until(
        () => received() >= expected,
        timeoutFor(90_000, 600_000),
        `all ${expected} deliveries (have ${received()})`,
      )
      await until(
        async () =>
          (await phone.pendingCount()) + (await laptop.pendingCount()) + (await bob.pendingCount()) === 0,
        30_000,
        'empty outboxes',
      )
      await sleep(500) // a duplicate would arrive now
      const transcripts = got.laptop.filter((m) => m.to !== undefined)
      const results = [
        exactlyOnceInOrder(got.phone, 'b', N),
        exactlyOnceInOrder(
          got.laptop.filter((m) => m.to === undefined),
          'b',
          N,
        ),
        exactlyOnceInOrder(got.bob, 'p', half),
        exactlyOnceInOrder(transcripts, 'p', half),
      ]
      for (const t of transcripts) expect(t.toAddress).toBe(got.phone[0]!.fromAddress)
      // Mail of a linked device left in the file is legitimate: the laptop goes offline, bob writes a few more,
      // the phone reads them, and the database is checked with the laptop's copies still in it.
      const TAIL = 5
      await laptop.close()
      await sendAll(bob, ALICE, 't', TAIL)
      await until(() => got.phone.length === N + TAIL, 20_000, 'the tail to the phone')
      await until(async () => (await bob.pendingCount()) === 0, 20_000, "bob's outbox")
      // The online devices ack in batches: wait until every copy but the laptop's is acked (a count, not a delay).
      const unackedOnline = () => {
        const db = new Database(join(relay.dataDir, 'relay.db'), { readonly: true })
        try {
          return (
            db
              .prepare(
                `SELECT count(*) AS n FROM mailbox m WHERE NOT EXISTS
                   (SELECT 1 FROM linked_devices l WHERE l.address = m.address AND l.device_id = m.device_id)`,
              )
              .get() as { n: number }
          ).n
        } finally {
          db.close()
        }
      }
      await until(() => unackedOnline() === 0, 20_000, 'the online devices to ack')
      await relay.stop()
      const db = checkRelayDb(relay.dataDir)
      expect(db).toMatchObject(CONSISTENT)
      expect(db.mail).toBe(TAIL)
      report('relay SIGKILL during fan-out', {
        bobToAlice: N,
        phoneToBob: half,
        deliveries: received(),
        restartsSurvived: restarts,
        clientReconnects: reconnects,
        lost: results.reduce((n, r) => n + r.lost, 0),
        duplicated: results.reduce((n, r) => n + r.duplicated, 0),
        mailLeft: db.mail,
        seconds: (Date.now() - started) / 1000,
      })
      expect(restarts).toBe(RUN.relayKills)
    },
    timeoutFor(120_000, 900_000),
  )
})
