// The BlobStore conformance suite: what every blob store must do, whatever keeps the bytes. Run against the
// file store (always) and PostgreSQL (when it is up) by blobStore.test.ts. A harness with `peer` is a shared
// store (another relay node's view of the same blobs), and is also held to what holds across nodes.
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { afterEach, expect, it } from 'vitest'
import type { BlobMeta, BlobStore } from '../../src/BlobStore.js'

/** How the suite gets stores. */
export interface BlobStoreHarness {
  /** A fresh, empty store. */
  open(): Promise<BlobStore>
  /** A second handle on the same blobs (another node), for shared stores only. */
  peer?(store: BlobStore): Promise<BlobStore>
}

export const NOW = 1_700_000_000_000

/** A blob's metadata with random id, `size` 1000 and two downloads, owned by `owner-a`. */
export const blobMeta = (over: Partial<BlobMeta> = {}): BlobMeta => ({
  id: randomBytes(32).toString('hex'),
  owner: 'owner-a',
  size: 1000,
  downloadsLeft: 2,
  expiresAtMs: NOW + 86_400_000,
  uploadExpiresAtMs: NOW + 3_600_000,
  tokenHash: 'ab'.repeat(32),
  state: 'pending',
  ...over,
})

/** The whole of a stream, or undefined for none. */
export async function bytesOf(stream: Readable | undefined): Promise<Buffer | undefined> {
  if (!stream) return undefined
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

/** A source that yields `bytes` in a few chunks and then fails, as a connection cut mid-upload does. */
export async function* cutOff(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes.subarray(0, 100)
  yield bytes.subarray(100, 200)
  throw new Error('connection reset')
}

/** Grants, uploads and completes a blob of `meta.size` random bytes; returns them. */
export async function uploaded(store: BlobStore, meta: BlobMeta, limit = 1 << 30): Promise<Buffer> {
  const bytes = randomBytes(meta.size)
  expect(await store.create(meta, limit)).toBe(true)
  expect(await store.begin(meta.id)).toBe(true)
  expect(await store.write(meta.id, Readable.from([bytes]))).toBe(meta.size)
  expect(await store.complete(meta.id)).toBe(true)
  return bytes
}

export function blobStoreConformance(h: BlobStoreHarness): void {
  const opened: BlobStore[] = []
  const open = async () => {
    const s = await h.open()
    opened.push(s)
    return s
  }
  const peerOf = async (s: BlobStore) => {
    const p = await h.peer!(s)
    opened.push(p)
    return p
  }
  afterEach(async () => {
    for (const s of opened.splice(0).reverse()) await s.close()
  })

  it('stores, reads back byte for byte, counts downloads down to deletion', async () => {
    const store = await open()
    const m = blobMeta()
    const bytes = randomBytes(m.size)
    expect(await store.create(m, 10_000)).toBe(true)
    expect((await store.get(m.id))?.state).toBe('pending')
    expect(await store.begin(m.id)).toBe(true)
    expect(await store.write(m.id, Readable.from([bytes.subarray(0, 300), bytes.subarray(300)]))).toBe(m.size)
    expect(await store.read(m.id)).toBeUndefined()
    expect(await store.storedBytes()).toBe(0)
    expect(await store.complete(m.id)).toBe(true)
    expect(await store.get(m.id)).toEqual({ ...m, state: 'complete' })
    expect(await store.storedBytes()).toBe(m.size)
    expect((await bytesOf(await store.read(m.id)))?.equals(bytes)).toBe(true)
    expect(await store.countDownload(m.id)).toEqual({ deleted: false })
    expect((await store.get(m.id))?.downloadsLeft).toBe(1)
    expect(await store.countDownload(m.id)).toEqual({ deleted: true })
    expect(await store.get(m.id)).toBeUndefined()
    expect(await store.read(m.id)).toBeUndefined()
    expect(await store.countDownload(m.id)).toBeUndefined()
    expect(await store.storedBytes()).toBe(0)
    expect(await store.ownerBytes(m.owner)).toBe(0)
  })

  it('keeps a file of many chunks whole, in order', async () => {
    const store = await open()
    const m = blobMeta({ size: 3 * 1024 * 1024 + 12_345 })
    const bytes = randomBytes(m.size)
    await store.create(m, 1 << 30)
    await store.begin(m.id)
    // Uneven pieces, as a socket delivers them.
    const pieces: Buffer[] = []
    for (let at = 0; at < bytes.length; at += 65_537) pieces.push(bytes.subarray(at, at + 65_537))
    expect(await store.write(m.id, Readable.from(pieces))).toBe(m.size)
    await store.complete(m.id)
    expect((await bytesOf(await store.read(m.id)))?.equals(bytes)).toBe(true)
  })

  it('never makes a partial upload readable, and claims a grant once', async () => {
    const store = await open()
    const m = blobMeta()
    const bytes = randomBytes(m.size)
    await store.create(m, 10_000)
    // Only a claimed upload is written.
    await expect(store.write(m.id, Readable.from([bytes]))).rejects.toThrow()
    expect(await store.begin(m.id)).toBe(true)
    expect(await store.begin(m.id)).toBe(false)
    await expect(store.write(m.id, cutOff(bytes))).rejects.toThrow('connection reset')
    expect(await store.read(m.id)).toBeUndefined()
    expect(await store.storedBytes()).toBe(0)
    // What the HTTP handler does with a failed upload: the grant goes.
    await store.delete(m.id)
    expect(await store.get(m.id)).toBeUndefined()
    expect(await store.complete(m.id)).toBe(false)
    expect(await store.read(m.id)).toBeUndefined()
  })

  it('answers every call with an id that is not a blob id as unknown', async () => {
    const store = await open()
    for (const id of ['', 'AB'.repeat(32), '../'.repeat(20), 'a'.repeat(63)]) {
      expect(await store.get(id)).toBeUndefined()
      expect(await store.begin(id)).toBe(false)
      expect(await store.read(id)).toBeUndefined()
      expect(await store.countDownload(id)).toBeUndefined()
      await store.delete(id)
    }
  })

  it("refuses a grant beyond the owner's byte limit, counting pending grants, and frees on deletion", async () => {
    const store = await open()
    const a = blobMeta({ size: 600 })
    const b = blobMeta({ size: 400 })
    expect(await store.create(a, 1000)).toBe(true)
    expect(await store.create(b, 1000)).toBe(true)
    expect(await store.ownerBytes('owner-a')).toBe(1000)
    expect(await store.create(blobMeta({ size: 1 }), 1000)).toBe(false)
    // Another owner has its own limit.
    expect(await store.create(blobMeta({ size: 1000, owner: 'owner-b' }), 1000)).toBe(true)
    // An id already granted is not granted again.
    expect(await store.create({ ...b, owner: 'owner-c' }, 1000)).toBe(false)
    await store.delete(a.id)
    expect(await store.ownerBytes('owner-a')).toBe(400)
    expect(await store.create(blobMeta({ size: 600 }), 1000)).toBe(true)
  })

  it('leaves an upload under way to its upload, and completes nothing that was deleted meanwhile', async () => {
    const store = await open()
    const m = blobMeta({ uploadExpiresAtMs: NOW + 1000 })
    await store.create(m, 10_000)
    await store.begin(m.id)
    await store.write(m.id, Readable.from([randomBytes(m.size)]))
    expect(await store.sweep(NOW + 1000)).toEqual({ expired: 0, abandoned: 0, bytes: 0 })
    await store.delete(m.id)
    expect(await store.complete(m.id)).toBe(false)
    expect(await store.get(m.id)).toBeUndefined()
    expect(await store.storedBytes()).toBe(0)
  })

  it('sweeps expired blobs and abandoned grants by the time it is given', async () => {
    const store = await open()
    const done = blobMeta({ expiresAtMs: NOW + 10_000, uploadExpiresAtMs: NOW + 1000 })
    const abandoned = blobMeta({ expiresAtMs: NOW + 10_000, uploadExpiresAtMs: NOW + 1000 })
    const later = blobMeta({ expiresAtMs: NOW + 20_000, uploadExpiresAtMs: NOW + 20_000 })
    await uploaded(store, done)
    for (const m of [abandoned, later]) await store.create(m, 10_000)
    expect(await store.sweep(NOW)).toEqual({ expired: 0, abandoned: 0, bytes: 0 })
    expect(await store.sweep(NOW + 1000)).toEqual({ expired: 0, abandoned: 1, bytes: 0 })
    expect(await store.get(abandoned.id)).toBeUndefined()
    expect(await store.get(done.id)).toBeDefined()
    expect(await store.sweep(NOW + 10_000)).toEqual({ expired: 1, abandoned: 0, bytes: done.size })
    expect(await store.read(done.id)).toBeUndefined()
    expect(await store.storedBytes()).toBe(0)
    expect((await store.get(later.id))?.state).toBe('pending')
    expect(await store.ownerBytes('owner-a')).toBe(later.size)
  })

  if (!h.peer) return

  it('shares blobs across nodes: granted on one, uploaded on another, downloaded on a third', async () => {
    const a = await open()
    const b = await peerOf(a)
    const c = await peerOf(a)
    const m = blobMeta({ size: 1024 * 1024 + 7 })
    const bytes = randomBytes(m.size)
    expect(await a.create(m, 1 << 30)).toBe(true)
    expect(await b.begin(m.id)).toBe(true)
    expect(await a.begin(m.id)).toBe(false)
    await b.write(m.id, Readable.from([bytes]))
    expect(await c.read(m.id)).toBeUndefined()
    expect(await b.complete(m.id)).toBe(true)
    expect((await bytesOf(await c.read(m.id)))?.equals(bytes)).toBe(true)
    expect(await c.storedBytes()).toBe(m.size)
    expect(await a.countDownload(m.id)).toEqual({ deleted: false })
    expect(await c.countDownload(m.id)).toEqual({ deleted: true })
    expect(await b.get(m.id)).toBeUndefined()
  })

  it('lets one of many nodes claim an upload, and one of many concurrent grants pass an owner limit', async () => {
    const nodes = [await open()]
    for (let i = 0; i < 3; i++) nodes.push(await peerOf(nodes[0]!))
    const m = blobMeta()
    await nodes[0]!.create(m, 10_000)
    const claims = await Promise.all(nodes.map((n) => n.begin(m.id)))
    expect(claims.filter(Boolean)).toHaveLength(1)
    // Each grant alone fits; any two together exceed the limit.
    const grants = await Promise.all(
      nodes.flatMap((n) => [
        n.create(blobMeta({ owner: 'owner-q', size: 600 }), 1000),
        n.create(blobMeta({ owner: 'owner-q', size: 600 }), 1000),
      ]),
    )
    expect(grants.filter(Boolean)).toHaveLength(1)
    expect(await nodes[2]!.ownerBytes('owner-q')).toBe(600)
  })
}
