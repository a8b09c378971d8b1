// The relay session of this device (docs/architecture.md §7.3, §8): on every handshake the trust-root and OPRF
// key pins, authentication, and the move to a new address after an OPRF key rotation (§4.8); the sender
// certificate, the delivery token's verifier, the mailbox sync from the resume cursor, and what happens when
// another device takes the number over. Not exported.
import {
  addressFromToken,
  authPayload,
  deliveryTokenVerifier,
  numberToOprfInput,
  oprfBlind,
  ParleyError,
  type SenderCertificate,
  verifyOprfKeyCertificate,
  verifySenderCertificate,
} from '@parley/protocol'
import { fromHex, toHex } from '../internal/codec.js'
import * as e2e from '../internal/e2e.js'
import type { RelayLink, ServerHello } from '../RelayLink.js'
import type { StoreWrite } from '../Store.js'
import type { CallOptions, ParleyClientOptions } from '../types.js'
import { type Engine, expectBody } from './context.js'
import type { Discovery } from './discovery.js'
import {
  type AccountRecord,
  decodeEntry,
  del,
  get,
  K,
  moveAddressRecords,
  type PreviousRecord,
  put,
  putAt,
} from './keyspace.js'

/** What the session tells the rest of the engine. */
export interface SessionHooks {
  /** The relay refused the login FORBIDDEN (the operator banned the account). */
  banned(error: ParleyError): void
  /** This account moved to a new address (recorded already): the primary signs its device list for it again. */
  moved(): void
}

/** A sender certificate with less validity left than this is replaced before the next send. */
const CERTIFICATE_REFRESH_MS = 6 * 3600_000

export class RelaySession {
  readonly #engine: Engine
  readonly #discovery: Discovery
  readonly #givenTrustRoot: Uint8Array | undefined
  /** The pinned trust root once a handshake has checked it (read on every received message). */
  #pinnedRoot: Uint8Array | undefined
  #certificate: { bytes: Uint8Array; cert: SenderCertificate } | null = null

  readonly #hooks: SessionHooks

  constructor(
    engine: Engine,
    discovery: Discovery,
    givenTrustRoot: Uint8Array | undefined,
    hooks: SessionHooks,
  ) {
    this.#engine = engine
    this.#discovery = discovery
    this.#givenTrustRoot = givenTrustRoot
    this.#hooks = hooks
  }

  /** The main connection's handshake hook: pins, then (with an account) authentication and a rebind. */
  async onHandshake(hello: ServerHello, link: RelayLink): Promise<void> {
    await this.checkPins(hello)
    if (this.#engine.account === null) return
    await this.authenticate(hello, link)
    try {
      await this.#rebindIfRotated(hello, link)
    } catch (err) {
      // The account still works at its old address while the previous key is served; tried again next time.
      this.#engine.emitRecoverable(err)
    }
  }

  /**
   * After an OPRF key rotation (a current key other than the one this account's address is derived under), moves
   * the account to its address under the current key, where contacts who discover the number now will look: the
   * number and salt open the commitment the relay certified, the relay evaluates the number under the new key,
   * and the address it answers is checked against this device's own (blinded, proven) evaluation.
   */
  async #rebindIfRotated(hello: ServerHello, link: RelayLink): Promise<void> {
    const engine = this.#engine
    const account = engine.account
    const current = hello.oprfKeys?.[0]
    if (account === null || !engine.authenticated || !current?.publicKey || typeof current.keyId !== 'number')
      return
    if (account.keyId === current.keyId) return
    // Only the primary moves the account (the relay refuses a linked device's RebindAddress). A linked device
    // keeps the address it was given; following the primary's move is not built yet (docs/architecture.md §9).
    if (account.accountIdentityKey !== undefined) return
    if (account.keyId === undefined && hello.oprfKeys.length <= 1) {
      // A record from before rotations existed, on a relay that has never rotated: its address is current.
      await this.#updateAccount((a) => ({ ...a, keyId: current.keyId as number }))
      return
    }
    if (account.numberSalt === undefined) {
      throw new ParleyError(
        'INVALID_STATE',
        'the relay rotated its OPRF key, and this account (activated before number commitments) must activate again',
      )
    }
    const input = numberToOprfInput(account.e164)
    const blind = oprfBlind(input)
    const frame = await link.request(
      {
        rebindAddress: {
          phoneNumber: account.e164,
          numberSalt: account.numberSalt,
          keyId: current.keyId,
          blindedNumber: blind.blindedElement,
        },
      },
      { raw: true },
    )
    const rebound = expectBody(frame, 'addressRebound')
    const address = rebound.address
    const token = this.#discovery.ownToken(input, blind, rebound.ownNumber, current)
    if (token === undefined || !e2e.equal(addressFromToken(token), address)) {
      throw new ParleyError(
        'VERIFICATION_FAILED',
        'the relay moved this account to an address that is not its own',
      )
    }
    // Written here, not in the serial queue (which may be waiting for this very handshake): the connection is
    // already bound to the new address, and so is every later one.
    const now = engine.account
    if (now === null || !e2e.equal(now.address, account.address)) return
    await this.moveOwnAddress({ ...now, address, keyId: current.keyId })
  }

