// Unidentified delivery, verified contacts and replays, against a real relay process: once two contacts have
// written to each other, their mail goes on a connection that never authenticates, authorised by the
// recipient's delivery token, so the relay cannot attribute it; a wrong or rotated token is refused; a verified
// contact's new identity is held until approved; a replayed first message never resets a session.
import { join } from 'node:path'
import { type IncomingMessage, type ParleyClient, type ParleyError, SqliteStore } from '@parley/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { login, metric, RawConn, readDevice } from './attacker.js'
import { activatedClient, clientDir, until } from './harness.js'
import { useRelay } from './useRelay.js'

const hexBytes = (hex: string) => new Uint8Array(Buffer.from(hex, 'hex'))
const inbox = (c: ParleyClient) => {
  const got: IncomingMessage[] = []
  c.on('message', (m) => got.push(m))
  return got
}

const random = (n: number) => [...crypto.getRandomValues(new Uint8Array(n))]

/**
 * An unidentified send of junk shaped as a v1 sealed envelope (version 1, 32-byte ephemeral key, 48-byte sealed
 * sender key, random ciphertext): the relay checks only the shape, so it cannot tell it from a real one.
 */
const junkSend = (recipientAddress: Uint8Array, deliveryToken: Uint8Array) => ({
  unidentifiedSend: {
    recipientAddress,
    recipientDeviceId: 1,
    messageId: crypto.getRandomValues(new Uint8Array(16)),
    envelope: new Uint8Array([
      0x08,
      1,
      0x12,
      32,
      ...random(32),
      0x1a,
      48,
      ...random(48),
      0x22,
      110,
      ...random(110),
    ]),
    deliveryToken,
  },
})

/** A client over an existing store (an activated device starting again). */
async function reopen(relayUrl: string, storePath: string): Promise<ParleyClient> {
  const { createClient } = await import('@parley/node')
  return createClient({
    relayUrl,
    storePath,
    defaultRegion: 'US',
    reconnect: { minDelayMs: 50 },
    receipts: { delivery: false, read: false },
  })
}

async function storeValue(path: string, key: string): Promise<Uint8Array | undefined> {
  const store = SqliteStore.open(path)
  try {
    return await store.get(key)
  } finally {
    await store.close()
  }
}

