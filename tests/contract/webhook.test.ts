// The verifier webhook, as the operator's SMS gateway sees it: the relay process signs every call Standard
// Webhooks style (webhook-id, webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256("<id>.<ts>.<body>")>),
// checked here with an HMAC computed independently of both the relay and the reference receiver; and the
// reference receiver (apps/relay/testing/webhookReceiver.ts, what apps/relay/README.md tells operators to do)
// refuses a captured call replayed, altered, re-signed with another key, unsigned, or older or newer than 5 minutes.
import { createHmac, randomBytes } from 'node:crypto'
import { WebhookVerifier } from '@parley/relay'
import { newWebhookSecret, signWebhook, WebhookReceiver } from '@parley/relay/testing'
import { describe, expect, it } from 'vitest'
import { activatedClient, type WebhookCall } from './harness.js'
import { useRelay } from './useRelay.js'

/** POSTs a call to the inbox as given; resolves the HTTP status and body. */
async function post(url: string, headers: Record<string, string>, body: string) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  })
  return { status: res.status, text: (await res.text()).trim() }
}

const only = (headers: WebhookCall['headers'], names: string[]) =>
  Object.fromEntries(names.map((n) => [n, String(headers[n])]))
const SIGNED = ['webhook-id', 'webhook-timestamp', 'webhook-signature']

