// Resource limits (issue 10): maximum frame size, mailbox limits, TTL expiry with a gap notice that reaches the
// SDK's `gap` event, maximum connections per account — each hit, handled, and counted in /metrics. Plus the
// mailbox-flooding attack from the security review, run as the attacker's script against a relay process.
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { createClient, type MailboxGapEvent } from '@parley/node'
import { deliveryTokenVerifier, encodeClientFrame, type ParleyError } from '@parley/protocol'
import {
  type Account,
  activate,
  expectError,
  junkEnvelope,
  login,
  messageId,
  RawClient,
  type RelayProcess,
  sealedShape,
  shapeText,
  spawnDevRelay,
} from '@parley/relay/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activatedClient, CodeInbox, clientDir, startRelay, until } from '../contract/harness.js'
import { report } from './config.js'
import { Database } from './deps.js'
import { CONSISTENT, checkRelayDb, metric, scrape } from './relayDb.js'

const send = (c: RawClient, to: Account, bytes = 154) =>
  c.request({
    sendMessage: {
      recipientAddress: to.address,
      recipientDeviceId: to.deviceId,
      messageId: messageId(),
      envelope: junkEnvelope(bytes),
    },
  })

describe('resource limits on a relay process', () => {
  let relay: RelayProcess
  let alice: Account
  let bob: Account
  let a: RawClient

  beforeAll(async () => {
    relay = await spawnDevRelay([
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
    const m = await scrape(relay.metricsUrl)
    expect(metric(m, 'parley_relay_errors_total', { code: 'TOO_LARGE' })).toBeGreaterThanOrEqual(1)
    expect(metric(m, 'parley_relay_connections_closed_total', { reason: 'too_large' })).toBe(1)
    // An envelope over --max-envelope-bytes inside a frame that fits: TOO_LARGE from the handler.
    await expectError(send(a, bob, 40 * 1024), 'TOO_LARGE')
  })

  it('refuses mail beyond --max-mailbox-messages with MAILBOX_FULL, keeping the oldest (no eviction, no gap)', async () => {
    for (let i = 0; i < 5; i++) await send(a, bob)
    for (let i = 0; i < 3; i++) {
      const err = await expectError(send(a, bob), 'MAILBOX_FULL')
      expect(err.retryAfterMs).toBeGreaterThan(0)
    }
    const { client: b } = await login(relay.url, bob)
    await b.request({ syncMailbox: { afterSeq: 0 } })
    expect(b.pushes.filter((f) => f.body === 'mailboxGap')).toEqual([])
    expect(b.deliveries().map((d) => d.seq)).toEqual([1, 2, 3, 4, 5])
    const m = await scrape(relay.metricsUrl)
    expect(metric(m, 'parley_relay_mailbox_full_total', { limit: 'messages' })).toBe(3)
    expect(metric(m, 'parley_relay_errors_total', { code: 'MAILBOX_FULL' })).toBe(3)
    expect(metric(m, 'parley_relay_messages_evicted_total')).toBe(0)
    // Reading makes room again.
    await b.request({ ackMessages: { seqs: [1, 2] } })
    await send(a, bob)
    await send(a, bob)
    await expectError(send(a, bob), 'MAILBOX_FULL')
    b.close()
  })

  it('refuses a third concurrent connection of one device (--max-connections-per-account 2), counted', async () => {
    const first = await login(relay.url, bob)
    const second = await login(relay.url, bob)
    const err = await expectError(login(relay.url, bob), 'RATE_LIMITED')
    expect(err.retryAfterMs).toBeGreaterThan(0)
    expect(
      metric(await scrape(relay.metricsUrl), 'parley_relay_rate_limited_total', {
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

describe('mailbox flooding (security review): one account fills a victim’s mailbox with junk', () => {
  const LIMIT = 1024 * 1024 // --max-mailbox-bytes
  const JUNK = 16 * 1024 // each junk envelope, well-formed so that the shape check cannot tell it from mail
  const REAL = 5
  const args = ['--max-mailbox-bytes', String(LIMIT)]

  it('refuses the flood with MAILBOX_FULL once the byte quota is reached: the earlier real mail all stays', async () => {
    let relay = await spawnDevRelay(args)
    const dataDir = relay.dataDir
    try {
      const friend = await RawClient.open(relay.url)
      await activate(friend, relay, '+14155550184')
      const victimConn = await RawClient.open(relay.url)
      const victim = await activate(victimConn, relay, '+14155550185')
      const token = new Uint8Array(randomBytes(32))
      await victimConn.request({ setDeliveryToken: { verifier: deliveryTokenVerifier(token) } })
      victimConn.close()
      const mallory = await RawClient.open(relay.url)
      await activate(mallory, relay, '+14155550186')

      // The victim's real mail, before the attack.
      const realTexts = Array.from({ length: REAL }, (_, i) => `real ${i}`)
      for (const text of realTexts) {
        await friend.request({
          sendMessage: {
            recipientAddress: victim.address,
            recipientDeviceId: victim.deviceId,
            messageId: messageId(),
            envelope: sealedShape(text),
          },
        })
      }

      // The attacker's script: junk until the relay says stop (the send quota, 600 a burst, is not what stops it).
      const junk = (envelope = junkEnvelope(JUNK)) =>
        mallory.request({
          sendMessage: {
            recipientAddress: victim.address,
            recipientDeviceId: victim.deviceId,
            messageId: messageId(),
            envelope,
          },
        })
      /** The same junk by unidentified delivery (with the victim's token), on a given connection. */
      const anonJunk = (c: RawClient, envelope = junkEnvelope(JUNK)) =>
        c.request({
          unidentifiedSend: {
            recipientAddress: victim.address,
            recipientDeviceId: victim.deviceId,
            messageId: messageId(),
            envelope,
            deliveryToken: token,
          },
        })
      let accepted = 0
      let refusal: ParleyError | undefined
      while (!refusal && accepted < 1000) {
        try {
          await junk()
          accepted++
        } catch (err) {
          refusal = err as ParleyError
        }
      }
      expect(refusal?.code).toBe('MAILBOX_FULL')
      expect(refusal!.retryAfterMs).toBeGreaterThan(0)
      expect(accepted).toBe(Math.floor((LIMIT - REAL * sealedShape(realTexts[0]!).length) / JUNK))
      // It keeps going, on both paths: every further message is refused, nothing is stored.
      let refusals = 1
      for (let i = 0; i < 20; i++) {
        await expectError(junk(), 'MAILBOX_FULL')
        refusals++
      }
      for (let i = 0; i < 10; i++) {
        const anon = await RawClient.open(relay.url)
        await expectError(anonJunk(anon), 'MAILBOX_FULL')
        refusals++
        anon.close()
      }
      // Bytes that are not a sealed envelope are refused before any of that, on both paths.
      await expectError(junk(new Uint8Array(randomBytes(JUNK))), 'BAD_REQUEST')
      const anon = await RawClient.open(relay.url)
      await expectError(anonJunk(anon, new TextEncoder().encode('not an envelope')), 'BAD_REQUEST')
      anon.close()

      const m = await scrape(relay.metricsUrl)
      expect(metric(m, 'parley_relay_mailbox_full_total', { limit: 'bytes' })).toBe(refusals)
      expect(metric(m, 'parley_relay_errors_total', { code: 'MAILBOX_FULL' })).toBe(refusals)
      expect(metric(m, 'parley_relay_unidentified_sends_total', { outcome: 'mailbox_full' })).toBe(10)
      expect(metric(m, 'parley_relay_malformed_envelopes_total')).toBe(2)
      expect(metric(m, 'parley_relay_messages_accepted_total')).toBe(REAL + accepted)
      expect(metric(m, 'parley_relay_messages_evicted_total')).toBe(0)

      // The victim's earlier real mail is all still there, first, with no gap.
      const { client: v } = await login(relay.url, victim)
      const done = await v.request({ syncMailbox: { afterSeq: 0 } })
      expect(done.syncDone!.headSeq).toBe(REAL + accepted)
      expect(v.pushes.filter((f) => f.body === 'mailboxGap')).toEqual([])
      const deliveries = v.deliveries()
      expect(deliveries).toHaveLength(REAL + accepted)
      expect(deliveries.slice(0, REAL).map((d) => shapeText(d.envelope!))).toEqual(realTexts)
      v.close()
      friend.close()
      mallory.close()

      // What the relay holds for the victim, from its database: within the quota, and the kept total is exact.
      await relay.stop()
      const db = new Database(join(dataDir, 'relay.db'), { readonly: true })
      const held = db
        .prepare(
          `SELECT a.mailbox_bytes AS kept, a.mailbox_count AS count,
             (SELECT sum(length(envelope)) FROM mailbox m WHERE m.address = a.address) AS stored
           FROM accounts a WHERE a.address = ?`,
        )
        .get(Buffer.from(victim.address)) as { kept: number; count: number; stored: number }
      db.close()
      expect(held.stored).toBeLessThanOrEqual(LIMIT)
      expect(held.stored).toBeGreaterThan(LIMIT - JUNK)
      expect(held.kept).toBe(held.stored)
      expect(held.count).toBe(REAL + accepted)
      expect(checkRelayDb(dataDir)).toMatchObject(CONSISTENT)
      report('mailbox flood', {
        limitBytes: LIMIT,
        junkAccepted: accepted,
        refused: refusals,
        realMailKept: `${REAL}/${REAL}`,
        bytesHeld: held.stored,
      })

      // The quota outlives a restart (it is in the account row); reading the mail makes room again.
      relay = await spawnDevRelay(args, dataDir)
      const again = await RawClient.open(relay.url)
      await expectError(anonJunk(again), 'MAILBOX_FULL')
      again.close()
      const { client: reader } = await login(relay.url, victim)
      const seqs = Array.from({ length: REAL + accepted }, (_, i) => i + 1)
      for (let i = 0; i < seqs.length; i += 500) {
        await reader.request({ ackMessages: { seqs: seqs.slice(i, i + 500) } })
      }
      const after = await RawClient.open(relay.url)
      expect((await anonJunk(after)).body).toBe('messageAccepted')
      after.close()
      reader.close()
    } finally {
      await relay.stop()
    }
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
        async () => metric(await scrape(relay.metricsUrl), 'parley_relay_messages_expired_total') >= 3,
        10_000,
        'expiry sweep',
      )
      const gaps: MailboxGapEvent[] = []
      const bob2 = await createClient({
        relayUrl: relay.baseUrl,
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
      await relay.close()
    }
  })
})
