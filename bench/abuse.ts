// Abuse (resource exhaustion): does expensive hostile work starve honest clients? An honest client (its own
// process, so that the hostile sockets' traffic cannot delay its event loop) alternates Ping and SendMessage to
// a second honest account, one request at a time, and its round trips are timed (a) on an idle relay and (b)
// while 64 hostile sockets send the most expensive frames they can, in the same run, against the same relay
// process; the ratio (b)/(a) of p50 and p99 is the figure, target p99 ≤ 5× idle.
//
// Hostile mix (each socket keeps one request in flight and sends the next as soon as it is answered; every
// socket reconnects when the relay closes it; traffic goes to 127.0.0.1 only):
//   pre-login, 32 sockets: ActivationConfirm as heavy as allowed (30 validly signed KEM prekeys + signed and
//   last-resort prekeys = 32 signed keys) for an unknown activation (10) or a real one with a wrong code (4,
//   each starting its activations itself); huge repeated-field frames just under --max-frame-bytes (10: OPRF
//   elements, membership prefixes, unpacked ack seqs, one-time prekeys in turn); malformed frames (8: a huge
//   frame corrupt in its last entry, 10,000-deep nesting, random bytes in turn).
//   post-login, 32 sockets, each authenticated as its own account (activated beforehand): OprfEvaluate of 500
//   valid elements (the relay's OPRF public key from ServerHello) (7), PrekeyUpload of 200 validly signed KEM
//   prekeys (7), MembershipQuery of 500 distinct prefixes (6), AckMessages of 500 seqs (6), SyncMailbox from 0
//   of a mailbox holding 100 × 10 KiB (one full 1 MiB page re-sent each time) (6).
//
// Two runs in one go: quotas lifted (so that the hostile frames are processed, not refused by a quota: what is
// measured is whether expensive work starves others) and then the relay restarted on the same data directory
// with its default quotas (the honest client then paces itself to 40 requests/s, under the default 50 frames/s
// per connection, and sends fewer requests, under the default send quota).
// Each phase is bounded: idle = warm-up + n round trips; hostile = n round trips or a deadline (20 s lifted,
// 10 s default), whichever comes first; a request still unanswered at the deadline counts as a lower bound when
// it has waited longer than every answered one. The whole bench takes about a minute (killed at 150 s).
// Run alone: cd bench && npx tsx abuse.ts [--quick]   (--quick: fewer round trips, lifted quotas only)
// Profile the relay: BENCH_RELAY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" npx tsx abuse.ts (the hostile
// phase's offsets from the relay's start are printed); ABUSE_KINDS=huge,oprf runs only those hostile kinds;
// ABUSE_DEBUG=1 prints the hostile sockets' progress every 2 s.
import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  activationPayload,
  authPayload,
  type ClientFrameInput,
  decodeServerFrame,
  encodeClientFrame,
  kemPrekeyPayload,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  parleyErrorFromWire,
  type ServerFrame,
} from '@parley/protocol'
import { CodeInbox, Identity } from '@parley/relay/testing'
import WebSocket from 'ws'
import { ld, varint, vi } from '../tests/reliability/frames.js'
import { cpuSeconds, percentile, type Row, record, sleep, startRelay } from './lib.js'
import { activate, type Device, login, RawClient } from './rawClient.js'

const quick = process.argv.includes('--quick')
const MAX_FRAME_BYTES = 327_680
const HOSTILE_WARMUP_MS = 3000
/** The whole bench is killed past this, whatever happens. */
const WATCHDOG_MS = 150_000

/**
 * Quotas lifted on top of lib.ts' BENCH_RELAY_ARGS (which already lift frames, connections per IP, activation
 * starts, OPRF, sends and bundles), so that hostile frames reach the expensive work instead of a quota. Given as
 * environment variables, not flags: the relay ignores a variable it does not know, so a limit renamed or not
 * yet there cannot stop it from starting.
 */
const LIFTED_ENV: Record<string, string> = {
  PARLEY_MEMBERSHIP_MIN_BUCKET: '0',
  PARLEY_MEMBERSHIP_ADDRESSES_CAPACITY: '1000000000',
  PARLEY_MEMBERSHIP_ADDRESSES_PER_DAY: '1000000000',
  PARLEY_ACKS_PER_SECOND: '100000000',
  PARLEY_ACTIVATION_CONFIRMS_PER_NETWORK_PER_HOUR: '100000000',
  PARLEY_CODE_REQUESTS_PER_HOUR: '100000000',
  PARLEY_CODE_ATTEMPTS: '100000000',
  PARLEY_CODE_GUESSES_PER_NUMBER_PER_HOUR: '100000000',
  PARLEY_CODE_BACKOFF_BASE_MS: '0',
  PARLEY_SMS_PER_PREFIX_PER_HOUR: '100000000',
  PARLEY_SMS_PER_HOUR: '100000000',
  PARLEY_ACTIVATION_POW_LOAD_PER_MINUTE: '0',
  PARLEY_MAX_BAD_FRAMES: '100000000',
}

