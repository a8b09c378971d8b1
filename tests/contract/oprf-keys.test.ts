// OPRF keys the client did not get from the relay, scripted as a man in the middle between a real client and a
// real relay process: the proxy rewrites ServerHello's OPRF keys (no certificate, a key certified by another
// root, a certificate for another key, and — with the relay's own root secret, as a dishonest operator would —
// a second validly certified key for an epoch the client has pinned). Each is refused before any OPRF or
// membership request leaves the client; the same proxy passing frames unchanged works.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { createClient, type ParleyClient } from '@parley/node'
import {
  createOprfKeyCertificate,
  decodeServerFrame,
  encodeServerFrame,
  oprfGenerateKeyPair,
  peekClientFrame,
  type ServerFrame,
  type ServerFrameInput,
} from '@parley/protocol'
import { describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { clientDir, until } from './harness.js'
import { useRelay } from './useRelay.js'

type Hello = NonNullable<ServerFrame['serverHello']>

/** A WebSocket proxy to `upstream` that lets `rewrite` change each ServerHello; counts client frame bodies. */
async function helloProxy(upstream: string, rewrite: (hello: Hello) => void) {
  const sent = new Map<string, number>()
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await new Promise<void>((r) => wss.once('listening', () => r()))
  wss.on('connection', (down) => {
    const up = new WebSocket(`${upstream}/v1/ws`)
    const early: Buffer[] = []
    up.on('open', () => {
      for (const b of early.splice(0)) up.send(b)
    })
    down.on('message', (data: Buffer) => {
      const body = peekClientFrame(new Uint8Array(data))?.body ?? 'unknown'
      sent.set(body, (sent.get(body) ?? 0) + 1)
      if (up.readyState === WebSocket.OPEN) up.send(data)
      else early.push(data)
    })
    up.on('message', (data: Buffer) => {
      const frame = decodeServerFrame(new Uint8Array(data))
      if (frame.body !== 'serverHello') return down.send(data)
      rewrite(frame.serverHello!)
      const { body: _, ...input } = frame
      down.send(encodeServerFrame(input as ServerFrameInput))
    })
    const closeBoth = () => {
      up.close()
      down.close()
    }
    up.on('close', closeBoth)
    down.on('close', closeBoth)
    up.on('error', closeBoth)
    down.on('error', closeBoth)
  })
  const { port } = wss.address() as AddressInfo
  return {
    url: `ws://127.0.0.1:${port}/v1/ws`,
    sent: (body: string) => sent.get(body) ?? 0,
    close: () => new Promise<void>((r) => wss.close(() => r())),
  }
}

const connectionErrors = (c: ParleyClient) => {
  const codes: string[] = []
  c.on('connection', (e) => {
    if (e.error) codes.push(e.error.code)
  })
  return codes
}

describe('OPRF keys in ServerHello', () => {
  const env = useRelay()
  const dir = clientDir()
  const rootSecret = () => {
    const file = JSON.parse(readFileSync(join(env.relay.dataDir, 'relay-keys.json'), 'utf8')) as {
      root: { secretKey: string }
    }
    return new Uint8Array(Buffer.from(file.root.secretKey, 'hex'))
  }
  const client = (
    url: string,
    storePath = join(dir, `${randomBytes(4).toString('hex')}.db`),
    timeoutMs?: number,
  ) =>
    createClient({
      relayUrl: url,
      storePath,
      defaultRegion: 'US',
      ...(timeoutMs ? { requestTimeoutMs: timeoutMs } : {}),
      reconnect: { minDelayMs: 50, maxDelayMs: 100 },
    })

  it('are used through a proxy that changes nothing (the control)', async () => {
    const proxy = await helloProxy(env.relay.baseUrl, () => {})
    const c = await client(proxy.url)
    const pending = await c.activate({ phoneNumber: '+14155550161', consent: true })
    await c.confirm(await env.codes.next(pending.e164))
    expect(await c.discover(['+14155550162'])).toHaveLength(1)
    expect(proxy.sent('oprfEvaluate')).toBeGreaterThan(0)
    await c.close()
    await proxy.close()
  })

  const attacks: [string, (h: Hello) => void][] = [
    [
      'without a certificate',
      (h) => {
        for (const k of h.oprfKeys ?? []) k.certificate = new Uint8Array(0)
      },
    ],
    [
      'replaced by a key certified by another root',
      (h) => {
        const mine = oprfGenerateKeyPair()
        const k = h.oprfKeys![0]!
        k.publicKey = mine.publicKey
        k.certificate = createOprfKeyCertificate(new Uint8Array(randomBytes(32)), {
          keyId: k.keyId ?? 0,
          publicKey: mine.publicKey,
          validFromMs: Date.now(),
          validUntilMs: 0,
        })
      },
    ],
    [
      'replaced by a key carrying the real key’s certificate',
      (h) => {
        h.oprfKeys![0]!.publicKey = oprfGenerateKeyPair().publicKey
      },
    ],
  ]
  for (const [what, rewrite] of attacks) {
    it(`are refused ${what}: no OPRF or membership request is ever sent`, async () => {
      const proxy = await helloProxy(env.relay.baseUrl, rewrite)
      const c = await client(proxy.url, undefined, 3000)
      const errors = connectionErrors(c)
      await expect(c.activate({ phoneNumber: '+14155550163', consent: true })).rejects.toBeDefined()
      await until(() => errors.includes('VERIFICATION_FAILED'), 10_000, 'the key to be refused')
      expect(c.connectionState).not.toBe('online')
      expect(proxy.sent('hello')).toBeGreaterThan(0)
      expect(proxy.sent('oprfEvaluate') + proxy.sent('membershipQuery') + proxy.sent('activationStart')).toBe(
        0,
      )
      await c.close()
      await proxy.close()
    })
  }

  it('refuse a second validly certified key for an epoch already pinned (a relay partitioning its users)', async () => {
    const storePath = join(dir, 'pinned.db')
    const honest = await client(env.relay.baseUrl, storePath)
    const pending = await honest.activate({ phoneNumber: '+14155550164', consent: true })
    await honest.confirm(await env.codes.next(pending.e164))
    await honest.close()
    // The operator signs another key for the same epoch with the real root and shows it to this client only.
    const root = rootSecret()
    const proxy = await helloProxy(env.relay.baseUrl, (h) => {
      const k = h.oprfKeys![0]!
      const other = oprfGenerateKeyPair()
      k.publicKey = other.publicKey
      k.certificate = createOprfKeyCertificate(root, {
        keyId: k.keyId ?? 0,
        publicKey: other.publicKey,
        validFromMs: Date.now(),
        validUntilMs: 0,
      })
    })
    const again = await client(proxy.url, storePath)
    const errors = connectionErrors(again)
    await until(() => errors.includes('VERIFICATION_FAILED'), 10_000, 'the second key to be refused')
    expect(again.connectionState).not.toBe('online')
    expect(proxy.sent('authenticate') + proxy.sent('oprfEvaluate') + proxy.sent('membershipQuery')).toBe(0)
    await again.close()
    await proxy.close()
  })
})
