// An OPRF key rotation on a running relay with several clients (`parley-relay oprf rotate`, then SIGHUP): every
// account moves to its address under the new key, discovery and messaging keep working across the switch (old
// sessions carry on, a first message still waiting for its reply is started again), a device that was away for
// the whole grace period still moves, the old key is deleted after it, and nobody is orphaned. The attacker's
// part: a rebind with someone else's number, or for a key that is not current, is refused and moves nothing.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createClient, type IncomingMessage, type ParleyClient, type ParleyError } from '@parley/node'
import { expect, it } from 'vitest'
import { login, metric, readDevice } from './attacker.js'
import { activatedClient, clientDir, type Relay, until } from './harness.js'
import { onEveryStore } from './stores.js'
import { useRelay } from './useRelay.js'

const NUMBERS = {
  alice: '+14155550191',
  bob: '+14155550192',
  carol: '+14155550193',
  dave: '+14155550194',
  eve: '+14155550195',
  mallory: '+14155550196',
}

const rebinds = (relay: Relay, outcome: string) =>
  metric(relay.metricsUrl, 'parley_relay_address_rebinds_total', `{outcome="${outcome}"}`)

const inbox = (c: ParleyClient) => {
  const got: IncomingMessage[] = []
  c.on('message', (m) => got.push(m))
  return got
}

const keyIdsInFile = (relay: Relay) =>
  (
    JSON.parse(readFileSync(join(relay.dataDir, 'oprf-keys.json'), 'utf8')) as { keys: { keyId: number }[] }
  ).keys.map((k) => k.keyId)

