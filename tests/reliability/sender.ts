// A sender in its own process, for the client-crash test: opens an already activated client from its SQLite
// store and sends `<prefix><i>` for i in [from, to). After each send() resolves (the message is in the durable
// outbox) it writes `sent <i> <id>` to stdout, synchronously, so the parent knows exactly what was "sent".
// Run: node --conditions=parley-source --import tsx sender.ts <relayUrl> <storePath> <to> <prefix> <from> <to>
// The relative import works without this package's node_modules (no install needed); @parley/node's own
// imports resolve through packages/node/node_modules with the parley-source condition.
import { writeSync } from 'node:fs'
import { createClient } from '../../packages/node/src/index.js'

const [relayUrl, storePath, recipient, prefix, fromArg, toArg] = process.argv.slice(2)
if (!relayUrl || !storePath || !recipient || prefix === undefined || !fromArg || !toArg) {
  process.stderr.write('usage: sender.ts <relayUrl> <storePath> <recipient> <prefix> <from> <to>\n')
  process.exit(2)
}
const client = await createClient({
  relayUrl,
  storePath,
  defaultRegion: 'US',
  reconnect: { minDelayMs: 50, maxDelayMs: 500 },
})
client.on('sendFailed', (e) => writeSync(2, `sendFailed ${e.id} ${e.error.code}\n`))
for (let i = Number(fromArg); i < Number(toArg); i++) {
  const { id, route } = await client.send(recipient, `${prefix}${i}`)
  if (route !== 'ip') throw new Error(`unexpected route ${route}`)
  writeSync(1, `sent ${i} ${id}\n`)
}
writeSync(1, 'all sent\n')
// Keep running until the outbox is empty, then report it; the parent may kill us at any point before.
for (;;) {
  const pending = await client.pendingCount()
  if (pending === 0) break
  await new Promise((r) => setTimeout(r, 50))
}
writeSync(1, 'outbox empty\n')
await client.close()
process.exit(0)
