// One relay per SQLite data directory: a live holder refuses a second one, a dead or replaced one does not, and
// of many relays starting at once over a stale lock exactly one takes it.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
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

/** What a contender (dataDirLockContender.ts) answered. */
interface Answer {
  pid: number
  outcome: string
  message?: string
  step?: number
}

/** A contender process, and its answers one at a time. */
function contender() {
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    ['--conditions=parley-source', '--import', 'tsx', join(import.meta.dirname, 'dataDirLockContender.ts')],
    { stdio: 'pipe' },
  )
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = async (): Promise<Answer> => {
    const line = await lines.next()
    if (line.done) throw new Error(`contender ${child.pid} exited`)
    return JSON.parse(line.value) as Answer
  }
  return {
    child,
    next,
    /** Its last answer, past the `paused` ones of a `step` let go. */
    async outcome(): Promise<Answer> {
      for (;;) {
        const a = await next()
        if (a.outcome !== 'paused') return a
      }
    },
    ask(command: string): Promise<Answer> {
      child.stdin.write(`${command}\n`)
      return next()
    },
  }
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const gone = sleeper()
  const pid = gone.pid!
  gone.kill('SIGKILL')
  await new Promise((r) => gone.once('exit', r))
  return pid
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

  it('takes over past the claim of a relay that died taking over, and is refused while a live relay claims it', async () => {
    const dir = tempDir()
    const lockPath = join(dir, LOCK_FILE)
    writeFileSync(lockPath, JSON.stringify({ pid: await deadPid(), started: '1' }))
    const claim = (n: number) => `${lockPath}.${statSync(lockPath, { bigint: true }).ino}.takeover-${n}`
    const claimant = sleeper()
    try {
      const started = readFileSync(`/proc/${claimant.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]
      writeFileSync(claim(0), JSON.stringify({ pid: await deadPid(), started: '1' }))
      writeFileSync(claim(1), JSON.stringify({ pid: claimant.pid, started }))
      expect(() => lockDataDir(dir)).toThrow(
        expect.objectContaining({
          code: 'CONFLICT',
          message: expect.stringContaining(`another relay (pid ${claimant.pid}) is using the data directory`),
        }),
      )
      rmSync(claim(1))
      const dead = claim(0)
      const lock = lockDataDir(dir)
      expect(JSON.parse(readFileSync(lock.path, 'utf8'))).toMatchObject({ pid: process.pid })
      // The dead relay's claim stays (it names only the stale file, gone now); ours is removed.
      expect(readdirSync(dir).sort()).toEqual([LOCK_FILE, dead.slice(dir.length + 1)].sort())
      lock.release()
    } finally {
      claimant.kill('SIGKILL')
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

  it('keeps one holder when a relay that found the lock stale goes on after another took it over', async () => {
    const dir = tempDir()
    const control = tempDir()
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: await deadPid(), started: '1' }))
    const [slow, first, late] = [contender(), contender(), contender()]
    try {
      // `slow` has found the lock stale and is about to change the directory; `first` takes the lock over now.
      expect(await slow.ask(`step ${dir} ${control}`)).toMatchObject({ outcome: 'paused', step: 1 })
      const firstAnswer = await first.ask(`take ${dir} 0`)
      expect(firstAnswer).toMatchObject({ outcome: 'held' })
      // One change by `slow`, then a third relay starts before the rest of them.
      writeFileSync(join(control, 'go-1'), '')
      const afterOne = await slow.next()
      const lateAnswer = await late.ask(`take ${dir} 0`)
      writeFileSync(join(control, 'go-all'), '')
      const slowAnswer = afterOne.outcome === 'paused' ? await slow.outcome() : afterOne
      expect([slowAnswer.outcome, lateAnswer.outcome]).toEqual(['CONFLICT', 'CONFLICT'])
      expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: firstAnswer.pid })
      expect(readdirSync(dir)).toEqual([LOCK_FILE])
    } finally {
      for (const c of [slow, first, late]) c.child.kill('SIGKILL')
    }
  })

  it('lets exactly one of eight relays starting at once over a stale lock take it, and refuses the others', async () => {
    const contenders = Array.from({ length: 8 }, contender)
    try {
      const stale = JSON.stringify({ pid: await deadPid(), started: '1' })
      for (let trial = 0; trial < 40; trial++) {
        const dir = tempDir()
        writeFileSync(join(dir, LOCK_FILE), stale)
        // Every contender leaves its spin at the same millisecond.
        const at = Date.now() + 50
        const answers = await Promise.all(contenders.map((c) => c.ask(`take ${dir} ${at}`)))
        const winners = answers.filter((a) => a.outcome === 'held')
        expect(winners, `trial ${trial}: ${JSON.stringify(answers)}`).toHaveLength(1)
        const winner = winners[0]!.pid
        expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: winner })
        for (const a of answers.filter((a) => a.pid !== winner)) {
          expect(a, `trial ${trial}`).toMatchObject({
            outcome: 'CONFLICT',
            message: expect.stringMatching(/^another relay \(pid \d+\) is using the data directory /),
          })
        }
        // Nothing left beside the lock: no draft, no lock moved aside.
        expect(readdirSync(dir), `trial ${trial}`).toEqual([LOCK_FILE])
        await Promise.all(contenders.map((c) => c.ask('release')))
        expect(existsSync(join(dir, LOCK_FILE))).toBe(false)
      }
    } finally {
      for (const c of contenders) c.child.kill('SIGKILL')
    }
  }, 120_000)
})
