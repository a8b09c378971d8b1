// Typed content from a newer or richer peer, through a real relay process: an account that sends what this SDK
// does not show (a newer app's unknown type) has it delivered as `unsupported` with the sender's fallback text,
// never dropped or crashing; a reaction lands on its message; a receipt is not a message; the conversation goes on.
import { join } from 'node:path'
import type { IncomingMessage } from '@parley/node'
import { type Content, encodeContent, prekeyBundleFromWire, Session, sealEnvelope } from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { login, readDevice } from './attacker.js'
import { activatedClient, clientDir, inbox, until } from './harness.js'
import { useRelay } from './useRelay.js'

const BOB = '+1 415 555 0161'
const PEER = '+1 415 555 0162'

/** A Content carrying a body this SDK's schema does not have (field 40), as a newer peer would send, by hand. */
function newerContent(messageId: Uint8Array, fallbackText: string): Uint8Array {
  const varint = (n: number) => {
    const out: number[] = []
    for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80)
    out.push(n)
    return out
  }
  const field = (n: number, bytes: Uint8Array) => [...varint((n << 3) | 2), ...varint(bytes.length), ...bytes]
  return new Uint8Array([
    ...field(1, messageId),
    ...varint((2 << 3) | 0),
    ...varint(Date.now()),
    ...field(40, new Uint8Array([1, 2, 3])),
    ...field(23, new TextEncoder().encode(fallbackText)),
  ])
}

describe('typed content this SDK does not show yet', () => {
  const env = useRelay()
  const dir = clientDir()
  let got: IncomingMessage[] = []
  let bob: Awaited<ReturnType<typeof activatedClient>>

  beforeAll(async () => {
    bob = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob.db') })
    got = inbox(bob)
  })

  afterAll(async () => {
    await bob?.close()
  })

  it('delivers an unknown type as unsupported with its fallback text, a reaction on its message, and no receipt', async () => {
    const path = join(dir, 'peer.db')
    const peerClient = await activatedClient(env.relay, env.codes, PEER, { storePath: path })
    await peerClient.close()
    const peer = await readDevice(path)
    const conn = await login(env.relay.baseUrl, peer)
    try {
      const bobAddress = new Uint8Array(Buffer.from(bob.address!, 'hex'))
      const certificate = (await conn.request({ senderCertificateRequest: {} })).senderCertificateIssued!
        .certificate
      const wire = (await conn.request({ prekeyBundleQuery: { address: bobAddress } })).prekeyBundle!
      const { session } = Session.initiate(
        peer.identity,
        peer.address,
        peer.deviceId,
        prekeyBundleFromWire(wire),
      )
      const send = async (plaintext: Uint8Array, messageId: Uint8Array) => {
        const envelope = sealEnvelope({
          senderAddress: peer.address,
          senderDeviceId: peer.deviceId,
          senderIdentity: peer.identity,
          recipientIdentityKey: wire.identityKey,
          message: session.encrypt(plaintext),
          senderCertificate: certificate,
        })
        await conn.request({
          sendMessage: {
            recipientAddress: bobAddress,
            recipientDeviceId: wire.deviceId,
            messageId,
            envelope,
          },
        })
      }
      const id = () => crypto.getRandomValues(new Uint8Array(16))
      const content = (c: Omit<Content, 'messageId' | 'sentAtMs'>, messageId = id()) =>
        send(encodeContent({ messageId, sentAtMs: Date.now(), ...c } as Content), messageId)
      const first = id()
      await content({ text: 'hello' }, first)
      await content({ reaction: { targetId: first, emoji: '👍' }, fallbackText: 'reacted 👍' })
      await content({ receipt: { kind: 'delivered', messageIds: [first] } } as never)
      const newer = id()
      await send(newerContent(newer, 'a poll: lunch?'), newer)
      await content({ text: 'last' })
      await until(() => got.some((m) => m.text === 'last'), 30_000, 'the last message')
      // The reaction lands on 'hello' (this SDK shows reactions); the unknown type shows its fallback text.
      expect(got.map((m) => [m.text, m.unsupported === true])).toEqual([
        ['hello', false],
        ['a poll: lunch?', true],
        ['last', false],
      ])
      // The conversation holds the same three; the receipt and the reaction are in neither as messages.
      const [conversation] = await bob.conversations()
      const messages = (await bob.conversationHistory(conversation!.id)).messages
      expect(messages.map((m) => m.text)).toEqual(['hello', 'a poll: lunch?', 'last'])
      expect(messages[0]!.reactions).toEqual({ [Buffer.from(peer.address).toString('hex')]: '👍' })
    } finally {
      conn.close()
    }
  })
})
