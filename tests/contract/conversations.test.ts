// Conversations through a real relay process: alice's phone and linked laptop and bob exchange messages; each
// device keeps one conversation per peer with both directions in order (the laptop's from sent transcripts),
// unread counts, the states of sent messages, pages that walk the whole history both ways without a gap or a
// repeat, read marks, local deletion, and a number reached only by SMS.
import { join } from 'node:path'
import type { ConversationMessage, ParleyClient } from '@parley/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activatedClient, clientDir, codeOf, inbox, nodeClient, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+1 415 555 0140'
const BOB = '+1 415 555 0141'
const NOT_ON_PARLEY = '+1 415 555 0149'

/** Every message of a conversation, walking back from the newest page by page. */
async function walkBack(
  client: ParleyClient,
  conversation: string,
  limit: number,
): Promise<ConversationMessage[]> {
  let page = await client.conversationHistory(conversation, { limit })
  const pages = [page.messages]
  while (page.before !== null) {
    page = await client.conversationHistory(conversation, { before: page.before, limit })
    pages.unshift(page.messages)
  }
  return pages.flat()
}

describe('conversations through a real relay process', () => {
  const env = useRelay()
  const dir = clientDir()
  let alice: ParleyClient
  let laptop: ParleyClient
  let bob: ParleyClient
  const sms: string[] = []

  beforeAll(async () => {
    alice = await activatedClient(env.relay, env.codes, ALICE, {
      storePath: join(dir, 'alice.db'),
      smsFallback: (to, text) => {
        sms.push(`${to}: ${text}`)
      },
    })
    bob = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob.db') })
    laptop = await nodeClient(env.relay, { storePath: join(dir, 'laptop.db') })
    const invitation = await alice.createLinkCode({ confirm: () => true })
    await laptop.link(invitation.code)
    await invitation.linked
  })

  afterAll(async () => {
    await Promise.all([alice?.close(), laptop?.close(), bob?.close()])
  })

  it('keeps both directions of a conversation in order, with unread counts and sent states', async () => {
    const got = { alice: inbox(alice), laptop: inbox(laptop), bob: inbox(bob) }
    for (const t of ['b1', 'b2', 'b3']) await bob.send(ALICE, t)
    await until(() => got.alice.length === 3 && got.laptop.length === 3, 30_000, 'bob → alice')
    const delivered: string[] = []
    alice.on('delivered', (e) => delivered.push(e.id))
    const sent = [await alice.send(BOB, 'a1'), await alice.send(BOB, 'a2')]
    await until(() => delivered.length === 2 && got.bob.length === 2, 30_000, 'alice → bob')
    await until(() => got.laptop.length === 5, 30_000, 'sent transcripts on the laptop')

    const [conversation, ...others] = await alice.conversations()
    expect(others).toEqual([])
    expect(conversation).toMatchObject({ number: '+14155550141', unread: 3 })
    expect(conversation!.lastMessage).toMatchObject({ text: 'a2', outgoing: true, state: 'sent' })
    const page = await alice.conversationHistory(BOB)
    expect(page.messages.map((m) => [m.text, m.outgoing, m.state])).toEqual([
      ['b1', false, 'received'],
      ['b2', false, 'received'],
      ['b3', false, 'received'],
      ['a1', true, 'sent'],
      ['a2', true, 'sent'],
    ])
    expect(page.messages.slice(3).map((m) => m.id)).toEqual(sent.map((s) => s.id))
    expect([page.before, page.after]).toEqual([null, null])
    // The same conversation, by id or by number in another format.
    expect((await alice.conversationHistory(conversation!.id)).messages.length).toBe(5)
    expect((await alice.conversationHistory('(415) 555-0141')).messages.length).toBe(5)
    // The laptop built the same conversation from bob's messages and alice's sent transcripts.
    const onLaptop = await laptop.conversationHistory(BOB)
    expect(onLaptop.messages.map((m) => [m.text, m.outgoing])).toEqual(
      page.messages.map((m) => [m.text, m.outgoing]),
    )
    // Bob's side: alice's two, unread.
    const [bobs] = await bob.conversations()
    expect(bobs).toMatchObject({ number: '+14155550140', unread: 2 })
  })

  it('pages the whole history both ways, without a gap or a repeat', async () => {
    const got = inbox(alice)
    const texts = Array.from({ length: 120 }, (_, i) => `m${i}`)
    for (const t of texts) await bob.send(ALICE, t)
    await until(() => got.length === texts.length, 60_000, '120 messages')
    const all = await walkBack(alice, BOB, 17)
    expect(all.length).toBe(125)
    expect(new Set(all.map((m) => m.id)).size).toBe(125)
    expect(all.slice(5).map((m) => m.text)).toEqual(texts)
    // The newest page by default.
    const newest = await alice.conversationHistory(BOB, { limit: 10 })
    expect(newest.messages.map((m) => m.text)).toEqual(texts.slice(-10))
    expect(newest.after).toBeNull()
    const forward: ConversationMessage[] = []
    // Walk back to the first page, then forward to the end.
    let first = await alice.conversationHistory(BOB, { limit: 30 })
    while (first.before !== null)
      first = await alice.conversationHistory(BOB, { limit: 30, before: first.before })
    forward.push(...first.messages)
    let cursor = first.after
    while (cursor !== null) {
      const next = await alice.conversationHistory(BOB, { limit: 30, after: cursor })
      forward.push(...next.messages)
      cursor = next.after
    }
    expect(forward.map((m) => m.id)).toEqual(all.map((m) => m.id))
    expect((await alice.conversations())[0]!.unread).toBe(123)
    expect(await codeOf(alice.conversationHistory(BOB, { limit: 501 }))).toBe(
      'RangeError: limit must be an integer from 1 to 500',
    )
  })

  it('marks read up to a message, deletes a message and a conversation on this device only', async () => {
    const all = await walkBack(alice, BOB, 500)
    const m50 = all.find((m) => m.text === 'm50')!
    // Everything received up to m50 is read: b1–b3 and m0–m50.
    expect(await alice.markRead(BOB, m50.id)).toBe(123 - 54)
    const after = await alice.conversationHistory(BOB, { limit: 500 })
    expect(after.messages.filter((m) => !m.read).map((m) => m.text)).toEqual(
      Array.from({ length: 69 }, (_, i) => `m${i + 51}`),
    )
    expect(await alice.markRead(BOB)).toBe(0)
    expect((await alice.conversations())[0]!.unread).toBe(0)
    const last = all[all.length - 1]!
    expect(await alice.deleteMessage(last.id)).toBe(true)
    expect(await alice.deleteMessage(last.id)).toBe(false)
    const [c] = await alice.conversations()
    expect(c!.lastMessage!.text).toBe('m118')
    expect((await alice.conversationHistory(BOB, { limit: 500 })).messages.length).toBe(124)
    expect(await alice.deleteConversation(BOB)).toBe(124)
    expect(await alice.conversations()).toEqual([])
    // Only here: bob and the laptop still have theirs (the laptop gets bob's mail on its own, so it is waited for).
    await until(
      async () => (await laptop.conversationHistory(BOB, { limit: 500 })).messages.length === 125,
      30_000,
      'the laptop to hold all 125',
    )
    expect((await bob.conversations()).length).toBe(1)
    // A new message starts a new conversation.
    const got = inbox(alice)
    await bob.send(ALICE, 'again')
    await until(() => got.length === 1, 30_000, 'again')
    const [fresh] = await alice.conversations()
    expect(fresh).toMatchObject({ unread: 1, lastMessage: { text: 'again' } })
    expect(fresh!.id).not.toBe(c!.id)
  })

  it('keeps a number reached only by SMS as a conversation of its own', async () => {
    expect((await alice.send(NOT_ON_PARLEY, 'by sms')).route).toBe('sms')
    expect(sms).toEqual(['+14155550149: by sms'])
    const c = (await alice.conversations()).find((x) => x.number === '+14155550149')!
    expect(c).toMatchObject({
      address: null,
      unread: 0,
      lastMessage: { text: 'by sms', state: 'sms', outgoing: true },
    })
    expect((await alice.conversationHistory(NOT_ON_PARLEY)).messages.map((m) => m.state)).toEqual(['sms'])
  })
})
