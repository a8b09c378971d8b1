// The configuration's sources (a TOML file, PARLEY_* env, flags; …-file secrets), their precedence, and
// `parley-relay config check`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { envOf, fileKeyOf, flagOf, helpText, loadConfig, OPTIONS, parseConfig } from '../src/config.js'
import { configCommand } from '../src/configCommand.js'

const dir = mkdtempSync(join(tmpdir(), 'parley-config-test-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const file = (name: string, text: string) => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}
const SECRET = 'a-webhook-secret-of-32-bytes-xyz'
const WEBHOOK = 'verifier = "webhook"\nwebhook-url = "https://sms.example/parley"\n'

describe('config sources', () => {
  it('reads every key of a TOML file; env wins over the file and flags over both', () => {
    const toml = file(
      'a.toml',
      `${WEBHOOK}port = 9100\nhost = "127.0.0.1"\ntrust-proxy = true\nwebhook-secret = "${SECRET}"\n`,
    )
    expect(parseConfig(['--config', toml], {})).toMatchObject({
      port: 9100,
      host: '127.0.0.1',
      trustProxy: true,
      verifier: 'webhook',
      webhookSecret: SECRET,
    })
    expect(parseConfig(['--config', toml], { PARLEY_PORT: '9200' })).toMatchObject({ port: 9200 })
    expect(parseConfig([`--config=${toml}`, '--port', '9300'], { PARLEY_PORT: '9200' })).toMatchObject({
      port: 9300,
    })
    expect(parseConfig([], { PARLEY_CONFIG: toml })).toMatchObject({ port: 9100 })
  })

  it('reads a secret from its …-file variant (flag, env or file key), less a final line break', () => {
    const secret = file('secret', `${SECRET}\n`)
    const webhook = ['--verifier', 'webhook', '--webhook-url', 'https://sms.example/parley']
    expect(parseConfig([...webhook, '--webhook-secret-file', secret], {}).valueOf()).toMatchObject({
      webhookSecret: SECRET,
    })
    expect(parseConfig(webhook, { PARLEY_WEBHOOK_SECRET_FILE: secret })).toMatchObject({
      webhookSecret: SECRET,
    })
    const toml = file('b.toml', `${WEBHOOK}webhook-secret-file = "${secret}"\n`)
    expect(parseConfig(['--config', toml], {})).toMatchObject({ webhookSecret: SECRET })
    const url = file('db-url', 'postgres://u:pw@db/parley\n')
    expect(parseConfig(['--dev', '--store-file', url], {})).toMatchObject({
      store: 'postgres://u:pw@db/parley',
    })
  })

  it('refuses a secret given both as a value and as a file in one source, and an unreadable secret file', () => {
    const secret = file('secret2', SECRET)
    expect(() => parseConfig(['--dev', '--webhook-secret', SECRET, '--webhook-secret-file', secret])).toThrow(
      /--webhook-secret and --webhook-secret-file both set webhookSecret/,
    )
    expect(() => parseConfig(['--dev', '--webhook-secret-file', join(dir, 'missing')])).toThrow(
      /--webhook-secret-file: cannot read .*missing \(ENOENT\)/,
    )
  })

  it('names each problem of a file: unknown key, wrong type, bad TOML, a missing file', () => {
    const bad = file('bad.toml', 'port = "eighty"\nnope = 1\nlog-level = "loud"\n')
    const { problems } = loadConfig(['--config', bad, '--dev'], {})
    expect(problems).toEqual([
      `unknown key nope in ${bad} (the keys are the flags without --)`,
      `port in ${bad} must be a non-negative integer`,
      `log-level in ${bad} must be one of fatal, error, warn, info, debug, trace, silent`,
    ])
    const broken = file('broken.toml', 'port = = 1\n')
    expect(loadConfig(['--config', broken], {}).problems[0]).toMatch(
      /^config file .*broken.toml: cannot read it/,
    )
    expect(loadConfig(['--config', join(dir, 'none.toml')], {}).problems).toEqual([
      `config file ${join(dir, 'none.toml')}: cannot read it (ENOENT)`,
    ])
  })

  it('refuses a bad --log-level with a clean message', () => {
    expect(() => parseConfig(['--dev', '--log-level', 'loud'])).toThrow(
      /^--log-level must be one of fatal, error, warn, info, debug, trace, silent$/,
    )
  })

  it('derives a flag, env var, file key and help entry for every option of the table', () => {
    const help = helpText()
    for (const opt of OPTIONS) {
      expect(help).toContain(`${flagOf(opt.key)}`)
      expect(help).toContain(envOf(opt.key))
      expect(fileKeyOf(opt.key)).toBe(flagOf(opt.key).slice(2))
    }
    const secrets = OPTIONS.filter((o) => 'secret' in o && o.secret).map((o) => o.key)
    expect(secrets).toEqual(['store', 'redis', 'webhookSecret', 'numberHashKey'])
    for (const key of secrets) expect(help).toContain(`${envOf(key)}_FILE`)
  })
})

describe('parley-relay config check', () => {
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const out: string[] = []
    const err: string[] = []
    const code = configCommand(
      args,
      env,
      (l) => out.push(l),
      (l) => err.push(l),
    )
    return { code, out, err }
  }

  it('exits 0 for a configuration that can run, without printing a secret', () => {
    const secret = file('secret3', SECRET)
    const toml = file(
      'ok.toml',
      `${WEBHOOK}webhook-secret-file = "${secret}"\nstore = "postgres://u:pw@db/x"\n`,
    )
    const r = run(['check', '--config', toml])
    expect(r).toMatchObject({ code: 0, err: [] })
    expect(r.out).toEqual([`configuration ok (${toml}; data directory ./.parley-data, store postgres)`])
    expect(r.out.join('\n')).not.toMatch(/pw|a-webhook-secret/)
  })

  it('exits 1 with one line per problem', () => {
    const toml = file('two.toml', 'port = 70000\nnope = true\n')
    const r = run(['check', '--config', toml])
    expect(r.code).toBe(1)
    expect(r.err).toEqual([
      `parley-relay config: unknown key nope in ${toml} (the keys are the flags without --)`,
    ])
    const r2 = run(['check', '--port', '70000', '--ipv4-network-bits', '4'])
    expect(r2.code).toBe(1)
    expect(r2.err).toEqual([
      'parley-relay config: port must be at most 65535',
      'parley-relay config: ipv4-network-bits must be between 8 and 32',
    ])
    const r3 = run(['check'])
    expect(r3.err).toEqual([
      'parley-relay config: the console verifier prints every verification code to the log, so anyone who can read the log can activate',
    ])
  })

  it('prints its usage for anything but check', () => {
    expect(run(['nope']).code).toBe(2)
    expect(run([]).code).toBe(0)
  })
})
