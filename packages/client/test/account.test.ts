// Prekey upkeep, the registration lock, OPRF key rotation and deactivation, against a FakeRelay.
import type { ParleyError } from '@parley/client'
import { describe, expect, it } from 'vitest'
import { ALICE, aliceAndBob, BOB, CAROL, codeOf, collect, world } from './harness.js'

const DAY = 24 * 3600_000

describe('prekeys', () => {
  it('refills one-time prekeys of the kinds the relay reports low, and only those', async () => {
    const { relay, activated, step } = world()
    relay.answer('prekeyCountQuery', () => ({ prekeyCount: { oneTimeCount: 3, kemOneTimeCount: 9 } }), {
      times: 1,
    })
    await activated(ALICE)
    const [upload] = relay.received('prekeyUpload')
    expect(upload!.oneTimePrekeys).toHaveLength(100)
    expect(upload!.oneTimeKemPrekeys ?? []).toHaveLength(0)
    // Fresh ids: the refill continues after the ones uploaded at activation.
    expect(upload!.oneTimePrekeys![0]!.keyId).toBeGreaterThan(
      relay.received('activationConfirm')[0]!.prekeys!.oneTimePrekeys!.at(-1)!.keyId!,
    )
    expect(relay.account(ALICE)!.oneTimePrekeys).toHaveLength(200)

    relay.answer('prekeyCountQuery', () => ({ prekeyCount: { oneTimeCount: 50, kemOneTimeCount: 0 } }), {
      times: 1,
    })
    relay.drop(ALICE)
    await step(1_000)
    const [, second] = relay.received('prekeyUpload')
    expect(second!.oneTimePrekeys ?? []).toHaveLength(0)
    expect(second!.oneTimeKemPrekeys).toHaveLength(10)
  })

  it('checks its counts again after a first message used up one of its prekeys', async () => {
    const { relay, activated } = world()
    const alice = await activated(ALICE)
    await activated(BOB)
    const counted = relay.received('prekeyCountQuery').length
    await alice.send(BOB, 'hi')
    await relay.settle()
    expect(relay.account(BOB)!.oneTimePrekeys).toHaveLength(99)
    expect(relay.received('prekeyCountQuery').length).toBe(counted + 1)
    // 99 and 9 are above the low-water marks: nothing uploaded.
    expect(relay.received('prekeyUpload')).toHaveLength(0)
  })

  it('rotates its signed prekey after a week, on its next connection', async () => {
    const { relay, clock, step, alice, bob } = await aliceAndBob()
    const first = relay.account(ALICE)!.signedPrekey.keyId
    await clock.advance(8 * DAY)
    relay.drop(ALICE)
    await step(1_000)
    const rotated = relay.received('prekeyUpload').filter((u) => u.signedPrekey)
    expect(rotated).toHaveLength(1)
    expect(relay.account(ALICE)!.signedPrekey.keyId).toBe(first + 1)
    // Mail under the new signed prekey (and a fresh certificate after a week) still works.
    await bob.send(ALICE, 'after the rotation')
    await relay.settle()
    expect((await alice.history()).map((m) => m.text)).toEqual(['after the rotation'])
    expect(relay.received('senderCertificateRequest').length).toBeGreaterThanOrEqual(1)
  })
})

describe('registration lock', () => {
  it('makes a new device prove the PIN as well as the code', { timeout: 120_000 }, async () => {
    const { relay, activated, client } = world()
    const alice = await activated(ALICE)
    await alice.setRegistrationLock('4921')
    const [set] = relay.received('setRegistrationLock')
    expect(set!.verifier).toHaveLength(32)
    expect(JSON.stringify(set)).not.toContain('4921')

    const other = await client()
    await other.activate({ phoneNumber: ALICE, consent: true })
    const code = relay.codeFor(ALICE)!
    const locked = (await other.confirm(code).catch((e: unknown) => e)) as ParleyError
    expect(locked.code).toBe('REGISTRATION_LOCKED')
    expect(locked.registrationLock).toEqual(expect.objectContaining({ attemptsLeft: 5 }))
    expect(await codeOf(other.confirm(code, { pin: '0000' }))).toBe('REGISTRATION_LOCKED')
    expect(relay.account(ALICE)!.registrationLock!.guessesLeft).toBe(4)
    const activation = await other.confirm(code, { pin: '4921' })
    expect(activation.replacedDevice).toBe(true)
    expect(relay.account(ALICE)!.registrationLock).not.toBeNull()

    await other.clearRegistrationLock()
    expect(relay.account(ALICE)!.registrationLock).toBeNull()
  })
})

describe('OPRF key rotation', () => {
  it('moves each account to its new address and follows contacts there', async () => {
    const { relay, step, alice, bob, received } = await aliceAndBob()
    await alice.send(BOB, 'under the first key')
    await relay.settle()
    const oldBob = relay.addressOf(BOB)

    relay.rotateOprfKey()
    expect(relay.addressOf(BOB)).not.toBe(oldBob)
    await step(1_000)
    expect(
      relay
        .received('rebindAddress')
        .map((r) => r.phoneNumber)
        .sort(),
    ).toEqual([ALICE, BOB])
    expect(bob.address).toBe(relay.addressOf(BOB))
    expect(relay.account(oldBob)).toBeUndefined()

    // Alice still knows Bob by his old address: her send finds nobody there, looks him up again and follows.
    await alice.send(BOB, 'under the second key')
    await relay.settle()
    expect(relay.sent('error').map((e) => e.code)).toContain(5) // NOT_FOUND at the old address
    expect(relay.received('oprfEvaluate')).toHaveLength(2) // Bob looked up again, under the new key
    expect(received.map((m) => m.text)).toEqual(['under the first key', 'under the second key'])
    // And Bob's reply comes from his new address, which Alice connects to his number.
    await bob.send(ALICE, 'got it')
    await relay.settle()
    expect((await alice.history()).map((m) => [m.text, m.from])).toEqual([['got it', BOB]])
  })
})

describe('deactivation', () => {
  it('erases the account on the relay and on the device, and tells its other connections', async () => {
    const { relay, activated } = world()
    const alice = await activated(ALICE)
    const carol = await activated(CAROL)
    expect((await carol.discover([ALICE]))[0]!.registered).toBe(true)
    await alice.deactivate()
    expect(relay.received('deactivate')).toHaveLength(1)
    expect(relay.account(ALICE)).toBeUndefined()
    expect(alice.activated).toBe(false)
    expect(await alice.history()).toEqual([])
    expect(await codeOf(alice.send(CAROL, 'x'))).toBe('INVALID_STATE')
    expect((await carol.discover([ALICE]))[0]!.registered).toBe(false)

    // The device can be activated again.
    await alice.activate({ phoneNumber: ALICE, consent: true })
    const again = await alice.confirm(relay.codeFor(ALICE)!)
    expect(again.replacedDevice).toBe(false)
  })

  it('keeps the account when the relay cannot be reached', async () => {
    const { relay, activated } = world()
    const alice = await activated(ALICE)
    relay.refuse('deactivate', 'UNAVAILABLE', { times: 1 })
    expect(await codeOf(alice.deactivate())).toBe('UNAVAILABLE')
    expect(alice.activated).toBe(true)
    expect(relay.account(ALICE)).toBeDefined()
  })

  it('is told when the account was erased from another connection', async () => {
    const { relay, activated } = world()
    const alice = await activated(ALICE)
    const replaced = collect(alice, 'deviceReplaced')
    relay.push(ALICE, { deviceReplaced: { erased: true } })
    await relay.settle()
    expect(replaced).toEqual([{ erased: true }])
    expect(alice.activated).toBe(false)
  })
})
