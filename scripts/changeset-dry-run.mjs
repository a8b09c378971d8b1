#!/usr/bin/env node
// `changeset version` on a scratch copy of the working tree (tracked and untracked files, not ignored ones), so
// CI learns that the next release can be cut without cutting it. Fails when changesets fails, when a changeset
// is left unconsumed, when the fixed SDK group ends on different versions, when an ignored package is not
// private, or when a private package was versioned that no changeset names (a test suite or bench bumped as a
// dependent: it belongs in `ignore`). Prints the release plan (old -> new version per package). Usage:
// node scripts/changeset-dry-run.mjs [--keep]   (--keep leaves the scratch copy and prints its path)
import { execFileSync } from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const keep = process.argv.includes('--keep')
const cli = join(ROOT, 'node_modules', '@changesets', 'cli', 'bin.js')
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'))
const git = (args, cwd) =>
  execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

const scratch = mkdtempSync(join(tmpdir(), 'parley-changeset-'))
const problems = []
try {
  const files = git(['ls-files', '-z', '--cached', '--others', '--exclude-standard'], ROOT).split('\0')
  for (const file of files) {
    if (file === '' || !existsSync(join(ROOT, file))) continue // deleted in the working tree
    mkdirSync(dirname(join(scratch, file)), { recursive: true })
    cpSync(join(ROOT, file), join(scratch, file))
  }
  symlinkSync(join(ROOT, 'node_modules'), join(scratch, 'node_modules'), 'dir')
  // The changelog generator asks git which commit added each changeset: give it one.
  git(['init', '-q', '-b', 'main'], scratch)
  git(['add', '-A'], scratch)
  git(
    ['-c', 'user.name=dry run', '-c', 'user.email=dry-run@invalid', 'commit', '-q', '-m', 'scratch'],
    scratch,
  )

  const dirs = files.filter((f) => f.endsWith('package.json') && !f.includes('node_modules')).map(dirname)
  const before = new Map(dirs.map((d) => [d, readJson(join(scratch, d, 'package.json'))]))
  const pending = readdirSync(join(scratch, '.changeset')).filter(
    (f) => f.endsWith('.md') && f !== 'README.md',
  )
  // The packages the changesets name (their front matter: `"name": bump` lines).
  const named = new Set()
  for (const f of pending) {
    const text = readFileSync(join(scratch, '.changeset', f), 'utf8')
    const front = /^---\n([\s\S]*?)\n---/.exec(text)?.[1] ?? ''
    for (const m of front.matchAll(/^\s*["']?([^"':]+)["']?\s*:/gm)) named.add(m[1].trim())
  }

  execFileSync(process.execPath, [cli, 'version'], {
    cwd: scratch,
    stdio: 'inherit',
    env: { ...process.env, CI: 'true' },
  })

  const left = readdirSync(join(scratch, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md')
  if (left.length > 0) problems.push(`changesets left unconsumed: ${left.join(', ')}`)
  const config = readJson(join(scratch, '.changeset', 'config.json'))
  const plan = []
  const versionOf = new Map()
  for (const [dir, old] of before) {
    const now = readJson(join(scratch, dir, 'package.json'))
    versionOf.set(old.name, now.version)
    if (now.version === old.version) continue
    plan.push(`${old.name.padEnd(28)} ${old.version} -> ${now.version}${old.private ? ' (private)' : ''}`)
    if (old.private && config.privatePackages?.version === false) {
      problems.push(`private ${old.name} was versioned`)
    } else if (old.private && !named.has(old.name)) {
      problems.push(`private ${old.name} was versioned only as a dependent of a released package: ignore it`)
    }
    if (!existsSync(join(scratch, dir, 'CHANGELOG.md'))) problems.push(`${old.name} has no CHANGELOG.md`)
  }
  for (const name of config.ignore ?? []) {
    const pkg = [...before.values()].find((p) => p.name === name)
    if (pkg !== undefined && pkg.private !== true)
      problems.push(`${name} is ignored but not private: it would never be released`)
  }
  for (const group of config.fixed ?? []) {
    const versions = new Set(group.map((name) => versionOf.get(name)))
    if (versions.size > 1)
      problems.push(`fixed group ${group.join(', ')} ends on versions ${[...versions].join(', ')}`)
  }
  console.log(`\nchangeset version (dry run): ${pending.length} changesets`)
  console.log(plan.length > 0 ? plan.join('\n') : 'nothing to release')
} catch (err) {
  problems.push(err instanceof Error ? err.message : String(err))
} finally {
  if (keep) console.log(`scratch copy kept: ${scratch}`)
  else rmSync(scratch, { recursive: true, force: true })
}
if (problems.length > 0) {
  console.error(`changeset version dry run failed:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
  process.exit(1)
}
