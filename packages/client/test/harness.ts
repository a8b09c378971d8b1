// Shared set-up of the engine tests: a FakeRelay and a ManualClock, and clients on them driven through the
// public API only (so the tests hold whatever the engine's insides look like).
import {
  MemoryStore,
  ParleyClient,
  type ParleyClientOptions,
  type ParleyEvents,
  type Store,
} from '@parley/client'
import { FakeRelay, type FakeRelayOptions, ManualClock } from '@parley/client/testing'
import { onTestFinished } from 'vitest'
import { testCrypto } from './nativeCrypto.js'

export const ALICE = '+14155550100'
export const BOB = '+14155550101'
export const CAROL = '+14155550102'
/** A valid number nobody activates. */
export const NOBODY = '+14155550199'

export interface World {
  clock: ManualClock
  relay: FakeRelay
  /** A client on the relay (not activated), with its own MemoryStore unless one is given. */
  client(options?: Partial<ParleyClientOptions>): Promise<ParleyClient>
  /** A client activated as `number`, online and settled. */
  activated(number: string, options?: Partial<ParleyClientOptions>): Promise<ParleyClient>
  /** Lets the relay answer, moves the clock `ms` on (ack delays, retries), and lets it answer again. */
  step(ms: number): Promise<void>
}

/**
 * A relay and a clock for one test. Every client made through it is closed when the test ends (closing is
 * idempotent), so a test closes a client itself only where the closing is part of what it tests.
 */
export function world(relayOptions: FakeRelayOptions = {}): World {
  const clock = new ManualClock()
  const relay = new FakeRelay({ clock, crypto: testCrypto, ...relayOptions })
  const clients: ParleyClient[] = []
  onTestFinished(async () => {
    for (const c of clients) await c.close()
  })
  const client = async (options: Partial<ParleyClientOptions> = {}) => {
    const c = await ParleyClient.create({
      relayUrl: relay.url,
      transport: relay.transport,
      relayKeys: relay.relayKeys,
      store: new MemoryStore(),
      clock,
      crypto: testCrypto,
      defaultRegion: 'US',
      // These tests count frames and mailbox entries; receipts (which answer every message) are tested on their
      // own against a real relay (tests/contract/reactions-receipts.test.ts). A test may turn them on.
      receipts: { delivery: false, read: false },
      ...options,
    })
    clients.push(c)
    return c
  }
  const activated = async (number: string, options: Partial<ParleyClientOptions> = {}) => {
    const c = await client(options)
    await c.activate({ phoneNumber: number, consent: true })
    await c.confirm(relay.codeFor(number)!)
    await relay.settle()
    return c
  }
  const step = async (ms: number) => {
    await relay.settle()
    await clock.advance(ms)
    await relay.settle()
  }
  return { clock, relay, client, activated, step }
}

/** A {@link world} with Alice and Bob activated on it; `received` collects Bob's messages from then on. */
export async function aliceAndBob(relayOptions: FakeRelayOptions = {}) {
  const w = world(relayOptions)
  const alice = await w.activated(ALICE)
  const bob = await w.activated(BOB)
  return { ...w, alice, bob, received: collect(bob, 'message') }
}

/** Collects a client's events of one kind. */
export function collect<K extends keyof ParleyEvents>(client: ParleyClient, event: K): ParleyEvents[K][] {
  const seen: ParleyEvents[K][] = []
  client.on(event, (e) => {
    seen.push(e)
  })
  return seen
}

/** The code of the ParleyError a promise rejects with ('resolved' when it does not). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).constructor.name
  }
  return 'resolved'
}

/**
 * A view of a MemoryStore whose close() leaves the data in place, so that a second client can open the same
 * "disk" after the first one closed, as after an app restart.
 */
export function reopenable(store: MemoryStore): Store {
  return {
    get: (key) => store.get(key),
    write: (batch) => store.write(batch),
    list: (prefix) => store.list(prefix),
    close: async () => {},
  }
}
