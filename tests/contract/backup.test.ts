// The SQLite backup and restore procedure of apps/relay/README.md ("Backup and restore"), against real relay
// processes: `parley-relay backup --to <file>` beside the running relay, the relay stopped, a fresh data directory
// made of the copy and the two key files, a relay started on it; the users log in without activating again and
// read the mail that was waiting for them.
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { backupCommand } from '../../apps/relay/src/admin/backupCommand.js'
import {
  activatedClient,
  CodeInbox,
  clientDir,
  nodeClient,
  type Relay,
  startRelay,
  until,
} from './harness.js'

describe('parley-relay backup and restore (SQLite)', () => {
  const codes = new CodeInbox()
  const dir = clientDir()
  const backups = mkdtempSync(join(tmpdir(), 'parley-backup-'))
  const relays: Relay[] = []
  beforeAll(() => codes.start())
  afterAll(async () => {
    for (const r of relays) await r.close()
    await codes.close()
    rmSync(backups, { recursive: true, force: true })
  })

  it('backs up a live relay; a relay restored from the copy serves the same users and their pending mail', async () => {
    const live = await startRelay(codes)
    relays.push(live)
    const alice = await activatedClient(live, codes, '+14155550191', { storePath: join(dir, 'a.db') })
    const bob = await activatedClient(live, codes, '+14155550192', { storePath: join(dir, 'b.db') })
    await bob.close()
    await alice.send('+14155550192', 'waiting in the backup')
    await until(async () => (await alice.pendingCount()) === 0, 15_000, 'the message accepted')

    const file = join(backups, 'relay-backup.db')
    const backup = live.command(['backup', '--to', file])
    expect(backup.stderr).toBe('')
    expect(backup.status).toBe(0)
    expect(backup.stdout).toMatch(/^backed up 2 accounts and 1 messages to /m)
    expect(statSync(file).mode & 0o077).toBe(0)
    // A second backup to the same file is refused, the first left as it was.
    const again = live.command(['backup', '--to', file])
    expect(again.status).toBe(1)
    expect(again.stderr).toMatch(/exists/)
    // Mail after the backup is not in it.
    await alice.send('+14155550192', 'after the backup')
    await until(async () => (await alice.pendingCount()) === 0, 15_000, 'the second message accepted')
    await alice.close()
    await live.stop()

    // The restore procedure: a fresh data directory with the copy as relay.db and the two key files.
    const restoredDir = mkdtempSync(join(tmpdir(), 'parley-restored-'))
    copyFileSync(file, join(restoredDir, 'relay.db'))
    for (const keys of ['oprf-keys.json', 'relay-keys.json']) {
      copyFileSync(join(live.dataDir, keys), join(restoredDir, keys))
    }
    const restored = await startRelay(codes, [], { dataDir: restoredDir })
    relays.push(restored)
    try {
      const bob2 = await nodeClient(restored, { storePath: join(dir, 'b.db') })
      expect(bob2.activated).toBe(true)
      await until(async () => (await bob2.history()).length === 1, 20_000, 'the mail from the backup')
      expect((await bob2.history()).map((m) => m.text)).toEqual(['waiting in the backup'])
      const alice2 = await nodeClient(restored, { storePath: join(dir, 'a.db') })
      await alice2.send('+14155550192', 'after the restore')
      await until(async () => (await bob2.history()).length === 2, 20_000, 'mail sent after the restore')
      await Promise.all([alice2.close(), bob2.close()])
    } finally {
      await restored.stop()
      rmSync(restoredDir, { recursive: true, force: true })
    }
  })

  it('refuses a PostgreSQL store, a data directory without relay.db and junk arguments with a clear message', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'parley-empty-'))
    const lines: string[] = []
    const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l), stdin: async () => '' }
    const to = join(backups, 'x.db')
    expect(await backupCommand(['--to', to, '--store', 'postgres://h/db'], {}, io)).toBe(2)
    expect(lines.join('\n')).toMatch(/pg_dump/)
    expect(await backupCommand([], {}, io)).toBe(2)
    expect(await backupCommand(['--to', to, '--frobnicate'], {}, io)).toBe(2)
    lines.length = 0
    expect(await backupCommand(['--to', to], { PARLEY_DATA_DIR: empty }, io)).toBe(1)
    expect(lines.join('\n')).toMatch(/no relay\.db in /)
    expect(existsSync(to)).toBe(false)
    expect(existsSync(join(empty, 'relay.db'))).toBe(false)
    rmSync(empty, { recursive: true, force: true })
  })
})
