// Linked devices (docs/architecture.md §9): the verified device lists of this account and of contacts, linking a
// new device through the relay's rendezvous (no SMS), and removing one. A list counts only once it verified
// against the account identity this device pinned, so a relay cannot add a device of its own. Not exported.
import {
  createLinkSecret,
  decodeLinkCode,
  decodeLinkGrant,
  decodeLinkRequest,
  deviceKeyNamedIn,
  encodeHistoryChunk,
  encodeLinkCode,
  encodeLinkGrant,
  encodeLinkRequest,
  generateIdentity,
  linkFingerprint,
  openLinkMessage,
  ParleyError,
  sealLinkMessage,
  signDeviceList,
  verifyDeviceList,
} from '@parley/protocol'
import { fromHex, toHex } from '../internal/codec.js'
import * as e2e from '../internal/e2e.js'
import type { DeviceInfo, LinkCodeOptions, LinkedAccount, LinkedDevice, LinkInvitation } from '../types.js'
import { type Engine, expectBody } from './context.js'
import {
  type AccountRecord,
  type DeviceEntryRecord,
  type DeviceListRecord,
  decodeEntry,
  del,
  get,
  K,
  put,
} from './keyspace.js'
import type { Prekeys } from './prekeys.js'

/**
 * How often each side of a link polls the rendezvous while it waits for the other: every quarter second for the
 * first ten seconds (the other side usually answers within them: the user is holding both devices), then the
 * primary (logged in) every second and the new device (not logged in, so charged to its network's rendezvous
 * budget: 40 + 295 reads at most over ten minutes) every two.
 */
const EAGER_POLL_MS = 250
const EAGER_POLL_FOR_MS = 10_000
const PRIMARY_POLL_MS = 1000
const NEW_DEVICE_POLL_MS = 2000
/** How long a new device waits for the primary's answer by default (a rendezvous lives ten minutes). */
const LINK_WAIT_MS = 10 * 60_000

/** The account identity: the primary's own key, or what a linked device was given when it linked. */
export function accountIdentity(account: AccountRecord): Uint8Array {
  return account.accountIdentityKey ?? account.identity.publicKey
}

/** Whether this device is the account's primary (it holds the account identity). */
export function isPrimary(account: AccountRecord): boolean {
  return account.accountIdentityKey === undefined
}

/** The devices of a list record, or the primary alone when the account never published a list. */
function entriesOf(account: AccountRecord): DeviceEntryRecord[] {
  return account.devices?.devices ?? [{ deviceId: account.deviceId, deviceKey: accountIdentity(account) }]
}

function recordOf(
  list: Uint8Array,
  verified: { version: number; primaryDeviceId: number; devices: readonly DeviceEntryRecord[] },
): DeviceListRecord {
  return {
    version: verified.version,
    primaryDeviceId: verified.primaryDeviceId,
    devices: verified.devices.map((d) => ({ deviceId: d.deviceId, deviceKey: d.deviceKey })),
    list,
  }
}

function sameDevices(a: DeviceListRecord | undefined, b: DeviceListRecord): boolean {
  const x = a?.devices ?? []
  return (
    x.length === b.devices.length &&
    x.every(
      (d, i) => d.deviceId === b.devices[i]!.deviceId && e2e.equal(d.deviceKey, b.devices[i]!.deviceKey),
    )
  )
}

/** What the devices part asks of the rest of the client. */
export interface DevicesHooks {
  /** This device just got its account by linking: log in and hand the relay its prekeys. */
  linked(): Promise<void>
  /** Queue these history chunks for the account's other devices. */
  queueHistory(chunks: Uint8Array[]): Promise<void>
  /** A device was linked to this account: hand it the state of every group the account is in. */
  linkedDevice(): Promise<void>
}

/** Most messages of the history a new device is sent (the newest ones). */
export const MAX_HISTORY_MESSAGES = 10_000
/** About how many bytes of messages go in one history chunk (five copies of one fit a frame). */
const HISTORY_CHUNK_BYTES = 24 * 1024

export class Devices {
  readonly #engine: Engine
  readonly #prekeys: Prekeys
  readonly #hooks: DevicesHooks

  constructor(engine: Engine, prekeys: Prekeys, hooks: DevicesHooks) {
    this.#engine = engine
    this.#prekeys = prekeys
    this.#hooks = hooks
  }

  // ───────────────────────────── lists ─────────────────────────────

