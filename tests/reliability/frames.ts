// Frame generators for the fuzzer: valid frames of every body type, then mutated, truncated, oversized,
// retyped, unknown oneof cases, huge repeated fields, deep nesting and plain random bytes. Deterministic for a
// seed, so a failing run can be replayed with PARLEY_FUZZ_SEED.
import {
  activationPayload,
  type ClientFrameInput,
  encodeClientFrame,
  kemPrekeyPayload,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
} from '@parley/protocol'

/** mulberry32: a small seeded PRNG (not for secrets). */
export function prng(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number) => Math.floor(next() * n)
  // Large random byte strings are slices of one seeded pool, so that big frames cost no more than a copy.
  const pool = new Uint8Array(1 << 20)
  for (let i = 0; i < pool.length; i++) pool[i] = int(256)
  const bytes = (n: number) => {
    if (n > pool.length) {
      const out = new Uint8Array(n)
      for (let i = 0; i < n; i += pool.length) out.set(pool.subarray(0, Math.min(pool.length, n - i)), i)
      return out
    }
    const at = int(pool.length - n + 1)
    return pool.slice(at, at + n)
  }
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!
  return { next, int, bytes, pick }
}
export type Rng = ReturnType<typeof prng>

// ── raw protobuf writing, to say what the codecs would never produce ──
export function varint(n: number | bigint): number[] {
  let v = BigInt(n)
  if (v < 0n) v += 1n << 64n
  const out: number[] = []
  do {
    let b = Number(v & 0x7fn)
    v >>= 7n
    if (v > 0n) b |= 0x80
    out.push(b)
  } while (v > 0n)
  return out
}
const tag = (field: number, wire: number) => varint(BigInt(field) * 8n + BigInt(wire))
export const ld = (field: number, payload: ArrayLike<number>) => [
  ...tag(field, 2),
  ...varint(payload.length),
  ...Array.from(payload),
]
export const vi = (field: number, n: number | bigint) => [...tag(field, 0), ...varint(n)]

/** An envelope: mostly shaped as a v1 SealedEnvelope (so it passes the relay's shape check), else random. */
const envelopeOf = (r: Rng) =>
  r.int(4) === 0
    ? r.bytes(1 + r.int(300))
    : new Uint8Array([
        ...vi(1, 1),
        ...ld(2, r.bytes(32)),
        ...ld(3, r.bytes(48)),
        ...ld(4, r.bytes(1 + r.int(300))),
      ])

/** Every body a client may send, with plausible (mostly invalid) contents. */
/** A signing identity (the fuzzing account's), so that generated prekeys carry valid signatures. */
export interface Signer {
  publicKey: Uint8Array
  sign(message: Uint8Array): Uint8Array
}

/**
 * The most expensive frames with valid signatures: a prekey upload of many validly signed KEM prekeys (each
 * one an Ed25519 check for the relay), and an activation confirm as heavy as allowed for an activation that does
 * not exist (which must cost no check at all).
 */
function heavySigned(r: Rng, id: Signer): Omit<ClientFrameInput, 'requestId'>[] {
  const kems = (n: number, first: number) =>
    Array.from({ length: n }, (_, i) => {
      const publicKey = r.bytes(1184)
      return { keyId: first + i, publicKey, signature: id.sign(kemPrekeyPayload(first + i, publicKey)) }
    })
  const activationId = r.bytes(16)
  return [
    { prekeyUpload: { oneTimeKemPrekeys: kems(1 + r.int(60), 10_000 + r.int(100_000)) } },
    {
      activationConfirm: {
        activationId,
        code: String(r.int(1e6)).padStart(6, '0'),
        identityKey: id.publicKey,
        identitySignature: id.sign(activationPayload(activationId, id.publicKey)),
        prekeys: {
          signedPrekey: { keyId: 1, publicKey: r.bytes(32), signature: r.bytes(64) },
          lastResortKemPrekey: { keyId: 1, publicKey: r.bytes(1184), signature: r.bytes(64) },
          oneTimeKemPrekeys: kems(30, 2),
        },
      },
    },
  ]
}

