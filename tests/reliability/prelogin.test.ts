// What an attacker without an account can make the relay spend, scripted against a relay process: signature
// checks in ActivationConfirm happen only after the code matched (counted: zero for wrong codes), the signed
// prekeys an activation may carry are capped, code guesses are limited per source network, and connections
// that say Hello and then sit idle are closed. Every limit is asserted by counts from /metrics.
import {
  activationPayload,
  authPayload,
  encodeClientFrame,
  kemPrekeyPayload,
  parleyErrorFromWire,
  type ServerFrame,
} from '@parley/protocol'
import {
  type Account,
  activate,
  expectError,
  Identity,
  login,
  prekeys,
  RawClient,
  type RelayProcess,
  spawnDevRelay,
} from '@parley/relay/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { until } from '../contract/harness.js'
import { metric, scrape } from './relayDb.js'

const bytes = (n: number) => crypto.getRandomValues(new Uint8Array(n))

describe('pre-login work against a relay process', () => {
  let relay: RelayProcess
  const CONFIRMS_PER_NETWORK = 40

  beforeAll(async () => {
    relay = await spawnDevRelay([
      '--activation-confirms-per-network-per-hour',
      String(CONFIRMS_PER_NETWORK),
      '--max-activation-signed-prekeys',
      '32',
      '--code-attempts',
      '100',
      // 30 wrong guesses at one activation: lift the per-number guess quota (tests/reliability/sms.test.ts).
      '--code-guesses-per-number-per-hour',
      '100',
      '--frames-burst',
      '1000',
      '--frames-per-second',
      '1000',
    ])
  })
  afterAll(async () => {
    await relay?.stop()
  })

  /** An ActivationConfirm as heavy as allowed: 30 KEM prekeys, each with a (valid) signature to check. */
  function heavyConfirm(activationId: Uint8Array, code: string, id = new Identity()) {
    const base = prekeys(id, { oneTime: 10, kem: 0 })
    const kems = Array.from({ length: 30 }, (_, i) => {
      const publicKey = bytes(1184)
      return { keyId: 100 + i, publicKey, signature: id.sign(kemPrekeyPayload(100 + i, publicKey)) }
    })
    return {
      activationConfirm: {
        activationId,
        code,
        identityKey: id.publicKey,
        identitySignature: id.sign(activationPayload(activationId, id.publicKey)),
        prekeys: { ...base, oneTimeKemPrekeys: kems },
      },
    }
  }

  it('checks no signature for a wrong code, caps the signed prekeys, and limits guesses per network', async () => {
    const checks = async () =>
      metric(await scrape(relay.metricsUrl), 'parley_relay_signature_checks_total', {
        frame: 'activation_confirm',
      })
    const c = await RawClient.open(relay.url)
    const started = (await c.request({ activationStart: { phoneNumber: '+14155550141', consent: true } }))
      .activationStarted!
    const code = await relay.code(Buffer.from(started.activationId!).toString('hex'))
    const wrong = code === '000000' ? '111111' : '000000'
    const before = await checks()
    // 30 heavy guesses with a wrong code (each 31 signatures if they were checked), and 5 for unknown ids.
    for (let i = 0; i < 30; i++) {
      await expectError(c.request(heavyConfirm(started.activationId!, wrong)), 'INVALID_CODE')
    }
    for (let i = 0; i < 5; i++) await expectError(c.request(heavyConfirm(bytes(16), code)), 'NOT_FOUND')
    expect((await checks()) - before).toBe(0)
    // More signed prekeys than allowed are refused before anything else.
    const over = heavyConfirm(started.activationId!, code)
    over.activationConfirm.prekeys.oneTimeKemPrekeys.push(
      ...over.activationConfirm.prekeys.oneTimeKemPrekeys.slice(0, 3),
    )
    await expectError(c.request(over), 'TOO_LARGE')
    expect((await checks()) - before).toBe(0)
    // The right code: now its signatures are checked — 1 identity + 30 KEM + the signed and last-resort prekeys.
    const done = await c.request(heavyConfirm(started.activationId!, code))
    expect(done.body).toBe('activated')
    expect((await checks()) - before).toBe(33)
    c.close()
    // The network's budget of guesses (40 an hour here) is spent: 36 above, so the 5th of these is refused.
    const m = await RawClient.open(relay.url)
    const limitedBefore = metric(await scrape(relay.metricsUrl), 'parley_relay_rate_limited_total', {
      scope: 'activation_confirm',
    })
    const outcomes: string[] = []
    for (let i = 0; i < 6; i++) {
      outcomes.push(
        await m.request(heavyConfirm(bytes(16), '123456')).then(
          () => 'ok',
          (e: { code: string }) => e.code,
        ),
      )
    }
    m.close()
    expect(outcomes).toEqual([
      'NOT_FOUND',
      'NOT_FOUND',
      'NOT_FOUND',
      'NOT_FOUND',
      'RATE_LIMITED',
      'RATE_LIMITED',
    ])
    const limited = metric(await scrape(relay.metricsUrl), 'parley_relay_rate_limited_total', {
      scope: 'activation_confirm',
    })
    expect(limited - limitedBefore).toBe(2)
  })
})

