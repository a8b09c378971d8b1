// Safety numbers, verification and changed identities, against a FakeRelay.
import { describe, expect, it } from 'vitest'
import { ALICE, aliceAndBob, BOB, codeOf, collect, world } from './harness.js'

describe('identity', () => {
  it('shows both sides the same safety number once they have a session', async () => {
    const { relay, alice, bob } = await aliceAndBob()
    await alice.discover([BOB])
    expect(await alice.safetyNumber(BOB)).toBeNull()
    await alice.send(BOB, 'hi')
    await relay.settle()
    const mine = await alice.safetyNumber(BOB)
    expect(mine).toMatch(/^\d{60}$/)
    expect(await bob.safetyNumber(ALICE)).toBe(mine)
  })

  it('marks a contact verified only with the current safety number', async () => {
    const { relay, activated } = world()
    const alice = await activated(ALICE)
    await activated(BOB)
    expect(await codeOf(alice.markVerified(BOB))).toBe('NOT_FOUND')
    await alice.send(BOB, 'hi')
    await relay.settle()
    const shown = (await alice.safetyNumber(BOB))!
    const wrong = shown.replace(/^\d/, (d) => String((Number(d) + 1) % 10))
    expect(await codeOf(alice.markVerified(BOB, { safetyNumber: wrong }))).toBe('VERIFICATION_FAILED')
    expect(await alice.isVerified(BOB)).toBe(false)
    await alice.markVerified(BOB, { safetyNumber: shown })
    expect(await alice.isVerified(BOB)).toBe(true)
  })

  it('holds mail from a verified contact whose identity changed until the app approves it', async () => {
    const { relay, activated, alice, bob } = await aliceAndBob()
    await alice.send(BOB, 'hi')
    await relay.settle()
    await alice.markVerified(BOB)
    await bob.close()

    const newBob = await activated(BOB)
    const changes = collect(alice, 'identityChanged')
    const received = collect(alice, 'message')
    const failed = collect(alice, 'sendFailed')
    await newBob.send(ALICE, 'new phone, who dis')
    await newBob.send(ALICE, 'really me')
    await relay.settle()
    expect(received).toEqual([])
    expect(changes).toEqual([expect.objectContaining({ number: BOB, held: true })])
    expect(alice.stats.held).toBe(2)
    expect(await alice.isVerified(BOB)).toBe(false)

    // Sends to it are refused until then.
    const { id } = await alice.send(BOB, 'are you?')
    await relay.settle()
    expect(failed).toEqual([{ id, to: BOB, error: expect.objectContaining({ code: 'IDENTITY_UNTRUSTED' }) }])

    expect(await alice.approveIdentity(BOB)).toBe(2)
    expect(received.map((m) => m.text)).toEqual(['new phone, who dis', 'really me'])
    await alice.send(BOB, 'welcome back')
    await relay.settle()
    expect((await newBob.history()).map((m) => m.text)).toEqual(['welcome back'])
    expect(await alice.approveIdentity('+14155550177')).toBe(0)
  })

  it('shows mail from an unverified contact with a new identity, and says so', async () => {
    const { relay, activated, alice, bob } = await aliceAndBob()
    await alice.send(BOB, 'hi')
    await relay.settle()
    await bob.close()
    const newBob = await activated(BOB)
    const changes = collect(alice, 'identityChanged')
    await newBob.send(ALICE, 'new phone')
    await relay.settle()
    expect(changes).toEqual([expect.objectContaining({ number: BOB, held: false })])
    expect((await alice.history()).map((m) => m.text)).toEqual(['new phone'])
    expect(await alice.safetyNumber(BOB)).toBe(changes[0]!.safetyNumber)
  })
})
