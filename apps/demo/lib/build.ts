// `pnpm --filter @parley/demo build`: writes dist/index.html, dist/demo.css and dist/demo.js (and dist/inputs.json,
// what demo.js was made of). A development relay does the same on its first request when dist/ is missing or stale.
import { relative } from 'node:path'
import { buildDemo, DIST_DIR } from './index.js'

const files = await buildDemo()
for (const [name, body] of Object.entries(files))
  console.log(
    `wrote ${relative(process.cwd(), `${DIST_DIR}/${name}`)} (${(body.length / 1024).toFixed(1)} KB)`,
  )
