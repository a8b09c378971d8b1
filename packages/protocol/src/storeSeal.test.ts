// Store records sealed at rest: they open under their key and name only, numbers in names are hidden, and the
// XChaCha20-Poly1305 underneath matches the published test vector (draft-irtf-cfrg-xchacha-03, A.3.1).
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js'
import { describe, expect, it } from 'vitest'
import { ParleyError } from './errors.js'
import { deriveStoreKeys, openStoreRecord, sealStoreRecord, storedName } from './storeSeal.js'

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'))
const code = (f: () => unknown) => {
  try {
    f()
    return 'no error'
  } catch (e) {
    return e instanceof ParleyError ? e.code : String(e)
  }
}

describe('store records sealed at rest', () => {
  const keys = deriveStoreKeys(new Uint8Array(32).fill(7))
  const other = deriveStoreKeys(new Uint8Array(32).fill(8))

  it('uses XChaCha20-Poly1305 as published (draft-irtf-cfrg-xchacha-03 A.3.1)', () => {
    const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f')
    const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657')
    const aad = hex('50515253c0c1c2c3c4c5c6c7')
    const plain = new TextEncoder().encode(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    )
    const out = xchacha20poly1305(key, nonce, aad).encrypt(plain)
    expect(Buffer.from(out.subarray(out.length - 16)).toString('hex')).toBe(
      'c0875924c1c7987947deafd8780acf49',
    )
    expect(Buffer.from(out.subarray(0, 16)).toString('hex')).toBe('bd6d179d3e83d43b9576579493c0e939')
  })

  it('opens under its key and stored name, and gives back the client name', () => {
    const name = 'contact/+14155550100'
    const stored = storedName(keys, name)
    expect(stored).toMatch(/^contact\/#[0-9a-f]{32}$/)
    expect(stored).not.toContain('4155550100')
    expect(storedName(keys, name)).toBe(stored)
    expect(storedName(other, name)).not.toBe(stored)
    expect(storedName(keys, 'outbox/000000000012')).toBe('outbox/000000000012')
    const value = new Uint8Array([1, 2, 3])
    const sealed = sealStoreRecord(keys, name, value)
    expect(openStoreRecord(keys, stored, sealed)).toEqual({ name, value })
    // Fresh nonce each time.
    expect(Buffer.from(sealStoreRecord(keys, name, value)).equals(Buffer.from(sealed))).toBe(false)
  })

  it('refuses another key, another name, and any changed byte with DECRYPT_FAILED', () => {
    const sealed = sealStoreRecord(keys, 'account', new Uint8Array([9]))
    expect(code(() => openStoreRecord(other, 'account', sealed))).toBe('DECRYPT_FAILED')
    expect(code(() => openStoreRecord(keys, 'mailbox/cursor', sealed))).toBe('DECRYPT_FAILED')
    for (const i of [0, 1, 30, sealed.length - 1]) {
      const changed = sealed.slice()
      changed[i]! ^= 1
      expect(code(() => openStoreRecord(keys, 'account', changed))).toBe('DECRYPT_FAILED')
    }
    expect(code(() => openStoreRecord(keys, 'account', sealed.subarray(0, 20)))).toBe('DECRYPT_FAILED')
    expect(code(() => deriveStoreKeys(new Uint8Array(31)))).toContain('TypeError')
  })
})
