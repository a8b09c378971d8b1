// Browser bundles of the SDK, built with esbuild's JS API (scripts/size.mjs measures the same build).
// Workspace packages resolve to their TypeScript sources through the `parley-source` export condition, so
// nothing needs a prior `tsc` build.
//
//   node scripts/bundle.mjs          writes dist-browser/parley.js (the SDK as one minified ESM file)
import { mkdir, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'
import { browserOptions } from './esbuildOptions.mjs'

export const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url))

/**
 * Bundles `entry` for the browser.
 * @param {string} entry - absolute path of the entry module
 * @param {{ format?: 'esm' | 'iife', globalName?: string }} [extra]
 * @returns {Promise<{ code: string, metafile: import('esbuild').Metafile }>}
 */
export async function bundle(entry, extra = {}) {
  const result = await esbuild.build({
    ...browserOptions,
    ...extra,
    entryPoints: [entry],
    write: false,
    metafile: true,
    outfile: 'out.js',
  })
  const out = result.outputFiles.find((f) => f.path.endsWith('.js'))
  return { code: out.text, metafile: result.metafile }
}

/** The SDK as one minified ESM module. */
export const bundleSdk = (extra) => bundle(`${PACKAGE_DIR}src/index.ts`, extra)

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await mkdir(`${PACKAGE_DIR}dist-browser`, { recursive: true })
  const { code } = await bundleSdk()
  await writeFile(`${PACKAGE_DIR}dist-browser/parley.js`, code)
  console.log(`wrote dist-browser/parley.js (${(code.length / 1024).toFixed(1)} KB)`)
}
