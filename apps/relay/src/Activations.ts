/**
 * Pending activations, in memory only (docs/architecture.md §5, P4): the number is held for the code's lifetime and then
 * dropped; nothing about a pending activation is ever written to disk. Codes are compared in constant time.
 * @module
 */
import { createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto'
import { ParleyError } from '@parley/protocol'

interface Pending {
  /** E.164; set to null once the activation completes, expires or is locked. */
  number: string | null
  code: Buffer
  expiresAtMs: number
  attemptsLeft: number
}

/** A started activation, as announced to the client. */
export interface StartedActivation {
  activationId: Uint8Array
  activationIdHex: string
  code: string
  expiresInSeconds: number
  attemptsLeft: number
}

/**
 * Pending activations: held by one process ({@link Activations}, the default) or shared by every node through
 * Redis (`RedisActivations`, with `--redis`). Methods may answer synchronously or with a promise.
 */
export interface PendingActivations {
  /** Keyed hash of a number (hex), for rate limits; equal on every node that shares the hash key. */
  numberKey(e164: string): string
  /** Creates a pending activation with a fresh 6-digit code. */
  start(e164: string): StartedActivation | Promise<StartedActivation>
  /** Forgets a pending activation. */
  cancel(activationIdHex: string): void | Promise<void>
  /**
   * The {@link PendingActivations.numberKey} of a pending activation's number, to charge per-number quotas
   * before its code is checked; undefined when the activation is unknown, completed, expired or locked.
   */
  numberKeyOf(activationIdHex: string): string | undefined | Promise<string | undefined>
  /** Checks a code; on success consumes the activation and returns its number. */
  confirm(activationIdHex: string, code: string): string | Promise<string>
  /**
   * Checks a code as {@link PendingActivations.confirm} does (a wrong one spends an attempt) but keeps the
   * activation pending, for a second step (the registration lock's PIN) before it is consumed.
   */
  check(activationIdHex: string, code: string): string | Promise<string>
  /** Drops what has expired (a no-op where the engine expires entries itself). */
  sweep(): void
  /** Forgets what this node holds (on shutdown). */
  clear(): void
}

/**
 * Keyed hash of a number (hex): a stable rate-limit key that reveals nothing without the key.
 * @param hashKey - the `--number-hash-key` bytes
 * @param e164 - the normalised number
 */
export function keyedNumberHash(hashKey: Uint8Array, e164: string): string {
  return createHmac('sha256', hashKey).update('parley/relay/number\0').update(e164).digest('hex')
}

/**
 * A new activation: a random 16-byte id and a fresh 6-digit code, valid for `ttlMs` with `attempts` wrong codes
 * allowed. Both implementations of {@link PendingActivations} start with it, then hold it their own way.
 */
export function newActivation(ttlMs: number, attempts: number): StartedActivation {
  const activationId = new Uint8Array(randomBytes(16))
  return {
    activationId,
    activationIdHex: Buffer.from(activationId).toString('hex'),
    code: randomInt(0, 1_000_000).toString().padStart(6, '0'),
    expiresInSeconds: Math.floor(ttlMs / 1000),
    attemptsLeft: attempts,
  }
}

/** Why a code is refused ({@link PendingActivations.check}): the same errors from every implementation. */
export const activationRefusal = {
  /** No such activation (or it was consumed or cancelled). */
  notFound: (): ParleyError => new ParleyError('NOT_FOUND', 'unknown activation; request a new code'),
  /** Locked after too many wrong codes. */
  locked: (): ParleyError => new ParleyError('EXPIRED', 'too many wrong codes; request a new code'),
  /** Past the code's lifetime. */
  expired: (): ParleyError => new ParleyError('EXPIRED', 'the activation has expired; request a new code'),
  /** A wrong code, with `left` attempts left after it. */
  wrongCode: (left: number): ParleyError =>
    new ParleyError(
      'INVALID_CODE',
      left <= 0 ? 'wrong code; no attempts left, request a new code' : `wrong code; ${left} attempts left`,
    ),
}

/** The pending activations of one relay process. */
export class Activations implements PendingActivations {
  readonly #pending = new Map<string, Pending>()
  readonly #hashKey: Buffer
  readonly #ttlMs: number
  readonly #attempts: number
  readonly #max: number

  /**
   * @param options.hashKey - key of the keyed hash used to rate-limit numbers without storing them
   * @param options.ttlSeconds - code lifetime
   * @param options.attempts - wrong codes allowed
   * @param options.max - most pending activations held
   */
  constructor(options: { hashKey: Uint8Array; ttlSeconds: number; attempts: number; max: number }) {
    this.#hashKey = Buffer.from(options.hashKey)
    this.#ttlMs = options.ttlSeconds * 1000
    this.#attempts = options.attempts
    this.#max = options.max
  }

  /** Keyed hash of a number (hex): a stable rate-limit key that reveals nothing without the key. */
  numberKey(e164: string): string {
    return keyedNumberHash(this.#hashKey, e164)
  }

  /**
   * Creates a pending activation with a fresh 6-digit code.
   * @throws ParleyError `UNAVAILABLE` when too many activations are pending
   */
  start(e164: string, nowMs = Date.now()): StartedActivation {
    this.sweep(nowMs)
    if (this.#pending.size >= this.#max) {
      throw new ParleyError('UNAVAILABLE', 'too many pending activations; try again later', {
        retryAfterMs: 60_000,
      })
    }
    const started = newActivation(this.#ttlMs, this.#attempts)
    this.#pending.set(started.activationIdHex, {
      number: e164,
      code: Buffer.from(started.code),
      expiresAtMs: nowMs + this.#ttlMs,
      attemptsLeft: this.#attempts,
    })
    return started
  }

  /** Forgets a pending activation (e.g. when the verifier failed). */
  cancel(activationIdHex: string): void {
    this.#drop(activationIdHex)
  }

  /** The keyed hash of a pending activation's number; undefined when it is unknown, expired or locked. */
  numberKeyOf(activationIdHex: string, nowMs = Date.now()): string | undefined {
    const p = this.#pending.get(activationIdHex)
    if (!p || p.number === null || p.attemptsLeft <= 0 || nowMs >= p.expiresAtMs) return undefined
    return this.numberKey(p.number)
  }

  /**
   * Checks a code. On success the pending activation is consumed and its number returned.
   * @throws ParleyError `NOT_FOUND` (unknown id), `EXPIRED` (too late, or locked after too many wrong codes),
   *   `INVALID_CODE` (wrong; the message says how many attempts are left)
   */
  confirm(activationIdHex: string, code: string, nowMs = Date.now()): string {
    const number = this.check(activationIdHex, code, nowMs)
    this.#drop(activationIdHex)
    return number
  }

  /**
   * Checks a code without consuming the activation.
   * @throws ParleyError as {@link Activations.confirm}
   */
  check(activationIdHex: string, code: string, nowMs = Date.now()): string {
    const p = this.#pending.get(activationIdHex)
    if (!p) throw activationRefusal.notFound()
    if (p.attemptsLeft <= 0) {
      this.#lock(p)
      throw activationRefusal.locked()
    }
    if (p.number === null || nowMs >= p.expiresAtMs) {
      this.#lock(p)
      throw activationRefusal.expired()
    }
    const given = Buffer.from(typeof code === 'string' ? code : '')
    const ok = given.length === p.code.length && timingSafeEqual(given, p.code)
    if (!ok) {
      p.attemptsLeft--
      if (p.attemptsLeft === 0) this.#lock(p)
      throw activationRefusal.wrongCode(p.attemptsLeft)
    }
    return p.number
  }

  /** Keeps a locked or expired entry as a tombstone until its expiry, so the client gets a clear answer. */
  #lock(p: Pending): void {
    p.number = null
    p.code.fill(0)
  }

  #drop(activationIdHex: string): void {
    const p = this.#pending.get(activationIdHex)
    if (!p) return
    p.number = null
    p.code.fill(0)
    this.#pending.delete(activationIdHex)
  }

  /** Drops the numbers of expired activations, and the entries themselves a lifetime later. */
  sweep(nowMs = Date.now()): void {
    for (const [id, p] of this.#pending) {
      if (nowMs >= p.expiresAtMs + this.#ttlMs) this.#drop(id)
      else if (nowMs >= p.expiresAtMs) this.#lock(p)
    }
  }

  /** Pending activations held (including tombstones). */
  get size(): number {
    return this.#pending.size
  }

  /** Forgets everything. */
  clear(): void {
    for (const id of [...this.#pending.keys()]) this.#drop(id)
  }
}
