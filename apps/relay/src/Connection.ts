/**
 * One device's WebSocket: the per-connection state machine (hello → optional authentication), frame
 * decoding with limits, flood and garbage protection, ordered request handling, and mailbox pushes.
 *
 * Requests are handled in arrival order. Each one finishes before the next starts, except runs of consecutive
 * `SendMessage` / `AckMessages` when the store orders concurrent writes (`Store.ordersConcurrentWrites`): their
 * first halves (checks, quota, submitting the write) still run one at a time in arrival order, but the second
 * halves (awaiting the commit, replying) overlap, so the run shares group commits instead of waiting for one
 * fsync each. Replies in a run may therefore leave out of order (clients match them by request id); every
 * other request waits until the run has been answered.
 * Nothing a client sends can throw past this class.
 * @module
 */
import { randomBytes } from 'node:crypto'
import {
  type ClientBody,
  type ClientFrame,
  decodeClientFrame,
  encodeServerFrame,
  GapReason,
  ParleyError,
  peekClientFrame,
  type ServerFrameInput,
  wireErrorFrom,
} from '@parley/protocol'
import type { WebSocket } from 'ws'
import { CloseCode } from './closeCodes.js'
import type { RelayContext } from './context.js'
import type { FanoutEvent } from './Fanout.js'
import { heldError } from './handlers/holds.js'
import { admit, type Commit, dispatch, isSplit, needsAuthentication, type Reply } from './handlers/index.js'
import type { BoundDevice, Caller } from './handlers/scope.js'
import { deviceGone, quotaId, quotaScopeOf } from './handlers/util.js'
import { networkOf } from './internal/network.js'

let nextId = 1
/** Most entries in one mailbox page read for pushes. */
export const PAGE_ENTRIES = 100
/**
 * Envelope bytes in one mailbox page read for pushes (a single larger envelope still makes a page of one). Pages
 * are cut by bytes, not only by count: 100 envelopes of up to 256 KiB would be 25 MiB held per syncing socket.
 * A page is read in one go on the event loop, so this also bounds the longest such task: 1 MiB pages made
 * re-syncing sockets the largest delay of an honest client's requests (bench/README.md, abuse).
 */
export const PAGE_BYTES = 256 * 1024
/**
 * Mailbox pushes pause while more than this much data is unsent, and the next page is read only below it: a
 * syncing connection holds at most about this plus one page ({@link PAGE_BYTES}) for its pushes.
 */
export const HIGH_WATER_BYTES = 4 * 1024 * 1024
/** Frames larger than this (bytes) are handled on the heavy lane, one per turn across all connections. */
export const LIGHT_FRAME_BYTES = 4096

/** Byte length of a message as `ws` hands it over. */
function sizeOf(data: unknown): number {
  return Array.isArray(data)
    ? (data as Buffer[]).reduce((n, b) => n + b.length, 0)
    : ((data as { byteLength?: number }).byteLength ?? 0)
}

/** Mailbox pushes are written in heavy-lane slices of about this many envelope bytes each. */
export const PUSH_SLICE_BYTES = 64 * 1024
/** Replies beyond this much unsent data mean the client is not reading: it is disconnected (memory bound). */
export const SLOW_CONSUMER_BYTES = 16 * 1024 * 1024

/** A client connection. */
export class Connection implements Caller {
  readonly id = nextId++
  /** The nonce this connection's `Authenticate` must sign; single use. */
  readonly nonce = new Uint8Array(randomBytes(32))
  helloDone = false
  nonceUsed = false
  /** Set by the first activation frame: such a connection is about to be tied to an account. */
  activating = false
  /** Set by the first unidentified send: such a connection can never authenticate or activate. */
  anonymous = false
  /**
   * Proof-of-work difficulty announced in this connection's `ServerHello` (`activation_pow_bits`): what its
   * `ActivationStart` frames must solve. Set by `hello`; frames before Hello are refused.
   */
  activationPowBits = 0
  /** Membership prefix length announced in this connection's `ServerHello`: the only one its queries may use. */
  membershipPrefixBits = 0
  device: BoundDevice | null = null

