/**
 * Relay configuration. One table of options (`configOptions.ts`) drives the type, the defaults, the CLI flags,
 * the environment variables, the config-file keys and `--help`; `configSources.ts` reads them (flags > env >
 * file > defaults, `…-file` variants for secrets), `configRules.ts` checks them, `configPolicies.ts` turns them
 * into rate-limit policies.
 * @module
 */

export { helpText } from './configHelp.js'
export type { OptionKind, OptionSpec, RelayConfig, RelayOption } from './configOptions.js'
export { DEFAULT_CONFIG, envOf, fileKeyOf, flagOf, LOG_LEVELS, OPTIONS } from './configOptions.js'
export type { BucketPolicy } from './configPolicies.js'
export { policies } from './configPolicies.js'
export { configProblems, metricsAddress, validateConfig } from './configRules.js'
export type { ConfigIo, LoadedConfig } from './configSources.js'
export { CONFIG_ENV, CONFIG_FLAG, loadConfig, parseConfig } from './configSources.js'
