// Delivery of one outbox entry (docs/architecture.md §6, §8): encrypted once with the contact's session (started
// from its prekey bundle when there is none), sealed with the current sender certificate, and sent by
// unidentified delivery when the contact gave us its token, else on the authenticated connection. A moved
// recipient is followed; a replaced recipient device gets a new session. Not exported.
import { opensNumberCommitment, ParleyError } from '@parley/protocol'
import { fromHex, toHex } from '../internal/codec.js'
import * as e2e from '../internal/e2e.js'
import type { Contacts } from './contacts.js'
import { type Engine, expectBody } from './context.js'
import {
  type AccountRecord,
  del,
  get,
  K,
  type OutboxRecord,
  put,
  putAt,
  type SessionRecord,
  sessionRecord,
} from './keyspace.js'
import type { RelaySession } from './session.js'

/** The unidentified connection is closed after this long without a send (the relay closes idle ones too). */
const ANONYMOUS_IDLE_MS = 30_000

export class Delivery {
  readonly #engine: Engine
  readonly #session: RelaySession
  readonly #contacts: Contacts
  #anonymousIdle: unknown = null
  #anonymousInFlight = 0

  constructor(engine: Engine, session: RelaySession, contacts: Contacts) {
    this.#engine = engine
    this.#session = session
    this.#contacts = contacts
  }

  /** Cancels the timer that closes the idle unidentified connection (the client is closing). */
  stopTimers(): void {
    if (this.#anonymousIdle !== null) this.#engine.clock.clearTimeout(this.#anonymousIdle)
  }

  /** Encrypts (once), seals and sends the outbox entry under `key`, and removes it once the relay accepted it. */
  async deliver(key: string, entry: OutboxRecord): Promise<void> {
    const engine = this.#engine
    const { store, serial } = engine
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        // A new session fetches the recipient's bundle here: NOT_FOUND from it is followed like one from the send.
        if (entry.message === undefined) entry = await serial.run(() => this.#encryptEntry(key, entry))
        const account = engine.requireAccount()
        const envelope = await this.#sealEntry(account, entry)
        const base = {
          recipientAddress: entry.address,
          recipientDeviceId: entry.deviceId ?? 0,
          messageId: fromHex(entry.id),
          envelope,
        }
        const token = await get(store, K.peerToken(toHex(entry.address)))
        if (token !== undefined && entry.message?.kind === 'ratchet') {
          // The contact has written to us and gave us its token: the relay need not learn who sends this.
          if (await this.#sendUnidentified(base, token, entry.address)) {
            engine.stats.unidentifiedSent++
            await store.write([del(key)])
            engine.events.emit('delivered', { id: entry.id, to: entry.to })
            return
          }
        }
        expectBody(await engine.link.request({ sendMessage: base }), 'messageAccepted')
        await store.write([del(key)])
        engine.events.emit('delivered', { id: entry.id, to: entry.to })
        return
      } catch (err) {
        const e = ParleyError.fromUnknown(err)
        if (e.code === 'NOT_FOUND' && attempt === 0) {
          // Nobody at the address any more: after an OPRF key rotation the contact may have moved to its address
          // under the new key. Followed there (the same session, unless it still waits for a first reply).
          const moved = await this.#contacts.followContact(entry.to, entry.address)
          if (moved === null) throw e
          const restart = moved.restart
          entry = restart
            ? {
                ...entry,
                address: moved.address,
                message: undefined,
                recipientIdentityKey: undefined,
                deviceId: undefined,
              }
            : { ...entry, address: moved.address }
          await store.write([putAt(K.outbox, key, entry)])
          continue
        }
        if (e.code !== 'CONFLICT' || attempt > 0) throw e
        // The recipient re-activated on a new device: start a new session and encrypt again (the old one stays
        // archived behind it, for mail from the old device still in flight).
        await serial.run(() => this.#retireSession(entry.address))
        entry = { ...entry, message: undefined, recipientIdentityKey: undefined, deviceId: undefined }
      }
    }
  }

  /**
   * Sends by unidentified delivery on the connection that never authenticates. Resolves false when the
   * recipient no longer accepts the token (rotated, or re-activated): the token is forgotten and the caller
   * sends on the authenticated path instead.
   */
  async #sendUnidentified(
    base: {
      recipientAddress: Uint8Array
      recipientDeviceId: number
      messageId: Uint8Array
      envelope: Uint8Array
    },
    token: Uint8Array,
    address: Uint8Array,
  ): Promise<boolean> {
    const engine = this.#engine
    const { clock, anonymous } = engine
    if (this.#anonymousIdle !== null) clock.clearTimeout(this.#anonymousIdle)
    this.#anonymousIdle = null
    this.#anonymousInFlight++
    anonymous.start()
    try {
      await anonymous.waitOnline()
      const frame = await anonymous.request({ unidentifiedSend: { ...base, deliveryToken: token } })
      expectBody(frame, 'messageAccepted')
      return true
    } catch (err) {
      const e = ParleyError.fromUnknown(err)
      if (e.code === 'FORBIDDEN') {
        await engine.store.write([del(K.peerToken(toHex(address)))])
        return false
      }
      // Not the main connection's trouble: retry on a timer (a reconnect of the main link may never come), and
      // never fall back to naming the sender just because this connection failed.
      if (e.code === 'UNAVAILABLE' || e.code === 'TIMEOUT' || e.code === 'CLOSED') {
        throw new ParleyError('UNAVAILABLE', 'the unidentified connection is unavailable', {
          retryAfterMs: e.retryAfterMs ?? 2000,
          cause: e,
        })
      }
      throw e
    } finally {
      // Closed once idle: an open socket that never authenticates is what the relay closes anyway.
      if (--this.#anonymousInFlight === 0 && !engine.closed) {
        this.#anonymousIdle = clock.setTimeout(() => {
          this.#anonymousIdle = null
          if (this.#anonymousInFlight === 0) anonymous.stop()
        }, ANONYMOUS_IDLE_MS)
      }
    }
  }