function validBodies(r: Rng, known: { address?: Uint8Array }): Omit<ClientFrameInput, 'requestId'>[] {
  const addr = known.address ?? r.bytes(32)
  return [
    { hello: { protocolMajor: PROTOCOL_MAJOR, protocolMinor: PROTOCOL_MINOR } },
    { ping: {} },
    { authenticate: { address: addr, deviceId: r.int(4), signature: r.bytes(64) } },
    {
      activationStart: {
        phoneNumber: `+1415555${String(r.int(10000)).padStart(4, '0')}`,
        consent: r.int(2) === 1,
      },
    },
    {
      activationConfirm: {
        activationId: r.bytes(16),
        code: String(r.int(1e6)).padStart(6, '0'),
        identityKey: r.bytes(32),
        identitySignature: r.bytes(64),
        prekeys: { signedPrekey: { keyId: 1, publicKey: r.bytes(32), signature: r.bytes(64) } },
        ...(r.int(2) ? { registrationLockProof: r.bytes(r.int(2) ? 32 : r.int(40)) } : {}),
      },
    },
    { oprfEvaluate: { keyId: r.int(3), blindedElements: [r.bytes(32), r.bytes(32)] } },
    { membershipQuery: { prefixBits: 16, prefixes: [r.bytes(2), r.bytes(2)] } },
    {
      prekeyUpload: {
        oneTimePrekeys: [{ keyId: r.int(1000), publicKey: r.bytes(32) }],
        oneTimeKemPrekeys: [{ keyId: r.int(1000), publicKey: r.bytes(1184), signature: r.bytes(64) }],
      },
    },
    { prekeyBundleQuery: { address: r.int(2) ? addr : r.bytes(32) } },
    { prekeyCountQuery: {} },
    {
      sendMessage: {
        recipientAddress: r.int(2) ? addr : r.bytes(32),
        recipientDeviceId: r.int(3),
        messageId: r.bytes(16),
        envelope: envelopeOf(r),
      },
    },
    { ackMessages: { seqs: [r.int(50), r.int(50)] } },
    { syncMailbox: { afterSeq: r.int(20) } },
    { senderCertificateRequest: {} },
    { setDeliveryToken: { verifier: r.int(2) ? r.bytes(32) : r.bytes(r.int(40)) } },
    {
      rebindAddress: {
        phoneNumber: `+1415555${String(r.int(10000)).padStart(4, '0')}`,
        numberSalt: r.bytes(r.int(2) ? 32 : r.int(40)),
        keyId: r.int(3),
        ...(r.int(2) ? { blindedNumber: r.bytes(32) } : {}),
      },
    },
    {
      setRegistrationLock: {
        salt: r.bytes(r.int(2) ? 16 : r.int(40)),
        logN: r.int(2) ? 14 + r.int(4) : r.int(64),
        verifier: r.int(3) ? r.bytes(32) : r.bytes(r.int(40)),
      },
    },
    {
      unidentifiedSend: {
        recipientAddress: r.int(2) ? addr : r.bytes(32),
        recipientDeviceId: r.int(3),
        messageId: r.bytes(16),
        envelope: envelopeOf(r),
        deliveryToken: r.bytes(32),
      },
    },
  ]
}

function mutate(r: Rng, input: Uint8Array): Uint8Array {
  const b = Array.from(input)
  const n = 1 + r.int(4)
  for (let k = 0; k < n; k++) {
    const i = r.int(Math.max(1, b.length))
    switch (r.int(6)) {
      case 0: // bit flip
        if (b.length) b[i] = b[i]! ^ (1 << r.int(8))
        break
      case 1: // random byte
        if (b.length) b[i] = r.int(256)
        break
      case 2: // insert
        b.splice(i, 0, ...r.bytes(1 + r.int(8)))
        break
      case 3: // delete
        b.splice(i, 1 + r.int(8))
        break
      case 4: // interesting varint bytes
        b.splice(i, 0, ...r.pick([[0xff], [0x80], [0xff, 0xff, 0xff, 0xff, 0x0f], [0x7f], [0x00]]))
        break
      default: // duplicate a slice
        b.splice(i, 0, ...b.slice(r.int(Math.max(1, b.length)), r.int(Math.max(1, b.length))))
    }
  }
  return new Uint8Array(b)
}

/** A field (1..8) of a known body (10..23) holding a value of a wire type the schema does not declare. */
function retyped(r: Rng, requestId: number): Uint8Array {
  const body = 10 + r.int(14)
  const field = 1 + r.int(8)
  const wire = r.int(8)
  let inner: number[]
  switch (wire) {
    case 0:
      inner = [...tag(field, 0), ...varint(r.pick([0, 1, 2 ** 32, 2n ** 63n, 2n ** 64n - 1n, -1]))]
      break
    case 1:
      inner = [...tag(field, 1), ...r.bytes(8)]
      break
    case 2:
      inner = ld(field, r.bytes(r.int(40)))
      break
    case 5:
      inner = [...tag(field, 5), ...r.bytes(4)]
      break
    default: // 3, 4 (groups) and 6, 7 (invalid wire types)
      inner = [...tag(field, wire), ...r.bytes(r.int(6))]
  }
  // Sometimes the request id itself has the wrong type.
  const head = r.int(8) === 0 ? ld(1, r.bytes(4)) : vi(1, requestId)
  return new Uint8Array([...head, ...ld(body, inner)])
}

/** A oneof case this protocol version does not define. */
function unknownCase(r: Rng, requestId: number): Uint8Array {
  const field = r.pick([2, 3, 9, 24, 25, 99, 1000, 19000, 536870911])
  return new Uint8Array([...vi(1, requestId), ...ld(field, r.bytes(r.int(20)))])
}

