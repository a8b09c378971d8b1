// The Store conformance suite (storeSuite.ts) registered with vitest, for this repository's own tests, which
// import it by path. Test-only: excluded from the build; apps use `storeConformance` from `@parley/client/testing`.
import { describe, it } from 'vitest'
import type { Store } from '../Store.js'
import { storeConformance as suite } from './storeSuite.js'

/** Registers the Store conformance tests for one implementation with vitest. */
export function storeConformance(
  name: string,
  open: () => Promise<{ store: Store; reopen?: () => Promise<Store> }>,
): void {
  suite(name, open, { describe, it })
}
