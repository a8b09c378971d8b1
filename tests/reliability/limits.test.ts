// Resource limits (issue 10): maximum frame size, mailbox limit, TTL expiry with a gap notice that reaches the
// SDK's `gap` event, maximum connections per account — each hit, handled, and counted in /metrics.
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { createClient, type MailboxGapEvent } from '@parley/node'
import { encodeClientFrame } from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Account,
  activate,
  expectError,
  login,
  messageId,
  RawClient,
  type SpawnedRelay,
  spawnRelay,
} from '../../apps/relay/test/helpers.js'
import { activatedClient, CodeInbox, clientDir, startRelay, until } from '../contract/harness.js'
import { metric, scrape } from './relayDb.js'

const send = (c: RawClient, to: Account, bytes = 64) =>
  c.request({
    sendMessage: {
      recipientAddress: to.address,
      recipientDeviceId: to.deviceId,
      messageId: messageId(),
      envelope: new Uint8Array(randomBytes(bytes)),
    },
  })

describe('resource limits on a relay process', () => {
  let relay: SpawnedRelay
  let alice: Account
  let bob: Account
  let a: RawClient

  beforeAll(async () => {
    relay = await spawnRelay([
      '--max-frame-bytes',
      String(64 * 1024),
      '--max-envelope-bytes',
      String(32 * 1024),
      '--max-mailbox-messages',
      '5',
      '--max-connections-per-account',
      '2',
    ])
    a = await RawClient.open(relay.url)
    alice = await activate(a, relay, '+14155550180')
    const b = await RawClient.open(relay.url)
    bob = await activate(b, relay, '+14155550181')
    b.close()
  })
  afterAll(async () => {
    a?.close()
    await relay?.stop()
  })

  it('answers a frame over --max-frame-bytes with TOO_LARGE, closes one over twice that (1009), counts both', async () => {
    const c = await RawClient.open(relay.url)
    c.sendRaw(encodeClientFrame({ requestId: 3, ping: {} }, Number.MAX_SAFE_INTEGER))
    const big = encodeClientFrame(
      { requestId: 4, sendMessage: { envelope: new Uint8Array(70 * 1024) } },
      Number.MAX_SAFE_INTEGER,
    )
    c.sendRaw(big)
    const err = await c.push((f) => f.body === 'error')
    expect(err.error!.code).toBe(4) // TOO_LARGE
    expect((await c.request({ ping: {} })).body).toBe('pong')
    c.sendRaw(new Uint8Array(129 * 1024))
    expect(await c.closed).toBe(1009)
    const m = await scrape(relay.httpUrl)
    expect(metric(m, 'parley_relay_errors_total', { code: 'TOO_LARGE' })).toBeGreaterThanOrEqual(1)
    expect(metric(m, 'parley_relay_connections_closed_total', { reason: 'too_large' })).toBe(1)
    // An envelope over --max-envelope-bytes inside a frame that fits: TOO_LARGE from the handler.
    await expectError(send(a, bob, 40 * 1024), 'TOO_LARGE')
  })

  it('evicts the oldest mail beyond --max-mailbox-messages and reports the evicted range as a gap', async () => {
    for (let i = 0; i < 8; i++) await send(a, bob)
    const { client: b } = await login(relay.url, bob)
    await b.request({ syncMailbox: { afterSeq: 0 } })
    const gaps = b.pushes.filter((f) => f.body === 'mailboxGap').map((f) => f.mailboxGap!)
    expect(gaps).toEqual([expect.objectContaining({ firstSeq: 1, lastSeq: 3, reason: 2 })]) // EVICTED
    expect(b.deliveries().map((d) => d.seq)).toEqual([4, 5, 6, 7, 8])
    expect(metric(await scrape(relay.httpUrl), 'parley_relay_messages_evicted_total')).toBe(3)
    b.close()
  })

  it('refuses a third concurrent connection of one device (--max-connections-per-account 2), counted', async () => {
    const first = await login(relay.url, bob)
    const second = await login(relay.url, bob)
    const err = await expectError(login(relay.url, bob), 'RATE_LIMITED')
    expect(err.retryAfterMs).toBeGreaterThan(0)
    expect(
      metric(await scrape(relay.httpUrl), 'parley_relay_rate_limited_total', {
        scope: 'connections_account',
      }),
    ).toBe(1)
    // Another account is not affected, and closing one connection frees a slot.
    ;(await login(relay.url, alice)).client.close()
    first.client.close()
    await first.client.closed
    await until(async () => {
      try {
        ;(await login(relay.url, bob)).client.close()
        return true
      } catch {
        return false
      }
    }, 5000)
    second.client.close()
  })
})

describe('TTL expiry: the gap reaches the SDK', () => {
  const codes = new CodeInbox()
  const dir = clientDir()

  beforeAll(() => codes.start())
  afterAll(() => codes.close())

  it('expires mail after --message-ttl-seconds and raises `gap` with reason "expired" in the SDK', async () => {
    const relay = await startRelay(codes, ['--message-ttl-seconds', '1', '--sweep-interval-seconds', '1'])
    try {
      const alice = await activatedClient(relay, codes, '+1 415 555 0182')
      const bob = await activatedClient(relay, codes, '+1 415 555 0183', { storePath: join(dir, 'bob.db') })
      await bob.close()
      await alice.discover(['+1 415 555 0183'])
      for (let i = 0; i < 3; i++) await alice.send('+1 415 555 0183', `lost ${i}`)
      await until(async () => (await alice.pendingCount()) === 0, 10_000, 'accepted')
      await until(
        async () => metric(await scrape(relay.httpUrl), 'parley_relay_messages_expired_total') >= 3,
        10_000,
        'expiry sweep',
      )
      const gaps: MailboxGapEvent[] = []
      const bob2 = await createClient({
        relayUrl: relay.url,
        storePath: join(dir, 'bob.db'),
        defaultRegion: 'US',
      })
      bob2.on('gap', (g) => gaps.push(g))
      await until(() => gaps.length > 0, 10_000, 'gap event')
      expect(gaps).toEqual([{ firstSeq: 1, lastSeq: 3, reason: 'expired' }])
      expect(await bob2.history()).toEqual([])
      await bob2.close()
      await alice.close()
    } finally {
      await relay.stop()
    }
  })
})
