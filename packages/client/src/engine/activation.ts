// Activation (docs/architecture.md §5): the code request, the confirmation that creates (or, after a takeover,
// reuses) this device's identity and checks the address the relay binds, the registration lock's PIN proof,
// and deactivation. Not exported.
import {
  activationPayload,
  addressFromToken,
  generateIdentity,
  isRegistrationLockLogN,
  normalizePin,
  numberToOprfInput,
  oprfBlind,
  ParleyError,
  REGISTRATION_LOCK_LOG_N,
  REGISTRATION_LOCK_SALT_BYTES,
  type RegistrationLockChallenge,
  registrationLockProof,
  registrationLockVerifier,
  type ServerFrame,
  signAddressChange,
  solveActivationPow,
} from '@parley/protocol'
import { fromHex, toHex } from '../internal/codec.js'
import * as e2e from '../internal/e2e.js'
import type {
  ActivateOptions,
  Activation,
  ActivationPending,
  CallOptions,
  ConfirmOptions,
  NumberChange,
} from '../types.js'
import { type Engine, expectBody } from './context.js'
import type { Discovery } from './discovery.js'
import {
  type AccountRecord,
  ADDRESS_CHANGE_CARRY_MS,
  del,
  get,
  K,
  type PendingRecord,
  put,
} from './keyspace.js'
import type { Prekeys } from './prekeys.js'
import type { RelaySession } from './session.js'

/** What the activation part asks of the rest of the engine. */
export interface ActivatorHooks {
  /** The device is activated and online: start the rest (sync, prekeys, outbox). */
  afterOnline(): void
  /** The account was erased. */
  deactivated(): void
  /** After a number change: queue the signed notice for these contacts (and this account's other devices). */
  queueNotices(to: { address: Uint8Array; number: string }[]): Promise<void>
}

export class Activator {
  readonly #engine: Engine
  readonly #session: RelaySession
  readonly #discovery: Discovery
  readonly #prekeys: Prekeys
  /** What to do once the device is activated and online (or deactivated): the facade's wiring of the parts. */
  readonly #hooks: ActivatorHooks
  /** The PIN given to `activate` (memory only), and the relay's lock challenge for the pending activation. */
  #pendingPin: string | undefined
  #lockChallenge: { activationId: Uint8Array; challenge: RegistrationLockChallenge } | undefined

  constructor(
    engine: Engine,
    session: RelaySession,
    discovery: Discovery,
    prekeys: Prekeys,
    hooks: ActivatorHooks,
  ) {
    this.#engine = engine
    this.#session = session
    this.#discovery = discovery
    this.#prekeys = prekeys
    this.#hooks = hooks
  }

  /** `ParleyClient.activate`, after the open check. */
  async activate(options: ActivateOptions): Promise<ActivationPending> {
    if (typeof options !== 'object' || options === null || options.consent !== true) {
      throw new TypeError('activate() needs { consent: true }: the user must agree before anything is sent')
    }
    const e164 = await this.#discovery.normalize(options.phoneNumber)
    const pin = options.pin === undefined ? undefined : normalizePin(options.pin)
    const started = await this.#requestCode(e164, K.pending, options.signal)
    this.#pendingPin = pin
    this.#lockChallenge = undefined
    return started
  }

