// The demo page's files (lib/index.ts): built from the sources, served from a fresh build, rebuilt when stale.
import { appendFileSync, mkdtempSync, readFileSync, rmSync, unlinkSync, utimesSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildDemo, DEMO_FILE_NAMES, type DemoFiles, demoFiles, isFresh } from '../lib/index.js'

describe('@parley/demo', () => {
  const out = mkdtempSync(join(tmpdir(), 'parley-demo-'))
  let built: DemoFiles

  beforeAll(async () => {
    built = await buildDemo(out)
  })
  afterAll(() => rmSync(out, { recursive: true, force: true }))

  it('builds index.html and demo.css as they are and demo.js with the SDK bundled in', () => {
    expect(Object.keys(built).sort()).toEqual([...DEMO_FILE_NAMES].sort())
    expect(built['index.html'].toString().startsWith('<!doctype html>')).toBe(true)
    expect(built['index.html'].toString()).toContain('<script type="module" src="/demo.js"></script>')
    expect(built['demo.css'].toString().startsWith(':root')).toBe(true)
    const js = built['demo.js'].toString()
    expect(js.length).toBeGreaterThan(10_000)
    expect(js.includes('parley-demo-') && js.includes('IndexedDB')).toBe(true) // the page and the SDK's store
    expect(/^import |\bimport\(["']@parley/m.test(js)).toBe(false) // one self-contained module
    for (const name of DEMO_FILE_NAMES) expect(readFileSync(join(out, name))).toEqual(built[name])
  })

  it('lists what demo.js was made of: the page, the static files and the SDK sources', () => {
    const { inputs } = JSON.parse(readFileSync(join(out, 'inputs.json'), 'utf8')) as { inputs: string[] }
    expect(inputs).toEqual(expect.arrayContaining(['index.html', 'demo.css', 'src/demo.ts']))
    expect(inputs.some((i) => /packages\/browser\/src\/index\.ts$/.test(i))).toBe(true)
    expect(inputs.some((i) => /packages\/client\/src\//.test(i))).toBe(true)
  })

  it('serves a fresh build as it is, and rebuilds one older than its inputs or incomplete', async () => {
    expect(await isFresh(out)).toBe(true)
    appendFileSync(join(out, 'demo.js'), '\n// marker\n')
    expect((await demoFiles(out))['demo.js'].toString()).toContain('// marker')

    utimesSync(join(out, 'demo.js'), 0, 0) // older than every source
    expect(await isFresh(out)).toBe(false)
    const rebuilt = await demoFiles(out)
    expect(rebuilt['demo.js'].toString()).not.toContain('// marker')
    expect(rebuilt['demo.js']).toEqual(built['demo.js'])
    expect(await isFresh(out)).toBe(true)

    unlinkSync(join(out, 'demo.css'))
    expect(await isFresh(out)).toBe(false)
    expect((await demoFiles(out))['demo.css']).toEqual(built['demo.css'])
    expect(readFileSync(join(out, 'demo.css'))).toEqual(built['demo.css'])
  })

  it('is not fresh without a build', async () => {
    expect(await isFresh(join(out, 'missing'))).toBe(false)
  })
})
