// MultiRecipientSend (one group message to several accounts, docs/architecture.md §6.10) against a relay process,
// scripted with the raw frame client as a sender who holds some recipients' delivery tokens and wants more: each
// recipient is authorised by its own token and charged as its own unidentified send, a refused recipient leaves
// the others' copies stored, a malformed recipient refuses the whole request with nothing stored, and a request
// is no cheaper per recipient than one send each; a message sealed once is stored as each device's part followed
// by the shared bytes, and shared bytes that make no envelope refuse the request. Checked on answers, mailbox
// heads and /metrics.
import { randomBytes } from 'node:crypto'
import {
  createSenderKey,
  deliveryTokenVerifier,
  generateIdentity,
  joinSealed,
  parleyErrorFromWire,
  type ServerFrame,
  sealForDevices,
  senderKeyEncrypt,
} from '@parley/protocol'
import {
  type Account,
  activate,
  expectError,
  Identity,
  login,
  messageId,
  prekeys,
  RawClient,
  type RelayProcess,
  sealedShape,
  shapePayload,
  spawnDevRelay,
} from '@parley/relay/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { metric, scrape } from './relayDb.js'

const equal = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b))

const MAX_RECIPIENTS = 4
const NETWORK_CAPACITY = 30
/** The network byte budget of this relay (no refill): room for nine 100 KB copies. */
const BYTES_CAPACITY = 1_000_000
let nextNetwork = 60
/** A source network (/24) of its own, so each test's unidentified network budget is its own. */
const freshNetwork = () => ({ localAddress: `127.0.${nextNetwork++}.1` })

interface Recipient {
  account: Account
  token: Uint8Array
  client: RawClient
}

