/**
 * Routes a decoded client frame to its handler, enforcing the connection state machine: `Hello` first;
 * before authentication only hello, activation, OPRF evaluation and ping.
 * @module
 */
import { type ClientBody, type ClientFrame, ParleyError } from '@parley/protocol'
import type { Connection } from '../Connection.js'
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
import { authenticate, deactivate, hello, ping } from './session.js'

import type { Reply } from './util.js'

export type { Commit } from './mail.js'
export type { Reply } from './util.js'

/** A frame handler. `frame[frame.body]` is set. */
export type Handler = (conn: Connection, frame: ClientFrame) => Promise<Reply | undefined>

const ROUTES: Record<ClientBody, { auth: boolean; handler: Handler }> = {
  hello: { auth: false, handler: hello },
  ping: { auth: false, handler: ping },
  authenticate: { auth: false, handler: authenticate },
  activationStart: { auth: false, handler: activationStart },
  activationConfirm: { auth: false, handler: activationConfirm },
  oprfEvaluate: { auth: false, handler: oprfEvaluate },
  membershipQuery: { auth: true, handler: membershipQuery },
  prekeyUpload: { auth: true, handler: prekeyUpload },
  prekeyBundleQuery: { auth: true, handler: prekeyBundleQuery },
  prekeyCountQuery: { auth: true, handler: prekeyCountQuery },
  sendMessage: { auth: true, handler: sendMessage },
  ackMessages: { auth: true, handler: ackMessages },
  syncMailbox: { auth: true, handler: syncMailbox },
  deactivate: { auth: true, handler: deactivate },
}

/**
 * Frames whose handling splits into an ordered first half (validation, quota, submitting the store write) and a
 * second half that only awaits durability and builds the reply (see `Connection`: runs of these overlap).
 */
const SPLIT: Partial<Record<ClientBody, (conn: Connection, frame: ClientFrame) => Promise<Commit>>> = {
  sendMessage: admitSendMessage,
  ackMessages: admitAckMessages,
}

/** Whether `frame` may be handled in two halves by {@link admit}. */
export function isSplit(frame: ClientFrame): boolean {
  return Object.hasOwn(SPLIT, frame.body)
}

/** The state-machine checks every frame passes before its handler runs. */
function check(conn: Connection, frame: ClientFrame): void {
  if (frame.requestId === 0) throw new ParleyError('BAD_REQUEST', 'request_id must be non-zero')
  const route = Object.hasOwn(ROUTES, frame.body) ? ROUTES[frame.body] : undefined
  if (!route) throw new ParleyError('UNSUPPORTED', 'unknown frame type')
  if (!conn.helloDone && frame.body !== 'hello' && frame.body !== 'ping') {
    throw new ParleyError('BAD_REQUEST', 'send Hello first')
  }
  if (route.auth && !conn.device) throw new ParleyError('UNAUTHENTICATED', 'authenticate first')
}

/**
 * Handles one frame.
 * @returns the reply body, or undefined when the handler already answered
 * @throws ParleyError for every refusal; anything else is a bug and becomes INTERNAL
 */
export async function dispatch(conn: Connection, frame: ClientFrame): Promise<Reply | undefined> {
  check(conn, frame)
  return ROUTES[frame.body].handler(conn, frame)
}

/**
 * The first half of a frame for which {@link isSplit} holds: the same checks as {@link dispatch}, validation and
 * quota, and the store write submitted. Resolves the second half.
 * @throws ParleyError for every refusal decided before the store write
 */
export async function admit(conn: Connection, frame: ClientFrame): Promise<Commit> {
  check(conn, frame)
  const first = SPLIT[frame.body]
  if (!first) throw new Error(`${frame.body} is not a split request`)
  return first(conn, frame)
}
