import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { describe, expect, it } from 'vitest'
import { storeConformance } from '../../client/src/testing/storeConformance.js'
import { IndexedDbStore } from './IndexedDbStore.js'

const fresh = () => ({ indexedDB: new IDBFactory(), keyRange: IDBKeyRange })
const b = (...xs: number[]) => new Uint8Array(xs)

storeConformance('IndexedDbStore', async () => {
  const options = fresh()
  return {
    store: await IndexedDbStore.open('parley', options),
    reopen: () => IndexedDbStore.open('parley', options),
  }
})

describe('IndexedDbStore', () => {
  it('keeps a 1 MiB value and many entries across reopening', async () => {
    const options = fresh()
    const store = await IndexedDbStore.open('big', options)
    const big = new Uint8Array(1024 * 1024).map((_, i) => (i * 7) & 0xff)
    const many = Array.from({ length: 500 }, (_, i) => ({
      key: `inbox/${String(i).padStart(4, '0')}`,
      value: b(i & 0xff),
    }))
    await store.write([{ key: 'big', value: big }, ...many])
    await store.close()
    const again = await IndexedDbStore.open('big', options)
    expect(await again.get('big')).toEqual(big)
    const listed = await again.list('inbox/')
    expect(listed.length).toBe(500)
    expect(listed[499]).toEqual({ key: 'inbox/0499', value: b(499 & 0xff) })
    await again.close()
  })

  it('stores only the bytes of a view, not the whole buffer behind it', async () => {
    const store = await IndexedDbStore.open('view', fresh())
    const buffer = new Uint8Array(64).map((_, i) => i)
    await store.write([{ key: 'v', value: buffer.subarray(10, 13) }])
    const got = await store.get('v')
    expect(got).toEqual(b(10, 11, 12))
    expect(got!.buffer.byteLength).toBe(3)
    await store.close()
  })

  it('keeps databases of different names apart (one per device)', async () => {
    const options = fresh()
    const alice = await IndexedDbStore.open('parley-alice', options)
    const bob = await IndexedDbStore.open('parley-bob', options)
    await alice.write([{ key: 'account', value: b(1) }])
    expect(await bob.get('account')).toBeUndefined()
    await alice.close()
    await bob.close()
  })

  it('lists prefixes that end in the highest code unit and non-ASCII keys in code-unit order', async () => {
    const store = await IndexedDbStore.open('order', fresh())
    await store.write([
      { key: 'p\uffff', value: b(1) },
      { key: 'p\uffffz', value: b(2) },
      { key: 'q', value: b(3) },
      { key: 'contact/é', value: b(4) },
      { key: 'contact/z', value: b(5) },
      { key: 'contact/\u{1f600}', value: b(6) },
    ])
    expect((await store.list('p\uffff')).map((e) => e.key)).toEqual(['p\uffff', 'p\uffffz'])
    expect((await store.list('contact/')).map((e) => e.key)).toEqual([
      'contact/z',
      'contact/é',
      'contact/\u{1f600}',
    ])
    await store.close()
  })

  it('applies nothing of a batch that fails part-way', async () => {
    const store = await IndexedDbStore.open('atomic', fresh())
    await store.write([{ key: 'a', value: b(1) }])
    const bad = [
      { key: 'a', value: b(2) },
      { key: 'b', value: Symbol('not bytes') as unknown as Uint8Array },
    ]
    await expect(store.write(bad)).rejects.toThrow()
    expect(await store.get('a')).toEqual(b(1))
    expect(await store.get('b')).toBeUndefined()
    await store.close()
  })

  it('rejects every call after close, and close twice is harmless', async () => {
    const store = await IndexedDbStore.open('closed', fresh())
    await store.close()
    await store.close()
    await expect(store.get('a')).rejects.toThrow(/closed/)
    await expect(store.write([{ key: 'a', value: b(1) }])).rejects.toThrow(/closed/)
    await expect(store.list('')).rejects.toThrow(/closed/)
  })

  it('closes itself when another tab deletes the database instead of blocking it', async () => {
    const options = fresh()
    const store = await IndexedDbStore.open('deleted', options)
    await new Promise<void>((resolve, reject) => {
      const request = options.indexedDB.deleteDatabase('deleted')
      request.onsuccess = () => resolve()
      request.onerror = () => reject(request.error)
      request.onblocked = () => reject(new Error('blocked'))
    })
    await expect(store.get('a')).rejects.toThrow(/closed/)
  })

  it('refuses a database written by a newer schema', async () => {
    const options = fresh()
    await new Promise<void>((resolve) => {
      const request = options.indexedDB.open('newer', 5)
      request.onsuccess = () => {
        request.result.close()
        resolve()
      }
    })
    await expect(IndexedDbStore.open('newer', options)).rejects.toThrow(/newer/)
  })

  it('rejects an empty name and a missing IndexedDB at once', async () => {
    await expect(IndexedDbStore.open('', fresh())).rejects.toThrow(TypeError)
    // Node has no global indexedDB: the same as a browser context without it.
    await expect(IndexedDbStore.open('x')).rejects.toThrow(/not available/)
  })
})
