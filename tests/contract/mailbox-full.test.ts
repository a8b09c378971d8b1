// One contact whose mailbox is full (MAILBOX_FULL) must not hold up the sender's mail to everyone else: the
// refused messages wait in the outbox, in order, until that mailbox has room, and nothing is lost or repeated.
import { join } from 'node:path'
import {
  createClient,
  type DeliveredEvent,
  type IncomingMessage,
  type ParleyClient,
  type SendFailedEvent,
} from '@parley/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activatedClient, clientDir, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+1 415 555 0170'
const BOB = '+1 415 555 0171'
const CAROL = '+1 415 555 0172'
/** Bob's mailbox holds 256 KiB of unread mail (--max-mailbox-bytes); Carol's never nears it. */
const MAILBOX_BYTES = 256 * 1024
/** Bob's messages are this big, so that his mailbox holds `ROOM` of them (envelopes add a few KB each). */
const BIG = 60_000
const ROOM = 4
const bobText = (i: number) => `bob ${i} ${'x'.repeat(BIG)}`

/**
 * A clock whose time stands still until the test calls `advance`. Short timers (acks, reconnect backoff, request
 * timeouts) still run in real time; timers of `heldFromMs` or more (the relay's 60 s MAILBOX_FULL retry) fire only
 * when `advance` reaches them. So the test, not the wall clock, decides when a deferred recipient is tried again.
 */
function steppedClock(heldFromMs = 45_000) {
  const start = Date.now()
  let offset = 0
  const held = new Map<symbol, { due: number; fn: () => void }>()
  const now = () => start + offset
  return {
    now,
    setTimeout(fn: () => void, ms: number): unknown {
      if (ms < heldFromMs) return setTimeout(fn, ms)
      const handle = Symbol('held timer')
      held.set(handle, { due: now() + ms, fn })
      return handle
    },
    clearTimeout(handle: unknown): void {
      if (typeof handle === 'symbol') held.delete(handle)
      else clearTimeout(handle as NodeJS.Timeout)
    },
    /** Moves time forward by `ms` and runs the held timers that are then due. */
    advance(ms: number): void {
      offset += ms
      for (const [handle, timer] of [...held]) {
        if (timer.due > now()) continue
        held.delete(handle)
        timer.fn()
      }
    },
  }
}

