// Directory download through membership queries, scripted against a relay process: an account asks for every
// prefix there is. It gets addresses up to its metered allowance, then RATE_LIMITED, counted; a prefix longer
// than the announced one (which would single out or test an exact address) is refused.

import {
  type Account,
  activate,
  expectError,
  RawClient,
  type RelayProcess,
  spawnDevRelay,
} from '@parley/relay/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { metric, scrape } from './relayDb.js'

const ALLOWANCE = 30
const ACCOUNTS = 12

describe('downloading the directory with membership queries', () => {
  let relay: RelayProcess
  let enumerator: RawClient
  let self: Account
  beforeAll(async () => {
    // 1-bit prefixes: each query returns about half of all accounts, so the allowance, not the query count, binds.
    relay = await spawnDevRelay([
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
    // Longer prefixes than announced are refused outright, even an exact 256-bit one (and cost no quota).
    await expectError(
      enumerator.request({ membershipQuery: { prefixBits: 256, prefixes: [self.address] } }),
      'BAD_REQUEST',
    )
    const before = await scrape(relay.metricsUrl)
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
    const after = await scrape(relay.metricsUrl)
    const delta = (name: string, labels?: Record<string, string>) =>
      metric(after, name, labels) - metric(before, name, labels)
    expect(delta('parley_relay_rate_limited_total', { scope: 'membership' })).toBe(2)
    expect(delta('parley_relay_membership_addresses_total')).toBe(received) // refused queries returned none
    // Told to wait, the connection's further queries are refused unread until retryAfterMs has passed.
    await expectError(
      enumerator.request({ membershipQuery: { prefixBits: 256, prefixes: [self.address] } }),
      'RATE_LIMITED',
    )
  })
})

describe('membership prefix length on a small relay', () => {
  const MIN_BUCKET = 4
  let relay: RelayProcess
  const clients: RawClient[] = []
  let registered = 0
  const register = async (n: number) => {
    for (let i = 0; i < n; i++, registered++) {
      const c = await RawClient.open(relay.url)
      await activate(c, relay, `+1415555${String(1300 + registered)}`)
      clients.push(c)
    }
  }
  /** The length a new connection is told, once the relay's sweep has counted the population. */
  const announcedOnceCounted = async (expected: number) => {
    for (let tries = 0; tries < 100; tries++) {
      const c = await RawClient.open(relay.url)
      c.close()
      const bits = c.hello!.limits!.membershipPrefixBits
      if (bits === expected) return bits
      await new Promise((r) => setTimeout(r, 100))
    }
    return undefined
  }
  beforeAll(async () => {
    relay = await spawnDevRelay([
      '--membership-prefix-bits',
      '16',
      '--membership-min-bucket',
      String(MIN_BUCKET),
      '--sweep-interval-seconds',
      '1',
    ])
  })
  afterAll(async () => {
    for (const c of clients) c.close()
    await relay?.stop()
  })

  it('announces a prefix short enough that a bucket holds min-bucket addresses on average, and only accepts it', async () => {
    await register(7) // < 2 × 4: the shortest prefix, 1 bit
    expect(await announcedOnceCounted(1)).toBe(1)
    const early = clients[0]!
    // 16-bit prefixes would single out each of the 7 accounts: refused.
    const attacker = clients[1]!
    await expectError(
      attacker.request({ membershipQuery: { prefixBits: 16, prefixes: [new Uint8Array([0xab, 0xcd])] } }),
      'BAD_REQUEST',
    )
    await register(9) // 16 accounts: 16 / 2^2 = 4 per bucket, 2 bits
    expect(await announcedOnceCounted(2)).toBe(2)
    expect(metric(await scrape(relay.metricsUrl), 'parley_relay_membership_prefix_bits')).toBe(2)
    const late = await RawClient.open(relay.url)
    clients.push(late)
    await activate(late, relay, '+14155551399')
    const all = [0x00, 0x40, 0x80, 0xc0].map((b) => new Uint8Array([b]))
    const r = await late.request({ membershipQuery: { prefixBits: 2, prefixes: all } })
    const sizes = r.membershipResult!.buckets!.map((b) => b.addresses!.length)
    expect(sizes).toHaveLength(4)
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(17) // every account, none twice
    // A connection keeps the length its ServerHello gave until it reconnects.
    await expectError(early.request({ membershipQuery: { prefixBits: 2, prefixes: all } }), 'BAD_REQUEST')
    const r1 = await early.request({
      membershipQuery: { prefixBits: 1, prefixes: [new Uint8Array([0x00]), new Uint8Array([0x80])] },
    })
    expect(r1.membershipResult!.buckets!.reduce((n, b) => n + b.addresses!.length, 0)).toBe(17)
  })
})
