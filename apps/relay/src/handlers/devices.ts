/**
 * Linked devices (docs/architecture.md §9): the account's signed device list, the link rendezvous through which a
 * new device and the primary exchange sealed messages, and the multi-device send. The relay checks the list's
 * signature against the account identity (so it stores no junk) but cannot make one: contacts verify the list
 * themselves, against the identity they pinned, and the relay cannot add a device to an account.
 * @module
 */
import { randomBytes } from 'node:crypto'
import {
  type ClientBodyOf,
  MAX_DEVICES,
  ParleyError,
  verifyDeviceList,
  wireErrorFrom,
} from '@parley/protocol'
import { RELAY_CRYPTO } from '../internal/nodeVerify.js'
import type { RendezvousSide } from '../Store.js'
import { publishEphemeral } from './ephemeral.js'
import { refuseFull, requireEnvelope } from './mailboxGuard.js'
import type { Caller, DeviceScope } from './scope.js'
import {
  type AnonymousScope,
  chargeUnidentified,
  chargeUnidentifiedBytes,
  deliveryTokenOpens,
} from './unidentified.js'
import { charge, deviceGone, type Reply, requireBytes } from './util.js'

/** Largest sealed message one side of a rendezvous takes (a link grant holds a device list and a number). */
export const MAX_RENDEZVOUS_MESSAGE_BYTES = 16 * 1024

/** The caller's device, when it is the account's primary; FORBIDDEN for a linked device. */
async function requirePrimary(scope: DeviceScope, what: string) {
  const { address, deviceId } = scope.device
  const device = await scope.ctx.store.getDevice(address, deviceId)
  if (!device) throw deviceGone()
  if (!device.primary) throw new ParleyError('FORBIDDEN', `only the account's primary device may ${what}`)
  return device
}

/**
 * `PublishDeviceList` → `DeviceListPublished`. Only the primary may publish; the list must verify against the
 * account identity, be for this address, name the caller as its primary and carry a higher version than the
 * stored one. The store then adds and removes linked devices to match, and every removed device's connections
 * are told and closed.
 */
export async function publishDeviceList(
  scope: DeviceScope,
  request: ClientBodyOf<'publishDeviceList'>,
): Promise<Reply> {
  const { store, fanout, config, metrics } = scope.ctx
  const primary = await requirePrimary(scope, 'publish the device list')
  const { address, addressHex, deviceId } = scope.device
  const bytes = request.deviceList
  if (bytes.length === 0) throw new ParleyError('BAD_REQUEST', 'device_list is empty')
  let list: ReturnType<typeof verifyDeviceList>
  try {
    list = verifyDeviceList(bytes, { identityKey: primary.key, address }, RELAY_CRYPTO)
  } catch (cause) {
    metrics.deviceLists.inc({ outcome: 'refused' })
    throw new ParleyError('BAD_REQUEST', 'the device list does not verify against the account identity', {
      cause,
    })
  }
  if (list.primaryDeviceId !== deviceId) {
    metrics.deviceLists.inc({ outcome: 'refused' })
    throw new ParleyError('BAD_REQUEST', "the device list's primary is not this device")
  }
  const result = await store.putDeviceList({
    address,
    primaryDeviceId: deviceId,
    version: list.version,
    list: bytes,
    linked: list.devices.filter((d) => d.deviceId !== deviceId).map((d) => ({ ...d })),
    maxLinked: config.maxLinkedDevices,
    nowMs: Date.now(),
  })
  switch (result.status) {
    case 'not_found':
      metrics.deviceLists.inc({ outcome: 'refused' })
      throw deviceGone()
    case 'stale_version':
      metrics.deviceLists.inc({ outcome: 'refused' })
      throw new ParleyError('CONFLICT', `the stored device list has version ${result.currentVersion}`)
    case 'over_limit':
      metrics.deviceLists.inc({ outcome: 'refused' })
      throw new ParleyError('TOO_LARGE', `an account has at most ${config.maxLinkedDevices} linked devices`)
    case 'bad_device_id':
      metrics.deviceLists.inc({ outcome: 'refused' })
      throw new ParleyError(
        'CONFLICT',
        `device ${result.deviceId} reuses an id or changes a kept device's key; new devices take ids above every id used`,
      )
    case 'stored':
      metrics.deviceLists.inc({ outcome: 'stored' })
      if (result.added.length > 0) metrics.linkedDevices.inc({ change: 'added' }, result.added.length)
      if (result.removed.length > 0) metrics.linkedDevices.inc({ change: 'removed' }, result.removed.length)
      for (const removed of result.removed)
        await fanout.publish(addressHex, { kind: 'removed', deviceId: removed })
      scope.ctx.log.info(
        { conn: scope.id, added: result.added.length, removed: result.removed.length },
        'device list published',
      )
      return { deviceListPublished: { version: list.version } }
  }
}

