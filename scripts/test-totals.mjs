// Prints vitest's totals as one plain line, `N passed, N failed, N skipped`, and fails when the run failed
// or when nothing passed.
import { existsSync, readFileSync } from 'node:fs'

const [file, status] = process.argv.slice(2)
if (!file || !existsSync(file)) {
  console.log('0 passed, 1 failed')
  console.error(`no test report at ${file}`)
  process.exit(1)
}
const r = JSON.parse(readFileSync(file, 'utf8'))
const passed = r.numPassedTests ?? 0
const failed = (r.numFailedTests ?? 0) + (r.numFailedTestSuites ?? 0)
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0)
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
if (passed === 0 || failed > 0 || (status !== undefined && status !== '0')) process.exit(1)
