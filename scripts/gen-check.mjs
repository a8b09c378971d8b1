// CI drift check: regenerating from proto/ must change nothing that is checked in.
import { execFileSync } from 'node:child_process'

execFileSync('pnpm', ['--filter', '@parley/protocol', 'gen'], { stdio: 'inherit' })
const status = execFileSync(
  'git',
  ['status', '--porcelain', '--', 'packages/protocol/src/gen', 'packages/protocol/test/gen'],
  {
    encoding: 'utf8',
  },
)
if (status.trim() !== '') {
  console.error(
    `Generated code is out of date with proto/. Run \`pnpm gen\` and commit the result:\n${status}`,
  )
  execFileSync(
    'git',
    ['--no-pager', 'diff', '--stat', '--', 'packages/protocol/src/gen', 'packages/protocol/test/gen'],
    {
      stdio: 'inherit',
    },
  )
  process.exit(1)
}
console.log('generated code matches proto/')
