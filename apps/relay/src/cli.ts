/**
 * `parley-relay`: flags and env vars → {@link startRelay}; SIGTERM / SIGINT shut it down gracefully.
 * @module
 */
import { adminCommand } from './admin/adminCommand.js'
import { backupCommand } from './admin/backupCommand.js'
import { migrateCommand } from './admin/migrateCommand.js'
import { runCommand } from './admin/options.js'
import { helpText, parseConfig } from './config.js'
import { createLogger } from './logger.js'
import { oprfCommand } from './oprfCommand.js'
import { startRelay } from './server.js'

async function main(): Promise<void> {
  if (process.argv[2] === 'admin') return runCommand(adminCommand)
  if (process.argv[2] === 'backup') return runCommand(backupCommand)
  if (process.argv[2] === 'migrate') return runCommand(migrateCommand)
  if (process.argv[2] === 'oprf') {
    process.exitCode = oprfCommand(
      process.argv.slice(3),
      process.env,
      (l) => process.stdout.write(`${l}\n`),
      (l) => process.stderr.write(`${l}\n`),
    )
    return
  }
  let config: ReturnType<typeof parseConfig>
  try {
    config = parseConfig(process.argv.slice(2), process.env)
  } catch (err) {
    process.stderr.write(`parley-relay: ${(err as Error).message}\n`)
    process.exit(2)
  }
  if (config === 'help') {
    process.stdout.write(`${helpText()}\n`)
    return
  }
  if (config.dev) {
    const on = [
      config.verifier === 'console' ? 'the console verifier prints every SMS code to this log' : '',
      config.verifier === 'webhook' && config.webhookSecret === '' ? 'webhook calls are unsigned' : '',
      config.demo !== false ? 'the demo page is served at /' : '',
    ].filter((s) => s !== '')
    process.stderr.write(
      [
        '',
        '  ┌─ parley-relay: DEVELOPMENT RELAY (--dev) ─ not for production',
        ...on.map((s) => `  │  ${s}`),
        '  └─ production: drop --dev; --verifier webhook --webhook-url … --webhook-secret … (apps/relay/README.md)',
        '',
        '',
      ].join('\n'),
    )
  }
  const log = createLogger(config.logLevel)
  let relay: Awaited<ReturnType<typeof startRelay>>
  try {
    relay = await startRelay({ ...config, logger: log })
  } catch (err) {
    log.fatal({ err }, 'relay failed to start')
    process.exit(1)
  }
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    log.info({ signal }, 'signal received')
    relay.close().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  // SIGHUP: re-read oprf-keys.json now (after `parley-relay oprf rotate`) instead of at the next sweep.
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP' }, 'reloading OPRF keys')
    relay.reloadOprfKeys()
  })
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception'))
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'))
}

void main()