async function mailboxFullRefusals(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text()
  const m = /^parley_relay_errors_total\{[^}]*code="MAILBOX_FULL"[^}]*\} (\d+)/m.exec(text)
  return Number(m?.[1] ?? 0)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('a full mailbox defers only its recipient', () => {
  const env = useRelay(['--max-mailbox-bytes', String(MAILBOX_BYTES)])
  const dir = clientDir()
  const clock = steppedClock()
  let alice: ParleyClient
  let bob: ParleyClient
  let carol: ParleyClient
  const carolGot: IncomingMessage[] = []
  const delivered: DeliveredEvent[] = []
  const failed: SendFailedEvent[] = []

  beforeAll(async () => {
    alice = await activatedClient(env.relay, env.codes, ALICE, { storePath: join(dir, 'alice.db'), clock })
    bob = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob.db') })
    carol = await activatedClient(env.relay, env.codes, CAROL, { storePath: join(dir, 'carol.db') })
    carol.on('message', (m) => carolGot.push(m))
    alice.on('delivered', (d) => delivered.push(d))
    alice.on('sendFailed', (f) => failed.push(f))
    const found = await alice.discover([BOB, CAROL])
    expect(found.map((f) => f.registered)).toEqual([true, true])
    await bob.close() // Bob stops reading: his mailbox fills up
  })

  afterAll(async () => {
    await Promise.all([alice?.close(), bob?.close(), carol?.close()])
  })

  it('keeps sending to Carol while Bob is full, then delivers Bob his in order once he reads', async () => {
    const bobIds: string[] = []
    const carolIds: string[] = []
    for (let i = 0; i < ROOM; i++) bobIds.push((await alice.send(BOB, bobText(i))).id)
    await until(async () => (await alice.pendingCount()) === 0, 20_000, 'the relay to accept what fits')

    // Queue behind the full mailbox while the relay is down, so that one flush meets the refusals with more
    // than a window (16) of Carol's mail behind them: an outbox that halts on MAILBOX_FULL strands most of it.
    await env.relay.stop()
    await until(() => alice.connectionState !== 'online', 10_000, 'alice to notice the relay is down')
    for (let i = ROOM; i < ROOM + 3; i++) bobIds.push((await alice.send(BOB, bobText(i))).id)
    for (let i = 0; i < 40; i++) carolIds.push((await alice.send(CAROL, `carol ${i}`)).id)
    expect(await alice.pendingCount()).toBe(3 + 40)
    await env.relay.start()

    await until(() => carolGot.length >= 40, 30_000, "Carol's 40 messages")
    expect(carolGot.map((m) => m.id)).toEqual(carolIds)
    await until(async () => (await alice.pendingCount()) === 3, 10_000, "only Bob's three left queued")
    // Those in flight with the first refusal are refused too; none is tried twice before the deferral ends.
    const refused = await mailboxFullRefusals(env.relay.metricsUrl)
    expect(refused).toBeGreaterThanOrEqual(1)
    expect(refused).toBeLessThanOrEqual(3)

    // A new send (to Bob, and to Carol) does not try Bob again before the relay's retryAfterMs.
    bobIds.push((await alice.send(BOB, bobText(ROOM + 3))).id)
    carolIds.push((await alice.send(CAROL, 'carol 40')).id)
    await until(() => carolGot.length >= 41, 20_000, "Carol's 41st message")
    // Carol can have it before alice has read the relay's MessageAccepted for it (and dropped it from her outbox).
    await until(async () => (await alice.pendingCount()) === 4, 10_000, "only Bob's four left queued")
    expect(await mailboxFullRefusals(env.relay.metricsUrl), 'Bob not tried again on a new send').toBe(refused)

    // Nor does a reconnect: the deferral is kept until it ends (the relay's counters restart with it).
    await env.relay.stop()
    await until(() => alice.connectionState !== 'online', 10_000, 'alice to notice the relay is down')
    await env.relay.start()
    await until(() => alice.connectionState === 'online', 20_000, 'alice to reconnect')
    carolIds.push((await alice.send(CAROL, 'carol 41')).id)
    await until(() => carolGot.length >= 42, 20_000, "Carol's 42nd message")
    expect(await alice.pendingCount()).toBe(4)
    expect(await mailboxFullRefusals(env.relay.metricsUrl), 'Bob not tried again on a reconnect').toBe(0)

    // Bob reads his mail, which makes room; when the deferral ends Alice's outbox sends him the rest.
    bob = await createClient({
      relayUrl: env.relay.baseUrl,
      storePath: join(dir, 'bob.db'),
      defaultRegion: 'US',
    })
    const bobGot: IncomingMessage[] = []
    bob.on('message', (m) => bobGot.push(m))
    await until(() => bobGot.length >= ROOM, 20_000, 'Bob to read what was accepted')
    await until(
      async () => {
        clock.advance(61_000) // past the relay's retryAfterMs; again if Bob's acks had not landed yet
        await sleep(300)
        return bobGot.length >= bobIds.length
      },
      30_000,
      "all of Bob's messages",
    )
    await until(async () => (await alice.pendingCount()) === 0, 10_000, 'the outbox to drain')
    await sleep(300) // a duplicate would show up now
    expect(
      bobGot.map((m) => m.id),
      'every message to Bob, once, in order',
    ).toEqual(bobIds)
    expect(
      bobGot.flatMap((m, i) => (m.text === bobText(i) ? [] : [i])),
      'texts out of place',
    ).toEqual([])
    expect(carolGot.map((m) => m.id)).toEqual(carolIds)
    expect(failed).toEqual([])
    expect(delivered.map((d) => d.id).sort()).toEqual([...bobIds, ...carolIds].sort())
  })
})
