import { describe, expect, it } from 'vitest'
import { MemoryStore, type Store } from './Store.js'
import { storeConformance } from './testing/storeConformance.js'
import { storeConformance as runnerNeutralSuite } from './testing/storeSuite.js'

storeConformance('MemoryStore', async () => ({ store: new MemoryStore() }))

describe('storeConformance', () => {
  it('closes the store of a failing test', async () => {
    const tests = new Map<string, () => Promise<void>>()
    let closed = 0
    // A store that forgets every write: the suite's first test fails on it.
    const forgetful: Store = {
      get: async () => undefined,
      write: async () => {},
      list: async () => [],
      close: async () => {
        closed++
      },
    }
    runnerNeutralSuite('forgetful', async () => ({ store: forgetful }), {
      describe: (_name, body) => body(),
      it: (name, body) => tests.set(name, body),
    })
    const first = tests.get('gets what was written and undefined for missing keys')!
    await expect(first()).rejects.toThrow(/get\(a\/1\)/)
    expect(closed).toBe(1)
  })
})
