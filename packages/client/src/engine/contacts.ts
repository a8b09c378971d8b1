// What this device knows of its contacts (docs/architecture.md §4.8, §6.7): their identities and identity
// changes, safety numbers and verification, the number proven for a sender, and following a contact that moved
// to a new address after an OPRF key rotation. Not exported.
import {
  type AddressChangeFields,
  addressChangeClaims,
  ParleyError,
  verifyAddressChange,
} from '@parley/protocol'
import { toHex } from '../internal/codec.js'
import * as e2e from '../internal/e2e.js'
import type { StoreWrite } from '../Store.js'
import type { Engine } from './context.js'
import type { Discovery } from './discovery.js'
import {
  type ContactRecord,
  contactRecord,
  del,
  get,
  K,
  moveAddressRecords,
  put,
  sessionRecord,
} from './keyspace.js'

export class Contacts {
  readonly #engine: Engine
  readonly #discovery: Discovery

  constructor(engine: Engine, discovery: Discovery) {
    this.#engine = engine
    this.#discovery = discovery
  }

  /** `ParleyClient.safetyNumber`, after the open check. */
  async safetyNumber(number: string): Promise<string | null> {
    const engine = this.#engine
    const account = engine.requireAccount()
    const e164 = await this.#discovery.normalize(number)
    const contact = await contactRecord(engine.store, e164)
    if (contact === null) return null
    let session = await sessionRecord(engine.store, contact.address)
    if (session === null && engine.flushing !== null) {
      // A message to this contact may be establishing the session right now.
      await engine.flushing.catch(() => {})
      session = await sessionRecord(engine.store, contact.address)
    }
    if (session === null) return null
    return e2e.safetyNumber(account.identity.publicKey, account.address, session.identityKey, contact.address)
  }

  /** `ParleyClient.markVerified`, after the open check. */
  async markVerified(number: string, options: { safetyNumber?: string }): Promise<void> {
    const engine = this.#engine
    const account = engine.requireAccount()
    const e164 = await this.#discovery.normalize(number)
    await engine.serial.run(async () => {
      const contact = await contactRecord(engine.store, e164)
      const identity =
        contact === null ? undefined : await get(engine.store, K.identity(toHex(contact.address)))
      if (contact === null || identity === undefined) {
        throw new ParleyError('NOT_FOUND', 'no identity known for this contact yet; exchange a message first')
      }
      if (
        options.safetyNumber !== undefined &&
        e2e.safetyNumber(account.identity.publicKey, account.address, identity, contact.address) !==
          options.safetyNumber.replace(/\s+/g, ' ').trim()
      ) {
        throw new ParleyError('VERIFICATION_FAILED', 'the safety number is not the current one')
      }
      await engine.store.write([put(K.verified(toHex(contact.address)), identity)])
    })
  }

