// Typing indicators through a real relay process: ephemeral end-to-end messages that the relay hands to the
// recipient's online connections and stores nowhere. Counted on the relay's metrics: `messages_accepted` (mail
// stored) must not move for them, `ephemeral{outcome}` must. And as the attacker: a sender who puts a text, or a
// first message, on the ephemeral path gets nothing shown and changes nothing for the recipient.
import { join } from 'node:path'
import type { ParleyClient, TypingEvent } from '@parley/node'
import {
  type CiphertextMessage,
  encodeContent,
  openEnvelope,
  type PrekeyBundle,
  prekeyBundleFromWire,
  Session,
  sealEnvelope,
} from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DeviceKeys, login, metric, readDevice } from './attacker.js'
import { activatedClient, clientDir, inbox, nodeClient, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+14155550180'
const BOB = '+14155550181'
const CAROL = '+14155550182'
const MALLORY = '+14155550183'
const OFF = { receipts: { delivery: false, read: false } }

describe('typing indicators through a real relay process', () => {
  const env = useRelay()
  const dir = clientDir()
  let alice: ParleyClient
  let bob: ParleyClient
  /** Alice's conversation with bob, and bob's with alice. */
  let aliceToBob: string
  let bobToAlice: string
  const counts = async () => {
    const url = env.relay.metricsUrl
    return {
      stored: await metric(url, 'parley_relay_messages_accepted_total'),
      accepted: await metric(url, 'parley_relay_ephemeral_total', '{outcome="accepted"}'),
      pushed: await metric(url, 'parley_relay_ephemeral_total', '{outcome="pushed"}'),
      multi: await metric(url, 'parley_relay_multi_sends_total', '{outcome="ephemeral"}'),
    }
  }
  const conversationWith = async (c: ParleyClient, number: string) => {
    const found = (await c.conversations()).find((x) => x.number === number)
    if (found === undefined) throw new Error(`no conversation with ${number}`)
    return found.id
  }

  beforeAll(async () => {
    alice = await activatedClient(env.relay, env.codes, ALICE, { storePath: join(dir, 'alice.db'), ...OFF })
    bob = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob.db'), ...OFF })
    // Both ways, so that each side's session has been answered.
    const gotBob = inbox(bob)
    await alice.send(BOB, 'hi bob')
    await until(() => gotBob.length === 1, 30_000, 'bob gets hi')
    const gotAlice = inbox(alice)
    await bob.send(ALICE, 'hi alice')
    await until(() => gotAlice.length === 1, 30_000, 'alice gets hi')
    aliceToBob = await conversationWith(alice, BOB)
    bobToAlice = await conversationWith(bob, ALICE)
  })

  afterAll(async () => {
    await Promise.all([alice?.close(), bob?.close()])
  })

  it('reaches an online contact as a typing event, and is stored nowhere', async () => {
    const seen: TypingEvent[] = []
    const listener = (e: TypingEvent) => seen.push(e)
    bob.on('typing', listener)
    const before = await counts()
    expect(await alice.typing(aliceToBob)).toBe(true)
    await until(() => seen.length === 1, 30_000, 'bob sees alice typing')
    // By number, as the other conversation calls take it.
    expect(await alice.typing('+1 (415) 555-0181', false)).toBe(true)
    await until(() => seen.length === 2, 30_000, 'bob sees alice stop')
    bob.off('typing', listener)
    expect(seen).toEqual([
      { conversation: bobToAlice, from: ALICE, started: true },
      { conversation: bobToAlice, from: ALICE, started: false },
    ])
    const after = await counts()
    expect(after.stored - before.stored).toBe(0)
    expect(after.accepted - before.accepted).toBe(2)
    expect(after.pushed - before.pushed).toBe(2)
    // Not messages: bob's conversation still holds the two texts, alice has nothing pending.
    expect((await bob.conversationHistory(bobToAlice)).messages.length).toBe(2)
    expect(await alice.pendingCount()).toBe(0)
  })

  it('is dropped for an offline contact: not stored, not shown when it comes back', async () => {
    await bob.close()
    const before = await counts()
    expect(await alice.typing(aliceToBob)).toBe(true)
    await until(async () => (await counts()).accepted === before.accepted + 1, 30_000, 'the relay took it')
    bob = await nodeClient(env.relay, { storePath: join(dir, 'bob.db'), ...OFF })
    const seen: TypingEvent[] = []
    bob.on('typing', (e) => seen.push(e))
    const got = inbox(bob)
    await alice.send(BOB, 'are you back?')
    await until(() => got.length === 1, 30_000, 'bob gets the text after coming back')
    expect(got.map((m) => m.text)).toEqual(['are you back?'])
    expect(seen).toEqual([])
    const after = await counts()
    expect(after.pushed - before.pushed).toBe(0)
    // The one text alone was stored.
    expect(after.stored - before.stored).toBe(1)
    expect(await alice.pendingCount()).toBe(0)
  })

  it('is not sent before the contact answered, nor to an unknown conversation', async () => {
    const carol = await activatedClient(env.relay, env.codes, CAROL, {
      storePath: join(dir, 'carol.db'),
      ...OFF,
    })
    try {
      const got = inbox(carol)
      await alice.send(CAROL, 'hi carol')
      await until(() => got.length === 1, 30_000, 'carol gets it')
      const before = await counts()
      // Carol has not written back: alice's session still waits for her answer.
      expect(await alice.typing(await conversationWith(alice, CAROL))).toBe(false)
      await expect(alice.typing('0'.repeat(32))).rejects.toMatchObject({ code: 'NOT_FOUND' })
      await expect(alice.typing(aliceToBob, 'yes' as unknown as boolean)).rejects.toThrow(TypeError)
      expect((await counts()).accepted).toBe(before.accepted)
    } finally {
      await carol.close()
    }
  })

  describe('the attacker', () => {
    let mallory: DeviceKeys
    let bobBundle: PrekeyBundle
    let bobAddress: Uint8Array

    beforeAll(async () => {
      const m = await activatedClient(env.relay, env.codes, MALLORY, {
        storePath: join(dir, 'mallory.db'),
        ...OFF,
      })
      // A send first, so that her store holds a sender certificate.
      const delivered = new Promise((resolve) => m.on('delivered', resolve))
      await m.send(ALICE, 'hi alice, mallory here')
      await delivered
      await m.close()
      mallory = await readDevice(join(dir, 'mallory.db'))
      bobAddress = (await readDevice(join(dir, 'bob.db'))).address
    })

    /** Seals `text` in mallory's `session` with bob, with her own keys and certificate. */
    const sealed = (session: Session, text: string) => {
      const messageId = crypto.getRandomValues(new Uint8Array(16))
      const envelope = sealEnvelope({
        senderAddress: mallory.address,
        senderDeviceId: mallory.deviceId,
        senderIdentity: mallory.identity,
        recipientIdentityKey: bobBundle.identityKey,
        message: session.encrypt(encodeContent({ messageId, sentAtMs: Date.now(), text })),
        senderCertificate: mallory.certificate,
        senderNumber: { e164: mallory.e164, salt: mallory.numberSalt },
      })
      return { recipientAddress: bobAddress, recipientDeviceId: bobBundle.deviceId, messageId, envelope }
    }

    /** Mallory's own first message to bob (a real one), on a raw connection she keeps. */
    const firstMessage = async (text: string, ephemeral: boolean) => {
      const conn = await login(env.relay.baseUrl, mallory)
      try {
        const wire = (await conn.request({ prekeyBundleQuery: { address: bobAddress } })).prekeyBundle!
        bobBundle = prekeyBundleFromWire(wire)
        const { session } = Session.initiate(mallory.identity, mallory.address, mallory.deviceId, bobBundle)
        const base = sealed(session, text)
        await conn.request({ sendMessage: { ...base, ephemeral } })
        return { conn, base, session }
      } catch (err) {
        conn.close()
        throw err
      }
    }

    it('puts texts on the ephemeral path: nothing shown, nothing stored, no session changed', async () => {
      const got = inbox(bob)
      const refused = bob.stats.ephemeralRefused
      const before = await counts()
      const first = await firstMessage('you will never see this stored', true)
      first.conn.close()
      await until(async () => (await counts()).pushed === before.pushed + 1, 30_000, 'pushed to bob')
      await until(() => bob.stats.ephemeralRefused === refused + 1, 30_000, 'bob refuses it')
      expect(got).toEqual([])
      expect((await bob.conversations()).some((c) => c.number === MALLORY)).toBe(false)
      expect((await counts()).stored).toBe(before.stored)
      // The control: the same message as mail is shown (so the refusal above is the ephemeral rule's).
      const { conn, session } = await firstMessage('hello bob, this one is mail', false)
      try {
        await until(() => got.length === 1, 30_000, 'bob gets mallory’s mail')
        expect(got[0]?.text).toBe('hello bob, this one is mail')
        // Bob answers; mallory reads it on her raw connection, so her session is an answered one.
        await bob.send(MALLORY, 'who is this?')
        await conn.request({ syncMailbox: { afterSeq: 0 } })
        await until(() => conn.pushes.some((f) => f.body === 'delivery'), 30_000, 'mallory gets the answer')
        const answer = conn.pushes.find((f) => f.body === 'delivery')!.delivery!
        session.decrypt(openEnvelope(mallory.identity, answer.envelope).message as CiphertextMessage)
        // A text (not a typing indicator) in the answered session, on the ephemeral path: refused after it was
        // decrypted, and the session step is not kept.
        await conn.request({
          sendMessage: { ...sealed(session, 'a text that is not stored'), ephemeral: true },
        })
        await until(() => bob.stats.ephemeralRefused === refused + 2, 30_000, 'bob refuses the text')
        // Mallory's next message, as mail, still opens in the same session: shown, the refused one never.
        await conn.request({ sendMessage: sealed(session, 'and this one is mail too') })
        await until(() => got.length === 2, 30_000, 'bob gets the next mail')
        expect(got.map((m) => m.text)).toEqual(['hello bob, this one is mail', 'and this one is mail too'])
        expect(bob.stats.ephemeralRefused).toBe(refused + 2)
      } finally {
        conn.close()
      }
    })

    it('is refused like mail: a wrong device, an unknown address, a malformed envelope', async () => {
      const { conn, base } = await firstMessage('probe', true)
      try {
        const before = await counts()
        await expect(
          conn.request({
            sendMessage: { ...base, recipientDeviceId: base.recipientDeviceId + 7, ephemeral: true },
          }),
        ).rejects.toMatchObject({ code: 'CONFLICT' })
        await expect(
          conn.request({
            sendMessage: { ...base, recipientAddress: new Uint8Array(32).fill(9), ephemeral: true },
          }),
        ).rejects.toMatchObject({ code: 'NOT_FOUND' })
        await expect(
          conn.request({ sendMessage: { ...base, envelope: new Uint8Array(40).fill(1), ephemeral: true } }),
        ).rejects.toMatchObject({ code: 'BAD_REQUEST' })
        const after = await counts()
        expect(after.accepted).toBe(before.accepted)
        expect(after.pushed).toBe(before.pushed)
      } finally {
        conn.close()
      }
    })
  })

  // Last: bob keeps a linked device from here on, which single-device sends to him would meet.
  it('reaches each online device of a contact with linked devices (one MultiSend), and none of the sender’s', async () => {
    const laptop = await nodeClient(env.relay, { storePath: join(dir, 'bob-laptop.db'), ...OFF })
    const aliceLaptop = await nodeClient(env.relay, { storePath: join(dir, 'alice-laptop.db'), ...OFF })
    try {
      for (const [primary, device] of [
        [bob, laptop],
        [alice, aliceLaptop],
      ] as const) {
        const invitation = await primary.createLinkCode({ confirm: () => true })
        await device.link(invitation.code)
        await invitation.linked
      }
      // The laptop writes to alice first: each of bob's devices then has a session alice has heard from.
      const got = inbox(alice)
      const gotAliceLaptop = inbox(aliceLaptop)
      const text = 'from bob’s laptop'
      await laptop.send(ALICE, text)
      // Everything it stores first: alice's two copies, and bob's sent transcript.
      await until(() => got.some((m) => m.text === text), 30_000, 'alice gets the laptop’s')
      await until(() => gotAliceLaptop.some((m) => m.text === text), 30_000, 'alice’s laptop gets it')
      await until(
        async () => (await bob.conversationHistory(bobToAlice)).messages.some((m) => m.text === text),
        30_000,
        'bob has the transcript',
      )
      const onBob: TypingEvent[] = []
      const onLaptop: TypingEvent[] = []
      const onAliceLaptop: TypingEvent[] = []
      bob.on('typing', (e) => onBob.push(e))
      laptop.on('typing', (e) => onLaptop.push(e))
      aliceLaptop.on('typing', (e) => onAliceLaptop.push(e))
      const before = await counts()
      expect(await alice.typing(aliceToBob)).toBe(true)
      await until(() => onBob.length === 1 && onLaptop.length === 1, 30_000, 'both of bob’s devices')
      expect(onBob[0]).toMatchObject({ from: ALICE, started: true })
      expect(onLaptop[0]).toMatchObject({ from: ALICE, started: true })
      const after = await counts()
      expect(after.accepted - before.accepted).toBe(2)
      expect(after.pushed - before.pushed).toBe(2)
      expect(after.stored - before.stored).toBe(0)
      expect(after.multi - before.multi).toBe(1)
      expect(onAliceLaptop).toEqual([])
    } finally {
      await Promise.all([laptop.close(), aliceLaptop.close()])
    }
  })
})
