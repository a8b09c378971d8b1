// One relay per SQLite data directory: a live holder refuses a second one, a dead or replaced one does not.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { LOCK_FILE, lockDataDir } from '../src/dataDirLock.js'
import { startRelay } from '../src/server.js'

const dirs: string[] = []
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'parley-lock-test-'))
  dirs.push(d)
  return d
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** A process that lives until killed, and its pid. */
function sleeper() {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
  return child
}

describe('lockDataDir', () => {
  it('refuses while a live process holds the lock, naming its pid and the directory', async () => {
    const dir = tempDir()
    const holder = sleeper()
    try {
      const started = readFileSync(`/proc/${holder.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: holder.pid, started }))
      expect(() => lockDataDir(dir)).toThrow(
        expect.objectContaining({
          code: 'CONFLICT',
          message: `another relay (pid ${holder.pid}) is using the data directory ${dir}; stop it, or give this one its own --data-dir`,
        }),
      )
    } finally {
      holder.kill('SIGKILL')
    }
  })

  it('takes over the lock of a process that is gone, or whose pid a later process now has', async () => {
    const dir = tempDir()
    const gone = sleeper()
    const pid = gone.pid!
    gone.kill('SIGKILL')
    await new Promise((r) => gone.once('exit', r))
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid, started: '1' }))
    const lock = lockDataDir(dir)
    expect(JSON.parse(readFileSync(lock.path, 'utf8'))).toMatchObject({ pid: process.pid })
    lock.release()
    expect(existsSync(lock.path)).toBe(false)

    // A live pid that started at another time than the lock says: the pid was reused, the holder is gone.
    const other = sleeper()
    try {
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: other.pid, started: '1' }))
      lockDataDir(dir).release()
      // Our own pid in the lock: a previous run in this pid namespace (pid 1 in a restarted container).
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid, started: '1' }))
      lockDataDir(dir).release()
      writeFileSync(join(dir, LOCK_FILE), 'cut short')
      lockDataDir(dir).release()
    } finally {
      other.kill('SIGKILL')
    }
  })

  it('makes a second relay on the same SQLite data directory fail to start, and frees it at close', async () => {
    const dataDir = tempDir()
    const options = {
      port: 0,
      host: '127.0.0.1',
      dataDir,
      dev: true,
      logLevel: 'silent' as const,
      metricsListen: 'off',
    }
    const first = await startRelay(options)
    await expect(startRelay(options)).rejects.toMatchObject({ code: 'CONFLICT' })
    await first.close()
    const again = await startRelay(options)
    await again.close()
  })
})
