// Which external engines this run can use. Tests that need PostgreSQL or Redis skip, with a printed reason, when
// the service does not answer within a second — unless PARLEY_REQUIRE_SERVICES=1 (set by .ci/run), which turns
// an absent service into a failing test.
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import pg from 'pg'
import { describe, it } from 'vitest'

/** PostgreSQL for tests (a database the tests may create schemas in). */
export const PG_URL = process.env.PARLEY_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
/** Redis for tests (keys are always under a fresh prefix). */
export const REDIS_URL = process.env.PARLEY_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'
/** Whether an absent service fails the run instead of skipping. */
export const REQUIRE_SERVICES = process.env.PARLEY_REQUIRE_SERVICES === '1'

/** Resolves null when PostgreSQL answers, else why not. */
export async function probePostgres(url = PG_URL): Promise<string | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.query('SELECT 1')
    return null
  } catch (err) {
    return `PostgreSQL at ${url} is not reachable (${(err as Error).message || (err as Error).name})`
  } finally {
    await client.end().catch(() => {})
  }
}

/** Resolves null when Redis answers PING, else why not. */
export function probeRedis(url = REDIS_URL): Promise<string | null> {
  const u = new URL(url)
  return new Promise((resolve) => {
    const socket = connect({ host: u.hostname, port: Number(u.port || 6379) })
    const done = (reason: string | null) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(reason)
    }
    const timer = setTimeout(() => done(`Redis at ${url} did not answer within 1 s`), 1000)
    socket.once('error', (err) => done(`Redis at ${url} is not reachable (${err.message})`))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (d) =>
      done(
        d.toString().startsWith('+PONG') ? null : `Redis at ${url} answered ${JSON.stringify(d.toString())}`,
      ),
    )
  })
}

/**
 * `describe` that runs only when every named service is up: otherwise it prints the reason and skips, or, with
 * PARLEY_REQUIRE_SERVICES=1, registers one failing test that says what is missing.
 */
export function describeWith(name: string, absent: (string | null)[], body: () => void): void {
  const reasons = absent.filter((r): r is string => r !== null)
  if (reasons.length === 0) {
    describe(name, body)
    return
  }
  if (REQUIRE_SERVICES) {
    describe(name, () => {
      it('has the services it needs (PARLEY_REQUIRE_SERVICES=1)', () => {
        throw new Error(`${reasons.join('; ')} — required because PARLEY_REQUIRE_SERVICES=1`)
      })
    })
    return
  }
  console.warn(`skipping "${name}": ${reasons.join('; ')} (set PARLEY_REQUIRE_SERVICES=1 to fail instead)`)
  describe.skip(name, body)
}

/** A fresh lower-case identifier, for a schema or key prefix no other test uses. */
export const uniqueName = (kind: string) =>
  `parley_${kind}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`

/** Resolves when `predicate` holds, polling; rejects after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const start = Date.now()
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}
