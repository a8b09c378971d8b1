// The mail paths under attack (security review): syncing sockets that never read must not make the relay hold
// whole mailboxes in memory, and acks must be bounded per frame and per connection. Everything is asserted by
// counts from /metrics, never by timings.
import { encodeClientFrame, parleyErrorFromWire } from '@parley/protocol'
import {
  type Account,
  activate,
  expectError,
  junkEnvelope,
  login,
  messageId,
  RawClient,
  type RelayProcess,
  spawnDevRelay,
} from '@parley/relay/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HIGH_WATER_BYTES, PAGE_BYTES } from '../../apps/relay/src/Connection.js'
import { until } from '../contract/harness.js'
import { report } from './config.js'
import { metric, scrape } from './relayDb.js'

const send = (c: RawClient, to: Account, bytes: number) =>
  c.request({
    sendMessage: {
      recipientAddress: to.address,
      recipientDeviceId: to.deviceId,
      messageId: messageId(),
      envelope: junkEnvelope(bytes),
    },
  })

const range = (first: number, n: number) => Array.from({ length: n }, (_, i) => first + i)

describe('syncing sockets that never read', () => {
  /** More than the kernel's socket buffers and the high-water mark together, so every socket stalls. */
  const MESSAGES = 80
  const ENVELOPE = 200 * 1024
  const SOCKETS = 7
  let relay: RelayProcess

  beforeAll(async () => {
    relay = await spawnDevRelay(['--max-connections-per-account', String(SOCKETS + 1)])
  })
  afterAll(async () => {
    await relay?.stop()
  })

  it(`hold at most the high-water mark plus one page each (${SOCKETS} sockets, ${MESSAGES} × 200 KiB)`, async () => {
    const s = await RawClient.open(relay.url)
    await activate(s, relay, '+14155550190')
    const c = await RawClient.open(relay.url)
    const attacker = await activate(c, relay, '+14155550191')
    for (let i = 0; i < MESSAGES; i++) await send(s, attacker, ENVELOPE)
    const rss = async () => metric(await scrape(relay.metricsUrl), 'process_resident_memory_bytes')
    const rssBefore = await rss()

    // Each socket asks for the whole mailbox and stops reading.
    const sockets: RawClient[] = []
    for (let i = 0; i < SOCKETS; i++) {
      const { client } = await login(relay.url, attacker)
      client.ws.pause()
      client.ws.send(encodeClientFrame({ requestId: 1000 + i, syncMailbox: { afterSeq: 0 } }))
      sockets.push(client)
    }
    // Every one of them ends up paused above the high-water mark, its mailbox not nearly sent.
    await until(
      async () =>
        metric(await scrape(relay.metricsUrl), 'parley_relay_pushes_paused_connections') === SOCKETS,
      30_000,
      'every socket paused',
    )
    const m = await scrape(relay.metricsUrl)
    const figures = {
      pageBytesMax: metric(m, 'parley_relay_mailbox_page_bytes_max'),
      heldBytesMax: metric(m, 'parley_relay_push_held_bytes_max'),
      pages: metric(m, 'parley_relay_mailbox_pages_total'),
      delivered: metric(m, 'parley_relay_messages_delivered_total'),
      rssGrowthMb: Math.round((metric(m, 'process_resident_memory_bytes') - rssBefore) / 2 ** 20),
    }
    report('syncing sockets that never read', { sockets: SOCKETS, messages: MESSAGES, ...figures })
    // Pages are cut by bytes: as many whole 200 KiB envelopes as fit PAGE_BYTES, and never fewer than one.
    expect(figures.pageBytesMax).toBeLessThanOrEqual(Math.max(PAGE_BYTES, ENVELOPE))
    expect(figures.pageBytesMax).toBe(Math.max(1, Math.floor(PAGE_BYTES / ENVELOPE)) * ENVELOPE)
    // What any one socket held for its pushes (unsent data + the unsent rest of its page): within the documented
    // bound, plus the few bytes of one Delivery frame's header.
    expect(figures.heldBytesMax).toBeGreaterThan(HIGH_WATER_BYTES)
    expect(figures.heldBytesMax).toBeLessThanOrEqual(HIGH_WATER_BYTES + PAGE_BYTES + 1024)
    expect(figures.delivered).toBeLessThan(SOCKETS * MESSAGES)
    expect(metric(m, 'parley_relay_connections_closed_total', { reason: 'slow_consumer' })).toBe(0)

    // Once they read again, each gets every message exactly once, in order, and the sync completes.
    for (const client of sockets) client.ws.resume()
    for (const [i, client] of sockets.entries()) {
      const done = await client.push((f) => f.requestId === 1000 + i, 60_000)
      expect(done.syncDone!.headSeq).toBe(MESSAGES)
      expect(client.deliveries().map((d) => d.seq)).toEqual(range(1, MESSAGES))
    }
    const after = await scrape(relay.metricsUrl)
    expect(metric(after, 'parley_relay_pushes_paused_connections')).toBe(0)
    expect(metric(after, 'parley_relay_messages_delivered_total')).toBe(SOCKETS * MESSAGES)
    expect(metric(after, 'parley_relay_mailbox_page_bytes_max')).toBeLessThanOrEqual(PAGE_BYTES)
    expect(metric(after, 'parley_relay_push_held_bytes_max')).toBeLessThanOrEqual(
      HIGH_WATER_BYTES + PAGE_BYTES + 1024,
    )
    for (const client of [s, c, ...sockets]) client.close()
  })
})

