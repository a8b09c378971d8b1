import { join } from 'node:path'
import { createClient, type IdentityChange, type IncomingMessage, type ParleyClient } from '@parley/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activatedClient, clientDir, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+1 415 555 0110'
const BOB = '+1 415 555 0111'

describe('resilience: restarts, offline outbox, identity changes', () => {
  const env = useRelay()
  const dir = clientDir()
  let alice: ParleyClient
  let bob: ParleyClient
  const bobGot: IncomingMessage[] = []

  beforeAll(async () => {
    alice = await activatedClient(env.relay, env.codes, ALICE, { storePath: join(dir, 'alice.db') })
    bob = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob.db') })
    bob.on('message', (m) => bobGot.push(m))
    expect((await alice.discover([BOB]))[0]!.registered).toBe(true)
  })

  afterAll(async () => {
    await alice?.close()
    await bob?.close()
  })

  it('loses and duplicates nothing at the API when the relay restarts mid-conversation', async () => {
    bobGot.length = 0
    const N = 300
    const sending = (async () => {
      for (let i = 0; i < N; i++) await alice.send(BOB, `m${i}`)
    })()
    await until(() => bobGot.length >= 50, 20_000, 'first messages')
    await env.relay.restart('SIGTERM')
    await sending
    await until(() => bobGot.length >= N, 60_000, `all ${N} messages (have ${bobGot.length})`)
    await new Promise((r) => setTimeout(r, 300)) // any duplicate would show up now
    expect(bobGot.map((m) => m.text)).toEqual(Array.from({ length: N }, (_, i) => `m${i}`))
    expect(new Set(bobGot.map((m) => m.id)).size).toBe(N)
  })

  it('delivers an outbox queued while the relay was down after the client process restarts', async () => {
    bobGot.length = 0
    await env.relay.stop('SIGKILL')
    // The relay is down: these are persisted, not sent.
    const ids: string[] = []
    for (let i = 0; i < 10; i++) ids.push((await alice.send(BOB, `queued ${i}`)).id)
    expect(await alice.pendingCount(), 'messages queued while the relay is down').toBe(10)
    await alice.close()
    await env.relay.start()
    alice = await createClient({
      relayUrl: env.relay.baseUrl,
      storePath: join(dir, 'alice.db'),
      defaultRegion: 'US',
    })
    await until(() => bobGot.length >= 10, 30_000, 'queued messages')
    expect(
      bobGot.map((m) => m.id),
      'the queued messages, once each, in order',
    ).toEqual(ids)
    expect(await alice.pendingCount()).toBe(0)
  })

  it('raises identityChanged when a contact re-activates on a new device, and still delivers', async () => {
    await alice.send(BOB, 'before')
    await until(() => bobGot.some((m) => m.text === 'before'), 20_000, 'before')
    const oldSafety = await alice.safetyNumber(BOB)
    // Carol has only ever *received* from Bob: she must notice the change on the receiving side.
    const carol = await activatedClient(env.relay, env.codes, '+1 415 555 0112')
    const carolGot: IncomingMessage[] = []
    const carolChanges: IdentityChange[] = []
    carol.on('message', (m) => carolGot.push(m))
    carol.on('identityChanged', (c) => carolChanges.push(c))
    await bob.send('+1 415 555 0112', 'from the old phone')
    await until(() => carolGot.length === 1, 20_000, 'carol first message')
    await bob.close()
    // Bob's new phone: a fresh store, same number.
    const bob2 = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob2.db') })
    const got2: IncomingMessage[] = []
    bob2.on('message', (m) => got2.push(m))
    const changes: IdentityChange[] = []
    alice.on('identityChanged', (c) => changes.push(c))
    await alice.send(BOB, 'after')
    await until(() => got2.some((m) => m.text === 'after'), 20_000, 'after on the new device')
    expect(changes).toHaveLength(1)
    expect(changes[0]!.number).toBe('+14155550111')
    const newSafety = await alice.safetyNumber(BOB)
    expect(newSafety).not.toBe(oldSafety)
    expect(changes[0]!.safetyNumber).toBe(newSafety)
    await bob2.send('+1 415 555 0112', 'from the new phone')
    await until(() => carolGot.length === 2, 20_000, 'carol second message')
    expect(carolChanges.map((c) => c.number)).toEqual(['+14155550111'])
    expect(carolGot.map((m) => m.from)).toEqual(['+14155550111', '+14155550111'])
    await carol.close()
    bob = bob2
  })
})

describe('signed prekey rotation', () => {
  const env = useRelay()

  it('rotates the signed prekey after a week and keeps working with old and new senders', async () => {
    const dir = clientDir()
    let offset = 0
    const clock = {
      now: () => Date.now() + offset,
      setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
      clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout),
    }
    const storePath = join(dir, 'frank.db')
    let frank = await activatedClient(env.relay, env.codes, '+1 415 555 0120', { storePath, clock })
    // An old sender fetches a bundle (signed prekey 1) before the rotation…
    const early = await activatedClient(env.relay, env.codes, '+1 415 555 0121')
    const got: IncomingMessage[] = []
    frank.on('message', (m) => got.push(m))
    await early.send('+1 415 555 0120', 'before rotation')
    await until(() => got.length === 1, 20_000, 'first message')
    await frank.close()
    offset = 8 * 24 * 3600_000
    frank = await createClient({ relayUrl: env.relay.baseUrl, storePath, clock, defaultRegion: 'US' })
    frank.on('message', (m) => got.push(m))
    const { SqliteStore } = await import('@parley/node')
    // …the restarted client notices the week has passed and uploads signed prekey 2.
    await until(
      async () => {
        const peek = SqliteStore.open(storePath)
        try {
          return (await peek.list('prekey/spk/')).length === 2
        } finally {
          await peek.close()
        }
      },
      20_000,
      'a second signed prekey',
    )
    const late = await activatedClient(env.relay, env.codes, '+1 415 555 0122')
    await late.send('+1 415 555 0120', 'after rotation')
    await early.send('+1 415 555 0120', 'old session still fine')
    await until(() => got.length === 3, 20_000, 'messages after rotation')
    expect(got.map((m) => m.text).sort()).toEqual([
      'after rotation',
      'before rotation',
      'old session still fine',
    ])
    await Promise.all([frank.close(), early.close(), late.close()])
  })
})
