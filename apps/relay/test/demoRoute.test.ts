// The relay's static route for the demo page (src/server.ts, "Demo page" block), serving @parley/demo's files.
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningRelay, startRelay } from '../src/index.js'

describe('the demo page can be turned off', () => {
  it('answers 404 at / with --demo false, even with --dev', async () => {
    const relay = await startRelay({
      port: 0,
      host: '127.0.0.1',
      dataDir: ':memory:',
      logLevel: 'silent',
      metricsListen: 'off',
      dev: true,
      demo: false,
    })
    try {
      expect((await fetch(`${relay.httpUrl}/`)).status).toBe(404)
      expect((await fetch(`${relay.httpUrl}/healthz`)).status).toBe(200)
    } finally {
      await relay.close()
    }
  })
})

describe('a development relay serves the demo page', () => {
  let relay: RunningRelay

  beforeAll(async () => {
    relay = await startRelay({
      port: 0,
      host: '127.0.0.1',
      dataDir: ':memory:',
      logLevel: 'silent',
      metricsListen: 'off',
      dev: true,
    })
  })
  afterAll(() => relay?.close())

  it.each([
    ['/', 'text/html; charset=utf-8', '<!doctype html>'],
    ['/demo.css', 'text/css; charset=utf-8', ':root'],
    ['/demo.js', 'text/javascript; charset=utf-8', 'createClient'],
  ])('serves %s as %s', async (path, type, start) => {
    const res = await fetch(`${relay.httpUrl}${path}`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe(type)
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    const body = await res.text()
    if (path === '/demo.js') expect(body.length).toBeGreaterThan(10_000)
    else expect(body.startsWith(start)).toBe(true)
  })

  it('answers HEAD with headers only', async () => {
    const res = await fetch(`${relay.httpUrl}/`, { method: 'HEAD' })
    expect(res.status).toBe(200)
    expect(Number(res.headers.get('content-length'))).toBeGreaterThan(0)
    expect(await res.text()).toBe('')
  })

  it.each([
    '/index.html',
    '/demo.ts',
    '/src/demo.ts',
    '/../package.json',
    '/%2e%2e/package.json',
    '/..%2fsrc%2fserver.ts',
    '//etc/passwd',
    '/demo.js/..',
    '/constructor',
    '/__proto__',
  ])('serves nothing else: %s is 404', async (path) => {
    // Raw request paths: fetch() would normalise the dot segments away before they reach the relay.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${relay.httpUrl}/`, { path }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      req.on('error', reject)
      req.end()
    })
    expect(status).toBe(404)
  })
})
