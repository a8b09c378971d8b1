// Directory download through membership queries, scripted against a relay process: an account asks for every
// prefix there is. It gets addresses up to its metered allowance, then RATE_LIMITED, counted; a prefix longer
// than the announced one (which would single out or test an exact address) is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Account,
  activate,
  expectError,
  RawClient,
  type SpawnedRelay,
  spawnRelay,
} from '../../apps/relay/test/helpers.js'
import { metric, scrape } from './relayDb.js'

const ALLOWANCE = 30
const ACCOUNTS = 12

describe('downloading the directory with membership queries', () => {
  let relay: SpawnedRelay
  let enumerator: RawClient
  let self: Account
  beforeAll(async () => {
    // 1-bit prefixes: each query returns about half of all accounts, so the allowance, not the query count, binds.
    relay = await spawnRelay([
      '--membership-prefix-bits',
      '1',
      '--membership-addresses-capacity',
      String(ALLOWANCE),
      '--membership-addresses-per-day',
      '1',
    ])
    for (let i = 1; i < ACCOUNTS; i++) {
      const c = await RawClient.open(relay.url)
      await activate(c, relay, `+1415555${String(1200 + i)}`)
      c.close()
    }
    enumerator = await RawClient.open(relay.url)
    self = await activate(enumerator, relay, '+14155551200')
  })
  afterAll(async () => {
    enumerator?.close()
    await relay?.stop()
  })

  it('returns addresses up to the account’s allowance, then RATE_LIMITED, counted', async () => {
    const before = await scrape(relay.httpUrl)
    let received = 0
    const outcomes: string[] = []
    for (let round = 0; round < 4; round++) {
      try {
        const r = await enumerator.request({
          membershipQuery: { prefixBits: 1, prefixes: [new Uint8Array([0x00]), new Uint8Array([0x80])] },
        })
        received += r.membershipResult!.buckets!.reduce((n, b) => n + b.addresses!.length, 0)
        outcomes.push('ok')
      } catch (err) {
        outcomes.push((err as { code: string }).code)
      }
    }
    // Each full query returns all 12 accounts: 12 + 12 fit in 30, the third (36) does not.
    expect(outcomes).toEqual(['ok', 'ok', 'RATE_LIMITED', 'RATE_LIMITED'])
    expect(received).toBe(2 * ACCOUNTS)
    const after = await scrape(relay.httpUrl)
    const delta = (name: string, labels?: Record<string, string>) =>
      metric(after, name, labels) - metric(before, name, labels)
    expect(delta('parley_relay_rate_limited_total', { scope: 'membership' })).toBe(2)
    expect(delta('parley_relay_membership_addresses_total')).toBe(received) // refused queries returned none
    // Longer prefixes than announced are refused outright, even an exact 256-bit one.
    await expectError(
      enumerator.request({ membershipQuery: { prefixBits: 256, prefixes: [self.address] } }),
      'BAD_REQUEST',
    )
  })
})
