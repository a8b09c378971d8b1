// Runs the README's FakeRelay example as written (imports stripped and bound to the real modules), so that the
// README cannot drift from the testing API.
import { readFileSync } from 'node:fs'
import * as client from '@parley/client'
import * as testing from '@parley/client/testing'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

function example(): string {
  const section = readme.slice(readme.indexOf('## Testing your app against a fake relay'))
  const m = /```ts\n([\s\S]*?)```/.exec(section)
  if (m === null) throw new Error('README has no ts block under "Testing your app against a fake relay"')
  return m[1]!
}

describe('README', () => {
  it('runs the FakeRelay example as written', async () => {
    const source = example().replace(/^import .*$/gm, '')
    const js = ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2022 } }).outputText
    const tests: (() => Promise<void>)[] = []
    const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (
      ...args: string[]
    ) => (...values: unknown[]) => Promise<void>
    const names = ['it', 'expect', ...Object.keys(client), ...Object.keys(testing)]
    const run = new AsyncFunction(...names, js)
    const register = (_name: string, fn: () => Promise<void>) => void tests.push(fn)
    await run(register, expect, ...Object.values(client), ...Object.values(testing))
    expect(tests).toHaveLength(1)
    await tests[0]!()
  })
})
