// The size check: the whole SDK as a user's bundler would ship it (every export kept, minified, ESM),
// measured min+gzip. `--why` lists the biggest inputs from esbuild's metafile.

import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { bundleSdk } from './bundle.mjs'

export const BUDGET_KB = 80

/** @returns {Promise<{ minBytes: number, gzipBytes: number, kb: number, inputs: [string, number][] }>} */
export async function measure() {
  const { code, metafile } = await bundleSdk()
  const gzipBytes = gzipSync(code, { level: 9 }).length
  const output = Object.values(metafile.outputs)[0]
  const inputs = Object.entries(output.inputs)
    .map(([path, { bytesInOutput }]) => [path, bytesInOutput])
    .sort((a, b) => b[1] - a[1])
  return { minBytes: code.length, gzipBytes, kb: gzipBytes / 1024, inputs }
}

/** Groups inputs by package (`node_modules/<pkg>` or the workspace package) for a readable breakdown. */
export function byPackage(inputs) {
  const totals = new Map()
  for (const [path, bytes] of inputs) {
    const m = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(path)
    const name = m ? m[1] : (/^(?:\.\.\/)*(packages\/[^/]+|apps\/[^/]+)/.exec(path)?.[1] ?? path)
    totals.set(name, (totals.get(name) ?? 0) + bytes)
  }
  return [...totals].sort((a, b) => b[1] - a[1])
}

export const summary = (kb) => `@parley/browser: ${kb.toFixed(1)} KB min+gzip (budget ${BUDGET_KB} KB)`

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { kb, minBytes, inputs } = await measure()
  console.log(summary(kb))
  if (process.argv.includes('--why')) {
    console.log(`minified: ${(minBytes / 1024).toFixed(1)} KB; by package (minified bytes in output):`)
    for (const [name, bytes] of byPackage(inputs))
      console.log(`  ${(bytes / 1024).toFixed(1).padStart(7)} KB  ${name}`)
    console.log('largest files:')
    for (const [path, bytes] of inputs.slice(0, 15))
      console.log(`  ${(bytes / 1024).toFixed(1).padStart(7)} KB  ${path}`)
  }
  if (kb > BUDGET_KB) process.exitCode = 1
}
