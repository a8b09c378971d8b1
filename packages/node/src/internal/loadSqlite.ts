/**
 * Loads better-sqlite3 on first use: it is an optional peer dependency, needed only by apps that keep their
 * client in a SQLite file (`storePath`), so an app that brings its own store never loads a native addon.
 * @module
 */
import { createRequire } from 'node:module'
import type Database from 'better-sqlite3'

/** Loads a CommonJS module by name, as `require` does. */
export type ModuleLoader = (id: string) => unknown

/** What the message tells the developer to do; also the test's handle on it. */
export const MISSING_SQLITE_MESSAGE =
  'storePath needs the better-sqlite3 package, an optional peer dependency of @parley/node: ' +
  'install it (npm install better-sqlite3@12), or pass a store of your own'

const requireHere = createRequire(import.meta.url)

/**
 * The better-sqlite3 `Database` constructor, loaded synchronously (it is a CommonJS package, so `SqliteStore.open`
 * stays synchronous; `require` loads it once and caches it).
 * @param load - how to load it (tests inject one that fails)
 * @returns the constructor
 * @throws TypeError naming the package when it is not installed; whatever else loading it throws
 */
export function loadSqlite(load: ModuleLoader = requireHere): typeof Database {
  try {
    return load('better-sqlite3') as typeof Database
  } catch (err) {
    // Only the package's own absence is the app's setup to fix; a missing file inside it is a broken install.
    if (isNotFound(err) && String((err as Error).message).includes("'better-sqlite3'")) {
      throw new TypeError(MISSING_SQLITE_MESSAGE, { cause: err })
    }
    throw err
  }
}

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND'
}
