// A takeover made visible, against a real relay process: someone who receives the number's SMS code activates
// it on another device. The old device is told (`deviceReplaced`, counted on the relay) before it is cut off,
// stops reconnecting, is no longer activated, keeps its history, and can activate again; the mail that was waiting
// for it is kept for its identity key, never given to the taker, and restored when it takes the number back; an
// erasure of the account from another connection of the device says so (`erased: true`). On SQLite and on
// PostgreSQL + Redis.
import { join } from 'node:path'
import { createClient, type DeviceReplacedEvent, type ParleyClient, type ParleyError } from '@parley/node'
import { expect, it } from 'vitest'
import { login, metric, readDevice } from './attacker.js'
import { activatedClient, clientDir, until } from './harness.js'
import { onEveryStore } from './stores.js'
import { useRelay } from './useRelay.js'

const watch = (c: ParleyClient) => {
  const replaced: DeviceReplacedEvent[] = []
  const errors: ParleyError[] = []
  c.on('deviceReplaced', (e) => replaced.push(e))
  c.on('error', (e) => errors.push(e))
  return { replaced, errors }
}

function takeoverSuite(storeArgs: string[]) {
  const env = useRelay(storeArgs)
  const dir = clientDir()

  it('is told to the old device before it is cut off, which keeps its history and can activate again', async () => {
    const number = '+14155550171'
    const friend = await activatedClient(env.relay, env.codes, '+14155550172', {
      storePath: join(dir, 'f.db'),
    })
    const victim = await activatedClient(env.relay, env.codes, number, { storePath: join(dir, 'v.db') })
    await friend.send(number, 'hello before the takeover')
    await until(async () => (await victim.history()).length === 1, 15_000, 'the message')
    const seen = watch(victim)
    const before = await metric(
      env.relay.metricsUrl,
      'parley_relay_devices_replaced_total',
      '{reason="reactivated"}',
    )
    // The attacker got the SMS code (a swapped SIM) and activates the number on its own device.
    const attacker = await activatedClient(env.relay, env.codes, number, { storePath: join(dir, 'a.db') })
    await until(() => seen.replaced.length > 0, 15_000, 'deviceReplaced')
    expect(seen.replaced).toEqual([{ erased: false }])
    expect(victim.activated).toBe(false)
    expect(seen.errors.map((e) => e.code)).not.toContain('UNAUTHENTICATED')
    expect(
      await metric(env.relay.metricsUrl, 'parley_relay_devices_replaced_total', '{reason="reactivated"}'),
    ).toBe(before + 1)
    // No reconnection storm: it stays offline rather than retrying a device the relay no longer knows.
    await new Promise((r) => setTimeout(r, 500))
    expect(victim.connectionState).not.toBe('online')
    expect((await victim.history()).map((m) => m.text)).toEqual(['hello before the takeover'])
    // The owner takes the number back by activating it again.
    const pending = await victim.activate({ phoneNumber: number, consent: true })
    const attackerSeen = watch(attacker)
    await victim.confirm(await env.codes.next(pending.e164))
    expect(victim.activated).toBe(true)
    await until(() => attackerSeen.replaced.length > 0, 15_000, 'the attacker to be told')
    expect(attacker.activated).toBe(false)
    await Promise.all([friend.close(), victim.close(), attacker.close()])
  })

  it('keeps the mail waiting for the taken device for its identity key: not the taker’s, but restored when the device takes the number back', async () => {
    const number = '+14155550174'
    const storePath = join(dir, 'v2.db')
    const friend = await activatedClient(env.relay, env.codes, '+14155550175', {
      storePath: join(dir, 'f2.db'),
    })
    const victim = await activatedClient(env.relay, env.codes, number, { storePath })
    const safetyBefore = await (async () => {
      await friend.send(number, 'one')
      await until(async () => (await victim.history()).length === 1, 15_000, 'one')
      return friend.safetyNumber(number)
    })()
    await victim.close()
    // While the victim's phone is off, two more messages wait for it.
    await friend.send(number, 'two')
    await friend.send(number, 'three')
    await until(async () => (await friend.pendingCount()) === 0, 15_000, 'two and three accepted')
    const retained = () =>
      metric(env.relay.metricsUrl, 'parley_relay_retained_mail_total', '{outcome="retained"}')
    const restored = () =>
      metric(env.relay.metricsUrl, 'parley_relay_retained_mail_total', '{outcome="restored"}')
    const [retainedBefore, restoredBefore] = [await retained(), await restored()]
    // The number is taken: the taker gets none of the waiting mail (it is sealed to the victim's key anyway).
    const taker = await createClient({
      relayUrl: env.relay.baseUrl,
      storePath: join(dir, 't2.db'),
      defaultRegion: 'US',
    })
    const takerGot: string[] = []
    taker.on('message', (m) => takerGot.push(m.text))
    const takerErrors = watch(taker).errors
    const pendingTaker = await taker.activate({ phoneNumber: number, consent: true })
    const took = await taker.confirm(await env.codes.next(pendingTaker.e164))
    expect(took).toMatchObject({ replacedDevice: true, restoredMessages: 0 })
    expect(await retained()).toBe(retainedBefore + 2)
    // The victim's phone comes back on: it is told, then takes the number back with its own identity.
    const back = await createClient({ relayUrl: env.relay.baseUrl, storePath, defaultRegion: 'US' })
    const seen = watch(back)
    await until(() => seen.replaced.length > 0, 15_000, 'deviceReplaced on reconnect')
    expect(seen.replaced).toEqual([{ erased: false }])
    expect(back.activated).toBe(false)
    const pending = await back.activate({ phoneNumber: number, consent: true })
    const again = await back.confirm(await env.codes.next(pending.e164))
    expect(again).toMatchObject({ replacedDevice: true, restoredMessages: 2 })
    expect(await restored()).toBe(restoredBefore + 2)
    await until(async () => (await back.history()).length === 3, 15_000, 'two and three restored')
    expect((await back.history()).map((m) => m.text)).toEqual(['one', 'two', 'three'])
    // Same identity: the friend's safety number did not change, and the friend's next message gets through.
    await friend.send(number, 'four')
    await until(async () => (await back.history()).length === 4, 15_000, 'four')
    expect(await friend.safetyNumber(number)).toBe(safetyBefore)
    expect(takerGot).toEqual([])
    expect(takerErrors.map((e) => e.code)).not.toContain('DECRYPT_FAILED')
    await Promise.all([friend.close(), back.close(), taker.close()])
  })

  it('says erased when the account is deactivated from another connection of the device', async () => {
    const storePath = join(dir, 'e.db')
    const first = await activatedClient(env.relay, env.codes, '+14155550173', { storePath })
    await first.close()
    const keys = await readDevice(storePath)
    const device = await createClient({ relayUrl: env.relay.baseUrl, storePath, defaultRegion: 'US' })
    const seen = watch(device)
    await until(() => device.connectionState === 'online', 15_000, 'online')
    const other = await login(env.relay.baseUrl, keys)
    await other.request({ deactivate: {} })
    await until(() => seen.replaced.length > 0, 15_000, 'deviceReplaced')
    expect(seen.replaced).toEqual([{ erased: true }])
    expect(device.activated).toBe(false)
    other.close()
    await device.close()
  })
}

onEveryStore('a takeover of the number', takeoverSuite)
