// Number change through a real relay process (docs/architecture.md §9.8): alice moves her account to a new number,
// proven by an SMS code; bob (online) and carol (offline at the time) follow the notice signed by the identity
// they pinned and go on writing to her under the new number in the same sessions; her linked laptop follows the
// relay's forward and learns the new number from her; the old number leads nowhere; the relay's counters say so.
import { join } from 'node:path'
import type { IncomingMessage, NumberChangedEvent, ParleyClient } from '@parley/node'
import {
  encodeContent,
  prekeyBundleFromWire,
  Session,
  sealEnvelope,
  signAddressChange,
} from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { login, metric, RawConn, readDevice } from './attacker.js'
import { activatedClient, clientDir, codeOf, inbox, nodeClient, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+1 415 555 0130'
const ALICE_NEW = '+1 415 555 0139'
const BOB = '+1 415 555 0131'
const CAROL = '+1 415 555 0132'
const DAVE = '+1 415 555 0133'

function changes(client: ParleyClient): NumberChangedEvent[] {
  const seen: NumberChangedEvent[] = []
  client.on('numberChanged', (e) => seen.push(e))
  return seen
}

const texts = (list: IncomingMessage[]) => list.map((m) => m.text)
const fromHex = (hex: string) => new Uint8Array(Buffer.from(hex, 'hex'))

describe('number change through a real relay process', () => {
  const env = useRelay()
  const dir = clientDir()
  let alice: ParleyClient
  let laptop: ParleyClient
  let bob: ParleyClient
  let carol: ParleyClient
  const got = {
    alice: [] as IncomingMessage[],
    laptop: [] as IncomingMessage[],
    bob: [] as IncomingMessage[],
  }
  const seen = { bob: [] as NumberChangedEvent[], laptop: [] as NumberChangedEvent[] }
  let bobReceivedBefore = 0
  let bobConversation = ''

  beforeAll(async () => {
    alice = await activatedClient(env.relay, env.codes, ALICE, { storePath: join(dir, 'alice.db') })
    bob = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob.db') })
    carol = await activatedClient(env.relay, env.codes, CAROL, { storePath: join(dir, 'carol.db') })
    laptop = await nodeClient(env.relay, { storePath: join(dir, 'laptop.db') })
    got.alice = inbox(alice)
    got.laptop = inbox(laptop)
    got.bob = inbox(bob)
    seen.bob = changes(bob)
    seen.laptop = changes(laptop)
    const invitation = await alice.createLinkCode({ confirm: () => true })
    await laptop.link(invitation.code)
    await invitation.linked
    // Conversations in both directions before the change.
    await bob.send(ALICE, 'bob before')
    await until(() => got.alice.length === 1 && got.laptop.length === 1, 30_000, 'bob → alice')
    await alice.send(BOB, 'alice before')
    await until(() => got.bob.length === 1, 30_000, 'alice → bob')
    const carolGot = inbox(carol)
    await alice.send(CAROL, 'alice to carol before')
    await until(() => carolGot.length === 1, 30_000, 'alice → carol')
    await carol.send(ALICE, 'carol before')
    await until(() => got.alice.some((m) => m.text === 'carol before'), 30_000, 'carol → alice')
    bobReceivedBefore = (await bob.history()).length
    bobConversation = (await bob.conversations()).find((c) => c.number === '+14155550130')!.id
    // Bob compared safety numbers with alice: the mark is on her identity key, which the change keeps.
    await bob.markVerified(ALICE)
    // Carol is offline during the change; the laptop too.
    await carol.close()
    await laptop.close()
  })

  afterAll(async () => {
    await Promise.all([alice?.close(), laptop?.close(), bob?.close(), carol?.close()])
  })

  it('refuses a linked device, an unauthenticated connection and a number that has an account', async () => {
    // The laptop's own keys, as an attacker who holds a linked device has them.
    const keys = await readDevice(join(dir, 'laptop.db'))
    const raw = await login(env.relay.baseUrl, keys)
    const anonymous = await RawConn.open(env.relay.baseUrl)
    try {
      const started = (await raw.request({ activationStart: { phoneNumber: '+14155550137', consent: true } }))
        .activationStarted!
      const code = await env.codes.next('+14155550137')
      const change = { activationId: started.activationId, code, numberSalt: new Uint8Array(32).fill(1) }
      expect(await codeOf(raw.request({ changeNumber: change }))).toBe('FORBIDDEN')
      expect(await codeOf(anonymous.request({ changeNumber: change }))).toBe('UNAUTHENTICATED')
    } finally {
      raw.close()
      anonymous.close()
    }
    // Bob's number is bob's account: alice cannot take it by changing to it.
    await alice.changeNumber(BOB)
    expect(await codeOf(alice.confirmNumberChange(await env.codes.next('+14155550131')))).toBe('CONFLICT')
    expect(
      await metric(env.relay.metricsUrl, 'parley_relay_number_changes_total', '{outcome="forbidden"}'),
    ).toBe(1)
    // An account that keeps trying is held to --number-changes-per-day (3), counted once the code matched.
    const erin = await activatedClient(env.relay, env.codes, '+1 415 555 0136', {
      storePath: join(dir, 'erin.db'),
    })
    try {
      await erin.changeNumber(CAROL)
      const code = await env.codes.next('+14155550132')
      const outcomes: string[] = []
      for (let i = 0; i < 4; i++) outcomes.push(await codeOf(erin.confirmNumberChange(code)))
      expect(outcomes).toEqual(['CONFLICT', 'CONFLICT', 'CONFLICT', 'RATE_LIMITED'])
      expect(
        await metric(env.relay.metricsUrl, 'parley_relay_rate_limited_total', '{scope="number_change"}'),
      ).toBe(1)
    } finally {
      await erin.close()
    }
    expect(
      await metric(env.relay.metricsUrl, 'parley_relay_number_changes_total', '{outcome="conflict"}'),
    ).toBe(4)
    // Nothing moved: bob still reaches alice at her old number.
    await bob.send(ALICE, 'still the old number')
    await until(() => got.alice.some((m) => m.text === 'still the old number'), 30_000, 'bob → alice')
  })

  it('moves the account to the new number with its code; only the primary can', async () => {
    const smsBefore = env.codes.calls.length
    const pending = await alice.changeNumber(ALICE_NEW)
    expect(pending.e164).toBe('+14155550139')
    expect(env.codes.calls.length).toBe(smsBefore + 1)
    const code = await env.codes.next(pending.e164)
    // A wrong code changes nothing and keeps the right one usable.
    const wrong = code === '000000' ? '111111' : '000000'
    expect(await codeOf(alice.confirmNumberChange(wrong))).toBe('INVALID_CODE')
    const changed = await alice.confirmNumberChange(code)
    expect(changed.e164).toBe('+14155550139')
    expect(changed.contactsNotified).toBe(2)
    // The same code again: nothing pending.
    expect(await codeOf(alice.confirmNumberChange(code))).toBe('INVALID_STATE')
    const changesOf = (outcome: string) =>
      metric(env.relay.metricsUrl, 'parley_relay_number_changes_total', `{outcome="${outcome}"}`)
    expect(await changesOf('moved')).toBe(1)
    expect(await changesOf('refused')).toBe(1)
  })

  it('bob follows the signed notice and the conversation goes on under the new number', async () => {
    await until(() => seen.bob.length === 1, 30_000, 'bob numberChanged')
    expect(seen.bob[0]).toMatchObject({ previousNumber: '+14155550130', number: '+14155550139', own: false })
    // The notice is not a message.
    expect(texts(got.bob)).toEqual(['alice before'])
    await bob.send(ALICE_NEW, 'bob after')
    await until(() => got.alice.some((m) => m.text === 'bob after'), 30_000, 'bob → alice (new number)')
    const m = got.alice.find((x) => x.text === 'bob after')!
    expect(m.from).toBe('+14155550131')
    await alice.send(BOB, 'alice after')
    await until(() => got.bob.some((x) => x.text === 'alice after'), 30_000, 'alice → bob (new number)')
    expect(got.bob.find((x) => x.text === 'alice after')!.from).toBe('+14155550139')
    // The same sessions: no identity change was announced, and the history holds both sides of the move.
    expect((await bob.history()).length).toBe(bobReceivedBefore + 1)
    expect(await bob.isVerified(ALICE_NEW)).toBe(true)
    // One conversation, the same one, now under the new number, with both sides of the move in it.
    const [conversation, ...others] = await bob.conversations()
    expect(others).toEqual([])
    expect(conversation).toMatchObject({
      id: bobConversation,
      number: '+14155550139',
      address: got.bob.find((x) => x.text === 'alice after')!.fromAddress,
    })
    expect((await bob.conversationHistory(ALICE_NEW)).messages.map((x) => x.text)).toEqual([
      'bob before',
      'alice before',
      'still the old number',
      'bob after',
      'alice after',
    ])
    expect(await bob.isVerified(ALICE)).toBe(false)
  })

  it('the old number no longer leads to alice', async () => {
    const dave = await activatedClient(env.relay, env.codes, DAVE, { storePath: join(dir, 'dave.db') })
    try {
      const [old, current] = await dave.discover([ALICE, ALICE_NEW])
      expect(old!.registered).toBe(false)
      expect(current!.registered).toBe(true)
      expect(await codeOf(dave.send(ALICE, 'to the old number'))).toBe('NOT_FOUND')
    } finally {
      await dave.close()
    }
  })

  it('carol, offline during the change, follows when she comes back', async () => {
    carol = await nodeClient(env.relay, { storePath: join(dir, 'carol.db') })
    const carolSeen = changes(carol)
    const carolGot = inbox(carol)
    await until(() => carolSeen.length === 1, 30_000, 'carol numberChanged')
    expect(carolSeen[0]).toMatchObject({ previousNumber: '+14155550130', number: '+14155550139' })
    await carol.send(ALICE_NEW, 'carol after')
    await until(() => got.alice.some((x) => x.text === 'carol after'), 30_000, 'carol → alice (new number)')
    await alice.send(CAROL, 'alice to carol after')
    await until(() => carolGot.some((x) => x.text === 'alice to carol after'), 30_000, 'alice → carol')
    expect(carolGot.find((x) => x.text === 'alice to carol after')!.from).toBe('+14155550139')
  })

  it('the linked laptop follows the forward, learns the new number and gets every message', async () => {
    laptop = await nodeClient(env.relay, { storePath: join(dir, 'laptop.db') })
    got.laptop = inbox(laptop)
    seen.laptop = changes(laptop)
    await until(() => seen.laptop.length === 1, 30_000, 'laptop numberChanged')
    expect(seen.laptop[0]).toMatchObject({ number: '+14155550139', own: true })
    await until(
      () => ['bob after', 'carol after'].every((t) => got.laptop.some((m) => m.text === t)),
      30_000,
      'messages to the new number on the laptop',
    )
    // What the laptop sends now states the new number.
    await laptop.send(BOB, 'from the laptop')
    await until(() => got.bob.some((x) => x.text === 'from the laptop'), 30_000, 'laptop → bob')
    expect(got.bob.find((x) => x.text === 'from the laptop')!.from).toBe('+14155550139')
    expect(
      await metric(env.relay.metricsUrl, 'parley_relay_address_forwards_total', '{outcome="followed"}'),
    ).toBeGreaterThanOrEqual(1)
  })

  it('a notice not signed by the identity bob pinned moves nothing', async () => {
    // Mallory, an account of her own, tells bob that alice moved to mallory's address, signed with her own key.
    const path = join(dir, 'mallory.db')
    const m = await activatedClient(env.relay, env.codes, '+1 415 555 0138', { storePath: path })
    await m.close()
    const mallory = await readDevice(path)
    const conn = await login(env.relay.baseUrl, mallory)
    try {
      const aliceAddress = fromHex(got.bob.find((x) => x.text === 'alice after')!.fromAddress)
      const bobAddress = fromHex(got.alice.find((x) => x.text === 'bob after')!.fromAddress)
      const certificate = (await conn.request({ senderCertificateRequest: {} })).senderCertificateIssued!
        .certificate
      const wire = (await conn.request({ prekeyBundleQuery: { address: bobAddress } })).prekeyBundle!
      const { session } = Session.initiate(
        mallory.identity,
        mallory.address,
        mallory.deviceId,
        prekeyBundleFromWire(wire),
      )
      const messageId = crypto.getRandomValues(new Uint8Array(16))
      const message = session.encrypt(
        encodeContent({ messageId, sentAtMs: Date.now(), text: 'hello from mallory' }),
      )
      const envelope = sealEnvelope({
        senderAddress: mallory.address,
        senderDeviceId: mallory.deviceId,
        senderIdentity: mallory.identity,
        recipientIdentityKey: wire.identityKey,
        message,
        senderCertificate: certificate,
        addressChange: signAddressChange(
          { oldAddress: aliceAddress, newAddress: mallory.address, changedAtMs: Date.now() },
          mallory.identity.secretKey,
        ),
      })
      const before = seen.bob.length
      await conn.request({
        sendMessage: { recipientAddress: bobAddress, recipientDeviceId: wire.deviceId, messageId, envelope },
      })
      await until(() => got.bob.some((x) => x.text === 'hello from mallory'), 30_000, 'mallory → bob')
      expect(seen.bob.length).toBe(before)
      // Bob still reaches alice, in the session he had.
      await bob.send(ALICE_NEW, 'still alice?')
      await until(
        () => got.alice.some((x) => x.text === 'still alice?'),
        30_000,
        'bob → alice after the forgery',
      )
      expect(got.bob.find((x) => x.text === 'hello from mallory')!.fromAddress).toBe(
        Buffer.from(mallory.address).toString('hex'),
      )
    } finally {
      conn.close()
    }
  })
})