describe('the verifier webhook is signed and cannot be replayed', () => {
  const env = useRelay()

  it('the relay signs each call with a fresh id and the current time (HMAC computed here)', async () => {
    const startedAt = Math.floor(Date.now() / 1000)
    const alice = await activatedClient(env.relay, env.codes, '+1 415 555 0170')
    const bob = await activatedClient(env.relay, env.codes, '+1 415 555 0171')
    const calls = env.codes.calls.filter((c) => c.refused === null)
    expect(calls.length).toBe(2)
    // The secret as given to --webhook-secret: whsec_ and base64, so the key is the decoded bytes.
    expect(env.codes.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/)
    const key = Buffer.from(env.codes.secret.slice('whsec_'.length), 'base64')
    for (const { headers, body } of calls) {
      const id = String(headers['webhook-id'])
      const timestamp = String(headers['webhook-timestamp'])
      expect(id).toMatch(/^msg_[A-Za-z0-9_-]{24}$/)
      expect(Number(timestamp)).toBeGreaterThanOrEqual(startedAt - 1)
      expect(Number(timestamp)).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000))
      const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')
      expect(headers['webhook-signature']).toBe(`v1,${expected}`)
      expect(headers['x-parley-signature']).toBeUndefined()
      expect(JSON.parse(body)).toMatchObject({ type: 'parley.verification.v1' })
    }
    expect(calls[0]!.headers['webhook-id']).not.toBe(calls[1]!.headers['webhook-id'])
    // The secret stays out of the relay's output (logs and stderr).
    const output = env.relay.output.join('\n')
    expect(output).not.toContain(env.codes.secret)
    expect(output).not.toContain(env.codes.secret.slice('whsec_'.length, 30))
    await alice.close()
    await bob.close()
  })

  it('the reference receiver refuses a replayed, altered, re-signed, unsigned, stale or future call', async () => {
    const bob = await activatedClient(env.relay, env.codes, '+1 415 555 0172')
    const captured = env.codes.calls.filter((c) => c.refused === null).at(-1)!
    expect(JSON.parse(captured.body).phone_number).toBe('+14155550172')
    const url = env.codes.url
    const headers = only(captured.headers, SIGNED)
    const now = () => String(Math.floor(Date.now() / 1000))
    const fresh = () => `msg_${randomBytes(12).toString('hex')}`
    const before = env.codes.calls.length

    // The same call again, byte for byte.
    expect(await post(url, headers, captured.body)).toEqual({ status: 401, text: 'replayed' })
    // Its signature on another number, or another code.
    const otherNumber = captured.body.replace('+14155550172', '+14155550199')
    expect(await post(url, headers, otherNumber)).toEqual({ status: 401, text: 'forged' })
    // A new id or timestamp under the captured signature.
    expect(await post(url, { ...headers, 'webhook-id': fresh() }, captured.body)).toEqual({
      status: 401,
      text: 'forged',
    })
    // Signed with another key, or not at all.
    const id = fresh()
    const ts = now()
    const wrongKey = signWebhook(newWebhookSecret(), id, ts, captured.body)
    expect(
      await post(
        url,
        { 'webhook-id': id, 'webhook-timestamp': ts, 'webhook-signature': wrongKey },
        captured.body,
      ),
    ).toEqual({ status: 401, text: 'forged' })
    expect(await post(url, { 'webhook-id': id, 'webhook-timestamp': ts }, captured.body)).toEqual({
      status: 401,
      text: 'unsigned',
    })
    // Correctly signed (HMAC computed here), but more than 5 minutes old, or ahead.
    for (const offset of [-301, 301, -3600]) {
      const t = String(Number(now()) + offset)
      const i = fresh()
      const sig = `v1,${createHmac('sha256', Buffer.from(env.codes.secret.slice(6), 'base64'))
        .update(`${i}.${t}.${captured.body}`)
        .digest('base64')}`
      expect(
        await post(url, { 'webhook-id': i, 'webhook-timestamp': t, 'webhook-signature': sig }, captured.body),
        `offset ${offset}`,
      ).toEqual({ status: 401, text: 'stale' })
    }
    expect(env.codes.calls.slice(before).map((c) => c.refused)).toEqual([
      'replayed',
      'forged',
      'forged',
      'forged',
      'unsigned',
      'stale',
      'stale',
      'stale',
    ])
    // None of them delivered a code; a genuine new call (a fresh id, 4 minutes old) does.
    const i = fresh()
    const t = String(Number(now()) - 240)
    const body = captured.body.replace(/"code":"\d{6}"/, '"code":"424242"')
    const sig = signWebhook(env.codes.secret, i, t, body)
    expect(
      await post(url, { 'webhook-id': i, 'webhook-timestamp': t, 'webhook-signature': sig }, body),
    ).toEqual({
      status: 204,
      text: '',
    })
    expect(await env.codes.next('+14155550172')).toBe('424242')
    await bob.close()
  })

  it('a call the gateway refuses fails the activation (the relay signs with its clock and its key)', async () => {
    const verifier = (options: { secret?: string; now?: () => number }) =>
      new WebhookVerifier({ url: env.codes.url, ...options })
    const request = {
      phoneNumber: '+14155550173',
      code: '135790',
      activationId: '00'.repeat(16),
      expiresInSeconds: 600,
    }
    const before = env.codes.calls.length
    await expect(verifier({ secret: env.codes.secret }).sendCode(request)).resolves.toBeUndefined()
    await expect(
      verifier({ secret: env.codes.secret, now: () => Date.now() - 10 * 60_000 }).sendCode(request),
    ).rejects.toMatchObject({ code: 'UNAVAILABLE' })
    await expect(verifier({ secret: newWebhookSecret() }).sendCode(request)).rejects.toMatchObject({
      code: 'UNAVAILABLE',
    })
    await expect(verifier({}).sendCode(request)).rejects.toMatchObject({ code: 'UNAVAILABLE' })
    expect(env.codes.calls.slice(before).map((c) => c.refused)).toEqual([null, 'stale', 'forged', 'unsigned'])
    expect(await env.codes.next('+14155550173')).toBe('135790')
  })

  it('the receiver forgets ids only once their timestamps are stale', () => {
    let clock = 1_800_000_000_000
    const secret = newWebhookSecret()
    const receiver = new WebhookReceiver(secret, { now: () => clock })
    const t = String(clock / 1000)
    const call = {
      'webhook-id': 'msg_1',
      'webhook-timestamp': t,
      'webhook-signature': signWebhook(secret, 'msg_1', t, '{}'),
    }
    expect(receiver.check(call, '{}')).toBeNull()
    clock += 299_000
    expect(receiver.check(call, '{}')).toBe('replayed')
    clock += 2_000
    expect(receiver.check(call, '{}')).toBe('stale')
    // A second signature (key rotation) is accepted when either matches.
    const t2 = String(clock / 1000)
    const both = `${signWebhook(newWebhookSecret(), 'msg_2', t2, '{}')} ${signWebhook(secret, 'msg_2', t2, '{}')}`
    expect(
      receiver.check({ 'webhook-id': 'msg_2', 'webhook-timestamp': t2, 'webhook-signature': both }, '{}'),
    ).toBeNull()
  })
})
