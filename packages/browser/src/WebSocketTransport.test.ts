import { describe, expect, it } from 'vitest'
import { WebSocketTransport } from './WebSocketTransport.js'

/** A stand-in for the browser's WebSocket: the test drives its events. */
class FakeWebSocket {
  static last: FakeWebSocket
  binaryType = 'blob'
  sent: Uint8Array[] = []
  closed: [number | undefined, string | undefined] | null = null
  onopen: (() => void) | null = null
  onerror: (() => void) | null = null
  onclose: ((e: { code: number; reason: string }) => void) | null = null
  onmessage: ((e: { data: unknown }) => void) | null = null
  constructor(readonly url: string) {
    FakeWebSocket.last = this
  }
  send(data: Uint8Array) {
    this.sent.push(data)
  }
  close(code?: number, reason?: string) {
    this.closed = [code, reason]
  }
}

const transport = (timeout = 1000) =>
  new WebSocketTransport({
    WebSocket: FakeWebSocket as unknown as typeof WebSocket,
    handshakeTimeoutMs: timeout,
  })

describe('WebSocketTransport', () => {
  it('opens with binaryType arraybuffer and carries binary frames both ways', async () => {
    const opening = transport().open('ws://relay/v1/ws')
    const ws = FakeWebSocket.last
    expect(ws.binaryType).toBe('arraybuffer')
    ws.onopen?.()
    const socket = await opening
    const got: Uint8Array[] = []
    socket.onMessage = (d) => got.push(d)
    ws.onmessage?.({ data: new Uint8Array([1, 2, 3]).buffer })
    ws.onmessage?.({ data: 'a text frame is ignored' })
    expect(got).toEqual([new Uint8Array([1, 2, 3])])
    socket.send(new Uint8Array([9]))
    expect(ws.sent).toEqual([new Uint8Array([9])])
    let closedWith: unknown
    socket.onClose = (info) => (closedWith = info)
    ws.onclose?.({ code: 1006, reason: '' })
    expect(closedWith).toEqual({ code: 1006, reason: '' })
  })

  it('rejects when the connection fails before opening', async () => {
    const opening = transport().open('ws://relay/v1/ws')
    FakeWebSocket.last.onerror?.()
    FakeWebSocket.last.onclose?.({ code: 1006, reason: '' })
    await expect(opening).rejects.toThrow(/could not connect.*1006/)
  })

  it('gives up after the handshake timeout and closes the attempt', async () => {
    const opening = transport(20).open('ws://relay/v1/ws')
    const ws = FakeWebSocket.last
    await expect(opening).rejects.toThrow(/within 20 ms/)
    expect(ws.closed).not.toBeNull()
  })

  it('aborts an attempt when the signal fires, and refuses an already aborted signal', async () => {
    const controller = new AbortController()
    const opening = transport().open('ws://relay/v1/ws', controller.signal)
    controller.abort()
    await expect(opening).rejects.toThrow(/aborted/)
    await expect(transport().open('ws://relay/v1/ws', AbortSignal.abort())).rejects.toThrow(/aborted/)
  })

  it('maps close codes a page may not send to 1000 and cuts long reasons to 123 bytes', async () => {
    const opening = transport().open('ws://relay/v1/ws')
    const ws = FakeWebSocket.last
    ws.onopen?.()
    const socket = await opening
    socket.close(1001, 'é'.repeat(100))
    expect(ws.closed![0]).toBe(1000)
    expect(new TextEncoder().encode(ws.closed![1]).length).toBeLessThanOrEqual(123)
    socket.close(4000, 'app')
    expect(ws.closed).toEqual([4000, 'app'])
  })

  it('rejects a bad timeout at construction', () => {
    expect(() => new WebSocketTransport({ handshakeTimeoutMs: 0 })).toThrow(RangeError)
  })
})
