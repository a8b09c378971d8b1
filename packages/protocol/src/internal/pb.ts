// A table-driven protobuf codec for the messages of proto/parley/v1, walking src/gen/schema.ts. It replaces the
// protobufjs runtime and static codecs (about 20 KB min+gzip in the browser bundle) and supports exactly the
// scalar types the schema uses: uint32, uint64 (as numbers ≤ 2^53 − 1), bool, string, bytes and enums.
// Its output is byte-identical to protobufjs' static encoder (src/internal/pb.test.ts checks every message
// against it), and decoded objects hold the values protobufjs' decoded instances read as, typed by the
// generated src/gen/types.ts:
// - proto3 implicit-presence scalars are written only when not zero / false / empty, and decoded always: an
//   absent one as its zero value (where protobufjs leaves it to the prototype's default);
// - oneof members (including proto3 `optional` fields, in protobufjs' synthetic oneof `_name`) are written
//   whenever set; decoding keeps the last member seen and sets the oneof's name, as a non-enumerable property,
//   to the member's name (`frame.body === 'hello'`);
// - repeated numbers are written packed and read packed or not;
// - a nested message seen twice is merged, as protoc and protobufjs do.
// One deliberate difference: a string holding a lone UTF-16 surrogate is written with U+FFFD in its place
// (TextEncoder), where protobufjs writes the surrogate's 3 bytes, invalid UTF-8 that its own strict decoder
// (and ours) refuses, so such a text message could never be read.
import { ParleyError } from '../errors.js'
import { type Field, messages, TYPE } from '../gen/schema.js'
import type { MessageInputs, Messages } from '../gen/types.js'

const TWO_32 = 4294967296
/** Nesting limit for groups inside unknown fields (protoc's default recursion limit). */
const MAX_DEPTH = 100

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const has = (o: object, k: string) => Object.hasOwn(o, k)

/** Options of {@link decodeMessage}. */
export interface DecodeOptions {
  /** Keep unknown fields, raw, in the non-enumerable `$unknowns` (default: skip them). */
  keepUnknown?: boolean
  /**
   * Most entries any one repeated field may have; decoding stops with a {@link RepeatedLimitError} at the first
   * entry beyond it, before reading the rest (default: no limit beyond the input's size).
   */
  maxRepeated?: number
}

/** Thrown by {@link decodeMessage} when a repeated field has more entries than `maxRepeated`. */
export class RepeatedLimitError extends RangeError {
  constructor(
    readonly field: string,
    readonly limit: number,
  ) {
    super(`repeated field ${field} has more than ${limit} entries`)
    this.name = 'RepeatedLimitError'
  }
}

/** The name of a message of package parley.v1, as in src/gen/schema.ts. */
export type MessageName = keyof Messages

function fieldsOf(type: string): readonly Field[] {
  const fields = messages[type]
  if (!fields) throw new TypeError(`unknown message type ${type}`)
  return fields
}

class Writer {
  buf = new Uint8Array(64)
  len = 0

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n))
    next.set(this.buf.subarray(0, this.len))
    this.buf = next
  }

  /** A varint of the low 32 bits, like protobufjs' `uint32`. */
  u32(v: number): void {
    this.varint(v >>> 0, 0)
  }

  /** A 64-bit varint from a number, like protobufjs' `LongBits.fromNumber` (two's complement when negative). */
  u64(v: number): void {
    const negative = v < 0
    if (negative) v = -v
    let lo = v >>> 0
    let hi = ((v - lo) / TWO_32) >>> 0
    if (negative) {
      hi = ~hi >>> 0
      lo = ~lo >>> 0
      if (++lo > 0xffffffff) {
        lo = 0
        if (++hi > 0xffffffff) hi = 0
      }
    }
    this.varint(lo, hi)
  }

  private varint(lo: number, hi: number): void {
    this.room(10)
    while (hi !== 0 || lo > 127) {
      this.buf[this.len++] = (lo & 127) | 128
      lo = ((lo >>> 7) | (hi << 25)) >>> 0
      hi >>>= 7
    }
    this.buf[this.len++] = lo
  }

  raw(bytes: Uint8Array): void {
    this.room(bytes.length)
    this.buf.set(bytes, this.len)
    this.len += bytes.length
  }

  /** Length-delimited bytes. */
  bytes(bytes: Uint8Array): void {
    this.u32(bytes.length)
    this.raw(bytes)
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len)
  }
}

function writeScalar(w: Writer, type: number, v: unknown): void {
  if (type === TYPE.uint32) w.u32(v as number)
  else if (type === TYPE.uint64) w.u64(v as number)
  else if (type === TYPE.bool) w.u32(v ? 1 : 0)
  else if (type === TYPE.enum) (v as number) < 0 ? w.u64(v as number) : w.u32(v as number)
  else w.bytes(type === TYPE.string ? utf8Encoder.encode(v as string) : (v as Uint8Array))
}

const isDefault = (type: number, v: unknown) =>
  type === TYPE.bytes
    ? (v as Uint8Array).length === 0
    : v === (type === TYPE.bool ? false : type === TYPE.string ? '' : 0)

