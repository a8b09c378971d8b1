import { join } from 'node:path'
import { createClient, type IncomingMessage, type ParleyClient, ParleyError } from '@parley/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activatedClient, clientDir, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+1 415 555 0100'
const BOB = '+1 415 555 0101'

describe('two Node clients through a real relay process', () => {
  const env = useRelay()
  let alice: ParleyClient
  let bob: ParleyClient
  const dir = clientDir()
  const received = { alice: [] as IncomingMessage[], bob: [] as IncomingMessage[] }

  beforeAll(async () => {
    alice = await activatedClient(env.relay, env.codes, ALICE, { storePath: join(dir, 'alice.db') })
    bob = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob.db') })
    alice.on('message', (m) => received.alice.push(m))
    bob.on('message', (m) => received.bob.push(m))
  })

  afterAll(async () => {
    await alice?.close()
    await bob?.close()
  })

  it('discovers each other and a number that is not on Parley', async () => {
    const found = await alice.discover([BOB, '(415) 555-0102', 'garbage'])
    expect(found).toEqual([
      { number: BOB, e164: '+14155550101', registered: true },
      { number: '(415) 555-0102', e164: '+14155550102', registered: false },
      { number: 'garbage', e164: null, registered: false },
    ])
  })

  it('exchanges an encrypted message each way with sender, text and safety numbers that agree', async () => {
    const sent = await alice.send(BOB, 'hi bob')
    expect(sent.route).toBe('ip')
    await until(() => received.bob.length === 1, 20_000, 'bob to receive')
    expect(received.bob[0]).toMatchObject({ id: sent.id, from: '+14155550100', text: 'hi bob' })
    await bob.send(ALICE, 'hi alice')
    await until(() => received.alice.length === 1, 20_000, 'alice to receive')
    expect(received.alice[0]!.text).toBe('hi alice')
    expect(received.alice[0]!.from).toBe('+14155550101')
    const a = await alice.safetyNumber(BOB)
    const b = await bob.safetyNumber(ALICE)
    expect(a).toMatch(/^\d{60}$|^(\d{5} ){11}\d{5}$/)
    expect(a).toBe(b)
  })

  it('exchanges 1,000 messages both ways, each delivered once and in order', async () => {
    received.alice.length = 0
    received.bob.length = 0
    const N = 500
    for (let i = 0; i < N; i++) {
      await alice.send(BOB, `a→b ${i}`)
      await bob.send(ALICE, `b→a ${i}`)
    }
    await until(() => received.bob.length >= N && received.alice.length >= N, 60_000, '1,000 messages')
    expect(received.bob.map((m) => m.text)).toEqual(Array.from({ length: N }, (_, i) => `a→b ${i}`))
    expect(received.alice.map((m) => m.text)).toEqual(Array.from({ length: N }, (_, i) => `b→a ${i}`))
    expect(new Set(received.bob.map((m) => m.id)).size).toBe(N)
    await until(async () => (await alice.pendingCount()) === 0, 10_000, 'outbox to drain')
  })

  it('routes a number not on Parley to smsFallback and uploads nothing for it', async () => {
    const sms: [string, string][] = []
    const carol = await activatedClient(env.relay, env.codes, '+1 415 555 0103', {
      smsFallback: (to, text) => {
        sms.push([to, text])
      },
    })
    const result = await carol.send('(415) 555-0109', 'are you there?')
    expect(result.route).toBe('sms')
    expect(sms).toEqual([['+14155550109', 'are you there?']])
    expect(await carol.pendingCount()).toBe(0)
    await carol.close()
  })

  it('refuses to send to a number not on Parley without an smsFallback', async () => {
    await expect(alice.send('(415) 555-0108', 'x')).rejects.toMatchObject({ code: 'NOT_FOUND' })
  })

  it('delivers what arrived while a client was offline when it comes back', async () => {
    const bobPath = join(dir, 'bob.db')
    await bob.close()
    const before = received.bob.length
    for (let i = 0; i < 20; i++) await alice.send(BOB, `offline ${i}`)
    await until(async () => (await alice.pendingCount()) === 0, 10_000, 'relay to accept')
    bob = await createClient({ relayUrl: env.relay.baseUrl, storePath: bobPath, defaultRegion: 'US' })
    const again: IncomingMessage[] = []
    bob.on('message', (m) => again.push(m))
    await until(() => again.length === 20, 20_000, 'offline mail')
    expect(again.map((m) => m.text)).toEqual(Array.from({ length: 20 }, (_, i) => `offline ${i}`))
    expect(received.bob.length).toBe(before)
    const history = await bob.history()
    expect(history.filter((m) => m.text.startsWith('offline ')).length).toBe(20)
  })

  it('deactivates: the number is then not registered', async () => {
    const dave = await activatedClient(env.relay, env.codes, '+1 415 555 0104')
    expect((await alice.discover(['+1 415 555 0104']))[0]!.registered).toBe(true)
    await dave.deactivate()
    expect(dave.activated).toBe(false)
    // A fresh lookup (not the cached contact) must see the erasure.
    const [after] = await alice.discover(['+1 415 555 0104'])
    expect(after!.registered).toBe(false)
    await dave.close()
  })

  it('surfaces relay errors as ParleyError with the same code', async () => {
    const eve = await createClient({ relayUrl: env.relay.baseUrl, defaultRegion: 'US' })
    await eve.activate({ phoneNumber: '+1 415 555 0105', consent: true })
    const err = await eve.confirm('000000').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ParleyError)
    expect((err as ParleyError).code).toBe('INVALID_CODE')
    await eve.close()
  })
})

