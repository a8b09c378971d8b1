// The README's "Errors" list: which caller mistakes throw TypeError / RangeError, and what is a ParleyError instead.
import { MemoryStore, ParleyClient } from '@parley/client'
import { describe, expect, it } from 'vitest'
import { BOB, codeOf, world } from './harness.js'

describe('caller mistakes', () => {
  it('are TypeErrors from ParleyClient.create', async () => {
    const { relay } = world()
    const good = { relayUrl: relay.url, transport: relay.transport, store: new MemoryStore() }
    const bad: unknown[] = [
      null,
      { ...good, relayUrl: 'https://relay.example.org' },
      { ...good, transport: {} },
      { ...good, store: {} },
      { ...good, smsFallback: 'sms' },
      { ...good, relayKeys: { trustRoot: 'abcd' } },
    ]
    for (const options of bad) {
      expect(await codeOf(ParleyClient.create(options as never))).toBe('TypeError')
    }
  })

  it('are TypeErrors or RangeErrors from calls, thrown before anything is sent', async () => {
    const { relay, activated } = world()
    const alice = await activated('+14155550100')
    const before = relay.frames.length
    const cases: [Promise<unknown>, string][] = [
      [alice.activate({ phoneNumber: '+14155550100', consent: false as unknown as true }), 'TypeError'],
      [alice.activate({ phoneNumber: 42 as unknown as string, consent: true }), 'TypeError'],
      [alice.activate({ phoneNumber: '+14155550100', consent: true, pin: '123' }), 'TypeError'],
      [alice.confirm('12345'), 'TypeError'],
      [alice.confirm('123456', { pin: 'x'.repeat(65) }), 'TypeError'],
      [alice.setRegistrationLock(4921 as unknown as string), 'TypeError'],
      [alice.discover('+14155550101' as unknown as string[]), 'TypeError'],
      [alice.discover(Array(10_001).fill(BOB)), 'RangeError'],
      [alice.send(BOB, 42 as unknown as string), 'TypeError'],
      [alice.send(42 as unknown as string, 'hi'), 'TypeError'],
    ]
    for (const [call, expected] of cases) expect(await codeOf(call)).toBe(expected)
    expect(relay.frames.length).toBe(before)
    await alice.close()
  })

  it('include a defaultRegion that is not a region, at the first call that reads a number', async () => {
    const { client } = world()
    const alice = await client({ defaultRegion: 'XX' as never })
    expect(await codeOf(alice.activate({ phoneNumber: '415 555 0100', consent: true }))).toBe('RangeError')
    await alice.close()
  })
})

describe('what depends on the user is a ParleyError', () => {
  it('a text over 64 KiB of UTF-8 is TOO_LARGE and a bad number INVALID_NUMBER', async () => {
    const { activated } = world()
    const alice = await activated('+14155550100')
    expect(await codeOf(alice.send(BOB, 'x'.repeat(64 * 1024 + 1)))).toBe('TOO_LARGE')
    expect(await codeOf(alice.send('12', 'hi'))).toBe('INVALID_NUMBER')
    await alice.close()
  })
})
