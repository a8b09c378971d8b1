/**
 * An in-process relay for tests of anything built on the client engine: it speaks the relay side of the wire
 * protocol with real cryptography, records every frame, and lets a test script any answer.
 * @module
 */
import {
  type ClientBody,
  type ClientFrame,
  type CryptoProvider,
  decodeClientFrame,
  decodeServerFrame,
  encodeServerFrame,
  ParleyError,
  type ServerBody,
  type ServerBodyOf,
  type ServerFrame,
  type ServerFrameInput,
  wireErrorFrom,
} from '@parley/protocol'
import { type Clock, systemClock } from '../Clock.js'
import type { Transport, TransportSocket } from '../Transport.js'
import {
  type FakeAccount,
  type FakeMail,
  type FakeOprfKey,
  type FakeReply,
  type FakeText,
  hex,
  type PeerState,
  RelayModel,
} from './fakeRelayModel.js'

export type {
  FakeAccount,
  FakeMail,
  FakeOprfKey,
  FakeReply,
  FakeSignedKey,
  FakeText,
} from './fakeRelayModel.js'

/** Options of {@link FakeRelay}; all optional. */
export interface FakeRelayOptions {
  /** The relay's time (certificates, code lifetimes, `receivedAtMs`). Give it the clients' clock. Default: the system clock. */
  clock?: Clock
  /** CSPRNG returning `n` bytes (keys, nonces, activation ids, default codes). Default: `crypto.getRandomValues`. */
  random?: (n: number) => Uint8Array
  /** Faster primitives for the signatures it verifies, as `ParleyClientOptions.crypto`. Default: pure JS. */
  crypto?: CryptoProvider
  /** The code texted for an activation of a number (E.164). Default: six random digits. */
  code?: (e164: string) => string
  /** Lifetime of an activation code, in seconds (default 600). */
  codeTtlSeconds?: number
  /** Wrong codes allowed per activation (default 5). */
  codeAttempts?: number
  /** Address bits per membership prefix, announced in `ServerHello` (default 16). */
  membershipPrefixBits?: number
  /** Messages a mailbox holds before sends to it are refused `MAILBOX_FULL` (default 10,000). */
  maxMailboxMessages?: number
  /** Most OPRF elements or prefixes per request, announced in `ServerHello` (default 500). */
  maxDiscoveryBatch?: number
  /** Validity of the sender certificates it issues, in ms (default 24 h). */
  certificateTtlMs?: number
  /** Proof-of-work difficulty announced for `ActivationStart` (default 0: none). */
  activationPowBits?: number
  /** Inactivity after which a registration lock lapses, in ms (default 7 days). */
  registrationLockLapseMs?: number
  /** Wrong PINs allowed before the lock refuses every guess (default 5). */
  registrationLockGuesses?: number
}

/**
 * What a scripted answer may return: a server body to send (`{ prekeyCount: { … } }`), a `ParleyError` to
 * answer with (`new ParleyError('RATE_LIMITED', '…', { retryAfterMs: 5000 })`), {@link NO_ANSWER} to leave the
 * request unanswered, or `undefined` to let the relay answer as it normally would.
 */
export type FakeAnswer = FakeReply | ParleyError | typeof NO_ANSWER | undefined

/** Passed to a scripted answer. */
export interface FakeAnswerContext {
  /** The connection the request came on. */
  readonly connection: FakeConnection
  /** The whole decoded frame. */
  readonly frame: ClientFrame
  /**
   * The relay's own answer to this request, computed on the first call (with its effects: a message is stored,
   * a prekey consumed) and the same on later ones; a script that calls it and returns `undefined` sends it.
   * Rejects with the `ParleyError` it would have answered.
   */
  next(): Promise<FakeReply>
}

/** A scripted answer to requests of one body type; see {@link FakeRelay.answer}. */
export type FakeAnswerHandler<K extends ClientBody> = (
  request: NonNullable<ClientFrame[K]>,
  context: FakeAnswerContext,
) => FakeAnswer | Promise<FakeAnswer>

/**
 * Return this from a scripted answer to leave the request unanswered (the client's request then times out).
 * An object rather than a symbol, so that `return NO_ANSWER` keeps its type in an `async` script.
 */
export const NO_ANSWER: Readonly<{ noAnswer: true }> = Object.freeze({ noAnswer: true })

