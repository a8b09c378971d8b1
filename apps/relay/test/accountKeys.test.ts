// The sealing format, the store key and the data key cache of the PostgreSQL store (src/internal/accountKeys.ts).
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  boundTo,
  DataKeyCache,
  dataKeyObject,
  newDataKey,
  open,
  SEAL_OVERHEAD,
  SealedValueError,
  StoreKey,
  seal,
} from '../src/internal/accountKeys.js'

const address = randomBytes(32)

describe('sealed values', () => {
  const key = dataKeyObject(randomBytes(32))
  const ad = boundTo('mailbox.envelope', address, [1, 2 ** 40 + 7], randomBytes(16))

  it('open with the same key and associated data only, with a fresh nonce each time', () => {
    const plain = randomBytes(1000)
    const a = seal(key, ad, plain)
    const b = seal(key, ad, plain)
    expect(a.length).toBe(1000 + SEAL_OVERHEAD)
    expect(a.subarray(1, 13).equals(b.subarray(1, 13))).toBe(false)
    expect(open(key, ad, a, 'x').equals(plain)).toBe(true)
    expect(open(key, ad, seal(key, ad, new Uint8Array(0)), 'x').length).toBe(0)
    const other = [
      boundTo('mailbox.envelope', address, [1, 2 ** 40 + 8]),
      boundTo('accounts.identity_key', address, [1, 2 ** 40 + 7]),
      boundTo('mailbox.envelope', randomBytes(32), [1, 2 ** 40 + 7]),
    ]
    for (const wrong of other) expect(() => open(key, wrong, a, 'x')).toThrow(SealedValueError)
    expect(() => open(dataKeyObject(randomBytes(32)), ad, a, 'x')).toThrow(/does not open/)
    const flipped = Buffer.from(a)
    flipped[20]! ^= 1
    expect(() => open(key, ad, flipped, 'x')).toThrow(/does not open/)
    expect(() => open(key, ad, a.subarray(0, 20), 'x')).toThrow(/not a sealed value/)
    expect(() => open(key, ad, Buffer.concat([Buffer.from([2]), a.subarray(1)]), 'x')).toThrow(/not a sealed/)
  })

  it('bind integers and lengths unambiguously', () => {
    expect(boundTo('c', Buffer.from([1, 2]), [3]).equals(boundTo('c', Buffer.from([1]), [2, 3]))).toBe(false)
    expect(boundTo('c', address, [0, 1]).equals(boundTo('c', address, [1, 0]))).toBe(false)
  })
})

describe('the store key', () => {
  it('wraps a data key for one account and key id; its check value is stable and reveals nothing', () => {
    const raw = randomBytes(32)
    const k = new StoreKey(raw)
    const dk = newDataKey()
    const wrapped = k.wrap(address, dk.keyId, dk.raw)
    expect(wrapped.length).toBe(32 + SEAL_OVERHEAD)
    expect(wrapped.includes(dk.raw)).toBe(false)
    expect(k.unwrap(address, dk.keyId, wrapped).equals(dk.raw)).toBe(true)
    expect(() => k.unwrap(randomBytes(32), dk.keyId, wrapped)).toThrow(SealedValueError)
    expect(() => k.unwrap(address, newDataKey().keyId, wrapped)).toThrow(SealedValueError)
    expect(() => new StoreKey(randomBytes(32)).unwrap(address, dk.keyId, wrapped)).toThrow(SealedValueError)
    expect(new StoreKey(raw).check.equals(k.check)).toBe(true)
    expect(new StoreKey(randomBytes(32)).check.equals(k.check)).toBe(false)
    expect(k.check.includes(raw.subarray(0, 8))).toBe(false)
    expect(() => new StoreKey(randomBytes(16))).toThrow(RangeError)
  })
})

describe('DataKeyCache', () => {
  const id = () => newDataKey().keyId
  const k = dataKeyObject(randomBytes(32))

  it('drops the least recently used beyond its capacity, and every key after its lifetime', () => {
    let now = 0
    const c = new DataKeyCache({ capacity: 2, ttlMs: 1000, now: () => now })
    const [a, b, d] = [id(), id(), id()]
    c.set(a, k)
    c.set(b, k)
    expect(c.get(a)).toBe(k) // a is now the most recently used
    c.set(d, k)
    expect([c.get(a), c.get(b), c.get(d)]).toEqual([k, undefined, k])
    now = 999
    expect(c.get(a)).toBe(k)
    now = 1000
    expect([c.get(a), c.get(d), c.size]).toEqual([undefined, undefined, 0])
  })

  it('never takes back a forgotten key id, and holds nothing while off', () => {
    const c = new DataKeyCache({ capacity: 10, ttlMs: 60_000 })
    const a = id()
    c.set(a, k)
    c.forget(a.toString('hex'))
    expect(c.get(a)).toBeUndefined()
    c.set(a, k) // a read that began before the erasure, finishing after it
    expect(c.get(a)).toBeUndefined()
    const b = id()
    c.set(b, k)
    c.setEnabled(false)
    expect([c.size, c.enabled]).toEqual([0, false])
    c.set(b, k)
    expect(c.get(b)).toBeUndefined()
    c.setEnabled(true)
    c.set(b, k)
    expect(c.get(b)).toBe(k)
    const none = new DataKeyCache({ capacity: 0, ttlMs: 60_000 })
    none.set(b, k)
    expect(none.size).toBe(0)
  })
})
