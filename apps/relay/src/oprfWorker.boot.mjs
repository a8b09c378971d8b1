// Worker bootstrap for a relay that runs from its TypeScript sources (OprfPool.ts). On Node 20 a worker does
// not get the parent's `--import tsx`: tsx installs its hooks only from the main thread, so a `.ts` worker
// entry fails with ERR_UNKNOWN_FILE_EXTENSION. Registering tsx's ESM hooks here first fixes that.
import { workerData } from 'node:worker_threads'
import { register } from 'tsx/esm/api'

register()
await import(workerData.entry)
