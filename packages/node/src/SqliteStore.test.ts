import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { storeConformance } from '../../client/src/testing/storeConformance.js'
import { SqliteStore } from './SqliteStore.js'

const dir = mkdtempSync(join(tmpdir(), 'parley-sqlite-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

storeConformance('SqliteStore', async () => {
  const path = join(dir, `store-${n++}.db`)
  return { store: SqliteStore.open(path), reopen: async () => SqliteStore.open(path) }
})

describe('SqliteStore', () => {
  it('refuses a file written by a newer schema instead of corrupting it', () => {
    const path = join(dir, 'newer.db')
    const db = new Database(path)
    db.pragma('user_version = 99')
    db.close()
    expect(() => SqliteStore.open(path)).toThrow(/newer/)
  })

  it('applies a batch atomically: a failing batch leaves nothing behind', async () => {
    const store = SqliteStore.open(join(dir, 'atomic.db'))
    await store.write([{ key: 'a', value: new Uint8Array([1]) }])
    // A non-bytes value makes SQLite reject the second statement mid-batch.
    const bad = [
      { key: 'a', value: new Uint8Array([2]) },
      { key: 'b', value: Symbol('not bytes') as unknown as Uint8Array },
    ]
    await expect(store.write(bad)).rejects.toThrow()
    expect(await store.get('a')).toEqual(new Uint8Array([1]))
    expect(await store.get('b')).toBeUndefined()
    await store.close()
  })

  it('rejects an empty path', () => {
    expect(() => SqliteStore.open('')).toThrow(TypeError)
  })
})
