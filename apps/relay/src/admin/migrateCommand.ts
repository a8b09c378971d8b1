/**
 * `parley-relay migrate --from <data-dir> --to <postgres-url>`: moves a SQLite relay to PostgreSQL without any
 * user activating again. The SQLite database is read in one transaction ({@link SqliteStore.openSnapshot}) and
 * written into the empty PostgreSQL store in one transaction ({@link PostgresStore.importSnapshot}), sealed
 * under the store key of `<data-dir>/store-key.json` (created if missing), which the PostgreSQL relay then uses
 * with the same `oprf-keys.json` and `relay-keys.json`. Stop the SQLite relay first: mail it accepts after the
 * read began is not moved.
 * @module
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { PostgresStore } from '../PostgresStore.js'
import { SqliteStore } from '../SqliteStore.js'
import { isPostgresUrl, redactUrl } from '../scaleOut.js'
import { openStoreKeyFile } from '../storeKeyFile.js'
import { operatorCommand, parseArgs, UsageError } from './options.js'

const USAGE = `Usage: parley-relay migrate --from <data-dir> --to postgres://…[?schema=<name>]   (--data-dir = --from)
  copies every account (keys, prekeys, mail, gaps, registration locks, retained mail) and the operator's bans
  and revocations from <data-dir>/relay.db into an empty PostgreSQL store, in one consistent read and one
  transaction; refused when the target holds anything. Stop the SQLite relay first, then start the relay with
  --data-dir <data-dir> --store <url>: the same OPRF, relay and store keys (store-key.json is created in
  <data-dir> if missing); devices log in and read their mail without activating again.`

/**
 * Runs `parley-relay migrate`.
 * @param args - the arguments after `migrate`
 * @param _env - the environment (unused: both ends are named on the command line)
 * @param io - where to print
 * @returns the exit code: 0 moved, 1 failed (nothing written to the target), 2 usage
 * @example
 * await migrateCommand(['--from', './.parley-data', '--to', 'postgres://relay@db/parley'], process.env, io) // 0
 */
export const migrateCommand = operatorCommand('migrate', USAGE, async (args, _env, io) => {
  const { flags, positional } = parseArgs(args, ['--from', '--data-dir', '--to'])
  // --data-dir is --from under the relay's own name for it.
  const from = flags.get('--from') ?? flags.get('--data-dir')
  if (flags.has('--from') && flags.has('--data-dir') && flags.get('--from') !== flags.get('--data-dir')) {
    throw new UsageError('--from and --data-dir name two directories; give one')
  }
  const to = flags.get('--to')
  if (!from || !to || positional.length > 0)
    throw new UsageError('give --from <data-dir> and --to <postgres-url>')
  if (!isPostgresUrl(to)) throw new UsageError('--to must be a postgres:// URL')
  const path = join(from, 'relay.db')
  if (!existsSync(path)) throw new Error(`no relay.db in ${from}`)
  // Brings an older file to this relay's schema first (the read below is read-only).
  await new SqliteStore(path).close()
  const target = await PostgresStore.open({ url: to, storeKey: openStoreKeyFile(from), maxConnections: 2 })
  try {
    const snapshot = SqliteStore.openSnapshot(path)
    try {
      const { accounts, messages } = await target.importSnapshot(snapshot)
      io.out(
        `moved ${accounts} accounts, ${messages} messages, ${snapshot.bans.length} bans and ` +
          `${snapshot.revoked.length} revoked devices from ${path} to ${redactUrl(to)}`,
      )
      io.out(`now start the relay with --data-dir ${from} --store <the same URL>`)
    } finally {
      snapshot.close()
    }
  } finally {
    await target.close()
  }
  return 0
})