/**
 * `DeviceListQuery` → `DeviceListResult`: the account's newest signed list as it was published (empty when it
 * never published one: the primary alone) and its primary's id. Charged to the bundle quota: it is the first
 * step of every new session.
 */
export async function deviceListQuery(
  scope: DeviceScope,
  request: ClientBodyOf<'deviceListQuery'>,
): Promise<Reply> {
  const address = requireBytes(request.address, 32, 'address')
  await charge(scope, 'bundle', `bundle:acct:${scope.device.quotaId}`, 1, scope.ctx.policies.bundle)
  const set = await scope.ctx.store.deviceSet(address)
  if (!set) throw new ParleyError('NOT_FOUND', 'no account at this address')
  const stored = await scope.ctx.store.getDeviceList(address)
  return {
    deviceListResult: { deviceList: stored?.list ?? new Uint8Array(), primaryDeviceId: set.primaryDeviceId },
  }
}

/** `OpenRendezvous` → `RendezvousOpened`: a fresh rendezvous for one link, opened by the primary. */
export async function openRendezvous(scope: DeviceScope): Promise<Reply> {
  await requirePrimary(scope, 'link a device')
  await charge(scope, 'links', `links:acct:${scope.device.quotaId}`, 1, scope.ctx.policies.links)
  const id = new Uint8Array(randomBytes(16))
  const ttlSeconds = scope.ctx.config.linkTtlSeconds
  if (!(await scope.ctx.store.openRendezvous(id, scope.device.address, Date.now() + ttlSeconds * 1000))) {
    throw new ParleyError('INTERNAL', 'rendezvous id collision')
  }
  scope.ctx.metrics.rendezvous.inc({ event: 'opened' })
  return { rendezvousOpened: { rendezvousId: id, expiresInSeconds: ttlSeconds } }
}

function sideOf(value: number): RendezvousSide {
  if (value === 1) return 'primary'
  if (value === 2) return 'device'
  throw new ParleyError('BAD_REQUEST', 'side must be PRIMARY or DEVICE')
}

/**
 * Before authentication, rendezvous requests are charged to the source network: a new device polls for its
 * answer, and no one else has a reason to touch a rendezvous.
 */
async function chargeUnauthenticated(conn: Caller): Promise<void> {
  if (conn.device) return
  await charge(conn, 'rendezvous_network', `rdv:net:${conn.network}`, 1, conn.ctx.policies.rendezvousNetwork)
}

/**
 * `RendezvousPost` → `RendezvousPosted`. The new device's request (side PRIMARY) may come on any connection (it
 * has no account yet), once per rendezvous; the primary's answer (side DEVICE) only from the account that
 * opened it. A second post to a side is CONFLICT (a link code used twice); an unknown or expired rendezvous is
 * NOT_FOUND.
 */