describe('MultiRecipientSend: a group message to several accounts, on a relay process', () => {
  let relay: RelayProcess
  let numbers = 300
  const recipients: Recipient[] = []

  beforeAll(async () => {
    relay = await spawnDevRelay([
      '--max-recipients-per-send',
      String(MAX_RECIPIENTS),
      '--unidentified-network-capacity',
      String(NETWORK_CAPACITY),
      '--unidentified-network-per-minute',
      '1',
      '--unidentified-network-bytes-capacity',
      String(BYTES_CAPACITY),
      '--unidentified-network-bytes-per-minute',
      '1',
      '--frames-burst',
      '1000',
      '--frames-per-second',
      '1000',
    ])
    for (let i = 0; i < 5; i++) {
      const identity = new Identity()
      const c = await RawClient.open(relay.url, { localAddress: '127.0.9.1' })
      const account = await activate(
        c,
        relay,
        `+1415555${String(numbers++).padStart(4, '0')}`,
        identity,
        prekeys(identity),
      )
      c.close()
      const { client } = await login(relay.url, account)
      const token = new Uint8Array(randomBytes(32))
      await client.request({ setDeliveryToken: { verifier: deliveryTokenVerifier(token) } })
      // Synced, so new mail is pushed to this connection.
      await client.request({ syncMailbox: { afterSeq: 0 } })
      recipients.push({ account, token, client })
    }
  })
  afterAll(async () => {
    for (const r of recipients) r.client.close()
    await relay?.stop()
  })

  /** One recipient entry: its own message id and envelope, with its token unless told otherwise. */
  const entry = (
    r: Recipient,
    over: { token?: Uint8Array; version?: number; envelope?: Uint8Array } = {},
  ) => ({
    recipientAddress: r.account.address,
    messageId: messageId(),
    deviceListVersion: over.version ?? 0,
    envelopes: [
      { deviceId: r.account.deviceId, envelope: over.envelope ?? sealedShape(`to ${r.account.number}`) },
    ],
    deliveryToken: over.token ?? r.token,
  })
  const heads = async () => {
    const out: number[] = []
    for (const r of recipients) {
      const { client, head } = await login(relay.url, r.account)
      client.close()
      out.push(head)
    }
    return out
  }
  const counts = async () => {
    const m = await scrape(relay.metricsUrl)
    return {
      stored: metric(m, 'parley_relay_multi_recipient_recipients_total', { outcome: 'stored' }),
      refused: metric(m, 'parley_relay_multi_recipient_recipients_total', { outcome: 'refused' }),
      accepted: metric(m, 'parley_relay_messages_accepted_total'),
    }
  }
  const send = (
    c: RawClient,
    entries: (ReturnType<typeof entry> & { ephemeral?: boolean })[],
  ): Promise<ServerFrame> => c.request({ multiRecipientSend: { recipients: entries } })

  it('stores each recipient its own copy under its own message id, pushed to its connection', async () => {
    const [alice, bob, carol] = recipients
    const before = await counts()
    const anon = await RawClient.open(relay.url, freshNetwork())
    const entries = [entry(alice!), entry(bob!), entry(carol!)]
    const answer = (await send(anon, entries)).multiRecipientAccepted!
    expect(answer.outcomes.map((o) => [o.messageId, o.error])).toEqual(
      entries.map((e) => [e.messageId, undefined]),
    )
    for (const [i, r] of [alice!, bob!, carol!].entries()) {
      const d = (await r.client.push((f) => f.body === 'delivery')).delivery!
      expect(d.messageId).toEqual(entries[i]!.messageId)
      expect(new TextDecoder().decode(shapePayload(d.envelope!))).toBe(`to ${r.account.number}`)
    }
    const after = await counts()
    expect([after.stored - before.stored, after.refused - before.refused]).toEqual([3, 0])
    expect(after.accepted - before.accepted).toBe(3)
    anon.close()
  })

  it('stores part ‖ shared in each mailbox for a message sealed once, and refuses a shared part that makes no envelope', async () => {
    const [alice, bob, carol] = recipients
    const sender = generateIdentity()
    const { shared, parts } = sealForDevices({
      senderAddress: new Uint8Array(randomBytes(32)),
      senderDeviceId: 1,
      senderIdentity: sender,
      recipientIdentityKeys: [
        generateIdentity().publicKey,
        generateIdentity().publicKey,
        generateIdentity().publicKey,
      ],
      message: { kind: 'senderKey', body: senderKeyEncrypt(createSenderKey(), new Uint8Array(200)).message },
      senderCertificate: new Uint8Array(120),
    })
    const before = { counts: await counts(), heads: await heads() }
    const anon = await RawClient.open(relay.url, freshNetwork())
    const entries = [alice!, bob!, carol!].map((r, i) => entry(r, { envelope: parts[i]! }))
    const request = (over: { shared?: Uint8Array; entries?: typeof entries } = {}) =>
      anon.request({
        multiRecipientSend: { recipients: over.entries ?? entries, shared: over.shared ?? shared },
      })
    // The shared bytes with a version-1 field, a part that is already a whole envelope, the shared bytes alone
    // (no part), and shared bytes over the envelope limit: each refuses the whole request, nothing stored.
    const withV1Field = new Uint8Array([...shared, 0x1a, 48, ...new Uint8Array(48)])
    await expectError(request({ shared: withV1Field }), 'BAD_REQUEST')
    await expectError(
      request({ entries: [entry(alice!, { envelope: joinSealed(parts[0]!, shared) })] }),
      'BAD_REQUEST',
    )
    await expectError(request({ entries: [entry(alice!, { envelope: new Uint8Array() })] }), 'BAD_REQUEST')
    await expectError(request({ shared: new Uint8Array(256 * 1024 + 1) }), 'TOO_LARGE')
    const mid = { counts: await counts(), heads: await heads() }
    expect(mid.heads).toEqual(before.heads)
    expect(mid.counts).toEqual(before.counts)

    const answer = (await request()).multiRecipientAccepted!
    expect(answer.outcomes.map((o) => o.error)).toEqual([undefined, undefined, undefined])
    for (const [i, r] of [alice!, bob!, carol!].entries()) {
      const d = (
        await r.client.push(
          (f) => f.body === 'delivery' && equal(f.delivery!.messageId!, entries[i]!.messageId),
        )
      ).delivery!
      expect(Buffer.from(d.envelope!).equals(Buffer.from(joinSealed(parts[i]!, shared)))).toBe(true)
    }
    const after = await counts()
    expect([after.stored - before.counts.stored, after.refused - before.counts.refused]).toEqual([3, 0])
    anon.close()
  })

  it("answers each refused recipient on its own, and stores the others' copies", async () => {
    const [alice, bob, carol] = recipients
    const before = { counts: await counts(), heads: await heads() }
    const anon = await RawClient.open(relay.url, freshNetwork())
    const entries = [
      entry(alice!, { token: new Uint8Array(32) }), // a token guessed
      entry(bob!, { version: 7 }), // a device list it does not have
      entry(carol!),
    ]
    const outcomes = (await send(anon, entries)).multiRecipientAccepted!.outcomes
    const refusal = (i: number) => outcomes[i]!.error && parleyErrorFromWire(outcomes[i]!.error)
    expect(refusal(0)?.code).toBe('FORBIDDEN')
    expect(refusal(1)?.code).toBe('STALE_DEVICES')
    expect(refusal(1)?.deviceListVersion).toBe(0)
    expect(outcomes[2]!.error).toBeUndefined()
    const after = { counts: await counts(), heads: await heads() }
    expect(after.heads.map((h, i) => h - before.heads[i]!)).toEqual([0, 0, 1, 0, 0])
    expect(after.counts.stored - before.counts.stored).toBe(1)
    expect(after.counts.refused - before.counts.refused).toBe(2)
    anon.close()
  })

  it('refuses the whole request, storing nothing, for a malformed or oversized one, or on a logged-in connection', async () => {
    const [alice, bob, carol, dave, erin] = recipients
    const before = { counts: await counts(), heads: await heads() }
    const anon = await RawClient.open(relay.url, freshNetwork())
    // The last recipient's envelope is not a sealed envelope: nothing of the first two is stored either.
    await expectError(
      send(anon, [entry(alice!), entry(bob!), entry(carol!, { envelope: new Uint8Array([1, 2, 3]) })]),
      'BAD_REQUEST',
    )
    await expectError(send(anon, [entry(alice!), entry(alice!)]), 'BAD_REQUEST')
    await expectError(
      send(anon, [entry(alice!), { ...entry(bob!), deliveryToken: new Uint8Array(31) }]),
      'BAD_REQUEST',
    )
    await expectError(send(anon, [entry(alice!), { ...entry(bob!), ephemeral: true }]), 'BAD_REQUEST')
    await expectError(send(anon, []), 'BAD_REQUEST')
    await expectError(
      send(
        anon,
        recipients.map((r) => entry(r)),
      ),
      'TOO_LARGE',
    )
    // A logged-in sender cannot use it: it would name itself beside every recipient.
    await expectError(send(dave!.client, [entry(erin!)]), 'BAD_REQUEST')
    const after = { counts: await counts(), heads: await heads() }
    expect(after.heads).toEqual(before.heads)
    expect(after.counts).toEqual(before.counts)
    anon.close()
  })

  it('charges the source network every stored copy of a shared part: read once, written per recipient, bounded by bytes', async () => {
    // This relay's network byte budget is 1 MB with no refill: a 100 KB shared part to 4 holders of real tokens
    // is 400 KB a request, so the third request stores 2 of its 4 copies and the rest are RATE_LIMITED.
    const sender = generateIdentity()
    const { shared, parts } = sealForDevices({
      senderAddress: new Uint8Array(randomBytes(32)),
      senderDeviceId: 1,
      senderIdentity: sender,
      recipientIdentityKeys: recipients.slice(0, MAX_RECIPIENTS).map(() => generateIdentity().publicKey),
      message: {
        kind: 'senderKey',
        body: senderKeyEncrypt(createSenderKey(), new Uint8Array(100_000)).message,
      },
      senderCertificate: new Uint8Array(120),
    })
    const perCopy = parts[0]!.length + shared.length
    expect(perCopy).toBeGreaterThan(100_000)
    const anon = await RawClient.open(relay.url, freshNetwork())
    const before = metric(await scrape(relay.metricsUrl), 'parley_relay_rate_limited_total', {
      scope: 'unidentified_network_bytes',
    })
    let stored = 0
    let limited = 0
    for (let i = 0; i < 3; i++) {
      const entries = recipients.slice(0, MAX_RECIPIENTS).map((r, j) => entry(r, { envelope: parts[j]! }))
      const outcomes = (await anon.request({ multiRecipientSend: { recipients: entries, shared } }))
        .multiRecipientAccepted!.outcomes
      for (const o of outcomes) {
        if (o.error === undefined) stored++
        else {
          expect(parleyErrorFromWire(o.error).code).toBe('RATE_LIMITED')
          limited++
        }
      }
    }
    expect(stored).toBe(Math.floor(BYTES_CAPACITY / perCopy))
    expect(limited).toBe(3 * MAX_RECIPIENTS - stored)
    const after = metric(await scrape(relay.metricsUrl), 'parley_relay_rate_limited_total', {
      scope: 'unidentified_network_bytes',
    })
    expect(after - before).toBe(limited)
    anon.close()
  })

  it('charges the source network once per recipient: a request is no cheaper than one send each', async () => {
    const anon = await RawClient.open(relay.url, freshNetwork())
    const group = recipients.slice(0, MAX_RECIPIENTS)
    let stored = 0
    let limited = 0
    for (let i = 0; i < Math.ceil(NETWORK_CAPACITY / MAX_RECIPIENTS) + 1; i++) {
      const outcomes = (
        await send(
          anon,
          group.map((r) => entry(r)),
        )
      ).multiRecipientAccepted!.outcomes
      for (const o of outcomes) {
        if (o.error === undefined) stored++
        else {
          expect(parleyErrorFromWire(o.error).code).toBe('RATE_LIMITED')
          limited++
        }
      }
    }
    // The network's bucket held NETWORK_CAPACITY sends: exactly that many recipients got a copy.
    expect(stored).toBe(NETWORK_CAPACITY)
    expect(limited).toBe(
      (Math.ceil(NETWORK_CAPACITY / MAX_RECIPIENTS) + 1) * MAX_RECIPIENTS - NETWORK_CAPACITY,
    )
    anon.close()
  })
})

