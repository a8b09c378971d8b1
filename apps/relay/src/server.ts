/**
 * The HTTP + WebSocket server: `/v1/ws` (the protocol), `/v1/blobs/<id>` (encrypted attachments, blobHttp.ts),
 * `/healthz`, `/readyz` (and the demo page in development) on the client port, `/metrics` on its own listener (`--metrics-listen`); periodic sweeps; graceful shutdown
 * (stop accepting, finish in-flight requests, close the store).
 * @module
 */
import { createHmac } from 'node:crypto'
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join, resolve } from 'node:path'
import type { Duplex } from 'node:stream'
import { ParleyError } from '@parley/protocol'
import { type WebSocket, WebSocketServer } from 'ws'
import { Activations } from './Activations.js'
import { closeHeldConnections } from './admin/watch.js'
import { type BlobStore, FileBlobStore } from './BlobStore.js'
import { serveBlob } from './blobHttp.js'
import { Connection } from './Connection.js'
import { CloseCode } from './closeCodes.js'
import { DEFAULT_CONFIG, metricsAddress, policies, type RelayConfig, validateConfig } from './config.js'
import type { RelayContext } from './context.js'
import { DiskGuard, statfsFree } from './DiskGuard.js'
import { lockDataDir } from './dataDirLock.js'
import { type Fanout, LocalFanout } from './Fanout.js'
import { HeavyLane } from './internal/lane.js'
import { networkOf } from './internal/network.js'
import { createLogger, type Logger } from './logger.js'
import { MembershipLength } from './MembershipLength.js'
import { createMetrics, type Metrics } from './metrics.js'
import { OprfKeyring } from './OprfKeyring.js'
import { OprfPool } from './OprfPool.js'
import { PostgresBlobStore } from './PostgresBlobStore.js'
import { MemoryRateLimiter, type RateLimiter, type SavedBucket } from './RateLimiter.js'
import { RelayKeys } from './RelayKeys.js'
import { SqliteStore } from './SqliteStore.js'
import type { Store } from './Store.js'
import { blobsInPostgres, openScaleOut } from './scaleOut.js'
import { ConsoleVerifier, type Verifier, WebhookVerifier } from './Verifier.js'

/** Options of {@link startRelay}: any configuration field, plus optional port implementations. */
export interface RelayOptions extends Omit<Partial<RelayConfig>, 'store' | 'blobStore'> {
  /**
   * Storage: an implementation, or the `--store` value (`'sqlite'`, `'postgres://…'`); default SQLite at
   * `<dataDir>/relay.db` (or in memory when `dataDir` is `':memory:'`).
   */
  store?: Store | string
  /** Fan-out; default in-process. */
  fanout?: Fanout
  /**
   * Blobs (end-to-end encrypted attachments): an implementation of the port (an object store of your own, say), or
   * the `--blob-store` value. By default (`'auto'`), a {@link PostgresBlobStore} in the store's database with a
   * PostgreSQL store, else a {@link FileBlobStore} in `<dataDir>/blobs/` (a temporary directory with `dataDir:
   * ':memory:'`).
   */
  blobStore?: BlobStore | RelayConfig['blobStore']
  /** Rate limiter; default in-memory. */
  limiter?: RateLimiter
  /** Verifier; default from `verifier` / `webhookUrl`. Tests may pass their own to capture codes. */
  verifierImpl?: Verifier
  /** OPRF keys; default `<dataDir>/oprf-keys.json` (ephemeral with `dataDir: ':memory:'`). */
  oprfKeyring?: OprfKeyring
  /** Certificate keys; default `<dataDir>/relay-keys.json` (ephemeral with `dataDir: ':memory:'`). */
  relayKeys?: RelayKeys
  /** Logger; default pino on stdout at `logLevel`. */
  logger?: Logger
  /**
   * Free bytes for `--min-free-disk-bytes`; default `statfs` of `dataDir` when the mail is in its SQLite file
   * (no check for `:memory:`, PostgreSQL or a given store). Tests inject it to simulate a full disk.
   */
  diskFree?: () => Promise<number>
  /** How long a free-space measurement is reused (default 5 s). */
  diskCheckIntervalMs?: number
}

