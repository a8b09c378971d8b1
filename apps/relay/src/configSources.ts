/**
 * Where a configuration comes from: a config file (`--config parley.toml`, TOML), `PARLEY_*` environment variables
 * and command-line flags, in rising precedence (flags > env > file > defaults). A secret option may instead be
 * read from a file (`--webhook-secret-file`, `PARLEY_WEBHOOK_SECRET_FILE`, `webhook-secret-file`), so that it is
 * neither on the command line (`ps`) nor in the environment.
 * @module
 */
import { readFileSync } from 'node:fs'
import { parse as parseToml } from 'smol-toml'
import {
  DEFAULT_CONFIG,
  envOf,
  FILE_SUFFIX,
  fileKeyOf,
  flagOf,
  OPTIONS,
  type RelayConfig,
  type RelayOption,
} from './configOptions.js'
import { configProblems } from './configRules.js'

type Value = RelayConfig[keyof RelayConfig]
/** A value as a source holds it: text from argv or env, a TOML value from the file. */
type Raw = string | number | boolean

/** The flag and env var that name the config file. */
export const CONFIG_FLAG = '--config'
export const CONFIG_ENV = 'PARLEY_CONFIG'

/** How {@link loadConfig} reads files; tests may replace it. */
export interface ConfigIo {
  readFile(path: string): string
}

const fsIo: ConfigIo = { readFile: (path) => readFileSync(path, 'utf8') }

/** The result of {@link loadConfig}: the configuration and every problem found (empty when it is valid). */
export interface LoadedConfig {
  config: RelayConfig
  problems: string[]
  /** The config file read, if any. */
  file: string | undefined
  help: boolean
}

function parseValue(opt: RelayOption, raw: Raw, source: string): Value {
  switch (opt.kind) {
    case 'int': {
      if (typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0) return raw
      if (typeof raw === 'string' && /^\d+$/.test(raw)) return Number(raw)
      throw new RangeError(`${source} must be a non-negative integer`)
    }
    case 'bool':
    case 'maybeBool': {
      if (typeof raw === 'boolean') return raw
      const text = String(raw).toLowerCase()
      if (['1', 'true', 'yes', 'on', ''].includes(text)) return true
      if (['0', 'false', 'no', 'off'].includes(text)) return false
      throw new RangeError(`${source} must be true or false`)
    }
    case 'enum': {
      if (typeof raw === 'string' && opt.values!.includes(raw)) return raw as Value
      throw new RangeError(`${source} must be one of ${opt.values!.join(', ')}`)
    }
    default:
      if (typeof raw !== 'string') throw new RangeError(`${source} must be a string`)
      return raw
  }
}

/** The contents of a secret's file, without the trailing line break editors add. */
function readSecret(io: ConfigIo, path: string, source: string): string {
  let text: string
  try {
    text = io.readFile(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    throw new RangeError(`${source}: cannot read ${path} (${code})`)
  }
  return text.replace(/\r?\n$/, '')
}

/** Splits `--flag=value` into its flag and value. */
function splitFlag(arg: string): [flag: string, inline: string | undefined] {
  const at = arg.indexOf('=')
  return at < 0 ? [arg, undefined] : [arg.slice(0, at), arg.slice(at + 1)]
}

interface Setting {
  opt: RelayOption
  /** The value, or the path of the file that holds it (`fromFile`). */
  raw: Raw
  fromFile: boolean
  source: string
}

/** Applies one source's settings, refusing a secret given both as a value and as a file in that source. */
function apply(config: RelayConfig, settings: Setting[], io: ConfigIo, problems: string[]): void {
  const seen = new Map<string, Setting>()
  for (const s of settings) {
    const other = seen.get(s.opt.key)
    if (other !== undefined && other.fromFile !== s.fromFile) {
      problems.push(`${other.source} and ${s.source} both set ${s.opt.key}: give one of them`)
      continue
    }
    seen.set(s.opt.key, s)
    try {
      const raw = s.fromFile ? readSecret(io, String(s.raw), s.source) : s.raw
      ;(config as Record<string, Value>)[s.opt.key] = parseValue(s.opt, raw, s.source)
    } catch (err) {
      problems.push((err as Error).message)
    }
  }
}

const byFlag = new Map<string, [RelayOption, boolean]>()
const byFileKey = new Map<string, [RelayOption, boolean]>()
for (const opt of OPTIONS) {
  byFlag.set(flagOf(opt.key), [opt, false])
  byFileKey.set(fileKeyOf(opt.key), [opt, false])
  if ('secret' in opt && opt.secret) {
    byFlag.set(flagOf(opt.key) + FILE_SUFFIX.flag, [opt, true])
    byFileKey.set(fileKeyOf(opt.key) + FILE_SUFFIX.key, [opt, true])
  }
}

function fromArgv(argv: readonly string[], problems: string[]): { settings: Setting[]; help: boolean } {
  const settings: Setting[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help' || arg === '-h') return { settings, help: true }
    const [flag, inline] = splitFlag(arg)
    const next = argv[i + 1]
    if (flag === CONFIG_FLAG) {
      if (inline === undefined) i++
      continue
    }
    const found = byFlag.get(flag)
    if (found === undefined) {
      problems.push(`unknown option ${flag} (see --help)`)
      continue
    }
    const [opt, fromFile] = found
    let raw = inline
    if (raw === undefined) {
      const isBool = opt.kind === 'bool' || opt.kind === 'maybeBool'
      if (isBool && (next === undefined || next.startsWith('--'))) raw = 'true'
      else if (next === undefined) {
        problems.push(`${flag} needs a value`)
        continue
      } else {
        raw = next
        i++
      }
    }
    settings.push({ opt, raw, fromFile, source: flag })
  }
  return { settings, help: false }
}

function fromEnv(env: NodeJS.ProcessEnv): Setting[] {
  const settings: Setting[] = []
  for (const opt of OPTIONS) {
    const name = envOf(opt.key)
    const value = env[name]
    if (value !== undefined && value !== '') settings.push({ opt, raw: value, fromFile: false, source: name })
    const file = env[name + FILE_SUFFIX.env]
    if ('secret' in opt && opt.secret && file !== undefined && file !== '')
      settings.push({ opt, raw: file, fromFile: true, source: name + FILE_SUFFIX.env })
  }
  return settings
}

function fromFile(path: string, io: ConfigIo, problems: string[]): Setting[] {
  let table: Record<string, unknown>
  try {
    table = parseToml(io.readFile(path))
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { line?: number }
    const why = e.code ?? (e.line ? `line ${e.line}: ${e.message.split('\n')[0]}` : e.message.split('\n')[0])
    problems.push(`config file ${path}: cannot read it (${why})`)
    return []
  }
  const settings: Setting[] = []
  for (const [key, value] of Object.entries(table)) {
    const found = byFileKey.get(key)
    const source = `${key} in ${path}`
    if (found === undefined) problems.push(`unknown key ${source} (the keys are the flags without --)`)
    else if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean')
      problems.push(`${source} must be a string, a number or true/false`)
    else settings.push({ opt: found[0], raw: value, fromFile: found[1], source })
  }
  return settings
}

/** The config file named by `--config <path>` (or `--config=<path>`), else by `PARLEY_CONFIG`. */
function configPath(argv: readonly string[], env: NodeJS.ProcessEnv, problems: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = splitFlag(argv[i]!)
    if (flag !== CONFIG_FLAG) continue
    const path = inline ?? argv[i + 1]
    if (path === undefined || path === '') problems.push(`${CONFIG_FLAG} needs a file`)
    return path || undefined
  }
  return env[CONFIG_ENV] || undefined
}

