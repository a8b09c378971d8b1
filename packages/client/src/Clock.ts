/**
 * Time, injected so that tests can run the engine on a fake clock.
 * @module
 */

/** The clock port of the engine. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number
  /** Schedules `fn` after `ms`; returns a handle for {@link Clock.clearTimeout}. */
  setTimeout(fn: () => void, ms: number): unknown
  /** Cancels a scheduled call. */
  clearTimeout(handle: unknown): void
}

/** The real clock (`Date.now` and the global timers). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>),
}
