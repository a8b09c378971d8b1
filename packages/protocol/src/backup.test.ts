// Backup archives: the header layout, agreement with OpenSSL's scrypt and ChaCha20-Poly1305 both ways, NFKC,
// one error for a wrong passphrase and for any changed or missing byte, its own for another version, the bound
// on the scrypt cost an archive may ask for, the crypto option, and caller mistakes. Archives use logN 14 (the
// lowest allowed, ~0.3 s in pure JS) except where the default is checked.
import fc from 'fast-check'
import { describe, expect, it, vi } from 'vitest'
import { errorCodeAsync, seededRandom } from '../test/fixtures.js'
import { cat, nodeOpen, nodeScrypt, nodeSeal, utf8 } from '../test/independent.js'
import {
  BACKUP_HEADER_BYTES,
  BACKUP_LOG_N,
  type CryptoProvider,
  MAX_BACKUP_LOG_N,
  MIN_BACKUP_LOG_N,
  MIN_BACKUP_PASSPHRASE_LENGTH,
  openBackup,
  ParleyError,
  sealBackup,
} from './index.js'

const SLOW = { timeout: 60_000 }
const LOG_N = 14
const passphrase = 'correct horse battery staple'
const plaintext = utf8('the account: identity, keys, sessions, contacts, history')
const archive = await sealBackup(plaintext, passphrase, { logN: LOG_N, random: seededRandom('backup') })

/** What openBackup rejects with: the code, and the message for DECRYPT_FAILED. */
async function refusal(bytes: Uint8Array, pass = passphrase): Promise<string> {
  try {
    await openBackup(bytes, pass)
  } catch (err) {
    if (ParleyError.is(err, 'DECRYPT_FAILED')) return `DECRYPT_FAILED: ${err.message}`
    return ParleyError.is(err) ? err.code : (err as Error).name
  }
  return 'no error'
}
const REFUSED = 'DECRYPT_FAILED: the backup does not open: wrong passphrase, or a damaged archive'

function changed(bytes: Uint8Array, at: number, value: number): Uint8Array {
  const out = bytes.slice()
  out[at] = value
  return out
}

