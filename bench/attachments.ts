// Attachment throughput (issue 19): one file sent with sendAttachment and fetched with downloadAttachment through a
// relay process — client encryption, the BlobUploadRequest, the PUT of the blob, the end-to-end message, the GET
// and the decryption with its digest check all included — against a plain HTTP upload and download of the same
// bytes to a bare Node server (node:http, the body streamed to a file and back, fsynced as the relay's blob store
// does) in the same run. Figure: bytes per second, Parley's against plain HTTP's. Target ≥ 0.5×.
// Rounds alternate (which goes first alternates too); medians over the rounds.
// Run alone: cd bench && npx tsx attachments.ts [--quick]   (ATTACHMENT_MIB, ATTACHMENT_ROUNDS)
import { randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { CodeInbox } from '@parley/relay/testing'
import { createClient, type ParleyClient } from '../packages/node/src/index.js'
import { percentile, record, startRelay } from './lib.js'

const quick = process.argv.includes('--quick')
const MIB = Number(process.env.ATTACHMENT_MIB ?? (quick ? 20 : 100))
const ROUNDS = Number(process.env.ATTACHMENT_ROUNDS ?? (quick ? 2 : 3))
const TARGET = 0.5
const SIZE = MIB * 1024 * 1024

const median = (xs: number[]) => percentile(xs, 50)
const seconds = (since: bigint) => Number(process.hrtime.bigint() - since) / 1e9

/** The baseline: a bare Node HTTP server that stores a PUT body in a file (fsynced) and serves it back. */
async function plainServer(dir: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = join(dir, 'plain.bin')
    if (req.method === 'PUT') {
      pipeline(req, createWriteStream(path))
        .then(async () => {
          const handle = await open(path, 'r+')
          await handle.sync()
          await handle.close()
          res.writeHead(201).end()
        })
        .catch(() => res.writeHead(500).end())
      return
    }
    res.writeHead(200, { 'content-length': statSync(path).size, 'content-type': 'application/octet-stream' })
    createReadStream(path).pipe(res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return {
    url: `http://127.0.0.1:${address.port}/file`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

/** One plain round trip of `data`: PUT, then GET into memory. Resolves its seconds. */
async function plainRound(url: string, data: Uint8Array): Promise<number> {
  const started = process.hrtime.bigint()
  const put = await fetch(url, { method: 'PUT', body: data as Uint8Array<ArrayBuffer> })
  if (put.status !== 201) throw new Error(`plain PUT: HTTP ${put.status}`)
  const got = new Uint8Array(await (await fetch(url)).arrayBuffer())
  const took = seconds(started)
  if (got.length !== data.length) throw new Error('plain GET: wrong length')
  return took
}

const codes = new CodeInbox()
await codes.start()
const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-attachments-'))
const plainDir = mkdtempSync(join(tmpdir(), 'parley-bench-plain-'))
const relay = await startRelay(codes, dataDir, [
  '--blob-max-bytes',
  String(SIZE),
  '--blob-bytes-per-account',
  String(8 * SIZE),
])
const plain = await plainServer(plainDir)
const clients: ParleyClient[] = []

async function activated(number: string): Promise<ParleyClient> {
  const client = await createClient({
    relayUrl: relay.baseUrl,
    defaultRegion: 'US',
    receipts: { delivery: false },
  })
  clients.push(client)
  const pending = await client.activate({ phoneNumber: number, consent: true })
  await client.confirm(await codes.next(pending.e164))
  return client
}

try {
  const alice = await activated('+14155550100')
  const bob = await activated('+14155550101')
  const arrived = new Set<string>()
  const waiting = new Map<string, () => void>()
  bob.on('message', (m) => {
    arrived.add(m.id)
    waiting.get(m.id)?.()
  })
  const arrival = (id: string) =>
    arrived.has(id) ? Promise.resolve() : new Promise<void>((resolve) => waiting.set(id, resolve))
  // Sessions both ways, so that the timed messages are plain ratchet messages.
  await alice.send('+14155550101', 'hello')
  await bob.send('+14155550100', 'hello back')

  /** One Parley round trip of `data`: sendAttachment until bob has the message, then downloadAttachment. */
  const parleyRound = async (data: Uint8Array): Promise<number> => {
    const started = process.hrtime.bigint()
    const { id } = await alice.sendAttachment('+14155550101', { data, mimeType: 'application/octet-stream' })
    await arrival(id)
    const bytes = await bob.downloadAttachment(id)
    const took = seconds(started)
    if (bytes.length !== data.length || bytes[data.length - 1] !== data[data.length - 1])
      throw new Error('the downloaded file differs')
    return took
  }

  const data = new Uint8Array(randomBytes(SIZE))
  // Warm-up of both paths (JIT, the relay's blob directory, the plain server's file).
  await plainRound(plain.url, data.subarray(0, 1024 * 1024))
  await parleyRound(data.subarray(0, 1024 * 1024))
  const parleyS: number[] = []
  const plainS: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? ['parley', 'plain'] : ['plain', 'parley']
    for (const which of order) {
      if (which === 'parley') parleyS.push(await parleyRound(data))
      else plainS.push(await plainRound(plain.url, data))
    }
    console.log(
      `round ${round + 1}: parley ${parleyS.at(-1)!.toFixed(2)} s, plain HTTP ${plainS.at(-1)!.toFixed(2)} s`,
    )
  }
  const parleyMiBs = MIB / median(parleyS)
  const plainMiBs = MIB / median(plainS)
  const ratio = parleyMiBs / plainMiBs
  record(
    'attachments',
    [
      {
        metric: `${MIB} MiB attachment up + down through the relay, client encryption included`,
        unit: 'MiB/s',
        value: parleyMiBs,
        baselineName: 'plain HTTP PUT + GET to a bare Node server, same run',
        baseline: plainMiBs,
        lowerIsBetter: false,
        target: `≥ ${TARGET}×`,
        met: ratio >= TARGET,
      },
    ],
    [
      `rounds: parley ${parleyS.map((s) => s.toFixed(2)).join(', ')} s; plain ${plainS.map((s) => s.toFixed(2)).join(', ')} s (medians)`,
      'parley: encrypt (chunked ChaCha20-Poly1305, node:crypto), BlobUploadRequest, PUT, message to bob, GET, decrypt + digest; plain: PUT (fsynced) + GET',
    ],
  )
} finally {
  await Promise.allSettled(clients.map((c) => c.close()))
  await plain.close()
  await relay.close()
  await codes.close()
  rmSync(dataDir, { recursive: true, force: true })
  rmSync(plainDir, { recursive: true, force: true })
}
