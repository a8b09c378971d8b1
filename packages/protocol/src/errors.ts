/**
 * The one error type of Parley, shared by the wire protocol, the relay and the SDKs.
 *
 * Callers branch on `err.code`, never on the message text. Messages never contain a phone number,
 * a verification code or key material.
 * @module
 */

/**
 * Every error code Parley uses. The first group travels on the wire (`parley.v1.ErrorCode`, same order);
 * the second is raised only inside an SDK.
 */
export const ERROR_CODES = {
  /** The request is malformed: undecodable frame, missing field, wrong length. */
  BAD_REQUEST: 1,
  /** The connection has not authenticated, or the signature did not verify. */
  UNAUTHENTICATED: 2,
  /** A quota was exhausted; see `retryAfterMs`. */
  RATE_LIMITED: 3,
  /** A frame, envelope or batch exceeds a limit. */
  TOO_LARGE: 4,
  /** The address, activation or prekey bundle does not exist. */
  NOT_FOUND: 5,
  /** The request conflicts with current state (e.g. a stale device id). */
  CONFLICT: 6,
  /** Unknown protocol version or frame type. */
  UNSUPPORTED: 7,
  /** The relay failed; nothing was stored. */
  INTERNAL: 8,
  /** Not a valid phone number for the given region. */
  INVALID_NUMBER: 9,
  /** The verification code is wrong. */
  INVALID_CODE: 10,
  /** The verification code or activation has expired. */
  EXPIRED: 11,
  /** Authenticated, but not allowed to touch this resource. */
  FORBIDDEN: 12,
  /** The relay is shutting down or overloaded; try again later. */
  UNAVAILABLE: 13,
  /**
   * The recipient's mailbox holds as much unread mail as the relay allows (by bytes), or the relay's disk is
   * nearly full: nothing was stored, and no older mail was pushed out to make room. Try again later.
   */
  MAILBOX_FULL: 14,
  /**
   * The number's account has a registration lock: activating it on this device needs the account's PIN.
   * `retryAfterMs` says when a PIN may be tried again (0 or absent: now); `registrationLock` how many guesses are
   * left and when the lock lapses if the account stays inactive.
   */
  REGISTRATION_LOCKED: 15,
  /**
   * A multi-device send named other devices than the recipient account has, or an older device list:
   * `deviceListVersion` is the current one. Fetch the list again and send to its devices.
   */
  STALE_DEVICES: 16,
  // ── SDK-only codes (never on the wire) ──
  /** A proof, signature or MAC did not verify: the relay or a peer sent something forged or corrupted. */
  VERIFICATION_FAILED: 100,
  /** A message could not be decrypted (tampered, unknown session, too far ahead). */
  DECRYPT_FAILED: 101,
  /** The message was already received; it is not delivered twice. */
  DUPLICATE: 102,
  /** The call is not valid in the current state (e.g. `send()` before activation). */
  INVALID_STATE: 103,
  /** The operation was aborted through its `AbortSignal`. */
  ABORTED: 104,
  /** The operation did not complete in time. */
  TIMEOUT: 105,
  /** The client or connection is closed. */
  CLOSED: 106,
  /** The peer's identity key changed; the app must look at the new safety number. */
  IDENTITY_CHANGED: 107,
  /**
   * A received message was refused because its sender is not proven: no sender certificate, one that does not
   * chain to the pinned relay trust root, has expired, or names another identity key, address, device or
   * number than the message claims. Nothing of such a message is shown and no session changes.
   */
  SENDER_UNVERIFIED: 108,
  /**
   * A contact marked verified now has another identity key: messages from it are held and sends to it refused
   * until the app approves the new identity (`approveIdentity`).
   */
  IDENTITY_UNTRUSTED: 109,
} as const

/** A Parley error code, e.g. `'RATE_LIMITED'`. */
export type ErrorCode = keyof typeof ERROR_CODES

const codeByNumber = new Map<number, ErrorCode>(
  (Object.entries(ERROR_CODES) as [ErrorCode, number][]).map(([name, n]) => [n, name]),
)

