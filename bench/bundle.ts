// Bundle size (issue 9, item 6): @parley/browser min+gzip, loaded up front, against its 80 KB budget, using the
// browser package's own size script (packages/browser/scripts/size.mjs). Skipped with a message if it is absent.
// Run alone: cd bench && npx tsx bundle.ts
import { existsSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { ROOT, record } from './lib.js'

const script = `${ROOT}packages/browser/scripts/size.mjs`
if (!existsSync(script)) {
  console.log('bundle: skipped, packages/browser/scripts/size.mjs does not exist yet')
  process.exit(0)
}
const size = (await import(pathToFileURL(script).href)) as {
  BUDGET_KB: number
  measure(): Promise<{ kb: number; lazyKb: number; totalKb: number }>
}
const m = await size.measure()
record(
  'bundle',
  [
    {
      metric: '@parley/browser, loaded up front (min+gzip)',
      unit: 'KB',
      value: m.kb,
      baselineName: 'budget',
      baseline: size.BUDGET_KB,
    },
    {
      // The budget is for the whole SDK as a bundler ships it: every chunk, the lazy number metadata included.
      metric: '@parley/browser, all chunks incl. lazy number metadata (min+gzip)',
      unit: 'KB',
      value: m.totalKb,
      baselineName: 'budget',
      baseline: size.BUDGET_KB,
      target: `≤ ${size.BUDGET_KB} KB`,
      met: m.totalKb <= size.BUDGET_KB,
    },
  ],
  [`lazy chunks (loaded on first use): ${m.lazyKb.toFixed(1)} KB`],
)
process.exit(0)
