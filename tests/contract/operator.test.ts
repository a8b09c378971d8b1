// The operator's holds against a real relay process, as the operator and a held user meet them: `parley-relay
// admin ban <number>` run beside the running relay closes the account's open connection within a sweep, its next
// login is FORBIDDEN and so is a new activation of its number; the mail waiting for it stays (and is there after
// `unban`); `admin revoke` cuts one device off until the number is activated again; honest accounts see none of
// it; a banned account's SDK client makes one login, is told FORBIDDEN and stops; and no command prints the
// number. On SQLite and on PostgreSQL + Redis.
import { join } from 'node:path'
import type { ParleyError } from '@parley/node'
import { expect, it } from 'vitest'
import { login, metric, readDevice } from './attacker.js'
import { activatedClient, clientDir, nodeClient, until } from './harness.js'
import { onEveryStore } from './stores.js'
import { useRelay } from './useRelay.js'

/** The digits of a number, as they would appear if a command printed it in any format. */
const digits = (e164: string) => e164.slice(1)

function operatorSuite(storeArgs: string[]) {
  // A sweep a second: a ban made by another process reaches open connections within about that.
  const env = useRelay([...storeArgs, '--sweep-interval-seconds', '1'])
  const dir = clientDir()
  const storeFlag = storeArgs.slice(0, 2)
  const admin = (...args: string[]) => {
    const r = env.relay.command(['admin', ...args, ...storeFlag])
    return { ...r, text: r.stdout + r.stderr }
  }

  it('bans by number: open connection closed, login and activation FORBIDDEN, mail kept, honest account unaffected', async () => {
    const banned = '+14155550181'
    const honest = '+14155550182'
    const bannedPath = join(dir, 'banned.db')
    const honestPath = join(dir, 'honest.db')
    const b = await activatedClient(env.relay, env.codes, banned, { storePath: bannedPath })
    const h = await activatedClient(env.relay, env.codes, honest, { storePath: honestPath })
    await h.send(banned, 'waiting for you')
    await until(async () => (await b.history()).length === 1, 15_000, 'first message')
    await b.close()
    await h.send(banned, 'pending while you were away')
    await until(async () => (await h.pendingCount()) === 0, 15_000, 'the pending message accepted')
    await h.close()
    const bannedDevice = await readDevice(bannedPath)
    const honestDevice = await readDevice(honestPath)
    const open = await login(env.relay.baseUrl, bannedDevice)
    const closed = new Promise<number>((resolve) => open.ws.once('close', (code) => resolve(code)))

    const ban = admin('ban', banned)
    expect(ban.status).toBe(0)
    expect(ban.stdout).toContain(Buffer.from(bannedDevice.address).toString('hex'))
    expect(ban.stdout).toMatch(/ banned$/m)
    expect(ban.text).not.toContain(digits(banned))

    // The relay learns of it from the store: the open connection is closed at its next sweep.
    expect(await Promise.race([closed, new Promise((r) => setTimeout(r, 8000, 'open'))])).toBe(4001)
    await expect(login(env.relay.baseUrl, bannedDevice)).rejects.toMatchObject({ code: 'FORBIDDEN' })
    // A new activation of the number (the SMS code received) is refused too, with the same code.
    const again = await nodeClient(env.relay, { storePath: join(dir, 'again.db') })
    const pending = await again.activate({ phoneNumber: banned, consent: true })
    const refused = await again.confirm(await env.codes.next(pending.e164)).catch((e: ParleyError) => e)
    expect((refused as ParleyError).code).toBe('FORBIDDEN')
    await again.close()
    // Refused before the device was registered: the banned device is still the account's.
    expect(admin('devices', banned).stdout).toMatch(
      new RegExp(`device ${bannedDevice.deviceId} .* banned$`, 'm'),
    )

    // The honest account logs in as before.
    const ok = await login(env.relay.baseUrl, honestDevice)
    ok.close()

    // The operator's listing: by address, with the mail still waiting and the hold; never the number.
    const list = admin('accounts')
    expect(list.status).toBe(0)
    const line = list.stdout
      .split('\n')
      .find((l) => l.startsWith(Buffer.from(bannedDevice.address).toString('hex')))
    expect(line).toMatch(/ mailbox 1 messages \d+ bytes .* banned$/)
    expect(list.text).not.toContain(digits(banned))
    expect(list.text).not.toContain(digits(honest))
    const stats = admin('stats')
    expect(stats.stdout).toMatch(/^accounts 2 \(banned 1, revoked 0\)$/m)

    // Unbanned: the device logs in again and the mail is still there.
    expect(admin('unban', banned).status).toBe(0)
    expect(admin('lookup', banned).stdout).toMatch(/ mailbox 1 messages /)
    const back = await nodeClient(env.relay, { storePath: bannedPath })
    await until(async () => (await back.history()).length === 2, 15_000, 'the mail kept through the ban')
    expect((await back.history()).map((m) => m.text)).toContain('pending while you were away')
    await back.close()
  })

  it('a client of a banned account logs in once, is told FORBIDDEN, and stops reconnecting', async () => {
    const number = '+14155550184'
    const path = join(dir, 'banned-client.db')
    const first = await activatedClient(env.relay, env.codes, number, { storePath: path })
    await first.close()
    expect(admin('ban', number).status).toBe(0)
    const logins = () => metric(env.relay.metricsUrl, 'parley_relay_frames_total', '{type="authenticate"}')
    const refusals = () => metric(env.relay.metricsUrl, 'parley_relay_errors_total', '{code="FORBIDDEN"}')
    const [loginsBefore, refusalsBefore] = [await logins(), await refusals()]

    // Restarted while banned (reconnecting every 50 ms to 1 s, as the harness's clients do).
    const banned = await nodeClient(env.relay, { storePath: path })
    const errors: ParleyError[] = []
    banned.on('error', (e) => {
      errors.push(e)
    })
    await until(() => errors.length > 0, 15_000, 'the refusal')
    expect(errors.map((e) => e.code)).toEqual(['FORBIDDEN'])
    expect(banned.connectionState).toBe('offline')
    // Long enough for several reconnects at that backoff: there are none.
    await new Promise((r) => setTimeout(r, 3000))
    expect(await logins()).toBe(loginsBefore + 1)
    expect(await refusals()).toBe(refusalsBefore + 1)
    expect(errors).toHaveLength(1)
    await expect(banned.send('+14155550182', 'from a banned account')).rejects.toMatchObject({
      code: 'FORBIDDEN',
    })
    expect(banned.activated).toBe(true)
    await banned.close()
    expect(admin('unban', number).status).toBe(0)
  })

  it('a client online when its account is banned is told FORBIDDEN, not replaced, and keeps its account for unban', async () => {
    const number = '+14155550185'
    const path = join(dir, 'online-banned.db')
    const online = await activatedClient(env.relay, env.codes, number, { storePath: path })
    const errors: ParleyError[] = []
    const replaced: unknown[] = []
    online.on('error', (e) => {
      errors.push(e)
    })
    online.on('deviceReplaced', (e) => {
      replaced.push(e)
    })
    expect(admin('ban', number).status).toBe(0)
    // Closed at the next sweep with FORBIDDEN; the reconnect's login is refused the same way, and it stops.
    await until(() => online.connectionState === 'offline' && errors.length > 0, 15_000, 'the ban applied')
    expect(new Set(errors.map((e) => e.code))).toEqual(new Set(['FORBIDDEN']))
    expect(replaced).toEqual([])
    expect(online.activated).toBe(true)
    await online.close()

    expect(admin('unban', number).status).toBe(0)
    const back = await nodeClient(env.relay, { storePath: path })
    await until(() => back.connectionState === 'online', 15_000, 'logged in again after unban')
    expect(back.activated).toBe(true)
    await back.close()
  })

  it('revokes a device: its connection is closed, its credentials fail, and activating the number again works', async () => {
    const number = '+14155550183'
    const path = join(dir, 'revoked.db')
    const c = await activatedClient(env.relay, env.codes, number, { storePath: path })
    await c.close()
    const device = await readDevice(path)
    const open = await login(env.relay.baseUrl, device)
    const closed = new Promise<number>((resolve) => open.ws.once('close', (code) => resolve(code)))
    const wrong = admin('revoke', number, '--device', String(device.deviceId + 1))
    expect(wrong.status).toBe(1)
    const revoke = admin('revoke', number)
    expect(revoke.status).toBe(0)
    expect(revoke.stdout).toContain(`device ${device.deviceId} revoked`)
    expect(revoke.text).not.toContain(digits(number))
    expect(await Promise.race([closed, new Promise((r) => setTimeout(r, 8000, 'open'))])).toBe(4001)
    await expect(login(env.relay.baseUrl, device)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' })
    expect(admin('devices', number).stdout).toMatch(new RegExp(`device ${device.deviceId} .* revoked$`, 'm'))
    // The number's owner activates again: a new device, not revoked.
    const fresh = await activatedClient(env.relay, env.codes, number, { storePath: join(dir, 'fresh.db') })
    expect(fresh.activated).toBe(true)
    await fresh.close()
    const now = admin('devices', number).stdout
    expect(now).toContain(`device ${device.deviceId + 1} `)
    expect(now).not.toMatch(/revoked/)
  })

  it('refuses junk input with a usage error and never echoes a number it could not parse', () => {
    const r = admin('ban', '+1415555018')
    expect(r.status).toBe(1)
    expect(r.text).toMatch(/phone number/)
    expect(r.text).not.toContain('415555018')
    expect(admin('ban', '--address', 'zz').status).toBe(2)
    expect(admin('frobnicate').status).toBe(2)
  })
}

onEveryStore('operator holds (parley-relay admin)', operatorSuite)