  readonly ctx: RelayContext
  readonly ip: string
  /** The source network (`--ipv4-network-bits` / `--ipv6-network-bits`) every IP-based limit counts by. */
  readonly network: string
  readonly #ws: WebSocket
  /** Ordered work: whole requests, or the first halves of split ones. */
  #queue: Promise<void> = Promise.resolve()
  /** Second halves of split requests still awaiting their commit (see the module comment). */
  readonly #overlapped = new Set<Promise<void>>()
  #inFlight = 0
  #badFrames = 0
  #tokens: number
  #tokensAt = Date.now()
  /** Ack budget: sequence numbers this connection may still ack (see {@link Connection.chargeAcks}). */
  #ackTokens: number
  #ackTokensAt = Date.now()
  #dropped = 0
  #closed = false
  #draining = false
  #unsubscribe: (() => Promise<void>) | null = null
  /** Live-push cursor: the last seq sent; null until the client's first SyncMailbox. */
  #cursor: number | null = null
  #pump: Promise<unknown> = Promise.resolve()
  #pumpQueued = false
  #idleTimer: ReturnType<typeof setTimeout> | null = null
  /** Queued Authenticate / ActivationConfirm frames not yet handled: the connection may yet authenticate. */
  #authPending = 0
  /**
   * Bodies this connection was told to wait for (a quota of its account said RATE_LIMITED with retryAfterMs):
   * until then, more of them are refused from the frame's top level, undecoded, with the time still to wait.
   */
  #refusedUntil = new Map<ClientBody, { untilMs: number; scope: string }>()
  #refusedScopes = new Set<string>()
  /** Read budget before authentication (`--pre-auth-bytes-per-second`), in bytes; refilled by time. */
  #readBytes: number
  #readBytesAt = Date.now()
  #paused = false
  /** Reasons reading is paused for (the pre-auth byte budget, a frame waiting for the heavy lane); reads at 0. */
  #holds = 0
  /** Frames read while an earlier one waits for the heavy lane; handled in order, one per lane turn. */
  readonly #deferred: { data: unknown; isBinary: boolean }[] = []
  #helloReceived = false
  /** Most entries of any repeated field a frame may have (the largest per-field limit); decoding stops there. */
  readonly #maxRepeated: number

