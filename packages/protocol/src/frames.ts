/**
 * Encoding and decoding of the v1 wire frames (DESIGN.md §3), with size limits and strict error mapping:
 * whatever bytes arrive, the result is either a complete frame or a {@link ParleyError} — never another
 * exception and never a partly filled object.
 * @module
 */
import protobuf from 'protobufjs/minimal.js'
import { type ErrorCode, errorCodeFromWire, errorCodeToWire, ParleyError } from './errors.js'
import { parley } from './gen/parley.js'

const v1 = parley.v1

/** Protocol major version spoken by this package; the relay refuses another major. */
export const PROTOCOL_MAJOR = 1
/** Protocol minor version; fields are only ever added within a major. */
export const PROTOCOL_MINOR = 0

/** Default limits (DESIGN.md §3), also the relay's defaults. */
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

/** Deeply replaces protobufjs' `Long | number` by `number` and drops the generated class identity. */
export type Wire<T> = T extends Uint8Array
  ? Uint8Array
  : T extends protobuf.Long | number
    ? number
    : T extends (infer U)[]
      ? Wire<U>[]
      : T extends object
        ? { [K in keyof T as K extends '$unknowns' ? never : K]: Wire<T[K]> }
        : T

/** A decoded client → relay frame. Exactly one body field is set, named by `body`. */
export type ClientFrame = Wire<parley.v1.ClientFrame.$Properties> & { requestId: number; body: ClientBody }
/** A decoded relay → client frame. Exactly one body field is set, named by `body`. */
export type ServerFrame = Wire<parley.v1.ServerFrame.$Properties> & { requestId: number; body: ServerBody }
/** The name of a client frame's body. */
export type ClientBody = NonNullable<parley.v1.ClientFrame['body']>
/** The name of a server frame's body. */
export type ServerBody = NonNullable<parley.v1.ServerFrame['body']>
/** The input to {@link encodeClientFrame}: a request id and one body. */
export type ClientFrameInput = Wire<parley.v1.ClientFrame.$Properties>
/** The input to {@link encodeServerFrame}: a request id (0 for pushes) and one body. */
export type ServerFrameInput = Wire<parley.v1.ServerFrame.$Properties>

/** Wire `ErrorCode` and `GapReason` enums, as generated from the schema. */
export const WireErrorCode = v1.ErrorCode
/** Why mail is missing from a mailbox. */
export const GapReason = v1.GapReason

interface Codec<T> {
  encode(message: T, writer?: protobuf.Writer): protobuf.Writer
  decode(reader: protobuf.Reader | Uint8Array): unknown
}

function encodeFrame<T>(codec: Codec<T>, frame: T, maxBytes: number, what: string): Uint8Array {
  const body = (frame as { body?: string } & Record<string, unknown>) ?? {}
  const set = Object.keys(body).filter((k) => k !== 'requestId' && k !== 'body' && body[k] != null)
  if (set.length !== 1) throw new TypeError(`${what} must have exactly one body, got ${set.length}`)
  // A plain Writer (not the Node BufferWriter) so the result is a Uint8Array on every platform.
  const bytes = codec.encode(frame, new protobuf.Writer()).finish()
  if (bytes.length > maxBytes) {
    throw new ParleyError('TOO_LARGE', `${what} is ${bytes.length} bytes, over the ${maxBytes}-byte limit`)
  }
  return bytes
}

