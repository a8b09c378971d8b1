/**
 * The one way tests and benches run the relay as a process: `src/cli.ts` with the same Node flags as
 * `pnpm relay` (the `parley-source` export condition and the tsx loader, so no build step), on a free loopback
 * port with its metrics listener on another, ready at its `"relay listening"` log line. A {@link RelayProcess}
 * keeps its data directory and port across stops, so a test can kill it (`stop('SIGKILL')`), start it again and
 * find its accounts and mail; it collects stdout and stderr line by line and the console verifier's codes.
 * @module
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The relay package's directory, where the CLI runs (relative paths in its flags resolve from here). */
export const RELAY_DIR = fileURLToPath(new URL('..', import.meta.url))
/** What `pnpm relay` runs: the TypeScript sources through the tsx loader. */
const NODE_FLAGS = ['--conditions=parley-source', '--import', 'tsx']
const CLI = 'src/cli.ts'

/** The relay's `"relay listening"` log entry (src/server.ts). */
export interface ListeningEntry {
  msg: 'relay listening'
  /** The bound client port. */
  port: number
  host: string
  /** The protocol endpoint, e.g. `ws://127.0.0.1:8787/v1/ws`. */
  url: string
  /** `/metrics` on the metrics listener, `null` when it is off. */
  metricsUrl: string | null
  verifier: string
  dev: boolean
  demo: boolean
}

/** Where a relay sends its codes with the webhook verifier; a `CodeInbox` is one. */
export interface WebhookTarget {
  readonly url: string
  readonly secret: string
}

/** How to run a relay process. Every field is optional; the defaults are those of most tests. */
export interface RelayProcessOptions {
  /** CLI flags after the spawner's own: a later flag wins, so these may override any of them. */
  args?: string[]
  /** Data directory; default a fresh temporary one (named `<tempPrefix>…`), deleted by {@link RelayProcess.close}. */
  dataDir?: string
  /** Prefix of the temporary data directory's name; default `parley-relay-`. */
  tempPrefix?: string
  /** `--port` of the first start; default 0 (a free port). Later starts reuse the port the relay bound. */
  port?: number
  /** `--host`; default `127.0.0.1`; `null` passes none (the relay's default). */
  host?: string | null
  /** `--metrics-listen`; default `127.0.0.1:0` (a free loopback port); `null` passes none (the relay's default). */
  metricsListen?: string | null
  /** `--dev`: a development relay, with the console verifier, whose codes {@link RelayProcess.code} reads. */
  dev?: boolean
  /** The signed webhook verifier: `--verifier webhook --webhook-url … --webhook-secret …` (read at each start). */
  webhook?: WebhookTarget
  /** Node flags before the script, e.g. `--cpu-prof`. */
  nodeArgs?: string[]
  /** Environment over this process's, in which `NODE_OPTIONS` is cleared. */
  env?: Record<string, string | undefined>
  /** How long a start waits for the `"relay listening"` line; default 30 s; `Infinity` waits for ever. */
  readyTimeoutMs?: number
  /** Called with each line of stdout, after it is recorded. */
  onStdout?: (line: string) => void
  /** Called with each line of stderr, after it is recorded. */
  onStderr?: (line: string) => void
  /** Keep at most this many lines in each of `stdout`, `stderr` and `output` (the hooks still see every line). */
  maxLines?: number
  /** Also write the relay's stderr to this process's stderr. */
  echoStderr?: boolean
}

/** Calls `onLine` with every complete line a child process writes to `stream` (UTF-8). */
export function onLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buf = ''
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => {
    buf += chunk
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      onLine(line)
    }
  })
}

/** The console verifier's line on stderr (src/Verifier.ts). */
const CODE_LINE = /verification code (\d{6}) for activation ([0-9a-f]{32})/

