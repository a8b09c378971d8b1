// Address forwards (Store.rebindAddress with `forwardUntilMs`, Store.addressForward), as both SQL stores keep them:
// one opaque row per forward, in the same format in SQLite and PostgreSQL (so `parley-relay migrate` carries the
// rows as they are). A row links the two addresses only for someone who already knows the old one: it is found by
// a hash of the old address, its target is sealed under a key derived from the old address, and the hash of the
// new address it holds (for erasure with the account) cannot be turned back into that address either.

import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto'
import { MAX_FORWARD_HOPS, type RebindOptions } from '../Store.js'
import { buf, u8 } from './rows.js'

/** Domain of {@link forwardFromKey}: a forward's lookup key. */
const FROM_DOMAIN = Buffer.from('parley/v1/forward')
/** Domain of {@link forwardToKey}: the key a forward is erased by when its target account is. */
const TO_DOMAIN = Buffer.from('parley/v1/forward-to')
/** HKDF info of the key a forward's target is sealed under. */
const KEY_INFO = Buffer.from('parley/v1/forward-key')
/** ChaCha20-Poly1305 nonce and tag lengths; a sealed target is nonce ‖ ciphertext ‖ tag. */
const NONCE_BYTES = 12
const TAG_BYTES = 16

/** A forward row as both stores name its columns (all four opaque to the database). */
export interface ForwardRow {
  /** SHA-256("parley/v1/forward" ‖ from): the primary key. */
  old_key: Buffer
  /** SHA-256("parley/v1/forward-to" ‖ to): indexed, for Store.deleteAccount of `to`. */
  new_key: Buffer
  /** `to` sealed ({@link sealForwardTarget}). */
  target: Buffer
  /** The forward holds until this time (ms since the epoch) and is swept once it has passed. */
  expires_at_ms: number
}

/** The lookup key of the forward from `from`. */
export function forwardFromKey(from: Uint8Array): Buffer {
  return createHash('sha256').update(FROM_DOMAIN).update(from).digest()
}

/** The key that names every forward leading to `to` (erased with `to`'s account). */
export function forwardToKey(to: Uint8Array): Buffer {
  return createHash('sha256').update(TO_DOMAIN).update(to).digest()
}

/** The ChaCha20-Poly1305 key of the forward from `from`: HKDF-SHA256(from, no salt, "parley/v1/forward-key"). */
function targetKey(from: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', from, Buffer.alloc(0), KEY_INFO, 32))
}

/** `to` sealed under the key of `from`: a random 12-byte nonce ‖ ciphertext ‖ 16-byte tag. */
export function sealForwardTarget(from: Uint8Array, to: Uint8Array): Buffer {
  const key = targetKey(from)
  try {
    const nonce = randomBytes(NONCE_BYTES)
    const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES })
    return Buffer.concat([nonce, cipher.update(to), cipher.final(), cipher.getAuthTag()])
  } finally {
    key.fill(0)
  }
}

/** The address a forward from `from` leads to, or undefined when `target` does not open under `from`'s key. */
export function openForwardTarget(from: Uint8Array, target: Uint8Array): Uint8Array | undefined {
  if (target.length < NONCE_BYTES + TAG_BYTES) return undefined
  const t = buf(target)
  const key = targetKey(from)
  try {
    const decipher = createDecipheriv('chacha20-poly1305', key, t.subarray(0, NONCE_BYTES), {
      authTagLength: TAG_BYTES,
    })
    decipher.setAuthTag(t.subarray(t.length - TAG_BYTES))
    const opened = Buffer.concat([
      decipher.update(t.subarray(NONCE_BYTES, t.length - TAG_BYTES)),
      decipher.final(),
    ])
    return u8(opened)
  } catch {
    return undefined
  } finally {
    key.fill(0)
  }
}

/** The row of a forward from `from` to `to` until `untilMs`, its target freshly sealed. */
export function forwardRow(from: Uint8Array, to: Uint8Array, untilMs: number): ForwardRow {
  return {
    old_key: forwardFromKey(from),
    new_key: forwardToKey(to),
    target: sealForwardTarget(from, to),
    expires_at_ms: untilMs,
  }
}

/** Whether a forward that holds until `expiresAtMs` has run out at `nowMs` (it holds through `expiresAtMs`). */
export function forwardExpired(expiresAtMs: number, nowMs: number): boolean {
  return expiresAtMs < nowMs
}

/**
 * Checks a rebind's options before anything is written: a number commitment is 32 bytes, a forward's end a
 * millisecond time.
 * @throws RangeError otherwise
 */
export function checkRebindOptions(options: RebindOptions): void {
  if (options.numberCommitment !== undefined && options.numberCommitment.length !== 32)
    throw new RangeError('a number commitment is 32 bytes')
  if (options.forwardUntilMs !== undefined && !Number.isSafeInteger(options.forwardUntilMs))
    throw new RangeError('forwardUntilMs must be an integer time in ms')
}

/** How a store answers {@link followForwards}: one forward row by its lookup key, and whether an address has an account. */
export interface ForwardReader {
  /** The forward row whose `old_key` is `fromKey`, expired or not, or undefined. */
  forward(fromKey: Buffer): ForwardRow | undefined | Promise<ForwardRow | undefined>
  /** Whether `address` has an account. */
  hasAccount(address: Uint8Array): boolean | Promise<boolean>
}

/**
 * The Store.addressForward rules: from `from`, follow at most {@link MAX_FORWARD_HOPS} forwards, each unexpired
 * at `nowMs` and opening under the key of the address it leads from, to the first address that has an account.
 * Undefined when a forward is missing, expired or does not open (data never throws), or the hops run out.
 */
export async function followForwards(
  from: Uint8Array,
  nowMs: number,
  read: ForwardReader,
): Promise<Uint8Array | undefined> {
  let at = from
  for (let hop = 0; hop < MAX_FORWARD_HOPS; hop++) {
    const row = await read.forward(forwardFromKey(at))
    if (!row || forwardExpired(row.expires_at_ms, nowMs)) return undefined
    const to = openForwardTarget(at, row.target)
    if (!to) return undefined
    if (await read.hasAccount(to)) return to
    at = to
  }
  return undefined
}