export async function rendezvousPost(conn: Caller, request: ClientBodyOf<'rendezvousPost'>): Promise<Reply> {
  const id = requireBytes(request.rendezvousId, 16, 'rendezvous_id')
  const side = sideOf(request.side)
  const sealed = request.sealed
  if (sealed.length === 0) throw new ParleyError('BAD_REQUEST', 'sealed is empty')
  if (sealed.length > MAX_RENDEZVOUS_MESSAGE_BYTES) {
    throw new ParleyError(
      'TOO_LARGE',
      `a rendezvous message is at most ${MAX_RENDEZVOUS_MESSAGE_BYTES} bytes`,
    )
  }
  if (side === 'device' && !conn.device) throw new ParleyError('UNAUTHENTICATED', 'authenticate first')
  await chargeUnauthenticated(conn)
  const result = await conn.ctx.store.postRendezvous(
    id,
    side,
    sealed,
    conn.device?.address ?? null,
    Date.now(),
  )
  const metrics = conn.ctx.metrics
  switch (result) {
    case 'posted':
      metrics.rendezvous.inc({ event: 'posted' })
      return { rendezvousPosted: {} }
    case 'taken':
      metrics.rendezvous.inc({ event: 'taken' })
      throw new ParleyError('CONFLICT', 'this link code was used already')
    case 'forbidden':
      throw new ParleyError('FORBIDDEN', 'only the account that opened the rendezvous answers it')
    case 'not_found':
      metrics.rendezvous.inc({ event: 'missing' })
      throw new ParleyError('NOT_FOUND', 'no such rendezvous; it may have expired')
  }
}

/**
 * `RendezvousRead` → `RendezvousMessage`: a side's sealed message, or empty while there is none. Side PRIMARY only
 * for the account that opened the rendezvous; side DEVICE for anyone with the id, and reading its message ends
 * the rendezvous.
 */
export async function rendezvousRead(conn: Caller, request: ClientBodyOf<'rendezvousRead'>): Promise<Reply> {
  const id = requireBytes(request.rendezvousId, 16, 'rendezvous_id')
  const side = sideOf(request.side)
  if (side === 'primary' && !conn.device) throw new ParleyError('UNAUTHENTICATED', 'authenticate first')
  await chargeUnauthenticated(conn)
  const sealed = await conn.ctx.store.readRendezvous(id, side, conn.device?.address ?? null, Date.now())
  if (sealed) conn.ctx.metrics.rendezvous.inc({ event: 'read' })
  return { rendezvousMessage: { sealed: sealed ?? new Uint8Array() } }
}

/** The parts of the relay a multi-device send uses, identified or not. */
type SendParts = Pick<AnonymousScope, 'store' | 'fanout' | 'config' | 'metrics' | 'disk'>

/**
 * The checks of a `MultiSend` that need no store: sizes, each device once, at most {@link MAX_DEVICES} envelopes.
 * With `shared` (a `MultiRecipientSend`'s), each `DeviceEnvelope.envelope` is a device's part of a message sealed
 * once for many devices, and its copy is the part followed by the shared bytes: checked in place and charged as
 * that whole envelope, and joined only when stored.
 */
function checkMultiSend(parts: SendParts, request: ClientBodyOf<'multiSend'>, shared?: Uint8Array) {
  const address = requireBytes(request.recipientAddress, 32, 'recipient_address')
  const messageId = requireBytes(request.messageId, 16, 'message_id')
  const envelopes = request.envelopes
  if (envelopes.length === 0) throw new ParleyError('BAD_REQUEST', 'no envelopes')
  if (envelopes.length > MAX_DEVICES) {
    throw new ParleyError('TOO_LARGE', `at most ${MAX_DEVICES} envelopes, one per device`)
  }
  const copies = envelopes.map((e) => ({
    deviceId: e.deviceId,
    envelope: requireEnvelope(parts, e.envelope, shared),
  }))
  const ids = new Set(copies.map((c) => c.deviceId))
  if (ids.size !== copies.length || ids.has(0)) {
    throw new ParleyError('BAD_REQUEST', 'each envelope names a different device, none 0')
  }
  const sharedBytes = shared?.length ?? 0
  return {
    address,
    messageId,
    copies,
    shared,
    bytes: copies.reduce((n, c) => n + c.envelope.length + sharedBytes, 0),
  }
}

/** One copy as stored: the device's part followed by the shared bytes, when the message was sealed once. */
function whole(part: Uint8Array, shared: Uint8Array | undefined): Uint8Array {
  if (shared === undefined) return part
  const out = new Uint8Array(part.length + shared.length)
  out.set(part)
  out.set(shared, part.length)
  return out
}

function stale(parts: SendParts, version: number): never {
  parts.metrics.multiSends.inc({ outcome: 'stale' })
  throw new ParleyError('STALE_DEVICES', 'the recipient has other devices; fetch its device list', {
    deviceListVersion: version,
  })
}

