// Fuzzing (issue 10): generated frames against a running relay process over raw WebSockets, on an
// unauthenticated and an authenticated connection. The relay must never crash or answer INTERNAL, every frame
// must get an answer (an Error frame, a reply, or a closed connection), a control pair of clients keeps doing
// round trips throughout, and the database stays consistent. CI runs 5,000 frames; `pnpm fuzz` runs 100,000.
import { type ClientFrame, decodeClientFrame, decodeServerFrame, errorCodeFromWire } from '@parley/protocol'
import {
  type Account,
  activate,
  login,
  messageId,
  RawClient,
  type RelayProcess,
  sealedShape,
  spawnDevRelay,
} from '@parley/relay/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RUN, report, timeoutFor } from './config.js'
import type { WebSocket } from './deps.js'
import { generate, type Kind, prng } from './frames.js'
import { CONSISTENT, checkRelayDb, metric, scrape } from './relayDb.js'

type Outcome = { kind: 'answer'; body: string; code?: string } | { kind: 'closed'; code: number }

/** A raw connection that sends one frame at a time and waits for its answer or the close. */
class FuzzConn {
  #waiter: ((o: Outcome) => void) | null = null
  closedWith: number | null = null
  pushes = 0

  private constructor(readonly ws: InstanceType<typeof WebSocket>) {
    ws.on('message', (data: Buffer) => {
      const f = decodeServerFrame(new Uint8Array(data))
      if (f.body === 'delivery' || f.body === 'mailboxGap') {
        this.pushes++
        return
      }
      const w = this.#waiter
      this.#waiter = null
      w?.({
        kind: 'answer',
        body: f.body,
        code: f.body === 'error' ? errorCodeFromWire(f.error!.code ?? 0) : undefined,
      })
    })
    ws.on('close', (code: number) => {
      this.closedWith = code
      const w = this.#waiter
      this.#waiter = null
      w?.({ kind: 'closed', code })
    })
    ws.on('error', () => {})
  }

  static async wrap(client: RawClient): Promise<FuzzConn> {
    client.ws.removeAllListeners('message')
    return new FuzzConn(client.ws)
  }

  exchange(bytes: Uint8Array, timeoutMs = 10_000): Promise<Outcome | 'timeout'> {
    if (this.closedWith !== null) return Promise.resolve({ kind: 'closed', code: this.closedWith })
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiter = null
        resolve('timeout')
      }, timeoutMs)
      this.#waiter = (o) => {
        clearTimeout(timer)
        resolve(o)
      }
      this.ws.send(bytes)
    })
  }

  close() {
    this.ws.terminate()
  }
}

/**
 * Two runs: quotas lifted, so generated frames reach the handlers; and the account, network and activation
 * quotas set low, so that the limits themselves are fuzzed (frame flooding stays lifted in both:
 * a dropped frame is deliberately not answered, and this test counts unanswered frames).
 */
const FUZZ_CONFIGS = [
  {
    name: 'quotas lifted',
    frames: RUN.fuzzFrames,
    args: [
      '--pre-auth-bytes-per-second',
      '0',
      '--activations-per-ip-per-hour',
      '1000000',
      '--activation-confirms-per-network-per-hour',
      '1000000',
      '--code-requests-per-hour',
      '1000000',
      '--oprf-ip-capacity',
      '100000000',
      '--oprf-account-capacity',
      '100000000',
      '--send-capacity',
      '1000000',
      '--bundle-capacity',
      '1000000',
      '--membership-addresses-capacity',
      '100000000',
    ],
  },
  {
    // The control client's sends stay under the default send quota; the limits an attacker's frames hit are low.
    name: 'quotas on',
    frames: Math.ceil(RUN.fuzzFrames / 2),
    args: [
      '--bundle-capacity',
      '5',
      '--oprf-account-capacity',
      '20',
      '--membership-addresses-capacity',
      '20',
      '--code-requests-per-hour',
      '1',
      '--activations-per-ip-per-hour',
      '3',
      '--activation-confirms-per-network-per-hour',
      '5',
      '--acks-per-second',
      '50',
      // Pre-login reads paced, but fast enough that the run (and so the control's sends) stays short.
      '--pre-auth-bytes-per-second',
      String(4 * 1024 * 1024),
    ],
  },
]

