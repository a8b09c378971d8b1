/**
 * The verifier port (docs/architecture.md §5): delivers a 6-digit activation code to the user's number. This is the only
 * place the relay hands a phone number to anyone, and only the activating user's own.
 * @module
 */
import { createHmac, randomBytes } from 'node:crypto'
import { ParleyError } from '@parley/protocol'

/** One code to deliver. */
export interface VerificationRequest {
  /** E.164 number of the activating user. */
  phoneNumber: string
  /** The six-digit code. */
  code: string
  /** Hex id of the pending activation (public; lets an operator correlate without the number). */
  activationId: string
  /** Seconds until the code expires. */
  expiresInSeconds: number
}

/**
 * Delivers codes; a rejection makes the activation fail with `UNAVAILABLE`, or with the code of a
 * {@link VerifierVeto} (the operator's gateway refused this number).
 */
export interface Verifier {
  readonly name: string
  sendCode(request: VerificationRequest): Promise<void>
}

/**
 * The verifier's gateway refused to send this code (webhook HTTP 403 → `FORBIDDEN`, 429 → `RATE_LIMITED`),
 * e.g. because its own fraud checks flag the number or the destination. The activation is refused with this
 * code; `reason` is the gateway's explanation, for the relay's log only (never the client's message).
 */
export class VerifierVeto extends ParleyError {
  /** The gateway's `{"reason"}`, cleaned for the log: at most 200 characters, no controls, no digit runs. */
  readonly reason: string | undefined
  /** The HTTP status that carried the veto. */
  readonly status: number

  constructor(status: number, reason: string | undefined, retryAfterMs?: number) {
    super(
      status === 429 ? 'RATE_LIMITED' : 'FORBIDDEN',
      status === 429
        ? 'the verification service is sending too many codes; try again later'
        : 'the verification service refused to send a code to this number',
      retryAfterMs === undefined ? {} : { retryAfterMs },
    )
    this.status = status
    this.reason = reason
  }
}

/** A gateway's veto reason as it may be logged: no control characters, no runs of digits (numbers), short. */
export function cleanVetoReason(reason: unknown): string | undefined {
  if (typeof reason !== 'string') return undefined
  const clean = reason
    // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ')
    .replace(/\+?\d[\d\s().-]{3,}\d/g, '[digits]')
    .trim()
    .slice(0, 200)
  return clean === '' ? undefined : clean
}

/** Milliseconds a `Retry-After` header asks for (seconds or an HTTP date), within [0, 1 day]; else undefined. */
export function retryAfterHeaderMs(value: string | null, nowMs = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined
  const v = value.trim()
  const ms = /^\d+$/.test(v) ? Number(v) * 1000 : Date.parse(v) - nowMs
  if (!Number.isFinite(ms)) return undefined
  return Math.min(86_400_000, Math.max(0, Math.round(ms)))
}

/** The first `limit` bytes of a response body as text (the rest is not read). */
async function readHead(res: Response, limit: number): Promise<string> {
  const reader = res.body?.getReader()
  if (!reader) return ''
  const chunks: Uint8Array[] = []
  let length = 0
  try {
    while (length < limit) {
      const { done, value } = await reader.read()
      if (done) break
      chunks.push(value)
      length += value.length
    }
  } finally {
    await reader.cancel().catch(() => {})
  }
  return new TextDecoder().decode(Buffer.concat(chunks).subarray(0, limit))
}

/**
 * Development-only verifier: prints the code to stderr, marked as such, with only the last two digits of the
 * number so a developer can tell two activations apart.
 */
export class ConsoleVerifier implements Verifier {
  readonly name = 'console'
  readonly #write: (line: string) => void

  /** @param write - where the line goes (default: stderr) */
  constructor(write: (line: string) => void = (line) => process.stderr.write(`${line}\n`)) {
    this.#write = write
  }

  async sendCode(request: VerificationRequest): Promise<void> {
    const hint = request.phoneNumber.slice(-2)
    this.#write(
      `[parley-relay] DEVELOPMENT ONLY (console verifier) — verification code ${request.code} ` +
        `for activation ${request.activationId} (number ending ${hint}, expires in ${request.expiresInSeconds} s). ` +
        'Use --verifier webhook in production.',
    )
  }
}

/**
 * The HMAC key a webhook secret stands for: the base64-decoded bytes after `whsec_` (the Standard Webhooks form),
 * else the secret's UTF-8 bytes.
 * @throws RangeError for `whsec_` followed by anything but base64
 */
export function webhookSigningKey(secret: string): Buffer {
  if (!secret.startsWith('whsec_')) return Buffer.from(secret, 'utf8')
  const b64 = secret.slice('whsec_'.length)
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    throw new RangeError('a webhook secret that starts with whsec_ must continue in base64')
  }
  return Buffer.from(b64, 'base64')
}

