/**
 * One logical link to the relay over an injected {@link Transport}: handshake, request/response pairing,
 * server pushes, and reconnection with exponential backoff and jitter (docs/architecture.md §8).
 * @module
 */
import {
  type ClientFrameInput,
  DEFAULT_LIMITS,
  decodeServerFrame,
  encodeClientFrame,
  ParleyError,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  parleyErrorFromWire,
  type ServerBodyOf,
  type ServerFrame,
} from '@parley/protocol'
import type { Clock } from './Clock.js'
import type { Transport, TransportSocket } from './Transport.js'

/** The relay's handshake answer, as the engine uses it. */
export type ServerHello = ServerBodyOf<'serverHello'>

/** Connection states reported through the `connection` event. */
export type ConnectionState = 'offline' | 'connecting' | 'online' | 'closed'

/** What the link tells its owner. */
export interface RelayLinkHooks {
  /** After every successful handshake, before the link counts as online; may send requests. */
  onHandshake(hello: ServerHello, link: RelayLink): Promise<void>
  /** A server push (request id 0): delivery, gap, or a connection-level error. */
  onPush(frame: ServerFrame): void
  /** State changes, with the delay before the next attempt when offline. */
  onState(state: ConnectionState, info: { attempt: number; retryInMs?: number; error?: ParleyError }): void
}

/** Options of {@link RelayLink}. */
export interface RelayLinkOptions {
  url: string
  transport: Transport
  clock: Clock
  /** Uniform random number in [0, 1), for jitter. */
  jitter: () => number
  hooks: RelayLinkHooks
  /** Request timeout (default 20 s). */
  requestTimeoutMs?: number
  /** First reconnect delay (default 250 ms) and cap (default 30 s). */
  backoffMinMs?: number
  backoffMaxMs?: number
}

interface Pending {
  resolve(frame: ServerFrame): void
  reject(err: ParleyError): void
  cleanup(): void
}

/** A reconnecting, request/response link to the relay. Internal to the engine. */
export class RelayLink {
  readonly #o: Required<Omit<RelayLinkOptions, 'hooks'>> & { hooks: RelayLinkHooks }
  #socket: TransportSocket | null = null
  #hello: ServerHello | null = null
  #nextId = 1
  readonly #pending = new Map<number, Pending>()
  #wanted = false
  #attempt = 0
  #state: ConnectionState = 'offline'
  #online: Promise<void> | null = null
  #resolveOnline: (() => void) | null = null
  #rejectOnline: ((err: ParleyError) => void) | null = null
  /** Set by {@link halt}: what every wait and request fails with until {@link start}. */
  #halted: ParleyError | null = null
  #retryTimer: unknown = null
  #abort: AbortController | null = null

  constructor(options: RelayLinkOptions) {
    this.#o = { requestTimeoutMs: 20_000, backoffMinMs: 250, backoffMaxMs: 30_000, ...options }
  }

  /** The current state. */
  get state(): ConnectionState {
    return this.#state
  }

  /** The last handshake, if any. */
  get hello(): ServerHello | null {
    return this.#hello
  }

  /** Frame size limit in force (the relay's announced one once known). */
  get maxFrameBytes(): number {
    return this.#hello?.limits?.maxFrameBytes || DEFAULT_LIMITS.maxFrameBytes
  }

