// The file blob store's own behaviour (what every blob store does is in conformance/blobStore.ts): bytes become
// readable only once complete, whatever a crash leaves behind; what a reopen keeps and deletes; the files it leaves.
import { randomBytes } from 'node:crypto'
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { FileBlobStore } from '../src/BlobStore.js'
import { blobMeta, bytesOf, cutOff, NOW } from './conformance/blobStore.js'

const dirs: string[] = []
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'parley-blobs-test-'))
  dirs.push(d)
  return d
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

const meta = blobMeta

describe('FileBlobStore', () => {
  it('keeps exactly the ciphertext in <id>.blob, and no file once the last download deleted it', async () => {
    const dir = tempDir()
    const store = await FileBlobStore.open(dir)
    const m = meta()
    const bytes = randomBytes(m.size)
    expect(await store.create(m, 10_000)).toBe(true)
    await store.begin(m.id)
    expect(await store.write(m.id, Readable.from([bytes.subarray(0, 300), bytes.subarray(300)]))).toBe(m.size)
    expect(await store.read(m.id)).toBeUndefined()
    await store.complete(m.id)
    expect(await store.storedBytes()).toBe(m.size)
    expect((await bytesOf(await store.read(m.id)))?.equals(bytes)).toBe(true)
    // The file holds exactly the ciphertext.
    expect(readFileSync(join(dir, `${m.id}.blob`)).equals(bytes)).toBe(true)
    expect(await store.countDownload(m.id)).toEqual({ deleted: false })
    expect((await store.get(m.id))?.downloadsLeft).toBe(1)
    expect(await store.countDownload(m.id)).toEqual({ deleted: true })
    expect(await store.get(m.id)).toBeUndefined()
    expect(await store.read(m.id)).toBeUndefined()
    expect(readdirSync(dir)).toEqual([])
    expect(await store.storedBytes()).toBe(0)
    await store.close()
  })

  it('keeps downloads left across a reopen', async () => {
    const dir = tempDir()
    const store = await FileBlobStore.open(dir)
    const m = meta({ downloadsLeft: 3 })
    await store.create(m, 10_000)
    await store.begin(m.id)
    await store.write(m.id, Readable.from([randomBytes(m.size)]))
    await store.complete(m.id)
    await store.countDownload(m.id)
    await store.close()
    const again = await FileBlobStore.open(dir)
    expect((await again.get(m.id))?.downloadsLeft).toBe(2)
    expect(await again.storedBytes()).toBe(m.size)
    await again.close()
  })

  it('never makes a partial upload readable: a failed write, or a crash at any step before complete', async () => {
    const dir = tempDir()
    const store = await FileBlobStore.open(dir)
    const m = meta()
    const bytes = randomBytes(m.size)
    await store.create(m, 10_000)
    // Only a claimed upload is written, and a grant is claimed once.
    await expect(store.write(m.id, Readable.from([bytes]))).rejects.toThrow()
    expect(await store.begin(m.id)).toBe(true)
    expect(await store.begin(m.id)).toBe(false)
    await expect(store.write(m.id, cutOff(bytes))).rejects.toThrow('connection reset')
    expect(await store.read(m.id)).toBeUndefined()
    // A crash mid-upload: the partial bytes are on disk, the metadata says pending.
    expect(existsSync(join(dir, `${m.id}.part`))).toBe(true)
    const reopened = await FileBlobStore.open(dir)
    expect(existsSync(join(dir, `${m.id}.part`))).toBe(false)
    // The upload died with its process: the grant may be uploaded again.
    expect((await reopened.get(m.id))?.state).toBe('pending')
    expect(await reopened.read(m.id)).toBeUndefined()
    // A crash after the bytes were renamed into place but before the metadata said complete: still pending, and
    // never readable.
    await reopened.begin(m.id)
    await reopened.write(m.id, Readable.from([bytes]))
    renameSync(join(dir, `${m.id}.part`), join(dir, `${m.id}.blob`))
    const afterRename = await FileBlobStore.open(dir)
    expect((await afterRename.get(m.id))?.state).toBe('pending')
    expect(await afterRename.read(m.id)).toBeUndefined()
    // The grant can still be uploaded in full.
    await afterRename.begin(m.id)
    await afterRename.write(m.id, Readable.from([bytes]))
    expect(await afterRename.complete(m.id)).toBe(true)
    expect((await bytesOf(await afterRename.read(m.id)))?.equals(bytes)).toBe(true)
    expect(await afterRename.begin(m.id)).toBe(false)
    await afterRename.close()
  })

  it('deletes leftovers at open: bytes without metadata, temporary metadata, a complete record without bytes', async () => {
    const dir = tempDir()
    const orphan = randomBytes(32).toString('hex')
    writeFileSync(join(dir, `${orphan}.blob`), randomBytes(10))
    writeFileSync(join(dir, `${orphan}.json.1234abcd.tmp`), '{"half":')
    const lost = meta({ state: 'complete' })
    writeFileSync(join(dir, `${lost.id}.json`), JSON.stringify(lost))
    const store = await FileBlobStore.open(dir)
    expect(readdirSync(dir)).toEqual([])
    expect(await store.get(lost.id)).toBeUndefined()
    expect(await store.storedBytes()).toBe(0)
    await store.close()
  })

  it('settles a failed write only once its file is closed, so a delete right after leaves nothing', async () => {
    const dir = tempDir()
    const store = await FileBlobStore.open(dir)
    for (let i = 0; i < 5; i++) {
      const m = meta()
      await store.create(m, 1_000_000)
      await store.begin(m.id)
      // Fails before a byte: the file is still being opened when the pipeline gives up.
      const failing = new Readable({
        read() {
          this.destroy(new Error('connection reset'))
        },
      })
      await expect(store.write(m.id, failing)).rejects.toThrow('connection reset')
      expect(existsSync(join(dir, `${m.id}.part`))).toBe(true)
      await store.delete(m.id)
      expect(readdirSync(dir)).toEqual([])
    }
    await store.close()
  })

  it('leaves only the metadata of a blob not yet due after a sweep', async () => {
    const dir = tempDir()
    const store = await FileBlobStore.open(dir)
    const done = meta({ expiresAtMs: NOW + 10_000, uploadExpiresAtMs: NOW + 1000 })
    const abandoned = meta({ expiresAtMs: NOW + 10_000, uploadExpiresAtMs: NOW + 1000 })
    const later = meta({ expiresAtMs: NOW + 20_000, uploadExpiresAtMs: NOW + 20_000 })
    for (const m of [done, abandoned, later]) await store.create(m, 10_000)
    await store.begin(done.id)
    await store.write(done.id, Readable.from([randomBytes(done.size)]))
    await store.complete(done.id)
    expect(await store.sweep(NOW)).toEqual({ expired: 0, abandoned: 0, bytes: 0 })
    expect(await store.sweep(NOW + 1000)).toEqual({ expired: 0, abandoned: 1, bytes: 0 })
    expect(await store.get(abandoned.id)).toBeUndefined()
    expect(await store.get(done.id)).toBeDefined()
    expect(await store.sweep(NOW + 10_000)).toEqual({ expired: 1, abandoned: 0, bytes: done.size })
    expect(await store.read(done.id)).toBeUndefined()
    expect(await store.storedBytes()).toBe(0)
    expect(readdirSync(dir).sort()).toEqual([`${later.id}.json`])
    await store.close()
  })

  it('makes its directory with the first grant, so a relay without blobs has none', async () => {
    const dir = join(tempDir(), 'blobs')
    const store = await FileBlobStore.open(dir)
    expect(existsSync(dir)).toBe(false)
    expect(await store.create(meta(), 10_000)).toBe(true)
    expect(readdirSync(dir)).toHaveLength(1)
    await store.close()
  })

  it('a temporary store deletes its directory at close', async () => {
    const store = await FileBlobStore.temporary()
    expect(existsSync(store.dir)).toBe(true)
    await store.close()
    expect(existsSync(store.dir)).toBe(false)
  })
})
