/**
 * `parley-relay config check [--config f.toml] [options]`: builds the configuration exactly as a start would
 * (file, `PARLEY_*` env, flags, `…-file` secrets) and reports every problem, one line each, without starting.
 * @module
 */
import { loadConfig } from './configSources.js'

const USAGE = `Usage:
  parley-relay config check [--config <file>] [options]
      checks the configuration a start with these options (and PARLEY_* variables) would use, without starting;
      exit 0 when it can run, 1 with one line per problem when not`

/**
 * Runs a `config` subcommand.
 * @param args - the arguments after `config`
 * @param env - the environment (`PARLEY_*`)
 * @param out - writes a line to stdout
 * @param err - writes a line to stderr
 * @returns the process exit code: 0 valid, 1 problems, 2 usage
 * @example
 * process.exitCode = configCommand(['check', '--config', 'parley.toml'], process.env, console.log, console.error)
 */
export function configCommand(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  out: (line: string) => void,
  err: (line: string) => void,
): number {
  const [sub, ...rest] = args
  if (sub !== 'check') {
    err(USAGE)
    return sub === undefined || sub === '--help' ? 0 : 2
  }
  const loaded = loadConfig(rest, env)
  if (loaded.help) {
    out(USAGE)
    return 0
  }
  for (const problem of loaded.problems) err(`parley-relay config: ${problem.split('\n')[0]}`)
  if (loaded.problems.length > 0) return 1
  const from = loaded.file === undefined ? 'no config file' : loaded.file
  out(
    `configuration ok (${from}; data directory ${loaded.config.dataDir}, store ${storeKind(loaded.config.store)})`,
  )
  return 0
}

/** The store's kind, never its URL (which may hold a password). */
const storeKind = (store: string) => (store === 'sqlite' ? 'sqlite' : 'postgres')
