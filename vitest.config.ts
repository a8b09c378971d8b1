import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const src = (pkg: string, entry = 'index.ts') =>
  fileURLToPath(new URL(`./packages/${pkg}/src/${entry}`, import.meta.url))

// Package names resolve to src/ so the whole workspace tests without a build (STYLE.md, tRPC's habit).
export default defineConfig({
  resolve: {
    // In order, first match wins: a subpath entry comes before its package's, which would also match it.
    alias: [
      { find: '@parley/protocol', replacement: src('protocol') },
      { find: /^@parley\/client\/testing$/, replacement: src('client', 'testing/index.ts') },
      { find: '@parley/client', replacement: src('client') },
      { find: '@parley/node', replacement: src('node') },
      { find: '@parley/browser', replacement: src('browser') },
      // The relay's exports point at its build (dist/) for the published package; tests run its sources.
      {
        find: /^@parley\/relay\/testing$/,
        replacement: fileURLToPath(new URL('./apps/relay/testing/index.ts', import.meta.url)),
      },
      {
        find: /^@parley\/relay$/,
        replacement: fileURLToPath(new URL('./apps/relay/src/index.ts', import.meta.url)),
      },
    ],
  },
  test: {
    include: [
      'packages/*/src/**/*.test.ts',
      'packages/*/test/**/*.test.ts',
      'apps/*/src/**/*.test.ts',
      'apps/*/test/**/*.test.ts',
      'tests/*/**/*.test.ts',
    ],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
})
