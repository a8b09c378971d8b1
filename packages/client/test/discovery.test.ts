// Private discovery against a FakeRelay: blinded OPRF with proofs checked against the pinned key, membership by
// prefix, the token cache, the relay's refusals.
import { ParleyError } from '@parley/client'
import { describe, expect, it } from 'vitest'
import { ALICE, BOB, CAROL, codeOf, NOBODY, world } from './harness.js'

/** Whether any frame a client sent holds the digits of `e164` (as text, in any frame, anywhere). */
function leaks(frames: { direction: string; frame: unknown }[], e164: string): boolean {
  const digits = e164.slice(1)
  const text = JSON.stringify(
    frames.filter((f) => f.direction === 'toRelay').map((f) => f.frame),
    (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v),
  )
  return text.includes(digits) || text.includes(digits.slice(-7))
}

describe('discovery', () => {
  it('tells registered numbers from others, without sending any of them', async () => {
    const { relay, activated } = world()
    const alice = await activated(ALICE)
    await activated(BOB)
    const before = relay.frames.length
    const results = await alice.discover(['(415) 555-0101', NOBODY, 'not a number'])
    expect(results).toEqual([
      { number: '(415) 555-0101', e164: BOB, registered: true },
      { number: NOBODY, e164: NOBODY, registered: false },
      { number: 'not a number', e164: null, registered: false },
    ])
    const [evaluate] = relay.received('oprfEvaluate')
    expect(evaluate!.blindedElements).toHaveLength(2)
    expect(evaluate!.keyId).toBe(relay.oprfKeys.at(-1)!.keyId)
    const [query] = relay.received('membershipQuery')
    expect(query!.prefixBits).toBe(16)
    expect(query!.prefixes!.every((p) => p.length === 2)).toBe(true)
    const discoveryFrames = relay.frames.slice(before)
    expect(leaks(discoveryFrames, BOB)).toBe(false)
    expect(leaks(discoveryFrames, NOBODY)).toBe(false)
  })

  it('caches tokens: asking again costs no evaluation, only new numbers are evaluated', async () => {
    const { relay, activated } = world()
    const alice = await activated(ALICE)
    await alice.discover([BOB, NOBODY])
    await alice.discover([NOBODY, BOB])
    expect(relay.received('oprfEvaluate')).toHaveLength(1)
    // Membership is asked each time: registrations change, tokens do not.
    expect(relay.received('membershipQuery')).toHaveLength(2)

    await activated(CAROL)
    expect((await alice.discover([BOB, CAROL])).map((r) => r.registered)).toEqual([false, true])
    expect(relay.received('oprfEvaluate').map((e) => e.blindedElements!.length)).toEqual([2, 1])
  })

  it('uses a fresh discovery result for send() until it is older than discoveryTtlMs', async () => {
    const { relay, clock, activated } = world()
    const alice = await activated(ALICE, { discoveryTtlMs: 60_000 })
    await activated(BOB)
    await alice.discover([BOB])
    await alice.send(BOB, 'one')
    expect(relay.received('membershipQuery')).toHaveLength(1)
    await clock.advance(60_001)
    await alice.send(BOB, 'two')
    expect(relay.received('membershipQuery')).toHaveLength(2)
  })

  it('passes on RATE_LIMITED with retryAfterMs, caches nothing, and asks again next time', async () => {
    const { relay, activated } = world()
    const alice = await activated(ALICE)
    relay.refuse('oprfEvaluate', 'RATE_LIMITED', { retryAfterMs: 3_600_000, times: 1 })
    const err = await alice.discover([BOB]).catch((e: unknown) => e)
    expect(ParleyError.is(err, 'RATE_LIMITED')).toBe(true)
    expect((err as ParleyError).retryAfterMs).toBe(3_600_000)
    expect(relay.received('membershipQuery')).toHaveLength(0)
    await alice.discover([BOB])
    expect(relay.received('oprfEvaluate')).toHaveLength(2)
  })

  it('waits and retries when a busy relay answers UNAVAILABLE with retryAfterMs', async () => {
    const { relay, clock, activated, step } = world()
    const alice = await activated(ALICE)
    await activated(BOB)
    relay.refuse('oprfEvaluate', 'UNAVAILABLE', { retryAfterMs: 2_000, times: 2 })
    const found = alice.discover([BOB])
    await relay.settle()
    expect(relay.received('oprfEvaluate')).toHaveLength(1)
    await step(2_000)
    expect(relay.received('oprfEvaluate')).toHaveLength(2)
    await clock.advance(2_000)
    expect((await found).map((r) => r.registered)).toEqual([true])
    expect(relay.received('oprfEvaluate')).toHaveLength(3)
  })

  it("ends a busy relay's wait at once on abort (ABORTED) or close (CLOSED), without another request", async () => {
    const { relay, activated } = world()
    const alice = await activated(ALICE)
    relay.refuse('oprfEvaluate', 'UNAVAILABLE', { retryAfterMs: 3_600_000, times: 2 })
    const controller = new AbortController()
    const aborted = alice.discover([BOB], { signal: controller.signal }).catch((e: unknown) => e)
    await relay.settle()
    controller.abort()
    expect(ParleyError.is(await aborted, 'ABORTED')).toBe(true)

    const closed = alice.discover([BOB]).catch((e: unknown) => e)
    await relay.settle()
    await alice.close()
    expect(ParleyError.is(await closed, 'CLOSED')).toBe(true)
    // Neither wait ran out: the manual clock never moved, and the relay saw one request per call.
    expect(relay.received('oprfEvaluate')).toHaveLength(2)
  })

  it('refuses an evaluation whose proof does not verify, or made with another key (VERIFICATION_FAILED)', async () => {
    const { relay, activated } = world()
    const alice = await activated(ALICE)
    relay.answer(
      'oprfEvaluate',
      async (_request, { next }) => {
        const reply = await next()
        const proof = reply.oprfEvaluated!.proof!.slice()
        proof[0]! ^= 1
        return { oprfEvaluated: { ...reply.oprfEvaluated!, proof } }
      },
      { times: 1 },
    )
    expect(await codeOf(alice.discover([BOB]))).toBe('VERIFICATION_FAILED')
    relay.answer(
      'oprfEvaluate',
      async (_request, { next }) => ({ oprfEvaluated: { ...(await next()).oprfEvaluated!, keyId: 77 } }),
      { times: 1 },
    )
    expect(await codeOf(alice.discover([BOB]))).toBe('VERIFICATION_FAILED')
    expect(await alice.discover([BOB])).toEqual([{ number: BOB, e164: BOB, registered: false }])
  })

  it("splits work to the relay's announced batch size, in pipelined OPRF requests", async () => {
    const { relay, activated } = world({ maxDiscoveryBatch: 2 })
    const alice = await activated(ALICE)
    const numbers = ['+14155550111', '+14155550112', '+14155550113', '+14155550114', '+14155550115']
    const results = await alice.discover(numbers)
    expect(results.every((r) => !r.registered)).toBe(true)
    expect(relay.received('oprfEvaluate').map((e) => e.blindedElements!.length)).toEqual([2, 2, 1])
    expect(relay.received('membershipQuery').every((q) => q.prefixes!.length <= 2)).toBe(true)
    await expect(alice.discover(['x'] as unknown as string[]).then(() => 'ok')).resolves.toBe('ok')
    await expect(alice.discover(Array(10_001).fill(BOB))).rejects.toThrow(RangeError)
    await expect(alice.discover('nope' as unknown as string[])).rejects.toThrow(TypeError)
  })
})
