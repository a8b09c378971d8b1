// Contract-test harness: the real relay process (@parley/relay/testing) on a free port in production mode (no
// --dev), with the webhook verifier pointed at the test's CodeInbox, which checks each call's signature, timestamp
// and id as an operator's SMS gateway should, so codes arrive the way the gateway gets them.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createClient,
  type IncomingMessage,
  type NodeClientOptions,
  type ParleyClient,
  ParleyError,
} from '@parley/node'
import {
  type CodeInbox,
  type RelayProcess,
  type RelayProcessOptions,
  spawnRelay,
} from '@parley/relay/testing'

export { CodeInbox, type WebhookCall } from '@parley/relay/testing'

/** Generous limits so that a test sending thousands of messages measures delivery, not quotas. */
export const TEST_RELAY_ARGS = [
  '--send-capacity',
  '100000',
  '--send-per-minute',
  '100000',
  '--frames-burst',
  '100000',
  '--frames-per-second',
  '100000',
  '--bundle-capacity',
  '1000',
  '--bundle-per-hour',
  '100000',
]

/**
 * A contract suite's relay process: `baseUrl` is what SDK clients are given; `stop()` keeps the data directory
 * for `start()` (same port), `close()` deletes it.
 */
export type Relay = RelayProcess

/**
 * Spawns the relay CLI without `--dev`, with the signed webhook verifier of `codes` and {@link TEST_RELAY_ARGS}
 * (then `extraArgs`), on a free loopback port with its metrics listener on another; `options` may give e.g. the
 * data directory.
 */
export function startRelay(
  codes: CodeInbox,
  extraArgs: string[] = [],
  options: RelayProcessOptions = {},
): Promise<Relay> {
  return spawnRelay({
    webhook: codes,
    tempPrefix: 'parley-contract-',
    readyTimeoutMs: 30_000,
    ...options,
    args: ['--log-level', 'info', ...TEST_RELAY_ARGS, ...extraArgs, ...(options.args ?? [])],
  })
}

/** A fresh data directory for client stores. */
export function clientDir(): string {
  return mkdtempSync(join(tmpdir(), 'parley-client-'))
}

/** Creates a (not yet activated) Node client of `relay`. */
export function nodeClient(relay: Relay, options: Partial<NodeClientOptions> = {}): Promise<ParleyClient> {
  return createClient({
    relayUrl: relay.baseUrl,
    defaultRegion: 'US',
    reconnect: { minDelayMs: 50, maxDelayMs: 1000 },
    ...options,
  })
}

/** Creates a client and activates it with the code the relay sent. */
export async function activatedClient(
  relay: Relay,
  codes: CodeInbox,
  phoneNumber: string,
  options: Partial<NodeClientOptions> = {},
): Promise<ParleyClient> {
  const client = await createClient({
    relayUrl: relay.baseUrl,
    defaultRegion: 'US',
    reconnect: { minDelayMs: 50, maxDelayMs: 1000 },
    ...options,
  })
  const pending = await client.activate({ phoneNumber, consent: true })
  await client.confirm(await codes.next(pending.e164))
  return client
}

/** Resolves when `predicate` holds, polling; rejects after `timeoutMs`. */
export async function until(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
  what = 'condition',
): Promise<void> {
  const start = Date.now()
  while (!(await predicate())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** The messages `client` is shown from now on, in order (a live array). */
export function inbox(client: ParleyClient): IncomingMessage[] {
  const seen: IncomingMessage[] = []
  client.on('message', (m) => seen.push(m))
  return seen
}

/** The code of the ParleyError `p` rejects with, 'no error' when it resolves (anything else as a string). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'no error'
  } catch (err) {
    return err instanceof ParleyError ? err.code : String(err)
  }
}
