/**
 * Attachment encryption: a file is encrypted on the sender's device into a blob that the relay stores under a
 * random id, and the key and digest that open and check it travel inside the end-to-end encrypted message
 * (`Content.attachment`). The blob is made of chunks, so that a large file is encrypted and decrypted as it
 * streams, never held whole. Version 1:
 *
 *   key          = 32 random bytes, fresh for every attachment (never used for two files)
 *   chunkKey     = HKDF-SHA-256(ikm key, salt empty, info "parley/v1/attachment", 32)         (RFC 5869)
 *   chunks       = the plaintext cut into chunkSize bytes each; the last holds the rest, 1 to chunkSize bytes,
 *                  or 0 for an empty file (which is one empty chunk); n = max(1, ⌈size / chunkSize⌉)
 *   nonce_i      = i as a 96-bit big-endian integer (11 zero bytes ‖ i for i < 256)
 *   ad_i         = u64be(i) ‖ final_i, where final_i is 1 on the last chunk (i = n − 1) and 0 on every other
 *   sealed_i     = ChaCha20-Poly1305(chunkKey, nonce_i, chunk_i, ad_i) = ciphertext ‖ 16-byte tag  (RFC 8439)
 *   blob         = sealed_0 ‖ … ‖ sealed_{n−1}, of size + 16 · n bytes
 *   digest       = SHA-256(blob)
 *
 * Each chunk authenticates its own place: moving a chunk fails its tag (other nonce and index), dropping the
 * last chunks leaves no chunk with the final flag, and a chunk added after the last one does not exist for the
 * reader, who knows `size` and `chunkSize` and so where every chunk ends and which one is final. The digest binds
 * the whole blob to the message that names it, before any key is used: {@link decryptAttachment} checks it first.
 * A streaming reader ({@link createAttachmentDecryptor}) releases each chunk's plaintext once its tag verifies,
 * and checks the digest and the size at `finish()`: until then the file is not known to be whole, so a caller
 * keeps what it got only when `finish()` returns.
 * @module
 */
import type { CryptoOptions } from './cryptoProvider.js'
import { ParleyError } from './errors.js'
import { abytes, equalBytes } from './internal/bytes.js'
import {
  AEAD_TAG_BYTES,
  defaultRandom,
  draw,
  label,
  type Primitives,
  primitives,
} from './internal/e2eCrypto.js'

/** Length of an attachment key. */
export const ATTACHMENT_KEY_BYTES = 32
/** Length of an attachment digest (SHA-256 of the blob). */
export const ATTACHMENT_DIGEST_BYTES = 32
/** Plaintext bytes per chunk unless the sender chooses otherwise: 64 KiB. */
export const DEFAULT_ATTACHMENT_CHUNK_BYTES = 65536
/** The smallest chunk size, so that the tags add at most 1.6% to a blob. */
export const MIN_ATTACHMENT_CHUNK_BYTES = 1024
/** The largest chunk size (4 MiB): a reader holds one chunk at a time, so a sender cannot make it hold more. */
export const MAX_ATTACHMENT_CHUNK_BYTES = 4 * 1024 * 1024

const INFO = label('parley/v1/attachment')
const NONCE_BYTES = 12

/** Options of {@link encryptAttachment} and {@link createAttachmentEncryptor}. */
export interface AttachmentEncryptOptions extends CryptoOptions {
  /**
   * The 32-byte attachment key; default: 32 fresh random bytes. A key must never encrypt two files: the same key
   * and chunk index give the same nonce.
   */
  readonly key?: Uint8Array | undefined
  /** Plaintext bytes per chunk, {@link MIN_ATTACHMENT_CHUNK_BYTES}–{@link MAX_ATTACHMENT_CHUNK_BYTES} (default 64 KiB). */
  readonly chunkSize?: number | undefined
}

/** What opens and checks an encrypted attachment: the fields of `Content.attachment` that {@link decryptAttachment} needs. */
export interface AttachmentDecryptOptions extends CryptoOptions {
  /** The 32-byte attachment key. */
  readonly key: Uint8Array
  /** SHA-256 of the whole blob (32 bytes). */
  readonly digest: Uint8Array
  /** The plaintext's size in bytes. */
  readonly size: number
  /** Plaintext bytes per chunk, as the sender chose. */
  readonly chunkSize: number
}

/** The sizes and secrets of an encrypted attachment, as the sender puts them in `Content.attachment`. */
export interface AttachmentSecrets {
  /** The 32-byte attachment key. */
  readonly key: Uint8Array
  /** SHA-256 of the whole blob (32 bytes). */
  readonly digest: Uint8Array
  /** The plaintext's size in bytes. */
  readonly size: number
  /** The blob's size in bytes ({@link attachmentCiphertextSize}). */
  readonly ciphertextSize: number
  /** Plaintext bytes per chunk. */
  readonly chunkSize: number
}

