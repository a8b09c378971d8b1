/**
 * The fan-out port (docs/architecture.md §7): tells the connection of a device that it has new mail, or that it was
 * replaced or erased. Events carry no message content — the connection reads its mailbox from the
 * {@link Store} — so a Redis pub/sub implementation only moves tiny notices between nodes; the one exception is an
 * ephemeral message's sealed envelope, which is stored nowhere.
 * @module
 */

/** What a device's connections are told. */
export type FanoutEvent =
  /** New mail up to `seq` is in the mailbox. */
  | { kind: 'mail'; deviceId: number; seq: number }
  /** The account was re-activated or erased: close every connection not bound to `keepDeviceId` (0: all). */
  | { kind: 'revoked'; keepDeviceId: number }
  /**
   * The operator banned the account (`parley-relay admin ban`): close every connection, telling it FORBIDDEN —
   * not "replaced", which would make the device forget an account it gets back at `unban`.
   */
  | { kind: 'banned' }
  /** The account's primary removed a linked device from its device list: close that device's connections. */
  | { kind: 'removed'; deviceId: number }
  /**
   * The account moved to another address (its primary changed the number, or rebound it after an OPRF key
   * rotation): close every connection still bound to the old address, asking it to reconnect; it then logs in
   * under the old address and follows the relay's forward to the new one.
   */
  | { kind: 'moved' }
  /**
   * An ephemeral message (`SendMessage.ephemeral`: a typing indicator) for device `deviceId`: pushed by each of
   * its connections that is online now, as a Delivery with seq 0, and stored nowhere. The only event that carries
   * content — a sealed envelope, ciphertext the relay cannot open — because there is no mailbox to read it from.
   */
  | { kind: 'ephemeral'; deviceId: number; messageId: Uint8Array; envelope: Uint8Array }

/** Receives events for one address. */
export type FanoutListener = (event: FanoutEvent) => void

/** The fan-out port. */
export interface Fanout {
  /**
   * Listens for events about an address (hex) until the returned function is called.
   * @returns an unsubscribe function
   */
  subscribe(addressHex: string, listener: FanoutListener): Promise<() => Promise<void>>
  /** Publishes an event to every listener of an address, on every node. */
  publish(addressHex: string, event: FanoutEvent): Promise<void>
  /** Stops delivering events. */
  close(): Promise<void>
  /** Rejects when the fan-out cannot deliver (its backend is unreachable); used by `/readyz`. */
  ping?(): Promise<void>
}

/** In-process {@link Fanout}: enough for a single relay node. */
export class LocalFanout implements Fanout {
  readonly #listeners = new Map<string, Set<FanoutListener>>()

  async subscribe(addressHex: string, listener: FanoutListener): Promise<() => Promise<void>> {
    let set = this.#listeners.get(addressHex)
    if (!set) {
      set = new Set()
      this.#listeners.set(addressHex, set)
    }
    set.add(listener)
    return async () => {
      const current = this.#listeners.get(addressHex)
      if (!current) return
      current.delete(listener)
      if (current.size === 0) this.#listeners.delete(addressHex)
    }
  }

  async publish(addressHex: string, event: FanoutEvent): Promise<void> {
    const set = this.#listeners.get(addressHex)
    if (!set) return
    for (const listener of [...set]) {
      // A listener's failure is its connection's problem; it must not stop delivery to the others.
      try {
        listener(event)
      } catch {}
    }
  }

  /** Number of addresses with listeners (for tests and metrics). */
  get size(): number {
    return this.#listeners.size
  }

  async close(): Promise<void> {
    this.#listeners.clear()
  }
}