function writeMessage(w: Writer, type: string, msg: Record<string, unknown>, depth: number): void {
  if (depth > MAX_DEPTH) throw new Error('max depth exceeded')
  for (const [no, name, t, repeated, oneof] of fieldsOf(type)) {
    const v = msg[name]
    if (v == null) continue
    if (repeated) {
      const list = v as unknown[]
      if (!list.length) continue
      if (typeof t === 'string') {
        for (const item of list) {
          w.u32((no << 3) | 2)
          w.bytes(encode(t, item as Record<string, unknown>, depth + 1))
        }
      } else if (t === TYPE.string || t === TYPE.bytes) {
        for (const item of list) {
          w.u32((no << 3) | 2)
          writeScalar(w, t, item)
        }
      } else {
        const packed = new Writer()
        for (const item of list) writeScalar(packed, t, item)
        w.u32((no << 3) | 2)
        w.bytes(packed.buf.subarray(0, packed.len))
      }
      continue
    }
    if (!has(msg, name)) continue
    if (typeof t === 'string') {
      w.u32((no << 3) | 2)
      w.bytes(encode(t, v as Record<string, unknown>, depth + 1))
    } else if (oneof !== undefined || !isDefault(t, v)) {
      w.u32((no << 3) | (t === TYPE.string || t === TYPE.bytes ? 2 : 0))
      writeScalar(w, t, v)
    }
  }
  const unknowns = msg.$unknowns as Uint8Array[] | undefined
  if (unknowns != null && has(msg, '$unknowns')) for (const u of unknowns) w.raw(u)
}

function encode(type: string, msg: Record<string, unknown>, depth: number): Uint8Array {
  const w = new Writer()
  writeMessage(w, type, msg, depth)
  return w.finish()
}

/**
 * Encodes a message as protobufjs' static `parley.v1.<type>.encode(msg).finish()` would.
 * @param type - the message's name in package parley.v1
 * @param msg - its fields (src/gen/types.ts `<type>Input`); `$unknowns` are written back as they came
 * @returns the encoding, a plain Uint8Array
 * @throws TypeError for an unknown type
 */
export function encodeMessage<N extends MessageName>(type: N, msg: MessageInputs[N]): Uint8Array {
  return encode(type, msg as Record<string, unknown>, 0)
}

/** A length-delimited field: tag ‖ length ‖ bytes (also how a nested message is embedded as its own encoding). */
export function encodeBytesField(fieldNumber: number, bytes: Uint8Array): Uint8Array {
  const w = new Writer()
  w.u32((fieldNumber << 3) | 2)
  w.bytes(bytes)
  return w.finish()
}

class Reader {
  pos = 0
  constructor(
    readonly buf: Uint8Array,
    public end: number,
  ) {}

  private byte(): number {
    if (this.pos >= this.end) throw new RangeError('index out of range')
    return this.buf[this.pos++] as number
  }

  /** A varint of up to 10 bytes, as [low 32 bits, high 32 bits]. */
  varint(): [number, number] {
    let lo = 0
    let hi = 0
    for (let i = 0; i < 10; i++) {
      const b = this.byte()
      if (i < 4) lo |= (b & 127) << (i * 7)
      else if (i === 4) {
        lo |= (b & 127) << 28
        hi = (b & 127) >> 4
      } else hi |= (b & 127) << (i * 7 - 32)
      if (b < 128) return [lo >>> 0, hi >>> 0]
    }
    throw new Error('invalid varint encoding')
  }

  u64(): number {
    const [lo, hi] = this.varint()
    if (hi >= 0x200000) throw new RangeError('64-bit integer field is beyond 2^53')
    return hi * TWO_32 + lo
  }

  /** The end of a length-delimited value that starts here. */
  size(): number {
    const [n, hi] = this.varint()
    const end = this.pos + n
    if (hi !== 0 || end > this.end) throw new RangeError('index out of range')
    return end
  }

  bytes(): Uint8Array {
    const end = this.size()
    const out = new Uint8Array(this.buf.subarray(this.pos, end))
    this.pos = end
    return out
  }

  skip(wireType: number, fieldNumber: number, depth: number): void {
    if (depth > MAX_DEPTH) throw new Error('max depth exceeded')
    if (fieldNumber === 0) throw new Error('illegal tag: field number 0')
    if (wireType === 0) this.varint()
    else if (wireType === 1 || wireType === 5) {
      this.pos += wireType === 1 ? 8 : 4
      if (this.pos > this.end) throw new RangeError('index out of range')
    } else if (wireType === 2) this.pos = this.size()
    else if (wireType === 3) {
      for (;;) {
        const tag = this.varint()[0]
        if (tag >>> 3 === 0) throw new Error('illegal tag: field number 0')
        if ((tag & 7) === 4) {
          if (tag >>> 3 !== fieldNumber) throw new Error('invalid end group tag')
          break
        }
        this.skip(tag & 7, tag >>> 3, depth + 1)
      }
    } else throw new Error(`invalid wire type ${wireType}`)
  }
}