/** A repeated field with very many entries (still under the frame limit, or just over it). */
function hugeRepeated(r: Rng, requestId: number, maxFrameBytes: number): Uint8Array {
  const kind = r.int(4)
  const budget = r.int(4) === 0 ? maxFrameBytes + 1024 : maxFrameBytes - 256
  // One entry, repeated: the relay sees the same count and size as with distinct entries, at a copy's cost.
  const entry =
    kind === 0
      ? ld(2, r.bytes(32)) // OprfEvaluate.blinded_elements
      : kind === 1
        ? ld(2, r.bytes(2)) // MembershipQuery.prefixes
        : kind === 2
          ? vi(1, r.int(1e6)) // AckMessages.seqs, unpacked
          : ld(2, [...vi(1, r.int(1e6)), ...ld(2, r.bytes(32))]) // PrekeyUpload.one_time_prekeys
  const count = Math.floor((budget - 64) / entry.length)
  const block = new Uint8Array(count * entry.length)
  for (let i = 0; i < count; i++) block.set(entry, i * entry.length)
  const parts: ArrayLike<number>[] = [block]
  const body = [14, 15, 20, 16][kind]!
  const inner = concat(kind === 1 ? [vi(1, 16), ...parts] : parts)
  return concat([vi(1, requestId), tag(body, 2), varint(inner.length), inner])
}

/** Length-delimited fields nested `depth` deep (or start-group tags, which skip recursively). */
function deepNesting(r: Rng, requestId: number): Uint8Array {
  const depth = r.pick([100, 1000, 10_000, 50_000])
  if (r.int(2) === 0) {
    const open = tag(7, 3)
    const close = tag(7, 4)
    const groups = new Uint8Array(depth * (open.length + close.length))
    for (let i = 0; i < depth; i++) {
      groups.set(open, i * open.length)
      groups.set(close, depth * open.length + i * close.length)
    }
    return concat([vi(1, requestId), ld(r.pick([16, 13, 99]), groups)])
  }
  // Built inside out as headers around one core, so a deep message costs O(depth), not O(depth²).
  const levels = Math.min(depth, 10_000)
  const heads: number[][] = []
  let length = 6
  for (let i = 0; i < levels; i++) {
    const h = [...tag(r.pick([1, 2, 5]), 2), ...varint(length)]
    heads.push(h)
    length += h.length
  }
  const outer = [...tag(r.pick([13, 16, 99]), 2), ...varint(length)]
  return concat([vi(1, requestId), outer, ...heads.reverse(), ld(1, r.bytes(4))])
}

function concat(parts: ArrayLike<number>[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** The kinds of generated frames, with their share of the run. */
export const KINDS = [
  ['mutated', 40],
  ['random', 15],
  ['truncated', 10],
  ['retyped', 15],
  ['unknownCase', 8],
  ['hugeRepeated', 3],
  ['deepNesting', 3],
  ['oversize', 1],
  ['valid', 5],
] as const
export type Kind = (typeof KINDS)[number][0]

/** One generated frame of a random kind. */
export function generate(
  r: Rng,
  requestId: number,
  opts: { maxFrameBytes: number; address?: Uint8Array; identity?: Signer },
): { kind: Kind; bytes: Uint8Array } {
  let x = r.int(100)
  let kind: Kind = 'valid'
  for (const [k, share] of KINDS) {
    if (x < share) {
      kind = k
      break
    }
    x -= share
  }
  // One valid frame in eight is a heavy, validly signed one when an identity is given (signing is slow, so
  // these are built only when picked).
  const body = () =>
    opts.identity && r.int(8) === 0 ? r.pick(heavySigned(r, opts.identity)) : r.pick(validBodies(r, opts))
  const valid = () => encodeClientFrame({ requestId, ...body() } as ClientFrameInput, Number.MAX_SAFE_INTEGER)
  switch (kind) {
    case 'mutated':
      return { kind, bytes: mutate(r, valid()) }
    case 'random':
      return { kind, bytes: r.bytes(r.int(r.int(10) === 0 ? 5000 : 64)) }
    case 'truncated': {
      const v = valid()
      return { kind, bytes: v.subarray(0, r.int(v.length)) }
    }
    case 'retyped':
      return { kind, bytes: retyped(r, requestId) }
    case 'unknownCase':
      return { kind, bytes: unknownCase(r, requestId) }
    case 'hugeRepeated':
      return { kind, bytes: hugeRepeated(r, requestId, opts.maxFrameBytes) }
    case 'deepNesting':
      return { kind, bytes: deepNesting(r, requestId) }
    case 'oversize': {
      // Just over the limit (answered TOO_LARGE), or over twice the limit (the socket is closed with 1009).
      const n = r.int(3) === 0 ? opts.maxFrameBytes * 2 + 100 : opts.maxFrameBytes + 1 + r.int(1000)
      const envelopeHead = [...tag(4, 2), ...varint(n)]
      const head = [...vi(1, requestId), ...tag(19, 2), ...varint(envelopeHead.length + n), ...envelopeHead]
      const out = new Uint8Array(head.length + n)
      out.set(head)
      out.set(r.bytes(n), head.length)
      return { kind, bytes: out }
    }
    default:
      return { kind, bytes: valid() }
  }
}