describe('huge and rapid acks', () => {
  let relay: RelayProcess
  let bob: Account
  let a: RawClient

  beforeAll(async () => {
    // A refill of one seq per second: over a burst, the budget is its capacity (2 × 500), whatever the timing.
    relay = await spawnDevRelay(['--acks-per-second', '1'])
    a = await RawClient.open(relay.url)
    await activate(a, relay, '+14155550192')
    const b = await RawClient.open(relay.url)
    bob = await activate(b, relay, '+14155550193')
    b.close()
    for (let i = 0; i < 30; i++) await send(a, bob, 154)
  })
  afterAll(async () => {
    a?.close()
    await relay?.stop()
  })

  it('refuses an AckMessages over --max-acks-per-frame (500) with TOO_LARGE, deleting nothing and charging nothing', async () => {
    const { client } = await login(relay.url, bob)
    const huge = await expectError(client.request({ ackMessages: { seqs: range(1, 10_000) } }), 'TOO_LARGE')
    expect(huge.message).toMatch(/500/)
    await expectError(client.request({ ackMessages: { seqs: range(1, 501) } }), 'TOO_LARGE')
    const m = await scrape(relay.metricsUrl)
    expect(metric(m, 'parley_relay_errors_total', { code: 'TOO_LARGE' })).toBe(2)
    expect(metric(m, 'parley_relay_messages_acked_total')).toBe(0)
    expect(metric(m, 'parley_relay_rate_limited_total', { scope: 'acks' })).toBe(0)
    // The whole budget is still there: two full frames pass on this connection.
    expect((await client.request({ ackMessages: { seqs: range(1, 500) } })).acked!.count).toBe(30)
    expect((await client.request({ ackMessages: { seqs: range(501, 500) } })).acked!.count ?? 0).toBe(0)
    client.close()
    // The refused acks deleted nothing before that: all 30 messages were still there to delete.
    expect(metric(await scrape(relay.metricsUrl), 'parley_relay_messages_acked_total')).toBe(30)
    for (let i = 0; i < 30; i++) await send(a, bob, 154)
  })

  it('refuses acks beyond the per-connection budget (burst 2 × 500) with RATE_LIMITED, counted', async () => {
    const before = await scrape(relay.metricsUrl)
    const acked = metric(before, 'parley_relay_messages_acked_total')
    const { client } = await login(relay.url, bob)
    // 20 frames of 500 distinct seqs (31..60 are mail), all sent before the first answer arrives.
    const answers = await Promise.all(
      range(0, 20).map((i) => client.send({ ackMessages: { seqs: range(31 + i * 500, 500) } })),
    )
    const passed = answers.filter((f) => f.body === 'acked')
    const refused = answers.filter((f) => f.body === 'error')
    expect(passed).toHaveLength(2)
    expect(refused).toHaveLength(18)
    expect(passed.map((f) => f.acked!.count ?? 0)).toEqual([30, 0])
    for (const f of refused) {
      const err = parleyErrorFromWire(f.error!)
      expect(err.code).toBe('RATE_LIMITED')
      expect(err.retryAfterMs).toBeGreaterThan(0)
    }
    // The connection stays usable, and the refusals are counted by scope.
    expect((await client.request({ ping: {} })).body).toBe('pong')
    const m = await scrape(relay.metricsUrl)
    expect(metric(m, 'parley_relay_rate_limited_total', { scope: 'acks' })).toBe(18)
    expect(metric(m, 'parley_relay_errors_total', { code: 'RATE_LIMITED' })).toBe(18)
    expect(metric(m, 'parley_relay_messages_acked_total') - acked).toBe(30)
    client.close()
  })
})