describe('idle unauthenticated connections', () => {
  let relay: RelayProcess
  beforeAll(async () => {
    relay = await spawnDevRelay(['--pre-auth-idle-ms', '400'])
  })
  afterAll(async () => {
    await relay?.stop()
  })

  it('closes connections that say Hello and then sit idle, but not authenticated ones', async () => {
    const closed = async () =>
      metric(await scrape(relay.metricsUrl), 'parley_relay_connections_closed_total', {
        reason: 'pre_auth_idle',
      })
    const before = await closed()
    const idle = await Promise.all(Array.from({ length: 5 }, () => RawClient.open(relay.url)))
    // An account's connection stays open however long it idles.
    const c = await RawClient.open(relay.url)
    const started = (await c.request({ activationStart: { phoneNumber: '+14155550142', consent: true } }))
      .activationStarted!
    const id = new Identity()
    await c.request({
      activationConfirm: {
        activationId: started.activationId,
        code: await relay.code(Buffer.from(started.activationId!).toString('hex')),
        identityKey: id.publicKey,
        identitySignature: id.sign(activationPayload(started.activationId!, id.publicKey)),
        prekeys: prekeys(id),
      },
    })
    await until(async () => (await closed()) - before === 5, 10_000, 'the idle connections to be closed')
    expect((await closed()) - before).toBe(5)
    expect((await c.request({ ping: {} })).body).toBe('pong')
    for (const i of idle) i.close()
    c.close()
  })
})

describe('frames that would be expensive to decode', () => {
  let relay: RelayProcess
  let account: Account
  beforeAll(async () => {
    // Reads are not paced here (the next describe block tests the pacing).
    relay = await spawnDevRelay([
      '--frames-burst',
      '1000',
      '--frames-per-second',
      '1000',
      '--pre-auth-bytes-per-second',
      '0',
    ])
    const c = await RawClient.open(relay.url)
    account = await activate(c, relay, '+14155550143')
    c.close()
  })
  afterAll(async () => {
    await relay?.stop()
  })

  /** A MembershipQuery of 80,000 two-byte prefixes (~320 KB), its last entry's tag corrupted when `corrupt`. */
  function packed(c: RawClient, corrupt: boolean) {
    const requestId = c.nextRequestId()
    const prefixes = Array.from({ length: 80_000 }, () => bytes(2))
    const frame = encodeClientFrame({ requestId, membershipQuery: { prefixBits: 16, prefixes } }, 1_000_000)
    if (corrupt) frame[frame.length - 4] = (2 << 3) | 7 // wire type 7: only a decoder that reads to the end fails
    return { frame, requestId }
  }
  const refusedUndecoded = async () =>
    metric(await scrape(relay.metricsUrl), 'parley_relay_frames_refused_undecoded_total', {
      type: 'membershipQuery',
    })
  const code = (f: ServerFrame) => (f.body === 'error' ? parleyErrorFromWire(f.error!).code : f.body)

  it('refuses an authenticated-only body before authentication without decoding it', async () => {
    const c = await RawClient.open(relay.url)
    const before = await refusedUndecoded()
    const codes: string[] = []
    // 12 frames, corrupt in their last entry: decoded, each would count as a bad frame (5 close the socket).
    for (let i = 0; i < 12; i++) {
      const { frame, requestId } = packed(c, true)
      codes.push(code(await c.sendBytes(frame, requestId)))
    }
    expect(codes).toEqual(Array(12).fill('UNAUTHENTICATED'))
    expect((await refusedUndecoded()) - before).toBe(12)
    expect((await c.request({ ping: {} })).body).toBe('pong') // not closed as garbage: nothing was decoded
    c.close()
  })

  it('still reads a request sent right behind Authenticate, before its answer (pipelining)', async () => {
    const c = await RawClient.open(relay.url)
    const before = await refusedUndecoded()
    const auth = c.send({
      authenticate: {
        address: account.address,
        deviceId: account.deviceId,
        signature: account.identity.sign(
          authPayload(c.hello!.authNonce!, account.address, account.deviceId, c.hello!.trustRoot!),
        ),
      },
    })
    const count = c.send({ prekeyCountQuery: {} })
    expect((await auth).body).toBe('authenticated')
    expect((await count).body).toBe('prekeyCount')
    expect((await refusedUndecoded()) - before).toBe(0)
    c.close()
  })

  it('stops decoding an authenticated frame at the entry limit', async () => {
    const { client } = await login(relay.url, account)
    // The corruption sits after entry 80,000: a decoder that read every entry would say BAD_REQUEST.
    const { frame, requestId } = packed(client, true)
    expect(code(await client.sendBytes(frame, requestId))).toBe('TOO_LARGE')
    const intact = packed(client, false)
    expect(code(await client.sendBytes(intact.frame, intact.requestId))).toBe('TOO_LARGE')
    expect((await client.request({ ping: {} })).body).toBe('pong')
    client.close()
  })
})

