// Relay scale-out benchmark (issue 8): messages/s and delivery latency (p50/p99) for one node on SQLite, one node
// on PostgreSQL, and three nodes on PostgreSQL + Redis, measured in the same run on the same machine.
// Raw protocol clients (no SDK crypto) so the figures are the relay's: each sender pipelines SendMessage frames to
// a recipient connected to a *different* node (in the 3-node case), latency = SendMessage written → Delivery read.
// Envelopes are shaped as sealed envelopes (the relay refuses anything else); a scenario in which the relay refuses
// any send fails the run instead of printing figures.
// A benchmark, not a test. Run: cd bench && npx tsx cluster.ts   (needs PostgreSQL and Redis on localhost)
import { generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { CodeInbox, type RelayProcess, spawnRelay } from '@parley/relay/testing'
import { Redis } from 'ioredis'
import pg from 'pg'
import WebSocket from 'ws'
import {
  activationPayload,
  type ClientFrameInput,
  decodeServerFrame,
  encodeClientFrame,
  kemPrekeyPayload,
  type ParleyError,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  parleyErrorFromWire,
  type ServerFrame,
  signedPrekeyPayload,
} from '../packages/protocol/src/index.js' // the source, so the bench needs no build step
import { SendTally, shapedEnvelope } from './lib.js'

const PG_URL = process.env.PARLEY_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const REDIS_URL = process.env.PARLEY_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const PAIRS = Number(process.env.PAIRS ?? 12)
const PER_SENDER = Number(process.env.PER_SENDER ?? 500)
const WINDOW = Number(process.env.WINDOW ?? 8)
const ENVELOPE_BYTES = 256
/** How long a scenario waits, after its last send was accepted, for the deliveries still missing. */
const DRAIN_MS = 60_000

// ── the relay processes ──

type Node = RelayProcess

const codes = new CodeInbox()
/** Relay processes not stopped yet (a failed scenario must not leave any running). */
const running = new Set<Node>()

async function startNode(dataDir: string, extra: string[]): Promise<Node> {
  const node = await spawnRelay({
    webhook: codes,
    dataDir,
    echoStderr: true, // the relay's stderr goes to the bench's
    readyTimeoutMs: Number.POSITIVE_INFINITY,
    args: [
      '--log-level',
      'info',
      ...['--send-capacity', '1000000', '--send-per-minute', '1000000'],
      ...['--send-bytes-capacity', String(2 ** 40), '--send-bytes-per-day', String(2 ** 40)],
      ...['--frames-burst', '1000000', '--frames-per-second', '1000000'],
      ...['--activations-per-ip-per-hour', '100000', '--max-connections-per-ip', '10000'],
      // Every sender and recipient is a fresh activation (2 × PAIRS per scenario, all from 127.0.0.1 and all
      // +1415… numbers): the SMS pumping and code limits stay out of the way of any PAIRS.
      ...['--activation-confirms-per-network-per-hour', '1000000', '--activation-pow-load-per-minute', '0'],
      ...['--sms-per-prefix-per-hour', '1000000', '--sms-per-hour', '1000000'],
      ...['--code-requests-per-hour', '1000', '--code-backoff-base-ms', '0'],
      // Recipients ack in batches of 50; unread mail must never reach a mailbox quota for any PER_SENDER.
      ...['--acks-per-second', '10000000', '--max-mailbox-messages', '10000000'],
      ...['--max-mailbox-bytes', String(2 ** 40)],
      ...extra,
    ],
    maxLines: 2000,
  })
  running.add(node)
  return node
}

const stopNode = async (n: Node) => {
  running.delete(n)
  await n.stop('SIGTERM')
}

// ── a minimal protocol client ──

class Client {
  readonly ws: WebSocket
  #next = 1
  readonly #waiters = new Map<number, (f: ServerFrame) => void>()
  onPush: (f: ServerFrame) => void = () => {}
  address!: Uint8Array

  private constructor(ws: WebSocket) {
    this.ws = ws
    ws.on('message', (data: Buffer) => {
      const f = decodeServerFrame(new Uint8Array(data))
      const w = f.requestId ? this.#waiters.get(f.requestId) : undefined
      if (w) {
        this.#waiters.delete(f.requestId)
        w(f)
      } else this.onPush(f)
    })
  }

  static async open(url: string): Promise<Client> {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    ws.binaryType = 'nodebuffer'
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    const c = new Client(ws)
    await c.request({ hello: { protocolMajor: PROTOCOL_MAJOR, protocolMinor: PROTOCOL_MINOR } })
    return c
  }

  /** Sends without waiting; resolves with the answer. */
  request(body: Omit<ClientFrameInput, 'requestId'>): Promise<ServerFrame> {
    const requestId = this.#next++
    const p = new Promise<ServerFrame>((resolve, reject) =>
      this.#waiters.set(requestId, (f) =>
        f.body === 'error' ? reject(parleyErrorFromWire(f.error!)) : resolve(f),
      ),
    )
    this.ws.send(encodeClientFrame({ requestId, ...body } as ClientFrameInput))
    return p
  }

  /** Activates a fresh identity for `number`; the connection ends authenticated. */
  async activate(number: string): Promise<void> {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519')
    const pub = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32))
    const signer = (m: Uint8Array) => new Uint8Array(sign(null, m, privateKey as KeyObject))
    const code = codes.next(number)
    const started = (await this.request({ activationStart: { phoneNumber: number, consent: true } }))
      .activationStarted!
    const spk = new Uint8Array(randomBytes(32))
    const kem = new Uint8Array(randomBytes(1184))
    const f = await this.request({
      activationConfirm: {
        activationId: started.activationId,
        code: await code,
        identityKey: pub,
        identitySignature: signer(activationPayload(started.activationId!, pub)),
        prekeys: {
          signedPrekey: { keyId: 1, publicKey: spk, signature: signer(signedPrekeyPayload(1, spk)) },
          lastResortKemPrekey: { keyId: 1, publicKey: kem, signature: signer(kemPrekeyPayload(1, kem)) },
          oneTimePrekeys: [],
          oneTimeKemPrekeys: [],
        },
      },
    })
    this.address = f.activated!.address!
  }

  close(): void {
    this.ws.close()
  }
}

