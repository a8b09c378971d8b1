// Sender certificates, delivery tokens and the unidentified path, against an in-process relay: what the relay
// certifies (and what it keeps), who may set a token, the per-recipient and per-network limits, the source
// networks, and the trust-root file.
import { mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deliveryTokenVerifier, numberCommitment, verifySenderCertificate } from '@parley/protocol'
import { describe, expect, it } from 'vitest'
import { networkOf } from '../src/internal/network.js'
import { MemoryRateLimiter } from '../src/RateLimiter.js'
import { RelayKeys, SIGNER_VALIDITY_MS } from '../src/RelayKeys.js'
import { SqliteStore } from '../src/SqliteStore.js'
import {
  activate,
  expectError,
  Identity,
  inProcess,
  messageId,
  prekeys,
  RawClient,
  sealedShape,
} from '../testing/index.js'

const HOUR = 3600_000

describe('sender certificates', () => {
  it('certifies the authenticated device, with the number commitment made at activation', async () => {
    const store = new SqliteStore(':memory:')
    const { relay, verifier } = await inProcess({ store })
    const c = await RawClient.open(relay.url)
    const trustRoot = c.hello!.trustRoot!
    expect(trustRoot).toHaveLength(32)
    const salt = new Uint8Array(32).fill(7)
    const identity = new Identity()
    const started = (await c.request({ activationStart: { phoneNumber: '+14155550111', consent: true } }))
      .activationStarted!
    const { activationPayload } = await import('@parley/protocol')
    const a = (
      await c.request({
        activationConfirm: {
          activationId: started.activationId,
          code: await verifier.code(Buffer.from(started.activationId!).toString('hex')),
          identityKey: identity.publicKey,
          identitySignature: identity.sign(activationPayload(started.activationId!, identity.publicKey)),
          prekeys: prekeys(identity),
          numberSalt: salt,
        },
      })
    ).activated!
    const issued = (await c.request({ senderCertificateRequest: {} })).senderCertificateIssued!
    const cert = verifySenderCertificate(issued.certificate!, { trustRoot, atMs: Date.now() })
    expect(cert.address).toEqual(a.address)
    expect(cert.deviceId).toBe(a.deviceId)
    expect(cert.identityKey).toEqual(identity.publicKey)
    expect(cert.numberCommitment).toEqual(numberCommitment('+14155550111', salt))
    expect(cert.expiresAtMs - Date.now()).toBeGreaterThan(23 * HOUR)
    expect(cert.expiresAtMs - Date.now()).toBeLessThanOrEqual(24 * HOUR)
    // The store keeps the commitment, never the salt or the number.
    const account = (await store.getAccount(a.address!))!
    expect(account.numberCommitment).toEqual(cert.numberCommitment)
    const text = await (await fetch(relay.metricsUrl!)).text()
    expect(text).toMatch(/^parley_relay_sender_certificates_issued_total 1$/m)
    c.close()
    await relay.close()
  })

  it('refuses a certificate before authentication and a malformed number salt', async () => {
    const { relay, verifier } = await inProcess()
    const c = await RawClient.open(relay.url)
    await expectError(c.request({ senderCertificateRequest: {} }), 'UNAUTHENTICATED')
    await expectError(c.request({ setDeliveryToken: { verifier: new Uint8Array(32) } }), 'UNAUTHENTICATED')
    const identity = new Identity()
    const started = (await c.request({ activationStart: { phoneNumber: '+14155550112', consent: true } }))
      .activationStarted!
    const { activationPayload } = await import('@parley/protocol')
    await expectError(
      c.request({
        activationConfirm: {
          activationId: started.activationId,
          code: await verifier.code(Buffer.from(started.activationId!).toString('hex')),
          identityKey: identity.publicKey,
          identitySignature: identity.sign(activationPayload(started.activationId!, identity.publicKey)),
          prekeys: prekeys(identity),
          numberSalt: new Uint8Array(31),
        },
      }),
      'BAD_REQUEST',
    )
    c.close()
    await relay.close()
  })
})

