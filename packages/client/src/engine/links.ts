// The engine's two connections to the relay, made from the client's options: the one that authenticates as this
// device, and one that never does, for unidentified sends. Reconnection, backoff and request/response pairing
// are RelayLink's (../RelayLink.ts). Not exported.
import type { Clock } from '../Clock.js'
import { RelayLink, type RelayLinkHooks } from '../RelayLink.js'
import type { ParleyClientOptions } from '../types.js'
import type { Random } from './context.js'

export function createLinks(
  options: ParleyClientOptions,
  clock: Clock,
  random: Random,
  hooks: { main: RelayLinkHooks; anonymous: RelayLinkHooks },
): { link: RelayLink; anonymous: RelayLink } {
  const url = new URL(options.relayUrl)
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/v1/ws'
  const linkOptions = {
    url: url.toString(),
    transport: options.transport,
    clock,
    jitter: () => {
      const b = random(4)
      return (((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0) / 2 ** 32
    },
    requestTimeoutMs: options.requestTimeoutMs ?? 20_000,
    backoffMinMs: options.reconnect?.minDelayMs ?? 250,
    backoffMaxMs: options.reconnect?.maxDelayMs ?? 30_000,
  }
  const anonymous = new RelayLink({ ...linkOptions, hooks: hooks.anonymous })
  const link = new RelayLink({ ...linkOptions, hooks: hooks.main })
  return { link, anonymous }
}
