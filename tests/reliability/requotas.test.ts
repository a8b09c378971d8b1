// Quotas that outlive the account and the address (issue 14, items 1 and 2), scripted against a relay process:
// an account that spent its send and bundle quotas, deactivated, and activated the same number again — across a
// relay restart — gets nothing new; and accounts logged in from several addresses of one source network share
// that network's OPRF budget, while another network has its own. Asserted by counts from /metrics.
import {
  normalizeNumber,
  numberToOprfInput,
  oprfBlind,
  type ParleyError,
  type ServerFrame,
} from '@parley/protocol'
import {
  type Account,
  activate,
  Identity,
  login,
  messageId,
  RawClient,
  type RelayProcess,
  sealedShape,
  spawnDevRelay,
} from '@parley/relay/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { metric, scrape } from './relayDb.js'

/** What a request came to: the answer's body, or the refusal's code. */
const outcome = (p: Promise<ServerFrame>) =>
  p.then(
    (f) => f.body,
    (e: ParleyError) => e.code,
  )
/** Activations come from a network of their own (evaluating the device's own number counts against it). */
const ACTIVATING = { localAddress: '127.0.9.1' }

describe('quotas that outlive the account, on a relay process', () => {
  let relay: RelayProcess
  let victim: Account
  const SENDS = 3
  const BUNDLES = 2
  const NETWORK_EVALUATIONS = 6

  beforeAll(async () => {
    relay = await spawnDevRelay([
      '--send-capacity',
      String(SENDS),
      '--send-per-minute',
      '1',
      '--bundle-capacity',
      String(BUNDLES),
      '--bundle-per-hour',
      '1',
      '--oprf-ip-capacity',
      String(NETWORK_EVALUATIONS),
      '--oprf-ip-per-day',
      '1',
      '--frames-burst',
      '1000',
    ])
    const v = await RawClient.open(relay.url, ACTIVATING)
    victim = await activate(v, relay, '+14155550170')
    v.close()
  })
  afterAll(async () => {
    await relay?.stop()
  })

  const counts = async () => {
    const m = await scrape(relay.metricsUrl)
    return {
      accepted: metric(m, 'parley_relay_messages_accepted_total'),
      send: metric(m, 'parley_relay_rate_limited_total', { scope: 'send' }),
      bundle: metric(m, 'parley_relay_rate_limited_total', { scope: 'bundle' }),
      network: metric(m, 'parley_relay_rate_limited_total', { scope: 'oprf_network' }),
      evaluations: metric(m, 'parley_relay_oprf_evaluations_total'),
    }
  }
  const send = (c: RawClient) =>
    c.request({
      sendMessage: {
        recipientAddress: victim.address,
        recipientDeviceId: victim.deviceId,
        messageId: messageId(),
        envelope: sealedShape('spam'),
      },
    })
  const bundle = (c: RawClient) => c.request({ prekeyBundleQuery: { address: victim.address } })

  it('send and bundle quotas spent by an account stay spent after it deactivates and activates again', async () => {
    const number = '+14155550171'
    const c = await RawClient.open(relay.url, ACTIVATING)
    await activate(c, relay, number)
    const before = await counts()
    // The attacker's script: spend both quotas, and see them refused.
    const sends = await Promise.all(Array.from({ length: SENDS + 1 }, () => outcome(send(c))))
    expect(sends.filter((s) => s === 'messageAccepted')).toHaveLength(SENDS)
    expect(sends.filter((s) => s === 'RATE_LIMITED')).toHaveLength(1)
    const bundles = await Promise.all(Array.from({ length: BUNDLES + 1 }, () => outcome(bundle(c))))
    expect(bundles.filter((b) => b === 'prekeyBundle')).toHaveLength(BUNDLES)
    expect(bundles.filter((b) => b === 'RATE_LIMITED')).toHaveLength(1)

    const spent = await counts()
    expect(spent.accepted - before.accepted).toBe(SENDS)
    expect(spent.send - before.send).toBe(1)
    expect(spent.bundle - before.bundle).toBe(1)

    // Deactivate, restart the relay, and activate the same number again with a new identity.
    expect(await outcome(c.request({ deactivate: {} }))).toBe('deactivated')
    c.close()
    await relay.restart()
    const again = await RawClient.open(relay.url, ACTIVATING)
    await activate(again, relay, number, new Identity())
    const retries = 4
    for (let i = 0; i < retries; i++) {
      await expect(outcome(send(again))).resolves.toBe('RATE_LIMITED')
      await expect(outcome(bundle(again))).resolves.toBe('RATE_LIMITED')
    }
    again.close()

    // The metrics restart with the relay process: everything since is this account's refusals.
    const after = await counts()
    expect(after.accepted).toBe(0)
    expect(after.send).toBe(retries)
    expect(after.bundle).toBe(retries)
  })

  it('accounts on several addresses of one network share its OPRF budget; another network has its own', async () => {
    const accounts: Account[] = []
    for (const number of ['+14155550172', '+14155550173', '+14155550174']) {
      const c = await RawClient.open(relay.url, ACTIVATING)
      accounts.push(await activate(c, relay, number))
      c.close()
    }
    const evaluate = async (account: Account, localAddress: string, n: number) => {
      const { client } = await login(relay.url, account, { localAddress })
      const keyId = client.hello!.oprfKeys![0]!.keyId
      const blindedElements = Array.from(
        { length: n },
        (_, i) => oprfBlind(numberToOprfInput(normalizeNumber(`+1415555${String(1000 + i)}`))).blindedElement,
      )
      const answer = await outcome(client.request({ oprfEvaluate: { keyId, blindedElements } }))
      client.close()
      return answer
    }
    const before = await counts()
    // Two addresses of 127.0.0.0/24: the first account spends 4 of the network's 6, the second asks for 4.
    expect(await evaluate(accounts[0]!, '127.0.0.1', 4)).toBe('oprfEvaluated')
    expect(await evaluate(accounts[1]!, '127.0.0.2', 4)).toBe('RATE_LIMITED')
    // Another /24 (127.0.1.0/24) has its own budget.
    expect(await evaluate(accounts[2]!, '127.0.1.1', 4)).toBe('oprfEvaluated')
    const after = await counts()
    expect(after.evaluations - before.evaluations).toBe(8)
    expect(after.network - before.network).toBe(1)
  })
})
