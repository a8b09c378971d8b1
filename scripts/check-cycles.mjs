#!/usr/bin/env node
// Fails when a source file of a package reaches itself through its relative imports — runtime or type-only,
// static, re-exported or dynamic. A cycle is a structure bug: one side should depend on an interface the other
// implements (see apps/relay/src/handlers/scope.ts). Usage: node scripts/check-cycles.mjs [dir …]
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

const ROOTS = process.argv.slice(2).length
  ? process.argv.slice(2)
  : [
      'packages/protocol/src',
      'packages/client/src',
      'packages/node/src',
      'packages/browser/src',
      'apps/relay/src',
    ]

/** Every .ts file under `dir` (generated code and tests included: they may import in cycles too). */
function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : files(path)
    return /\.(ts|mts)$/.test(name) && !name.endsWith('.d.ts') ? [path] : []
  })
}

// import … from '…' | export … from '…' | import '…' | import('…'), across line breaks; comments removed first.
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g

/** The relative imports of a file, resolved to files (a `.js` specifier names the `.ts` source). */
function importsOf(file) {
  const text = readFileSync(file, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:'"`])\/\/.*$/gm, '$1')
  const out = []
  for (const [, spec] of text.matchAll(SPECIFIER)) {
    const base = resolve(dirname(file), spec)
    const candidates = [
      base.replace(/\.m?js$/, '.ts'),
      base.replace(/\.mjs$/, '.mts'),
      `${base}.ts`,
      join(base, 'index.ts'),
    ]
    const hit = candidates.find((c) => existsSync(c) && statSync(c).isFile())
    if (hit) out.push(hit)
  }
  return out
}

const cycles = []
for (const root of ROOTS) {
  const graph = new Map(files(resolve(root)).map((f) => [f, importsOf(f)]))
  const state = new Map() // 1: on the current path, 2: done
  const path = []
  const visit = (f) => {
    state.set(f, 1)
    path.push(f)
    for (const g of graph.get(f) ?? []) {
      if (!graph.has(g)) continue
      if (state.get(g) === 1)
        cycles.push([...path.slice(path.indexOf(g)), g].map((p) => relative(resolve(root), p)))
      else if (!state.has(g)) visit(g)
    }
    path.pop()
    state.set(f, 2)
  }
  for (const f of graph.keys()) if (!state.has(f)) visit(f)
  if (cycles.length === 0) console.log(`${root}: ${graph.size} files, no import cycle`)
}
if (cycles.length > 0) {
  for (const c of cycles) console.error(`import cycle: ${c.join(' → ')}`)
  process.exit(1)
}
