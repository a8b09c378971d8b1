// A relay that asks for proof of work per code request: the SDK solves it, so activation just works; the
// relay's counters show the request was checked, not waved through.
import { describe, expect, it } from 'vitest'
import { metric } from './attacker.js'
import { activatedClient } from './harness.js'
import { useRelay } from './useRelay.js'

describe('activation proof of work', () => {
  const env = useRelay(['--activation-pow-bits', '10'])

  it('is solved by the SDK: the activation completes and nothing is refused', async () => {
    const client = await activatedClient(env.relay, env.codes, '+14155550197')
    expect(client.activated).toBe(true)
    expect(await metric(env.relay.metricsUrl, 'parley_relay_pow_refused_total')).toBe(0)
    await client.close()
  })
})
