// OprfPool: evaluation on worker threads gives proofs clients accept, keeps the event loop free, and refuses
// with UNAVAILABLE + retryAfterMs when its queue is full.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import {
  numberToOprfInput,
  oprfBlind,
  oprfFinalize,
  oprfGenerateKeyPair,
  ParleyError,
} from '@parley/protocol'
import { afterAll, describe, expect, it } from 'vitest'
import { OprfPool, WORKER_NICENESS } from '../src/OprfPool.js'

const keys = oprfGenerateKeyPair()
const batch = (n: number, tag = 0) => {
  const inputs = Array.from({ length: n }, (_, i) =>
    numberToOprfInput(`+1415${String(tag).padStart(2, '0')}${String(i).padStart(5, '0')}`),
  )
  return { inputs, blinded: inputs.map((input) => oprfBlind(input)) }
}

describe('OprfPool', () => {
  const warnings: unknown[] = []
  const pool = new OprfPool({ size: 2, maxQueuedElements: 200, warn: (m, err) => warnings.push([m, err]) })
  afterAll(() => pool.close())

  it('evaluates on a worker thread (TypeScript loaded like the relay) with a proof the client accepts', async () => {
    const { inputs, blinded } = batch(20)
    const res = await pool.evaluate(
      keys.secretKey,
      keys.publicKey,
      blinded.map((b) => b.blindedElement),
    )
    expect(warnings).toEqual([])
    expect(pool.inline).toBe(false)
    const outputs = oprfFinalize(
      inputs,
      blinded.map((b) => b.blind),
      res.evaluatedElements,
      blinded.map((b) => b.blindedElement),
      res.proof,
      keys.publicKey,
    )
    expect(outputs).toHaveLength(20)
  })

  it.runIf(process.platform === 'linux')(
    'runs its workers nicer than the event loop, and sizes itself one below the cores by default',
    async () => {
      // The pool's two workers have evaluated above; each thread's nice value is field 19 of its stat line.
      const nice = (task: string) => {
        const stat = readFileSync(`/proc/self/task/${task}/stat`, 'utf8')
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])
      }
      const own = nice(readlinkSync('/proc/thread-self').split('/').pop()!)
      const tasks = readdirSync('/proc/self/task').map(nice)
      expect(tasks.filter((n) => n === Math.min(19, own + WORKER_NICENESS))).toHaveLength(2)
      const sized = new OprfPool()
      try {
        expect(sized.size).toBe(Math.max(1, availableParallelism() - 1))
      } finally {
        sized.close()
      }
    },
  )

  it('leaves the event loop free while a full batch is evaluated', async () => {
    const { blinded } = batch(500, 1)
    let settled = false
    const running = pool
      .evaluate(
        keys.secretKey,
        keys.publicKey,
        blinded.map((b) => b.blindedElement),
      )
      .then(() => {
        settled = true
      })
    let turns = 0
    while (!settled && turns < 5) {
      await new Promise((r) => setImmediate(r))
      turns++
    }
    expect(settled).toBe(false) // inline evaluation would have finished before the first turn
    await running
  })

  it('refuses with UNAVAILABLE and a retry hint when every worker is busy and the queue is full', async () => {
    const elements = batch(200, 2).blinded.map((b) => b.blindedElement)
    // 2 workers + a queue of 200 elements: of 6 batches submitted at once, some must be refused.
    const outcomes = await Promise.allSettled(
      Array.from({ length: 6 }, () => pool.evaluate(keys.secretKey, keys.publicKey, elements)),
    )
    const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []))
    expect(refused.length).toBeGreaterThan(0)
    expect(refused.length).toBeLessThan(6)
    for (const err of refused) {
      expect(ParleyError.is(err, 'UNAVAILABLE')).toBe(true)
      expect((err as ParleyError).retryAfterMs).toBeGreaterThan(0)
    }
  })

  it('reports a malformed element as BAD_REQUEST from the worker', async () => {
    const bad = new Uint8Array(32).fill(0xff)
    const err = await pool.evaluate(keys.secretKey, keys.publicKey, [bad]).catch((e: unknown) => e)
    expect(ParleyError.is(err, 'BAD_REQUEST')).toBe(true)
  })
})
