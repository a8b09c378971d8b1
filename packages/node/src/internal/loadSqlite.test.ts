import { MemoryStore } from '@parley/client'
import { describe, expect, it, vi } from 'vitest'
import { recordingTransport } from '../../../client/src/testing/recordingTransport.js'
import { createClient } from '../createClient.js'
import { SqliteStore } from '../SqliteStore.js'
import { loadSqlite, MISSING_SQLITE_MESSAGE } from './loadSqlite.js'

// Importing better-sqlite3 statically anywhere on the way to createClient() would fail this whole file.
vi.mock('better-sqlite3', () => {
  throw new Error('better-sqlite3 is loaded only when a SQLite store is opened')
})

// An app that did not install the optional peer dependency: `require('better-sqlite3')` fails as Node fails it.
vi.mock('node:module', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:module')>()
  return {
    ...actual,
    createRequire: (from: string | URL) => {
      const real = actual.createRequire(from)
      return Object.assign((id: string) => {
        if (id === 'better-sqlite3') throw notFound(id)
        return real(id)
      }, real)
    },
  }
})

function notFound(id: string): Error {
  return Object.assign(new Error(`Cannot find module '${id}'\nRequire stack:\n- /app/index.js`), {
    code: 'MODULE_NOT_FOUND',
  })
}

describe('without better-sqlite3 installed', () => {
  it('rejects createClient({ storePath }) with a TypeError that names the package to install', async () => {
    const made = createClient({ relayUrl: 'ws://127.0.0.1:1', storePath: './alice.db' })
    await expect(made).rejects.toThrow(TypeError)
    await expect(made).rejects.toThrow(MISSING_SQLITE_MESSAGE)
    await expect(made).rejects.toThrow(/npm install better-sqlite3/)
  })

  it('fails SqliteStore.open the same way, with the loader error as cause', () => {
    let thrown: unknown
    try {
      SqliteStore.open('./alice.db')
    } catch (err) {
      thrown = err
    }
    expect(thrown).toBeInstanceOf(TypeError)
    expect((thrown as Error).message).toContain('better-sqlite3')
    expect((thrown as Error).cause).toMatchObject({ code: 'MODULE_NOT_FOUND' })
  })

  it('makes a client over a store of the app without loading it', async () => {
    const transport = recordingTransport()
    const client = await createClient({ relayUrl: 'ws://127.0.0.1:1', store: new MemoryStore(), transport })
    expect(client.activated).toBe(false)
    await client.close()
    const inMemory = await createClient({ relayUrl: 'ws://127.0.0.1:1', transport })
    await inMemory.close()
  })
})

describe('loadSqlite', () => {
  it('passes on an error that is not the package missing (a broken install is not a setup hint)', () => {
    const inner = notFound('./lib/database')
    expect(() =>
      loadSqlite(() => {
        throw inner
      }),
    ).toThrow(inner)
    const broken = new Error('NODE_MODULE_VERSION mismatch')
    expect(() =>
      loadSqlite(() => {
        throw broken
      }),
    ).toThrow(broken)
  })

  it('returns what the loader loads', () => {
    const fake = function Database() {}
    expect(loadSqlite(() => fake)).toBe(fake)
  })
})
