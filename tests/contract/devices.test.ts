// Linked devices through a real relay process (docs/architecture.md §9): a primary links a second Node device with
// a link code (no SMS); a contact's message reaches both; what either device sends reaches the contact and shows
// on the other as a sent transcript; a used or expired code is refused; a removed device gets nothing further.
import { join } from 'node:path'
import type { IncomingMessage, ParleyClient } from '@parley/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activatedClient, clientDir, codeOf, inbox, nodeClient, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+1 415 555 0120'
const BOB = '+1 415 555 0121'

describe('linked devices through a real relay process', () => {
  const env = useRelay()
  const dir = clientDir()
  let phone: ParleyClient
  let laptop: ParleyClient
  let bob: ParleyClient
  let laptopId = 0
  const got = {
    phone: [] as IncomingMessage[],
    laptop: [] as IncomingMessage[],
    bob: [] as IncomingMessage[],
  }
  const changed: number[][] = []

  beforeAll(async () => {
    phone = await activatedClient(env.relay, env.codes, ALICE, { storePath: join(dir, 'phone.db') })
    bob = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob.db') })
    laptop = await nodeClient(env.relay, { storePath: join(dir, 'laptop.db') })
    got.phone = inbox(phone)
    got.laptop = inbox(laptop)
    got.bob = inbox(bob)
    bob.on('devicesChanged', (e) => changed.push(e.deviceIds))
  })

  afterAll(async () => {
    await Promise.all([phone?.close(), laptop?.close(), bob?.close()])
  })

  it('links a second device with a code: no SMS, both screens show the same fingerprint', async () => {
    const smsBefore = env.codes.calls.length
    let shown = ''
    const invitation = await phone.createLinkCode({
      confirm: ({ fingerprint }) => {
        shown = fingerprint
        return true
      },
    })
    expect(invitation.code).toMatch(/^parley-link:[A-Za-z0-9_-]+$/)
    const account = await laptop.link(invitation.code)
    const { deviceId } = await invitation.linked
    laptopId = deviceId
    expect(account.deviceId).toBe(deviceId)
    expect(account.number).toBe('+14155550120')
    expect(account.fingerprint).toBe(shown)
    expect(env.codes.calls.length).toBe(smsBefore)
    const devices = await laptop.devices()
    expect(devices.map((d) => [d.deviceId, d.primary, d.current])).toEqual([
      [1, true, false],
      [deviceId, false, true],
    ])
  })

  it("delivers a contact's message to every device of the account, once each", async () => {
    const sent = await bob.send(ALICE, 'hello both')
    await until(() => got.phone.length === 1 && got.laptop.length === 1, 20_000, 'both devices to receive')
    for (const m of [got.phone[0]!, got.laptop[0]!]) {
      expect(m).toMatchObject({ id: sent.id, from: '+14155550121', text: 'hello both' })
      expect(m.to).toBeUndefined()
    }
    expect(changed.at(-1)).toEqual([1, laptopId])
  })

  it('sends from the primary to the contact, with a sent transcript on the linked device', async () => {
    const sent = await phone.send(BOB, 'from the phone')
    await until(() => got.bob.length === 1 && got.laptop.length === 2, 20_000, 'bob and the transcript')
    expect(got.bob[0]).toMatchObject({ id: sent.id, from: '+14155550120', text: 'from the phone' })
    const transcript = got.laptop[1]!
    expect(transcript).toMatchObject({ id: sent.id, from: '+14155550120', text: 'from the phone' })
    expect(transcript.toAddress).toBe(got.phone[0]!.fromAddress)
  })

  it('sends from the linked device to the contact as the account, with a transcript on the primary', async () => {
    const sent = await laptop.send(BOB, 'from the laptop')
    await until(() => got.bob.length === 2 && got.phone.length === 2, 20_000, 'bob and the transcript')
    // Bob sees the account's number: the laptop's key is in the list the account identity signed.
    expect(got.bob[1]).toMatchObject({ id: sent.id, from: '+14155550120', text: 'from the laptop' })
    expect(got.phone[1]).toMatchObject({ id: sent.id, text: 'from the laptop', to: '+14155550121' })
    // The safety number covers the account identity, not the device: it is the same from either side.
    expect(await bob.safetyNumber(ALICE)).toBe(await phone.safetyNumber(BOB))
  })

  it('sends from a device linked before another one: it fetches its own list again, the new one gets the transcript', async () => {
    const invitation = await phone.createLinkCode()
    const tablet = await nodeClient(env.relay, { storePath: join(dir, 'tablet.db') })
    let tabletId = 0
    try {
      const tabletGot = inbox(tablet)
      await tablet.link(invitation.code)
      tabletId = (await invitation.linked).deviceId
      // The laptop still holds the list from before the tablet, so the relay answers its transcripts
      // STALE_DEVICES; each retry used to send with that same list again, and the message failed.
      const failed: string[] = []
      const off = laptop.on('sendFailed', (e) => failed.push(e.error.code))
      const sent = await laptop.send(BOB, 'after the tablet')
      await until(
        () => failed.length > 0 || (got.bob.length === 3 && got.phone.length === 3 && tabletGot.length === 1),
        20_000,
        'bob and both transcripts',
      )
      off()
      expect(failed).toEqual([])
      expect(got.phone[2]).toMatchObject({ id: sent.id, text: 'after the tablet', to: '+14155550121' })
      // The tablet never saw bob's number, only the address the transcript names.
      expect(tabletGot[0]).toMatchObject({
        id: sent.id,
        text: 'after the tablet',
        toAddress: got.phone[0]!.fromAddress,
      })
    } finally {
      if (tabletId !== 0) await phone.removeDevice(tabletId)
      await tablet.close()
    }
  })

  it('refuses a link code used a second time', async () => {
    const invitation = await phone.createLinkCode()
    const first = await nodeClient(env.relay, { storePath: join(dir, 'first.db') })
    const second = await nodeClient(env.relay, { storePath: join(dir, 'second.db') })
    try {
      const account = await first.link(invitation.code)
      expect(await invitation.linked).toEqual({ deviceId: account.deviceId })
      // The rendezvous ended when the first device read its answer: the code is no use to anyone after it.
      expect(await codeOf(second.link(invitation.code, { timeoutMs: 2000 }))).toBe('NOT_FOUND')
      expect((await phone.devices()).map((d) => d.deviceId)).toEqual([1, laptopId, account.deviceId])
      await phone.removeDevice(account.deviceId)
    } finally {
      await first.close()
      await second.close()
    }
  })

  it('removes a device: it is told, and receives nothing further', async () => {
    const replaced: { removed?: boolean }[] = []
    laptop.on('deviceReplaced', (e) => replaced.push(e))
    const before = got.laptop.length
    await phone.removeDevice(laptopId)
    await until(() => replaced.length === 1, 10_000, 'the laptop to be told')
    expect(replaced[0]).toMatchObject({ erased: false, removed: true })
    got.phone.length = 0
    const sent = await bob.send(ALICE, 'after the removal')
    await until(() => got.phone.length === 1, 20_000, 'the phone to receive')
    expect(got.phone[0]!.id).toBe(sent.id)
    expect(got.laptop.length).toBe(before)
    expect((await phone.devices()).map((d) => d.deviceId)).toEqual([1])
  })
})