function rotationSuite(storeArgs: string[]) {
  const env = useRelay(['--membership-min-bucket', '0', ...storeArgs])
  const dir = clientDir()

  it('moves every account, keeps messaging and discovery working, orphans no one', async () => {
    // No receipts: a delivery receipt would answer Dave's first message, which this scenario keeps unanswered.
    const open = (name: keyof typeof NUMBERS) =>
      activatedClient(env.relay, env.codes, NUMBERS[name], {
        storePath: join(dir, `${name}.db`),
        receipts: { delivery: false, read: false },
      })
    const alice = await open('alice')
    const bob = await open('bob')
    const carol = await open('carol')
    const dave = await open('dave')
    const eve = await open('eve')
    const aliceGot = inbox(alice)
    const bobGot = inbox(bob)
    // Alice and Bob have a running session; Dave has sent Alice a first message she never answered; Carol has
    // only looked Alice up; Eve is away for the whole rotation.
    await bob.send(NUMBERS.alice, 'before 1')
    await until(() => aliceGot.length === 1, 15_000, 'before 1')
    await alice.send(NUMBERS.bob, 'before 2')
    await until(() => bobGot.length === 1, 15_000, 'before 2')
    await dave.send(NUMBERS.alice, 'dave before')
    await until(() => aliceGot.length === 2, 15_000, 'dave before')
    expect((await carol.discover([NUMBERS.alice]))[0]?.registered).toBe(true)
    // Carol also has a linked laptop, away during the rotation: only her primary rebinds.
    const laptop = await createClient({
      relayUrl: env.relay.baseUrl,
      storePath: join(dir, 'carol-laptop.db'),
      defaultRegion: 'US',
    })
    const invitation = await carol.createLinkCode({ confirm: () => true })
    await laptop.link(invitation.code)
    await invitation.linked
    await laptop.close()
    await eve.close()
    const before = {
      alice: alice.address,
      bob: bob.address,
      carol: carol.address,
      dave: dave.address,
    }
    const bundlesBefore = await metric(env.relay.metricsUrl, 'parley_relay_prekey_bundles_served_total')

    // The operator rotates, with a grace period of 12 s, and tells the relay at once.
    const rotated = env.relay.command(['oprf', 'rotate', '--grace', '12s'])
    expect(rotated.status).toBe(0)
    expect(rotated.stdout).toContain('OPRF key 2 is current')
    env.relay.signal('SIGHUP')
    await until(
      async () => (await metric(env.relay.metricsUrl, 'parley_relay_oprf_keys_served')) === 2,
      15_000,
      'both keys served',
    )
    // Every connected device reconnects, sees key 2 and moves.
    await until(async () => (await rebinds(env.relay, 'moved')) === 4, 30_000, 'four accounts moved')
    for (const [name, c] of Object.entries({ alice, bob, carol, dave })) {
      expect(c.address, name).not.toBe(before[name as keyof typeof before])
      await until(() => c.connectionState === 'online', 15_000, `${name} online`)
    }

    // Messaging across the switch: Bob still holds Alice's old address; the send follows her to the new one,
    // in the same session (no new prekey bundle), and she reads it in that session too.
    await bob.send(NUMBERS.alice, 'after 1')
    await until(() => aliceGot.some((m) => m.text === 'after 1'), 15_000, 'after 1')
    await alice.send(NUMBERS.bob, 'after 2')
    await until(() => bobGot.some((m) => m.text === 'after 2'), 15_000, 'after 2')
    expect(aliceGot.find((m) => m.text === 'after 1')?.from).toBe(NUMBERS.bob)
    expect(bobGot.find((m) => m.text === 'after 2')?.from).toBe(NUMBERS.alice)
    // Dave's first message was bound to the old addresses: his next send starts a new session (one bundle).
    await dave.send(NUMBERS.alice, 'dave after')
    await until(() => aliceGot.some((m) => m.text === 'dave after'), 15_000, 'dave after')
    expect(aliceGot.find((m) => m.text === 'dave after')?.from).toBe(NUMBERS.dave)
    expect(await metric(env.relay.metricsUrl, 'parley_relay_prekey_bundles_served_total')).toBe(
      bundlesBefore + 1,
    )
    // Carol's cached lookup is under key 1: she finds Alice under key 2 and writes to her.
    expect(
      (await carol.discover([NUMBERS.alice, NUMBERS.bob, NUMBERS.dave])).map((r) => r.registered),
    ).toEqual([true, true, true])
    await carol.send(NUMBERS.alice, 'carol after')
    await until(() => aliceGot.some((m) => m.text === 'carol after'), 15_000, 'carol after')
    // Carol's laptop comes back under her old address: the relay's forward logs it in at the new one, where
    // alice's message to carol reaches it too.
    const laptopBack = await createClient({
      relayUrl: env.relay.baseUrl,
      storePath: join(dir, 'carol-laptop.db'),
      defaultRegion: 'US',
    })
    const laptopGot = inbox(laptopBack)
    await until(() => laptopBack.address === carol.address, 15_000, 'the laptop follows carol')
    await alice.send(NUMBERS.carol, 'to both of carol’s devices')
    await until(() => laptopGot.some((m) => m.text === 'to both of carol’s devices'), 15_000, 'laptop reads')
    expect(
      await metric(env.relay.metricsUrl, 'parley_relay_address_forwards_total', '{outcome="followed"}'),
    ).toBe(1)
    await laptopBack.close()
    // Safety numbers did not change: the identities are the same, only the addresses moved.
    expect(await bob.safetyNumber(NUMBERS.alice)).toBe(await alice.safetyNumber(NUMBERS.bob))

    // After the grace period the old key is gone from the relay and its file (at the next sweep, or SIGHUP).
    await until(
      async () => {
        env.relay.signal('SIGHUP')
        await new Promise((r) => setTimeout(r, 500))
        return (await metric(env.relay.metricsUrl, 'parley_relay_oprf_keys_served')) === 1
      },
      30_000,
      'the old key deleted',
    )
    expect(keyIdsInFile(env.relay)).toEqual([2])
    // Eve comes back after it: she moves all the same (the move needs only the current key), and is found.
    const eveBack = await createClient({
      relayUrl: env.relay.baseUrl,
      storePath: join(dir, 'eve.db'),
      defaultRegion: 'US',
    })
    await until(async () => (await rebinds(env.relay, 'moved')) === 5, 30_000, 'eve moved')
    expect((await bob.discover([NUMBERS.eve]))[0]?.registered).toBe(true)
    const eveGot = inbox(eveBack)
    await bob.send(NUMBERS.eve, 'welcome back')
    await until(() => eveGot.some((m) => m.text === 'welcome back'), 15_000, 'eve reads')
    // Nobody was orphaned: five accounts, each at its new address only.
    const seen = await carol.discover(Object.values(NUMBERS).filter((n) => n !== NUMBERS.mallory))
    expect(seen.every((r) => r.registered)).toBe(true)
    // Each number reached the relay once more, and was not written down: not in its log.
    const log = env.relay.output.join('\n')
    expect(log).toContain('account moved to its address under the current OPRF key')
    for (const n of Object.values(NUMBERS)) expect(log).not.toContain(n.slice(2))
    await Promise.all([alice, bob, carol, dave, eveBack].map((c) => c.close()))
  })

  it('refuses a rebind to another number’s address, or under a key that is not current', async () => {
    const storePath = join(dir, 'mallory.db')
    const mallory = await activatedClient(env.relay, env.codes, NUMBERS.mallory, { storePath })
    await mallory.close()
    const keys = await readDevice(storePath)
    const conn = await login(env.relay.baseUrl, keys)
    const current = conn.hello.oprfKeys![0]!.keyId!
    const refusedBefore = await rebinds(env.relay, 'refused')
    const conflictBefore = await rebinds(env.relay, 'conflict')
    // Mallory claims Alice's number, with her own salt and with a made-up one: the commitment does not open.
    for (const salt of [keys.numberSalt, new Uint8Array(32).fill(7)]) {
      const err = await conn
        .request({ rebindAddress: { phoneNumber: NUMBERS.alice, numberSalt: salt, keyId: current } })
        .then(
          () => undefined,
          (e: unknown) => e as ParleyError,
        )
      expect(err?.code).toBe('FORBIDDEN')
    }
    const stale = await conn
      .request({
        rebindAddress: { phoneNumber: NUMBERS.mallory, numberSalt: keys.numberSalt, keyId: current + 7 },
      })
      .then(
        () => undefined,
        (e: unknown) => e as ParleyError,
      )
    expect(stale?.code).toBe('CONFLICT')
    expect(await rebinds(env.relay, 'refused')).toBe(refusedBefore + 2)
    expect(await rebinds(env.relay, 'conflict')).toBe(conflictBefore + 1)
    // Her own number is fine, and already current: nothing moves.
    const own = await conn.request({
      rebindAddress: { phoneNumber: NUMBERS.mallory, numberSalt: keys.numberSalt, keyId: current },
    })
    expect(Buffer.from(own.addressRebound!.address!).toString('hex')).toBe(
      Buffer.from(keys.address).toString('hex'),
    )
    expect(await rebinds(env.relay, 'current')).toBeGreaterThanOrEqual(1)
    conn.close()
  })
}

onEveryStore('an OPRF key rotation', rotationSuite)
