// Regenerates test/vectors/parley-e2e/kat.json (run: cd packages/protocol && npx tsx scripts/gen-e2e-vectors.ts).
// The vectors freeze every step of the e2e layer; regenerate only when a format change is intended.
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { computeVectors } from '../test/e2e/vectors.js'

const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'vectors', 'parley-e2e', 'kat.json')
writeFileSync(out, `${JSON.stringify(await computeVectors(), null, 2)}\n`)
console.log(`wrote ${out}`)
