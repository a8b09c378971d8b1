// The baseline of the relay benches: a minimal in-memory WebSocket forwarder speaking the same v1 frames, with
// no storage, no crypto, no authentication check and no quotas. Each SendMessage is pushed at once as a Delivery
// to the recipient's socket and answered MessageAccepted. It prints one JSON line with its port.
// Run alone: npx tsx forwarder.ts
import { decodeClientFrame, encodeServerFrame, type ServerFrameInput } from '@parley/protocol'
// `ws` is a dependency of the relay, not of the bench; reached by path so the bench adds no dependency.
import { WebSocketServer } from 'ws'

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
const online = new Map<string, { send(data: Uint8Array): void }>()
const seqs = new Map<string, number>()
const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex')

wss.on('connection', (ws) => {
  let me: string | undefined
  const reply = (frame: ServerFrameInput) => ws.send(encodeServerFrame(frame))
  ws.on('message', (data: Buffer) => {
    const f = decodeClientFrame(new Uint8Array(data.buffer, data.byteOffset, data.length), 1 << 20)
    const requestId = f.requestId
    switch (f.body) {
      case 'hello':
        return reply({
          requestId,
          serverHello: { protocolMajor: 1, protocolMinor: 0, authNonce: new Uint8Array(32) },
        })
      case 'authenticate':
        me = hex(f.authenticate!.address!)
        online.set(me, ws)
        return reply({ requestId, authenticated: { mailboxHeadSeq: 0 } })
      case 'syncMailbox':
        return reply({ requestId, syncDone: { headSeq: seqs.get(me!) ?? 0 } })
      case 'ackMessages':
        return reply({ requestId, acked: { count: f.ackMessages!.seqs?.length ?? 0 } })
      case 'sendMessage': {
        const m = f.sendMessage!
        const to = hex(m.recipientAddress!)
        const seq = (seqs.get(to) ?? 0) + 1
        seqs.set(to, seq)
        online.get(to)?.send(
          encodeServerFrame({
            requestId: 0,
            delivery: { seq, messageId: m.messageId, envelope: m.envelope, receivedAtMs: Date.now() },
          }),
        )
        return reply({ requestId, messageAccepted: { messageId: m.messageId } })
      }
      default:
        return reply({ requestId, pong: {} })
    }
  })
  ws.on('close', () => {
    if (me !== undefined && online.get(me) === ws) online.delete(me)
  })
})
wss.on('listening', () => {
  const { port } = wss.address() as { port: number }
  console.log(JSON.stringify({ msg: 'forwarder listening', port, pid: process.pid }))
})
process.on('SIGTERM', () => process.exit(0))
