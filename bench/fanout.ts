// Linked-devices fan-out cost (issue 18). One message to a contact with 5 devices (primary + 4 linked), plus the
// sent transcripts to the sender's 4 other devices — 9 envelopes — against a single-device send (one device each
// side), in the same run: the sender's CPU per message, from send() until the relay accepted every copy
// (`delivered` and the outbox empty), after warm-up (every session established and answered, so both sides send
// plain ratchet messages by unidentified delivery). Target: ≤ 6× the single-device send.
// Each sender is alone in its own child process (fanoutSender.ts) and measures itself with process.cpuUsage(), so
// no receiver's decryption is mixed in; every receiving device is an @parley/node client in this process (its
// CPU per message per device is the second figure), the relay a process of its own (/proc). The two
// configurations alternate in rounds (which goes first alternates too); medians over the rounds.
// Run alone: cd bench && npx tsx fanout.ts [--quick]   (FANOUT_MESSAGES, FANOUT_ROUNDS; FANOUT_PROF_DIR=dir
// runs the senders with --cpu-prof into dir/sender-multi and dir/sender-single)
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CodeInbox } from '@parley/relay/testing'
import { createClient, type ParleyClient } from '../packages/node/src/index.js'
import type { BatchResult, SenderMessage, SenderRequest } from './fanoutSender.js'
import { cpuSeconds, percentile, type Row, record, sleep, startRelay } from './lib.js'

const quick = process.argv.includes('--quick')
/** Messages per configuration per round. */
const MESSAGES = Number(process.env.FANOUT_MESSAGES ?? (quick ? 50 : 200))
const ROUNDS = Number(process.env.FANOUT_ROUNDS ?? (quick ? 3 : 5))
/** Warm-up messages per configuration once every session was answered (the first carries a DH step per session). */
const WARM_UP = 100
const TEXT_BYTES = 160
/** Linked devices besides the primary, on each side of the multi-device configuration. */
const LINKED = 4
const TARGET = 6
const PROF_DIR = process.env.FANOUT_PROF_DIR

/**
 * Limits raised on top of lib.ts' BENCH_RELAY_ARGS: the unidentified-delivery quotas, charged per copy (a message
 * to a 5-device contact costs 5 of the recipient's 600 burst / 300 per minute, and every sender here is on
 * 127.0.0.1, one source network) — left at their defaults, the multi-device sender meets RATE_LIMITED after ~120
 * messages and then re-seals its whole window on every retry (240 ms of CPU per message instead of 15); the
 * activation and SMS limits, so that the 4 activations never meet them; acks unthrottled.
 */
const RELAY_ARGS = [
  '--acks-per-second',
  '10000000',
  ...['--unidentified-recipient-capacity', '10000000', '--unidentified-recipient-per-minute', '10000000'],
  ...['--unidentified-network-capacity', '10000000', '--unidentified-network-per-minute', '10000000'],
  ...['--sms-per-prefix-per-hour', '1000000', '--sms-per-hour', '1000000'],
  ...['--code-requests-per-hour', '1000', '--code-backoff-base-ms', '0'],
  ...['--activation-confirms-per-network-per-hour', '1000000', '--activation-pow-load-per-minute', '0'],
]

const A = '+14155550100' // multi: the measured sender's account (its primary in a child process)
const B = '+14155550200' // multi: the contact, 5 devices here
const C = '+14155550300' // single: the measured sender (child process)
const D = '+14155550400' // single: the contact, 1 device here

/** A sender child process (fanoutSender.ts), driven over IPC. */
class Sender {
  readonly pid: number
  readonly #proc: ReturnType<typeof spawn>
  readonly #waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>()
  #next = 0