  constructor(ws: WebSocket, ip: string, ctx: RelayContext) {
    this.#ws = ws
    this.ip = ip
    this.network = networkOf(ip, { v4: ctx.config.ipv4NetworkBits, v6: ctx.config.ipv6NetworkBits })
    this.ctx = ctx
    this.#tokens = ctx.config.framesBurst
    this.#ackTokens = 2 * ctx.config.maxAcksPerFrame
    this.#readBytes = 2 * ctx.config.maxFrameBytes
    const c = ctx.config
    this.#maxRepeated = Math.max(
      1,
      c.maxDiscoveryBatch,
      c.maxAcksPerFrame,
      c.maxPrekeysPerUpload,
      c.maxActivationSignedPrekeys,
    )
    ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary))
    if (ctx.config.helloTimeoutMs > 0) {
      const timer = setTimeout(() => {
        if (!this.helloDone) this.close(CloseCode.policy, 'no Hello in time', 'hello_timeout')
      }, ctx.config.helloTimeoutMs)
      timer.unref()
      ws.once('close', () => clearTimeout(timer))
    }
    ws.once('close', () => {
      if (this.#idleTimer) clearTimeout(this.#idleTimer)
    })
  }

  /**
   * A connection that has said Hello but is not authenticated costs the relay a socket and a slot of its
   * network's connection limit while it does nothing: it is closed after `--pre-auth-idle-ms` without a
   * request (pings do not count). Authenticated connections are never closed by this.
   */
  #touch(): void {
    const ms = this.ctx.config.preAuthIdleMs
    if (ms <= 0 || this.device) return
    if (this.#idleTimer) clearTimeout(this.#idleTimer)
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null
      if (!this.device && !this.#closed && this.#inFlight === 0) {
        this.close(CloseCode.policy, 'idle before authentication', 'pre_auth_idle')
      } else if (!this.device) this.#touch()
    }, ms)
    this.#idleTimer.unref()
  }

  /** Whether the connection has been closed by either side. */
  get closed(): boolean {
    return this.#closed
  }

  /** Resolves once every queued request has been answered. */
  async idle(): Promise<void> {
    let queue: Promise<void>
    do {
      queue = this.#queue
      await queue
      await this.#settled()
    } while (queue !== this.#queue)
  }

  /** Resolves once no second half of a split request is outstanding. */
  async #settled(): Promise<void> {
    while (this.#overlapped.size > 0) await Promise.all(this.#overlapped)
  }

  #log() {
    return this.ctx.log.child({ conn: this.id })
  }

  /** Token bucket per connection; true when the frame may be processed. */
  #admit(): boolean {
    const { framesBurst, framesPerSecond } = this.ctx.config
    const now = Date.now()
    this.#tokens = Math.min(framesBurst, this.#tokens + ((now - this.#tokensAt) / 1000) * framesPerSecond)
    this.#tokensAt = now
    if (this.#tokens >= 1 && this.#inFlight < framesBurst) {
      this.#tokens -= 1
      return true
    }
    return false
  }

  /**
   * Charges `n` acknowledged sequence numbers to this connection's ack budget: a token bucket of twice
   * `--max-acks-per-frame`, refilled at `--acks-per-second` (each acked seq costs the store a row deletion).
   * Nothing is charged when it refuses.
   * @throws ParleyError `RATE_LIMITED` with `retryAfterMs` over budget (counted under scope "acks")
   */
  chargeAcks(n: number): void {
    const { maxAcksPerFrame, acksPerSecond } = this.ctx.config
    const rate = Math.max(1, acksPerSecond)
    const now = Date.now()
    this.#ackTokens = Math.min(
      2 * maxAcksPerFrame,
      this.#ackTokens + ((now - this.#ackTokensAt) / 1000) * rate,
    )
    this.#ackTokensAt = now
    if (n <= this.#ackTokens) {
      this.#ackTokens -= n
      return
    }
    this.ctx.metrics.rateLimited.inc({ scope: 'acks' })
    const retryAfterMs = Math.max(1, Math.ceil(((n - this.#ackTokens) / rate) * 1000))
    throw new ParleyError('RATE_LIMITED', 'too many sequence numbers acked; slow down', { retryAfterMs })
  }

  /** Answers a frame refused from its top level alone, without decoding it (counted by body type). */
  #refuseUnread(body: ClientBody, requestId: number, err: ParleyError): void {
    this.ctx.metrics.frames.inc({ type: body })
    this.ctx.metrics.refusedUndecoded.inc({ type: body })
    this.sendError(requestId, err)
  }

  /**
   * Reading is paced by bytes: before authentication (and unidentified mail) at `--pre-auth-bytes-per-second`
   * after a burst of two frames, afterwards at `--bytes-per-second` after a burst of one second of it. A
   * connection over its budget has its socket paused until the budget has refilled, so TCP backpressure, not the
   * relay's event loop (receiving, unmasking and collecting the garbage of each frame), absorbs a flood of huge
   * frames — refused ones too, before login or after.
   */
  #chargeRead(data: unknown): void {
    const { preAuthBytesPerSecond, bytesPerSecond, maxFrameBytes } = this.ctx.config
    const authenticated = this.device !== null || this.anonymous
    const rate = authenticated ? bytesPerSecond : preAuthBytesPerSecond
    if (rate <= 0) return
    const size = sizeOf(data)
    const now = Date.now()
    const burst = authenticated ? Math.max(rate, 2 * maxFrameBytes) : 2 * maxFrameBytes
    this.#readBytes = Math.min(burst, this.#readBytes + ((now - this.#readBytesAt) / 1000) * rate)
    this.#readBytesAt = now
    this.#readBytes -= size
    if (this.#readBytes >= 0 || this.#paused) return
    this.#paused = true
    if (authenticated) this.ctx.metrics.readsPaused.inc()
    else this.ctx.metrics.preAuthPaused.inc()
    this.#hold()
    const timer = setTimeout(
      () => {
        this.#paused = false
        this.#release()
      },
      Math.ceil((-this.#readBytes / rate) * 1000),
    )
    timer.unref()
  }

  /** Stops reading from the socket until as many {@link Connection.#release} calls. */
  #hold(): void {
    if (this.#holds++ === 0 && !this.#closed) this.#ws.pause()
  }

  #release(): void {
    if (--this.#holds === 0 && !this.#closed) this.#ws.resume()
  }

  /** Whether this is the connection's first refusal by the quota `scope` (the relay logs only that one). */
  firstRefusal(scope: string): boolean {
    if (this.#refusedScopes.has(scope)) return false
    this.#refusedScopes.add(scope)
    return true
  }

  /** Stops taking requests (shutdown): new frames are answered UNAVAILABLE; queued ones still complete. */
  drain(): void {
    this.#draining = true
  }

  #onMessage(data: unknown, isBinary: boolean): void {
    if (this.#closed) return
    if (this.#deferred.length > 0 || this.#heavy(data)) {
      // Heavy frames wait for a turn of the heavy lane, one frame per turn across all connections, and nothing
      // more is read from this socket meanwhile: light requests of other clients go first.
      this.#deferred.push({ data, isBinary })
      this.ctx.metrics.framesDeferred.inc()
      if (this.#deferred.length === 1) {
        this.#hold()
        this.#nextDeferred()
      }
      return
    }
    this.#read(data, isBinary)
  }

  /**
   * Whether a frame goes to the heavy lane rather than being handled as it is read: before authentication
   * (nothing an unauthenticated client sends is urgent, and pre-login frames are what a botnet can send for free),
   * or a frame over {@link LIGHT_FRAME_BYTES} (its decoding alone costs in proportion to its size).
   */
  #heavy(data: unknown): boolean {
    return (!this.device && !this.anonymous) || sizeOf(data) > LIGHT_FRAME_BYTES
  }

  /** Handles the first deferred frame in the heavy lane's next turn, then the next, and reads again after the last. */
  #nextDeferred(): void {
    this.ctx.lane
      .slice(() => {
        const next = this.#deferred.shift()
        try {
          if (next && !this.#closed) this.#read(next.data, next.isBinary)
        } finally {
          if (this.#deferred.length > 0 && !this.#closed) this.#nextDeferred()
          else {
            this.#deferred.length = 0
            this.#release()
          }
        }
      })
      .catch((err) => this.#log().error({ err }, 'deferred frame failed'))
  }

  #read(data: unknown, isBinary: boolean): void {
    if (this.#closed) return
    if (!this.#admit()) {
      this.#dropped++
      this.ctx.metrics.rateLimited.inc({ scope: 'frames' })
      if (this.#dropped === 1) {
        const retryAfterMs = Math.ceil(1000 / Math.max(1, this.ctx.config.framesPerSecond))
        this.sendError(0, new ParleyError('RATE_LIMITED', 'too many frames; slow down', { retryAfterMs }))
      }
      if (this.#dropped > this.ctx.config.framesBurst) this.close(CloseCode.policy, 'flooding', 'flood')
      return
    }
    this.#dropped = 0
    this.#chargeRead(data)
    let frame: ClientFrame
    let peek: ReturnType<typeof peekClientFrame>
    try {
      if (!isBinary) throw new ParleyError('BAD_REQUEST', 'frames must be binary')
      const bytes = Array.isArray(data)
        ? new Uint8Array(Buffer.concat(data as Buffer[]))
        : data instanceof ArrayBuffer
          ? new Uint8Array(data)
          : new Uint8Array((data as Buffer).buffer, (data as Buffer).byteOffset, (data as Buffer).length)
      // Refused unread: a body only an authenticated connection may send, on one that is not authenticated
      // and has no authentication pending, costs a top-level scan instead of a decode of up to 320 KiB.
      peek = bytes.length <= this.ctx.config.maxFrameBytes ? peekClientFrame(bytes) : undefined
      if (
        peek?.body !== undefined &&
        peek.requestId !== 0 &&
        !this.device &&
        this.#authPending === 0 &&
        needsAuthentication(peek.body)
      ) {
        this.#refuseUnread(
          peek.body,
          peek.requestId,
          this.helloDone || this.#helloReceived
            ? new ParleyError('UNAUTHENTICATED', 'authenticate first')
            : new ParleyError('BAD_REQUEST', 'send Hello first'),
        )
        return
      }
      const wait =
        peek?.body !== undefined && peek.requestId !== 0 ? this.#refusedUntil.get(peek.body) : undefined
      if (wait !== undefined) {
        const retryAfterMs = wait.untilMs - Date.now()
        if (retryAfterMs > 0) {
          this.ctx.metrics.rateLimited.inc({ scope: wait.scope })
          this.#refuseUnread(
            peek!.body!,
            peek!.requestId,
            new ParleyError('RATE_LIMITED', `${wait.scope} quota exhausted`, { retryAfterMs }),
          )
          return
        }
        this.#refusedUntil.delete(peek!.body!)
      }
      frame = decodeClientFrame(bytes, this.ctx.config.maxFrameBytes, { maxRepeated: this.#maxRepeated })
    } catch (err) {
      // Answered under the frame's request id when its top level said one, so the client can match it.
      this.sendError(peek?.requestId ?? 0, err)
      if (++this.#badFrames >= this.ctx.config.maxBadFrames)
        this.close(CloseCode.policy, 'too many bad frames', 'garbage')
      return
    }
    this.ctx.metrics.frames.inc({ type: frame.body })
    if (frame.body === 'hello') this.#helloReceived = true
    if (frame.body !== 'ping') this.#touch()
    if (this.#draining) {
      this.sendError(
        frame.requestId,
        new ParleyError('UNAVAILABLE', 'the relay is shutting down; reconnect', { retryAfterMs: 1000 }),
      )
      return
    }
    this.#inFlight++
    if (this.ctx.store.ordersConcurrentWrites && isSplit(frame)) {
      this.#queue = this.#queue.then(() => this.#admitSplit(frame))
    } else {
      const authenticating = frame.body === 'authenticate' || frame.body === 'activationConfirm'
      if (authenticating) this.#authPending++
      this.#queue = this.#queue
        .then(() => this.#settled())
        .then(() => this.#handle(frame))
        .finally(() => {
          this.#inFlight--
          if (authenticating) this.#authPending--
        })
    }
  }

  /**
   * First half of a split request, on the ordered queue: resolves once its store write has been submitted, so
   * the next request's write is submitted after it. The second half is left running; `#inFlight` counts the
   * request until it has been answered.
   */
  async #admitSplit(frame: ClientFrame): Promise<void> {
    let commit: Commit
    try {
      if (this.#closed) {
        this.#inFlight--
        return
      }
      commit = await admit(this, frame)
    } catch (err) {
      this.#fail(frame, err)
      this.#inFlight--
      return
    }
    const answered: Promise<void> = commit()
      .then(
        (reply) => this.#reply(frame, reply),
        (err) => this.#fail(frame, err),
      )
      .finally(() => {
        this.#overlapped.delete(answered)
        this.#inFlight--
      })
    this.#overlapped.add(answered)
  }

  async #handle(frame: ClientFrame): Promise<void> {
    if (this.#closed) return
    try {
      this.#reply(frame, await dispatch(this, frame))
    } catch (err) {
      this.#fail(frame, err)
    }
  }

  /** Sends a handler's reply, if it has one. */
  #reply(frame: ClientFrame, reply: Reply | undefined): void {
    try {
      if (reply) this.send({ requestId: frame.requestId, ...reply } as ServerFrameInput)
    } catch (err) {
      this.#fail(frame, err)
    }
  }

  /** Answers a failed request with an `Error` frame. */
  #fail(frame: ClientFrame, err: unknown): void {
    const scope = quotaScopeOf(err)
    const retryAfterMs = ParleyError.is(err) ? err.retryAfterMs : undefined
    if (scope !== undefined && retryAfterMs !== undefined && needsAuthentication(frame.body)) {
      // Only the account's own requests: activation quotas are per number, and another number may pass.
      this.#refusedUntil.set(frame.body, { untilMs: Date.now() + retryAfterMs, scope })
    }
    if (!ParleyError.is(err)) {
      // Only the error's type and stack are logged; handlers never put secrets in messages.
      this.#log().error({ err, type: frame.body }, 'request failed')
    }
    this.sendError(frame.requestId, err)
  }

  /**
   * Sends a frame.
   * @throws ParleyError `TOO_LARGE` when the frame does not fit the limit (nothing is sent)
   */
  send(frame: ServerFrameInput): void {
    const bytes = encodeServerFrame(frame, this.ctx.config.maxFrameBytes)
    if (this.#ws.readyState !== this.#ws.OPEN) return
    if (this.#ws.bufferedAmount > SLOW_CONSUMER_BYTES) {
      // Mailbox pushes wait for the buffer to drain; replies cannot, so a client that sends but never reads
      // is cut off here instead of growing the relay's memory without bound.
      this.#closed = true
      this.ctx.metrics.closedConnections.inc({ reason: 'slow_consumer' })
      void this.unbind()
      this.#ws.terminate()
      return
    }
    this.#ws.send(bytes)
  }

  /** Sends an `Error` frame for any error (non-Parley errors become INTERNAL with a generic message). */
  sendError(requestId: number, err: unknown): void {
    const wire = wireErrorFrom(err)
    const code = ParleyError.is(err) ? err.code : 'INTERNAL'
    this.ctx.metrics.errors.inc({ code })
    try {
      this.send({ requestId, error: wire })
    } catch {}
  }

  /** Closes the connection (idempotent). */
  close(code: number, reason: string, metricReason = reason): void {
    if (this.#closed) return
    this.#closed = true
    this.ctx.metrics.closedConnections.inc({ reason: metricReason })
    void this.unbind()
    try {
      // A held socket (heavy lane, pre-login pacing) would never read the client's answering close frame, and the
      // socket would linger until the WebSocket close timeout (30 s). Reading again is safe: frames that arrive
      // after this are dropped (#onMessage stops at #closed).
      if (this.#holds > 0) this.#ws.resume()
      this.#ws.close(code, reason)
    } catch {
      this.#ws.terminate()
    }
  }

  /** Called when the socket has closed. */
  onClosed(): void {
    this.#closed = true
    void this.unbind()
  }

  /** Marks the connection as authenticated for a device and listens for its fan-out events. */
  async bind(address: Uint8Array, deviceId: number): Promise<void> {
    await this.unbind()
    const addressHex = Buffer.from(address).toString('hex')
    const bound = this.ctx.bound
    const key = `${addressHex}/${deviceId}`
    if ((bound.get(key) ?? 0) >= this.ctx.config.maxConnectionsPerAccount) {
      this.ctx.metrics.rateLimited.inc({ scope: 'connections_account' })
      throw new ParleyError('RATE_LIMITED', 'too many connections for this device; close one first', {
        retryAfterMs: 1000,
      })
    }
    bound.set(key, (bound.get(key) ?? 0) + 1)
    this.device = { address, addressHex, deviceId, quotaId: quotaId(this, address) }
    this.#cursor = null
    this.ctx.metrics.authenticated.inc()
    const unsubscribe = await this.ctx.fanout.subscribe(addressHex, (event) => this.#onFanout(event))
    // The socket may have closed while subscribing.
    if (this.#closed || this.device?.addressHex !== addressHex) await unsubscribe()
    else this.#unsubscribe = unsubscribe
  }

  async move(address: Uint8Array): Promise<void> {
    const device = this.device
    if (!device) throw new ParleyError('UNAUTHENTICATED', 'not authenticated')
    const cursor = this.#cursor
    await this.bind(address, device.deviceId)
    this.#cursor = cursor
  }

  /** Forgets the authenticated device. */
  async unbind(): Promise<void> {
    if (this.device) {
      this.ctx.metrics.authenticated.dec()
      const bound = this.ctx.bound
      const key = `${this.device.addressHex}/${this.device.deviceId}`
      const n = (bound?.get(key) ?? 1) - 1
      if (n <= 0) bound?.delete(key)
      else bound?.set(key, n)
    }
    this.device = null
    this.#cursor = null
    const unsubscribe = this.#unsubscribe
    this.#unsubscribe = null
    if (unsubscribe) await unsubscribe()
  }

  #onFanout(event: FanoutEvent): void {
    const device = this.device
    if (!device || this.#closed) return
    if (event.kind === 'banned') {
      this.sendError(0, heldError('banned'))
      this.close(CloseCode.revoked, 'account banned', 'banned')
      return
    }
    if (event.kind === 'moved') {
      // Not "replaced": the device is still the account's, at its new address, which it learns on reconnecting.
      this.close(CloseCode.serviceRestart, 'the account moved; reconnect', 'moved')
      return
    }
    if (event.kind === 'removed') {
      if (event.deviceId !== device.deviceId) return
      this.ctx.metrics.devicesReplaced.inc({ reason: 'removed' })
      try {
        this.send({ requestId: 0, deviceReplaced: { erased: false, removed: true } })
      } catch {}
      this.sendError(0, deviceGone())
      this.close(CloseCode.revoked, 'device removed', 'revoked')
      return
    }
    if (event.kind === 'revoked') {
      if (event.keepDeviceId === device.deviceId) return
      // Told first, so that a takeover (someone else activated the number) is visible on the old device.
      this.ctx.metrics.devicesReplaced.inc({ reason: event.keepDeviceId === 0 ? 'erased' : 'reactivated' })
      try {
        this.send({ requestId: 0, deviceReplaced: { erased: event.keepDeviceId === 0 } })
      } catch {}
      this.sendError(0, deviceGone())
      this.close(CloseCode.revoked, 'device revoked', 'revoked')
      return
    }
    if (event.kind === 'ephemeral') {
      this.#pushEphemeral(device.deviceId, event)
      return
    }
    if (event.deviceId !== device.deviceId || this.#cursor === null || event.seq <= this.#cursor) return
    if (this.#pumpQueued) return
    this.#pumpQueued = true
    this.#pump = this.#pump.then(() => {
      this.#pumpQueued = false
      return this.#drain().catch((err) => this.#log().error({ err }, 'mailbox push failed'))
    })
  }

  /**
   * Pushes an ephemeral message (a typing indicator) to this connection's device as a Delivery with seq 0, now:
   * only once the device reads live mail (it has sent SyncMailbox), and dropped, counted, when the socket is
   * already over its high-water mark — an indicator that comes late is worth nothing, and is never queued.
   */
  #pushEphemeral(deviceId: number, event: Extract<FanoutEvent, { kind: 'ephemeral' }>): void {
    if (event.deviceId !== deviceId || this.#cursor === null) return
    const { metrics } = this.ctx
    if (this.#ws.bufferedAmount >= HIGH_WATER_BYTES) {
      metrics.ephemeral.inc({ outcome: 'dropped' })
      return
    }
    try {
      this.send({
        requestId: 0,
        delivery: { seq: 0, messageId: event.messageId, envelope: event.envelope, receivedAtMs: Date.now() },
      })
      metrics.ephemeral.inc({ outcome: 'pushed' })
    } catch {
      metrics.ephemeral.inc({ outcome: 'dropped' })
    }
  }

  /**
   * Sends every mailbox entry and gap after `afterSeq` (Delivery / MailboxGap pushes, in seq order), then keeps
   * pushing new mail live. Resolves the head sequence number once caught up.
   */
  async sync(afterSeq: number): Promise<number> {
    const run = this.#pump.then(() => {
      this.#cursor = afterSeq
      return this.#drain()
    })
    this.#pump = run.catch(() => {})
    return run
  }

  async #drain(): Promise<number> {
    const { metrics } = this.ctx
    let head = 0
    for (;;) {
      const device = this.device
      if (!device || this.#closed || this.#cursor === null) return head
      // The next page is read only once the unsent data is below the high-water mark, and a page is at most
      // PAGE_BYTES of envelopes: what a connection holds for its pushes stays near HIGH_WATER_BYTES + PAGE_BYTES.
      await this.#belowHighWater()
      if (this.#closed || this.device !== device || this.#cursor === null) return head
      const cursor = this.#cursor
      // A page read (up to PAGE_BYTES) is a slice of the heavy lane: many syncing sockets take turns with the rest.
      const page = await this.ctx.lane.slice(() =>
        this.ctx.store.fetchMailbox(device.address, device.deviceId, cursor, PAGE_ENTRIES, PAGE_BYTES),
      )
      head = page.headSeq
      if (page.entries.length === 0 && page.gaps.length === 0) return head
      /** Envelope bytes of this page not yet handed to the socket. */
      let unsent = 0
      for (const e of page.entries) unsent += e.envelope.length
      metrics.mailboxPages.inc()
      metrics.mailboxPageBytesMax.observe(unsent)
      metrics.pushHeldBytesMax.observe(this.#ws.bufferedAmount + unsent)
      const items = [
        ...page.entries.map((e) => ({ at: e.seq, entry: e })),
        ...page.gaps.map((g) => ({ at: g.firstSeq, gap: g })),
      ].sort((a, b) => a.at - b.at)
      let next = cursor
      // Pushes go out in lane slices of about PUSH_SLICE_BYTES, so a syncing socket's page is written in
      // turns with everybody else's requests rather than in one go.
      for (let i = 0; i < items.length; ) {
        if (this.#closed || this.device !== device) return head
        await this.#belowHighWater()
        if (this.#closed || this.device !== device) return head
        i = await this.ctx.lane.slice(() => {
          let j = i
          for (let bytes = 0; j < items.length && bytes < PUSH_SLICE_BYTES; j++) {
            const item = items[j]!
            if ('entry' in item && item.entry) {
              const e = item.entry
              this.send({
                requestId: 0,
                delivery: {
                  seq: e.seq,
                  messageId: e.messageId,
                  envelope: e.envelope,
                  receivedAtMs: e.receivedAtMs,
                },
              })
              metrics.delivered.inc()
              metrics.deliveryLatency.observe(Math.max(0, Date.now() - e.receivedAtMs) / 1000)
              unsent -= e.envelope.length
              bytes += e.envelope.length
              metrics.pushHeldBytesMax.observe(this.#ws.bufferedAmount + unsent)
              next = Math.max(next, e.seq)
            } else if ('gap' in item && item.gap) {
              const g = item.gap
              const reason =
                g.reason === 'expired' ? GapReason.GAP_REASON_EXPIRED : GapReason.GAP_REASON_EVICTED
              this.send({ requestId: 0, mailboxGap: { firstSeq: g.firstSeq, lastSeq: g.lastSeq, reason } })
              next = Math.max(next, g.lastSeq)
            }
            if (this.#closed) break
          }
          return j
        })
      }
      this.#cursor = next
    }
  }

  /**
   * Resolves once no more than {@link HIGH_WATER_BYTES} are unsent (or the connection closed); while it waits the
   * connection counts in `parley_relay_pushes_paused_connections`.
   */
  async #belowHighWater(): Promise<void> {
    if (this.#ws.bufferedAmount <= HIGH_WATER_BYTES || this.#closed) return
    this.ctx.metrics.pushesPaused.inc()
    try {
      while (this.#ws.bufferedAmount > HIGH_WATER_BYTES && !this.#closed) {
        await new Promise((r) => setTimeout(r, 10))
      }
    } finally {
      this.ctx.metrics.pushesPaused.dec()
    }
  }
}
