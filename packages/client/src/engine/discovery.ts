// Private discovery (docs/architecture.md §4): numbers normalised on the device, blinded for the relay's OPRF,
// the tokens cached per key epoch, and membership looked up by short address prefixes. Not exported.
import {
  addressFromToken,
  addressPrefix,
  loadNumberMetadata,
  type NumberMetadata,
  normalizeNumberWith,
  numberToOprfInput,
  type OprfBlinded,
  oprfBlind,
  oprfFinalize,
  ParleyError,
  type ServerBodyOf,
  type ServerFrame,
} from '@parley/protocol'
import { toHex } from '../internal/codec.js'
import * as e2e from '../internal/e2e.js'
import type { ServerHello } from '../RelayLink.js'
import type { StoreWrite } from '../Store.js'
import type { CallOptions, DiscoveryResult, ParleyClientOptions } from '../types.js'
import { type Engine, expectBody } from './context.js'
import { type ContactRecord, get, K, put } from './keyspace.js'

/** How long a discovery result counts as fresh before `send()` asks again, unless the options say otherwise. */
export const DEFAULT_DISCOVERY_TTL_MS = 24 * 3600_000
const BUSY_RETRIES = 5
/** OPRF elements per request when pipelining discovery (smaller chunks overlap more; each costs a proof). */
const OPRF_PIPELINE_CHUNK = 125

type OprfKey = NonNullable<ServerHello['oprfKeys']>[number]

export class Discovery {
  readonly #engine: Engine
  readonly #region: ParleyClientOptions['defaultRegion']
  #numberMetadata: Promise<NumberMetadata> | null = null

  constructor(engine: Engine, region: ParleyClientOptions['defaultRegion']) {
    this.#engine = engine
    this.#region = region
  }

