// Safety numbers, cross-checked against an independent implementation of Signal's fingerprint v2 on node:crypto.
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { makeDevice, seededRandom } from '../test/e2e/helpers.js'
import { safetyNumber, safetyNumberQr, verifySafetyNumberQr } from './index.js'

function reference(key: Uint8Array, address: Uint8Array): { digits: string; fp: Buffer } {
  let h = createHash('sha512')
    .update(Buffer.from([0, 0]))
    .update(key)
    .update(address)
    .digest()
  for (let i = 1; i < 5200; i++) h = createHash('sha512').update(h).update(key).digest()
  let digits = ''
  for (let i = 0; i < 30; i += 5) digits += String(Number(h.readUIntBE(i, 5) % 100000)).padStart(5, '0')
  return { digits, fp: h.subarray(0, 32) }
}

const random = seededRandom('safety')
const a = makeDevice('alice', random)
const b = makeDevice('bob', random)

describe('safety numbers', () => {
  it('is 60 digits, identical on both sides, and matches the reference computation', () => {
    const n1 = safetyNumber(a.identity.publicKey, a.address, b.identity.publicKey, b.address)
    const n2 = safetyNumber(b.identity.publicKey, b.address, a.identity.publicKey, a.address)
    expect(n1).toMatch(/^\d{60}$/)
    expect(n1).toBe(n2)
    const ra = reference(a.identity.publicKey, a.address).digits
    const rb = reference(b.identity.publicKey, b.address).digits
    expect(n1).toBe(ra < rb ? ra + rb : rb + ra)
  })

  it('changes when either identity changes', () => {
    const n = safetyNumber(a.identity.publicKey, a.address, b.identity.publicKey, b.address)
    const c = makeDevice('bob', seededRandom('new device'))
    expect(safetyNumber(a.identity.publicKey, a.address, c.identity.publicKey, b.address)).not.toBe(n)
    expect(safetyNumber(c.identity.publicKey, a.address, b.identity.publicKey, b.address)).not.toBe(n)
  })

  it('QR payloads verify crosswise and refuse anything else', () => {
    const qrA = safetyNumberQr(a.identity.publicKey, a.address, b.identity.publicKey, b.address)
    expect(qrA.length).toBe(65)
    expect(Buffer.from(qrA.subarray(1, 33))).toEqual(reference(a.identity.publicKey, a.address).fp)
    expect(verifySafetyNumberQr(b.identity.publicKey, b.address, a.identity.publicKey, a.address, qrA)).toBe(
      true,
    )
    expect(verifySafetyNumberQr(a.identity.publicKey, a.address, b.identity.publicKey, b.address, qrA)).toBe(
      false,
    )
    const bad = qrA.slice()
    bad[40]! ^= 1
    expect(verifySafetyNumberQr(b.identity.publicKey, b.address, a.identity.publicKey, a.address, bad)).toBe(
      false,
    )
    expect(
      verifySafetyNumberQr(b.identity.publicKey, b.address, a.identity.publicKey, a.address, 'x' as never),
    ).toBe(false)
  })

  it('throws TypeError / RangeError for malformed keys', () => {
    expect(() => safetyNumber(new Uint8Array(33), a.address, b.identity.publicKey, b.address)).toThrow(
      RangeError,
    )
    expect(() => safetyNumber(null as never, a.address, b.identity.publicKey, b.address)).toThrow(TypeError)
  })
})
