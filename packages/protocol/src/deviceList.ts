/**
 * Signed device lists (docs/architecture.md §9.2): which devices an account has, signed by its **account
 * identity** (the Ed25519 key contacts pin, held by the primary) under the label
 * `"parley/v1/device-list"`. The relay stores and serves the newest list but cannot make one, so it cannot add a
 * device to an account; a sender encrypts only to the devices of a list it verified against the identity it
 * pinned, and refuses one whose version is below the newest it has seen.
 *
 * The list is canonical: devices ordered by id, each id and each key once, and exactly one device holding the
 * account identity itself: the primary (its device key is the account identity, so a single-device account is
 * today's account). The primary's id is the one the relay gave it at activation (1, or higher after the number
 * was activated again), so it is named by its key, not by a fixed id.
 * @module
 */
import { ed25519 } from '@noble/curves/ed25519.js'
import type { CryptoOptions } from './cryptoProvider.js'
import { ParleyError } from './errors.js'
import { ADDRESS_BYTES, abytes, au32, equalBytes, IDENTITY_KEY_BYTES } from './internal/bytes.js'
import { label, own, primitives } from './internal/e2eCrypto.js'
import { decodeMessage } from './internal/pb.js'
import { openSignedBody, signBody } from './internal/signedBody.js'

const LABEL_DEVICE_LIST = label('parley/v1/device-list')

/** Most devices a device list may hold, the primary included. */
export const MAX_DEVICES = 16
/** The id of an account's first primary device (a number activated again gets a higher one). */
export const PRIMARY_DEVICE_ID = 1

/** One device of a device list. */
export interface DeviceListEntry {
  /** The device's id within the account (u32, not 0). */
  readonly deviceId: number
  /** The device's 32-byte Ed25519 device key; for the primary, the account identity. */
  readonly deviceKey: Uint8Array
}

/** What {@link signDeviceList} signs. */
export interface DeviceListFields {
  /** The account's 32-byte address. */
  readonly address: Uint8Array
  /** The list's version (a safe integer ≥ 0); each new list of an account needs a higher one. */
  readonly version: number
  /**
   * The devices, in any order (the list is signed ordered by id): each id once, at most {@link MAX_DEVICES},
   * and the primary among them with the account identity as its key.
   */
  readonly devices: readonly DeviceListEntry[]
}

/** A device list whose signature and contents {@link verifyDeviceList} checked. */
export interface VerifiedDeviceList {
  /** The account's 32-byte address (the one the caller expected). */
  readonly address: Uint8Array
  /** The list's version; keep the highest seen and pass it as the next `minVersion`. */
  readonly version: number
  /** The devices, ordered by id. */
  readonly devices: readonly DeviceListEntry[]
  /** The id of the device whose key is the account identity. */
  readonly primaryDeviceId: number
}

/** What {@link verifyDeviceList} checks a list against. */
export interface VerifyDeviceListOptions {
  /** The account identity the caller pinned (32-byte Ed25519 public key). */
  readonly identityKey: Uint8Array
  /** The account address the list must be for (32 bytes). */
  readonly address: Uint8Array
  /** The lowest version accepted (default 0): the version of the newest list verified before, so none older is. */
  readonly minVersion?: number
}

