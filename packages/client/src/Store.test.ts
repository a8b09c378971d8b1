import { MemoryStore } from './Store.js'
import { storeConformance } from './testing/storeConformance.js'

storeConformance('MemoryStore', async () => ({ store: new MemoryStore() }))
