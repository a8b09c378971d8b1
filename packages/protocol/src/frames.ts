/**
 * Encoding and decoding of the v1 wire frames (docs/architecture.md §3), with size limits and strict error mapping:
 * whatever bytes arrive, the result is either a complete frame or a {@link ParleyError} — never another
 * exception and never a partly filled object.
 * @module
 */
import { type ErrorCode, errorCodeFromWire, errorCodeToWire, ParleyError } from './errors.js'
import { messages } from './gen/schema.js'
import type * as wire from './gen/types.js'
import { ErrorCode as WireErrorCodes, GapReason as WireGapReason } from './gen/types.js'
import { decodeMessage, encodeMessage, type MessageName, RepeatedLimitError } from './internal/pb.js'

/** Protocol major version spoken by this package; the relay refuses another major. */
export const PROTOCOL_MAJOR = 1
/** Protocol minor version; fields are only ever added within a major. */
export const PROTOCOL_MINOR = 0

/** Default limits (docs/architecture.md §3), also the relay's defaults. */
export const DEFAULT_LIMITS = {
  /** Largest frame accepted, either direction: 320 KiB. */
  maxFrameBytes: 320 * 1024,
  /** Largest sealed envelope: 256 KiB (Signal's limit). */
  maxEnvelopeBytes: 256 * 1024,
  /** Most numbers in one discovery batch. */
  maxDiscoveryBatch: 500,
  /** Most messages waiting in one device's mailbox. */
  maxMailboxMessages: 10_000,
  /** Message time-to-live: 30 days. */
  messageTtlSeconds: 30 * 24 * 3600,
  /** Bits of an address sent in a membership query. */
  membershipPrefixBits: 16,
  /** Most prekeys in one upload. */
  maxPrekeysPerUpload: 200,
} as const

/**
 * A decoded client → relay frame: exactly one body is set, and `body` names it, so `if (frame.body ===
 * 'sendMessage')` narrows `frame.sendMessage` to a set `SendMessage` (a discriminated union on `body`).
 */
export type ClientFrame = {
  /** Chosen by the client, echoed in the response: a non-zero u32 (0 when absent, which the relay refuses). */
  requestId: number
} & wire.ClientFrameBody
/** A decoded relay → client frame: exactly one body is set, and `body` names it (a discriminated union). */
export type ServerFrame = {
  /**
   * The id of the request this answers; 0 on a push (`Delivery`, `MailboxGap`, `DeviceReplaced`) and on an error
   * that answers no request.
   */
  requestId: number
} & wire.ServerFrameBody
/** The name of a client frame's body. */
export type ClientBody = keyof wire.ClientFrameBodyMembers
/** The name of a server frame's body. */
export type ServerBody = keyof wire.ServerFrameBodyMembers
/** The decoded body of client frame `B`, e.g. `ClientBodyOf<'sendMessage'>` is `SendMessage`. */
export type ClientBodyOf<B extends ClientBody> = wire.ClientFrameBodyMembers[B]
/** The decoded body of server frame `B`, e.g. `ServerBodyOf<'delivery'>` is `Delivery`. */
export type ServerBodyOf<B extends ServerBody> = wire.ServerFrameBodyMembers[B]
/** The input to {@link encodeClientFrame}: a request id and one body. */
export type ClientFrameInput = wire.ClientFrameInput
/** The input to {@link encodeServerFrame}: a request id (0 for pushes) and one body. */
export type ServerFrameInput = wire.ServerFrameInput

/** Wire `ErrorCode` and `GapReason` enums, as generated from the schema. */
export const WireErrorCode = WireErrorCodes
/** Why mail is missing from a mailbox. */
export const GapReason = WireGapReason

function encodeFrame<T extends object>(
  type: MessageName,
  frame: T,
  maxBytes: number,
  what: string,
): Uint8Array {
  const body = (frame as { body?: string } & Record<string, unknown>) ?? {}
  const set = Object.keys(body).filter((k) => k !== 'requestId' && k !== 'body' && body[k] != null)
  if (set.length !== 1) throw new TypeError(`${what} must have exactly one body, got ${set.length}`)
  const bytes = encodeMessage(type, frame)
  if (bytes.length > maxBytes) {
    throw new ParleyError('TOO_LARGE', `${what} is ${bytes.length} bytes, over the ${maxBytes}-byte limit`)
  }
  return bytes
}

