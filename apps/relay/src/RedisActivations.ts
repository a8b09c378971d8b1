/**
 * Pending activations shared by every node through Redis (with `--redis`), so a code requested through one node
 * can be confirmed through any other. What Redis holds per activation (docs/architecture.md §1, P4):
 * - `<prefix>act:<id>`: a hash of the number encrypted with AES-256-GCM (key derived from `--number-hash-key`,
 *   the activation id as associated data), an HMAC of the code (never the code) and the attempts left; it
 *   expires with the code (TTL = code lifetime), taking the number with it.
 * - `<prefix>act:<id>:t`: a tombstone without the number that lives one more lifetime, so a late or locked
 *   confirm gets `EXPIRED` rather than `NOT_FOUND`, as with the in-process {@link Activations}.
 * The per-number code-request counter is a rate-limit bucket keyed by the keyed hash, never the number;
 * `numberKeyOf` opens the sealed number only to compute that hash (per-number code-guess quota).
 * Confirm is one Lua script, so 5 attempts are 5 across all nodes.
 * @module
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import {
  activationRefusal,
  keyedNumberHash,
  newActivation,
  type PendingActivations,
  type StartedActivation,
} from './Activations.js'
import { connectRedis, parseRedisUrl, type RedisTarget } from './internal/redis.js'

// KEYS: data, tombstone. ARGV: code HMAC (hex), '1' to keep the activation pending. Answers {status, value}. The codes are compared as keyed MACs,
// so the timing of Lua's string comparison reveals nothing about the code itself.
const CONFIRM = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('GET', KEYS[2])
  if t == 'locked' then return {'locked', ''} end
  if t then return {'expired', ''} end
  return {'not_found', ''}
end
local att = tonumber(redis.call('HGET', KEYS[1], 'a'))
if att <= 0 then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], 'locked', 'KEEPTTL')
  return {'locked', ''}
end
if redis.call('HGET', KEYS[1], 'c') ~= ARGV[1] then
  att = redis.call('HINCRBY', KEYS[1], 'a', -1)
  if att <= 0 then
    redis.call('DEL', KEYS[1])
    redis.call('SET', KEYS[2], 'locked', 'KEEPTTL')
  end
  return {'wrong', tostring(att)}
end
local n = redis.call('HGET', KEYS[1], 'n')
if ARGV[2] ~= '1' then redis.call('DEL', KEYS[1], KEYS[2]) end
return {'ok', n}
`

type WithConfirm = Redis & {
  parleyConfirm(data: string, tomb: string, codeMac: string, keep: '0' | '1'): Promise<[string, string]>
}

/** Options of {@link RedisActivations}. */
export interface RedisActivationsOptions {
  /** `redis://host:port[/db][?prefix=<p>]`. */
  url: string
  /** The shared `--number-hash-key` bytes: the keyed number hash and the number-encryption key derive from it. */
  hashKey: Uint8Array
  /** Code lifetime. */
  ttlSeconds: number
  /** Wrong codes allowed. */
  attempts: number
}

/** Redis implementation of {@link PendingActivations}. */
export class RedisActivations implements PendingActivations {
  readonly #target: RedisTarget
  readonly #redis: WithConfirm
  readonly #hashKey: Buffer
  readonly #encKey: Buffer
  readonly #macKey: Buffer
  readonly #ttlMs: number
  readonly #attempts: number