/** The `"relay listening"` entry of a stdout line, if it is one. */
function listeningEntry(line: string): ListeningEntry | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const entry = JSON.parse(line) as Partial<ListeningEntry>
    if (entry.msg === 'relay listening' && typeof entry.port === 'number' && entry.port > 0)
      return entry as ListeningEntry
  } catch {}
  return undefined
}

/** A relay process: started with {@link start}, stopped with {@link stop}, as often as a test needs. */
export class RelayProcess {
  /** The data directory, kept across stops and starts. */
  readonly dataDir: string
  /** Lines of stdout (the JSON log), in order, across every start. */
  readonly stdout: string[] = []
  /** Lines of stderr, in order, across every start. */
  readonly stderr: string[] = []
  /** Lines of both, in arrival order. */
  readonly output: string[] = []
  readonly #options: RelayProcessOptions
  readonly #ownDataDir: boolean
  #port: number
  #proc: ChildProcess | undefined
  #exited: Promise<number | null> = Promise.resolve(null)
  #listening: ListeningEntry | undefined
  readonly #codes = new Map<string, string>()
  readonly #codeWaiters = new Map<string, (code: string) => void>()

  /** Prepares a relay process; nothing runs before {@link start}. */
  constructor(options: RelayProcessOptions = {}) {
    this.#options = options
    this.#ownDataDir = options.dataDir === undefined
    this.dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), options.tempPrefix ?? 'parley-relay-'))
    this.#port = options.port ?? 0
  }

  /** The current (or last) child process. */
  get proc(): ChildProcess {
    if (this.#proc === undefined) throw new Error('the relay process was never started')
    return this.#proc
  }

  get pid(): number {
    return this.proc.pid!
  }

  /** Whether the process is running (it may not be listening yet). */
  get running(): boolean {
    return this.#proc !== undefined && this.#proc.exitCode === null && this.#proc.signalCode === null
  }

  /** The latest `"relay listening"` entry. */
  get listening(): ListeningEntry {
    if (this.#listening === undefined) throw new Error('the relay has not listened yet')
    return this.#listening
  }

  /** The bound client port (the same after a restart). */
  get port(): number {
    return this.listening.port
  }

  /** The protocol endpoint, `ws://127.0.0.1:<port>/v1/ws`, for raw WebSocket clients. */
  get url(): string {
    return this.listening.url
  }

  /** `ws://127.0.0.1:<port>`, the `relayUrl` SDK clients are given (they add `/v1/ws`). */
  get baseUrl(): string {
    return this.url.replace(/\/v1\/ws$/, '')
  }

  /** `http://127.0.0.1:<port>`: health, readiness, the demo page. */
  get httpUrl(): string {
    return this.baseUrl.replace(/^ws/, 'http')
  }

  /** `/metrics` on the metrics listener (a new free port at each start by default); `''` when it is off. */
  get metricsUrl(): string {
    return this.listening.metricsUrl ?? ''
  }

  /** The command line of the next start (after `node`). */
  argv(): string[] {
    const o = this.#options
    const host = o.host === undefined ? '127.0.0.1' : o.host
    const metricsListen = o.metricsListen === undefined ? '127.0.0.1:0' : o.metricsListen
    return [
      ...(o.nodeArgs ?? []),
      ...NODE_FLAGS,
      CLI,
      ...(host === null ? [] : ['--host', host]),
      ...['--port', String(this.#port), '--data-dir', this.dataDir],
      ...(o.dev ? ['--dev'] : []),
      ...(o.webhook
        ? ['--verifier', 'webhook', '--webhook-url', o.webhook.url, '--webhook-secret', o.webhook.secret]
        : []),
      ...(metricsListen === null ? [] : ['--metrics-listen', metricsListen]),
      ...(o.args ?? []),
    ]
  }

  /**
   * Spawns the relay and resolves its `"relay listening"` entry.
   * @throws Error with everything it printed when it exits first, or does not listen within `readyTimeoutMs`
   *   (it is then killed)
   */
  start(): Promise<ListeningEntry> {
    if (this.running) return Promise.reject(new Error('the relay process is already running'))
    const o = this.#options
    const proc = spawn(process.execPath, this.argv(), {
      cwd: RELAY_DIR,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '', ...o.env },
    })
    this.#proc = proc
    this.#listening = undefined
    // 'close' rather than 'exit': by then every line it wrote has been read.
    this.#exited = new Promise((resolve) => proc.once('close', (code) => resolve(code)))
    const record = (into: string[], line: string) => {
      if (o.maxLines === undefined || into.length < o.maxLines) into.push(line)
      if (o.maxLines === undefined || this.output.length < o.maxLines) this.output.push(line)
    }
    return new Promise<ListeningEntry>((resolve, reject) => {
      const timeoutMs = o.readyTimeoutMs ?? 30_000
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => {
            proc.kill('SIGKILL')
            reject(new Error(`relay did not start within ${timeoutMs} ms:\n${this.output.join('\n')}`))
          }, timeoutMs)
        : undefined
      onLines(proc.stdout!, (line) => {
        record(this.stdout, line)
        const entry = this.#listening === undefined ? listeningEntry(line) : undefined
        if (entry !== undefined) {
          this.#listening = entry
          this.#port = entry.port
          clearTimeout(timer)
          resolve(entry)
        }
        o.onStdout?.(line)
      })
      onLines(proc.stderr!, (line) => {
        record(this.stderr, line)
        if (o.echoStderr) process.stderr.write(`${line}\n`)
        const m = CODE_LINE.exec(line)
        if (m) {
          this.#codes.set(m[2]!, m[1]!)
          this.#codeWaiters.get(m[2]!)?.(m[1]!)
        }
        o.onStderr?.(line)
      })
      void this.#exited.then((code) => {
        clearTimeout(timer)
        reject(new Error(`relay exited with ${code}:\n${this.output.join('\n')}`))
      })
    })
  }

  /** Sends `signal` (SIGTERM: a graceful shutdown; SIGKILL: a crash) and resolves the exit code once it is gone. */
  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.running) this.#proc!.kill(signal)
    return this.#exited
  }

  /** Stops (SIGTERM by default) and starts again on the same port and data directory. */
  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stop(signal)
    await this.start()
  }

  /** Sends the running process a signal (e.g. SIGHUP: re-read the OPRF key file). */
  signal(signal: NodeJS.Signals): void {
    this.proc.kill(signal)
  }

  /** The console verifier's code for an activation id (hex), waiting for its line on stderr (`dev` only). */
  code(activationIdHex: string): Promise<string> {
    const known = this.#codes.get(activationIdHex)
    if (known !== undefined) return Promise.resolve(known)
    return new Promise((resolve) => this.#codeWaiters.set(activationIdHex, resolve))
  }

  /** Runs `parley-relay <args>` (a subcommand such as `oprf rotate`) on this relay's data directory. */
  command(args: string[]): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [...NODE_FLAGS, CLI, ...args, '--data-dir', this.dataDir], {
      cwd: RELAY_DIR,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '', ...this.#options.env },
    })
    return { status: r.status, stdout: r.stdout, stderr: r.stderr }
  }

  /** Stops for good and deletes the data directory if this spawner made it. */
  async close(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stop(signal)
    if (this.#ownDataDir) rmSync(this.dataDir, { recursive: true, force: true })
  }
}

/** Starts a relay process; resolves once it listens. */
export async function spawnRelay(options: RelayProcessOptions = {}): Promise<RelayProcess> {
  const relay = new RelayProcess(options)
  await relay.start()
  return relay
}

/**
 * A development relay (`--dev`: the console verifier, whose codes {@link RelayProcess.code} reads), as the relay's
 * own tests and the reliability suites use it.
 */
export function spawnDevRelay(args: string[] = [], dataDir?: string): Promise<RelayProcess> {
  return spawnRelay({ dev: true, args, dataDir, tempPrefix: 'parley-relay-test-', readyTimeoutMs: 20_000 })
}
