/**
 * Routes a decoded client frame to its handler, enforcing the connection state machine: `Hello` first;
 * before authentication only hello, activation and ping; unidentified sends only on a
 * connection that never authenticated (which then never can). Each handler gets the frame's body, typed for
 * its route, and the narrowest scope its route allows (handlers/scope.ts).
 * @module
 */
import {
  type ClientBody,
  type ClientBodyOf,
  type ClientFrame,
  frameBody,
  ParleyError,
} from '@parley/protocol'
import { activationConfirm, activationStart } from './activation.js'
import { blobUploadRequest } from './blobs.js'
import {
  deviceListQuery,
  multiRecipientSend,
  multiSendIdentified,
  multiSendUnidentified,
  openRendezvous,
  publishDeviceList,
  rendezvousPost,
  rendezvousRead,
} from './devices.js'
import { membershipQuery, oprfEvaluate } from './discovery.js'
import {
  ackMessages,
  admitAckMessages,
  admitSendMessage,
  type Commit,
  sendMessage,
  syncMailbox,
} from './mail.js'
import { changeNumber } from './numberChange.js'
import { prekeyBundleQuery, prekeyCountQuery, prekeyUpload } from './prekeys.js'
import { rebindAddress } from './rebind.js'
import { setRegistrationLock } from './registrationLock.js'
import { type Caller, type DeviceScope, deviceScope } from './scope.js'
import {
  authenticate,
  deactivate,
  hello,
  ping,
  refuseOnAnonymous,
  senderCertificateRequest,
  setDeliveryToken,
} from './session.js'
import { type AnonymousScope, unidentifiedSend } from './unidentified.js'
import type { Reply } from './util.js'
import { quotaId } from './util.js'

export type { Commit } from './mail.js'
export type { Reply } from './util.js'

/**
 * A handler of a frame that may come before authentication: it gets the connection, whose state it changes, and
 * the request id (for the one that answers and closes by itself).
 */
export type OpenHandler<B extends ClientBody> = (
  conn: Caller,
  request: ClientBodyOf<B>,
  requestId: number,
) => Promise<Reply | undefined>
/** A handler of an authenticated frame: it gets the device's {@link DeviceScope}, never the connection. */
export type DeviceHandler<B extends ClientBody> = (
  scope: DeviceScope,
  request: ClientBodyOf<B>,
) => Promise<Reply>
/** A handler of an unidentified frame: it gets an {@link AnonymousScope}, so it cannot learn the sender. */
export type UnidentifiedHandler<B extends ClientBody> = (
  scope: AnonymousScope,
  request: ClientBodyOf<B>,
) => Promise<Reply>

/**
 * A route. The kind decides what the handler gets, so a handler written for an authenticated request (it takes
 * a {@link DeviceScope}) cannot be registered as an open route, and an open one never sees a device it was not
 * given: `open` handlers get the connection before authentication, `device` handlers run only once it has
 * authenticated, `anonymous` handlers get an {@link AnonymousScope} and never the connection.
 */
type Route<B extends ClientBody> =
  | { kind: 'open'; handler: OpenHandler<B> }
  | { kind: 'device'; handler: DeviceHandler<B> }
  | { kind: 'anonymous'; handler: UnidentifiedHandler<B> }

const open = <B extends ClientBody>(handler: OpenHandler<B>): Route<B> => ({ kind: 'open', handler })
const device = <B extends ClientBody>(handler: DeviceHandler<B>): Route<B> => ({ kind: 'device', handler })
const anonymous = <B extends ClientBody>(handler: UnidentifiedHandler<B>): Route<B> => ({
  kind: 'anonymous',
  handler,
})

/** Every client body and its route, typed per body. */
const ROUTES: { readonly [B in ClientBody]: Route<B> } = {
  hello: open(hello),
  ping: open(ping),
  authenticate: open(authenticate),
  activationStart: open(activationStart),
  activationConfirm: open(activationConfirm),
  oprfEvaluate: device(oprfEvaluate),
  membershipQuery: device(membershipQuery),
  prekeyUpload: device(prekeyUpload),
  prekeyBundleQuery: device(prekeyBundleQuery),
  prekeyCountQuery: device(prekeyCountQuery),
  sendMessage: device(sendMessage),
  ackMessages: device(ackMessages),
  syncMailbox: device(syncMailbox),
  deactivate: device(deactivate),
  senderCertificateRequest: device(senderCertificateRequest),
  setDeliveryToken: device(setDeliveryToken),
  setRegistrationLock: device(setRegistrationLock),
  rebindAddress: device(rebindAddress),
  changeNumber: device(changeNumber),
  blobUploadRequest: device(blobUploadRequest),
  unidentifiedSend: anonymous(unidentifiedSend),
  multiRecipientSend: anonymous(multiRecipientSend),
  publishDeviceList: device(publishDeviceList),
  deviceListQuery: device(deviceListQuery),
  openRendezvous: device(openRendezvous),
  // A new device links before it has an account; the primary answers authenticated (each handler checks which).
  rendezvousPost: open(rendezvousPost),
  rendezvousRead: open(rendezvousRead),
  // Identified on an authenticated connection, unidentified (with the recipient's delivery token) on one that never
  // authenticated: the same checks either way, and the anonymous path still never sees a sender.
  multiSend: open(async (conn, request) =>
    conn.device
      ? multiSendIdentified(authenticated(conn), request)
      : multiSendUnidentified(anonymousScope(conn), request),
  ),
}

