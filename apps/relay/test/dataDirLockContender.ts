// A process that contends for data-directory locks, for dataDirLock.test.ts's races. One command a line on stdin:
//   take <dir> <atMs>       wait (spinning) until the wall clock reads atMs, then lockDataDir(dir); answers
//                           {"pid":…,"outcome":"held"} or {"pid":…,"outcome":"<code>","message":…}, and keeps the lock
//   step <dir> <control>    lockDataDir(dir) one file change at a time once it has found the lock taken: before
//                           each change it answers {"pid":…,"outcome":"paused","step":n} and waits for the file
//                           <control>/go-<n> (or <control>/go-all); then answers as `take` does
//   release                 releases the lock taken, if any; answers {"pid":…,"outcome":"released"}
// Run: node --conditions=parley-source --import tsx dataDirLockContender.ts
import fs from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { ParleyError } from '@parley/protocol'
import { type DataDirLock, LOCK_FILE, lockDataDir } from '../src/dataDirLock.js'

let lock: DataDirLock | null = null
const answer = (outcome: string, fields: { message?: string; step?: number } = {}) =>
  fs.writeSync(1, `${JSON.stringify({ pid: process.pid, outcome, ...fields })}\n`)

/** While `step` runs: the lock's path, the control directory, and whether the lock was found taken yet. */
let stepping: { lockPath: string; control: string; armed: boolean; step: number } | null = null

function pause(s: NonNullable<typeof stepping>): void {
  const step = ++s.step
  answer('paused', { step })
  const nap = new Int32Array(new SharedArrayBuffer(4))
  while (!fs.existsSync(join(s.control, `go-${step}`)) && !fs.existsSync(join(s.control, 'go-all'))) {
    Atomics.wait(nap, 0, 0, 1)
  }
}

// Every change lockDataDir could make to the directory goes through here (node:fs's named exports follow the
// module object after syncBuiltinESMExports).
for (const name of ['linkSync', 'renameSync', 'rmSync', 'unlinkSync', 'writeFileSync'] as const) {
  const original = fs[name] as (...args: unknown[]) => unknown
  ;(fs as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
    const s = stepping
    if (s?.armed) pause(s)
    try {
      return original(...args)
    } catch (err) {
      if (s !== null && !s.armed && name === 'linkSync' && args[1] === s.lockPath) s.armed = true
      throw err
    }
  }
}
syncBuiltinESMExports()

function take(dir: string): DataDirLock | null {
  try {
    const taken = lockDataDir(dir)
    answer('held')
    return taken
  } catch (err) {
    answer(err instanceof ParleyError ? err.code : 'THREW', { message: (err as Error).message })
    return null
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  const [command, dir, arg] = line.split(' ')
  if (command === 'take' && dir !== undefined) {
    // A spin, not a timer: every contender starts within a few microseconds of the others.
    while (Date.now() < Number(arg)) {}
    lock = take(dir)
  } else if (command === 'step' && dir !== undefined && arg !== undefined) {
    stepping = { lockPath: join(dir, LOCK_FILE), control: arg, armed: false, step: 0 }
    try {
      lock = take(dir)
    } finally {
      stepping = null
    }
  } else if (command === 'release') {
    lock?.release()
    lock = null
    answer('released')
  }
}