/** The relay's defaults (SECURITY.md, `--help`) for every flag lib.ts' BENCH_RELAY_ARGS lifts (last flag wins). */
const DEFAULTS = [
  // This relay has ~40 accounts, so it would announce 1-bit prefixes; the hostile queries are those of a
  // relay big enough for 16-bit ones (500 distinct prefixes, 500 store reads per query).
  '--membership-min-bucket',
  '0',
  '--send-capacity',
  '600',
  '--send-per-minute',
  '120',
  '--frames-burst',
  '200',
  '--frames-per-second',
  '50',
  '--max-connections-per-ip',
  '64',
  '--activations-per-ip-per-hour',
  '30',
  '--oprf-account-capacity',
  '5000',
  '--oprf-account-per-day',
  '200',
  '--oprf-ip-capacity',
  '20000',
  '--oprf-ip-per-day',
  '20000',
  '--bundle-capacity',
  '200',
  '--bundle-per-hour',
  '100',
]

type Body = Omit<ClientFrameInput, 'requestId'>

// ───────────────────────────── frames ─────────────────────────────

const concat = (parts: ArrayLike<number>[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}
/** A varint as the relay's envelope check reads it (numbers below 2^53). */
const uvarint = (n: number): number[] => {
  const out: number[] = []
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80)
  out.push(n)
  return out
}
/**
 * A well-formed version-1 `SealedEnvelope` (e2e.proto: version 1, a 32-byte ephemeral key, a 48-byte sealed
 * sender key, then `payloadBytes` of random ciphertext): the relay checks an envelope's shape, not its contents.
 */
const sealedShape = (payloadBytes: number) =>
  concat([
    [0x08, 1, 0x12, 32],
    bytes(32),
    [0x1a, 48],
    bytes(48),
    [0x22, ...uvarint(payloadBytes)],
    bytes(payloadBytes),
  ])

/** A frame body without its request id (the codec leaves out a zero id), to be prefixed by {@link withId}. */
const encodeBody = (body: Body) =>
  encodeClientFrame({ requestId: 0, ...body } as ClientFrameInput, Number.MAX_SAFE_INTEGER)
/** Field 1 (request_id) first, then the body: the same bytes the codec writes for a non-zero id. */
const withId = (id: number, body: Uint8Array) => concat([vi(1, id), body])
const bytes = (n: number) => new Uint8Array(randomBytes(n))

/** A repeated field with as many entries as fit just under the frame limit (cf. tests/reliability/frames.ts). */
function hugeRepeated(kind: number, corruptLast = false): Uint8Array {
  const entry =
    kind === 0
      ? ld(2, bytes(32)) // OprfEvaluate.blinded_elements
      : kind === 1
        ? ld(2, bytes(2)) // MembershipQuery.prefixes
        : kind === 2
          ? vi(1, 1_000_000) // AckMessages.seqs, unpacked
          : ld(2, [...vi(1, 123_456), ...ld(2, bytes(32))]) // PrekeyUpload.one_time_prekeys
  const count = Math.floor((MAX_FRAME_BYTES - 256 - 64) / entry.length)
  const block = new Uint8Array(count * entry.length)
  for (let i = 0; i < count; i++) block.set(entry, i * entry.length)
  // Wire type 7 does not exist: the decoder fails only on the last entry, after reading all the others.
  if (corruptLast) block[(count - 1) * entry.length] = (2 << 3) | 7
  const inner = kind === 1 ? concat([vi(1, 16), block]) : block
  const field = [14, 15, 20, 16][kind]!
  return concat([varint(field * 8 + 2), varint(inner.length), inner])
}

/** 10,000 length-delimited fields nested inside each other (built inside out, cf. frames.ts deepNesting). */
function deepNesting(): Uint8Array {
  const heads: number[][] = []
  let length = 6
  for (let i = 0; i < 10_000; i++) {
    const h = [...varint([1, 2, 5][i % 3]! * 8 + 2), ...varint(length)]
    heads.push(h)
    length += h.length
  }
  return concat([varint(16 * 8 + 2), varint(length), ...heads.reverse(), ld(1, bytes(4))])
}

