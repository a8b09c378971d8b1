/**
 * WebSocket close codes the relay uses, in a module of their own so that handlers can close a connection without
 * importing the connection class (which imports the handlers).
 * @module
 */

/** WebSocket close codes the relay uses. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  policy: 1008,
  tooLarge: 1009,
  internal: 1011,
  /** Reconnect: the relay's OPRF key rotated, and a new ServerHello announces it. */
  serviceRestart: 1012,
  /** The device was replaced by a newer activation, or the account was erased. */
  revoked: 4001,
} as const
