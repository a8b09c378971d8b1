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
  solveActivationPow,
} from '@parley/protocol'
import { toHex } from '../internal/codec.js'
import * as e2e from '../internal/e2e.js'
import type { ActivateOptions, Activation, ActivationPending, CallOptions, ConfirmOptions } from '../types.js'
import { type Engine, expectBody } from './context.js'
import type { Discovery } from './discovery.js'
import { type AccountRecord, del, get, K, type PendingRecord, put } from './keyspace.js'
import type { Prekeys } from './prekeys.js'
import type { RelaySession } from './session.js'

export class Activator {
  readonly #engine: Engine
  readonly #session: RelaySession
  readonly #discovery: Discovery
  readonly #prekeys: Prekeys
  /** What to do once the device is activated and online (or deactivated): the facade's wiring of the parts. */
  readonly #hooks: { afterOnline(): void; deactivated(): void }
  /** The PIN given to `activate` (memory only), and the relay's lock challenge for the pending activation. */
  #pendingPin: string | undefined
  #lockChallenge: { activationId: Uint8Array; challenge: RegistrationLockChallenge } | undefined

  constructor(
    engine: Engine,
    session: RelaySession,
    discovery: Discovery,
    prekeys: Prekeys,
    hooks: { afterOnline(): void; deactivated(): void },
  ) {
    this.#engine = engine
    this.#session = session
    this.#discovery = discovery
    this.#prekeys = prekeys
    this.#hooks = hooks
  }

  /** `ParleyClient.activate`, after the open check. */
  async activate(options: ActivateOptions): Promise<ActivationPending> {
    const { link, store, clock } = this.#engine
    if (typeof options !== 'object' || options === null || options.consent !== true) {
      throw new TypeError('activate() needs { consent: true }: the user must agree before anything is sent')
    }
    const e164 = await this.#discovery.normalize(options.phoneNumber)
    const pin = options.pin === undefined ? undefined : normalizePin(options.pin)
    link.start()
    await link.waitOnline(options.signal)
    // A relay under load asks for proof of work per code request, bound to this connection's nonce.
    const hello = link.hello
    const bits = hello?.activationPowBits ?? 0
    const powSolution =
      bits > 0 && hello?.authNonce ? solveActivationPow(hello.authNonce, e164, bits) : new Uint8Array(0)
    const frame = await link.request(
      { activationStart: { phoneNumber: e164, consent: true, ...(bits > 0 ? { powSolution } : {}) } },
      { signal: options.signal },
    )
    const started = expectBody(frame, 'activationStarted')
    const pending: PendingRecord = {
      e164,
      activationId: started.activationId,
      expiresAt: clock.now() + started.expiresInSeconds * 1000,
    }
    await store.write([put(K.pending, pending)])
    this.#pendingPin = pin
    this.#lockChallenge = undefined
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
