// Every refusal against a real relay process: each gets an Error frame with the right code, and a misbehaving
// connection is closed without affecting the others.
import { randomBytes } from 'node:crypto'
import {
  activationPayload,
  authPayload,
  encodeClientFrame,
  kemPrekeyPayload,
  PROTOCOL_MINOR,
  signedPrekeyPayload,
} from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Account,
  activate,
  expectError,
  Identity,
  login,
  messageId,
  prekeys,
  RawClient,
  type RelayProcess,
  sealedShape,
  spawnDevRelay,
} from '../testing/index.js'

const enc = new TextEncoder()
const bytes = (n: number) => new Uint8Array(randomBytes(n))

describe('relay process: error paths', () => {
  let relay: RelayProcess
  let alice: Account
  let bob: Account
  let aliceClient: RawClient
  let bobClient: RawClient

  beforeAll(async () => {
    relay = await spawnDevRelay([
      // Prefix lengths are tested at the configured 16 bits, not adapted to this relay's few accounts.
      '--membership-min-bucket',
      '0',
      // These tests ask for codes for one number in a row; the per-number backoff has its own tests
      // (tests/reliability/sms.test.ts).
      '--code-backoff-base-ms',
      '0',
      '--oprf-ip-capacity',
      '4',
      '--oprf-ip-per-day',
      '4',
      '--oprf-account-capacity',
      '6',
      '--oprf-account-per-day',
      '6',
      '--send-capacity',
      '8',
      '--send-per-minute',
      '1',
      '--max-bad-frames',
      '3',
      '--frames-burst',
      '40',
      '--frames-per-second',
      '20',
    ])
    aliceClient = await RawClient.open(relay.url)
    bobClient = await RawClient.open(relay.url)
    alice = await activate(aliceClient, relay, '+14155550111')
    bob = await activate(bobClient, relay, '+14155550112')
  })
  afterAll(async () => {
    aliceClient?.close()
    bobClient?.close()
    await relay?.stop()
  })

  it('refuses garbage with BAD_REQUEST and closes the connection after repeated garbage', async () => {
    const c = await RawClient.connect(relay.url)
    const other = await RawClient.open(relay.url)
    c.sendRaw(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]))
    c.sendRaw('a text frame')
    c.sendRaw(new Uint8Array([0x0a, 0x05, 0x01]))
    expect(await c.closed).toBe(1008)
    const errors = c.frames.filter((f) => f.body === 'error').map((f) => f.error!)
    expect(errors.length).toBe(3)
    for (const e of errors) expect(e.code).toBe(1) // BAD_REQUEST
    expect((await other.request({ ping: {} })).body).toBe('pong')
    other.close()
  })

  it('refuses a frame over the limit with TOO_LARGE, and closes the socket for a far larger one', async () => {
    const c = await RawClient.open(relay.url)
    const big = encodeClientFrame(
      { requestId: 9, sendMessage: { envelope: new Uint8Array(330 * 1024) } },
      Number.MAX_SAFE_INTEGER,
    )
    c.sendRaw(big)
    const err = await c.push((f) => f.body === 'error')
    expect(err.error!.code).toBe(4) // TOO_LARGE
    expect((await c.request({ ping: {} })).body).toBe('pong')
    c.sendRaw(new Uint8Array(700 * 1024))
    expect(await c.closed).toBe(1009)
  })

  it('answers an unknown body with UNSUPPORTED, echoing nothing it cannot trust', async () => {
    const c = await RawClient.open(relay.url)
    // request_id = 5, then field 99 (length-delimited, empty): a body this version does not know.
    c.sendRaw(new Uint8Array([0x08, 0x05, 0x9a, 0x06, 0x00]))
    const err = await c.push((f) => f.body === 'error')
    expect(err.error!.code).toBe(7) // UNSUPPORTED
    c.close()
  })

  it('refuses an unknown major version clearly and closes', async () => {
    const c = await RawClient.connect(relay.url)
    const f = await c.send({ hello: { protocolMajor: 2, protocolMinor: PROTOCOL_MINOR } })
    expect(f.error!.code).toBe(7)
    expect(f.error!.message).toMatch(/major 2/)
    expect(await c.closed).toBe(1002)
  })

  it('requires Hello first and a non-zero request id', async () => {
    const c = await RawClient.connect(relay.url)
    expect((await c.request({ ping: {} })).body).toBe('pong')
    await expectError(c.request({ oprfEvaluate: { keyId: 1, blindedElements: [bytes(32)] } }), 'BAD_REQUEST')
    c.sendRaw(encodeClientFrame({ requestId: 0, hello: { protocolMajor: 1, protocolMinor: 0 } }))
    const err = await c.push((f) => f.body === 'error')
    expect(err.error!.message).toMatch(/request_id/)
    c.close()
  })

  it('refuses every account operation on an unauthenticated connection', async () => {
    const c = await RawClient.open(relay.url)
    const calls = [
      { membershipQuery: { prefixBits: 16, prefixes: [bytes(2)] } },
      { prekeyUpload: { oneTimePrekeys: [] } },
      { prekeyBundleQuery: { address: bob.address } },
      { prekeyCountQuery: {} },
      {
        sendMessage: {
          recipientAddress: bob.address,
          recipientDeviceId: 1,
          messageId: messageId(),
          envelope: bytes(8),
        },
      },
      { ackMessages: { seqs: [1] } },
      { syncMailbox: { afterSeq: 0 } },
      { deactivate: {} },
    ]
    for (const body of calls) await expectError(c.request(body), 'UNAUTHENTICATED')
    c.close()
  })

  it('refuses forged auth signatures and a replayed nonce', async () => {
    const mallory = new Identity()
    const c1 = await RawClient.open(relay.url)
    await expectError(
      c1.request({
        authenticate: {
          address: alice.address,
          deviceId: alice.deviceId,
          signature: mallory.sign(
            authPayload(c1.hello!.authNonce!, alice.address, alice.deviceId, c1.hello!.trustRoot!),
          ),
        },
      }),
      'UNAUTHENTICATED',
    )
    // The nonce is single use: even the right signature is refused on the same connection now.
    await expectError(
      c1.request({
        authenticate: {
          address: alice.address,
          deviceId: alice.deviceId,
          signature: alice.identity.sign(
            authPayload(c1.hello!.authNonce!, alice.address, alice.deviceId, c1.hello!.trustRoot!),
          ),
        },
      }),
      'UNAUTHENTICATED',
    )
    // A signature captured from another connection's nonce does not verify here.
    const c2 = await RawClient.open(relay.url)
    await expectError(
      c2.request({
        authenticate: {
          address: alice.address,
          deviceId: alice.deviceId,
          signature: alice.identity.sign(
            authPayload(c1.hello!.authNonce!, alice.address, alice.deviceId, c1.hello!.trustRoot!),
          ),
        },
      }),
      'UNAUTHENTICATED',
    )
    c1.close()
    c2.close()
  })

  it('refuses a forged activation proof and forged prekey signatures', async () => {
    const id = new Identity()
    const c = await RawClient.open(relay.url)
    const start = async () => {
      const started = (await c.request({ activationStart: { phoneNumber: '+14155550113', consent: true } }))
        .activationStarted!
      const code = await relay.code(Buffer.from(started.activationId!).toString('hex'))
      return {
        activationId: started.activationId,
        code,
        identityKey: id.publicKey,
        identitySignature: id.sign(activationPayload(started.activationId!, id.publicKey)),
        prekeys: prekeys(id),
      }
    }
    // Signatures are checked only once the code matched, so a forged one spends the activation: start again.
    let base = await start()
    await expectError(
      c.request({
        activationConfirm: { ...base, identitySignature: new Identity().sign(base.identitySignature) },
      }),
      'UNAUTHENTICATED',
    )
    await expectError(c.request({ activationConfirm: base }), 'NOT_FOUND')
    base = await start()
    const forgedSpk = { ...base.prekeys.signedPrekey, signature: new Identity().sign(bytes(10)) }
    await expectError(
      c.request({ activationConfirm: { ...base, prekeys: { ...base.prekeys, signedPrekey: forgedSpk } } }),
      'BAD_REQUEST',
    )
    base = await start()
    // A missing signed prekey is refused before the code is looked at: it costs no attempt.
    const { signedPrekey: _s, ...noSigned } = base.prekeys
    await expectError(c.request({ activationConfirm: { ...base, prekeys: noSigned } }), 'BAD_REQUEST')
    const done = (await c.request({ activationConfirm: base })).activated!
    expect(done.deviceId).toBe(1)
    // Uploads: forged KEM signature, wrong KEM length, signature by another identity key.
    const kem = bytes(1184)
    const badKem = { keyId: 7, publicKey: kem, signature: new Identity().sign(kemPrekeyPayload(7, kem)) }
    await expectError(c.request({ prekeyUpload: { oneTimeKemPrekeys: [badKem] } }), 'BAD_REQUEST')
    const shortKem = bytes(1000)
    await expectError(
      c.request({
        prekeyUpload: {
          oneTimeKemPrekeys: [
            { keyId: 8, publicKey: shortKem, signature: id.sign(kemPrekeyPayload(8, shortKem)) },
          ],
        },
      }),
      'BAD_REQUEST',
    )
    const spk = bytes(32)
    await expectError(
      c.request({
        prekeyUpload: {
          signedPrekey: { keyId: 9, publicKey: spk, signature: id.sign(signedPrekeyPayload(10, spk)) },
        },
      }),
      'BAD_REQUEST',
    )
    const tooMany = Array.from({ length: 201 }, (_, i) => ({ keyId: i, publicKey: bytes(32) }))
    await expectError(c.request({ prekeyUpload: { oneTimePrekeys: tooMany } }), 'TOO_LARGE')
    c.close()
  })

  it('locks an activation after five wrong codes', async () => {
    const c = await RawClient.open(relay.url)
    const id = new Identity()
    const started = (await c.request({ activationStart: { phoneNumber: '+14155550114', consent: true } }))
      .activationStarted!
    expect(started.attemptsLeft).toBe(5)
    expect(started.expiresInSeconds).toBe(600)
    const code = await relay.code(Buffer.from(started.activationId!).toString('hex'))
    const wrong = code === '000000' ? '111111' : '000000'
    const confirm = (c2: string) =>
      c.request({
        activationConfirm: {
          activationId: started.activationId,
          code: c2,
          identityKey: id.publicKey,
          identitySignature: id.sign(activationPayload(started.activationId!, id.publicKey)),
          prekeys: prekeys(id),
        },
      })
    for (let i = 4; i >= 0; i--) {
      const err = await expectError(confirm(wrong), 'INVALID_CODE')
      expect(err.message).toMatch(i > 0 ? `${i} attempts left` : /no attempts left/)
    }
    const locked = await expectError(confirm(code), 'EXPIRED')
    expect(locked.message).toMatch(/too many wrong codes/)
    // An unknown activation is refused as such, before any signature is looked at.
    await expectError(
      c.request({
        activationConfirm: {
          activationId: bytes(16),
          code,
          identityKey: id.publicKey,
          identitySignature: bytes(64),
          prekeys: prekeys(id),
        },
      }),
      'NOT_FOUND',
    )
    c.close()
  })

  it('refuses a 4th code request for a number within the hour, with retryAfterMs', async () => {
    const c = await RawClient.open(relay.url)
    for (let i = 0; i < 3; i++)
      await c.request({ activationStart: { phoneNumber: '+14155550115', consent: true } })
    const err = await expectError(
      c.request({ activationStart: { phoneNumber: '+14155550115', consent: true } }),
      'RATE_LIMITED',
    )
    expect(err.retryAfterMs).toBeGreaterThan(0)
    // Another number is unaffected; bad input is refused before any quota.
    await c.request({ activationStart: { phoneNumber: '+14155550116', consent: true } })
    await expectError(
      c.request({ activationStart: { phoneNumber: '+14155550116', consent: false } }),
      'BAD_REQUEST',
    )
    await expectError(
      c.request({ activationStart: { phoneNumber: '12345', consent: true } }),
      'INVALID_NUMBER',
    )
    await expectError(
      c.request({ activationStart: { phoneNumber: '+10005550116', consent: true } }),
      'INVALID_NUMBER',
    )
    c.close()
  })

  it('refuses OPRF evaluation before authentication, and applies the account and network quotas', async () => {
    const anon = await RawClient.open(relay.url)
    const keyId = anon.hello!.oprfKeys![0]!.keyId!
    // A valid ristretto255 element: any evaluated output is one; use the relay's public key.
    const valid = () => anon.hello!.oprfKeys![0]!.publicKey!
    await expectError(
      anon.request({ oprfEvaluate: { keyId, blindedElements: [valid()] } }),
      'UNAUTHENTICATED',
    )
    anon.close()
    await expectError(
      aliceClient.request({ oprfEvaluate: { keyId: keyId + 7, blindedElements: [valid()] } }),
      'NOT_FOUND',
    )
    await expectError(
      aliceClient.request({ oprfEvaluate: { keyId, blindedElements: Array.from({ length: 501 }, valid) } }),
      'TOO_LARGE',
    )
    await expectError(
      aliceClient.request({ oprfEvaluate: { keyId, blindedElements: [bytes(31)] } }),
      'BAD_REQUEST',
    )
    // The network bucket (4) is shared by alice and bob: alice spends it (3 + 1 malformed), then bob is refused
    // by it while his own account bucket (6) is still full.
    await aliceClient.request({ oprfEvaluate: { keyId, blindedElements: [valid(), valid(), valid()] } })
    await expectError(
      aliceClient.request({ oprfEvaluate: { keyId, blindedElements: [new Uint8Array(32).fill(0xff)] } }),
      'BAD_REQUEST',
    )
    const net = await expectError(
      bobClient.request({ oprfEvaluate: { keyId, blindedElements: [valid(), valid()] } }),
      'RATE_LIMITED',
    )
    expect(net.retryAfterMs).toBeGreaterThan(0)
    const metrics = await (await fetch(relay.metricsUrl)).text()
    expect(metrics).toMatch(/parley_relay_rate_limited_total\{scope="oprf_network"\} [1-9]/)
    // 3 evaluated; the malformed element was charged (the network paid for it) but not evaluated.
    expect(metrics).toMatch(/parley_relay_oprf_evaluations_total 3$/m)
  })

  it('refuses malformed membership queries', async () => {
    await expectError(
      aliceClient.request({ membershipQuery: { prefixBits: 8, prefixes: [bytes(1)] } }),
      'BAD_REQUEST',
    )
    await expectError(
      aliceClient.request({ membershipQuery: { prefixBits: 16, prefixes: [bytes(3)] } }),
      'BAD_REQUEST',
    )
    // Only the announced length (16 here): a longer prefix would single out an address, 256 bits test one.
    await expectError(
      aliceClient.request({
        membershipQuery: { prefixBits: 20, prefixes: [new Uint8Array([0xab, 0xcd, 0xe0])] },
      }),
      'BAD_REQUEST',
    )
    await expectError(
      aliceClient.request({ membershipQuery: { prefixBits: 256, prefixes: [alice.address] } }),
      'BAD_REQUEST',
    )
    const res = await aliceClient.request({
      membershipQuery: { prefixBits: 16, prefixes: [new Uint8Array([0xab, 0xcd])] },
    })
    expect(res.membershipResult!.buckets!.length).toBe(1)
  })

  it('refuses bad sends: unknown recipient, stale device, oversize envelope, bad ids; then rate-limits', async () => {
    const send = (body: Record<string, unknown>) =>
      aliceClient.request({
        sendMessage: {
          recipientAddress: bob.address,
          recipientDeviceId: bob.deviceId,
          messageId: messageId(),
          envelope: sealedShape('x'),
          ...body,
        },
      })
    await expectError(send({ recipientAddress: bytes(32) }), 'NOT_FOUND')
    await expectError(send({ recipientDeviceId: bob.deviceId + 5 }), 'CONFLICT')
    await expectError(send({ envelope: new Uint8Array(256 * 1024 + 1) }), 'TOO_LARGE')
    await expectError(send({ envelope: new Uint8Array() }), 'BAD_REQUEST')
    // Not a sealed envelope (the relay checks its shape, not its contents).
    await expectError(send({ envelope: enc.encode('x') }), 'BAD_REQUEST')
    await expectError(send({ messageId: bytes(8) }), 'BAD_REQUEST')
    await expectError(send({ recipientAddress: bytes(31) }), 'BAD_REQUEST')
    // Bucket of 8: the NOT_FOUND and CONFLICT sends above were charged (validation failures are not).
    let limited: unknown
    for (let i = 0; i < 10 && !limited; i++) {
      try {
        await send({})
      } catch (err) {
        limited = err
      }
    }
    const err = await expectError(Promise.reject(limited), 'RATE_LIMITED')
    expect(err.retryAfterMs).toBeGreaterThan(0)
  })

  it('ignores an ack of someone else’s sequence numbers', async () => {
    const carol = await RawClient.open(relay.url)
    await activate(carol, relay, '+14155550117')
    const head = (await login(relay.url, bob)).head
    expect(head).toBeGreaterThan(0)
    const all = Array.from({ length: head }, (_, i) => i + 1)
    expect((await carol.request({ ackMessages: { seqs: all } })).acked!.count ?? 0).toBe(0)
    const b = (await login(relay.url, bob)).client
    await b.request({ syncMailbox: { afterSeq: 0 } })
    expect(b.deliveries().length).toBe(head)
    carol.close()
    b.close()
  })

  it('closes a flooding connection without affecting others', async () => {
    const flooder = await RawClient.open(relay.url)
    const other = await RawClient.open(relay.url)
    const ping = encodeClientFrame({ requestId: 1, ping: {} })
    for (let i = 0; i < 400; i++) flooder.sendRaw(ping)
    expect(await flooder.closed).toBe(1008)
    const limited = flooder.frames.find((f) => f.body === 'error')
    expect(limited!.error!.code).toBe(3) // RATE_LIMITED
    expect(limited!.error!.retryAfterMs).toBeGreaterThan(0)
    expect((await other.request({ ping: {} })).body).toBe('pong')
    other.close()
  })

  it('survives and answers after all of that', async () => {
    const f = await aliceClient.request({ ping: {} })
    expect(f.body).toBe('pong')
    expect((await fetch(`${relay.httpUrl}/readyz`)).status).toBe(200)
  })
})
