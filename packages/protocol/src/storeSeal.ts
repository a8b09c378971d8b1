/**
 * Sealing of a client store's records at rest under an app-provided key (the SDK's `storeEncryptionKey`): each
 * value is XChaCha20-Poly1305 under a key derived from the app's, with a random 24-byte nonce (random nonces
 * stay safe for any number of writes at that size) and the record's own name as associated data, so a value
 * moved to another name does not open. Key names that hold a phone number are replaced by a keyed hash of it.
 * @module
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { hmac } from '@noble/hashes/hmac.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { ParleyError } from './errors.js'
import { defaultRandom, draw, type RandomSource } from './internal/e2eCrypto.js'

const VERSION = 1
const NONCE_BYTES = 24
const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** The keys derived from an app's store key: one seals values, one hides numbers in names. */
export interface StoreKeys {
  /** The XChaCha20-Poly1305 key of every record. */
  readonly seal: Uint8Array
  /** The HMAC-SHA-256 key that hides numbers in record names. */
  readonly names: Uint8Array
}

/** A record as the client knows it: {@link openStoreRecord}'s result. */
export interface OpenedStoreRecord {
  /** The client's name of the record. */
  name: string
  /** Its value. */
  value: Uint8Array
}

/**
 * Derives the sealing keys from the app's 32-byte store key (HKDF-SHA-256).
 * @param key - the app's key, 32 random bytes kept by the app (a platform keystore, say)
 * @returns the derived keys
 * @throws TypeError unless `key` is 32 bytes
 * @example const keys = deriveStoreKeys(crypto.getRandomValues(new Uint8Array(32)))
 */
export function deriveStoreKeys(key: Uint8Array): StoreKeys {
  if (!(key instanceof Uint8Array) || key.length !== 32) throw new TypeError('the store key must be 32 bytes')
  const okm = hkdf(sha256, key, new Uint8Array(0), encoder.encode('parley/v1/store-at-rest'), 64)
  return { seal: okm.slice(0, 32), names: okm.slice(32) }
}

/**
 * The name a record is stored under: every phone number in it (`+` and 6–15 digits) replaced by `#` and a keyed
 * hash of it (32 hex digits), so the store's key names do not list the contacts. Deterministic: the same name
 * always maps to the same one, and a prefix maps to the prefix of its names' mappings when it ends at a `/`.
 * @param keys - from {@link deriveStoreKeys}
 * @param name - the record's name as the client uses it
 * @returns the stored name
 * @example storedName(keys, 'contact/+14155550100') // 'contact/#3f0c…'
 */
export function storedName(keys: StoreKeys, name: string): string {
  return name.replace(/\+\d{6,15}/g, (number) => {
    const h = hmac(sha256, keys.names, encoder.encode(number)).slice(0, 16)
    return `#${Array.from(h, (b) => b.toString(16).padStart(2, '0')).join('')}`
  })
}

/**
 * Seals one record: `version ‖ nonce ‖ XChaCha20-Poly1305(name length ‖ name ‖ value)`, the stored name as
 * associated data. The client's own name travels inside, since the stored one may hide a number.
 * @param keys - from {@link deriveStoreKeys}
 * @param name - the record's name as the client uses it
 * @param value - its bytes
 * @param random - the nonce's source (the platform CSPRNG by default)
 * @returns the sealed bytes, to store under {@link storedName}
 * @example const sealed = sealStoreRecord(keys, 'account', bytes)
 */
export function sealStoreRecord(
  keys: StoreKeys,
  name: string,
  value: Uint8Array,
  random: RandomSource = defaultRandom,
): Uint8Array {
  const nameBytes = encoder.encode(name)
  const plain = new Uint8Array(4 + nameBytes.length + value.length)
  new DataView(plain.buffer).setUint32(0, nameBytes.length)
  plain.set(nameBytes, 4)
  plain.set(value, 4 + nameBytes.length)
  const nonce = draw(random, NONCE_BYTES)
  const sealed = xchacha20poly1305(keys.seal, nonce, ad(storedName(keys, name))).encrypt(plain)
  const out = new Uint8Array(1 + NONCE_BYTES + sealed.length)
  out[0] = VERSION
  out.set(nonce, 1)
  out.set(sealed, 1 + NONCE_BYTES)
  return out
}

/**
 * Opens a record sealed by {@link sealStoreRecord}.
 * @param keys - from {@link deriveStoreKeys}
 * @param stored - the name it is stored under
 * @param sealed - its bytes
 * @returns the client's name of the record and its value
 * @throws ParleyError `DECRYPT_FAILED` for another key, a value moved to another name, or any change
 * @example const { name, value } = openStoreRecord(keys, storedName(keys, 'account'), sealed)
 */
export function openStoreRecord(keys: StoreKeys, stored: string, sealed: Uint8Array): OpenedStoreRecord {
  const failed = () => new ParleyError('DECRYPT_FAILED', 'a store record does not open under this store key')
  if (sealed.length < 1 + NONCE_BYTES + 16 + 4 || sealed[0] !== VERSION) throw failed()
  let plain: Uint8Array
  try {
    plain = xchacha20poly1305(keys.seal, sealed.subarray(1, 1 + NONCE_BYTES), ad(stored)).decrypt(
      sealed.subarray(1 + NONCE_BYTES),
    )
  } catch {
    throw failed()
  }
  const length = new DataView(plain.buffer, plain.byteOffset).getUint32(0)
  if (4 + length > plain.length) throw failed()
  const name = decoder.decode(plain.subarray(4, 4 + length))
  if (storedName(keys, name) !== stored) throw failed()
  return { name, value: plain.slice(4 + length) }
}

function ad(stored: string): Uint8Array {
  return encoder.encode(`parley/v1/store-record/${stored}`)
}
