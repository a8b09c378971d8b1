/**
 * Private discovery (docs/architecture.md §4): batch VOPRF evaluation with one DLEQ proof for authenticated accounts, under
 * per-account and per-network quotas, and k-anonymous membership by address prefix.
 * @module
 */
import { type ClientBodyOf, ParleyError } from '@parley/protocol'
import type { OprfKey } from '../OprfKeyring.js'
import type { DeviceScope, RequestScope } from './scope.js'
import { charge, type Reply, requireBytes } from './util.js'

/** Most addresses returned for one prefix (a prefix this crowded means the prefix is too short). */
const MAX_BUCKET = 4096
/** Prefixes read from the store per slice of the heavy lane. */
const PREFIXES_PER_SLICE = 10

/**
 * The device's own number, blinded (`ActivationConfirm` / `RebindAddress` `.blinded_number`), evaluated under
 * `key` with its proof, so the device can check the address it is given against the pinned key without spending
 * discovery quota (each such request is limited by its own quotas). Undefined when none was sent or it is not a
 * valid element: the device then checks its address the slow way.
 */
export async function evaluateOwnNumber(
  conn: RequestScope,
  key: OprfKey,
  blinded: Uint8Array,
): Promise<{ keyId: number; evaluatedElements: Uint8Array[]; proof: Uint8Array } | undefined> {
  if (blinded.length !== 32) return undefined
  try {
    const { evaluatedElements, proof } = await conn.ctx.oprfPool.evaluate(key.secretKey, key.publicKey, [
      blinded,
    ])
    return { keyId: key.keyId, evaluatedElements, proof }
  } catch {
    return undefined
  }
}

/**
 * The items of a discovery request, 1 to `max` of them.
 * @throws ParleyError `BAD_REQUEST` for none, `TOO_LARGE` for more than `max`
 */
function requireBatch<T>(items: T[], max: number, what: string, per: string): T[] {
  if (items.length === 0) throw new ParleyError('BAD_REQUEST', `no ${what}`)
  if (items.length > max) throw new ParleyError('TOO_LARGE', `at most ${max} ${what} per ${per}`)
  return items
}

/** `OprfEvaluate` → `OprfEvaluated`. */
export async function oprfEvaluate(
  scope: DeviceScope,
  request: ClientBodyOf<'oprfEvaluate'>,
): Promise<Reply> {
  const { oprf, config, policies, metrics } = scope.ctx
  const { keyId } = request
  const key = oprf.get(keyId)
  if (!key) throw new ParleyError('NOT_FOUND', 'unknown OPRF key id; use a key announced in ServerHello')
  const elements = requireBatch(
    request.blindedElements,
    config.maxDiscoveryBatch,
    'blinded elements',
    'batch',
  )
  for (const e of elements) requireBytes(e, 32, 'blinded element')
  // Authenticated only (the route says so): every evaluation is charged to an account that needed a real number
  // to exist, and to the source network, which Sybil accounts on one network share.
  const device = scope.device
  await charge(scope, 'oprf_account', `oprf:acct:${device.quotaId}`, elements.length, policies.oprfAccount)
  await charge(scope, 'oprf_network', `oprf:net:${scope.network}`, elements.length, policies.oprfIp)
  // Off the event loop: a full batch is ~0.5 s of curve arithmetic (OprfPool.ts).
  const pool = scope.ctx.oprfPool
  const { evaluatedElements, proof } = await pool.evaluate(key.secretKey, key.publicKey, elements)
  metrics.oprfEvaluations.inc(elements.length)
  return { oprfEvaluated: { keyId, evaluatedElements, proof } }
}

/**
 * `MembershipQuery` → `MembershipResult`: every registered address under each distinct prefix.
 *
 * Only the announced prefix length is accepted: a longer one would name a single address (and with 256 bits,
 * test one exactly), a shorter one download a large part of the directory per query. Every prefix asked and
 * every address returned is charged to the account (`--membership-addresses-*`), so downloading the whole
 * directory is slow and counted; the store reads run in slices of the heavy lane.
 */
export async function membershipQuery(
  scope: DeviceScope,
  request: ClientBodyOf<'membershipQuery'>,
): Promise<Reply> {
  const { config, store, policies, metrics } = scope.ctx
  const bits = request.prefixBits
  // The length announced to this connection: it adapts to the population (MembershipLength.ts), and a client
  // keeps the one its ServerHello gave until it reconnects.
  const announced = scope.membershipPrefixBits
  if (bits !== announced) {
    throw new ParleyError('BAD_REQUEST', `prefix_bits must be ${announced}, as announced`)
  }
  const prefixes = requireBatch(request.prefixes, config.maxDiscoveryBatch, 'prefixes', 'query')
  const length = Math.ceil(bits / 8)
  const seen = new Set<string>()
  const distinct: Uint8Array[] = []
  for (const p of prefixes) {
    const prefix = requireBytes(p, length, 'prefix')
    if (bits & 7 && (prefix[length - 1]! & (0xff >> (bits & 7))) !== 0) {
      throw new ParleyError('BAD_REQUEST', 'unused trailing bits of a prefix must be zero')
    }
    const hex = Buffer.from(prefix).toString('hex')
    if (seen.has(hex)) continue
    seen.add(hex)
    distinct.push(prefix)
  }
  // Each prefix costs a store read, answered or empty: charged before reading, with the addresses after.
  const quota = `member:acct:${scope.device.quotaId}`
  await charge(scope, 'membership', quota, distinct.length, policies.membership)
  const reads = await scope.ctx.lane.map(distinct, PREFIXES_PER_SLICE, (prefix) =>
    store.addressesWithPrefix(prefix, bits, MAX_BUCKET),
  )
  const buckets = await Promise.all(
    distinct.map(async (prefix, i) => ({ prefix, addresses: await reads[i]! })),
  )
  const returned = buckets.reduce((n, b) => n + b.addresses.length, 0)
  if (returned > 0) await charge(scope, 'membership', quota, returned, policies.membership)
  metrics.membershipAddresses.inc(returned)
  return { membershipResult: { buckets } }
}
