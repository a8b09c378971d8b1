// A relay in the middle, against a relay process: a malicious relay B shows a client relay A's nonce, hoping
// to pass the client's signature on to A and log in there as the client. The signature covers the trust root
// of the relay the client is talking to (B's), so A refuses it; the same device signing for A's root is let in.
import { randomBytes } from 'node:crypto'
import { authPayload } from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Account,
  activate,
  expectError,
  RawClient,
  type RelayProcess,
  spawnDevRelay,
} from '../testing/index.js'

describe('authentication is bound to the relay', () => {
  let relay: RelayProcess
  let victim: Account
  beforeAll(async () => {
    relay = await spawnDevRelay()
    const c = await RawClient.open(relay.url)
    victim = await activate(c, relay, '+14155550177')
    c.close()
  })
  afterAll(async () => {
    await relay?.stop()
  })

  it('refuses a signature made for another relay’s trust root, even over this relay’s fresh nonce', async () => {
    const attacker = await RawClient.open(relay.url)
    const nonce = attacker.hello!.authNonce!
    const otherRelayRoot = new Uint8Array(randomBytes(32)) // what relay B's ServerHello showed the victim
    const relayed = victim.identity.sign(authPayload(nonce, victim.address, victim.deviceId, otherRelayRoot))
    await expectError(
      attacker.request({
        authenticate: { address: victim.address, deviceId: victim.deviceId, signature: relayed },
      }),
      'UNAUTHENTICATED',
    )
    attacker.close()
    // The same device, signing for this relay's root on its own connection, gets in.
    const own = await RawClient.open(relay.url)
    const signature = victim.identity.sign(
      authPayload(own.hello!.authNonce!, victim.address, victim.deviceId, own.hello!.trustRoot!),
    )
    const f = await own.request({
      authenticate: { address: victim.address, deviceId: victim.deviceId, signature },
    })
    expect(f.body).toBe('authenticated')
    own.close()
  })
})