/** An attachment encrypted in one call: its secrets and the blob to upload. */
export interface EncryptedAttachment extends AttachmentSecrets {
  /** The encrypted blob, `ciphertextSize` bytes. */
  readonly blob: Uint8Array
}

/** What {@link AttachmentEncryptor.finish} returns: the last chunks of the blob and the attachment's secrets. */
export interface AttachmentEncryptorResult extends AttachmentSecrets {
  /** The sealed chunks not yet returned by `push`: always the final one, so never empty. */
  readonly chunks: Uint8Array[]
}

/** Encrypts an attachment as it streams ({@link createAttachmentEncryptor}). */
export interface AttachmentEncryptor {
  /** The attachment key (given or drawn). */
  readonly key: Uint8Array
  /** Plaintext bytes per chunk. */
  readonly chunkSize: number
  /**
   * Takes the next plaintext bytes, of any length.
   * @returns the chunks of the blob they complete, in order (a full chunk is held until more bytes or `finish`
   *   show that it is not the last one)
   */
  push(plaintext: Uint8Array): Uint8Array[]
  /** Seals the final chunk; the encryptor takes nothing more afterwards. */
  finish(): AttachmentEncryptorResult
}

/** Decrypts an attachment as it streams ({@link createAttachmentDecryptor}). */
export interface AttachmentDecryptor {
  /**
   * Takes the next bytes of the blob, of any length.
   * @returns the plaintext of every chunk they complete, in order, each only after its tag verified
   * @throws ParleyError `VERIFICATION_FAILED` for a chunk that does not authenticate or bytes beyond the blob's
   *   size; every later call then throws it again
   */
  push(ciphertext: Uint8Array): Uint8Array[]
  /**
   * Ends the blob: checks that every chunk came and the digest.
   * @throws ParleyError `VERIFICATION_FAILED` for a truncated blob or a wrong digest: discard what `push` returned
   */
  finish(): void
}

function achunkSize(chunkSize: unknown): asserts chunkSize is number {
  if (
    typeof chunkSize !== 'number' ||
    !Number.isInteger(chunkSize) ||
    chunkSize < MIN_ATTACHMENT_CHUNK_BYTES ||
    chunkSize > MAX_ATTACHMENT_CHUNK_BYTES
  ) {
    throw new RangeError(
      `chunkSize must be an integer from ${MIN_ATTACHMENT_CHUNK_BYTES} to ${MAX_ATTACHMENT_CHUNK_BYTES}`,
    )
  }
}

/** How many chunks a plaintext of `size` bytes has: at least one. */
function chunkCount(size: number, chunkSize: number): number {
  return size === 0 ? 1 : Math.ceil(size / chunkSize)
}

/**
 * The size of the blob that a plaintext of `size` bytes encrypts to: `size` plus a 16-byte tag per chunk.
 * @param size - the plaintext's size in bytes
 * @param chunkSize - plaintext bytes per chunk
 * @returns the blob's size in bytes
 * @throws RangeError for a negative or unsafe size, a chunk size out of range, or a blob size beyond 2^53 − 1
 * @example attachmentCiphertextSize(0, DEFAULT_ATTACHMENT_CHUNK_BYTES) // 16: one empty chunk
 */
export function attachmentCiphertextSize(size: number, chunkSize: number): number {
  if (!Number.isSafeInteger(size) || size < 0)
    throw new RangeError('size must be a non-negative safe integer')
  achunkSize(chunkSize)
  const out = size + AEAD_TAG_BYTES * chunkCount(size, chunkSize)
  if (!Number.isSafeInteger(out)) throw new RangeError('the attachment is too large')
  return out
}

/** The key that seals every chunk of an attachment. */
function deriveChunkKey(c: Primitives, key: Uint8Array): Uint8Array {
  return c.hkdf(key, new Uint8Array(0), INFO, 32)
}

function nonceOf(index: number): Uint8Array {
  const nonce = new Uint8Array(NONCE_BYTES)
  const view = new DataView(nonce.buffer)
  view.setUint32(4, Math.floor(index / 2 ** 32), false)
  view.setUint32(8, index >>> 0, false)
  return nonce
}

function adOf(index: number, final: boolean): Uint8Array {
  const ad = new Uint8Array(9)
  const view = new DataView(ad.buffer)
  view.setUint32(0, Math.floor(index / 2 ** 32), false)
  view.setUint32(4, index >>> 0, false)
  ad[8] = final ? 1 : 0
  return ad
}

