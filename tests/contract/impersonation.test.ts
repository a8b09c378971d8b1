// The impersonation attack of the security review, scripted against a real relay process: a registered
// account (mallory) seals first messages to bob while claiming to be someone else — an existing contact of
// bob's (alice), a registered non-contact (carol), and a number not on Parley — in every way it can with the
// keys it has. Each is refused with SENDER_UNVERIFIED; bob is shown nothing, no session of his changes, and his
// conversation with alice goes on in both directions without losing a message.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { IncomingMessage, ParleyClient, ParleyError } from '@parley/node'
import {
  addressFromToken,
  createSenderCertificate,
  createServerCertificate,
  generateIdentity,
} from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DeviceKeys, type Forgery, login, readDevice, sendForged } from './attacker.js'
import { activatedClient, clientDir, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+14155550170'
const BOB = '+14155550171'
const CAROL = '+14155550172'
const MALLORY = '+14155550173'
const NOBODY = '+14155550179'

describe('impersonation: a registered account claims to be another sender', () => {
  const env = useRelay()
  const dir = clientDir()
  let alice: ParleyClient
  let bob: ParleyClient
  let mallory: DeviceKeys
  const bobGot: IncomingMessage[] = []
  const aliceGot: IncomingMessage[] = []
  const bobErrors: ParleyError[] = []
  const identityChanges: unknown[] = []
  const targets: { name: string; e164: string; address: Uint8Array }[] = []

  beforeAll(async () => {
    alice = await activatedClient(env.relay, env.codes, ALICE, {
      receipts: { delivery: false, read: false },
      storePath: join(dir, 'alice.db'),
    })
    // No receipts from alice or bob: the test compares bob's session records before and after the forgeries, and
    // a receipt (a message either way) would step his session with alice, which is no forgery's doing.
    bob = await activatedClient(env.relay, env.codes, BOB, {
      storePath: join(dir, 'bob.db'),
      receipts: { delivery: false, read: false },
    })
    const carol = await activatedClient(env.relay, env.codes, CAROL)
    bob.on('message', (m) => bobGot.push(m))
    bob.on('error', (e) => bobErrors.push(e))
    bob.on('identityChanged', (c) => identityChanges.push(c))
    alice.on('message', (m) => aliceGot.push(m))
    // alice and bob are contacts with a running conversation.
    await bob.discover([ALICE])
    await alice.send(BOB, 'hello bob')
    await until(() => bobGot.length === 1, 15_000, 'the first genuine message')
    await bob.send(ALICE, 'hello alice')
    await until(() => aliceGot.length === 1, 15_000, 'the genuine reply')
    // mallory is a real account; the attack runs on its own keys, read from its own store.
    const m = await activatedClient(env.relay, env.codes, MALLORY, { storePath: join(dir, 'mallory.db') })
    await m.discover([NOBODY]) // the address of a number not on Parley, as mallory can compute it
    await m.send(CAROL, 'a real message, so that mallory holds a sender certificate')
    await until(async () => (await m.pendingCount()) === 0, 10_000, 'mallory to hold a certificate')
    await m.close()
    const nobodyToken = await tokenOf(join(dir, 'mallory.db'), NOBODY)
    mallory = await readDevice(join(dir, 'mallory.db'))
    targets.push(
      { name: 'an existing contact', e164: ALICE, address: hexBytes(alice.address!) },
      { name: 'a registered non-contact', e164: CAROL, address: hexBytes(carol.address!) },
      { name: 'an unregistered number', e164: NOBODY, address: addressFromToken(nobodyToken) },
    )
    await carol.close()
  }, 60_000)

  afterAll(async () => {
    await alice?.close()
    await bob?.close()
  })

  it('refuses every forgery with SENDER_UNVERIFIED, shows nothing, and the conversation goes on', async () => {
    const conn = await login(env.relay.baseUrl, mallory)
    const relayKeys = JSON.parse(readFileSync(join(env.relay.dataDir, 'relay-keys.json'), 'utf8')) as {
      signer: { secretKey: string; certificate: string }
    }
    const salt = () => crypto.getRandomValues(new Uint8Array(32))
    const otherRoot = crypto.getRandomValues(new Uint8Array(32))
    const otherSigner = crypto.getRandomValues(new Uint8Array(32))
    const fresh = generateIdentity()
    const forgeries: [string, Forgery][] = []
    for (const t of targets) {
      const claimNumber = { e164: t.e164, salt: salt() }
      forgeries.push(
        // The flaw as found: mallory's key, the victim's address and number, and no certificate at all.
        [
          `${t.name}: no certificate`,
          {
            sealWith: mallory.identity,
            claimAddress: t.address,
            claimDevice: 1,
            certificate: new Uint8Array(0),
            number: claimNumber,
            text: 'forged',
          },
        ],
        // mallory's own genuine certificate, claiming the victim's address (and no number, so that only the
        // address binding can refuse it).
        [
          `${t.name}: own certificate, claimed address`,
          {
            sealWith: mallory.identity,
            claimAddress: t.address,
            claimDevice: 1,
            certificate: mallory.certificate,
            text: 'forged',
          },
        ],
        // mallory's own address and certificate, stating the victim's number.
        [
          `${t.name}: own certificate, claimed number`,
          {
            sealWith: mallory.identity,
            claimAddress: mallory.address,
            claimDevice: mallory.deviceId,
            certificate: mallory.certificate,
            number: claimNumber,
            text: 'forged',
          },
        ],
        // A certificate from a root bob never pinned, naming the victim and mallory's key.
        [
          `${t.name}: certificate from another root`,
          {
            sealWith: mallory.identity,
            claimAddress: t.address,
            claimDevice: 1,
            certificate: createSenderCertificate(
              otherSigner,
              createServerCertificate(otherRoot, {
                keyId: 1,
                publicKey: mallory.identity.publicKey, // any key: the root's signature is what fails
                expiresAtMs: Date.now() + 86_400_000,
              }),
              {
                address: t.address,
                deviceId: 1,
                identityKey: mallory.identity.publicKey,
                expiresAtMs: Date.now() + 3_600_000,
                numberCommitment: new Uint8Array(0),
              },
            ),
            text: 'forged',
          },
        ],
      )
    }
    forgeries.push(
      // mallory's genuine certificate presented with another identity key.
      [
        'certificate for another identity key',
        {
          sealWith: fresh,
          claimAddress: mallory.address,
          claimDevice: mallory.deviceId,
          certificate: mallory.certificate,
          text: 'forged',
        },
      ],
      // mallory's genuine certificate, claiming another of its devices.
      [
        'certificate for another device',
        {
          sealWith: mallory.identity,
          claimAddress: mallory.address,
          claimDevice: mallory.deviceId + 1,
          certificate: mallory.certificate,
          text: 'forged',
        },
      ],
      // A certificate with the relay's real signing key (as if leaked), for alice, but expired an hour ago.
      [
        'expired certificate',
        {
          sealWith: mallory.identity,
          claimAddress: targets[0]!.address,
          claimDevice: 1,
          certificate: createSenderCertificate(
            hexBytes(relayKeys.signer.secretKey),
            hexBytes(relayKeys.signer.certificate),
            {
              address: targets[0]!.address,
              deviceId: 1,
              identityKey: mallory.identity.publicKey,
              expiresAtMs: Date.now() - 3_600_000,
              numberCommitment: new Uint8Array(0),
            },
          ),
          text: 'forged',
        },
      ],
    )
    const sessionsBefore = await bobSessions()
    for (const [, f] of forgeries) await sendForged(conn, hexBytes(bob.address!), f)
    conn.close()
    await until(() => bob.stats.senderUnverified === forgeries.length, 20_000, 'bob to refuse every forgery')

    expect(bob.stats.senderUnverified).toBe(forgeries.length) // 15: 4 per target, 3 more
    expect(bobErrors.filter((e) => e.code === 'SENDER_UNVERIFIED')).toHaveLength(forgeries.length)
    expect(bobErrors.filter((e) => e.code !== 'SENDER_UNVERIFIED')).toEqual([])
    expect(bobGot.map((m) => m.text)).toEqual(['hello bob']) // only the genuine one
    expect((await bob.history()).some((m) => m.text === 'forged')).toBe(false)
    expect(identityChanges).toEqual([])
    // No session of bob's was created, replaced or deleted.
    expect(await bobSessions()).toEqual(sessionsBefore)

    // The genuine conversation continues in both directions, nothing lost.
    for (let i = 0; i < 20; i++) {
      await alice.send(BOB, `a${i}`)
      await bob.send(ALICE, `b${i}`)
    }
    await until(() => bobGot.length === 21 && aliceGot.length === 21, 20_000, '20 messages each way')
    expect(bobGot.slice(1).map((m) => m.text)).toEqual(Array.from({ length: 20 }, (_, i) => `a${i}`))
    expect(aliceGot.slice(1).map((m) => m.text)).toEqual(Array.from({ length: 20 }, (_, i) => `b${i}`))
    expect(bobGot.every((m) => m.from === ALICE)).toBe(true)
    expect(aliceGot.every((m) => m.from === BOB)).toBe(true)
    expect(bob.stats.senderUnverified).toBe(forgeries.length)
  }, 60_000)

  /** Bob's session records, read through a second handle on his store. */
  async function bobSessions(): Promise<string[]> {
    const { SqliteStore } = await import('@parley/node')
    const store = SqliteStore.open(join(dir, 'bob.db'))
    try {
      const rows = await store.list('session/')
      return rows.map((r) => `${r.key}=${Buffer.from(r.value).toString('hex')}`)
    } finally {
      await store.close()
    }
  }
})

function hexBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

/** The OPRF token a device cached for a number during discovery. */
async function tokenOf(storePath: string, e164: string): Promise<Uint8Array> {
  const { SqliteStore } = await import('@parley/node')
  const store = SqliteStore.open(storePath)
  try {
    const row = (await store.list('oprf/token/')).find((r) => r.key.endsWith(`/${e164}`))
    if (!row) throw new Error('no token cached')
    return row.value
  } finally {
    await store.close()
  }
}
