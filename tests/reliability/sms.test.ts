// SMS pumping and bombing (security review), as the attacker's scripts against a real relay process: every
// `ActivationStart` that gets through makes the verifier send an SMS the operator pays for. Each script checks
// the refusals by their error code AND their metric, and counts the SMS the verifier was asked to send (the
// console verifier's lines on stderr, and `parley_relay_sms_sent_total`). Counts only, never timings.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { activationPayload, checkActivationPow, solveActivationPow } from '@parley/protocol'
import {
  expectError,
  Identity,
  inProcess,
  newWebhookSecret,
  prekeys,
  RawClient,
  type RelayProcess,
  spawnDevRelay,
  WebhookReceiver,
} from '@parley/relay/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../apps/relay/src/logger.js'
import { WebhookVerifier } from '../../apps/relay/src/Verifier.js'
import { report } from './config.js'
import { metric, scrape } from './relayDb.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
/** SMS the console verifier was asked to send so far (one stderr line each). */
const deliveries = (relay: RelayProcess) => relay.stderr.filter((l) => l.includes('verification code')).length
const start = (c: RawClient, phoneNumber: string, powSolution?: Uint8Array) =>
  c.request({ activationStart: { phoneNumber, consent: true, ...(powSolution ? { powSolution } : {}) } })
/** Starts an activation and waits for its SMS line, so every earlier line has arrived too (one ordered pipe). */
async function started(relay: RelayProcess, c: RawClient, phoneNumber: string, powSolution?: Uint8Array) {
  const s = (await start(c, phoneNumber, powSolution)).activationStarted!
  const code = await relay.code(hex(s.activationId!))
  return { activationId: s.activationId!, code }
}

