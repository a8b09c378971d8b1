/**
 * The heavy lane: CPU-bound work that a client can ask for in bulk (prekey signature checks, membership store
 * reads, mailbox pages) runs here in small slices, **one slice per event-loop turn** across all connections.
 * Between two slices the loop reads sockets and runs everything cheap (pings, sends, acks), so a client's
 * request waits for at most one slice of somebody else's heavy work, not for whole 200-signature uploads of
 * every hostile connection in turn. Heavy work itself is served first come, first served, one slice at a time.
 * @module
 */

/** Options of {@link HeavyLane}. */
export interface HeavyLaneOptions {
  /** Called with the length of the queue whenever a slice is queued (for a gauge). */
  onQueue?: (queued: number) => void
}

/** One slice at a time, one per event-loop turn (`setImmediate`), in the order they were asked for. */
export class HeavyLane {
  readonly #queue: (() => void)[] = []
  readonly #onQueue: ((queued: number) => void) | undefined
  #scheduled = false
  #slices = 0

  constructor(options: HeavyLaneOptions = {}) {
    this.#onQueue = options.onQueue
  }

  /** Slices run so far. */
  get slices(): number {
    return this.#slices
  }

  /** Slices waiting for their turn. */
  get queued(): number {
    return this.#queue.length
  }

  /**
   * Runs `fn` in its own turn, after the slices queued before it.
   * @returns what `fn` returns (or rejects with what it throws)
   */
  slice<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push(() => {
        try {
          resolve(fn())
        } catch (err) {
          reject(err)
        }
      })
      this.#onQueue?.(this.#queue.length)
      this.#schedule()
    })
  }

  /**
   * Runs `work` over `items` in slices of `size`, each slice in its own turn.
   * @returns the results, in the order of `items`
   */
  async map<I, O>(items: readonly I[], size: number, work: (item: I) => O): Promise<O[]> {
    const out: O[] = []
    for (let i = 0; i < items.length; i += size) {
      const part = items.slice(i, i + size)
      out.push(...(await this.slice(() => part.map(work))))
    }
    return out
  }

  #schedule(): void {
    if (this.#scheduled || this.#queue.length === 0) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      const job = this.#queue.shift()
      if (job) {
        this.#slices++
        job()
      }
      this.#schedule()
    })
  }
}
