// Shared pieces of the benches: result rows (each a figure with the baseline measured in the same run),
// results.json, the table, relay processes, percentiles and process CPU / RSS from /proc.
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { onLines } from '../tests/contract/harness.js'

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

/** A relay process started by a bench. */
export interface BenchRelay {
  /** Base URL for SDK clients (`ws://127.0.0.1:port`). */
  baseUrl: string
  /** Protocol endpoint for raw clients. */
  url: string
  pid: number
  dataDir: string
  output: string[]
  stop(): Promise<void>
}

/**
 * Spawns `apps/relay/src/cli.ts` as `pnpm relay` runs it, on a free loopback port, with the webhook verifier
 * pointed at `webhookUrl` and the quotas lifted. `nodeArgs` go before the script (e.g. `--cpu-prof`).
 */
export async function startRelay(
  webhookUrl: string,
  dataDir: string,
  extraArgs: string[] = [],
  nodeArgs: string[] = [],
): Promise<BenchRelay> {
  const output: string[] = []
  const proc = spawn(
    process.execPath,
    [
      ...nodeArgs,
      '--conditions=parley-source',
      '--import',
      'tsx',
      'src/cli.ts',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--verifier',
      'webhook',
      '--webhook-url',
      webhookUrl,
      ...BENCH_RELAY_ARGS,
      ...extraArgs,
    ],
    {
      cwd: `${ROOT}apps/relay`,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '' },
    },
  )
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`relay did not start:\n${output.join('\n')}`)), 60_000)
    onLines(proc.stdout!, (line) => {
      if (output.length < 2000) output.push(line)
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number }
        if (entry.msg === 'relay listening' && entry.port) {
          clearTimeout(timer)
          resolve(entry.port)
        }
      } catch {}
    })
    proc.stderr!.setEncoding('utf8')
    proc.stderr!.on('data', (chunk: string) => {
      if (output.length < 2000) output.push(chunk)
    })
    proc.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`relay exited with ${code}:\n${output.join('\n')}`))
    })
  })
  return {
    baseUrl: `ws://127.0.0.1:${port}`,
    url: `ws://127.0.0.1:${port}/v1/ws`,
    pid: proc.pid!,
    dataDir,
    output,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve()
        proc.once('exit', () => resolve())
        proc.kill('SIGTERM')
      }),
  }
}
