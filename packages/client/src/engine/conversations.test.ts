// Conversation history at scale: 10,000 messages of one conversation (both directions, many in the same
// millisecond) page back and forth without a gap, a repeat or a wrong order, through a store with `page` and
// through one with only `list`; and a conversation survives its peer moving to a new address.
import { describe, expect, it } from 'vitest'
import { toHex } from '../internal/codec.js'
import { SerialQueue } from '../internal/SerialQueue.js'
import { MemoryStore, type Store, type StoreWrite } from '../Store.js'
import type { ConversationMessage } from '../types.js'
import type { Engine } from './context.js'
import { Conversations } from './conversations.js'
import type { Discovery } from './discovery.js'
import { moveAddressRecords } from './keyspace.js'

const PEER = 'ab'.repeat(32)
const N = 10_000

function setup(store: Store) {
  let n = 0
  const random = (len: number) => {
    const b = new Uint8Array(len)
    new DataView(b.buffer).setUint32(0, ++n)
    return b
  }
  // The parts of the engine a conversation uses.
  const engine = {
    store,
    random,
    serial: new SerialQueue(),
    requireAccount: () => ({}),
  } as unknown as Engine
  const discovery = { normalize: async (s: string) => s } as unknown as Discovery
  return new Conversations(engine, discovery)
}

/** Message i: every third one sent from here, the rest received; ten per millisecond, in mailbox order. */
const message = (i: number) => {
  const id = toHex(new Uint8Array(16).map((_, j) => (j < 4 ? (i * 2654435761) >>> (8 * j) : j)))
  const at = 1_700_000_000_000 + Math.floor(i / 10)
  return i % 3 === 0
    ? { id, outgoing: true, from: '+1', text: `t${i}`, sentAt: at, receivedAt: null, state: 'sent' as const }
    : {
        id,
        outgoing: false,
        from: '+2',
        text: `t${i}`,
        sentAt: at - 5,
        receivedAt: at,
        state: 'received' as const,
        seq: i + 1,
      }
}

async function fill(c: Conversations, store: Store): Promise<void> {
  for (let i = 0; i < N; i += 500) {
    const writes: StoreWrite[] = []
    for (let j = i; j < i + 500; j++)
      writes.push(...(await c.add({ peer: PEER, number: '+2', message: message(j) }, writes)))
    await store.write(writes)
  }
}

async function walk(c: Conversations, id: string, limit: number) {
  const back: ConversationMessage[][] = []
  let page = await c.page(id, { limit })
  back.unshift(page.messages)
  while (page.before !== null) {
    page = await c.page(id, { before: page.before, limit })
    back.unshift(page.messages)
  }
  const forward: ConversationMessage[] = [...page.messages]
  let cursor = page.after
  while (cursor !== null) {
    const next = await c.page(id, { after: cursor, limit })
    forward.push(...next.messages)
    cursor = next.after
  }
  return { back: back.flat(), forward }
}

describe('conversation history', () => {
  for (const [name, make] of [
    ['a store with page', () => new MemoryStore()],
    [
      'a store with list only',
      () => {
        const m = new MemoryStore()
        return {
          get: (k) => m.get(k),
          write: (b) => m.write(b),
          list: (p) => m.list(p),
          close: () => m.close(),
        } as Store
      },
    ],
  ] as const) {
    it(`pages ${N} messages back and forth in order, without a gap or a repeat (${name})`, async () => {
      const store = make()
      const c = setup(store)
      await fill(c, store)
      const [conversation] = await c.list()
      // The documented order: time (received, or sent for one sent from here), then mailbox order, then id.
      const order = Array.from({ length: N }, (_, i) => message(i)).map((m) => ({
        text: m.text,
        key: [m.outgoing ? m.sentAt : m.receivedAt!, 'seq' in m ? (m.seq ?? 0) : 0, m.id] as const,
      }))
      order.sort((a, b) => a.key[0] - b.key[0] || a.key[1] - b.key[1] || (a.key[2] < b.key[2] ? -1 : 1))
      const expected = order.map((o) => o.text)
      expect(conversation).toMatchObject({
        unread: N - Math.ceil(N / 3),
        lastMessage: { text: expected[N - 1] },
      })
      const { back, forward } = await walk(c, conversation!.id, 250)
      // Mail of one millisecond in the order the relay received it (its seq), not by id.
      expect(expected.slice(0, 10).filter((t) => Number(t.slice(1)) % 3 !== 0)).toEqual([
        't1',
        't2',
        't4',
        't5',
        't7',
        't8',
      ])
      expect(back.map((m) => m.text)).toEqual(expected)
      expect(forward.map((m) => m.text)).toEqual(expected)
      // Adding a message twice changes nothing.
      expect(await c.add({ peer: PEER, number: '+2', message: message(5) })).toEqual([])
    })
  }

  it('follows its peer to a new address', async () => {
    const store = new MemoryStore()
    const c = setup(store)
    await store.write(await c.add({ peer: PEER, number: '+2', message: message(1) }))
    const [before] = await c.list()
    await store.write(await moveAddressRecords(store, PEER, 'cd'.repeat(32)))
    const again = await c.add({ peer: 'cd'.repeat(32), number: '+3', message: message(2) })
    await store.write(again)
    const [after, ...none] = await c.list()
    expect(none).toEqual([])
    expect(after!.id).toBe(before!.id)
    expect((await c.page(after!.id, {})).messages.map((m) => m.text)).toEqual(['t1', 't2'])
  })
})
