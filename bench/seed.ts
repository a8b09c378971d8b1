// Seeds registered accounts straight into a relay's SQLite store (created and migrated by the relay's own
// SqliteStore first), far faster than activating them one by one. Seeded rows carry 32-byte stand-ins for the
// prekeys (a real ML-KEM-768 key is 1,184 bytes): the benches never fetch them, and a million real ones would
// make a 1.3 GB file. Only the address (discovery) and the identity key (authentication) matter.
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { SqliteStore } from '../apps/relay/src/SqliteStore.js'

/** Inserts one account per address; `identityKeys[i]` (32 bytes) or a random one. */
export async function seedAccounts(
  dataDir: string,
  addresses: Iterable<Uint8Array>,
  identityKeys?: Uint8Array[],
) {
  await new SqliteStore(join(dataDir, 'relay.db')).close() // creates the file with the relay's schema
  const db = new Database(join(dataDir, 'relay.db'))
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = OFF')
  const insert = db.prepare(
    `INSERT INTO accounts (address, device_id, identity_key, signed_prekey_id, signed_prekey, signed_prekey_sig,
       kem_prekey_id, kem_prekey, kem_prekey_sig, created_at_ms) VALUES (?, 1, ?, 1, ?, ?, 1, ?, ?, ?)`,
  )
  const stand = randomBytes(64)
  const key32 = stand.subarray(0, 32)
  const now = Date.now()
  let i = 0
  const batch: Buffer[] = []
  const flush = db.transaction((rows: Buffer[]) => {
    for (const a of rows) {
      const id = identityKeys?.[i] ? Buffer.from(identityKeys[i]!) : key32
      insert.run(a, id, key32, stand, key32, stand, now)
      i++
    }
  })
  for (const a of addresses) {
    batch.push(Buffer.from(a))
    if (batch.length === 50_000) flush(batch.splice(0))
  }
  flush(batch.splice(0))
  db.pragma('wal_checkpoint(TRUNCATE)')
  db.close()
  return i
}
