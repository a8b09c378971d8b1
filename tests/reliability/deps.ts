// `ws` and `better-sqlite3` are the relay's own dependencies; resolving them from apps/relay keeps this package
// runnable before a `pnpm install` links its node_modules (vitest aliases only the @parley/* packages).
import { createRequire } from 'node:module'

const require = createRequire(new URL('../../apps/relay/package.json', import.meta.url))

/** The `ws` WebSocket class. */
export const WebSocket = require('ws') as typeof import('ws').default
/** better-sqlite3's Database constructor. */
export const Database = require('better-sqlite3') as typeof import('better-sqlite3')