  constructor(
    readonly name: string,
    codes: CodeInbox,
  ) {
    // One directory per sender, default file names: tsx's loader thread writes a profile of its own.
    const prof = PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${join(PROF_DIR, name)}`] : []
    this.#proc = spawn(
      process.execPath,
      [...prof, '--conditions=parley-source', '--import', 'tsx', 'fanoutSender.ts'],
      { cwd: fileURLToPath(new URL('.', import.meta.url)), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
    )
    this.pid = this.#proc.pid!
    this.#proc.on('message', (m: SenderMessage) => {
      if ('ask' in m) {
        codes.next(m.e164).then((code) => this.#proc.send({ answer: m.ask, code }))
        return
      }
      const w = this.#waiting.get(m.id)
      this.#waiting.delete(m.id)
      if (m.error !== undefined) w?.reject(new Error(`${name}: ${m.error}`))
      else w?.resolve(m.result)
    })
    this.#proc.once('exit', (code) => {
      for (const w of this.#waiting.values()) w.reject(new Error(`${name} exited with ${code}`))
      this.#waiting.clear()
    })
  }

  call<T>(op: SenderRequest['op'], args?: SenderRequest['args']): Promise<T> {
    const id = this.#next++
    return new Promise<T>((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.#proc.send({ id, op, args } satisfies SenderRequest)
    })
  }

  /** Closes the client and waits for the process to exit (so that a --cpu-prof profile is written). */
  async close(): Promise<void> {
    if (this.#proc.exitCode !== null) return
    const exited = new Promise((r) => this.#proc.once('exit', r))
    await this.call('close').catch(() => {})
    await Promise.race([exited, sleep(10_000)])
    if (this.#proc.exitCode === null) this.#proc.kill('SIGKILL')
  }
}

/** A receiving device in this process, counting what it was shown. */
interface Receiver {
  name: string
  client: ParleyClient
  got: number
}

async function until(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 120_000) {
  const start = Date.now()
  while (!(await predicate())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

/**
 * Error frames and quota refusals the relay counted so far (`parley_relay_errors_total` and
 * `parley_relay_rate_limited_total` at its metrics listener), by code or scope: a refused send measures retries.
 * @throws Error when /metrics cannot be read: no count must pass for "nothing refused"
 */
async function relayRefusals(): Promise<Map<string, number>> {
  const res = await fetch(relay.metricsUrl)
  const text = await res.text()
  if (!res.ok || !text.includes('parley_relay_messages_accepted_total')) {
    throw new Error(`cannot read the relay's metrics at ${relay.metricsUrl} (HTTP ${res.status})`)
  }
  const out = new Map<string, number>()
  for (const m of text.matchAll(
    /^parley_relay_(errors|rate_limited)_total\{(?:code|scope)="([^"]+)"\} (\d+)$/gm,
  )) {
    out.set(`${m[1]} ${m[2]}`, Number(m[3]))
  }
  return out
}

const median = (xs: number[]) => percentile(xs, 50)
const cpuMsSelf = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

const codes = new CodeInbox()
await codes.start()
const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-fanout-'))
const relay = await startRelay(codes, dataDir, RELAY_ARGS)
const senders: Sender[] = []
const receivers: Receiver[] = []

const receiver = async (name: string, number?: string): Promise<Receiver> => {
  const client = await createClient({
    relayUrl: relay.baseUrl,
    defaultRegion: 'US',
    reconnect: { minDelayMs: 50, maxDelayMs: 1000 },
  })
  const r: Receiver = { name, client, got: 0 }
  client.on('message', () => r.got++)
  client.on('sendFailed', (e) => console.error(`${name}: send failed: ${e.error.code}: ${e.error.message}`))
  client.on('error', (e) => console.error(`${name}: ${e.code}: ${e.message}`))
  if (number !== undefined) {
    const pending = await client.activate({ phoneNumber: number, consent: true })
    await client.confirm(await codes.next(pending.e164))
  }
  receivers.push(r)
  return r
}

/** Links `devices` to the account whose primary is `createCode` (a link code each, one at a time). */
async function link(
  createCode: () => Promise<string>,
  awaitLinked: () => Promise<number>,
  devices: Receiver[],
): Promise<void> {
  for (const d of devices) {
    const code = await createCode()
    const [account, deviceId] = await Promise.all([d.client.link(code), awaitLinked()])
    if (account.deviceId !== deviceId)
      throw new Error(`${d.name}: linked as ${account.deviceId}, not ${deviceId}`)
  }
}

interface Config {
  name: string
  sender: Sender
  to: string
  /** Every device a message reaches: the contact's, then the sender's other devices (transcripts). */
  reach: Receiver[]
}

/** One measured batch: the sender's own CPU, this process's (the receivers) and the relay's. */
interface Sample {
  sender: BatchResult
  receiverCpuMs: number
  relayCpuMs: number
}

