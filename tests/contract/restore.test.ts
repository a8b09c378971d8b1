// Backup and restore of an account through a real relay process (docs/architecture.md §9.7): the phone's archive,
// restored on a fresh device that verifies the number by SMS again, keeps the conversations, the identity (the
// contact sees no new safety number), and the contact's next message arrives; a wrong passphrase opens nothing.
import { join } from 'node:path'
import { type IncomingMessage, ParleyError } from '@parley/node'
import { describe, expect, it } from 'vitest'
import { activatedClient, clientDir, nodeClient, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+1 415 555 0150'
const BOB = '+1 415 555 0151'
const PASSPHRASE = 'correct horse battery staple'

describe('backup and restore of an account', () => {
  const env = useRelay()
  const dir = clientDir()

  it('restores conversations and identity on a fresh device; the contact carries on without a new safety number', async () => {
    const phone = await activatedClient(env.relay, env.codes, ALICE, { storePath: join(dir, 'old-phone.db') })
    const bob = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob.db') })
    const bobGot: IncomingMessage[] = []
    const identityChanges: unknown[] = []
    bob.on('message', (m) => bobGot.push(m))
    bob.on('identityChanged', (e) => identityChanges.push(e))
    const phoneGot: IncomingMessage[] = []
    phone.on('message', (m) => phoneGot.push(m))
    await bob.send(ALICE, 'before the backup')
    await until(() => phoneGot.length === 1, 20_000, 'the phone to receive')
    await phone.send(BOB, 'reply before the backup')
    await until(() => bobGot.length === 1, 20_000, 'bob to receive')
    const safetyBefore = await bob.safetyNumber(ALICE)

    // The cheapest cost the format allows, to keep the test short; the default is 2^17.
    const archive = await phone.exportBackup(PASSPHRASE, { logN: 14 })
    await phone.close() // the phone is lost

    const fresh = await nodeClient(env.relay, { storePath: join(dir, 'new-phone.db') })
    const wrong = await fresh.restoreBackup(archive, 'not the passphrase at all').catch((e: unknown) => e)
    expect(wrong instanceof ParleyError && wrong.code).toBe('DECRYPT_FAILED')
    expect(await fresh.history()).toEqual([])

    const restored = await fresh.restoreBackup(archive, PASSPHRASE)
    expect(restored).toEqual({ number: '+14155550150', messages: 1 })
    expect((await fresh.history()).map((m) => m.text)).toEqual(['before the backup'])
    const pending = await fresh.activate({ phoneNumber: restored.number, consent: true })
    await fresh.confirm(await env.codes.next(pending.e164))

    const freshGot: IncomingMessage[] = []
    fresh.on('message', (m) => freshGot.push(m))
    const next = await bob.send(ALICE, 'after the restore')
    await until(() => freshGot.some((m) => m.id === next.id), 20_000, 'the restored device to receive')
    const back = await fresh.send(BOB, 'hello from the restored phone')
    await until(() => bobGot.some((m) => m.id === back.id), 20_000, 'bob to receive from the restored phone')
    expect(bobGot.find((m) => m.id === back.id)!.from).toBe('+14155550150')
    // Same account identity: no identity change at bob, the same safety number on both sides.
    expect(identityChanges).toEqual([])
    expect(await bob.safetyNumber(ALICE)).toBe(safetyBefore)
    expect(await fresh.safetyNumber(BOB)).toBe(safetyBefore)
    expect((await fresh.history()).map((m) => m.text)).toEqual(['before the backup', 'after the restore'])
    await Promise.all([fresh.close(), bob.close()])
  })
})
