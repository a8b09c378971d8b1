// Replies, reactions, edits, deletions for everyone and receipts through a real relay process, end to end: each
// changes the message it names on every device of both sides (alice's phone and laptop, bob), within its rules
// (only your own messages, within 24 hours); delivery and read receipts move a sent message's state forward, and
// a device with read receipts off sends none.
import { join } from 'node:path'
import type { MessageChangedEvent, ParleyClient, ReactionEvent, ReceiptEvent } from '@parley/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activatedClient, clientDir, codeOf, inbox, nodeClient, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+1 415 555 0170'
const BOB = '+1 415 555 0171'
const CAROL = '+1 415 555 0172'

describe('replies, reactions, edits, deletions and receipts through a real relay process', () => {
  const env = useRelay()
  const dir = clientDir()
  let alice: ParleyClient
  let laptop: ParleyClient
  let bob: ParleyClient
  let carol: ParleyClient

  beforeAll(async () => {
    alice = await activatedClient(env.relay, env.codes, ALICE, { storePath: join(dir, 'alice.db') })
    bob = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob.db') })
    carol = await activatedClient(env.relay, env.codes, CAROL, {
      storePath: join(dir, 'carol.db'),
      receipts: { read: false },
    })
    laptop = await nodeClient(env.relay, { storePath: join(dir, 'laptop.db') })
    const invitation = await alice.createLinkCode({ confirm: () => true })
    await laptop.link(invitation.code)
    await invitation.linked
  })

  afterAll(async () => {
    await Promise.all([alice?.close(), laptop?.close(), bob?.close(), carol?.close()])
  })

  it('moves a sent message to delivered, then read, by the recipient’s receipts', async () => {
    const receipts: ReceiptEvent[] = []
    alice.on('receipt', (e) => receipts.push(e))
    const got = inbox(bob)
    const { id } = await alice.send(BOB, 'are you there?')
    await until(() => got.length === 1, 30_000, 'bob gets it')
    const stateOf = async (c: ParleyClient) =>
      (await c.conversationHistory(BOB)).messages.find((m) => m.id === id)?.state
    await until(async () => (await stateOf(alice)) === 'delivered', 30_000, 'delivered')
    expect(receipts.map((r) => [r.kind, r.messageIds])).toEqual([['delivered', [id]]])
    await bob.markRead(ALICE)
    await until(async () => (await stateOf(alice)) === 'read', 30_000, 'read')
    expect(receipts.map((r) => r.kind)).toEqual(['delivered', 'read'])
    // Receipts are not messages: bob's conversation has the one message, alice's pending count is 0.
    expect((await bob.conversationHistory(ALICE)).messages.length).toBe(1)
    expect(await alice.pendingCount()).toBe(0)
  })

  it('sends no read receipt from a device that turned them off', async () => {
    const got = inbox(carol)
    const { id } = await alice.send(CAROL, 'hi carol')
    await until(() => got.length === 1, 30_000, 'carol gets it')
    const stateOf = async () =>
      (await alice.conversationHistory(CAROL)).messages.find((m) => m.id === id)?.state
    await until(async () => (await stateOf()) === 'delivered', 30_000, 'delivered')
    await carol.markRead(ALICE)
    // Carol writes after marking read: per-sender order brings a read receipt sent before it to alice first.
    const back = inbox(alice)
    await carol.send(ALICE, 'after reading')
    await until(() => back.length === 1, 30_000, 'carol → alice')
    expect(await stateOf()).toBe('delivered')
  })

  it('replies, reacts, edits and deletes for everyone, on every device of both sides', async () => {
    const gotBob = inbox(bob)
    const gotAlice = inbox(alice)
    const reactions: ReactionEvent[] = []
    const edited: MessageChangedEvent[] = []
    const deleted: MessageChangedEvent[] = []
    bob.on('reaction', (e) => reactions.push(e))
    bob.on('messageEdited', (e) => edited.push(e))
    bob.on('messageDeleted', (e) => deleted.push(e))
    const first = await alice.send(BOB, 'lunch at 12?')
    await until(() => gotBob.some((m) => m.id === first.id), 30_000, 'first')
    // Bob replies quoting it; alice (and her laptop) see the quote.
    const reply = await bob.send(ALICE, 'yes', { replyTo: first.id })
    await until(() => gotAlice.some((m) => m.id === reply.id), 30_000, 'reply')
    expect(gotAlice.find((m) => m.id === reply.id)!.replyTo).toBe(first.id)
    // Alice reacts to the reply, edits and deletes her own messages; bob sees each.
    await alice.react(reply.id, '👍')
    await until(() => reactions.length === 1, 30_000, 'reaction')
    expect(reactions[0]).toMatchObject({ messageId: reply.id, emoji: '👍', removed: false })
    await alice.edit(first.id, 'lunch at 1?')
    await until(() => edited.length === 1, 30_000, 'edit')
    const second = await alice.send(BOB, 'oops, wrong chat')
    await until(() => gotBob.some((m) => m.id === second.id), 30_000, 'second')
    await alice.deleteForEveryone(second.id)
    await until(() => deleted.length === 1, 30_000, 'delete')
    const onBob = (await bob.conversationHistory(ALICE)).messages
    const byId = (list: typeof onBob, id: string) => list.find((m) => m.id === id)!
    expect(byId(onBob, first.id)).toMatchObject({ text: 'lunch at 1?', edited: true })
    expect(byId(onBob, reply.id)).toMatchObject({ replyTo: first.id })
    expect(byId(onBob, reply.id).reactions).toEqual({ [alice.address!]: '👍' })
    expect(byId(onBob, second.id)).toMatchObject({ text: '', deleted: true })
    // Alice's own devices agree: the phone at once, the laptop from the sent transcripts.
    await until(
      async () => byId((await laptop.conversationHistory(BOB)).messages, second.id)?.deleted === true,
      30_000,
      'the laptop',
    )
    for (const device of [alice, laptop]) {
      const mine = (await device.conversationHistory(BOB)).messages
      expect(byId(mine, first.id)).toMatchObject({ text: 'lunch at 1?', edited: true })
      expect(byId(mine, reply.id).reactions).toEqual({ me: '👍' })
      expect(byId(mine, second.id)).toMatchObject({ deleted: true })
    }
    // None of these are messages of their own on bob's side.
    expect(gotBob.map((m) => m.text)).toEqual(['lunch at 12?', 'oops, wrong chat'])
    // Only your own messages: alice cannot edit bob's reply, nor delete it.
    expect(await codeOf(alice.edit(reply.id, 'no'))).toBe('FORBIDDEN')
    expect(await codeOf(alice.deleteForEveryone(reply.id))).toBe('FORBIDDEN')
  })
})
