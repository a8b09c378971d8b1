// Attachments end to end through a real relay process: a 20 MiB file each way, encrypted by the sender, uploaded
// as ciphertext, downloaded and decrypted by the recipient with its digest checked; the relay deletes the blob
// once the recipient fetched it; a blob changed on the relay's disk is refused, never handed over.
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ParleyClient } from '@parley/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activatedClient, clientDir, codeOf, inbox, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+1 415 555 0180'
const BOB = '+1 415 555 0181'
const NOT_ON_PARLEY = '+1 415 555 0189'

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
