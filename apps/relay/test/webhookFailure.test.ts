// A failing webhook call says why (status, timeout, connection error), and never with the number or the code.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebhookVerifier } from '../src/Verifier.js'

const REQUEST = {
  phoneNumber: '+14155550100',
  code: '123456',
  activationId: 'ab'.repeat(16),
  expiresInSeconds: 600,
}
let server: Server
let base = ''
beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/500') res.writeHead(500).end('phone_number +14155550100')
    // /slow never answers
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => {
  server.closeAllConnections()
  server.close()
})

async function failure(url: string, timeoutMs = 5000): Promise<string[]> {
  const reasons: string[] = []
  const verifier = new WebhookVerifier({ url, timeoutMs, onFailure: (r) => reasons.push(r) })
  await expect(verifier.sendCode(REQUEST)).rejects.toMatchObject({ code: 'UNAVAILABLE' })
  return reasons
}

describe('WebhookVerifier onFailure', () => {
  it('reports the status, a timeout and a refused connection, without the number or the code', async () => {
    expect(await failure(`${base}/500`)).toEqual(['answered 500'])
    expect(await failure(`${base}/slow`, 200)).toEqual(['no answer within 200 ms'])
    const closed = createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
    const port = (closed.address() as AddressInfo).port
    await new Promise((r) => closed.close(r))
    expect(await failure(`http://127.0.0.1:${port}/`)).toEqual(['unreachable (ECONNREFUSED)'])
  })
})