/** Options of {@link WebhookVerifier}. */
export interface WebhookVerifierOptions {
  url: string
  /**
   * When set, each call is signed (see {@link WebhookVerifier}); `whsec_<base64>` or text, see
   * {@link webhookSigningKey}.
   */
  secret?: string
  timeoutMs?: number
  fetch?: typeof fetch
  /** Clock for `webhook-timestamp` (ms since the epoch); tests move it. */
  now?: () => number
  /**
   * Told why a call failed (`answered 500`, `no answer within 10000 ms`, `unreachable (ECONNREFUSED)`): never the
   * body or the URL's query, so never the number or the code. The relay logs it.
   */
  onFailure?: (reason: string) => void
}

/** Why a fetch failed, from its error's name and its cause's code only (its message may echo the request). */
function fetchFailure(err: unknown, timeoutMs: number): string {
  const e = err as { name?: unknown; cause?: { code?: unknown } }
  if (e?.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`
  const code =
    typeof e?.cause?.code === 'string' ? e.cause.code : typeof e?.name === 'string' ? e.name : 'error'
  return `unreachable (${code.replace(/[^\w.-]/g, '')})`
}

/**
 * Production verifier: POSTs `{"type":"parley.verification.v1","phone_number","code","activation_id",
 * "expires_in_seconds"}` to the operator's URL, which sends the SMS. Any 2xx is success. The gateway can veto:
 * HTTP 403 (optionally with a JSON body `{"reason":"..."}`) refuses the activation `FORBIDDEN`, HTTP 429
 * refuses it `RATE_LIMITED` with `retryAfterMs` from a `Retry-After` header (60 s without one); see
 * {@link VerifierVeto}. Any other status is `UNAVAILABLE`.
 *
 * Each call carries, as Standard Webhooks does, `webhook-id` (unique per call), `webhook-timestamp` (Unix
 * seconds) and, with a secret, `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`: the
 * gateway checks the signature, refuses timestamps more than a few minutes off and ids it has seen, so a
 * captured call can be neither altered nor replayed.
 */
export class WebhookVerifier implements Verifier {
  readonly name = 'webhook'
  readonly #url: string
  readonly #key: Buffer | undefined
  readonly #timeoutMs: number
  readonly #fetch: typeof fetch
  readonly #now: () => number
  readonly #onFailure: ((reason: string) => void) | undefined

  constructor(options: WebhookVerifierOptions) {
    if (!/^https?:\/\//.test(options.url)) throw new TypeError('webhook url must be http(s)')
    this.#url = options.url
    this.#key = options.secret ? webhookSigningKey(options.secret) : undefined
    this.#timeoutMs = options.timeoutMs ?? 10_000
    this.#fetch = options.fetch ?? globalThis.fetch
    this.#now = options.now ?? Date.now
    this.#onFailure = options.onFailure
  }

  async sendCode(request: VerificationRequest): Promise<void> {
    const body = JSON.stringify({
      type: 'parley.verification.v1',
      phone_number: request.phoneNumber,
      code: request.code,
      activation_id: request.activationId,
      expires_in_seconds: request.expiresInSeconds,
    })
    const id = `msg_${randomBytes(18).toString('base64url')}`
    const timestamp = String(Math.floor(this.#now() / 1000))
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'parley-relay',
      'webhook-id': id,
      'webhook-timestamp': timestamp,
    }
    if (this.#key) {
      const mac = createHmac('sha256', this.#key).update(`${id}.${timestamp}.${body}`).digest('base64')
      headers['webhook-signature'] = `v1,${mac}`
    }
    let status: number
    let veto: VerifierVeto | undefined
    try {
      const res = await this.#fetch(this.#url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(this.#timeoutMs),
      })
      status = res.status
      if (status === 403 || status === 429) {
        let reason: string | undefined
        try {
          reason = cleanVetoReason((JSON.parse(await readHead(res, 4096)) as { reason?: unknown })?.reason)
        } catch {
          // No JSON, or cut off: a veto without a reason.
        }
        const retryAfterMs =
          status === 429 ? (retryAfterHeaderMs(res.headers.get('retry-after')) ?? 60_000) : undefined
        veto = new VerifierVeto(status, reason, retryAfterMs)
      } else await res.body?.cancel()
    } catch (err) {
      this.#onFailure?.(fetchFailure(err, this.#timeoutMs))
      // The cause is dropped on purpose: fetch errors can echo the request.
      throw new ParleyError('UNAVAILABLE', 'the verification service is unreachable', {
        retryAfterMs: 30_000,
        cause: err instanceof Error ? err.name : undefined,
      })
    }
    if (veto) throw veto
    if (status < 200 || status > 299) {
      this.#onFailure?.(`answered ${status}`)
      throw new ParleyError('UNAVAILABLE', `the verification service answered ${status}`, {
        retryAfterMs: 30_000,
      })
    }
  }
}
