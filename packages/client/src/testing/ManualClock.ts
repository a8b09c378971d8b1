/**
 * A {@link Clock} for tests: time stands still until the test moves it.
 * @module
 */
import type { Clock } from '../Clock.js'

interface Timer {
  at: number
  /** Scheduling order, so that timers due at the same time run in the order they were set. */
  order: number
  fn: () => void
}

/** One turn of the host's event loop (a macrotask), so that promise chains started by a timer can finish. */
const turn = () => new Promise<void>((resolve) => globalThis.setTimeout(resolve, 0))

/**
 * A manual {@link Clock}: `now()` changes only through {@link ManualClock.advance}, and a timer fires only once
 * the clock has reached its time. Work that is due *now* (a timer set for 0 ms, as the engine does to connect)
 * runs by itself at the next turn of the event loop, so `await client.activate(...)` needs no help; anything
 * later waits for `advance()`. Give the same clock to the clients and to the `FakeRelay` so that
 * certificates, code lifetimes and retry delays all read one time.
 *
 * @example
 * const clock = new ManualClock()
 * const client = await ParleyClient.create({ clock, ... })
 * await clock.advance(60_000) // a MAILBOX_FULL deferral ends, the outbox tries again
 */
export class ManualClock implements Clock {
  #now: number
  #order = 0
  #nextHandle = 1
  readonly #timers = new Map<number, Timer>()
  #wakeScheduled = false

  /**
   * @param startMs - the time to start at, in ms since the Unix epoch (default 2025-01-01T00:00:00Z)
   */
  constructor(startMs = Date.UTC(2025, 0, 1)) {
    this.#now = startMs
  }

  /** @inheritDoc */
  now(): number {
    return this.#now
  }

  /** @inheritDoc */
  setTimeout(fn: () => void, ms: number): unknown {
    const handle = this.#nextHandle++
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0
    this.#timers.set(handle, { at: this.#now + delay, order: this.#order++, fn })
    if (delay === 0) this.#wakeSoon()
    return handle
  }

  /** @inheritDoc */
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number)
  }

  /** How many timers are set and not yet fired or cleared. */
  get pendingTimers(): number {
    return this.#timers.size
  }

  /** The delays, from now, of the timers still set, soonest first (e.g. to see that a retry was scheduled). */
  get pendingDelays(): number[] {
    return [...this.#timers.values()].map((t) => t.at - this.#now).sort((a, b) => a - b)
  }

  /**
   * Runs, in order, every timer that is due at the current time (and those they set for 0 ms).
   * @returns how many timers ran
   */
  runDue(): number {
    let ran = 0
    for (let t = this.#nextDue(this.#now); t !== undefined; t = this.#nextDue(this.#now)) {
      this.#fire(t)
      ran++
    }
    return ran
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way, in time order, with the clock
   * set to each one's time while it runs. The event loop turns first, so that what is already under way (a
   * connection just dropped scheduling its reconnect) sets its timers at the current time, and after each
   * timer, so that what it started (a reconnect, a retried send) happens before the next one fires.
   * @param ms - how far to move, in milliseconds (≥ 0)
   */
  async advance(ms: number): Promise<void> {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError('advance() takes a non-negative number of ms')
    const until = this.#now + ms
    await turn()
    for (let t = this.#nextDue(until); t !== undefined; t = this.#nextDue(until)) {
      this.#now = Math.max(this.#now, t[1].at)
      this.#fire(t)
      await turn()
    }
    this.#now = until
    await turn()
  }

  #nextDue(until: number): [number, Timer] | undefined {
    let best: [number, Timer] | undefined
    for (const entry of this.#timers) {
      const t = entry[1]
      if (t.at > until) continue
      if (best === undefined || t.at < best[1].at || (t.at === best[1].at && t.order < best[1].order))
        best = entry
    }
    return best
  }

  #fire([handle, timer]: [number, Timer]): void {
    this.#timers.delete(handle)
    timer.fn()
  }

  #wakeSoon(): void {
    if (this.#wakeScheduled) return
    this.#wakeScheduled = true
    globalThis.setTimeout(() => {
      this.#wakeScheduled = false
      this.runDue()
    }, 0)
  }
}
