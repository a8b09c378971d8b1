// Per-account work budgets, scripted against a relay process: prekey signatures the relay checks for one
// account (refused before any check once spent, and before any check when the store has no room), envelope bytes
// one account may spread over many recipients' mailboxes, and a connection told to wait whose further
// requests of that kind are refused unread. Asserted by counts from /metrics.
import { kemPrekeyPayload, parleyErrorFromWire, type ServerFrame } from '@parley/protocol'
import {
  type Account,
  activate,
  type Identity,
  messageId,
  RawClient,
  type RelayProcess,
  sealedShape,
  spawnDevRelay,
} from '@parley/relay/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { metric, scrape } from './relayDb.js'

const bytes = (n: number) => crypto.getRandomValues(new Uint8Array(n))
const code = (f: ServerFrame) => (f.body === 'error' ? parleyErrorFromWire(f.error!).code : f.body)

/** `n` one-time KEM prekeys, each validly signed by `id`, with ids from `first`. */
function kems(id: Identity, n: number, first: number) {
  return Array.from({ length: n }, (_, i) => {
    const publicKey = bytes(1184)
    return { keyId: first + i, publicKey, signature: id.sign(kemPrekeyPayload(first + i, publicKey)) }
  })
}

describe('per-account work budgets against a relay process', () => {
  let relay: RelayProcess
  let signer: Account
  let c: RawClient
  const counts = async () => {
    const m = await scrape(relay.metricsUrl)
    return {
      checks: metric(m, 'parley_relay_signature_checks_total', { frame: 'prekey_upload' }),
      budget: metric(m, 'parley_relay_rate_limited_total', { scope: 'prekey_signatures' }),
      unread: metric(m, 'parley_relay_frames_refused_undecoded_total', { type: 'prekeyUpload' }),
      bytes: metric(m, 'parley_relay_rate_limited_total', { scope: 'send_bytes' }),
    }
  }
  beforeAll(async () => {
    relay = await spawnDevRelay([
      '--prekey-signatures-capacity',
      '400',
      '--prekey-signatures-per-day',
      '1',
      '--max-stored-prekeys',
      '1000',
      '--send-bytes-capacity',
      '300000',
      '--send-bytes-per-day',
      '1',
      '--frames-burst',
      '1000',
    ])
    c = await RawClient.open(relay.url)
    signer = await activate(c, relay, '+14155550181')
  })
  afterAll(async () => {
    c?.close()
    await relay?.stop()
  })

  it('checks an account’s prekey signatures up to its budget, then refuses uploads without checking any', async () => {
    const before = await counts()
    const outcomes: string[] = []
    for (let i = 0; i < 7; i++) {
      const f = await c.send({
        prekeyUpload: { oneTimeKemPrekeys: kems(signer.identity, 100, 1000 + 100 * i) },
      })
      outcomes.push(code(f))
    }
    // 4 × 100 signatures fit the budget of 400; the 5th upload is refused, and the connection, told to wait,
    // has its next two refused from the frame's top level without decoding them.
    expect(outcomes).toEqual([
      'prekeyUploaded',
      'prekeyUploaded',
      'prekeyUploaded',
      'prekeyUploaded',
      'RATE_LIMITED',
      'RATE_LIMITED',
      'RATE_LIMITED',
    ])
    const after = await counts()
    expect(after.checks - before.checks).toBe(400)
    expect(after.budget - before.budget).toBe(3)
    expect(after.unread - before.unread).toBe(2)
    // Still an honest connection: everything else is answered.
    expect(code(await c.send({ prekeyCountQuery: {} }))).toBe('prekeyCount')
  })

  it('spreads no more envelope bytes over many recipients than the account’s byte budget', async () => {
    const victims: Account[] = []
    for (let i = 0; i < 3; i++) {
      const v = await RawClient.open(relay.url)
      victims.push(await activate(v, relay, `+1415555019${i}`))
      v.close()
    }
    const sender = await RawClient.open(relay.url)
    await activate(sender, relay, '+14155550199')
    const before = await counts()
    const outcomes: string[] = []
    for (const v of victims) {
      const f = await sender.send({
        sendMessage: {
          recipientAddress: v.address,
          recipientDeviceId: v.deviceId,
          messageId: messageId(),
          envelope: sealedShape(new Uint8Array(120_000).fill(7)),
        },
      })
      outcomes.push(code(f))
    }
    // 2 × 120 kB fit 300,000 bytes; the third recipient's message does not, though its mailbox is empty.
    expect(outcomes).toEqual(['messageAccepted', 'messageAccepted', 'RATE_LIMITED'])
    expect((await counts()).bytes - before.bytes).toBe(1)
    sender.close()
  })
})

describe('prekey uploads the store has no room for', () => {
  let relay: RelayProcess
  beforeAll(async () => {
    relay = await spawnDevRelay(['--max-stored-prekeys', '150'])
  })
  afterAll(async () => {
    await relay?.stop()
  })

  it('are refused TOO_LARGE before any signature is checked', async () => {
    const c = await RawClient.open(relay.url)
    const a = await activate(c, relay, '+14155550183') // stores 2 KEM prekeys
    const checks = async () =>
      metric(await scrape(relay.metricsUrl), 'parley_relay_signature_checks_total', {
        frame: 'prekey_upload',
      })
    const before = await checks()
    expect(code(await c.send({ prekeyUpload: { oneTimeKemPrekeys: kems(a.identity, 100, 500) } }))).toBe(
      'prekeyUploaded',
    )
    expect(code(await c.send({ prekeyUpload: { oneTimeKemPrekeys: kems(a.identity, 100, 600) } }))).toBe(
      'TOO_LARGE',
    )
    expect((await checks()) - before).toBe(100)
    c.close()
  })
})