describe('unidentified delivery', () => {
  const env = useRelay()
  const dir = clientDir()
  let alice: ParleyClient
  let bob: ParleyClient
  let aliceGot: IncomingMessage[]
  let bobGot: IncomingMessage[]
  const A = '+14155550180'
  const B = '+14155550181'

  beforeAll(async () => {
    // Receipts off: they are unidentified sends too, and would make the counts below depend on their timing.
    const receipts = { delivery: false, read: false }
    alice = await activatedClient(env.relay, env.codes, A, { storePath: join(dir, 'alice.db'), receipts })
    bob = await activatedClient(env.relay, env.codes, B, { storePath: join(dir, 'bob.db'), receipts })
    aliceGot = inbox(alice)
    bobGot = inbox(bob)
    await alice.send(B, 'first, identified')
    await until(() => bobGot.length === 1, 15_000, 'the first message')
    await bob.send(A, 'reply, identified: carries my token')
    await until(() => aliceGot.length === 1, 15_000, 'the reply')
  }, 60_000)
  afterAll(async () => {
    await alice?.close()
    await bob?.close()
  })

  it('delivers later messages without the relay learning the sender: no sender in frames, metrics or logs', async () => {
    const logFrom = env.relay.output.length
    const before = {
      stored: await metric(
        env.relay.metricsUrl,
        'parley_relay_unidentified_sends_total',
        '{outcome="stored"}',
      ),
      send: await metric(env.relay.metricsUrl, 'parley_relay_frames_total', '{type="sendMessage"}'),
      ud: await metric(env.relay.metricsUrl, 'parley_relay_frames_total', '{type="unidentifiedSend"}'),
      auth: await metric(env.relay.metricsUrl, 'parley_relay_frames_total', '{type="authenticate"}'),
    }
    for (let i = 0; i < 10; i++) await alice.send(B, `hidden ${i}`)
    await until(() => bobGot.length === 11, 15_000, 'ten unidentified messages')
    // bob may show a message before alice has recorded the relay's acceptance of it.
    await until(async () => (await alice.pendingCount()) === 0, 15_000, 'alice to see every send accepted')
    expect(bobGot.slice(1).map((m) => m.text)).toEqual(Array.from({ length: 10 }, (_, i) => `hidden ${i}`))
    expect(bobGot.slice(1).every((m) => m.from === A)).toBe(true) // the recipient still knows, end to end
    expect(alice.stats.unidentifiedSent).toBe(10)
    const after = {
      stored: await metric(
        env.relay.metricsUrl,
        'parley_relay_unidentified_sends_total',
        '{outcome="stored"}',
      ),
      send: await metric(env.relay.metricsUrl, 'parley_relay_frames_total', '{type="sendMessage"}'),
      ud: await metric(env.relay.metricsUrl, 'parley_relay_frames_total', '{type="unidentifiedSend"}'),
      auth: await metric(env.relay.metricsUrl, 'parley_relay_frames_total', '{type="authenticate"}'),
    }
    expect(after.stored - before.stored).toBe(10)
    expect(after.ud - before.ud).toBe(10)
    expect(after.send - before.send).toBe(0) // none went on alice's authenticated connection
    expect(after.auth - before.auth).toBe(0) // the connection they went on never authenticated
    // Nothing the relay says about them names alice.
    const aliceHex = alice.address!
    const metrics = await (await fetch(env.relay.metricsUrl)).text()
    expect(metrics.includes(aliceHex)).toBe(false)
    expect(env.relay.output.slice(logFrom).join('\n').includes(aliceHex)).toBe(false)
    expect(env.relay.output.slice(logFrom).join('\n').includes(aliceHex.slice(0, 16))).toBe(false)
  })

  it('refuses a wrong token with FORBIDDEN, stores nothing, and counts it', async () => {
    const conn = await RawConn.open(env.relay.baseUrl)
    const forbidden = await metric(
      env.relay.metricsUrl,
      'parley_relay_unidentified_sends_total',
      '{outcome="forbidden"}',
    )
    const stored = await metric(
      env.relay.metricsUrl,
      'parley_relay_unidentified_sends_total',
      '{outcome="stored"}',
    )
    const attempt = (token: Uint8Array, address = hexBytes(bob.address!)) =>
      conn
        .request({
          ...junkSend(address, token),
        })
        .then(
          () => 'accepted',
          (e: ParleyError) => e.code,
        )
    expect(await attempt(crypto.getRandomValues(new Uint8Array(32)))).toBe('FORBIDDEN')
    // The same answer for an address with no account: the path does not reveal who is registered.
    expect(
      await attempt(crypto.getRandomValues(new Uint8Array(32)), crypto.getRandomValues(new Uint8Array(32))),
    ).toBe('FORBIDDEN')
    conn.close()
    expect(
      (await metric(env.relay.metricsUrl, 'parley_relay_unidentified_sends_total', '{outcome="forbidden"}')) -
        forbidden,
    ).toBe(2)
    expect(
      await metric(env.relay.metricsUrl, 'parley_relay_unidentified_sends_total', '{outcome="stored"}'),
    ).toBe(stored)
  })

  it('keeps the two paths apart: no unidentified send after authenticating, no authenticating after one', async () => {
    await alice.close()
    const keys = await readDevice(join(dir, 'alice.db'))
    const token = (await storeValue(join(dir, 'alice.db'), `delivery/peer/${bob.address}`))!
    expect(token).toHaveLength(32)
    const body = () => junkSend(hexBytes(bob.address!), token)
    const authed = await login(env.relay.baseUrl, keys)
    expect(await authed.request(body()).catch((e: ParleyError) => e.code)).toBe('BAD_REQUEST')
    authed.close()
    const anon = await RawConn.open(env.relay.baseUrl)
    await anon.request(body()) // accepted: junk inside, but a valid token (bob will refuse the contents)
    const err = await anon
      .request({
        authenticate: { address: keys.address, deviceId: keys.deviceId, signature: new Uint8Array(64) },
      })
      .catch((e: ParleyError) => e.code)
    expect(err).toBe('BAD_REQUEST')
    anon.close()
    alice = await reopen(env.relay.baseUrl, join(dir, 'alice.db'))
    aliceGot = inbox(alice)
  })

  it('a rotated token is refused; the sender falls back to the authenticated path and nothing is lost', async () => {
    const oldToken = (await storeValue(join(dir, 'alice.db'), `delivery/peer/${bob.address}`))!
    await bob.rotateDeliveryToken()
    const conn = await RawConn.open(env.relay.baseUrl)
    const code = await conn.request(junkSend(hexBytes(bob.address!), oldToken)).then(
      () => 'accepted',
      (e: ParleyError) => e.code,
    )
    conn.close()
    expect(code).toBe('FORBIDDEN')
    const sentBefore = alice.stats.unidentifiedSent
    const count = bobGot.length
    await alice.send(B, 'after rotation')
    await until(() => bobGot.length === count + 1, 15_000, 'the message after the rotation')
    await until(async () => (await alice.pendingCount()) === 0, 15_000, 'alice to see it accepted')
    expect(bobGot.at(-1)!.text).toBe('after rotation')
    expect(alice.stats.unidentifiedSent).toBe(sentBefore) // it went identified
    // Bob's next message carries the new token; alice's mail is unidentified again.
    await bob.send(A, 'new token inside')
    await until(() => aliceGot.length >= 1, 15_000, 'bob’s message')
    await alice.send(B, 'hidden again')
    await until(() => bobGot.length === count + 2, 15_000, 'the next message')
    await until(async () => (await alice.pendingCount()) === 0, 15_000, 'alice to see it accepted')
    expect(alice.stats.unidentifiedSent).toBe(sentBefore + 1)
  })
})