describe('reading from connections that have not authenticated', () => {
  let relay: RelayProcess
  const RATE = 512 * 1024
  beforeAll(async () => {
    relay = await spawnDevRelay([
      '--frames-burst',
      '1000',
      '--frames-per-second',
      '1000',
      '--pre-auth-bytes-per-second',
      String(RATE),
      '--bytes-per-second',
      String(RATE),
    ])
  })
  afterAll(async () => {
    await relay?.stop()
  })

  it('is paced: a flood of huge frames is paused, not read at once, and loses nothing; accounts at their own rate', async () => {
    const paused = async () =>
      metric(await scrape(relay.metricsUrl), 'parley_relay_pre_auth_reads_paused_total')
    const before = await paused()
    const flooder = await RawClient.open(relay.url)
    const N = 8
    // One body, encoded once (the codec leaves out a zero request id), then sent under ids < 128 (one byte).
    const prefixes = Array.from({ length: 80_000 }, () => bytes(2))
    const body = encodeClientFrame({ requestId: 0, membershipQuery: { prefixBits: 16, prefixes } }, 1_000_000)
    const framed = (id: number) => new Uint8Array([0x08, id, ...body])
    const replies: Promise<ServerFrame>[] = []
    for (let i = 0; i < N; i++) {
      const requestId = flooder.nextRequestId()
      replies.push(flooder.sendBytes(framed(requestId), requestId))
    }
    // 8 × 320 KB is more than the 640 KiB burst: the socket was paused at least once, and every frame is still
    // answered once the budget refilled.
    const codes = (await Promise.all(replies)).map((f) =>
      f.body === 'error' ? parleyErrorFromWire(f.error!).code : f.body,
    )
    expect(codes).toEqual(Array(N).fill('UNAUTHENTICATED'))
    expect((await paused()) - before).toBeGreaterThan(0)
    // An account's connection is paced by --bytes-per-second instead (here the same rate, so that 4 frames are
    // over its burst of max(rate, 2 frames)): paused on its own counter, and every frame still answered.
    const accountPaused = async () =>
      metric(await scrape(relay.metricsUrl), 'parley_relay_reads_paused_total')
    const c = await RawClient.open(relay.url)
    const a = await activate(c, relay, '+14155550144')
    void a
    const mid = await paused()
    const midAccount = await accountPaused()
    // 4 × 320 KB, above the burst too (each is TOO_LARGE, a bad frame: 5 would close the connection).
    const sent = Array.from({ length: 4 }, () => {
      const requestId = c.nextRequestId()
      return c.sendBytes(framed(requestId), requestId)
    })
    const answers = (await Promise.all(sent)).map((f) =>
      f.body === 'error' ? parleyErrorFromWire(f.error!).code : f.body,
    )
    expect(answers).toEqual(Array(4).fill('TOO_LARGE'))
    expect((await paused()) - mid).toBe(0)
    expect((await accountPaused()) - midAccount).toBeGreaterThan(0)
    flooder.close()
    c.close()
  })
})
