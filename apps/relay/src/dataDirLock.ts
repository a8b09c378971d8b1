/**
 * One relay per SQLite data directory: `<dataDir>/relay.lock` holds the owner's pid and the time the kernel
 * started it. A second relay is refused while that process lives; a lock left by a killed process (its pid gone,
 * or reused by another process since, which then started later) is taken over, so a crash never blocks a restart.
 *
 * A lock file is never rewritten: it is written whole beside the lock and linked into place (which fails if a
 * lock is there), and removed by its owner at release or, when stale, by the one relay that claimed its takeover
 * (`relay.lock.<inode>.takeover-<n>`, linked into place the same way). Of relays starting at once over a stale
 * lock, only that claimant removes it, after looking once more that it is still the same file and still stale;
 * the others are refused while the claimant lives. (Moving the stale lock aside and back instead lets a relay that
 * read it before another took over move the new lock away while a third takes the lock: two holders.)
 * @module
 */
import { closeSync, fstatSync, linkSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ParleyError } from '@parley/protocol'

/** The lock file's name in the data directory. */
export const LOCK_FILE = 'relay.lock'

interface LockRecord {
  pid: number
  /** The owner's start time from `/proc/<pid>/stat` (clock ticks since boot); `null` where there is no /proc. */
  started: string | null
}

/** A process's start time (field 22 of `/proc/<pid>/stat`), which tells it from a later process with its pid. */
function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) is in parentheses and may hold spaces; the fields after it are plain.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null
  } catch {
    return null
  }
}

/** Whether the process that wrote `record` still runs. */
function holderAlive(record: LockRecord): boolean {
  // Our own pid, in a lock this process does not hold: a previous run in this pid namespace (a container's pid 1).
  if (record.pid === process.pid) return false
  try {
    process.kill(record.pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  const started = startTimeOf(record.pid)
  return record.started === null || started === null || started === record.started
}

function parseRecord(text: string): LockRecord | null {
  try {
    const r = JSON.parse(text) as Partial<LockRecord>
    if (Number.isSafeInteger(r.pid) && (r.pid as number) > 0)
      return { pid: r.pid as number, started: typeof r.started === 'string' ? r.started : null }
  } catch {}
  return null
}

function readRecord(path: string): LockRecord | null {
  try {
    return parseRecord(readFileSync(path, 'utf8'))
  } catch {
    return null
  }
}

/**
 * The file at `path` (its inode, and its record read through the same descriptor, so both are of one file);
 * `null` when there is none. `record` is `null` for a file that holds no record (cut short by an older relay).
 */
function openLock(path: string): { inode: string; record: LockRecord | null } | null {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  try {
    return {
      inode: fstatSync(fd, { bigint: true }).ino.toString(),
      record: parseRecord(readFileSync(fd, 'utf8')),
    }
  } finally {
    closeSync(fd)
  }
}

function conflict(holder: LockRecord, dataDir: string): ParleyError {
  return new ParleyError(
    'CONFLICT',
    `another relay (pid ${holder.pid}) is using the data directory ${dataDir}; stop it, or give this one its own --data-dir`,
  )
}

/** Lock files this process holds: a relay started twice in one process is refused too. */
const held = new Set<string>()

/** A held lock; {@link release} removes it. */
export interface DataDirLock {
  readonly path: string
  release(): void
}

/**
 * Takes the data directory's lock.
 * @param dataDir - an existing directory
 * @returns the lock, to release at shutdown
 * @throws ParleyError `CONFLICT` when a running relay holds it (the message names its pid and the directory)
 * @example
 * const lock = lockDataDir('/var/lib/parley-relay')
 * // … serve …
 * lock.release()
 */
export function lockDataDir(dataDir: string): DataDirLock {
  const path = join(dataDir, LOCK_FILE)
  const mine: LockRecord = { pid: process.pid, started: startTimeOf(process.pid) }
  if (held.has(path)) {
    throw new ParleyError('CONFLICT', `another relay in this process is using the data directory ${dataDir}`)
  }
  // Written whole beside the lock and linked into place (atomic, refused if the lock exists), so that no reader
  // ever sees a lock without its pid.
  const draft = `${path}.${process.pid}.new`
  writeFileSync(draft, JSON.stringify(mine), { mode: 0o600 })
  try {
    return takeLock(dataDir, path, draft)
  } finally {
    rmSync(draft, { force: true })
  }
}

/** Rounds of link, look and takeover before giving up: each one that fails saw another relay make progress. */
const MAX_ROUNDS = 8
/** Claims of one stale lock's takeover left by relays that died while taking over, before giving up. */
const MAX_CLAIMS = 64

function takeLock(dataDir: string, path: string, draft: string): DataDirLock {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    try {
      linkSync(draft, path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const seen = openLock(path)
      if (seen === null) continue // removed meanwhile: try to create ours
      if (seen.record !== null && holderAlive(seen.record)) throw conflict(seen.record, dataDir)
      // A lock whose holder is gone (or that holds no record): taken over by one relay only.
      const claim = claimTakeover(dataDir, path, seen.inode, draft)
      if (claim === null) continue
      try {
        // Only the claimant of this file removes it and a live relay's lock is never removed, so the file at
        // `path` stays this one from this look until the removal.
        const now = openLock(path)
        if (now !== null && now.inode === seen.inode && (now.record === null || !holderAlive(now.record))) {
          rmSync(path)
        }
      } finally {
        rmSync(claim, { force: true })
      }
      continue
    }
    held.add(path)
    let released = false
    return {
      path,
      release() {
        if (released) return
        released = true
        held.delete(path)
        if (readRecord(path)?.pid === process.pid) rmSync(path, { force: true })
      },
    }
  }
  throw new ParleyError(
    'CONFLICT',
    `other relays keep taking and releasing the lock of the data directory ${dataDir}; start one at a time`,
  )
}

/**
 * Claims the takeover of the stale lock file with inode `inode`: the first of `<path>.<inode>.takeover-<n>` that
 * this process links into place (its record is the draft's), past claims whose relay died before it finished.
 * Claims past one whose relay died stay (each only ever names that one file), so that no two live relays ever
 * hold a claim on one file at once.
 * @returns the claim's path, to remove once the takeover is done; `null` when another relay's takeover of the
 *   file has just ended (look at the lock again)
 * @throws ParleyError `CONFLICT` while a live relay holds a claim (it is taking the lock over)
 */
function claimTakeover(dataDir: string, path: string, inode: string, draft: string): string | null {
  for (let n = 0; n < MAX_CLAIMS; n++) {
    const claim = `${path}.${inode}.takeover-${n}`
    try {
      linkSync(draft, claim)
      return claim
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const claimant = openLock(claim)
    // A claim is removed only by its own relay, once its takeover is done: the next look at the lock sees what
    // came of it. (Claiming the next one instead would let a later relay claim this one alongside us.)
    if (claimant === null) return null
    if (claimant.record !== null && holderAlive(claimant.record)) throw conflict(claimant.record, dataDir)
  }
  throw new ParleyError(
    'CONFLICT',
    `${MAX_CLAIMS} relays died taking over the lock of the data directory ${dataDir}; remove ${path}.* by hand`,
  )
}
