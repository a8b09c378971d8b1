// What the engine's parts share: the injected ports, the two relay connections, the serial queue, the event
// emitter and the account state. The facade (Client.ts) makes one and hands it to every part; nothing here
// imports a part. Not exported from the package.
import {
  type CryptoProvider,
  frameBodyOf,
  ParleyError,
  SealAgreements,
  type ServerBody,
  type ServerBodyOf,
  type ServerFrame,
} from '@parley/protocol'
import type { Clock } from '../Clock.js'
import { Emitter } from '../Emitter.js'
import { SerialQueue } from '../internal/SerialQueue.js'
import type { RelayLink } from '../RelayLink.js'
import type { Store } from '../Store.js'
import type { IncomingMessage, ParleyEvents } from '../types.js'
import type { AccountRecord } from './keyspace.js'

export type Random = (n: number) => Uint8Array

/** What the client refused or held since it was created (see `ParleyClient.stats`). */
export interface EngineStats {
  senderUnverified: number
  replaysRefused: number
  held: number
  heldDropped: number
  unidentifiedSent: number
  ephemeralRefused: number
  groupRefused: number
  groupHeld: number
}

/** The state of one client, shared by its parts. */
export class Engine {
  readonly store: Store
  readonly clock: Clock
  readonly random: Random
  /** The client's primitives (`ParleyClientOptions.crypto`); undefined: the pure-JS defaults. */
  readonly crypto: CryptoProvider | undefined
  readonly events: Emitter<ParleyEvents>
  /** Every change of session state runs in this one queue (see internal/SerialQueue.ts). */
  readonly serial = new SerialQueue()
  /**
   * The static secrets of sealed envelopes (this device's identity with each peer device's), in memory only:
   * sealing to a device and opening what it sealed cost one X25519 fewer after the first time.
   */
  readonly agreements = new SealAgreements()
  readonly stats: EngineStats = {
    senderUnverified: 0,
    replaysRefused: 0,
    held: 0,
    heldDropped: 0,
    unidentifiedSent: 0,
    ephemeralRefused: 0,
    groupRefused: 0,
    groupHeld: 0,
  }
  #reportingError = false
  /** The async iterators of `messages()`: each gets every message shown, and null when the client closes. */
  readonly iterators = new Set<(m: IncomingMessage | null) => void>()
  /** The connection that authenticates as this device. */
  readonly link: RelayLink
  /** A second connection that never authenticates: unidentified sends go here, so the relay cannot name their sender. */
  readonly anonymous: RelayLink
  account: AccountRecord | null = null
  authenticated = false
  /** Set when the relay said DeviceReplaced: this device no longer has an account there. */
  replaced = false
  /**
   * The relay refused this account's login with FORBIDDEN (its operator banned it): the main connection stays
   * stopped, and what needs it fails with this error, until a login succeeds again (after a restart of the
   * client, or an activation).
   */
  banned: ParleyError | null = null
  closed = false
  /** The outbox flush running now, if any (the outbox sets it; a safety number may wait for it). */
  flushing: Promise<void> | null = null
  /**
   * Ids of outbox entries claimed for a send to the relay (from the claim, in the serial queue, to the answer):
   * the SMS fallback never takes one of them.
   */
  readonly sending = new Set<string>()

  constructor(ports: {
    store: Store
    clock: Clock
    random: Random
    crypto: CryptoProvider | undefined
    link: RelayLink
    anonymous: RelayLink
  }) {
    this.store = ports.store
    this.clock = ports.clock
    this.random = ports.random
    this.crypto = ports.crypto
    this.link = ports.link
    this.anonymous = ports.anonymous
    this.events = new Emitter<ParleyEvents>((err) => this.emitError(err))
  }

  requireAccount(): AccountRecord {
    if (this.account === null) {
      throw new ParleyError('INVALID_STATE', 'activate this device first (nothing is sent before activation)')
    }
    return this.account
  }

  /** Aborted by close(): whatever the engine waits for on its own ends with CLOSED. */
  readonly #closing = new AbortController()

  /** Marks the engine closed and ends its waits (see {@link Engine.sleep}). */
  close(): void {
    this.closed = true
    this.#closing.abort()
    this.agreements.clear()
  }

  /**
   * Waits `ms` on the engine's clock. Rejects at once with `ABORTED` when `signal` aborts, and with `CLOSED`
   * when the client closes, instead of holding the caller until the time is up.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: unknown
      const stop = (err: ParleyError) => {
        if (timer !== undefined) this.clock.clearTimeout(timer)
        done()
        reject(err)
      }
      const onAbort = () => stop(new ParleyError('ABORTED', 'aborted', { cause: signal?.reason }))
      const onClose = () => stop(new ParleyError('CLOSED', 'the client is closed'))
      const done = () => {
        signal?.removeEventListener('abort', onAbort)
        this.#closing.signal.removeEventListener('abort', onClose)
      }
      if (signal?.aborted) return onAbort()
      if (this.closed) return onClose()
      timer = this.clock.setTimeout(() => {
        done()
        resolve()
      }, ms)
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#closing.signal.addEventListener('abort', onClose, { once: true })
    })
  }

  checkOpen(): void {
    if (this.closed) throw new ParleyError('CLOSED', 'the client is closed')
  }

  emitError(err: unknown): void {
    // Background work that close() cut short fails on the closed store or connection: that is the close the app
    // asked for, not an error to report (in a test suite it was a stream of "INTERNAL: The database connection
    // is not open" from clients closed while mail was arriving).
    if (this.closed) return
    const e = ParleyError.fromUnknown(err)
    if (this.#reportingError) {
      // An 'error' listener threw: reporting that through the same listener would recurse without end.
      console.warn(`[parley] an 'error' listener threw: ${e.code}: ${e.message}`)
      return
    }
    this.#reportingError = true
    try {
      if (!this.events.emit('error', e)) {
        // No listener: do not crash the app, but do not swallow silently either.
        console.warn(`[parley] ${e.code}: ${e.message}`)
      }
    } finally {
      this.#reportingError = false
    }
  }

  /** Errors that the engine retries by itself are reported only when they are not plain connectivity. */
  emitRecoverable(err: unknown): void {
    const e = ParleyError.fromUnknown(err)
    if (e.code === 'UNAVAILABLE' || e.code === 'TIMEOUT' || e.code === 'CLOSED') return
    this.emitError(e)
  }
}

/** The body the relay was asked for, or BAD_REQUEST when it answered something else. */
export function expectBody<B extends ServerBody>(frame: ServerFrame, body: B): ServerBodyOf<B> {
  const value = frameBodyOf(frame, body)
  if (value === undefined) {
    throw new ParleyError('BAD_REQUEST', `the relay answered ${frame.body} where ${body} was expected`)
  }
  return value
}
