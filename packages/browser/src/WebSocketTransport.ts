/**
 * The browser SDK's {@link Transport}: binary frames over the platform's `WebSocket`.
 * @module
 */
import type { Transport, TransportSocket } from '@parley/client'

/** Options of {@link WebSocketTransport}. */
export interface WebSocketTransportOptions {
  /** Gives up on a connection attempt after this long (default 15 s; browsers have no such timeout). */
  handshakeTimeoutMs?: number
  /** The `WebSocket` class to use (default: the global one). */
  WebSocket?: typeof WebSocket
}

/** Close codes a page may send: 1000 or the application range (WHATWG WebSockets §close()). */
const sendableCode = (code: number | undefined) =>
  code === 1000 || (code !== undefined && code >= 3000 && code <= 4999) ? code : 1000

/** The close reason is limited to 123 bytes of UTF-8 (RFC 6455 §5.5); cut it rather than throw. */
function shortReason(reason: string | undefined): string {
  if (reason === undefined) return ''
  let out = reason
  while (new TextEncoder().encode(out).length > 123) out = out.slice(0, -1)
  return out
}

/**
 * Opens WebSocket connections with the browser's `WebSocket`, frames as `ArrayBuffer`s.
 * @example const transport = new WebSocketTransport()
 */
export class WebSocketTransport implements Transport {
  readonly #timeoutMs: number
  readonly #WebSocket: typeof WebSocket | undefined

  /**
   * @param options - handshake timeout and an optional `WebSocket` class
   * @throws RangeError for a timeout that is not a positive number
   */
  constructor(options: WebSocketTransportOptions = {}) {
    const timeout = options.handshakeTimeoutMs ?? 15_000
    if (!(typeof timeout === 'number' && timeout > 0)) throw new RangeError('handshakeTimeoutMs must be > 0')
    this.#timeoutMs = timeout
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket
  }

  /** @inheritDoc */
  open(url: string, signal?: AbortSignal): Promise<TransportSocket> {
    const WS = this.#WebSocket
    if (WS === undefined) return Promise.reject(new TypeError('WebSocket is not available here'))
    if (signal?.aborted) return Promise.reject(new Error('aborted'))
    return new Promise((resolve, reject) => {
      let ws: WebSocket
      try {
        ws = new WS(url)
      } catch (err) {
        reject(err)
        return
      }
      ws.binaryType = 'arraybuffer'
      const fail = (err: Error) => {
        cleanup()
        ws.onclose = null
        ws.onerror = null
        ws.onopen = null
        try {
          ws.close()
        } catch {}
        reject(err)
      }
      const onAbort = () => fail(new Error('aborted'))
      const timer = setTimeout(
        () => fail(new Error(`no connection to ${url} within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      )
      const cleanup = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      // The browser hides why a connection failed (it is the same event for a refused port and a bad
      // certificate); the close code that follows is all we get.
      ws.onerror = () => {}
      ws.onclose = (event) => {
        cleanup()
        reject(new Error(`could not connect to ${url} (close code ${event.code})`))
      }
      ws.onopen = () => {
        cleanup()
        const socket: TransportSocket = {
          // Frames are never backed by a SharedArrayBuffer, which is all the DOM typing guards against.
          send: (data) => ws.send(data as Uint8Array<ArrayBuffer>),
          close: (code, reason) => ws.close(sendableCode(code), shortReason(reason)),
          onMessage: null,
          onClose: null,
        }
        ws.onmessage = (event: MessageEvent) => {
          // The protocol is binary only; a text frame is not ours to interpret.
          if (event.data instanceof ArrayBuffer) socket.onMessage?.(new Uint8Array(event.data))
        }
        ws.onerror = () => {
          // 'close' follows every 'error'; the engine learns of the loss there.
        }
        ws.onclose = (event) => socket.onClose?.({ code: event.code, reason: event.reason })
        resolve(socket)
      }
    })
  }
}
