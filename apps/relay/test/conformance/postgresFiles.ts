// PostgreSQL's own files, for at-rest scans of what a relay on PostgreSQL leaves on disk: a scratch database
// (its files are `base/<oid>/` of the data directory), CHECKPOINT, and the WAL segments written since a point
// (shared by every database of the server: scan them only for values of your own scenario).
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { PG_URL, uniqueName } from './services.js'

/** Runs one statement on `url` on a connection of its own. */
export async function pgQuery<T extends pg.QueryResultRow>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  client.on('error', () => {})
  await client.connect()
  try {
    return (await client.query<T>(sql, params)).rows
  } finally {
    await client.end()
  }
}

/**
 * Where the server's data directory is (`PARLEY_TEST_POSTGRES_DATA_DIR`, else the server's `data_directory`
 * setting, which needs a superuser or pg_read_all_settings), or why this process cannot read its database
 * files and WAL there — e.g. PostgreSQL on another host or in a container, or not running as root or postgres.
 */
export async function probePostgresFiles(url = PG_URL): Promise<{ dataDir: string } | { absent: string }> {
  let dataDir = process.env.PARLEY_TEST_POSTGRES_DATA_DIR
  if (!dataDir) {
    try {
      dataDir = (await pgQuery<{ d: string }>(url, "SELECT current_setting('data_directory') AS d"))[0]!.d
    } catch (err) {
      return {
        absent: `cannot ask PostgreSQL at ${url} for its data directory (${(err as Error).message}); set PARLEY_TEST_POSTGRES_DATA_DIR`,
      }
    }
  }
  try {
    readdirSync(join(dataDir, 'base'))
    readdirSync(join(dataDir, 'pg_wal'))
  } catch (err) {
    return {
      absent: `cannot read PostgreSQL's data directory ${dataDir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): run on the database host as root or postgres, or set PARLEY_TEST_POSTGRES_DATA_DIR`,
    }
  }
  return { dataDir }
}

/** A database of its own, dropped by {@link drop}. */
export interface ScratchDatabase {
  name: string
  /** The connection URL of the database (the admin URL with its database name replaced). */
  url: string
  /** `pg_database.oid`: its files are `base/<oid>/` of the data directory. */
  oid: number
  drop(): Promise<void>
}

/** Creates a fresh database on the server of `adminUrl`. */
export async function createScratchDatabase(kind: string, adminUrl = PG_URL): Promise<ScratchDatabase> {
  const name = uniqueName(kind)
  await pgQuery(adminUrl, `CREATE DATABASE ${name}`)
  const oid = Number(
    (await pgQuery<{ oid: string }>(adminUrl, 'SELECT oid FROM pg_database WHERE datname = $1', [name]))[0]!
      .oid,
  )
  const u = new URL(adminUrl)
  u.pathname = `/${name}`
  return {
    name,
    url: u.toString(),
    oid,
    drop: async () => {
      await pgQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    },
  }
}

/** Writes every dirty buffer of the server out to its files (and starts a new WAL redo point). */
export async function checkpoint(adminUrl = PG_URL): Promise<void> {
  await pgQuery(adminUrl, 'CHECKPOINT')
}

/** The name of the WAL segment being written now. */
export async function currentWalSegment(adminUrl = PG_URL): Promise<string> {
  return (await pgQuery<{ f: string }>(adminUrl, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS f'))[0]!.f
}

/** Every regular file of a database's directory, `base/<oid>/` (tables, indexes, TOAST, free-space maps). */
export function databaseFiles(dataDir: string, oid: number): string[] {
  const dir = join(dataDir, 'base', String(oid))
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(dir, e.name))
}

/**
 * The WAL segments from `first` on, in order — including the recycled ones PostgreSQL renamed ahead of the write
 * position, which keep their old contents until they are written again.
 */
export function walSegmentsFrom(dataDir: string, first: string): string[] {
  const dir = join(dataDir, 'pg_wal')
  return readdirSync(dir)
    .filter((f) => /^[0-9A-F]{24}$/.test(f) && f >= first)
    .sort()
    .map((f) => join(dir, f))
}

/** Reads files one at a time (segments are 16 MiB each: never all in memory at once). */
export function* eachFile(paths: string[], label: (path: string) => string): Generator<[string, Uint8Array]> {
  for (const path of paths) {
    let data: Uint8Array
    try {
      data = new Uint8Array(readFileSync(path))
    } catch (err) {
      // A segment removed or a relation dropped between the listing and the read: nothing left to scan.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw err
    }
    yield [label(path), data]
  }
}