/** One recorded frame. */
export type FakeFrameRecord =
  /** A frame a client sent, as the relay decoded it. */
  | { readonly direction: 'toRelay'; readonly connection: FakeConnection; readonly frame: ClientFrame }
  /** A frame the relay sent (an answer, or a push with request id 0), decoded as the client will. */
  | { readonly direction: 'toClient'; readonly connection: FakeConnection; readonly frame: ServerFrame }

/** What a {@link FakeConnection} reaches of its relay. */
interface ConnectionIo {
  frames(): FakeFrameRecord[]
  sendBytes(bytes: Uint8Array): void
}

interface Override {
  handler: FakeAnswerHandler<ClientBody>
  timesLeft: number
}

/** One turn of the host's event loop. */
const turn = () => new Promise<void>((resolve) => globalThis.setTimeout(resolve, 0))

/**
 * One client connection to the {@link FakeRelay}, as the relay sees it. Its state is read-only for tests; to
 * act on it, use {@link FakeConnection.close} and {@link FakeConnection.push}.
 */
export class FakeConnection {
  /** Connection number, from 1, in the order they were opened. */
  readonly id: number
  /** The URL the client opened. */
  readonly url: string
  readonly #state: PeerState
  readonly #io: ConnectionIo

  /** @internal Made by the {@link FakeRelay} for each connection a client opens. */
  constructor(state: PeerState, url: string, io: ConnectionIo) {
    this.#state = state
    this.#io = io
    this.id = state.id
    this.url = url
  }

  /** The device it authenticated (or activated) as, with its address in hex; null before, or after a revocation. */
  get device(): { address: string; deviceId: number } | null {
    const d = this.#state.device
    return d === null ? null : { address: d.addressHex, deviceId: d.deviceId }
  }

  /** Whether it carried an unidentified send (and so can never authenticate). */
  get anonymous(): boolean {
    return this.#state.anonymous
  }

  /** Whether it is closed, by either side. */
  get closed(): boolean {
    return this.#state.closed
  }

  /** Every frame it carried, both ways, in order. */
  get frames(): FakeFrameRecord[] {
    return this.#io.frames().filter((f) => f.connection === this)
  }

  /**
   * Closes it from the relay's side (the client sees the connection drop and reconnects after its backoff).
   * @param code - WebSocket close code (default 1006, an abnormal closure)
   * @param reason - close reason
   */
  close(code = 1006, reason = 'closed by the test'): void {
    this.#state.close(code, reason)
  }

  /**
   * Sends a server push (request id 0), e.g. `{ mailboxGap: { firstSeq: 1, lastSeq: 3, reason: 1 } }` or
   * `{ deviceReplaced: { erased: false } }`.
   */
  push(body: FakeReply): void {
    this.#state.push(body)
  }

  /** Sends raw bytes as one binary frame (e.g. garbage, to see the client drop the connection). */
  pushBytes(bytes: Uint8Array): void {
    this.#io.sendBytes(bytes)
  }
}

/**
 * An in-process Parley relay for tests: plug its {@link FakeRelay.transport} into
 * `ParleyClient.create({ transport, relayUrl: relay.url, clock })` and the client talks to it as to
 * `parley-relay` — handshake with a trust root and certified OPRF keys, activation with a code the test reads
 * ({@link FakeRelay.codeFor}), registration lock, authentication, prekeys, discovery (OPRF with DLEQ proofs,
 * membership by prefix), mail with live pushes, sync, acks and a cursor, sender certificates, delivery tokens
 * and unidentified sends, OPRF key rotation with address rebinding, takeover and deactivation. Several clients
 * on one relay can message each other.
 *
 * It is scriptable: every frame is recorded decoded ({@link FakeRelay.frames}, {@link FakeRelay.received}),
 * any request type can be answered differently ({@link FakeRelay.answer}), pushes injected
 * ({@link FakeRelay.push}), connections dropped or refused ({@link FakeRelay.drop},
 * {@link FakeRelay.refuseConnections}). It keeps no quotas and nothing on disk.
 *
 * Everything it does happens in microtasks, so `await relay.settle()` waits until the clients and the relay
 * have nothing left to do but wait for the clock.
 *
 * @example
 * const clock = new ManualClock()
 * const relay = new FakeRelay({ clock })
 * const alice = await ParleyClient.create({
 *   relayUrl: relay.url, transport: relay.transport, relayKeys: relay.relayKeys,
 *   store: new MemoryStore(), clock, defaultRegion: 'US',
 * })
 * await alice.activate({ phoneNumber: '+14155550100', consent: true })
 * await alice.confirm(relay.codeFor('+14155550100')!)
 */
