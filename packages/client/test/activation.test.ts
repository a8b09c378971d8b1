// Activation against the FakeRelay: consent, codes, the address check, pins, proof of work, restarts.
import { MemoryStore, ParleyError } from '@parley/client'
import { FakeRelay } from '@parley/client/testing'
import { describe, expect, it } from 'vitest'
import { ALICE, codeOf, collect, reopenable, world } from './harness.js'

describe('activation', () => {
  it('sends nothing before consent, then activates with the texted code and authenticates', async () => {
    const { relay, client } = world()
    const alice = await client()
    await expect(alice.activate({ phoneNumber: ALICE, consent: false as unknown as true })).rejects.toThrow(
      TypeError,
    )
    expect(relay.connectionAttempts).toBe(0)

    const pending = await alice.activate({ phoneNumber: '(415) 555-0100', consent: true })
    expect(pending).toEqual({ e164: ALICE, expiresInSeconds: 600, attemptsLeft: 5 })
    expect(relay.received('activationStart')).toEqual([
      expect.objectContaining({ phoneNumber: ALICE, consent: true }),
    ])
    const activation = await alice.confirm(relay.codeFor(ALICE)!)
    await relay.settle()

    expect(activation).toEqual({
      address: relay.addressOf(ALICE),
      deviceId: 1,
      replacedDevice: false,
      restoredMessages: 0,
    })
    expect(alice.activated).toBe(true)
    expect(alice.address).toBe(relay.addressOf(ALICE))
    expect(alice.connectionState).toBe('online')
    const [confirm] = relay.received('activationConfirm')
    expect(confirm!.prekeys!.oneTimePrekeys).toHaveLength(100)
    expect(confirm!.prekeys!.oneTimeKemPrekeys).toHaveLength(10)
    expect(confirm!.numberSalt).toHaveLength(32)
    // The own number went blinded (32 bytes), so checking the address cost no discovery request.
    expect(confirm!.blindedNumber).toHaveLength(32)
    expect(relay.received('oprfEvaluate')).toHaveLength(0)
    expect(relay.received('authenticate')).toHaveLength(1)
    expect(relay.received('setDeliveryToken')).toHaveLength(1)
    // A proto3 zero may arrive absent: 0 and missing are the same on the wire.
    expect(relay.received('syncMailbox').map((s) => s.afterSeq ?? 0)).toEqual([0])
    expect(relay.account(ALICE)!.oneTimePrekeys).toHaveLength(100)
    expect(relay.account(ALICE)!.deliveryVerifier).toHaveLength(32)
    // One connection for all of it.
    expect(relay.connections).toHaveLength(1)
  })

  it('refuses a wrong code, keeps the activation pending, and then accepts the right one', async () => {
    const { relay, client } = world({ code: () => '424242' })
    const alice = await client()
    await alice.activate({ phoneNumber: ALICE, consent: true })
    const wrong = await alice.confirm('000000').catch((e: unknown) => e)
    expect(ParleyError.is(wrong, 'INVALID_CODE')).toBe(true)
    expect((wrong as Error).message).toContain('4 attempts left')
    expect(alice.activated).toBe(false)
    expect(relay.account(ALICE)).toBeUndefined()

    await alice.confirm('424242')
    expect(alice.activated).toBe(true)
    expect(relay.received('activationConfirm').map((c) => c.code)).toEqual(['000000', '424242'])
  })

  it('refuses a malformed code locally and an expired activation without asking the relay', async () => {
    const { relay, clock, client } = world()
    const alice = await client()
    await alice.activate({ phoneNumber: ALICE, consent: true })
    await expect(alice.confirm('12345')).rejects.toThrow(TypeError)
    await clock.advance(601_000)
    expect(await codeOf(alice.confirm(relay.codeFor(ALICE)!))).toBe('EXPIRED')
    expect(relay.received('activationConfirm')).toHaveLength(0)
    // The pending activation is gone: confirm() now needs a new activate().
    expect(await codeOf(alice.confirm(relay.codeFor(ALICE)!))).toBe('INVALID_STATE')
  })

  it('passes on the relay refusing a code request (RATE_LIMITED with retryAfterMs)', async () => {
    const { relay, client } = world()
    relay.refuse('activationStart', 'RATE_LIMITED', { retryAfterMs: 3_600_000, times: 1 })
    const alice = await client()
    const err = await alice.activate({ phoneNumber: ALICE, consent: true }).catch((e: unknown) => e)
    expect(ParleyError.is(err, 'RATE_LIMITED')).toBe(true)
    expect((err as ParleyError).retryAfterMs).toBe(3_600_000)
    expect(relay.texts).toHaveLength(0)
    // Once the script is used up, the relay's own answer comes back.
    await alice.activate({ phoneNumber: ALICE, consent: true })
    expect(relay.texts).toHaveLength(1)
  })

  it('refuses an address that is not the OPRF of its own number (VERIFICATION_FAILED)', async () => {
    const { relay, client } = world()
    const other = Uint8Array.from(Buffer.from(relay.addressOf('+14155550177'), 'hex'))
    relay.answer('activationConfirm', async (_request, { next }) => {
      const reply = await next()
      return { activated: { ...reply.activated!, address: other } }
    })
    const alice = await client()
    await alice.activate({ phoneNumber: ALICE, consent: true })
    expect(await codeOf(alice.confirm(relay.codeFor(ALICE)!))).toBe('VERIFICATION_FAILED')
    expect(alice.activated).toBe(false)
  })

  it('solves the proof of work the relay asks for before a code is sent', async () => {
    const { relay, client } = world({ activationPowBits: 6 })
    const alice = await client()
    await alice.activate({ phoneNumber: ALICE, consent: true })
    expect(relay.received('activationStart')[0]!.powSolution!.length).toBeGreaterThan(0)
    expect(relay.texts.map((t) => t.to)).toEqual([ALICE])
  })

  it('pins the trust root: a relay with another root is refused, and so is an OPRF key it did not certify', async () => {
    const { clock, relay, client } = world()
    const impostor = new FakeRelay({ clock })
    const alice = await client({ transport: impostor.transport, relayKeys: relay.relayKeys })
    const states = collect(alice, 'connection')
    const activating = codeOf(alice.activate({ phoneNumber: ALICE, consent: true }))
    await impostor.settle()
    await clock.advance(20_000)
    expect(await activating).toBe('TIMEOUT')
    expect(states.filter((s) => s.state === 'offline').map((s) => s.error?.code)).toContain(
      'VERIFICATION_FAILED',
    )
    expect(impostor.received('activationStart')).toHaveLength(0)
    await alice.close()

    // The right root, but an OPRF key certificate that does not verify under it.
    relay.answer('hello', async (_request, { next }) => {
      const reply = await next()
      const hello = reply.serverHello!
      const keys = hello.oprfKeys!.map((k) => ({ ...k, certificate: new Uint8Array(k.certificate!.length) }))
      return { serverHello: { ...hello, oprfKeys: keys } }
    })
    const bob = await client()
    const bobStates = collect(bob, 'connection')
    const pending = codeOf(bob.activate({ phoneNumber: ALICE, consent: true }))
    await relay.settle()
    await clock.advance(20_000)
    expect(await pending).toBe('TIMEOUT')
    expect(bobStates.map((s) => s.error?.code)).toContain('VERIFICATION_FAILED')
    expect(relay.received('activationStart')).toHaveLength(0)
  })

  it('pins the trust root on first use when the app gives none, and refuses another one after', async () => {
    const { clock, relay, client } = world()
    const store = new MemoryStore()
    const alice = await client({ relayKeys: undefined, store: reopenable(store) })
    await alice.activate({ phoneNumber: ALICE, consent: true })
    await alice.confirm(relay.codeFor(ALICE)!)
    await alice.close()

    // The same device started against another relay: its root is not the pinned one.
    const impostor = new FakeRelay({ clock })
    const again = await client({
      relayKeys: undefined,
      store: reopenable(store),
      transport: impostor.transport,
    })
    const states = collect(again, 'connection')
    await impostor.settle()
    expect(states.find((s) => s.error)?.error?.message).toContain('differs from the pinned one')
    expect(impostor.received('authenticate')).toHaveLength(0)
  })

  it('starts again from its store: a restarted device connects and authenticates by itself', async () => {
    const { relay, client } = world()
    const store = new MemoryStore()
    const first = await client({ store: reopenable(store) })
    await first.activate({ phoneNumber: ALICE, consent: true })
    await first.confirm(relay.codeFor(ALICE)!)
    await relay.settle()
    await first.close()

    const again = await client({ store: reopenable(store) })
    await relay.settle()
    expect(again.activated).toBe(true)
    expect(again.address).toBe(relay.addressOf(ALICE))
    expect(again.connectionState).toBe('online')
    expect(relay.received('activationStart')).toHaveLength(1)
    expect(relay.received('authenticate')).toHaveLength(2)
    expect(relay.connectionsOf(ALICE)).toHaveLength(1)
  })
})