describe.each(FUZZ_CONFIGS)('fuzzing the relay with generated frames ($name)', ({ frames: FRAMES, args }) => {
  let relay: RelayProcess
  let fuzzAccount: Account
  let alice: Account
  let bob: Account
  const maxFrameBytes = 320 * 1024

  beforeAll(async () => {
    relay = await spawnDevRelay([
      '--frames-burst',
      '1000000',
      '--frames-per-second',
      '1000000',
      '--max-bad-frames',
      '1000000',
      '--membership-min-bucket', // the generated queries use 16-bit prefixes
      '0',
      ...args,
    ])
    const setup = await RawClient.open(relay.url)
    fuzzAccount = await activate(setup, relay, '+14155550190')
    alice = await activate(await RawClient.open(relay.url), relay, '+14155550191')
    bob = await activate(await RawClient.open(relay.url), relay, '+14155550192')
    setup.close()
  })

  afterAll(async () => {
    if (relay && relay.proc.exitCode === null && relay.proc.signalCode === null) await relay.stop('SIGKILL')
  })

  it(
    `survives ${FRAMES} generated frames; every frame answered; control traffic unaffected; database consistent`,
    async () => {
      const r = prng(RUN.fuzzSeed)
      const stats = {
        seed: RUN.fuzzSeed,
        frames: 0,
        byKind: {} as Record<string, number>,
        answers: {} as Record<string, number>,
        closes: {} as Record<string, number>,
        reconnects: 0,
        skippedDeactivate: 0,
        unanswered: 0,
        framesPerSecond: 0,
        control: { roundTrips: 0, failures: 0, maxLatencyMs: 0, delivered: 0 },
      }
      const bump = (m: Record<string, number>, k: string) => {
        m[k] = (m[k] ?? 0) + 1
      }

      // Control traffic: Alice pings and sends to Bob all along; Bob must get every message live.
      const a = (await login(relay.url, alice)).client
      const b = (await login(relay.url, bob)).client
      await b.request({ syncMailbox: { afterSeq: 0 } })
      let fuzzing = true
      const control = (async () => {
        let sent = 0
        while (fuzzing) {
          const t0 = Date.now()
          try {
            await a.request({ ping: {} })
            await a.request({
              sendMessage: {
                recipientAddress: bob.address,
                recipientDeviceId: bob.deviceId,
                messageId: messageId(),
                envelope: sealedShape(new Uint8Array(64).fill(sent % 256)),
              },
            })
            sent++
            stats.control.roundTrips++
          } catch {
            stats.control.failures++
          }
          stats.control.maxLatencyMs = Math.max(stats.control.maxLatencyMs, Date.now() - t0)
          await new Promise((res) => setTimeout(res, 20))
        }
        return sent
      })()

      const open = async (authenticated: boolean) => {
        stats.reconnects++
        return FuzzConn.wrap(
          authenticated ? (await login(relay.url, fuzzAccount)).client : await RawClient.open(relay.url),
        )
      }
      const conns = [await open(false), await open(true)]
      const msByKind: Record<string, number> = {}
      const started = Date.now()
      for (let i = 0; i < FRAMES; i++) {
        const which = r.int(2)
        if (conns[which]!.closedWith !== null) conns[which] = await open(which === 1)
        const requestId = 1 + r.int(1000)
        const { kind, bytes } = generate(r, requestId, {
          maxFrameBytes,
          address: fuzzAccount.address,
          identity: fuzzAccount.identity,
        })
        // A generated Deactivate would erase the fuzzing account and end the authenticated half of the run.
        let decoded: ClientFrame | undefined
        try {
          decoded = decodeClientFrame(bytes, Number.MAX_SAFE_INTEGER)
        } catch {}
        if (decoded?.body === 'deactivate') {
          stats.skippedDeactivate++
          continue
        }
        stats.frames++
        bump(stats.byKind, kind as Kind)
        const t0 = performance.now()
        const outcome = await conns[which]!.exchange(bytes)
        msByKind[kind] = (msByKind[kind] ?? 0) + performance.now() - t0
        if (outcome === 'timeout') {
          stats.unanswered++
          conns[which]!.close()
          conns[which] = await open(which === 1)
        } else if (outcome.kind === 'closed') bump(stats.closes, String(outcome.code))
        else bump(stats.answers, outcome.code ?? outcome.body)
        expect(relay.proc.exitCode, 'the relay process exited').toBeNull()
      }
      stats.framesPerSecond = Math.round(stats.frames / ((Date.now() - started) / 1000))
      const meanMsByKind = Object.fromEntries(
        Object.entries(msByKind).map(([k, ms]) => [k, Number((ms / stats.byKind[k]!).toFixed(2))]),
      )
      fuzzing = false
      const sent = await control
      for (const c of conns) c.close()

      // Bob got every control message, live, while the fuzzer ran.
      const deadline = Date.now() + 10_000
      while (b.deliveries().length < sent && Date.now() < deadline)
        await new Promise((res) => setTimeout(res, 20))
      stats.control.delivered = b.deliveries().length
      // The relay still does a full round trip for a new connection.
      const fresh = await RawClient.open(relay.url)
      expect((await fresh.request({ ping: {} })).body).toBe('pong')
      fresh.close()

      const m = await scrape(relay.metricsUrl)
      const internal = metric(m, 'parley_relay_errors_total', { code: 'INTERNAL' })
      a.close()
      b.close()
      // SIGKILL, not a clean shutdown: the database must be consistent however the process ends.
      await relay.stop('SIGKILL')
      const db = checkRelayDb(relay.dataDir)
      report('fuzz', { ...stats, meanMsByKind, internalErrors: internal, db })

      expect(stats.unanswered).toBe(0)
      expect(internal).toBe(0)
      expect(relay.stdout.filter((l) => /request failed|uncaught|unhandled/.test(l))).toEqual([])
      expect(stats.control.failures).toBe(0)
      expect(stats.control.delivered).toBe(sent)
      expect(db).toMatchObject(CONSISTENT)
    },
    timeoutFor(120_000, 3_600_000),
  )
})
