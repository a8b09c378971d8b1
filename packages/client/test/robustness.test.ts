// Engine edges an app runs into: an 'error' listener that throws, iterators ended by an abort signal, the order
// of history within one millisecond, acks still queued when the app closes the client, and work close() cuts short.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { aliceAndBob, BOB, collect, world } from './harness.js'

afterEach(() => vi.restoreAllMocks())

describe('engine robustness', () => {
  it("reports an 'error' listener that throws once, on the console, instead of recursing", async () => {
    const { relay, activated } = world()
    const bob = await activated(BOB)
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    let calls = 0
    bob.on('error', () => {
      calls++
      throw new Error('listener bug')
    })
    // A delivery nobody sealed: opening it fails, which the client reports as an error event.
    relay.push(BOB, {
      delivery: { seq: 1, messageId: new Uint8Array(16), envelope: new Uint8Array(40), receivedAtMs: 0 },
    })
    await relay.settle()
    expect(calls).toBe(1)
    expect(warn.mock.calls.map((c) => String(c[0]))).toEqual([
      expect.stringContaining("an 'error' listener threw"),
    ])
    await bob.close()
  })

  it('reports nothing of the work that close() cuts short', async () => {
    const { relay, activated } = world()
    const bob = await activated(BOB)
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    const errors: unknown[] = []
    bob.on('error', (e) => errors.push(e))
    // The delivery fails to open, as in the test above, but the app has closed the client meanwhile.
    relay.push(BOB, {
      delivery: { seq: 1, messageId: new Uint8Array(16), envelope: new Uint8Array(40), receivedAtMs: 0 },
    })
    const closed = bob.close()
    await relay.settle()
    await closed
    expect(errors).toEqual([])
    expect(warn).not.toHaveBeenCalled()
  })

  it('ends messages() at once for a signal that is already aborted, and registers nothing', async () => {
    const { activated } = world()
    const bob = await activated(BOB)
    const controller = new AbortController()
    controller.abort()
    const add = vi.spyOn(controller.signal, 'addEventListener')
    const it = bob.messages({ signal: controller.signal })
    expect(await it.next()).toEqual({ done: true, value: undefined })
    expect(add).not.toHaveBeenCalled()
    await bob.close()
  })

  it('removes its abort listener when the iteration ends another way', async () => {
    const { relay, alice, bob } = await aliceAndBob()
    const controller = new AbortController()
    const remove = vi.spyOn(controller.signal, 'removeEventListener')
    const it = bob.messages({ signal: controller.signal })
    await alice.send(BOB, 'one')
    await relay.settle()
    expect((await it.next()).value?.text).toBe('one')
    await it.return?.()
    expect(remove).toHaveBeenCalledWith('abort', expect.any(Function))
    // Aborted later, the ended iterator stays ended.
    controller.abort()
    expect(await it.next()).toEqual({ done: true, value: undefined })
    await Promise.all([alice.close(), bob.close()])
  })

  it('drops what was queued when aborted, and sees nothing after', async () => {
    const { relay, alice, bob } = await aliceAndBob()
    const controller = new AbortController()
    const it = bob.messages({ signal: controller.signal })
    await alice.send(BOB, 'queued')
    await relay.settle()
    controller.abort()
    await alice.send(BOB, 'after')
    await relay.settle()
    expect(await it.next()).toEqual({ done: true, value: undefined })
    await Promise.all([alice.close(), bob.close()])
  })

  it('keeps history in the order the relay received messages, within one millisecond too', async () => {
    // The manual clock does not move: every message is received in the same millisecond.
    const { relay, alice, bob } = await aliceAndBob()
    const texts = Array.from({ length: 24 }, (_, i) => `message ${i}`)
    for (const t of texts) await alice.send(BOB, t)
    await relay.settle()
    const history = await bob.history()
    expect(new Set(history.map((m) => m.receivedAt.getTime())).size).toBe(1)
    expect(history.map((m) => m.text)).toEqual(texts)
    await Promise.all([alice.close(), bob.close()])
  })

  it('sends the acks still queued when the app closes, so the relay does not redeliver', async () => {
    const { relay, alice, bob } = await aliceAndBob()
    const seen = collect(bob, 'message')
    for (const t of ['a', 'b', 'c']) await alice.send(BOB, t)
    await relay.settle()
    expect(seen).toHaveLength(3)
    // The ack batch waits 10 ms on the (manual) clock, which the test never advances.
    expect(relay.received('ackMessages')).toHaveLength(0)
    await bob.close()
    expect(relay.received('ackMessages').map((a) => a.seqs)).toEqual([[1, 2, 3]])
    expect(relay.mailbox(BOB)).toHaveLength(0)
    await alice.close()
  })
})

describe('duration options', () => {
  it('refuses a zero, negative, infinite or non-number duration with a RangeError when the client is made', async () => {
    const { client } = world()
    const bad: Record<string, unknown>[] = [
      { requestTimeoutMs: 0 },
      { requestTimeoutMs: -1 },
      { requestTimeoutMs: Number.NaN },
      { discoveryTtlMs: Number.POSITIVE_INFINITY },
      { discoveryTtlMs: '1000' },
      { reconnect: { minDelayMs: -5 } },
      { reconnect: { minDelayMs: 5_000, maxDelayMs: 1_000 } },
    ]
    for (const options of bad) await expect(client(options as never)).rejects.toThrow(RangeError)
    const ok = await client({
      requestTimeoutMs: 5_000,
      discoveryTtlMs: 60_000,
      reconnect: { minDelayMs: 10 },
    })
    await ok.close()
  })
})