/**
 * Stores every copy, once the set of devices it names is exactly the account's (less the sender's own device
 * when the sender writes to its own account) at the list version the sender encrypted to. Copies are idempotent
 * by device and message id, so a retry after a partial failure stores each copy once. An ephemeral message's
 * copies, after the same check, go to the fan-out and are stored nowhere.
 */
async function storeCopies(
  parts: SendParts,
  checked: ReturnType<typeof checkMultiSend>,
  listVersion: number,
  senderDevice: number | null,
  notFound: () => never,
  ephemeral: boolean,
): Promise<Reply> {
  const { address, messageId, shared } = checked
  const set = await parts.store.deviceSet(address)
  if (!set) return notFound()
  const expected = [set.primaryDeviceId, ...set.linkedDeviceIds].filter((id) => id !== senderDevice)
  const named = new Set(checked.copies.map((c) => c.deviceId))
  if (
    listVersion !== set.listVersion ||
    expected.length !== named.size ||
    expected.some((id) => !named.has(id))
  ) {
    return stale(parts, set.listVersion)
  }
  // Joined only now, for this recipient alone.
  const copies = checked.copies.map((c) => ({ deviceId: c.deviceId, envelope: whole(c.envelope, shared) }))
  if (ephemeral) {
    parts.metrics.multiSends.inc({ outcome: 'ephemeral' })
    return publishEphemeral(parts, address, messageId, copies)
  }
  const receivedAtMs = Date.now()
  const results = await Promise.all(
    copies.map((c) =>
      parts.store.enqueue({
        address,
        deviceId: c.deviceId,
        messageId,
        envelope: c.envelope,
        receivedAtMs,
        maxMessages: parts.config.maxMailboxMessages,
        maxBytes: parts.config.maxMailboxBytes,
      }),
    ),
  )
  const hex = Buffer.from(address).toString('hex')
  for (const [i, r] of results.entries()) {
    if (r.status === 'stored') {
      parts.metrics.accepted.inc()
      await parts.fanout.publish(hex, { kind: 'mail', deviceId: copies[i]!.deviceId, seq: r.seq })
    }
  }
  // A device removed between the check and the write: the sender's list is stale now.
  if (results.some((r) => r.status === 'not_found' || r.status === 'stale_device')) {
    return stale(parts, (await parts.store.deviceSet(address))?.listVersion ?? 0)
  }
  const full = results.find((r) => r.status === 'full')
  if (full?.status === 'full') {
    parts.metrics.multiSends.inc({ outcome: 'refused' })
    return refuseFull(parts, full.limit)
  }
  parts.metrics.multiSends.inc({ outcome: 'stored' })
  return { messageAccepted: { messageId } }
}

/** `MultiSend` on an authenticated connection: the account's send quotas pay for every copy. */
export async function multiSendIdentified(
  scope: DeviceScope,
  request: ClientBodyOf<'multiSend'>,
): Promise<Reply> {
  const { ctx, device } = scope
  const parts: SendParts = ctx
  const checked = checkMultiSend(parts, request)
  if (request.deliveryToken.length > 0) {
    throw new ParleyError('BAD_REQUEST', 'a delivery token is for connections that never authenticated')
  }
  if (await ctx.disk.low()) refuseFull(parts, 'disk')
  // One message, however many devices it is copied to (at most MAX_DEVICES): the byte quota weighs the copies.
  await charge(scope, 'send', `send:acct:${device.quotaId}`, 1, ctx.policies.send)
  await charge(scope, 'send_bytes', `sendb:acct:${device.quotaId}`, checked.bytes, ctx.policies.sendBytes)
  const own = Buffer.compare(Buffer.from(checked.address), Buffer.from(device.address)) === 0
  return storeCopies(
    parts,
    checked,
    request.deviceListVersion,
    own ? device.deviceId : null,
    () => {
      throw new ParleyError('NOT_FOUND', 'no account at this address')
    },
    request.ephemeral,
  )
}

/**
 * `MultiRecipientSend` (a group message) on a connection that never authenticated: every recipient checked for
 * shape first (a malformed one refuses the request, nothing stored), then each sent as its own unidentified
 * `MultiSend` — its token, its charges, its device list, its mailboxes — in the request's order, a refusal
 * answering that recipient only. The relay keeps nothing that ties the recipients together: each has its own
 * message id, and nothing of the request outlives it.
 */
