/**
 * Handshake, authentication, ping and deactivation.
 * @module
 */
import {
  authPayload,
  type ClientBodyOf,
  ParleyError,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  verifyIdentitySignature,
} from '@parley/protocol'
import { CloseCode } from '../closeCodes.js'
import { RELAY_CRYPTO } from '../internal/nodeVerify.js'
import { smsGuard } from '../SmsGuard.js'
import { refuseHeld } from './holds.js'
import type { Caller, DeviceScope } from './scope.js'
import { deviceGone, notPrimaryOrGone, type Reply, requireBytes } from './util.js'

/**
 * How finely account activity is recorded for the registration lock's lapse: one write per account per hour at
 * most, finer when the lapse period is short (a 24th of it).
 */
const activityResolutionMs = (lapseSeconds: number) => Math.min(3600_000, (lapseSeconds * 1000) / 24)

/**
 * `Hello` → `ServerHello` with limits, OPRF keys, the auth nonce and the activation proof-of-work difficulty
 * (`--activation-pow-bits`, raised under SMS load; kept on the connection); an unknown major is refused and
 * closed.
 */
export async function hello(
  conn: Caller,
  request: ClientBodyOf<'hello'>,
  requestId: number,
): Promise<Reply | undefined> {
  const h = request
  if (conn.helloDone) throw new ParleyError('BAD_REQUEST', 'Hello was already sent')
  if (h.protocolMajor !== PROTOCOL_MAJOR) {
    conn.sendError(
      requestId,
      new ParleyError(
        'UNSUPPORTED',
        `protocol major ${h.protocolMajor} is not supported; this relay speaks ${PROTOCOL_MAJOR}`,
      ),
    )
    conn.close(CloseCode.protocolError, 'unsupported protocol version', 'version')
    return undefined
  }
  conn.helloDone = true
  const c = conn.ctx.config
  conn.activationPowBits = await smsGuard(conn.ctx).powBits()
  conn.membershipPrefixBits = conn.ctx.membership.bits
  return {
    serverHello: {
      protocolMajor: PROTOCOL_MAJOR,
      protocolMinor: PROTOCOL_MINOR,
      limits: {
        maxFrameBytes: c.maxFrameBytes,
        maxEnvelopeBytes: c.maxEnvelopeBytes,
        maxDiscoveryBatch: c.maxDiscoveryBatch,
        maxMailboxMessages: c.maxMailboxMessages,
        messageTtlSeconds: c.messageTtlSeconds,
        membershipPrefixBits: conn.membershipPrefixBits,
        maxPrekeysPerUpload: c.maxPrekeysPerUpload,
      },
      oprfKeys: conn.ctx.oprf.served().map((k) => ({
        keyId: k.keyId,
        publicKey: k.publicKey,
        retireAtMs: k.retireAtMs,
        certificate: conn.ctx.relayKeys.certifyOprfKey({
          keyId: k.keyId,
          publicKey: k.publicKey,
          validFromMs: k.createdAtMs,
          validUntilMs: k.retireAtMs,
        }),
      })),
      authNonce: conn.nonce,
      serverTimeMs: Date.now(),
      trustRoot: conn.ctx.relayKeys.trustRoot,
      activationPowBits: conn.activationPowBits,
    },
  }
}

/** `Ping` → `Pong`. */
export async function ping(): Promise<Reply> {
  return { pong: { serverTimeMs: Date.now() } }
}

/**
 * `Authenticate`: the device signs `"parley/v1/auth" ‖ nonce ‖ address ‖ device_id`. The nonce is single use:
 * one attempt per connection, so a captured signature cannot be replayed.
 *
 * An address with no account may be one the account moved away from (a number change, a rebind): the store's
 * forward then names where it is now, and a device of the account there — proving its key over the address it
 * knew — is logged in at the new address and told it in `Authenticated.address`. Nobody else learns where a
 * forward leads: the answer without a valid signature is the same UNAUTHENTICATED as for an unknown address.
 */
