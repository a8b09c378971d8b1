// <dataDir>/store-key.json: created once (0600), then read back by every start and every node sharing it.
import { chmodSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { openStoreKeyFile, STORE_KEY_FILE } from '../src/storeKeyFile.js'
import { tempDir } from '../testing/index.js'

describe('store-key.json', () => {
  it('is created with a fresh key on first start, mode 0600, and read back unchanged', () => {
    const dir = join(tempDir(), 'data')
    const key = openStoreKeyFile(dir)
    expect(key).toHaveLength(32)
    expect(statSync(join(dir, STORE_KEY_FILE)).mode & 0o777).toBe(0o600)
    expect(Buffer.from(openStoreKeyFile(dir)).equals(Buffer.from(key))).toBe(true)
    expect(readdirSync(dir)).toEqual([STORE_KEY_FILE]) // no temporary file left behind
    expect(Buffer.from(openStoreKeyFile(tempDir())).equals(Buffer.from(key))).toBe(false)
  })

  it('warns when others can read it, and refuses a file that is not a store key', () => {
    const dir = tempDir()
    openStoreKeyFile(dir)
    chmodSync(join(dir, STORE_KEY_FILE), 0o644)
    const warnings: string[] = []
    openStoreKeyFile(dir, (m) => warnings.push(m))
    expect(warnings).toEqual([expect.stringContaining('chmod 600')])
    writeFileSync(join(dir, STORE_KEY_FILE), JSON.stringify({ version: 1, key: 'abcd' }))
    expect(() => openStoreKeyFile(dir)).toThrow(/not a valid store key file/)
  })
})