/** Converts Long values to numbers and Buffers to plain Uint8Arrays, depth first; refuses unsafe integers. */
function normalize(value: unknown, depth: number): unknown {
  if (depth > 32) throw new ParleyError('BAD_REQUEST', 'frame nests too deeply')
  if (value === null || typeof value !== 'object') return value
  if (value instanceof Uint8Array) {
    return value.constructor === Uint8Array
      ? value
      : new Uint8Array(value.buffer, value.byteOffset, value.length)
  }
  if (protobuf.util.isInteger((value as { low?: unknown }).low) && 'high' in value && 'unsigned' in value) {
    const long = value as protobuf.Long
    const n = protobuf.util.LongBits.from(long).toNumber(long.unsigned)
    if (!Number.isSafeInteger(n)) throw new ParleyError('BAD_REQUEST', 'integer field out of range')
    return n
  }
  if (Array.isArray(value)) return value.map((v) => normalize(v, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k] = normalize(v, depth + 1)
  return out
}

function decodeFrame(codec: Codec<unknown>, bytes: Uint8Array, maxBytes: number, what: string): unknown {
  if (!(bytes instanceof Uint8Array)) throw new ParleyError('BAD_REQUEST', `${what} must be binary`)
  if (bytes.length > maxBytes) {
    throw new ParleyError('TOO_LARGE', `${what} is ${bytes.length} bytes, over the ${maxBytes}-byte limit`)
  }
  let decoded: { body?: string; requestId?: unknown; $unknowns?: unknown[] }
  try {
    // Plain Reader over a plain Uint8Array view: bytes fields come back as Uint8Array, not Buffer.
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
    const reader = new protobuf.Reader(view)
    reader.discardUnknown = false // keep unknown fields so an unknown body is told from a missing one
    decoded = codec.decode(reader) as typeof decoded
  } catch (err) {
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
  return encodeFrame(v1.ClientFrame as Codec<ClientFrameInput>, frame, maxBytes, 'client frame')
}

/**
 * Decodes a client → relay frame.
 * @param bytes - the received bytes
 * @param maxBytes - size limit (default 320 KiB)
 * @returns the frame; `frame.body` names the one body that is set
 * @throws ParleyError `TOO_LARGE`, `BAD_REQUEST` (malformed, truncated, no body) or `UNSUPPORTED` (unknown body)
 * @example const frame = decodeClientFrame(bytes); if (frame.body === 'ping') ...
 */
export function decodeClientFrame(
  bytes: Uint8Array,
  maxBytes: number = DEFAULT_LIMITS.maxFrameBytes,
): ClientFrame {
  return decodeFrame(v1.ClientFrame as Codec<unknown>, bytes, maxBytes, 'client frame') as ClientFrame
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
  return encodeFrame(v1.ServerFrame as Codec<ServerFrameInput>, frame, maxBytes, 'server frame')
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
  return decodeFrame(v1.ServerFrame as Codec<unknown>, bytes, maxBytes, 'server frame') as ServerFrame
}

/** The wire form of an error: what goes in `ServerFrame.error`. */
export interface WireError {
  code: number
  message: string
  retryAfterMs: number
}

/**
 * Turns a wire `Error` body into a {@link ParleyError} with the same code.
 * @example if (frame.body === 'error') throw parleyErrorFromWire(frame.error!)
 */
export function parleyErrorFromWire(err: {
  code?: number | null
  message?: string | null
  retryAfterMs?: number | null
}): ParleyError {
  const code: ErrorCode = errorCodeFromWire(err.code ?? 0)
  const retryAfterMs = err.retryAfterMs ? err.retryAfterMs : undefined
  return new ParleyError(code, err.message || code, { retryAfterMs })
}

/**
 * Turns any error into a wire `Error` body. Non-Parley errors become `INTERNAL` with a generic message, so
 * that internal details (which may hold secrets) never reach the wire.
 * @example send(encodeServerFrame({ requestId, error: wireErrorFrom(err) }))
 */
export function wireErrorFrom(err: unknown): WireError {
  if (!ParleyError.is(err))
    return { code: errorCodeToWire('INTERNAL'), message: 'internal error', retryAfterMs: 0 }
  return {
    code: errorCodeToWire(err.code),
    message: err.message,
    retryAfterMs:
      err.retryAfterMs === undefined ? 0 : Math.max(0, Math.min(0xffffffff, Math.ceil(err.retryAfterMs))),
  }
}
