/**
 * Backup archives (docs/architecture.md §9.7): bytes sealed under a passphrase, for an account's identity, keys,
 * sessions, contacts and history. Version 1:
 *
 *   header  = "PRLYBKUP" ‖ version 1 ‖ kdf 1 (scrypt) ‖ logN ‖ r 8 ‖ p 1 ‖ salt (16) ‖ nonce (12)   (41 bytes)
 *   key     = scrypt(UTF-8(NFKC(passphrase)), salt, N = 2^logN, r, p, 32)                       (RFC 7914)
 *   archive = header ‖ ChaCha20-Poly1305(key, nonce, plaintext, ad header)                        (RFC 8439)
 *
 * The whole header is associated data, so no byte of it can change without the archive failing to open; a wrong
 * passphrase and a damaged archive fail alike. The scrypt cost an archive may demand is bounded, so opening a
 * hostile one cannot take unbounded time or memory.
 * @module
 */
import type { CryptoOptions } from './cryptoProvider.js'
import { ParleyError } from './errors.js'
import { abytes, concatBytes, equalBytes } from './internal/bytes.js'
import {
  AEAD_TAG_BYTES,
  aeadOpen,
  aeadSeal,
  defaultRandom,
  draw,
  primitives,
  type RandomSource,
} from './internal/e2eCrypto.js'
import { scrypt } from './internal/scrypt.js'

/** The archive format version this package writes and reads. */
export const BACKUP_VERSION = 1
/** The scrypt cost a new archive uses by default: N = 2^17 (128 MiB of memory with r = 8). */
export const BACKUP_LOG_N = 17
/** The lowest scrypt cost an archive may be sealed or opened with. */
export const MIN_BACKUP_LOG_N = 14
/**
 * The highest scrypt cost an archive may be sealed or opened with: 2^18 (256 MiB with r = 8), so a hostile
 * archive cannot make the device that opens it spend more.
 */
export const MAX_BACKUP_LOG_N = 18
/** Shortest passphrase, in Unicode code points after NFKC normalisation. */
export const MIN_BACKUP_PASSPHRASE_LENGTH = 12
/** Length of an archive's header, the part before the ciphertext. */
export const BACKUP_HEADER_BYTES = 41

const MAGIC = new TextEncoder().encode('PRLYBKUP')
const KDF_SCRYPT = 1
const SCRYPT_R = 8
const SCRYPT_P = 1
const SALT_BYTES = 16
const NONCE_BYTES = 12
const KEY_BYTES = 32
// Offsets of the header's fields after the magic.
const AT_VERSION = 8
const AT_KDF = 9
const AT_LOG_N = 10
const AT_R = 11
const AT_P = 12
const AT_SALT = 13
const AT_NONCE = AT_SALT + SALT_BYTES

/** Options of {@link sealBackup}. */
export interface SealBackupOptions extends CryptoOptions {
  /** The scrypt cost, {@link MIN_BACKUP_LOG_N}–{@link MAX_BACKUP_LOG_N} (default {@link BACKUP_LOG_N}). */
  readonly logN?: number
  /** Source of the salt and nonce; defaults to the platform CSPRNG (pass a seeded one only in tests). */
  readonly random?: RandomSource
}

function passphraseBytes(passphrase: unknown): Uint8Array {
  if (typeof passphrase !== 'string') throw new TypeError('the passphrase must be a string')
  const p = passphrase.normalize('NFKC')
  if ([...p].length < MIN_BACKUP_PASSPHRASE_LENGTH) {
    throw new RangeError(`the passphrase must have at least ${MIN_BACKUP_PASSPHRASE_LENGTH} characters`)
  }
  return new TextEncoder().encode(p)
}

function isLogN(logN: unknown): logN is number {
  return (
    typeof logN === 'number' && Number.isInteger(logN) && logN >= MIN_BACKUP_LOG_N && logN <= MAX_BACKUP_LOG_N
  )
}

async function deriveKey(passphrase: Uint8Array, salt: Uint8Array, logN: number): Promise<Uint8Array> {
  try {
    return await scrypt(passphrase, salt, 2 ** logN, SCRYPT_R, KEY_BYTES)
  } finally {
    passphrase.fill(0)
  }
}