  /** The verified device list this device holds for `address` (its own account's, or a contact's), if any. */
  async cached(address: Uint8Array): Promise<DeviceListRecord | undefined> {
    const account = this.#engine.requireAccount()
    if (e2e.equal(address, account.address)) return account.devices
    return get(this.#engine.store, K.deviceList(toHex(address)))
  }

  /**
   * Fetches the device list of `address` from the relay and verifies it: against this account's identity for
   * its own list, else against the identity pinned for the contact (or, when none is pinned yet, the key the
   * list names for the primary the relay routes to: trust on first use, as for a first prekey bundle). A list
   * older than one verified before is refused. Stores the result and emits `devicesChanged` when the set changed.
   * @throws ParleyError VERIFICATION_FAILED for a list that does not verify (nothing is stored then);
   *   IDENTITY_UNTRUSTED when it verifies only under another identity than a verified contact's
   */
  async refresh(address: Uint8Array): Promise<DeviceListRecord> {
    const engine = this.#engine
    const { store } = engine
    const account = engine.requireAccount()
    const hex = toHex(address)
    const own = e2e.equal(address, account.address)
    const result = expectBody(await engine.link.request({ deviceListQuery: { address } }), 'deviceListResult')
    const before = own ? account.devices : await get(store, K.deviceList(hex))
    let record: DeviceListRecord
    if (result.deviceList.length === 0) {
      // The account never published a list (or was activated again since): its primary alone. The version seen
      // stays the floor, so an older list served later is still refused.
      record = {
        version: before?.version ?? 0,
        primaryDeviceId: result.primaryDeviceId,
        devices: [],
        list: new Uint8Array(0),
      }
    } else {
      const pinned = own ? accountIdentity(account) : await get(store, K.identity(hex))
      const named = deviceKeyNamedIn(result.deviceList, result.primaryDeviceId)
      const verify = (identityKey: Uint8Array) =>
        verifyDeviceList(
          result.deviceList,
          { identityKey, address, minVersion: before?.version ?? 0 },
          { crypto: engine.crypto },
        )
      let verified: ReturnType<typeof verifyDeviceList>
      try {
        if (pinned === undefined) {
          if (named === null) throw new ParleyError('VERIFICATION_FAILED', 'the device list names no primary')
          verified = verify(named)
        } else {
          verified = verify(pinned)
        }
      } catch (err) {
        // Signed by another identity than the pinned one: the contact may have activated its number again with
        // a new identity. Not for this account's own list, and not silently for a verified contact; and only
        // when the primary's own prekey bundle carries that identity too (what a new session with it would
        // show, and announce as an identity change). A list under an identity the relay names alone is never
        // stored, so a forged one cannot raise the version floor or stand in for the contact's devices.
        if (own || pinned === undefined || named === null || e2e.equal(named, pinned)) throw err
        if ((await get(store, K.verified(hex))) !== undefined) {
          throw new ParleyError('IDENTITY_UNTRUSTED', "the contact's device list is signed by a new identity")
        }
        const bundle = expectBody(
          await engine.link.request({ prekeyBundleQuery: { address, deviceId: 0 } }),
          'prekeyBundle',
        )
        if (!e2e.equal(bundle.identityKey, named)) throw err
        verified = verify(named)
      }
      record = recordOf(result.deviceList, verified)
    }
    if (own) {
      // Not through the serial queue: the inbox refreshes the list from inside it. Only `devices` changes.
      const next: AccountRecord = { ...engine.requireAccount(), devices: record }
      engine.account = next
      await store.write([put(K.account, next)])
    } else {
      await store.write([put(K.deviceList(hex), record)])
    }
    if (!sameDevices(before, record) && (before !== undefined || record.devices.length > 0)) {
      const number = own ? account.e164 : ((await get(store, K.byAddress(hex))) ?? null)
      engine.events.emit('devicesChanged', {
        number,
        address: hex,
        own,
        deviceIds: record.devices.map((d) => d.deviceId),
      })
    }
    return record
  }

  /**
   * The key of a device of `address` other than its primary, from the verified list (fetched again once when
   * the device is not in the one held): what a message from that device must be sealed by. Null when the
   * device is in no list that verifies.
   */
  async linkedKey(address: Uint8Array, deviceId: number, key: Uint8Array): Promise<boolean> {
    const holds = (r: DeviceListRecord | undefined) =>
      r !== undefined &&
      r.primaryDeviceId !== deviceId &&
      r.devices.some((d) => d.deviceId === deviceId && e2e.equal(d.deviceKey, key))
    if (holds(await this.cached(address))) return true
    try {
      return holds(await this.refresh(address))
    } catch (err) {
      this.#engine.emitRecoverable(err)
      return false
    }
  }

  /** This account's other devices (not this one), from the list this device holds. */
  ownOthers(): DeviceEntryRecord[] {
    const account = this.#engine.requireAccount()
    return entriesOf(account).filter((d) => d.deviceId !== account.deviceId)
  }

  /** `ParleyClient.devices`: this account's devices, from the list on the relay (verified). */
  async list(): Promise<DeviceInfo[]> {
    const account = this.#engine.requireAccount()
    const record = await this.refresh(account.address)
    const entries = record.devices.length > 0 ? record.devices : entriesOf(account)
    const primary = record.devices.length > 0 ? record.primaryDeviceId : account.deviceId
    return entries.map((d) => ({
      deviceId: d.deviceId,
      primary: d.deviceId === primary,
      current: d.deviceId === account.deviceId,
    }))
  }

  // ───────────────────────────── this account's list (primary) ─────────────────────────────

  /** Signs and publishes a new list of this account's devices, then records it (primary only). */
  async #publish(
    devices: DeviceEntryRecord[],
    maxDeviceId: number,
    announce = true,
  ): Promise<DeviceListRecord> {
    const engine = this.#engine
    const account = engine.requireAccount()
    // Versions from the clock as well as the count: a primary activated again (whose relay forgot the old list)
    // still signs above every list contacts saw before, so none of those can be replayed to them.
    const version = Math.max((account.devices?.version ?? 0) + 1, engine.clock.now())
    const list = signDeviceList({ address: account.address, version, devices }, account.identity.secretKey)
    expectBody(await engine.link.request({ publishDeviceList: { deviceList: list } }), 'deviceListPublished')
    const record = recordOf(
      list,
      verifyDeviceList(list, { identityKey: account.identity.publicKey, address: account.address }),
    )
    await engine.serial.run(async () => {
      const now = engine.requireAccount()
      const next: AccountRecord = { ...now, devices: record, maxDeviceId }
      await engine.store.write([put(K.account, next)])
      engine.account = next
    })
    if (!announce) return record
    engine.events.emit('devicesChanged', {
      number: account.e164,
      address: toHex(account.address),
      own: true,
      deviceIds: record.devices.map((d) => d.deviceId),
    })
    return record
  }

