// Copies the generated protobufjs module (plain JS + .d.ts) into dist/gen after `tsc`, which does not emit it.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const from = join(process.cwd(), 'src', 'gen')
const to = join(process.cwd(), 'dist', 'gen')
mkdirSync(to, { recursive: true })
for (const f of readdirSync(from)) copyFileSync(join(from, f), join(to, f))
