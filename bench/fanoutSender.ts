// The measured sender of fanout.ts, alone in its own process so that its CPU (process.cpuUsage()) holds nothing
// but the sending: no receiver's decryption, no relay. One @parley/node client (in-memory store, node:crypto fast
// path), driven by the parent over the IPC channel: activate (the parent reads the SMS code), create link codes,
// discover, and send batches, each timed from the first send() until the relay accepted every copy (one
// `delivered` event per message and the outbox empty). Not run alone: `cd bench && npx tsx fanout.ts`.
import { createClient, type ParleyClient } from '../packages/node/src/index.js'

/** A request of the parent, answered with the same id. */
export interface SenderRequest {
  id: number
  op: 'init' | 'linkCode' | 'linked' | 'discover' | 'send' | 'received' | 'close'
  args?: { relayUrl?: string; number?: string; to?: string; count?: number; size?: number }
}

/** A child → parent message: an answer to a request, or a question (`code`: the SMS code for `e164`). */
export type SenderMessage =
  | { id: number; result?: unknown; error?: string }
  | { ask: number; op: 'code'; e164: string }

/** What a measured batch cost this process. */
export interface BatchResult {
  count: number
  /** CPU (user + system) of this process from the first send() until the relay accepted every copy, ms. */
  cpuMs: number
  wallMs: number
  /** pendingCount() polls after the last `delivered` event (the sent transcripts still going out). */
  polls: number
}

const send = (m: SenderMessage) => process.send!(m)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

let client: ParleyClient | undefined
let delivered = 0
let received = 0
let onDelivered: (() => void) | null = null
const failures: string[] = []
let linked: Promise<{ deviceId: number }> | null = null
let nextAsk = 0
const asks = new Map<number, (code: string) => void>()

function askCode(e164: string): Promise<string> {
  const ask = nextAsk++
  return new Promise((resolve) => {
    asks.set(ask, resolve)
    send({ ask, op: 'code', e164 })
  })
}

/** `size` bytes of text (ASCII), numbered so that no two are alike. */
const text = (i: number, size: number) => `${i} `.padEnd(size, 'x')

async function batch(to: string, count: number, size: number): Promise<BatchResult> {
  const c = client!
  const target = delivered + count
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  for (let i = 0; i < count; i++) await c.send(to, text(i, size))
  while (delivered < target) await new Promise<void>((r) => (onDelivered = r))
  // The `delivered` event comes once the contact's copies were accepted; the sent transcripts follow.
  // Polled every 5 ms, not faster: a poll lists the outbox, which the in-memory store does by scanning every key.
  let polls = 0
  while ((await c.pendingCount()) > 0) {
    polls++
    await sleep(5)
  }
  const cpu = process.cpuUsage(cpu0)
  const wallMs = performance.now() - t0
  if (failures.length > 0) throw new Error(`${failures.length} sends failed: ${failures[0]}`)
  return { count, cpuMs: (cpu.user + cpu.system) / 1000, wallMs, polls }
}

async function handle(req: SenderRequest): Promise<unknown> {
  const a = req.args ?? {}
  switch (req.op) {
    case 'init': {
      client = await createClient({
        relayUrl: a.relayUrl!,
        defaultRegion: 'US',
        reconnect: { minDelayMs: 50, maxDelayMs: 1000 },
      })
      client.on('delivered', () => {
        delivered++
        onDelivered?.()
        onDelivered = null
      })
      client.on('message', () => received++)
      client.on('sendFailed', (e) => failures.push(`${e.error.code}: ${e.error.message}`))
      client.on('error', (e) => console.error(`sender ${a.number}: ${e.code}: ${e.message}`))
      const pending = await client.activate({ phoneNumber: a.number!, consent: true })
      await client.confirm(await askCode(pending.e164))
      return pending.e164
    }
    case 'linkCode': {
      const invitation = await client!.createLinkCode({ confirm: () => true })
      linked = invitation.linked
      return invitation.code
    }
    case 'linked':
      return (await linked!).deviceId
    case 'discover':
      return await client!.discover([a.to!])
    case 'send':
      return await batch(a.to!, a.count!, a.size!)
    case 'received':
      return received
    case 'close':
      await client?.close()
      setImmediate(() => process.exit(0))
      return null
  }
}

// The bench process is gone (it failed or was stopped): do not linger with the client's sockets open.
process.on('disconnect', () => {
  client?.close().finally(() => process.exit(1))
  setTimeout(() => process.exit(1), 5000).unref()
})

process.on('message', (m: SenderRequest | { answer: number; code: string }) => {
  if ('answer' in m) {
    asks.get(m.answer)?.(m.code)
    asks.delete(m.answer)
    return
  }
  handle(m).then(
    (result) => send({ id: m.id, result }),
    (err: unknown) =>
      send({ id: m.id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
  )
})
