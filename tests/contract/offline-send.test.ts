// Sending with no connection to a number this device has not looked up, and no SMS policy, against a real relay
// process: the send is queued (`route: 'pending'`) instead of waiting for a connection and failing; once the
// client is online it looks the number up and sends — in the order the app sent — or reports NOT_FOUND for a
// number that is not on Parley. Also across a restart of the sending process. Asserted by what each side got.
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

    await env.relay.start()
    await until(() => bobGot.length === 2, 30_000, "bob's two messages")
    expect(bobGot.map((m) => [m.id, m.text, m.from])).toEqual([
      [first.id, 'one', '+14155550160'],
      [second.id, 'two', '+14155550160'],
    ])
    await until(() => failed.length === 1, 30_000, 'the failure of the number not on Parley')
    expect(failed).toEqual([{ id: nobody.id, code: 'NOT_FOUND' }])
    await until(async () => (await alice.pendingCount()) === 0, 30_000, 'an empty outbox')
    const history = (await alice.conversationHistory(BOB)).messages
    expect(history.filter((m) => m.id === first.id || m.id === second.id).map((m) => m.text)).toEqual([
      'one',
      'two',
    ])
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
