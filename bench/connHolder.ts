// Child process of connections.ts: opens and authenticates connections for a slice of the seeded accounts,
// prints "ready <n>", and holds them idle until killed. Args: url keysFile start count
import { createPrivateKey, sign } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { authPayload } from '@parley/protocol'
import { RawClient } from './rawClient.js'

const [url, file, start, count] = process.argv.slice(2) as [string, string, string, string]
const accounts = (JSON.parse(readFileSync(file, 'utf8')) as { address: string; pkcs8: string }[]).slice(
  Number(start),
  Number(start) + Number(count),
)
const held: RawClient[] = []
let failed = 0
const CONCURRENCY = 50
let next = 0
async function worker() {
  while (next < accounts.length) {
    const a = accounts[next++]!
    try {
      const c = await RawClient.open(url)
      const address = new Uint8Array(Buffer.from(a.address, 'hex'))
      const key = createPrivateKey({ key: Buffer.from(a.pkcs8, 'hex'), format: 'der', type: 'pkcs8' })
      await c.request({
        authenticate: {
          address,
          deviceId: 1,
          signature: new Uint8Array(sign(null, authPayload(c.nonce, address, 1, c.trustRoot), key)),
        },
      })
      held.push(c)
    } catch (err) {
      if (failed++ === 0) console.error(String(err))
    }
  }
}
await Promise.all(Array.from({ length: CONCURRENCY }, worker))
console.log(`ready ${held.length} failed ${failed}`)
process.on('SIGTERM', () => process.exit(0))
setInterval(() => {}, 1 << 30)
