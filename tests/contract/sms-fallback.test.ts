// SMS fallback when IP fails, against a real relay process: with `smsFallback: { send, after }`, a message that
// the relay (stopped) has not taken within `after` goes to the SMS hook instead, its state becomes `sms`, and it
// is never also delivered over IP once the relay is back; a number never looked up goes by SMS at once while
// there is no connection. Asserted by what each side received, not by timing.
import { join } from 'node:path'
import type { ParleyClient } from '@parley/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activatedClient, clientDir, inbox, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+1 415 555 0150'
const BOB = '+1 415 555 0151'
const NEVER_LOOKED_UP = '+1 415 555 0159'

describe('SMS fallback when IP fails', () => {
  const env = useRelay()
  const dir = clientDir()
  let alice: ParleyClient
  let bob: ParleyClient
  const sms: string[] = []
  const bySms: string[] = []

  beforeAll(async () => {
    alice = await activatedClient(env.relay, env.codes, ALICE, {
      storePath: join(dir, 'alice.db'),
      smsFallback: {
        send: (to, text) => {
          sms.push(`${to}: ${text}`)
        },
        after: 1500,
      },
    })
    bob = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob.db') })
    alice.on('sentBySms', (e) => bySms.push(e.id))
  })

  afterAll(async () => {
    await Promise.all([alice?.close(), bob?.close()])
  })

  it('sends by SMS what the relay did not take in time, and never also over IP', async () => {
    const bobGot = inbox(bob)
    await alice.send(BOB, 'before')
    await until(() => bobGot.length === 1, 30_000, 'before')

    await env.relay.stop()
    await until(() => alice.connectionState !== 'online', 15_000, 'alice offline')
    const queued = await alice.send(BOB, 'while down')
    expect(queued.route).toBe('ip')
    // A number this device never looked up: no waiting for a connection that is not there.
    expect((await alice.send(NEVER_LOOKED_UP, 'to a stranger')).route).toBe('sms')
    await until(() => bySms.length === 1, 30_000, 'the SMS fallback')
    expect(bySms).toEqual([queued.id])
    expect(sms).toEqual(['+14155550159: to a stranger', '+14155550151: while down'])
    expect(await alice.pendingCount()).toBe(0)
    const down = (await alice.conversationHistory(BOB)).messages.find((m) => m.id === queued.id)
    expect(down?.state).toBe('sms')

    await env.relay.start()
    await until(() => alice.connectionState === 'online' && bob.connectionState === 'online', 30_000, 'back')
    await alice.send(BOB, 'after')
    await until(() => bobGot.some((m) => m.text === 'after'), 30_000, 'after')
    // Per-sender order: had 'while down' gone over IP too, bob would have it before 'after'.
    expect(bobGot.map((m) => m.text)).toEqual(['before', 'after'])
    expect(sms.length).toBe(2)
  })
})