export async function multiRecipientSend(
  scope: AnonymousScope,
  request: ClientBodyOf<'multiRecipientSend'>,
): Promise<Reply> {
  const recipients = request.recipients
  if (recipients.length === 0) throw new ParleyError('BAD_REQUEST', 'no recipients')
  if (recipients.length > scope.config.maxRecipientsPerSend) {
    throw new ParleyError('TOO_LARGE', `at most ${scope.config.maxRecipientsPerSend} recipients in one send`)
  }
  // Its size is checked with each part (requireEnvelope): a copy is the part and the shared bytes together.
  const shared = request.shared !== undefined && request.shared.length > 0 ? request.shared : undefined
  const checked = recipients.map((r) => ({
    entry: checkMultiSend(scope, r, shared),
    token: requireBytes(r.deliveryToken, 32, 'delivery_token'),
  }))
  const addresses = new Set(checked.map((c) => Buffer.from(c.entry.address).toString('hex')))
  if (addresses.size !== checked.length) throw new ParleyError('BAD_REQUEST', 'each recipient once')
  const ephemeral = recipients[0]!.ephemeral
  if (recipients.some((r) => r.ephemeral !== ephemeral)) {
    throw new ParleyError('BAD_REQUEST', 'ephemeral must be the same for every recipient')
  }
  if (!ephemeral && (await scope.disk.low())) refuseFull(scope, 'disk')
  const outcomes: { messageId: Uint8Array; error?: ReturnType<typeof wireErrorFrom> }[] = []
  for (const [i, { entry, token }] of checked.entries()) {
    try {
      await unidentifiedCopies(scope, entry, token, recipients[i]!.deviceListVersion, ephemeral)
      scope.metrics.multiRecipients.inc({ outcome: 'stored' })
      outcomes.push({ messageId: entry.messageId })
    } catch (err) {
      // Only what is this recipient's answer; anything else (the store down) fails the request.
      if (!ParleyError.is(err) || err.code === 'INTERNAL' || err.code === 'UNAVAILABLE') throw err
      scope.metrics.multiRecipients.inc({ outcome: 'refused' })
      outcomes.push({ messageId: entry.messageId, error: wireErrorFrom(err) })
    }
  }
  return { multiRecipientAccepted: { outcomes } }
}

/**
 * `MultiSend` on a connection that never authenticated: authorised by the recipient's delivery token, charged
 * to the source network first and the recipient next, as `UnidentifiedSend`. One answer (FORBIDDEN) for no
 * account, no token and a wrong token.
 */
export async function multiSendUnidentified(
  scope: AnonymousScope,
  request: ClientBodyOf<'multiSend'>,
): Promise<Reply> {
  const checked = checkMultiSend(scope, request)
  const token = requireBytes(request.deliveryToken, 32, 'delivery_token')
  if (await scope.disk.low()) refuseFull(scope, 'disk')
  return unidentifiedCopies(scope, checked, token, request.deviceListVersion, request.ephemeral)
}

/** The copies of one unidentified `MultiSend` (or one recipient of a `MultiRecipientSend`), checked and stored. */
async function unidentifiedCopies(
  scope: AnonymousScope,
  checked: ReturnType<typeof checkMultiSend>,
  token: Uint8Array,
  listVersion: number,
  ephemeral: boolean,
): Promise<Reply> {
  // Per message, as UnidentifiedSend: a contact with five devices is no cheaper to flood than one with one, and
  // no dearer to write to.
  await chargeUnidentified(scope, 'network', scope.network)
  const forbidden = (): never => {
    scope.metrics.multiSends.inc({ outcome: 'refused' })
    throw new ParleyError('FORBIDDEN', 'the delivery token is not valid for this recipient')
  }
  if (!(await deliveryTokenOpens(scope.store, checked.address, token))) return forbidden()
  await chargeUnidentified(scope, 'recipient', scope.recipientQuotaId(checked.address))
  if (!ephemeral) await chargeUnidentifiedBytes(scope, checked.bytes)
  return storeCopies(scope, checked, listVersion, null, forbidden, ephemeral)
}
