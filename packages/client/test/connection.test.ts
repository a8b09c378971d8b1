// The connection against a FakeRelay: dropped and refused connections, backoff on the manual clock, resuming
// the mailbox, pushes, the device being replaced while online or offline, and a login the relay forbids.
import { MemoryStore } from '@parley/client'
import { describe, expect, it } from 'vitest'
import { ALICE, aliceAndBob, BOB, CAROL, codeOf, collect, reopenable, world } from './harness.js'

describe('connection', () => {
  it('reconnects after a drop and resumes the mailbox: nothing lost, nothing twice', async () => {
    const { relay, clock, step, alice, bob, received } = await aliceAndBob()
    const states = collect(bob, 'connection')
    await alice.send(BOB, 'before')
    await relay.settle()
    await clock.advance(10)

    relay.drop(BOB)
    relay.refuseConnections()
    await relay.settle()
    expect(bob.connectionState).toBe('offline')
    for (const text of ['while', 'away']) await alice.send(BOB, text)
    await relay.settle()
    expect(relay.mailbox(BOB).map((m) => m.seq)).toEqual([2, 3])

    // Nothing happens until the clock says so; then the refused attempts back off.
    const attempts = relay.connectionAttempts
    await relay.settle()
    expect(relay.connectionAttempts).toBe(attempts)
    await clock.advance(5_000)
    expect(relay.connectionAttempts).toBeGreaterThan(attempts)
    const offline = states.filter((s) => s.state === 'offline' && s.retryInMs !== undefined)
    const delays = offline.map((s) => s.retryInMs!)
    expect(delays.slice(1).every((d, i) => d >= delays[i]! / 2)).toBe(true)

    relay.refuseConnections(false)
    await clock.advance(30_000)
    await step(10)
    expect(bob.connectionState).toBe('online')
    expect(states.at(-1)).toEqual({ state: 'online', attempt: 0 })
    expect(relay.received('syncMailbox').at(-1)).toEqual(expect.objectContaining({ afterSeq: 1 }))
    expect(received.map((m) => m.text)).toEqual(['before', 'while', 'away'])
    expect(relay.mailbox(BOB)).toEqual([])
  })

  it('drops a connection that sends garbage, tells the app, and reconnects', async () => {
    const { relay, activated, step } = world()
    const alice = await activated(ALICE)
    const errors = collect(alice, 'error')
    const [connection] = relay.connectionsOf(ALICE)
    connection!.pushBytes(new Uint8Array([0xff, 0xff, 0xff]))
    await relay.settle()
    expect(connection!.closed).toBe(true)
    expect(errors.map((e) => e.code)).toEqual(['BAD_REQUEST'])
    await step(1_000)
    expect(relay.connectionsOf(ALICE)).toHaveLength(1)
    expect(alice.connectionState).toBe('online')
  })

  it('passes on gap and error pushes as events', async () => {
    const { relay, activated } = world()
    const alice = await activated(ALICE)
    const gaps = collect(alice, 'gap')
    const errors = collect(alice, 'error')
    relay.push(ALICE, { mailboxGap: { firstSeq: 4, lastSeq: 9, reason: 1 } })
    relay.push(ALICE, { mailboxGap: { firstSeq: 10, lastSeq: 10, reason: 2 } })
    relay.push(ALICE, { error: { code: 3, message: 'slow down', retryAfterMs: 1_000 } })
    await relay.settle()
    expect(gaps).toEqual([
      { firstSeq: 4, lastSeq: 9, reason: 'expired' },
      { firstSeq: 10, lastSeq: 10, reason: 'evicted' },
    ])
    expect(errors.map((e) => [e.code, e.retryAfterMs])).toEqual([['RATE_LIMITED', 1_000]])
  })

  it('times a request out on the client clock when the relay never answers', async () => {
    const { relay, clock, activated } = world()
    const alice = await activated(ALICE, { requestTimeoutMs: 5_000 })
    relay.ignore('oprfEvaluate')
    const found = codeOf(alice.discover([BOB]))
    await relay.settle()
    await clock.advance(4_999)
    expect(relay.received('oprfEvaluate')).toHaveLength(1)
    await clock.advance(1)
    expect(await found).toBe('TIMEOUT')
  })

  it('is told when another device takes the number, stops, and can take it back with its own mail', async () => {
    const { relay, clock, activated, step } = world()
    const bob = await activated(BOB)
    const alice = await activated(ALICE)
    const replaced = collect(alice, 'deviceReplaced')
    await bob.send(ALICE, 'read on the first phone')
    await relay.settle()
    await clock.advance(10) // read and acked
    // Alice's phone is offline when the takeover happens, so that mail is still unread.
    relay.drop(ALICE)
    relay.refuseConnections()
    await relay.settle()
    await bob.send(ALICE, 'unread when it was taken')
    await relay.settle()
    relay.refuseConnections(false)

    const thief = await activated(ALICE)
    expect(relay.account(ALICE)!.deviceId).toBe(2)
    // The first phone learns it on its next connection: it authenticates, is refused, and stops.
    await step(60_000)
    expect(replaced).toEqual([{ erased: false }])
    expect(alice.activated).toBe(false)
    const attempts = relay.connectionAttempts
    await clock.advance(600_000)
    expect(relay.connectionAttempts).toBe(attempts)

    // It takes the number back with its own identity: the thief is told at once, and the kept mail comes back.
    const thiefReplaced = collect(thief, 'deviceReplaced')
    await alice.activate({ phoneNumber: ALICE, consent: true })
    const back = await alice.confirm(relay.codeFor(ALICE)!)
    await relay.settle()
    expect(back.replacedDevice).toBe(true)
    expect(back.restoredMessages).toBe(1)
    expect(thiefReplaced).toEqual([{ erased: false }])
    expect(thief.activated).toBe(false)
    const texts = (await alice.history()).map((m) => m.text)
    expect(texts).toEqual(['read on the first phone', 'unread when it was taken'])
  })

  it('learns of a takeover that happened while it was closed', async () => {
    const { relay, activated, client } = world()
    const disk = new MemoryStore()
    const first = await activated(ALICE, { store: reopenable(disk) })
    await first.close()
    await activated(ALICE)
    const restarted = await client({ store: reopenable(disk) })
    const replaced = collect(restarted, 'deviceReplaced')
    const errors = collect(restarted, 'error')
    await relay.settle()
    expect(errors.map((e) => e.code)).toEqual(['UNAUTHENTICATED'])
    expect(replaced).toEqual([{ erased: false }])
    expect(restarted.activated).toBe(false)
  })

  it('stops at a FORBIDDEN login (a ban): one attempt, the app told, waits and queued sends failed with it', async () => {
    const { relay, clock, client, activated, step } = world()
    await activated(BOB)
    const disk = new MemoryStore()
    const first = await activated(ALICE, { store: reopenable(disk) })
    await first.send(BOB, 'delivered before the ban')
    await relay.settle()
    relay.drop(ALICE)
    relay.refuseConnections()
    await relay.settle()
    const { id } = await first.send(BOB, 'queued when the ban came')
    await first.close()
    relay.refuseConnections(false)

    // The operator bans the account while the app is closed: its next login is refused.
    const lift = relay.refuse('authenticate', 'FORBIDDEN')
    const attempts = relay.connectionAttempts
    const logins = relay.received('authenticate').length
    const banned = await client({ store: reopenable(disk) })
    const errors = collect(banned, 'error')
    const failed = collect(banned, 'sendFailed')
    const states = collect(banned, 'connection')
    const waiting = codeOf(banned.discover([CAROL]))
    await relay.settle()
    await clock.advance(600_000)
    await relay.settle()
    expect(relay.connectionAttempts - attempts).toBe(1)
    expect(relay.received('authenticate').length - logins).toBe(1)
    expect(errors.map((e) => e.code)).toEqual(['FORBIDDEN'])
    expect(states.at(-1)).toMatchObject({ state: 'offline', error: { code: 'FORBIDDEN' } })
    expect(states.some((s) => s.retryInMs !== undefined)).toBe(false)
    expect(banned.connectionState).toBe('offline')
    expect(await waiting).toBe('FORBIDDEN')
    expect(failed.map((f) => [f.id, f.error.code])).toEqual([[id, 'FORBIDDEN']])
    expect(await banned.pendingCount()).toBe(0)
    expect(await codeOf(banned.send(BOB, 'after the ban'))).toBe('FORBIDDEN')
    expect(await codeOf(banned.discover([CAROL]))).toBe('FORBIDDEN')
    expect(relay.connectionAttempts - attempts).toBe(1)
    // The account is kept: once the ban is lifted, the next start logs in as before.
    expect(banned.activated).toBe(true)
    await banned.close()
    lift()
    const back = await client({ store: reopenable(disk) })
    await step(10)
    expect(back.connectionState).toBe('online')
    expect(relay.received('authenticate').length - logins).toBe(2)
  })
})