const HUGE = [0, 1, 2, 3].map((k) => hugeRepeated(k))
const MALFORMED = [hugeRepeated(1, true), deepNesting(), bytes(5000)]

/** `n` one-time KEM prekeys validly signed by `id`. */
const signedKems = (id: Identity, n: number, first: number) =>
  Array.from({ length: n }, (_, i) => {
    const publicKey = bytes(1184)
    return { keyId: first + i, publicKey, signature: id.sign(kemPrekeyPayload(first + i, publicKey)) }
  })

/** ActivationConfirm with the most signed keys an activation may carry (--max-activation-signed-prekeys 32). */
function heavyConfirm(id: Identity, activationId: Uint8Array, kems: ReturnType<typeof signedKems>): Body {
  return {
    activationConfirm: {
      activationId,
      code: '000000',
      identityKey: id.publicKey,
      identitySignature: id.sign(activationPayload(activationId, id.publicKey)),
      prekeys: {
        signedPrekey: { keyId: 1, publicKey: bytes(32), signature: bytes(64) },
        lastResortKemPrekey: { keyId: 1, publicKey: bytes(1184), signature: bytes(64) },
        oneTimeKemPrekeys: kems,
      },
    },
  }
}

// ───────────────────────────── hostile sockets ─────────────────────────────

type Kind =
  | 'confirmUnknown'
  | 'confirmWrongCode'
  | 'huge'
  | 'malformed'
  | 'oprf'
  | 'prekeys'
  | 'membership'
  | 'acks'
  | 'sync'
const PRE_LOGIN: [Kind, number][] = [
  ['confirmUnknown', 10],
  ['confirmWrongCode', 4],
  ['huge', 10],
  ['malformed', 8],
]
const POST_LOGIN: [Kind, number][] = [
  ['oprf', 7],
  ['prekeys', 7],
  ['membership', 6],
  ['acks', 6],
  ['sync', 6],
]
/** ABUSE_KINDS=prekeys,oprf: only these hostile kinds (to find which one costs what); default all. */
const ONLY = process.env.ABUSE_KINDS?.split(',').filter(Boolean)
const SYNC_MESSAGES = 100
const SYNC_ENVELOPE_BYTES = 10 * 1024

interface KindStats {
  sockets: number
  answered: number
  timeouts: number
  reconnects: number
  refusedConnects: number
  errors: Record<string, number>
}

/** Request id and whether the body is an Error (field 11), without decoding the frame. */
function peek(b: Buffer): { id: number; isError: boolean } {
  let i = 0
  let id = 0
  if (b[0] === 0x08) {
    let shift = 0
    i = 1
    for (;;) {
      const x = b[i++]!
      id += (x & 0x7f) * 2 ** shift
      if (!(x & 0x80) || i >= b.length) break
      shift += 7
    }
  }
  return { id, isError: b[i] === (11 << 3) + 2 }
}

let wrongCodeNumbers = 0

/** One hostile socket: connects (and authenticates), then loops its kind of frame until stopped. */
class Hostile {
  ws: WebSocket | undefined
  #next = 1
  #current = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  #stopped = false
  #hello: ServerFrame['serverHello'] | undefined
  #ready = false
  #turn = 0
  #activationId: Uint8Array | undefined
  #body: Uint8Array | undefined
  #kems: ReturnType<typeof signedKems> | undefined
  /** The identity every signature of this socket's frames is made with (the account's, post-login). */
  readonly #id: Identity

  constructor(
    readonly url: string,
    readonly kind: Kind,
    readonly stats: KindStats,
    readonly device?: Device,
  ) {
    const id = device?.identity ?? new Identity()
    this.#id = id
    if (kind === 'prekeys')
      this.#body = encodeBody({ prekeyUpload: { oneTimeKemPrekeys: signedKems(id, 200, 50_000) } })
    if (kind === 'confirmUnknown' || kind === 'confirmWrongCode') this.#kems = signedKems(id, 30, 2)
    if (kind === 'confirmUnknown') this.#body = encodeBody(heavyConfirm(id, bytes(16), this.#kems!))
    if (kind === 'membership') {
      const start = Math.floor(Math.random() * 65_000)
      const prefixes = Array.from({ length: 500 }, (_, i) => {
        const p = (start + i) % 65_536
        return new Uint8Array([p >> 8, p & 255])
      })
      this.#body = encodeBody({ membershipQuery: { prefixBits: 16, prefixes } })
    }
    if (kind === 'acks') {
      this.#body = encodeBody({ ackMessages: { seqs: Array.from({ length: 500 }, (_, i) => 1_000_000 + i) } })
    }
    if (kind === 'sync') this.#body = encodeBody({ syncMailbox: { afterSeq: 0 } })
  }

