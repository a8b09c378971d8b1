// Linked devices under attack, scripted with the raw frame client against a relay process
// (docs/architecture.md §9): who may publish a device list, open, post to and read a link rendezvous, send to
// several devices at once, deactivate an account and obtain a device's sender certificate — and what each
// refusal leaves behind for the honest parties. Every check is on answers, counts in the store and /metrics.
import { generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto'
import { join } from 'node:path'
import {
  type DeviceListEntry,
  deliveryTokenVerifier,
  type ParleyError,
  type ServerFrame,
  signDeviceList,
  verifySenderCertificate,
} from '@parley/protocol'
import {
  type Account,
  activate,
  expectError,
  type Identity,
  login,
  messageId,
  prekeys,
  RawClient,
  type RelayProcess,
  sealedShape,
  spawnDevRelay,
} from '@parley/relay/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Database } from './deps.js'
import { metric, scrape } from './relayDb.js'

/** What a request came to: the answer's body, or the refusal's code. */
const outcome = (p: Promise<ServerFrame>) =>
  p.then(
    (f) => f.body as string,
    (e: ParleyError) => e.code as string,
  )

/** An Ed25519 key whose secret seed is at hand (signDeviceList takes the seed), usable where an Identity is. */
class SeedKey {
  readonly publicKey: Uint8Array
  readonly seed: Uint8Array
  readonly #key: KeyObject
  constructor() {
    const { privateKey } = generateKeyPairSync('ed25519')
    const jwk = privateKey.export({ format: 'jwk' })
    this.publicKey = new Uint8Array(Buffer.from(jwk.x!, 'base64url'))
    this.seed = new Uint8Array(Buffer.from(jwk.d!, 'base64url'))
    this.#key = privateKey
  }
  sign(message: Uint8Array): Uint8Array {
    return new Uint8Array(sign(null, message, this.#key))
  }
  /** The same key as the testing helpers' Identity (they only read publicKey and call sign). */
  get identity(): Identity {
    return this as unknown as Identity
  }
}

const PRIMARY = 1
const DEVICE = 2
const MAX_LINKED = 2
const LINKS_PER_HOUR = 6
const RENDEZVOUS_PER_NETWORK = 5
/** Bundle fetches (and device list queries) per account: more than any one test's honest parties need. */
const BUNDLES = 12
/** Activations come from a network of their own. */
const ACTIVATING = { localAddress: '127.0.9.1' }
/** A distinct source network (/24) per use, so the rendezvous network budget of one test is its own. */
let nextNetwork = 20
const freshNetwork = () => ({ localAddress: `127.0.${nextNetwork++}.1` })

/** An account, its primary's key and the linked devices it listed so far. */
interface Owner {
  account: Account
  key: SeedKey
  client: RawClient
  version: number
  devices: Map<number, SeedKey>
  /** The last list the primary published (empty before the first). */
  published: Uint8Array
}

describe('linked devices under attack, on a relay process', () => {
  let relay: RelayProcess
  let numbers = 200
  const nextNumber = () => `+1415555${String(numbers++).padStart(4, '0')}`

  beforeAll(async () => {
    relay = await spawnDevRelay([
      '--max-linked-devices',
      String(MAX_LINKED),
      '--links-per-hour',
      String(LINKS_PER_HOUR),
      '--rendezvous-per-network-per-hour',
      String(RENDEZVOUS_PER_NETWORK),
      '--bundle-capacity',
      String(BUNDLES),
      '--bundle-per-hour',
      '1',
      '--frames-burst',
      '1000',
      '--frames-per-second',
      '1000',
    ])
  })
  afterAll(async () => {
    await relay?.stop()
  })

  const counts = async () => {
    const m = await scrape(relay.metricsUrl)
    return {
      listsRefused: metric(m, 'parley_relay_device_lists_total', { outcome: 'refused' }),
      listsStored: metric(m, 'parley_relay_device_lists_total', { outcome: 'stored' }),
      accepted: metric(m, 'parley_relay_messages_accepted_total'),
      multiStale: metric(m, 'parley_relay_multi_sends_total', { outcome: 'stale' }),
      multiStored: metric(m, 'parley_relay_multi_sends_total', { outcome: 'stored' }),
      multiRefused: metric(m, 'parley_relay_multi_sends_total', { outcome: 'refused' }),
      rdvNetwork: metric(m, 'parley_relay_rate_limited_total', { scope: 'rendezvous_network' }),
      links: metric(m, 'parley_relay_rate_limited_total', { scope: 'links' }),
      removed: metric(m, 'parley_relay_linked_devices_total', { change: 'removed' }),
      bundle: metric(m, 'parley_relay_rate_limited_total', { scope: 'bundle' }),
    }
  }

  /** A fresh account whose primary's key we hold, logged in. */
  async function owner(): Promise<Owner> {
    const key = new SeedKey()
    const c = await RawClient.open(relay.url, ACTIVATING)
    const account = await activate(c, relay, nextNumber(), key.identity, prekeys(key.identity))
    return { account, key, client: c, version: 0, devices: new Map(), published: new Uint8Array() }
  }

  /** The entries of `o`'s list: its primary and `linked`. */
  const entries = (o: Owner, linked: Map<number, SeedKey>): DeviceListEntry[] => [
    { deviceId: o.account.deviceId, deviceKey: o.key.publicKey },
    ...[...linked].map(([deviceId, k]) => ({ deviceId, deviceKey: k.publicKey })),
  ]

  /** A list signed by `signer` (default the account identity). */
  const list = (
    o: Owner,
    version: number,
    devices: DeviceListEntry[],
    signer: SeedKey = o.key,
    address: Uint8Array = o.account.address,
  ) => signDeviceList({ address, version, devices }, signer.seed)

  const publish = (c: RawClient, deviceList: Uint8Array) => c.request({ publishDeviceList: { deviceList } })

  /** Publishes `linked` as `o`'s next list (version + 1). */
  async function publishLinked(o: Owner, linked: Map<number, SeedKey>): Promise<void> {
    const version = o.version + 1
    const bytes = list(o, version, entries(o, linked))
    const f = await publish(o.client, bytes)
    expect(f.deviceListPublished?.version).toBe(version)
    o.published = bytes
    o.version = version
    o.devices = new Map(linked)
  }

  /** The Account a linked device authenticates as: the account's address, its own id and key. */
  const deviceAccount = (o: Owner, deviceId: number): Account => ({
    ...o.account,
    deviceId,
    identity: o.devices.get(deviceId)!.identity,
  })

  /** Adds a linked device with id `deviceId`, logs it in and uploads its prekeys (signed by its own key). */
  async function link(o: Owner, deviceId: number): Promise<RawClient> {
    const key = new SeedKey()
    await publishLinked(o, new Map([...o.devices, [deviceId, key]]))
    const { client } = await login(relay.url, deviceAccount(o, deviceId))
    await client.request({ prekeyUpload: prekeys(key.identity) })
    return client
  }

  const storedList = async (c: RawClient, address: Uint8Array) =>
    (await c.request({ deviceListQuery: { address } })).deviceListResult!

  /** Rows the relay's database holds for a device: its mail and its one-time prekeys. */
  function rowsOf(address: Uint8Array, deviceId: number) {
    const db = new Database(join(relay.dataDir, 'relay.db'), { readonly: true })
    try {
      const n = (sql: string) => (db.prepare(sql).get(Buffer.from(address), deviceId) as { n: number }).n
      return {
        device: n('SELECT count(*) AS n FROM linked_devices WHERE address = ? AND device_id = ?'),
        mail: n('SELECT count(*) AS n FROM mailbox WHERE address = ? AND device_id = ?'),
        prekeys: n('SELECT count(*) AS n FROM linked_one_time_prekeys WHERE address = ? AND device_id = ?'),
      }
    } finally {
      db.close()
    }
  }

  describe('PublishDeviceList', () => {
    it('refuses a list signed by another key, for another address or naming another primary; stores nothing', async () => {
      const o = await owner()
      const other = await owner()
      const before = await counts()
      const stranger = new SeedKey()
      const device = new SeedKey()
      // Signed by the attacker's own key (as its primary): does not verify against the account identity.
      const forged = signDeviceList(
        {
          address: o.account.address,
          version: 1,
          devices: [
            { deviceId: o.account.deviceId, deviceKey: stranger.publicKey },
            { deviceId: 2, deviceKey: device.publicKey },
          ],
        },
        stranger.seed,
      )
      await expectError(publish(o.client, forged), 'BAD_REQUEST')
      // Signed by the account identity, but for another account's address.
      const elsewhere = list(o, 1, entries(o, new Map([[2, device]])), o.key, other.account.address)
      await expectError(publish(o.client, elsewhere), 'BAD_REQUEST')
      // Signed by the account identity, but the identity's device is not the caller (id 7, not 1).
      const wrongPrimary = list(o, 1, [
        { deviceId: 7, deviceKey: o.key.publicKey },
        { deviceId: 8, deviceKey: device.publicKey },
      ])
      await expectError(publish(o.client, wrongPrimary), 'BAD_REQUEST')
      // The other account cannot publish o's list either (it verifies against other's identity).
      await expectError(publish(other.client, list(o, 1, entries(o, new Map([[2, device]])))), 'BAD_REQUEST')

      const after = await counts()
      expect(after.listsRefused - before.listsRefused).toBe(4)
      expect(after.listsStored - before.listsStored).toBe(0)
      // Nothing stored: the honest view is still the primary alone.
      expect(await storedList(other.client, o.account.address)).toEqual({
        deviceList: new Uint8Array(),
        primaryDeviceId: o.account.deviceId,
      })
      expect(rowsOf(o.account.address, 2).device).toBe(0)
      expect(rowsOf(o.account.address, 8).device).toBe(0)
      // The device named by the forged list cannot authenticate.
      const intruder: Account = { ...o.account, deviceId: 2, identity: device.identity }
      await expectError(login(relay.url, intruder), 'UNAUTHENTICATED')
      o.client.close()
      other.client.close()
    })

    it('adds a device that authenticates with its own key, uploads its prekeys and hands out its bundle', async () => {
      const o = await owner()
      const key = new SeedKey()
      await publishLinked(o, new Map([[2, key]]))
      const stored = await storedList(o.client, o.account.address)
      expect(stored.primaryDeviceId).toBe(o.account.deviceId)
      // As it was signed (Ed25519 is deterministic: signing the same list again gives the same bytes).
      expect(stored.deviceList).toEqual(list(o, 1, entries(o, o.devices)))

      // The primary's key does not authenticate as the linked device, nor a key not in the list.
      await expectError(login(relay.url, { ...o.account, deviceId: 2 }), 'UNAUTHENTICATED')
      await expectError(
        login(relay.url, { ...o.account, deviceId: 2, identity: new SeedKey().identity }),
        'UNAUTHENTICATED',
      )
      await expectError(
        login(relay.url, { ...o.account, deviceId: 3, identity: new SeedKey().identity }),
        'UNAUTHENTICATED',
      )
      const { client: d } = await login(relay.url, deviceAccount(o, 2))

      const peer = await owner()
      // No bundle before the device's first upload.
      await expectError(
        peer.client.request({ prekeyBundleQuery: { address: o.account.address, deviceId: 2 } }),
        'NOT_FOUND',
      )
      // Prekeys signed by the account identity (not the device key) are refused.
      await expectError(d.request({ prekeyUpload: prekeys(o.key.identity) }), 'BAD_REQUEST')
      // A first upload without the signed and last-resort KEM prekeys leaves no bundle to hand out.
      const partial = prekeys(key.identity)
      expect(
        await outcome(
          d.request({ prekeyUpload: { oneTimePrekeys: partial.oneTimePrekeys, oneTimeKemPrekeys: [] } }),
        ),
      ).toBe('BAD_REQUEST')
      await expectError(
        peer.client.request({ prekeyBundleQuery: { address: o.account.address, deviceId: 2 } }),
        'NOT_FOUND',
      )
      const upload = prekeys(key.identity)
      const uploaded = (await d.request({ prekeyUpload: upload })).prekeyUploaded!
      expect(uploaded.oneTimeCount).toBe(3)

      const bundle = (
        await peer.client.request({ prekeyBundleQuery: { address: o.account.address, deviceId: 2 } })
      ).prekeyBundle!
      expect(bundle.deviceId).toBe(2)
      expect(bundle.identityKey).toEqual(key.publicKey)
      expect(bundle.signedPrekey?.publicKey).toEqual(upload.signedPrekey.publicKey)
      expect(bundle.kemPrekey?.publicKey).toBeDefined()
      // The primary's bundle is its own (device_id 0 names the primary).
      const primary = (await peer.client.request({ prekeyBundleQuery: { address: o.account.address } }))
        .prekeyBundle!
      expect(primary.deviceId).toBe(o.account.deviceId)
      expect(primary.identityKey).toEqual(o.key.publicKey)
      for (const c of [d, o.client, peer.client]) c.close()
    })

    it('refuses a linked device publishing, a stale version, too many devices and a reused id', async () => {
      const o = await owner()
      const d = await link(o, 2)
      const before = await counts()
      const k3 = new SeedKey()
      // A linked device, authenticated as such, may not publish (even a list the identity signed).
      const next = list(o, 5, entries(o, new Map([...o.devices, [3, k3]])))
      await expectError(publish(d, next), 'FORBIDDEN')
      // Equal and lower versions.
      await expectError(publish(o.client, list(o, o.version, entries(o, o.devices))), 'CONFLICT')
      await expectError(publish(o.client, list(o, 0, entries(o, new Map()))), 'CONFLICT')
      // More than --max-linked-devices (2).
      const three = new Map([...o.devices, [3, k3], [4, new SeedKey()]])
      await expectError(publish(o.client, list(o, o.version + 1, entries(o, three))), 'TOO_LARGE')
      // A kept device's key changed.
      const swapped = new Map([[2, new SeedKey()]])
      await expectError(publish(o.client, list(o, o.version + 1, entries(o, swapped))), 'CONFLICT')
      const after = await counts()
      // FORBIDDEN is decided before the list is read; the other four are refused lists.
      expect(after.listsRefused - before.listsRefused).toBe(4)
      expect(after.listsStored - before.listsStored).toBe(0)
      // What every party is served is still the list published last, to the linked device too.
      expect((await storedList(o.client, o.account.address)).deviceList).toEqual(o.published)
      expect((await storedList(d, o.account.address)).deviceList).toEqual(o.published)
      expect((await d.request({ ping: {} })).body).toBe('pong')

      // Remove device 2, then try to add it back (or any id not above 2): a new device takes a fresh id.
      await publishLinked(o, new Map())
      await expectError(
        publish(o.client, list(o, o.version + 1, entries(o, new Map([[2, new SeedKey()]])))),
        'CONFLICT',
      )
      // Exactly --max-linked-devices, with fresh ids, is within the limit.
      await publishLinked(
        o,
        new Map([
          [3, k3],
          [4, new SeedKey()],
        ]),
      )
      expect(o.version).toBe(3)
      expect((await storedList(o.client, o.account.address)).deviceList).toEqual(o.published)
      d.close()
      o.client.close()
    })
  })

  describe('removal', () => {
    it("tells and closes the removed device's connection, refuses it afterwards and erases its mail and prekeys", async () => {
      const o = await owner()
      const d = await link(o, 2)
      await d.request({ syncMailbox: { afterSeq: 0 } })
      // Mail waiting for the device, from a contact.
      const peer = await owner()
      await peer.client.request({
        multiSend: {
          recipientAddress: o.account.address,
          messageId: messageId(),
          deviceListVersion: o.version,
          envelopes: [
            { deviceId: o.account.deviceId, envelope: sealedShape('to primary') },
            { deviceId: 2, envelope: sealedShape('to device') },
          ],
        },
      })
      await d.push((f) => f.body === 'delivery')
      expect(rowsOf(o.account.address, 2)).toEqual({ device: 1, mail: 1, prekeys: 3 })

      const key = o.devices.get(2)!
      const before = await counts()
      await publishLinked(o, new Map())
      const told = await d.push((f) => f.body === 'deviceReplaced')
      expect(told.deviceReplaced).toMatchObject({ removed: true, erased: false })
      await d.closed
      expect((await counts()).removed - before.removed).toBe(1)
      // Only the removed device is closed: the primary's connection goes on.
      expect(await outcome(o.client.request({ ping: {} }))).toBe('pong')

      await expectError(
        login(relay.url, { ...o.account, deviceId: 2, identity: key.identity }),
        'UNAUTHENTICATED',
      )
      await expectError(
        peer.client.request({ prekeyBundleQuery: { address: o.account.address, deviceId: 2 } }),
        'NOT_FOUND',
      )
      expect(rowsOf(o.account.address, 2)).toEqual({ device: 0, mail: 0, prekeys: 0 })
      // The primary's own mail is untouched.
      expect(rowsOf(o.account.address, o.account.deviceId).mail).toBe(1)
      // A sender that still knows the old list is told the new version; the one-device path is open again.
      const stale = await expectError(
        peer.client.request({
          multiSend: {
            recipientAddress: o.account.address,
            messageId: messageId(),
            deviceListVersion: o.version - 1,
            envelopes: [1, 2].map((deviceId) => ({ deviceId, envelope: sealedShape('stale') })),
          },
        }),
        'STALE_DEVICES',
      )
      expect(stale.deviceListVersion).toBe(o.version)
      const plain = await peer.client.request({
        sendMessage: {
          recipientAddress: o.account.address,
          recipientDeviceId: o.account.deviceId,
          messageId: messageId(),
          envelope: sealedShape('plain again'),
        },
      })
      expect(plain.body).toBe('messageAccepted')
      expect(rowsOf(o.account.address, 2).mail).toBe(0)
      o.client.close()
      peer.client.close()
    })
  })

  describe('link rendezvous', () => {
    const open = async (c: RawClient) =>
      (await c.request({ openRendezvous: {} })).rendezvousOpened!.rendezvousId
    const post = (c: RawClient, rendezvousId: Uint8Array, side: number, sealed: Uint8Array | string) =>
      c.request({
        rendezvousPost: {
          rendezvousId,
          side,
          sealed: typeof sealed === 'string' ? new TextEncoder().encode(sealed) : sealed,
        },
      })
    const read = async (c: RawClient, rendezvousId: Uint8Array, side: number) =>
      new TextDecoder().decode(
        (await c.request({ rendezvousRead: { rendezvousId, side } })).rendezvousMessage!.sealed,
      )

    it('lets only the primary open one; each side takes one message; only the opener answers and reads', async () => {
      const o = await owner()
      const d = await link(o, 2)
      const mallory = await owner()
      await expectError(d.request({ openRendezvous: {} }), 'FORBIDDEN')
      const id = await open(o.client)

      // The new device's request: any unauthenticated connection may post it, once.
      const net = freshNetwork()
      const newDevice = await RawClient.open(relay.url, net)
      const thief = await RawClient.open(relay.url, net)
      await post(newDevice, id, PRIMARY, 'request')
      await expectError(post(thief, id, PRIMARY, 'second request'), 'CONFLICT')
      // The answer: not before authentication, not by another account.
      await expectError(post(thief, id, DEVICE, 'forged answer'), 'UNAUTHENTICATED')
      await expectError(post(mallory.client, id, DEVICE, 'forged answer'), 'FORBIDDEN')
      // Another account reads nothing of the request, an unauthenticated connection may not ask; the opener reads it.
      await expectError(
        thief.request({ rendezvousRead: { rendezvousId: id, side: PRIMARY } }),
        'UNAUTHENTICATED',
      )
      expect(await read(mallory.client, id, PRIMARY)).toBe('')
      expect(await read(o.client, id, PRIMARY)).toBe('request')
      // Oversize (> 16 KiB) is refused before anything else.
      await expectError(post(o.client, id, DEVICE, new Uint8Array(16 * 1024 + 1)), 'TOO_LARGE')
      await post(o.client, id, DEVICE, 'grant')
      await expectError(post(o.client, id, DEVICE, 'second grant'), 'CONFLICT')
      // The new device reads the answer, which ends the rendezvous: nothing further for anyone.
      expect(await read(newDevice, id, DEVICE)).toBe('grant')
      expect(await read(thief, id, DEVICE)).toBe('')
      await expectError(post(o.client, id, DEVICE, 'late'), 'NOT_FOUND')
      await expectError(post(o.client, id, PRIMARY, 'late'), 'NOT_FOUND')
      for (const c of [o.client, d, mallory.client, newDevice, thief]) c.close()
    })

    it('limits unauthenticated rendezvous requests per source network, and openings per account', async () => {
      const o = await owner()
      const before = await counts()
      const net = freshNetwork()
      const a = await RawClient.open(relay.url, net)
      const b = await RawClient.open(relay.url, net)
      const unknown = new Uint8Array(randomBytes(16))
      const results: string[] = []
      for (let i = 0; i < RENDEZVOUS_PER_NETWORK + 2; i++) {
        const c = i % 2 === 0 ? a : b
        results.push(
          await outcome(
            i % 3 === 0
              ? c.request({
                  rendezvousPost: { rendezvousId: unknown, side: PRIMARY, sealed: new Uint8Array(8) },
                })
              : c.request({ rendezvousRead: { rendezvousId: unknown, side: DEVICE } }),
          ),
        )
      }
      expect(results.filter((r) => r === 'RATE_LIMITED')).toHaveLength(2)
      expect(results.slice(0, RENDEZVOUS_PER_NETWORK)).not.toContain('RATE_LIMITED')
      // Another network has its own budget; the opener's (authenticated) reads are not charged to any network.
      const other = await RawClient.open(relay.url, freshNetwork())
      expect(await outcome(other.request({ rendezvousRead: { rendezvousId: unknown, side: DEVICE } }))).toBe(
        'rendezvousMessage',
      )

      const opened: string[] = []
      for (let i = 0; i < LINKS_PER_HOUR + 1; i++)
        opened.push(await outcome(o.client.request({ openRendezvous: {} })))
      expect(opened.filter((r) => r === 'rendezvousOpened')).toHaveLength(LINKS_PER_HOUR)
      expect(opened.at(-1)).toBe('RATE_LIMITED')
      const after = await counts()
      expect(after.rdvNetwork - before.rdvNetwork).toBe(2)
      expect(after.links - before.links).toBe(1)
      for (const c of [o.client, a, b, other]) c.close()
    })
  })

  describe('MultiSend', () => {
    /** An account with a linked device (id 2), both connections synced; and a contact. */
    async function household() {
      const alice = await owner()
      const laptop = await link(alice, 2)
      await alice.client.request({ syncMailbox: { afterSeq: 0 } })
      await laptop.request({ syncMailbox: { afterSeq: 0 } })
      const bob = await owner()
      return { alice, laptop, bob }
    }
    const multi = (
      c: RawClient,
      to: Owner,
      ids: number[],
      opts: { version?: number; id?: Uint8Array; token?: Uint8Array } = {},
    ) =>
      c.request({
        multiSend: {
          recipientAddress: to.account.address,
          messageId: opts.id ?? messageId(),
          deviceListVersion: opts.version ?? to.version,
          envelopes: ids.map((deviceId) => ({ deviceId, envelope: sealedShape(`to ${deviceId}`) })),
          deliveryToken: opts.token ?? new Uint8Array(),
        },
      })
    /** The mailbox heads of alice's devices, as each sees it on authenticating. */
    const heads = async (o: Owner) => {
      const out: number[] = []
      for (const id of [o.account.deviceId, ...o.devices.keys()]) {
        const account = id === o.account.deviceId ? o.account : deviceAccount(o, id)
        const { client, head } = await login(relay.url, account)
        client.close()
        out.push(head)
      }
      return out
    }

    it('refuses a send to a stale or wrong set of devices with STALE_DEVICES, storing nothing', async () => {
      const { alice, laptop, bob } = await household()
      const before = await counts()
      const onlyPrimary = await expectError(multi(bob.client, alice, [1]), 'STALE_DEVICES')
      expect(onlyPrimary.deviceListVersion).toBe(alice.version)
      const unknown = await expectError(multi(bob.client, alice, [1, 2, 9]), 'STALE_DEVICES')
      expect(unknown.deviceListVersion).toBe(alice.version)
      const wrongVersion = await expectError(
        multi(bob.client, alice, [1, 2], { version: 0 }),
        'STALE_DEVICES',
      )
      expect(wrongVersion.deviceListVersion).toBe(alice.version)
      await expectError(multi(bob.client, alice, [1, 2], { version: alice.version + 1 }), 'STALE_DEVICES')
      await expectError(multi(bob.client, alice, [1, 2, 2]), 'BAD_REQUEST')
      await expectError(multi(bob.client, alice, [0, 1, 2]), 'BAD_REQUEST')
      await expectError(
        multi(
          bob.client,
          alice,
          Array.from({ length: 17 }, (_, i) => i + 1),
        ),
        'TOO_LARGE',
      )
      // A delivery token on an authenticated connection.
      await expectError(multi(bob.client, alice, [1, 2], { token: new Uint8Array(32) }), 'BAD_REQUEST')
      // The one-device paths cannot reach an account with linked devices.
      const plain = await expectError(
        bob.client.request({
          sendMessage: {
            recipientAddress: alice.account.address,
            recipientDeviceId: 1,
            messageId: messageId(),
            envelope: sealedShape('plain'),
          },
        }),
        'STALE_DEVICES',
      )
      expect(plain.deviceListVersion).toBe(alice.version)
      const token = new Uint8Array(randomBytes(32))
      await alice.client.request({ setDeliveryToken: { verifier: deliveryTokenVerifier(token) } })
      const anon = await RawClient.open(relay.url, freshNetwork())
      await expectError(
        anon.request({
          unidentifiedSend: {
            recipientAddress: alice.account.address,
            recipientDeviceId: 1,
            messageId: messageId(),
            envelope: sealedShape('unidentified'),
            deliveryToken: token,
          },
        }),
        'STALE_DEVICES',
      )

      const after = await counts()
      expect(after.multiStale - before.multiStale).toBe(4)
      expect(after.accepted - before.accepted).toBe(0)
      expect(await heads(alice)).toEqual([0, 0])
      expect(alice.client.deliveries()).toHaveLength(0)
      expect(laptop.deliveries()).toHaveLength(0)
      for (const c of [alice.client, laptop, bob.client, anon]) c.close()
    })

    it('charges an unidentified MultiSend once per message, however many devices it is copied to', async () => {
      const { alice, laptop, bob } = await household()
      const token = new Uint8Array(randomBytes(32))
      await alice.client.request({ setDeliveryToken: { verifier: deliveryTokenVerifier(token) } })
      const anon = await RawClient.open(relay.url, freshNetwork())
      // The recipient's unidentified bucket holds 600 (the default): 400 messages of two copies each fit when a
      // message costs one, and would stop at the 301st if each copy cost one.
      const SENDS = 400
      const answers: string[] = []
      for (let i = 0; i < SENDS; i++) answers.push(await outcome(multi(anon, alice, [1, 2], { token })))
      expect(answers.filter((a) => a === 'messageAccepted')).toHaveLength(SENDS)
      expect(await heads(alice)).toEqual([SENDS, SENDS])
      for (const c of [alice.client, laptop, bob.client, anon]) c.close()
    })

    it('delivers the exact set to every device once, idempotently; to its own account, every other device', async () => {
      const { alice, laptop, bob } = await household()
      const before = await counts()
      const id = messageId()
      expect((await multi(bob.client, alice, [2, 1], { id })).messageAccepted?.messageId).toEqual(id)
      const [p, l] = await Promise.all([
        alice.client.push((f) => f.body === 'delivery'),
        laptop.push((f) => f.body === 'delivery'),
      ])
      expect(p.delivery!.messageId).toEqual(id)
      expect(l.delivery!.messageId).toEqual(id)
      // A retry (the same message id) stores nothing new.
      expect((await multi(bob.client, alice, [1, 2], { id })).messageAccepted?.messageId).toEqual(id)
      const mid = await counts()
      expect(mid.accepted - before.accepted).toBe(2)
      expect(mid.multiStored - before.multiStored).toBe(2)
      expect(await heads(alice)).toEqual([1, 1])

      // From the laptop to its own account: every device but itself (naming itself too is stale).
      await expectError(multi(laptop, alice, [1, 2]), 'STALE_DEVICES')
      const own = messageId()
      await multi(laptop, alice, [1], { id: own })
      const transcript = await alice.client.push((f) => f.body === 'delivery' && f.delivery!.seq === 2)
      expect(transcript.delivery!.messageId).toEqual(own)
      expect(await heads(alice)).toEqual([2, 1])
      expect(laptop.deliveries()).toHaveLength(1)
      // The primary writing to its own account names the laptop alone.
      await expectError(multi(alice.client, alice, [1, 2]), 'STALE_DEVICES')
      await multi(alice.client, alice, [2])
      expect(await heads(alice)).toEqual([2, 2])
      for (const c of [alice.client, laptop, bob.client]) c.close()
    })

    it('unidentified: a wrong token is FORBIDDEN, as no account is; the right token stores every copy', async () => {
      const { alice, laptop, bob } = await household()
      const token = new Uint8Array(randomBytes(32))
      await alice.client.request({ setDeliveryToken: { verifier: deliveryTokenVerifier(token) } })
      const before = await counts()
      const net = freshNetwork()
      const anon = await RawClient.open(relay.url, net)
      await expectError(multi(anon, alice, [1, 2], { token: new Uint8Array(randomBytes(32)) }), 'FORBIDDEN')
      const nobody = { ...bob, account: { ...bob.account, address: new Uint8Array(randomBytes(32)) } }
      await expectError(multi(anon, nobody, [1], { token }), 'FORBIDDEN')
      // bob never set a token: the same answer.
      await expectError(multi(anon, bob, [1], { token }), 'FORBIDDEN')
      // The right token, the wrong set: stale, as identified.
      await expectError(multi(anon, alice, [1], { token }), 'STALE_DEVICES')
      const mid = await counts()
      expect(mid.multiRefused - before.multiRefused).toBe(3)
      expect(mid.accepted - before.accepted).toBe(0)
      expect(await heads(alice)).toEqual([0, 0])

      const id = messageId()
      expect((await multi(anon, alice, [1, 2], { token, id })).messageAccepted?.messageId).toEqual(id)
      await Promise.all([
        alice.client.push((f) => f.body === 'delivery'),
        laptop.push((f) => f.body === 'delivery'),
      ])
      expect((await counts()).accepted - mid.accepted).toBe(2)
      expect(await heads(alice)).toEqual([1, 1])
      // The anonymous connection can never authenticate now.
      await expectError(
        anon.request({
          authenticate: { address: bob.account.address, deviceId: 1, signature: new Uint8Array(64) },
        }),
        'BAD_REQUEST',
      )
      for (const c of [alice.client, laptop, bob.client, anon]) c.close()
    })
  })

  describe('deactivation', () => {
    it('is refused to a linked device, and from the primary closes every device and erases the list', async () => {
      const o = await owner()
      const d = await link(o, 2)
      const peer = await owner()
      await expectError(d.request({ deactivate: {} }), 'FORBIDDEN')
      // Intact: the device still works, the list is served, the primary still authenticates.
      expect((await storedList(peer.client, o.account.address)).deviceList.length).toBeGreaterThan(0)
      expect(await outcome(d.request({ ping: {} }))).toBe('pong')
      const { client: second } = await login(relay.url, o.account)
      const rendezvousId = (await o.client.request({ openRendezvous: {} })).rendezvousOpened!.rendezvousId

      expect(await outcome(o.client.request({ deactivate: {} }))).toBe('deactivated')
      for (const c of [d, second]) {
        const told = await c.push((f) => f.body === 'deviceReplaced')
        expect(told.deviceReplaced).toMatchObject({ erased: true })
        await c.closed
      }
      await expectError(peer.client.request({ deviceListQuery: { address: o.account.address } }), 'NOT_FOUND')
      await expectError(login(relay.url, deviceAccount(o, 2)), 'UNAUTHENTICATED')
      expect(rowsOf(o.account.address, 2)).toEqual({ device: 0, mail: 0, prekeys: 0 })
      // Its open rendezvous went with it.
      await expectError(
        peer.client.request({ rendezvousPost: { rendezvousId, side: PRIMARY, sealed: new Uint8Array(8) } }),
        'NOT_FOUND',
      )
      o.client.close()
      peer.client.close()
    })
  })

  describe("a linked device and the account's settings", () => {
    it('may not set the delivery token, the registration lock or move the address; the account is intact', async () => {
      const o = await owner()
      const d = await link(o, 2)
      const token = new Uint8Array(randomBytes(32))
      await o.client.request({ setDeliveryToken: { verifier: deliveryTokenVerifier(token) } })
      const mine = new Uint8Array(randomBytes(32))
      const answers = [
        await outcome(d.request({ setDeliveryToken: { verifier: deliveryTokenVerifier(mine) } })),
        await outcome(d.request({ setDeliveryToken: { verifier: new Uint8Array() } })),
        await outcome(
          d.request({
            setRegistrationLock: { salt: new Uint8Array(16), logN: 14, verifier: new Uint8Array(32) },
          }),
        ),
        await outcome(
          d.request({
            rebindAddress: {
              phoneNumber: o.account.number,
              numberSalt: new Uint8Array(32),
              keyId: d.hello!.oprfKeys.at(-1)!.keyId,
              blindedNumber: new Uint8Array(),
            },
          }),
        ),
      ]
      // Refused as not the primary's to do, as Deactivate is, not as a device that was removed.
      expect(answers).toEqual(['FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN'])
      // The device is still linked and its connection open.
      expect(await outcome(d.request({ ping: {} }))).toBe('pong')
      // The primary's token still reaches both devices; the attacker's does not.
      const anon = await RawClient.open(relay.url, freshNetwork())
      const send = (t: Uint8Array) =>
        anon.request({
          multiSend: {
            recipientAddress: o.account.address,
            messageId: messageId(),
            deviceListVersion: o.version,
            envelopes: [1, 2].map((deviceId) => ({ deviceId, envelope: sealedShape('x') })),
            deliveryToken: t,
          },
        })
      await expectError(send(mine), 'FORBIDDEN')
      expect((await send(token)).body).toBe('messageAccepted')
      // No registration lock was set.
      const db = new Database(join(relay.dataDir, 'relay.db'), { readonly: true })
      const locks = (
        db
          .prepare('SELECT count(*) AS n FROM registration_locks WHERE address = ?')
          .get(Buffer.from(o.account.address)) as {
          n: number
        }
      ).n
      db.close()
      expect(locks).toBe(0)
      for (const c of [o.client, d, anon]) c.close()
    })
  })

  describe('quotas', () => {
    it("a linked device spends its account's quotas: linking devices buys no new bundle fetches", async () => {
      const o = await owner()
      const d1 = await link(o, 2)
      const d2 = await link(o, 3)
      const peer = await owner()
      const before = await counts()
      const bundleOf = (c: RawClient) =>
        outcome(c.request({ prekeyBundleQuery: { address: peer.account.address } }))
      const answers: string[] = []
      for (let i = 0; i < BUNDLES + 3; i++) answers.push(await bundleOf([o.client, d1, d2][i % 3]!))
      expect(answers.filter((a) => a === 'prekeyBundle')).toHaveLength(BUNDLES)
      expect(answers.slice(BUNDLES)).toEqual(['RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED'])
      // The device list query is paid from the same account bucket.
      await expectError(d1.request({ deviceListQuery: { address: peer.account.address } }), 'RATE_LIMITED')
      expect((await counts()).bundle - before.bundle).toBe(4)
      // Another account's quota is its own.
      expect(await bundleOf(peer.client)).toBe('prekeyBundle')
      for (const c of [o.client, d1, d2, peer.client]) c.close()
    })
  })

  describe('sender certificates', () => {
    it("a linked device's certificate names the device's id and key, not the primary's", async () => {
      const o = await owner()
      const d = await link(o, 2)
      const atMs = Date.now()
      const issued = (await d.request({ senderCertificateRequest: {} })).senderCertificateIssued!.certificate
      const cert = verifySenderCertificate(issued, { trustRoot: d.hello!.trustRoot!, atMs })
      expect(cert.address).toEqual(o.account.address)
      expect(cert.deviceId).toBe(2)
      expect(cert.identityKey).toEqual(o.devices.get(2)!.publicKey)
      const primary = verifySenderCertificate(
        (await o.client.request({ senderCertificateRequest: {} })).senderCertificateIssued!.certificate,
        { trustRoot: o.client.hello!.trustRoot!, atMs },
      )
      expect(primary.deviceId).toBe(o.account.deviceId)
      expect(primary.identityKey).toEqual(o.key.publicKey)
      expect(primary.numberCommitment).toEqual(cert.numberCommitment)
      d.close()
      o.client.close()
    })
  })
})

describe('an expired link rendezvous, on a relay process', () => {
  let relay: RelayProcess
  beforeAll(async () => {
    relay = await spawnDevRelay(['--link-ttl-seconds', '1'])
  })
  afterAll(async () => {
    await relay?.stop()
  })

  it('takes no message once its TTL passed', async () => {
    const c = await RawClient.open(relay.url, ACTIVATING)
    await activate(c, relay, '+14155550390')
    const opened = (await c.request({ openRendezvous: {} })).rendezvousOpened!
    expect(opened.expiresInSeconds).toBe(1)
    const newDevice = await RawClient.open(relay.url, freshNetwork())
    const sealed = new Uint8Array(8)
    // Past its expiry (the relay's clock: wait until a post is refused, at most a few seconds).
    let answer = ''
    for (let i = 0; i < 30 && answer !== 'NOT_FOUND'; i++) {
      await new Promise((r) => setTimeout(r, 200))
      answer = await outcome(
        c.request({ rendezvousPost: { rendezvousId: opened.rendezvousId, side: DEVICE, sealed } }),
      )
      // Before expiry the first post is taken and the rest CONFLICT; nothing else is a valid answer.
      expect(['rendezvousPosted', 'CONFLICT', 'NOT_FOUND']).toContain(answer)
    }
    expect(answer).toBe('NOT_FOUND')
    await expectError(
      newDevice.request({ rendezvousPost: { rendezvousId: opened.rendezvousId, side: PRIMARY, sealed } }),
      'NOT_FOUND',
    )
    const m = await scrape(relay.metricsUrl)
    expect(metric(m, 'parley_relay_rendezvous_total', { event: 'missing' })).toBeGreaterThanOrEqual(2)
    c.close()
    newDevice.close()
  })
})
