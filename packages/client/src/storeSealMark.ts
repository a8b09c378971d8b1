/**
 * The record that marks a client store as sealed at rest ((`EncryptedStore`), apart from the sealing code so
 * that a client without a key can refuse a sealed store without loading it.
 * @module
 */
import { ParleyError } from '@parley/protocol'
import type { Store } from './Store.js'

/** The mark's record name: it holds {@link CHECK_VALUE}, sealed. */
export const CHECK = 'store/sealed'
/** What the mark seals; opening it proves the key. */
export const CHECK_VALUE = new TextEncoder().encode('parley store sealed v1')

/**
 * Throws unless a store that is about to be used without a key was never sealed.
 * @param store - the store as opened
 * @throws ParleyError `INVALID_STATE` when it was written sealed (pass its `storeEncryptionKey`)
 */
export async function refuseSealedWithoutKey(store: Store): Promise<void> {
  if ((await store.get(CHECK)) !== undefined) {
    throw new ParleyError('INVALID_STATE', 'this store is encrypted at rest: pass its storeEncryptionKey')
  }
}
