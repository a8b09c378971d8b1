/**
 * The client engine's network port: something WebSocket-like that carries binary frames both ways.
 * `@parley/node` wires it to `ws`, `@parley/browser` to the browser's `WebSocket`.
 * @module
 */

/** An open, message-oriented duplex connection to the relay. */
export interface TransportSocket {
  /** Sends one binary frame. May throw if the socket is already closed. */
  send(data: Uint8Array): void
  /** Closes the connection; `onClose` fires once afterwards. */
  close(code?: number, reason?: string): void
  /** Called with every binary frame received. */
  onMessage: ((data: Uint8Array) => void) | null
  /** Called once when the connection is gone, whoever closed it. */
  onClose: ((info: { code: number; reason: string }) => void) | null
}

/** Opens connections to the relay. */
export interface Transport {
  /**
   * Opens a connection; resolves once it is open, rejects if it cannot be opened.
   * @param url - the relay's WebSocket URL, e.g. `wss://relay.example/v1/ws`
   * @param signal - aborts the attempt
   */
  open(url: string, signal?: AbortSignal): Promise<TransportSocket>
}
