/**
 * Prekey upload, bundle fetch (consumes one-time keys) and count. Every signed prekey's signature is checked
 * against the device's identity key before anything is stored, on the heavy lane and within a per-account
 * signature budget.
 * @module
 */
import {
  type ClientBodyOf,
  kemPrekeyPayload,
  ParleyError,
  signedPrekeyPayload,
  verifyIdentitySignature,
  type wire,
} from '@parley/protocol'
import type { HeavyLane } from '../internal/lane.js'
import { RELAY_CRYPTO } from '../internal/nodeVerify.js'
import type { PrekeySet, SignedKey } from '../Store.js'
import type { DeviceScope } from './scope.js'
import { charge, type Reply, requireBytes } from './util.js'

/** X25519 public key length. */
export const X25519_KEY_BYTES = 32
/** ML-KEM-768 encapsulation key length (FIPS 203). */
export const MLKEM768_KEY_BYTES = 1184

type Upload = wire.PrekeyUpload
type WireSigned = wire.SignedPrekey | wire.KemPrekey

/** An upload with no keys, for an activation that sent none. */
export const NO_PREKEYS: Upload = { oneTimePrekeys: [], oneTimeKemPrekeys: [] }

/** Signatures checked per slice of the heavy lane (~0.1 ms each with OpenSSL: a slice stays well under 1 ms). */
const SIGNATURES_PER_SLICE = 4

/** A signed key whose signature is still to be checked (its signed payload is built only then). */
interface Unchecked {
  key: SignedKey
  payload: (id: number, pub: Uint8Array) => Uint8Array
  what: string
}

function unchecked(
  k: WireSigned,
  length: number,
  payload: (id: number, pub: Uint8Array) => Uint8Array,
  what: string,
): Unchecked {
  const keyId = k.keyId
  const publicKey = requireBytes(k.publicKey, length, `${what} public key`)
  const signature = k.signature
  return { key: { keyId, publicKey, signature }, payload, what }
}

/** How many signatures an upload asks the relay to check (read from the frame alone). */
export function signaturesIn(upload: Upload | undefined): number {
  const u = upload ?? NO_PREKEYS
  return u.oneTimeKemPrekeys.length + (u.signedPrekey ? 1 : 0) + (u.lastResortKemPrekey ? 1 : 0)
}

/** An upload whose shape has been checked, and the signatures still to check ({@link verifyPrekeys}). */
export interface CheckedPrekeys {
  set: PrekeySet
  unchecked: Unchecked[]
}

/**
 * Checks an upload's shape — lengths, counts, required keys — without checking a signature.
 * @throws ParleyError `TOO_LARGE` over the per-upload limit, `BAD_REQUEST` for a wrong length or a missing
 *   required key
 */
export function checkPrekeys(
  upload: Upload | undefined,
  maxPerUpload: number,
  require: boolean,
): CheckedPrekeys {
  const u = upload ?? NO_PREKEYS
  const otpks = u.oneTimePrekeys
  const kems = u.oneTimeKemPrekeys
  const total = otpks.length + kems.length + (u.signedPrekey ? 1 : 0) + (u.lastResortKemPrekey ? 1 : 0)
  if (total > maxPerUpload) {
    throw new ParleyError('TOO_LARGE', `at most ${maxPerUpload} prekeys per upload, got ${total}`)
  }
  if (require && !u.signedPrekey) throw new ParleyError('BAD_REQUEST', 'a signed prekey is required')
  if (require && !u.lastResortKemPrekey)
    throw new ParleyError('BAD_REQUEST', 'a last-resort KEM prekey is required')
  const kemKeys = kems.map((k) => unchecked(k, MLKEM768_KEY_BYTES, kemPrekeyPayload, 'one-time KEM prekey'))
  const set: PrekeySet = {
    oneTimePrekeys: otpks.map((k) => ({
      keyId: k.keyId,
      publicKey: requireBytes(k.publicKey, X25519_KEY_BYTES, 'one-time prekey'),
    })),
    oneTimeKemPrekeys: kemKeys.map((k) => k.key),
  }
  const all = [...kemKeys]
  if (u.signedPrekey) {
    const k = unchecked(u.signedPrekey, X25519_KEY_BYTES, signedPrekeyPayload, 'signed prekey')
    set.signedPrekey = k.key
    all.push(k)
  }
  if (u.lastResortKemPrekey) {
    const k = unchecked(u.lastResortKemPrekey, MLKEM768_KEY_BYTES, kemPrekeyPayload, 'last-resort KEM prekey')
    set.lastResortKemPrekey = k.key
    all.push(k)
  }
  return { set, unchecked: all }
}

/**
 * Checks every signature of a checked upload against the identity key, in slices of the heavy lane so that
 * an upload of 200 signed keys never holds the event loop for more than one slice.
 * @throws ParleyError `BAD_REQUEST` naming the first key whose signature does not verify
 */