  /** `ParleyClient.discover`, after the open check. */
  async discover(numbers: readonly string[], options: CallOptions): Promise<DiscoveryResult[]> {
    if (!Array.isArray(numbers) || numbers.some((n) => typeof n !== 'string')) {
      throw new TypeError('numbers must be an array of strings')
    }
    if (numbers.length > 10_000) throw new RangeError('at most 10,000 numbers per discover() call')
    this.#engine.requireAccount()
    const metadata = await this.#metadata()
    const e164s = numbers.map((n) => {
      try {
        return normalizeNumberWith(metadata, n, this.#region)
      } catch {
        return null
      }
    })
    const unique = [...new Set(e164s.filter((n): n is string => n !== null))]
    const registered = await this.lookup(unique, options.signal)
    return numbers.map((number, i) => {
      const e164 = e164s[i] ?? null
      return { number, e164, registered: e164 !== null && registered.get(e164) === true }
    })
  }

  /** A number in E.164, in the options' default region when it has no country code (`INVALID_NUMBER`). */
  async normalize(input: string): Promise<string> {
    return normalizeNumberWith(await this.#metadata(), input, this.#region)
  }

  /** Number metadata, loaded on first use (a separate chunk in browser bundles). */
  #metadata(): Promise<NumberMetadata> {
    this.#numberMetadata ??= loadNumberMetadata().catch((err: unknown) => {
      this.#numberMetadata = null
      throw new ParleyError('UNAVAILABLE', 'could not load phone number metadata', { cause: err })
    })
    return this.#numberMetadata
  }

  /** Resolves numbers to registration status, caching OPRF tokens per key epoch and contacts. */
  async lookup(e164s: string[], signal?: AbortSignal): Promise<Map<string, boolean>> {
    const { link, store, clock } = this.#engine
    const out = new Map<string, boolean>()
    if (e164s.length === 0) return out
    const keyId = link.hello?.oprfKeys[0]?.keyId
    const tokens = await this.tokens(e164s, signal)
    const bits = link.hello?.limits?.membershipPrefixBits || 16
    const addresses = tokens.map((t) => addressFromToken(t))
    const prefixes = new Map<string, Uint8Array>()
    for (const a of addresses) {
      const p = addressPrefix(a, bits)
      prefixes.set(toHex(p), p)
    }
    const registered = new Set<string>()
    const batch = link.hello?.limits?.maxDiscoveryBatch || 500
    const all = [...prefixes.values()]
    for (let i = 0; i < all.length; i += batch) {
      const frame = await link.request(
        { membershipQuery: { prefixBits: bits, prefixes: all.slice(i, i + batch) } },
        { signal },
      )
      for (const bucket of expectBody(frame, 'membershipResult').buckets) {
        for (const a of bucket.addresses) registered.add(toHex(a))
      }
    }
    const now = clock.now()
    const writes: StoreWrite[] = []
    e164s.forEach((e164, i) => {
      const address = addresses[i]!
      const isRegistered = registered.has(toHex(address))
      out.set(e164, isRegistered)
      const record: ContactRecord = {
        e164,
        address,
        registered: isRegistered,
        checkedAt: now,
        ...(typeof keyId === 'number' ? { keyId } : {}),
      }
      writes.push(put(K.contact(e164), record))
      if (isRegistered) writes.push(put(K.byAddress(toHex(address)), e164))
    })
    await store.write(writes)
    return out
  }

  /**
   * The token of our own number from the evaluation that came with `Activated`, checked against the pinned
   * OPRF key like any other (`oprfFinalize` verifies the proof); undefined when the relay sent none.
   */
  ownToken(
    input: Uint8Array,
    blinded: OprfBlinded | undefined,
    evaluation: ServerBodyOf<'activated'>['ownNumber'],
    key: OprfKey | undefined = this.#engine.link.hello?.oprfKeys?.[0],
  ): Uint8Array | undefined {
    if (!blinded || !evaluation || !key?.publicKey || evaluation.keyId !== key.keyId) return undefined
    const [token] = oprfFinalize(
      [input],
      [blinded.blind],
      evaluation.evaluatedElements,
      [blinded.blindedElement],
      evaluation.proof,
      key.publicKey,
    )
    return token
  }

  /** OPRF tokens for E.164 numbers under the relay's current key, evaluating only those not cached. */
  async tokens(e164s: string[], signal?: AbortSignal): Promise<Uint8Array[]> {
    const { link, store } = this.#engine
    await link.waitOnline(signal)
    const key = link.hello?.oprfKeys?.[0]
    if (!key?.publicKey || key.keyId === undefined || key.keyId === null) {
      throw new ParleyError('UNSUPPORTED', 'the relay announced no OPRF key')
    }
    const keyId = key.keyId
    const pinned = await get(store, K.oprfPin(keyId))
    if (pinned === undefined || !e2e.equal(pinned, key.publicKey)) {
      throw new ParleyError('VERIFICATION_FAILED', 'the relay OPRF key is not the pinned one')
    }
    const tokens = new Map<string, Uint8Array>()
    const missing: string[] = []
    for (const e164 of e164s) {
      const cached = await get(store, K.token(keyId, e164))
      if (cached === undefined) missing.push(e164)
      else tokens.set(e164, cached)
    }
    // Pipelined: while the relay evaluates one chunk, this thread blinds the next and finalises the last, so
    // the client's and the relay's arithmetic overlap instead of taking turns.
    const size = Math.min(link.hello?.limits?.maxDiscoveryBatch || 500, OPRF_PIPELINE_CHUNK)
    type InFlight = {
      chunk: string[]
      inputs: Uint8Array[]
      blinded: OprfBlinded[]
      reply: Promise<ServerFrame>
    }
    const finish = async (f: InFlight): Promise<void> => {
      const evaluated = expectBody(await f.reply, 'oprfEvaluated')
      if (evaluated.keyId !== keyId) {
        throw new ParleyError('VERIFICATION_FAILED', 'the relay evaluated with another key')
      }
      const outputs = oprfFinalize(
        f.inputs,
        f.blinded.map((b) => b.blind),
        evaluated.evaluatedElements,
        f.blinded.map((b) => b.blindedElement),
        evaluated.proof,
        pinned,
      )
      const writes: StoreWrite[] = []
      f.chunk.forEach((e164, j) => {
        tokens.set(e164, outputs[j]!)
        writes.push(put(K.token(keyId, e164), outputs[j]!))
      })
      await store.write(writes)
    }
    // Tokens finished before a failure stay cached; the rest are asked again next time.
    let previous: InFlight | null = null
    for (let i = 0; i < missing.length; i += size) {
      const chunk = missing.slice(i, i + size)
      const inputs = chunk.map((n) => numberToOprfInput(n))
      const blinded = inputs.map((input) => oprfBlind(input))
      const reply = this.#requestBusyAware(
        { oprfEvaluate: { keyId, blindedElements: blinded.map((b) => b.blindedElement) } },
        signal,
      )
      reply.catch(() => {}) // awaited in finish(); must not count as unhandled while the previous one finishes
      if (previous !== null) await finish(previous)
      previous = { chunk, inputs, blinded, reply }
    }
    if (previous !== null) await finish(previous)
    return e164s.map((n) => tokens.get(n)!)
  }

  /**
   * A request that a busy relay may refuse with `UNAVAILABLE` + `retryAfterMs` (its OPRF workers are
   * saturated): waits as told and tries again, a few times, before giving up.
   */
  async #requestBusyAware(
    body: Parameters<Engine['link']['request']>[0],
    signal?: AbortSignal,
  ): Promise<ServerFrame> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#engine.link.request(body, { signal })
      } catch (err) {
        const e = ParleyError.fromUnknown(err)
        if (e.code !== 'UNAVAILABLE' || e.retryAfterMs === undefined || attempt >= BUSY_RETRIES) throw e
        await this.#engine.sleep(e.retryAfterMs ?? 0, signal)
      }
    }
  }
}