  /**
   * This account is at a new address now (`next.address`: a rebind, a number change, or, on a linked device, the
   * relay's forward after either): records it with what is kept under the old one (sessions with this account's
   * other devices), drops the certificate that names the old address, and retires our first messages not yet
   * answered (bound to the old address: the next send to each contact starts afresh). Not in the serial queue:
   * callers run where the connection is already bound to the new address.
   */
  async moveOwnAddress(next: AccountRecord): Promise<void> {
    const engine = this.#engine
    const before = engine.account
    if (before === null) return
    const moved = !e2e.equal(next.address, before.address)
    engine.account = next
    if (moved) this.#certificate = null
    await engine.store.write([
      put(K.account, next),
      ...(moved
        ? [
            del(K.senderCertificate),
            ...(await moveAddressRecords(engine.store, toHex(before.address), toHex(next.address))),
          ]
        : []),
    ])
    if (!moved) return
    this.#hooks.moved()
    void engine.serial
      .run(async () => {
        const writes: StoreWrite[] = []
        for (const e of await engine.store.list(K.session.prefix)) {
          const record = decodeEntry(K.session, e)
          if (!record.stale && e2e.awaitingReply(record.state)) {
            writes.push(putAt(K.session, e.key, { ...record, stale: true }))
          }
        }
        if (writes.length > 0) await engine.store.write(writes)
      })
      .catch((err) => engine.emitRecoverable(err))
  }

