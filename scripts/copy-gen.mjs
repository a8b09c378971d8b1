// Copies the generated files tsc does not emit (schema.json) into dist/gen after `tsc`.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const from = join(process.cwd(), 'src', 'gen')
const to = join(process.cwd(), 'dist', 'gen')
mkdirSync(to, { recursive: true })
for (const f of readdirSync(from)) {
  if (f.endsWith('.d.ts') || !f.endsWith('.ts')) copyFileSync(join(from, f), join(to, f))
}
