/**
 * `parley-relay oprf rotate [--grace 30d] [--data-dir DIR]` and `parley-relay oprf status [--data-dir DIR]`:
 * operator commands on `<dataDir>/oprf-keys.json`, run beside (or without) a running relay. Running relays that
 * read the same file pick a rotation up at their next sweep (`--sweep-interval-seconds`) or at once on SIGHUP.
 * @module
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { storeSettings } from './configSources.js'
import { OprfKeyring } from './OprfKeyring.js'

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/**
 * A duration such as `30d`, `12h`, `90m`, `45s` or a number of milliseconds.
 * @throws RangeError for anything else
 */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim())
  if (!m) throw new RangeError(`not a duration: ${text} (use e.g. 30d, 12h, 90m, 45s)`)
  const n = Number(m[1])
  const ms = m[2] === undefined || m[2] === 'ms' ? n : n * UNITS[m[2]]!
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`not a duration: ${text}`)
  return Math.round(ms)
}

const USAGE = `Usage:
  parley-relay oprf rotate [--grace <duration>] [--data-dir <dir>] [--config <parley.toml>]
      starts a new OPRF key epoch; the previous key is still served for the grace period (default 30d), while
      every device moves its account to its address under the new key. Then deleted.
  parley-relay oprf status [--data-dir <dir>] [--config <parley.toml>]
      lists the key epochs in the file
Durations: 30d, 12h, 90m, 45s. The data directory is the relay's: --data-dir, PARLEY_DATA_DIR, dataDir in the
config file (--config, PARLEY_CONFIG), else ./.parley-data.
Running relays on the same file switch at their next sweep, or at once on SIGHUP.`

/**
 * Runs an `oprf` subcommand.
 * @param args - the arguments after `oprf`
 * @returns the process exit code
 */
export function oprfCommand(
  args: string[],
  env: NodeJS.ProcessEnv,
  out: (line: string) => void,
  err: (line: string) => void,
): number {
  const [sub, ...rest] = args
  let graceMs = 30 * UNITS.d!
  let dataDirFlag: string | undefined
  let configFile: string | undefined
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a]
    const value = () => inline ?? rest[++i] ?? ''
    try {
      if (flag === '--grace' && sub === 'rotate') graceMs = parseDuration(value())
      else if (flag === '--data-dir') dataDirFlag = value()
      else if (flag === '--config') configFile = value()
      else throw new RangeError(`unknown option ${flag}`)
    } catch (e) {
      err(`parley-relay oprf: ${(e as Error).message}`)
      err(USAGE)
      return 2
    }
  }
  if (sub !== 'rotate' && sub !== 'status') {
    err(USAGE)
    return sub === undefined || sub === '--help' ? 0 : 2
  }
  let dataDir: string
  try {
    dataDir = storeSettings({ dataDir: dataDirFlag }, configFile, env).dataDir
  } catch (e) {
    err(`parley-relay oprf: ${(e as Error).message}`)
    return 2
  }
  if (!existsSync(join(dataDir, 'oprf-keys.json'))) {
    err(`parley-relay oprf: no oprf-keys.json in ${dataDir} (start the relay once, or pass --data-dir)`)
    return 1
  }
  const ring = OprfKeyring.open(dataDir, (m) => err(`warning: ${m}`))
  if (sub === 'rotate') {
    const previous = ring.current
    const next = ring.rotate(graceMs)
    out(
      `OPRF key ${next.keyId} is current; key ${previous.keyId} is served until ${new Date(previous.retireAtMs).toISOString()} and then deleted`,
    )
    out('running relays on this file switch at their next sweep, or now on SIGHUP')
  }
  for (const k of ring.served()) {
    const until = k.retireAtMs === 0 ? 'current' : `retires ${new Date(k.retireAtMs).toISOString()}`
    out(`key ${k.keyId}: created ${new Date(k.createdAtMs).toISOString()}, ${until}`)
  }
  return 0
}
