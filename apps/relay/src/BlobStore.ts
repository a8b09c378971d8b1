/**
 * The blob store: end-to-end encrypted attachments the relay holds for a while. A client asks for room with
 * `BlobUploadRequest` (handlers/blobs.ts), PUTs the ciphertext over HTTP with a single-use token, and recipients
 * GET it by its random 32-byte id (blobHttp.ts). The relay never has the key: it stores ciphertext under a random
 * id, the size, how many complete downloads are left, the expiry, the hash of the upload token, and the owner's
 * quota id (a keyed hash, never the address). The port below is what the HTTP and frame handlers use;
 * {@link FileBlobStore} keeps everything under `<dataDir>/blobs/`.
 * @module
 */
import { randomBytes } from 'node:crypto'
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { open, readFile, rename, rm, stat, unlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

/**
 * Where a blob is in its life: granted and awaiting its bytes, its one upload under way, or uploaded and readable.
 */
export type BlobState = 'pending' | 'uploading' | 'complete'

/** What the relay knows of one blob besides its bytes. */
export interface BlobMeta {
  /** The blob's id, 64 lowercase hex characters (32 random bytes). */
  id: string
  /** The uploader account's quota id (handlers/util.ts `quotaId`): a keyed hash, not the address. */
  owner: string
  /** The ciphertext's exact length in bytes. */
  size: number
  /** Complete downloads left before the blob is deleted. */
  downloadsLeft: number
  /** Unix ms after which the blob is deleted, downloaded or not. */
  expiresAtMs: number
  /** Unix ms after which a pending blob's upload token is no longer accepted (and the grant is swept). */
  uploadExpiresAtMs: number
  /** SHA-256 of the upload token, hex; the token itself is never stored. */
  tokenHash: string
  state: BlobState
}

/** What {@link BlobStore.sweep} removed. */
export interface BlobSweep {
  /** Blobs past their expiry. */
  expired: number
  /** Grants whose upload never completed before their token expired. */
  abandoned: number
  /** Ciphertext bytes of complete blobs deleted. */
  bytes: number
}

/** The outcome of {@link BlobStore.countDownload}. */
export interface CountedDownload {
  /** Whether that was the last download, so the blob is now deleted. */
  deleted: boolean
}

/** Storage of blobs: metadata and ciphertext bytes. Every method with an unknown id is a no-op or `undefined`. */
export interface BlobStore {
  /**
   * Records a new pending blob, unless the owner's blobs (pending and complete) would then hold more than
   * `ownerLimit` bytes.
   * @returns whether it was recorded
   */
  create(meta: BlobMeta, ownerLimit: number): Promise<boolean>
  /** A blob's metadata, whatever its state or expiry. */
  get(id: string): Promise<BlobMeta | undefined>
  /**
   * Claims a pending blob for its one upload (`pending` → `uploading`), atomically: of concurrent callers, on any
   * node, one gets true. False while another upload of it runs, once it is complete, or when it is gone.
   */
  begin(id: string): Promise<boolean>
  /**
   * Streams `source` into the upload area of a blob being uploaded ({@link BlobStore.begin}), replacing anything
   * there; never readable until {@link BlobStore.complete}. Rejects with the source's error (the partial bytes
   * stay until `discard` or `delete`).
   * @returns the bytes written
   */
  write(id: string, source: AsyncIterable<Uint8Array> | Readable): Promise<number>
  /**
   * Makes a fully written blob readable: its bytes durable first, then its state `complete`.
   * @returns false when it is no longer being uploaded (deleted meanwhile): nothing of it stays
   */
  complete(id: string): Promise<boolean>
  /** Removes a pending blob's partial bytes (its grant stays). */
  discard(id: string): Promise<void>
  /** A complete blob's bytes as a stream, or `undefined` when it is not complete (or gone). */
  read(id: string): Promise<Readable | undefined>
  /** Counts one complete download; deletes the blob with its last one. */
  countDownload(id: string): Promise<CountedDownload | undefined>
  /** Deletes a blob: metadata, bytes, partial bytes. */
  delete(id: string): Promise<void>
  /** Bytes held for `owner`: the sizes of its pending and complete blobs. */
  ownerBytes(owner: string): Promise<number>
  /** Ciphertext bytes of all complete blobs. */
  storedBytes(): Promise<number>
  /**
   * Deletes every blob past its expiry, and every pending blob past its upload token's expiry (one being uploaded
   * is left to its upload, which either completes it or deletes it).
   */
  sweep(nowMs: number): Promise<BlobSweep>
  /** Releases the store (and, for a temporary one, deletes its directory). */
  close(): Promise<void>
}

const ID_RE = /^[0-9a-f]{64}$/

/** Options of {@link FileBlobStore}. */
export interface FileBlobStoreOptions {
  /** Delete the directory at {@link FileBlobStore.close} (a temporary store). */
  temporary?: boolean
}

/**
 * Blobs as files in one directory: `<id>.blob` (the ciphertext, only once complete), `<id>.part` (an upload in
 * progress), `<id>.json` (the metadata). Every metadata write goes to a temporary file, is fsynced and renamed
 * over the old one; completing an upload fsyncs `<id>.part` and renames it to `<id>.blob` before the metadata
 * says `complete`, so a crash at any point leaves either a pending blob (never readable; swept when its token
 * expires) or a complete one whose bytes are all there. At open, partial uploads and files without metadata are
 * deleted. The metadata is also kept in memory (the per-owner sums and the sweep read it), so one directory
 * belongs to one relay process; so is the `uploading` state, which is never written (an upload does not survive
 * its process: the blob is `pending` again after a restart).
 */
export class FileBlobStore implements BlobStore {
  readonly dir: string
  readonly #temporary: boolean
  readonly #meta = new Map<string, BlobMeta>()
  #stored = 0
  /** Whether the directory exists: it is made with the first grant, so a relay without blobs has none. */
  #dirMade = false

  private constructor(dir: string, temporary: boolean) {
    this.dir = dir
    this.#temporary = temporary
  }

  /**
   * Opens the store in `dir` (made with the first grant), reading every blob's metadata and deleting leftovers of
   * interrupted writes.
   * @param dir - e.g. `<dataDir>/blobs`
   */
  static async open(dir: string, options: FileBlobStoreOptions = {}): Promise<FileBlobStore> {
    const store = new FileBlobStore(dir, options.temporary ?? false)
    await store.#load()
    return store
  }

  /** A store in a fresh temporary directory, deleted at close (for a relay whose data directory is `:memory:`). */
  static temporary(): Promise<FileBlobStore> {
    return FileBlobStore.open(mkdtempSync(join(tmpdir(), 'parley-blobs-')), { temporary: true })
  }

  async #load(): Promise<void> {
    if (!existsSync(this.dir)) return
    this.#dirMade = true
    const names = readdirSync(this.dir)
    for (const name of names) {
      const m = /^([0-9a-f]{64})\.json$/.exec(name)
      if (!m) continue
      try {
        const meta = JSON.parse(await readFile(join(this.dir, name), 'utf8')) as BlobMeta
        if (meta.id !== m[1]) continue
        if (meta.state === 'uploading') meta.state = 'pending'
        if (meta.state === 'complete' && !(await exists(this.#path(meta.id, 'blob')))) {
          await this.delete(meta.id)
          continue
        }
        this.#meta.set(meta.id, meta)
        if (meta.state === 'complete') this.#stored += meta.size
      } catch {}
    }
    // Anything else is a leftover: a partial upload (its grant stays pending), a temporary metadata file, bytes
    // whose metadata never got written.
    for (const name of names) {
      const id = name.slice(0, 64)
      const keep = ID_RE.test(id) && this.#meta.has(id) && (name.endsWith('.json') || name.endsWith('.blob'))
      if (!keep) rmSync(join(this.dir, name), { force: true, recursive: true })
    }
  }

  #path(id: string, kind: 'blob' | 'part' | 'json'): string {
    if (!ID_RE.test(id)) throw new RangeError('not a blob id')
    return join(this.dir, `${id}.${kind}`)
  }

  async #saveMeta(meta: BlobMeta): Promise<void> {
    const path = this.#path(meta.id, 'json')
    const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`
    const fh = await open(tmp, 'w', 0o600)
    try {
      await fh.writeFile(JSON.stringify(meta))
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, path)
    await syncDir(this.dir)
  }

  async create(meta: BlobMeta, ownerLimit: number): Promise<boolean> {
    if (this.#meta.has(meta.id)) return false
    // Checked and reserved in the same turn, so concurrent grants of one owner cannot both pass.
    if (this.#ownerBytes(meta.owner) + meta.size > ownerLimit) return false
    const record = { ...meta }
    this.#meta.set(meta.id, record)
    try {
      if (!this.#dirMade) mkdirSync(this.dir, { recursive: true, mode: 0o700 })
      this.#dirMade = true
      await this.#saveMeta(record)
    } catch (err) {
      this.#meta.delete(meta.id)
      throw err
    }
    return true
  }

  async get(id: string): Promise<BlobMeta | undefined> {
    const meta = this.#meta.get(id)
    return meta && { ...meta }
  }

  async begin(id: string): Promise<boolean> {
    const meta = this.#meta.get(id)
    if (meta?.state !== 'pending') return false
    this.#meta.set(id, { ...meta, state: 'uploading' })
    return true
  }

  async write(id: string, source: AsyncIterable<Uint8Array> | Readable): Promise<number> {
    if (this.#meta.get(id)?.state !== 'uploading') throw new Error('no upload of this blob under way')
    let written = 0
    const out = createWriteStream(this.#path(id, 'part'), { mode: 0o600 })
    try {
      await pipeline(
        source,
        async function* (chunks: AsyncIterable<Uint8Array>) {
          for await (const chunk of chunks) {
            written += chunk.length
            yield chunk
          }
        },
        out,
      )
    } catch (err) {
      // The file may still be opening: wait until it is closed, so that a delete after this finds it.
      if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()))
      throw err
    }
    return written
  }

  async complete(id: string): Promise<boolean> {
    const meta = this.#meta.get(id)
    if (meta?.state !== 'uploading') {
      await this.#removeFiles(id)
      return false
    }
    const part = this.#path(id, 'part')
    const fh = await open(part, 'r+')
    try {
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(part, this.#path(id, 'blob'))
    await syncDir(this.dir)
    const done: BlobMeta = { ...meta, state: 'complete' }
    await this.#saveMeta(done)
    // Deleted meanwhile (a sweep): the bytes go too.
    if (!this.#meta.has(id)) {
      await rm(this.#path(id, 'json'), { force: true })
      await this.#removeFiles(id)
      return false
    }
    this.#meta.set(id, done)
    this.#stored += done.size
    return true
  }

  async discard(id: string): Promise<void> {
    if (ID_RE.test(id)) await rm(this.#path(id, 'part'), { force: true })
  }

  async read(id: string): Promise<Readable | undefined> {
    const meta = this.#meta.get(id)
    if (meta?.state !== 'complete') return undefined
    // Opened before it returns, so a deletion right after (the last download of someone else) cannot take the
    // bytes from under a reader that already started.
    const fh = await open(this.#path(id, 'blob'), 'r').catch(() => undefined)
    if (!fh) return undefined
    return fh.createReadStream({ autoClose: true })
  }

  async countDownload(id: string): Promise<CountedDownload | undefined> {
    const meta = this.#meta.get(id)
    if (meta?.state !== 'complete') return undefined
    const next: BlobMeta = { ...meta, downloadsLeft: meta.downloadsLeft - 1 }
    if (next.downloadsLeft <= 0) {
      await this.delete(id)
      return { deleted: true }
    }
    this.#meta.set(id, next)
    await this.#saveMeta(next)
    return { deleted: false }
  }

  async delete(id: string): Promise<void> {
    if (!ID_RE.test(id)) return
    const meta = this.#meta.get(id)
    if (meta) {
      this.#meta.delete(id)
      if (meta.state === 'complete') this.#stored -= meta.size
    }
    // The metadata first: without it, the bytes are leftovers the next open deletes.
    await rm(this.#path(id, 'json'), { force: true })
    await this.#removeFiles(id)
  }

  async #removeFiles(id: string): Promise<void> {
    await Promise.all([
      unlink(this.#path(id, 'blob')).catch(() => {}),
      unlink(this.#path(id, 'part')).catch(() => {}),
    ])
  }

  #ownerBytes(owner: string): number {
    let sum = 0
    for (const meta of this.#meta.values()) if (meta.owner === owner) sum += meta.size
    return sum
  }

  async ownerBytes(owner: string): Promise<number> {
    return this.#ownerBytes(owner)
  }

  async storedBytes(): Promise<number> {
    return this.#stored
  }

  async sweep(nowMs: number): Promise<BlobSweep> {
    const result: BlobSweep = { expired: 0, abandoned: 0, bytes: 0 }
    for (const meta of [...this.#meta.values()]) {
      if (meta.expiresAtMs <= nowMs) {
        result.expired++
        if (meta.state === 'complete') result.bytes += meta.size
      } else if (meta.state === 'pending' && meta.uploadExpiresAtMs <= nowMs) {
        result.abandoned++
      } else continue
      await this.delete(meta.id)
    }
    return result
  }

  async close(): Promise<void> {
    this.#meta.clear()
    if (this.#temporary) rmSync(this.dir, { recursive: true, force: true })
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/** Makes a rename in `dir` durable (a no-op where directories cannot be opened for fsync). */
async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r')
    try {
      await fh.sync()
    } finally {
      await fh.close()
    }
  } catch {}
}
