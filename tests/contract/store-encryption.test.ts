// A client store sealed at rest (`storeEncryptionKey`), against a real relay process: after a conversation, the
// SQLite file holds none of its texts and neither number in the clear — while
// the same scan finds them in the unsealed store of the other side — and it opens again only under its key.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ParleyClient } from '@parley/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activatedClient, clientDir, codeOf, inbox, nodeClient, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+1 415 555 0170'
const BOB = '+1 415 555 0171'

describe('a store encrypted at rest', () => {
  const env = useRelay()
  const dir = clientDir()
  const key = new Uint8Array(32).map((_, i) => i * 7 + 1)
  const alicePath = join(dir, 'alice.db')
  const bobPath = join(dir, 'bob.db')
  let alice: ParleyClient
  let bob: ParleyClient

  beforeAll(async () => {
    alice = await activatedClient(env.relay, env.codes, ALICE, {
      storePath: alicePath,
      storeEncryptionKey: key,
    })
    bob = await activatedClient(env.relay, env.codes, BOB, { storePath: bobPath })
  })

  afterAll(async () => {
    await Promise.all([alice?.close(), bob?.close()])
  })

  /** Which of `needles` occur in the SQLite file at `path` or its WAL. */
  const foundIn = (path: string, needles: string[]) => {
    const files = [path, `${path}-wal`].filter(existsSync).map((f) => readFileSync(f))
    return needles.filter((n) => files.some((f) => f.includes(Buffer.from(n))))
  }

  it('leaves no text or number readable in the file, and opens only under its key', async () => {
    const aliceGot = inbox(alice)
    const bobGot = inbox(bob)
    await alice.send(BOB, 'sealed-text-from-alice-7f3a')
    await until(() => bobGot.length === 1, 30_000, 'bob to receive')
    await bob.send(ALICE, 'sealed-text-from-bob-91c2')
    await until(() => aliceGot.length === 1, 30_000, 'alice to receive')
    await Promise.all([alice.close(), bob.close()])

    const needles = ['sealed-text-from-alice-7f3a', 'sealed-text-from-bob-91c2', '4155550170', '4155550171']
    // The scan finds them where the store is not sealed (bob's), so finding none in alice's means something.
    expect(foundIn(bobPath, needles)).toEqual(needles)
    expect(foundIn(alicePath, needles)).toEqual([])

    expect(await codeOf(nodeClient(env.relay, { storePath: alicePath }))).toBe('INVALID_STATE')
    expect(
      await codeOf(nodeClient(env.relay, { storePath: alicePath, storeEncryptionKey: new Uint8Array(32) })),
    ).toBe('DECRYPT_FAILED')
    // A key on a store written without one is refused, not half-converted.
    expect(await codeOf(nodeClient(env.relay, { storePath: bobPath, storeEncryptionKey: key }))).toBe(
      'INVALID_STATE',
    )
    await expect(
      nodeClient(env.relay, { storePath: alicePath, storeEncryptionKey: new Uint8Array(31) }),
    ).rejects.toThrow(TypeError)

    alice = await nodeClient(env.relay, { storePath: alicePath, storeEncryptionKey: key })
    bob = await nodeClient(env.relay, { storePath: bobPath })
    const history = (await alice.conversationHistory(BOB)).messages.map((m) => m.text)
    expect(history).toEqual(
      expect.arrayContaining(['sealed-text-from-alice-7f3a', 'sealed-text-from-bob-91c2']),
    )
    // And it still works: a new message both ways.
    const again = inbox(bob)
    await alice.send(BOB, 'after reopening')
    await until(() => again.some((m) => m.text === 'after reopening'), 30_000, 'the message after reopening')
  })
})
