// Signed device lists: what verifyDeviceList refuses, each case built independently (protobufjs' encoder and
// OpenSSL's Ed25519) so that only the check under test can refuse it; agreement with OpenSSL both ways; the
// crypto option; and junk, mutated and truncated input.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { errorCode, seededRandom } from '../test/fixtures.js'
import { cat, nodeSign, nodeVerify, pbEncode, utf8 } from '../test/independent.js'
import {
  type CryptoProvider,
  type DeviceListEntry,
  deviceKeyNamedIn,
  generateIdentity,
  MAX_DEVICES,
  signDeviceList,
  verifyDeviceList,
} from './index.js'
import { decodeMessage } from './internal/pb.js'

const random = seededRandom('device-list')
const account = generateIdentity(random)
const laptop = generateIdentity(random)
const tablet = generateIdentity(random)
const stranger = generateIdentity(random)
const address = random(32)
const otherAddress = random(32)
const LABEL = utf8('parley/v1/device-list')

const devices: DeviceListEntry[] = [
  { deviceId: 1, deviceKey: account.publicKey },
  { deviceId: 2, deviceKey: laptop.publicKey },
  { deviceId: 7, deviceKey: tablet.publicKey },
]
const expected = { identityKey: account.publicKey, address }

/** A DeviceList made without the package: protobufjs encodes the body, OpenSSL signs it. */
function independentList(
  body: { address?: Uint8Array; version?: number; devices?: { deviceId?: number; deviceKey?: Uint8Array }[] },
  seed = account.secretKey,
  extra: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const encoded = cat(pbEncode('DeviceListBody', { address, version: 3, devices, ...body }), extra)
  return pbEncode('DeviceList', { body: encoded, signature: nodeSign(seed, cat(LABEL, encoded)) })
}

const verifyCode = (list: Uint8Array, over: object = {}) =>
  errorCode(() => verifyDeviceList(list, { ...expected, ...over }))

