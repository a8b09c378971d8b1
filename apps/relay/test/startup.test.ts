// A start that cannot work says why in one line on stderr and exits 1 (no JSON stack, nothing redacted).
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { RELAY_DIR } from '../testing/relayProcess.js'

const dir = mkdtempSync(join(tmpdir(), 'parley-startup-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** `parley-relay --dev <args>` from the sources; its exit code, stderr lines not of the --dev banner, and stdout. */
function relay(args: string[]) {
  const r = spawnSync(
    process.execPath,
    [
      '--conditions=parley-source',
      '--import',
      'tsx',
      'src/cli.ts',
      '--dev',
      '--metrics-listen',
      'off',
      ...args,
    ],
    { cwd: RELAY_DIR, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' }, timeout: 60_000 },
  )
  const stderr = r.stderr.split('\n').filter((l) => l.startsWith('parley-relay:'))
  return { status: r.status, stderr, stdout: r.stdout }
}

describe('a start that fails', () => {
  it('names a port in use', async () => {
    const taken = createServer()
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r))
    const port = (taken.address() as { port: number }).port
    try {
      const r = relay(['--host', '127.0.0.1', '--port', String(port), '--data-dir', join(dir, 'a')])
      expect(r.status).toBe(1)
      expect(r.stderr).toEqual([
        `parley-relay: cannot start: cannot listen on 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port} (another process has this port: stop it, or pass another --port)`,
      ])
      expect(r.stdout).not.toMatch(/"level":60|redacted/)
    } finally {
      taken.close()
    }
  })

  it('names a data directory it cannot write', () => {
    const file = join(dir, 'a-file')
    writeFileSync(file, '')
    const r = relay(['--port', '0', '--data-dir', join(file, 'data')])
    expect(r.status).toBe(1)
    expect(r.stderr).toEqual([
      `parley-relay: cannot start: the data directory ${join(file, 'data')} is not writable (ENOTDIR)`,
    ])
  })

  it('names a PostgreSQL store it cannot open, without its URL', () => {
    const r = relay([
      '--port',
      '0',
      '--data-dir',
      join(dir, 'b'),
      '--store',
      'postgres://nobody:hunter2@127.0.0.1:1/x',
    ])
    expect(r.status).toBe(1)
    expect(r.stderr).toEqual(['parley-relay: cannot start: connect ECONNREFUSED 127.0.0.1:1'])
    expect(r.stdout + r.stderr.join('')).not.toContain('hunter2')
  })

  it('refuses a bad --log-level before starting', () => {
    const r = relay(['--log-level', 'loud'])
    expect(r.status).toBe(2)
    expect(r.stderr).toEqual([
      'parley-relay: --log-level must be one of fatal, error, warn, info, debug, trace, silent',
    ])
  })
})
