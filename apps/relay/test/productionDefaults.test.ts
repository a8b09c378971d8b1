// Safe defaults for production (issue 15): the console verifier and unsigned webhook calls only on a development
// relay (--dev); the demo page only there or with --demo true; /metrics only on its own listener (default
// 127.0.0.1:9464), never on the client port; --trust-proxy takes the right-most X-Forwarded-For entry, as its help
// says.
import { connect, createServer as createNetServer } from 'node:net'
import { networkInterfaces } from 'node:os'
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { DEFAULT_CONFIG, helpText, metricsAddress, parseConfig } from '../src/config.js'
import { startRelay } from '../src/index.js'
import { inProcess, RelayProcess } from '../testing/index.js'

/**
 * Runs the CLI with only `--port 0 --data-dir <tmp>` of the spawner's flags (no host, metrics listener or
 * verifier); resolves when it exits, or at its 'relay listening' line (then it is stopped with SIGTERM first).
 */
async function runCli(args: string[], env: Record<string, string> = {}) {
  const relay = new RelayProcess({
    host: null,
    metricsListen: null,
    tempPrefix: 'parley-relay-test-',
    args,
    env,
  })
  const listened = await relay.start().then(
    () => true,
    () => false,
  )
  const code = await relay.stop() // SIGTERM when it listened; otherwise it has exited on its own
  await relay.close() // deletes the data directory
  return { code, stdout: relay.stdout.join('\n'), stderr: relay.stderr.join('\n'), listened }
}

/** A configuration from flags and env vars (never `--help` here). */
const config = (argv: string[], env: Record<string, string> = {}) => {
  const c = parseConfig(argv, env)
  if (c === 'help') throw new Error('unexpected --help')
  return c
}

/** The 'relay listening' log entry of a CLI run. */
const listeningEntry = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((e) => e.msg === 'relay listening')!

describe('the console verifier needs --dev', () => {
  it('parley-relay without --dev refuses to start, saying what to do', async () => {
    const run = await runCli(['--metrics-listen', '127.0.0.1:0'])
    expect(run.code).toBe(2)
    expect(run.listened).toBe(false)
    expect(run.stderr).toContain('the console verifier prints every verification code to the log')
    expect(run.stderr).toContain('--verifier webhook --webhook-url')
    expect(run.stderr).toContain('--webhook-secret')
    expect(run.stderr).toMatch(/For development, pass --dev/)
  })

  it('--dev (or PARLEY_DEV=1) starts it, announcing a development relay on stderr and in the log', async () => {
    for (const run of [
      await runCli(['--dev', '--metrics-listen', '127.0.0.1:0']),
      await runCli(['--metrics-listen', '127.0.0.1:0'], { PARLEY_DEV: '1' }),
    ]) {
      expect(run.listened, run.stderr).toBe(true)
      expect(run.stderr).toContain('DEVELOPMENT RELAY (--dev)')
      expect(run.stderr).toContain('the console verifier prints every SMS code to this log')
      expect(run.stdout).toMatch(/"msg":"DEVELOPMENT RELAY \(--dev\)/)
      expect(listeningEntry(run.stdout)).toMatchObject({ dev: true, demo: true, verifier: 'console' })
    }
  })

  it('pnpm relay passes --dev', async () => {
    const { readFileSync } = await import('node:fs')
    const root = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'))
    const relay = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
    // Without a nested pnpm, and exec'd, so that Ctrl-C reaches the relay alone and it exits quietly with 0.
    expect(root.scripts.relay).toMatch(/^cd apps\/relay && exec node .*src\/cli\.ts --dev$/)
    expect(relay.scripts.dev).toMatch(/^exec node .*src\/cli\.ts --dev$/)
  })

  it('the programmatic API refuses it too, unless dev or the caller brings its own verifier', async () => {
    await expect(startRelay({ port: 0, dataDir: ':memory:', logLevel: 'silent' })).rejects.toThrow(
      /console verifier [\s\S]* development relay[\s\S]*--verifier webhook/,
    )
    expect(() => parseConfig([], {})).toThrow(/--dev/)
    expect(parseConfig(['--dev'], {})).toMatchObject({ dev: true, verifier: 'console' })
    const { relay } = await inProcess() // a verifierImpl: no console, no --dev needed
    expect(relay.config.dev).toBe(false)
    await relay.close()
  })

  it('the webhook verifier signs: --webhook-secret is required without --dev', () => {
    const webhook = ['--verifier', 'webhook', '--webhook-url', 'https://sms.example.internal/parley']
    expect(() => parseConfig(webhook, {})).toThrow(/needs --webhook-secret .* forged and replayed/)
    expect(() => parseConfig([...webhook, '--webhook-secret', 'short'], {})).toThrow(/at least 16 bytes/)
    expect(() => parseConfig([...webhook, '--webhook-secret', 'whsec_!!'], {})).toThrow(/base64/)
    expect(parseConfig([...webhook, '--webhook-secret', 'sixteen-bytes-ok'], {})).toMatchObject({
      verifier: 'webhook',
    })
    expect(parseConfig([...webhook, '--webhook-secret', `whsec_${'A'.repeat(44)}`], {})).toMatchObject({
      verifier: 'webhook',
    })
    expect(parseConfig([...webhook, '--dev'], {})).toMatchObject({ webhookSecret: '' })
  })
})

describe('the demo page', () => {
  const status = async (options: Parameters<typeof inProcess>[0]) => {
    const { relay } = await inProcess(options)
    try {
      return { status: (await fetch(`${relay.httpUrl}/`)).status, demo: relay.config.demo }
    } finally {
      await relay.close()
    }
  }

  it('is served only on a development relay or with --demo true; --demo false turns it off', async () => {
    expect(DEFAULT_CONFIG.demo).toBeNull()
    expect(await status({})).toEqual({ status: 404, demo: false })
    expect(await status({ demo: true })).toEqual({ status: 200, demo: true })
    expect(await status({ dev: true })).toEqual({ status: 200, demo: true })
    expect(await status({ dev: true, demo: false })).toEqual({ status: 404, demo: false })
    expect(config(['--dev']).demo).toBeNull()
    expect(config(['--dev', '--demo', 'false']).demo).toBe(false)
    expect(config(['--dev', '--demo']).demo).toBe(true)
    expect(config(['--dev'], { PARLEY_DEMO: 'false' }).demo).toBe(false)
    expect(helpText()).toMatch(/--demo\s+PARLEY_DEMO\n.*\(default: only with --dev\)/)
  })
})

/** A local IPv4 address that is not loopback, if the machine has one. */
const otherAddress = Object.values(networkInterfaces())
  .flat()
  .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address

const refused = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, host)
    s.once('connect', () => {
      s.destroy()
      resolve(false)
    })
    s.once('error', () => resolve(true))
  })

