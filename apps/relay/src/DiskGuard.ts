/**
 * The disk high-water mark (`--min-free-disk-bytes`): while the file system of the data directory has less free
 * space than the mark, new mail is refused with MAILBOX_FULL and `/readyz` answers 503, so a flood — or plain
 * growth — stops before SQLite runs out of space mid-write. Free space is measured at most once per interval;
 * callers in between get the cached answer, and concurrent callers share one measurement.
 * @module
 */
import { statfs } from 'node:fs/promises'

/** How long one measurement of the free space is reused, by default. */
export const DISK_CHECK_INTERVAL_MS = 5000

/** Options of {@link DiskGuard}. */
export interface DiskGuardOptions {
  /** Free bytes below which new mail is refused; 0 turns the guard off. */
  minFreeBytes: number
  /** Measures the free bytes available to the relay; without it the guard is off. */
  free?: (() => Promise<number>) | undefined
  /** How long a measurement is reused (default {@link DISK_CHECK_INTERVAL_MS}). */
  intervalMs?: number | undefined
  /** Told when a measurement fails (the guard then lets mail through: it never blocks on its own failure). */
  onError?: ((err: unknown) => void) | undefined
  /** Clock, for tests. */
  now?: () => number
}

/** Free space of the file system holding `dir`, as `statfs` reports it to an unprivileged process. */
export function statfsFree(dir: string): () => Promise<number> {
  return async () => {
    const s = await statfs(dir)
    return Number(s.bavail) * Number(s.bsize)
  }
}

/** Whether the data directory's free space is below the mark; cached. */
export class DiskGuard {
  readonly #min: number
  readonly #free: (() => Promise<number>) | undefined
  readonly #intervalMs: number
  readonly #onError: (err: unknown) => void
  readonly #now: () => number
  #low = false
  #measuredAt = Number.NEGATIVE_INFINITY
  #measuring: Promise<boolean> | null = null

  constructor(options: DiskGuardOptions) {
    this.#min = options.minFreeBytes
    this.#free = options.free
    this.#intervalMs = options.intervalMs ?? DISK_CHECK_INTERVAL_MS
    this.#onError = options.onError ?? (() => {})
    this.#now = options.now ?? Date.now
  }

  /** Whether the guard measures anything (a mark above 0 and a way to measure). */
  get enabled(): boolean {
    return this.#min > 0 && this.#free !== undefined
  }

  /**
   * Whether free space is below the mark: the cached answer while it is fresh, otherwise a new measurement
   * (shared by concurrent callers). A failed measurement counts as not low.
   */
  async low(): Promise<boolean> {
    if (!this.enabled) return false
    if (this.#now() - this.#measuredAt < this.#intervalMs) return this.#low
    this.#measuring ??= this.#measure().finally(() => {
      this.#measuring = null
    })
    return this.#measuring
  }

  async #measure(): Promise<boolean> {
    try {
      this.#low = (await this.#free!()) < this.#min
    } catch (err) {
      this.#low = false
      this.#onError(err)
    }
    this.#measuredAt = this.#now()
    return this.#low
  }
}
