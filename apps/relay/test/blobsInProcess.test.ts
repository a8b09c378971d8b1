// Blobs with the programmatic API: a given blob store is used and closed with the relay (a `:memory:` relay's own is
// a temporary directory, deleted at close), and a nearly full disk refuses new grants UNAVAILABLE (counted) until
// there is room again.
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { FileBlobStore } from '../src/BlobStore.js'
import { activate, expectError, inProcess, RawClient } from '../testing/index.js'

const MiB = 1024 * 1024
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

describe('blobs (in-process)', () => {
  it('uses a given blob store and closes it with the relay (a temporary one deletes its directory)', async () => {
    const blobStore = await FileBlobStore.temporary()
    const { relay, verifier } = await inProcess({ blobStore })
    const c = await RawClient.open(relay.url)
    await activate(c, verifier, '+14155550141')
    const bytes = randomBytes(4096)
    const g = (await c.request({ blobUploadRequest: { size: bytes.length, downloads: 1 } }))
      .blobUploadGranted!
    const url = `${relay.httpUrl}/v1/blobs/${hex(g.blobId)}`
    const up = await fetch(url, {
      method: 'PUT',
      headers: { authorization: `Bearer ${hex(g.uploadToken)}` },
      body: bytes,
    })
    expect(up.status).toBe(201)
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(bytes)).toBe(true)
    c.close()
    await relay.close()
    expect(existsSync(blobStore.dir)).toBe(false)
  })

  it('refuses new grants UNAVAILABLE while the disk is nearly full, and grants again after', async () => {
    let free = 1024 * MiB
    const { relay, verifier } = await inProcess({
      minFreeDiskBytes: 256 * MiB,
      diskFree: async () => free,
      diskCheckIntervalMs: 40,
    })
    const c = await RawClient.open(relay.url)
    await activate(c, verifier, '+14155550142')
    const ask = () => c.request({ blobUploadRequest: { size: 100, downloads: 1 } })
    const later = () => new Promise((r) => setTimeout(r, 60))
    expect((await ask()).blobUploadGranted?.blobId).toHaveLength(32)
    free = 255 * MiB
    await later()
    const err = await expectError(ask(), 'UNAVAILABLE')
    expect(err.retryAfterMs).toBeGreaterThan(0)
    const metrics = await (await fetch(relay.metricsUrl!)).text()
    expect(metrics).toMatch(/^parley_relay_blobs_total\{event="refused_disk"\} 1$/m)
    free = 257 * MiB
    await later()
    expect((await ask()).blobUploadGranted?.blobId).toHaveLength(32)
    c.close()
    await relay.close()
  })
})