  start(): void {
    this.#connect()
  }

  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.ws?.terminate()
  }

  #connect(): void {
    if (this.#stopped) return
    this.#ready = false
    this.#hello = undefined
    this.#activationId = undefined
    const ws = new WebSocket(this.url, { perMessageDeflate: false })
    this.ws = ws
    ws.on('error', () => {})
    ws.on('unexpected-response', () => {
      this.stats.refusedConnects++
      ws.terminate()
    })
    ws.on('open', () =>
      this.#send(encodeBody({ hello: { protocolMajor: PROTOCOL_MAJOR, protocolMinor: PROTOCOL_MINOR } })),
    )
    ws.on('message', (data: Buffer) => this.#onMessage(data))
    ws.on('close', () => {
      clearTimeout(this.#timer)
      if (this.#stopped) return
      this.stats.reconnects++
      this.#timer = setTimeout(() => this.#connect(), 100)
    })
  }

  #send(body: Uint8Array): void {
    const ws = this.ws
    if (!ws || ws.readyState !== WebSocket.OPEN) return
    this.#current = this.#next++
    ws.send(withId(this.#current, body))
    // Never more than one request in flight: an unanswered one is given up only after 30 s (a relay that
    // dropped a frame under its frame quota without saying so).
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.stats.timeouts++
      this.#loop()
    }, 30_000)
  }

  #onMessage(data: Buffer): void {
    if (this.#stopped) return
    const { id, isError } = peek(data)
    if (!this.#hello) {
      if (id !== this.#current) return
      const f = decodeServerFrame(new Uint8Array(data.buffer, data.byteOffset, data.length))
      if (f.body !== 'serverHello') return
      this.#hello = f.serverHello!
      if (this.device) {
        const d = this.device
        const nonce = this.#hello.authNonce!
        this.#send(
          encodeBody({
            authenticate: {
              address: d.address,
              deviceId: d.deviceId,
              signature: d.identity.sign(authPayload(nonce, d.address, d.deviceId, this.#hello.trustRoot!)),
            },
          }),
        )
        return
      }
      this.#ready = true
      this.#loop()
      return
    }
    if (id !== this.#current && !(id === 0 && isError)) return // pushes, and answers after a timeout
    let retryAfterMs = 0
    if (isError || this.kind === 'confirmWrongCode') {
      const f = decodeServerFrame(new Uint8Array(data.buffer, data.byteOffset, data.length))
      if (f.body === 'error') {
        const code = parleyErrorFromWire(f.error!).code
        if (this.#ready) this.stats.errors[code] = (this.stats.errors[code] ?? 0) + 1
        if (id === 0) retryAfterMs = f.error!.retryAfterMs ?? 0
        // A wrong code keeps the activation; anything else (locked, expired, refused) means start another.
        if (this.kind === 'confirmWrongCode' && code !== 'INVALID_CODE') this.#activationId = undefined
      } else if (f.body === 'activationStarted') this.#activationId = f.activationStarted!.activationId!
    }
    if (!this.#ready) {
      // The answer to Authenticate.
      if (isError) {
        this.ws?.close()
        return
      }
      this.#ready = true
    } else this.stats.answered++
    clearTimeout(this.#timer)
    if (retryAfterMs > 0) this.#timer = setTimeout(() => this.#loop(), Math.min(retryAfterMs, 5000))
    else this.#loop()
  }

  #loop(): void {
    if (this.#stopped) return
    this.#send(this.#frame(this.#turn++))
  }

  /** The next frame body of this socket's kind. */
  #frame(turn: number): Uint8Array {
    switch (this.kind) {
      case 'huge':
        return HUGE[turn % HUGE.length]!
      case 'malformed':
        return MALFORMED[turn % MALFORMED.length]!
      case 'oprf': {
        const key = this.#hello!.oprfKeys![0]!
        const blindedElements = Array.from({ length: 500 }, () => key.publicKey!)
        this.#body ??= encodeBody({ oprfEvaluate: { keyId: key.keyId ?? 0, blindedElements } })
        return this.#body
      }
      case 'confirmWrongCode': {
        if (!this.#activationId) {
          this.#body = undefined
          const phoneNumber = `+1415557${String(wrongCodeNumbers++ % 10_000).padStart(4, '0')}`
          return encodeBody({ activationStart: { phoneNumber, consent: true } })
        }
        this.#body ??= encodeBody(heavyConfirm(this.#id, this.#activationId, this.#kems!))
        return this.#body
      }
      default:
        return this.#body!
    }
  }
}

/** The 64 hostile sockets. */
function hostileFleet(url: string, accounts: Map<Kind, Device[]>) {
  const stats = new Map<Kind, KindStats>()
  const sockets: Hostile[] = []
  for (const [kind, n] of [...PRE_LOGIN, ...POST_LOGIN]) {
    if (ONLY && !ONLY.includes(kind)) continue
    const s: KindStats = {
      sockets: n,
      answered: 0,
      timeouts: 0,
      reconnects: 0,
      refusedConnects: 0,
      errors: {},
    }
    stats.set(kind, s)
    for (let i = 0; i < n; i++) sockets.push(new Hostile(url, kind, s, accounts.get(kind)?.[i]))
  }
  return {
    start: () => {
      for (const s of sockets) s.start()
    },
    stop: () => {
      for (const s of sockets) s.stop()
    },
    reset: () => {
      for (const s of stats.values()) {
        s.answered = s.timeouts = s.reconnects = s.refusedConnects = 0
        s.errors = {}
      }
    },
    stats,
  }
}

// ───────────────────────────── the honest client (child process) ─────────────────────────────

interface Measured {
  samples: number
  seconds: number
  p50: number
  p99: number
  max: number
  pingP50: number
  pingP99: number
  sendP50: number
  sendP99: number
  errors: Record<string, number>
}

type ToChild =
  | { cmd: 'activate'; url: string }
  | { cmd: 'connect'; url: string }
  | { cmd: 'measure'; n: number; warmup: number; minIntervalMs: number; capMs: number }
  | { cmd: 'code'; e164: string; code: string }
type FromChild =
  | { type: 'code?'; e164: string }
  | { type: 'done'; data?: Measured }
  | { type: 'failed'; error: string }

async function honestChild(): Promise<void> {
  const send = (m: FromChild) => process.send!(m)
  const codeWaiters = new Map<string, (code: string) => void>()
  const code = (e164: string) =>
    new Promise<string>((resolve) => {
      codeWaiters.set(e164, resolve)
      send({ type: 'code?', e164 })
    })
  let alice: Device | undefined
  let bob: Device | undefined
  let a: RawClient | undefined
  let b: RawClient | undefined
  let acker: ReturnType<typeof setInterval> | undefined
  const toAck: number[] = []
  const connect = async (url: string) => {
    a?.close()
    b?.close()
    clearInterval(acker)
    a = await login(url, alice!)
    b = await login(url, bob!)
    const bob_ = b
    b.onPush = (f) => {
      if (f.body === 'delivery') toAck.push(Number(f.delivery!.seq))
    }
    await b.request({ syncMailbox: { afterSeq: 0 } })
    acker = setInterval(() => {
      if (toAck.length) bob_.send({ ackMessages: { seqs: toAck.splice(0, 500) } }, () => {})
    }, 100)
  }
  const measure = async (
    n: number,
    warmup: number,
    minIntervalMs: number,
    capMs: number,
  ): Promise<Measured> => {
    const all: number[] = []
    const pings: number[] = []
    const sends: number[] = []
    const errors: Record<string, number> = {}
    const c = a!
    let start = performance.now()
    let deadline = Number.POSITIVE_INFINITY
    let censored = 0
    for (let i = 0; i < warmup + n; i++) {
      if (i === warmup) {
        start = performance.now()
        deadline = start + capMs
      }
      const isPing = i % 2 === 0
      const body: Body = isPing
        ? { ping: {} }
        : {
            sendMessage: {
              recipientAddress: bob!.address,
              recipientDeviceId: bob!.deviceId,
              messageId: bytes(16),
              envelope: sealedShape(160),
            },
          }
      const t0 = performance.now()
      // The phase ends at its deadline even with a request in flight (see below).
      const f = await new Promise<ServerFrame | undefined>((resolve) => {
        // No deadline during the warm-up (a timer of Infinity would fire after 1 ms and pipeline the warm-up).
        const timer =
          deadline === Number.POSITIVE_INFINITY
            ? undefined
            : setTimeout(() => resolve(undefined), Math.max(0, deadline - t0))
        c.send(body, (answer) => {
          clearTimeout(timer)
          resolve(answer)
        })
      })
      const dt = performance.now() - t0
      if (i < warmup) continue
      if (!f) {
        // Unanswered at the deadline: a lower bound of its round trip. Kept only when it has waited longer than
        // every answered one (then it bounds the tail from below); a request sent just before the end is not.
        if (all.length === 0 || dt >= Math.max(...all)) {
          all.push(dt)
          ;(isPing ? pings : sends).push(dt)
          censored++
        }
        break
      }
      all.push(dt)
      ;(isPing ? pings : sends).push(dt)
      if (f.body === 'error') {
        const code = parleyErrorFromWire(f.error!).code
        errors[code] = (errors[code] ?? 0) + 1
      }
      if (performance.now() >= deadline) break
      if (minIntervalMs > 0) await sleep(Math.max(0, t0 + minIntervalMs - performance.now()))
    }
    if (censored) errors['unanswered at the deadline (counted as a lower bound)'] = censored
    return {
      samples: all.length,
      seconds: (performance.now() - start) / 1000,
      p50: percentile(all, 50),
      p99: percentile(all, 99),
      max: Math.max(...all),
      pingP50: percentile(pings, 50),
      pingP99: percentile(pings, 99),
      sendP50: percentile(sends, 50),
      sendP99: percentile(sends, 99),
      errors,
    }
  }
  process.on('message', (m: ToChild) => {
    if (m.cmd === 'code') return codeWaiters.get(m.e164)?.(m.code)
    void (async () => {
      try {
        if (m.cmd === 'activate') {
          for (const n of ['+14155557000', '+14155557001']) {
            const c = await RawClient.open(m.url)
            const d = await activate(c, n, code)
            c.close()
            if (alice) bob = d
            else alice = d
          }
          send({ type: 'done' })
        } else if (m.cmd === 'connect') {
          await connect(m.url)
          send({ type: 'done' })
        } else send({ type: 'done', data: await measure(m.n, m.warmup, m.minIntervalMs, m.capMs) })
      } catch (err) {
        send({ type: 'failed', error: String((err as Error)?.stack ?? err) })
      }
    })()
  })
  process.on('disconnect', () => process.exit(0))
}

/** The honest client's process, driven over IPC; codes come from this process' webhook inbox. */
function honest(codes: CodeInbox) {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--honest'], {
    cwd: fileURLToPath(new URL('.', import.meta.url)),
    execArgv: ['--conditions=parley-source', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  let waiting: { resolve: (m?: Measured) => void; reject: (e: Error) => void } | undefined
  child.on('message', (m: FromChild) => {
    if (m.type === 'code?') {
      void codes
        .next(m.e164)
        .then((code) => child.send({ cmd: 'code', e164: m.e164, code } satisfies ToChild))
    } else if (m.type === 'done') waiting?.resolve(m.data)
    else waiting?.reject(new Error(`honest client failed: ${m.error}`))
  })
  child.once('exit', (code) => waiting?.reject(new Error(`honest client exited with ${code}`)))
  const ask = (m: ToChild) =>
    new Promise<Measured | undefined>((resolve, reject) => {
      waiting = { resolve, reject }
      child.send(m)
    })
  return { ask, kill: () => child.kill() }
}

// ───────────────────────────── the bench ─────────────────────────────

/** Activates the post-login hostile accounts (8 at a time) and fills the sync accounts' mailboxes. */
async function hostileAccounts(url: string, codes: CodeInbox): Promise<Map<Kind, Device[]>> {
  const jobs: { kind: Kind; n: number }[] = []
  let number = 0
  for (const [kind, n] of POST_LOGIN) for (let i = 0; i < n; i++) jobs.push({ kind, n: number++ })
  const out = new Map<Kind, Device[]>()
  const work = async () => {
    for (let job = jobs.shift(); job; job = jobs.shift()) {
      const c = await RawClient.open(url)
      const d = await activate(c, `+1415556${String(job.n).padStart(4, '0')}`, (e164) => codes.next(e164))
      if (job.kind === 'sync') {
        await Promise.all(
          Array.from({ length: SYNC_MESSAGES }, () =>
            c.request({
              sendMessage: {
                recipientAddress: d.address,
                recipientDeviceId: d.deviceId,
                messageId: bytes(16),
                envelope: sealedShape(SYNC_ENVELOPE_BYTES),
              },
            }),
          ),
        )
      }
      c.close()
      out.set(job.kind, [...(out.get(job.kind) ?? []), d])
    }
  }
  await Promise.all(Array.from({ length: 8 }, work))
  return out
}

interface RunResult {
  label: string
  idle: Measured
  hostile: Measured
  idleCpu: number
  hostileCpu: number
  stats: Map<Kind, KindStats>
  hostileSeconds: number
  profileWindow: string
}

const fmtStats = (stats: Map<Kind, KindStats>, seconds: number) =>
  [...stats]
    .map(([kind, s]) => {
      const errs = Object.entries(s.errors)
        .sort((x, y) => y[1] - x[1])
        .slice(0, 3)
        .map(([c, n]) => `${c} ${n}`)
        .join(', ')
      const extra = [
        s.timeouts ? `${s.timeouts} timeouts` : '',
        s.reconnects ? `${s.reconnects} reconnects` : '',
        s.refusedConnects ? `${s.refusedConnects} connects refused` : '',
      ]
        .filter(Boolean)
        .join(', ')
      return `${kind} ×${s.sockets}: ${(s.answered / seconds).toFixed(1)}/s answered${errs ? ` (${errs})` : ''}${extra ? `; ${extra}` : ''}`
    })
    .join('; ')

const debug = Boolean(process.env.ABUSE_DEBUG)
const nodeArgs = process.env.BENCH_RELAY_NODE_ARGS?.split(' ').filter(Boolean) ?? []

async function bench(): Promise<void> {
  const t0 = performance.now()
  const codes = new CodeInbox()
  await codes.start()
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-abuse-'))
  const client = honest(codes)
  /** The relay process of the current run, killed with this process whatever happens. */
  let relayPid = 0
  const abort = (why: string, code: number) => {
    console.error(`abuse.ts: ${why}`)
    client.kill()
    if (relayPid) {
      try {
        process.kill(relayPid, 'SIGKILL')
      } catch {}
    }
    rmSync(dataDir, { recursive: true, force: true })
    process.exit(code)
  }
  setTimeout(() => abort(`still running after ${WATCHDOG_MS / 1000} s; giving up`, 2), WATCHDOG_MS).unref()
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => abort(signal, 130))
  const results: RunResult[] = []
  const runs = quick
    ? [{ label: 'quotas lifted', lifted: true, n: 1000, warmup: 200, minIntervalMs: 0, hostileMs: 8000 }]
    : [
        { label: 'quotas lifted', lifted: true, n: 2000, warmup: 200, minIntervalMs: 0, hostileMs: 20_000 },
        // Paced under the default 50 frames/s per connection, and few enough sends for the default send quota.
        { label: 'default quotas', lifted: false, n: 400, warmup: 20, minIntervalMs: 25, hostileMs: 15_000 },
      ]
  let accounts: Map<Kind, Device[]> | undefined
  try {
    for (const run of runs) {
      const spawnedAt = performance.now()
      // The first relay also hosts the setup (activations), so it always has lifted quotas.
      const lifted = run.lifted || !accounts
      for (const [k, v] of Object.entries(LIFTED_ENV)) {
        if (lifted) process.env[k] = v
        else delete process.env[k]
      }
      const relay = await startRelay(codes, dataDir, lifted ? [] : DEFAULTS, nodeArgs)
      relayPid = relay.pid
      try {
        if (!accounts) {
          await client.ask({ cmd: 'activate', url: relay.url })
          accounts = await hostileAccounts(relay.url, codes)
          console.log(
            `setup: 2 honest + 32 hostile accounts in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
          )
        }
        await client.ask({ cmd: 'connect', url: relay.url })
        const m = { cmd: 'measure', n: run.n, minIntervalMs: run.minIntervalMs } as const
        let cpu = cpuSeconds(relay.pid)
        const idle = (await client.ask({ ...m, warmup: run.warmup, capMs: 30_000 }))!
        const idleCpu = cpuSeconds(relay.pid) - cpu
        console.log(`${run.label}, idle: ${JSON.stringify(idle)}`)
        const fleet = hostileFleet(relay.url, accounts)
        const hostileFrom = performance.now()
        fleet.start()
        await sleep(HOSTILE_WARMUP_MS)
        if (debug) console.log(`warm-up: ${fmtStats(fleet.stats, HOSTILE_WARMUP_MS / 1000)}`)
        fleet.reset()
        const measureFrom = performance.now()
        const ticker = debug
          ? setInterval(
              () => console.log(`  ${fmtStats(fleet.stats, (performance.now() - measureFrom) / 1000)}`),
              2000,
            )
          : undefined
        cpu = cpuSeconds(relay.pid)
        // Same requests; no honest warm-up (the connection is warm from the idle phase, the relay from the
        // hostile warm-up); the phase ends after n round trips or hostileMs, whichever comes first.
        const hostile = (await client.ask({ ...m, warmup: 0, capMs: run.hostileMs }))!
        const hostileCpu = cpuSeconds(relay.pid) - cpu
        const hostileSeconds = (performance.now() - measureFrom) / 1000
        clearInterval(ticker)
        fleet.stop()
        const profileWindow = `${((hostileFrom - spawnedAt) / 1000).toFixed(1)}–${((performance.now() - spawnedAt) / 1000).toFixed(1)} s after the relay was spawned`
        console.log(`${run.label}, hostile: ${JSON.stringify(hostile)}`)
        console.log(`  hostile sockets: ${fmtStats(fleet.stats, hostileSeconds)}`)
        console.log(
          `  relay CPU: idle ${idleCpu.toFixed(2)} s in ${idle.seconds.toFixed(1)} s, hostile ${hostileCpu.toFixed(2)} s in ${hostileSeconds.toFixed(1)} s; hostile phase ${profileWindow}`,
        )
        results.push({
          label: run.label,
          idle,
          hostile,
          idleCpu,
          hostileCpu,
          stats: fleet.stats,
          hostileSeconds,
          profileWindow,
        })
        await sleep(300)
      } finally {
        await relay.stop()
        relayPid = 0
      }
      // Fresh abuse counters for the next run (the setup's activations would otherwise count against it).
      rmSync(join(dataDir, 'quotas.json'), { force: true })
    }
  } finally {
    client.kill()
    await codes.close()
    rmSync(dataDir, { recursive: true, force: true })
  }

  const rows: Omit<Row, 'bench'>[] = []
  const notes: string[] = [
    'honest client: its own process, one request at a time, Ping and SendMessage (a 160-byte sealed-shape envelope, to a second honest account that acks) alternating; round trip = frame written → answer read',
    `hostile: ${ONLY ? `only ${ONLY.join(', ')} (ABUSE_KINDS) of ` : ''}64 sockets from this process (32 pre-login: ${PRE_LOGIN.map(([k, n]) => `${k} ${n}`).join(', ')}; 32 post-login, one account each: ${POST_LOGIN.map(([k, n]) => `${k} ${n}`).join(', ')}), one request in flight each, ${HOSTILE_WARMUP_MS / 1000} s warm-up before the honest client measures`,
  ]
  for (const r of results) {
    rows.push(
      {
        metric: `${r.label}: honest round trip p50, 64 hostile sockets`,
        unit: 'ms',
        value: r.hostile.p50,
        baselineName: 'idle relay, same run',
        baseline: r.idle.p50,
      },
      {
        metric: `${r.label}: honest round trip p99, 64 hostile sockets`,
        unit: 'ms',
        value: r.hostile.p99,
        baselineName: 'idle relay, same run',
        baseline: r.idle.p99,
        target: 'p99 ≤ 5× idle',
        met: r.hostile.p99 <= 5 * r.idle.p99,
      },
    )
    const f2 = (x: number | null) => (x === null || !Number.isFinite(x) ? '–' : x.toFixed(2))
    const errs = (e: Record<string, number>) =>
      Object.keys(e).length ? `, honest errors ${JSON.stringify(e)}` : ''
    notes.push(
      `${r.label}: idle ${r.idle.samples} round trips in ${r.idle.seconds.toFixed(1)} s (Ping p50/p99 ${f2(r.idle.pingP50)}/${f2(r.idle.pingP99)} ms, SendMessage ${f2(r.idle.sendP50)}/${f2(r.idle.sendP99)} ms, max ${r.idle.max.toFixed(1)} ms${errs(r.idle.errors)}); hostile ${r.hostile.samples} in ${r.hostile.seconds.toFixed(1)} s (Ping ${f2(r.hostile.pingP50)}/${f2(r.hostile.pingP99)} ms, SendMessage ${f2(r.hostile.sendP50)}/${f2(r.hostile.sendP99)} ms, max ${r.hostile.max.toFixed(1)} ms${errs(r.hostile.errors)}); relay CPU ${((r.idleCpu / r.idle.seconds) * 100).toFixed(0)}% idle vs ${((r.hostileCpu / r.hostileSeconds) * 100).toFixed(0)}% hostile (of one core; OPRF workers included)`,
      `${r.label}, hostile sockets: ${fmtStats(r.stats, r.hostileSeconds)}`,
    )
    if (nodeArgs.length)
      notes.push(`${r.label}: relay run with ${nodeArgs.join(' ')}; hostile phase ${r.profileWindow}`)
  }
  record('abuse', rows, notes)
  console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`)
}

if (process.argv.includes('--honest')) await honestChild()
else {
  await bench()
  process.exit(0)
}
