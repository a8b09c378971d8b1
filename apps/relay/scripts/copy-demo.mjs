// After `tsc`: copies the demo page that `@parley/demo`'s build wrote (turbo builds it first, `^build`) into
// dist/demo/, so the published relay serves it without the private workspace package.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const from = join(here, '..', '..', 'demo', 'dist')
const to = join(here, '..', 'dist', 'demo')
const files = ['index.html', 'demo.css', 'demo.js']
const missing = files.filter((f) => !existsSync(join(from, f)))
if (missing.length > 0) {
  console.error(`copy-demo: ${from} lacks ${missing.join(', ')}; run pnpm --filter @parley/demo build first`)
  process.exit(1)
}
mkdirSync(to, { recursive: true })
for (const f of files) copyFileSync(join(from, f), join(to, f))
console.log(`copied the demo page (${files.join(', ')}) to dist/demo/`)