export async function authenticate(conn: Caller, request: ClientBodyOf<'authenticate'>): Promise<Reply> {
  const a = request
  refuseOnAnonymous(conn)
  if (conn.nonceUsed) throw new ParleyError('UNAUTHENTICATED', 'the auth nonce was already used; reconnect')
  conn.nonceUsed = true
  const named = requireBytes(a.address, 32, 'address')
  const deviceId = a.deviceId
  let address = named
  let account = await conn.ctx.store.getAccount(named)
  if (!account) {
    const forward = await conn.ctx.store.addressForward(named, Date.now())
    if (forward) {
      address = forward
      account = await conn.ctx.store.getAccount(forward)
    } else conn.ctx.metrics.addressForwards.inc({ outcome: 'missing' })
  }
  const unknown = () =>
    new ParleyError('UNAUTHENTICATED', 'unknown device; it may have been replaced, removed or deactivated')
  // The primary, or a linked device of the account's device list: its own device key signs.
  const device = account ? await conn.ctx.store.getDevice(address, deviceId) : null
  if (!account || !device) throw unknown()
  const signature = a.signature
  if (
    !verifyIdentitySignature(
      device.key,
      authPayload(conn.nonce, named, deviceId, conn.ctx.relayKeys.trustRoot),
      signature,
      RELAY_CRYPTO,
    )
  ) {
    // Behind a forward, a wrong signature reads as an unknown address: where the account went stays unsaid.
    throw address === named
      ? new ParleyError('UNAUTHENTICATED', 'the auth signature does not verify')
      : unknown()
  }
  const summary = await conn.ctx.store.accountSummary(address)
  refuseHeld(
    device.primary
      ? summary?.banned
        ? 'banned'
        : summary?.revoked
          ? 'revoked'
          : null
      : await conn.ctx.store.operatorHold(address, deviceId),
  )
  await conn.bind(address, deviceId)
  // Activity, for the registration lock's lapse: written at most about once per interval per account.
  const nowMs = Date.now()
  if (
    device.primary &&
    nowMs - account.lastActiveMs >= activityResolutionMs(conn.ctx.config.registrationLockLapseSeconds)
  ) {
    await conn.ctx.store.touchAccount(address, deviceId, nowMs)
  }
  const head = await conn.ctx.store.mailboxHead(address, deviceId)
  if (summary) conn.ctx.metrics.mailboxDepth.observe(summary.mailboxMessages)
  const moved = address !== named
  if (moved) conn.ctx.metrics.addressForwards.inc({ outcome: 'followed' })
  return { authenticated: { mailboxHeadSeq: head, ...(moved ? { address } : {}) } }
}

/**
 * A connection that carried an unidentified send must never be tied to an account afterwards: that would
 * name the sender of what it already sent.
 */
export function refuseOnAnonymous(conn: Caller): void {
  if (conn.anonymous) {
    throw new ParleyError(
      'BAD_REQUEST',
      'this connection sends unidentified mail; authenticate on another one',
    )
  }
}

/**
 * `SenderCertificateRequest` → `SenderCertificateIssued`: a certificate, valid for hours, of what the relay
 * knows about the authenticated device: address, device id, identity key and the number commitment made at
 * activation.
 */
export async function senderCertificateRequest(scope: DeviceScope): Promise<Reply> {
  const device = scope.device
  const account = await scope.ctx.store.getAccount(device.address)
  const known = account ? await scope.ctx.store.getDevice(device.address, device.deviceId) : null
  if (!account || !known) {
    throw deviceGone()
  }
  // A linked device's certificate names its device key; recipients accept it only for a device of the list the
  // account identity signed, so the relay cannot certify a device of its own into a conversation.
  const { certificate } = scope.ctx.relayKeys.issue(
    {
      address: account.address,
      deviceId: known.deviceId,
      identityKey: known.key,
      numberCommitment: account.numberCommitment,
    },
    scope.ctx.config.senderCertificateTtlSeconds * 1000,
  )
  scope.ctx.metrics.certificatesIssued.inc()
  return { senderCertificateIssued: { certificate } }
}

/** `SetDeliveryToken` → `DeliveryTokenSet`: stores (or clears) the verifier of the account's delivery token. */
export async function setDeliveryToken(
  scope: DeviceScope,
  request: ClientBodyOf<'setDeliveryToken'>,
): Promise<Reply> {
  const device = scope.device
  const verifier = request.verifier
  if (verifier.length !== 0 && verifier.length !== 32) {
    throw new ParleyError(
      'BAD_REQUEST',
      'verifier must be 32 bytes, or empty to turn unidentified delivery off',
    )
  }
  if (!(await scope.ctx.store.setDeliveryVerifier(device.address, device.deviceId, verifier))) {
    throw await notPrimaryOrGone(scope, 'set the delivery token')
  }
  return { deliveryTokenSet: {} }
}

/**
 * `Deactivate`: erases address, keys, prekeys and mail; the connection stays open, unauthenticated. Abuse
 * counters are not reset: they are filed under a keyed hash (`quotaId`), not the address, and vanish by
 * themselves once they have refilled — so deactivating and activating the number again buys no new quota.
 */
export async function deactivate(scope: DeviceScope): Promise<Reply> {
  const device = scope.device
  const known = await scope.ctx.store.getDevice(device.address, device.deviceId)
  if (!known) throw deviceGone()
  // Erasing the account erases every device; a linked device (a browser, say) may not do that to the phone.
  if (!known.primary)
    throw new ParleyError('FORBIDDEN', "only the account's primary device may deactivate it")
  await scope.unbind()
  await scope.ctx.store.deleteAccount(device.address)
  await scope.ctx.fanout.publish(device.addressHex, { kind: 'revoked', keepDeviceId: 0 })
  scope.ctx.log.info({ conn: scope.id }, 'account deactivated')
  return { deactivated: {} }
}
