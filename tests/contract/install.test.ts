// The SDK as npm users get it: builds the four SDK packages, packs them with `pnpm pack` (as `pnpm publish`
// would), installs the tarballs with plain npm into a scratch project outside the workspace (third-party
// dependencies come from the registry, at whatever versions their caret ranges pick), type-checks the README's
// example under `strict` and `module: nodenext`, and runs it with plain node (no tsx, no `parley-source` condition,
// no vitest aliases) against a real relay process.
// better-sqlite3 is the one native addon: where no prebuilt binary can be downloaded, npm compiles SQLite, which
// takes minutes on a busy CI machine. So by default the scratch project gets the workspace's better-sqlite3
// version with `--ignore-scripts` and the addon the workspace compiled for this same Node and version;
// PARLEY_INSTALL_NATIVE=1 lets npm pick and build it as an app's install would (every other dependency always
// comes from the registry at whatever version its range picks).
import { execFile } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activatedClient } from './harness.js'
import { useRelay } from './useRelay.js'

const run = promisify(execFile)
const here = fileURLToPath(new URL('.', import.meta.url))
const ROOT = join(here, '..', '..')
const SDK = ['protocol', 'client', 'node', 'browser'] as const
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
const SETUP_MS = 9 * 60_000
const NATIVE = process.env.PARLEY_INSTALL_NATIVE === '1'
/** The better-sqlite3 the workspace installed (and compiled) for @parley/node. */
const WORKSPACE_SQLITE = dirname(
  createRequire(join(ROOT, 'packages', 'node', 'package.json')).resolve('better-sqlite3/package.json'),
)
const ADDON = join('build', 'Release', 'better_sqlite3.node')

/** The README's "SDK in ten lines" block, as readme.test.ts reads it. */
function readmeExample(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf('## The SDK in ten lines')))
  if (m === null) throw new Error('README has no ts block under "The SDK in ten lines"')
  return m[1]!
}

