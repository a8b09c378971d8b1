// The programmatic API (startRelay) in-process: full mailboxes and a nearly full disk, expiry gaps, live pushes,
// the webhook verifier, graceful shutdown; plus config parsing and the rate limiter.
import { createHmac } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deliveryTokenVerifier, GapReason } from '@parley/protocol'
import { describe, expect, it } from 'vitest'
import { DEFAULT_CONFIG, helpText, parseConfig } from '../src/config.js'
import { LocalFanout } from '../src/Fanout.js'
import { startRelay } from '../src/index.js'
import { MemoryRateLimiter } from '../src/RateLimiter.js'
import { WebhookVerifier } from '../src/Verifier.js'
import {
  activate,
  expectError,
  inProcess,
  login,
  messageId,
  RawClient,
  sealedShape,
  shapeText,
} from '../testing/index.js'

describe('startRelay (in-process)', () => {
  it('starts on a free port, reports url and port, and closes idempotently', async () => {
    const { relay } = await inProcess()
    expect(relay.port).toBeGreaterThan(0)
    expect(relay.url).toBe(`ws://127.0.0.1:${relay.port}/v1/ws`)
    expect((await fetch(`${relay.httpUrl}/readyz`)).status).toBe(200)
    await Promise.all([relay.close(), relay.close()])
    await expect(fetch(`${relay.httpUrl}/healthz`)).rejects.toThrow()
  })

  it('is not ready while its fan-out cannot deliver (e.g. Redis down)', async () => {
    let up = true
    const fanout = Object.assign(new LocalFanout(), {
      ping: async () => {
        if (!up) throw new Error('redis down')
      },
    })
    const { relay } = await inProcess({ fanout })
    expect((await fetch(`${relay.httpUrl}/readyz`)).status).toBe(200)
    up = false
    const res = await fetch(`${relay.httpUrl}/readyz`)
    expect(res.status).toBe(503)
    expect(await res.text()).toBe('fan-out unavailable\n')
    expect((await fetch(`${relay.httpUrl}/healthz`)).status).toBe(200)
    await relay.close()
  })

  it('refuses mail beyond the mailbox limit with MAILBOX_FULL, keeps the oldest, and takes mail again after an ack', async () => {
    const { relay, verifier } = await inProcess({ maxMailboxMessages: 3 })
    const a = await RawClient.open(relay.url)
    const b = await RawClient.open(relay.url)
    await activate(a, verifier, '+14155550121')
    const bob = await activate(b, verifier, '+14155550122')
    b.close()
    const send = (text: string) =>
      a.request({
        sendMessage: {
          recipientAddress: bob.address,
          recipientDeviceId: bob.deviceId,
          messageId: messageId(),
          envelope: sealedShape(text),
        },
      })
    for (let i = 1; i <= 3; i++) await send(`m${i}`)
    for (let i = 4; i <= 5; i++) {
      const err = await expectError(send(`m${i}`), 'MAILBOX_FULL')
      expect(err.retryAfterMs).toBeGreaterThan(0)
    }
    const { client } = await login(relay.url, bob)
    const done = await client.request({ syncMailbox: { afterSeq: 0 } })
    expect(done.syncDone!.headSeq).toBe(3)
    // No gap: the oldest mail is all there, and nothing of the refused mail.
    expect(client.pushes.map((f) => f.body)).toEqual(['delivery', 'delivery', 'delivery'])
    expect(client.deliveries().map((d) => shapeText(d.envelope!))).toEqual(['m1', 'm2', 'm3'])
    const metrics = await (await fetch(relay.metricsUrl!)).text()
    expect(metrics).toMatch(/^parley_relay_mailbox_full_total\{limit="messages"\} 2$/m)
    expect(metrics).not.toMatch(/evicted_total/)
    // Reading frees room; a new message then arrives live, without another sync.
    await client.request({ ackMessages: { seqs: [1] } })
    await send('live')
    const live = await client.push((f) => f.body === 'delivery' && f.delivery!.seq === 4)
    expect(shapeText(live.delivery!.envelope!)).toBe('live')
    await expectError(send('again'), 'MAILBOX_FULL')
    a.close()
    client.close()
    await relay.close()
  })

  it('refuses new mail while free disk space is under --min-free-disk-bytes (503 on /readyz), and recovers', async () => {
    const MiB = 1024 * 1024
    let free = 1024 * MiB
    let measured = 0
    const diskFree = async () => {
      measured++
      return free
    }
    const { relay, verifier } = await inProcess({
      minFreeDiskBytes: 256 * MiB,
      diskFree,
      diskCheckIntervalMs: 40,
    })
    const a = await RawClient.open(relay.url)
    const b = await RawClient.open(relay.url)
    await activate(a, verifier, '+14155550131')
    const bob = await activate(b, verifier, '+14155550132')
    const token = new Uint8Array(32).fill(5)
    await b.request({ setDeliveryToken: { verifier: deliveryTokenVerifier(token) } })
    const body = (text: string) => ({
      recipientAddress: bob.address,
      recipientDeviceId: bob.deviceId,
      messageId: messageId(),
      envelope: sealedShape(text),
    })
    const send = (text: string) => a.request({ sendMessage: body(text) })
    const unidentified = async (text: string) => {
      const anon = await RawClient.open(relay.url)
      try {
        return await anon.request({ unidentifiedSend: { ...body(text), deliveryToken: token } })
      } finally {
        anon.close()
      }
    }
    const ready = async () => {
      const res = await fetch(`${relay.httpUrl}/readyz`)
      return `${res.status} ${await res.text()}`
    }
    const later = () => new Promise((r) => setTimeout(r, 60))
    await send('before')
    await unidentified('before, sealed sender')
    expect(await ready()).toBe('200 ready\n')

    free = 255 * MiB
    await later()
    const err = await expectError(send('while full'), 'MAILBOX_FULL')
    expect(err.retryAfterMs).toBeGreaterThan(0)
    await expectError(unidentified('while full'), 'MAILBOX_FULL')
    expect(await ready()).toBe('503 disk nearly full\n')
    // The recipient can still read and ack: that is what frees space.
    await b.request({ syncMailbox: { afterSeq: 0 } })
    expect(b.deliveries().map((d) => shapeText(d.envelope!))).toEqual(['before', 'before, sealed sender'])
    expect((await b.request({ ackMessages: { seqs: [1] } })).acked!.count).toBe(1)
    const metrics = await (await fetch(relay.metricsUrl!)).text()
    expect(metrics).toMatch(/^parley_relay_mailbox_full_total\{limit="disk"\} 2$/m)
    expect(metrics).toMatch(/^parley_relay_unidentified_sends_total\{outcome="mailbox_full"\} 1$/m)

    free = 257 * MiB
    await later()
    await send('after')
    await unidentified('after, sealed sender')
    expect(await ready()).toBe('200 ready\n')
    await b.push((f) => f.body === 'delivery' && f.delivery!.seq === 4)

    // Measured at most once per interval, however many sends come in between.
    const before = measured
    await Promise.all(Array.from({ length: 20 }, (_, i) => send(`burst ${i}`)))
    expect(measured - before).toBeLessThanOrEqual(1)
    a.close()
    b.close()
    await relay.close()
  })

  it('measures the data directory with statfs by default; --min-free-disk-bytes 0 turns the mark off', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'parley-disk-'))
    // More free space than any disk has: always below the mark.
    const full = await startRelay({
      port: 0,
      host: '127.0.0.1',
      dataDir,
      logLevel: 'silent',
      dev: true,
      metricsListen: 'off',
      minFreeDiskBytes: 2 ** 60,
    })
    const res = await fetch(`${full.httpUrl}/readyz`)
    expect([res.status, await res.text()]).toEqual([503, 'disk nearly full\n'])
    await full.close()
    const off = await startRelay({
      port: 0,
      host: '127.0.0.1',
      dataDir,
      logLevel: 'silent',
      dev: true,
      metricsListen: 'off',
      minFreeDiskBytes: 0,
    })
    expect((await fetch(`${off.httpUrl}/readyz`)).status).toBe(200)
    await off.close()
    const fine = await startRelay({
      port: 0,
      host: '127.0.0.1',
      dataDir,
      logLevel: 'silent',
      dev: true,
      metricsListen: 'off',
      minFreeDiskBytes: 1,
    })
    expect((await fetch(`${fine.httpUrl}/readyz`)).status).toBe(200)
    await fine.close()
  })

  it('sweeps mail past its TTL and reports it as an expired gap', async () => {
    const { relay, verifier } = await inProcess({ messageTtlSeconds: 1 })
    const a = await RawClient.open(relay.url)
    const bob = await activate(await RawClient.open(relay.url), verifier, '+14155550124')
    await activate(a, verifier, '+14155550123')
    await a.request({
      sendMessage: {
        recipientAddress: bob.address,
        recipientDeviceId: bob.deviceId,
        messageId: messageId(),
        envelope: sealedShape('old'),
      },
    })
    await new Promise((r) => setTimeout(r, 1100))
    expect(await relay.sweep()).toBe(1)
    const { client } = await login(relay.url, bob)
    await client.request({ syncMailbox: { afterSeq: 0 } })
    expect(client.pushes.map((f) => f.body)).toEqual(['mailboxGap'])
    expect(client.pushes[0]!.mailboxGap).toMatchObject({
      firstSeq: 1,
      lastSeq: 1,
      reason: GapReason.GAP_REASON_EXPIRED,
    })
    a.close()
    client.close()
    await relay.close()
  })

  it('hands the number to the verifier only, and finishes in-flight requests before shutting down', async () => {
    const { relay, verifier } = await inProcess()
    const c = await RawClient.open(relay.url)
    await activate(c, verifier, '+14155550125')
    expect(verifier.numbers).toEqual(['+14155550125'])
    // A slow verifier keeps a request in flight while shutdown starts.
    const slow = verifier.sendCode.bind(verifier)
    verifier.sendCode = async (r) => {
      await new Promise((resolve) => setTimeout(resolve, 300))
      return slow(r)
    }
    const pending = c.send({ activationStart: { phoneNumber: '+14155550128', consent: true } })
    await new Promise((resolve) => setTimeout(resolve, 100))
    const closing = relay.close()
    expect((await pending).body).toBe('activationStarted')
    await closing
    expect(await c.closed).toBe(1001)
  })

  it('re-activating on the same connection replaces the device without revoking that connection', async () => {
    const { relay, verifier } = await inProcess()
    const c = await RawClient.open(relay.url)
    const first = await activate(c, verifier, '+14155550129')
    const second = await activate(c, verifier, '+14155550129')
    expect(second).toMatchObject({ deviceId: first.deviceId + 1, replacedDevice: true })
    expect((await c.request({ prekeyCountQuery: {} })).body).toBe('prekeyCount')
    c.close()
    await relay.close()
  })

  it('webhook verifier POSTs signed JSON; a failing webhook makes the activation UNAVAILABLE', async () => {
    const received: { body: string; headers: Record<string, string | string[] | undefined> }[] = []
    let status = 200
    const hook = createServer((req, res) => {
      let body = ''
      req.on('data', (c) => {
        body += c
      })
      req.on('end', () => {
        received.push({ body, headers: req.headers })
        res.writeHead(status).end()
      })
    })
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r))
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/sms`
    const relay = await startRelay({
      port: 0,
      host: '127.0.0.1',
      dataDir: ':memory:',
      logLevel: 'silent',
      metricsListen: 'off',
      verifierImpl: new WebhookVerifier({ url, secret: 'hook-secret' }),
    })
    const c = await RawClient.open(relay.url)
    await c.request({ activationStart: { phoneNumber: '+14155550126', consent: true } })
    const { body, headers } = received[0]!
    const json = JSON.parse(body)
    expect(json).toMatchObject({
      type: 'parley.verification.v1',
      phone_number: '+14155550126',
      expires_in_seconds: 600,
    })
    expect(json.code).toMatch(/^\d{6}$/)
    // Standard Webhooks: HMAC-SHA256 over "<id>.<timestamp>.<body>" with the secret's bytes, base64, "v1,".
    const id = headers['webhook-id'] as string
    const timestamp = headers['webhook-timestamp'] as string
    expect(id).toMatch(/^msg_[A-Za-z0-9_-]{24}$/)
    expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(10)
    const mac = createHmac('sha256', 'hook-secret').update(`${id}.${timestamp}.${body}`).digest('base64')
    expect(headers['webhook-signature']).toBe(`v1,${mac}`)
    expect(headers['x-parley-signature']).toBeUndefined()
    status = 500
    const err = await expectError(
      c.request({ activationStart: { phoneNumber: '+14155550127', consent: true } }),
      'UNAVAILABLE',
    )
    expect(err.retryAfterMs).toBeGreaterThan(0)
    expect(received[1]!.headers['webhook-id']).not.toBe(id) // every call its own id
    c.close()
    await relay.close()
    hook.close()
  })
})

describe('config', () => {
  it('defaults to port 8787, ./.parley-data, the console verifier (with --dev) and metrics on 127.0.0.1:9464', () => {
    expect(parseConfig(['--dev'], {})).toMatchObject({
      port: 8787,
      dataDir: './.parley-data',
      verifier: 'console',
      dev: true,
      demo: null,
      metricsListen: '127.0.0.1:9464',
    })
  })

  it('reads env vars, and flags win over them', () => {
    const c = parseConfig(['--port', '9000', '--trust-proxy', '--max-mailbox-messages=50', '--dev'], {
      PARLEY_PORT: '7000',
      PARLEY_DATA_DIR: '/var/lib/parley',
      PARLEY_LOG_LEVEL: 'warn',
    })
    expect(c).toMatchObject({
      port: 9000,
      dataDir: '/var/lib/parley',
      logLevel: 'warn',
      trustProxy: true,
      maxMailboxMessages: 50,
    })
  })

  it('parses the mailbox byte quota and the disk mark, with their defaults', () => {
    expect(parseConfig(['--dev'], {})).toMatchObject({
      maxMailboxBytes: 64 * 1024 * 1024,
      minFreeDiskBytes: 256 * 1024 * 1024,
    })
    expect(
      parseConfig(['--dev', '--max-mailbox-bytes', '1048576', '--min-free-disk-bytes=0'], {
        PARLEY_MAX_MAILBOX_BYTES: '5',
      }),
    ).toMatchObject({ maxMailboxBytes: 1048576, minFreeDiskBytes: 0 })
    expect(parseConfig(['--dev'], { PARLEY_MIN_FREE_DISK_BYTES: '1000' })).toMatchObject({
      minFreeDiskBytes: 1000,
    })
    // A mailbox must hold at least one envelope of the largest size.
    expect(() => parseConfig(['--dev', '--max-mailbox-bytes', String(256 * 1024 - 1)])).toThrow(
      /max-mailbox-bytes/,
    )
    expect(parseConfig(['--dev', '--max-mailbox-bytes', String(256 * 1024)])).toMatchObject({
      maxMailboxBytes: 256 * 1024,
    })
  })

  it('refuses unknown flags and bad values; --help lists every flag with its env var', () => {
    expect(() => parseConfig(['--nope'])).toThrow(/unknown option/)
    expect(() => parseConfig(['--dev', '--port', 'x'])).toThrow(/integer/)
    expect(() => parseConfig(['--verifier', 'webhook'])).toThrow(/webhook-url/)
    expect(parseConfig(['--help'])).toBe('help')
    const help = helpText()
    for (const key of Object.keys(DEFAULT_CONFIG)) {
      const env = `PARLEY_${key.replace(/[A-Z]/g, (ch) => `_${ch}`).toUpperCase()}`
      expect(help).toContain(env)
    }
  })
})

describe('MemoryRateLimiter', () => {
  it('refills continuously and reports when enough tokens will be back', async () => {
    const l = new MemoryRateLimiter()
    const policy = { capacity: 3, refillTokens: 1, refillIntervalMs: 1000 }
    for (let i = 0; i < 3; i++) expect((await l.take('k', 1, policy, 0)).allowed).toBe(true)
    const refused = await l.take('k', 1, policy, 0)
    expect(refused).toEqual({ allowed: false, remaining: 0, retryAfterMs: 1000 })
    expect((await l.take('k', 1, policy, 1000)).allowed).toBe(true)
    expect((await l.take('k', 2, policy, 1500)).retryAfterMs).toBe(1500)
    await l.reset('k')
    expect((await l.take('k', 3, policy, 1500)).allowed).toBe(true)
    l.sweep(10_000)
    expect(l.size).toBe(0)
  })
})

describe('Activations', () => {
  it('expires a code after its lifetime and forgets the entry a lifetime later', async () => {
    const { Activations } = await import('../src/Activations.js')
    const a = new Activations({ hashKey: new Uint8Array(32), ttlSeconds: 600, attempts: 5, max: 10 })
    const s = a.start('+14155550130', 0)
    expect(() => a.confirm(s.activationIdHex, s.code, 600_000)).toThrow(/expired/)
    a.sweep(1_200_000)
    expect(a.size).toBe(0)
    const t = a.start('+14155550130', 0)
    expect(a.confirm(t.activationIdHex, t.code, 1000)).toBe('+14155550130')
    expect(() => a.confirm(t.activationIdHex, t.code, 1000)).toThrow(/unknown activation/)
    expect(a.numberKey('+14155550130')).toMatch(/^[0-9a-f]{64}$/)
    expect(a.numberKey('+14155550130')).not.toContain('4155550130')
  })
})
