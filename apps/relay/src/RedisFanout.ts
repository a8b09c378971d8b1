/**
 * The scale-out {@link Fanout}: Redis pub/sub, one channel per address (`<prefix>fan:<address hex>`). A node
 * subscribes to an address's channel while it holds a connection of that device, so Redis's own subscription
 * table is the presence map — a notice published by whichever node accepted a message reaches exactly the nodes
 * holding the recipient, and a `revoked` notice reaches every connection of a replaced or erased device.
 * Notices carry no content (only a device id and a sequence number); the mail itself is in the {@link Store}. The
 * exception is an ephemeral message (a typing indicator), whose sealed envelope travels in its notice, base64.
 * @module
 */
import type { Redis } from 'ioredis'
import type { Fanout, FanoutEvent, FanoutListener } from './Fanout.js'
import { connectRedis, parseRedisUrl, type RedisTarget } from './internal/redis.js'

/** Options of {@link RedisFanout}. */
export interface RedisFanoutOptions {
  /** `redis://host:port[/db][?prefix=<p>]`. */
  url: string
  /** Told of malformed notices and connection trouble (never of content). */
  onError?: (err: Error) => void
}

function parseEvent(raw: string): FanoutEvent | null {
  try {
    const e = JSON.parse(raw) as Partial<Record<string, unknown>>
    if (e.kind === 'mail' && Number.isSafeInteger(e.deviceId) && Number.isSafeInteger(e.seq))
      return { kind: 'mail', deviceId: e.deviceId as number, seq: e.seq as number }
    if (e.kind === 'revoked' && Number.isSafeInteger(e.keepDeviceId))
      return { kind: 'revoked', keepDeviceId: e.keepDeviceId as number }
    if (e.kind === 'banned') return { kind: 'banned' }
    if (e.kind === 'moved') return { kind: 'moved' }
    if (e.kind === 'removed' && Number.isSafeInteger(e.deviceId))
      return { kind: 'removed', deviceId: e.deviceId as number }
    if (
      e.kind === 'ephemeral' &&
      Number.isSafeInteger(e.deviceId) &&
      typeof e.messageId === 'string' &&
      typeof e.envelope === 'string'
    ) {
      return {
        kind: 'ephemeral',
        deviceId: e.deviceId as number,
        messageId: new Uint8Array(Buffer.from(e.messageId, 'base64')),
        envelope: new Uint8Array(Buffer.from(e.envelope, 'base64')),
      }
    }
  } catch {}
  return null
}

/** An event as JSON carries it: an ephemeral message's bytes in base64. */
function wire(event: FanoutEvent): unknown {
  if (event.kind !== 'ephemeral') return event
  return {
    kind: 'ephemeral',
    deviceId: event.deviceId,
    messageId: Buffer.from(event.messageId).toString('base64'),
    envelope: Buffer.from(event.envelope).toString('base64'),
  }
}

/** Redis pub/sub implementation of {@link Fanout}. */
export class RedisFanout implements Fanout {
  readonly #target: RedisTarget
  readonly #pub: Redis
  readonly #sub: Redis
  readonly #listeners = new Map<string, Set<FanoutListener>>()
  /** Per-channel chain of SUBSCRIBE/UNSUBSCRIBE calls, so they reach Redis in the order listeners changed. */
  readonly #pending = new Map<string, Promise<void>>()
  readonly #onError: (err: Error) => void
  #closed = false

  /** @param options - the Redis URL; two connections are opened (publishing, subscribing) */
  constructor(options: RedisFanoutOptions) {
    this.#target = parseRedisUrl(options.url)
    this.#onError = options.onError ?? (() => {})
    this.#pub = connectRedis(this.#target, 'parley-fanout-pub')
    this.#sub = connectRedis(this.#target, 'parley-fanout-sub')
    this.#sub.on('message', (channel: string, message: string) => this.#deliver(channel, message))
  }

  #channel(addressHex: string): string {
    return `${this.#target.prefix}fan:${addressHex}`
  }

  #deliver(channel: string, message: string): void {
    const set = this.#listeners.get(channel)
    if (!set) return
    const event = parseEvent(message)
    if (!event) {
      this.#onError(new Error('malformed fan-out notice ignored'))
      return
    }
    for (const listener of [...set]) {
      // A listener's failure is its connection's problem; it must not stop delivery to the others.
      try {
        listener(event)
      } catch {}
    }
  }

  #serial(channel: string, op: () => Promise<unknown>): Promise<void> {
    const next = (this.#pending.get(channel) ?? Promise.resolve()).then(op).then(() => {})
    const settled = next.catch(() => {})
    this.#pending.set(channel, settled)
    void settled.then(() => {
      if (this.#pending.get(channel) === settled) this.#pending.delete(channel)
    })
    return next
  }

  /** Resolves once Redis has confirmed the subscription, so no notice published afterwards is missed. */
  async subscribe(addressHex: string, listener: FanoutListener): Promise<() => Promise<void>> {
    if (this.#closed) throw new Error('fan-out is closed')
    const channel = this.#channel(addressHex)
    let set = this.#listeners.get(channel)
    if (!set) {
      set = new Set()
      this.#listeners.set(channel, set)
    }
    set.add(listener)
    // Every subscriber waits for the channel's chain (a second listener added while the first SUBSCRIBE is in
    // flight must not resolve before it is confirmed); SUBSCRIBE to a channel already subscribed is a no-op.
    await this.#serial(channel, async () => {
      if (this.#listeners.has(channel)) await this.#sub.subscribe(channel)
    })
    let done = false
    return async () => {
      if (done) return
      done = true
      const current = this.#listeners.get(channel)
      if (!current) return
      current.delete(listener)
      if (current.size > 0) return
      this.#listeners.delete(channel)
      if (this.#closed) return
      await this.#serial(channel, async () => {
        // Someone may have subscribed again while this waited.
        if (!this.#listeners.has(channel)) await this.#sub.unsubscribe(channel)
      }).catch((err) => this.#onError(err as Error))
    }
  }

  async publish(addressHex: string, event: FanoutEvent): Promise<void> {
    if (this.#closed) return
    await this.#pub.publish(this.#channel(addressHex), JSON.stringify(wire(event)))
  }

  /** Addresses with local listeners (for tests and metrics). */
  get size(): number {
    return this.#listeners.size
  }

  /** Rejects unless both Redis connections answer (a node that cannot fan out is not ready). */
  async ping(): Promise<void> {
    await Promise.all([this.#pub.ping(), this.#sub.ping()])
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#listeners.clear()
    await Promise.allSettled([this.#sub.quit(), this.#pub.quit()])
  }
}
