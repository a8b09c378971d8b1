import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { createMetrics } from '../src/metrics.js'

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
})
