import { createHash, randomBytes, scryptSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ParleyError } from './errors.js'
import { parleyErrorFromWire, wireErrorFrom } from './frames.js'
import { salsa20_8, scrypt } from './internal/scrypt.js'
import {
  MAX_REGISTRATION_LOCK_LOG_N,
  MIN_REGISTRATION_LOCK_LOG_N,
  normalizePin,
  REGISTRATION_LOCK_LABEL,
  registrationLockProof,
  registrationLockVerifier,
} from './registrationLock.js'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const SALT = Uint8Array.from({ length: 16 }, (_, i) => i * 7)

const unhex = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'))

describe('scrypt (RFC 7914), ours: WebCrypto PBKDF2 and its own ROMix', () => {
  it('Salsa20/8 core: RFC 7914 §8', () => {
    const input = unhex(`7e879a214f3ec9867ca940e641718f26baee555b8c61c1b50df846116dcd3b1d
      ee24f319df9b3d8514121e4b5ac5aa3276021d2909c74829edebc68db8b8c25e`)
    const output = unhex(`a41f859c6608cc993b81cacb020cef05044b2181a2fd337dfd7b1c6396682f29
      b4393168e3c9e6bcfe6bc5b7a06d96bae424cc102c91745c24ad673dc7618f81`)
    expect(hex(salsa20_8(input))).toBe(hex(output))
  })

  it('RFC 7914 §12 vectors 1 and 3 (p = 1)', async () => {
    const empty = new Uint8Array(0)
    // Vector 1 needs an empty password, which some WebCrypto implementations refuse to import.
    const v1 = await scrypt(empty, empty, 16, 1, 64).catch(() => undefined)
    if (v1 !== undefined) {
      expect(hex(v1)).toBe(
        hex(
          unhex(`77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442
            fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906`),
        ),
      )
    }
    const enc = (t: string) => new TextEncoder().encode(t)
    const v3 = await scrypt(enc('pleaseletmein'), enc('SodiumChloride'), 16384, 8, 64)
    expect(hex(v3)).toBe(
      hex(
        unhex(`7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2
          d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887`),
      ),
    )
  })

  it('agrees with node:crypto for other costs, block sizes, lengths and inputs', async () => {
    for (const [n, r, len] of [
      [2, 1, 16],
      [64, 2, 33],
      [1024, 8, 32],
      [256, 3, 100],
    ] as const) {
      const password = new Uint8Array(randomBytes(1 + (n % 20)))
      const salt = new Uint8Array(randomBytes(r * 5))
      const ours = await scrypt(password, salt, n, r, len)
      const theirs = scryptSync(password, salt, len, { N: n, r, p: 1 })
      expect(hex(ours), `N=${n} r=${r}`).toBe(theirs.toString('hex'))
    }
    await expect(scrypt(new Uint8Array(4), new Uint8Array(4), 1000, 8, 32)).rejects.toThrow(RangeError)
  })
})

describe('registration lock', () => {
  it('stretches with scrypt r = 8, p = 1: RFC 7914 §12 vector 3 (N = 16384), first 32 bytes', async () => {
    const proof = await registrationLockProof('pleaseletmein', new TextEncoder().encode('SodiumChloride'), 14)
    expect(hex(proof)).toBe('7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2')
  })

  it('agrees with an independent scrypt (node:crypto) at the default cost, on the NFKD form of the PIN', async () => {
    // "４９２１" in full-width digits is "4921" after NFKD; surrounding spaces do not count.
    const proof = await registrationLockProof(' ４９２１ ', SALT, 15)
    const expected = scryptSync('4921', SALT, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 })
    expect(hex(proof)).toBe(expected.toString('hex'))
    expect(hex(await registrationLockProof('4922', SALT, 15))).not.toBe(hex(proof))
  })

  it('verifier is SHA-256 of the label and the proof', () => {
    const proof = Uint8Array.from({ length: 32 }, (_, i) => 255 - i)
    const expected = createHash('sha256').update(REGISTRATION_LOCK_LABEL).update(proof).digest('hex')
    expect(hex(registrationLockVerifier(proof))).toBe(expected)
    expect(() => registrationLockVerifier(new Uint8Array(31))).toThrow(RangeError)
  })

  it('refuses short or long PINs and costs out of range', async () => {
    expect(() => normalizePin('123')).toThrow(TypeError)
    expect(() => normalizePin('  12 ')).toThrow(TypeError)
    expect(() => normalizePin('1'.repeat(65))).toThrow(TypeError)
    expect(() => normalizePin(1234)).toThrow(TypeError)
    expect(normalizePin('1234')).toBe('1234')
    await expect(registrationLockProof('1234', SALT, MIN_REGISTRATION_LOCK_LOG_N - 1)).rejects.toThrow(
      RangeError,
    )
    await expect(registrationLockProof('1234', SALT, MAX_REGISTRATION_LOCK_LOG_N + 1)).rejects.toThrow(
      RangeError,
    )
    await expect(registrationLockProof('1234', SALT, 14.5)).rejects.toThrow(RangeError)
  })

  it('the REGISTRATION_LOCKED challenge survives the wire; other codes carry none', () => {
    const err = new ParleyError('REGISTRATION_LOCKED', 'locked', {
      retryAfterMs: 1500,
      registrationLock: { salt: SALT, logN: 15, attemptsLeft: 3, lapsesInMs: 6 * 86_400_000 },
    })
    const back = parleyErrorFromWire(wireErrorFrom(err))
    expect(back.code).toBe('REGISTRATION_LOCKED')
    expect(back.retryAfterMs).toBe(1500)
    expect(back.registrationLock).toEqual({
      salt: SALT,
      logN: 15,
      attemptsLeft: 3,
      lapsesInMs: 6 * 86_400_000,
    })
    const other = wireErrorFrom(
      new ParleyError('RATE_LIMITED', 'x', {
        registrationLock: { salt: SALT, logN: 15, attemptsLeft: 3, lapsesInMs: 1 },
      }),
    )
    expect(other.registrationLock).toBeUndefined()
  })
})