function aVersion(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer`)
  }
}

/**
 * Signs a device list with the account identity (on the primary).
 * @param fields - the account's address, the new version and its devices
 * @param identitySecretKey - the account identity's 32-byte Ed25519 secret seed
 * @returns an encoded `parley.v1.DeviceList`
 * @throws TypeError / RangeError for malformed fields: wrong lengths, a device id that is 0, not a u32 or
 *   given twice, more than {@link MAX_DEVICES} devices, or no primary holding this identity's public key
 * @example
 * const list = signDeviceList(
 *   { address, version: 2, devices: [{ deviceId: 1, deviceKey: identity.publicKey }, { deviceId: 2, deviceKey }] },
 *   identity.secretKey,
 * )
 */
export function signDeviceList(fields: DeviceListFields, identitySecretKey: Uint8Array): Uint8Array {
  if (typeof fields !== 'object' || fields === null) throw new TypeError('fields must be an object')
  abytes(identitySecretKey, 32, 'identitySecretKey')
  abytes(fields.address, ADDRESS_BYTES, 'address')
  aVersion(fields.version, 'version')
  if (!Array.isArray(fields.devices)) throw new TypeError('devices must be an array')
  if (fields.devices.length > MAX_DEVICES)
    throw new RangeError(`a device list holds at most ${MAX_DEVICES} devices`)
  const devices = fields.devices.map((d, i) => {
    if (typeof d !== 'object' || d === null) throw new TypeError(`devices[${i}] must be an object`)
    au32(d.deviceId, `devices[${i}].deviceId`)
    abytes(d.deviceKey, IDENTITY_KEY_BYTES, `devices[${i}].deviceKey`)
    return { deviceId: d.deviceId, deviceKey: d.deviceKey }
  })
  devices.sort((a, b) => a.deviceId - b.deviceId)
  for (let i = 1; i < devices.length; i++) {
    if (devices[i]!.deviceId === devices[i - 1]!.deviceId) {
      throw new RangeError(`device id ${devices[i]!.deviceId} is given twice`)
    }
  }
  if (devices[0]?.deviceId === 0) throw new RangeError('a device id must not be 0')
  if (devices.some((d, i) => devices.some((e, j) => j > i && equalBytes(d.deviceKey, e.deviceKey)))) {
    throw new RangeError('a device key is given twice')
  }
  const identity = ed25519.getPublicKey(identitySecretKey)
  if (!devices.some((d) => equalBytes(d.deviceKey, identity))) {
    throw new RangeError('the primary must be in the list with the account identity as its key')
  }
  return signBody(
    'DeviceList',
    'DeviceListBody',
    { address: fields.address, version: fields.version, devices },
    LABEL_DEVICE_LIST,
    identitySecretKey,
  )
}

/**
 * Verifies a device list from the relay or a peer against the account identity the caller pinned: the signature
 * first (nothing in the body is read before it verifies), then that the list is for `address`, is not older than
 * `minVersion`, and is canonical and sound (devices ordered by id, no id 0 or twice, at most
 * {@link MAX_DEVICES}, 32-byte keys, the primary present with the account identity as its key).
 * @param list - an encoded `parley.v1.DeviceList` (network input)
 * @param expected - the pinned identity, the address and the lowest acceptable version
 * @param options - `crypto`: a faster Ed25519 verifier (see {@link CryptoOptions})
 * @returns the verified list
 * @throws TypeError / RangeError for malformed `expected` (caller mistakes); ParleyError `VERIFICATION_FAILED`
 *   for anything wrong with the list
 * @example
 * const verified = verifyDeviceList(bytes, { identityKey: pinned, address, minVersion: known.version })
 */
export function verifyDeviceList(
  list: Uint8Array,
  expected: VerifyDeviceListOptions,
  options: CryptoOptions = {},
): VerifiedDeviceList {
  if (typeof expected !== 'object' || expected === null) throw new TypeError('expected must be an object')
  abytes(expected.identityKey, IDENTITY_KEY_BYTES, 'identityKey')
  abytes(expected.address, ADDRESS_BYTES, 'address')
  const minVersion = expected.minVersion ?? 0
  aVersion(minVersion, 'minVersion')
  const c = primitives(options?.crypto)
  const fail = (why: string): never => {
    throw new ParleyError('VERIFICATION_FAILED', `device list: ${why}`)
  }
  const body = openSignedBody(
    c,
    'DeviceList',
    'DeviceListBody',
    list,
    LABEL_DEVICE_LIST,
    expected.identityKey,
    'device list',
    { maxRepeated: MAX_DEVICES },
  )
  if (!equalBytes(own(body.address), expected.address)) fail('it is for another address')
  if (body.version < minVersion) fail('its version is older than one seen before')
  const devices: DeviceListEntry[] = []
  for (const d of body.devices) {
    const deviceKey = own(d.deviceKey)
    const previous = devices.at(-1)
    if (previous !== undefined && d.deviceId <= previous.deviceId)
      fail('devices are not ordered by id, once each')
    if (deviceKey.length !== IDENTITY_KEY_BYTES) fail('a device key is not 32 bytes')
    devices.push({ deviceId: d.deviceId, deviceKey })
  }
  if (devices[0]?.deviceId === 0) fail('a device id is 0')
  for (let i = 0; i < devices.length; i++) {
    for (let j = i + 1; j < devices.length; j++) {
      if (equalBytes(devices[i]!.deviceKey, devices[j]!.deviceKey)) fail('a device key is given twice')
    }
  }
  const primary = devices.find((d) => equalBytes(d.deviceKey, expected.identityKey))
  if (primary === undefined) fail('no device holds the account identity (no primary)')
  return {
    address: expected.address.slice(),
    version: body.version,
    devices,
    primaryDeviceId: primary!.deviceId,
  }
}

/**
 * The key an unverified device list names for one device: only to choose the identity to verify the list under
 * when the caller has pinned none yet for the account (trust on first use, as for a first prekey bundle). Read
 * the list only through {@link verifyDeviceList} with that key afterwards; this returns nothing else of it.
 * @param list - an encoded `parley.v1.DeviceList` (network input)
 * @param deviceId - the device whose key is wanted (the primary's id, as the relay routes to it)
 * @returns the 32-byte key the list names for `deviceId`, or null when it names none or does not decode
 * @example
 * const candidate = deviceKeyNamedIn(bytes, primaryDeviceId)
 * const verified = candidate && verifyDeviceList(bytes, { identityKey: candidate, address })
 */
export function deviceKeyNamedIn(list: Uint8Array, deviceId: number): Uint8Array | null {
  abytes(list, undefined, 'list')
  try {
    const outer = decodeMessage('DeviceList', list)
    const body = decodeMessage('DeviceListBody', outer.body, { maxRepeated: MAX_DEVICES })
    const entry = body.devices.find((d) => d.deviceId === deviceId)
    return entry !== undefined && entry.deviceKey.length === IDENTITY_KEY_BYTES ? own(entry.deviceKey) : null
  } catch {
    return null
  }
}
