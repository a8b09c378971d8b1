/**
 * The rate-limit port (docs/architecture.md §4, §7): token buckets keyed by strings such as `oprf:acct:<hex>` or
 * `code:<keyed hash of a number>`. Keys never contain a phone number. In-memory by default; a Redis
 * implementation shares buckets across nodes.
 * @module
 */
import type { BucketPolicy } from './config.js'

/** The outcome of taking tokens. */
export interface RateLimitResult {
  allowed: boolean
  /** Tokens left after this take (whole tokens). */
  remaining: number
  /** When refused: how long until `cost` tokens are available. */
  retryAfterMs: number
}

/** The rate-limit port. */
export interface RateLimiter {
  /**
   * Takes `cost` tokens from the bucket `key` (created full on first use) if it has them.
   * @returns whether it had them, and if not, when it will
   */
  take(key: string, cost: number, policy: BucketPolicy, nowMs?: number): Promise<RateLimitResult>
  /** Forgets a bucket (e.g. on deactivation: quota rows are erased with the account). */
  reset(key: string): Promise<void>
  /** Releases resources. */
  close(): Promise<void>
}

/** A bucket as {@link MemoryRateLimiter.snapshot} saves it. */
export interface SavedBucket {
  key: string
  tokens: number
  updatedMs: number
  policy: BucketPolicy
}

interface Bucket {
  tokens: number
  updatedMs: number
  policy: BucketPolicy
}

/** In-memory {@link RateLimiter} with continuously refilling token buckets. */
export class MemoryRateLimiter implements RateLimiter {
  readonly #buckets = new Map<string, Bucket>()
  readonly #maxBuckets: number

  /** @param maxBuckets - when exceeded, full buckets are dropped (a missing bucket is a full one) */
  constructor(maxBuckets = 1_000_000) {
    this.#maxBuckets = maxBuckets
  }

  #refill(b: Bucket, nowMs: number): void {
    const rate = b.policy.refillTokens / b.policy.refillIntervalMs
    b.tokens = Math.min(b.policy.capacity, b.tokens + Math.max(0, nowMs - b.updatedMs) * rate)
    b.updatedMs = nowMs
  }

  async take(key: string, cost: number, policy: BucketPolicy, nowMs = Date.now()): Promise<RateLimitResult> {
    let b = this.#buckets.get(key)
    if (!b) {
      if (this.#buckets.size >= this.#maxBuckets) this.sweep(nowMs)
      b = { tokens: policy.capacity, updatedMs: nowMs, policy }
      this.#buckets.set(key, b)
    }
    b.policy = policy
    this.#refill(b, nowMs)
    if (b.tokens >= cost) {
      b.tokens -= cost
      return { allowed: true, remaining: Math.floor(b.tokens), retryAfterMs: 0 }
    }
    const rate = policy.refillTokens / policy.refillIntervalMs
    const retryAfterMs =
      cost > policy.capacity || rate <= 0 ? policy.refillIntervalMs : Math.ceil((cost - b.tokens) / rate)
    return { allowed: false, remaining: Math.floor(b.tokens), retryAfterMs }
  }

  async reset(key: string): Promise<void> {
    this.#buckets.delete(key)
  }

  /** Drops buckets that have refilled completely; they behave exactly like missing ones. */
  sweep(nowMs = Date.now()): void {
    for (const [key, b] of this.#buckets) {
      this.#refill(b, nowMs)
      if (b.tokens >= b.policy.capacity) this.#buckets.delete(key)
    }
  }

  /** Number of buckets held. */
  get size(): number {
    return this.#buckets.size
  }

  /**
   * The buckets that are not full, to be saved (see {@link MemoryRateLimiter.restore}); full ones need no saving.
   * Keys are what callers gave `take`: keyed hashes and network names, never a number or an address.
   */
  snapshot(nowMs = Date.now()): SavedBucket[] {
    this.sweep(nowMs)
    return [...this.#buckets].map(([key, b]) => ({
      key,
      tokens: b.tokens,
      updatedMs: b.updatedMs,
      policy: b.policy,
    }))
  }

  /** Takes back buckets from {@link MemoryRateLimiter.snapshot}; malformed entries are skipped. */
  restore(saved: readonly SavedBucket[]): number {
    let n = 0
    for (const e of saved) {
      const p = e?.policy
      if (
        typeof e?.key !== 'string' ||
        !Number.isFinite(e.tokens) ||
        !Number.isFinite(e.updatedMs) ||
        !(p?.capacity > 0 && p.refillTokens >= 0 && p.refillIntervalMs > 0)
      ) {
        continue
      }
      this.#buckets.set(e.key, {
        tokens: Math.max(0, Math.min(p.capacity, e.tokens)),
        updatedMs: e.updatedMs,
        policy: p,
      })
      n++
    }
    return n
  }

  async close(): Promise<void> {
    this.#buckets.clear()
  }
}
