/**
 * Exponential backoff across requests, composed from two {@link RateLimiter} buckets, so it lives wherever the
 * limiter keeps its buckets (in memory and `quotas.json` on one node, in Redis for a cluster) and needs no new
 * port method:
 * - `<key>:n` counts the earlier requests: a bucket of {@link BACKOFF_STEPS} tokens, one taken per allowed
 *   request, refilling one per `forgetMs` (so an earlier request is forgotten after `forgetMs`, one at a time);
 * - `<key>:t` is the gate: one token, refilling over the wait the *next* request owes. A request is allowed when
 *   the token is back, i.e. when that wait has passed since the previous allowed request.
 * With `previous` earlier requests still counted, a request must wait `baseMs × 2^(previous − 1)` (capped at
 * `maxMs`) since the previous allowed one: with base 30 s, the waits are 0, 30 s, 60 s, 120 s, … 1 h.
 * The gate's take is atomic in every limiter, so concurrent requests (on any node) let exactly one through.
 * {@link resetBackoff} forgets a key (the relay does so once a number's activation completed: its owner is back).
 * @module
 */
import type { RateLimiter, RateLimitResult } from './RateLimiter.js'

/** How a {@link takeBackoff} key backs off. */
export interface BackoffPolicy {
  /** Wait before the second request; each further request waits twice as long as the one before. 0: off. */
  baseMs: number
  /** Longest wait. */
  maxMs: number
  /** How long until one earlier request stops counting (they are forgotten one at a time). */
  forgetMs: number
}

/** Most earlier requests counted (more would not lengthen a wait capped at any sensible `maxMs`). */
export const BACKOFF_STEPS = 32

/** The result of {@link takeBackoff}: a rate-limit result, and how many earlier requests were counted. */
export interface BackoffResult extends RateLimitResult {
  /** Earlier requests still counted when this one arrived (0 for the first). */
  previous: number
}

/**
 * The wait a request owes after `previous` earlier ones: 0, then `baseMs × 2^(previous − 1)`, at most `maxMs`.
 * @param previous - earlier requests still counted
 * @param policy - the backoff policy
 * @returns milliseconds since the previous allowed request
 */
export function backoffWaitMs(previous: number, policy: BackoffPolicy): number {
  if (previous <= 0 || policy.baseMs <= 0) return 0
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(previous - 1, BACKOFF_STEPS))
}

const countPolicy = (p: BackoffPolicy) => ({
  capacity: BACKOFF_STEPS,
  refillTokens: 1,
  refillIntervalMs: Math.max(1, p.forgetMs),
})
// A gate that refills over `waitMs`; 1 ms stands for "no wait" (a bucket needs a positive interval).
const gatePolicy = (waitMs: number) => ({
  capacity: 1,
  refillTokens: 1,
  refillIntervalMs: Math.max(1, waitMs),
})

/**
 * Asks whether a request under `key` may go ahead now, and records it if so.
 * @param limiter - where the two buckets live
 * @param key - the requester, e.g. `code:bo:<keyed hash of the number>` (never a number)
 * @param policy - the backoff policy
 * @param nowMs - the clock (tests); default the limiter's own
 * @returns `allowed`, or `retryAfterMs` until the wait has passed; `previous` earlier requests were counted
 */
export async function takeBackoff(
  limiter: RateLimiter,
  key: string,
  policy: BackoffPolicy,
  nowMs?: number,
): Promise<BackoffResult> {
  if (policy.baseMs <= 0) return { allowed: true, remaining: 0, retryAfterMs: 0, previous: 0 }
  const counter = countPolicy(policy)
  // A zero-cost take reads the counter without spending anything.
  const read = await limiter.take(`${key}:n`, 0, counter, nowMs)
  const previous = Math.max(0, BACKOFF_STEPS - read.remaining)
  const gate = await limiter.take(`${key}:t`, 1, gatePolicy(backoffWaitMs(previous, policy)), nowMs)
  if (!gate.allowed) return { allowed: false, remaining: 0, retryAfterMs: gate.retryAfterMs, previous }
  // Allowed: count it (a full counter stays full: the wait is capped anyway), then re-file the emptied gate
  // under the wait the next request will owe, so it is not dropped (as full) before that wait has passed.
  await limiter.take(`${key}:n`, 1, counter, nowMs)
  await limiter.take(`${key}:t`, 0, gatePolicy(backoffWaitMs(previous + 1, policy)), nowMs)
  return { allowed: true, remaining: 0, retryAfterMs: 0, previous }
}

/**
 * Forgets a key's backoff: its next request is treated as a first one.
 * @param limiter - where the buckets live
 * @param key - as given to {@link takeBackoff}
 */
export async function resetBackoff(limiter: RateLimiter, key: string): Promise<void> {
  await Promise.all([limiter.reset(`${key}:n`), limiter.reset(`${key}:t`)])
}