describe('SMS pumping against a relay process', () => {
  const relays: RelayProcess[] = []
  const spawn = async (args: string[]) => {
    const r = await spawnDevRelay(args)
    relays.push(r)
    return r
  }
  afterAll(async () => {
    await Promise.all(relays.map((r) => r.stop()))
  })

  it('(a) one number asked for codes again and again: refused with growing retryAfterMs, counted', async () => {
    const relay = await spawn([
      '--code-backoff-base-ms',
      '400',
      '--code-backoff-max-ms',
      '60000',
      '--code-requests-per-hour',
      '100',
    ])
    const c = await RawClient.open(relay.url)
    const before = await scrape(relay.metricsUrl)
    const number = '+14155550301'
    // The script: ask, and when refused, wait what the relay says and ask again — 4 codes in all.
    const retries: number[] = []
    let sent = 0
    let refused = 0
    await started(relay, c, number)
    sent++
    while (sent < 4) {
      const err = await expectError(start(c, number), 'RATE_LIMITED')
      refused++
      retries.push(err.retryAfterMs!)
      await sleep(err.retryAfterMs! + 20)
      await started(relay, c, number)
      sent++
    }
    // Asked right after each code: 400, 800, 1600 ms, less what elapsed since that code (never more).
    expect(retries).toHaveLength(3)
    for (let i = 0; i < retries.length; i++) {
      expect(retries[i]!).toBeLessThanOrEqual(400 * 2 ** i)
      if (i > 0) expect(retries[i]!).toBeGreaterThan(retries[i - 1]!)
    }

    // And the bomber that does not wait: 20 requests in a row for another number, one SMS.
    const bomb = '+14155550302'
    const first = await started(relay, c, bomb)
    for (let i = 0; i < 19; i++) await expectError(start(c, bomb), 'RATE_LIMITED')
    // The number's owner uses the code: the backoff is forgotten, a new device may ask at once.
    const id = new Identity()
    const done = await c.request({
      activationConfirm: {
        activationId: first.activationId,
        code: first.code,
        identityKey: id.publicKey,
        identitySignature: id.sign(activationPayload(first.activationId, id.publicKey)),
        prekeys: prekeys(id),
      },
    })
    expect(done.body).toBe('activated')
    await started(relay, c, bomb)
    const after = await scrape(relay.metricsUrl)
    const grew = (name: string, labels: Record<string, string> = {}) =>
      metric(after, name, labels) - metric(before, name, labels)
    expect(grew('parley_relay_rate_limited_total', { scope: 'code_backoff' })).toBe(refused + 19)
    expect(grew('parley_relay_sms_sent_total')).toBe(sent + 2)
    expect(deliveries(relay)).toBe(sent + 2)
    report('sms backoff', { retryAfterMs: retries, bomberRequests: 20, bomberSms: 1 })
    c.close()
  })

  it('(a) code guesses for one number are bounded across all its activations, counted', async () => {
    const relay = await spawn([
      '--code-backoff-base-ms',
      '0',
      '--code-requests-per-hour',
      '100',
      '--code-guesses-per-number-per-hour',
      '7',
    ])
    const c = await RawClient.open(relay.url)
    const before = await scrape(relay.metricsUrl)
    const number = '+14155550311'
    const id = new Identity()
    const guess = (activationId: Uint8Array, code: string) =>
      c.send({
        activationConfirm: {
          activationId,
          code,
          identityKey: id.publicKey,
          identitySignature: id.sign(activationPayload(activationId, id.publicKey)),
          prekeys: prekeys(id),
        },
      })
    const answers: string[] = []
    // 3 activations × 5 attempts each would be 15 guesses; the number has 7 per hour.
    for (let a = 0; a < 3; a++) {
      const s = await started(relay, c, number)
      const wrong = String((Number(s.code) + 1) % 1_000_000).padStart(6, '0')
      for (let i = 0; i < 5; i++) {
        const f = await guess(s.activationId, wrong)
        answers.push(f.error ? String(f.error.code) : f.body)
      }
      if (a === 2) {
        // Even the right code: the number's guesses are spent (the activation keeps its attempts).
        const f = await guess(s.activationId, s.code)
        answers.push(f.error ? String(f.error.code) : f.body)
      }
    }
    // 5 wrong codes locked the first activation; 2 more on the second, then every guess is refused.
    const INVALID_CODE = '10'
    const RATE_LIMITED = '3'
    expect(answers).toEqual([...Array(7).fill(INVALID_CODE), ...Array(9).fill(RATE_LIMITED)])
    const after = await scrape(relay.metricsUrl)
    const grew = (name: string, labels: Record<string, string>) =>
      metric(after, name, labels) - metric(before, name, labels)
    expect(grew('parley_relay_activations_total', { outcome: 'invalid_code' })).toBe(7)
    expect(grew('parley_relay_rate_limited_total', { scope: 'code_guesses' })).toBe(9)
    report('sms code guesses', { activations: 3, guesses: answers.length, wrongCodesChecked: 7 })
    c.close()
  })

  it('(b) many numbers under one prefix hit the prefix budget, then the global one, counted', async () => {
    const relay = await spawn([
      '--sms-per-prefix-per-hour',
      '5',
      '--sms-per-hour',
      '8',
      '--activations-per-ip-per-hour',
      '1000',
    ])
    const c = await RawClient.open(relay.url)
    const before = await scrape(relay.metricsUrl)
    const outcome: Record<string, number> = {}
    const pump = async (numbers: string[]) => {
      for (const n of numbers) {
        const f = await c.send({ activationStart: { phoneNumber: n, consent: true } })
        const key = f.body === 'error' ? `error ${f.error!.code}` : f.body
        outcome[key] = (outcome[key] ?? 0) + 1
        if (f.body === 'activationStarted') await relay.code(hex(f.activationStarted!.activationId!))
      }
    }
    const range = (prefix: string, n: number) =>
      Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(4, '0')}`)
    await pump(range('+1415555', 10)) // one prefix (1415): 5 SMS, then its budget is spent
    await pump(range('+1212555', 3)) // another prefix: 3 SMS, and the global budget (8) is spent
    await pump(range('+44207946', 5)) // a third prefix: every request refused by the global budget
    const after = await scrape(relay.metricsUrl)
    const grew = (name: string, labels: Record<string, string> = {}) =>
      metric(after, name, labels) - metric(before, name, labels)
    expect(outcome).toEqual({ activationStarted: 8, 'error 3': 10 })
    expect(grew('parley_relay_rate_limited_total', { scope: 'sms_prefix' })).toBe(5)
    expect(grew('parley_relay_rate_limited_total', { scope: 'sms_global' })).toBe(5)
    expect(grew('parley_relay_sms_sent_total')).toBe(8)
    expect(deliveries(relay)).toBe(8) // the verifier was asked for exactly the global budget
    report('sms budgets', { requests: 18, numbers: 18, prefixes: 3, smsSent: deliveries(relay) })
    c.close()
  })

  it('(c) with --activation-pow-bits 12: no solution or a wrong one is refused with no SMS; solved works', async () => {
    const relay = await spawn([
      '--activation-pow-bits',
      '12',
      '--activation-pow-load-per-minute',
      '2',
      '--activations-per-ip-per-hour',
      '1000',
    ])
    const c = await RawClient.open(relay.url)
    expect(c.hello!.activationPowBits).toBe(12)
    const nonce = c.hello!.authNonce!
    const number = '+14155550321'
    const before = await scrape(relay.metricsUrl)
    // Junk that does not solve it, checked locally so the test cannot pass by a 1-in-4096 fluke.
    let junk = new Uint8Array(16)
    for (let i = 1; checkActivationPow(nonce, number, junk, 12); i++) junk = new Uint8Array(16).fill(i)
    let otherNumbers: Uint8Array
    do otherNumbers = solveActivationPow(nonce, '+14155550322', 12)
    while (checkActivationPow(nonce, number, otherNumbers, 12))
    const fresh = await RawClient.open(relay.url)
    let otherConnection: Uint8Array
    do otherConnection = solveActivationPow(fresh.hello!.authNonce!, number, 12)
    while (checkActivationPow(nonce, number, otherConnection, 12))
    fresh.close()
    await expectError(start(c, number), 'BAD_REQUEST')
    for (const wrong of [junk, otherNumbers, otherConnection, new Uint8Array(33)])
      await expectError(start(c, number, wrong), 'BAD_REQUEST')
    const refusedOnly = await scrape(relay.metricsUrl)
    expect(metric(refusedOnly, 'parley_relay_sms_sent_total')).toBe(0)
    expect(metric(refusedOnly, 'parley_relay_activations_total', { outcome: 'started' })).toBe(0)

    const solution = solveActivationPow(nonce, number, 12)
    await started(relay, c, number, solution)
    // The same solution again (same connection, same number) is spent.
    await expectError(start(c, number, solution), 'BAD_REQUEST')
    const after = await scrape(relay.metricsUrl)
    const grew = (name: string, labels: Record<string, string> = {}) =>
      metric(after, name, labels) - metric(before, name, labels)
    expect(grew('parley_relay_pow_refused_total', { reason: 'missing' })).toBe(1)
    expect(grew('parley_relay_pow_refused_total', { reason: 'invalid' })).toBe(4)
    expect(grew('parley_relay_pow_refused_total', { reason: 'replayed' })).toBe(1)
    expect(grew('parley_relay_sms_sent_total')).toBe(1)
    // The refusals spent none of the number's backoff (30 s by default): else the solved request was refused.
    expect(metric(after, 'parley_relay_rate_limited_total', { scope: 'code_backoff' })).toBe(0)
    expect(deliveries(relay)).toBe(1)

    // Under load the difficulty rises: 5 SMS in the last minute over a threshold of 2 per minute.
    for (let i = 0; i < 4; i++) {
      const n = `+1415555033${i}`
      await started(relay, c, n, solveActivationPow(nonce, n, 12))
    }
    const loaded = await RawClient.open(relay.url)
    const bits = loaded.hello!.activationPowBits!
    expect(bits).toBeGreaterThan(12)
    expect(bits).toBeLessThanOrEqual(22)
    const n = '+14155550339'
    const loadedNonce = loaded.hello!.authNonce!
    let only12: Uint8Array
    do only12 = solveActivationPow(loadedNonce, n, 12)
    while (checkActivationPow(loadedNonce, n, only12, bits))
    await expectError(start(loaded, n, only12), 'BAD_REQUEST')
    await started(relay, loaded, n, solveActivationPow(loadedNonce, n, bits))
    expect(metric(await scrape(relay.metricsUrl), 'parley_relay_activation_pow_bits')).toBe(bits)
    expect(deliveries(relay)).toBe(6)
    report('sms proof of work', { bits: 12, refusedWithoutSms: 5, bitsUnderLoad: bits, smsSent: 6 })
    c.close()
    loaded.close()
  })
})

describe('the verifier webhook can veto', () => {
  let hook: ReturnType<typeof createServer>
  let url = ''
  let answer: { status: number; headers?: Record<string, string>; body?: string } = { status: 200 }
  let posts = 0
  // The gateway checks every call as an operator's would (signature, timestamp, id) before it answers.
  const secret = newWebhookSecret()
  const receiver = new WebhookReceiver(secret)
  const refusals: string[] = []
  beforeAll(async () => {
    hook = createServer((req, res) => {
      let body = ''
      req.on('data', (c) => {
        body += c
      })
      req.on('end', () => {
        posts++
        const refused = receiver.check(req.headers, body)
        if (refused !== null) {
          refusals.push(refused)
          res.writeHead(401).end()
          return
        }
        res.writeHead(answer.status, answer.headers ?? {}).end(answer.body ?? '')
      })
    })
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/sms`
  })
  afterAll(() => new Promise<void>((r) => hook.close(() => r())))

  it('(d) 403 → FORBIDDEN, 429 → RATE_LIMITED with Retry-After, counted, the reason logged without the number', async () => {
    const lines: string[] = []
    const logger = createLogger('info', { write: (line: string) => void lines.push(line) })
    const { relay } = await inProcess({ verifierImpl: new WebhookVerifier({ url, secret }), logger })
    const c = await RawClient.open(relay.url)
    expect(c.hello!.activationPowBits ?? 0).toBe(0) // off by default
    answer = {
      status: 403,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'premium-rate range +44 20 7946 0123 blocked' }),
    }
    const forbidden = await expectError(start(c, '+442079460123'), 'FORBIDDEN')
    expect(forbidden.message).not.toContain('7946')
    answer = { status: 429, headers: { 'retry-after': '120' } }
    const limited = await expectError(start(c, '+442079460124'), 'RATE_LIMITED')
    expect(limited.retryAfterMs).toBe(120_000)
    answer = { status: 403, body: 'not json' }
    await expectError(start(c, '+442079460125'), 'FORBIDDEN')
    answer = { status: 200 }
    expect((await start(c, '+442079460126')).body).toBe('activationStarted')
    const m = await scrape(relay.metricsUrl)
    expect(metric(m, 'parley_relay_activations_total', { outcome: 'vetoed' })).toBe(3)
    expect(metric(m, 'parley_relay_activations_total', { outcome: 'verifier_failed' })).toBe(0)
    expect(metric(m, 'parley_relay_sms_sent_total')).toBe(1)
    expect(posts).toBe(4)
    expect(refusals).toEqual([])
    const vetoes = lines.map((l) => JSON.parse(l)).filter((e) => e.msg === 'verifier vetoed the activation')
    expect(vetoes.map((e) => [e.status, e.reason])).toEqual([
      [403, 'premium-rate range [digits] blocked'],
      [429, null],
      [403, null],
    ])
    for (const l of lines) expect(l).not.toMatch(/7946 ?01|442079/)
    report('sms webhook veto', { vetoed: 3, smsSent: 1 })
    c.close()
    await relay.close()
  })
})
