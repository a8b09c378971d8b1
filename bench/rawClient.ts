// A lean v1 protocol client for the benches (no per-frame timers or logs): request/response by request id,
// pushes to a callback, and the activation / authentication steps a device runs.
import {
  activationPayload,
  authPayload,
  type ClientFrameInput,
  decodeServerFrame,
  encodeClientFrame,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  parleyErrorFromWire,
  type ServerFrame,
} from '@parley/protocol'
import { Identity, prekeys } from '@parley/relay/testing'
import WebSocket from 'ws'

type Body = Omit<ClientFrameInput, 'requestId'>

export class RawClient {
  readonly ws: WebSocket
  nonce: Uint8Array = new Uint8Array(32)
  /** The relay's trust root from ServerHello (signed into authentication). */
  trustRoot: Uint8Array = new Uint8Array(32)
  onPush: (f: ServerFrame) => void = () => {}
  bytesIn = 0
  bytesOut = 0
  #next = 1
  readonly #waiting = new Map<number, (f: ServerFrame) => void>()

  private constructor(ws: WebSocket) {
    this.ws = ws
    ws.on('message', (data: Buffer) => {
      this.bytesIn += data.length
      const f = decodeServerFrame(new Uint8Array(data.buffer, data.byteOffset, data.length))
      const w = f.requestId ? this.#waiting.get(f.requestId) : undefined
      if (w) {
        this.#waiting.delete(f.requestId)
        w(f)
      } else this.onPush(f)
    })
  }

  static async open(url: string): Promise<RawClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    const c = new RawClient(ws)
    const hello = await c.request({ hello: { protocolMajor: PROTOCOL_MAJOR, protocolMinor: PROTOCOL_MINOR } })
    c.nonce = hello.serverHello!.authNonce ?? new Uint8Array(32)
    c.trustRoot = hello.serverHello!.trustRoot ?? new Uint8Array(32)
    return c
  }

  /** Sends without waiting; `then` gets the answer. */
  send(body: Body, then?: (f: ServerFrame) => void): void {
    const requestId = this.#next++
    if (then) this.#waiting.set(requestId, then)
    const bytes = encodeClientFrame({ requestId, ...body } as ClientFrameInput)
    this.bytesOut += bytes.length
    this.ws.send(bytes)
  }

  request(body: Body): Promise<ServerFrame> {
    return new Promise((resolve, reject) =>
      this.send(body, (f) => (f.body === 'error' ? reject(parleyErrorFromWire(f.error!)) : resolve(f))),
    )
  }

  close(): void {
    this.ws.close()
  }
}

export interface Device {
  identity: Identity
  address: Uint8Array
  deviceId: number
}

/** Activates `e164` on an open connection (codes from the webhook inbox); the connection ends authenticated. */
export async function activate(c: RawClient, e164: string, code: (e164: string) => Promise<string>) {
  const identity = new Identity()
  const started = (await c.request({ activationStart: { phoneNumber: e164, consent: true } }))
    .activationStarted!
  const a = (
    await c.request({
      activationConfirm: {
        activationId: started.activationId,
        code: await code(e164),
        identityKey: identity.publicKey,
        identitySignature: identity.sign(activationPayload(started.activationId!, identity.publicKey)),
        prekeys: prekeys(identity, { oneTime: 1, kem: 1 }),
      },
    })
  ).activated!
  return { identity, address: a.address!, deviceId: a.deviceId! } satisfies Device
}

/** Opens a connection authenticated as `device`. */
export async function login(url: string, device: Device): Promise<RawClient> {
  const c = await RawClient.open(url)
  await c.request({
    authenticate: {
      address: device.address,
      deviceId: device.deviceId,
      signature: device.identity.sign(authPayload(c.nonce, device.address, device.deviceId, c.trustRoot)),
    },
  })
  return c
}