  /** Rewrites the account record (in the serial queue). */
  async #updateAccount(change: (a: AccountRecord) => AccountRecord): Promise<void> {
    const engine = this.#engine
    await engine.serial.run(async () => {
      if (engine.account === null) return
      const next = change(engine.account)
      await engine.store.write([put(K.account, next)])
      engine.account = next
    })
  }

  async authenticate(hello: ServerHello, link: RelayLink): Promise<void> {
    const account = this.#engine.account
    if (account === null || !hello.authNonce) return
    const signature = e2e.sign(
      account.identity,
      authPayload(hello.authNonce, account.address, account.deviceId, await this.trustRoot()),
    )
    try {
      const frame = await link.request(
        { authenticate: { address: account.address, deviceId: account.deviceId, signature } },
        { raw: true },
      )
      const done = expectBody(frame, 'authenticated')
      if (done.address.length === 32 && !e2e.equal(done.address, account.address)) {
        // The account moved while this device was away (its primary changed the number, or rebound it): the relay
        // followed its forward and logged this device in at the new address. The primary's signed notice, in
        // this device's mailbox, brings the new number.
        await this.moveOwnAddress({ ...account, address: done.address })
      }
      this.#engine.authenticated = true
      this.#engine.banned = null
    } catch (err) {
      const e = ParleyError.fromUnknown(err)
      if (e.code === 'FORBIDDEN') {
        // The relay's operator banned this account: every reconnect would be refused the same way, so none is
        // made. The account (keys, history, contacts) stays, for when the ban is lifted.
        this.#onBanned(e)
        throw e
      }
      if (e.code === 'UNAUTHENTICATED' || e.code === 'NOT_FOUND') {
        // This device was replaced (or the account erased) while it was offline: tell the app, keep the history,
        // stop reconnecting, and keep the identity to take the number back with (as on a DeviceReplaced push).
        this.#engine.emitError(
          new ParleyError('UNAUTHENTICATED', 'the relay no longer accepts this device', { cause: e }),
        )
        await this.onReplaced(false)
      }
      throw e
    }
  }

  /**
   * The relay refused the login with FORBIDDEN: stop both connections (and their retries), tell the app, and
   * fail what waits for the relay with the same error (the outbox's queued messages through the hook).
   */
  #onBanned(cause: ParleyError): void {
    const engine = this.#engine
    const error = new ParleyError('FORBIDDEN', 'the relay refuses this account (banned by its operator)', {
      cause,
    })
    engine.banned = error
    engine.authenticated = false
    engine.emitError(error)
    engine.link.halt(error)
    engine.anonymous.stop()
    this.#hooks.banned(error)
  }

  /** Checks (and pins at first use) the relay's trust root and its certified OPRF keys. */
  async checkPins(hello: ServerHello): Promise<void> {
    const engine = this.#engine
    const { store, clock } = engine
    const root = hello.trustRoot
    if (!(root instanceof Uint8Array) || root.length !== 32) {
      throw new ParleyError('UNSUPPORTED', 'the relay announced no trust root; it is too old for this SDK')
    }
    if (this.#givenTrustRoot !== undefined && !e2e.equal(this.#givenTrustRoot, root)) {
      throw new ParleyError('VERIFICATION_FAILED', "the relay's trust root is not the one this app was given")
    }
    const pinnedRoot = await get(store, K.trustRoot)
    if (pinnedRoot === undefined) await store.write([put(K.trustRoot, root.slice())])
    else if (!e2e.equal(pinnedRoot, root)) {
      throw new ParleyError('VERIFICATION_FAILED', "the relay's trust root differs from the pinned one")
    }
    this.#pinnedRoot = root.slice()
    for (const key of hello.oprfKeys) {
      if (!key.publicKey || key.keyId === undefined || key.keyId === null) continue
      // Only keys the pinned root certified: a key injected by anyone else, or one past its grace period, is
      // refused before it is pinned or used (VERIFICATION_FAILED).
      verifyOprfKeyCertificate(
        key.certificate,
        root,
        { keyId: key.keyId, publicKey: key.publicKey },
        clock.now(),
        engine,
      )
      const pinned = await get(store, K.oprfPin(key.keyId))
      if (pinned === undefined) {
        await store.write([put(K.oprfPin(key.keyId), key.publicKey)])
      } else if (!e2e.equal(pinned, key.publicKey)) {
        throw new ParleyError(
          'VERIFICATION_FAILED',
          `the relay's OPRF key ${key.keyId} differs from the pinned one`,
        )
      }
    }
  }

  /** `ParleyClient.rotateDeliveryToken`, after the open check. */
  async rotateDeliveryToken(options: CallOptions): Promise<void> {
    const engine = this.#engine
    engine.requireAccount()
    await engine.serial.run(async () => {
      const account = engine.requireAccount()
      const next: AccountRecord = { ...account, deliveryToken: engine.random(32), deliveryTokenSet: false }
      await engine.store.write([put(K.account, next)])
      engine.account = next
    })
    await engine.link.waitOnline(options.signal)
    await engine.serial.run(() => this.registerDeliveryToken())
  }

  /** Gives the relay the verifier of this account's delivery token, once per token. */
  async registerDeliveryToken(): Promise<void> {
    const engine = this.#engine
    const account = engine.account
    if (account === null || !engine.authenticated || account.deliveryTokenSet !== false) return
    const token = account.deliveryToken
    if (token === undefined) return
    expectBody(
      await engine.link.request({ setDeliveryToken: { verifier: deliveryTokenVerifier(token) } }),
      'deliveryTokenSet',
    )
    // The account may have been replaced meanwhile (rotation, deactivation): record only for this token.
    const now = engine.account
    if (now === null || now.deliveryToken === undefined || !e2e.equal(now.deliveryToken, token)) return
    const next: AccountRecord = { ...now, deliveryTokenSet: true }
    await engine.store.write([put(K.account, next)])
    engine.account = next
  }

  /** The pinned trust root (set by the first handshake). */
  async trustRoot(): Promise<Uint8Array> {
    const root = this.#givenTrustRoot ?? this.#pinnedRoot ?? (await get(this.#engine.store, K.trustRoot))
    if (root === undefined) throw new ParleyError('INVALID_STATE', 'no relay trust root is pinned yet')
    return root
  }

  /** Forgets the certificate held in memory (a new activation has another device's). */
  forgetCertificate(): void {
    this.#certificate = null
  }

  /**
   * This device's sender certificate, fetched from the relay when there is none or it expires within
   * {@link CERTIFICATE_REFRESH_MS}. Checked before use: a certificate that would make our messages refused
   * (wrong root, another key or address) is an error here, not at every recipient.
   */
  async senderCertificate(account: AccountRecord): Promise<{ bytes: Uint8Array; cert: SenderCertificate }> {
    const engine = this.#engine
    const { store, link, clock } = engine
    const now = clock.now()
    const mine = (c: SenderCertificate) =>
      e2e.equal(c.identityKey, account.identity.publicKey) &&
      e2e.equal(c.address, account.address) &&
      c.deviceId === account.deviceId
    const fresh = (c: SenderCertificate) => c.expiresAtMs - now > CERTIFICATE_REFRESH_MS && mine(c)
    const cached = this.#certificate
    if (cached !== null && fresh(cached.cert)) return cached
    const trustRoot = await this.trustRoot()
    const stored = await get(store, K.senderCertificate)
    if (stored !== undefined) {
      try {
        const cert = verifySenderCertificate(stored, {
          trustRoot,
          atMs: now,
          skewMs: 0,
          crypto: engine.crypto,
        })
        if (fresh(cert)) {
          this.#certificate = { bytes: stored, cert }
          return this.#certificate
        }
      } catch {}
    }
    const frame = await link.request({ senderCertificateRequest: {} })
    const bytes = expectBody(frame, 'senderCertificateIssued').certificate
    const cert = verifySenderCertificate(bytes, { trustRoot, atMs: now, crypto: engine.crypto })
    if (!mine(cert))
      throw new ParleyError('VERIFICATION_FAILED', 'the relay issued a certificate for another device')
    await store.write([put(K.senderCertificate, bytes)])
    this.#certificate = { bytes, cert }
    return this.#certificate
  }

  /** Asks the relay for the mail after the resume cursor (the highest seq acked). */
  async sync(): Promise<void> {
    const engine = this.#engine
    if (!engine.authenticated) return
    const afterSeq = (await get(engine.store, K.cursor)) ?? 0
    // Deliveries arrive as pushes and queue behind this task; SyncDone only says the backlog was sent.
    void engine.link.request({ syncMailbox: { afterSeq } }).catch((err) => engine.emitRecoverable(err))
  }

  /**
   * The relay says another device took the account over (or it was erased): forget the account (keeping
   * history, contacts and the outbox), stop reconnecting, and tell the app.
   */
  async onReplaced(erased: boolean, removed = false): Promise<void> {
    const engine = this.#engine
    const account = engine.account
    if (account === null) return
    engine.account = null
    engine.authenticated = false
    // Replaced (not erased): the relay keeps the mail that was waiting for this identity, for this device to take
    // the number back with it.
    const previous: PreviousRecord = { e164: account.e164, identity: account.identity }
    await engine.store.write([del(K.account), erased ? del(K.previous) : put(K.previous, previous)])
    engine.link.stop()
    engine.anonymous.stop()
    engine.events.emit('deviceReplaced', removed ? { erased, removed } : { erased })
  }
}

/** The trust root given in the options (32 bytes or 64 hex digits), validated at once. */
export function parseTrustRoot(keys: ParleyClientOptions['relayKeys']): Uint8Array | undefined {
  if (keys === undefined) return undefined
  const root = typeof keys?.trustRoot === 'string' ? fromHexStrict(keys.trustRoot) : keys?.trustRoot
  if (!(root instanceof Uint8Array) || root.length !== 32) {
    throw new TypeError('relayKeys.trustRoot must be 32 bytes (a Uint8Array or 64 hex digits)')
  }
  return root.slice()
}

function fromHexStrict(hex: string): Uint8Array | undefined {
  return /^[0-9a-fA-F]{64}$/.test(hex) ? fromHex(hex.toLowerCase()) : undefined
}