/** A running relay. */
export interface RunningRelay {
  /** WebSocket URL of the protocol endpoint, e.g. `ws://127.0.0.1:8787/v1/ws`. */
  url: string
  /** Base HTTP URL of the client port (health, readiness, the demo page). */
  httpUrl: string
  /**
   * URL of `/metrics` on the metrics listener (`--metrics-listen`), e.g. `http://127.0.0.1:9464/metrics`;
   * `null` when it is off.
   */
  metricsUrl: string | null
  /** The bound port. */
  port: number
  /** The effective configuration (`demo` resolved to `true` or `false`). */
  config: RelayConfig
  /** Metrics (for in-process tests). */
  metrics: Metrics
  /** Runs the expiry sweep now; resolves how many messages expired. */
  sweep(): Promise<number>
  /**
   * Re-reads `oprf-keys.json` now (after `parley-relay oprf rotate`; the sweep does it too) and deletes keys past
   * their grace period. Resolves whether the served keys changed.
   */
  reloadOprfKeys(): boolean
  /** Graceful shutdown; idempotent. */
  close(): Promise<void>
}

/**
 * The client address for per-network limits. With `trustProxy`: the right-most entry of `X-Forwarded-For` (all
 * such headers joined in order), the one the relay's own proxy appended; entries to its left are client-supplied
 * and ignored. Without `trustProxy`, or with no (or an empty last) entry: the TCP peer address.
 */
function clientIp(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const xff = req.headers['x-forwarded-for']
    const value = Array.isArray(xff) ? xff.join(',') : xff
    // The right-most entry is the one our own proxy appended; entries to its left are client-supplied.
    const last = value?.split(',').pop()?.trim()
    if (last) return last
  }
  return req.socket.remoteAddress ?? 'unknown'
}

// ── Demo page (issue 6): `/` serves the demo page of @parley/demo (apps/demo). A fixed allowlist maps URL paths
// to its files, so no request path ever reaches the file system and traversal is impossible. A built relay
// (dist/, the published package) serves the copy its build put in dist/demo/. From the sources (`pnpm relay`), it
// loads @parley/demo (a dev dependency, never published), which builds demo.js from its sources and the browser
// SDK's when its dist/ is missing or stale, so `pnpm relay` needs no build step and never serves a stale bundle.
// Without either, the demo page answers 503 and the rest of the relay is unaffected.
type DemoFileName = 'index.html' | 'demo.js' | 'demo.css'
type DemoFiles = Readonly<Record<DemoFileName, Buffer>>
const DEMO_FILES: Readonly<Record<string, readonly [file: DemoFileName, type: string]>> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/demo.js': ['demo.js', 'text/javascript; charset=utf-8'],
  '/demo.css': ['demo.css', 'text/css; charset=utf-8'],
}
/** Where the build copies the demo page: `dist/demo/` beside `dist/server.js`. */
const BUILT_DEMO = new URL('./demo/', import.meta.url)
/** Named through a variable, so that the build neither bundles nor type-checks the private workspace package. */
const DEMO_PACKAGE = '@parley/demo'
async function loadDemoFiles(): Promise<DemoFiles> {
  if (!import.meta.url.endsWith('.ts')) {
    const read = (f: DemoFileName) => readFile(new URL(f, BUILT_DEMO))
    const [html, js, css] = await Promise.all([read('index.html'), read('demo.js'), read('demo.css')])
    return { 'index.html': html, 'demo.js': js, 'demo.css': css }
  }
  const demo = (await import(DEMO_PACKAGE)) as { demoFiles(): Promise<DemoFiles> }
  return demo.demoFiles()
}
let demoFiles: Promise<DemoFiles> | undefined
function demoFile(file: DemoFileName): Promise<Buffer> {
  demoFiles ??= loadDemoFiles()
  demoFiles.catch(() => (demoFiles = undefined)) // retry on the next request
  return demoFiles.then((files) => files[file])
}
function serveDemo(path: string, req: IncomingMessage, res: ServerResponse, log: Logger): boolean {
  if (!Object.hasOwn(DEMO_FILES, path)) return false
  const [file, type] = DEMO_FILES[path]!
  demoFile(file).then(
    (body) => {
      res.writeHead(200, {
        'content-type': type,
        'content-length': body.length,
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
        // blob: for the images the page decrypted itself (attachments).
        'content-security-policy':
          "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:",
      })
      res.end(req.method === 'HEAD' ? undefined : body)
    },
    (err) => {
      log.warn({ err, file }, 'demo page unavailable')
      res.writeHead(503, { 'content-type': 'text/plain' }).end('demo page unavailable\n')
    },
  )
  return true
}
// ── end of the demo page block ──

