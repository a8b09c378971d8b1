// Sender keys: bit for bit against an independent implementation (node:crypto's HMAC, HKDF, ChaCha20-Poly1305
// and Ed25519, protobufjs' encoding), and as an attacker would try them: replays, forged signatures, a member
// removed by a rekey, a member added late, messages out of order or too far ahead, malformed bytes. No receiver
// state changes unless a message opens.
import { createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { nodeHkdf, nodeOpen, nodeSeal, nodeSign, nodeVerify, pbEncode } from '../test/independent.js'
import { ParleyError } from './errors.js'
import { label } from './internal/e2eCrypto.js'
import {
  createSenderKey,
  MAX_SENDER_KEY_KEPT,
  MAX_SENDER_KEY_SKIP,
  openSenderKeyDistribution,
  peekSenderKeyMessage,
  type SenderKeyReceiver,
  type SenderKeyState,
  senderKeyDecrypt,
  senderKeyDistribution,
  senderKeyEncrypt,
} from './senderKey.js'

const text = (s: string) => new TextEncoder().encode(s)
const str = (b: Uint8Array) => new TextDecoder().decode(b)

/** A deterministic byte source for reproducible states. */
function seeded(seed: number): (n: number) => Uint8Array {
  let x = seed
  return (n) =>
    Uint8Array.from({ length: n }, () => {
      x = (x * 1103515245 + 12345) >>> 0
      return x >>> 24
    })
}

function codeOf(f: () => unknown): string {
  try {
    f()
    return 'none'
  } catch (err) {
    return err instanceof ParleyError ? err.code : (err as Error).name
  }
}

/** Sends `n` messages `m0`…; returns them and the sender's state after. */
function sendMany(
  state: SenderKeyState,
  n: number,
  from = 0,
): { messages: Uint8Array[]; state: SenderKeyState } {
  const messages: Uint8Array[] = []
  for (let i = from; i < from + n; i++) {
    const r = senderKeyEncrypt(state, text(`m${i}`))
    messages.push(r.message)
    state = r.state
  }
  return { messages, state }
}

describe('sender keys', () => {
  it('match an independent implementation byte for byte: chain, keys, ciphertext, signature, encoding', () => {
    let state = createSenderKey({ random: seeded(7) })
    const hmac = (key: Uint8Array, byte: number) =>
      new Uint8Array(createHmac('sha256', key).update(Uint8Array.of(byte)).digest())
    let chainKey = state.chainKey
    for (let i = 0; i < 4; i++) {
      const plaintext = text(`message ${i} ${'x'.repeat(i * 50)}`)
      const r = senderKeyEncrypt(state, plaintext)
      // The same message, made without the package.
      const km = nodeHkdf(hmac(chainKey, 1), new Uint8Array(0), label('parley/v1/sender-key'), 44)
      const header = pbEncode('SenderKeyMessage', { distributionId: state.distributionId, iteration: i })
      const ciphertext = nodeSeal(km.subarray(0, 32), km.subarray(32), plaintext, header)
      const unsigned = pbEncode('SenderKeyMessage', {
        distributionId: state.distributionId,
        iteration: i,
        ciphertext,
      })
      const signed = new Uint8Array([...label('parley/v1/sender-key-message'), ...unsigned])
      const signature = nodeSign(state.signingSecret, signed)
      const expected = pbEncode('SenderKeyMessage', {
        distributionId: state.distributionId,
        iteration: i,
        ciphertext,
        signature,
      })
      expect(Buffer.from(r.message).toString('hex')).toBe(Buffer.from(expected).toString('hex'))
      expect(nodeVerify(state.signingKey, signed, signature)).toBe(true)
      expect(str(nodeOpen(km.subarray(0, 32), km.subarray(32), ciphertext, header))).toBe(str(plaintext))
      chainKey = hmac(chainKey, 2)
      expect(r.state.chainKey).toEqual(chainKey)
      expect(r.state.iteration).toBe(i + 1)
      state = r.state
    }
    // The distribution is the protobufjs encoding of the state's public part.
    expect(senderKeyDistribution(state)).toEqual(
      pbEncode('SenderKeyDistribution', {
        distributionId: state.distributionId,
        iteration: 4,
        chainKey: state.chainKey,
        signingKey: state.signingKey,
      }),
    )
  })

  it('lets every member open every message once, in any order, and refuses replays', () => {
    const sender = createSenderKey()
    const distribution = senderKeyDistribution(sender)
    const { messages } = sendMany(sender, 5)
    for (const order of [
      [0, 1, 2, 3, 4],
      [4, 1, 0, 3, 2],
      [2, 0, 4, 1, 3],
    ]) {
      let r: SenderKeyReceiver = openSenderKeyDistribution(distribution)
      const opened: string[] = []
      for (const i of order) {
        expect(peekSenderKeyMessage(messages[i]!).iteration).toBe(i)
        const out = senderKeyDecrypt(r, messages[i]!)
        opened.push(str(out.plaintext))
        r = out.receiver
      }
      expect(opened).toEqual(order.map((i) => `m${i}`))
      expect(r.skipped).toEqual([])
      // Each replay is refused, whether it was in order or skipped over.
      for (const m of messages) expect(codeOf(() => senderKeyDecrypt(r, m))).toBe('DUPLICATE')
    }
  })

  it('refuses what the chain key did not sign, and changes nothing', () => {
    const sender = createSenderKey()
    const r0 = openSenderKeyDistribution(senderKeyDistribution(sender))
    const [message] = sendMany(sender, 1).messages
    // Any byte changed: the signature (or the encoding) fails.
    for (let i = 0; i < message!.length; i++) {
      const bad = message!.slice()
      bad[i] = bad[i]! ^ 0x40
      expect(['VERIFICATION_FAILED', 'BAD_REQUEST', 'INVALID_STATE']).toContain(
        codeOf(() => senderKeyDecrypt(r0, bad)),
      )
    }
    // A member's forgery: its own chain under the sender's distribution id, signed with its own key.
    const forger = { ...createSenderKey(), distributionId: sender.distributionId, chainKey: sender.chainKey }
    const forged = senderKeyEncrypt(forger, text('from the sender, honest')).message
    expect(codeOf(() => senderKeyDecrypt(r0, forged))).toBe('VERIFICATION_FAILED')
    // The honest message still opens with the untouched state.
    expect(str(senderKeyDecrypt(r0, message!).plaintext)).toBe('m0')
  })

  it('opens nothing sent before a late distribution, and a removed member opens nothing after a rekey', () => {
    let sender = createSenderKey()
    const early = openSenderKeyDistribution(senderKeyDistribution(sender))
    const first = sendMany(sender, 3)
    sender = first.state
    // A member added now gets the chain from iteration 3: the group's past stays closed to it.
    let late = openSenderKeyDistribution(senderKeyDistribution(sender))
    for (const m of first.messages) expect(codeOf(() => senderKeyDecrypt(late, m))).toBe('DUPLICATE')
    const next = sendMany(sender, 1, 3)
    late = senderKeyDecrypt(late, next.messages[0]!).receiver
    expect(late.iteration).toBe(4)
    // The early member is removed: the sender starts a new chain and gives it to the others only.
    const rekeyed = createSenderKey()
    const after = senderKeyEncrypt(rekeyed, text('after the removal')).message
    expect(codeOf(() => senderKeyDecrypt(early, after))).toBe('INVALID_STATE')
    // Even with its copy relabelled to the new chain's id, the old chain key neither verifies nor opens it.
    const relabelled = { ...early, distributionId: peekSenderKeyMessage(after).distributionId }
    expect(codeOf(() => senderKeyDecrypt(relabelled, after))).toBe('VERIFICATION_FAILED')
    const member = openSenderKeyDistribution(senderKeyDistribution(rekeyed))
    expect(str(senderKeyDecrypt(member, after).plaintext)).toBe('after the removal')
  })

  it(`derives at most ${MAX_SENDER_KEY_SKIP} keys ahead and keeps at most ${MAX_SENDER_KEY_KEPT} skipped`, () => {
    const sender = createSenderKey()
    const r0 = openSenderKeyDistribution(senderKeyDistribution(sender))
    const far = senderKeyEncrypt({ ...sender, iteration: MAX_SENDER_KEY_SKIP + 1 }, text('far')).message
    expect(codeOf(() => senderKeyDecrypt(r0, far))).toBe('DECRYPT_FAILED')
    // Exactly the limit ahead: opens, keeping every key it skipped.
    let chain = sender
    for (let i = 0; i < MAX_SENDER_KEY_SKIP; i++) chain = senderKeyEncrypt(chain, new Uint8Array(0)).state
    const edge = senderKeyEncrypt(chain, text('edge'))
    const r1 = senderKeyDecrypt(r0, edge.message).receiver
    expect(r1.skipped.length).toBe(Math.min(MAX_SENDER_KEY_SKIP, MAX_SENDER_KEY_KEPT))
    // Another gap: the oldest kept keys go first.
    let more = edge.state
    for (let i = 0; i < 10; i++) more = senderKeyEncrypt(more, new Uint8Array(0)).state
    const r2 = senderKeyDecrypt(r1, senderKeyEncrypt(more, text('later')).message).receiver
    expect(r2.skipped.length).toBe(MAX_SENDER_KEY_KEPT)
    expect(r2.skipped[0]!.iteration).toBe(MAX_SENDER_KEY_SKIP + 10 - MAX_SENDER_KEY_KEPT)
    expect(codeOf(() => senderKeyDecrypt(r2, sendMany(sender, 1).messages[0]!))).toBe('DUPLICATE')
  })

  it("signs through the crypto option's ed25519Sign when it has one: the same bytes, and its output checked", () => {
    const sender = createSenderKey({ random: seeded(5) })
    let calls = 0
    const ed25519Sign = (secret: Uint8Array, message: Uint8Array) => {
      calls++
      return nodeSign(secret, message)
    }
    const viaOption = senderKeyEncrypt(sender, text('hello'), { crypto: { ed25519Sign } })
    expect(calls).toBe(1)
    expect(viaOption.message).toEqual(senderKeyEncrypt(sender, text('hello')).message)
    expect(() =>
      senderKeyEncrypt(sender, text('hello'), { crypto: { ed25519Sign: () => new Uint8Array(63) } }),
    ).toThrow(TypeError)
    expect(() => senderKeyEncrypt(sender, text('hello'), { crypto: { ed25519Sign: 1 as never } })).toThrow(
      TypeError,
    )
  })

  it('refuses malformed messages and distributions as BAD_REQUEST', () => {
    const sender = createSenderKey()
    const distribution = senderKeyDistribution(sender)
    const r = openSenderKeyDistribution(distribution)
    const [message] = sendMany(sender, 1).messages
    const bad = [
      new Uint8Array(0),
      message!.subarray(0, message!.length - 3),
      new Uint8Array([...message!, 0x28, 0x01]), // an unknown field 5
      pbEncode('SenderKeyMessage', {
        distributionId: new Uint8Array(15),
        iteration: 0,
        ciphertext: new Uint8Array(16),
      }),
      pbEncode('SenderKeyMessage', {
        distributionId: sender.distributionId,
        iteration: 0,
        ciphertext: new Uint8Array(15),
      }),
    ]
    for (const b of bad) expect(codeOf(() => senderKeyDecrypt(r, b))).toBe('BAD_REQUEST')
    for (const b of [
      new Uint8Array([...distribution, 0x28, 0x01]),
      pbEncode('SenderKeyDistribution', {
        distributionId: new Uint8Array(16),
        chainKey: new Uint8Array(31),
        signingKey: new Uint8Array(32),
      }),
      pbEncode('SenderKeyDistribution', { distributionId: new Uint8Array(16), chainKey: new Uint8Array(32) }),
    ])
      expect(codeOf(() => openSenderKeyDistribution(b))).toBe('BAD_REQUEST')
    expect(codeOf(() => senderKeyEncrypt({ ...sender, chainKey: new Uint8Array(3) }, text('x')))).toBe(
      'RangeError',
    )
  })
})
