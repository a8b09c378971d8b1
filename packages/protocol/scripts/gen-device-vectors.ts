// Regenerates test/vectors/parley-devices/kat.json (run: cd packages/protocol && npx tsx scripts/gen-device-vectors.ts).
// The vectors freeze the linked-device formats; regenerate only when a format change is intended.
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { computeDeviceVectors } from '../test/devices/vectors.js'

const out = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'test',
  'vectors',
  'parley-devices',
  'kat.json',
)
writeFileSync(out, `${JSON.stringify(await computeDeviceVectors(), null, 2)}\n`)
console.log(`wrote ${out}`)
