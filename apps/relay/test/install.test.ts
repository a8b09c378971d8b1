// The relay as a user installs it (issue 17): built, packed, `npm install`ed from its tarball into a scratch
// prefix outside the workspace, and started with deploy/'s start command (`parley-relay --config <file>`) from
// plain JavaScript — no tsx, no workspace, one process.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { onLines } from '../testing/relayProcess.js'
import { startCommand } from './deployFiles.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const scratch = mkdtempSync(join(tmpdir(), 'parley-install-'))
const prefix = join(scratch, 'prefix')
const bin = join(prefix, 'node_modules', '.bin', 'parley-relay')
const installed = join(prefix, 'node_modules', '@parley', 'relay')
const env = { ...process.env, NODE_OPTIONS: '' }
const run = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

let tarFiles: string[] = []
const children: ChildProcess[] = []

beforeAll(() => {
  for (const dir of ['packages/protocol', 'apps/demo', 'apps/relay'])
    run('pnpm', ['run', 'build'], join(ROOT, dir))
  const packs = join(scratch, 'packs')
  mkdirSync(packs)
  for (const dir of ['packages/protocol', 'apps/relay'])
    run('pnpm', ['pack', '--pack-destination', packs], join(ROOT, dir))
  const tarballs = readdirSync(packs).map((f) => join(packs, f))
  tarFiles = run('tar', ['tzf', tarballs.find((t) => t.includes('parley-relay'))!], scratch).split('\n')
  mkdirSync(prefix)
  // Plain npm, from the registry. --ignore-scripts and the workspace's own better-sqlite3 addon (the same
  // version, built for this Node): its install script would fetch a prebuilt binary from outside the registry,
  // or compile it for minutes, and what is tested here is the relay's package, not better-sqlite3's installer.
  run(
    'npm',
    ['install', '--prefix', prefix, '--ignore-scripts', '--no-audit', '--no-fund', ...tarballs],
    scratch,
  )
  const sqlite = dirname(createRequire(import.meta.url).resolve('better-sqlite3/package.json'))
  const release = join(prefix, 'node_modules', 'better-sqlite3', 'build', 'Release')
  mkdirSync(release, { recursive: true })
  copyFileSync(join(sqlite, 'build', 'Release', 'better_sqlite3.node'), join(release, 'better_sqlite3.node'))
}, 240_000)

afterAll(() => {
  for (const c of children) c.kill('SIGKILL')
  rmSync(scratch, { recursive: true, force: true })
})

/** A config file in the scratch directory for a production relay (webhook verifier, secret from a file). */
function configFile(name: string, dataDir: string): string {
  const secret = join(scratch, `${name}.secret`)
  writeFileSync(secret, 'sixteen-bytes-or-more-of-secret\n', { mode: 0o600 })
  const path = join(scratch, `${name}.toml`)
  writeFileSync(
    path,
    [
      'host = "127.0.0.1"',
      'port = 0',
      `data-dir = "${dataDir}"`,
      'metrics-listen = "off"',
      'verifier = "webhook"',
      'webhook-url = "http://127.0.0.1:9/parley"',
      `webhook-secret-file = "${secret}"`,
      'demo = true',
    ].join('\n'),
  )
  return path
}

/** deploy/'s start command with this config file, run from the installed bin; resolves its port or its exit. */
function start(config: string) {
  const [command, ...args] = startCommand()
  expect(command).toBe('parley-relay')
  const child = spawn(
    bin,
    args.map((a) => (a.endsWith('.toml') ? config : a)),
    { cwd: scratch, env },
  )
  children.push(child)
  const stderr: string[] = []
  onLines(child.stderr!, (l) => stderr.push(l))
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  const port = new Promise<number>((resolve, reject) => {
    onLines(child.stdout!, (line) => {
      if (line.includes('"relay listening"')) resolve((JSON.parse(line) as { port: number }).port)
    })
    void exited.then((code) => reject(new Error(`exited ${code}: ${stderr.join('\n')}`)))
  })
  port.catch(() => {}) // a start that is meant to fail is awaited through `exited`
  return { child, port, exited, stderr }
}

const alive = (pid: number) => spawnSync('kill', ['-0', String(pid)]).status === 0

describe('the relay installed from its tarball', () => {
  it('ships its build and the demo page, and no source, data or tsx', () => {
    for (const f of ['package/bin/parley-relay.mjs', 'package/dist/cli.js', 'package/dist/oprfWorker.js'])
      expect(tarFiles).toContain(f)
    for (const f of ['index.html', 'demo.css', 'demo.js'])
      expect(tarFiles).toContain(`package/dist/demo/${f}`)
    expect(
      tarFiles.filter(
        (f) => /\.parley-data|\.db$|oprf-keys|relay-keys|\/src\/|\.ts$/.test(f) && !f.endsWith('.d.ts'),
      ),
    ).toEqual([])
    expect(existsSync(join(prefix, 'node_modules', 'tsx'))).toBe(false)
    expect(existsSync(join(prefix, 'node_modules', '@parley', 'demo'))).toBe(false)
  })

  it('prints its version', () => {
    expect(run(bin, ['--version'], scratch).trim()).toBe('0.0.0')
  })

  it('starts with a config file, serves /healthz and the demo page, refuses a second relay on its data directory, and leaves nothing behind on SIGKILL', async () => {
    const dataDir = join(scratch, 'data')
    const config = configFile('a', dataDir)
    const relay = start(config)
    const port = await relay.port
    const health = await fetch(`http://127.0.0.1:${port}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.text()).toBe('ok\n')
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toMatch(/^<!doctype html>/)
    // One process: no child process (the OPRF workers are threads).
    expect(spawnSync('pgrep', ['-P', String(relay.child.pid)]).stdout.toString()).toBe('')

    const second = start(configFile('b', dataDir))
    expect(await second.exited).toBe(1)
    expect(second.stderr).toEqual([
      `parley-relay: cannot start: another relay (pid ${relay.child.pid}) is using the data directory ${dataDir}; stop it, or give this one its own --data-dir`,
    ])

    relay.child.kill('SIGKILL')
    expect(await relay.exited).toBe(null)
    expect(alive(relay.child.pid!)).toBe(false)
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow()
    // The lock the killed relay left does not block a restart.
    const again = start(config)
    await again.port
    again.child.kill('SIGTERM')
    expect(await again.exited).toBe(0)
  })

  it('evaluates OPRF batches on a worker thread from the built JavaScript', () => {
    const script = [
      `import { OprfPool } from '${join(installed, 'dist', 'OprfPool.js')}'`,
      `import { oprfBlind, oprfGenerateKeyPair } from '@parley/protocol'`,
      'const pool = new OprfPool({ size: 1 })',
      'const key = oprfGenerateKeyPair()',
      'const { blindedElement } = oprfBlind(new Uint8Array([1, 2, 3]))',
      'const out = await pool.evaluate(key.secretKey, key.publicKey, [blindedElement])',
      'console.log(JSON.stringify({ inline: pool.inline, n: out.evaluatedElements.length }))',
      'await pool.close()',
    ].join('\n')
    const file = join(prefix, 'oprf-check.mjs')
    writeFileSync(file, script)
    expect(JSON.parse(run(process.execPath, [file], prefix))).toEqual({ inline: false, n: 1 })
  })
})
