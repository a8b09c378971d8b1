/**
 * The verifier port (DESIGN.md §5): delivers a 6-digit activation code to the user's number. This is the only
 * place the relay hands a phone number to anyone, and only the activating user's own.
 * @module
 */
import { createHmac } from 'node:crypto'
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

/** Delivers codes; a rejection makes the activation fail with `UNAVAILABLE`. */
export interface Verifier {
  readonly name: string
  sendCode(request: VerificationRequest): Promise<void>
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

/** Options of {@link WebhookVerifier}. */
export interface WebhookVerifierOptions {
  url: string
  /** When set, the body is signed: `X-Parley-Signature: sha256=<hex HMAC-SHA256(secret, body)>`. */
  secret?: string
  timeoutMs?: number
  fetch?: typeof fetch
}

/**
 * Production verifier: POSTs `{"type":"parley.verification.v1","phone_number","code","activation_id",
 * "expires_in_seconds"}` to the operator's URL, which sends the SMS. Any 2xx is success.
 */
export class WebhookVerifier implements Verifier {
  readonly name = 'webhook'
  readonly #options: Required<Omit<WebhookVerifierOptions, 'secret'>> & { secret?: string }

  constructor(options: WebhookVerifierOptions) {
    if (!/^https?:\/\//.test(options.url)) throw new TypeError('webhook url must be http(s)')
    this.#options = { timeoutMs: 10_000, fetch: globalThis.fetch, ...options }
  }

  async sendCode(request: VerificationRequest): Promise<void> {
    const body = JSON.stringify({
      type: 'parley.verification.v1',
      phone_number: request.phoneNumber,
      code: request.code,
      activation_id: request.activationId,
      expires_in_seconds: request.expiresInSeconds,
    })
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'parley-relay',
    }
    if (this.#options.secret) {
      headers['x-parley-signature'] =
        `sha256=${createHmac('sha256', this.#options.secret).update(body).digest('hex')}`
    }
    let status: number
    try {
      const res = await this.#options.fetch(this.#options.url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(this.#options.timeoutMs),
      })
      status = res.status
      await res.body?.cancel()
    } catch (err) {
      // The cause is dropped on purpose: fetch errors can echo the request.
      throw new ParleyError('UNAVAILABLE', 'the verification service is unreachable', {
        retryAfterMs: 30_000,
        cause: err instanceof Error ? err.name : undefined,
      })
    }
    if (status < 200 || status > 299) {
      throw new ParleyError('UNAVAILABLE', `the verification service answered ${status}`, {
        retryAfterMs: 30_000,
      })
    }
  }
}
