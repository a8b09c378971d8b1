import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { createMetrics } from '../src/metrics.js'
import { activate, inProcess, login, messageId, RawClient, sealedShape } from '../testing/index.js'

/** `# TYPE <name> <type>` lines of an exposition, as [name, type]. */
function types(text: string): [string, string][] {
  return [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!])
}

describe('relay metrics', () => {
  it('names process metrics unprefixed, counters with _total and gauges and histograms without', async () => {
    const text = await createMetrics().registry.metrics()
    const all = types(text)
    expect(all.map(([n]) => n)).toContain('process_resident_memory_bytes')
    expect(all.map(([n]) => n)).toContain('nodejs_eventloop_lag_seconds')
    expect(text).not.toMatch(/^parley_relay_(process|nodejs)_/m)
    const own = all.filter(([n]) => n.startsWith('parley_relay_'))
    expect(own.length).toBeGreaterThan(30)
    for (const [name, type] of own) {
      if (type === 'counter') expect(name).toMatch(/_total$/)
      else expect(`${name} ${type}`).not.toMatch(/_total /)
    }
  })

  it('has mailbox-depth and delivery-latency histograms', async () => {
    const metrics = createMetrics()
    metrics.deliveryLatency.observe(0.2)
    metrics.mailboxDepth.observe(3)
    const text = await metrics.registry.metrics()
    expect(text).toMatch(/^parley_relay_delivery_latency_seconds_bucket\{le="0\.5"\} 1$/m)
    expect(text).toMatch(/^parley_relay_delivery_latency_seconds_bucket\{le="0\.1"\} 0$/m)
    expect(text).toMatch(/^parley_relay_mailbox_depth_messages_bucket\{le="10"\} 1$/m)
    expect(text).toMatch(/^parley_relay_mailbox_depth_messages_count 1$/m)
  })

  it('reports parley_relay_build_info{version} = 1 with the package version', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
    const text = await createMetrics().registry.metrics()
    expect(text).toContain(`parley_relay_build_info{version="${version}"} 1`)
  })

  it('observes mailbox depth at login and delivery latency at each push, on a running relay', async () => {
    const { relay, verifier } = await inProcess()
    try {
      const a = await RawClient.open(relay.url)
      const b = await RawClient.open(relay.url)
      await activate(a, verifier, '+14155550131')
      const bob = await activate(b, verifier, '+14155550132')
      b.close()
      for (let i = 0; i < 2; i++) {
        await a.request({
          sendMessage: {
            recipientAddress: bob.address,
            recipientDeviceId: bob.deviceId,
            messageId: messageId(),
            envelope: sealedShape(`m${i}`),
          },
        })
      }
      const { client } = await login(relay.url, bob)
      await client.request({ syncMailbox: { afterSeq: 0 } })
      const text = await relay.metrics.registry.metrics()
      // Bob logged in with two messages waiting (depth 2: in the le="10" bucket, not le="1").
      expect(text).toMatch(/^parley_relay_mailbox_depth_messages_bucket\{le="1"\} 0$/m)
      expect(text).toMatch(/^parley_relay_mailbox_depth_messages_bucket\{le="10"\} 1$/m)
      expect(text).toMatch(/^parley_relay_delivery_latency_seconds_count 2$/m)
      a.close()
      client.close()
    } finally {
      await relay.close()
    }
  })
})
