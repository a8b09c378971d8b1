// Sending with no connection to a number this device has not looked up, and no SMS policy, against a real relay
// process: the send is queued (`route: 'pending'`) instead of waiting for a connection and failing; once the
// client is online it looks the number up and sends — in the order the app sent — or reports NOT_FOUND for a
// number that is not on Parley. Meanwhile each send is shown, queued, in its number's conversation, and moves to the
// contact's once the number is found. Also across a restart of the sending process. Asserted by what each side
// got and by the sender's conversations.
import { join } from 'node:path'
import type { ParleyClient, ParleyError } from '@parley/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activatedClient, clientDir, inbox, nodeClient, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+1 415 555 0160'
const BOB = '+1 415 555 0161'
const CAROL = '+1 415 555 0162'
const NOBODY = '+1 415 555 0169'

describe('offline sends to numbers not looked up', () => {
  const env = useRelay()
  const dir = clientDir()
  let alice: ParleyClient
  let bob: ParleyClient
  let carol: ParleyClient
  const failed: { id: string; code: string }[] = []

  beforeAll(async () => {
    alice = await activatedClient(env.relay, env.codes, ALICE, { storePath: join(dir, 'alice.db') })
    bob = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob.db') })
    carol = await activatedClient(env.relay, env.codes, CAROL, { storePath: join(dir, 'carol.db') })
    alice.on('sendFailed', (e) => failed.push({ id: e.id, code: (e.error as ParleyError).code }))
  })

  afterAll(async () => {
    await Promise.all([alice?.close(), bob?.close(), carol?.close()])
  })

  it('queues them while the relay is down, then sends them in order, and fails a number not on Parley', async () => {
    const bobGot = inbox(bob)
    await env.relay.stop()
    await until(() => alice.connectionState !== 'online', 15_000, 'alice offline')
    const first = await alice.send(BOB, 'one')
    const nobody = await alice.send(NOBODY, 'to nobody')
    const second = await alice.send(BOB, 'two')
    expect([first.route, nobody.route, second.route]).toEqual(['pending', 'pending', 'pending'])
    expect(await alice.pendingCount()).toBe(3)
    expect(failed).toEqual([])
    // Shown at once, queued, in each number's conversation: one without an address, as neither number is known
    // to be on Parley yet.
    const shown = async (to: string) =>
      (await alice.conversationHistory(to)).messages.map((m) => [m.id, m.text, m.state, m.conversation])
    const pendingConv = (await alice.conversations()).find((c) => c.number === '+14155550161')!
    expect(pendingConv).toMatchObject({ address: null, unread: 0 })
    expect(pendingConv.lastMessage?.id).toBe(second.id)
    expect(await shown(BOB)).toEqual([
      [first.id, 'one', 'queued', pendingConv.id],
      [second.id, 'two', 'queued', pendingConv.id],
    ])
    expect((await shown(NOBODY)).map((m) => m.slice(0, 3))).toEqual([[nobody.id, 'to nobody', 'queued']])

    await env.relay.start()
    await until(() => bobGot.length === 2, 30_000, "bob's two messages")
    expect(bobGot.map((m) => [m.id, m.text, m.from])).toEqual([
      [first.id, 'one', '+14155550160'],
      [second.id, 'two', '+14155550160'],
    ])
    await until(() => failed.length === 1, 30_000, 'the failure of the number not on Parley')
    expect(failed).toEqual([{ id: nobody.id, code: 'NOT_FOUND' }])
    await until(async () => (await alice.pendingCount()) === 0, 30_000, 'an empty outbox')
    // Moved to bob's conversation (by his address), each once; the one that held them is gone.
    const bobConv = (await alice.conversations()).find((c) => c.number === '+14155550161')!
    expect(bobConv.address).not.toBeNull()
    expect(bobConv.id).not.toBe(pendingConv.id)
    const history = (await alice.conversationHistory(BOB)).messages
    expect(history.map((m) => [m.id, m.text, m.conversation])).toEqual([
      [first.id, 'one', bobConv.id],
      [second.id, 'two', bobConv.id],
    ])
    expect(history.every((m) => m.state === 'sent' || m.state === 'delivered' || m.state === 'read')).toBe(
      true,
    )
    expect((await alice.conversationHistory(pendingConv.id)).messages).toEqual([])
    expect((await alice.conversations()).filter((c) => c.number === '+14155550161')).toHaveLength(1)
    // The one to a number not on Parley stays where it was shown, failed.
    expect((await shown(NOBODY)).map((m) => m.slice(0, 3))).toEqual([[nobody.id, 'to nobody', 'failed']])
  })

  it('keeps a queued send across a restart of the sending process', async () => {
    const carolGot = inbox(carol)
    await env.relay.stop()
    await until(() => alice.connectionState !== 'online', 15_000, 'alice offline')
    const sent = await alice.send(CAROL, 'kept')
    expect(sent.route).toBe('pending')
    await alice.close()
    await env.relay.start()
    alice = await nodeClient(env.relay, { storePath: join(dir, 'alice.db') })
    await until(() => carolGot.length === 1, 30_000, "carol's message")
    expect(carolGot.map((m) => [m.id, m.text])).toEqual([[sent.id, 'kept']])
    expect(await alice.pendingCount()).toBe(0)
  })
})
