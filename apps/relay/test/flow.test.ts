// The full flow against a real relay process: activation, discovery, prekeys, mail, resume, restart, deactivate.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { addressFromToken, addressPrefix, numberToOprfInput, oprfBlind, oprfFinalize } from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Account,
  activate,
  expectError,
  login,
  messageId,
  prekeys,
  RawClient,
  type RelayProcess,
  sealedShape,
  shapeText,
  spawnDevRelay,
  tempDir,
} from '../testing/index.js'

const ALICE = '+14155550101'
const BOB = '+14155550102'

/** These tests query 16-bit prefixes on a relay of a few accounts: no adaptation to the population. */
const FIXED_PREFIX = ['--membership-min-bucket', '0']

describe('relay process: the full flow', () => {
  let relay: RelayProcess
  const dataDir = tempDir()
  let alice: Account
  let bob: Account
  let aliceClient: RawClient
  let bobClient: RawClient

  beforeAll(async () => {
    relay = await spawnDevRelay(FIXED_PREFIX, dataDir)
  })
  afterAll(async () => {
    aliceClient?.close()
    bobClient?.close()
    await relay?.stop()
  })

  it('announces version, limits, the OPRF key and a fresh nonce in ServerHello', async () => {
    const a = await RawClient.open(relay.url)
    const b = await RawClient.open(relay.url)
    expect(a.hello!.protocolMajor).toBe(1)
    expect(a.hello!.limits!.maxFrameBytes).toBe(320 * 1024)
    expect(a.hello!.limits!.maxEnvelopeBytes).toBe(256 * 1024)
    expect(a.hello!.limits!.membershipPrefixBits).toBe(16)
    expect(a.hello!.oprfKeys!.length).toBe(1)
    expect(a.hello!.oprfKeys![0]!.publicKey!.length).toBe(32)
    expect(a.hello!.authNonce!.length).toBe(32)
    expect(Buffer.from(a.hello!.authNonce!).equals(Buffer.from(b.hello!.authNonce!))).toBe(false)
    expect((await a.request({ ping: {} })).pong!.serverTimeMs).toBeGreaterThan(0)
    a.close()
    b.close()
  })

  it('activates two accounts with the console verifier’s code', async () => {
    aliceClient = await RawClient.open(relay.url)
    bobClient = await RawClient.open(relay.url)
    alice = await activate(aliceClient, relay, ALICE)
    bob = await activate(bobClient, relay, BOB)
    expect(alice.address.length).toBe(32)
    expect(alice.deviceId).toBe(1)
    expect(Buffer.from(alice.address).equals(Buffer.from(bob.address))).toBe(false)
    // The code is printed marked as development only, with the number's last two digits at most.
    const line = relay.stderr.find((l) => l.includes('verification code'))!
    expect(line).toContain('DEVELOPMENT ONLY')
    expect(line).not.toContain(ALICE.slice(1, -2))
  })

  it('discovers the other account through the blind OPRF and a prefix membership query', async () => {
    const key = aliceClient.hello!.oprfKeys![0]!
    const inputs = [numberToOprfInput(BOB), numberToOprfInput('+14155550199')]
    const blinded = inputs.map((i) => oprfBlind(i))
    const res = (
      await aliceClient.request({
        oprfEvaluate: { keyId: key.keyId, blindedElements: blinded.map((b) => b.blindedElement) },
      })
    ).oprfEvaluated!
    const tokens = oprfFinalize(
      inputs,
      blinded.map((b) => b.blind),
      res.evaluatedElements!,
      blinded.map((b) => b.blindedElement),
      res.proof!,
      key.publicKey!,
    )
    const addresses = tokens.map((t) => addressFromToken(t))
    expect(Buffer.from(addresses[0]!).equals(Buffer.from(bob.address))).toBe(true)
    const prefixes = addresses.map((a) => addressPrefix(a, 16))
    const result = (await aliceClient.request({ membershipQuery: { prefixBits: 16, prefixes } }))
      .membershipResult!
    expect(result.buckets!.length).toBe(2)
    const found = result.buckets![0]!.addresses!.map((a) => Buffer.from(a).toString('hex'))
    expect(found).toContain(Buffer.from(bob.address).toString('hex'))
    const other = result.buckets![1]!.addresses!.map((a) => Buffer.from(a).toString('hex'))
    expect(other).not.toContain(Buffer.from(addresses[1]!).toString('hex'))
  })

  it('uploads, counts and fetches prekeys; a fetch consumes one-time keys, then falls back to last-resort', async () => {
    const before = (await bobClient.request({ prekeyCountQuery: {} })).prekeyCount!
    expect(before).toEqual({ oneTimeCount: 3, kemOneTimeCount: 2 })
    const b1 = (await aliceClient.request({ prekeyBundleQuery: { address: bob.address } })).prekeyBundle!
    expect(b1.deviceId).toBe(bob.deviceId)
    expect(Buffer.from(b1.identityKey!).equals(Buffer.from(bob.identity.publicKey))).toBe(true)
    expect(b1.oneTimePrekey!.publicKey!.length).toBe(32)
    expect(b1.kemPrekeyIsLastResort ?? false).toBe(false)
    await aliceClient.request({ prekeyBundleQuery: { address: bob.address } })
    const b3 = (await aliceClient.request({ prekeyBundleQuery: { address: bob.address } })).prekeyBundle!
    expect(b3.kemPrekeyIsLastResort).toBe(true)
    expect(b3.kemPrekey!.publicKey!.length).toBe(1184)
    const b4 = (await aliceClient.request({ prekeyBundleQuery: { address: bob.address } })).prekeyBundle!
    expect(b4.oneTimePrekey ?? undefined).toBeUndefined()
    const { oneTimePrekeys } = prekeys(bob.identity, {
      oneTime: 5,
      firstId: 50,
    })
    const up = (await bobClient.request({ prekeyUpload: { oneTimePrekeys } })).prekeyUploaded!
    expect(up.oneTimeCount).toBe(5)
  })

  it('delivers a message live, acks it, and a resend with the same id is stored once', async () => {
    await bobClient.request({ syncMailbox: { afterSeq: 0 } })
    const id = messageId()
    const accepted = await aliceClient.request({
      sendMessage: {
        recipientAddress: bob.address,
        recipientDeviceId: bob.deviceId,
        messageId: id,
        envelope: sealedShape('hi'),
      },
    })
    expect(Buffer.from(accepted.messageAccepted!.messageId!).equals(Buffer.from(id))).toBe(true)
    const d = (await bobClient.push((f) => f.body === 'delivery')).delivery!
    expect(d.seq).toBe(1)
    expect(shapeText(d.envelope!)).toBe('hi')
    expect(d.receivedAtMs).toBeGreaterThan(0)
    await aliceClient.request({
      sendMessage: {
        recipientAddress: bob.address,
        recipientDeviceId: bob.deviceId,
        messageId: id,
        envelope: sealedShape('hi'),
      },
    })
    expect((await bobClient.request({ ackMessages: { seqs: [1] } })).acked!.count).toBe(1)
    expect((await bobClient.request({ ackMessages: { seqs: [1] } })).acked!.count ?? 0).toBe(0)
  })

  it('resumes after a reconnect: unacked mail is redelivered from the cursor', async () => {
    bobClient.close()
    for (const text of ['one', 'two', 'three']) {
      await aliceClient.request({
        sendMessage: {
          recipientAddress: bob.address,
          recipientDeviceId: bob.deviceId,
          messageId: messageId(),
          envelope: sealedShape(text),
        },
      })
    }
    const { client, head } = await login(relay.url, bob)
    bobClient = client
    expect(head).toBe(4)
    const done = (await bobClient.request({ syncMailbox: { afterSeq: 1 } })).syncDone!
    expect(done.headSeq).toBe(4)
    expect(bobClient.deliveries().map((d) => shapeText(d.envelope!))).toEqual(['one', 'two', 'three'])
    // Resume from a cursor in the middle.
    const again = await login(relay.url, bob)
    await again.client.request({ syncMailbox: { afterSeq: 3 } })
    expect(again.client.deliveries().map((d) => d.seq)).toEqual([4])
    again.client.close()
  })

  it('keeps every accepted but unacked message across a restart of the process', async () => {
    aliceClient.close()
    bobClient.close()
    expect(await relay.stop('SIGTERM')).toBe(0)
    relay = await spawnDevRelay(FIXED_PREFIX, dataDir)
    const { client } = await login(relay.url, bob)
    bobClient = client
    await bobClient.request({ syncMailbox: { afterSeq: 0 } })
    expect(bobClient.deliveries().map((d) => d.seq)).toEqual([2, 3, 4])
    // The same OPRF key after restart: addresses are stable.
    aliceClient = (await login(relay.url, alice)).client
  })

  it('keeps mail through kill -9 too (written before MessageAccepted)', async () => {
    const ids: number[] = []
    for (let i = 0; i < 5; i++) {
      await aliceClient.request({
        sendMessage: {
          recipientAddress: bob.address,
          recipientDeviceId: bob.deviceId,
          messageId: messageId(),
          envelope: sealedShape(`k${i}`),
        },
      })
      ids.push(5 + i)
    }
    aliceClient.close()
    bobClient.close()
    await relay.stop('SIGKILL')
    relay = await spawnDevRelay(FIXED_PREFIX, dataDir)
    const { client } = await login(relay.url, bob)
    bobClient = client
    await bobClient.request({ syncMailbox: { afterSeq: 4 } })
    expect(bobClient.deliveries().map((d) => d.seq)).toEqual(ids)
    aliceClient = (await login(relay.url, alice)).client
  })

  it('re-activation on a new device replaces the old one: old connection revoked, stale sends get CONFLICT', async () => {
    const newBob = await RawClient.open(relay.url)
    const revoked = bobClient.closed
    const bob2 = await activate(newBob, relay, BOB)
    expect(bob2.deviceId).toBe(bob.deviceId + 1)
    expect(bob2.replacedDevice).toBe(true)
    expect(Buffer.from(bob2.address).equals(Buffer.from(bob.address))).toBe(true)
    expect(await revoked).toBe(4001)
    await expectError(
      aliceClient.request({
        sendMessage: {
          recipientAddress: bob.address,
          recipientDeviceId: bob.deviceId,
          messageId: messageId(),
          envelope: sealedShape('x'),
        },
      }),
      'CONFLICT',
    )
    await expectError(login(relay.url, bob), 'UNAUTHENTICATED')
    bobClient = newBob
    bob = bob2
  })

  it('deactivation erases the account: address, keys and mail', async () => {
    await aliceClient.request({
      sendMessage: {
        recipientAddress: bob.address,
        recipientDeviceId: bob.deviceId,
        messageId: messageId(),
        envelope: sealedShape('bye'),
      },
    })
    await bobClient.request({ deactivate: {} })
    await expectError(bobClient.request({ prekeyCountQuery: {} }), 'UNAUTHENTICATED')
    await expectError(aliceClient.request({ prekeyBundleQuery: { address: bob.address } }), 'NOT_FOUND')
    await expectError(
      aliceClient.request({
        sendMessage: {
          recipientAddress: bob.address,
          recipientDeviceId: bob.deviceId,
          messageId: messageId(),
          envelope: sealedShape('x'),
        },
      }),
      'NOT_FOUND',
    )
    const prefix = addressPrefix(bob.address, 16)
    const res = (await aliceClient.request({ membershipQuery: { prefixBits: 16, prefixes: [prefix] } }))
      .membershipResult!
    const left = res.buckets![0]!.addresses!.map((a) => Buffer.from(a).toString('hex'))
    expect(left).not.toContain(Buffer.from(bob.address).toString('hex'))
  })

  it('exposes health and readiness on the client port, metrics only on the metrics listener', async () => {
    expect((await fetch(`${relay.httpUrl}/healthz`)).status).toBe(200)
    expect((await fetch(`${relay.httpUrl}/readyz`)).status).toBe(200)
    expect((await fetch(`${relay.httpUrl}/metrics`)).status).toBe(404)
    expect(relay.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    expect(relay.metricsUrl).not.toContain(`:${relay.port}/`)
    const text = await (await fetch(relay.metricsUrl)).text()
    for (const name of [
      'parley_relay_connections',
      'parley_relay_frames_total',
      'parley_relay_messages_accepted_total',
      'parley_relay_messages_delivered_total',
      'parley_relay_activations_total',
    ]) {
      expect(text).toContain(name)
    }
    expect((await fetch(`${relay.httpUrl}/nope`)).status).toBe(404)
  })

  it('writes no phone number to the database, the key file or the logs', async () => {
    aliceClient.close()
    await relay.stop('SIGTERM')
    const needles = [ALICE, BOB].flatMap((n) => [n, n.slice(1), n.slice(2)])
    const blobs = readdirSync(dataDir).map((f) => readFileSync(join(dataDir, f)).toString('latin1'))
    const logs = relay.stdout.join('\n') + relay.stderr.join('\n').replace(/verification code \d{6}/g, '')
    for (const needle of needles) {
      for (const blob of blobs) expect(blob.includes(needle)).toBe(false)
      expect(logs.includes(needle)).toBe(false)
    }
  })
})
