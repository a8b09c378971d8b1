// Relay throughput and latency (issue 9, items 1 and 2). Four senders → four receivers on loopback, through
// (a) the relay process (SQLite, durable: written before MessageAccepted, deleted on ack) and (b) the baseline,
// forwarder.ts (same frames, in memory, nothing else), at fixed offered loads and then saturated; then the SDK
// path (two @parley/node clients: encrypt → relay → decrypt → ack) at the lowest load, against (a).
// Envelopes are shaped as sealed envelopes (the relay refuses anything else); a run in which the relay refuses
// any send or ack fails instead of printing figures.
// Run alone: cd bench && npx tsx relay.ts [--quick]
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parleyErrorFromWire, type ServerFrame } from '@parley/protocol'
import { CodeInbox } from '@parley/relay/testing'
import { createClient } from '../packages/node/src/index.js'
import {
  percentile,
  type Row,
  record,
  runScript,
  SendTally,
  shapedCiphertextOffset,
  shapedEnvelope,
  sleep,
  startRelay,
} from './lib.js'
import { activate, type Device, login, RawClient } from './rawClient.js'

const quick = process.argv.includes('--quick')
/** Only the SDK path, against no baseline (for profiling the SDK clients with --cpu-prof). */
const sdkOnly = process.argv.includes('--sdk-only')
const PAIRS = 4
const LOADS = quick ? [500] : [500, 1000, 2000]
const SECONDS = quick ? 2 : 4
const ENVELOPE_BYTES = 256
/** The send timestamp goes at the start of the shaped envelope's ciphertext. */
const STAMP_AT = shapedCiphertextOffset(ENVELOPE_BYTES)
/**
 * Limits raised on top of lib.ts' BENCH_RELAY_ARGS for this bench: at saturation each receiver acks ~6,000
 * seqs/s (the default budget is 2,000 per connection, and a refused ack lets unread mail pile up until
 * MAILBOX_FULL); the per-account send-byte budget (256 MiB) and the mailbox quotas, which a faster machine's
 * saturated run could reach; the SMS, code and activation limits so that the 12 activations never meet them.
 */
const RELAY_ARGS = [
  '--acks-per-second',
  '10000000',
  ...['--send-bytes-capacity', String(2 ** 40), '--send-bytes-per-day', String(2 ** 40)],
  ...['--max-mailbox-messages', '10000000', '--max-mailbox-bytes', String(2 ** 40)],
  ...['--sms-per-prefix-per-hour', '1000000', '--sms-per-hour', '1000000'],
  ...['--code-requests-per-hour', '1000', '--code-backoff-base-ms', '0'],
  ...['--activation-confirms-per-network-per-hour', '1000000', '--activation-pow-load-per-minute', '0'],
]

interface Endpoint {
  name: string
  /** Sender and receiver connections, already authenticated. */
  pairs: { from: RawClient; to: RawClient; toDevice: Device }[]
}

interface Result {
  sent: number
  /** Sends answered MessageAccepted / refused (an Error frame). */
  accepted: number
  refused: number
  delivered: number
  msgsPerSec: number
  p50: number
  p99: number
}

/** Counts an Error answer under its code. */
function refused(tally: SendTally, f: ServerFrame): void {
  const e = parleyErrorFromWire(f.error!)
  tally.refuse(e.code, e.message)
}