describe('a verified contact whose identity changes', () => {
  const env = useRelay()
  const dir = clientDir()

  it('holds its messages and refuses sends to it until the new identity is approved', async () => {
    const A = '+14155550190'
    const B = '+14155550191'
    const alice = await activatedClient(env.relay, env.codes, A, { storePath: join(dir, 'alice.db') })
    const bob = await activatedClient(env.relay, env.codes, B, { storePath: join(dir, 'bob.db') })
    const bobGot = inbox(bob)
    const changes: { held: boolean; number: string | null }[] = []
    const failed: string[] = []
    bob.on('identityChanged', (c) => changes.push(c))
    bob.on('sendFailed', (f) => failed.push(f.error.code))
    await alice.send(B, 'hi bob')
    await until(() => bobGot.length === 1, 15_000, 'the first message')
    const shown = (await bob.safetyNumber(A))!
    await bob.markVerified(A, { safetyNumber: shown })
    expect(await bob.isVerified(A)).toBe(true)
    await expect(bob.markVerified(A, { safetyNumber: '0'.repeat(60) })).rejects.toMatchObject({
      code: 'VERIFICATION_FAILED',
    })
    // alice's number is activated again on a new device (new identity key).
    await alice.close()
    const alice2 = await activatedClient(env.relay, env.codes, A, { storePath: join(dir, 'alice2.db') })
    await alice2.send(B, 'from my new phone')
    await until(() => bob.stats.held === 1, 15_000, 'bob to hold the message')
    expect(bobGot).toHaveLength(1) // not shown
    expect(changes).toEqual([expect.objectContaining({ held: true, number: A })])
    expect(await bob.isVerified(A)).toBe(false)
    // bob's send to the changed contact is refused, not sent to the new key.
    await bob.send(A, 'are you really alice?')
    await until(() => failed.length === 1, 15_000, 'the refused send')
    expect(failed).toEqual(['IDENTITY_UNTRUSTED'])
    // Approved: the held message is shown, and the conversation works with the new identity.
    expect(await bob.approveIdentity(A)).toBe(1)
    expect(bobGot.map((m) => m.text)).toEqual(['hi bob', 'from my new phone'])
    expect(bobGot[1]!.from).toBe(A)
    const alice2Got = inbox(alice2)
    await bob.send(A, 'welcome back')
    await until(() => alice2Got.length === 1, 15_000, 'the message to the new identity')
    expect(alice2Got[0]!.text).toBe('welcome back')
    await alice2.close()
    await bob.close()
  }, 60_000)
})

