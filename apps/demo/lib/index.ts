/**
 * The demo page as files: `index.html`, `demo.css` and `demo.js` (the page's script, `src/demo.ts`, bundled with
 * `@parley/browser` from its TypeScript sources). `pnpm --filter @parley/demo build` writes them to `dist/`;
 * {@link demoFiles} hands them to a development relay, building `dist/` first when it is missing or older than
 * anything `demo.js` was made of, so `pnpm relay` needs no build step and never serves a stale bundle.
 * @module
 */
import { existsSync } from 'node:fs'
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
// One definition of how the SDK is bundled for the browser; @parley/browser does not publish its scripts.
import { browserOptions } from '../../../packages/browser/scripts/esbuildOptions.mjs'

/** The files of the page, as a relay serves them. */
export const DEMO_FILE_NAMES = ['index.html', 'demo.css', 'demo.js'] as const
export type DemoFileName = (typeof DEMO_FILE_NAMES)[number]
export type DemoFiles = Readonly<Record<DemoFileName, Buffer>>

/** This package's directory (`apps/demo/`). */
export const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url))
/** Where {@link buildDemo} writes by default. */
export const DIST_DIR = join(PACKAGE_DIR, 'dist')
/** Beside the three files in `dist/`: what `demo.js` was built from, for the staleness check. */
const INPUTS_FILE = 'inputs.json'
/** The static files, copied as they are. */
const STATIC_FILES = ['index.html', 'demo.css'] as const
const ENTRY = join(PACKAGE_DIR, 'src/demo.ts')

/**
 * Bundles `src/demo.ts` for the browser as a user's bundler would (ESM, minified, tree-shaken), workspace packages
 * from their sources through the `parley-source` export condition.
 * @returns the code and every file it was made of (paths relative to this package's directory)
 */
export async function bundleDemo(): Promise<{ code: string; inputs: string[] }> {
  const esbuild = await import('esbuild')
  const result = await esbuild.build({
    ...browserOptions,
    absWorkingDir: PACKAGE_DIR,
    entryPoints: [ENTRY],
    write: false,
    metafile: true,
    outfile: 'demo.js',
  })
  const out = result.outputFiles.find((f) => f.path.endsWith('.js'))
  if (out === undefined) throw new Error('esbuild wrote no demo.js')
  return { code: out.text, inputs: Object.keys(result.metafile.inputs) }
}

/** Writes `data` to `path` through a temporary file, so a concurrent reader sees the old file or the new one. */
async function writeAtomic(path: string, data: string | Buffer): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, data)
  await rename(tmp, path)
}

/** The page built in memory: the static files as they are and `src/demo.ts` bundled. */
async function build(): Promise<{ files: DemoFiles; inputs: string[] }> {
  const [{ code, inputs }, html, css] = await Promise.all([
    bundleDemo(),
    ...STATIC_FILES.map((f) => readFile(join(PACKAGE_DIR, f))),
  ])
  return { files: { 'index.html': html!, 'demo.css': css!, 'demo.js': Buffer.from(code) }, inputs }
}

/**
 * Writes a build to `outDir`, `demo.js` last, so a complete `outDir` always has a `demo.js` at least as new as
 * its list of inputs.
 */
async function write(outDir: string, files: DemoFiles, inputs: string[]): Promise<void> {
  await mkdir(outDir, { recursive: true })
  await writeAtomic(
    join(outDir, INPUTS_FILE),
    `${JSON.stringify({ inputs: [...STATIC_FILES, ...inputs] })}\n`,
  )
  for (const name of DEMO_FILE_NAMES) await writeAtomic(join(outDir, name), files[name])
}

/**
 * Builds the page into `outDir` (default `dist/`): `index.html` and `demo.css` copied, `demo.js` bundled, and
 * `inputs.json`, what `demo.js` was made of.
 * @returns the three files
 */
export async function buildDemo(outDir = DIST_DIR): Promise<DemoFiles> {
  const { files, inputs } = await build()
  await write(outDir, files, inputs)
  return files
}

/**
 * Whether `outDir` holds a complete build that is newer than every file `demo.js` was made of (the static files,
 * the page's sources, the SDK's sources and the dependencies it bundled; a missing one counts as changed).
 */
export async function isFresh(outDir = DIST_DIR): Promise<boolean> {
  try {
    const built = (await stat(join(outDir, 'demo.js'))).mtimeMs
    for (const f of STATIC_FILES) await stat(join(outDir, f))
    const { inputs } = JSON.parse(await readFile(join(outDir, INPUTS_FILE), 'utf8')) as { inputs: string[] }
    if (!Array.isArray(inputs) || !inputs.includes('src/demo.ts')) return false
    for (const input of inputs) if ((await stat(resolve(PACKAGE_DIR, input))).mtimeMs > built) return false
    return true
  } catch {
    return false
  }
}

/** Reads the three files of a build. */
async function readBuild(outDir: string): Promise<DemoFiles> {
  const [html, css, js] = await Promise.all(DEMO_FILE_NAMES.map((f) => readFile(join(outDir, f))))
  return { 'index.html': html!, 'demo.css': css!, 'demo.js': js! }
}

/**
 * The three files of the page: `outDir` (default `dist/`) as it is when it is fresh ({@link isFresh}), else built
 * from the sources first. Writing `outDir` is best effort (in a read-only tree the build is only returned).
 * Without the sources (a copy of this package with only its `dist/`), `outDir` as it is.
 * @throws when the sources do not bundle, or there are no sources and no build
 */
export async function demoFiles(outDir = DIST_DIR): Promise<DemoFiles> {
  if (!existsSync(ENTRY) || (await isFresh(outDir))) return readBuild(outDir)
  const { files, inputs } = await build()
  await write(outDir, files, inputs).catch(() => {})
  return files
}