describe('the trust root', () => {
  it('is created once, kept with mode 0600, and the same after a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-keys-'))
    const first = RelayKeys.open(dir)
    expect(statSync(join(dir, 'relay-keys.json')).mode & 0o777).toBe(0o600)
    const again = RelayKeys.open(dir)
    expect(again.trustRoot).toEqual(first.trustRoot)
    expect(JSON.parse(readFileSync(join(dir, 'relay-keys.json'), 'utf8')).version).toBe(1)
  })

  it('renews its signing key before it expires; certificates never outlive their signer', () => {
    const t0 = 1_800_000_000_000
    const keys = RelayKeys.ephemeral(t0)
    const device = {
      address: new Uint8Array(32).fill(1),
      deviceId: 1,
      identityKey: new Identity().publicKey,
      numberCommitment: new Uint8Array(0),
    }
    const early = verifySenderCertificate(keys.issue(device, 24 * HOUR, t0).certificate, {
      trustRoot: keys.trustRoot,
      atMs: t0,
    })
    expect(early.signerKeyId).toBe(1)
    const late = t0 + SIGNER_VALIDITY_MS - 2 * 24 * HOUR
    const renewed = verifySenderCertificate(keys.issue(device, 24 * HOUR, late).certificate, {
      trustRoot: keys.trustRoot,
      atMs: late,
    })
    expect(renewed.signerKeyId).toBe(2)
    expect(renewed.expiresAtMs).toBe(late + 24 * HOUR)
    expect(renewed.expiresAtMs).toBeLessThanOrEqual(renewed.signerExpiresAtMs)
  })

  it('refuses a key file that does not hold a consistent root', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-keys-'))
    RelayKeys.open(dir)
    const path = join(dir, 'relay-keys.json')
    const file = JSON.parse(readFileSync(path, 'utf8'))
    file.root.publicKey = '00'.repeat(32)
    const { writeFileSync } = await import('node:fs')
    writeFileSync(path, JSON.stringify(file), { mode: 0o600 })
    expect(() => RelayKeys.open(dir)).toThrow(/inconsistent trust root/)
  })
})

