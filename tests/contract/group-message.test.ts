// A group message (a sender-key message in a sealed envelope, docs/architecture.md §6.10) under a chain its
// recipient was never given, against a real relay process: sent by a real account (mallory) with its own keys and
// certificate, so the envelope opens and the sender is proven, but no pairwise session ever carried the chain. The
// client refuses it (DECRYPT_FAILED, counted in stats.groupRefused), shows nothing, does not get it again, and the
// same sender's next ordinary message is shown.
import { join } from 'node:path'
import type { IncomingMessage, ParleyClient, ParleyError } from '@parley/node'
import {
  createSenderKey,
  encodeContent,
  prekeyBundleFromWire,
  sealEnvelope,
  senderKeyEncrypt,
} from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { login, readDevice } from './attacker.js'
import { activatedClient, clientDir, nodeClient, until } from './harness.js'
import { useRelay } from './useRelay.js'

const BOB = '+14155550174'
const MALLORY = '+14155550175'

describe('a group message under a sender key never given', () => {
  const env = useRelay()
  const dir = clientDir()
  let bob: ParleyClient
  const bobGot: IncomingMessage[] = []
  const bobErrors: ParleyError[] = []

  beforeAll(async () => {
    bob = await activatedClient(env.relay, env.codes, BOB, { storePath: join(dir, 'bob.db') })
    bob.on('message', (m) => bobGot.push(m))
    bob.on('error', (e) => bobErrors.push(e))
  })
  afterAll(async () => {
    await bob?.close()
  })

  it('is refused DECRYPT_FAILED, shown nothing and not delivered again; the conversation goes on', async () => {
    const mallory = await activatedClient(env.relay, env.codes, MALLORY, {
      storePath: join(dir, 'mallory.db'),
    })
    await mallory.discover([BOB])
    await mallory.close()
    const keys = await readDevice(join(dir, 'mallory.db'))
    const conn = await login(env.relay.baseUrl, keys)
    const bundle = prekeyBundleFromWire(
      (await conn.request({ prekeyBundleQuery: { address: Buffer.from(bob.address!, 'hex') } }))
        .prekeyBundle!,
    )
    const certificate = (await conn.request({ senderCertificateRequest: {} })).senderCertificateIssued!
      .certificate!
    const messageId = crypto.getRandomValues(new Uint8Array(16))
    const content = encodeContent({ messageId, sentAtMs: Date.now(), text: 'to the group' })
    const { message: body } = senderKeyEncrypt(createSenderKey(), content)
    const envelope = sealEnvelope({
      senderAddress: keys.address,
      senderDeviceId: keys.deviceId,
      senderIdentity: keys.identity,
      recipientIdentityKey: bundle.identityKey,
      message: { kind: 'senderKey', body },
      senderCertificate: certificate,
    })
    await conn.request({
      sendMessage: {
        recipientAddress: bundle.address,
        recipientDeviceId: bundle.deviceId,
        messageId,
        envelope,
      },
    })
    conn.close()
    await until(() => bobErrors.length === 1, 15_000, "bob's refusal")
    expect(bobErrors.map((e) => e.code)).toEqual(['DECRYPT_FAILED'])
    expect(bob.stats.groupRefused).toBe(1)
    // Acked: a new connection of bob's is not given it again.
    await bob.close()
    bob = await nodeClient(env.relay, { storePath: join(dir, 'bob.db') })
    bob.on('message', (m) => bobGot.push(m))
    bob.on('error', (e) => bobErrors.push(e))
    const again = await nodeClient(env.relay, { storePath: join(dir, 'mallory.db') })
    await again.send(BOB, 'an ordinary message')
    await until(() => bobGot.length === 1, 15_000, 'the ordinary message')
    expect(bobGot.map((m) => [m.from, m.text])).toEqual([['+14155550175', 'an ordinary message']])
    expect(bobErrors.map((e) => e.code)).toEqual(['DECRYPT_FAILED'])
    await again.close()
  })
})
