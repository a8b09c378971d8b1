/**
 * The conformance suite every {@link Store} implementation passes (memory, SQLite, IndexedDB, and yours), so
 * that they cannot drift. It registers its tests with the `describe` and `it` of whatever test runner calls it
 * and checks with its own assertions, so it needs no particular runner.
 * @module
 */
import { pageFromList, type Store } from '../Store.js'

/** The two functions of a test runner the suite registers its tests with (vitest, jest, mocha, node:test). */
export interface TestRegistrar {
  describe(name: string, body: () => void): unknown
  it(name: string, body: () => Promise<void>): unknown
}

/** What the suite opens for each test: a fresh store and, for a durable one, a way to open it again. */
export interface StoreUnderTest {
  /** An empty store. */
  store: Store
  /** Opens the same data again after `store.close()`; omit it for a store that keeps nothing. */
  reopen?: () => Promise<Store>
}

const b = (...xs: number[]) => new Uint8Array(xs)

function same(actual: unknown, expected: unknown, what: string): void {
  const show = (v: unknown) =>
    v instanceof Uint8Array
      ? `bytes[${[...v].slice(0, 8).join(',')}${v.length > 8 ? ',…' : ''}] (${v.length})`
      : JSON.stringify(v)
  const equal =
    actual instanceof Uint8Array && expected instanceof Uint8Array
      ? actual.length === expected.length && actual.every((x, i) => x === expected[i])
      : JSON.stringify(actual) === JSON.stringify(expected)
  if (!equal) throw new Error(`${what}: expected ${show(expected)}, got ${show(actual)}`)
}

function globalRegistrar(): TestRegistrar {
  const g = globalThis as Partial<TestRegistrar>
  if (typeof g.describe !== 'function' || typeof g.it !== 'function') {
    throw new TypeError("storeConformance() needs your test runner's { describe, it } (no globals found)")
  }
  return { describe: g.describe, it: g.it }
}

/**
 * Registers the Store conformance tests for one implementation.
 * @param name - the implementation's name, shown in the suite's title
 * @param open - opens a fresh, empty store for each test (and says how to reopen it, if it is durable)
 * @param test - the test runner's `describe` and `it`; default: the global ones (jest, mocha, vitest with
 *   `globals: true`)
 * @example
 * import { describe, it } from 'vitest'
 * import { storeConformance } from '@parley/client/testing'
 * storeConformance('MyStore', async () => ({ store: await MyStore.open(tmp()), reopen: () => MyStore.open(tmp()) }), { describe, it })
 */
export function storeConformance(
  name: string,
  open: () => Promise<StoreUnderTest>,
  test: TestRegistrar = globalRegistrar(),
): void {
  const { describe, it } = test
  /** A test on a fresh store, closed after it whether it passes or not. */
  const storeTest = (title: string, body: (store: Store) => Promise<void>) =>
    it(title, async () => {
      const { store } = await open()
      try {
        await body(store)
      } finally {
        await store.close()
      }
    })
  describe(`Store conformance: ${name}`, () => {
    storeTest('gets what was written and undefined for missing keys', async (store) => {
      await store.write([{ key: 'a/1', value: b(1, 2, 3) }])
      same(await store.get('a/1'), b(1, 2, 3), 'get(a/1)')
      same(await store.get('a/2'), undefined, 'get(a/2)')
    })

    storeTest('overwrites and deletes within one batch, in order', async (store) => {
      await store.write([
        { key: 'k', value: b(1) },
        { key: 'k', value: b(2) },
        { key: 'gone', value: b(9) },
        { key: 'gone' },
      ])
      same(await store.get('k'), b(2), 'get(k)')
      same(await store.get('gone'), undefined, 'get(gone)')
    })

    storeTest('lists by prefix in ascending key order and nothing outside the prefix', async (store) => {
      await store.write([
        { key: 'outbox/0000000000000010', value: b(10) },
        { key: 'outbox/0000000000000002', value: b(2) },
        { key: 'outboxx', value: b(0) },
        { key: 'inbox/1', value: b(1) },
        { key: 'outbox/0000000000000001', value: b(1) },
      ])
      const listed = await store.list('outbox/')
      same(
        listed.map((e) => e.key),
        ['outbox/0000000000000001', 'outbox/0000000000000002', 'outbox/0000000000000010'],
        'list(outbox/) keys',
      )
      same(
        listed.map((e) => e.value[0]),
        [1, 2, 10],
        'list(outbox/) values',
      )
      same((await store.list('')).length, 5, "list('') length")
    })

    storeTest('returns copies: mutating a returned value does not change the store', async (store) => {
      const value = b(5, 5)
      await store.write([{ key: 'x', value }])
      value[0] = 9
      const got = await store.get('x')
      same(got, b(5, 5), 'get(x) after mutating the written value')
      got![1] = 7
      same(await store.get('x'), b(5, 5), 'get(x) after mutating a read value')
    })

    storeTest('keeps empty and large values intact', async (store) => {
      const big = new Uint8Array(300_000).map((_, i) => i & 0xff)
      await store.write([
        { key: 'empty', value: new Uint8Array(0) },
        { key: 'big', value: big },
      ])
      same(await store.get('empty'), new Uint8Array(0), 'get(empty)')
      same(await store.get('big'), big, 'get(big)')
    })

    storeTest(
      'pages within a prefix as list() would, both ways, bounds exclusive (when it has page)',
      async (store) => {
        if (store.page === undefined) return
        const keys = Array.from({ length: 250 }, (_, i) => `conv/x/${String(i).padStart(4, '0')}`)
        await store.write([
          ...keys.map((key, i) => ({ key, value: b(i & 0xff) })),
          // Neighbours on both sides of the prefix must never show up.
          { key: 'conv/w/9999', value: b(1) },
          { key: 'conv/x', value: b(2) },
          { key: 'conv/y/0000', value: b(3) },
        ])
        const all = await store.list('conv/x/')
        same(all.length, 250, 'list(conv/x/)')
        const cases = [
          { limit: 10 },
          { limit: 10, reverse: true },
          { limit: 1000 },
          { limit: 1000, reverse: true },
          { after: keys[100], limit: 20 },
          { after: keys[100], limit: 20, reverse: true },
          { before: keys[100], limit: 20, reverse: true },
          { before: keys[100], limit: 20 },
          { after: keys[10], before: keys[15], limit: 100 },
          { after: keys[10], before: keys[11], limit: 100 },
          { after: keys[249], limit: 5 },
          { before: keys[0], limit: 5, reverse: true },
          { after: 'conv/a', limit: 3 },
          { before: 'conv/z', limit: 3, reverse: true },
          { after: 'conv/x/0100x', limit: 2 },
        ]
        for (const options of cases) {
          const got = (await store.page('conv/x/', options)).map((e) => [e.key, e.value[0]])
          const want = pageFromList(all, options).map((e) => [e.key, e.value[0]])
          same(got, want, `page(conv/x/, ${JSON.stringify(options)})`)
        }
      },
    )

    it('persists across reopening when durable', async () => {
      const { store, reopen } = await open()
      if (reopen === undefined) {
        await store.close()
        return
      }
      await store.write([{ key: 'session/ab', value: b(4, 2) }])
      await store.close()
      const again = await reopen()
      same(await again.get('session/ab'), b(4, 2), 'get(session/ab) after reopening')
      await again.close()
    })
  })
}
