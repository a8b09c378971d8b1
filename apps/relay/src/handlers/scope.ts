/**
 * What a frame handler may see and do. Three scopes, one per kind of route (handlers/index.ts):
 * - {@link Caller}: the connection itself, for the few frames that change its state before it is tied to an
 *   account (hello, authenticate, activation). `Connection` implements it; handlers import this interface,
 *   never the class, so the handlers and the connection do not import each other.
 * - {@link DeviceScope}: an authenticated request — the relay's parts, the caller's device (always set), and the
 *   actions such a request takes. A handler of this type can only be registered as an authenticated route.
 * - `AnonymousScope` (handlers/unidentified.ts): an unidentified send, which must not learn its sender.
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

/** What every handler may use: the relay's parts and where the request came from (never the socket). */
export interface RequestScope {
  /** Connection number, for logs. */
  readonly id: number
  readonly ctx: RelayContext
  /** The source network every IP-based limit aggregates by (IPv4 /24, IPv6 /56 by default). */
  readonly network: string
  /** Whether this is the connection's first refusal in a quota scope (refusals are logged once per scope). */
  firstRefusal(scope: string): boolean
}

/** The connection a handler serves, as the handler sees it. */
export interface Caller extends RequestScope {
  /** The nonce this connection's `Authenticate` must sign; single use. */
  readonly nonce: Uint8Array
  /** The peer's IP address (after `--trust-proxy`). */
  readonly ip: string
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
  /**
   * Ties the connection to the same device at the address its account moved to (a rebind, a number change),
   * keeping its mailbox cursor: the mail moved with its sequence numbers, and pushes go on from where they were.
   */
  move(address: Uint8Array): Promise<void>
  /** Sends a frame now (outside the request/response flow). */
  send(frame: ServerFrameInput): void
  /** Sends an error answer to a request (or, with id 0, a connection-level error). */
  sendError(requestId: number, err: unknown): void
  /** Closes the socket with a close code, counting the reason. */
  close(code: number, reason: string, metricReason?: string): void
  /** Charges acknowledged sequence numbers to the connection's ack budget. */
  chargeAcks(n: number): void
  /** Pushes the mailbox after `afterSeq`; resolves the head sequence number. */
  sync(afterSeq: number): Promise<number>
}

/**
 * An authenticated request: the device it comes from is known, and is all it may act for. Of the connection it
 * keeps only the announced prefix length and the actions such a request takes.
 */
export interface DeviceScope
  extends RequestScope,
    Readonly<Pick<Caller, 'membershipPrefixBits' | 'bind' | 'unbind' | 'move' | 'chargeAcks' | 'sync'>> {
  /** The authenticated device. */
  readonly device: BoundDevice
}

/** The {@link DeviceScope} of a connection while it is bound to `device` (one per binding, built on first use). */
const scopes = new WeakMap<BoundDevice, DeviceScope>()

/**
 * The scope of an authenticated request on `conn`, bound to `device` (its `conn.device`).
 */
export function deviceScope(conn: Caller, device: BoundDevice): DeviceScope {
  let scope = scopes.get(device)
  if (!scope) {
    scope = {
      id: conn.id,
      ctx: conn.ctx,
      network: conn.network,
      device,
      get membershipPrefixBits() {
        return conn.membershipPrefixBits
      },
      firstRefusal: (s) => conn.firstRefusal(s),
      bind: (address, deviceId) => conn.bind(address, deviceId),
      unbind: () => conn.unbind(),
      move: (address) => conn.move(address),
      chargeAcks: (n) => conn.chargeAcks(n),
      sync: (afterSeq) => conn.sync(afterSeq),
    }
    scopes.set(device, scope)
  }
  return scope
}