/** Drives `rate` msg/s (0 = saturate with a window of 64 in flight per sender) for `seconds`. */
async function drive(ep: Endpoint, rate: number, seconds: number): Promise<Result> {
  const latencies: number[] = []
  const sends = new SendTally('sends')
  const acks = new SendTally('acks')
  let delivered = 0
  let sent = 0
  let lastDelivery = 0
  const inflight = new Array(ep.pairs.length).fill(0)
  const toAck = ep.pairs.map(() => [] as number[])
  ep.pairs.forEach(({ to }, i) => {
    to.onPush = (f: ServerFrame) => {
      if (f.body !== 'delivery') return
      const d = f.delivery!
      const env = d.envelope!
      latencies.push(performance.now() - new DataView(env.buffer, env.byteOffset + STAMP_AT, 8).getFloat64(0))
      delivered++
      lastDelivery = performance.now()
      toAck[i]!.push(Number(d.seq))
    }
  })
  const acker = setInterval(() => {
    ep.pairs.forEach(({ to }, i) => {
      // At most 500 seqs per frame, the relay's default --max-acks-per-frame.
      while (toAck[i]!.length) {
        to.send({ ackMessages: { seqs: toAck[i]!.splice(0, 500) } }, (f) =>
          f.body === 'error' ? refused(acks, f) : acks.accept(),
        )
      }
    })
  }, 10)
  const sendOne = (i: number) => {
    const { from, toDevice } = ep.pairs[i]!
    const envelope = shapedEnvelope(ENVELOPE_BYTES)
    new DataView(envelope.buffer).setFloat64(STAMP_AT, performance.now())
    inflight[i]++
    sent++
    from.send(
      {
        sendMessage: {
          recipientAddress: toDevice.address,
          recipientDeviceId: toDevice.deviceId,
          messageId: new Uint8Array(randomBytes(16)),
          envelope,
        },
      },
      (f) => {
        inflight[i]--
        if (f.body === 'error') return refused(sends, f)
        sends.accept()
        if (rate === 0 && performance.now() < end) sendOne(i)
      },
    )
  }
  const start = performance.now()
  const end = start + seconds * 1000
  if (rate === 0) {
    for (let i = 0; i < ep.pairs.length; i++) for (let w = 0; w < 64; w++) sendOne(i)
    await sleep(seconds * 1000)
  } else {
    let next = 0
    while (performance.now() < end) {
      const due = Math.floor(((performance.now() - start) / 1000) * rate)
      while (sent < due) sendOne(next++ % ep.pairs.length)
      await sleep(2)
    }
  }
  const deadline = performance.now() + 20_000
  while (
    (sends.accepted + sends.refused < sent || delivered < sends.accepted) &&
    performance.now() < deadline
  ) {
    await sleep(10)
  }
  clearInterval(acker)
  await sleep(50)
  const label = `${ep.name} at ${rate === 0 ? 'saturation' : `${rate} msg/s`}`
  console.log(`${label}: ${sends.summary()}; ${acks.summary()}; delivered ${delivered}`)
  sends.assertNoneRefused(label)
  acks.assertNoneRefused(label)
  if (sends.accepted < sent) throw new Error(`${label}: ${sent - sends.accepted} sends never answered`)
  if (delivered < sends.accepted) {
    throw new Error(`${label}: ${sends.accepted - delivered} accepted messages never delivered`)
  }
  const window = rate === 0 ? seconds * 1000 : Math.max(seconds * 1000, lastDelivery - start)
  return {
    sent,
    accepted: sends.accepted,
    refused: sends.refused,
    delivered,
    msgsPerSec: (delivered / window) * 1000,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  }
}

async function forwarderEndpoint(): Promise<{ ep: Endpoint; stop: () => void; pid: number }> {
  const child = runScript('forwarder.ts')
  const port = await new Promise<number>((resolve) =>
    child.onLine((line) => {
      if (line.includes('forwarder listening')) resolve(JSON.parse(line).port)
    }),
  )
  const url = `ws://127.0.0.1:${port}`
  const pairs: Endpoint['pairs'] = []
  for (let i = 0; i < PAIRS; i++) {
    const dev = (n: number): Device => ({
      identity: undefined as never,
      address: new Uint8Array(32).fill(n),
      deviceId: 1,
    })
    const from = await RawClient.open(url)
    await from.request({ authenticate: { address: dev(100 + i).address, deviceId: 1 } })
    const to = await RawClient.open(url)
    await to.request({ authenticate: { address: dev(i + 1).address, deviceId: 1 } })
    await to.request({ syncMailbox: { afterSeq: 0 } })
    pairs.push({ from, to, toDevice: dev(i + 1) })
  }
  return { ep: { name: 'forwarder', pairs }, stop: () => process.kill(child.pid, 'SIGTERM'), pid: child.pid }
}

async function relayEndpoint(url: string, codes: CodeInbox): Promise<Endpoint> {
  const code = (e164: string) => codes.next(e164)
  const pairs: Endpoint['pairs'] = []
  for (let i = 0; i < PAIRS; i++) {
    const a = await RawClient.open(url)
    const from = await activate(a, `+1415555${String(1000 + i)}`, code)
    a.close()
    const b = await RawClient.open(url)
    const toDevice = await activate(b, `+1415555${String(2000 + i)}`, code)
    b.close()
    const fromConn = await login(url, from)
    const toConn = await login(url, toDevice)
    await toConn.request({ syncMailbox: { afterSeq: 0 } })
    pairs.push({ from: fromConn, to: toConn, toDevice })
  }
  return { name: 'relay', pairs }
}

