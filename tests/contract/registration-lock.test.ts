// The registration lock against a real relay process, written as the SIM swapper's script: they receive the
// number's SMS code, so only the PIN stands between them and the account. Asserted on what the owner keeps (still
// activated, still online, still receiving), on the relay's counters and on what the swapper is told.
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { createClient, type DeviceReplacedEvent, type ParleyClient, ParleyError } from '@parley/node'
import { describe, expect, it } from 'vitest'
import { metric, RawConn } from './attacker.js'
import { activatedClient, type CodeInbox, clientDir, type Relay, until } from './harness.js'
import { onEveryStore } from './stores.js'
import { useRelay } from './useRelay.js'

const DAY_MS = 86_400_000
/** The same number is activated many times here: no backoff between its code requests. */
const CODES = [
  '--code-backoff-base-ms',
  '0',
  '--code-requests-per-hour',
  '100',
  '--code-guesses-per-number-per-hour',
  '100',
]

const lockMetric = (relay: Relay, outcome: string) =>
  metric(relay.metricsUrl, 'parley_relay_registration_lock_total', `{outcome="${outcome}"}`)

/** A new device of the swapper's, with the SMS code for `number` in hand; resolves the confirm's outcome. */
async function swap(
  relay: Relay,
  codes: CodeInbox,
  number: string,
  dir: string,
  pin?: string,
): Promise<{ client: ParleyClient; code: string; error?: ParleyError }> {
  const client = await createClient({
    relayUrl: relay.baseUrl,
    storePath: join(dir, `${randomBytes(4).toString('hex')}.db`),
    defaultRegion: 'US',
    reconnect: { minDelayMs: 50, maxDelayMs: 1000 },
  })
  const pending = await client.activate({ phoneNumber: number, consent: true, ...(pin ? { pin } : {}) })
  const code = await codes.next(pending.e164)
  const error = await client.confirm(code).then(
    () => undefined,
    (e: unknown) => e as ParleyError,
  )
  return { client, code, ...(error ? { error } : {}) }
}

const watchReplaced = (c: ParleyClient) => {
  const seen: DeviceReplacedEvent[] = []
  c.on('deviceReplaced', (e) => seen.push(e))
  return seen
}

