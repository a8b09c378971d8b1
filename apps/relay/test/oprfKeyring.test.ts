// The OPRF key file across processes: a rotation written by `parley-relay oprf rotate` is picked up by a running
// relay's key ring (reload), a retired key is deleted after its grace period (prune), and durations parse.
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { OprfKeyring } from '../src/OprfKeyring.js'
import { oprfCommand, parseDuration } from '../src/oprfCommand.js'

const run = (args: string[]) => {
  const out: string[] = []
  const err: string[] = []
  const code = oprfCommand(
    args,
    {},
    (l) => out.push(l),
    (l) => err.push(l),
  )
  return { code, out: out.join('\n'), err: err.join('\n') }
}

describe('the OPRF key file', () => {
  it('a rotation by another process is reloaded; the old key is served until its grace ends, then deleted', () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-oprf-'))
    const ring = OprfKeyring.open(dir)
    expect(ring.current.keyId).toBe(1)
    expect(ring.reload()).toBe(false)
    const rotated = run(['rotate', '--grace', '2h', '--data-dir', dir])
    expect(rotated.code).toBe(0)
    expect(rotated.out).toContain('OPRF key 2 is current')
    expect(statSync(join(dir, 'oprf-keys.json')).mode & 0o777).toBe(0o600)
    expect(ring.reload()).toBe(true)
    expect(ring.current.keyId).toBe(2)
    expect(ring.served().map((k) => k.keyId)).toEqual([2, 1])
    const retireAt = ring.get(1)!.retireAtMs
    expect(retireAt - Date.now()).toBeGreaterThan(2 * 3600_000 - 60_000)
    expect(ring.reload()).toBe(false)
    // Not before its time; then gone from memory and from the file.
    expect(ring.prune(retireAt - 1)).toEqual([])
    expect(ring.prune(retireAt)).toEqual([1])
    expect(ring.served(retireAt).map((k) => k.keyId)).toEqual([2])
    const file = JSON.parse(readFileSync(join(dir, 'oprf-keys.json'), 'utf8')) as {
      keys: { keyId: number }[]
    }
    expect(file.keys.map((k) => k.keyId)).toEqual([2])
    // Another ring on the same file sees the same.
    expect(
      OprfKeyring.open(dir)
        .served()
        .map((k) => k.keyId),
    ).toEqual([2])
  })

  it('keeps its keys when the file is replaced by something unreadable', () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-oprf-'))
    const ring = OprfKeyring.open(dir)
    const key = ring.current.publicKey
    writeFileSync(join(dir, 'oprf-keys.json'), '{"version": 1, "keys": []}\n')
    expect(() => ring.reload()).toThrow(/not a valid OPRF key file/)
    expect(ring.current.publicKey).toEqual(key)
  })

  it('the command refuses unknown options, a bad duration and a missing file, saying how', () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-oprf-'))
    expect(run(['rotate', '--data-dir', dir]).code).toBe(1)
    OprfKeyring.open(dir)
    expect(run(['rotate', '--grace', 'soon', '--data-dir', dir])).toMatchObject({ code: 2 })
    expect(run(['rotate', '--force', '--data-dir', dir]).err).toContain('unknown option --force')
    expect(run(['status', '--data-dir', dir]).out).toContain('key 1: created')
    expect(run(['frobnicate']).code).toBe(2)
  })

  it("finds the key file through the relay's config file (--config), below --data-dir", () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-oprf-'))
    OprfKeyring.open(dir)
    const config = join(mkdtempSync(join(tmpdir(), 'parley-oprf-config-')), 'parley.toml')
    writeFileSync(config, `data-dir = ${JSON.stringify(dir)}\n`)
    expect(run(['status', '--config', config]).out).toContain('key 1: created')
    const empty = mkdtempSync(join(tmpdir(), 'parley-oprf-'))
    expect(run(['status', '--config', config, '--data-dir', empty]).code).toBe(1)
    expect(run(['status', '--config', join(empty, 'missing.toml')])).toMatchObject({ code: 2 })
  })

  it('parses durations', () => {
    expect(parseDuration('30d')).toBe(30 * 86_400_000)
    expect(parseDuration('12h')).toBe(12 * 3_600_000)
    expect(parseDuration('90m')).toBe(90 * 60_000)
    expect(parseDuration('45s')).toBe(45_000)
    expect(parseDuration('1500')).toBe(1500)
    expect(() => parseDuration('-1d')).toThrow(RangeError)
    expect(() => parseDuration('1w')).toThrow(RangeError)
  })
})
