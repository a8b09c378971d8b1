// A group message that reaches a member before the sender key it needs (docs/architecture.md §6.10), against a real
// relay process: bob's mailbox is read through a transport that hands him alice's first group message before the
// pairwise message carrying her chain, as a reordered mailbox or another path would. Bob keeps it (stats.groupHeld)
// and shows it once the key comes, once; alice's next messages go the usual way. The bound on what an attacker can
// make a member keep is in group-message.test.ts.
import { join } from 'node:path'
import {
  type IncomingMessage,
  type ParleyClient,
  type ParleyError,
  type Transport,
  type TransportSocket,
  WsTransport,
} from '@parley/node'
import { decodeServerFrame } from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activatedClient, clientDir, nodeClient, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+14155550181'
const BOB = '+14155550182'
const WAIT = 20_000

/** The first byte pair of a version-1 (`08 01`) or version-2 (`08 02`) sealed envelope. */
const versionOf = (envelope: Uint8Array | undefined) => (envelope?.[0] === 0x08 ? envelope[1] : undefined)

/**
 * A transport that, once armed, holds back the first version-1 delivery (a pairwise message) until a version-2
 * one (a group message) has been passed on, then passes the held one: the group message arrives first.
 */
function reorderingTransport(inner: Transport) {
  const state = { armed: false, swapped: 0 }
  const transport: Transport = {
    async open(url, signal) {
      const socket = await inner.open(url, signal)
      let held: Uint8Array | null = null
      const wrapped: TransportSocket = {
        send: (data) => socket.send(data),
        close: (code, reason) => socket.close(code, reason),
        onMessage: null,
        onClose: null,
      }
      socket.onMessage = (data) => {
        const frame = decodeServerFrame(data)
        const version = frame.body === 'delivery' ? versionOf(frame.delivery?.envelope) : undefined
        if (state.armed && held === null && version === 1) {
          held = data
          return
        }
        wrapped.onMessage?.(data)
        if (held !== null && version === 2) {
          const first = held
          held = null
          state.armed = false
          state.swapped++
          wrapped.onMessage?.(first)
        }
      }
      socket.onClose = (info) => wrapped.onClose?.(info)
      return wrapped
    },
  }
  return { transport, state }
}

describe('a group message before its sender key', () => {
  const env = useRelay()
  const dir = clientDir()
  let alice: ParleyClient
  let bob: ParleyClient
  const reorder = reorderingTransport(new WsTransport())
  const bobGot: IncomingMessage[] = []
  const bobErrors: ParleyError[] = []

  beforeAll(async () => {
    alice = await activatedClient(env.relay, env.codes, ALICE, { storePath: join(dir, 'alice.db') })
    bob = await activatedClient(env.relay, env.codes, BOB, {
      storePath: join(dir, 'bob.db'),
      transport: reorder.transport,
    })
    bob.on('message', (m) => bobGot.push(m))
    bob.on('error', (e) => bobErrors.push(e))
  })
  afterAll(async () => {
    await alice?.close()
    await bob?.close()
  })

  it('is kept until the key comes, then shown once; the next messages go the usual way', async () => {
    const group = await alice.createGroup({ name: 'Two', members: [BOB] })
    await until(async () => (await bob.group(group.id)) !== null, WAIT, 'bob joined')
    // Bob offline while alice sends: her chain (pairwise, version 1) and the message (version 2) wait in his
    // mailbox in that order, and his next sync reads them through the reordering transport.
    await bob.close()
    await alice.sendGroup(group.id, 'first')
    reorder.state.armed = true
    bob = await nodeClient(env.relay, { storePath: join(dir, 'bob.db'), transport: reorder.transport })
    bob.on('message', (m) => bobGot.push(m))
    bob.on('error', (e) => bobErrors.push(e))
    await until(() => bobGot.length === 1, WAIT, 'the held message shown')
    expect(reorder.state.swapped).toBe(1)
    expect(bobGot.map((m) => [m.from, m.text, m.group])).toEqual([[ALICE, 'first', group.id]])
    expect(bob.stats.groupHeld).toBe(1)
    expect(bob.stats.groupRefused).toBe(0)
    expect(bobErrors).toEqual([])

    await alice.sendGroup(group.id, 'second')
    await until(() => bobGot.length === 2, WAIT, 'the next message')
    expect(bobGot.map((m) => m.text)).toEqual(['first', 'second'])
    expect(bob.stats.groupHeld).toBe(1)
    // Nothing held is left, and nothing is shown twice after a restart.
    await bob.close()
    bob = await nodeClient(env.relay, { storePath: join(dir, 'bob.db') })
    bob.on('message', (m) => bobGot.push(m))
    await alice.sendGroup(group.id, 'third')
    await until(() => bobGot.length === 3, WAIT, 'the third message')
    expect(bobGot.map((m) => m.text)).toEqual(['first', 'second', 'third'])
    const conversation = (await bob.conversations()).find((c) => c.group === group.id)!
    const texts = (await bob.conversationHistory(conversation.id)).messages.map((m) => m.text)
    expect(texts).toEqual(['first', 'second', 'third'])
  })
})
