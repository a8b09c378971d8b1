// Linking: link codes (checked against Buffer's base64url), link messages (checked against OpenSSL's HKDF and
// ChaCha20-Poly1305 both ways), direction and rendezvous binding, the crypto option, the LinkRequest / LinkGrant
// codecs (checked against protobufjs), and junk, mutated and truncated input.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { errorCode, seededRandom } from '../test/fixtures.js'
import { cat, nodeHkdf, nodeOpen, nodeSeal, pbEncode, utf8 } from '../test/independent.js'
import {
  type CryptoProvider,
  createLinkSecret,
  decodeLinkCode,
  decodeLinkGrant,
  decodeLinkRequest,
  encodeLinkCode,
  encodeLinkGrant,
  encodeLinkRequest,
  generateIdentity,
  type LinkDirection,
  type LinkGrantFields,
  linkFingerprint,
  openLinkMessage,
  sealLinkMessage,
} from './index.js'
import { fromBase64url, toBase64url } from './internal/base64url.js'

const random = seededRandom('linking')
const rendezvousId = random(16)
const secret = createLinkSecret(random)
const code = { rendezvousId, secret }
const device = generateIdentity(random)
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url')

const grant: LinkGrantFields = {
  address: random(32),
  deviceId: 2,
  deviceList: random(120),
  number: '+14155550100',
  numberSalt: random(32),
  historyKey: random(32),
}

/** The key and associated data of a direction, computed with OpenSSL's HKDF. */
function independentKey(direction: LinkDirection, id = rendezvousId, s = secret) {
  const info = utf8(`parley/v1/link/${direction}`)
  return { key: nodeHkdf(s, id, info, 32), ad: cat(Uint8Array.of(1), id, info) }
}

describe('link codes', () => {
  it('are parley-link: + base64url(1 ‖ rendezvous id ‖ secret) without padding, and read back', () => {
    const text = encodeLinkCode(code)
    expect(text).toBe(`parley-link:${b64(cat(Uint8Array.of(1), rendezvousId, secret))}`)
    expect(text).not.toContain('=')
    expect(decodeLinkCode(text)).toEqual(code)
  })

  it('draws the secret from the given random source', () => {
    expect(createLinkSecret(seededRandom('x'))).toEqual(seededRandom('x')(32))
    expect(createLinkSecret()).toHaveLength(32)
    expect(errorCode(() => createLinkSecret(() => new Uint8Array(31)))).toBe('TypeError')
  })

  it('refuses a wrong prefix, length or encoding with BAD_REQUEST and another version with UNSUPPORTED', () => {
    const body = cat(Uint8Array.of(1), rendezvousId, secret)
    const text = encodeLinkCode(code)
    expect(errorCode(() => decodeLinkCode(`parley-lnk:${b64(body)}`))).toBe('BAD_REQUEST')
    expect(errorCode(() => decodeLinkCode(`PARLEY-LINK:${b64(body)}`))).toBe('BAD_REQUEST')
    expect(errorCode(() => decodeLinkCode(b64(body)))).toBe('BAD_REQUEST')
    expect(errorCode(() => decodeLinkCode(`parley-link:${b64(body.subarray(1))}`))).toBe('UNSUPPORTED')
    expect(errorCode(() => decodeLinkCode(`parley-link:${b64(body.subarray(0, 48))}`))).toBe('BAD_REQUEST')
    expect(errorCode(() => decodeLinkCode(`parley-link:${b64(cat(body, Uint8Array.of(0)))}`))).toBe(
      'BAD_REQUEST',
    )
    expect(
      errorCode(() => decodeLinkCode(`parley-link:${b64(cat(Uint8Array.of(2), body.subarray(1)))}`)),
    ).toBe('UNSUPPORTED')
    expect(errorCode(() => decodeLinkCode('parley-link:'))).toBe('BAD_REQUEST')
    expect(errorCode(() => decodeLinkCode(`${text}=`))).toBe('BAD_REQUEST')
    expect(errorCode(() => decodeLinkCode(`${text} `))).toBe('BAD_REQUEST')
    expect(errorCode(() => decodeLinkCode(`${text.replace(/-/g, '+').replace(/_/g, '/')}+`))).toBe(
      'BAD_REQUEST',
    )
    expect(errorCode(() => decodeLinkCode(undefined as never))).toBe('BAD_REQUEST')
    // 49 bytes leave 4 unused bits in the last character: set, the text is another spelling of the same bytes.
    const last = text.at(-1)!
    const sloppy =
      text.slice(0, -1) +
      'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[
        'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(last) | 1
      ]
    expect(sloppy).not.toBe(text)
    expect(errorCode(() => decodeLinkCode(sloppy))).toBe('BAD_REQUEST')
  })

  it('base64url agrees with Buffer on every length, and reads only its own canonical output', () => {
    // A lone last character carries 6 bits, no byte: 'A' would otherwise read as nothing.
    for (const text of ['A', 'AAAAA', 'QUJDA']) expect(fromBase64url(text)).toBeUndefined()
    expect(fromBase64url('')).toEqual(new Uint8Array(0))
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const text = toBase64url(bytes)
        expect(text).toBe(b64(bytes))
        expect(fromBase64url(text)).toEqual(bytes)
      }),
    )
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (text) => {
        const bytes = fromBase64url(text)
        if (bytes !== undefined) expect(toBase64url(bytes)).toBe(text)
      }),
    )
  })

  it('never decodes a string other than the one it encodes to, and never throws anything but a ParleyError', () => {
    const text = encodeLinkCode(code)
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 90 }), fc.string({ unit: 'binary', maxLength: 90 })),
        (junk) => {
          const candidate = `parley-link:${junk}`
          const outcome = errorCode(() => decodeLinkCode(candidate))
          if (outcome === 'no error') expect(encodeLinkCode(decodeLinkCode(candidate))).toBe(candidate)
          else expect(['BAD_REQUEST', 'UNSUPPORTED']).toContain(outcome)
        },
      ),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(fc.nat({ max: text.length - 1 }), fc.integer({ min: 1, max: 127 }), (at, xor) => {
        const mutated =
          text.slice(0, at) + String.fromCharCode(text.charCodeAt(at) ^ xor) + text.slice(at + 1)
        const outcome = errorCode(() => decodeLinkCode(mutated))
        if (outcome === 'no error') expect(decodeLinkCode(mutated)).not.toEqual(code)
        else expect(['BAD_REQUEST', 'UNSUPPORTED']).toContain(outcome)
      }),
      { numRuns: 500 },
    )
  })

  it('refuses caller mistakes when encoding', () => {
    expect(errorCode(() => encodeLinkCode({ rendezvousId: random(15), secret }))).toBe('RangeError')
    expect(errorCode(() => encodeLinkCode({ rendezvousId, secret: random(33) }))).toBe('RangeError')
    expect(errorCode(() => encodeLinkCode(null as never))).toBe('TypeError')
  })
})