describe('backup archives', () => {
  it('have the documented header and open with their passphrase', SLOW, async () => {
    const random = seededRandom('backup')
    const salt = random(16)
    const nonce = random(12)
    expect(archive.subarray(0, BACKUP_HEADER_BYTES)).toEqual(
      cat(utf8('PRLYBKUP'), Uint8Array.of(1, 1, LOG_N, 8, 1), salt, nonce),
    )
    expect(archive).toHaveLength(BACKUP_HEADER_BYTES + plaintext.length + 16)
    expect(await openBackup(archive, passphrase)).toEqual(plaintext)
    const empty = await sealBackup(new Uint8Array(0), passphrase, { logN: LOG_N })
    expect(await openBackup(empty, passphrase)).toEqual(new Uint8Array(0))
  })

  it('agree with OpenSSL scrypt and ChaCha20-Poly1305 both ways, over the NFKC form', SLOW, async () => {
    // "é" written as e + U+0301 and the "ﬁ" ligature: NFKC makes them "é" and "fi".
    const typed = 'cafe\u0301 \ufb01nal answer'
    const nfkc = utf8(typed.normalize('NFKC'))
    expect(nfkc).toEqual(utf8('café final answer'))
    const ours = await sealBackup(plaintext, typed, { logN: LOG_N })
    const header = ours.subarray(0, BACKUP_HEADER_BYTES)
    const key = nodeScrypt(nfkc, header.subarray(13, 29), LOG_N, 8, 32)
    expect(nodeOpen(key, header.subarray(29, 41), ours.subarray(BACKUP_HEADER_BYTES), header)).toEqual(
      plaintext,
    )

    const theirHeader = cat(
      utf8('PRLYBKUP'),
      Uint8Array.of(1, 1, LOG_N, 8, 1),
      utf8('sixteen byte sal'),
      utf8('twelve bytes'),
    )
    const theirKey = nodeScrypt(nfkc, utf8('sixteen byte sal'), LOG_N, 8, 32)
    const theirs = cat(theirHeader, nodeSeal(theirKey, utf8('twelve bytes'), plaintext, theirHeader))
    expect(await openBackup(theirs, 'café ﬁnal answer')).toEqual(plaintext)
  })

  it(
    'refuse a wrong passphrase and a changed salt, nonce, ciphertext or tag with one error',
    SLOW,
    async () => {
      expect(await refusal(archive, `${passphrase}!`)).toBe(REFUSED)
      for (const at of [13, 28, 29, 40, BACKUP_HEADER_BYTES, archive.length - 1]) {
        expect(await refusal(changed(archive, at, archive[at]! ^ 1))).toBe(REFUSED)
      }
    },
  )

  it(
    'refuse a changed magic, KDF, r or p, a cost outside the bounds and a short archive before stretching',
    SLOW,
    async () => {
      // scrypt starts with PBKDF2 from WebCrypto: no call to it means no stretching.
      const pbkdf2 = vi.spyOn(globalThis.crypto.subtle, 'deriveBits')
      try {
        const refusedAtOnce = async (bytes: Uint8Array) => {
          pbkdf2.mockClear()
          const outcome = await refusal(bytes)
          expect(pbkdf2).not.toHaveBeenCalled()
          return outcome
        }
        for (let at = 0; at < 8; at++) {
          expect(await refusedAtOnce(changed(archive, at, archive[at]! ^ 0x20))).toBe(REFUSED)
        }
        expect(await refusedAtOnce(changed(archive, 9, 2))).toBe(REFUSED)
        expect(await refusedAtOnce(changed(archive, 11, 1))).toBe(REFUSED)
        expect(await refusedAtOnce(changed(archive, 12, 2))).toBe(REFUSED)
        for (const logN of [0, MIN_BACKUP_LOG_N - 1, MAX_BACKUP_LOG_N + 1, 31, 255]) {
          expect(await refusedAtOnce(changed(archive, 10, logN))).toBe(REFUSED)
        }
        expect(await refusedAtOnce(archive.subarray(0, BACKUP_HEADER_BYTES + 15))).toBe(REFUSED)
        expect(await refusedAtOnce(archive.subarray(0, 3))).toBe(REFUSED)
        pbkdf2.mockClear()
        expect(await openBackup(archive, passphrase)).toEqual(plaintext)
        expect(pbkdf2).toHaveBeenCalled()
      } finally {
        pbkdf2.mockRestore()
      }
    },
  )

  it('refuse a cost changed within the bounds, as any changed byte', SLOW, async () => {
    expect(await refusal(changed(archive, 10, LOG_N + 1))).toBe(REFUSED)
  })

  it('refuse another version with UNSUPPORTED', async () => {
    for (const version of [0, 2, 255]) expect(await refusal(changed(archive, 8, version))).toBe('UNSUPPORTED')
  })

  it('refuse every truncation and an appended byte with the same error', SLOW, async () => {
    // A short plaintext, so that few truncations are long enough to be stretched for (each ~0.3 s).
    const small = await sealBackup(utf8('abc'), passphrase, { logN: LOG_N })
    for (let n = 0; n < small.length; n++) expect(await refusal(small.subarray(0, n))).toBe(REFUSED)
    expect(await refusal(cat(small, Uint8Array.of(0)))).toBe(REFUSED)
  })

  it('refuse randomly changed bytes with one error (or UNSUPPORTED for the version byte)', SLOW, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: archive.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        async (at, xor) => {
          expect(await refusal(changed(archive, at, archive[at]! ^ xor))).toBe(
            at === 8 ? 'UNSUPPORTED' : REFUSED,
          )
        },
      ),
      { numRuns: 12 },
    )
  })

  it('use the crypto option for ChaCha20-Poly1305', SLOW, async () => {
    const used: string[] = []
    const spy: CryptoProvider = {
      chacha20poly1305: {
        seal: (k, n, p, ad) => {
          used.push('seal')
          return nodeSeal(k, n, p, ad)
        },
        open: (k, n, s, ad) => {
          used.push('open')
          return nodeOpen(k, n, s, ad)
        },
      },
    }
    const sealed = await sealBackup(plaintext, passphrase, { logN: LOG_N, crypto: spy })
    expect(await openBackup(sealed, passphrase, { crypto: spy })).toEqual(plaintext)
    expect(used).toEqual(['seal', 'open'])
  })

  it('seal at logN 17 by default', SLOW, async () => {
    expect(BACKUP_LOG_N).toBe(17)
    const sealed = await sealBackup(plaintext, passphrase)
    expect(sealed[10]).toBe(17)
    const header = sealed.subarray(0, BACKUP_HEADER_BYTES)
    const key = nodeScrypt(utf8(passphrase), header.subarray(13, 29), 17, 8, 32)
    expect(nodeOpen(key, header.subarray(29), sealed.subarray(BACKUP_HEADER_BYTES), header)).toEqual(
      plaintext,
    )
  })

  it('refuse caller mistakes with TypeError or RangeError, before any stretching', async () => {
    expect(MIN_BACKUP_PASSPHRASE_LENGTH).toBe(12)
    const seal = (over: { logN?: unknown; passphrase?: unknown; plaintext?: unknown }) =>
      errorCodeAsync(
        sealBackup((over.plaintext ?? plaintext) as Uint8Array, (over.passphrase ?? passphrase) as string, {
          logN: (over.logN ?? LOG_N) as number,
        }),
      )
    expect(await seal({ passphrase: 'elevenchars' })).toBe('RangeError')
    // Eleven code points, twenty-two UTF-16 units.
    expect(await seal({ passphrase: '🔑'.repeat(11) })).toBe('RangeError')
    // Twenty-two code points typed (e and a combining accent), eleven after NFKC.
    expect(await seal({ passphrase: 'e\u0301'.repeat(11) })).toBe('RangeError')
    expect(await seal({ passphrase: 42 })).toBe('TypeError')
    expect(await seal({ plaintext: 'text' })).toBe('TypeError')
    for (const logN of [MIN_BACKUP_LOG_N - 1, MAX_BACKUP_LOG_N + 1, 14.5, '17']) {
      expect(await seal({ logN })).toBe('RangeError')
    }
    expect(await errorCodeAsync(openBackup(archive, 'elevenchars'))).toBe('RangeError')
    expect(await errorCodeAsync(openBackup('archive' as never, passphrase))).toBe('TypeError')
    expect(
      await errorCodeAsync(
        sealBackup(plaintext, passphrase, { logN: LOG_N, random: () => new Uint8Array(3) }),
      ),
    ).toBe('TypeError')
  })
})
