/**
 * OPRF evaluation off the event loop. A 500-element `OprfEvaluate` costs about half a second of pure-JS
 * ristretto255 arithmetic; on the event loop it would stall every connection meanwhile. The pool runs
 * evaluations on `worker_threads`, one per core, with a bounded queue: when it is full a request is refused
 * with `UNAVAILABLE` and a `retryAfterMs` estimated from the work ahead of it, instead of piling up.
 *
 * Workers run `oprfWorker.ts` through `oprfWorker.boot.mjs`, which registers tsx in the worker (Node 20
 * workers do not run the parent's `--import tsx`), with this process's flags plus `--conditions=parley-source`
 * so `@parley/protocol` resolves to the same sources as in `parley-relay`; a built relay runs `oprfWorker.js`.
 * A pool whose workers cannot start evaluates on the calling thread, so the relay keeps working, and logs
 * why once.
 * @module
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { type ErrorCode, type OprfEvaluation, oprfBlindEvaluate, ParleyError } from '@parley/protocol'

/** A request to a worker: elements packed 32 bytes each. */
export interface OprfTask {
  id: number
  secretKey: Uint8Array
  publicKey: Uint8Array
  packed: Uint8Array
}

/** A worker's answer: evaluated elements packed 32 bytes each, or the error's code and message. */
export type OprfResult =
  | { id: number; ok: true; evaluated: Uint8Array; proof: Uint8Array }
  | { id: number; ok: false; code: ErrorCode; message: string }

/** Options of {@link OprfPool}. */
export interface OprfPoolOptions {
  /**
   * Worker threads; default one less than the number of cores (at least 1), so evaluations never take the core
   * the event loop needs. 0 evaluates on the calling thread.
   */
  size?: number
  /**
   * Elements waiting for a worker beyond which new batches are refused; default 2,000 per worker (about a
   * second of work each). Counted in elements, not batches, so many small requests are not refused early.
   */
  maxQueuedElements?: number
  /** Called once when workers cannot start and the pool falls back to the calling thread. */
  warn?: (message: string, err: unknown) => void
}

interface Job {
  task: OprfTask
  elements: number
  /** Workers that died while running it. */
  crashes: number
  resolve: (value: OprfEvaluation) => void
  reject: (err: unknown) => void
}

interface Slot {
  worker: Worker
  ready: boolean
  job: Job | undefined
  startedAt: number
}

const ELEMENT = 32
/** How much nicer than the relay's event loop a worker thread runs (Linux schedules threads by their own nice). */
export const WORKER_NICENESS = 10
/** Starting guess of the cost of one element, refined by measurement (ms). */
const INITIAL_MS_PER_ELEMENT = 1.2

/** Pool of OPRF worker threads with a bounded queue. */
export class OprfPool {
  readonly size: number
  readonly maxQueuedElements: number
  readonly #warn: (message: string, err: unknown) => void
  readonly #slots: Slot[] = []
  readonly #queue: Job[] = []
  #nextId = 1
  #inline = false
  #closed = false
  #msPerElement = INITIAL_MS_PER_ELEMENT

  constructor(options: OprfPoolOptions = {}) {
    this.size = Math.max(0, options.size ?? Math.max(1, availableParallelism() - 1))
    this.maxQueuedElements = Math.max(0, options.maxQueuedElements ?? 2000 * Math.max(1, this.size))
    this.#warn = options.warn ?? ((message, err) => process.emitWarning(`${message}: ${String(err)}`))
    this.#inline = this.size === 0
  }

  /** Batches waiting for a worker. */
  get queued(): number {
    return this.#queue.length
  }

  /** Whether evaluations run on the calling thread (no workers, or they could not start). */
  get inline(): boolean {
    return this.#inline
  }