const refuse = (message: string, cause?: unknown): never => {
  throw new ParleyError('VERIFICATION_FAILED', message, cause === undefined ? {} : { cause })
}

/**
 * Starts encrypting an attachment that arrives in pieces: push its bytes as they come, upload the chunks in the
 * order returned, and put the secrets `finish()` returns in `Content.attachment`.
 * @param options - `key` (default: fresh random), `chunkSize` (default 64 KiB), `crypto`: a faster HKDF /
 *   ChaCha20-Poly1305 (see {@link CryptoOptions})
 * @returns the encryptor
 * @throws TypeError / RangeError for a key that is not 32 bytes or a chunk size out of range; from `push`, for a
 *   non-byte argument or more than 2^53 − 1 bytes in all; ParleyError `INVALID_STATE` from `push` or `finish`
 *   after `finish`
 * @example
 * const enc = createAttachmentEncryptor()
 * for await (const piece of file) upload(enc.push(piece))
 * const { chunks, key, digest, size, ciphertextSize, chunkSize } = enc.finish()
 */
export function createAttachmentEncryptor(options: AttachmentEncryptOptions = {}): AttachmentEncryptor {
  const chunkSize = options?.chunkSize ?? DEFAULT_ATTACHMENT_CHUNK_BYTES
  achunkSize(chunkSize)
  const key = options?.key ?? draw(defaultRandom, ATTACHMENT_KEY_BYTES)
  abytes(key, ATTACHMENT_KEY_BYTES, 'key')
  const c = primitives(options?.crypto)
  const chunkKey = deriveChunkKey(c, key)
  const hash = c.sha256()
  const buffer = new Uint8Array(chunkSize)
  let filled = 0
  let index = 0
  let size = 0
  let done = false
  const seal = (final: boolean): Uint8Array => {
    const sealed = c.aead.seal(chunkKey, nonceOf(index), buffer.subarray(0, filled), adOf(index, final))
    hash.update(sealed)
    index++
    filled = 0
    return sealed
  }
  const open = () => {
    if (done) throw new ParleyError('INVALID_STATE', 'the attachment encryptor has finished')
  }
  return {
    key,
    chunkSize,
    push(plaintext) {
      open()
      abytes(plaintext, undefined, 'plaintext')
      if (!Number.isSafeInteger(size + plaintext.length)) throw new RangeError('the attachment is too large')
      const out: Uint8Array[] = []
      for (let at = 0; at < plaintext.length; ) {
        // A full buffer is sealed only now that more bytes show it is not the last chunk.
        if (filled === chunkSize) out.push(seal(false))
        const take = Math.min(chunkSize - filled, plaintext.length - at)
        buffer.set(plaintext.subarray(at, at + take), filled)
        filled += take
        at += take
      }
      size += plaintext.length
      return out
    },
    finish() {
      open()
      done = true
      const chunks = [seal(true)]
      chunkKey.fill(0)
      buffer.fill(0)
      return {
        chunks,
        key,
        // A plain Uint8Array whatever the provider returns (node:crypto's Buffer would not survive a JSON store).
        digest: new Uint8Array(hash.digest()),
        size,
        ciphertextSize: attachmentCiphertextSize(size, chunkSize),
        chunkSize,
      }
    },
  }
}

function checkDecryptOptions(options: AttachmentDecryptOptions): number {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
  abytes(options.key, ATTACHMENT_KEY_BYTES, 'key')
  abytes(options.digest, ATTACHMENT_DIGEST_BYTES, 'digest')
  return attachmentCiphertextSize(options.size, options.chunkSize)
}

/**
 * Starts decrypting an attachment's blob as it downloads. Each chunk's plaintext is released once its tag
 * verifies; the file is whole and the one the message named only when `finish()` returns.
 * @param options - the key, digest, size and chunk size from `Content.attachment`; `crypto`: a faster HKDF /
 *   ChaCha20-Poly1305 (see {@link CryptoOptions})
 * @returns the decryptor
 * @throws TypeError / RangeError for a key or digest that is not 32 bytes, a bad size or a chunk size out of
 *   range; from `push`, for a non-byte argument; ParleyError `INVALID_STATE` from `push` or `finish` after
 *   `finish` returned
 * @example
 * const dec = createAttachmentDecryptor({ key, digest, size, chunkSize })
 * for await (const piece of download) write(dec.push(piece))
 * dec.finish() // throws VERIFICATION_FAILED if the blob was not the one sent
 */
