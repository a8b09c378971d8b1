import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { describe, expect, it } from 'vitest'
import { recordingTransport } from '../../client/src/testing/recordingTransport.js'
import { createClient } from './createClient.js'
import { IndexedDbStore } from './IndexedDbStore.js'

describe('createClient', () => {
  it('makes an in-memory client without storePath and opens no connection before activation', async () => {
    const transport = recordingTransport()
    const client = await createClient({ relayUrl: 'ws://127.0.0.1:1', transport })
    expect(client.activated).toBe(false)
    expect(await client.pendingCount()).toBe(0)
    await client.close()
    expect(transport.opened).toEqual([])
  })

  it('uses a given store', async () => {
    const store = await IndexedDbStore.open('parley', { indexedDB: new IDBFactory(), keyRange: IDBKeyRange })
    const client = await createClient({
      relayUrl: 'ws://127.0.0.1:1',
      store,
      transport: recordingTransport(),
    })
    expect(client.activated).toBe(false)
    await client.close()
    await expect(store.get('x')).rejects.toThrow(/closed/)
  })

  it('opens the IndexedDB database named by storePath, and by the deprecated storeName', async () => {
    const indexedDB = new IDBFactory()
    const previous = { indexedDB: globalThis.indexedDB, IDBKeyRange: globalThis.IDBKeyRange }
    Object.assign(globalThis, { indexedDB, IDBKeyRange })
    try {
      for (const options of [{ storePath: 'by-path' }, { storeName: 'by-name' }]) {
        const client = await createClient({
          relayUrl: 'ws://127.0.0.1:1',
          transport: recordingTransport(),
          ...options,
        })
        await client.close()
      }
      const names = (await indexedDB.databases()).map((d) => d.name).sort()
      expect(names).toEqual(['by-name', 'by-path'])
    } finally {
      Object.assign(globalThis, previous)
    }
  })

  it('rejects storePath or storeName with store, storeName with storePath, and bad options', async () => {
    const store = await IndexedDbStore.open('p', { indexedDB: new IDBFactory(), keyRange: IDBKeyRange })
    await expect(createClient({ relayUrl: 'ws://x', storePath: 'a', store })).rejects.toThrow(TypeError)
    await expect(createClient({ relayUrl: 'ws://x', storeName: 'a', store })).rejects.toThrow(TypeError)
    await expect(createClient({ relayUrl: 'ws://x', storeName: 'a', storePath: 'b' })).rejects.toThrow(
      /not both/,
    )
    await expect(createClient({ relayUrl: 'ws://x', storePath: '' })).rejects.toThrow(TypeError)
    await expect(createClient(null as never)).rejects.toThrow(TypeError)
    await expect(createClient({ relayUrl: 'http://x' })).rejects.toThrow(/ws:\/\//)
    await store.close()
  })
})
