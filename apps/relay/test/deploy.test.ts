// deploy/: the Dockerfile, docker-compose.yml and the systemd unit, checked for their structure (there is no
// Docker daemon here) and for running one start command; `systemd-analyze verify` on the unit where it exists.
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../src/config.js'
import {
  compose,
  DEPLOY_DIR,
  deployFile,
  dockerStages,
  execForm,
  startCommand,
  unitEntries,
} from './deployFiles.js'

const CONFIG = '/etc/parley-relay/parley.toml'
const DATA = '/var/lib/parley-relay'

describe('deploy/Dockerfile', () => {
  const stages = dockerStages(deployFile('Dockerfile'))
  const final = stages.at(-1)!
  const op = (name: string) => final.filter((i) => i.op === name)

  it('builds in one stage and runs in another, as a non-root user, with the data directory a volume', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    expect(final.find((i) => i.op === 'COPY' && i.args.startsWith('--from='))).toBeDefined()
    const user = op('USER').at(-1)?.args
    expect(user).toBeDefined()
    expect(['root', '0']).not.toContain(user)
    expect(execForm(op('VOLUME')[0])).toEqual([DATA])
    expect(startCommand()).toEqual(['parley-relay', '--config', CONFIG])
  })

  it("health-checks the relay's /healthz on the port of its config file", () => {
    const check = op('HEALTHCHECK')[0]?.args ?? ''
    expect(check).toContain("fetch('http://127.0.0.1:8787/healthz')")
    const { config } = loadConfig(['--config', join(DEPLOY_DIR, 'parley.toml')], {})
    expect(config.port).toBe(8787)
    expect(config.dataDir).toBe(DATA)
  })

  it("leaves a developer's relay data out of the build context", () => {
    const ignored = deployFile('Dockerfile.dockerignore').split('\n')
    for (const p of ['**/.parley-data', '**/*.db', '**/oprf-keys.json', '**/relay-keys.json'])
      expect(ignored).toContain(p)
  })
})

describe('deploy/docker-compose.yml', () => {
  const c = compose()

  it('runs the relay with PostgreSQL and Redis, its data in a volume, secrets as files', () => {
    expect(Object.keys(c.services).sort()).toEqual(['postgres', 'redis', 'relay'])
    const relay = c.services.relay!
    expect(relay.command).toEqual(startCommand().slice(1))
    expect(relay.volumes).toContain(`relay-data:${DATA}`)
    expect(relay.volumes).toContain(`./parley.toml:${CONFIG}:ro`)
    expect(relay.depends_on).toEqual({
      postgres: { condition: 'service_healthy' },
      redis: { condition: 'service_healthy' },
    })
    expect(relay.environment).toMatchObject({
      PARLEY_STORE_FILE: '/run/secrets/database-url',
      PARLEY_REDIS: 'redis://redis:6379',
      PARLEY_NUMBER_HASH_KEY_FILE: '/run/secrets/number-hash-key',
    })
    for (const name of relay.secrets as string[]) expect(c.secrets[name]?.file).toMatch(/^\.\/secrets\//)
    for (const v of ['relay-data', 'postgres-data', 'redis-data']) expect(c.volumes).toHaveProperty(v)
    expect(c.services.postgres!.healthcheck).toBeDefined()
    expect(c.services.redis!.healthcheck).toBeDefined()
  })
})

describe('deploy/parley-relay.service', () => {
  const entries = unitEntries(deployFile('parley-relay.service'))
  const value = (key: string) => entries.filter(([k]) => k === key).map(([, v]) => v)

  it('starts the same command, its secret a credential file, with hardening options', () => {
    expect(value('ExecStart')).toEqual([`/usr/local/bin/${startCommand().join(' ')}`])
    expect(value('Environment')).toContain('PARLEY_WEBHOOK_SECRET_FILE=%d/webhook-secret')
    for (const [k, v] of [
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['ProtectHome', 'yes'],
      ['PrivateTmp', 'yes'],
      ['DynamicUser', 'yes'],
      ['StateDirectory', 'parley-relay'],
      ['CapabilityBoundingSet', ''],
    ]) {
      expect(value(k!), k).toEqual([v])
    }
    expect(value('MemoryDenyWriteExecute')).toEqual([]) // V8's JIT needs it off
  })

  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' })
  it.skipIf(analyze.status !== 0)('passes systemd-analyze verify', () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-unit-'))
    try {
      // verify wants ExecStart's program to exist: point it at this checkout's bin.
      const bin = fileURLToPath(new URL('../bin/parley-relay.mjs', import.meta.url))
      const unit = join(dir, 'parley-relay.service')
      copyFileSync(join(DEPLOY_DIR, 'parley-relay.service'), unit)
      writeFileSync(unit, deployFile('parley-relay.service').replace('/usr/local/bin/parley-relay', bin))
      const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' })
      expect(r.stderr).toBe('')
      expect(r.status).toBe(0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