export function createAttachmentDecryptor(options: AttachmentDecryptOptions): AttachmentDecryptor {
  const total = checkDecryptOptions(options)
  const { size, chunkSize, digest } = options
  const c = primitives(options.crypto)
  const chunkKey = deriveChunkKey(c, options.key)
  const count = chunkCount(size, chunkSize)
  const lastSealed = size - (count - 1) * chunkSize + AEAD_TAG_BYTES
  const hash = c.sha256()
  const buffer = new Uint8Array(Math.min(chunkSize, size) + AEAD_TAG_BYTES)
  let filled = 0
  let index = 0
  let received = 0
  let state: 'open' | 'refused' | 'finished' = 'open'
  const fail = (message: string, cause?: unknown): never => {
    state = 'refused'
    chunkKey.fill(0)
    buffer.fill(0)
    return refuse(message, cause)
  }
  const check = () => {
    // A refused blob stays refused, so a caller that looks only at finish() still learns it.
    if (state === 'refused') refuse('the attachment was refused')
    if (state === 'finished') throw new ParleyError('INVALID_STATE', 'the attachment decryptor has finished')
  }
  return {
    push(ciphertext) {
      check()
      abytes(ciphertext, undefined, 'ciphertext')
      if (ciphertext.length > total - received) fail('the attachment is longer than its size says')
      received += ciphertext.length
      hash.update(ciphertext)
      const out: Uint8Array[] = []
      for (let at = 0; at < ciphertext.length; ) {
        const final = index === count - 1
        const want = final ? lastSealed : chunkSize + AEAD_TAG_BYTES
        const take = Math.min(want - filled, ciphertext.length - at)
        buffer.set(ciphertext.subarray(at, at + take), filled)
        filled += take
        at += take
        if (filled === want) {
          let plaintext: Uint8Array
          try {
            plaintext = c.aead.open(chunkKey, nonceOf(index), buffer.subarray(0, want), adOf(index, final))
          } catch (cause) {
            return fail('an attachment chunk does not authenticate', cause)
          }
          out.push(plaintext)
          index++
          filled = 0
        }
      }
      return out
    },
    finish() {
      check()
      if (index !== count) fail('the attachment is shorter than its size says')
      if (!equalBytes(hash.digest(), digest)) fail('the attachment does not match its digest')
      state = 'finished'
      chunkKey.fill(0)
    },
  }
}

/**
 * Encrypts a whole attachment at once (see {@link createAttachmentEncryptor} for one that streams).
 * @param plaintext - the file
 * @param options - `key` (default: fresh random), `chunkSize` (default 64 KiB), `crypto`
 * @returns the blob to upload and the secrets for `Content.attachment`
 * @throws TypeError / RangeError for a non-byte plaintext, a key that is not 32 bytes or a chunk size out of range
 * @example const { blob, key, digest, size, ciphertextSize, chunkSize } = encryptAttachment(file)
 */
export function encryptAttachment(
  plaintext: Uint8Array,
  options: AttachmentEncryptOptions = {},
): EncryptedAttachment {
  abytes(plaintext, undefined, 'plaintext')
  const enc = createAttachmentEncryptor(options)
  const pieces = enc.push(plaintext)
  const result = enc.finish()
  const blob = new Uint8Array(result.ciphertextSize)
  let at = 0
  for (const piece of [...pieces, ...result.chunks]) {
    blob.set(piece, at)
    at += piece.length
  }
  const { key, digest, size, ciphertextSize, chunkSize } = result
  return { key, digest, size, ciphertextSize, chunkSize, blob }
}

/**
 * Decrypts a whole attachment at once, after checking its size and digest: nothing of a blob that is not the one
 * the message named is decrypted.
 * @param blob - the downloaded blob (untrusted input)
 * @param options - the key, digest, size and chunk size from `Content.attachment`; `crypto`
 * @returns the plaintext
 * @throws TypeError / RangeError as {@link createAttachmentDecryptor}; ParleyError `VERIFICATION_FAILED` for a
 *   blob of the wrong size or digest, or one whose chunks do not authenticate (changed, moved, dropped or added)
 * @example const file = decryptAttachment(blob, content.attachment)
 */
export function decryptAttachment(blob: Uint8Array, options: AttachmentDecryptOptions): Uint8Array {
  abytes(blob, undefined, 'blob')
  const total = checkDecryptOptions(options)
  if (blob.length !== total) refuse('the attachment does not have the size its message says')
  // The digest is checked by the decryptor's finish, before anything is returned: hashing here first too would
  // hash the blob twice.
  const dec = createAttachmentDecryptor(options)
  const out = new Uint8Array(options.size)
  let at = 0
  for (const piece of dec.push(blob)) {
    out.set(piece, at)
    at += piece.length
  }
  dec.finish()
  return out
}
