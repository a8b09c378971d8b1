/**
 * What a frame handler may see and do of the connection it serves: the relay context, the caller's state and
 * identity, and the few actions a handler takes on its connection. `Connection` implements it; handlers import
 * this interface, never the class, so the handlers and the connection do not import each other.
 * @module
 */
import type { ServerFrameInput } from '@parley/protocol'
import type { RelayContext } from '../context.js'

/** The device a connection has authenticated as. */
export interface BoundDevice {
  address: Uint8Array
  addressHex: string
  deviceId: number
  /** What the account's abuse counters are filed under (handlers/util.ts `quotaId`). */
  quotaId: string
}

/** The connection a handler serves, as the handler sees it. */
export interface Caller {
  /** Connection number, for logs. */
  readonly id: number
  /** The nonce this connection's `Authenticate` must sign; single use. */
  readonly nonce: Uint8Array
  readonly ctx: RelayContext
  /** The peer's IP address (after `--trust-proxy`). */
  readonly ip: string
  /** The source network every IP-based limit aggregates by (IPv4 /24, IPv6 /56 by default). */
  readonly network: string
  helloDone: boolean
  nonceUsed: boolean
  /** Set by the first activation frame: such a connection is about to be tied to an account. */
  activating: boolean
  /** Set by the first unidentified send: such a connection can never authenticate or activate. */
  anonymous: boolean
  /** Proof-of-work difficulty announced in this connection's `ServerHello`. */
  activationPowBits: number
  /** Membership prefix length announced in this connection's `ServerHello`. */
  membershipPrefixBits: number
  /** The authenticated device, or null. */
  device: BoundDevice | null
  /** Ties the connection to a device (fanout subscription, per-device connection limit). */
  bind(address: Uint8Array, deviceId: number): Promise<void>
  /** Forgets the authenticated device. */
  unbind(): Promise<void>
  /** Sends a frame now (outside the request/response flow). */
  send(frame: ServerFrameInput): void
  /** Sends an error answer to a request (or, with id 0, a connection-level error). */
  sendError(requestId: number, err: unknown): void
  /** Closes the socket with a close code, counting the reason. */
  close(code: number, reason: string, metricReason?: string): void
  /** Whether this is the connection's first refusal in a quota scope (refusals are logged once per scope). */
  firstRefusal(scope: string): boolean
  /** Charges acknowledged sequence numbers to the connection's ack budget. */
  chargeAcks(n: number): void
  /** Pushes the mailbox after `afterSeq`; resolves the head sequence number. */
  sync(afterSeq: number): Promise<number>
}
