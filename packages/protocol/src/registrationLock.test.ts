import { createHash, scryptSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ParleyError } from './errors.js'
import { parleyErrorFromWire, wireErrorFrom } from './frames.js'
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
