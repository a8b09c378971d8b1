// One conformance suite that every Store implementation passes (memory, SQLite, IndexedDB), so they cannot drift.
// Test-only: excluded from the build.
import { describe, expect, it } from 'vitest'
import type { Store } from '../Store.js'

const b = (...xs: number[]) => new Uint8Array(xs)

export function storeConformance(
  name: string,
  open: () => Promise<{ store: Store; reopen?: () => Promise<Store> }>,
): void {
  describe(`Store conformance: ${name}`, () => {
    it('gets what was written and undefined for missing keys', async () => {
      const { store } = await open()
      await store.write([{ key: 'a/1', value: b(1, 2, 3) }])
      expect(await store.get('a/1')).toEqual(b(1, 2, 3))
      expect(await store.get('a/2')).toBeUndefined()
      await store.close()
    })

    it('overwrites and deletes within one batch, in order', async () => {
      const { store } = await open()
      await store.write([
        { key: 'k', value: b(1) },
        { key: 'k', value: b(2) },
        { key: 'gone', value: b(9) },
        { key: 'gone' },
      ])
      expect(await store.get('k')).toEqual(b(2))
      expect(await store.get('gone')).toBeUndefined()
      await store.close()
    })

    it('lists by prefix in ascending key order and nothing outside the prefix', async () => {
      const { store } = await open()
      await store.write([
        { key: 'outbox/0000000000000010', value: b(10) },
        { key: 'outbox/0000000000000002', value: b(2) },
        { key: 'outboxx', value: b(0) },
        { key: 'inbox/1', value: b(1) },
        { key: 'outbox/0000000000000001', value: b(1) },
      ])
      const listed = await store.list('outbox/')
      expect(listed.map((e) => e.key)).toEqual([
        'outbox/0000000000000001',
        'outbox/0000000000000002',
        'outbox/0000000000000010',
      ])
      expect(listed.map((e) => e.value[0])).toEqual([1, 2, 10])
      expect((await store.list('')).length).toBe(5)
      await store.close()
    })

    it('returns copies: mutating a returned value does not change the store', async () => {
      const { store } = await open()
      const value = b(5, 5)
      await store.write([{ key: 'x', value }])
      value[0] = 9
      const got = await store.get('x')
      expect(got).toEqual(b(5, 5))
      got![1] = 7
      expect(await store.get('x')).toEqual(b(5, 5))
      await store.close()
    })

    it('keeps empty and large values intact', async () => {
      const { store } = await open()
      const big = new Uint8Array(300_000).map((_, i) => i & 0xff)
      await store.write([
        { key: 'empty', value: new Uint8Array(0) },
        { key: 'big', value: big },
      ])
      expect(await store.get('empty')).toEqual(new Uint8Array(0))
      expect(await store.get('big')).toEqual(big)
      await store.close()
    })

    it('persists across reopening when durable', async () => {
      const { store, reopen } = await open()
      if (reopen === undefined) {
        await store.close()
        expect(reopen).toBeUndefined()
        return
      }
      await store.write([{ key: 'session/ab', value: b(4, 2) }])
      await store.close()
      const again = await reopen()
      expect(await again.get('session/ab')).toEqual(b(4, 2))
      await again.close()
    })
  })
}