  /**
   * After this account moved to a new address (a number change, a rebind): the primary signs its device list again
   * for the new address (contacts verify a list against the address they reach the account at). Nothing to do on
   * a linked device, or for an account that never published a list.
   */
  async republish(): Promise<void> {
    const account = this.#engine.requireAccount()
    const list = account.devices
    if (!isPrimary(account) || list === undefined || list.devices.length === 0) return
    const max = account.maxDeviceId ?? Math.max(...list.devices.map((d) => d.deviceId))
    // The same devices: no devicesChanged.
    await this.#publish(list.devices, max, false)
  }

  #requirePrimary(what: string): AccountRecord {
    const account = this.#engine.requireAccount()
    if (!isPrimary(account)) {
      throw new ParleyError('INVALID_STATE', `only the account's primary device can ${what}`)
    }
    return account
  }

  /** `ParleyClient.createLinkCode`. */
  async createLinkCode(options: LinkCodeOptions): Promise<LinkInvitation> {
    const engine = this.#engine
    this.#requirePrimary('link a device')
    const opened = expectBody(
      await engine.link.request({ openRendezvous: {} }, { signal: options.signal }),
      'rendezvousOpened',
    )
    const code = { rendezvousId: opened.rendezvousId, secret: createLinkSecret(engine.random) }
    const expiresAt = engine.clock.now() + opened.expiresInSeconds * 1000
    const linked = this.#admit(code, expiresAt, options)
    // The app may never await it (it showed the code and moved on); its failure is still its to read.
    linked.catch(() => {})
    return { code: encodeLinkCode(code), expiresAt: new Date(expiresAt), linked }
  }

  /** Waits for the new device's request, lets the app confirm it, adds the device and answers it. */
  async #admit(
    code: { rendezvousId: Uint8Array; secret: Uint8Array },
    expiresAt: number,
    options: LinkCodeOptions,
  ): Promise<LinkedDevice> {
    const engine = this.#engine
    const sealed = await this.#poll(code.rendezvousId, 1, expiresAt, options.signal)
    const request = decodeLinkRequest(openLinkMessage({ ...code, direction: 'to-primary', sealed }, engine))
    const fingerprint = linkFingerprint(request.deviceKey)
    if (options.confirm !== undefined && !(await options.confirm({ fingerprint }))) {
      throw new ParleyError('ABORTED', 'the new device was refused')
    }
    const account = this.#requirePrimary('link a device')
    const current = entriesOf(account)
    if (current.some((d) => e2e.equal(d.deviceKey, request.deviceKey))) {
      throw new ParleyError('CONFLICT', 'this device is linked already')
    }
    const deviceId = Math.max(account.maxDeviceId ?? account.deviceId, ...current.map((d) => d.deviceId)) + 1
    const record = await this.#publish([...current, { deviceId, deviceKey: request.deviceKey }], deviceId)
    const numberSalt = account.numberSalt
    if (numberSalt === undefined) throw new ParleyError('INVALID_STATE', 'activate this device again first')
    const grant = encodeLinkGrant({
      address: account.address,
      deviceId,
      deviceList: record.list,
      number: account.e164,
      numberSalt,
      historyKey: new Uint8Array(0),
      accountIdentity: account.identity.publicKey,
    })
    try {
      const answer = sealLinkMessage({ ...code, direction: 'to-new-device', plaintext: grant }, engine)
      expectBody(
        await engine.link.request({
          rendezvousPost: { rendezvousId: code.rendezvousId, side: 2, sealed: answer },
        }),
        'rendezvousPosted',
      )
    } catch (err) {
      // The device cannot learn its account: take it out again, so contacts do not wait on a device that never
      // comes online.
      await this.#publish(
        record.devices.filter((d) => d.deviceId !== deviceId),
        deviceId,
      ).catch((e) => engine.emitRecoverable(e))
      throw err
    }
    if (options.history === true) await this.#hooks.queueHistory(await this.#historyChunks())
    await this.#hooks.linkedDevice()
    return { deviceId }
  }

  /**
   * This device's history (received messages and sent transcripts, the newest {@link MAX_HISTORY_MESSAGES}) as
   * encoded chunks of about {@link HISTORY_CHUNK_BYTES}, oldest first.
   */
  async #historyChunks(): Promise<Uint8Array[]> {
    const stored = (await this.#engine.store.list(K.inbox.prefix)).map((e) => decodeEntry(K.inbox, e))
    stored.sort((a, b) => a.receivedAt - b.receivedAt || (a.seq ?? 0) - (b.seq ?? 0))
    const entries = stored.slice(-MAX_HISTORY_MESSAGES).map((m) => ({
      messageId: fromHex(m.id),
      from: m.from,
      fromAddress: fromHex(m.fromAddress),
      text: m.text,
      sentAtMs: m.sentAt,
      receivedAtMs: m.receivedAt,
      ...(m.toAddress === undefined ? {} : { toAddress: fromHex(m.toAddress), to: m.to ?? null }),
    }))
    const groups: (typeof entries)[] = []
    let size = 0
    for (const e of entries) {
      const bytes = 120 + new TextEncoder().encode(e.text).length
      if (groups.length === 0 || size + bytes > HISTORY_CHUNK_BYTES) {
        groups.push([])
        size = 0
      }
      groups.at(-1)!.push(e)
      size += bytes
    }
    return groups.map((g, index) => encodeHistoryChunk({ entries: g, index, total: groups.length }))
  }

  /** Reads one side of a rendezvous until it holds a message, the deadline passes or the signal aborts. */
  async #poll(
    rendezvousId: Uint8Array,
    side: 1 | 2,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array> {
    const engine = this.#engine
    const eagerUntil = engine.clock.now() + EAGER_POLL_FOR_MS
    for (;;) {
      const read = expectBody(
        await engine.link.request({ rendezvousRead: { rendezvousId, side } }, { signal }),
        'rendezvousMessage',
      )
      if (read.sealed.length > 0) return read.sealed
      // Read once more at the deadline itself, so a message that came just before it is not missed.
      const left = deadline - engine.clock.now()
      if (left <= 0) throw new ParleyError('EXPIRED', 'no answer through the link rendezvous in time')
      const interval =
        engine.clock.now() < eagerUntil ? EAGER_POLL_MS : side === 1 ? PRIMARY_POLL_MS : NEW_DEVICE_POLL_MS
      await engine.sleep(Math.min(interval, left), signal)
    }
  }

  /** `ParleyClient.link`: becomes a linked device of the account whose primary showed `code`. */
  async link(text: string, options: { signal?: AbortSignal; timeoutMs?: number }): Promise<LinkedAccount> {
    const engine = this.#engine
    if (engine.account !== null) throw new ParleyError('INVALID_STATE', 'this device has an account already')
    const code = decodeLinkCode(text)
    const identity = generateIdentity(engine.random)
    const request = sealLinkMessage(
      { ...code, direction: 'to-primary', plaintext: encodeLinkRequest({ deviceKey: identity.publicKey }) },
      engine,
    )
    expectBody(
      await engine.link.request(
        { rendezvousPost: { rendezvousId: code.rendezvousId, side: 1, sealed: request } },
        { signal: options.signal },
      ),
      'rendezvousPosted',
    )
    const deadline = engine.clock.now() + (options.timeoutMs ?? LINK_WAIT_MS)
    const sealed = await this.#poll(code.rendezvousId, 2, deadline, options.signal)
    const grant = decodeLinkGrant(openLinkMessage({ ...code, direction: 'to-new-device', sealed }, engine))
    const identityKey = grant.accountIdentity
    if (identityKey === undefined || identityKey.length !== 32) {
      throw new ParleyError('VERIFICATION_FAILED', 'the link answer names no account identity')
    }
    const verified = verifyDeviceList(
      grant.deviceList,
      { identityKey, address: grant.address },
      { crypto: engine.crypto },
    )
    const mine = verified.devices.find((d) => d.deviceId === grant.deviceId)
    if (
      mine === undefined ||
      !e2e.equal(mine.deviceKey, identity.publicKey) ||
      grant.deviceId === verified.primaryDeviceId
    ) {
      throw new ParleyError('VERIFICATION_FAILED', "the account's device list does not hold this device")
    }
    const keys = this.#prekeys.initial(identity, undefined)
    const account: AccountRecord = {
      e164: grant.number,
      address: grant.address,
      deviceId: grant.deviceId,
      identity,
      numberSalt: grant.numberSalt,
      accountIdentityKey: identityKey,
      devices: recordOf(grant.deviceList, verified),
    }
    await engine.serial.run(async () => {
      await engine.store.write([
        ...keys.secrets,
        put(K.prekeyMeta, this.#prekeys.metaOf(keys)),
        // Public keys only: uploaded once this device has logged in, and again after a crash before that.
        put(K.linkUpload, keys.upload),
        put(K.account, account),
        del(K.cursor),
        del(K.senderCertificate),
      ])
      engine.account = account
      engine.replaced = false
      engine.banned = null
    })
    await this.#hooks.linked()
    return {
      address: toHex(grant.address),
      deviceId: grant.deviceId,
      number: grant.number,
      fingerprint: linkFingerprint(identity.publicKey),
    }
  }

  /**
   * Uploads the first prekeys of a linked device once it is logged in (left from `link()`, or from before a
   * crash), so that contacts can start sessions with it.
   */
  async uploadLinkPrekeys(): Promise<void> {
    const engine = this.#engine
    if (!engine.authenticated) return
    const upload = await get(engine.store, K.linkUpload)
    if (upload === undefined) return
    expectBody(await engine.link.request({ prekeyUpload: upload }), 'prekeyUploaded')
    await engine.store.write([del(K.linkUpload)])
  }

  /** `ParleyClient.removeDevice` (primary only): a new list without the device; the relay erases its mail and keys. */
  async remove(deviceId: number): Promise<void> {
    const account = this.#requirePrimary('remove a device')
    const current = entriesOf(account)
    if (deviceId === account.deviceId)
      throw new ParleyError('INVALID_STATE', 'the primary cannot remove itself')
    if (!current.some((d) => d.deviceId === deviceId)) {
      throw new ParleyError('NOT_FOUND', 'no such device in this account')
    }
    await this.#publish(
      current.filter((d) => d.deviceId !== deviceId),
      Math.max(account.maxDeviceId ?? account.deviceId, ...current.map((d) => d.deviceId)),
    )
    await this.#engine.store.write([del(K.deviceSession(toHex(account.address), deviceId))])
  }
}
