/**
 * The text of `parley-relay --help`, derived from the option table.
 * @module
 */

import { DEFAULT_CONFIG, envOf, FILE_SUFFIX, fileKeyOf, flagOf, OPTIONS } from './configOptions.js'
import { CONFIG_ENV, CONFIG_FLAG } from './configSources.js'

/**
 * The text of `parley-relay --help`: every option with its flag, environment variable, config-file key and default.
 * @returns the text, without a final line break
 */
export function helpText(): string {
  const lines = [
    'parley-relay — the Parley reference relay (activation, private discovery, prekeys, mailboxes)',
    '',
    'Usage: parley-relay [options]',
    '       parley-relay config check [options]   (check a configuration without starting; exit 0 when it can run)',
    '       parley-relay oprf rotate [--grace 30d] [--data-dir <dir>]   (start a new OPRF key epoch; see --help there)',
    '       parley-relay --version',
    '',
    `Every option can also be set by its environment variable, or by its key (the flag without --) in a TOML file`,
    `named by ${CONFIG_FLAG} <file> (${CONFIG_ENV}); flags win over the environment, which wins over the file.`,
    `A secret option can be read from a file instead: --webhook-secret-file, PARLEY_WEBHOOK_SECRET_FILE,`,
    'webhook-secret-file = "…" (the file\'s contents, less a final line break), so it is not on the command line.',
    '',
    `  ${`${CONFIG_FLAG} <file>`.padEnd(40)} ${CONFIG_ENV}`,
    '      a TOML config file, e.g. port = 8787, data-dir = "/var/lib/parley-relay"',
  ]
  for (const opt of OPTIONS) {
    const isBool = opt.kind === 'bool' || opt.kind === 'maybeBool'
    const value = isBool ? '' : opt.kind === 'enum' ? ` <${opt.values!.join('|')}>` : ' <value>'
    const secret = 'secret' in opt && opt.secret
    const def = 'shown' in opt ? opt.shown : String(DEFAULT_CONFIG[opt.key])
    lines.push(`  ${(flagOf(opt.key) + value).padEnd(40)} ${envOf(opt.key)}`)
    lines.push(`      ${opt.help}${def === '' ? '' : ` (default: ${def})`}`)
    if (secret) {
      const file = `${flagOf(opt.key)}${FILE_SUFFIX.flag} <file>`
      lines.push(`  ${file.padEnd(40)} ${envOf(opt.key)}${FILE_SUFFIX.env}`)
      lines.push(`      read ${fileKeyOf(opt.key)} from a file`)
    }
  }
  lines.push('  --version                                print the version')
  lines.push('  --help                                   show this text')
  return lines.join('\n')
}
