// Discovery (issue 9, item 3): one @parley/node client discovers 1,000 contacts (100 of them registered)
// against a relay holding 1,000,000 registered addresses seeded into its SQLite store. Wall time of
// discover(), relay CPU time (from /proc) and bytes on the wire, against two baselines from the same run:
// the same discovery against a relay with an empty store, and the bare OPRF arithmetic (blind, evaluate,
// finalize) in this process, which is the floor no network or storage can beat.
// Run alone: cd bench && npx tsx discovery.ts [--quick]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  addressFromToken,
  numberToOprfInput,
  oprfBlind,
  oprfBlindEvaluate,
  oprfEvaluate,
  oprfFinalize,
} from '@parley/protocol'
import { CodeInbox } from '@parley/relay/testing'
import { OprfKeyring } from '../apps/relay/src/OprfKeyring.js'
import { createClient, type Transport, WsTransport } from '../packages/node/src/index.js'
import { cpuSeconds, type Row, record, startRelay } from './lib.js'
import { seedAccounts } from './seed.js'

const quick = process.argv.includes('--quick')
const REGISTERED = quick ? 100_000 : 1_000_000
const CONTACTS = 1000
const numbers = Array.from({ length: CONTACTS }, (_, i) => `+1415${String(2_000_000 + i)}`)
const registered = new Set(numbers.filter((_, i) => i % 10 === 0))

/** Counts the bytes of every frame a client sends and receives. */
class CountingTransport implements Transport {
  bytesOut = 0
  bytesIn = 0
  readonly #inner = new WsTransport()
  async open(url: string, signal?: AbortSignal) {
    const s = await this.#inner.open(url, signal)
    const self = this
    return {
      send(data: Uint8Array) {
        self.bytesOut += data.length
        s.send(data)
      },
      close: (code?: number, reason?: string) => s.close(code, reason),
      get onMessage() {
        return s.onMessage
      },
      set onMessage(f: ((data: Uint8Array) => void) | null) {
        s.onMessage = f
          ? (d) => {
              self.bytesIn += d.length
              f(d)
            }
          : null
      },
      get onClose() {
        return s.onClose
      },
      set onClose(f) {
        s.onClose = f
      },
    }
  }
}

async function run(seeded: number, codes: CodeInbox) {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-discovery-'))
  const key = OprfKeyring.open(dataDir).current
  if (seeded > 0) {
    const t = performance.now()
    function* addresses() {
      for (const n of registered) yield addressFromToken(oprfEvaluate(key.secretKey, numberToOprfInput(n)))
      for (let i = registered.size; i < seeded; i++) yield crypto.getRandomValues(new Uint8Array(32))
    }
    await seedAccounts(dataDir, addresses())
    console.log(`seeded ${seeded} addresses in ${((performance.now() - t) / 1000).toFixed(1)} s`)
  }
  const relay = await startRelay(codes, dataDir)
  const transport = new CountingTransport()
  const client = await createClient({ relayUrl: relay.baseUrl, defaultRegion: 'US', transport })
  const pending = await client.activate({ phoneNumber: '+14155554000', consent: true })
  await client.confirm(await codes.next(pending.e164))
  transport.bytesIn = 0
  transport.bytesOut = 0
  const cpu0 = cpuSeconds(relay.pid)
  const t0 = performance.now()
  const results = await client.discover(numbers)
  const wallMs = performance.now() - t0
  const cpuMs = (cpuSeconds(relay.pid) - cpu0) * 1000
  const found = results.filter((r) => r.registered).map((r) => r.e164 ?? '')
  if (seeded > 0 && (found.length !== registered.size || !found.every((n) => registered.has(n)))) {
    throw new Error(`discovery found ${found.length} of ${registered.size} registered contacts`)
  }
  await client.close()
  await relay.stop()
  rmSync(dataDir, { recursive: true, force: true })
  return { wallMs, cpuMs, bytes: transport.bytesIn + transport.bytesOut }
}

/** The OPRF work of 1,000 contacts in this process, no I/O: the floor, split into client and relay parts. */
function floor() {
  const keys = OprfKeyring.ephemeral().current
  const t = { blindMs: 0, evaluateMs: 0, finalizeMs: 0 }
  for (let off = 0; off < CONTACTS; off += 500) {
    let t0 = performance.now()
    const inputs = numbers.slice(off, off + 500).map((n) => numberToOprfInput(n))
    const blinded = inputs.map((i) => oprfBlind(i))
    const elements = blinded.map((b) => b.blindedElement)
    t.blindMs += performance.now() - t0
    t0 = performance.now()
    const ev = oprfBlindEvaluate(keys.secretKey, keys.publicKey, elements)
    t.evaluateMs += performance.now() - t0
    t0 = performance.now()
    oprfFinalize(
      inputs,
      blinded.map((b) => b.blind),
      ev.evaluatedElements,
      elements,
      ev.proof,
      keys.publicKey,
    )
    t.finalizeMs += performance.now() - t0
  }
  return { ...t, totalMs: t.blindMs + t.evaluateMs + t.finalizeMs }
}

const codes = new CodeInbox()
await codes.start()
const empty = await run(0, codes)
const full = await run(REGISTERED, codes)
const split = floor()
const floorMs = split.totalMs
await codes.close()
console.log({ empty, full, split })
const label = `${CONTACTS} contacts vs ${REGISTERED.toLocaleString('en')} registered`
const rows: Omit<Row, 'bench'>[] = [
  {
    metric: `${label}: wall time`,
    unit: 'ms',
    value: full.wallMs,
    baselineName: 'empty store',
    baseline: empty.wallMs,
    target: '≤ 1 s',
    met: full.wallMs <= 1000,
  },
  {
    metric: `${label}: wall time`,
    unit: 'ms',
    value: full.wallMs,
    baselineName: 'OPRF arithmetic alone, in-process',
    baseline: floorMs,
  },
  {
    metric: `${label}: relay CPU`,
    unit: 'ms',
    value: full.cpuMs,
    baselineName: 'empty store',
    baseline: empty.cpuMs,
  },
  {
    metric: `${label}: bytes on the wire`,
    unit: 'B',
    value: full.bytes,
    baselineName: 'empty store',
    baseline: empty.bytes,
  },
]
record('discovery', rows, [
  `OPRF arithmetic alone: client blind ${split.blindMs.toFixed(0)} ms + relay evaluate ${split.evaluateMs.toFixed(0)} ms + client verify/finalize ${split.finalizeMs.toFixed(0)} ms`,
  `relay CPU includes its OPRF worker threads; bytes = WebSocket payloads both ways (OPRF + membership), activation excluded`,
  ...(quick ? ['--quick: 100,000 registered instead of 1,000,000'] : []),
])
process.exit(0)
