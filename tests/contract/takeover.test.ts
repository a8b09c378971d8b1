// A takeover made visible, against a real relay process: someone who receives the number's SMS code activates
// it on another device. The old device is told (`deviceReplaced`, counted on the relay) before it is cut off,
// stops reconnecting, is no longer activated, keeps its history, and can activate again; an erasure of the
// account from another connection of the device says so (`erased: true`).
import { join } from 'node:path'
import { createClient, type DeviceReplacedEvent, type ParleyClient, type ParleyError } from '@parley/node'
import { describe, expect, it } from 'vitest'
import { login, metric, readDevice } from './attacker.js'
import { activatedClient, clientDir, until } from './harness.js'
import { useRelay } from './useRelay.js'

const watch = (c: ParleyClient) => {
  const replaced: DeviceReplacedEvent[] = []
  const errors: ParleyError[] = []
  c.on('deviceReplaced', (e) => replaced.push(e))
  c.on('error', (e) => errors.push(e))
  return { replaced, errors }
}

describe('a takeover of the number', () => {
  const env = useRelay()
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

  it('says erased when the account is deactivated from another connection of the device', async () => {
    const storePath = join(dir, 'e.db')
    const first = await activatedClient(env.relay, env.codes, '+14155550173', { storePath })
    await first.close()
    const keys = await readDevice(storePath)
    const device = await createClient({ relayUrl: env.relay.url, storePath, defaultRegion: 'US' })
    const seen = watch(device)
    await until(() => device.connectionState === 'online', 15_000, 'online')
    const other = await login(env.relay.url, keys)
    await other.request({ deactivate: {} })
    await until(() => seen.replaced.length > 0, 15_000, 'deviceReplaced')
    expect(seen.replaced).toEqual([{ erased: true }])
    expect(device.activated).toBe(false)
    other.close()
    await device.close()
  })
})