/**
 * Error frames the relay has sent so far, by code (`parley_relay_errors_total` at `url`, its metrics listener).
 * @throws Error when /metrics cannot be read: no count must pass for "nothing refused"
 */
async function relayErrors(url: string): Promise<Map<string, number>> {
  const res = await fetch(url)
  const text = await res.text()
  if (!res.ok || !text.includes('parley_relay_messages_accepted_total')) {
    throw new Error(`cannot read the relay's error counter at ${url} (HTTP ${res.status})`)
  }
  const out = new Map<string, number>()
  for (const m of text.matchAll(/^parley_relay_errors_total\{code="([^"]+)"\} (\d+)$/gm)) {
    out.set(m[1]!, Number(m[2]))
  }
  return out
}

/**
 * Two @parley/node clients; Alice sends `rate` msg/s for `seconds`; latency is send() → Bob's message event.
 * The SDK retries a RATE_LIMITED or MAILBOX_FULL send by itself, so refusals are counted from the relay's
 * error counter over the measured sends (accepted: Alice's `delivered` events; any `sendFailed` fails too).
 */
async function sdkPath(baseUrl: string, codes: CodeInbox, rate: number, seconds: number): Promise<Result> {
  const make = async (n: string) => {
    const c = await createClient({ relayUrl: baseUrl, defaultRegion: 'US' })
    const pending = await c.activate({ phoneNumber: n, consent: true })
    await c.confirm(await codes.next(pending.e164))
    return c
  }
  const alice = await make(`+1415555${3000 + rate / 10}`)
  const bobNumber = `+1415555${6000 + rate / 10}`
  const bob = await make(bobNumber)
  const latencies: number[] = []
  let delivered = 0
  let last = 0
  bob.on('message', (m) => {
    latencies.push(performance.now() - Number(m.text.split(' ')[0]))
    delivered++
    last = performance.now()
  })
  await alice.send(bobNumber, `${performance.now()} warm-up`)
  while (delivered < 1) await sleep(10)
  latencies.length = 0
  delivered = 0
  const tally = new SendTally('SDK sends')
  alice.on('delivered', () => tally.accept())
  const failed: string[] = []
  alice.on('sendFailed', (e) => failed.push(`${e.error.code}: ${e.error.message}`))
  const errorsBefore = await relayErrors(relay.metricsUrl)
  const start = performance.now()
  let sent = 0
  const sends: Promise<unknown>[] = []
  while (performance.now() - start < seconds * 1000) {
    const due = Math.floor(((performance.now() - start) / 1000) * rate)
    while (sent < due) {
      sends.push(alice.send(bobNumber, `${performance.now()} message ${sent}`))
      sent++
    }
    await sleep(2)
  }
  await Promise.all(sends)
  const deadline = performance.now() + 60_000
  while ((delivered < sent || tally.accepted + tally.refused < sent) && performance.now() < deadline) {
    await sleep(10)
  }
  for (const [code, n] of await relayErrors(relay.metricsUrl)) {
    const more = n - (errorsBefore.get(code) ?? 0)
    for (let i = 0; i < more; i++) tally.refuse(code, 'relay error counter')
  }
  await alice.close()
  await bob.close()
  const label = `SDK at ${rate} msg/s`
  console.log(`${label}: sent ${sent}, ${tally.summary()}; delivered ${delivered}`)
  tally.assertNoneRefused(label)
  if (failed.length > 0) throw new Error(`${label}: ${failed.length} sends failed (${failed[0]})`)
  if (delivered < sent) throw new Error(`${label}: ${sent - delivered} messages never delivered`)
  return {
    sent,
    accepted: tally.accepted,
    refused: tally.refused,
    delivered,
    msgsPerSec: (delivered / Math.max(seconds * 1000, last - start)) * 1000,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  }
}

const codes = new CodeInbox()
await codes.start()
const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-relay-'))
const relay = await startRelay(
  codes,
  dataDir,
  RELAY_ARGS,
  process.env.BENCH_RELAY_NODE_ARGS?.split(' ') ?? [],
)
/** Stops the forwarder once it is started (each stop at most once). */
let stopForwarder = () => {}

