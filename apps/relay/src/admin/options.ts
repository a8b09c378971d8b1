/**
 * What the operator commands (`parley-relay admin | migrate | backup`) share: their flags, the store they open
 * (the relay's own `--data-dir` and `--store`, with the same environment variables and defaults) and how the CLI
 * runs them.
 * @module
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { storeSettings } from '../configSources.js'
import { PostgresStore } from '../PostgresStore.js'
import { SqliteStore } from '../SqliteStore.js'
import type { Store } from '../Store.js'
import { isPostgresUrl } from '../scaleOut.js'
import { openStoreKeyFile, STORE_KEY_FILE } from '../storeKeyFile.js'

/** Where a command writes, and where it reads a number from (`-`). */
export interface CommandIo {
  out(line: string): void
  err(line: string): void
  /** All of standard input (a number given as `-`, so that it is in no process list or shell history). */
  stdin(): Promise<string>
}

/** An operator command: its arguments (after its name), the environment and its I/O; resolves the exit code. */
export type OperatorCommand = (args: string[], env: NodeJS.ProcessEnv, io: CommandIo) => Promise<number>

/** A mistake in a command's arguments: the command prints it with its usage and exits 2. */
export class UsageError extends RangeError {}

/** Flags and positional arguments of a command line (`--flag value`, `--flag=value`). */
export interface ParsedArgs {
  flags: Map<string, string>
  positional: string[]
}

/**
 * Splits a command line into flags and positional arguments.
 * @param args - the arguments
 * @param known - the flags the command takes (with their `--`)
 * @returns the flags given (the last value of a repeated one) and the rest
 * @throws UsageError for an unknown flag or one without a value
 */
export function parseArgs(args: readonly string[], known: readonly string[]): ParsedArgs {
  const flags = new Map<string, string>()
  const positional: string[] = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (!a.startsWith('--')) {
      positional.push(a)
      continue
    }
    const eq = a.indexOf('=')
    const flag = eq === -1 ? a : a.slice(0, eq)
    if (!known.includes(flag)) throw new UsageError(`unknown option ${flag}`)
    const value = eq === -1 ? args[++i] : a.slice(eq + 1)
    if (value === undefined) throw new UsageError(`${flag} needs a value`)
    flags.set(flag, value)
  }
  return { flags, positional }
}

/** The relay's store options, as the relay reads them (flags, then `PARLEY_*`, then the `--config` file). */
export interface StoreLocation {
  /** `--data-dir`, `PARLEY_DATA_DIR`, `data-dir` in the config file; default `./.parley-data`. */
  dataDir: string
  /** `--store`, `PARLEY_STORE`, default `sqlite` (`<dataDir>/relay.db`); or `postgres://…`. */
  store: string
}

/** The flags of {@link StoreLocation}. */
export const STORE_FLAGS = ['--data-dir', '--store', '--config'] as const

/**
 * The store location from the flags, else the environment, else the relay's config file (`--config`,
 * `PARLEY_CONFIG`), else the relay's defaults.
 * @throws UsageError for a `--store` that is neither `sqlite` nor a PostgreSQL URL, or a config file that cannot
 *   be read
 */
export function storeLocation(flags: Map<string, string>, env: NodeJS.ProcessEnv): StoreLocation {
  let at: { dataDir: string; store: string }
  try {
    at = storeSettings(
      { dataDir: flags.get('--data-dir'), store: flags.get('--store') },
      flags.get('--config'),
      env,
    )
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  const { dataDir, store } = at
  if (store !== 'sqlite' && !isPostgresUrl(store)) {
    throw new UsageError('--store must be sqlite or a postgres:// URL')
  }
  return { dataDir, store }
}

/**
 * Opens the relay's store as the relay would: SQLite `<dataDir>/relay.db` (WAL: beside a running relay), or
 * PostgreSQL with the store key of `<dataDir>/store-key.json`. Never creates a store that is not there.
 * @param at - where the store is
 * @returns the open store (the caller closes it)
 * @throws Error when there is no `relay.db` or no `store-key.json` in the data directory, or the store refuses
 *   to open
 */
export async function openStore(at: StoreLocation): Promise<Store> {
  if (at.store === 'sqlite') {
    const path = join(at.dataDir, 'relay.db')
    if (!existsSync(path)) throw new Error(`no relay.db in ${at.dataDir} (pass --data-dir, or --store)`)
    return new SqliteStore(path)
  }
  if (!existsSync(join(at.dataDir, STORE_KEY_FILE))) {
    throw new Error(`no ${STORE_KEY_FILE} in ${at.dataDir}: pass the data directory of the relay's nodes`)
  }
  return PostgresStore.open({ url: at.store, storeKey: openStoreKeyFile(at.dataDir), maxConnections: 2 })
}

/**
 * Runs an operator command as the CLI's first argument chose it, on the process's arguments, environment and
 * standard streams.
 * @param command - the command
 * @param args - the arguments after the command's name
 * @returns the exit code
 * @example
 * const COMMANDS = { admin: (args) => runCommand(adminCommand, args) }
 */
export async function runCommand(command: OperatorCommand, args: string[]): Promise<number> {
  const io: CommandIo = {
    out: (l) => process.stdout.write(`${l}\n`),
    err: (l) => process.stderr.write(`${l}\n`),
    stdin: async () => {
      const chunks: Buffer[] = []
      for await (const c of process.stdin) chunks.push(c as Buffer)
      return Buffer.concat(chunks).toString('utf8')
    },
  }
  return command(args, process.env, io)
}

/**
 * Runs a command's body: a {@link UsageError} prints with the usage (exit 2), any other error prints its
 * message (exit 1). Messages never carry a number (the commands never put one in one).
 * @param name - the command, for messages (`admin`)
 * @param usage - its usage text
 * @param io - where to print
 * @param body - the command's work, resolving its exit code
 * @returns the exit code
 */
export async function guarded(
  name: string,
  usage: string,
  io: CommandIo,
  body: () => Promise<number>,
): Promise<number> {
  try {
    return await body()
  } catch (e) {
    io.err(`parley-relay ${name}: ${(e as Error).message}`)
    if (e instanceof UsageError) {
      io.err(usage)
      return 2
    }
    return 1
  }
}

/**
 * An operator command with one usage text: `--help` as its first argument prints the usage (exit 0); otherwise
 * `body` runs {@link guarded}, so a usage mistake prints the usage (exit 2) and any other error its message (exit 1).
 * @param name - the command's name, as typed after `parley-relay`
 * @param usage - its usage text
 * @param body - the command itself, on the arguments after its name
 * @returns the command
 * @example export const backupCommand = operatorCommand('backup', USAGE, async (args, env, io) => 0)
 */
export function operatorCommand(
  name: string,
  usage: string,
  body: (args: string[], env: NodeJS.ProcessEnv, io: CommandIo) => Promise<number>,
): OperatorCommand {
  return async (args, env, io) => {
    if (args[0] === '--help') {
      io.out(usage)
      return 0
    }
    return guarded(name, usage, io, () => body(args, env, io))
  }
}
