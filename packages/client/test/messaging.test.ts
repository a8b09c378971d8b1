// Sending and receiving between clients on one FakeRelay: delivery, acks and the cursor, exactly-once,
// sealed and unidentified sends, SMS fallback.

import { ParleyError } from '@parley/client'
import {
  createSenderCertificate,
  createServerCertificate,
  generateIdentity,
  sealEnvelope,
} from '@parley/protocol'
import { describe, expect, it } from 'vitest'
import { ALICE, aliceAndBob, BOB, CAROL, codeOf, collect, NOBODY, world } from './harness.js'

/**
 * Alice writes to Bob first and Bob replies: from then on each holds the other's delivery token. `received`
 * collects Bob's messages from the start.
 */
async function afterFirstExchange() {
  const { relay, alice, bob, received } = await aliceAndBob()
  await alice.send(BOB, 'first')
  await relay.settle()
  await bob.send(ALICE, 'reply')
  await relay.settle()
  return { relay, alice, bob, received }
}

describe('messaging', () => {
  it('delivers a message end to end, proves the sender, and reports it delivered', async () => {
    const { relay, alice, bob } = await aliceAndBob()
    const delivered = collect(alice, 'delivered')
    const received = collect(bob, 'message')

    const sent = await alice.send(BOB, 'hello bob')
    expect(sent.route).toBe('ip')
    expect(sent.id).toMatch(/^[0-9a-f]{32}$/)
    await relay.settle()

    expect(received).toEqual([expect.objectContaining({ id: sent.id, from: ALICE, text: 'hello bob' })])
    expect(received[0]!.fromAddress).toBe(relay.addressOf(ALICE))
    expect(delivered).toEqual([{ id: sent.id, to: BOB }])
    expect(await alice.pendingCount()).toBe(0)
    expect((await bob.history()).map((m) => m.text)).toEqual(['hello bob'])
    // What the relay saw: a bundle fetch, a certificate, one sealed envelope to Bob's address, and no text.
    expect(relay.received('prekeyBundleQuery')).toHaveLength(1)
    const [send] = relay.received('sendMessage')
    expect(Buffer.from(send!.recipientAddress!).toString('hex')).toBe(relay.addressOf(BOB))
    expect(Buffer.from(send!.envelope!).includes(Buffer.from('hello bob'))).toBe(false)
    expect(relay.sent('delivery', relay.connectionsOf(BOB)[0])).toHaveLength(1)
  })

  it('acks in one batch after a short delay, and resumes from the cursor after a reconnect', async () => {
    const { relay, step, alice, bob } = await aliceAndBob()
    for (const text of ['one', 'two', 'three']) await alice.send(BOB, text)
    await relay.settle()
    expect(relay.mailbox(BOB)).toHaveLength(3)
    expect(relay.received('ackMessages')).toHaveLength(0)

    await step(10)
    expect(relay.received('ackMessages').map((a) => a.seqs)).toEqual([[1, 2, 3]])
    expect(relay.mailbox(BOB)).toHaveLength(0)

    relay.drop(BOB)
    await step(1_000)
    expect(bob.connectionState).toBe('online')
    expect(relay.received('syncMailbox').at(-1)).toEqual(expect.objectContaining({ afterSeq: 3 }))
  })

  it('retries acks the relay paces (RATE_LIMITED) once it allows', async () => {
    const { relay, activated, step } = world()
    const alice = await activated(ALICE)
    await activated(BOB)
    relay.refuse('ackMessages', 'RATE_LIMITED', { retryAfterMs: 500, times: 1 })
    await alice.send(BOB, 'x')
    await step(10)
    expect(relay.received('ackMessages')).toHaveLength(1)
    expect(relay.mailbox(BOB)).toHaveLength(1)
    await step(499)
    expect(relay.received('ackMessages')).toHaveLength(1)
    await step(1)
    expect(relay.received('ackMessages')).toHaveLength(2)
    expect(relay.mailbox(BOB)).toHaveLength(0)
  })

  it('shows a message once however often the relay delivers it', async () => {
    const { relay, step, alice, received } = await aliceAndBob()
    await alice.send(BOB, 'once')
    await relay.settle()
    const [delivery] = relay.sent('delivery', relay.connectionsOf(BOB)[0])
    relay.push(BOB, { delivery: delivery! })
    relay.push(BOB, { delivery: delivery! })
    await step(10)
    expect(received.map((m) => m.text)).toEqual(['once'])
    // Every copy is acked, so the relay can drop it.
    expect(relay.received('ackMessages').flatMap((a) => a.seqs)).toEqual([1, 1, 1])
  })

  it('shows a message once even when the sender had to encrypt it again (same id, new session)', async () => {
    const { relay, step, alice, received } = await aliceAndBob()
    // The relay stores the message and, once Bob has read and acked it, claims CONFLICT: Alice starts a new
    // session and sends the message again, and this copy reaches Bob too (his mailbox no longer holds the first).
    relay.answer(
      'sendMessage',
      async (_request, { next }) => {
        await next()
        await relay.nextRequest('ackMessages')
        return new ParleyError('CONFLICT', 'the recipient has a new device')
      },
      { times: 1 },
    )
    const { id } = await alice.send(BOB, 'only once')
    await step(10)
    await step(10)
    const sends = relay.received('sendMessage')
    expect(sends).toHaveLength(2)
    expect(sends[1]!.messageId).toEqual(sends[0]!.messageId)
    expect(sends[1]!.envelope).not.toEqual(sends[0]!.envelope)
    expect(relay.received('prekeyBundleQuery')).toHaveLength(2)
    expect(relay.sent('delivery').map((d) => d.seq)).toEqual([1, 2])
    expect(received.map((m) => [m.id, m.text])).toEqual([[id, 'only once']])
    expect(relay.received('ackMessages').flatMap((a) => a.seqs)).toEqual([1, 2])
  })

  it('replies without naming the sender once the contact has shared its delivery token', async () => {
    const { relay, alice, bob, received } = await afterFirstExchange()
    await alice.send(BOB, 'second')
    await relay.settle()

    // Alice's first message is a prekey message on her authenticated connection; Bob's reply and Alice's second
    // message go by unidentified delivery, on connections that never authenticated.
    expect(relay.received('sendMessage')).toHaveLength(1)
    const unidentified = relay.frames.filter(
      (f) => f.direction === 'toRelay' && f.frame.body === 'unidentifiedSend',
    )
    expect(unidentified).toHaveLength(2)
    for (const f of unidentified) {
      expect(f.connection.anonymous).toBe(true)
      expect(f.connection.frames.some((x) => x.frame.body === 'authenticate')).toBe(false)
    }
    // Not acked yet (no time has passed): Bob's mailbox shows which of its mail came unidentified.
    expect(relay.mailbox(BOB).map((m) => m.unidentified)).toEqual([false, true])
    expect(alice.stats.unidentifiedSent).toBe(1)
    expect(bob.stats.unidentifiedSent).toBe(1)
    expect(received.map((m) => [m.text, m.from])).toEqual([
      ['first', ALICE],
      ['second', ALICE],
    ])
  })

  it('falls back to the authenticated path when the recipient rotated its delivery token', async () => {
    const { relay, alice, bob, received } = await afterFirstExchange()
    await bob.rotateDeliveryToken()
    expect(relay.received('setDeliveryToken')).toHaveLength(3)

    await alice.send(BOB, 'after rotation')
    await relay.settle()
    expect(relay.sent('error').map((e) => e.code)).toContain(12) // FORBIDDEN for the old token
    expect(relay.received('sendMessage')).toHaveLength(2)
    expect(received.map((m) => m.text)).toEqual(['first', 'after rotation'])
  })

  it('hands a text for a number not on Parley to smsFallback, and uploads nothing of it', async () => {
    const { relay, activated } = world()
    const texts: [string, string][] = []
    const alice = await activated(ALICE, { smsFallback: (to, text) => void texts.push([to, text]) })
    const result = await alice.send(NOBODY, 'by sms')
    expect(result.route).toBe('sms')
    expect(texts).toEqual([[NOBODY, 'by sms']])
    expect(relay.received('sendMessage')).toHaveLength(0)
    expect(relay.received('membershipQuery')).toHaveLength(1)
    await alice.close()

    const carol = await activated(CAROL)
    expect(await codeOf(carol.send(NOBODY, 'nowhere'))).toBe('NOT_FOUND')
  })

  it('streams received messages through messages() until it is closed', async () => {
    const { relay, alice, bob } = await aliceAndBob()
    const inbox = bob.messages()
    await alice.send(BOB, 'a')
    await alice.send(BOB, 'b')
    await relay.settle()
    expect((await inbox.next()).value?.text).toBe('a')
    expect((await inbox.next()).value?.text).toBe('b')
    const ended = inbox.next()
    await bob.close()
    expect((await ended).done).toBe(true)
  })

  it('refuses what it cannot send before anything goes out', async () => {
    const { relay, activated } = world()
    const alice = await activated(ALICE)
    const before = relay.frames.length
    await expect(alice.send(BOB, 'x'.repeat(64 * 1024 + 1))).rejects.toThrow(RangeError)
    await expect(alice.send(BOB, 42 as unknown as string)).rejects.toThrow(TypeError)
    expect(await codeOf(alice.send('12', 'hi'))).toBe('INVALID_NUMBER')
    expect(relay.frames.length).toBe(before)
  })

  it('refuses mail whose sender certificate does not chain to the pinned root, acks it, and goes on', async () => {
    const { relay, clock, step, alice, bob } = await aliceAndBob()
    const errors = collect(bob, 'error')
    // Mallory seals a well-formed envelope to Bob, posing as Alice, with a certificate from a root of her own.
    const root = generateIdentity()
    const signer = generateIdentity()
    const mallory = generateIdentity()
    const aliceAddress = Uint8Array.from(Buffer.from(relay.addressOf(ALICE), 'hex'))
    const expiresAtMs = clock.now() + 3600_000
    const serverCertificate = createServerCertificate(root.secretKey, {
      keyId: 1,
      publicKey: signer.publicKey,
      expiresAtMs,
    })
    const envelope = sealEnvelope({
      senderAddress: aliceAddress,
      senderDeviceId: 1,
      senderIdentity: mallory,
      recipientIdentityKey: relay.account(BOB)!.identityKey,
      message: { kind: 'ratchet', body: new Uint8Array(0) },
      senderCertificate: createSenderCertificate(signer.secretKey, serverCertificate, {
        address: aliceAddress,
        deviceId: 1,
        identityKey: mallory.publicKey,
        expiresAtMs,
        numberCommitment: new Uint8Array(0),
      }),
    })
    relay.push(BOB, {
      delivery: { seq: 99, messageId: new Uint8Array(16), envelope, receivedAtMs: clock.now() },
    })
    // And bytes that are no envelope at all.
    relay.push(BOB, {
      delivery: { seq: 100, messageId: new Uint8Array(16), envelope: new Uint8Array(9).fill(7) },
    })
    await step(10)

    expect(errors.map((e) => e.code)).toEqual(['SENDER_UNVERIFIED', 'BAD_REQUEST'])
    expect(bob.stats.senderUnverified).toBe(1)
    expect(await bob.history()).toEqual([])
    expect(relay.received('ackMessages').flatMap((a) => a.seqs)).toEqual([99, 100])
    await alice.send(BOB, 'still fine')
    await relay.settle()
    expect((await bob.history()).map((m) => m.text)).toEqual(['still fine'])
  })
})