function readScalar(r: Reader, type: number): unknown {
  if (type === TYPE.uint64) return r.u64()
  if (type === TYPE.string || type === TYPE.bytes) {
    const b = r.bytes()
    return type === TYPE.string ? utf8Decoder.decode(b) : b
  }
  const [lo, hi] = r.varint()
  return type === TYPE.bool ? lo !== 0 || hi !== 0 : type === TYPE.enum ? lo | 0 : lo
}

function readMessage(
  r: Reader,
  type: string,
  end: number,
  depth: number,
  keep: boolean,
  limit: number,
  target?: Record<string, unknown>,
): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw new Error('max depth exceeded')
  const fields = fieldsOf(type)
  let msg = target
  if (!msg) {
    // protobufjs' generated constructors give every repeated field an own empty array
    msg = {}
    for (const f of fields) if (f[3]) msg[f[1]] = []
  }
  const outer = r.end
  r.end = end
  while (r.pos < end) {
    const start = r.pos
    const tag = r.varint()[0]
    const no = tag >>> 3
    const wireType = tag & 7
    const field = fields.find((f) => f[0] === no)
    if (field) {
      const [, name, t, repeated, oneof] = field
      const delimited = typeof t === 'string' || t === TYPE.string || t === TYPE.bytes
      if (repeated) {
        const packed = !delimited && wireType === 2
        if (packed || wireType === (delimited ? 2 : 0)) {
          const list = msg[name] as unknown[]
          if (packed) {
            const listEnd = r.size()
            r.end = listEnd
            while (r.pos < listEnd) {
              if (list.length >= limit) throw new RepeatedLimitError(name, limit)
              list.push(readScalar(r, t as number))
            }
            r.end = end
          } else {
            if (list.length >= limit) throw new RepeatedLimitError(name, limit)
            list.push(
              typeof t === 'string' ? readMessage(r, t, r.size(), depth + 1, keep, limit) : readScalar(r, t),
            )
          }
          continue
        }
      } else if (wireType === (delimited ? 2 : 0)) {
        const v =
          typeof t === 'string'
            ? readMessage(
                r,
                t,
                r.size(),
                depth + 1,
                keep,
                limit,
                msg[name] as Record<string, unknown> | undefined,
              )
            : readScalar(r, t)
        if (oneof !== undefined) {
          // As protobufjs' oneof setter: the last member seen wins, and the oneof's name (not enumerable,
          // like protobufjs' prototype getter) says which it is.
          for (const f of fields) if (f[4] === oneof) delete msg[f[1]]
          msg[name] = v
          Object.defineProperty(msg, oneof, { value: name, writable: true, configurable: true })
        } else msg[name] = v
        continue
      }
    }
    r.skip(wireType, no, depth)
    if (keep) {
      if (!has(msg, '$unknowns')) {
        Object.defineProperty(msg, '$unknowns', { value: [], writable: true, configurable: true })
      }
      ;(msg.$unknowns as Uint8Array[]).push(new Uint8Array(r.buf.subarray(start, r.pos)))
    }
  }
  if (r.pos !== end) throw new RangeError('index out of range')
  r.end = outer
  // Implicit-presence scalars read as their proto3 zero value when absent (src/gen/types.ts types them so).
  for (const [, name, t, repeated, oneof] of fields) {
    if (repeated || oneof !== undefined || typeof t === 'string' || has(msg, name)) continue
    msg[name] = t === TYPE.bytes ? new Uint8Array(0) : t === TYPE.string ? '' : t === TYPE.bool ? false : 0
  }
  return msg
}

/**
 * Decodes a message, typed as src/gen/types.ts says: implicit-presence scalars always set (zero values when
 * absent), repeated fields arrays, nested messages and proto3 `optional` fields only when present, a oneof's
 * name set to its member's. Bytes are plain Uint8Array copies and 64-bit integers numbers.
 * @param type - the message's name in package parley.v1
 * @param bytes - its encoding
 * @param options - `keepUnknown` to collect unknown fields in `$unknowns`; `maxRepeated` to stop early
 * @returns the decoded properties
 * @throws RepeatedLimitError past `maxRepeated`; RangeError when truncated or when a 64-bit integer exceeds 2^53 − 1; Error when malformed (invalid
 *   varint, wire type or UTF-8, nesting too deep)
 */
export function decodeMessage<N extends MessageName>(
  type: N,
  bytes: Uint8Array,
  options: DecodeOptions = {},
): Messages[N] {
  const r = new Reader(bytes, bytes.length)
  const limit = options.maxRepeated ?? Number.POSITIVE_INFINITY
  return readMessage(r, type, bytes.length, 0, options.keepUnknown === true, limit) as unknown as Messages[N]
}

/**
 * {@link decodeMessage} for bytes from a peer or the network: any decoding failure becomes ParleyError
 * `BAD_REQUEST` "malformed <what>", with the codec's error as its cause. `options` as {@link decodeMessage}'s.
 */
export function decodeOrRefuse<N extends MessageName>(
  type: N,
  bytes: Uint8Array,
  what: string,
  options: DecodeOptions = {},
): Messages[N] {
  try {
    return decodeMessage(type, bytes, options)
  } catch (cause) {
    throw new ParleyError('BAD_REQUEST', `malformed ${what}`, { cause })
  }
}