/** The measured run; throws when the relay refused a send (after which nothing it printed would be a figure). */
async function run(): Promise<{ rows: Omit<Row, 'bench'>[]; notes: string[] } | undefined> {
  if (sdkOnly) {
    console.log(
      JSON.stringify(await sdkPath(relay.baseUrl, codes, Number(process.env.SDK_RATE ?? LOADS[0]), SECONDS)),
    )
    return undefined
  }
  const fwd = await forwarderEndpoint()
  stopForwarder = () => {
    stopForwarder = () => {}
    fwd.stop()
  }
  const rel = await relayEndpoint(relay.url, codes)

  const rows: Omit<Row, 'bench'>[] = []
  const results: Record<string, Result> = {}
  const counts: string[] = []
  for (const load of [...LOADS, 0]) {
    // Alternate which goes first so that neither always runs on a warmer machine.
    const f = await drive(fwd.ep, load, SECONDS)
    const r = await drive(rel, load, SECONDS)
    const label = load === 0 ? 'saturated (64 in flight per sender)' : `${load} msg/s offered`
    results[label] = r
    counts.push(`${label}: ${r.accepted} accepted / ${r.refused} refused`)
    console.log(`${label}: relay ${JSON.stringify(r)}\n  forwarder ${JSON.stringify(f)}`)
    rows.push({
      metric: `${label}: delivered msg/s`,
      unit: 'msg/s',
      value: r.msgsPerSec,
      baselineName: 'forwarder',
      baseline: f.msgsPerSec,
      lowerIsBetter: false,
      ...(load === 0 ? { target: 'relay ≥ 0.5× forwarder', met: r.msgsPerSec >= 0.5 * f.msgsPerSec } : {}),
    })
    if (load === 0) continue
    rows.push({
      metric: `${label}: p50 latency`,
      unit: 'ms',
      value: r.p50,
      baselineName: 'forwarder',
      baseline: f.p50,
    })
    rows.push({
      metric: `${label}: p99 latency`,
      unit: 'ms',
      value: r.p99,
      baselineName: 'forwarder',
      baseline: f.p99,
      ...(load === 1000 ? { target: 'p99 ≤ 20 ms', met: r.p99 <= 20 } : {}),
    })
  }
  for (const p of [...fwd.ep.pairs, ...rel.pairs]) {
    p.from.close()
    p.to.close()
  }
  stopForwarder()

  const sdkNotes: string[] = []
  for (const rate of LOADS.slice(0, 2)) {
    const sdk = await sdkPath(relay.baseUrl, codes, rate, SECONDS)
    console.log(`SDK ${rate} msg/s: ${JSON.stringify(sdk)}`)
    sdkNotes.push(
      `SDK ${rate} msg/s: ${sdk.delivered}/${sdk.sent} delivered, ${sdk.accepted} accepted / ${sdk.refused} refused`,
    )
    const raw = results[`${rate} msg/s offered`]!
    rows.push(
      {
        metric: `SDK e2e, ${rate} msg/s offered: delivered msg/s`,
        unit: 'msg/s',
        value: sdk.msgsPerSec,
        baselineName: 'raw relay (1)',
        baseline: raw.msgsPerSec,
        lowerIsBetter: false,
      },
      {
        metric: `SDK e2e, ${rate} msg/s: p50 latency`,
        unit: 'ms',
        value: sdk.p50,
        baselineName: 'raw relay (1)',
        baseline: raw.p50,
      },
      {
        metric: `SDK e2e, ${rate} msg/s: p99 latency`,
        unit: 'ms',
        value: sdk.p99,
        baselineName: 'raw relay (1)',
        baseline: raw.p99,
      },
    )
  }
  return {
    rows,
    notes: [
      `${PAIRS} senders → ${PAIRS} receivers, ${ENVELOPE_BYTES}-byte sealed-shape envelopes, ${SECONDS} s per load; latency = send → Delivery push at the receiver (same process clock)`,
      `relay sends: ${counts.join('; ')}`,
      `SDK rows: one @parley/node client → another (node:crypto fast path); latency = send() call → 'message' event; ${sdkNotes.join('; ')}`,
    ],
  }
}

let outcome: Awaited<ReturnType<typeof run>>
let failed = false
try {
  outcome = await run()
} catch (err) {
  failed = true
  console.error(err instanceof Error ? err.message : String(err))
} finally {
  stopForwarder()
  await relay.stop()
  await codes.close()
  rmSync(dataDir, { recursive: true, force: true })
}
if (outcome) record('relay', outcome.rows, outcome.notes)
process.exit(failed ? 1 : 0)
