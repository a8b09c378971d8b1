/**
 * One relay per SQLite data directory: `<dataDir>/relay.lock` holds the owner's pid and the time the kernel
 * started it. A second relay is refused while that process lives; a lock left by a killed process (its pid gone,
 * or reused by another process since, which then started later) is taken over, so a crash never blocks a restart.
 * @module
 */
import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
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

function readRecord(path: string): LockRecord | null {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockRecord>
    if (Number.isSafeInteger(r.pid) && (r.pid as number) > 0)
      return { pid: r.pid as number, started: typeof r.started === 'string' ? r.started : null }
  } catch {}
  return null
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

function takeLock(dataDir: string, path: string, draft: string): DataDirLock {
  for (let attempt = 0; ; attempt++) {
    try {
      linkSync(draft, path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw err
      const holder = readRecord(path)
      if (holder !== null && holderAlive(holder)) {
        throw new ParleyError(
          'CONFLICT',
          `another relay (pid ${holder.pid}) is using the data directory ${dataDir}; stop it, or give this one its own --data-dir`,
        )
      }
      // A lock whose holder is gone (or that is unreadable, e.g. cut short by a crash): take it over. Moved aside
      // first (atomic), so that of two relays starting at once over it, the one that moves a lock the other has
      // just taken puts it back instead of deleting it.
      const aside = `${path}.${process.pid}.stale`
      try {
        renameSync(path, aside)
      } catch {
        continue // another process moved it first; try to create ours
      }
      const moved = readRecord(aside)
      if (moved !== null && (moved.pid !== holder?.pid || moved.started !== holder?.started)) {
        try {
          linkSync(aside, path)
        } catch {}
      }
      rmSync(aside, { force: true })
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
}