export async function verifyPrekeys(
  checked: CheckedPrekeys,
  identityKey: Uint8Array,
  lane: HeavyLane,
): Promise<PrekeySet> {
  const ok = await lane.map(checked.unchecked, SIGNATURES_PER_SLICE, (k) =>
    verifyIdentitySignature(
      identityKey,
      k.payload(k.key.keyId, k.key.publicKey),
      k.key.signature,
      RELAY_CRYPTO,
    ),
  )
  const bad = ok.indexOf(false)
  if (bad >= 0) {
    const k = checked.unchecked[bad]!
    throw new ParleyError(
      'BAD_REQUEST',
      `${k.what} ${k.key.keyId}: signature does not verify against the identity key`,
    )
  }
  return checked.set
}

/**
 * `PrekeyUpload` → `PrekeyUploaded`. Before any signature is checked, cheapest first: the account's signature
 * budget (`--prekey-signatures-*`, charged from the frame's counts alone), the upload's shape and room in the
 * store (`--max-stored-prekeys`); then the signatures, on the heavy lane.
 */
export async function prekeyUpload(
  scope: DeviceScope,
  request: ClientBodyOf<'prekeyUpload'>,
): Promise<Reply> {
  const device = scope.device
  const { store, config, policies, metrics, lane } = scope.ctx
  const upload = request
  const signatures = signaturesIn(upload)
  if (signatures > config.maxPrekeysPerUpload) {
    throw new ParleyError('TOO_LARGE', `at most ${config.maxPrekeysPerUpload} prekeys per upload`)
  }
  if (signatures > 0) {
    await charge(
      scope,
      'prekey_signatures',
      `sig:acct:${device.quotaId}`,
      signatures,
      policies.prekeySignatures,
    )
  }
  const known = await store.getDevice(device.address, device.deviceId)
  if (!known) {
    throw new ParleyError('UNAUTHENTICATED', 'this device is no longer registered')
  }
  const checked = checkPrekeys(upload, config.maxPrekeysPerUpload, false)
  const stored = await store.countPrekeys(device.address, device.deviceId)
  if (
    stored.oneTimeCount + checked.set.oneTimePrekeys.length > config.maxStoredPrekeys ||
    stored.kemOneTimeCount + checked.set.oneTimeKemPrekeys.length > config.maxStoredPrekeys
  ) {
    throw new ParleyError(
      'TOO_LARGE',
      `at most ${config.maxStoredPrekeys} one-time prekeys of each kind are stored`,
    )
  }
  if (signatures > 0) metrics.signatureChecks.inc({ frame: 'prekey_upload' }, signatures)
  const set = await verifyPrekeys(checked, known.key, lane)
  const result = await store.putPrekeys(device.address, device.deviceId, set, config.maxStoredPrekeys)
  if (result.status === 'not_found') {
    // The store also answers not_found for a linked device's upload that would leave it no complete bundle (its
    // first upload without the signed or the last-resort KEM prekey). The device is still registered then: say
    // what is missing, rather than telling it that it was removed (UNAUTHENTICATED), which it would act on.
    if (!known.primary && (await store.getDevice(device.address, device.deviceId))) {
      throw new ParleyError(
        'BAD_REQUEST',
        "a linked device's first upload needs its signed prekey and its last-resort KEM prekey",
      )
    }
    throw new ParleyError('UNAUTHENTICATED', 'this device is no longer registered')
  }
  if (result.status === 'over_limit') {
    throw new ParleyError(
      'TOO_LARGE',
      `at most ${config.maxStoredPrekeys} one-time prekeys of each kind are stored`,
    )
  }
  return { prekeyUploaded: result.counts }
}

/** `PrekeyBundleQuery` → `PrekeyBundle`, consuming one one-time prekey of each kind. */
export async function prekeyBundleQuery(
  scope: DeviceScope,
  request: ClientBodyOf<'prekeyBundleQuery'>,
): Promise<Reply> {
  const device = scope.device
  const address = requireBytes(request.address, 32, 'address')
  await charge(scope, 'bundle', `bundle:acct:${device.quotaId}`, 1, scope.ctx.policies.bundle)
  const bundle = await scope.ctx.store.takePrekeyBundle(address, request.deviceId)
  if (!bundle) throw new ParleyError('NOT_FOUND', 'no such device at this address')
  scope.ctx.metrics.bundlesServed.inc()
  return {
    prekeyBundle: {
      address: bundle.address,
      deviceId: bundle.deviceId,
      identityKey: bundle.identityKey,
      signedPrekey: bundle.signedPrekey,
      oneTimePrekey: bundle.oneTimePrekey ?? null,
      kemPrekey: bundle.kemPrekey,
      kemPrekeyIsLastResort: bundle.kemPrekeyIsLastResort,
    },
  }
}

/** `PrekeyCountQuery` → `PrekeyCount`. */
export async function prekeyCountQuery(scope: DeviceScope): Promise<Reply> {
  const device = scope.device
  return { prekeyCount: await scope.ctx.store.countPrekeys(device.address, device.deviceId) }
}