  /**
   * Has the relay send a code to `e164` (`ActivationStart`, with the proof of work a relay under load asks for,
   * bound to this connection's nonce) and records the pending code under `slot`.
   */
  async #requestCode(
    e164: string,
    slot: typeof K.pending,
    signal: AbortSignal | undefined,
  ): Promise<ActivationPending> {
    const { link, store, clock } = this.#engine
    link.start()
    await link.waitOnline(signal)
    const hello = link.hello
    const bits = hello?.activationPowBits ?? 0
    const powSolution =
      bits > 0 && hello?.authNonce ? solveActivationPow(hello.authNonce, e164, bits) : new Uint8Array(0)
    const frame = await link.request(
      { activationStart: { phoneNumber: e164, consent: true, ...(bits > 0 ? { powSolution } : {}) } },
      { signal },
    )
    const started = expectBody(frame, 'activationStarted')
    const pending: PendingRecord = {
      e164,
      activationId: started.activationId,
      expiresAt: clock.now() + started.expiresInSeconds * 1000,
    }
    await store.write([put(slot, pending)])
    return { e164, expiresInSeconds: started.expiresInSeconds, attemptsLeft: started.attemptsLeft }
  }

  /** `ParleyClient.confirm`, after the open check. */
  async confirm(code: string, options: ConfirmOptions): Promise<Activation> {
    const engine = this.#engine
    const { link, store, clock, random } = engine
    if (typeof code !== 'string' || !/^\d{6}$/.test(code.trim()))
      throw new TypeError('code must be six digits')
    const pin = options.pin === undefined ? this.#pendingPin : normalizePin(options.pin)
    const pending = await get(store, K.pending)
    if (pending === undefined) throw new ParleyError('INVALID_STATE', 'call activate() first')
    if (pending.expiresAt < clock.now()) {
      await store.write([del(K.pending)])
      throw new ParleyError('EXPIRED', 'the activation expired; call activate() again')
    }
    // A device the number was taken from activates again with its own identity: its contacts' sessions and the
    // mail the relay kept for that identity carry on, and its earlier prekeys (which that mail may use) stay.
    const previous = await get(store, K.previous)
    const reuse = previous !== undefined && previous.e164 === pending.e164
    const identity = reuse ? previous.identity : generateIdentity(random)
    const used = reuse ? await get(store, K.prekeyMeta) : undefined
    const keys = this.#prekeys.initial(identity, used)
    // The relay keeps only a commitment to the number under this salt; the salt stays here, to prove the
    // number to the recipients of our messages.
    const numberSalt = random(32)
    link.start()
    await link.waitOnline(options.signal)
    // Our own number, blinded, for the relay to evaluate with the activation: checking the address we are given
    // then spends no discovery quota (which a re-activation may find used up).
    const oprfKey = link.hello?.oprfKeys?.[0]
    const ownInput = numberToOprfInput(pending.e164)
    const ownBlind = oprfKey?.publicKey ? oprfBlind(ownInput) : undefined
    const identitySignature = e2e.sign(identity, activationPayload(pending.activationId, identity.publicKey))
    // A lock challenge already received for this activation lets the PIN be proved in the first request.
    let proof = await this.#lockProof(pending.activationId, pin)
    let frame: ServerFrame
    for (;;) {
      try {
        frame = await link.request(
          {
            activationConfirm: {
              activationId: pending.activationId,
              code: code.trim(),
              identityKey: identity.publicKey,
              identitySignature,
              prekeys: keys.upload,
              numberSalt,
              ...(ownBlind ? { blindedNumber: ownBlind.blindedElement } : {}),
              ...(proof ? { registrationLockProof: proof } : {}),
            },
          },
          { signal: options.signal },
        )
        break
      } catch (err) {
        if (!ParleyError.is(err, 'REGISTRATION_LOCKED') || !err.registrationLock) throw err
        this.#lockChallenge = { activationId: pending.activationId, challenge: err.registrationLock }
        // Asked for the PIN and holding one not yet proved: prove it once; anything else is the app's to handle.
        if (proof !== undefined || pin === undefined || err.registrationLock.attemptsLeft < 1) throw err
        proof = await this.#lockProof(pending.activationId, pin)
        if (proof === undefined) throw err
      }
    }
    this.#pendingPin = undefined
    this.#lockChallenge = undefined
    const activated = expectBody(frame, 'activated')
    const address = activated.address
    const deviceId = activated.deviceId
    // The relay computed our address from the number with its OPRF key; check it against our own evaluation,
    // which is verified against the pinned key, so a relay cannot bind us to someone else's address.
    const token =
      this.#discovery.ownToken(ownInput, ownBlind, activated.ownNumber) ??
      (await this.#discovery.tokens([pending.e164], options.signal))[0]
    if (token === undefined || !e2e.equal(addressFromToken(token), address)) {
      throw new ParleyError(
        'VERIFICATION_FAILED',
        'the relay assigned an address that does not match the number',
      )
    }
    const account: AccountRecord = {
      e164: pending.e164,
      address,
      deviceId,
      identity,
      numberSalt,
      deliveryToken: random(32),
      deliveryTokenSet: false,
      ...(typeof oprfKey?.keyId === 'number' ? { keyId: oprfKey.keyId } : {}),
    }
    const meta = this.#prekeys.metaOf(keys)
    await store.write([
      ...keys.secrets,
      put(K.prekeyMeta, meta),
      put(K.account, account),
      del(K.pending),
      del(K.previous),
      // A new device's mailbox: read from its start (mail restored from the replaced device keeps its old seqs).
      del(K.cursor),
      // A certificate of the device this number had before is no use to this one.
      del(K.senderCertificate),
    ])
    engine.account = account
    engine.replaced = false
    engine.banned = null
    this.#session.forgetCertificate()
    // Authenticate on this connection now; later connections authenticate in the handshake.
    const hello = link.hello
    if (hello !== null && link.state === 'online') {
      await this.#session.authenticate(hello, link)
      this.#hooks.afterOnline()
    } else {
      link.drop('activated')
    }
    return {
      address: toHex(address),
      deviceId,
      replacedDevice: activated.replacedDevice === true,
      restoredMessages: activated.restoredMessages,
    }
  }

  /** `ParleyClient.changeNumber`, after the open check: the relay has a code sent to the new number. */
  async changeNumber(number: string, options: CallOptions): Promise<ActivationPending> {
    const account = this.#requirePrimary()
    const e164 = await this.#discovery.normalize(number)
    if (e164 === account.e164) throw new ParleyError('INVALID_STATE', 'this is already the account’s number')
    return this.#requestCode(e164, K.numberChange, options.signal)
  }

  /**
   * `ParleyClient.confirmNumberChange`, after the open check: the relay moves the account to the new number's
   * address (checked against this device's own proven evaluation of the new number), this device records it,
   * signs the notice with the account identity, and queues it for every contact it has a session with.
   */
  async confirmNumberChange(code: string, options: CallOptions): Promise<NumberChange> {
    const engine = this.#engine
    const { link, store, clock, random } = engine
    if (typeof code !== 'string' || !/^\d{6}$/.test(code.trim()))
      throw new TypeError('code must be six digits')
    const account = this.#requirePrimary()
    const pending = await get(store, K.numberChange)
    if (pending === undefined) throw new ParleyError('INVALID_STATE', 'call changeNumber() first')
    if (pending.expiresAt < clock.now()) {
      await store.write([del(K.numberChange)])
      throw new ParleyError('EXPIRED', 'the number change expired; call changeNumber() again')
    }
    await link.waitOnline(options.signal)
    const key = link.hello?.oprfKeys?.[0]
    const input = numberToOprfInput(pending.e164)
    const blind = key?.publicKey ? oprfBlind(input) : undefined
    const numberSalt = random(32)
    const frame = await link.request(
      {
        changeNumber: {
          activationId: pending.activationId,
          code: code.trim(),
          numberSalt,
          ...(blind ? { blindedNumber: blind.blindedElement } : {}),
        },
      },
      { signal: options.signal },
    )
    const changed = expectBody(frame, 'numberChanged')
    const address = changed.address
    const token = this.#discovery.ownToken(input, blind, changed.ownNumber, key)
    if (token === undefined || !e2e.equal(addressFromToken(token), address)) {
      // The relay moved the account somewhere this device cannot check: it is no longer where this device
      // says it is either, so the next login decides (a forward of the relay's, if any, is followed).
      throw new ParleyError(
        'VERIFICATION_FAILED',
        'the relay moved this account to an address not its new number’s',
      )
    }
    const now = clock.now()
    const notice = signAddressChange(
      { oldAddress: account.address, newAddress: address, changedAtMs: now },
      account.identity.secretKey,
    )
    const contacts = await engine.serial.run(async () => {
      const current = engine.requireAccount()
      await this.#session.moveOwnAddress({
        ...current,
        e164: pending.e164,
        address,
        numberSalt,
        keyId: changed.keyId,
        addressChange: { notice, until: now + ADDRESS_CHANGE_CARRY_MS },
      })
      await store.write([del(K.numberChange)])
      // Every account this device holds an identity for (a session, now or before): all of them may write to
      // the old number's address, which leads nowhere now.
      const oldHex = toHex(account.address)
      const found: { address: Uint8Array; number: string }[] = []
      for (const e of await store.list(K.identity.prefix)) {
        const hex = e.key.slice(K.identity.prefix.length)
        if (hex === oldHex || hex === toHex(address)) continue
        found.push({ address: fromHex(hex), number: (await get(store, K.byAddress(hex))) ?? '' })
      }
      return found
    })
    await this.#hooks.queueNotices(contacts)
    return { e164: pending.e164, address: toHex(address), contactsNotified: contacts.length }
  }

  #requirePrimary(): AccountRecord {
    const account = this.#engine.requireAccount()
    if (account.accountIdentityKey !== undefined)
      throw new ParleyError('INVALID_STATE', "only the account's primary device can change its number")
    return account
  }

  /** The proof of `pin` for the lock challenge held for this activation, if both are there. */
  async #lockProof(activationId: Uint8Array, pin: string | undefined): Promise<Uint8Array | undefined> {
    const held = this.#lockChallenge
    if (pin === undefined || held === undefined || !e2e.equal(held.activationId, activationId))
      return undefined
    const { salt, logN } = held.challenge
    // A relay may not make this device spend more than the protocol's highest cost (or accept a trivial one).
    if (!isRegistrationLockLogN(logN) || salt.length !== REGISTRATION_LOCK_SALT_BYTES) {
      throw new ParleyError(
        'VERIFICATION_FAILED',
        'the relay asked for a registration-lock proof out of range',
      )
    }
    return registrationLockProof(pin, salt, logN)
  }

  /** `ParleyClient.setRegistrationLock`, after the open check. */
  async setRegistrationLock(pin: string, options: CallOptions): Promise<void> {
    const engine = this.#engine
    const p = normalizePin(pin)
    engine.requireAccount()
    const salt = engine.random(REGISTRATION_LOCK_SALT_BYTES)
    const verifier = registrationLockVerifier(await registrationLockProof(p, salt, REGISTRATION_LOCK_LOG_N))
    const frame = await engine.link.request(
      { setRegistrationLock: { salt, logN: REGISTRATION_LOCK_LOG_N, verifier } },
      { signal: options.signal },
    )
    expectBody(frame, 'registrationLockSet')
  }

  /** `ParleyClient.clearRegistrationLock`, after the open check. */
  async clearRegistrationLock(options: CallOptions): Promise<void> {
    const engine = this.#engine
    engine.requireAccount()
    const frame = await engine.link.request({ setRegistrationLock: {} }, { signal: options.signal })
    expectBody(frame, 'registrationLockSet')
  }

  /** `ParleyClient.deactivate`, after the open check: the relay erases the account, then this device does. */
  async deactivate(options: CallOptions): Promise<void> {
    const engine = this.#engine
    engine.requireAccount()
    const frame = await engine.link.request({ deactivate: {} }, { signal: options.signal })
    expectBody(frame, 'deactivated')
    await engine.serial.run(async () => {
      const all = await engine.store.list('')
      await engine.store.write(all.map((e) => del(e.key)))
      engine.account = null
      engine.authenticated = false
      this.#hooks.deactivated()
    })
    engine.link.stop()
    engine.anonymous.stop()
  }
}
