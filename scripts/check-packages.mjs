#!/usr/bin/env node
// What npm users get from each published package (a workspace package.json without `"private": true`), checked
// after `pnpm build`: the repository fields, derived from the root package.json's `repository` (the one place
// the project's URL is written); the LICENSE copy; README links that work on npmjs.com (absolute, and those into
// this repository naming a path that exists); dependency ranges (`^` ranges, `workspace:^` inside); ESM only;
// and the tarball's file list (`pnpm pack --dry-run`): only compiled code, its declarations and maps, the
// sources the maps point to, the `bin` scripts, README, LICENSE and package.json. Usage: node scripts/check-packages.mjs [--quiet]
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, normalize, posix } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const quiet = process.argv.includes('--quiet')
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'))

const root = readJson(join(ROOT, 'package.json'))
const problems = []
const fail = (where, what) => problems.push(`${where}: ${what}`)

// The project's web address, from the root's repository URL: git+https://github.com/o/r.git -> https://github.com/o/r
const repoUrl = root.repository?.url ?? ''
const web = repoUrl.replace(/^git\+/, '').replace(/\.git$/, '')
if (!/^git\+https:\/\/[^/]+\/[^/]+\/[^/]+\.git$/.test(repoUrl)) {
  fail(
    'package.json',
    `repository.url must look like git+https://host/owner/name.git, is ${JSON.stringify(repoUrl)}`,
  )
}
if (root.homepage !== `${web}#readme`) fail('package.json', `homepage must be ${web}#readme`)
if (root.bugs?.url !== `${web}/issues`) fail('package.json', `bugs.url must be ${web}/issues`)
const license = readFileSync(join(ROOT, 'LICENSE'))

/** Workspace package directories, from pnpm-workspace.yaml's `packages` globs (`dir/*` or `dir`). */
function workspaceDirs() {
  const yaml = readFileSync(join(ROOT, 'pnpm-workspace.yaml'), 'utf8')
  const list = yaml.slice(yaml.indexOf('packages:')).split('\n').slice(1)
  const globs = []
  for (const line of list) {
    const m = /^\s+-\s+['"]?([^'"]+?)['"]?\s*$/.exec(line)
    if (m === null) break
    globs.push(m[1])
  }
  return globs.flatMap((glob) => {
    if (!glob.endsWith('/*')) return [glob]
    const parent = glob.slice(0, -2)
    return readdirSync(join(ROOT, parent))
      .map((name) => `${parent}/${name}`)
      .filter((dir) => existsSync(join(ROOT, dir, 'package.json')))
  })
}

const workspace = new Map()
for (const dir of workspaceDirs()) {
  const pkg = readJson(join(ROOT, dir, 'package.json'))
  workspace.set(pkg.name, { dir, pkg })
}
const published = [...workspace.values()].filter(({ pkg }) => pkg.private !== true)

/** Every string leaf of an `exports` value with the conditions that lead to it. */
function exportTargets(value, conditions = []) {
  if (typeof value === 'string') return [{ target: value, conditions }]
  if (value === null || typeof value !== 'object') return []
  return Object.entries(value).flatMap(([key, v]) => exportTargets(v, [...conditions, key]))
}

function checkFields(where, dir, pkg) {
  if (pkg.license !== root.license) fail(where, `license must be ${root.license}, is ${pkg.license}`)
  const repository = pkg.repository ?? {}
  if (repository.type !== 'git' || repository.url !== repoUrl || repository.directory !== dir) {
    fail(where, `repository must be { "type": "git", "url": "${repoUrl}", "directory": "${dir}" }`)
  }
  if (pkg.homepage !== `${web}/tree/main/${dir}#readme`)
    fail(where, `homepage must be ${web}/tree/main/${dir}#readme`)
  if (pkg.bugs?.url !== root.bugs?.url) fail(where, `bugs must be { "url": "${root.bugs?.url}" }`)
  const keywords = pkg.keywords
  if (!Array.isArray(keywords) || keywords.length === 0 || !keywords.includes('parley')) {
    fail(where, 'keywords must be a list that includes "parley"')
  } else if (keywords.some((k) => typeof k !== 'string' || !/^[a-z0-9][a-z0-9.-]*$/.test(k))) {
    fail(where, 'keywords must be lower-case words (a-z, 0-9, ".", "-")')
  }
  if (pkg.type !== 'module') fail(where, '"type" must be "module" (the SDK is ESM-only)')
  for (const { target, conditions } of exportTargets(pkg.exports)) {
    if (conditions.includes('require'))
      fail(where, `exports has a "require" condition (${target}); the SDK is ESM-only`)
  }
}