  /**
   * RFC 9497 BlindEvaluate of a batch with its DLEQ proof ({@link oprfBlindEvaluate}) on a worker thread.
   * @throws ParleyError `UNAVAILABLE` with `retryAfterMs` when the queue is full; whatever
   *   `oprfBlindEvaluate` throws for bad elements (`BAD_REQUEST`)
   */
  evaluate(secretKey: Uint8Array, publicKey: Uint8Array, elements: Uint8Array[]): Promise<OprfEvaluation> {
    if (this.#inline || this.#closed) return this.#evaluateInline(secretKey, publicKey, elements)
    const queued = this.#queue.reduce((n, j) => n + j.elements, 0)
    if (queued > 0 && queued + elements.length > this.maxQueuedElements) {
      const ahead = queued + elements.length
      const retryAfterMs = Math.ceil((ahead * this.#msPerElement) / Math.max(1, this.size))
      return Promise.reject(
        new ParleyError('UNAVAILABLE', 'the relay is busy evaluating OPRF batches; retry later', {
          retryAfterMs,
        }),
      )
    }
    const packed = new Uint8Array(elements.length * ELEMENT)
    for (const [i, e] of elements.entries()) {
      if (!(e instanceof Uint8Array) || e.length !== ELEMENT) {
        return Promise.reject(new ParleyError('BAD_REQUEST', `blindedElements[${i}] must be 32 bytes`))
      }
      packed.set(e, i * ELEMENT)
    }
    const task: OprfTask = { id: this.#nextId++, secretKey, publicKey, packed }
    return new Promise<OprfEvaluation>((resolve, reject) => {
      this.#queue.push({ task, elements: elements.length, crashes: 0, resolve, reject })
      this.#pump()
    })
  }

  /** Stops the workers; later evaluations run on the calling thread. Queued batches still complete. */
  async close(): Promise<void> {
    this.#closed = true
    for (const job of this.#queue.splice(0)) this.#runInline(job)
    await Promise.all(this.#slots.map((s) => s.worker.terminate()))
    this.#slots.length = 0
  }

  async #evaluateInline(sk: Uint8Array, pk: Uint8Array, elements: Uint8Array[]): Promise<OprfEvaluation> {
    return oprfBlindEvaluate(sk, pk, elements)
  }

  #runInline(job: Job): void {
    try {
      const n = job.task.packed.length / ELEMENT
      const elements = Array.from({ length: n }, (_, i) =>
        job.task.packed.subarray(i * ELEMENT, (i + 1) * ELEMENT),
      )
      job.resolve(oprfBlindEvaluate(job.task.secretKey, job.task.publicKey, elements))
    } catch (err) {
      job.reject(err)
    }
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      if (this.#inline || this.#closed) {
        this.#runInline(this.#queue.shift()!)
        continue
      }
      const slot = this.#slots.find((s) => s.ready && !s.job)
      if (!slot) {
        // Start them all at once: a worker takes ~0.3 s to load, and a burst of batches usually follows.
        while (this.#slots.length < this.size && !this.#inline) this.#spawn()
        return // a worker posts `ready` (or fails) and pumps again
      }
      const job = this.#queue.shift()!
      slot.job = job
      slot.startedAt = performance.now()
      slot.worker.ref()
      // Not transferred: a job whose worker dies is run again, so it must keep its bytes (16 KB at most).
      slot.worker.postMessage(job.task)
    }
  }

  #spawn(): void {
    let worker: Worker
    try {
      worker = import.meta.url.endsWith('.ts')
        ? new Worker(new URL('./oprfWorker.boot.mjs', import.meta.url), {
            execArgv: sourceExecArgv(),
            workerData: { entry: new URL('./oprfWorker.ts', import.meta.url).href },
          })
        : new Worker(new URL('./oprfWorker.js', import.meta.url))
    } catch (err) {
      this.#fallBack(err)
      return
    }
    const slot: Slot = { worker, ready: false, job: undefined, startedAt: 0 }
    this.#slots.push(slot)
    worker.unref()
    worker.on('message', (msg: OprfResult | { ready: true }) => {
      if ('ready' in msg) {
        slot.ready = true
        this.#pump()
        return
      }
      const job = slot.job
      slot.job = undefined
      worker.unref()
      if (job && msg.id === job.task.id) {
        const ms = performance.now() - slot.startedAt
        this.#msPerElement = 0.8 * this.#msPerElement + 0.2 * (ms / Math.max(1, job.elements))
        if (msg.ok) {
          const n = msg.evaluated.length / ELEMENT
          const evaluatedElements = Array.from({ length: n }, (_, i) =>
            msg.evaluated.subarray(i * ELEMENT, (i + 1) * ELEMENT),
          )
          job.resolve({ evaluatedElements, proof: msg.proof })
        } else {
          job.reject(new ParleyError(msg.code, msg.message))
        }
      }
      this.#pump()
    })
    worker.on('error', (err) => this.#lost(slot, err))
    worker.on('exit', (code) => {
      if (!this.#closed) this.#lost(slot, new Error(`OPRF worker exited with code ${code}`))
    })
  }

  /** A worker died: before it was ever ready the pool falls back to inline; later, it is replaced. */
  #lost(slot: Slot, err: unknown): void {
    const i = this.#slots.indexOf(slot)
    if (i < 0) return
    this.#slots.splice(i, 1)
    void slot.worker.terminate()
    const job = slot.job
    slot.job = undefined
    if (!slot.ready) this.#fallBack(err)
    // Evaluation has no side effects, so a job is run again once; a job that kills two workers is refused.
    if (job && ++job.crashes < 2) this.#queue.unshift(job)
    else if (job) job.reject(new ParleyError('INTERNAL', 'OPRF evaluation failed', { cause: err }))
    this.#pump()
  }

  #fallBack(err: unknown): void {
    if (this.#inline) return
    this.#inline = true
    this.#warn('OPRF worker threads unavailable; evaluating on the event loop', err)
  }
}

/** This process's flags (so the worker resolves modules alike) plus the workspace's source condition. */
function sourceExecArgv(): string[] {
  const argv = process.execArgv.filter((a) => !a.startsWith('--inspect'))
  const hasSource = argv.some(
    (a, i) => a === '--conditions=parley-source' || (a === '--conditions' && argv[i + 1] === 'parley-source'),
  )
  return hasSource ? argv : [...argv, '--conditions=parley-source']
}