// ── one scenario ──

interface Result {
  name: string
  messages: number
  /** Sends answered MessageAccepted / refused (an Error answer). */
  accepted: number
  refused: number
  seconds: number
  perSecond: number
  p50: number
  p99: number
}

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

let numberSeq = 0
const nextNumber = () => `+1415${String(5_000_000 + numberSeq++).padStart(7, '0')}`

async function scenario(name: string, nodes: Node[]): Promise<Result> {
  const senders: Client[] = []
  const receivers: Client[] = []
  for (let i = 0; i < PAIRS; i++) {
    // In a cluster, a sender and its recipient sit on different nodes: every delivery crosses Redis.
    const s = await Client.open(nodes[i % nodes.length]!.url)
    const r = await Client.open(nodes[(i + 1) % nodes.length]!.url)
    await s.activate(nextNumber())
    await r.activate(nextNumber())
    await r.request({ syncMailbox: { afterSeq: 0 } })
    senders.push(s)
    receivers.push(r)
  }
  const sentAt = new Map<string, number>()
  const latencies: number[] = []
  const total = PAIRS * PER_SENDER
  const sends = new SendTally('sends')
  const acks = new SendTally('acks')
  let done!: () => void
  const finished = new Promise<void>((r) => {
    done = r
  })
  for (const r of receivers) {
    let pending: number[] = []
    r.onPush = (f) => {
      if (f.body !== 'delivery') return
      const d = f.delivery!
      const id = Buffer.from(d.messageId!).toString('hex')
      const t0 = sentAt.get(id)
      if (t0 !== undefined) {
        sentAt.delete(id)
        latencies.push(performance.now() - t0)
        if (latencies.length === total) done()
      }
      pending.push(d.seq!)
      if (pending.length >= 50) {
        r.request({ ackMessages: { seqs: pending } }).then(
          () => acks.accept(),
          (err: ParleyError) => acks.refuse(err.code, err.message),
        )
        pending = []
      }
    }
  }
  const envelope = shapedEnvelope(ENVELOPE_BYTES)
  const start = performance.now()
  await Promise.all(
    senders.map(async (s, i) => {
      const to = receivers[i]!.address
      let next = 0
      // WINDOW requests in flight per sender: each answer (MessageAccepted) releases the next send.
      const lane = async () => {
        while (next < PER_SENDER) {
          next++
          const messageId = new Uint8Array(randomBytes(16))
          const id = Buffer.from(messageId).toString('hex')
          sentAt.set(id, performance.now())
          try {
            await s.request({
              sendMessage: { recipientAddress: to, recipientDeviceId: 1, messageId, envelope },
            })
            sends.accept()
          } catch (err) {
            sentAt.delete(id)
            sends.refuse((err as ParleyError).code ?? 'CLIENT', (err as Error).message)
          }
        }
      }
      await Promise.all(Array.from({ length: WINDOW }, lane))
    }),
  )
  let drained: ReturnType<typeof setTimeout> | undefined
  if (sends.refused === 0) {
    await Promise.race([
      finished,
      new Promise<void>((resolve) => {
        drained = setTimeout(resolve, DRAIN_MS)
      }),
    ])
  }
  clearTimeout(drained)
  const seconds = (performance.now() - start) / 1000
  for (const c of [...senders, ...receivers]) c.close()
  console.log(`${name}: ${sends.summary()}; ${acks.summary()}; delivered ${latencies.length}`)
  sends.assertNoneRefused(name)
  acks.assertNoneRefused(name)
  if (latencies.length < total) {
    throw new Error(
      `${name}: ${total - latencies.length} accepted messages not delivered within ${DRAIN_MS} ms`,
    )
  }
  latencies.sort((a, b) => a - b)
  return {
    name,
    messages: total,
    accepted: sends.accepted,
    refused: sends.refused,
    seconds,
    perSecond: total / seconds,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
  }
}

