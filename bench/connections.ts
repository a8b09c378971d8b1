// Connections (issue 9, item 4): relay RSS with N idle authenticated connections (default 10,000), held by
// several client processes (2,500 each), against the baseline forwarder.ts holding as many connections in the
// same run. Accounts are seeded into the store (seed.ts) with real Ed25519 identity keys.
// Run alone: cd bench && npx tsx connections.ts [--quick] [--connections N]
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Row, record, rssBytes, runScript, sleep, startRelay } from './lib.js'
import { seedAccounts } from './seed.js'

const arg = process.argv.indexOf('--connections')
const N = arg > 0 ? Number(process.argv[arg + 1]) : process.argv.includes('--quick') ? 2000 : 10_000
const PER_PROCESS = 2500
const MiB = 2 ** 20

const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-conns-'))
const accounts = Array.from({ length: N }, () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  return {
    address: crypto.getRandomValues(new Uint8Array(32)),
    identityKey: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)),
    pkcs8: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('hex'),
  }
})
await seedAccounts(
  dataDir,
  accounts.map((a) => a.address),
  accounts.map((a) => a.identityKey),
)
const keysFile = join(dataDir, 'keys.json')
writeFileSync(
  keysFile,
  JSON.stringify(accounts.map((a) => ({ address: Buffer.from(a.address).toString('hex'), pkcs8: a.pkcs8 }))),
)

/** Opens N connections to `url` from several processes; resolves how many are held and a stop function. */
async function hold(url: string) {
  const children: { child: ReturnType<typeof runScript>; ready: Promise<void> }[] = []
  let held = 0
  for (let start = 0; start < N; start += PER_PROCESS) {
    const child = runScript('connHolder.ts', [
      url,
      keysFile,
      String(start),
      String(Math.min(PER_PROCESS, N - start)),
    ])
    const ready = new Promise<void>((resolve) =>
      child.onLine((line) => {
        const m = /^ready (\d+) failed (\d+)/.exec(line)
        if (m) {
          held += Number(m[1])
          if (Number(m[2]) > 0) console.log(`  ${m[2]} connections failed`)
          resolve()
        }
      }),
    )
    children.push({ child, ready })
  }
  await Promise.all(children.map((c) => c.ready))
  return {
    held,
    stop: () => {
      for (const c of children) process.kill(c.child.pid, 'SIGTERM')
    },
  }
}

async function measure(name: string, pid: number, url: string) {
  await sleep(2000)
  const idle = rssBytes(pid)
  const t = performance.now()
  const h = await hold(url)
  const connectS = (performance.now() - t) / 1000
  await sleep(3000)
  const loaded = rssBytes(pid)
  h.stop()
  console.log(
    `${name}: ${h.held} connections in ${connectS.toFixed(1)} s; RSS ${(idle / MiB).toFixed(0)} → ${(loaded / MiB).toFixed(0)} MiB`,
  )
  return { idle, loaded, held: h.held }
}

const fwdChild = runScript('forwarder.ts')
const fwdPort = await new Promise<number>((resolve) =>
  fwdChild.onLine((l) => l.includes('forwarder listening') && resolve(JSON.parse(l).port)),
)
const fwd = await measure('forwarder', fwdChild.pid, `ws://127.0.0.1:${fwdPort}`)
process.kill(fwdChild.pid, 'SIGTERM')

const relay = await startRelay({ url: 'http://127.0.0.1:9/unused', secret: 'unused-webhook-secret' }, dataDir)
const rel = await measure('relay', relay.pid, relay.url)
await relay.stop()
rmSync(dataDir, { recursive: true, force: true })

const perConn = (m: { idle: number; loaded: number; held: number }) =>
  (m.loaded - m.idle) / Math.max(1, m.held)
const at10k = rel.idle + perConn(rel) * 10_000
const rows: Omit<Row, 'bench'>[] = [
  {
    metric: `RSS with ${rel.held} idle authenticated connections`,
    unit: 'MiB',
    value: rel.loaded / MiB,
    baselineName: `forwarder, ${fwd.held} connections`,
    baseline: fwd.loaded / MiB,
    ...(N >= 10_000 ? { target: '≤ 1 GiB', met: rel.loaded <= 1024 * MiB } : {}),
  },
  {
    metric: 'RSS per connection',
    unit: 'KiB',
    value: perConn(rel) / 1024,
    baselineName: 'forwarder',
    baseline: perConn(fwd) / 1024,
  },
]
if (N < 10_000) {
  rows.push({
    metric: 'RSS extrapolated to 10,000 connections',
    unit: 'MiB',
    value: at10k / MiB,
    baselineName: 'forwarder, extrapolated',
    baseline: (fwd.idle + perConn(fwd) * 10_000) / MiB,
    target: '≤ 1 GiB',
    met: at10k <= 1024 * MiB,
  })
}
record('connections', rows, [
  `${Math.ceil(N / PER_PROCESS)} client processes; RSS read from /proc 3 s after the last connection authenticated`,
])
process.exit(0)