/** The first half of a split request (see {@link admit}). */
type Admit<B extends ClientBody> = (scope: DeviceScope, request: ClientBodyOf<B>) => Promise<Commit>

/**
 * Frames whose handling splits into an ordered first half (validation, quota, submitting the store write) and a
 * second half that only awaits durability and builds the reply (see `Connection`: runs of these overlap).
 */
const SPLIT: { readonly [B in ClientBody]?: Admit<B> } = {
  sendMessage: admitSendMessage,
  ackMessages: admitAckMessages,
}

/**
 * The route of `body` as one type for every body. Each entry of ROUTES is typed for its own body; reading one
 * by a body known only at run time loses that pairing in TypeScript, which this single widening restores
 * (the frame's `body` names the entry and its value together).
 */
const routeOf = (body: ClientBody) => ROUTES[body] as Route<ClientBody>

/** Whether a body is refused `UNAUTHENTICATED` on a connection that has not authenticated. */
export function needsAuthentication(body: ClientBody): boolean {
  return Object.hasOwn(ROUTES, body) && ROUTES[body].kind === 'device'
}

/** Whether `frame` may be handled in two halves by {@link admit}. */
export function isSplit(frame: ClientFrame): boolean {
  return Object.hasOwn(SPLIT, frame.body)
}

/** The state-machine checks every frame passes before its handler runs. */
function check(conn: Caller, frame: ClientFrame): Route<ClientBody> {
  if (frame.requestId === 0) throw new ParleyError('BAD_REQUEST', 'request_id must be non-zero')
  const route = Object.hasOwn(ROUTES, frame.body) ? routeOf(frame.body) : undefined
  if (!route) throw new ParleyError('UNSUPPORTED', 'unknown frame type')
  if (!conn.helloDone && frame.body !== 'hello' && frame.body !== 'ping') {
    throw new ParleyError('BAD_REQUEST', 'send Hello first')
  }
  return route
}

/** The device scope of an authenticated connection: a device route on any other is refused UNAUTHENTICATED. */
function authenticated(conn: Caller): DeviceScope {
  if (!conn.device) throw new ParleyError('UNAUTHENTICATED', 'authenticate first')
  return deviceScope(conn, conn.device)
}

/**
 * The scope of an unidentified request. Refused on a connection that has ever tried to authenticate or
 * activate; from here on the connection is anonymous for good (`refuseOnAnonymous`).
 */
function anonymousScope(conn: Caller): AnonymousScope {
  if (conn.device || conn.nonceUsed || conn.activating) {
    throw new ParleyError('BAD_REQUEST', 'send unidentified mail on a connection that never authenticated')
  }
  conn.anonymous = true
  const { store, fanout, limiter, config, policies, metrics, disk } = conn.ctx
  return {
    store,
    fanout,
    limiter,
    config,
    policies,
    metrics,
    disk,
    network: conn.network,
    recipientQuotaId: (address) => quotaId(conn, address),
  }
}

/**
 * Handles one frame.
 * @returns the reply body, or undefined when the handler already answered
 * @throws ParleyError for every refusal; anything else is a bug and becomes INTERNAL
 */
export async function dispatch(conn: Caller, frame: ClientFrame): Promise<Reply | undefined> {
  const route = check(conn, frame)
  const request = frameBody(frame)
  if (route.kind === 'anonymous') return route.handler(anonymousScope(conn), request)
  if (route.kind === 'device') return route.handler(authenticated(conn), request)
  return route.handler(conn, request, frame.requestId)
}

export { refuseOnAnonymous }

/**
 * The first half of a frame for which {@link isSplit} holds: the same checks as {@link dispatch}, validation and
 * quota, and the store write submitted. Resolves the second half.
 * @throws ParleyError for every refusal decided before the store write
 */
export async function admit(conn: Caller, frame: ClientFrame): Promise<Commit> {
  check(conn, frame)
  const first = SPLIT[frame.body] as Admit<ClientBody> | undefined
  if (!first) throw new Error(`${frame.body} is not a split request`)
  return first(authenticated(conn), frameBody(frame))
}
