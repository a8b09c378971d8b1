/**
 * `parley-relay backup --to <file> [--data-dir <dir>]`: an online, consistent copy of a SQLite relay's database
 * (`<dataDir>/relay.db`), taken while the relay runs ({@link SqliteStore.backupTo}), then checked (integrity
 * and counts). The key files of the data directory (`oprf-keys.json`, `relay-keys.json`) are not in it: they
 * change only at a rotation and are backed up with the operator's secrets. Restoring is copying both into a
 * fresh data directory (apps/relay/README.md, "Backup and restore").
 * @module
 */
import { chmodSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { SqliteStore } from '../SqliteStore.js'
import { operatorCommand, parseArgs, STORE_FLAGS, storeLocation, UsageError } from './options.js'

const USAGE = `Usage: parley-relay backup --to <file> [--data-dir <dir>] [--config <parley.toml>]
  copies <dir>/relay.db (SQLite) to <file>, online and consistent while the relay runs; <file> must not exist.
  oprf-keys.json and relay-keys.json are not in the copy: keep them with your secrets (apps/relay/README.md).
The data directory is the relay's: --data-dir, PARLEY_DATA_DIR, dataDir in the config file, else ./.parley-data.
For PostgreSQL use pg_dump.`

/**
 * Runs `parley-relay backup`.
 * @param args - the arguments after `backup`
 * @param env - the environment (`PARLEY_DATA_DIR`, `PARLEY_STORE`)
 * @param io - where to print
 * @returns the exit code: 0 written and checked, 1 failed, 2 usage
 * @example
 * await backupCommand(['--to', '/backups/relay-2026-01-01.db'], process.env, io) // 0
 */
export const backupCommand = operatorCommand('backup', USAGE, async (args, env, io) => {
  const { flags, positional } = parseArgs(args, ['--to', ...STORE_FLAGS])
  const to = flags.get('--to')
  if (!to || positional.length > 0) throw new UsageError('give --to <file> and nothing else')
  const { dataDir, store } = storeLocation(flags, env)
  if (store !== 'sqlite') throw new UsageError('backup copies a SQLite relay; use pg_dump for PostgreSQL')
  const source = join(dataDir, 'relay.db')
  if (!existsSync(source)) throw new Error(`no relay.db in ${dataDir} (pass --data-dir)`)
  if (existsSync(to)) throw new Error(`${to} exists; back up to a new file`)
  const db = new SqliteStore(source)
  try {
    await db.backupTo(to)
  } finally {
    await db.close()
  }
  // Account keys and ciphertext: for the operator's eyes only.
  chmodSync(to, 0o600)
  const copy = new Database(to, { readonly: true })
  try {
    const check = copy.pragma('integrity_check', { simple: true })
    if (check !== 'ok') throw new Error(`the copy in ${to} fails its integrity check`)
    const count = (sql: string) => (copy.prepare(sql).get() as { n: number }).n
    io.out(
      `backed up ${count('SELECT count(*) AS n FROM accounts')} accounts and ` +
        `${count('SELECT count(*) AS n FROM mailbox')} messages to ${to}`,
    )
  } finally {
    copy.close()
  }
  return 0
})
