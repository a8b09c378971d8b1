// The pending-activations conformance suite: the in-process Activations and RedisActivations run exactly these
// tests. For the in-process one both "nodes" are the same instance.
import { ParleyError } from '@parley/protocol'
import { afterAll, expect, it } from 'vitest'
import type { PendingActivations } from '../../src/Activations.js'

/** How the suite gets pending-activation stores of one implementation. */
export interface ActivationsHarness {
  /** Two nodes of one fresh cluster sharing a hash key, with the given code lifetime and 5 attempts. */
  cluster(ttlSeconds: number): Promise<[PendingActivations, PendingActivations]>
  /** Closes everything opened. */
  cleanup(): Promise<void>
}

const NUMBER = '+14155550177'

/** The refusal of a call that may throw synchronously (in-process) or reject (Redis). */
async function refusal(call: () => unknown): Promise<{ code: string; message: string }> {
  try {
    await call()
  } catch (err) {
    if (ParleyError.is(err)) return { code: err.code, message: err.message }
    throw err
  }
  throw new Error('expected a refusal')
}

/** Registers the conformance tests of pending activations for one implementation (call inside a describe). */
export function activationsConformance(h: ActivationsHarness): void {
  afterAll(() => h.cleanup())

  it('a code started on one node is confirmed on another, once', async () => {
    const [a, b] = await h.cluster(600)
    const s = await a.start(NUMBER)
    expect(s.code).toMatch(/^\d{6}$/)
    expect(s.activationIdHex).toBe(Buffer.from(s.activationId).toString('hex'))
    expect(s).toMatchObject({ expiresInSeconds: 600, attemptsLeft: 5 })
    expect(await b.confirm(s.activationIdHex, s.code)).toBe(NUMBER)
    expect(await refusal(() => a.confirm(s.activationIdHex, s.code))).toEqual({
      code: 'NOT_FOUND',
      message: 'unknown activation; request a new code',
    })
  })

  it('check keeps the activation pending (a wrong code still spends an attempt); confirm then consumes it', async () => {
    const [a, b] = await h.cluster(600)
    const s = await a.start(NUMBER)
    const wrong = s.code === '000000' ? '111111' : '000000'
    expect(await a.check(s.activationIdHex, s.code)).toBe(NUMBER)
    expect(await b.check(s.activationIdHex, s.code)).toBe(NUMBER)
    expect(await refusal(() => b.check(s.activationIdHex, wrong))).toEqual({
      code: 'INVALID_CODE',
      message: 'wrong code; 4 attempts left',
    })
    expect(await refusal(() => a.confirm(s.activationIdHex, wrong))).toEqual({
      code: 'INVALID_CODE',
      message: 'wrong code; 3 attempts left',
    })
    expect(await b.confirm(s.activationIdHex, s.code)).toBe(NUMBER)
    expect((await refusal(() => a.check(s.activationIdHex, s.code))).code).toBe('NOT_FOUND')
  })

  it('counts wrong codes across nodes and locks after the last attempt', async () => {
    const [a, b] = await h.cluster(600)
    const s = await a.start(NUMBER)
    const wrong = s.code === '000000' ? '111111' : '000000'
    for (let left = 4; left >= 1; left--) {
      expect(await refusal(() => (left % 2 ? a : b).confirm(s.activationIdHex, wrong))).toEqual({
        code: 'INVALID_CODE',
        message: `wrong code; ${left} attempts left`,
      })
    }
    expect(await refusal(() => b.confirm(s.activationIdHex, wrong))).toEqual({
      code: 'INVALID_CODE',
      message: 'wrong code; no attempts left, request a new code',
    })
    expect(await refusal(() => a.confirm(s.activationIdHex, s.code))).toEqual({
      code: 'EXPIRED',
      message: 'too many wrong codes; request a new code',
    })
  })

  it('answers EXPIRED after the code lifetime', async () => {
    const [a, b] = await h.cluster(1)
    const s = await a.start(NUMBER)
    await new Promise((r) => setTimeout(r, 1100))
    expect((await refusal(() => b.confirm(s.activationIdHex, s.code))).code).toBe('EXPIRED')
  })

  it('forgets a cancelled activation and refuses unknown ids', async () => {
    const [a, b] = await h.cluster(600)
    const s = await a.start(NUMBER)
    await b.cancel(s.activationIdHex)
    expect((await refusal(() => a.confirm(s.activationIdHex, s.code))).code).toBe('NOT_FOUND')
    expect((await refusal(() => a.confirm('00'.repeat(16), '123456'))).code).toBe('NOT_FOUND')
  })

  it('hashes numbers with the shared key: the same on every node, and not the number', async () => {
    const [a, b] = await h.cluster(600)
    expect(a.numberKey(NUMBER)).toMatch(/^[0-9a-f]{64}$/)
    expect(a.numberKey(NUMBER)).toBe(b.numberKey(NUMBER))
    expect(a.numberKey(NUMBER)).not.toBe(a.numberKey('+14155550178'))
    expect(a.numberKey(NUMBER)).not.toContain('4155550177')
  })

  it('tells any node the number key of a pending activation, and nothing once it is over', async () => {
    const [a, b] = await h.cluster(600)
    const s = await a.start(NUMBER)
    expect(await b.numberKeyOf(s.activationIdHex)).toBe(a.numberKey(NUMBER))
    expect(await a.numberKeyOf('00'.repeat(16))).toBeUndefined()
    expect(await a.numberKeyOf('not hex')).toBeUndefined()
    const wrong = s.code === '000000' ? '111111' : '000000'
    for (let i = 0; i < 5; i++) await refusal(() => b.confirm(s.activationIdHex, wrong))
    expect(await a.numberKeyOf(s.activationIdHex)).toBeUndefined() // locked
    const done = await a.start(NUMBER)
    await b.confirm(done.activationIdHex, done.code)
    expect(await b.numberKeyOf(done.activationIdHex)).toBeUndefined()
  })
}
