import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ADDRESS_BYTES, addressFromToken, addressHasPrefix, addressPrefix } from './address.js'
import { oprfDeriveKeyPair, oprfEvaluate } from './oprf.js'

/** Independent HKDF-SHA512 (RFC 5869) through WebCrypto, used only to check ours. */
async function webcryptoHkdf(ikm: Uint8Array, info: Uint8Array, bytes: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey('raw', new Uint8Array(ikm), 'HKDF', false, ['deriveBits'])
  const bits = await crypto.subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-512', salt: new Uint8Array(0), info: new Uint8Array(info) },
    key,
    bytes * 8,
  )
  return new Uint8Array(bits)
}

const info = new TextEncoder().encode('parley/v1/address')
const bitString = (b: Uint8Array, n: number) =>
  Array.from(b, (x) => x.toString(2).padStart(8, '0'))
    .join('')
    .slice(0, n)

describe('addressFromToken', () => {
  it('is HKDF-SHA512(token, salt = empty, info = "parley/v1/address")[0..32], checked against WebCrypto', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 64, maxLength: 64 }), async (token) => {
        const expected = await webcryptoHkdf(token, info, ADDRESS_BYTES)
        expect(addressFromToken(token)).toEqual(expected)
      }),
      { numRuns: 50 },
    )
  })

  it('derives a 32-byte address from a real OPRF token', async () => {
    const keys = oprfDeriveKeyPair(new Uint8Array(32).fill(1), new Uint8Array(0))
    const token = oprfEvaluate(keys.secretKey, new TextEncoder().encode('+14155550100'))
    const address = addressFromToken(token)
    expect(address.length).toBe(ADDRESS_BYTES)
    expect(address).toEqual(await webcryptoHkdf(token, info, 32))
  })

  it('throws RangeError for a token that is not 64 bytes and TypeError for a non-Uint8Array', () => {
    expect(() => addressFromToken(new Uint8Array(32))).toThrow(RangeError)
    expect(() => addressFromToken(new Uint8Array(65))).toThrow(RangeError)
    expect(() => addressFromToken('token' as unknown as Uint8Array)).toThrow(TypeError)
  })
})

describe('addressPrefix', () => {
  const address = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 0xa5) & 0xff) // a5 ca ef 14 …

  it('keeps the leading bits at odd bit counts and zeroes the rest of the last byte', () => {
    expect(Array.from(addressPrefix(address, 1))).toEqual([0x80])
    expect(Array.from(addressPrefix(address, 3))).toEqual([0xa0])
    expect(Array.from(addressPrefix(address, 7))).toEqual([0xa4])
    expect(Array.from(addressPrefix(address, 8))).toEqual([0xa5])
    expect(Array.from(addressPrefix(address, 9))).toEqual([0xa5, 0x80])
    expect(Array.from(addressPrefix(address, 12))).toEqual([0xa5, 0xc0])
    expect(Array.from(addressPrefix(address, 15))).toEqual([0xa5, 0xca])
    expect(Array.from(addressPrefix(address, 16))).toEqual([0xa5, 0xca])
    expect(Array.from(addressPrefix(address, 17))).toEqual([0xa5, 0xca, 0x80])
    expect(addressPrefix(address, 256)).toEqual(address)
    expect(Array.from(addressPrefix(address, 255)).slice(31)).toEqual([address[31]! & 0xfe])
  })

  it('has ceil(bits/8) bytes whose bit string is the address bit string cut at `bits` (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 1, max: 256 }),
        (a, bits) => {
          const p = addressPrefix(a, bits)
          expect(p.length).toBe(Math.ceil(bits / 8))
          expect(bitString(p, p.length * 8)).toBe(bitString(a, bits).padEnd(p.length * 8, '0'))
          expect(addressHasPrefix(a, p, bits)).toBe(true)
        },
      ),
    )
  })

  it('does not alias the address', () => {
    const a = new Uint8Array(32).fill(0xff)
    const p = addressPrefix(a, 4)
    p[0] = 0
    expect(a[0]).toBe(0xff)
  })

  it('throws RangeError for bits outside 1..256 or not an integer, and for a wrong-length address', () => {
    for (const bits of [0, -1, 257, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => addressPrefix(address, bits)).toThrow(RangeError)
    }
    expect(() => addressPrefix(address, '16' as unknown as number)).toThrow(TypeError)
    expect(() => addressPrefix(new Uint8Array(31), 16)).toThrow(RangeError)
  })
})

describe('addressHasPrefix', () => {
  const address = new Uint8Array(32).fill(0)
  address[0] = 0b1011_0110
  address[1] = 0b0101_1111

  it('compares exactly the first `bits` bits at odd counts', () => {
    expect(addressHasPrefix(address, Uint8Array.of(0b1011_0000), 4)).toBe(true)
    expect(addressHasPrefix(address, Uint8Array.of(0b1011_1000), 4)).toBe(true) // bit 5 is beyond the prefix
    expect(addressHasPrefix(address, Uint8Array.of(0b1010_0000), 4)).toBe(false)
    expect(addressHasPrefix(address, Uint8Array.of(0b1011_0110, 0b0100_0000), 10)).toBe(true)
    expect(addressHasPrefix(address, Uint8Array.of(0b1011_0110, 0b0000_0000), 10)).toBe(false)
    expect(addressHasPrefix(address, Uint8Array.of(0b1011_0110, 0b0101_1110), 15)).toBe(true)
    expect(addressHasPrefix(address, Uint8Array.of(0b1011_0110, 0b0101_1110), 16)).toBe(false)
    expect(addressHasPrefix(address, Uint8Array.of(0b1000_0000), 1)).toBe(true)
    expect(addressHasPrefix(address, Uint8Array.of(0b0111_1111), 1)).toBe(false)
  })

  it('detects a difference in any single bit of the prefix (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 1, max: 256 }),
        fc.nat(),
        (a, bits, n) => {
          const p = addressPrefix(a, bits)
          const flip = n % bits
          const q = p.slice()
          q[flip >> 3]! ^= 0x80 >> (flip & 7)
          expect(addressHasPrefix(a, q, bits)).toBe(false)
        },
      ),
    )
  })

  it('throws RangeError for a prefix whose length is not ceil(bits/8)', () => {
    expect(() => addressHasPrefix(address, new Uint8Array(1), 9)).toThrow(RangeError)
    expect(() => addressHasPrefix(address, new Uint8Array(3), 16)).toThrow(RangeError)
    expect(() => addressHasPrefix(address, new Uint8Array(1), 0)).toThrow(RangeError)
  })
})
