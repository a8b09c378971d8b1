// What tests and benches use to talk to a relay below the SDK: a raw WebSocket client speaking the v1 codecs,
// device keys and prekeys, the activation and login flows, envelope shapes, and an in-process relay. Relay
// processes come from ./relayProcess.ts: spawnDevRelay() and spawnRelay().
import { generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  activationPayload,
  authPayload,
  type ClientFrameInput,
  decodeServerFrame,
  encodeClientFrame,
  kemPrekeyPayload,
  ParleyError,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  parleyErrorFromWire,
  type ServerBodyOf,
  type ServerFrame,
  signedPrekeyPayload,
} from '@parley/protocol'
import WebSocket from 'ws'
import { type RelayOptions, startRelay } from '../src/index.js'
import type { VerificationRequest, Verifier } from '../src/Verifier.js'

/** A fresh temporary data directory. */
export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'parley-relay-test-'))
}

/** An Ed25519 identity (node:crypto; byte-identical to RFC 8032 / @noble/curves). */
export class Identity {
  readonly publicKey: Uint8Array
  readonly #privateKey: KeyObject

  constructor() {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519')
    this.publicKey = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32))
    this.#privateKey = privateKey
  }

  sign(message: Uint8Array): Uint8Array {
    return new Uint8Array(sign(null, message, this.#privateKey))
  }
}

/** A valid prekey upload for an identity. */
export function prekeys(id: Identity, opts: { oneTime?: number; kem?: number; firstId?: number } = {}) {
  const first = opts.firstId ?? 1
  const spk = new Uint8Array(randomBytes(32))
  const kem = new Uint8Array(randomBytes(1184))
  return {
    signedPrekey: { keyId: first, publicKey: spk, signature: id.sign(signedPrekeyPayload(first, spk)) },
    lastResortKemPrekey: { keyId: first, publicKey: kem, signature: id.sign(kemPrekeyPayload(first, kem)) },
    oneTimePrekeys: Array.from({ length: opts.oneTime ?? 3 }, (_, i) => ({
      keyId: first + i,
      publicKey: new Uint8Array(randomBytes(32)),
    })),
    oneTimeKemPrekeys: Array.from({ length: opts.kem ?? 2 }, (_, i) => {
      const pub = new Uint8Array(randomBytes(1184))
      return {
        keyId: first + 100 + i,
        publicKey: pub,
        signature: id.sign(kemPrekeyPayload(first + 100 + i, pub)),
      }
    }),
  }
}

type Body = Omit<ClientFrameInput, 'requestId'>

/** A raw protocol client. */
export class RawClient {
  readonly ws: WebSocket
  readonly pushes: ServerFrame[] = []
  readonly frames: ServerFrame[] = []
  hello: ServerFrame['serverHello'] | undefined
  closeCode: number | undefined
  #nextId = 1
  #waiters = new Map<number, (f: ServerFrame) => void>()
  #pushWaiters: { pred: (f: ServerFrame) => boolean; resolve: (f: ServerFrame) => void }[] = []
  readonly closed: Promise<number>

  private constructor(ws: WebSocket) {
    this.ws = ws
    this.closed = new Promise((resolve) =>
      ws.on('close', (code) => {
        this.closeCode = code
        resolve(code)
      }),
    )
    ws.on('message', (data: Buffer) => {
      const frame = decodeServerFrame(new Uint8Array(data))
      this.frames.push(frame)
      const waiter = frame.requestId ? this.#waiters.get(frame.requestId) : undefined
      if (waiter) {
        this.#waiters.delete(frame.requestId)
        waiter(frame)
        return
      }
      this.pushes.push(frame)
      for (const w of [...this.#pushWaiters]) {
        if (w.pred(frame)) {
          this.#pushWaiters.splice(this.#pushWaiters.indexOf(w), 1)
          w.resolve(frame)
        }
      }
    })
  }

  /**
   * Connects (without Hello).
   * @param options.localAddress - the source address to connect from (e.g. another loopback address, as an
   *   attacker with several addresses would)
   */
  static async connect(url: string, options: { localAddress?: string } = {}): Promise<RawClient> {
    const ws = new WebSocket(url, options.localAddress ? { localAddress: options.localAddress } : undefined)
    ws.binaryType = 'nodebuffer'
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    return new RawClient(ws)
  }

  /** Connects and completes the Hello (`options` as for {@link RawClient.connect}). */
  static async open(url: string, options: { localAddress?: string } = {}): Promise<RawClient> {
    const c = await RawClient.connect(url, options)
    const f = await c.request({ hello: { protocolMajor: PROTOCOL_MAJOR, protocolMinor: PROTOCOL_MINOR } })
    c.hello = f.serverHello!
    return c
  }

  sendRaw(bytes: Uint8Array | string): void {
    this.ws.send(bytes)
  }

  /** Sends a request and resolves the frame answering it (which may be an Error). */
  send(body: Body, requestId = this.#nextId++): Promise<ServerFrame> {
    return this.sendBytes(encodeClientFrame({ requestId, ...body } as ClientFrameInput), requestId)
  }

  /** Sends already encoded bytes (possibly malformed) and resolves the frame answering `requestId`. */
  sendBytes(bytes: Uint8Array, requestId: number): Promise<ServerFrame> {
    const p = new Promise<ServerFrame>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to request ${requestId}`)), 15_000)
      this.#waiters.set(requestId, (f) => {
        clearTimeout(timer)
        resolve(f)
      })
    })
    this.ws.send(bytes)
    return p
  }

  /** A request id this client has not used (for {@link RawClient.sendBytes}). */
  nextRequestId(): number {
    return this.#nextId++
  }

  /** Sends a request; rejects with a ParleyError when the answer is an Error. */
  async request(body: Body): Promise<ServerFrame> {
    const f = await this.send(body)
    if (f.body === 'error') throw parleyErrorFromWire(f.error!)
    return f
  }

  /** Resolves the first push (already received or future) matching `pred`. */
  push(pred: (f: ServerFrame) => boolean, timeoutMs = 10_000): Promise<ServerFrame> {
    const existing = this.pushes.find(pred)
    if (existing) return Promise.resolve(existing)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('push did not arrive')), timeoutMs)
      this.#pushWaiters.push({
        pred,
        resolve: (f) => {
          clearTimeout(timer)
          resolve(f)
        },
      })
    })
  }

  /** Deliveries received so far. */
  deliveries(): ServerBodyOf<'delivery'>[] {
    return this.pushes.filter((f) => f.body === 'delivery').map((f) => f.delivery!)
  }

  close(): void {
    this.ws.close()
  }
}

/** Expects a ParleyError with `code`; returns it. */
export async function expectError(p: Promise<unknown>, code: string): Promise<ParleyError> {
  try {
    await p
  } catch (err) {
    if (ParleyError.is(err) && err.code === code) return err
    throw new Error(
      `expected ${code}, got ${ParleyError.is(err) ? `${err.code}: ${err.message}` : String(err)}`,
    )
  }
  throw new Error(`expected ${code}, got success`)
}

/** An activated account. */
export interface Account {
  identity: Identity
  address: Uint8Array
  deviceId: number
  number: string
}

/** Runs the whole activation on an open client; the client ends authenticated. */
export async function activate(
  c: RawClient,
  relay: { code(activationIdHex: string): Promise<string> },
  number: string,
  identity = new Identity(),
  keys = prekeys(identity),
): Promise<Account & { replacedDevice: boolean }> {
  const started = (await c.request({ activationStart: { phoneNumber: number, consent: true } }))
    .activationStarted!
  const code = await relay.code(Buffer.from(started.activationId!).toString('hex'))
  const f = await c.request({
    activationConfirm: {
      activationId: started.activationId,
      code,
      identityKey: identity.publicKey,
      identitySignature: identity.sign(activationPayload(started.activationId!, identity.publicKey)),
      prekeys: keys,
    },
  })
  const a = f.activated!
  return {
    identity,
    address: a.address!,
    deviceId: a.deviceId!,
    number,
    replacedDevice: a.replacedDevice ?? false,
  }
}

/** Opens a new connection and authenticates it as `account` (`options` as for {@link RawClient.connect}). */
export async function login(
  url: string,
  account: Account,
  options: { localAddress?: string } = {},
): Promise<{ client: RawClient; head: number }> {
  const client = await RawClient.open(url, options)
  const f = await client.request({
    authenticate: {
      address: account.address,
      deviceId: account.deviceId,
      signature: account.identity.sign(
        authPayload(client.hello!.authNonce!, account.address, account.deviceId, client.hello!.trustRoot!),
      ),
    },
  })
  return { client, head: f.authenticated!.mailboxHeadSeq ?? 0 }
}

/** 16 random bytes. */
export const messageId = () => new Uint8Array(randomBytes(16))

/** A verifier that keeps the codes it is asked to send, for in-process tests. */
export class CapturingVerifier implements Verifier {
  readonly name = 'test'
  readonly codes = new Map<string, string>()
  readonly numbers: string[] = []
  async sendCode(r: VerificationRequest): Promise<void> {
    this.codes.set(r.activationId, r.code)
    this.numbers.push(r.phoneNumber)
  }
  async code(id: string): Promise<string> {
    return this.codes.get(id)!
  }
}

/**
 * Starts a relay in this process on a free port (its metrics listener on another), in memory, with a
 * {@link CapturingVerifier}.
 */
export async function inProcess(options: RelayOptions = {}) {
  const verifier = new CapturingVerifier()
  const relay = await startRelay({
    port: 0,
    host: '127.0.0.1',
    dataDir: ':memory:',
    logLevel: 'silent',
    metricsListen: '127.0.0.1:0',
    verifierImpl: verifier,
    ...options,
  })
  return { relay, verifier }
}

/** A protobuf varint. */
function varint(n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return out
}

/** The fixed head of a {@link sealedShape} envelope: version 1, a 32-byte ephemeral key, a 48-byte sealed key. */
const SHAPE_HEAD_BYTES = 2 + 2 + 32 + 2 + 48

/**
 * A well-formed version-1 `SealedEnvelope` carrying `payload` as its ciphertext (random ephemeral and sender
 * keys): what tests send where any bytes used to do. The relay checks an envelope's shape, not its contents,
 * so it cannot tell this from a real one; {@link shapePayload} reads the payload back.
 */
export function sealedShape(payload: Uint8Array | string): Uint8Array {
  const body = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload
  const head = [
    0x08,
    1,
    0x12,
    32,
    ...randomBytes(32),
    0x1a,
    48,
    ...randomBytes(48),
    0x22,
    ...varint(body.length),
  ]
  const out = new Uint8Array(head.length + body.length)
  out.set(head)
  out.set(body, head.length)
  return out
}

/** The payload of an envelope made by {@link sealedShape}. */
export function shapePayload(envelope: Uint8Array): Uint8Array {
  if (envelope[SHAPE_HEAD_BYTES] !== 0x22) throw new Error('not a sealedShape envelope')
  let at = SHAPE_HEAD_BYTES + 1
  let length = 0
  for (let scale = 1; ; scale *= 128) {
    const b = envelope[at++]!
    length += (b & 0x7f) * scale
    if ((b & 0x80) === 0) break
  }
  return envelope.subarray(at, at + length)
}

/** The payload of a {@link sealedShape} envelope as text. */
export const shapeText = (envelope: Uint8Array) => new TextDecoder().decode(shapePayload(envelope))

/**
 * Junk the relay cannot refuse by its shape: a well-formed envelope of random ciphertext, exactly `totalBytes`
 * long (at least 89; the few sizes where the ciphertext's length prefix grows by a byte cannot be made exactly).
 */
export function junkEnvelope(totalBytes: number): Uint8Array {
  for (let prefix = 1; prefix <= 4; prefix++) {
    const payload = totalBytes - SHAPE_HEAD_BYTES - 1 - prefix
    if (payload > 0 && varint(payload).length === prefix) {
      return sealedShape(new Uint8Array(randomBytes(payload)))
    }
  }
  throw new RangeError(`no well-formed envelope is exactly ${totalBytes} bytes`)
}
