// A group message (a sender-key message in a sealed envelope, docs/architecture.md §6.10) under a chain its
// recipient was never given, against a real relay process: sent by a real account (mallory) with its own keys and
// certificate, so the envelope opens and the sender is proven, but no pairwise session ever carried the chain. The
// client keeps it in case the key is still on its way (stats.groupHeld), shows nothing, does not get it again, and
// the same sender's next ordinary message is shown. Flooding such messages fills only mallory's own bounded share
// of the hold (32); the rest are refused DECRYPT_FAILED and counted in stats.groupRefused.
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

  it('is held, shown nothing and not delivered again; a flood is bounded; the conversation goes on', async () => {
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
    /** One group message under a chain of its own, which nobody was given. */
    const sendUnkeyed = async (text: string) => {
      const messageId = crypto.getRandomValues(new Uint8Array(16))
      const content = encodeContent({ messageId, sentAtMs: Date.now(), text })
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
    }
    await sendUnkeyed('to the group')
    await until(() => bob.stats.groupHeld === 1, 15_000, 'bob holding it')
    expect(bob.stats.groupRefused).toBe(0)
    expect(bobErrors).toEqual([])
    // The flood: 40 more, each under a fresh chain. Bob keeps 32 of mallory's in all and refuses the rest.
    for (let i = 0; i < 40; i++) await sendUnkeyed(`flood ${i}`)
    conn.close()
    await until(
      () => bob.stats.groupHeld + bob.stats.groupRefused === 41,
      15_000,
      "bob's answers to the flood",
    )
    expect([bob.stats.groupHeld, bob.stats.groupRefused]).toEqual([32, 9])
    expect(bobErrors.map((e) => e.code)).toEqual(new Array(9).fill('DECRYPT_FAILED'))
    expect(bobGot).toEqual([])
    // Acked: a new connection of bob's is not given it again.
    await bob.close()
    bob = await nodeClient(env.relay, { storePath: join(dir, 'bob.db') })
    bob.on('message', (m) => bobGot.push(m))
    bob.on('error', (e) => bobErrors.push(e))
    const again = await nodeClient(env.relay, { storePath: join(dir, 'mallory.db') })
    await again.send(BOB, 'an ordinary message')
    await until(() => bobGot.length === 1, 15_000, 'the ordinary message')
    expect(bobGot.map((m) => [m.from, m.text])).toEqual([['+14155550175', 'an ordinary message']])
    // Acked before: nothing of the flood came again to the new connection.
    expect(bob.stats.groupHeld + bob.stats.groupRefused).toBe(0)
    expect(bobErrors.map((e) => e.code)).toEqual(new Array(9).fill('DECRYPT_FAILED'))
    await again.close()
  })
})