/** Copies a decoded frame into plain objects, depth first (dropping `$unknowns`, which is not enumerable). */
function normalize(value: unknown, depth: number): unknown {
  if (depth > 32) throw new ParleyError('BAD_REQUEST', 'frame nests too deeply')
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value
  if (Array.isArray(value)) return value.map((v) => normalize(v, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k] = normalize(v, depth + 1)
  return out
}

function decodeFrame(
  type: 'ClientFrame' | 'ServerFrame',
  bytes: Uint8Array,
  maxBytes: number,
  what: string,
  maxRepeated?: number,
): unknown {
  if (!(bytes instanceof Uint8Array)) throw new ParleyError('BAD_REQUEST', `${what} must be binary`)
  if (bytes.length > maxBytes) {
    throw new ParleyError('TOO_LARGE', `${what} is ${bytes.length} bytes, over the ${maxBytes}-byte limit`)
  }
  let decoded: { body?: string; $unknowns?: unknown[] }
  try {
    // Keep unknown fields so that an unknown body is told from a missing one.
    decoded = decodeMessage(type, bytes, { keepUnknown: true, maxRepeated })
  } catch (err) {
    if (err instanceof RepeatedLimitError) {
      throw new ParleyError('TOO_LARGE', `${what}: at most ${err.limit} entries per repeated field`)
    }
    throw new ParleyError('BAD_REQUEST', `${what} is malformed`, { cause: err })
  }
  if (decoded.body === undefined) {
    if (decoded.$unknowns !== undefined && decoded.$unknowns.length > 0) {
      throw new ParleyError('UNSUPPORTED', `${what} has a body type this version does not know`)
    }
    throw new ParleyError('BAD_REQUEST', `${what} has no body`)
  }
  const frame = normalize(decoded, 0) as Record<string, unknown>
  frame.body = decoded.body
  frame.requestId = typeof frame.requestId === 'number' ? frame.requestId : 0
  return frame
}

/**
 * Encodes a client → relay frame.
 * @param frame - `{ requestId, <body>: {...} }` with exactly one body
 * @param maxBytes - size limit (default 320 KiB)
 * @returns the frame's bytes
 * @throws TypeError when not exactly one body is set; ParleyError `TOO_LARGE` over the limit
 * @example const bytes = encodeClientFrame({ requestId: 1, hello: { protocolMajor: 1, protocolMinor: 0 } })
 */
export function encodeClientFrame(
  frame: ClientFrameInput,
  maxBytes: number = DEFAULT_LIMITS.maxFrameBytes,
): Uint8Array {
  return encodeFrame('ClientFrame', frame, maxBytes, 'client frame')
}

/** Options of {@link decodeClientFrame}. */
export interface ClientFrameDecodeOptions {
  /**
   * Most entries of any repeated field (prekeys, OPRF elements, prefixes, acked sequence numbers): decoding
   * stops with `TOO_LARGE` at the first entry beyond, so a frame packed with tiny entries costs no more than
   * this many. Default: no limit beyond `maxBytes`.
   */
  maxRepeated?: number
}

/**
 * Decodes a client → relay frame.
 * @param bytes - the received bytes
 * @param maxBytes - size limit (default 320 KiB)
 * @param options - `maxRepeated`: stop early on a repeated field with more entries
 * @returns the frame; `frame.body` names the one body that is set
 * @throws ParleyError `TOO_LARGE` (over `maxBytes` or `maxRepeated`), `BAD_REQUEST` (malformed, truncated, no
 *   body) or `UNSUPPORTED` (unknown body)
 * @example const frame = decodeClientFrame(bytes); if (frame.body === 'ping') ...
 */
export function decodeClientFrame(
  bytes: Uint8Array,
  maxBytes: number = DEFAULT_LIMITS.maxFrameBytes,
  options: ClientFrameDecodeOptions = {},
): ClientFrame {
  return decodeFrame('ClientFrame', bytes, maxBytes, 'client frame', options.maxRepeated) as ClientFrame
}

/**
 * The value of a decoded frame's one body (`frame[frame.body]`), for code that routes frames by `body` without
 * narrowing each case itself.
 * @example const request = frameBody(frame) // the SendMessage of a sendMessage frame
 */
export function frameBody(frame: ClientFrame): ClientBodyOf<ClientBody>
export function frameBody(frame: ServerFrame): ServerBodyOf<ServerBody>
export function frameBody(frame: ClientFrame | ServerFrame): unknown {
  return (frame as unknown as Record<string, unknown>)[frame.body]
}

/**
 * The body of a decoded frame when it is the one named, else undefined: `frameBodyOf(frame, 'prekeyBundle')` is
 * a `PrekeyBundle` or undefined, typed so, for code that expects one body in answer to a request.
 * @example const bundle = frameBodyOf(reply, 'prekeyBundle') ?? fail()
 */
export function frameBodyOf<B extends ClientBody>(frame: ClientFrame, name: B): ClientBodyOf<B> | undefined
export function frameBodyOf<B extends ServerBody>(frame: ServerFrame, name: B): ServerBodyOf<B> | undefined
export function frameBodyOf(frame: ClientFrame | ServerFrame, name: string): unknown {
  return frame.body === name ? (frame as unknown as Record<string, unknown>)[name] : undefined
}

/** Body names of `ClientFrame` by field number (built on first use, so that bundles without it drop it). */
let clientBodies: Map<number, ClientBody> | undefined
const clientBodyNames = () =>
  (clientBodies ??= new Map(
    messages.ClientFrame!.filter((f) => f[4] === 'body').map((f) => [f[0], f[1] as ClientBody]),
  ))

/** Reads a varint at `at` (below 2^53); undefined when truncated or too long. */
function peekVarint(b: Uint8Array, at: number): [value: number, next: number] | undefined {
  let value = 0
  let scale = 1
  for (let i = 0; i < 8 && at + i < b.length; i++) {
    const byte = b[at + i]!
    value += (byte & 0x7f) * scale
    if (byte < 0x80) return [value, at + i + 1]
    scale *= 128
  }
  return undefined
}

/**
 * What a client frame is, read from its top-level fields only — without decoding any body, so it costs the
 * same for a 20-byte ping and a 320 KiB upload. A relay uses it to refuse a frame it would refuse anyway
 * (e.g. an authenticated-only body on a connection that has not authenticated) before paying for the decode.
 * @param bytes - the received bytes
 * @returns the request id (0 when absent) and the body name of the last body field (undefined when none or
 *   unknown), or undefined when the top level is not well-formed protobuf
 * @example
 * const peek = peekClientFrame(bytes)
 * if (peek?.body === 'prekeyUpload' && !authenticated) refuse(peek.requestId)
 */
export function peekClientFrame(bytes: Uint8Array):
  | {
      /** The frame's `request_id`, 0 when absent. */
      requestId: number
      /** The name of the last body field; absent when there is none or its field number is unknown. */
      body?: ClientBody
    }
  | undefined {
  let at = 0
  let requestId = 0
  let body: ClientBody | undefined
  while (at < bytes.length) {
    const tag = peekVarint(bytes, at)
    if (!tag) return undefined
    const [key, afterTag] = tag
    const no = Math.floor(key / 8)
    const wireType = key % 8
    if (no === 0) return undefined
    if (wireType === 0) {
      const v = peekVarint(bytes, afterTag)
      if (!v) return undefined
      if (no === 1) requestId = v[0] % 2 ** 32
      at = v[1]
    } else if (wireType === 2) {
      const len = peekVarint(bytes, afterTag)
      if (!len || len[1] + len[0] > bytes.length) return undefined
      const name = clientBodyNames().get(no)
      if (name !== undefined) body = name
      at = len[1] + len[0]
    } else if (wireType === 1 || wireType === 5) {
      at = afterTag + (wireType === 1 ? 8 : 4)
      if (at > bytes.length) return undefined
    } else return undefined
  }
  return body === undefined ? { requestId } : { requestId, body }
}

/**
 * Encodes a relay → client frame.
 * @example const bytes = encodeServerFrame({ requestId: 0, pong: { serverTimeMs: Date.now() } })
 * @throws TypeError when not exactly one body is set; ParleyError `TOO_LARGE` over the limit
 */
export function encodeServerFrame(
  frame: ServerFrameInput,
  maxBytes: number = DEFAULT_LIMITS.maxFrameBytes,
): Uint8Array {
  return encodeFrame('ServerFrame', frame, maxBytes, 'server frame')
}

/**
 * Decodes a relay → client frame.
 * @example const frame = decodeServerFrame(bytes); if (frame.body === 'error') throw parleyErrorFromWire(frame.error!)
 * @throws ParleyError `TOO_LARGE`, `BAD_REQUEST` or `UNSUPPORTED`
 */
export function decodeServerFrame(
  bytes: Uint8Array,
  maxBytes: number = DEFAULT_LIMITS.maxFrameBytes,
): ServerFrame {
  return decodeFrame('ServerFrame', bytes, maxBytes, 'server frame') as ServerFrame
}

/** The wire form of an error: what goes in `ServerFrame.error`. */
export interface WireError {
  /** The wire `ErrorCode` number ({@link errorCodeToWire}); SDK-only codes travel as `INTERNAL`. */
  code: number
  /** Human-readable; never a number, a code or key material. `'internal error'` for a non-Parley error. */
  message: string
  /**
   * Milliseconds to wait before retrying (`RATE_LIMITED`, `UNAVAILABLE`; with `REGISTRATION_LOCKED`, until a PIN
   * may be tried again), rounded up and capped at 2^32 − 1; 0 when none.
   */
  retryAfterMs: number
  /** With REGISTRATION_LOCKED. */
  registrationLock?: {
    /** The lock's scrypt salt (16 bytes, chosen by the device that set the lock). */
    salt: Uint8Array
    /** The lock's scrypt cost: N = 2^logN, 14–17. */
    logN: number
    /** PIN guesses left now; 0: none until `retryAfterMs`. */
    attemptsLeft: number
    /** Milliseconds from now until the lock lapses if the account stays inactive (rounded up). */
    lapsesInMs: number
  }
  /** With STALE_DEVICES: the recipient's current device list version. */
  deviceListVersion?: number
}

/**
 * Turns a wire `Error` body into a {@link ParleyError} with the same code.
 * @example if (frame.body === 'error') throw parleyErrorFromWire(frame.error!)
 */
export function parleyErrorFromWire(err: {
  code?: number | null
  message?: string | null
  retryAfterMs?: number | null
  registrationLock?: {
    salt?: Uint8Array | null
    logN?: number | null
    attemptsLeft?: number | null
    lapsesInMs?: number | null
  } | null
  deviceListVersion?: number | null
}): ParleyError {
  const code: ErrorCode = errorCodeFromWire(err.code ?? 0)
  const retryAfterMs = err.retryAfterMs ? err.retryAfterMs : undefined
  const lock = err.registrationLock
  const registrationLock =
    code === 'REGISTRATION_LOCKED' && lock && lock.salt instanceof Uint8Array
      ? {
          salt: lock.salt,
          logN: lock.logN ?? 0,
          attemptsLeft: lock.attemptsLeft ?? 0,
          lapsesInMs: lock.lapsesInMs ?? 0,
        }
      : undefined
  const deviceListVersion = code === 'STALE_DEVICES' ? (err.deviceListVersion ?? 0) : undefined
  return new ParleyError(code, err.message || code, { retryAfterMs, registrationLock, deviceListVersion })
}

/**
 * Turns any error into a wire `Error` body. Non-Parley errors become `INTERNAL` with a generic message, so
 * that internal details (which may hold secrets) never reach the wire.
 * @example send(encodeServerFrame({ requestId, error: wireErrorFrom(err) }))
 */
export function wireErrorFrom(err: unknown): WireError {
  if (!ParleyError.is(err))
    return { code: errorCodeToWire('INTERNAL'), message: 'internal error', retryAfterMs: 0 }
  const wire: WireError = {
    code: errorCodeToWire(err.code),
    message: err.message,
    retryAfterMs:
      err.retryAfterMs === undefined ? 0 : Math.max(0, Math.min(0xffffffff, Math.ceil(err.retryAfterMs))),
  }
  const lock = err.registrationLock
  if (err.code === 'REGISTRATION_LOCKED' && lock) {
    wire.registrationLock = {
      salt: lock.salt,
      logN: lock.logN,
      attemptsLeft: lock.attemptsLeft,
      lapsesInMs: Math.max(0, Math.ceil(lock.lapsesInMs)),
    }
  }
  if (err.code === 'STALE_DEVICES' && err.deviceListVersion !== undefined) {
    wire.deviceListVersion = err.deviceListVersion
  }
  return wire
}
