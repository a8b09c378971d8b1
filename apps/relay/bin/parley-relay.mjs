#!/usr/bin/env node
// Runs the relay from its TypeScript source (no build step): re-executes Node with the `parley-source`
// export condition and the tsx loader, forwarding arguments and signals.
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const child = spawn(
  process.execPath,
  [
    '--conditions=parley-source',
    '--import',
    import.meta.resolve('tsx'),
    join(root, 'src/cli.ts'),
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit', cwd: process.cwd() },
)
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => child.kill(signal))
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
