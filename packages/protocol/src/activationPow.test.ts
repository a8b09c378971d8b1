import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  ACTIVATION_POW_LABEL,
  activationPowDigest,
  checkActivationPow,
  MAX_POW_SOLUTION_BYTES,
  solveActivationPow,
} from './activationPow.js'
import { ParleyError } from './errors.js'

const NONCE = Uint8Array.from({ length: 32 }, (_, i) => i)
const NUMBER = '+14155550100'
/** A fixed "random" source, so that every solution below is reproducible. */
const FIXED = (n: number) => Uint8Array.from({ length: n }, (_, i) => 0xa0 + i)
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const leadingZeroBits = (digest: Uint8Array) => {
  let n = 0
  for (const byte of digest) {
    if (byte === 0) {
      n += 8
      continue
    }
    n += Math.clz32(byte) - 24
    break
  }
  return n
}

describe('activation proof of work', () => {
  it('a solved proof checks, with at least the asked-for leading zero bits', () => {
    for (const bits of [1, 4, 8, 12]) {
      const solution = solveActivationPow(NONCE, NUMBER, bits)
      expect(solution.length).toBeLessThanOrEqual(MAX_POW_SOLUTION_BYTES)
      expect(checkActivationPow(NONCE, NUMBER, solution, bits)).toBe(true)
      expect(leadingZeroBits(activationPowDigest(NONCE, NUMBER, solution))).toBeGreaterThanOrEqual(bits)
    }
  })

  it('a solution is worth only its nonce and its number', () => {
    const solution = solveActivationPow(NONCE, NUMBER, 12, { random: FIXED })
    const otherNonce = NONCE.map((b) => b ^ 0xff)
    // Each would pass by chance with probability 2^-12; the known-answer test below fixes these exact inputs.
    expect(checkActivationPow(otherNonce, NUMBER, solution, 12)).toBe(false)
    expect(checkActivationPow(NONCE, '+14155550101', solution, 12)).toBe(false)
  })

  it('a tampered solution fails', () => {
    const solution = solveActivationPow(NONCE, NUMBER, 12, { random: FIXED })
    const tampered = solution.slice()
    tampered[tampered.length - 1]! ^= 0x01
    expect(checkActivationPow(NONCE, NUMBER, tampered, 12)).toBe(false)
    expect(checkActivationPow(NONCE, NUMBER, new Uint8Array(0), 12)).toBe(false)
    // Longer than a relay accepts: not good, whatever its digest.
    const long = new Uint8Array(MAX_POW_SOLUTION_BYTES + 1)
    long.set(solution)
    expect(checkActivationPow(NONCE, NUMBER, long, 0)).toBe(false)
  })

  it('0 bits: nothing to solve, and an empty solution is accepted', () => {
    expect(solveActivationPow(NONCE, NUMBER, 0)).toEqual(new Uint8Array(0))
    expect(checkActivationPow(NONCE, NUMBER, new Uint8Array(0), 0)).toBe(true)
    expect(checkActivationPow(NONCE, NUMBER, new Uint8Array(MAX_POW_SOLUTION_BYTES), 0)).toBe(true)
  })

  it('known answer: the frozen vector, and the digest recomputed with OpenSSL', () => {
    // Computed once with solveActivationPow and frozen: any change to the digest layout breaks it.
    const solution = solveActivationPow(NONCE, NUMBER, 12, { random: FIXED })
    expect(hex(solution)).toBe('a0a1a2a3a4a5a6a70000000000005405')
    const digest = activationPowDigest(NONCE, NUMBER, solution)
    expect(hex(digest)).toBe('000ef67478fe0eba613691b550a34598f54a92c9eacefe22aafb8fe407e4c946')
    const openssl = createHash('sha256')
      .update(ACTIVATION_POW_LABEL)
      .update(NONCE)
      .update(NUMBER, 'utf8')
      .update(solution)
      .digest()
    expect(hex(digest)).toBe(openssl.toString('hex'))
    expect(
      checkActivationPow(NONCE, NUMBER, Buffer.from('a0a1a2a3a4a5a6a70000000000005405', 'hex'), 12),
    ).toBe(true)
    // 0x000e… has exactly 12 leading zero bits: good for 12, not for 13.
    expect(checkActivationPow(NONCE, NUMBER, solution, 13)).toBe(false)
    expect(hex(solveActivationPow(NONCE, NUMBER, 16, { random: FIXED }))).toBe(
      'a0a1a2a3a4a5a6a7000000000000626d',
    )
  })

  it('every call finds a fresh solution (a relay accepts each one once per connection)', () => {
    const a = solveActivationPow(NONCE, NUMBER, 8)
    const b = solveActivationPow(NONCE, NUMBER, 8)
    expect(hex(a)).not.toBe(hex(b))
    expect(checkActivationPow(NONCE, NUMBER, a, 8) && checkActivationPow(NONCE, NUMBER, b, 8)).toBe(true)
  })

  it('gives up with TIMEOUT after maxTries, and refuses impossible difficulties and wrong types', () => {
    let thrown: unknown
    try {
      solveActivationPow(NONCE, NUMBER, 16, { maxTries: 10 })
    } catch (err) {
      thrown = err
    }
    expect(ParleyError.is(thrown) && thrown.code).toBe('TIMEOUT')
    expect(() => solveActivationPow(NONCE, NUMBER, 33)).toThrow(RangeError)
    expect(() => solveActivationPow(NONCE, NUMBER, 1.5)).toThrow(RangeError)
    expect(() => solveActivationPow(NONCE, NUMBER, 8, { maxTries: 0 })).toThrow(RangeError)
    expect(() => solveActivationPow(NONCE, NUMBER, 8, { random: () => new Uint8Array(2) })).toThrow(
      RangeError,
    )
    expect(() => checkActivationPow(NONCE, NUMBER, new Uint8Array(0), -1)).toThrow(RangeError)
    expect(() => checkActivationPow(NONCE, NUMBER, 'x' as unknown as Uint8Array, 0)).toThrow(TypeError)
    expect(() => activationPowDigest('n' as unknown as Uint8Array, NUMBER, new Uint8Array(0))).toThrow(
      TypeError,
    )
    // An absurd difficulty is simply never met (a relay never asks for it).
    expect(
      checkActivationPow(NONCE, NUMBER, solveActivationPow(NONCE, NUMBER, 12, { random: FIXED }), 256),
    ).toBe(false)
  })
})
