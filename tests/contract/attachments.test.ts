// Attachments end to end through a real relay process: a 20 MiB file each way, encrypted by the sender, uploaded
// as ciphertext, downloaded and decrypted by the recipient with its digest checked; the relay deletes the blob
// once the recipient fetched it; a blob changed on the relay's disk is refused, never handed over. A file given as
// a stream is read as it uploads and downloaded as a stream, so neither side holds it whole.
import { createHash, randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ParleyClient } from '@parley/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { metric } from './attacker.js'
import { activatedClient, clientDir, codeOf, inbox, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+1 415 555 0180'
const BOB = '+1 415 555 0181'
const NOT_ON_PARLEY = '+1 415 555 0189'
const MiB = 1024 * 1024

/** All of a stream's bytes: their count and SHA-256, and whether (and how) it ended in an error. */
async function drain(stream: ReadableStream<Uint8Array>, hash = createHash('sha256')) {
  let bytes = 0
  try {
    for await (const piece of stream) {
      hash.update(piece)
      bytes += piece.length
    }
    return { bytes, digest: hash.digest('hex'), error: null }
  } catch (err) {
    return { bytes, digest: null, error: (err as { code?: string }).code ?? String(err) }
  }
}

describe('attachments through a real relay process', () => {
  const env = useRelay()
  const dir = clientDir()
  let alice: ParleyClient
  let bob: ParleyClient

  beforeAll(async () => {
    alice = await activatedClient(env.relay, env.codes, ALICE, { storePath: join(dir, 'alice.db') })
    bob = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob.db') })
  })

  afterAll(async () => {
    await Promise.all([alice?.close(), bob?.close()])
  })

  it('sends 20 MiB each way: the recipient gets exactly the file; the relay held only ciphertext, then nothing', async () => {
    for (const [from, to, toNumber] of [
      [alice, bob, BOB],
      [bob, alice, ALICE],
    ] as const) {
      const got = inbox(to)
      const data = new Uint8Array(randomBytes(20 * 1024 * 1024))
      const sent = await from.sendAttachment(toNumber, {
        data,
        mimeType: 'application/octet-stream',
        fileName: 'big.bin',
        caption: 'twenty mebibytes',
      })
      await until(() => got.some((m) => m.id === sent.id), 60_000, 'the attachment message')
      const m = got.find((x) => x.id === sent.id)!
      expect(m.text).toBe('twenty mebibytes')
      expect(m.attachment).toMatchObject({
        size: data.length,
        fileName: 'big.bin',
        mimeType: 'application/octet-stream',
      })
      // What the relay stores is the ciphertext: no 64-byte run of the file is in it.
      const blobs = join(env.relay.dataDir, 'blobs')
      const stored = readdirSync(blobs).filter((f) => f.endsWith('.blob'))
      expect(stored.length).toBe(1)
      const onDisk = readFileSync(join(blobs, stored[0]!))
      expect(onDisk.length).toBeGreaterThan(data.length)
      expect(onDisk.indexOf(Buffer.from(data.subarray(1_000_000, 1_000_064)))).toBe(-1)
      const back = await to.downloadAttachment(m.id)
      expect(Buffer.from(back).equals(Buffer.from(data))).toBe(true)
      // Fetched by the one device it was for: gone from the relay.
      expect(readdirSync(blobs).filter((f) => f.endsWith('.blob'))).toEqual([])
      expect(await codeOf(to.downloadAttachment(m.id))).toBe('NOT_FOUND')
    }
  })

  it('streams a file both ways without holding it: read as it uploads, released as it verifies', async () => {
    const SIZE = 64 * MiB
    const blobs = join(env.relay.dataDir, 'blobs')
    // The ciphertext the relay has written of the upload under way.
    const written = () => {
      const part = readdirSync(blobs).find((f) => f.endsWith('.part'))
      return part === undefined ? 0 : statSync(join(blobs, part)).size
    }
    const sentHash = createHash('sha256')
    let pulled = 0
    let lead = 0
    async function* file(): AsyncGenerator<Uint8Array> {
      for (let at = 0; at < SIZE; at += MiB) {
        // How far the SDK has read the file ahead of what reached the relay's disk.
        lead = Math.max(lead, pulled - written())
        const piece = new Uint8Array(randomBytes(MiB))
        sentHash.update(piece)
        pulled += piece.length
        yield piece
      }
    }
    const got = inbox(bob)
    const downloaded = () => metric(env.relay.metricsUrl, 'parley_relay_blobs_total', '{event="downloaded"}')
    const sent = await alice.sendAttachment(BOB, { stream: file(), size: SIZE, fileName: 'streamed.bin' })
    expect(pulled).toBe(SIZE)
    // Read whole first, the lead would be all 64 MiB.
    expect(lead).toBeLessThan(16 * MiB)
    await until(() => got.some((m) => m.id === sent.id), 60_000, 'the streamed attachment message')
    expect(got.find((m) => m.id === sent.id)!.attachment).toMatchObject({
      size: SIZE,
      fileName: 'streamed.bin',
    })

    const before = await downloaded()
    const stream = await bob.downloadAttachmentStream(sent.id)
    const reader = stream.getReader()
    const first = await reader.read()
    expect(first.value!.length).toBeGreaterThan(0)
    // The first bytes are out while the relay is still sending: the download is not held whole first.
    expect(await downloaded()).toBe(before)
    reader.releaseLock()
    const rest = await drain(stream, createHash('sha256').update(first.value!))
    expect(rest.error).toBeNull()
    expect(first.value!.length + rest.bytes).toBe(SIZE)
    expect(rest.digest).toBe(sentHash.digest('hex'))
    await until(async () => (await downloaded()) === before + 1, 10_000, 'the counted download')
  })

  it('errors a streamed download of a changed blob before its end, and sends nothing of a stream of the wrong length', async () => {
    const got = inbox(bob)
    const data = new Uint8Array(randomBytes(5 * 65_536 + 100))
    const sent = await alice.sendAttachment(BOB, { data })
    await until(() => got.some((m) => m.id === sent.id), 30_000, 'the attachment message')
    const blobs = join(env.relay.dataDir, 'blobs')
    const [file] = readdirSync(blobs).filter((f) => f.endsWith('.blob'))
    const bytes = readFileSync(join(blobs, file!))
    // One bit of the last chunk's tag: every chunk before it authenticates, the last does not.
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1
    writeFileSync(join(blobs, file!), bytes)
    const broken = await drain(await bob.downloadAttachmentStream(sent.id))
    expect(broken.error).toBe('VERIFICATION_FAILED')
    // What came out before the error is whole chunks from the file's start, never its end.
    expect(broken.bytes).toBeLessThan(data.length)
    expect(broken.bytes % 65_536).toBe(0)

    const short = async function* () {
      yield new Uint8Array(1000)
    }
    const refusedShort = () =>
      metric(env.relay.metricsUrl, 'parley_relay_blobs_total', '{event="refused_short"}')
    const before = await refusedShort()
    await expect(alice.sendAttachment(BOB, { stream: short(), size: 2000 })).rejects.toThrow(
      'the stream ended at 1000 of its 2000 bytes',
    )
    await expect(alice.sendAttachment(BOB, { stream: short(), size: 10 })).rejects.toThrow(
      'the stream is longer than its size (10 bytes)',
    )
    // The relay saw both uploads end short, and deleted them.
    await until(async () => (await refusedShort()) === before + 2, 10_000, 'both refused uploads')
    expect(readdirSync(blobs).filter((f) => f.endsWith('.part'))).toEqual([])
    expect(await codeOf(alice.sendAttachment(BOB, { stream: short() } as never))).toBe(
      'TypeError: a stream needs its size: a non-negative integer of bytes',
    )
    await new Promise((r) => setTimeout(r, 300))
    expect(got.map((m) => m.id)).toEqual([sent.id])
  })

  it('refuses a blob changed on the relay, and a number not on Parley', async () => {
    const got = inbox(bob)
    const sent = await alice.sendAttachment(BOB, { data: new Uint8Array(randomBytes(300_000)) })
    await until(() => got.some((m) => m.id === sent.id), 30_000, 'the attachment message')
    const blobs = join(env.relay.dataDir, 'blobs')
    const [file] = readdirSync(blobs).filter((f) => f.endsWith('.blob'))
    const bytes = readFileSync(join(blobs, file!))
    bytes[1234] = bytes[1234]! ^ 1
    writeFileSync(join(blobs, file!), bytes)
    expect(await codeOf(bob.downloadAttachment(sent.id))).toBe('VERIFICATION_FAILED')
    expect(await codeOf(alice.sendAttachment(NOT_ON_PARLEY, { data: new Uint8Array(10) }))).toBe('NOT_FOUND')
  })
})