  /** Seals an encrypted outbox entry with the current certificate (and the number, when it is certified). */
  async #sealEntry(account: AccountRecord, entry: OutboxRecord): Promise<Uint8Array> {
    const { bytes, cert } = await this.#session.senderCertificate(account)
    const salt = account.numberSalt
    // Stating a number the certificate does not commit to would make every recipient refuse the message.
    const number =
      salt !== undefined && opensNumberCommitment(cert, account.e164, salt)
        ? { e164: account.e164, salt }
        : undefined
    return e2e.seal({
      ours: account,
      recipientIdentityKey: entry.recipientIdentityKey!,
      message: entry.message!,
      certificate: bytes,
      number,
      env: this.#engine,
    })
  }

  /** Keeps a contact's session record but marks it replaced: the next send starts a new session. */
  async #retireSession(address: Uint8Array): Promise<void> {
    const { store } = this.#engine
    const record = await sessionRecord(store, address)
    if (record === null) return
    await store.write([put(K.session(toHex(address)), { ...record, stale: true })])
  }

  /**
   * Encrypts an outbox entry (in the serial queue): the ratchet step and the message that used it are persisted
   * together, so a retry resends the same message.
   */
  async #encryptEntry(key: string, entry: OutboxRecord): Promise<OutboxRecord> {
    const engine = this.#engine
    const { store, link } = engine
    const account = engine.requireAccount()
    const addressHex = toHex(entry.address)
    let session = await sessionRecord(store, entry.address)
    let identityChanged = false
    if (session === null || session.stale === true) {
      const frame = await link.request({ prekeyBundleQuery: { address: entry.address } })
      const bundle = expectBody(frame, 'prekeyBundle')
      const started = e2e.initiate(account, entry.address, bundle, engine)
      const verified = await get(store, K.verified(addressHex))
      if (verified !== undefined && !e2e.equal(verified, started.identityKey)) {
        throw new ParleyError(
          'IDENTITY_UNTRUSTED',
          "the contact's verified identity changed; approveIdentity() after comparing safety numbers",
        )
      }
      identityChanged = await this.#contacts.identityChanged(addressHex, started.identityKey)
      // Earlier sessions (another identity, or mail still in flight) stay archived behind the new one.
      const old = session
      session = {
        deviceId: started.deviceId,
        identityKey: started.identityKey,
        state: started.state,
        previous:
          old === null ? [] : [old.state, ...(old.previous ?? [])].slice(0, e2e.MAX_PREVIOUS_SESSIONS),
      }
    }
    const token = account.deliveryTokenSet === true ? account.deliveryToken : undefined
    const sealed = e2e.encrypt({
      session: session.state,
      content: {
        messageId: fromHex(entry.id),
        sentAtMs: entry.sentAt,
        text: entry.text,
        ...(token === undefined ? {} : { deliveryToken: token }),
      },
      env: engine,
    })
    const updated: OutboxRecord = {
      ...entry,
      message: sealed.message,
      recipientIdentityKey: session.identityKey,
      deviceId: session.deviceId,
    }
    const record: SessionRecord = { ...session, state: sealed.state }
    // The ratchet step and the message that used it are persisted together, so a retry resends the same message.
    await store.write([
      put(K.session(addressHex), record),
      putAt(K.outbox, key, updated),
      put(K.byAddress(addressHex), entry.to),
      put(K.identity(addressHex), session.identityKey),
    ])
    if (identityChanged) this.#contacts.emitIdentityChanged(entry.to, entry.address, session.identityKey)
    return updated
  }
}
