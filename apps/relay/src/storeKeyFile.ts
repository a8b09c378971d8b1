/**
 * The PostgreSQL store key (`PostgresStoreOptions.storeKey`): 32 random bytes generated on first start and
 * kept in `<dataDir>/store-key.json` (mode 0600), like the OPRF key file and for the same reason — it must not be
 * in the database it protects. Every node over one database needs the same file; a node started with another
 * one is refused by the store (a check value in the database).
 * @module
 */
import { randomBytes } from 'node:crypto'
import { linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

interface KeyFile {
  version: 1
  /** 64 hex digits. */
  key: string
}

/** The file name in the data directory. */
export const STORE_KEY_FILE = 'store-key.json'

/**
 * Loads the store key from a data directory, creating it with a fresh key on first start. Two nodes creating
 * it at once over a shared directory end with one file: it is linked into place only if absent.
 * @param warn - called when the file is readable by others
 * @throws Error when the file exists but is not a valid store key file
 */
export function openStoreKeyFile(dataDir: string, warn: (msg: string) => void = () => {}): Uint8Array {
  const path = join(dataDir, STORE_KEY_FILE)
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  const file: KeyFile = { version: 1, key: randomBytes(32).toString('hex') }
  writeFileSync(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 })
  try {
    linkSync(tmp, path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  } finally {
    unlinkSync(tmp)
  }
  if ((statSync(path).mode & 0o077) !== 0) {
    warn(`${STORE_KEY_FILE} is readable by other users; chmod 600 it`)
  }
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<KeyFile>
  if (parsed.version !== 1 || typeof parsed.key !== 'string' || !/^[0-9a-f]{64}$/.test(parsed.key)) {
    throw new Error(`${path} is not a valid store key file`)
  }
  return new Uint8Array(Buffer.from(parsed.key, 'hex'))
}