describe('link messages', () => {
  const plaintext = utf8('a LinkRequest, say')

  it('open in the direction they were sealed for, with the nonce first', () => {
    for (const direction of ['to-primary', 'to-new-device'] as const) {
      const sealed = sealLinkMessage({ ...code, direction, plaintext }, { random: seededRandom(direction) })
      expect(sealed.subarray(0, 12)).toEqual(seededRandom(direction)(12))
      expect(sealed).toHaveLength(12 + plaintext.length + 16)
      expect(openLinkMessage({ ...code, direction, sealed })).toEqual(plaintext)
    }
  })

  it('agree with OpenSSL HKDF-SHA-256 and ChaCha20-Poly1305, both ways', () => {
    for (const direction of ['to-primary', 'to-new-device'] as const) {
      const { key, ad } = independentKey(direction)
      const sealed = sealLinkMessage({ ...code, direction, plaintext })
      expect(nodeOpen(key, sealed.subarray(0, 12), sealed.subarray(12), ad)).toEqual(plaintext)
      const nonce = random(12)
      const theirs = cat(nonce, nodeSeal(key, nonce, plaintext, ad))
      expect(openLinkMessage({ ...code, direction, sealed: theirs })).toEqual(plaintext)
    }
  })

  it('do not open in the other direction, for another rendezvous or under another secret', () => {
    const sealed = sealLinkMessage({ ...code, direction: 'to-primary', plaintext })
    const open = (over: object) =>
      errorCode(() => openLinkMessage({ ...code, direction: 'to-primary', sealed, ...over }))
    expect(open({})).toBe('no error')
    expect(open({ direction: 'to-new-device' })).toBe('DECRYPT_FAILED')
    expect(open({ rendezvousId: random(16) })).toBe('DECRYPT_FAILED')
    expect(open({ secret: random(32) })).toBe('DECRYPT_FAILED')
    // The associated data binds the version and the rendezvous: the right key without them does not open it.
    const { key } = independentKey('to-primary')
    const nonce = random(12)
    for (const ad of [
      new Uint8Array(0),
      cat(Uint8Array.of(2), rendezvousId, utf8('parley/v1/link/to-primary')),
    ]) {
      const theirs = cat(nonce, nodeSeal(key, nonce, plaintext, ad))
      expect(open({ sealed: theirs })).toBe('DECRYPT_FAILED')
    }
  })

  it('refuse every mutated byte and every truncation with DECRYPT_FAILED', () => {
    const sealed = sealLinkMessage({ ...code, direction: 'to-new-device', plaintext })
    const open = (s: Uint8Array) =>
      errorCode(() => openLinkMessage({ ...code, direction: 'to-new-device', sealed: s }))
    for (let n = 0; n < sealed.length; n++) expect(open(sealed.subarray(0, n))).toBe('DECRYPT_FAILED')
    fc.assert(
      fc.property(fc.nat({ max: sealed.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const mutated = sealed.slice()
        mutated[at]! ^= xor
        expect(open(mutated)).toBe('DECRYPT_FAILED')
      }),
      { numRuns: 300 },
    )
  })

  it('use the crypto option for HKDF and ChaCha20-Poly1305', () => {
    const used: string[] = []
    const spy: CryptoProvider = {
      hkdfSha256: (ikm, salt, info, length) => {
        used.push('hkdf')
        return nodeHkdf(ikm, salt, info, length)
      },
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
    const sealed = sealLinkMessage({ ...code, direction: 'to-primary', plaintext }, { crypto: spy })
    expect(openLinkMessage({ ...code, direction: 'to-primary', sealed }, { crypto: spy })).toEqual(plaintext)
    expect(used).toEqual(['hkdf', 'seal', 'hkdf', 'open'])
  })

  it('refuse caller mistakes with TypeError or RangeError', () => {
    const seal = (over: object) =>
      errorCode(() => sealLinkMessage({ ...code, direction: 'to-primary', plaintext, ...over }))
    expect(() => sealLinkMessage({ ...code, direction: 'sideways' as never, plaintext })).toThrow(
      /^direction must be/,
    )
    expect(seal({ secret: random(16) })).toBe('RangeError')
    expect(seal({ rendezvousId: random(32) })).toBe('RangeError')
    expect(seal({ plaintext: 'text' })).toBe('TypeError')
    expect(
      errorCode(() =>
        sealLinkMessage({ ...code, direction: 'to-primary', plaintext }, { random: () => random(11) }),
      ),
    ).toBe('TypeError')
    expect(() => openLinkMessage({ ...code, direction: 'up' as never, sealed: random(40) })).toThrow(
      /^direction must be/,
    )
  })
})

describe('LinkRequest and LinkGrant', () => {
  it('encode as protobufjs does and decode back', () => {
    const request = encodeLinkRequest({ deviceKey: device.publicKey })
    expect(request).toEqual(pbEncode('LinkRequest', { deviceKey: device.publicKey }))
    expect(decodeLinkRequest(request)).toEqual({ deviceKey: device.publicKey })
    const encoded = encodeLinkGrant(grant)
    expect(encoded).toEqual(pbEncode('LinkGrant', grant))
    // A grant without the account identity (as the first ones) reads back with it empty.
    expect(decodeLinkGrant(encoded)).toEqual({ ...grant, accountIdentity: new Uint8Array(0) })
    const withIdentity = { ...grant, accountIdentity: device.publicKey }
    expect(decodeLinkGrant(encodeLinkGrant(withIdentity))).toEqual(withIdentity)
    expect(() => encodeLinkGrant({ ...grant, accountIdentity: new Uint8Array(31) })).toThrow(RangeError)
    const noHistory = { ...grant, historyKey: new Uint8Array(0) }
    expect(decodeLinkGrant(encodeLinkGrant(noHistory))).toEqual({
      ...noHistory,
      accountIdentity: new Uint8Array(0),
    })
  })

  it('refuse a device key that is not a 32-byte point of large order', () => {
    expect(errorCode(() => decodeLinkRequest(pbEncode('LinkRequest', { deviceKey: random(31) })))).toBe(
      'BAD_REQUEST',
    )
    expect(errorCode(() => decodeLinkRequest(pbEncode('LinkRequest', {})))).toBe('BAD_REQUEST')
    // The identity point (small order) and a y with no x on the curve.
    const identityPoint = Uint8Array.of(1, ...new Uint8Array(31))
    expect(errorCode(() => decodeLinkRequest(pbEncode('LinkRequest', { deviceKey: identityPoint })))).toBe(
      'VERIFICATION_FAILED',
    )
    const notOnCurve = Uint8Array.of(2, ...new Uint8Array(31))
    expect(errorCode(() => decodeLinkRequest(pbEncode('LinkRequest', { deviceKey: notOnCurve })))).toBe(
      'VERIFICATION_FAILED',
    )
  })

  it('refuse a grant with a field of the wrong length or range', () => {
    const code = (over: object) =>
      errorCode(() => decodeLinkGrant(pbEncode('LinkGrant', { ...grant, ...over })))
    expect(code({})).toBe('no error')
    expect(code({ address: random(31) })).toBe('BAD_REQUEST')
    expect(code({ deviceId: 0 })).toBe('BAD_REQUEST')
    expect(code({ deviceList: new Uint8Array(0) })).toBe('BAD_REQUEST')
    expect(code({ number: '' })).toBe('BAD_REQUEST')
    expect(code({ number: `+1${'5'.repeat(31)}` })).toBe('BAD_REQUEST')
    expect(code({ numberSalt: random(16) })).toBe('BAD_REQUEST')
    expect(code({ historyKey: random(16) })).toBe('BAD_REQUEST')
  })

  it('refuse non-canonical, truncated and mutated encodings with BAD_REQUEST, never another error', () => {
    const encoded = encodeLinkGrant(grant)
    expect(errorCode(() => decodeLinkGrant(cat(encoded, Uint8Array.of(9 << 3, 1))))).toBe('BAD_REQUEST')
    expect(
      errorCode(() =>
        decodeLinkRequest(cat(encodeLinkRequest({ deviceKey: device.publicKey }), Uint8Array.of(9 << 3, 1))),
      ),
    ).toBe('BAD_REQUEST')
    // history_key is last and may be empty: cut just before it, the rest is a grant without history.
    const withoutHistory = encodeLinkGrant({ ...grant, historyKey: new Uint8Array(0) }).length
    for (let n = 0; n < encoded.length; n++) {
      const outcome = errorCode(() => decodeLinkGrant(encoded.subarray(0, n)))
      expect(outcome).toBe(n === withoutHistory ? 'no error' : 'BAD_REQUEST')
    }
    fc.assert(
      fc.property(fc.nat({ max: encoded.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const mutated = encoded.slice()
        mutated[at]! ^= xor
        const outcome = errorCode(() => decodeLinkGrant(mutated))
        // A byte inside a bytes field changes the value, not the shape: decoded, it is another grant.
        if (outcome === 'no error') expect(decodeLinkGrant(mutated)).not.toEqual(grant)
        else expect(outcome).toBe('BAD_REQUEST')
      }),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
        expect(['no error', 'BAD_REQUEST']).toContain(errorCode(() => decodeLinkGrant(junk)))
        expect(['no error', 'BAD_REQUEST', 'VERIFICATION_FAILED']).toContain(
          errorCode(() => decodeLinkRequest(junk)),
        )
      }),
      { numRuns: 500 },
    )
  })

  it('refuse caller mistakes when encoding', () => {
    const enc = (over: object) => errorCode(() => encodeLinkGrant({ ...grant, ...over }))
    expect(enc({ deviceId: 0 })).toBe('RangeError')
    expect(enc({ deviceId: -2 })).toBe('RangeError')
    expect(enc({ numberSalt: random(31) })).toBe('RangeError')
    expect(enc({ number: 14155550100 })).toBe('TypeError')
    expect(enc({ historyKey: undefined })).toBe('TypeError')
    expect(errorCode(() => encodeLinkRequest({ deviceKey: random(33) }))).toBe('RangeError')
  })

  it('fingerprints a device key as 12 digits of SHA-256 over the label and the key, as node:crypto computes them', async () => {
    const { createHash } = await import('node:crypto')
    for (let i = 0; i < 20; i++) {
      const key = generateIdentity(seededRandom(`fingerprint-${i}`)).publicKey
      const digest = createHash('sha256').update('parley/v1/link-fingerprint').update(key).digest()
      const n = BigInt(`0x${digest.subarray(0, 5).toString('hex')}`) % 10n ** 12n
      const digits = n.toString().padStart(12, '0')
      expect(linkFingerprint(key)).toBe(`${digits.slice(0, 4)} ${digits.slice(4, 8)} ${digits.slice(8)}`)
    }
    expect(() => linkFingerprint(new Uint8Array(31))).toThrow(RangeError)
  })
})
