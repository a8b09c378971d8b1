// The esbuild options every browser bundle of the SDK is built with: the SDK's own (bundle.mjs, size.mjs), the
// demo page's (apps/demo/lib/index.ts) and the contract tests' (tests/contract/browser.e2e.test.ts), so that all
// of them bundle the SDK the same way. Types in esbuildOptions.d.mts. Not shipped (`files` in package.json).

/**
 * What a user's bundler would do with the package (ESM for the browser, minified, tree-shaken), workspace
 * packages resolving to their TypeScript sources through the `parley-source` export condition. Spread it, then
 * set what differs (`format`, `globalName`, entry and output).
 */
export const browserOptions = Object.freeze({
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  conditions: ['parley-source', 'browser', 'import'],
  mainFields: ['browser', 'module', 'main'],
  minify: true,
  treeShaking: true,
  legalComments: 'none',
  logLevel: 'silent',
})