/** Whether `code` is one of {@link ERROR_CODES}. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code)
}

/**
 * Maps a wire `ErrorCode` number to its name; unknown numbers (from a newer relay) become `'INTERNAL'`.
 * @example errorCodeFromWire(3) // 'RATE_LIMITED'
 */
export function errorCodeFromWire(n: number): ErrorCode {
  const code = codeByNumber.get(n)
  return code !== undefined && ERROR_CODES[code] < 100 ? code : 'INTERNAL'
}

/**
 * Maps an error code to its wire number. SDK-only codes have no wire form and map to `INTERNAL`.
 * @example errorCodeToWire('TOO_LARGE') // 4
 */
export function errorCodeToWire(code: ErrorCode): number {
  const n = ERROR_CODES[code]
  return n < 100 ? n : ERROR_CODES.INTERNAL
}

/** Options of {@link ParleyError}. */
export interface ParleyErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown
  /** With `RATE_LIMITED` or `UNAVAILABLE`: milliseconds to wait before retrying. */
  retryAfterMs?: number
  /** With `REGISTRATION_LOCKED`: how to prove the PIN, and how many guesses are left. */
  registrationLock?: RegistrationLockChallenge
  /** With `STALE_DEVICES`: the version of the recipient's current device list. */
  deviceListVersion?: number
}

/** What a relay says about a registration lock it refused an activation for (`REGISTRATION_LOCKED`). */
export interface RegistrationLockChallenge {
  /** The lock's scrypt salt. */
  salt: Uint8Array
  /** The lock's scrypt cost (N = 2^logN). */
  logN: number
  /** PIN guesses left now; 0: none until `retryAfterMs`. */
  attemptsLeft: number
  /** Milliseconds until the lock lapses, if the account stays inactive that long. */
  lapsesInMs: number
}

/**
 * An error with a machine-readable {@link ErrorCode}.
 *
 * @example
 * try { await parley.discover(numbers) } catch (err) {
 *   if (err instanceof ParleyError && err.code === 'RATE_LIMITED') setTimeout(retry, err.retryAfterMs)
 * }
 */
export class ParleyError extends Error {
  /** What went wrong, from {@link ERROR_CODES}. */
  readonly code: ErrorCode
  /** When set, the earliest time to retry, in milliseconds from now. */
  readonly retryAfterMs: number | undefined
  /** Set with `REGISTRATION_LOCKED`: guesses left, when the lock lapses, and how to prove the PIN. */
  readonly registrationLock: RegistrationLockChallenge | undefined
  /** Set with `STALE_DEVICES`: the version of the recipient's current device list. */
  readonly deviceListVersion: number | undefined

  /**
   * @param code - one of {@link ERROR_CODES}
   * @param message - a human-readable explanation; must not contain numbers, codes or keys
   * @param options - `cause`, `retryAfterMs`, `registrationLock` and `deviceListVersion`
   */
  constructor(code: ErrorCode, message: string, options: ParleyErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ParleyError'
    this.code = code
    this.retryAfterMs = options.retryAfterMs
    this.registrationLock = options.registrationLock
    this.deviceListVersion = options.deviceListVersion
  }

  /**
   * Turns anything thrown into a `ParleyError`: a `ParleyError` is returned as is, anything else becomes
   * `INTERNAL` with the original as `cause`.
   * @example ParleyError.fromUnknown(new Error('boom')).code // 'INTERNAL'
   */
  static fromUnknown(err: unknown, fallback: ErrorCode = 'INTERNAL'): ParleyError {
    if (err instanceof ParleyError) return err
    const message = err instanceof Error ? err.message : 'unexpected failure'
    return new ParleyError(fallback, message, { cause: err })
  }

  /** Whether `err` is a `ParleyError`, optionally with the given code (works across package copies). */
  static is(err: unknown, code?: ErrorCode): err is ParleyError {
    if (typeof err !== 'object' || err === null) return false
    const e = err as { name?: unknown; code?: unknown }
    return e.name === 'ParleyError' && isErrorCode(e.code) && (code === undefined || e.code === code)
  }
}
