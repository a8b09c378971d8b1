/**
 * `parley-relay`: a subcommand (`admin`, `backup`, `config`, `migrate`, `oprf`), or flags, `PARLEY_*` env and a config file → {@link startRelay};
 * SIGTERM / SIGINT shut it down gracefully. A start that fails prints one line and exits 1.
 * @module
 */
import { readFileSync } from 'node:fs'
import { adminCommand } from './admin/adminCommand.js'
import { backupCommand } from './admin/backupCommand.js'
import { migrateCommand } from './admin/migrateCommand.js'
import { runCommand } from './admin/options.js'
import { parseConfig } from './config.js'
import { configCommand } from './configCommand.js'
import { helpText } from './configHelp.js'
import { createLogger } from './logger.js'
import { oprfCommand } from './oprfCommand.js'
import { startRelay } from './server.js'

const out = (line: string) => process.stdout.write(`${line}\n`)
const err = (line: string) => process.stderr.write(`${line}\n`)

/** The subcommands, by their first argument: each gets the arguments after its name, returns the exit code. */
const COMMANDS: Record<string, (args: string[]) => number | Promise<number>> = {
  admin: (args) => runCommand(adminCommand, args),
  backup: (args) => runCommand(backupCommand, args),
  config: (args) => configCommand(args, process.env, out, err),
  migrate: (args) => runCommand(migrateCommand, args),
  oprf: (args) => oprfCommand(args, process.env, out, err),
}

/** This package's version, from the package.json beside `src/` (or `dist/`). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return pkg.version
}

/** One readable line for a failed start; the error's own code (EADDRINUSE, …) as a hint where it helps. */
function startFailure(e: unknown): string {
  const error = e as NodeJS.ErrnoException
  const hint =
    error.code === 'EADDRINUSE'
      ? ' (another process has this port: stop it, or pass another --port)'
      : error.code === 'EACCES'
        ? ' (permission denied: a port below 1024 needs privileges)'
        : ''
  const message = error instanceof Error ? error.message : String(e)
  return `parley-relay: cannot start: ${message.split('\n')[0]}${hint}`
}

async function main(): Promise<void> {
  const [first = '', ...rest] = process.argv.slice(2)
  const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined
  if (command !== undefined) {
    process.exitCode = await command(rest)
    return
  }
  if (first === '--version' || first === '-v') {
    out(version())
    return
  }
  let config: ReturnType<typeof parseConfig>
  try {
    config = parseConfig(process.argv.slice(2), process.env)
  } catch (e) {
    err(`parley-relay: ${(e as Error).message}`)
    process.exit(2)
  }
  if (config === 'help') {
    out(helpText())
    return
  }
  if (config.dev) {
    const on = [
      config.verifier === 'console' ? 'the console verifier prints every SMS code to this log' : '',
      config.verifier === 'webhook' && config.webhookSecret === '' ? 'webhook calls are unsigned' : '',
      config.demo !== false ? 'the demo page is served at /' : '',
    ].filter((s) => s !== '')
    err(
      [
        '',
        '  ┌─ parley-relay: DEVELOPMENT RELAY (--dev) ─ not for production',
        ...on.map((s) => `  │  ${s}`),
        '  └─ production: drop --dev; --verifier webhook --webhook-url … --webhook-secret-file … (apps/relay/README.md)',
        '',
      ].join('\n'),
    )
  }
  const log = createLogger(config.logLevel)
  let relay: Awaited<ReturnType<typeof startRelay>> | undefined
  let stopping = false
  const close = (r: NonNullable<typeof relay>) =>
    r.close().then(
      () => process.exit(0),
      (e) => {
        log.error({ err: e }, 'shutdown failed')
        process.exit(1)
      },
    )
  // Installed before the start, so that a signal during it (its "relay listening" line is out) still shuts down.
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    log.info({ signal }, 'signal received')
    if (relay !== undefined) void close(relay)
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  try {
    relay = await startRelay({ ...config, logger: log })
  } catch (e) {
    err(startFailure(e))
    process.exit(1)
  }
  if (stopping) return void close(relay)
  err(`parley-relay ${version()}: listening on ${relay.httpUrl}, data directory ${relay.config.dataDir}`)
  // SIGHUP: re-read oprf-keys.json now (after `parley-relay oprf rotate`) instead of at the next sweep.
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP' }, 'reloading OPRF keys')
    relay?.reloadOprfKeys()
  })
  process.on('uncaughtException', (e) => log.error({ err: e }, 'uncaught exception'))
  process.on('unhandledRejection', (e) => log.error({ err: e }, 'unhandled rejection'))
}

void main()
