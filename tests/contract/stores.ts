// The stores a contract suite runs on: SQLite always, and PostgreSQL + Redis (the scale-out setup) when both answer
// — with PARLEY_REQUIRE_SERVICES=1, as in CI, their absence fails the run instead of skipping.
import { randomBytes } from 'node:crypto'
import { describe } from 'vitest'
import {
  describeWith,
  PG_URL,
  probePostgres,
  probeRedis,
  REDIS_URL,
  uniqueName,
} from '../../apps/relay/test/conformance/services.js'

const absent = [await probePostgres(), await probeRedis()]

/** Relay flags for a fresh PostgreSQL schema, a fresh Redis key prefix and a random number-hash key. */
export function pgRedisArgs(name: string): string[] {
  return [
    '--store',
    `${PG_URL}?schema=${uniqueName(name)}`,
    '--redis',
    `${REDIS_URL}?prefix=${uniqueName(name)}:`,
    '--number-hash-key',
    randomBytes(32).toString('hex'),
  ]
}

/**
 * Registers `suite` twice: given no store flags (SQLite), and given {@link pgRedisArgs} (PostgreSQL + Redis).
 * @param title - the describe title; the store is appended in parentheses
 */
export function onEveryStore(title: string, suite: (storeArgs: string[]) => void): void {
  describe(`${title} (SQLite)`, () => suite([]))
  describeWith(`${title} (PostgreSQL + Redis)`, absent, () => suite(pgRedisArgs('contract')))
}
