// Enumeration attack (docs/architecture.md §1 P7): a scripted enumerator with one activated account tries 100,000 numbers.
// It gets at most its quota of OPRF evaluations, then clear RATE_LIMITED errors with retryAfterMs; deactivating
// and activating the number again (across a relay restart) buys nothing; without an account, from any of
// several source addresses, it gets nothing at all. The relay counts the refusals and logs no number.
import { once } from 'node:events'
import { join } from 'node:path'
import { createClient, type ParleyClient, ParleyError } from '@parley/node'
import {
  decodeServerFrame,
  encodeClientFrame,
  errorCodeFromWire,
  normalizeNumber,
  numberToOprfInput,
  oprfBlind,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  type ServerFrame,
} from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { CodeInbox, clientDir, type Relay, startRelay } from '../contract/harness.js'
import { generateNumbers } from './numbers.js'
import { describeHits, NumberScanner } from './scan.js'

const ACCOUNT_QUOTA = 2000
const NETWORK_QUOTA = 100_000
const BATCH = 500
const ATTEMPTS = 100_000

async function metrics(relay: Relay): Promise<Map<string, number>> {
  const text = await (await fetch(relay.metricsUrl)).text()
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

describe('a scripted enumerator (P7)', () => {
  const codes = new CodeInbox()
  let relay: Relay
  let client: ParleyClient
  // 100,000 valid numbers: what an enumerator walking the number space would try.
  const targets = generateNumbers(ATTEMPTS)

  beforeAll(async () => {
    await codes.start()
    relay = await startRelay(codes, [
      '--oprf-account-capacity',
      String(ACCOUNT_QUOTA),
      '--oprf-account-per-day',
      '200',
      '--oprf-ip-capacity',
      String(NETWORK_QUOTA),
      '--oprf-ip-per-day',
      String(NETWORK_QUOTA),
      '--max-discovery-batch',
      String(BATCH),
    ])
    client = await createClient({
      relayUrl: relay.baseUrl,
      storePath: join(clientDir(), 'enum.db'),
      defaultRegion: 'US',
    })
    const pending = await client.activate({ phoneNumber: '+1 415 555 0100', consent: true })
    await client.confirm(await codes.next(pending.e164))
  })

  afterAll(async () => {
    await client?.close()
    await relay?.close()
    await codes.close()
  })

  it('with an account: at most its quota of evaluations, then RATE_LIMITED with retryAfterMs, counted in /metrics', async () => {
    expect(targets.length).toBe(ATTEMPTS)
    const before = await metrics(relay)
    let evaluated = 0
    const refusals: ParleyError[] = []
    // The enumerator walks the list in batches, and keeps knocking a few times after the first refusal.
    // (Bounded for test time: a relay that never refuses fails the quota assertion after 10 batches, not a timeout.)
    for (let i = 0; i < ATTEMPTS && refusals.length < 3 && i < ACCOUNT_QUOTA + 6 * BATCH; i += BATCH) {
      const batch = targets.slice(i, i + BATCH).map((n) => n.e164)
      try {
        await client.discover(batch)
        evaluated += batch.length
      } catch (err) {
        if (!(err instanceof ParleyError)) throw err
        refusals.push(err)
      }
    }
    expect(evaluated).toBeLessThanOrEqual(ACCOUNT_QUOTA)
    expect(evaluated).toBeGreaterThanOrEqual(ACCOUNT_QUOTA - BATCH)
    expect(refusals.map((e) => e.code)).toEqual(['RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED'])
    for (const e of refusals) {
      expect(e.retryAfterMs).toBeGreaterThan(0)
      // The message says what ran out and holds no digits of any number.
      expect(e.message).not.toMatch(/\d{4,}/)
    }
    const after = await metrics(relay)
    const delta = (k: string) => (after.get(k) ?? 0) - (before.get(k) ?? 0)
    // The SDK pipelines discovery: one request may already be on its way when the previous one is refused, so
    // the relay counts one or two refusals per refused discover() call, and may have evaluated part of a call
    // that failed as a whole — never more than the quota.
    const refused = delta('parley_relay_rate_limited_total{scope="oprf_account"}')
    expect(refused).toBeGreaterThanOrEqual(refusals.length)
    expect(refused).toBeLessThanOrEqual(2 * refusals.length)
    expect(delta('parley_relay_errors_total{code="RATE_LIMITED"}')).toBeGreaterThanOrEqual(refused)
    const relayEvaluated = delta('parley_relay_oprf_evaluations_total')
    expect(relayEvaluated).toBeGreaterThanOrEqual(evaluated)
    expect(relayEvaluated).toBeLessThanOrEqual(ACCOUNT_QUOTA)
  }, 180_000) // 2,000 blind evaluations verified on the client: CPU-bound, slow on a loaded 2-core machine

  it('deactivating and activating the number again buys no new quota, not even across a relay restart', async () => {
    // The quota of the account is spent (previous test). Deactivate, restart the relay, activate again.
    await client.deactivate()
    await client.close()
    await relay.restart()
    client = await createClient({
      relayUrl: relay.baseUrl,
      storePath: join(clientDir(), 'enum-again.db'),
      defaultRegion: 'US',
    })
    const pending = await client.activate({ phoneNumber: '+1 415 555 0100', consent: true })
    await client.confirm(await codes.next(pending.e164)) // checking its own address costs no quota
    const before = await metrics(relay)
    const refused = await client.discover(targets.slice(20_000, 20_000 + BATCH).map((n) => n.e164)).then(
      () => 'evaluated',
      (e: ParleyError) => e.code,
    )
    expect(refused).toBe('RATE_LIMITED')
    const after = await metrics(relay)
    expect(
      (after.get('parley_relay_oprf_evaluations_total') ?? 0) -
        (before.get('parley_relay_oprf_evaluations_total') ?? 0),
    ).toBe(0)
  })

  it('without an account: refused from every source address, nothing evaluated', async () => {
    const before = await metrics(relay)
    const answers: string[] = []
    // Raw protocol: fresh unauthenticated connections from four loopback addresses, as an enumerator with
    // several IPs would (they once got a fresh budget each).
    for (const localAddress of ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4']) {
      const ws = new WebSocket(relay.url, { localAddress })
      ws.binaryType = 'nodebuffer'
      const frames: ServerFrame[] = []
      ws.on('message', (d: Buffer) => frames.push(decodeServerFrame(new Uint8Array(d))))
      const next = async (): Promise<ServerFrame> => {
        while (frames.length === 0) await new Promise((r) => setTimeout(r, 5))
        return frames.shift()!
      }
      await once(ws, 'open')
      ws.send(
        encodeClientFrame({
          requestId: 1,
          hello: { protocolMajor: PROTOCOL_MAJOR, protocolMinor: PROTOCOL_MINOR },
        }),
      )
      const hello = await next()
      const keyId = hello.serverHello!.oprfKeys![0]!.keyId
      const blinded = targets
        .slice(50_000, 50_000 + BATCH)
        .map((t) => oprfBlind(numberToOprfInput(normalizeNumber(t.e164))).blindedElement)
      ws.send(encodeClientFrame({ requestId: 2, oprfEvaluate: { keyId, blindedElements: blinded } }))
      const reply = await next()
      answers.push(reply.body === 'error' ? errorCodeFromWire(reply.error!.code ?? 0) : reply.body)
      ws.close()
    }
    expect(answers).toEqual(['UNAUTHENTICATED', 'UNAUTHENTICATED', 'UNAUTHENTICATED', 'UNAUTHENTICATED'])
    const after = await metrics(relay)
    expect(
      (after.get('parley_relay_oprf_evaluations_total') ?? 0) -
        (before.get('parley_relay_oprf_evaluations_total') ?? 0),
    ).toBe(0)
  })

  it('the relay log records the refusals and holds none of the numbers tried', () => {
    const log = relay.output.join('\n')
    expect(log).toMatch(/quota exhausted/)
    const tried = targets.slice(0, 4000).concat(targets.slice(50_000, 60_000))
    const scanner = new NumberScanner([...tried, { e164: '+14155550100', national: '4155550100' }])
    const text = Buffer.from(log.replace(/"(time|pid)":\d+,?/g, ''))
    expect(
      describeHits(
        scanner.scan(text, 'log').filter((h) => h.encoding !== 'bcd' && h.encoding !== 'bcd-swapped'),
      ),
    ).toEqual([])
  })
})