// ── main ──

async function main(): Promise<void> {
  await codes.start()
  const tag = `bench_${Date.now().toString(36)}`
  const dirs: string[] = []
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'parley-bench-'))
    dirs.push(d)
    return d
  }
  const hashKey = randomBytes(32).toString('hex')
  const results: Result[] = []
  const schemas: string[] = []
  try {
    {
      const n = await startNode(dir(), [])
      results.push(await scenario('1 node, SQLite', [n]))
      await stopNode(n)
    }
    {
      const schema = `${tag}_pg1`
      schemas.push(schema)
      const n = await startNode(dir(), ['--store', `${PG_URL}?schema=${schema}`])
      results.push(await scenario('1 node, PostgreSQL', [n]))
      await stopNode(n)
    }
    {
      const schema = `${tag}_pg3`
      schemas.push(schema)
      const shared = dir()
      const args = [
        ...['--store', `${PG_URL}?schema=${schema}`],
        ...['--redis', `${REDIS_URL}?prefix=${tag}:`, '--number-hash-key', hashKey],
      ]
      const first = await startNode(shared, args)
      const rest = await Promise.all([startNode(shared, args), startNode(shared, args)])
      const nodes = [first, ...rest]
      results.push(await scenario('3 nodes, PostgreSQL + Redis', nodes))
      await Promise.all(nodes.map(stopNode))
    }
  } finally {
    await Promise.all([...running].map(stopNode))
    await codes.close()
    const admin = new pg.Client({ connectionString: PG_URL })
    await admin.connect()
    for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`)
    await admin.end()
    const redis = new Redis(REDIS_URL)
    const keys = await redis.keys(`${tag}:*`)
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }

  console.log(
    `\nNode ${process.version}, ${process.platform}/${process.arch}, ${cpus().length} cores; ${PAIRS} sender→recipient ` +
      `pairs, ${PER_SENDER} messages each, ${WINDOW} in flight per sender, ${ENVELOPE_BYTES}-byte envelopes\n`,
  )
  console.log('| setup | messages | accepted | refused | messages/s | p50 ms | p99 ms |')
  console.log('|---|---:|---:|---:|---:|---:|---:|')
  for (const r of results) {
    console.log(
      `| ${r.name} | ${r.messages} | ${r.accepted} | ${r.refused} | ${r.perSecond.toFixed(0)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} |`,
    )
  }
}

await main()
