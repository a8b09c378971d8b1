/**
 * The Node SDK's {@link Transport}: binary WebSocket frames over the `ws` package.
 * @module
 */
import type { Transport, TransportSocket } from '@parley/client'
import WebSocket from 'ws'

/** Options of {@link WsTransport}. */
export interface WsTransportOptions {
  /** Largest frame accepted from the relay (default 1 MiB; the protocol limit is lower). */
  maxPayload?: number
  /** Connection attempt timeout (default 15 s). */
  handshakeTimeoutMs?: number
}

/**
 * Opens WebSocket connections with `ws`.
 * @example const transport = new WsTransport()
 */
export class WsTransport implements Transport {
  readonly #options: Required<WsTransportOptions>

  /** @param options - payload and handshake limits */
  constructor(options: WsTransportOptions = {}) {
    this.#options = { maxPayload: 1024 * 1024, handshakeTimeoutMs: 15_000, ...options }
  }

  /** @inheritDoc */
  open(url: string, signal?: AbortSignal): Promise<TransportSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        maxPayload: this.#options.maxPayload,
        handshakeTimeout: this.#options.handshakeTimeoutMs,
        perMessageDeflate: false,
      })
      ws.binaryType = 'nodebuffer'
      const onAbort = () => {
        ws.terminate()
        reject(new Error('aborted'))
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      ws.once('error', (err) => {
        signal?.removeEventListener('abort', onAbort)
        reject(err)
      })
      ws.once('open', () => {
        signal?.removeEventListener('abort', onAbort)
        const socket: TransportSocket = {
          send: (data) => ws.send(data),
          close: (code, reason) => ws.close(code, reason),
          onMessage: null,
          onClose: null,
        }
        ws.on('message', (data, isBinary) => {
          if (!isBinary) return
          const buf = data as Buffer
          socket.onMessage?.(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength))
        })
        ws.on('error', () => {
          // 'close' follows every 'error'; the engine learns of the loss there.
        })
        ws.once('close', (code, reason) => socket.onClose?.({ code, reason: reason.toString() }))
        resolve(socket)
      })
    })
  }
}
