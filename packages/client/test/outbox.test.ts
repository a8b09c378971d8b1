// The durable outbox against a FakeRelay: restarts, dropped answers, retries and deferrals on the manual clock,
// permanent failures, a recipient on a new device.
import { MemoryStore, ParleyError } from '@parley/client'
import { NO_ANSWER } from '@parley/client/testing'
import { describe, expect, it } from 'vitest'
import { ALICE, aliceAndBob, BOB, CAROL, collect, reopenable, world } from './harness.js'

describe('outbox', () => {
  it('keeps a message queued across close and reopen, and delivers it once when the relay is back', async () => {
    const { relay, activated, client } = world()
    const disk = new MemoryStore()
    const alice = await activated(ALICE, { store: reopenable(disk) })
    const bob = await activated(BOB)
    await alice.discover([BOB])
    relay.refuseConnections()
    relay.drop(ALICE)
    await relay.settle()
    expect(alice.connectionState).toBe('offline')

    const { route } = await alice.send(BOB, 'written offline')
    expect(route).toBe('ip')
    expect(await alice.pendingCount()).toBe(1)
    await alice.close()

    relay.refuseConnections(false)
    const restarted = await client({ store: reopenable(disk) })
    expect(await restarted.pendingCount()).toBe(1)
    const delivered = collect(restarted, 'delivered')
    await relay.settle()
    expect(delivered).toHaveLength(1)
    expect(await restarted.pendingCount()).toBe(0)
    expect((await bob.history()).map((m) => m.text)).toEqual(['written offline'])
    expect(relay.received('sendMessage')).toHaveLength(1)
  })

  it('resends an unanswered message after a reconnect: nothing lost, nothing shown twice', async () => {
    const { relay, step, alice, received } = await aliceAndBob()
    // The relay stores the message but the answer never arrives (the connection dies first).
    relay.answer(
      'sendMessage',
      async (_request, { next, connection }) => {
        await next()
        connection.close()
        return NO_ANSWER
      },
      { times: 1 },
    )
    await alice.send(BOB, 'exactly once')
    await relay.settle()
    expect(await alice.pendingCount()).toBe(1)
    await step(1_000)

    expect(relay.received('sendMessage')).toHaveLength(2)
    const [first, second] = relay.received('sendMessage')
    // The same message (same id, same session step) went again, resealed; the relay dropped the copy.
    expect(second!.messageId).toEqual(first!.messageId)
    // Bob had acked the first copy (10 ms) before Alice reconnected, so the relay stored the resend again: at least
    // once on the wire, exactly once at the API — Bob's inbox shows it once and acks the copy.
    expect(relay.account(BOB)!.headSeq).toBe(2)
    expect(received.map((m) => m.text)).toEqual(['exactly once'])
    await step(10)
    expect(relay.mailbox(BOB)).toHaveLength(0)
    expect(await alice.pendingCount()).toBe(0)
  })

  it('waits out RATE_LIMITED on the manual clock, then sends', async () => {
    const { relay, clock, step, alice, bob } = await aliceAndBob()
    relay.refuse('sendMessage', 'RATE_LIMITED', { retryAfterMs: 5_000, times: 1 })
    await alice.send(BOB, 'later')
    await relay.settle()
    expect(relay.received('sendMessage')).toHaveLength(1)
    expect(clock.pendingDelays).toContain(5_000)

    await step(4_999)
    expect(relay.received('sendMessage')).toHaveLength(1)
    await step(1)
    expect(relay.received('sendMessage')).toHaveLength(2)
    expect((await bob.history()).map((m) => m.text)).toEqual(['later'])
  })

  it('defers only the recipient whose mailbox is full, keeping its order, until retryAfterMs', async () => {
    const { relay, activated, step, alice, bob } = await aliceAndBob()
    const carol = await activated(CAROL)
    await alice.discover([BOB, CAROL])
    // In arrival order (history() is ordered by the relay's receive time, the same millisecond for all here).
    const toBob = collect(bob, 'message')
    const toCarol = collect(carol, 'message')
    const bobAddress = relay.addressOf(BOB)
    const full = relay.answer('sendMessage', (request) =>
      Buffer.from(request.recipientAddress!).toString('hex') === bobAddress
        ? new ParleyError('MAILBOX_FULL', 'full', { retryAfterMs: 30_000 })
        : undefined,
    )
    await alice.send(BOB, 'b1')
    await alice.send(CAROL, 'c1')
    await alice.send(BOB, 'b2')
    await alice.send(CAROL, 'c2')
    await relay.settle()
    expect(toCarol.map((m) => m.text)).toEqual(['c1', 'c2'])
    expect(toBob).toEqual([])
    expect(await alice.pendingCount()).toBe(2)
    // b2 never went while b1 waited.
    const tried = () =>
      relay
        .received('sendMessage')
        .filter((m) => Buffer.from(m.recipientAddress!).toString('hex') === bobAddress)
    expect(tried()).toHaveLength(1)

    full()
    await step(29_000)
    expect(tried()).toHaveLength(1)
    await step(1_000)
    expect(toBob.map((m) => m.text)).toEqual(['b1', 'b2'])
    expect(await alice.pendingCount()).toBe(0)
  })

  it("meets the relay's own mailbox limit the same way", async () => {
    const { relay, clock, step, alice, bob } = await aliceAndBob({ maxMailboxMessages: 1 })
    relay.drop(BOB)
    relay.refuseConnections()
    await relay.settle()
    await alice.send(BOB, 'fits')
    await alice.send(BOB, 'waits')
    await relay.settle()
    expect(relay.mailbox(BOB).length).toBe(1)
    expect(relay.sent('error').map((e) => e.code)).toContain(14) // MAILBOX_FULL
    expect(await alice.pendingCount()).toBe(1)

    // Bob comes back and reads; Alice's deferral (the relay said 60 s) ends; the second message fits now.
    relay.refuseConnections(false)
    await clock.advance(60_000)
    await step(10)
    expect((await bob.history()).map((m) => m.text)).toEqual(['fits', 'waits'])
    expect(await alice.pendingCount()).toBe(0)
  })

  it('drops a message the relay refuses for good and tells the app (sendFailed)', async () => {
    const { relay, alice, bob } = await aliceAndBob()
    const failed = collect(alice, 'sendFailed')
    relay.refuse('sendMessage', 'BAD_REQUEST', { times: 1 })
    const { id } = await alice.send(BOB, 'refused')
    await alice.send(BOB, 'fine')
    await relay.settle()
    expect(failed).toEqual([{ id, to: BOB, error: expect.objectContaining({ code: 'BAD_REQUEST' }) }])
    expect(await alice.pendingCount()).toBe(0)
    expect((await bob.history()).map((m) => m.text)).toEqual(['fine'])
  })

  it('starts a new session when the recipient moved to a new device (CONFLICT), and says its identity changed', async () => {
    const { relay, activated, alice, bob } = await aliceAndBob()
    await alice.send(BOB, 'to the old phone')
    await relay.settle()
    const before = await alice.safetyNumber(BOB)
    await bob.close()

    const newPhone = await activated(BOB)
    const changes = collect(alice, 'identityChanged')
    await alice.send(BOB, 'to the new phone')
    await relay.settle()
    expect(relay.sent('error').map((e) => e.code)).toContain(6) // CONFLICT: the old device id
    expect(relay.received('prekeyBundleQuery')).toHaveLength(2)
    expect((await newPhone.history()).map((m) => m.text)).toEqual(['to the new phone'])
    expect(changes).toEqual([expect.objectContaining({ number: BOB, held: false })])
    expect(changes[0]!.safetyNumber).not.toBe(before)
    expect(await alice.safetyNumber(BOB)).toBe(changes[0]!.safetyNumber)
  })
})
