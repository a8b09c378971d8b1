// The attacker's tools for the contract tests: a raw protocol connection, the keys of a device read out of its
// own SDK store (an attacker controls its own device completely), and hand-made sealed envelopes.
import { SqliteStore } from '@parley/node'
import {
  authPayload,
  type ClientFrameInput,
  decodeServerFrame,
  encodeClientFrame,
  encodeContent,
  type IdentityKeyPair,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  parleyErrorFromWire,
  prekeyBundleFromWire,
  type ServerFrame,
  Session,
  sealEnvelope,
  signWithIdentity,
} from '@parley/protocol'
import WebSocket from 'ws'

type Body = Omit<ClientFrameInput, 'requestId'>

/** A bare connection: request/response by id, pushes collected. */
export class RawConn {
  readonly pushes: ServerFrame[] = []
  hello!: NonNullable<ServerFrame['serverHello']>
  #next = 1
  readonly #waiting = new Map<number, (f: ServerFrame) => void>()

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const f = decodeServerFrame(new Uint8Array(data.buffer, data.byteOffset, data.length))
      const w = f.requestId ? this.#waiting.get(f.requestId) : undefined
      if (w) {
        this.#waiting.delete(f.requestId)
        w(f)
      } else this.pushes.push(f)
    })
  }

  static async open(url: string): Promise<RawConn> {
    const ws = new WebSocket(`${url}/v1/ws`, { perMessageDeflate: false })
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    const c = new RawConn(ws)
    c.hello = (await c.request({ hello: { protocolMajor: PROTOCOL_MAJOR, protocolMinor: PROTOCOL_MINOR } }))
      .serverHello!
    return c
  }

  request(body: Body): Promise<ServerFrame> {
    const requestId = this.#next++
    return new Promise((resolve, reject) => {
      this.#waiting.set(requestId, (f) =>
        f.body === 'error' ? reject(parleyErrorFromWire(f.error!)) : resolve(f),
      )
      this.ws.send(encodeClientFrame({ requestId, ...body } as ClientFrameInput))
    })
  }

  close(): void {
    this.ws.close()
  }
}

/** What an SDK device keeps about itself (its `account` record and certificate). */
export interface DeviceKeys {
  e164: string
  address: Uint8Array
  deviceId: number
  identity: IdentityKeyPair
  numberSalt: Uint8Array
  deliveryToken: Uint8Array
  certificate: Uint8Array
}

const fromB64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'))
function revive(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value), (_k, v) =>
    v !== null && typeof v === 'object' && typeof v.$b64 === 'string' ? fromB64(v.$b64) : v,
  )
}

/** Reads a (closed) SDK device's own keys out of its store file. */
export async function readDevice(storePath: string): Promise<DeviceKeys> {
  const store = SqliteStore.open(storePath)
  try {
    const account = revive(JSON.parse(new TextDecoder().decode(await store.get('account')))) as DeviceKeys
    const certificate = (await store.get('account/sender-certificate')) ?? new Uint8Array(0)
    return { ...account, certificate }
  } finally {
    await store.close()
  }
}

/** A raw connection authenticated as `device`. */
export async function login(url: string, device: DeviceKeys): Promise<RawConn> {
  const c = await RawConn.open(url)
  await c.request({
    authenticate: {
      address: device.address,
      deviceId: device.deviceId,
      signature: signWithIdentity(
        device.identity.secretKey,
        authPayload(c.hello.authNonce!, device.address, device.deviceId, c.hello.trustRoot!),
      ),
    },
  })
  return c
}

/** What a forged first message claims, and with what it is sealed. */
export interface Forgery {
  /** The identity key that seals (and starts the session): the attacker's own, or a fresh one. */
  sealWith: IdentityKeyPair
  claimAddress: Uint8Array
  claimDevice: number
  certificate: Uint8Array
  /** A stated number and the salt offered to open the certificate's commitment. */
  number?: { e164: string; salt: Uint8Array }
  text: string
}

/**
 * Fetches the victim's prekey bundle on the attacker's connection, starts a session under the claimed
 * address, and sends one sealed first message to the victim. Resolves the message id (hex).
 */
export async function sendForged(conn: RawConn, victimAddress: Uint8Array, f: Forgery): Promise<string> {
  const wire = (await conn.request({ prekeyBundleQuery: { address: victimAddress } })).prekeyBundle!
  const bundle = prekeyBundleFromWire(wire)
  const { session } = Session.initiate(f.sealWith, f.claimAddress, f.claimDevice, bundle)
  const messageId = crypto.getRandomValues(new Uint8Array(16))
  const message = session.encrypt(encodeContent({ messageId, sentAtMs: Date.now(), text: f.text }))
  const envelope = sealEnvelope({
    senderAddress: f.claimAddress,
    senderDeviceId: f.claimDevice,
    senderIdentity: f.sealWith,
    recipientIdentityKey: bundle.identityKey,
    message,
    senderCertificate: f.certificate,
    senderNumber: f.number,
  })
  await conn.request({
    sendMessage: { recipientAddress: victimAddress, recipientDeviceId: bundle.deviceId, messageId, envelope },
  })
  return Buffer.from(messageId).toString('hex')
}

/** A counter from the relay's metrics listener (`metricsUrl`, …/metrics; 0 when absent). */
export async function metric(metricsUrl: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(metricsUrl)).text()
  const escaped = `${name}${labels}`.replace(/[{}"\\]/g, '\\$&')
  const m = new RegExp(`^${escaped} (\\d+)`, 'm').exec(text)
  return Number(m?.[1] ?? 0)
}