export class FakeRelay {
  /** A URL to give clients as `relayUrl` (any `ws://` or `wss://` URL reaches this relay through its transport). */
  readonly url = 'wss://fake-relay.parley.test/v1/ws'
  /** The transport to give clients: each `open()` is a new connection to this relay. */
  readonly transport: Transport
  /** Every frame, both ways, in order. */
  readonly frames: FakeFrameRecord[] = []
  /**
   * Errors that are bugs (of the relay or of a scripted answer) rather than refusals: they are answered
   * `INTERNAL`, as the real relay does, and kept here for the test to check.
   */
  readonly internalErrors: unknown[] = []
  readonly #model: RelayModel
  readonly #clock: Clock
  readonly #connections: FakeConnection[] = []
  readonly #states = new Map<FakeConnection, PeerState>()
  readonly #sockets = new Map<FakeConnection, TransportSocket>()
  readonly #overrides = new Map<ClientBody, Override[]>()
  readonly #waiters: {
    body: ClientBody
    match: (f: ClientFrame) => boolean
    resolve: (f: ClientFrame) => void
  }[] = []
  #refusing: Error | null = null
  #attempts = 0
  /** Bumped by everything that happens, for {@link FakeRelay.settle}. */
  #activity = 0

  /**
   * A relay with a fresh trust root, signing key and OPRF key, and no accounts.
   * @param options - see {@link FakeRelayOptions}
   */
  constructor(options: FakeRelayOptions = {}) {
    const random = options.random ?? ((n: number) => crypto.getRandomValues(new Uint8Array(n)))
    this.#clock = options.clock ?? systemClock
    const randomCode = () => {
      const b = random(4)
      const n = (((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0) % 1_000_000
      return n.toString().padStart(6, '0')
    }
    this.#model = new RelayModel(
      {
        clock: this.#clock,
        random,
        crypto: options.crypto,
        code: options.code ?? randomCode,
        codeTtlSeconds: options.codeTtlSeconds ?? 600,
        codeAttempts: options.codeAttempts ?? 5,
        membershipPrefixBits: options.membershipPrefixBits ?? 16,
        maxMailboxMessages: options.maxMailboxMessages ?? 10_000,
        maxDiscoveryBatch: options.maxDiscoveryBatch ?? 500,
        certificateTtlMs: options.certificateTtlMs ?? 24 * 3600_000,
        activationPowBits: options.activationPowBits ?? 0,
        registrationLockLapseMs: options.registrationLockLapseMs ?? 7 * 24 * 3600_000,
        registrationLockGuesses: options.registrationLockGuesses ?? 5,
      },
      () => [...this.#states.values()],
    )
    this.transport = { open: (url, signal) => this.#open(url, signal) }
  }

  // ─────────────────────────── what the clients see ───────────────────────────

  /** The relay's public keys, for `ParleyClientOptions.relayKeys` (so that nothing is trusted on first use). */
  get relayKeys(): { trustRoot: Uint8Array } {
    return { trustRoot: this.#model.root.publicKey.slice() }
  }

  /** The OPRF key epochs it serves, the current one last. */
  get oprfKeys(): readonly Readonly<FakeOprfKey>[] {
    return this.#model.oprfKeys
  }

  // ─────────────────────────── inspection ───────────────────────────

  /** Every connection ever opened, in order. */
  get connections(): readonly FakeConnection[] {
    return this.#connections
  }

  /** The connections still open. */
  get openConnections(): FakeConnection[] {
    return this.#connections.filter((c) => !c.closed)
  }

  /** How many times a client tried to open a connection (refused attempts included). */
  get connectionAttempts(): number {
    return this.#attempts
  }

  /**
   * The bodies of every request of one type the clients sent, in order, e.g. `received('sendMessage')`.
   * @param body - the body name (a `ClientFrame` body, e.g. `'prekeyUpload'`)
   * @param connection - only those on this connection
   */
  received<K extends ClientBody>(body: K, connection?: FakeConnection): NonNullable<ClientFrame[K]>[] {
    const out: NonNullable<ClientFrame[K]>[] = []
    for (const f of this.frames) {
      if (f.direction !== 'toRelay' || f.frame.body !== body) continue
      if (connection !== undefined && f.connection !== connection) continue
      out.push(f.frame[body] as NonNullable<ClientFrame[K]>)
    }
    return out
  }

  /**
   * The bodies of every frame of one type the relay sent (answers and pushes), in order, e.g. `sent('delivery')`.
   * @param body - the body name (a `ServerFrame` body)
   * @param connection - only those on this connection
   */
  sent<K extends ServerBody>(body: K, connection?: FakeConnection): ServerBodyOf<K>[] {
    const out: ServerBodyOf<K>[] = []
    for (const f of this.frames) {
      if (f.direction !== 'toClient' || f.frame.body !== body) continue
      if (connection !== undefined && f.connection !== connection) continue
      out.push(f.frame[body] as ServerBodyOf<K>)
    }
    return out
  }

  /** Every code texted, oldest first. */
  get texts(): readonly FakeText[] {
    return this.#model.texts
  }

  /**
   * The last code texted to a number: what the user would read in the SMS.
   * @param e164 - the number in E.164 form, e.g. `'+14155550100'`
   */
  codeFor(e164: string): string | undefined {
    const texts = this.#model.texts
    for (let i = texts.length - 1; i >= 0; i--) if (texts[i]!.to === e164) return texts[i]!.code
    return undefined
  }

  /**
   * A number's account address (hex) under the current OPRF key, whether or not it is registered.
   * @param e164 - the number in E.164 form
   */
  addressOf(e164: string): string {
    return hex(this.#model.addressOf(e164))
  }

  /**
   * The relay's record of an account (live: it changes as the relay works), or undefined when there is none.
   * @param who - the number in E.164 form (`'+1…'`; found under any OPRF key still served) or the address in hex
   */
  account(who: string): Readonly<FakeAccount> | undefined {
    return this.#model.accounts.get(this.#address(who))
  }

  /**
   * Unacked mail waiting for an account's device, in seq order (empty when there is no account).
   * @param who - the number in E.164 form or the address in hex
   */
  mailbox(who: string): readonly FakeMail[] {
    return this.account(who)?.mailbox ?? []
  }

  /**
   * The connections authenticated as an account's device.
   * @param who - the number in E.164 form or the address in hex
   */
  connectionsOf(who: string): FakeConnection[] {
    const address = this.#address(who)
    return this.openConnections.filter((c) => c.device?.address === address)
  }

  /** An account's address (hex) from its number (under whichever served OPRF key it is at) or its address. */
  #address(who: string): string {
    return who.startsWith('+') ? this.#model.accountAddressOf(who) : who
  }

  // ─────────────────────────── scripting ───────────────────────────

  /**
   * Answers requests of one type with `handler` instead of the relay's own answer (see {@link FakeAnswer});
   * the latest script for a type is asked first, and one that returns `undefined` passes the request on.
   * @param body - the request type, e.g. `'sendMessage'`
   * @param handler - called with the request's body and a {@link FakeAnswerContext}
   * @param options - `times`: how many requests it answers before it is removed (default: until removed)
   * @returns a function that removes the script
   * @example relay.answer('prekeyCountQuery', () => ({ prekeyCount: { oneTimeCount: 2, kemOneTimeCount: 0 } }))
   * @example relay.answer('sendMessage', async (_req, { next }) => { const r = await next(); seen++; return r })
   */
  answer<K extends ClientBody>(
    body: K,
    handler: FakeAnswerHandler<K>,
    options: { times?: number } = {},
  ): () => void {
    const override: Override = {
      handler: handler as unknown as FakeAnswerHandler<ClientBody>,
      timesLeft: options.times ?? Number.POSITIVE_INFINITY,
    }
    const list = this.#overrides.get(body) ?? []
    list.unshift(override)
    this.#overrides.set(body, list)
    return () => {
      const at = list.indexOf(override)
      if (at >= 0) list.splice(at, 1)
    }
  }

  /**
   * Refuses requests of one type with an error, e.g. `refuse('oprfEvaluate', 'RATE_LIMITED', { retryAfterMs: 30_000 })`.
   * Nothing of the request takes effect.
   * @param body - the request type
   * @param error - the error, or its code (with `options.retryAfterMs`)
   * @param options - `times` (default: until removed), `retryAfterMs`
   * @returns a function that removes the script
   */
  refuse(
    body: ClientBody,
    error: ParleyError | ParleyError['code'],
    options: { times?: number; retryAfterMs?: number } = {},
  ): () => void {
    const err =
      typeof error === 'string'
        ? new ParleyError(error, `refused by the test (${error})`, { retryAfterMs: options.retryAfterMs })
        : error
    return this.answer(body, () => err, options)
  }

  /**
   * Never answers requests of one type (their requests time out at the client, on its clock).
   * @returns a function that removes the script
   */
  ignore(body: ClientBody, options: { times?: number } = {}): () => void {
    return this.answer(body, () => NO_ANSWER, options)
  }

  /**
   * Resolves with the next request of one type that a client sends (after it is recorded, before it is
   * answered).
   * @param body - the request type
   * @param match - only a request for which this holds
   */
  nextRequest<K extends ClientBody>(
    body: K,
    match: (request: NonNullable<ClientFrame[K]>) => boolean = () => true,
  ): Promise<NonNullable<ClientFrame[K]>> {
    return new Promise((resolve) => {
      this.#waiters.push({
        body,
        match: (f) => match(f[body] as NonNullable<ClientFrame[K]>),
        resolve: (f) => resolve(f[body] as NonNullable<ClientFrame[K]>),
      })
    })
  }

  /**
   * Sends a server push to the connections of an account's device, or to one connection.
   * @param to - a connection, or an account (its number in E.164 form or its address in hex)
   * @param body - the push, e.g. `{ deviceReplaced: { erased: false } }`
   */
  push(to: FakeConnection | string, body: FakeReply): void {
    for (const c of typeof to === 'string' ? this.connectionsOf(to) : [to]) c.push(body)
  }

  /**
   * Drops connections from the relay's side, as a network failure would (close code 1006).
   * @param which - one connection, or an account (number or address); default: every open connection
   */
  drop(which?: FakeConnection | string): void {
    const list =
      which === undefined
        ? this.openConnections
        : typeof which === 'string'
          ? this.connectionsOf(which)
          : [which]
    for (const c of list) c.close(1006, 'dropped by the test')
  }

  /**
   * Refuses new connections (`open()` rejects) until called with `false`; open ones stay.
   * @param refuse - true (or the error `open()` rejects with) to refuse, false to accept again
   */
  refuseConnections(refuse: boolean | Error = true): void {
    this.#refusing =
      refuse === false ? null : refuse === true ? new Error('connection refused by the fake relay') : refuse
  }

  /**
   * Starts a new OPRF key epoch, as `parley-relay oprf rotate` does: new activations and evaluations use the
   * new key, the previous one is still served (and evaluates) for `graceMs`. Like the real relay on a key
   * switch, it closes every connection (code 1012), so that clients reconnect, see the new key in `ServerHello`
   * and move their accounts (`RebindAddress`).
   * @param graceMs - how long the previous key stays served (default 30 days)
   */
  rotateOprfKey(graceMs = 30 * 24 * 3600_000): void {
    this.#model.rotateOprfKey(graceMs)
    for (const c of this.openConnections) c.close(1012, 'the OPRF key rotated')
  }

  /**
   * Waits until nothing is happening: no frame sent either way, no connection opened or closed and no timer due
   * on a manual clock for a few turns of the event loop. What waits for later — a timer set for later, a
   * scripted answer waiting for the clock — waits for the test to advance the clock.
   * @throws Error when frames are still moving after 2,000 turns (a loop)
   */
  async settle(): Promise<void> {
    let quiet = 0
    for (let i = 0; i < 2_000; i++) {
      const before = this.#activity
      const clock = this.#clock as Partial<{ runDue(): number }>
      const ran = typeof clock.runDue === 'function' ? clock.runDue() : 0
      await turn()
      if (ran === 0 && before === this.#activity) {
        if (++quiet >= 3) return
      } else quiet = 0
    }
    throw new Error('FakeRelay.settle(): the clients and the relay never went quiet')
  }

  // ─────────────────────────── plumbing ───────────────────────────

  async #open(url: string, signal?: AbortSignal): Promise<TransportSocket> {
    this.#attempts++
    this.#activity++
    if (signal?.aborted) throw new Error('aborted')
    if (this.#refusing !== null) throw this.#refusing
    const id = this.#connections.length + 1
    const socket: TransportSocket = {
      send: (data) => {
        if (state.closed) throw new Error('the connection is closed')
        const bytes = data.slice()
        this.#activity++
        queueMicrotask(() => {
          queue = queue.then(() => this.#receive(connection, bytes))
        })
      },
      close: (code = 1000, reason = '') => {
        if (!state.closed) closeState(code, reason)
      },
      onMessage: null,
      onClose: null,
    }
    const closeState = (code: number, reason: string) => {
      state.closed = true
      state.device = null
      this.#activity++
      queueMicrotask(() => socket.onClose?.({ code, reason }))
    }
    const state: PeerState = {
      id,
      nonce: crypto.getRandomValues(new Uint8Array(32)),
      helloDone: false,
      nonceUsed: false,
      activating: false,
      anonymous: false,
      device: null,
      cursor: null,
      closed: false,
      push: (body) => this.#send(connection, { requestId: 0, ...body } as ServerFrameInput),
      close: (code, reason) => {
        if (!state.closed) closeState(code, reason)
      },
    }
    let queue: Promise<void> = Promise.resolve()
    const connection = new FakeConnection(state, url, {
      frames: () => this.frames,
      sendBytes: (bytes) => this.#sendBytes(connection, bytes),
    })
    this.#connections.push(connection)
    this.#states.set(connection, state)
    this.#sockets.set(connection, socket)
    return socket
  }

  async #receive(connection: FakeConnection, bytes: Uint8Array): Promise<void> {
    this.#activity++
    const state = this.#states.get(connection)!
    if (state.closed) return
    let frame: ClientFrame
    try {
      frame = decodeClientFrame(bytes)
    } catch (err) {
      this.#send(connection, { requestId: 0, error: wireErrorFrom(err) })
      return
    }
    this.frames.push({ direction: 'toRelay', connection, frame })
    for (const w of [...this.#waiters]) {
      if (w.body === frame.body && w.match(frame)) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1)
        w.resolve(frame)
      }
    }
    // The relay's own answer, computed at most once: a script that asked for it and returns undefined gets it.
    let own: Promise<FakeReply> | undefined
    const next = () => {
      own ??= (async () => this.#model.handle(state, frame))()
      return own
    }
    let answer: FakeAnswer
    try {
      answer = (await this.#scripted(frame, { connection, frame, next })) ?? (await next())
    } catch (err) {
      answer = this.#refusal(err)
    }
    if (answer === NO_ANSWER || answer === undefined || state.closed) return
    if (!(answer instanceof ParleyError)) {
      try {
        this.#send(connection, { requestId: frame.requestId, ...answer } as ServerFrameInput)
        return
      } catch (err) {
        // A scripted answer that is no valid frame (not exactly one body, too large).
        answer = this.#refusal(err)
      }
    }
    this.#send(connection, { requestId: frame.requestId, error: wireErrorFrom(answer) })
  }

  /** The error to answer for a handler's exception; anything but a `ParleyError` is a bug, kept for the test. */
  #refusal(err: unknown): ParleyError {
    if (ParleyError.is(err)) return err
    this.internalErrors.push(err)
    return new ParleyError('INTERNAL', 'internal error')
  }

  async #scripted(frame: ClientFrame, context: FakeAnswerContext): Promise<FakeAnswer> {
    for (const override of [...(this.#overrides.get(frame.body) ?? [])]) {
      if (override.timesLeft <= 0) continue
      override.timesLeft--
      if (override.timesLeft <= 0) {
        const list = this.#overrides.get(frame.body)!
        list.splice(list.indexOf(override), 1)
      }
      const answer = await override.handler(frame[frame.body] as never, context)
      if (answer !== undefined) return answer
    }
    return undefined
  }

  #send(connection: FakeConnection, frame: ServerFrameInput): void {
    this.#sendBytes(connection, encodeServerFrame(frame))
  }

  /** Sends bytes to the client side of a connection (recorded when they decode). */
  #sendBytes(connection: FakeConnection, bytes: Uint8Array): void {
    const state = this.#states.get(connection)!
    if (state.closed) return
    try {
      this.frames.push({ direction: 'toClient', connection, frame: decodeServerFrame(bytes) })
    } catch {}
    this.#activity++
    const socket = this.#sockets.get(connection)!
    queueMicrotask(() => socket.onMessage?.(bytes))
  }
}