describe('unidentified sends', () => {
  async function recipient(relay: Awaited<ReturnType<typeof inProcess>>) {
    const c = await RawClient.open(relay.relay.url)
    const account = await activate(c, relay.verifier, '+14155550120')
    const token = new Uint8Array(32).fill(9)
    await c.request({ setDeliveryToken: { verifier: deliveryTokenVerifier(token) } })
    return { c, account, token }
  }
  const send = (to: Uint8Array, token: Uint8Array) => ({
    unidentifiedSend: {
      recipientAddress: to,
      recipientDeviceId: 1,
      messageId: messageId(),
      envelope: sealedShape(new Uint8Array(100).fill(1)),
      deliveryToken: token,
    },
  })

  it('stores mail with the right token and refuses a wrong one, the same way for a missing account', async () => {
    const r = await inProcess()
    const { c, account, token } = await recipient(r)
    const anon = await RawClient.open(r.relay.url)
    expect((await anon.request(send(account.address, token))).body).toBe('messageAccepted')
    await expectError(anon.request(send(account.address, new Uint8Array(32))), 'FORBIDDEN')
    await expectError(anon.request(send(new Uint8Array(32).fill(3), token)), 'FORBIDDEN')
    // Cleared: unidentified delivery is off.
    await c.request({ setDeliveryToken: { verifier: new Uint8Array(0) } })
    await expectError(anon.request(send(account.address, token)), 'FORBIDDEN')
    await expectError(c.request({ setDeliveryToken: { verifier: new Uint8Array(5) } }), 'BAD_REQUEST')
    c.close()
    anon.close()
    await r.relay.close()
  })

  it('limits per recipient and per source network, never per sender', async () => {
    const r = await inProcess({ unidentifiedRecipientCapacity: 3, unidentifiedRecipientPerMinute: 1 })
    const { c, account, token } = await recipient(r)
    let accepted = 0
    let limited = 0
    // Ten "different senders" (ten connections) share the recipient's budget.
    for (let i = 0; i < 10; i++) {
      const anon = await RawClient.open(r.relay.url)
      try {
        await anon.request(send(account.address, token))
        accepted++
      } catch {
        limited++
      }
      anon.close()
    }
    expect([accepted, limited]).toEqual([3, 7])
    const metrics = await (await fetch(r.relay.metricsUrl!)).text()
    expect(metrics).toMatch(/^parley_relay_rate_limited_total\{scope="unidentified_recipient"\} 7$/m)
    c.close()
    await r.relay.close()

    const n = await inProcess({ unidentifiedNetworkCapacity: 2, unidentifiedNetworkPerMinute: 1 })
    const rcpt = await recipient(n)
    const anon = await RawClient.open(n.relay.url)
    await anon.request(send(rcpt.account.address, rcpt.token))
    await anon.request(send(rcpt.account.address, rcpt.token))
    // The network pays before the token is checked, so token guessing spends the guesser's own budget.
    await expectError(anon.request(send(rcpt.account.address, new Uint8Array(32))), 'RATE_LIMITED')
    anon.close()
    rcpt.c.close()
    await n.relay.close()
  })

  it('charges the network the connection was counted in, with the configured prefix lengths', async () => {
    const keys: string[] = []
    const limiter = new MemoryRateLimiter()
    const take = limiter.take.bind(limiter)
    limiter.take = (key, ...rest) => {
      keys.push(key)
      return take(key, ...rest)
    }
    const r = await inProcess({ limiter, ipv4NetworkBits: 16 })
    const { c, account, token } = await recipient(r)
    const anon = await RawClient.open(r.relay.url)
    expect((await anon.request(send(account.address, token))).body).toBe('messageAccepted')
    expect(keys.filter((k) => k.startsWith('ud:network:'))).toEqual(['ud:network:4:127.0.0.0/16'])
    anon.close()
    c.close()
    await r.relay.close()
  })

  it('groups source addresses by IPv4 /24 and IPv6 /56', () => {
    expect(networkOf('203.0.113.77')).toBe('4:203.0.113.0/24')
    expect(networkOf('203.0.113.200')).toBe(networkOf('203.0.113.1'))
    expect(networkOf('203.0.114.1')).not.toBe(networkOf('203.0.113.1'))
    expect(networkOf('::ffff:203.0.113.9')).toBe('4:203.0.113.0/24')
    expect(networkOf('2001:db8:aa:bb01::1')).toBe(networkOf('2001:db8:aa:bbff:ffff::2'))
    expect(networkOf('2001:db8:aa:bb01::1')).not.toBe(networkOf('2001:db8:aa:cc01::1'))
    expect(networkOf('::1')).toBe('6:00000000000000/56')
    expect(networkOf('fe80::1%eth0')).toBe(networkOf('fe80::2'))
    expect(networkOf('garbage')).toBe('?:garbage')
  })

  it('gives the handler a scope with no connection, account or device in it', async () => {
    // The route table is the only way in; this pins the scope's shape so a sender cannot be added quietly.
    const source = readFileSync(new URL('../src/handlers/unidentified.ts', import.meta.url), 'utf8')
    const scope = /export interface AnonymousScope \{([\s\S]*?)\n\}/.exec(source)![1]!
    const fields = [...scope.matchAll(/readonly (\w+):/g)].map((m) => m[1])
    // recipientQuotaId hashes the *recipient's* address (which the frame names anyway); nothing names the sender.
    expect(fields).toEqual([
      'store',
      'fanout',
      'limiter',
      'config',
      'policies',
      'metrics',
      'disk',
      'network',
      'recipientQuotaId',
    ])
    const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '')
    expect(code).not.toMatch(/\bConnection\b|\bconn\.|\.device\b|\.ip\b|addressHex\b.*log/)
  })
})

describe('the relay’s Ed25519 verifier (OpenSSL)', () => {
  it('agrees with the pure-JS verifier on valid, tampered, foreign and malformed signatures', async () => {
    const { nodeEd25519Verify } = await import('../src/internal/nodeVerify.js')
    const { verifyIdentitySignature } = await import('@parley/protocol')
    const id = new Identity()
    const other = new Identity()
    const msg = new TextEncoder().encode('parley/v1/signed-prekey test')
    const sig = id.sign(msg)
    const tampered = sig.slice()
    tampered[10]! ^= 1
    const cases: [Uint8Array, Uint8Array, Uint8Array][] = [
      [id.publicKey, msg, sig],
      [id.publicKey, msg, tampered],
      [other.publicKey, msg, sig],
      [id.publicKey, msg.subarray(1), sig],
      [new Uint8Array(32), msg, sig],
      [new Uint8Array(32).fill(0xff), msg, sig],
      [id.publicKey, msg, new Uint8Array(64)],
      [id.publicKey, msg, new Uint8Array(63)],
    ]
    // The pure-JS path: the protocol's verifier without a `crypto` option.
    const noble = cases.map(([k, m, s]) => verifyIdentitySignature(k, m, s))
    expect(cases.map(([k, m, s]) => nodeEd25519Verify(k, m, s))).toEqual(noble)
    expect(noble.filter(Boolean)).toHaveLength(1)
    expect(nodeEd25519Verify(id.publicKey, msg, sig)).toBe(true)
  })
})
