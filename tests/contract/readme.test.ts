// Runs the README's "SDK in ten lines" block as written, against a real relay process: only the relay URL,
// the store path and the code are substituted, so the README cannot drift from the API.
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { activatedClient, clientDir } from './harness.js'
import { useRelay } from './useRelay.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const readme = readFileSync(join(here, '..', '..', 'README.md'), 'utf8')

function sdkBlock(): string {
  const section = readme.slice(readme.indexOf('## The SDK in ten lines'))
  const m = /```ts\n([\s\S]*?)```/.exec(section)
  if (m === null) throw new Error('README has no ts block under "The SDK in ten lines"')
  return m[1]!
}

describe('README', () => {
  const env = useRelay()

  it('has a ten-line SDK example', () => {
    const lines = sdkBlock()
      .trim()
      .split('\n')
      .filter((l) => l.trim() !== '')
    expect(lines.length).toBeLessThanOrEqual(10)
  })

  it('runs the SDK example as written against a real relay', async () => {
    const bob = await activatedClient(env.relay, env.codes, '+1 415 555 0101')
    const got: string[] = []
    bob.on('message', (m) => got.push(`${m.from} ${m.text}`))
    const dir = clientDir()
    const code = `await (await fetch(${JSON.stringify(`${env.codes.url.replace('/sms', '/code')}`)}, { method: 'POST' })).text()`
    let src = sdkBlock()
      .replace("'ws://localhost:8787'", JSON.stringify(env.relay.baseUrl))
      .replace("'./alice.db'", JSON.stringify(join(dir, 'alice.db')))
      .replace("parley.confirm('123456')", `parley.confirm(${code})`)
    expect(src).not.toContain("'123456'")
    src += '\nconsole.log(JSON.stringify({ found, id, route }))\n'
    const file = join(here, `.readme-example-${process.pid}.mts`)
    writeFileSync(file, src)
    // Serve the latest code for the README's number from the test's webhook inbox.
    env.codes.server.on('request', (req, res) => {
      if (req.url !== '/code') return
      void env.codes.next('+14155550100').then((c) => res.end(c))
    })
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--conditions=parley-source', '--import', 'tsx', file],
        { cwd: here, timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' } },
      )
      const lines = stdout.trim().split('\n')
      const result = JSON.parse(lines.at(-1)!) as { found: unknown; route: string; id: string }
      expect(result.route).toBe('ip')
      expect(result.id).toMatch(/^[0-9a-f]{32}$/)
      expect(result.found).toEqual([
        { number: '+1 415 555 0101', e164: '+14155550101', registered: true },
        { number: '(415) 555-0102', e164: '+14155550102', registered: false },
      ])
      expect(
        lines.some((l) => /^(\d{5} ){11}\d{5}$|^\d{60}$/.test(l)),
        stdout,
      ).toBe(true)
      for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 50))
      expect(got).toEqual(['+14155550100 hi'])
    } finally {
      const { rmSync } = await import('node:fs')
      rmSync(file, { force: true })
      await bob.close()
    }
  })
})
