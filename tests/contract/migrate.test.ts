// `parley-relay migrate` against real relay processes: users activated on a SQLite relay, with mail waiting and
// an operator's ban, are moved to a fresh PostgreSQL database; a relay started on it with the same data directory
// (the same OPRF, relay and store keys) lets them log in and read the pending mail without activating again, the
// ban holds, and a second migration into the now non-empty database is refused.
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { describeWith, probePostgres } from '../../apps/relay/test/conformance/services.js'
import { freshDatabase } from '../../apps/relay/test/freshDatabase.js'
import {
  activatedClient,
  CodeInbox,
  clientDir,
  nodeClient,
  type Relay,
  startRelay,
  until,
} from './harness.js'

const absent = await probePostgres()

describeWith('parley-relay migrate (SQLite → PostgreSQL)', [absent], () => {
  const codes = new CodeInbox()
  const dir = clientDir()
  const relays: Relay[] = []
  let db: Awaited<ReturnType<typeof freshDatabase>> | undefined
  beforeAll(async () => {
    await codes.start()
    db = await freshDatabase()
  })
  afterAll(async () => {
    for (const r of relays) await r.close()
    await codes.close()
    await db?.drop()
  })

  it('moves accounts, keys, pending mail and bans; users log in on the PostgreSQL relay without re-activating', async () => {
    const url = db!.url
    const sqlite = await startRelay(codes)
    relays.push(sqlite)
    const alice = await activatedClient(sqlite, codes, '+14155550193', { storePath: join(dir, 'a.db') })
    const bob = await activatedClient(sqlite, codes, '+14155550194', { storePath: join(dir, 'b.db') })
    await alice.send('+14155550194', 'read before the move')
    await until(async () => (await bob.history()).length === 1, 15_000, 'the first message')
    await bob.close()
    await alice.send('+14155550194', 'pending one')
    await alice.send('+14155550194', 'pending two')
    await until(async () => (await alice.pendingCount()) === 0, 15_000, 'the pending mail accepted')
    await alice.close()
    expect(sqlite.command(['admin', 'ban', '+14155550195']).status).toBe(0)
    await sqlite.stop()

    const moved = sqlite.command(['migrate', '--to', url])
    expect(moved.stderr).toBe('')
    expect(moved.status).toBe(0)
    expect(moved.stdout).toMatch(/^moved 2 accounts, 2 messages, 1 bans and 0 revoked devices from /m)
    // Into a store that holds anything: refused, and nothing changes.
    const again = sqlite.command(['migrate', '--to', url])
    expect(again.status).toBe(1)
    expect(again.stderr).toMatch(/not empty/)

    const activationsBefore = codes.calls.length
    const postgres = await startRelay(codes, ['--store', url], { dataDir: sqlite.dataDir })
    relays.push(postgres)
    expect(postgres.stdout.join('\n')).toMatch(/PostgreSQL store ready/)
    const bob2 = await nodeClient(postgres, { storePath: join(dir, 'b.db') })
    expect(bob2.activated).toBe(true)
    await until(async () => (await bob2.history()).length === 3, 20_000, 'the pending mail on PostgreSQL')
    expect((await bob2.history()).map((m) => m.text)).toEqual([
      'read before the move',
      'pending one',
      'pending two',
    ])
    const alice2 = await nodeClient(postgres, { storePath: join(dir, 'a.db') })
    await alice2.send('+14155550194', 'after the move')
    await until(async () => (await bob2.history()).length === 4, 20_000, 'mail sent on PostgreSQL')
    // The same contacts, the same sessions: no safety number changed.
    expect(await alice2.safetyNumber('+14155550194')).toBeTruthy()
    await Promise.all([alice2.close(), bob2.close()])
    expect(codes.calls.length).toBe(activationsBefore)
    const lookup = postgres.command(['admin', 'lookup', '+14155550195', '--store', url])
    expect(lookup.stdout).toMatch(/no account banned$/m)
  })
})
