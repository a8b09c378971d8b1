// The per-suite relay setup for vitest files (kept apart from harness.ts, which benches import outside vitest).
import { afterAll, beforeAll } from 'vitest'
import { CodeInbox, type Relay, startRelay } from './harness.js'

/**
 * For a describe block: starts a code inbox and a relay before its tests and stops both after them.
 * Read `env.relay` inside hooks and tests (it is set once the suite starts).
 */
export function useRelay(extraArgs: string[] = []): { codes: CodeInbox; relay: Relay } {
  const env = { codes: new CodeInbox(), relay: undefined as unknown as Relay }
  beforeAll(async () => {
    await env.codes.start()
    env.relay = await startRelay(env.codes, extraArgs)
  })
  afterAll(async () => {
    await env.relay?.close()
    await env.codes.close()
  })
  return env
}
