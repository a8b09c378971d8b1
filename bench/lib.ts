// Shared pieces of the benches: result rows (each a figure with the baseline measured in the same run),
// results.json, the table, relay processes, percentiles and process CPU / RSS from /proc; envelopes the relay's
// shape check accepts and a count of accepted / refused sends.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { onLines, type RelayProcess, spawnRelay, type WebhookTarget } from '@parley/relay/testing'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url))

/** One figure: `value` against `baseline` (same unit, same run); ratio = value / baseline. */
export interface Row {
  bench: string
  metric: string
  unit: string
  value: number
  baselineName: string
  baseline: number
  /** Lower is better unless false. */
  lowerIsBetter?: boolean
  /** A target in words, and whether this run met it (undefined: no target). */
  target?: string
  met?: boolean
}

export const machine = () => ({
  node: process.version,
  platform: `${process.platform}/${process.arch}`,
  cpus: availableParallelism(),
  cpu: cpus()[0]?.model ?? 'unknown',
  memGiB: Math.round(totalmem() / 2 ** 30),
})

/** Merges this bench's rows into results.json (other benches' rows are kept) and prints them. */
export function record(bench: string, rows: Omit<Row, 'bench'>[], notes: string[] = []): void {
  const all = existsSync(RESULTS)
    ? (JSON.parse(readFileSync(RESULTS, 'utf8')) as {
        benches: Record<string, { at: string; rows: Row[]; notes: string[] }>
      })
    : { benches: {} }
  const full = rows.map((r) => ({ bench, ...r }))
  all.benches[bench] = { at: new Date().toISOString(), rows: full, notes }
  writeFileSync(RESULTS, `${JSON.stringify({ machine: machine(), ...all }, null, 2)}\n`)
  console.log(table(full))
  for (const n of notes) console.log(`  note: ${n}`)
}

const fmt = (n: number) =>
  !Number.isFinite(n)
    ? String(n)
    : Math.abs(n) >= 100
      ? n.toFixed(0)
      : Math.abs(n) >= 1
        ? n.toFixed(2)
        : n.toFixed(3)

/** A Markdown table of rows. */
export function table(rows: Row[]): string {
  const lines = [
    '| bench | metric | value | baseline | baseline value | ratio | target |',
    '|---|---|---:|---|---:|---:|---|',
  ]
  for (const r of rows) {
    const ratio = r.baseline ? `${fmt(r.value / r.baseline)}×` : '–'
    const target = r.target ? `${r.target} ${r.met === undefined ? '' : r.met ? '✅' : '❌'}` : ''
    lines.push(
      `| ${r.bench} | ${r.metric} | ${fmt(r.value)} ${r.unit} | ${r.baselineName} | ${fmt(r.baseline)} ${r.unit} | ${ratio} | ${target} |`,
    )
  }
  return lines.join('\n')
}

/** The p-th percentile (0..100) of unsorted samples. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN
  const s = Float64Array.from(samples).sort()
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}

const TICK = 100 // USER_HZ on Linux
/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / TICK
}

/** Resident set size of a process in bytes, from /proc. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : Number.NaN
}

/** Quotas lifted so that the benches measure the relay, not its abuse limits. */
export const BENCH_RELAY_ARGS = [
  '--log-level',
  'info',
  '--send-capacity',
  '10000000',
  '--send-per-minute',
  '10000000',
  '--frames-burst',
  '1000000',
  '--frames-per-second',
  '1000000',
  '--max-connections-per-ip',
  '100000',
  '--activations-per-ip-per-hour',
  '1000000',
  '--oprf-account-capacity',
  '10000000',
  '--oprf-account-per-day',
  '10000000',
  '--oprf-ip-capacity',
  '10000000',
  '--oprf-ip-per-day',
  '10000000',
  '--bundle-capacity',
  '100000',
  '--bundle-per-hour',
  '100000',
  // The SDK sends unidentified once a receipt has given it the peer's token, and every bench client is on one
  // source network.
  '--unidentified-network-capacity',
  '10000000',
  '--unidentified-network-per-minute',
  '10000000',
  '--unidentified-network-bytes-capacity',
  '100000000000',
  '--unidentified-network-bytes-per-minute',
  '100000000000',
  '--unidentified-recipient-capacity',
  '10000000',
  '--unidentified-recipient-per-minute',
  '10000000',
]