  /** `ParleyClient.isVerified`, after the open check. */
  async isVerified(number: string): Promise<boolean> {
    const { store } = this.#engine
    this.#engine.requireAccount()
    const contact = await contactRecord(store, await this.#discovery.normalize(number))
    if (contact === null) return false
    const hex = toHex(contact.address)
    const [verified, current] = [await get(store, K.verified(hex)), await get(store, K.identity(hex))]
    return verified !== undefined && current !== undefined && e2e.equal(verified, current)
  }

  /**
   * Mail from an address this device has no session with, whose sender proves a number we know under another
   * address with the same identity key: the contact moved (an OPRF key rotation). Its session, identity, verified
   * mark, delivery token and held mail follow it to the new address. A new identity is a new device, not a move.
   * Called from `Inbox.receive`, in the serial queue.
   */
  async followSender(opened: e2e.Opened): Promise<void> {
    const { store } = this.#engine
    const e164 = opened.senderNumber
    if (e164 === undefined) return
    const newHex = toHex(opened.senderAddress)
    if ((await store.get(K.session(newHex).key)) !== undefined) return
    const contact = await contactRecord(store, e164)
    if (contact === null || e2e.equal(contact.address, opened.senderAddress)) return
    const oldHex = toHex(contact.address)
    const identity = await get(store, K.identity(oldHex))
    if (identity === undefined || !e2e.equal(identity, opened.senderIdentityKey)) return
    // Inbox.receive runs in the serial queue already.
    await this.#moveContact(contact, opened.senderAddress, undefined)
  }

  /**
   * A send to `e164` at `address` found nobody there: looks the number up again under the current OPRF key and,
   * when it is registered at another address, moves the contact there.
   * @returns the new address, and whether the queued message must be encrypted again (its session was still
   *   waiting for a first reply, bound to the old address); null when the contact did not move
   */
  async followContact(
    e164: string,
    address: Uint8Array,
  ): Promise<{ address: Uint8Array; restart: boolean } | null> {
    const { store, link, serial } = this.#engine
    let contact = await contactRecord(store, e164)
    const current = link.hello?.oprfKeys?.[0]?.keyId
    if (contact?.registered && !e2e.equal(contact.address, address)) {
      // Already followed (an earlier entry of the outbox, or mail from the contact).
    } else {
      if (contact !== null && contact.keyId !== undefined && contact.keyId === current) return null
      await this.#discovery.lookup([e164])
      contact = await contactRecord(store, e164)
      if (contact === null || !contact.registered || e2e.equal(contact.address, address)) return null
    }
    const moved = contact
    return serial.run(async () => {
      const old = await sessionRecord(store, address)
      const restart = old !== null && !old.stale && e2e.awaitingReply(old.state)
      await this.#moveContact({ ...moved, address }, moved.address, moved.keyId, restart)
      return { address: moved.address, restart }
    })
  }

  /** Moves everything kept about a contact from its old address to `to` (in the serial queue). */
  async #moveContact(
    contact: ContactRecord,
    to: Uint8Array,
    keyId: number | undefined,
    retire = false,
  ): Promise<void> {
    const { store, clock } = this.#engine
    const from = toHex(contact.address)
    const next = toHex(to)
    if (from === next) return
    const writes = await moveAddressRecords(store, from, next, retire)
    writes.push(...(await this.#movedConversation(from, next, contact.e164)))
    const record: ContactRecord = {
      e164: contact.e164,
      address: to,
      registered: true,
      checkedAt: clock.now(),
      ...(keyId !== undefined ? { keyId } : {}),
    }
    writes.push(put(K.contact(contact.e164), record))
    writes.push(put(K.byAddress(next), contact.e164))
    await store.write(writes)
  }

  /**
   * Mail carrying an address-change notice (a contact changed its number): when the notice moves an address this
   * device knows, verifies against the identity pinned for it, names the address the mail comes from, and the
   * mail was sealed by that identity or by a device of its verified list, everything kept about the contact
   * follows it to the new address (a session still waiting for a first reply is retired: it was bound to the old
   * address). The old number no longer leads to the contact; the new one does when the sender proved it. Emits
   * `numberChanged`. Anything else about the notice is ignored (the mail itself is still handled as usual).
   * Called from `Inbox.receive`, in the serial queue.
   */
  async followNumberChange(opened: e2e.Opened): Promise<void> {
    const engine = this.#engine
    const { store, clock } = engine
    const notice = opened.addressChange
    if (notice === undefined) return
    let claims: AddressChangeFields
    try {
      claims = addressChangeClaims(notice)
    } catch {
      return
    }
    if (!e2e.equal(claims.newAddress, opened.senderAddress)) return
    const oldHex = toHex(claims.oldAddress)
    const newHex = toHex(opened.senderAddress)
    const identity = await get(store, K.identity(oldHex))
    // Nothing known at the old address (never met, or already followed: every message carries the notice for a
    // while), or another identity already known at the new one.
    if (identity === undefined) return
    const there = await get(store, K.identity(newHex))
    if (there !== undefined && !e2e.equal(there, identity)) return
    try {
      verifyAddressChange(
        notice,
        { identityKey: identity, oldAddress: claims.oldAddress },
        { crypto: engine.crypto },
      )
    } catch (err) {
      engine.emitRecoverable(err)
      return
    }
    const list = await get(store, K.deviceList(oldHex))
    const carrier =
      e2e.equal(identity, opened.senderIdentityKey) ||
      (list?.devices.some(
        (d) => d.deviceId === opened.senderDeviceId && e2e.equal(d.deviceKey, opened.senderIdentityKey),
      ) ??
        false)
    if (!carrier) return
    const previous = (await get(store, K.byAddress(oldHex))) ?? null
    const session = await get(store, K.session(oldHex))
    const retire = session !== undefined && !session.stale && e2e.awaitingReply(session.state)
    const writes = await moveAddressRecords(store, oldHex, newHex, retire)
    const number = opened.senderNumber ?? null
    writes.push(...(await this.#movedConversation(oldHex, newHex, number)))
    if (previous !== null) {
      const contact = await contactRecord(store, previous)
      if (contact !== null && toHex(contact.address) === oldHex) writes.push(del(K.contact(previous)))
    }
    writes.push(del(K.byAddress(newHex)))
    if (number !== null) {
      const record: ContactRecord = {
        e164: number,
        address: opened.senderAddress,
        registered: true,
        checkedAt: clock.now(),
      }
      writes.push(put(K.contact(number), record), put(K.byAddress(newHex), number))
    }
    await store.write(writes)
    engine.events.emit('numberChanged', { previousNumber: previous, number, address: newHex, own: false })
  }

  /** The conversation with the peer at `fromHex`, renamed for its new address (and number, when known). */
  async #movedConversation(fromHex: string, nextHex: string, number: string | null): Promise<StoreWrite[]> {
    const { store } = this.#engine
    const id = await get(store, K.convOf(fromHex))
    const c = id === undefined ? undefined : await get(store, K.conversation(id))
    if (id === undefined || c === undefined) return []
    return [put(K.conversation(id), { ...c, peer: nextHex, number: number ?? c.number })]
  }

  /** Whether `identityKey` differs from the one last seen for the address (none seen yet: not a change). */
  async identityChanged(addressHex: string, identityKey: Uint8Array): Promise<boolean> {
    const previous = await get(this.#engine.store, K.identity(addressHex))
    return previous !== undefined && !e2e.equal(previous, identityKey)
  }

  emitIdentityChanged(
    number: string | null,
    address: Uint8Array,
    identityKey: Uint8Array,
    held = false,
  ): void {
    const account = this.#engine.requireAccount()
    this.#engine.events.emit('identityChanged', {
      number,
      address: toHex(address),
      safetyNumber: e2e.safetyNumber(account.identity.publicKey, account.address, identityKey, address),
      held,
    })
  }

  /**
   * The number to show for a proven sender: the one this device resolved to the address itself (discovery,
   * through the OPRF), else the one the sender proved with its certified commitment. Never a bare claim, and
   * never an OPRF evaluation spent on a sender's say-so.
   */
  async provenSender(opened: e2e.Opened, writes: StoreWrite[]): Promise<string | null> {
    const { store, clock } = this.#engine
    const addressHex = toHex(opened.senderAddress)
    const known = await get(store, K.byAddress(addressHex))
    if (known !== undefined) return known
    const e164 = opened.senderNumber
    if (e164 === undefined) return null
    const contact = await contactRecord(store, e164)
    // Our own discovery said this number has another address: the relay contradicts itself; show no number.
    if (contact !== null && !e2e.equal(contact.address, opened.senderAddress)) return null
    if (contact === null || !contact.registered) {
      const record: ContactRecord = {
        e164,
        address: opened.senderAddress,
        registered: true,
        checkedAt: clock.now(),
      }
      writes.push(put(K.contact(e164), record))
    }
    writes.push(put(K.byAddress(addressHex), e164))
    return e164
  }
}
