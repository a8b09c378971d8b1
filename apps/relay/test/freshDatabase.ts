// A fresh PostgreSQL database for one test run (`parley_ops_<random>` on the test server), dropped afterwards:
// for tests of tools that take a whole database (`parley-relay migrate`), where a schema is not enough.
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { PG_URL } from './conformance/services.js'

/** `PG_URL` with another database name. */
export function databaseUrl(database: string): string {
  const u = new URL(PG_URL)
  u.pathname = `/${database}`
  return u.toString()
}

/**
 * Creates a database of a fresh name.
 * @returns its URL, and `drop()` (forcing out connections left open)
 */
export async function freshDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `parley_ops_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: databaseUrl('postgres') })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  return {
    url: databaseUrl(name),
    async drop() {
      const c = new pg.Client({ connectionString: databaseUrl('postgres') })
      await c.connect()
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await c.end()
      }
    },
  }
}
