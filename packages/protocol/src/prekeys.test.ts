// Prekeys and bundles: signatures are over signing.ts payloads; bundles survive the generated wire codec.
import { describe, expect, it } from 'vitest'
import { makeDevice, seededRandom } from '../test/e2e/helpers.js'
import {
  generateIdentity,
  generateKemPrekey,
  generateOneTimePrekeys,
  generateSignedPrekey,
  kemPrekeyPayload,
  ParleyError,
  prekeyBundleFromWire,
  prekeyBundleToWire,
  signedPrekeyPayload,
  verifyIdentitySignature,
  verifyPrekeyBundle,
} from './index.js'
import { decodeMessage, encodeMessage } from './internal/pb.js'

const random = seededRandom('prekeys')
const identity = generateIdentity(random)

describe('prekeys', () => {
  it('signs the exact signing.ts payloads the relay verifies', () => {
    const spk = generateSignedPrekey(identity, 7, random)
    const kem = generateKemPrekey(identity, 8, random)
    expect(spk.publicKey.length).toBe(32)
    expect(kem.publicKey.length).toBe(1184)
    expect(kem.secretKey.length).toBe(2400)
    expect(
      verifyIdentitySignature(identity.publicKey, signedPrekeyPayload(7, spk.publicKey), spk.signature),
    ).toBe(true)
    expect(
      verifyIdentitySignature(identity.publicKey, kemPrekeyPayload(8, kem.publicKey), kem.signature),
    ).toBe(true)
  })

  it('numbers one-time prekeys consecutively', () => {
    const keys = generateOneTimePrekeys(4_294_967_290, 6, random)
    expect(keys.map((k) => k.keyId)).toEqual([
      4294967290, 4294967291, 4294967292, 4294967293, 4294967294, 4294967295,
    ])
    expect(() => generateOneTimePrekeys(4_294_967_295, 2)).toThrow(RangeError)
    expect(() => generateOneTimePrekeys(1, 1001)).toThrow(RangeError)
  })

  it('round-trips a bundle through the generated codec (Buffer fields normalised)', () => {
    const bob = makeDevice('bob', random)
    for (const bundle of [bob.bundle(), bob.bundle({ oneTime: false, oneTimeKem: false })]) {
      const bytes = encodeMessage('PrekeyBundle', prekeyBundleToWire(bundle))
      const back = prekeyBundleFromWire(decodeMessage('PrekeyBundle', bytes))
      expect(back).toEqual(bundle)
      expect(Object.getPrototypeOf(back.identityKey)).toBe(Uint8Array.prototype)
      verifyPrekeyBundle(back)
    }
  })

  it('refuses malformed wire bundles with BAD_REQUEST', () => {
    const bob = makeDevice('bob', random)
    const wire = prekeyBundleToWire(bob.bundle())
    const cases = [
      { ...wire, identityKey: new Uint8Array(31) },
      { ...wire, signedPrekey: undefined },
      { ...wire, kemPrekey: { ...wire.kemPrekey, publicKey: new Uint8Array(1183) } },
      { ...wire, oneTimePrekey: { keyId: 1, publicKey: new Uint8Array(5) } },
      null,
    ]
    for (const c of cases) {
      expect(() => prekeyBundleFromWire(c as never)).toThrow(ParleyError)
    }
  })

  it('throws TypeError / RangeError for caller mistakes', () => {
    expect(() => generateSignedPrekey({} as never, 1)).toThrow(TypeError)
    expect(() => generateSignedPrekey(identity, -1)).toThrow(RangeError)
    expect(() => generateKemPrekey(identity, 2 ** 32)).toThrow(RangeError)
    expect(() => generateIdentity(() => new Uint8Array(3))).toThrow(TypeError)
  })
})
