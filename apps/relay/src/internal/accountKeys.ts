// Crypto-shredding for the PostgreSQL store (SECURITY.md, "Erasure"). Every secret-ish value of an account is
// kept sealed (AES-256-GCM) under a random data key of that account alone, bound by its associated data to the
// row and column it belongs to; the data key lives in one small row of `account_keys`, wrapped under the store
// key, which is kept outside the database. Deleting the key row makes every copy of the account's values that
// PostgreSQL leaves behind (dead row versions, index and TOAST pages, WAL segments, archives) unreadable.
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
  randomFillSync,
} from 'node:crypto'

/** First byte of every sealed value: AES-256-GCM, 96-bit random nonce, 128-bit tag. */
const SEALED_V1 = 1
const NONCE_BYTES = 12
const TAG_BYTES = 16
/** Bytes a sealed value has beyond its plaintext (version, nonce, tag). */
export const SEAL_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES
/** Length of a data key id (random, never reused: a new one for every new key). */
export const KEY_ID_BYTES = 16
const DATA_KEY_BYTES = 32

/** Raised when a sealed value does not open: tampered with, moved to another row, or sealed under another key. */
export class SealedValueError extends Error {
  override readonly name = 'SealedValueError'
}

/**
 * Associated data of one sealed value: a domain label, the table and column, the account's address and the
 * integers (device id, key id, sequence number) and bytes (message id) that identify its row. A value copied
 * into another row, column or account does not open.
 */
export function boundTo(column: string, address: Uint8Array, ints: number[] = [], tail?: Uint8Array): Buffer {
  const label = LABELS.get(column) ?? Buffer.from(`parley/pg/v1 ${column}\0`, 'latin1')
  const out = Buffer.allocUnsafe(label.length + 2 + address.length + 8 * ints.length + (tail?.length ?? 0))
  let o = label.copy(out, 0)
  o = out.writeUInt16BE(address.length, o)
  o += Buffer.from(address.buffer, address.byteOffset, address.length).copy(out, o)
  for (const n of ints) {
    // Safe non-negative integers (ids, seqs) as 64-bit big-endian.
    o = out.writeUInt32BE(Math.floor(n / 0x1_0000_0000), o)
    o = out.writeUInt32BE(n >>> 0, o)
  }
  if (tail) Buffer.from(tail.buffer, tail.byteOffset, tail.length).copy(out, o)
  return out
}

/** The sealed columns (labels precomputed; `boundTo` accepts any name). */
export const COLUMNS = [
  'accounts.identity_key',
  'accounts.signed_prekey',
  'accounts.signed_prekey_sig',
  'accounts.kem_prekey',
  'accounts.kem_prekey_sig',
  'accounts.number_commitment',
  'accounts.delivery_verifier',
  'one_time_prekeys.public_key',
  'kem_prekeys.public_key',
  'kem_prekeys.signature',
  'mailbox.envelope',
  'account_keys.data_key',
  // Linked devices (schema version 8).
  'linked_devices.device_key',
  'linked_devices.signed_prekey',
  'linked_devices.signed_prekey_sig',
  'linked_devices.kem_prekey',
  'linked_devices.kem_prekey_sig',
  'linked_one_time_prekeys.public_key',
  'linked_kem_prekeys.public_key',
  'linked_kem_prekeys.signature',
  'device_lists.list',
] as const
const LABELS = new Map(COLUMNS.map((c) => [c as string, Buffer.from(`parley/pg/v1 ${c}\0`, 'latin1')]))

// Nonces are drawn from the CSPRNG 512 at a time (one call costs about as much as the AES-GCM of a small
// envelope); each is used once and the pool is refilled, never reused.
const noncePool = Buffer.allocUnsafe(NONCE_BYTES * 512)
let nonceAt = noncePool.length

/** Seals `plain` under `key`: version ‖ fresh random nonce ‖ ciphertext ‖ tag. */
export function seal(key: KeyObject, ad: Buffer, plain: Uint8Array): Buffer {
  if (nonceAt === noncePool.length) {
    randomFillSync(noncePool)
    nonceAt = 0
  }
  const head = Buffer.allocUnsafe(1 + NONCE_BYTES)
  head[0] = SEALED_V1
  nonceAt += noncePool.copy(head, 1, nonceAt, nonceAt + NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, head.subarray(1), { authTagLength: TAG_BYTES })
  cipher.setAAD(ad)
  const body = cipher.update(plain)
  cipher.final() // GCM emits nothing here; it computes the tag
  return Buffer.concat([head, body, cipher.getAuthTag()], head.length + body.length + TAG_BYTES)
}

/**
 * Opens a value sealed by {@link seal} with the same key and associated data.
 * @throws SealedValueError when it does not authenticate
 */
export function open(key: KeyObject, ad: Buffer, sealed: Buffer, what: string): Buffer {
  if (sealed.length < SEAL_OVERHEAD || sealed[0] !== SEALED_V1) {
    throw new SealedValueError(`${what} is not a sealed value`)
  }
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(1, 1 + NONCE_BYTES), {
    authTagLength: TAG_BYTES,
  })
  decipher.setAAD(ad)
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
  const body = decipher.update(sealed.subarray(1 + NONCE_BYTES, sealed.length - TAG_BYTES))
  try {
    decipher.final()
  } catch {
    throw new SealedValueError(`${what} does not open under its account key (tampered, moved or foreign)`)
  }
  return body
}

