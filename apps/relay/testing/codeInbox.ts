// The webhook side of a relay process in tests: a tiny HTTP server standing in for the operator's SMS gateway,
// checking each call's signature, timestamp and id as a gateway should (webhookReceiver.ts), so codes arrive the
// way the gateway gets them. Give a relay `--verifier webhook --webhook-url <url> --webhook-secret <secret>`, or
// pass the inbox as `webhook` to spawnRelay().
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { newWebhookSecret, WebhookReceiver } from './webhookReceiver.js'

/** One call the inbox received at `/sms`. */
export interface WebhookCall {
  headers: Record<string, string | string[] | undefined>
  body: string
  /** Why the receiver refused it (HTTP 401), or null when it was accepted. */
  refused: string | null
}

/**
 * Codes the relay asked to deliver, by phone number. Every call must be signed with {@link secret} (pass it as
 * `--webhook-secret`), fresh (5 minutes) and new; others are answered 401 and their codes ignored.
 */
export class CodeInbox {
  readonly #codes = new Map<string, string[]>()
  readonly #waiters = new Map<string, (code: string) => void>()
  /** The webhook signing key the relay is given. */
  readonly secret = newWebhookSecret()
  readonly receiver = new WebhookReceiver(this.secret)
  /** Every call to `/sms`, accepted or not, in arrival order. */
  readonly calls: WebhookCall[] = []
  server!: Server
  url!: string

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      if (req.url !== '/sms') return // other paths belong to listeners a test adds
      let body = ''
      req.on('data', (c) => (body += c))
      req.on('end', () => {
        const refused = this.receiver.check(req.headers, body)
        this.calls.push({ headers: { ...req.headers }, body, refused })
        if (refused !== null) {
          res.writeHead(401, { 'content-type': 'text/plain' }).end(`${refused}\n`)
          return
        }
        const { phone_number: phone, code } = JSON.parse(body) as { phone_number: string; code: string }
        const list = this.#codes.get(phone) ?? []
        list.push(code)
        this.#codes.set(phone, list)
        this.#waiters.get(phone)?.(code)
        res.writeHead(204).end()
      })
    })
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/sms`
  }

  /** The latest code sent to `e164`, waiting for it if needed. */
  next(e164: string): Promise<string> {
    const list = this.#codes.get(e164)
    if (list !== undefined && list.length > 0) return Promise.resolve(list.shift()!)
    return new Promise((resolve) =>
      this.#waiters.set(e164, (code) => {
        this.#waiters.delete(e164)
        this.#codes.get(e164)?.shift()
        resolve(code)
      }),
    )
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()))
  }
}