async function measure(cfg: Config, count: number): Promise<Sample> {
  const before = cfg.reach.map((r) => r.got)
  const self0 = cpuMsSelf()
  const relay0 = cpuSeconds(relay.pid)
  const sender = await cfg.sender.call<BatchResult>('send', { to: cfg.to, count, size: TEXT_BYTES })
  await until(
    () => cfg.reach.every((r, i) => r.got >= before[i]! + count),
    `${cfg.name}: every device to receive`,
  )
  const sample = {
    sender,
    receiverCpuMs: cpuMsSelf() - self0,
    relayCpuMs: (cpuSeconds(relay.pid) - relay0) * 1000,
  }
  for (const [i, r] of cfg.reach.entries()) {
    if (r.got !== before[i]! + count)
      throw new Error(`${r.name} got ${r.got - before[i]!} of ${count} messages`)
  }
  return sample
}

async function run(): Promise<{ rows: Omit<Row, 'bench'>[]; notes: string[] }> {
  // ── accounts and devices ──
  const a1 = new Sender('sender-multi', codes)
  const c1 = new Sender('sender-single', codes)
  senders.push(a1, c1)
  await a1.call('init', { relayUrl: relay.baseUrl, number: A })
  await c1.call('init', { relayUrl: relay.baseUrl, number: C })
  const b1 = await receiver('B1', B)
  const d1 = await receiver('D1', D)
  const aLinked: Receiver[] = []
  const bLinked: Receiver[] = []
  for (let i = 0; i < LINKED; i++) {
    aLinked.push(await receiver(`A${i + 2}`))
    bLinked.push(await receiver(`B${i + 2}`))
  }
  let bInvitation: Awaited<ReturnType<ParleyClient['createLinkCode']>> | undefined
  await Promise.all([
    link(
      () => a1.call<string>('linkCode'),
      () => a1.call<number>('linked'),
      aLinked,
    ),
    link(
      async () => {
        bInvitation = await b1.client.createLinkCode({ confirm: () => true })
        return bInvitation.code
      },
      async () => (await bInvitation!.linked).deviceId,
      bLinked,
    ),
  ])
  const bDevices = [b1, ...bLinked]
  const multi: Config = { name: 'multi', sender: a1, to: B, reach: [...bDevices, ...aLinked] }
  const single: Config = { name: 'single', sender: c1, to: D, reach: [d1] }
  console.log(`linked: A ${1 + aLinked.length} devices, B ${bDevices.length} devices`)

  // ── session setup: the first message (discovery done before, so it is not counted) ──
  await a1.call('discover', { to: B })
  await c1.call('discover', { to: D })
  const setupMulti = await measure(multi, 1)
  const setupSingle = await measure(single, 1)
  console.log(
    `session setup (first message): multi ${setupMulti.sender.cpuMs.toFixed(1)} ms, single ${setupSingle.sender.cpuMs.toFixed(1)} ms`,
  )

  // ── every session answered: each contact device writes back; each of A's linked devices sends to B, which
  // reaches A's primary as a transcript. From then on the senders send ratchet messages, unidentified. ──
  // Each of B's devices gets 4 transcripts and A's 4 linked devices' messages; each of A's linked devices gets
  // B's 5 replies and 3 transcripts: 8 each, all in before anything is counted.
  const quiet = receivers.map((r) => r.got + (r === d1 ? 0 : 2 * LINKED))
  for (const b of bDevices) await b.client.send(A, 'reply')
  for (const a of aLinked) await a.client.send(B, 'from a linked device')
  await d1.client.send(C, 'reply')
  await until(
    async () => (await a1.call<number>('received')) >= bDevices.length + aLinked.length,
    'A1 to get replies',
  )
  await until(async () => (await c1.call<number>('received')) >= 1, 'C1 to get the reply')
  await until(
    async () => (await Promise.all(receivers.map((r) => r.client.pendingCount()))).every((n) => n === 0),
    'replies to leave the outboxes',
  )
  await until(() => receivers.every((r, i) => r.got === quiet[i]), 'the replies and their transcripts')
  await measure(multi, WARM_UP)
  await measure(single, WARM_UP)

  // ── measured rounds: nothing may be refused from here on ──
  const refusedBefore = await relayRefusals()
  const samples = { multi: [] as Sample[], single: [] as Sample[] }
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [single, multi] : [multi, single]
    for (const cfg of order) samples[cfg.name as 'multi' | 'single'].push(await measure(cfg, MESSAGES))
    const [m, s] = [samples.multi.at(-1)!, samples.single.at(-1)!]
    console.log(
      `round ${round + 1}/${ROUNDS}: sender CPU/msg multi ${(m.sender.cpuMs / MESSAGES).toFixed(3)} ms, single ${(s.sender.cpuMs / MESSAGES).toFixed(3)} ms → ${(m.sender.cpuMs / s.sender.cpuMs).toFixed(2)}× (wall ${m.sender.wallMs.toFixed(0)} / ${s.sender.wallMs.toFixed(0)} ms, polls ${m.sender.polls} / ${s.sender.polls})`,
    )
  }

  const refused = [...(await relayRefusals())]
    .map(([k, n]) => [k, n - (refusedBefore.get(k) ?? 0)] as const)
    .filter(([, n]) => n > 0)
  if (refused.length > 0) {
    throw new Error(
      `the relay refused requests during the measured rounds: ${refused.map(([k, n]) => `${k} ×${n}`).join(', ')}`,
    )
  }

  const perMsg = (xs: Sample[], f: (s: Sample) => number, per = 1) =>
    median(xs.map((s) => f(s) / MESSAGES / per))
  const reachM = multi.reach.length
  const senderM = perMsg(samples.multi, (s) => s.sender.cpuMs)
  const senderS = perMsg(samples.single, (s) => s.sender.cpuMs)
  const ratios = samples.multi.map((m, i) => m.sender.cpuMs / samples.single[i]!.sender.cpuMs)
  const ratio = senderM / senderS
  const rows: Omit<Row, 'bench'>[] = [
    {
      metric: `sender CPU per message, ${bDevices.length} contact devices + ${aLinked.length} transcripts`,
      unit: 'ms',
      value: senderM,
      baselineName: 'single-device send',
      baseline: senderS,
      target: `≤ ${TARGET}×`,
      met: ratio <= TARGET,
    },
    {
      metric: 'sender CPU per envelope',
      unit: 'ms',
      value: senderM / reachM,
      baselineName: 'single-device send',
      baseline: senderS,
    },
    {
      metric: 'sender wall time per message (16 in flight)',
      unit: 'ms',
      value: perMsg(samples.multi, (s) => s.sender.wallMs),
      baselineName: 'single-device send',
      baseline: perMsg(samples.single, (s) => s.sender.wallMs),
    },
    {
      metric: 'receiver CPU per message per device',
      unit: 'ms',
      value: perMsg(samples.multi, (s) => s.receiverCpuMs, reachM),
      baselineName: 'single-device receive',
      baseline: perMsg(samples.single, (s) => s.receiverCpuMs),
    },
    {
      metric: 'relay CPU per message',
      unit: 'ms',
      value: perMsg(samples.multi, (s) => s.relayCpuMs),
      baselineName: 'single-device send',
      baseline: perMsg(samples.single, (s) => s.relayCpuMs),
    },
    {
      metric: `session setup: first message to ${reachM} device pairs (sender CPU, 1 sample)`,
      unit: 'ms',
      value: setupMulti.sender.cpuMs,
      baselineName: '1 device pair',
      baseline: setupSingle.sender.cpuMs,
    },
  ]
  return {
    rows,
    notes: [
      `${ROUNDS} rounds × ${MESSAGES} messages of ${TEXT_BYTES} bytes per configuration, alternating (which goes first alternates); medians; after ${WARM_UP} warm-up messages with every session answered; relay error frames and quota refusals during the rounds: 0`,
      `sender CPU = process.cpuUsage() of the sender's own child process from the first send() to 'delivered' for every message and pendingCount() === 0; receivers (${reachM} devices in multi, 1 in single) in the bench process, its CPU per round / messages / devices; relay from /proc`,
      `per-round sender CPU ratios multi / single: ${ratios.map((r) => `${r.toFixed(2)}×`).join(', ')} (median ${median(ratios).toFixed(2)}×)`,
    ],
  }
}

let outcome: Awaited<ReturnType<typeof run>> | undefined
let failed = false
try {
  outcome = await run()
} catch (err) {
  failed = true
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err))
} finally {
  await Promise.all(senders.map((s) => s.close()))
  await Promise.all(receivers.map((r) => r.client.close().catch(() => {})))
  await relay.stop()
  await codes.close()
  rmSync(dataDir, { recursive: true, force: true })
}
if (outcome) record('fanout', outcome.rows, outcome.notes)
process.exit(failed ? 1 : 0)