describe('signed device lists', () => {
  it('signs a list that verifies, with the devices ordered by id whatever order they were given in', () => {
    const list = signDeviceList(
      { address, version: 3, devices: [devices[2]!, devices[0]!, devices[1]!] },
      account.secretKey,
    )
    const verified = verifyDeviceList(list, expected)
    expect(verified.address).toEqual(address)
    expect(verified.version).toBe(3)
    expect(verified.devices).toEqual(devices)
  })

  it('signs exactly what an independent encoder and OpenSSL produce, and OpenSSL verifies the signature', () => {
    const list = signDeviceList({ address, version: 3, devices }, account.secretKey)
    expect(list).toEqual(independentList({}))
    const outer = decodeMessage('DeviceList', list)
    expect(nodeVerify(account.publicKey, cat(LABEL, outer.body), outer.signature)).toBe(true)
    expect(
      nodeVerify(account.publicKey, cat(utf8('parley/v1/address-change'), outer.body), outer.signature),
    ).toBe(false)
  })

  it('accepts a list of one device (a single-device account) and one of exactly MAX_DEVICES', () => {
    const one = signDeviceList({ address, version: 0, devices: [devices[0]!] }, account.secretKey)
    expect(verifyDeviceList(one, expected).devices).toHaveLength(1)
    const full = Array.from({ length: MAX_DEVICES }, (_, i) => ({
      deviceId: i + 1,
      deviceKey: i === 0 ? account.publicKey : generateIdentity(random).publicKey,
    }))
    expect(MAX_DEVICES).toBe(16)
    expect(verifyDeviceList(independentList({ devices: full }), expected).devices).toHaveLength(16)
  })

  it('refuses a forged, mis-signed or mislabelled list with VERIFICATION_FAILED', () => {
    expect(verifyCode(independentList({}, stranger.secretKey))).toBe('VERIFICATION_FAILED')
    expect(verifyCode(independentList({}), { identityKey: stranger.publicKey })).toBe('VERIFICATION_FAILED')
    const encoded = pbEncode('DeviceListBody', { address, version: 3, devices })
    const mislabelled = pbEncode('DeviceList', {
      body: encoded,
      signature: nodeSign(account.secretKey, cat(utf8('parley/v1/address-change'), encoded)),
    })
    expect(verifyCode(mislabelled)).toBe('VERIFICATION_FAILED')
    const unsigned = pbEncode('DeviceList', { body: encoded })
    expect(verifyCode(unsigned)).toBe('VERIFICATION_FAILED')
  })

  it('refuses a list for another address', () => {
    expect(verifyCode(independentList({}), { address: otherAddress })).toBe('VERIFICATION_FAILED')
    expect(verifyCode(independentList({ address: otherAddress }))).toBe('VERIFICATION_FAILED')
  })

  it('refuses a list older than minVersion (a rollback) and accepts the same version again', () => {
    const list = independentList({ version: 3 })
    expect(verifyDeviceList(list, { ...expected, minVersion: 3 }).version).toBe(3)
    expect(verifyCode(list, { minVersion: 4 })).toBe('VERIFICATION_FAILED')
    expect(
      verifyDeviceList(independentList({ version: 2 ** 53 - 1 }), { ...expected, minVersion: 4 }).version,
    ).toBe(2 ** 53 - 1)
  })

  it('refuses device ids that repeat, are 0 or are out of order', () => {
    const [p, a, b] = devices as [DeviceListEntry, DeviceListEntry, DeviceListEntry]
    expect(verifyCode(independentList({ devices: [p, a, { ...b, deviceId: 2 }] }))).toBe(
      'VERIFICATION_FAILED',
    )
    expect(verifyCode(independentList({ devices: [{ ...a, deviceId: 0 }, p, b] }))).toBe(
      'VERIFICATION_FAILED',
    )
    expect(verifyCode(independentList({ devices: [p, b, a] }))).toBe('VERIFICATION_FAILED')
  })

  it('finds the primary by its key whatever its id, and refuses a list with no primary or a key twice', () => {
    const [p, a, b] = devices as [DeviceListEntry, DeviceListEntry, DeviceListEntry]
    expect(verifyDeviceList(independentList({ devices: [p, a, b] }), expected).primaryDeviceId).toBe(
      p.deviceId,
    )
    const moved = independentList({ devices: [a, b, { ...p, deviceId: 9 }] })
    expect(verifyDeviceList(moved, expected).primaryDeviceId).toBe(9)
    expect(verifyCode(independentList({ devices: [p, { ...a, deviceKey: b.deviceKey }, b] }))).toBe(
      'VERIFICATION_FAILED',
    )
    expect(verifyCode(independentList({ devices: [p, { ...a, deviceKey: p.deviceKey }] }))).toBe(
      'VERIFICATION_FAILED',
    )
    expect(verifyCode(independentList({ devices: [a, b] }))).toBe('VERIFICATION_FAILED')
    expect(verifyCode(independentList({ devices: [] }))).toBe('VERIFICATION_FAILED')
    expect(verifyCode(independentList({ devices: [{ deviceId: 1, deviceKey: laptop.publicKey }, a] }))).toBe(
      'VERIFICATION_FAILED',
    )
  })

  it('refuses more than MAX_DEVICES devices and keys that are not 32 bytes', () => {
    const many = Array.from({ length: MAX_DEVICES + 1 }, (_, i) => ({
      deviceId: i + 1,
      deviceKey: i === 0 ? account.publicKey : laptop.publicKey,
    }))
    expect(verifyCode(independentList({ devices: many }))).toBe('VERIFICATION_FAILED')
    const [p, a] = devices as [DeviceListEntry, DeviceListEntry]
    for (const deviceKey of [
      laptop.publicKey.subarray(1),
      cat(laptop.publicKey, new Uint8Array(1)),
      new Uint8Array(0),
    ]) {
      expect(verifyCode(independentList({ devices: [p, { ...a, deviceKey }] }))).toBe('VERIFICATION_FAILED')
    }
  })

  it('refuses a validly signed body that is not canonically encoded (an unknown field, a repeated field)', () => {
    const unknown = Uint8Array.of((9 << 3) | 0, 1)
    expect(verifyCode(independentList({}, account.secretKey, unknown))).toBe('VERIFICATION_FAILED')
    const repeated = pbEncode('DeviceListBody', { version: 4 })
    expect(verifyCode(independentList({}, account.secretKey, repeated))).toBe('VERIFICATION_FAILED')
  })

  it('refuses an unknown field beside a validly signed body, and a short signature even if a verifier says yes', () => {
    const list = signDeviceList({ address, version: 3, devices }, account.secretKey)
    expect(verifyCode(cat(list, Uint8Array.of((9 << 3) | 0, 1)))).toBe('VERIFICATION_FAILED')
    const outer = decodeMessage('DeviceList', list)
    const short = pbEncode('DeviceList', { body: outer.body, signature: outer.signature.subarray(1) })
    const yes: CryptoProvider = { ed25519Verify: () => true }
    expect(errorCode(() => verifyDeviceList(list, expected, { crypto: yes }))).toBe('no error')
    expect(errorCode(() => verifyDeviceList(short, expected, { crypto: yes }))).toBe('VERIFICATION_FAILED')
  })

  it('uses the crypto option for the signature check', () => {
    const list = signDeviceList({ address, version: 3, devices }, account.secretKey)
    const calls: Uint8Array[] = []
    const spy: CryptoProvider = {
      ed25519Verify: (publicKey, message, signature) => {
        calls.push(publicKey)
        return nodeVerify(publicKey, message, signature)
      },
    }
    expect(verifyDeviceList(list, expected, { crypto: spy }).version).toBe(3)
    expect(calls).toEqual([account.publicKey])
    const refuses: CryptoProvider = { ed25519Verify: () => false }
    expect(errorCode(() => verifyDeviceList(list, expected, { crypto: refuses }))).toBe('VERIFICATION_FAILED')
  })

  it('refuses caller mistakes when signing with TypeError or RangeError', () => {
    const sign = (over: object, key = account.secretKey) =>
      errorCode(() => signDeviceList({ address, version: 3, devices, ...over }, key))
    const [p, a] = devices as [DeviceListEntry, DeviceListEntry]
    expect(sign({ devices: [p, a, { ...a }] })).toBe('RangeError')
    expect(sign({ devices: [p, { ...a, deviceId: 0 }] })).toBe('RangeError')
    expect(sign({ devices: [p, { ...a, deviceId: 2 ** 32 }] })).toBe('RangeError')
    expect(sign({ devices: [a] })).toBe('RangeError')
    // The primary is the device holding the identity, whatever its id (a number activated again gets id 2).
    expect(sign({ devices: [{ ...p, deviceId: 2 }] })).toBe('no error')
    expect(sign({ devices: [p, { ...a, deviceKey: p.deviceKey }] })).toBe('RangeError')
    expect(sign({ devices: [{ ...p, deviceKey: laptop.publicKey }, a] })).toBe('RangeError')
    expect(sign({}, stranger.secretKey)).toBe('RangeError')
    expect(sign({ devices: [p, { ...a, deviceKey: new Uint8Array(31) }] })).toBe('RangeError')
    expect(sign({ version: -1 })).toBe('RangeError')
    expect(sign({ version: 2 ** 53 })).toBe('RangeError')
    expect(sign({ address: new Uint8Array(31) })).toBe('RangeError')
    expect(sign({ devices: 'all' })).toBe('TypeError')
    const many = Array.from({ length: MAX_DEVICES + 1 }, (_, i) => ({
      deviceId: i + 1,
      deviceKey: account.publicKey,
    }))
    expect(sign({ devices: many })).toBe('RangeError')
    expect(errorCode(() => verifyDeviceList(new Uint8Array(1), { ...expected, minVersion: -1 }))).toBe(
      'RangeError',
    )
    expect(
      errorCode(() => verifyDeviceList(new Uint8Array(1), { ...expected, address: new Uint8Array(3) })),
    ).toBe('RangeError')
  })

  it('refuses junk, every mutated byte and every truncation with VERIFICATION_FAILED, never another error', () => {
    const list = signDeviceList({ address, version: 3, devices }, account.secretKey)
    for (let n = 0; n < list.length; n++) expect(verifyCode(list.subarray(0, n))).toBe('VERIFICATION_FAILED')
    fc.assert(
      fc.property(fc.nat({ max: list.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const mutated = list.slice()
        mutated[at]! ^= xor
        expect(verifyCode(mutated)).toBe('VERIFICATION_FAILED')
      }),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (junk) => {
        expect(verifyCode(junk)).toBe('VERIFICATION_FAILED')
      }),
      { numRuns: 300 },
    )
    expect(verifyCode(cat(list, Uint8Array.of(0)))).toBe('VERIFICATION_FAILED')
  })

  it('names the key an unverified list gives a device (to pick the key to verify under), and null for junk', () => {
    const list = signDeviceList({ address, version: 3, devices }, account.secretKey)
    for (const d of devices) expect(deviceKeyNamedIn(list, d.deviceId)).toEqual(d.deviceKey)
    expect(deviceKeyNamedIn(list, 999)).toBeNull()
    expect(deviceKeyNamedIn(new Uint8Array([1, 2, 3]), 1)).toBeNull()
    expect(deviceKeyNamedIn(list.subarray(0, 20), devices[0]!.deviceId)).toBeNull()
  })
})
