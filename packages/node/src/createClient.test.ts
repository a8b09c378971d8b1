import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryStore } from '@parley/client'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { recordingTransport } from '../../client/src/testing/recordingTransport.js'
import { createClient } from './createClient.js'
import { SqliteStore } from './SqliteStore.js'

const dir = mkdtempSync(join(tmpdir(), 'parley-node-client-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('createClient (Node)', () => {
  it('makes an in-memory client without storePath and opens no connection before activation', async () => {
    const transport = recordingTransport()
    const client = await createClient({ relayUrl: 'ws://127.0.0.1:1', transport })
    expect(client.activated).toBe(false)
    await client.close()
    expect(transport.opened).toEqual([])
  })

  it('keeps the client in the SQLite file named by storePath', async () => {
    const path = join(dir, 'alice.db')
    const client = await createClient({
      relayUrl: 'ws://127.0.0.1:1',
      storePath: path,
      transport: recordingTransport(),
    })
    await client.close()
    expect(existsSync(path)).toBe(true)
  })

  it('closes the SQLite store it opened when the client cannot be made', async () => {
    const close = vi.spyOn(SqliteStore.prototype, 'close')
    try {
      await expect(
        createClient({ relayUrl: 'http://x', storePath: join(dir, 'refused.db') }),
      ).rejects.toThrow(/ws:\/\//)
      expect(close).toHaveBeenCalledTimes(1)
    } finally {
      close.mockRestore()
    }
  })

  it('rejects storePath with store, an empty storePath and missing options with a TypeError', async () => {
    const store = new MemoryStore()
    await expect(createClient({ relayUrl: 'ws://x', storePath: join(dir, 'a.db'), store })).rejects.toThrow(
      TypeError,
    )
    await expect(createClient({ relayUrl: 'ws://x', storePath: '' })).rejects.toThrow(TypeError)
    await expect(createClient(null as never)).rejects.toThrow(TypeError)
  })
})
