// A Transport that records every connection attempt and every frame sent, for egress tests. Test-only.
import type { Transport, TransportSocket } from '../Transport.js'

export interface RecordingTransport extends Transport {
  opened: string[]
  sent: Uint8Array[]
}

/** Wraps `inner` (or refuses every connection when there is none), recording what goes out. */
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