describe('a burst of activations', () => {
  const env = useRelay()

  it('activates twenty devices at once: a busy relay is waited for, not failed', async () => {
    const numbers = Array.from({ length: 20 }, (_, i) => `+1 415 555 01${String(30 + i)}`)
    const clients = await Promise.all(numbers.map((n) => activatedClient(env.relay, env.codes, n)))
    expect(clients.every((c) => c.activated)).toBe(true)
    const found = await clients[0]!.discover(numbers)
    expect(found.every((f) => f.registered)).toBe(true)
    await Promise.all(clients.map((c) => c.close()))
  })
})

describe('a sender that lies about its number', () => {
  const env = useRelay()

  async function oprfEvaluations(): Promise<number> {
    const text = await (await fetch(env.relay.metricsUrl)).text()
    const m = /^parley_relay_oprf_evaluations_total (\d+)/m.exec(text)
    return Number(m?.[1] ?? 0)
  }

  it('is shown without a number when it claims one its certificate does not commit to, and costs the recipient no OPRF evaluation', async () => {
    const dir = clientDir()
    const alice = await activatedClient(env.relay, env.codes, '+1 415 555 0160')
    const got: IncomingMessage[] = []
    alice.on('message', (m) => got.push(m))
    const mallory = await activatedClient(env.relay, env.codes, '+1 415 555 0161', {
      storePath: join(dir, 'mallory.db'),
    })
    await mallory.discover(['+1 415 555 0160'])
    await mallory.close()
    // Mallory's device claims a different (false) number in each message it sends.
    const { SqliteStore } = await import('@parley/node')
    const claim = async (e164: string) => {
      const store = SqliteStore.open(join(dir, 'mallory.db'))
      const account = JSON.parse(new TextDecoder().decode(await store.get('account'))) as { e164: string }
      account.e164 = e164
      await store.write([{ key: 'account', value: new TextEncoder().encode(JSON.stringify(account)) }])
      await store.close()
    }
    const before = await oprfEvaluations()
    for (let i = 0; i < 5; i++) {
      await claim(`+1415555019${i}`)
      const liar = await createClient({
        relayUrl: env.relay.baseUrl,
        storePath: join(dir, 'mallory.db'),
        defaultRegion: 'US',
      })
      await liar.send('+1 415 555 0160', `lie ${i}`)
      await until(async () => (await liar.pendingCount()) === 0, 10_000, 'the relay to accept')
      await liar.close()
    }
    await until(() => got.length === 5, 20_000, 'five messages')
    expect(got.map((m) => m.from)).toEqual([null, null, null, null, null])
    expect(new Set(got.map((m) => m.fromAddress)).size).toBe(1)
    expect((await oprfEvaluations()) - before).toBe(0)
    await alice.close()
  })
})
