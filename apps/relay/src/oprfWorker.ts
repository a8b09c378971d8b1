/**
 * Worker-thread entry of {@link OprfPool}: evaluates OPRF batches (RFC 9497 BlindEvaluate + batch proof)
 * off the relay's event loop. Messages are `OprfTask` in, `OprfResult` out; elements travel packed in one
 * transferred buffer, so nothing is copied per element.
 * @module
 */
import { readlinkSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'
import { parentPort } from 'node:worker_threads'
import { oprfBlindEvaluate, ParleyError } from '@parley/protocol'
import { type OprfResult, type OprfTask, WORKER_NICENESS } from './OprfPool.js'

const port = parentPort
if (!port) throw new Error('oprfWorker runs only as a worker thread')

// Evaluations are bulk work anyone with an account can ask for; the event loop answers everybody's requests. On
// Linux a thread has its own nice value (its id is in /proc/thread-self), so this thread yields the CPU to the
// event loop when both want it. Elsewhere, or if the call is refused, the thread runs at the process's priority.
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
  if (Number.isInteger(tid) && tid > 0) setPriority(tid, Math.min(19, getPriority(tid) + WORKER_NICENESS))
} catch {
  // not Linux, or not permitted: keep the process's priority
}

port.on('message', (task: OprfTask) => {
  try {
    const n = task.packed.length / 32
    const elements = Array.from({ length: n }, (_, i) => task.packed.subarray(i * 32, i * 32 + 32))
    const { evaluatedElements, proof } = oprfBlindEvaluate(task.secretKey, task.publicKey, elements)
    const evaluated = new Uint8Array(n * 32)
    for (const [i, e] of evaluatedElements.entries()) evaluated.set(e, i * 32)
    const result: OprfResult = { id: task.id, ok: true, evaluated, proof }
    port.postMessage(result, [evaluated.buffer])
  } catch (err) {
    const e = ParleyError.fromUnknown(err)
    const result: OprfResult = { id: task.id, ok: false, code: e.code, message: e.message }
    port.postMessage(result)
  }
})
port.postMessage({ ready: true })