/** Saved abuse counters (`MemoryRateLimiter.snapshot`); a missing or unreadable file means none. */
function readQuotas(path: string, warn: (msg: string) => void): SavedBucket[] {
  if (!existsSync(path)) return []
  try {
    const file = JSON.parse(readFileSync(path, 'utf8')) as { version?: number; buckets?: SavedBucket[] }
    if (file.version === 1 && Array.isArray(file.buckets)) return file.buckets
  } catch {}
  warn('quotas.json is unreadable; abuse counters start full')
  return []
}

function writeQuotas(path: string, buckets: SavedBucket[]): void {
  const tmp = `${path}.tmp`
  writeFileSync(tmp, JSON.stringify({ version: 1, buckets }), { mode: 0o600 })
  renameSync(tmp, path)
}

function refuseUpgrade(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
}

const withTimeout = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<void>((r) => setTimeout(r, ms).unref())])

/** `http://host:port`, with `127.0.0.1` for a wildcard host and brackets around IPv6. */
function baseUrl(host: string, port: number): string {
  const h = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve((server.address() as AddressInfo).port)
    })
  })
}

/**
 * Starts a relay.
 * @param options - configuration (defaults: DEFAULT_CONFIG) and optional port implementations
 * @returns the running relay once it is listening
 * @throws RangeError for an invalid configuration (or a development-only one without `dev`); ParleyError
 *   `UNAVAILABLE` when the data directory cannot be written, `CONFLICT` when another relay uses its SQLite data
 *   directory (`relay.lock`); the listen error of the client port or the metrics listener (e.g. EADDRINUSE)
 * @example
 * const relay = await startRelay({ port: 0, dataDir: ':memory:', logLevel: 'silent', dev: true })
 * // ... connect to relay.url ...
 * await relay.close()
 */
