// `pnpm bench`: every bench in one go, each in its own process (so one's heap and sockets do not skew the
// next), then one table of every figure with its baseline from this run. Each also runs alone.
// Run: pnpm bench [--quick]   (or: cd bench && npx tsx all.ts)
import { readFileSync } from 'node:fs'
import { machine, RESULTS, type Row, runScript, table } from './lib.js'

const quick = process.argv.includes('--quick') ? ['--quick'] : []
const BENCHES = [
  'crypto.ts',
  'relay.ts',
  'discovery.ts',
  'connections.ts',
  'bundle.ts',
  'abuse.ts',
  'fanout.ts',
  'attachments.ts',
  'groups.ts',
]
const failed: string[] = []
const ran: string[] = []
for (const file of BENCHES) {
  console.log(`\n── ${file} ${'─'.repeat(60)}`)
  try {
    await runScript(file, quick, [], true).done
    ran.push(file.replace(/\.ts$/, ''))
  } catch (err) {
    failed.push(file)
    console.error(String(err))
  }
}
const results = JSON.parse(readFileSync(RESULTS, 'utf8')) as {
  benches: Record<string, { rows: Row[]; notes: string[] }>
}
const rows = ran.flatMap((b) => results.benches[b]?.rows ?? [])
console.log(`\n── all benches (${JSON.stringify(machine())}) ──\n`)
console.log(table(rows))
for (const b of ran) for (const n of results.benches[b]?.notes ?? []) console.log(`  ${b}: ${n}`)
console.log(`\nwritten to ${RESULTS}`)
if (failed.length > 0) {
  console.error(`failed: ${failed.join(', ')}`)
  process.exit(1)
}