function checkDependencies(where, pkg) {
  for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) {
    for (const [name, range] of Object.entries(pkg[field] ?? {})) {
      const internal = workspace.get(name)
      if (internal !== undefined) {
        if (internal.pkg.private === true)
          fail(where, `${field}.${name}: a published package cannot need a private one`)
        if (range !== 'workspace:^')
          fail(where, `${field}.${name} must be "workspace:^" (published as a ^ range), is "${range}"`)
      } else if (field === 'peerDependencies') {
        if (/^\d/.test(range))
          fail(where, `${field}.${name} must be a range, not the exact version "${range}"`)
      } else if (!/^\^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(range)) {
        fail(
          where,
          `${field}.${name} must be a caret range (so apps can dedupe and get patches), is "${range}"`,
        )
      }
    }
  }
}

/** Markdown links and autolinks outside code, and HTML href/src attributes. */
function readmeLinks(text) {
  const prose = text.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '')
  const links = []
  for (const m of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push(m[1])
  for (const m of prose.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) links.push(m[1])
  for (const m of prose.matchAll(/<((?:https?|mailto):[^>\s]+)>/g)) links.push(m[1])
  for (const m of prose.matchAll(/\b(?:href|src)="([^"]+)"/g)) links.push(m[1])
  return links
}

function checkReadme(where, dir, pkg) {
  const path = join(ROOT, dir, 'README.md')
  if (!existsSync(path)) return fail(where, 'has no README.md')
  const text = readFileSync(path, 'utf8')
  // A library is installed into an app, a server with a binary (the relay) globally: either line counts.
  if (!text.includes(`npm install ${pkg.name}`) && !text.includes(`npm install -g ${pkg.name}`))
    fail(`${dir}/README.md`, `must show \`npm install ${pkg.name}\``)
  if (!/```(ts|js)\n[\s\S]*?from '@parley\//.test(text))
    fail(`${dir}/README.md`, 'must have a ts/js example that imports the package')
  for (const link of readmeLinks(text)) {
    if (!/^(https?|mailto):/.test(link)) {
      fail(
        `${dir}/README.md`,
        `link "${link}" is relative; npmjs.com cannot resolve it (use ${web}/blob/main/…)`,
      )
      continue
    }
    if (!link.startsWith(`${web}/`)) continue
    const m = /^\/(?:blob|tree)\/main\/([^#?]*)/.exec(link.slice(web.length))
    if (m === null) {
      if (!/^\/(issues|pulls|releases)(\/|$)/.test(link.slice(web.length))) {
        fail(
          `${dir}/README.md`,
          `link "${link}" into the repository must be ${web}/blob/main/<path> or /tree/main/<path>`,
        )
      }
      continue
    }
    const target = normalize(decodeURIComponent(m[1]))
    if (target.startsWith('..') || !existsSync(join(ROOT, target))) {
      fail(`${dir}/README.md`, `link "${link}" names ${target}, which is not in the repository`)
    }
  }
}

/** The tarball's file list, as `pnpm pack` (which `pnpm publish` uses) would make it. */
function packedFiles(dir) {
  const out = execFileSync('pnpm', ['pack', '--dry-run', '--json'], {
    cwd: join(ROOT, dir),
    encoding: 'utf8',
  })
  const json = JSON.parse(out.slice(out.indexOf('{')))
  return json.files.map((f) => f.path).sort()
}

const SHIPPED = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE$/,
  /^CHANGELOG\.md$/,
  /^dist\/.+\.(js|d\.ts)(\.map)?$/,
  // The relay's demo page, served from its build (apps/relay/scripts/copy-demo.mjs).
  /^dist\/demo\/[^/]+\.(html|css)$/,
  /^src\/.+\.ts$/,
]

function checkTarball(where, dir, pkg) {
  const files = packedFiles(dir)
  const set = new Set(files)
  for (const must of ['package.json', 'README.md', 'LICENSE'])
    if (!set.has(must)) fail(where, `tarball has no ${must}`)
  if (set.has('LICENSE') && !readFileSync(join(ROOT, dir, 'LICENSE')).equals(license)) {
    fail(where, 'LICENSE differs from the root LICENSE')
  }
  const bins = new Set(
    Object.values(typeof pkg.bin === 'string' ? { [pkg.name]: pkg.bin } : (pkg.bin ?? {})).map((b) =>
      posix.normalize(b),
    ),
  )
  const hasDeclarationMaps = files.some((f) => f.endsWith('.d.ts.map'))
  for (const file of files) {
    if (!SHIPPED.some((re) => re.test(file)) && !bins.has(file))
      fail(where, `tarball ships ${file}, which is neither code, types, maps nor sources`)
    else if (/(^|\/)(test|tests|__tests__)\/|\.(test|spec|bench)\.[cm]?[jt]s$/.test(file)) {
      fail(where, `tarball ships the test-only file ${file}`)
    }
    // Declarations come from tsc, into dist/, each with its map: one in src/ or without a map was copied there,
    // and is a second copy of types tsc also emits (or types no code has).
    if (file.startsWith('src/') && file.endsWith('.d.ts')) {
      fail(where, `tarball ships the declaration file ${file} in src/; declarations ship from dist/ only`)
    }
    if (file.startsWith('dist/') && file.endsWith('.d.ts') && hasDeclarationMaps && !set.has(`${file}.map`)) {
      fail(where, `tarball ships ${file} without ${file}.map: copied into dist/, not compiled`)
    }
    // A source nothing was compiled from is not needed by any map: test-only, or dead.
    if (file.startsWith('src/') && file.endsWith('.ts') && !file.endsWith('.d.ts')) {
      const compiled = `dist/${file.slice(4).replace(/\.ts$/, '.js')}`
      if (!set.has(compiled))
        fail(where, `tarball ships ${file} but not ${compiled} (a source outside the build)`)
    }
    if (file.endsWith('.map') && existsSync(join(ROOT, dir, file))) {
      const map = readJson(join(ROOT, dir, file))
      for (const source of map.sources ?? []) {
        const resolved = posix.normalize(posix.join(posix.dirname(file), map.sourceRoot ?? '', source))
        if (!set.has(resolved)) fail(where, `${file} points to ${resolved}, which is not in the tarball`)
      }
    }
  }
  const entries = new Set(
    // pnpm pack puts publishConfig's exports in the packed manifest (the relay's leave its workspace-only ones out).
    [
      pkg.main,
      pkg.types,
      ...exportTargets(pkg.publishConfig?.exports ?? pkg.exports).map((e) => e.target),
      ...bins,
    ].filter(Boolean),
  )
  for (const entry of entries) {
    const path = posix.normalize(entry)
    if (!set.has(path)) fail(where, `entry point ${entry} is not in the tarball (did \`pnpm build\` run?)`)
  }
  const bytes = files.reduce(
    (sum, f) => sum + (existsSync(join(ROOT, dir, f)) ? statSync(join(ROOT, dir, f)).size : 0),
    0,
  )
  return { files: files.length, bytes }
}

const sizes = []
for (const { dir, pkg } of published) {
  const where = `${dir}/package.json`
  checkFields(where, dir, pkg)
  checkDependencies(where, pkg)
  checkReadme(where, dir, pkg)
  sizes.push({ name: pkg.name, ...checkTarball(where, dir, pkg) })
}

if (problems.length > 0) {
  console.error(
    `Published packages: ${problems.length} problem(s)\n${problems.map((p) => `  - ${p}`).join('\n')}`,
  )
  process.exit(1)
}
if (!quiet) {
  for (const s of sizes)
    console.log(
      `${s.name.padEnd(20)} ${String(s.files).padStart(4)} files ${(s.bytes / 1024).toFixed(1).padStart(8)} KiB`,
    )
}
console.log(`published packages ok: ${published.map(({ pkg }) => pkg.name).join(', ')}`)