/** Runs a TypeScript file of this directory as a child process with the relay's Node flags; resolves its stdout. */
export function runScript(
  file: string,
  args: string[] = [],
  extraNodeArgs: string[] = [],
  echo = false,
): { pid: number; done: Promise<string>; onLine(f: (line: string) => void): void } {
  const proc = spawn(
    process.execPath,
    [...extraNodeArgs, '--conditions=parley-source', '--import', 'tsx', file, ...args],
    { cwd: fileURLToPath(new URL('.', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const listeners: ((line: string) => void)[] = []
  let out = ''
  onLines(proc.stdout!, (line) => {
    out += `${line}\n`
    if (echo) console.log(line)
    for (const l of listeners) l(line)
  })
  const done = new Promise<string>((resolve, reject) =>
    proc.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${file} exited with ${code}`)),
    ),
  )
  return { pid: proc.pid!, done, onLine: (f) => listeners.push(f) }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A relay process started by a bench: `baseUrl` for SDK clients, `url` for raw clients, `pid` for /proc. */
export type BenchRelay = RelayProcess

/**
 * Spawns the relay CLI (@parley/relay/testing) in production mode (no `--dev`), on a free loopback port with its
 * metrics listener on another, with the webhook verifier pointed at `webhook.url` and signing with
 * `webhook.secret` (a `CodeInbox` is both), and the quotas lifted. `nodeArgs` go before the script (e.g.
 * `--cpu-prof`). It keeps at most 2000 lines of output.
 */
export function startRelay(
  webhook: WebhookTarget,
  dataDir: string,
  extraArgs: string[] = [],
  nodeArgs: string[] = [],
): Promise<BenchRelay> {
  return spawnRelay({
    webhook,
    dataDir,
    nodeArgs,
    args: [...BENCH_RELAY_ARGS, ...extraArgs],
    readyTimeoutMs: 60_000,
    maxLines: 2000,
  })
}

/**
 * Bytes of a shaped envelope before its ciphertext field: version (2), ephemeral_key (2 + 32) and
 * encrypted_sender_key (2 + 48).
 */
const SHAPED_HEAD_BYTES = 86

/** How many bytes the protobuf varint of `n` takes. */
const varintBytes = (n: number): number => (n < 0x80 ? 1 : 1 + varintBytes(Math.floor(n / 0x80)))

/**
 * Where the ciphertext starts in {@link shapedEnvelope}`(totalBytes)` (a bench may write a timestamp there).
 * @throws RangeError when no shaped envelope is exactly `totalBytes` long
 */
export function shapedCiphertextOffset(totalBytes: number): number {
  // total = head + 1 (field 4 key) + varint(length) + length; try each width of the length prefix.
  for (let width = 1; width <= 5; width++) {
    const length = totalBytes - SHAPED_HEAD_BYTES - 1 - width
    if (length > 0 && varintBytes(length) === width) return totalBytes - length
  }
  throw new RangeError(`no shaped envelope is exactly ${totalBytes} bytes`)
}

/**
 * Random bytes shaped as a version-1 `SealedEnvelope`, exactly `totalBytes` long: version 1, a 32-byte
 * ephemeral key, a 48-byte encrypted sender key and random ciphertext — what the relay's cheap shape check
 * (`apps/relay/src/handlers/envelopeShape.ts`) accepts; it cannot open one, so it cannot tell it from a real one.
 * @throws RangeError below 89 bytes, and for the few sizes where the ciphertext's length prefix grows a byte
 */
export function shapedEnvelope(totalBytes: number): Uint8Array {
  const at = shapedCiphertextOffset(totalBytes)
  const out = new Uint8Array(randomBytes(totalBytes))
  let i = 0
  out[i++] = 0x08 // field 1 (version), varint
  out[i++] = 1
  out[i++] = 0x12 // field 2 (ephemeral_key), length-delimited
  out[i++] = 32
  i += 32
  out[i++] = 0x1a // field 3 (encrypted_sender_key), length-delimited
  out[i++] = 48
  i += 48
  out[i++] = 0x22 // field 4 (ciphertext), length-delimited
  for (let length = totalBytes - at; ; length = Math.floor(length / 0x80)) {
    if (length < 0x80) {
      out[i++] = length
      break
    }
    out[i++] = (length & 0x7f) | 0x80
  }
  if (i !== at) throw new Error(`shaped envelope head is ${i} bytes, expected ${at}`)
  return out
}

/**
 * Answers to a bench's requests of one kind: accepted, or refused by error code. A refused send measures
 * nothing, so a bench prints {@link SendTally.summary} and calls {@link SendTally.assertNoneRefused}.
 */
export class SendTally {
  accepted = 0
  refused = 0
  readonly #byCode = new Map<string, { count: number; message: string }>()

  constructor(readonly what = 'sends') {}

  accept(): void {
    this.accepted++
  }

  refuse(code: string, message = ''): void {
    this.refused++
    const known = this.#byCode.get(code)
    if (known) known.count++
    else this.#byCode.set(code, { count: 1, message })
  }

  /** `accepted 2000, refused 0` and, when some were refused, each code with its first message. */
  summary(): string {
    const codes = [...this.#byCode].map(([code, { count, message }]) => `${code} ×${count}: ${message}`)
    return `${this.what}: accepted ${this.accepted}, refused ${this.refused}${codes.length ? ` (${codes.join('; ')})` : ''}`
  }

  /** @throws Error with the summary when anything was refused */
  assertNoneRefused(context: string): void {
    if (this.refused > 0)
      throw new Error(`${context}: ${this.summary()} — the figures would measure refusals`)
  }
}