describe('MultiRecipientSend with a shared part, as an attacker who wants the relay to copy it 500 times', () => {
  let relay: RelayProcess
  beforeAll(async () => {
    relay = await spawnDevRelay([])
  })
  afterAll(async () => {
    await relay?.stop()
  })

  it("costs the relay one recipient's copies at a time, not 500 copies of a 240 KiB shared part per frame", async () => {
    // Shared bytes of the largest size a frame leaves room for, shaped as a version-2 envelope's shared part, and
    // 500 recipients (the default --max-recipients-per-send) with made-up addresses and tokens: nothing is stored,
    // but before the fix the relay joined every copy up front (500 × 240 KiB = 120 MiB per frame).
    const shared = new Uint8Array([
      0x12,
      32,
      ...randomBytes(32),
      0x22,
      ...[0x80, 0x80, 0x0f], // 240 KiB
      ...randomBytes(240 * 1024),
    ])
    const part = new Uint8Array([0x08, 2, 0x2a, 32, ...randomBytes(32), 0x32, 16, ...randomBytes(16)])
    const recipients = () =>
      Array.from({ length: 500 }, () => ({
        recipientAddress: new Uint8Array(randomBytes(32)),
        messageId: messageId(),
        deviceListVersion: 0,
        envelopes: [{ deviceId: 1, envelope: part }],
        deliveryToken: new Uint8Array(randomBytes(32)),
      }))
    const rss = async () => metric(await scrape(relay.metricsUrl), 'process_resident_memory_bytes')
    const before = await rss()
    let answered = 0
    let stored = 0
    await Promise.all(
      Array.from({ length: 4 }, async (_, i) => {
        const anon = await RawClient.open(relay.url, { localAddress: `127.0.${200 + i}.1` })
        for (let k = 0; k < 2; k++) {
          const outcomes = (await anon.request({ multiRecipientSend: { recipients: recipients(), shared } }))
            .multiRecipientAccepted!.outcomes
          answered += outcomes.length
          stored += outcomes.filter((o) => o.error === undefined).length
        }
        anon.close()
      }),
    )
    const growthMb = (await rss()) - before
    console.log('[reliability] shared-part amplification', {
      answered,
      stored,
      rssGrowthMb: Math.round(growthMb / 2 ** 20),
    })
    expect([answered, stored]).toEqual([4000, 0])
    // Eight frames of 500 copies each would be 960 MiB joined up front; one recipient's copies are 240 KiB.
    expect(growthMb).toBeLessThan(96 * 2 ** 20)
  })
})