export async function startRelay(options: RelayOptions = {}): Promise<RunningRelay> {
  const {
    store: storeOpt,
    fanout,
    blobStore: blobOpt,
    limiter,
    verifierImpl,
    oprfKeyring,
    relayKeys,
    logger,
    diskFree,
    diskCheckIntervalMs,
    ...configOpts
  } = options
  const config: RelayConfig = { ...DEFAULT_CONFIG }
  for (const [k, v] of Object.entries(configOpts))
    if (v !== undefined) (config as unknown as Record<string, unknown>)[k] = v
  if (typeof storeOpt === 'string') config.store = storeOpt
  if (typeof blobOpt === 'string') config.blobStore = blobOpt
  const blobStore = typeof blobOpt === 'string' ? undefined : blobOpt
  validateConfig(config, { verifierGiven: verifierImpl !== undefined })
  config.demo ??= config.dev
  const metricsAt = metricsAddress(config.metricsListen)
  const log = logger ?? createLogger(config.logLevel)
  if (config.dev) {
    log.warn(
      { dev: true, demo: config.demo },
      'DEVELOPMENT RELAY (--dev): the console verifier and unsigned webhook calls are allowed — never run --dev in production',
    )
  }
  const inMemory = config.dataDir === ':memory:'
  if (!inMemory) config.dataDir = resolve(config.dataDir)
  if (!inMemory && (!storeOpt || !oprfKeyring || !relayKeys)) {
    try {
      mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
      accessSync(config.dataDir, constants.W_OK)
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message
      throw new ParleyError('UNAVAILABLE', `the data directory ${config.dataDir} is not writable (${why})`)
    }
    log.info({ dataDir: config.dataDir }, 'data directory')
  }

  const given = typeof storeOpt === 'object' ? storeOpt : undefined
  // One relay per SQLite file; nodes that share a PostgreSQL store may share a data directory (its key files).
  const lock = !inMemory && !given && config.store === 'sqlite' ? lockDataDir(config.dataDir) : undefined
  let scaleOut: Awaited<ReturnType<typeof openScaleOut>>
  try {
    scaleOut = await openScaleOut(config, { store: !given, fanout: !fanout, limiter: !limiter }, log)
  } catch (err) {
    lock?.release()
    throw err
  }
  const metrics = createMetrics()
  const store =
    given ??
    scaleOut.store ??
    new SqliteStore(inMemory ? ':memory:' : join(config.dataDir, 'relay.db'), {
      scrubDelayMs: config.erasureScrubSeconds * 1000,
      onScrub: (event) => {
        if (event.kind === 'due') return metrics.storeScrubDue.set(1)
        if (event.kind === 'failed') {
          metrics.storeScrubs.inc({ outcome: 'failed' })
          return log.error({ err: event.error }, 'scrub after an erasure failed; tried again at the next one')
        }
        metrics.storeScrubs.inc({ outcome: 'done' })
        metrics.storeScrubDue.set(0)
        metrics.storeScrubSeconds.set(event.ms / 1000)
      },
    })
  let blobs: BlobStore
  try {
    blobs =
      blobStore ??
      (blobsInPostgres(config)
        ? await PostgresBlobStore.open({ url: config.store })
        : inMemory
          ? await FileBlobStore.temporary()
          : await FileBlobStore.open(join(config.dataDir, 'blobs')))
  } catch (err) {
    await Promise.allSettled([given ? undefined : store.close(), scaleOut.close()])
    lock?.release()
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    const what = blobsInPostgres(config) ? 'the PostgreSQL blob store' : 'the blob directory'
    throw new ParleyError('UNAVAILABLE', `${what} cannot be opened (${why})`)
  }
  const verifier =
    verifierImpl ??
    (config.verifier === 'webhook'
      ? new WebhookVerifier({
          url: config.webhookUrl,
          secret: config.webhookSecret,
          timeoutMs: config.webhookTimeoutMs,
          onFailure: (reason) => log.warn({ reason }, 'webhook verifier call failed'),
        })
      : new ConsoleVerifier())
  if (verifier.name === 'console') {
    log.warn(
      'console verifier: codes are printed to stderr — development only, use --verifier webhook in production',
    )
  }
  const keys =
    relayKeys ?? (inMemory ? RelayKeys.ephemeral() : RelayKeys.open(config.dataDir, (m) => log.warn(m)))
  const ctx: RelayContext = {
    config,
    policies: policies(config),
    store,
    fanout: fanout ?? scaleOut.fanout ?? new LocalFanout(),
    limiter: limiter ?? scaleOut.limiter ?? new MemoryRateLimiter(),
    verifier,
    oprf:
      oprfKeyring ??
      (inMemory ? OprfKeyring.ephemeral() : OprfKeyring.open(config.dataDir, (m) => log.warn(m))),
    oprfPool: new OprfPool({ warn: (msg, err) => log.warn({ err }, msg) }),
    bound: new Map(),
    relayKeys: keys,
    activations:
      scaleOut.activations ??
      new Activations({
        // Without --number-hash-key, a key kept in relay-keys.json: per-number limits survive a restart.
        hashKey: config.numberHashKey
          ? Buffer.from(config.numberHashKey, 'hex')
          : createHmac('sha256', keys.quotaKey).update('parley/relay/number-hash-key').digest(),
        ttlSeconds: config.codeTtlSeconds,
        attempts: config.codeAttempts,
        max: config.maxPendingActivations,
      }),
    disk: new DiskGuard({
      minFreeBytes: config.minFreeDiskBytes,
      free: diskFree ?? (inMemory || given || scaleOut.store ? undefined : statfsFree(config.dataDir)),
      intervalMs: diskCheckIntervalMs,
      onError: (err) => log.warn({ err }, 'could not measure free disk space'),
    }),
    blobs,
    blobDisk: new DiskGuard({
      minFreeBytes: config.minFreeDiskBytes,
      free:
        diskFree ?? (inMemory || !(blobs instanceof FileBlobStore) ? undefined : statfsFree(config.dataDir)),
      intervalMs: diskCheckIntervalMs,
      onError: (err) => log.warn({ err }, 'could not measure free disk space of the blob directory'),
    }),
    lane: new HeavyLane(),
    membership: new MembershipLength({
      maxBits: config.membershipPrefixBits,
      minBucket: config.membershipMinBucket,
      count: () => store.accountCount(),
    }),
    metrics,
    log,
  }

  // One node without Redis keeps its abuse counters in memory; they are saved to <dataDir>/quotas.json with
  // every sweep and at shutdown, and read back at start, so a restart does not hand out fresh quotas.
  const quotaFile =
    !inMemory && ctx.limiter instanceof MemoryRateLimiter ? join(config.dataDir, 'quotas.json') : null
  if (quotaFile && ctx.limiter instanceof MemoryRateLimiter) {
    const restored = ctx.limiter.restore(readQuotas(quotaFile, (m) => log.warn(m)))
    if (restored > 0) log.info({ buckets: restored }, 'abuse counters restored')
  }
  const saveQuotas = () => {
    if (quotaFile && ctx.limiter instanceof MemoryRateLimiter) writeQuotas(quotaFile, ctx.limiter.snapshot())
  }

  const connections = new Set<Connection>()
  /** Open connections per source network (`--max-connections-per-ip` counts by network). */
  const perIp = new Map<string, number>()
  let closing = false

  // Node checks header deadlines on this interval; a short one makes --headers-timeout-ms (slowloris) exact.
  const connectionsCheckingInterval = Math.max(100, Math.min(30_000, Math.floor(config.headersTimeoutMs / 4)))
  const server: Server = createServer({ connectionsCheckingInterval }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    if (serveBlob(ctx, path, req, res)) return
    // A body sent anywhere else is never read: the connection closes with the answer rather than wait for it.
    res.on('finish', () => {
      if (!req.complete) req.socket.destroy()
    })
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end()
      return
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n')
    } else if (path === '/readyz') {
      Promise.all([
        ctx.store.ping().catch(() => Promise.reject('store unavailable')),
        ctx.fanout.ping?.().catch(() => Promise.reject('fan-out unavailable')),
        ctx.disk.low().then((low) => (low ? Promise.reject('disk nearly full') : undefined)),
      ]).then(
        () => {
          if (closing) res.writeHead(503, { 'content-type': 'text/plain' }).end('shutting down\n')
          else res.writeHead(200, { 'content-type': 'text/plain' }).end('ready\n')
        },
        (why: unknown) => res.writeHead(503, { 'content-type': 'text/plain' }).end(`${String(why)}\n`),
      )
    } else if (!(config.demo && serveDemo(path, req, res, log))) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
    }
  })
  // The whole request must arrive within this: only a blob upload has a body worth waiting for (others are closed
  // once answered, below), so the limit is the one for a blob's body.
  server.requestTimeout = Math.max(config.headersTimeoutMs, config.blobUploadTimeoutSeconds * 1000)
  server.headersTimeout = config.headersTimeoutMs

  // `/metrics` has its own listener (default 127.0.0.1:9464), so the public client port never serves it.
  const metricsServer: Server | null =
    metricsAt &&
    createServer({ connectionsCheckingInterval }, (req, res) => {
      const path = (req.url ?? '/').split('?')[0]
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405).end()
      } else if (path === '/metrics') {
        ctx.metrics.registry.metrics().then(
          (text) =>
            res
              .writeHead(200, { 'content-type': ctx.metrics.registry.contentType })
              .end(req.method === 'HEAD' ? undefined : text),
          () => res.writeHead(500).end(),
        )
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
      }
    })
  if (metricsServer) {
    metricsServer.requestTimeout = Math.max(30_000, config.headersTimeoutMs)
    metricsServer.headersTimeout = config.headersTimeoutMs
  }

  const wss = new WebSocketServer({
    noServer: true,
    // Frames up to twice the limit are read and refused with a TOO_LARGE Error frame; beyond that the socket is
    // closed (1009) without buffering more.
    maxPayload: config.maxFrameBytes * 2,
    perMessageDeflate: false,
  })

  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => {})
    if (closing) return refuseUpgrade(socket, 503, 'Service Unavailable')
    if ((req.url ?? '').split('?')[0] !== '/v1/ws') return refuseUpgrade(socket, 404, 'Not Found')
    const ip = clientIp(req, config.trustProxy)
    const network = networkOf(ip, { v4: config.ipv4NetworkBits, v6: config.ipv6NetworkBits })
    if ((perIp.get(network) ?? 0) >= config.maxConnectionsPerIp) {
      ctx.metrics.rateLimited.inc({ scope: 'connections_ip' })
      return refuseUpgrade(socket, 429, 'Too Many Requests')
    }
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, ip, network))
  })

  const alive = new WeakMap<WebSocket, boolean>()
  function onConnection(ws: WebSocket, ip: string, network: string): void {
    perIp.set(network, (perIp.get(network) ?? 0) + 1)
    const conn = new Connection(ws, ip, ctx)
    connections.add(conn)
    ctx.metrics.connections.inc()
    alive.set(ws, true)
    ws.on('pong', () => alive.set(ws, true))
    ws.on('error', (err) => {
      // ws reports oversize frames and protocol violations here and closes the socket itself.
      const reason = /max payload/i.test(err.message) ? 'too_large' : 'ws_error'
      ctx.metrics.closedConnections.inc({ reason })
      log.debug({ conn: conn.id, reason }, 'websocket error')
    })
    ws.on('close', () => {
      connections.delete(conn)
      const n = (perIp.get(network) ?? 1) - 1
      if (n <= 0) perIp.delete(network)
      else perIp.set(network, n)
      ctx.metrics.connections.dec()
      conn.onClosed()
    })
  }

  const heartbeat = setInterval(() => {
    for (const ws of wss.clients) {
      if (alive.get(ws) === false) {
        ws.terminate()
        continue
      }
      alive.set(ws, false)
      try {
        ws.ping()
      } catch {}
    }
  }, 30_000)
  heartbeat.unref()

  /** Authenticated connections are closed over this long after a rotation, so they do not all come back at once. */
  const ROTATION_RECONNECT_SPREAD_MS = 5000
  let announcedKeyId = ctx.oprf.current.keyId
  function reloadOprfKeys(): boolean {
    let changed = false
    try {
      changed = ctx.oprf.reload()
    } catch (err) {
      log.error(
        { err: { message: (err as Error).message } },
        'oprf-keys.json changed but cannot be read; keeping the keys in memory',
      )
    }
    const pruned = ctx.oprf.prune()
    const served = ctx.oprf.served()
    ctx.metrics.oprfKeysServed.set(served.length)
    if (served[0]!.keyId !== announcedKeyId) {
      announcedKeyId = served[0]!.keyId
      // Devices learn of the new key from a new ServerHello, and then move their accounts (RebindAddress).
      for (const conn of connections) {
        if (!conn.device) continue
        const t = setTimeout(
          () => conn.close(CloseCode.serviceRestart, 'OPRF key rotated; reconnect', 'oprf_rotated'),
          Math.random() * ROTATION_RECONNECT_SPREAD_MS,
        )
        t.unref()
      }
    }
    if (changed || pruned.length > 0) {
      log.info(
        { current: served[0]!.keyId, served: served.map((k) => k.keyId), deleted: pruned },
        'OPRF keys changed',
      )
    }
    return changed || pruned.length > 0
  }

  async function sweep(): Promise<number> {
    reloadOprfKeys()
    const expired = await ctx.store.expire(Date.now() - config.messageTtlSeconds * 1000)
    if (expired > 0) {
      ctx.metrics.expired.inc(expired)
      log.info({ expired }, 'expired mail swept')
    }
    const blobSweep = await ctx.blobs.sweep(Date.now())
    if (blobSweep.expired > 0) ctx.metrics.blobs.inc({ event: 'expired' }, blobSweep.expired)
    if (blobSweep.abandoned > 0) ctx.metrics.blobs.inc({ event: 'abandoned' }, blobSweep.abandoned)
    if (blobSweep.expired + blobSweep.abandoned > 0) log.info({ ...blobSweep }, 'blobs swept')
    ctx.metrics.blobBytes.set(await ctx.blobs.storedBytes())
    ctx.activations.sweep()
    await closeHeldConnections(ctx)
    ctx.metrics.membershipPrefixBits.set(await ctx.membership.refresh())
    if (ctx.limiter instanceof MemoryRateLimiter) ctx.limiter.sweep()
    saveQuotas()
    return expired
  }
  let sweeping: Promise<unknown> = Promise.resolve()
  const sweeper = setInterval(() => {
    sweeping = sweep().catch((err) => log.error({ err }, 'sweep failed'))
  }, config.sweepIntervalSeconds * 1000)
  sweeper.unref()
  await sweep()

  let port = 0
  let metricsUrl: string | null = null
  let listening = `${config.host}:${config.port}`
  try {
    port = await listen(server, config.port, config.host)
    if (metricsServer && metricsAt) {
      listening = `--metrics-listen ${config.metricsListen}`
      metricsUrl = `${baseUrl(metricsAt.host, await listen(metricsServer, metricsAt.port, metricsAt.host))}/metrics`
    }
  } catch (err) {
    // Nothing was served yet: undo what the start opened, so the caller gets the listen error alone.
    clearInterval(sweeper)
    clearInterval(heartbeat)
    server.close()
    metricsServer?.close()
    await sweeping
    ctx.activations.clear()
    await Promise.allSettled([
      ctx.fanout.close(),
      ctx.limiter.close(),
      ctx.store.close(),
      ctx.blobs.close(),
      scaleOut.close(),
    ])
    lock?.release()
    // The listen error keeps its code (EADDRINUSE, EACCES); the message says which listener failed.
    if (err instanceof Error) err.message = `cannot listen on ${listening}: ${err.message}`
    throw err
  }
  server.on('error', (err) => log.error({ err }, 'server error'))
  metricsServer?.on('error', (err) => log.error({ err }, 'metrics server error'))
  const httpUrl = baseUrl(config.host, port)
  const url = `${httpUrl.replace(/^http/, 'ws')}/v1/ws`
  log.info(
    {
      port,
      host: config.host,
      url,
      metricsUrl,
      dataDir: config.dataDir,
      verifier: verifier.name,
      dev: config.dev,
      demo: config.demo,
    },
    'relay listening',
  )

  let closed: Promise<void> | undefined
  async function close(): Promise<void> {
    if (closed) return closed
    closing = true
    closed = (async () => {
      log.info({ connections: connections.size }, 'shutting down')
      clearInterval(sweeper)
      clearInterval(heartbeat)
      const serverClosed = new Promise<void>((r) => server.close(() => r()))
      const metricsClosed = new Promise<void>((r) => (metricsServer ? metricsServer.close(() => r()) : r()))
      for (const conn of connections) conn.drain()
      // Finish what was already accepted, so no SendMessage is cut between its commit and its reply.
      await withTimeout(Promise.all([...connections].map((c) => c.idle())), config.shutdownTimeoutMs)
      for (const conn of connections) conn.close(CloseCode.goingAway, 'relay shutting down', 'shutdown')
      await withTimeout(new Promise<void>((r) => wss.close(() => r())), 1000)
      for (const ws of wss.clients) ws.terminate()
      server.closeAllConnections()
      metricsServer?.closeAllConnections()
      await withTimeout(Promise.all([serverClosed, metricsClosed]), 1000)
      await sweeping
      ctx.activations.clear()
      try {
        saveQuotas()
      } catch (err) {
        log.error({ err }, 'could not save abuse counters')
      }
      await ctx.oprfPool.close()
      await ctx.fanout.close()
      await ctx.limiter.close()
      await ctx.store.close()
      await ctx.blobs.close()
      await scaleOut.close()
      lock?.release()
      log.info('relay stopped')
    })()
    return closed
  }

  return { url, httpUrl, metricsUrl, port, config, metrics: ctx.metrics, sweep, reloadOprfKeys, close }
}