/** Whether 127.0.0.1:9464 and *:9464 are free now (the default metrics port). */
const defaultPortFree = await new Promise<boolean>((resolve) => {
  const s = createNetServer()
  s.once('error', () => resolve(false))
  s.listen(9464, '0.0.0.0', () => s.close(() => resolve(true)))
})

describe('metrics on their own listener', () => {
  it('/metrics is 404 on the client port and served on the metrics listener, which serves nothing else', async () => {
    const { relay } = await inProcess()
    try {
      expect((await fetch(`${relay.httpUrl}/metrics`)).status).toBe(404)
      expect((await fetch(`${relay.httpUrl}/healthz`)).status).toBe(200)
      expect((await fetch(`${relay.httpUrl}/readyz`)).status).toBe(200)
      expect(relay.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
      const metricsPort = Number(new URL(relay.metricsUrl!).port)
      expect(metricsPort).not.toBe(relay.port)
      const res = await fetch(relay.metricsUrl!)
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/)
      expect(await res.text()).toMatch(/^parley_relay_connections 0$/m)
      for (const path of ['/', '/healthz', '/v1/ws', '/metrics/x']) {
        expect((await fetch(`http://127.0.0.1:${metricsPort}${path}`)).status).toBe(404)
      }
    } finally {
      await relay.close()
    }
    // Closed with the relay.
    expect(await refused('127.0.0.1', Number(new URL(relay.metricsUrl!).port))).toBe(true)
  })

  it('--metrics-listen: host:port, [v6]:port, port 0, off or empty; malformed values refused', async () => {
    expect(DEFAULT_CONFIG.metricsListen).toBe('127.0.0.1:9464')
    expect(metricsAddress(DEFAULT_CONFIG.metricsListen)).toEqual({ host: '127.0.0.1', port: 9464 })
    expect(metricsAddress('[::1]:0')).toEqual({ host: '::1', port: 0 })
    expect(metricsAddress('metrics.internal:9100')).toEqual({ host: 'metrics.internal', port: 9100 })
    expect(metricsAddress('off')).toBeNull()
    expect(metricsAddress('')).toBeNull()
    for (const bad of ['9464', '127.0.0.1', '::1:9464', '127.0.0.1:99999', 'host:port']) {
      expect(() => metricsAddress(bad), bad).toThrow(/metrics-listen must be host:port/)
      expect(() => parseConfig(['--dev', '--metrics-listen', bad], {}), bad).toThrow(/metrics-listen/)
    }
    expect(config(['--dev', '--metrics-listen=']).metricsListen).toBe('')
    expect(config(['--dev'], { PARLEY_METRICS_LISTEN: 'off' }).metricsListen).toBe('off')
    const { relay } = await inProcess({ metricsListen: 'off' })
    expect(relay.metricsUrl).toBeNull()
    expect((await fetch(`${relay.httpUrl}/metrics`)).status).toBe(404)
    await relay.close()
    // A port taken: the relay does not start, and says which listener failed.
    const { relay: first } = await inProcess()
    const taken = new URL(first.metricsUrl!).host
    await expect(inProcess({ metricsListen: taken })).rejects.toThrow(
      new RegExp(`cannot listen on --metrics-listen ${taken}: .*EADDRINUSE`),
    )
    await first.close()
  })

  it.skipIf(!defaultPortFree)('by default binds 127.0.0.1:9464 only, not the other interfaces', async () => {
    const { relay } = await inProcess({ metricsListen: undefined, host: '0.0.0.0' })
    try {
      expect(relay.metricsUrl).toBe('http://127.0.0.1:9464/metrics')
      expect((await fetch(relay.metricsUrl!)).status).toBe(200)
      if (otherAddress) {
        expect(await refused(otherAddress, 9464)).toBe(true)
        // ...while the client port (0.0.0.0) is reachable there.
        expect((await fetch(`http://${otherAddress}:${relay.port}/healthz`)).status).toBe(200)
      }
    } finally {
      await relay.close()
    }
  })

  it('the CLI logs the metrics URL in its "relay listening" line', async () => {
    const run = await runCli(['--dev', '--metrics-listen', '127.0.0.1:0'])
    expect(listeningEntry(run.stdout).metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    const off = await runCli(['--dev', '--metrics-listen', 'off'])
    expect(listeningEntry(off.stdout).metricsUrl).toBeNull()
  })
})

describe('--trust-proxy', () => {
  /** Opens a WebSocket with these X-Forwarded-For headers; resolves the HTTP status of a refusal, or 101. */
  const upgrade = (url: string, xff: string | string[] | undefined) =>
    new Promise<{ status: number; ws?: WebSocket }>((resolve) => {
      const ws = new WebSocket(url, { headers: xff === undefined ? {} : { 'x-forwarded-for': xff } })
      ws.once('open', () => resolve({ status: 101, ws }))
      ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }))
      ws.once('error', () => {})
    })

  it('counts a connection under the right-most X-Forwarded-For entry, as its help says', async () => {
    expect(helpText()).toMatch(/--trust-proxy[\s\S]*right-most X-Forwarded-For entry/)
    // One connection per source network (/24), so a 429 shows which address the relay used.
    const { relay } = await inProcess({ trustProxy: true, maxConnectionsPerIp: 1 })
    const open: WebSocket[] = []
    try {
      const first = await upgrade(relay.url, '203.0.113.9, 198.51.100.7')
      expect(first.status).toBe(101)
      open.push(first.ws!)
      // The left entries are the client's to choose: changing them does not make another network.
      expect((await upgrade(relay.url, '192.0.2.1, 198.51.100.8')).status).toBe(429)
      // Several headers are joined in order: the right-most entry of the last one counts.
      expect((await upgrade(relay.url, ['192.0.2.1', '10.1.2.3, 198.51.100.9'])).status).toBe(429)
      // Another right-most network gets its own connection; so does the TCP peer (no header).
      for (const xff of ['198.51.100.7, 192.0.2.50', undefined]) {
        const other = await upgrade(relay.url, xff)
        expect(other.status).toBe(101)
        open.push(other.ws!)
      }
      // Without a usable entry, the peer (127.0.0.1), which already has its connection.
      expect((await upgrade(relay.url, '192.0.2.1, ')).status).toBe(429)
    } finally {
      for (const ws of open) ws.close()
      await relay.close()
    }
  })

  it('without --trust-proxy, X-Forwarded-For is ignored', async () => {
    const { relay } = await inProcess({ maxConnectionsPerIp: 1 })
    const first = await upgrade(relay.url, '198.51.100.7')
    expect(first.status).toBe(101)
    expect((await upgrade(relay.url, '192.0.2.99')).status).toBe(429)
    first.ws!.close()
    await relay.close()
  })
})