  /** Starts connecting (and keeps reconnecting) until {@link stop}. Idempotent. Clears a {@link halt}. */
  start(): void {
    if (this.#state === 'closed') throw new ParleyError('CLOSED', 'the client is closed')
    this.#halted = null
    if (this.#wanted) return
    this.#wanted = true
    this.#connectSoon(0)
  }

  /**
   * Resolves when the link is online (handshake and hooks done); rejects on abort or timeout, and with the
   * refusal of a {@link halt} (at once, or when it halts meanwhile) instead of starting the link again.
   */
  async waitOnline(signal?: AbortSignal, timeoutMs = this.#o.requestTimeoutMs): Promise<void> {
    if (this.#state === 'online') return
    if (this.#state === 'closed') throw new ParleyError('CLOSED', 'the client is closed')
    if (this.#halted !== null) throw this.#halted
    if (!this.#wanted) this.start()
    if (this.#online === null) {
      this.#online = new Promise((resolve, reject) => {
        this.#resolveOnline = resolve
        this.#rejectOnline = reject
      })
    }
    await this.#race(this.#online, signal, timeoutMs, 'relay not reachable')
  }

  /**
   * Sends a request and waits for its response.
   * @param body - the frame without `requestId`
   * @param options.raw - send even if the link is not yet online (used by handshake hooks)
   * @throws ParleyError from the relay's `Error` frame, `UNAVAILABLE` when the connection drops,
   *   `TIMEOUT`, `ABORTED`
   */
  async request(
    body: Omit<ClientFrameInput, 'requestId'>,
    options: { signal?: AbortSignal; timeoutMs?: number; raw?: boolean } = {},
  ): Promise<ServerFrame> {
    if (!options.raw) await this.waitOnline(options.signal)
    const socket = this.#socket
    if (socket === null) throw new ParleyError('UNAVAILABLE', 'not connected to the relay')
    const requestId = this.#nextId
    this.#nextId = this.#nextId >= 0x7fffffff ? 1 : this.#nextId + 1
    const bytes = encodeClientFrame({ ...body, requestId }, this.maxFrameBytes)
    const response = new Promise<ServerFrame>((resolve, reject) => {
      this.#pending.set(requestId, { resolve, reject, cleanup: () => this.#pending.delete(requestId) })
    })
    try {
      socket.send(bytes)
    } catch (err) {
      this.#pending.delete(requestId)
      throw new ParleyError('UNAVAILABLE', 'could not send to the relay', { cause: err })
    }
    try {
      const frame = await this.#race(
        response,
        options.signal,
        options.timeoutMs ?? this.#o.requestTimeoutMs,
        'relay did not answer',
      )
      if (frame.body === 'error') throw parleyErrorFromWire(frame.error ?? {})
      return frame
    } finally {
      this.#pending.delete(requestId)
    }
  }

  /** Sends a frame that has no response (e.g. acks are answered, but callers may not care). */
  send(body: Omit<ClientFrameInput, 'requestId'>): void {
    const socket = this.#socket
    if (socket === null) return
    const requestId = this.#nextId
    this.#nextId = this.#nextId >= 0x7fffffff ? 1 : this.#nextId + 1
    socket.send(encodeClientFrame({ ...body, requestId }, this.maxFrameBytes))
  }

  /** Drops the current connection (it will reconnect if still wanted). For tests and for protocol errors. */
  drop(reason = 'dropped'): void {
    this.#socket?.close(4000, reason)
  }

  /** Stops reconnecting and closes the connection; the link can be started again unless `final`. */
  stop(final = false): void {
    this.#shutDown(
      final ? 'closed' : 'offline',
      new ParleyError(final ? 'CLOSED' : 'UNAVAILABLE', 'connection closed by the client'),
    )
  }

  /**
   * Stops for a refusal that reconnecting cannot cure (an operator's ban): closes the connection and stops
   * reconnecting, like {@link stop}, but the requests and waits in progress fail with `error`, and so does every
   * later {@link waitOnline} or {@link request}, instead of starting the link again, until {@link start}.
   * @param error - the refusal, also reported as the `offline` state's error
   */
  halt(error: ParleyError): void {
    this.#halted = error
    this.#shutDown('offline', error, error)
    const reject = this.#rejectOnline
    this.#online = null
    this.#resolveOnline = null
    this.#rejectOnline = null
    reject?.(error)
  }

  #shutDown(state: 'offline' | 'closed', pendingError: ParleyError, stateError?: ParleyError): void {
    this.#wanted = false
    if (this.#retryTimer !== null) this.#o.clock.clearTimeout(this.#retryTimer)
    this.#retryTimer = null
    this.#abort?.abort()
    const socket = this.#socket
    this.#socket = null
    socket?.close(1000, 'client closing')
    this.#failPending(pendingError)
    this.#setState(state, {
      attempt: this.#attempt,
      ...(stateError === undefined ? {} : { error: stateError }),
    })
  }

