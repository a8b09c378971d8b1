// Configuration of the scale-out engines: --store / --redis flags and env vars, and the refusals that keep a
// cluster from starting half-configured.
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config.js'
import { parseRedisUrl } from '../src/internal/redis.js'
import { parsePostgresUrl } from '../src/PostgresStore.js'
import { redactUrl } from '../src/scaleOut.js'

const KEY = 'ab'.repeat(32)

describe('scale-out configuration', () => {
  it('defaults to SQLite and in-process engines', () => {
    expect(parseConfig(['--dev'], {})).toMatchObject({ store: 'sqlite', redis: '' })
  })

  it('reads --store and --redis, or PARLEY_STORE and PARLEY_REDIS, flags winning', () => {
    const env = {
      PARLEY_STORE: 'postgres://db/env',
      PARLEY_REDIS: 'redis://r:6379',
      PARLEY_NUMBER_HASH_KEY: KEY,
    }
    expect(parseConfig(['--dev'], env)).toMatchObject({ store: 'postgres://db/env', redis: 'redis://r:6379' })
    const flags = parseConfig(
      ['--dev', '--store', 'postgresql://u@db:5432/relay?schema=a', '--store=sqlite'],
      env,
    )
    expect(flags).toMatchObject({ store: 'sqlite' })
  })

  it('refuses --redis without --number-hash-key, and malformed URLs, saying what to do', () => {
    expect(() => parseConfig(['--redis', 'redis://127.0.0.1:6379'], {})).toThrow(
      /--redis needs --number-hash-key .* on every node/,
    )
    expect(() => parseConfig(['--store', 'mysql://db'], {})).toThrow(/sqlite or a postgres:\/\/ URL/)
    expect(() => parseConfig(['--redis', 'http://r', '--number-hash-key', KEY], {})).toThrow(/redis:\/\//)
  })

  it('splits the schema and key prefix off the URLs, and refuses unsafe ones', () => {
    expect(parsePostgresUrl('postgres://u:p@db:5432/relay?schema=tenant_1&sslmode=require')).toEqual({
      connectionString: 'postgres://u:p@db:5432/relay?sslmode=require',
      schema: 'tenant_1',
    })
    expect(parsePostgresUrl('postgres://db/relay').schema).toBe('public')
    expect(() => parsePostgresUrl('postgres://db/relay?schema=x;drop')).toThrow(/identifier/)
    expect(parseRedisUrl('redis://r:6379/2?prefix=eu:')).toEqual({ url: 'redis://r:6379/2', prefix: 'eu:' })
    expect(parseRedisUrl('redis://r').prefix).toBe('parley:')
    expect(() => parseRedisUrl('redis://r?prefix=a b')).toThrow(/prefix/)
    expect(redactUrl('postgres://relay:secret@db/relay')).toBe('postgres://relay:***@db/relay')
  })
})
