// The reference receiver for the relay's verifier webhook, as an operator's SMS gateway should check each call
// (apps/relay/README.md, "The webhook verifier"). Written from the Standard Webhooks scheme, not from the relay's
// code: HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<raw body>", sent as `webhook-signature: v1,<base64>`.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'

/** Why a call was refused. */
export type WebhookRefusal = 'unsigned' | 'stale' | 'forged' | 'replayed'

/** A fresh secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`
}

/** The HMAC key of a secret: base64-decoded after `whsec_`, else the UTF-8 bytes of the whole secret. */
export function keyOf(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8')
}

/** `v1,<base64 HMAC-SHA256>` of one call: what a sender with `secret` puts in `webhook-signature`. */
export function signWebhook(secret: string, id: string, timestamp: string, body: string): string {
  return `v1,${createHmac('sha256', keyOf(secret)).update(`${id}.${timestamp}.${body}`).digest('base64')}`
}

const header = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const v = headers[name]
  return Array.isArray(v) ? undefined : v
}

/**
 * Checks calls: a signature made with the secret over this id, timestamp and body; a timestamp at most
 * `toleranceSeconds` from now either way; an id not accepted before (ids are remembered for the tolerance
 * window, beyond which their timestamp is stale anyway).
 */
export class WebhookReceiver {
  readonly #key: Buffer
  readonly #toleranceSeconds: number
  readonly #now: () => number
  /** Accepted ids → the Unix second they stop needing to be remembered. */
  readonly #seen = new Map<string, number>()

  constructor(secret: string, options: { toleranceSeconds?: number; now?: () => number } = {}) {
    this.#key = keyOf(secret)
    this.#toleranceSeconds = options.toleranceSeconds ?? 300
    this.#now = options.now ?? Date.now
  }

  /** `null` when the call is genuine and new (its id is then remembered), else why it is refused. */
  check(headers: IncomingHttpHeaders, body: string): WebhookRefusal | null {
    const id = header(headers, 'webhook-id')
    const timestamp = header(headers, 'webhook-timestamp')
    const signatures = header(headers, 'webhook-signature')
    if (!id || !timestamp || !signatures) return 'unsigned'
    const nowSeconds = Math.floor(this.#now() / 1000)
    if (!/^\d{1,12}$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > this.#toleranceSeconds) {
      return 'stale'
    }
    const expected = createHmac('sha256', this.#key).update(`${id}.${timestamp}.${body}`).digest()
    // The header may list several space-separated signatures (key rotation); one valid v1 entry is enough.
    const valid = signatures.split(' ').some((entry) => {
      const [version, value] = entry.split(',', 2)
      if (version !== 'v1' || value === undefined) return false
      const given = Buffer.from(value, 'base64')
      return given.length === expected.length && timingSafeEqual(given, expected)
    })
    if (!valid) return 'forged'
    for (const [seen, until] of this.#seen) if (until < nowSeconds) this.#seen.delete(seen)
    if (this.#seen.has(id)) return 'replayed'
    this.#seen.set(id, Number(timestamp) + this.#toleranceSeconds)
    return null
  }
}
