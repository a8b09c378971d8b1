/**
 * A {@link Transport} that records every connection attempt and every frame sent, for egress tests.
 * @module
 */
import type { Transport, TransportSocket } from '../Transport.js'

/** A transport that keeps what went out: see {@link recordingTransport}. */
export interface RecordingTransport extends Transport {
  /** The URL of every connection attempt, in order (refused ones included). */
  opened: string[]
  /** A copy of every frame sent, in order, over all connections. */
  sent: Uint8Array[]
}

/**
 * Wraps a transport (or refuses every connection when there is none), recording what goes out.
 * @param inner - the transport that carries the frames (e.g. a `FakeRelay`'s); none: every `open()` rejects
 * @returns the recording transport
 * @example
 * const transport = recordingTransport()
 * const client = await ParleyClient.create({ transport, ... })
 * expect(transport.opened).toEqual([]) // nothing left the device
 */
export function recordingTransport(inner?: Transport): RecordingTransport {
  const t: RecordingTransport = {
    opened: [],
    sent: [],
    async open(url: string, signal?: AbortSignal): Promise<TransportSocket> {
      t.opened.push(url)
      if (inner === undefined) throw new Error('no network in this test')
      const socket = await inner.open(url, signal)
      const wrapped: TransportSocket = {
        send: (data) => {
          t.sent.push(data.slice())
          socket.send(data)
        },
        close: (code, reason) => socket.close(code, reason),
        onMessage: null,
        onClose: null,
      }
      socket.onMessage = (d) => wrapped.onMessage?.(d)
      socket.onClose = (i) => wrapped.onClose?.(i)
      return wrapped
    },
  }
  return t
}
