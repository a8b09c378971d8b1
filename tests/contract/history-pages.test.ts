// Conversation history of 10,000 messages through a real relay process: bob sends alice 5,000, then she sends him
// 5,000 in a burst, and alice's one conversation with bob is then walked back from the newest page and forward from
// the oldest, 500 messages a page: every message exactly once, each direction in the order it was sent, and both
// walks the same sequence.
import { join } from 'node:path'
import type { ConversationMessage, ParleyClient } from '@parley/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activatedClient, clientDir, inbox, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+1 415 555 0146'
const BOB = '+1 415 555 0147'
const EACH = 5000
const PAGE = 500

describe('10,000 messages of history through a real relay process', () => {
  // Sealed-sender sends are metered per recipient and per source network (5 and 10 a second by default): lifted,
  // as this measures history, not those quotas.
  const env = useRelay([
    '--unidentified-recipient-capacity',
    '100000',
    '--unidentified-recipient-per-minute',
    '100000',
    '--unidentified-network-capacity',
    '100000',
    '--unidentified-network-per-minute',
    '100000',
  ])
  const dir = clientDir()
  let alice: ParleyClient
  let bob: ParleyClient

  beforeAll(async () => {
    alice = await activatedClient(env.relay, env.codes, ALICE, { storePath: join(dir, 'alice.db') })
    bob = await activatedClient(env.relay, env.codes, BOB, {
      storePath: join(dir, 'bob.db'),
      receipts: { delivery: false, read: false },
    })
  })

  afterAll(async () => {
    await Promise.all([alice?.close(), bob?.close()])
  })

  it('pages every message of both directions once, in order, back and forth', async () => {
    const got = { alice: inbox(alice), bob: inbox(bob) }
    // One message each way first, so that both sessions exist.
    const opening = [await alice.send(BOB, 'hello')]
    await until(() => got.bob.length === 1, 30_000, 'the first message')
    opening.push(await bob.send(ALICE, 'hi'))
    await until(() => got.alice.length === 1, 30_000, 'the answer')
    const sendAll = async (from: ParleyClient, to: string, tag: string) => {
      const ids: string[] = []
      for (let i = 0; i < EACH - 1; i++) {
        ids.push((await from.send(to, `${tag}${i}`)).id)
        if (i % 100 === 99) await new Promise((r) => setImmediate(r))
      }
      return ids
    }
    // Bob's first, then alice's while bob is offline: the relay keeps hers in his mailbox, so no device spends the
    // run opening messages nobody pages (the history is alice's).
    const fromBob = await sendAll(bob, ALICE, 'b')
    await until(() => got.alice.length === EACH, 300_000, `${EACH} messages to alice`)
    await bob.close()
    const fromAlice = await sendAll(alice, BOB, 'a')
    await until(async () => (await alice.pendingCount()) === 0, 300_000, "alice's outbox to empty")
    const sentByAlice = [opening[0]!.id, ...fromAlice]
    const sentByBob = [opening[1]!.id, ...fromBob]

    // Back from the newest page.
    const pages: ConversationMessage[][] = []
    let page = await alice.conversationHistory(BOB, { limit: PAGE })
    pages.unshift(page.messages)
    while (page.before !== null) {
      page = await alice.conversationHistory(BOB, { before: page.before, limit: PAGE })
      pages.unshift(page.messages)
    }
    const back = pages.flat()
    expect(pages.length).toBe((2 * EACH) / PAGE)
    expect(pages.every((p) => p.length === PAGE)).toBe(true)
    expect(back.length).toBe(2 * EACH)
    expect(new Set(back.map((m) => m.id)).size).toBe(2 * EACH)
    expect(back.filter((m) => m.outgoing).map((m) => m.id)).toEqual(sentByAlice)
    expect(back.filter((m) => !m.outgoing).map((m) => m.id)).toEqual(sentByBob)
    expect(back.filter((m) => !m.outgoing).map((m) => m.text)).toEqual([
      'hi',
      ...Array.from({ length: EACH - 1 }, (_, i) => `b${i}`),
    ])

    // Forward from the oldest page, by `after` cursors: the same sequence.
    // `page` is the oldest now.
    expect(page.messages[0]!.id).toBe(sentByAlice[0])
    const ahead = [...page.messages]
    for (let cursor = page.after; cursor !== null; ) {
      const next = await alice.conversationHistory(BOB, { after: cursor, limit: PAGE })
      ahead.push(...next.messages)
      cursor = next.after
    }
    expect(ahead.map((m) => m.id)).toEqual(back.map((m) => m.id))

    const [conversation, ...others] = await alice.conversations()
    expect(others).toEqual([])
    expect(conversation).toMatchObject({ number: '+14155550147', unread: EACH })
    expect(conversation!.lastMessage?.id).toBe(back.at(-1)!.id)
  }, 600_000)
})
