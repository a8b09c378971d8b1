// Contract-test harness: the real relay process on a free port in production mode (no --dev), with the webhook
// verifier pointed at a tiny HTTP server in the test that checks each call's signature, timestamp and id as an
// operator's SMS gateway should, so codes arrive the way the gateway gets them.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient, type NodeClientOptions, type ParleyClient } from '@parley/node'
import { newWebhookSecret, WebhookReceiver } from './webhookReceiver.js'

const RELAY_DIR = fileURLToPath(new URL('../../apps/relay/', import.meta.url))

/** Generous limits so that a test sending thousands of messages measures delivery, not quotas. */
export const TEST_RELAY_ARGS = [
  '--send-capacity',
  '100000',
  '--send-per-minute',
  '100000',
  '--frames-burst',
  '100000',
  '--frames-per-second',
  '100000',
  '--bundle-capacity',
  '1000',
  '--bundle-per-hour',
  '100000',
]

export interface Relay {
  url: string
  httpUrl: string
  /** `/metrics` on the relay's metrics listener (a free loopback port, new at each start). */
  metricsUrl: string
  dataDir: string
  output: string[]
  /** Stops the process (SIGTERM by default, or e.g. SIGKILL), keeping its data directory. */
  halt(signal?: NodeJS.Signals): Promise<void>
  /** Starts a halted relay again on the same port and data directory. */
  resume(): Promise<void>
  /** Halts and starts again on the same port and data directory. */
  restart(signal?: NodeJS.Signals): Promise<void>
  /** Stops for good and deletes the data directory. */
  stop(signal?: NodeJS.Signals): Promise<void>
  /** Sends the running process a signal (e.g. SIGHUP: re-read the OPRF key file). */
  signal(signal: NodeJS.Signals): void
  /** Runs `parley-relay <args>` (a subcommand such as `oprf rotate`) on this relay's data directory. */
  command(args: string[]): { status: number | null; stdout: string; stderr: string }
}

/** One call the inbox received at `/sms`. */
export interface WebhookCall {
  headers: Record<string, string | string[] | undefined>
  body: string
  /** Why the receiver refused it (HTTP 401), or null when it was accepted. */
  refused: string | null
}

/**
 * Codes the relay asked to deliver, by phone number. Every call must be signed with {@link secret} (pass it as
 * `--webhook-secret`), fresh (5 minutes) and new; others are answered 401 and their codes ignored.
 */