/** A fresh data key and its id. */
export function newDataKey(): { keyId: Buffer; raw: Buffer } {
  return { keyId: randomBytes(KEY_ID_BYTES), raw: randomBytes(DATA_KEY_BYTES) }
}

/** A raw data key as a key object for the cipher calls. */
export function dataKeyObject(raw: Uint8Array): KeyObject {
  if (raw.length !== DATA_KEY_BYTES) throw new SealedValueError('a data key must be 32 bytes')
  return createSecretKey(raw)
}

/**
 * The store key (kept outside the database) as the two keys derived from it: one wraps data keys, the other
 * computes the check value stored in `store_meta`, which tells a node started with another store key (or none)
 * to refuse to open rather than fail on every account.
 */
export class StoreKey {
  readonly #wrap: KeyObject
  /** HMAC of a fixed label under a key derived from the store key: reveals nothing of it. */
  readonly check: Buffer

  constructor(key: Uint8Array) {
    if (key.length !== 32) throw new RangeError('the store key must be 32 bytes')
    const derive = (info: string) =>
      Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `parley/pg/v1 store key: ${info}`, 32))
    this.#wrap = createSecretKey(derive('wrap data keys'))
    this.check = createHmac('sha256', derive('check value')).update('parley/pg/v1 store key check').digest()
  }

  /** A data key as stored in `account_keys.data_key`, bound to its account and key id. */
  wrap(address: Uint8Array, keyId: Uint8Array, raw: Uint8Array): Buffer {
    return seal(this.#wrap, boundTo('account_keys.data_key', address, [], keyId), raw)
  }

  /** @throws SealedValueError when the stored key was not wrapped under this store key for this account */
  unwrap(address: Uint8Array, keyId: Uint8Array, wrapped: Buffer): Buffer {
    return open(this.#wrap, boundTo('account_keys.data_key', address, [], keyId), wrapped, 'a data key')
  }
}

/** Options of {@link DataKeyCache}. */
export interface DataKeyCacheOptions {
  /** Most keys held (least recently used dropped first); 0 turns caching off. */
  capacity: number
  /** How long a key is held after it was read from the database. */
  ttlMs: number
  now?: () => number
}

/**
 * Data keys this node read recently, by key id, so that the hot paths (enqueue, mailbox reads) need no key
 * lookup per message. Correctness never depends on it: every operation reads the account row's current key id
 * in its own transaction and looks only that id up, so a key replaced or erased by any node is never used.
 * What the cache must also not do is *keep* such a key: erased ids are dropped at once on this node
 * ({@link forget}, also driven by other nodes' erasure notices), remembered so that a read racing the erasure
 * cannot put them back, and every entry expires after `ttlMs` in any case.
 */
export class DataKeyCache {
  readonly #entries = new Map<string, { key: KeyObject; expiresAt: number }>()
  readonly #erased = new Set<string>()
  readonly #capacity: number
  readonly #ttlMs: number
  readonly #now: () => number
  #enabled = true

  constructor(options: DataKeyCacheOptions) {
    this.#capacity = Math.max(0, Math.floor(options.capacity))
    this.#ttlMs = options.ttlMs
    this.#now = options.now ?? Date.now
  }

  /** How many keys are held. */
  get size(): number {
    return this.#entries.size
  }

  get(keyId: Buffer): KeyObject | undefined {
    const id = keyId.toString('hex')
    const e = this.#entries.get(id)
    if (e === undefined) return undefined
    if (e.expiresAt <= this.#now()) {
      this.#entries.delete(id)
      return undefined
    }
    // Most recently used last: Map iteration order is the eviction order.
    this.#entries.delete(id)
    this.#entries.set(id, e)
    return e.key
  }

  set(keyId: Buffer, key: KeyObject): void {
    const id = keyId.toString('hex')
    if (!this.#enabled || this.#capacity === 0 || this.#erased.has(id)) return
    this.#entries.delete(id)
    this.#entries.set(id, { key, expiresAt: this.#now() + this.#ttlMs })
    while (this.#entries.size > this.#capacity) this.#entries.delete(this.#entries.keys().next().value!)
  }

  /** Drops a key id for good: it was erased or replaced, here or on another node. */
  forget(keyIdHex: string): void {
    this.#entries.delete(keyIdHex)
    this.#erased.add(keyIdHex)
    // Remembered only long enough to outlive any read that began before the erasure (bounded either way).
    while (this.#erased.size > Math.max(1024, this.#capacity)) {
      this.#erased.delete(this.#erased.values().next().value!)
    }
  }

  /**
   * Turns caching off and drops everything (the erasure notices from other nodes stopped arriving, so a held
   * key could belong to an account erased meanwhile), or back on once they arrive again.
   */
  setEnabled(enabled: boolean): void {
    this.#enabled = enabled
    this.#entries.clear()
  }

  get enabled(): boolean {
    return this.#enabled
  }
}
