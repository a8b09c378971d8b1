// Number-change notices: refusals on notices built independently (protobufjs and OpenSSL), agreement with
// OpenSSL, the crypto option, and mutated or truncated input.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { errorCode, seededRandom } from '../test/fixtures.js'
import { cat, nodeSign, nodeVerify, pbEncode, utf8 } from '../test/independent.js'
import {
  addressChangeClaims,
  type CryptoProvider,
  generateIdentity,
  signAddressChange,
  verifyAddressChange,
} from './index.js'
import { decodeMessage } from './internal/pb.js'

const random = seededRandom('address-change')
const account = generateIdentity(random)
const stranger = generateIdentity(random)
const oldAddress = random(32)
const newAddress = random(32)
const AT = 1_700_000_000_000
const LABEL = utf8('parley/v1/address-change')
const expected = { identityKey: account.publicKey, oldAddress }

function independentNotice(body: object, seed = account.secretKey, label = LABEL): Uint8Array {
  const encoded = pbEncode('AddressChangeBody', { oldAddress, newAddress, changedAtMs: AT, ...body })
  return pbEncode('AddressChange', { body: encoded, signature: nodeSign(seed, cat(label, encoded)) })
}
const verifyCode = (notice: Uint8Array, over: object = {}) =>
  errorCode(() => verifyAddressChange(notice, { ...expected, ...over }))

describe('address-change notices', () => {
  it('reads what a notice claims without trusting it: a forged one claims as well, and only verifying tells', () => {
    const forged = independentNotice({}, stranger.secretKey)
    expect(addressChangeClaims(forged)).toEqual({ oldAddress, newAddress, changedAtMs: AT })
    expect(verifyCode(forged)).toBe('VERIFICATION_FAILED')
    expect(addressChangeClaims(independentNotice({}))).toEqual({ oldAddress, newAddress, changedAtMs: AT })
    for (const bad of [
      new Uint8Array([1, 2, 3]),
      independentNotice({ newAddress: random(31) }),
      new Uint8Array(0),
    ]) {
      expect(errorCode(() => addressChangeClaims(bad))).toBe('BAD_REQUEST')
    }
  })

  it('signs a notice that verifies, byte for byte what protobufjs and OpenSSL make, and OpenSSL verifies', () => {
    const notice = signAddressChange({ oldAddress, newAddress, changedAtMs: AT }, account.secretKey)
    expect(verifyAddressChange(notice, expected)).toEqual({ oldAddress, newAddress, changedAtMs: AT })
    expect(notice).toEqual(independentNotice({}))
    const outer = decodeMessage('AddressChange', notice)
    expect(nodeVerify(account.publicKey, cat(LABEL, outer.body), outer.signature)).toBe(true)
  })

  it('refuses another signer, another label, another old address, a bad new address', () => {
    expect(verifyCode(independentNotice({}, stranger.secretKey))).toBe('VERIFICATION_FAILED')
    expect(verifyCode(independentNotice({}), { identityKey: stranger.publicKey })).toBe('VERIFICATION_FAILED')
    expect(verifyCode(independentNotice({}, account.secretKey, utf8('parley/v1/device-list')))).toBe(
      'VERIFICATION_FAILED',
    )
    expect(verifyCode(independentNotice({}), { oldAddress: newAddress })).toBe('VERIFICATION_FAILED')
    expect(verifyCode(independentNotice({ newAddress: newAddress.subarray(1) }))).toBe('VERIFICATION_FAILED')
    expect(verifyCode(independentNotice({ newAddress: oldAddress }))).toBe('VERIFICATION_FAILED')
    expect(verifyCode(independentNotice({}, account.secretKey).subarray(1))).toBe('VERIFICATION_FAILED')
  })

  it('refuses a validly signed body with an unknown field', () => {
    const encoded = cat(
      pbEncode('AddressChangeBody', { oldAddress, newAddress, changedAtMs: AT }),
      Uint8Array.of(9 << 3, 1),
    )
    const notice = pbEncode('AddressChange', {
      body: encoded,
      signature: nodeSign(account.secretKey, cat(LABEL, encoded)),
    })
    expect(verifyCode(notice)).toBe('VERIFICATION_FAILED')
  })

  it('uses the crypto option for the signature check', () => {
    const notice = signAddressChange({ oldAddress, newAddress, changedAtMs: AT }, account.secretKey)
    let calls = 0
    const spy: CryptoProvider = {
      ed25519Verify: (k, m, s) => {
        calls++
        return nodeVerify(k, m, s)
      },
    }
    expect(verifyAddressChange(notice, expected, { crypto: spy }).changedAtMs).toBe(AT)
    expect(calls).toBe(1)
    expect(
      errorCode(() => verifyAddressChange(notice, expected, { crypto: { ed25519Verify: () => false } })),
    ).toBe('VERIFICATION_FAILED')
  })

  it('refuses caller mistakes with TypeError or RangeError', () => {
    const sign = (over: object, key = account.secretKey) =>
      errorCode(() => signAddressChange({ oldAddress, newAddress, changedAtMs: AT, ...over }, key))
    expect(sign({ newAddress: oldAddress })).toBe('RangeError')
    expect(sign({ oldAddress: new Uint8Array(31) })).toBe('RangeError')
    expect(sign({ changedAtMs: -1 })).toBe('RangeError')
    expect(sign({ changedAtMs: 1.5 })).toBe('RangeError')
    expect(sign({}, new Uint8Array(31))).toBe('RangeError')
    expect(errorCode(() => signAddressChange(null as never, account.secretKey))).toBe('TypeError')
    expect(verifyCode(new Uint8Array(1), { oldAddress: new Uint8Array(3) })).toBe('RangeError')
    expect(verifyCode(new Uint8Array(1), { identityKey: 'key' })).toBe('TypeError')
  })

  it('refuses every truncation, mutated byte and junk with VERIFICATION_FAILED, never another error', () => {
    const notice = signAddressChange({ oldAddress, newAddress, changedAtMs: AT }, account.secretKey)
    for (let n = 0; n < notice.length; n++)
      expect(verifyCode(notice.subarray(0, n))).toBe('VERIFICATION_FAILED')
    fc.assert(
      fc.property(fc.nat({ max: notice.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const mutated = notice.slice()
        mutated[at]! ^= xor
        expect(verifyCode(mutated)).toBe('VERIFICATION_FAILED')
      }),
      { numRuns: 300 },
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (junk) => {
        expect(verifyCode(junk)).toBe('VERIFICATION_FAILED')
      }),
      { numRuns: 200 },
    )
  })
})