/**
 * Builds a configuration from the defaults, a config file, environment variables and flags (each later one wins)
 * and checks it, collecting every problem instead of stopping at the first.
 * @param argv - arguments after the script name (`--port 0`, `--port=0`, `--trust-proxy`, `--config f.toml`)
 * @param env - environment (`PARLEY_PORT`, `PARLEY_WEBHOOK_SECRET_FILE`, `PARLEY_CONFIG`, …)
 * @param io - how files are read (default the file system)
 * @returns the configuration and its problems, one readable line each (the first line of a longer explanation)
 * @example
 * const { config, problems } = loadConfig(['--config', 'parley.toml'], process.env)
 */
export function loadConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = {},
  io: ConfigIo = fsIo,
): LoadedConfig {
  const config = { ...DEFAULT_CONFIG } as RelayConfig
  const problems: string[] = []
  const file = configPath(argv, env, problems)
  const args = fromArgv(argv, problems)
  if (args.help) return { config, problems: [], file, help: true }
  if (file !== undefined) apply(config, fromFile(file, io, problems), io, problems)
  apply(config, fromEnv(env), io, problems)
  apply(config, args.settings, io, problems)
  if (problems.length === 0) problems.push(...configProblems(config))
  return { config, problems, file, help: false }
}

/**
 * Builds the configuration from defaults, then a config file (`--config`, `PARLEY_CONFIG`), then environment
 * variables, then command-line flags.
 * @param argv - arguments after the script name (`--port 0`, `--port=0`, `--trust-proxy`)
 * @param env - environment (`PARLEY_PORT`, ...)
 * @returns the configuration, or `'help'` when `--help` was given
 * @throws RangeError on an unknown flag, a malformed value or an unworkable configuration; its message has one
 *   line per problem
 * @example
 * const config = parseConfig(process.argv.slice(2), process.env)
 */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv = {}): RelayConfig | 'help' {
  const loaded = loadConfig(argv, env)
  if (loaded.help) return 'help'
  if (loaded.problems.length > 0) throw new RangeError(loaded.problems.join('\n'))
  return loaded.config
}

/**
 * The relay's store location (`dataDir`, `store`) as an operator subcommand needs it: the defaults, then the
 * config file (`configFile`, else `PARLEY_CONFIG`), then the environment, then `flags` — the relay's own
 * precedence — without checking the rest of a configuration the subcommand does not use.
 * @param flags - the subcommand's own `--data-dir` / `--store`, when given
 * @param configFile - its `--config`, when given
 * @param env - the environment
 * @param io - how files are read (default the file system)
 * @returns where the relay keeps its data
 * @throws RangeError when the config file cannot be read, or a location value in it or the environment is malformed
 * @example const { dataDir, store } = storeSettings({}, 'parley.toml', process.env)
 */
export function storeSettings(
  flags: { dataDir?: string | undefined; store?: string | undefined },
  configFile: string | undefined,
  env: NodeJS.ProcessEnv,
  io: ConfigIo = fsIo,
): { dataDir: string; store: string } {
  const config = { ...DEFAULT_CONFIG } as RelayConfig
  const problems: string[] = []
  const location = (settings: Setting[]) =>
    settings.filter((s) => s.opt.key === 'dataDir' || s.opt.key === 'store')
  const file = configFile || env[CONFIG_ENV] || undefined
  if (file !== undefined) {
    const settings = fromFile(file, io, problems)
    // Only an unreadable file matters here; the relay's `config check` reports the rest.
    problems.splice(0, problems.length, ...problems.filter((p) => p.startsWith(`config file ${file}`)))
    apply(config, location(settings), io, problems)
  }
  apply(config, location(fromEnv(env)), io, problems)
  if (problems.length > 0) throw new RangeError(problems.join('\n'))
  return { dataDir: flags.dataDir || config.dataDir, store: flags.store || config.store }
}