/**
 * Seals bytes into a backup archive under a passphrase. At the default cost this takes about two seconds in
 * Node and 128 MiB of memory (scrypt runs in pure JS, so a browser is no faster); it yields to the event loop
 * while it runs.
 * @param plaintext - what to back up
 * @param passphrase - the user's passphrase: at least {@link MIN_BACKUP_PASSPHRASE_LENGTH} characters after NFKC
 * @param options - `logN`: the scrypt cost; `random` for tests; `crypto`: a faster ChaCha20-Poly1305
 * @returns the archive
 * @throws TypeError for a passphrase that is not a string or a non-byte plaintext; RangeError for a passphrase
 *   too short or a cost out of range; ParleyError `UNSUPPORTED` without WebCrypto (a browser page not served over
 *   https or from localhost)
 * @example const archive = await sealBackup(encodedAccount, 'correct horse battery staple')
 */
export async function sealBackup(
  plaintext: Uint8Array,
  passphrase: string,
  options: SealBackupOptions = {},
): Promise<Uint8Array> {
  abytes(plaintext, undefined, 'plaintext')
  const logN = options?.logN ?? BACKUP_LOG_N
  if (!isLogN(logN)) {
    throw new RangeError(`logN must be an integer from ${MIN_BACKUP_LOG_N} to ${MAX_BACKUP_LOG_N}`)
  }
  const password = passphraseBytes(passphrase)
  const c = primitives(options?.crypto)
  const random = options?.random ?? defaultRandom
  const salt = draw(random, SALT_BYTES)
  const nonce = draw(random, NONCE_BYTES)
  const header = concatBytes(
    MAGIC,
    Uint8Array.of(BACKUP_VERSION, KDF_SCRYPT, logN, SCRYPT_R, SCRYPT_P),
    salt,
    nonce,
  )
  const key = await deriveKey(password, salt, logN)
  try {
    return concatBytes(header, aeadSeal(c, key, nonce, plaintext, header))
  } finally {
    key.fill(0)
  }
}

/**
 * Opens a backup archive made by {@link sealBackup}. Refuses, before any key stretching, an archive that asks
 * for a cost outside {@link MIN_BACKUP_LOG_N}–{@link MAX_BACKUP_LOG_N} or for another KDF.
 * @param archive - the archive (untrusted input)
 * @param passphrase - the passphrase it was sealed with
 * @param options - `crypto`: a faster ChaCha20-Poly1305 (see {@link CryptoOptions})
 * @returns the plaintext
 * @throws TypeError / RangeError for a passphrase {@link sealBackup} would refuse or a non-byte archive;
 *   ParleyError `UNSUPPORTED` for an archive of another format version (or without WebCrypto); ParleyError
 *   `DECRYPT_FAILED`, with one message, for a wrong passphrase and for an archive that is truncated, changed in
 *   any byte, or not an archive at all
 * @example const account = await openBackup(archive, passphrase)
 */
export async function openBackup(
  archive: Uint8Array,
  passphrase: string,
  options: CryptoOptions = {},
): Promise<Uint8Array> {
  abytes(archive, undefined, 'archive')
  const password = passphraseBytes(passphrase)
  const c = primitives(options?.crypto)
  const refuse = (cause?: unknown): never => {
    password.fill(0)
    throw new ParleyError(
      'DECRYPT_FAILED',
      'the backup does not open: wrong passphrase, or a damaged archive',
      cause === undefined ? {} : { cause },
    )
  }
  if (archive.length < AT_VERSION + 1 || !equalBytes(archive.subarray(0, AT_VERSION), MAGIC)) refuse()
  if (archive[AT_VERSION] !== BACKUP_VERSION) {
    password.fill(0)
    throw new ParleyError('UNSUPPORTED', `unknown backup version ${archive[AT_VERSION]}`)
  }
  const logN = archive[AT_LOG_N]
  if (
    archive.length < BACKUP_HEADER_BYTES + AEAD_TAG_BYTES ||
    archive[AT_KDF] !== KDF_SCRYPT ||
    archive[AT_R] !== SCRYPT_R ||
    archive[AT_P] !== SCRYPT_P ||
    !isLogN(logN)
  ) {
    refuse()
  }
  const header = archive.subarray(0, BACKUP_HEADER_BYTES)
  const key = await deriveKey(password, archive.slice(AT_SALT, AT_NONCE), logN!)
  try {
    return aeadOpen(c, key, header.subarray(AT_NONCE), archive.subarray(BACKUP_HEADER_BYTES), header)
  } catch (cause) {
    return refuse(cause)
  } finally {
    key.fill(0)
  }
}