describe('history transfer to a newly linked device', () => {
  const env = useRelay()
  const dir = clientDir()

  it("sends the primary's history of 1,000 messages, end-to-end encrypted, and the new device shows it in order", async () => {
    const N = 1000
    const phone = await activatedClient(env.relay, env.codes, '+1 415 555 0160', {
      storePath: join(dir, 'phone.db'),
    })
    const bob = await activatedClient(env.relay, env.codes, '+1 415 555 0161', {
      storePath: join(dir, 'bob.db'),
    })
    const laptop = await nodeClient(env.relay, { storePath: join(dir, 'laptop.db') })
    try {
      const got = inbox(phone)
      for (let i = 0; i < N; i++) await bob.send('+1 415 555 0160', `old ${i}`)
      await until(() => got.length === N, 120_000, `${N} messages to the phone`)
      const parts: { added: number; index: number; total: number }[] = []
      laptop.on('history', (e) => parts.push(e))
      const shown = inbox(laptop)
      const invitation = await phone.createLinkCode({ history: true })
      await laptop.link(invitation.code)
      await invitation.linked
      await until(() => parts.length > 0 && parts.length === parts[0]!.total, 60_000, 'every history part')
      expect(parts.reduce((n, p) => n + p.added, 0)).toBe(N)
      expect(parts.map((p) => p.index).sort((a, b) => a - b)).toEqual(parts.map((_, i) => i))
      const before = await phone.history()
      const after = await laptop.history()
      expect(after.map((m) => [m.id, m.from, m.text])).toEqual(before.map((m) => [m.id, m.from, m.text]))
      // History is not news: no message event for it on the new device.
      expect(shown).toHaveLength(0)
      await until(async () => (await phone.pendingCount()) === 0, 20_000, 'the history to leave the outbox')
    } finally {
      await Promise.all([phone.close(), bob.close(), laptop.close()])
    }
  }, 240_000)
})

describe('an expired link code', () => {
  const env = useRelay(['--link-ttl-seconds', '1'])

  it('is refused once its rendezvous expired, and the waiting primary is told EXPIRED', async () => {
    const phone = await activatedClient(env.relay, env.codes, '+1 415 555 0130')
    const late = await nodeClient(env.relay)
    try {
      const invitation = await phone.createLinkCode()
      expect(await codeOf(invitation.linked)).toBe('EXPIRED')
      // The primary waited until the code's expiry: the relay refuses the late device at once.
      expect(await codeOf(late.link(invitation.code, { timeoutMs: 5000 }))).toBe('NOT_FOUND')
      expect((await phone.devices()).length).toBe(1)
    } finally {
      await phone.close()
      await late.close()
    }
  })
})
