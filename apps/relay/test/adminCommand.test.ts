// `parley-relay admin` in process, on a SQLite data directory: a number read from standard input (`-`) is found
// under each served OPRF key and never printed; junk is refused with a usage error; nothing is created where
// there is no relay.
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { addressFromToken, numberToOprfInput, oprfEvaluate } from '@parley/protocol'
import { describe, expect, it } from 'vitest'
import { adminCommand } from '../src/admin/adminCommand.js'
import { OprfKeyring } from '../src/OprfKeyring.js'
import { SqliteStore } from '../src/SqliteStore.js'
import { tempDir } from '../testing/index.js'
import { hex, register } from './conformance/store.js'

const NUMBER = '+14155550177'

/** Runs the command, collecting what it prints. */
async function run(args: string[], env: NodeJS.ProcessEnv, stdin = '') {
  const lines: string[] = []
  const code = await adminCommand(args, env, {
    out: (l) => lines.push(l),
    err: (l) => lines.push(l),
    stdin: async () => stdin,
  })
  return { code, text: lines.join('\n') }
}

describe('parley-relay admin (in process)', () => {
  it('reads the number from standard input, finds its account under every served key, and never prints it', async () => {
    const dir = tempDir()
    const ring = OprfKeyring.open(dir)
    ring.rotate(60_000) // two keys served: the number has an address under each
    const [current, previous] = ring.served()
    const under = (k: typeof current) =>
      addressFromToken(oprfEvaluate(k!.secretKey, numberToOprfInput(NUMBER)))
    const store = new SqliteStore(join(dir, 'relay.db'))
    await register(store, new Uint8Array(under(previous)))
    await store.close()
    const env = { PARLEY_DATA_DIR: dir }

    const lookup = await run(['lookup', '-'], env, ` ${NUMBER}\n`)
    expect(lookup.code).toBe(0)
    expect(lookup.text).toContain(`key ${current!.keyId} ${hex(under(current))} no account`)
    expect(lookup.text).toMatch(
      new RegExp(`key ${previous!.keyId} ${hex(under(previous))} device 1 mailbox 0 `),
    )
    const ban = await run(['ban', '-'], env, NUMBER)
    expect(ban.code).toBe(0)
    expect(ban.text.match(/ banned$/gm)).toHaveLength(2)
    const stats = await run(['stats'], env)
    expect(stats.text).toMatch(/^accounts 1 \(banned 1, revoked 0\)$/m)
    for (const r of [lookup, ban, stats]) expect(r.text).not.toContain(NUMBER.slice(2))
    expect((await run(['unban', '--address', hex(under(previous))], env)).code).toBe(0)
    expect((await run(['stats'], env)).text).toMatch(/banned 0/)
  })

  it('refuses junk with a usage error (2) or a failure (1), echoing no number, creating nothing', async () => {
    const dir = tempDir()
    const env = { PARLEY_DATA_DIR: dir }
    expect((await run([], env)).code).toBe(2)
    expect((await run(['frobnicate'], env)).code).toBe(2)
    expect((await run(['ban'], env)).code).toBe(2)
    expect((await run(['ban', NUMBER, '--address', 'ab'], env)).code).toBe(2)
    expect((await run(['ban', '--address', 'xyz'], env)).code).toBe(2)
    expect((await run(['accounts', '--limit', '0'], env)).code).toBe(2)
    expect((await run(['stats', '--store', 'mysql://x'], env)).code).toBe(2)
    const junk = await run(['ban', '-'], env, '+1 415 555 01')
    expect(junk.code).toBe(1)
    expect(junk.text).toMatch(/phone number/)
    expect(junk.text).not.toContain('555 01')
    // No relay in this directory: no key file, no database is created.
    const none = await run(['ban', NUMBER], env)
    expect(none.code).toBe(1)
    expect(none.text).toMatch(/no oprf-keys\.json/)
    expect((await run(['stats'], env)).text).toMatch(/no relay\.db/)
    expect(existsSync(join(dir, 'relay.db'))).toBe(false)
    expect(existsSync(join(dir, 'oprf-keys.json'))).toBe(false)
  })

  it('finds the data directory in the relay config file, below PARLEY_DATA_DIR and --data-dir', async () => {
    const dir = tempDir()
    const elsewhere = tempDir()
    const store = new SqliteStore(join(dir, 'relay.db'))
    await register(store, new Uint8Array(32).fill(7))
    await store.close()
    const config = join(tempDir(), 'parley.toml')
    writeFileSync(config, `data-dir = ${JSON.stringify(dir)}\nport = 8787\n`)
    const accounts = /^accounts 1 /m
    expect((await run(['stats', '--config', config], {})).text).toMatch(accounts)
    expect((await run(['stats'], { PARLEY_CONFIG: config })).text).toMatch(accounts)
    // The environment and the flag win over the file, as for the relay itself.
    expect((await run(['stats', '--config', config], { PARLEY_DATA_DIR: elsewhere })).text).toMatch(
      /no relay\.db/,
    )
    expect((await run(['stats', '--config', config, '--data-dir', elsewhere], {})).text).toMatch(
      /no relay\.db/,
    )
    // A config file that cannot be read is a usage error, not a silent default.
    const missing = await run(['stats', '--config', join(elsewhere, 'nope.toml')], {})
    expect(missing.code).toBe(2)
    expect(missing.text).toMatch(/cannot read it/)
  })
})
