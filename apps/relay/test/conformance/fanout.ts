// The Fanout conformance suite: LocalFanout and RedisFanout run exactly these tests. A "node" is one Fanout
// instance; for LocalFanout both nodes are the same instance (one process is the whole cluster).
import { afterAll, expect, it } from 'vitest'
import type { Fanout, FanoutEvent } from '../../src/Fanout.js'
import { waitFor } from './services.js'

/** How the suite gets fan-outs of one implementation. */
export interface FanoutHarness {
  /** Two nodes of one fresh cluster (a fresh key prefix); they may be the same instance. */
  cluster(): Promise<[Fanout, Fanout]>
  /** Closes everything opened. */
  cleanup(): Promise<void>
}

let n = 0
const address = () => `${(++n).toString(16).padStart(8, '0')}${'ab'.repeat(28)}`

/** Registers the conformance tests of {@link Fanout} for one implementation (call inside a describe). */
export function fanoutConformance(h: FanoutHarness): void {
  afterAll(() => h.cleanup())

  it('answers a readiness ping while it can deliver (when it has one)', async () => {
    const [a, b] = await h.cluster()
    for (const node of [a, b]) if (node.ping) await expect(node.ping()).resolves.toBeUndefined()
  })

  it('delivers every kind of notice published on any node to every listener of the address, on every node', async () => {
    const [a, b] = await h.cluster()
    const addr = address()
    const onA: FanoutEvent[] = []
    const onB: FanoutEvent[] = []
    await a.subscribe(addr, (e) => onA.push(e))
    await b.subscribe(addr, (e) => onB.push(e))
    await a.publish(addr, { kind: 'mail', deviceId: 1, seq: 7 })
    await b.publish(addr, { kind: 'revoked', keepDeviceId: 2 })
    await a.publish(addr, { kind: 'banned' })
    await waitFor(() => onA.length === 3 && onB.length === 3, 5000, 'every notice on both nodes')
    const want = [
      { kind: 'mail', deviceId: 1, seq: 7 },
      { kind: 'revoked', keepDeviceId: 2 },
      { kind: 'banned' },
    ]
    expect(onA).toEqual(want)
    expect(onB).toEqual(want)
  })

  it('carries an ephemeral message’s bytes unchanged to every node', async () => {
    const [a, b] = await h.cluster()
    const addr = address()
    const onA: FanoutEvent[] = []
    const onB: FanoutEvent[] = []
    await a.subscribe(addr, (e) => onA.push(e))
    await b.subscribe(addr, (e) => onB.push(e))
    const envelope = Uint8Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff)
    const messageId = Uint8Array.from({ length: 16 }, (_, i) => 255 - i)
    await b.publish(addr, { kind: 'ephemeral', deviceId: 3, messageId, envelope })
    await waitFor(() => onA.length === 1 && onB.length === 1, 5000, 'the ephemeral notice on both nodes')
    for (const got of [onA[0], onB[0]]) {
      expect(got?.kind).toBe('ephemeral')
      if (got?.kind !== 'ephemeral') continue
      expect(got.deviceId).toBe(3)
      expect([...got.messageId]).toEqual([...messageId])
      expect([...got.envelope]).toEqual([...envelope])
    }
  })

  it('delivers nothing for other addresses, and notices of one address in publish order', async () => {
    const [a, b] = await h.cluster()
    const mine = address()
    const other = address()
    const got: FanoutEvent[] = []
    await b.subscribe(mine, (e) => got.push(e))
    for (let seq = 1; seq <= 50; seq++) {
      void a.publish(other, { kind: 'mail', deviceId: 1, seq })
      void a.publish(mine, { kind: 'mail', deviceId: 1, seq })
    }
    await waitFor(() => got.length === 50, 5000, '50 notices')
    expect(got.map((e) => (e.kind === 'mail' ? e.seq : -1))).toEqual(
      Array.from({ length: 50 }, (_, i) => i + 1),
    )
  })

  it('stops delivering to an unsubscribed listener and keeps the others', async () => {
    const [a, b] = await h.cluster()
    const addr = address()
    const first: FanoutEvent[] = []
    const second: FanoutEvent[] = []
    const off = await b.subscribe(addr, (e) => first.push(e))
    await b.subscribe(addr, (e) => second.push(e))
    await off()
    await off() // idempotent
    await a.publish(addr, { kind: 'mail', deviceId: 1, seq: 1 })
    await waitFor(() => second.length === 1, 5000, 'the remaining listener')
    expect(first).toEqual([])
  })

  it('resubscribing after the last listener left works, and a late subscriber misses nothing after it resolves', async () => {
    const [a, b] = await h.cluster()
    const addr = address()
    const off = await b.subscribe(addr, () => {})
    const unsubscribing = off()
    const got: FanoutEvent[] = []
    await b.subscribe(addr, (e) => got.push(e))
    await unsubscribing
    await a.publish(addr, { kind: 'mail', deviceId: 3, seq: 9 })
    await waitFor(() => got.length === 1, 5000, 'notice after resubscribe')
    expect(got).toEqual([{ kind: 'mail', deviceId: 3, seq: 9 }])
  })

  it('keeps delivering to other listeners when one throws', async () => {
    const [a, b] = await h.cluster()
    const addr = address()
    const got: FanoutEvent[] = []
    await b.subscribe(addr, () => {
      throw new Error('listener failure')
    })
    await b.subscribe(addr, (e) => got.push(e))
    await a.publish(addr, { kind: 'mail', deviceId: 1, seq: 1 })
    await a.publish(addr, { kind: 'mail', deviceId: 1, seq: 2 })
    await waitFor(() => got.length === 2, 5000, 'both notices despite the throwing listener')
  })

  it('publishing to an address nobody listens to is fine', async () => {
    const [a] = await h.cluster()
    await expect(a.publish(address(), { kind: 'mail', deviceId: 1, seq: 1 })).resolves.toBeUndefined()
  })
}