  /** @throws RangeError when the hash key is shorter than 16 bytes */
  constructor(options: RedisActivationsOptions) {
    if (options.hashKey.length < 16) throw new RangeError('the number hash key must be at least 16 bytes')
    this.#target = parseRedisUrl(options.url)
    this.#hashKey = Buffer.from(options.hashKey)
    // RFC 5869 HKDF, one derived key per purpose, so the encryption key is never the hash key itself.
    const derive = (info: string) => Buffer.from(hkdfSync('sha256', this.#hashKey, Buffer.alloc(0), info, 32))
    this.#encKey = derive('parley/relay/activation-number/aes-256-gcm')
    this.#macKey = derive('parley/relay/activation-code/hmac')
    this.#ttlMs = options.ttlSeconds * 1000
    this.#attempts = options.attempts
    const redis = connectRedis(this.#target, 'parley-activations')
    redis.defineCommand('parleyConfirm', { numberOfKeys: 2, lua: CONFIRM })
    this.#redis = redis as WithConfirm
  }

  #keys(activationIdHex: string): [string, string] {
    const data = `${this.#target.prefix}act:${activationIdHex}`
    return [data, `${data}:t`]
  }

  #codeMac(activationIdHex: string, code: string): string {
    return createHmac('sha256', this.#macKey).update(activationIdHex).update('\0').update(code).digest('hex')
  }

  #seal(activationIdHex: string, e164: string): string {
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', this.#encKey, iv)
    cipher.setAAD(Buffer.from(activationIdHex, 'hex'))
    const ct = Buffer.concat([cipher.update(e164, 'utf8'), cipher.final()])
    return Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64')
  }

  #open(activationIdHex: string, sealed: string): string {
    const raw = Buffer.from(sealed, 'base64')
    const decipher = createDecipheriv('aes-256-gcm', this.#encKey, raw.subarray(0, 12))
    decipher.setAAD(Buffer.from(activationIdHex, 'hex'))
    decipher.setAuthTag(raw.subarray(12, 28))
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8')
  }

  numberKey(e164: string): string {
    return keyedNumberHash(this.#hashKey, e164)
  }

  async start(e164: string): Promise<StartedActivation> {
    const started = newActivation(this.#ttlMs, this.#attempts)
    const { activationIdHex } = started
    const [data, tomb] = this.#keys(activationIdHex)
    await this.#redis
      .multi()
      .hset(data, {
        n: this.#seal(activationIdHex, e164),
        c: this.#codeMac(activationIdHex, started.code),
        a: String(this.#attempts),
      })
      .pexpire(data, this.#ttlMs)
      .set(tomb, 'pending', 'PX', 2 * this.#ttlMs)
      .exec()
    return started
  }

  async cancel(activationIdHex: string): Promise<void> {
    await this.#redis.del(...this.#keys(activationIdHex))
  }

  /** Opens the pending activation's sealed number to hash it; undefined once it is gone (expired or locked). */
  async numberKeyOf(activationIdHex: string): Promise<string | undefined> {
    if (!/^[0-9a-f]{32}$/.test(activationIdHex)) return undefined
    const sealed = await this.#redis.hget(this.#keys(activationIdHex)[0], 'n')
    if (!sealed) return undefined
    try {
      return this.numberKey(this.#open(activationIdHex, sealed))
    } catch {
      return undefined // not sealed under this node's key: confirm will not open it either
    }
  }

  /**
   * @throws ParleyError `NOT_FOUND`, `EXPIRED` or `INVALID_CODE`, with the messages of {@link Activations}
   */
  async confirm(activationIdHex: string, code: string): Promise<string> {
    return this.#confirm(activationIdHex, code, '0')
  }

  /** Checks a code without consuming the activation; refusals as {@link RedisActivations.confirm}. */
  async check(activationIdHex: string, code: string): Promise<string> {
    return this.#confirm(activationIdHex, code, '1')
  }

  async #confirm(activationIdHex: string, code: string, keep: '0' | '1'): Promise<string> {
    if (!/^[0-9a-f]{32}$/.test(activationIdHex)) throw activationRefusal.notFound()
    const given = typeof code === 'string' ? code : ''
    const [data, tomb] = this.#keys(activationIdHex)
    const [status, value] = await this.#redis.parleyConfirm(
      data,
      tomb,
      this.#codeMac(activationIdHex, given),
      keep,
    )
    switch (status) {
      case 'ok': {
        return this.#open(activationIdHex, value)
      }
      case 'wrong':
        throw activationRefusal.wrongCode(Number(value))
      case 'locked':
        throw activationRefusal.locked()
      case 'expired':
        throw activationRefusal.expired()
      default:
        throw activationRefusal.notFound()
    }
  }

  /** Redis expires entries itself. */
  sweep(): void {}

  /** Pending activations belong to the cluster, not to this node: nothing is dropped on shutdown. */
  clear(): void {}

  /** Closes the connection. */
  async close(): Promise<void> {
    await this.#redis.quit().catch(() => {})
  }
}