  #connectSoon(delay: number): void {
    if (!this.#wanted) return
    this.#retryTimer = this.#o.clock.setTimeout(() => {
      this.#retryTimer = null
      void this.#connect()
    }, delay)
  }

  async #connect(): Promise<void> {
    if (!this.#wanted) return
    this.#attempt++
    this.#setState('connecting', { attempt: this.#attempt })
    const abort = new AbortController()
    this.#abort = abort
    let socket: TransportSocket
    try {
      socket = await this.#o.transport.open(this.#o.url, abort.signal)
    } catch (err) {
      this.#scheduleRetry(new ParleyError('UNAVAILABLE', 'could not connect to the relay', { cause: err }))
      return
    }
    if (!this.#wanted) {
      socket.close(1000, 'client closing')
      return
    }
    this.#socket = socket
    socket.onMessage = (data) => this.#onMessage(data)
    socket.onClose = () => {
      if (this.#socket !== socket) return
      this.#socket = null
      this.#failPending(new ParleyError('UNAVAILABLE', 'connection to the relay lost'))
      if (this.#wanted) this.#scheduleRetry(new ParleyError('UNAVAILABLE', 'connection to the relay lost'))
    }
    try {
      const hello = await this.request(
        { hello: { protocolMajor: PROTOCOL_MAJOR, protocolMinor: PROTOCOL_MINOR } },
        { raw: true },
      )
      if (hello.body !== 'serverHello' || hello.serverHello === undefined || hello.serverHello === null) {
        throw new ParleyError('UNSUPPORTED', 'the relay did not answer the handshake')
      }
      if (hello.serverHello.protocolMajor !== PROTOCOL_MAJOR) {
        throw new ParleyError('UNSUPPORTED', `the relay speaks protocol v${hello.serverHello.protocolMajor}`)
      }
      this.#hello = hello.serverHello as ServerHello
      await this.#o.hooks.onHandshake(this.#hello, this)
      if (this.#socket !== socket) return
      this.#attempt = 0
      this.#setState('online', { attempt: 0 })
      this.#resolveOnline?.()
      this.#online = null
      this.#resolveOnline = null
      this.#rejectOnline = null
    } catch (err) {
      const e = ParleyError.fromUnknown(err)
      if (this.#socket === socket) {
        this.#socket = null
        socket.onClose = null
        socket.close(4001, 'handshake failed')
        this.#failPending(e)
        this.#scheduleRetry(e)
      }
    }
  }

  #scheduleRetry(error: ParleyError): void {
    if (!this.#wanted) return
    // Exponential backoff with "equal jitter": half the window is fixed, so a relay that is down is never
    // hammered in a tight loop, and half is random, so clients that lost it together do not return together.
    const cap = Math.min(this.#o.backoffMaxMs, this.#o.backoffMinMs * 2 ** Math.min(this.#attempt, 16))
    const retryInMs = Math.max(error.retryAfterMs ?? 0, Math.floor(cap / 2 + (this.#o.jitter() * cap) / 2))
    this.#setState('offline', { attempt: this.#attempt, retryInMs, error })
    this.#connectSoon(retryInMs)
  }

  #onMessage(data: Uint8Array): void {
    let frame: ServerFrame
    try {
      frame = decodeServerFrame(data, this.maxFrameBytes)
    } catch (err) {
      // A relay that sends garbage is not trusted with the rest of this connection.
      this.#o.hooks.onPush({
        requestId: 0,
        body: 'error',
        error: { code: 1, message: 'undecodable frame from relay' },
      } as ServerFrame)
      this.drop('undecodable frame')
      void err
      return
    }
    if (frame.requestId !== 0) {
      const pending = this.#pending.get(frame.requestId)
      if (pending !== undefined) {
        pending.cleanup()
        pending.resolve(frame)
      }
      return
    }
    this.#o.hooks.onPush(frame)
  }

  #failPending(err: ParleyError): void {
    for (const p of [...this.#pending.values()]) {
      p.cleanup()
      p.reject(err)
    }
  }

  #setState(
    state: ConnectionState,
    info: { attempt: number; retryInMs?: number; error?: ParleyError },
  ): void {
    if (this.#state === 'closed') return
    const changed = state !== this.#state || info.retryInMs !== undefined || info.error !== undefined
    this.#state = state
    if (changed) this.#o.hooks.onState(state, info)
  }

  async #race<T>(
    p: Promise<T>,
    signal: AbortSignal | undefined,
    timeoutMs: number,
    what: string,
  ): Promise<T> {
    if (signal?.aborted) throw new ParleyError('ABORTED', 'aborted', { cause: signal.reason })
    let timer: unknown = null
    let onAbort: (() => void) | null = null
    try {
      return await Promise.race([
        p,
        new Promise<never>((_, reject) => {
          timer = this.#o.clock.setTimeout(() => reject(new ParleyError('TIMEOUT', what)), timeoutMs)
          if (signal) {
            onAbort = () => reject(new ParleyError('ABORTED', 'aborted', { cause: signal.reason }))
            signal.addEventListener('abort', onAbort, { once: true })
          }
        }),
      ])
    } finally {
      if (timer !== null) this.#o.clock.clearTimeout(timer)
      if (onAbort !== null) signal?.removeEventListener('abort', onAbort)
    }
  }
}
