/**
 * What stands between an SMS-pumping botnet and the operator's SMS bill, besides the quotas charged in
 * handlers/activation.ts: the SMS load of the last minute and the proof-of-work difficulty derived from it.
 *
 * The load is counted in the {@link RateLimiter}'s store, so every node sharing it (Redis) sees the cluster's
 * load: one bucket per clock minute (`sms:load:<minute>`) whose deficit is the number of SMS sent in that minute
 * (a bucket of 2^40 tokens refilling one per minute, so an old minute's bucket is dropped as full once it has
 * refilled, and the count is at most 2 too low). The last minute is the usual sliding-window estimate:
 * `previous minute × (1 − elapsed fraction) + current minute`.
 * @module
 */

import type { RelayContext } from './context.js'
import type { Caller } from './handlers/scope.js'
import type { RateLimiter } from './RateLimiter.js'

const MINUTE = 60_000
const BIG = 2 ** 40
const COUNTER = { capacity: BIG, refillTokens: 1, refillIntervalMs: MINUTE }
/** How long a node reuses its estimate of the load before reading it again (SMS it sent itself refresh it). */
const LOAD_CACHE_MS = 1000

/** SMS sent per minute, counted in a rate limiter's store (see the module comment). */
export class SmsLoad {
  readonly #limiter: RateLimiter
  readonly #prefix: string

  /**
   * @param limiter - where the per-minute counters live
   * @param prefix - key prefix of the counters
   */
  constructor(limiter: RateLimiter, prefix = 'sms:load') {
    this.#limiter = limiter
    this.#prefix = prefix
  }

  #key(minute: number): string {
    return `${this.#prefix}:${minute}`
  }

  /** Counts one SMS sent at `nowMs`. */
  async record(nowMs = Date.now()): Promise<void> {
    await this.#limiter.take(this.#key(Math.floor(nowMs / MINUTE)), 1, COUNTER)
  }

  /** SMS sent in the minute up to `nowMs` (sliding-window estimate). */
  async perMinute(nowMs = Date.now()): Promise<number> {
    const minute = Math.floor(nowMs / MINUTE)
    const [current, previous] = await Promise.all(
      [minute, minute - 1].map(
        async (m) => BIG - (await this.#limiter.take(this.#key(m), 0, COUNTER)).remaining,
      ),
    )
    const elapsed = (nowMs - minute * MINUTE) / MINUTE
    return Math.max(0, current! + previous! * (1 - elapsed))
  }
}

/**
 * The difficulty to announce: `base`, plus one bit per doubling of the SMS load over `loadPerMinute`, at most
 * `max`; 0 when `base` is 0 (proof of work off: old clients cannot solve it, so load alone never turns it on).
 * @param base - `--activation-pow-bits`
 * @param max - `--activation-pow-max-bits`
 * @param load - SMS in the last minute
 * @param loadPerMinute - `--activation-pow-load-per-minute` (0: the difficulty never rises)
 * @returns leading zero bits an `ActivationStart` must prove
 * @example powBitsFor(12, 22, 100, 30) // 12 + ceil(log2(100 / 30)) = 14
 */
export function powBitsFor(base: number, max: number, load: number, loadPerMinute: number): number {
  if (base <= 0) return 0
  const extra = loadPerMinute > 0 && load > loadPerMinute ? Math.ceil(Math.log2(load / loadPerMinute)) : 0
  return Math.min(max, base + extra)
}

/** One relay's SMS guard: its load meter, its current difficulty and the solutions its connections spent. */
export class SmsGuard {
  readonly load: SmsLoad
  readonly #ctx: RelayContext
  #bits: number
  #freshUntil = 0
  #refresh: Promise<number> | undefined
  /** Proof-of-work solutions (digest hex) each connection has had an SMS sent for: each is good once. */
  readonly #spent = new WeakMap<Caller, Set<string>>()

  constructor(ctx: RelayContext) {
    this.#ctx = ctx
    this.load = new SmsLoad(ctx.limiter)
    this.#bits = ctx.config.activationPowBits
  }

  /** The difficulty a new connection's `ServerHello` announces (refreshed from the load at most once a second). */
  async powBits(nowMs = Date.now()): Promise<number> {
    const c = this.#ctx.config
    if (c.activationPowBits <= 0) return 0
    if (nowMs < this.#freshUntil) return this.#bits
    this.#refresh ??= this.load
      .perMinute(nowMs)
      .then(
        (load) => {
          this.#ctx.metrics.smsPerMinute.set(load)
          return powBitsFor(c.activationPowBits, c.activationPowMaxBits, load, c.activationPowLoadPerMinute)
        },
        (err: unknown) => {
          // The limiter is unreachable: keep announcing what was last announced (activation fails anyway).
          this.#ctx.log.warn({ err: { type: (err as Error)?.name } }, 'SMS load unavailable')
          return this.#bits
        },
      )
      .then((bits) => {
        this.#bits = bits
        this.#freshUntil = Date.now() + LOAD_CACHE_MS
        this.#refresh = undefined
        this.#ctx.metrics.activationPowBits.set(bits)
        return bits
      })
    return this.#refresh
  }

  /** Counts an SMS sent; the next `ServerHello` reads the load again. */
  async smsSent(): Promise<void> {
    this.#ctx.metrics.smsSent.inc()
    this.#freshUntil = 0
    // The SMS is gone already: a limiter failure here must not fail the activation.
    await this.load.record().catch((err: unknown) => {
      this.#ctx.log.warn({ err: { type: (err as Error)?.name } }, 'SMS load not recorded')
    })
  }

  /** Whether `conn` already had an SMS sent for this proof of work. */
  spent(conn: Caller, digestHex: string): boolean {
    return this.#spent.get(conn)?.has(digestHex) ?? false
  }

  /** Marks a proof of work as used by `conn`. */
  spend(conn: Caller, digestHex: string): void {
    const set = this.#spent.get(conn) ?? new Set<string>()
    this.#spent.set(conn, set)
    set.add(digestHex)
  }
}

const guards = new WeakMap<RelayContext, SmsGuard>()

/** The {@link SmsGuard} of a relay (one per context, so in-process relays stay apart). */
export function smsGuard(ctx: RelayContext): SmsGuard {
  const g = guards.get(ctx) ?? new SmsGuard(ctx)
  guards.set(ctx, g)
  return g
}