function lockSuite(storeArgs: string[]) {
  const env = useRelay([...CODES, ...storeArgs])
  const dir = clientDir()

  it('refuses the SMS code alone, and a wrong PIN, leaving the owner in place; the right PIN gets in', async () => {
    const number = '+14155550181'
    const owner = await activatedClient(env.relay, env.codes, number, { storePath: join(dir, 'o.db') })
    const friend = await activatedClient(env.relay, env.codes, '+14155550182', {
      storePath: join(dir, 'f.db'),
    })
    await owner.setRegistrationLock('4921')
    expect(await lockMetric(env.relay, 'set')).toBe(1)
    const replaced = watchReplaced(owner)

    // 1. The swapper has the code but no PIN.
    const first = await swap(env.relay, env.codes, number, dir)
    expect(first.error).toBeInstanceOf(ParleyError)
    expect(first.error?.code).toBe('REGISTRATION_LOCKED')
    expect(first.error?.registrationLock?.attemptsLeft).toBe(5)
    expect(first.error?.registrationLock?.logN).toBe(15)
    // Lapses a week after the owner's last activity (the lock was set just now).
    const lapses = first.error?.registrationLock?.lapsesInMs ?? 0
    expect(lapses).toBeGreaterThan(7 * DAY_MS - 120_000)
    expect(lapses).toBeLessThanOrEqual(7 * DAY_MS)
    expect(first.client.activated).toBe(false)
    expect(await lockMetric(env.relay, 'missing')).toBe(1)

    // 2. Two guesses, through the SDK (the activation stays pending: same code, same activation).
    for (const [pin, left] of [
      ['0000', 4],
      ['1234', 3],
    ] as const) {
      const err = await first.client.confirm(first.code, { pin }).catch((e: unknown) => e as ParleyError)
      expect((err as ParleyError).code).toBe('REGISTRATION_LOCKED')
      expect((err as ParleyError).registrationLock?.attemptsLeft).toBe(left)
    }
    expect(await lockMetric(env.relay, 'wrong')).toBe(2)
    expect(first.client.activated).toBe(false)

    // The owner never noticed: still activated, online, and receiving.
    expect(replaced).toEqual([])
    expect(owner.activated).toBe(true)
    await friend.send(number, 'still yours')
    await until(async () => (await owner.history()).some((m) => m.text === 'still yours'), 15_000, 'delivery')
    expect(
      await metric(env.relay.metricsUrl, 'parley_relay_devices_replaced_total', '{reason="reactivated"}'),
    ).toBe(0)

    // 3. The owner, on a new phone, gives the PIN to activate(): proved on the relay's challenge, in place.
    const newPhone = await swap(env.relay, env.codes, number, dir, ' 4921 ')
    expect(newPhone.error).toBeUndefined()
    expect(newPhone.client.activated).toBe(true)
    expect(await lockMetric(env.relay, 'proved')).toBe(1)
    await until(() => replaced.length > 0, 15_000, 'deviceReplaced on the old phone')
    expect(replaced).toEqual([{ erased: false }])

    // 4. The lock stayed with the account: the code alone is still not enough, and the guesses came back.
    const again = await swap(env.relay, env.codes, number, dir)
    expect(again.error?.code).toBe('REGISTRATION_LOCKED')
    expect(again.error?.registrationLock?.attemptsLeft).toBe(5)
    await Promise.all([owner, friend, first.client, newPhone.client, again.client].map((c) => c.close()))
  })

  it('an attacker’s raw guesses stop at the daily budget, then even the right PIN waits', async () => {
    const number = '+14155550183'
    const owner = await activatedClient(env.relay, env.codes, number, { storePath: join(dir, 'o2.db') })
    await owner.setRegistrationLock('correct horse')
    const wrongBefore = await lockMetric(env.relay, 'wrong')
    const exhaustedBefore = await lockMetric(env.relay, 'exhausted')
    // The attacker's own script: one activation, the code, and proofs it made up (no scrypt needed to guess).
    const raw = await RawConn.open(env.relay.baseUrl)
    const started = (await raw.request({ activationStart: { phoneNumber: number, consent: true } }))
      .activationStarted!
    const code = await env.codes.next(number)
    const confirm = (proof: Uint8Array) =>
      raw
        .request({
          activationConfirm: {
            activationId: started.activationId!,
            code,
            identityKey: new Uint8Array(32).fill(9),
            identitySignature: new Uint8Array(64),
            prekeys: {
              signedPrekey: { keyId: 1, publicKey: new Uint8Array(32), signature: new Uint8Array(64) },
              lastResortKemPrekey: {
                keyId: 1,
                publicKey: new Uint8Array(1184),
                signature: new Uint8Array(64),
              },
            },
            registrationLockProof: proof,
          },
        })
        .then(
          () => undefined,
          (e: unknown) => e as ParleyError,
        )
    const answers: (number | undefined)[] = []
    for (let i = 0; i < 8; i++) {
      const err = await confirm(new Uint8Array(randomBytes(32)))
      expect(err?.code).toBe('REGISTRATION_LOCKED')
      answers.push(err?.registrationLock?.attemptsLeft)
    }
    expect(answers).toEqual([4, 3, 2, 1, 0, 0, 0, 0])
    expect(await lockMetric(env.relay, 'wrong')).toBe(wrongBefore + 5)
    expect(await lockMetric(env.relay, 'exhausted')).toBe(exhaustedBefore + 3)
    raw.close()
    // The budget belongs to the account, not to the activation or the connection: the right PIN, from a fresh
    // activation, is told to wait (until the bucket refills: within a day).
    const late = await swap(env.relay, env.codes, number, dir, 'correct horse')
    expect(late.error?.code).toBe('REGISTRATION_LOCKED')
    expect(late.error?.registrationLock?.attemptsLeft).toBe(0)
    expect(late.error?.retryAfterMs ?? 0).toBeGreaterThan(0)
    expect(late.error?.retryAfterMs ?? 0).toBeLessThanOrEqual(DAY_MS)
    expect(owner.activated).toBe(true)
    await Promise.all([owner.close(), late.client.close()])
  })

  it('cleared, or erased with the account, it no longer stands in the way', async () => {
    const number = '+14155550184'
    const owner = await activatedClient(env.relay, env.codes, number, { storePath: join(dir, 'o3.db') })
    await owner.setRegistrationLock('8642')
    await owner.clearRegistrationLock()
    expect(await lockMetric(env.relay, 'cleared')).toBe(1)
    const next = await swap(env.relay, env.codes, number, dir)
    expect(next.error).toBeUndefined()
    await next.client.setRegistrationLock('8642')
    await next.client.deactivate()
    const fresh = await swap(env.relay, env.codes, number, dir)
    expect(fresh.error).toBeUndefined()
    expect(fresh.client.activated).toBe(true)
    await expect(fresh.client.setRegistrationLock('123')).rejects.toThrow(TypeError)
    await Promise.all([owner.close(), next.client.close(), fresh.client.close()])
  })
}

onEveryStore('a registration lock', lockSuite)

describe('a registration lock on an inactive account', () => {
  // A lapse of 8 s: the owner's device authenticating again pushes it back; silence lets it lapse.
  const env = useRelay([...CODES, '--registration-lock-lapse-seconds', '8'])
  const dir = clientDir()

  it('lapses after the lapse period without activity, and only then lets the code alone in', async () => {
    const number = '+14155550185'
    const storePath = join(dir, 'o.db')
    const owner = await activatedClient(env.relay, env.codes, number, { storePath })
    await owner.setRegistrationLock('2468')
    await owner.close()
    const setAt = Date.now()
    // Activity half-way through: the device reconnects (and authenticates), which moves the lapse on.
    await new Promise((r) => setTimeout(r, 4000))
    const back = await createClient({ relayUrl: env.relay.baseUrl, storePath, defaultRegion: 'US' })
    await until(() => back.connectionState === 'online', 15_000, 'the owner back online')
    await back.close()
    const activeAt = Date.now()
    // Past the first 8 s, but within 8 s of the activity: still locked.
    await new Promise((r) => setTimeout(r, Math.max(0, setAt + 8500 - Date.now())))
    const early = await swap(env.relay, env.codes, number, dir)
    if (Date.now() < activeAt + 8000) {
      expect(early.error?.code).toBe('REGISTRATION_LOCKED')
      expect(early.error?.registrationLock?.lapsesInMs ?? 0).toBeGreaterThan(0)
    }
    await early.client.close()
    // After 8 s of silence the code alone activates, and the lock is gone for good.
    await new Promise((r) => setTimeout(r, Math.max(0, activeAt + 8500 - Date.now())))
    const late = await swap(env.relay, env.codes, number, dir)
    expect(late.error).toBeUndefined()
    expect(late.client.activated).toBe(true)
    expect(await lockMetric(env.relay, 'lapsed')).toBe(1)
    const after = await swap(env.relay, env.codes, number, dir)
    expect(after.error).toBeUndefined()
    await Promise.all([late.client.close(), after.client.close()])
  })
})