export class CodeInbox {
  readonly #codes = new Map<string, string[]>()
  readonly #waiters = new Map<string, (code: string) => void>()
  /** The webhook signing key the relay is given. */
  readonly secret = newWebhookSecret()
  readonly receiver = new WebhookReceiver(this.secret)
  /** Every call to `/sms`, accepted or not, in arrival order. */
  readonly calls: WebhookCall[] = []
  server!: Server
  url!: string

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      if (req.url !== '/sms') return // other paths belong to listeners a test adds
      let body = ''
      req.on('data', (c) => (body += c))
      req.on('end', () => {
        const refused = this.receiver.check(req.headers, body)
        this.calls.push({ headers: { ...req.headers }, body, refused })
        if (refused !== null) {
          res.writeHead(401, { 'content-type': 'text/plain' }).end(`${refused}\n`)
          return
        }
        const { phone_number: phone, code } = JSON.parse(body) as { phone_number: string; code: string }
        const list = this.#codes.get(phone) ?? []
        list.push(code)
        this.#codes.set(phone, list)
        this.#waiters.get(phone)?.(code)
        res.writeHead(204).end()
      })
    })
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/sms`
  }

  /** The latest code sent to `e164`, waiting for it if needed. */
  next(e164: string): Promise<string> {
    const list = this.#codes.get(e164)
    if (list !== undefined && list.length > 0) return Promise.resolve(list.shift()!)
    return new Promise((resolve) =>
      this.#waiters.set(e164, (code) => {
        this.#waiters.delete(e164)
        this.#codes.get(e164)?.shift()
        resolve(code)
      }),
    )
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()))
  }
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

/**
 * Spawns the relay CLI without `--dev`, with the signed webhook verifier; `port` 0 picks a free one, and the
 * metrics listener is on a free loopback port.
 */
export async function startRelay(codes: CodeInbox, extraArgs: string[] = []): Promise<Relay> {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-contract-'))
  const output: string[] = []
  let proc: ChildProcess
  let port = 0
  let metricsUrl = ''
  const launch = async () => {
    proc = spawn(
      process.execPath,
      [
        '--conditions=parley-source',
        '--import',
        'tsx',
        'src/cli.ts',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--data-dir',
        dataDir,
        '--verifier',
        'webhook',
        '--webhook-url',
        codes.url,
        '--webhook-secret',
        codes.secret,
        '--metrics-listen',
        '127.0.0.1:0',
        '--log-level',
        'info',
        ...TEST_RELAY_ARGS,
        ...extraArgs,
      ],
      { cwd: RELAY_DIR, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } },
    )
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`relay did not start:\n${output.join('\n')}`)), 30_000)
      onLines(proc.stdout!, (line) => {
        output.push(line)
        try {
          const entry = JSON.parse(line) as { msg?: string; port?: number; metricsUrl?: string | null }
          if (entry.msg === 'relay listening' && entry.port) {
            port = entry.port
            metricsUrl = entry.metricsUrl ?? ''
            clearTimeout(timer)
            resolve()
          }
        } catch {}
      })
      proc.stderr!.setEncoding('utf8')
      proc.stderr!.on('data', (chunk: string) => output.push(chunk))
      proc.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`relay exited with ${code}:\n${output.join('\n')}`))
      })
    })
  }
  const stop = (signal: NodeJS.Signals = 'SIGTERM') =>
    new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve()
      proc.once('exit', () => resolve())
      proc.kill(signal)
    })
  await launch()
  return {
    get url() {
      return `ws://127.0.0.1:${port}`
    },
    get httpUrl() {
      return `http://127.0.0.1:${port}`
    },
    get metricsUrl() {
      return metricsUrl
    },
    dataDir,
    output,
    halt: stop,
    resume: launch,
    async restart(signal = 'SIGTERM') {
      await stop(signal)
      await launch()
    },
    async stop(signal = 'SIGTERM') {
      await stop(signal)
      rmSync(dataDir, { recursive: true, force: true })
    },
    signal(signal) {
      proc.kill(signal)
    },
    command(args) {
      const r = spawnSync(
        process.execPath,
        ['--conditions=parley-source', '--import', 'tsx', 'src/cli.ts', ...args, '--data-dir', dataDir],
        { cwd: RELAY_DIR, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } },
      )
      return { status: r.status, stdout: r.stdout, stderr: r.stderr }
    },
  }
}

/** A fresh data directory for client stores. */
export function clientDir(): string {
  return mkdtempSync(join(tmpdir(), 'parley-client-'))
}

/** Creates a (not yet activated) Node client of `relay`. */
export function nodeClient(relay: Relay, options: Partial<NodeClientOptions> = {}): Promise<ParleyClient> {
  return createClient({
    relayUrl: relay.url,
    defaultRegion: 'US',
    reconnect: { minDelayMs: 50, maxDelayMs: 1000 },
    ...options,
  })
}

/** Creates a client and activates it with the code the relay sent. */
export async function activatedClient(
  relay: Relay,
  codes: CodeInbox,
  phoneNumber: string,
  options: Partial<NodeClientOptions> = {},
): Promise<ParleyClient> {
  const client = await createClient({
    relayUrl: relay.url,
    defaultRegion: 'US',
    reconnect: { minDelayMs: 50, maxDelayMs: 1000 },
    ...options,
  })
  const pending = await client.activate({ phoneNumber, consent: true })
  await client.confirm(await codes.next(pending.e164))
  return client
}

/** Resolves when `predicate` holds, polling; rejects after `timeoutMs`. */
export async function until(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
  what = 'condition',
): Promise<void> {
  const start = Date.now()
  while (!(await predicate())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}