/** This process's environment without what pnpm and vitest put in it for their own children. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_(config|package|lifecycle|node|execpath)|pnpm_|VITEST|NODE_OPTIONS$)/i.test(k)) continue
    env[k] = v
  }
  if (process.env.npm_config_registry) env.npm_config_registry = process.env.npm_config_registry
  // As README.md says: where native addons cannot download Node headers, node-gyp uses the local ones.
  env.npm_config_nodedir =
    process.env.npm_config_nodedir ?? (existsSync('/usr/include/node/node.h') ? '/usr' : '')
  if (env.npm_config_nodedir === '') delete env.npm_config_nodedir
  return env
}

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'nodenext',
    moduleResolution: 'nodenext',
    strict: true,
    skipLibCheck: false,
    types: ['node'],
    outDir: 'out',
  },
  include: ['*.ts'],
}

// Every class of the public surface that an app touches first, in both SDKs and the testing export.
const SURFACE = `import { createClient as createBrowserClient, IndexedDbStore, WebSocketTransport } from '@parley/browser'
import { MemoryStore, ParleyClient, ParleyError } from '@parley/client'
import { FakeRelay, ManualClock } from '@parley/client/testing'
import { createClient, SqliteStore, WsTransport } from '@parley/node'
import { normalizeNumber } from '@parley/protocol'

const clock = new ManualClock()
const relay = new FakeRelay({ clock })
const client = await ParleyClient.create({
  relayUrl: relay.url,
  transport: relay.transport,
  relayKeys: relay.relayKeys,
  store: new MemoryStore(),
  clock,
  defaultRegion: 'US',
})
await client.activate({ phoneNumber: '+1 415 555 0100', consent: true })
await client.confirm(relay.codeFor('+14155550100') ?? '')
const error: ParleyError = new ParleyError('BAD_REQUEST', 'a typed error')
console.log(
  JSON.stringify({
    activated: relay.account('+14155550100') !== undefined,
    e164: normalizeNumber('(415) 555-0101', 'US'),
    code: error.code,
    exports: [createBrowserClient, IndexedDbStore, WebSocketTransport, createClient, SqliteStore, WsTransport].map(
      (f) => typeof f,
    ),
  }),
)
await client.close()
`

describe('the SDK packed and installed with npm', () => {
  const env = useRelay()
  const project = mkdtempSync(join(tmpdir(), 'parley-install-'))
  const node = (args: string[], timeout = 60_000) =>
    run(process.execPath, args, { cwd: project, timeout, env: cleanEnv() })

  beforeAll(async () => {
    await run('pnpm', ['exec', 'turbo', 'run', 'build', ...SDK.map((p) => `--filter=@parley/${p}`)], {
      cwd: ROOT,
      timeout: SETUP_MS,
    })
    const tarballs = join(project, 'tarballs')
    mkdirSync(tarballs)
    for (const p of SDK) {
      await run('pnpm', ['pack', '--pack-destination', tarballs], {
        cwd: join(ROOT, 'packages', p),
        timeout: 60_000,
      })
    }
    writeFileSync(
      join(project, 'package.json'),
      `${JSON.stringify({ name: 'scratch', private: true, type: 'module' })}\n`,
    )
    const files = readdirSync(tarballs).map((f) => `./tarballs/${f}`) // ./: not a GitHub owner/name
    expect(files).toHaveLength(SDK.length)
    const versionOf = (dir: string) =>
      JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version as string
    const typesNode = `@types/node@${versionOf(join(ROOT, 'node_modules', '@types', 'node'))}`
    const sqlite = NATIVE ? [] : [`better-sqlite3@${versionOf(WORKSPACE_SQLITE)}`, '--ignore-scripts']
    await run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', ...files, typesNode, ...sqlite],
      {
        cwd: project,
        timeout: SETUP_MS,
        env: cleanEnv(),
      },
    )
    if (!NATIVE) {
      mkdirSync(dirname(join(project, 'node_modules', 'better-sqlite3', ADDON)), { recursive: true })
      copyFileSync(join(WORKSPACE_SQLITE, ADDON), join(project, 'node_modules', 'better-sqlite3', ADDON))
    }

    // The programs the tests run, compiled once: the README's example (with this suite's relay and code inbox)
    // and a tour of the public surface.
    env.codes.server.on('request', (req, res) => {
      if (req.url !== '/code') return
      void env.codes.next('+14155550100').then((c) => res.end(c))
    })
    const codeUrl = env.codes.url.replace('/sms', '/code')
    const example = readmeExample()
      .replace("'ws://localhost:8787'", JSON.stringify(env.relay.baseUrl))
      .replace("'./alice.db'", JSON.stringify(join(project, 'alice.db')))
      .replace(
        "parley.confirm('123456')",
        `parley.confirm(await (await fetch('${codeUrl}', { method: 'POST' })).text())`,
      )
    expect(example).not.toContain("'123456'")
    writeFileSync(
      join(project, 'example.ts'),
      `${example}\nconsole.log(JSON.stringify({ found, id, route }))\n`,
    )
    writeFileSync(join(project, 'surface.ts'), SURFACE)
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(TSCONFIG))
  }, SETUP_MS * 2)

  afterAll(() => rmSync(project, { recursive: true, force: true }))

  it('resolves each package inside the scratch project, ESM-only, with caret ranges', async () => {
    const names = [
      '@parley/protocol',
      '@parley/client',
      '@parley/client/testing',
      '@parley/node',
      '@parley/browser',
    ]
    const script = `for (const n of ${JSON.stringify(names)}) console.log(import.meta.resolve(n))`
    const { stdout } = await node(['--input-type=module', '-e', script])
    const resolved = stdout.trim().split('\n')
    expect(resolved).toHaveLength(names.length)
    for (const url of resolved)
      expect(fileURLToPath(url).startsWith(join(project, 'node_modules') + sep), url).toBe(true)
    for (const p of SDK) {
      const pkg = JSON.parse(
        readFileSync(join(project, 'node_modules', '@parley', p, 'package.json'), 'utf8'),
      )
      expect(pkg.type).toBe('module')
      expect(JSON.stringify(pkg.exports)).not.toContain('"require"')
      for (const range of Object.values<string>(pkg.dependencies ?? {})) expect(range).toMatch(/^\^\d/)
      expect(existsSync(join(project, 'node_modules', '@parley', p, 'LICENSE'))).toBe(true)
    }
  })

  it("type-checks the README's example and the public surface, /testing too, under strict nodenext", async () => {
    const tsc = await node([TSC, '-p', '.'], 180_000).catch((err: { stdout?: string }) => err)
    expect('stdout' in tsc ? tsc.stdout : tsc, 'tsc -p . in the scratch project').toBe('')
  })

  it('runs the public surface, FakeRelay from @parley/client/testing included, with plain node', async () => {
    const { stdout } = await node(['out/surface.js'])
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({
      activated: true,
      e164: '+14155550101',
      code: 'BAD_REQUEST',
      exports: Array(6).fill('function'),
    })
  })

  it("runs the README's SDK example with plain node against a real relay", async () => {
    const bob = await activatedClient(env.relay, env.codes, '+1 415 555 0101')
    const got: string[] = []
    bob.on('message', (m) => got.push(`${m.from} ${m.text}`))
    try {
      const { stdout } = await node(['out/example.js'])
      const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
        found: unknown
        route: string
        id: string
      }
      expect(result.route).toBe('ip')
      expect(result.id).toMatch(/^[0-9a-f]{32}$/)
      expect(result.found).toEqual([
        { number: '+1 415 555 0101', e164: '+14155550101', registered: true },
        { number: '(415) 555-0102', e164: '+14155550102', registered: false },
      ])
      for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 50))
      expect(got).toEqual(['+14155550100 hi'])
    } finally {
      await bob.close()
    }
  })
})