describe('a replayed first message', () => {
  const env = useRelay()
  const dir = clientDir()

  it('is refused and resets no session, even once the session is gone from the archive', async () => {
    const A = '+14155550192'
    const D = '+14155550193'
    const M = '+14155550194'
    const alice = await activatedClient(env.relay, env.codes, A)
    const davePath = join(dir, 'dave.db')
    const dave0 = await activatedClient(env.relay, env.codes, D, { storePath: davePath })
    const daveAddress = dave0.address!
    await dave0.close()
    const mallory = await activatedClient(env.relay, env.codes, M, { storePath: join(dir, 'mallory.db') })
    await mallory.close()
    const m = await login(env.relay.baseUrl, await readDevice(join(dir, 'mallory.db')))
    // Use up dave's one-time prekeys, so alice's first message uses none (the case a replay could reset).
    for (;;) {
      const b = (await m.request({ prekeyBundleQuery: { address: hexBytes(daveAddress) } })).prekeyBundle!
      if (!b.oneTimePrekey) break
    }
    const delivered: string[] = []
    alice.on('delivered', (d) => delivered.push(d.id))
    const { id } = await alice.send(D, 'first message, no one-time prekey')
    // send() resolves once the message is queued; the capture below needs it in dave's mailbox.
    await until(() => delivered.includes(id), 15_000, 'the first message to reach the mailbox')
    // The attacker captures the sealed envelope from dave's mailbox (as a relay operator could).
    const spy = await login(env.relay.baseUrl, await readDevice(davePath))
    await spy.request({ syncMailbox: { afterSeq: 0 } })
    const envelope = spy.pushes.find((f) => f.body === 'delivery')!.delivery!.envelope!
    spy.close()

    let dave = await reopen(env.relay.baseUrl, davePath)
    let daveGot = inbox(dave)
    await until(() => daveGot.length === 1, 15_000, 'the genuine first message')
    const sessionKey = `session/${alice.address}`
    await dave.close()
    const session = await storeValue(davePath, sessionKey)
    expect(session).toBeDefined()

    const replay = () =>
      m.request({
        sendMessage: {
          recipientAddress: hexBytes(daveAddress),
          recipientDeviceId: 1,
          messageId: crypto.getRandomValues(new Uint8Array(16)),
          envelope,
        },
      })
    // 1. While the session exists.
    await replay()
    dave = await reopen(env.relay.baseUrl, davePath)
    daveGot = inbox(dave)
    await until(() => dave.stats.replaysRefused === 1, 15_000, 'the first replay to be refused')
    await dave.close()
    expect(await storeValue(davePath, sessionKey)).toEqual(session)
    // 2. Once the session is gone (pushed out of the archive by newer ones): only the replay cache stops it.
    const store = SqliteStore.open(davePath)
    await store.write([{ key: sessionKey }])
    await store.close()
    await replay()
    dave = await reopen(env.relay.baseUrl, davePath)
    daveGot = inbox(dave)
    await until(() => dave.stats.replaysRefused === 1, 15_000, 'the second replay to be refused')
    await dave.close()
    expect(await storeValue(davePath, sessionKey)).toBeUndefined() // no session was started from it
    expect(daveGot).toEqual([])
    m.close()
    await alice.close()
  }, 60_000)
})

describe('the relay trust root', () => {
  const env = useRelay()
  const dir = clientDir()

  it('is refused when it is not the one the app ships, or not the pinned one', async () => {
    const { readFileSync } = await import('node:fs')
    const { createClient } = await import('@parley/node')
    const file = JSON.parse(readFileSync(join(env.relay.dataDir, 'relay-keys.json'), 'utf8')) as {
      root: { publicKey: string }
    }
    const errorsOf = (c: ParleyClient) => {
      const codes: string[] = []
      c.on('connection', (e) => {
        if (e.error) codes.push(e.error.code)
      })
      return codes
    }
    // Shipped with another root: nothing is sent past the handshake.
    const wrong = await createClient({
      relayUrl: env.relay.baseUrl,
      defaultRegion: 'US',
      requestTimeoutMs: 1500,
      reconnect: { minDelayMs: 50, maxDelayMs: 100 },
      relayKeys: { trustRoot: 'ab'.repeat(32) },
    })
    const wrongErrors = errorsOf(wrong)
    await expect(wrong.activate({ phoneNumber: '+14155550195', consent: true })).rejects.toBeDefined()
    expect(wrongErrors).toContain('VERIFICATION_FAILED')
    await wrong.close()
    // Shipped with the right one (as parley-relay keeps it): works.
    const storePath = join(dir, 'right.db')
    const right = await activatedClient(env.relay, env.codes, '+14155550196', {
      storePath,
      relayKeys: { trustRoot: file.root.publicKey },
    })
    expect(right.activated).toBe(true)
    await right.close()
    // Pinned at first use, then the relay shows another root: refused.
    const store = SqliteStore.open(storePath)
    await store.write([{ key: 'relay/trust-root', value: new Uint8Array(32).fill(1) }])
    await store.close()
    const repinned = await createClient({
      relayUrl: env.relay.baseUrl,
      storePath,
      defaultRegion: 'US',
      reconnect: { minDelayMs: 50, maxDelayMs: 100 },
    })
    const pinnedErrors = errorsOf(repinned)
    await until(() => pinnedErrors.includes('VERIFICATION_FAILED'), 10_000, 'the pin to be refused')
    expect(repinned.connectionState).not.toBe('online')
    await repinned.close()
    await expect(
      createClient({ relayUrl: env.relay.baseUrl, relayKeys: { trustRoot: 'not hex' } }),
    ).rejects.toThrow(TypeError)
  }, 60_000)
})
