/**
 * Routes a decoded client frame to its handler, enforcing the connection state machine: `Hello` first;
 * before authentication only hello, activation and ping; unidentified sends only on a
 * connection that never authenticated (which then never can).
 * @module
 */
import { type ClientBody, type ClientFrame, ParleyError } from '@parley/protocol'
import { networkOf } from '../internal/network.js'
import { activationConfirm, activationStart } from './activation.js'
import { membershipQuery, oprfEvaluate } from './discovery.js'
import {
  ackMessages,
  admitAckMessages,
  admitSendMessage,
  type Commit,
  sendMessage,
  syncMailbox,
} from './mail.js'
import { prekeyBundleQuery, prekeyCountQuery, prekeyUpload } from './prekeys.js'
import { rebindAddress } from './rebind.js'
import { setRegistrationLock } from './registrationLock.js'
import type { Caller } from './scope.js'
import {
  authenticate,
  deactivate,
  hello,
  ping,
  refuseOnAnonymous,
  senderCertificateRequest,
  setDeliveryToken,
} from './session.js'
import { type AnonymousHandler, type AnonymousScope, unidentifiedSend } from './unidentified.js'

import type { Reply } from './util.js'

export type { Commit } from './mail.js'
export type { Reply } from './util.js'

/** A frame handler. `frame[frame.body]` is set. */
export type Handler = (conn: Caller, frame: ClientFrame) => Promise<Reply | undefined>

/**
 * A route: `auth` handlers get the connection (and with `auth: true` only once it is authenticated);
 * `anonymous` handlers get an {@link AnonymousScope} and never the connection, so they cannot learn the sender.
 */
type Route = { auth: boolean; handler: Handler } | { auth: 'anonymous'; handler: AnonymousHandler }

const ROUTES: Record<ClientBody, Route> = {
  hello: { auth: false, handler: hello },
  ping: { auth: false, handler: ping },
  authenticate: { auth: false, handler: authenticate },
  activationStart: { auth: false, handler: activationStart },
  activationConfirm: { auth: false, handler: activationConfirm },
  oprfEvaluate: { auth: true, handler: oprfEvaluate },
  membershipQuery: { auth: true, handler: membershipQuery },
  prekeyUpload: { auth: true, handler: prekeyUpload },
  prekeyBundleQuery: { auth: true, handler: prekeyBundleQuery },
  prekeyCountQuery: { auth: true, handler: prekeyCountQuery },
  sendMessage: { auth: true, handler: sendMessage },
  ackMessages: { auth: true, handler: ackMessages },
  syncMailbox: { auth: true, handler: syncMailbox },
  deactivate: { auth: true, handler: deactivate },
  senderCertificateRequest: { auth: true, handler: senderCertificateRequest },
  setDeliveryToken: { auth: true, handler: setDeliveryToken },
  setRegistrationLock: { auth: true, handler: setRegistrationLock },
  rebindAddress: { auth: true, handler: rebindAddress },
  unidentifiedSend: { auth: 'anonymous', handler: unidentifiedSend },
}

/**
 * Frames whose handling splits into an ordered first half (validation, quota, submitting the store write) and a
 * second half that only awaits durability and builds the reply (see `Connection`: runs of these overlap).
 */
const SPLIT: Partial<Record<ClientBody, (conn: Caller, frame: ClientFrame) => Promise<Commit>>> = {
  sendMessage: admitSendMessage,
  ackMessages: admitAckMessages,
}

/** Whether a body is refused `UNAUTHENTICATED` on a connection that has not authenticated. */
export function needsAuthentication(body: ClientBody): boolean {
  return Object.hasOwn(ROUTES, body) && ROUTES[body].auth === true
}

/** Whether `frame` may be handled in two halves by {@link admit}. */
export function isSplit(frame: ClientFrame): boolean {
  return Object.hasOwn(SPLIT, frame.body)
}

/** The state-machine checks every frame passes before its handler runs. */
function check(conn: Caller, frame: ClientFrame): Route {
  if (frame.requestId === 0) throw new ParleyError('BAD_REQUEST', 'request_id must be non-zero')
  const route = Object.hasOwn(ROUTES, frame.body) ? ROUTES[frame.body] : undefined
  if (!route) throw new ParleyError('UNSUPPORTED', 'unknown frame type')
  if (!conn.helloDone && frame.body !== 'hello' && frame.body !== 'ping') {
    throw new ParleyError('BAD_REQUEST', 'send Hello first')
  }
  if (route.auth === true && !conn.device) throw new ParleyError('UNAUTHENTICATED', 'authenticate first')
  return route
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
  return { store, fanout, limiter, config, policies, metrics, disk, network: networkOf(conn.ip) }
}

/**
 * Handles one frame.
 * @returns the reply body, or undefined when the handler already answered
 * @throws ParleyError for every refusal; anything else is a bug and becomes INTERNAL
 */
export async function dispatch(conn: Caller, frame: ClientFrame): Promise<Reply | undefined> {
  const route = check(conn, frame)
  if (route.auth === 'anonymous') return route.handler(anonymousScope(conn), frame)
  return route.handler(conn, frame)
}

export { refuseOnAnonymous }

/**
 * The first half of a frame for which {@link isSplit} holds: the same checks as {@link dispatch}, validation and
 * quota, and the store write submitted. Resolves the second half.
 * @throws ParleyError for every refusal decided before the store write
 */
export async function admit(conn: Caller, frame: ClientFrame): Promise<Commit> {
  check(conn, frame)
  const first = SPLIT[frame.body]
  if (!first) throw new Error(`${frame.body} is not a split request`)
  return first(conn, frame)
}
