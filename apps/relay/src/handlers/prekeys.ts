/**
 * Prekey upload, bundle fetch (consumes one-time keys) and count. Every signed prekey's signature is checked
 * against the device's identity key before anything is stored.
 * @module
 */
import {
  type ClientFrame,
  kemPrekeyPayload,
  ParleyError,
  signedPrekeyPayload,
  verifyIdentitySignature,
} from '@parley/protocol'
import type { Connection } from '../Connection.js'
import type { PrekeySet, SignedKey } from '../Store.js'
import { charge, type Reply, requireBytes } from './util.js'

/** X25519 public key length. */
export const X25519_KEY_BYTES = 32
/** ML-KEM-768 encapsulation key length (FIPS 203). */
export const MLKEM768_KEY_BYTES = 1184

type Upload = NonNullable<ClientFrame['prekeyUpload']>
type WireSigned = { keyId?: number | null; publicKey?: Uint8Array | null; signature?: Uint8Array | null }

function signed(
  k: WireSigned,
  length: number,
  identityKey: Uint8Array,
  payload: (id: number, pub: Uint8Array) => Uint8Array,
  what: string,
): SignedKey {
  const keyId = k.keyId ?? 0
  const publicKey = requireBytes(k.publicKey, length, `${what} public key`)
  const signature = k.signature instanceof Uint8Array ? k.signature : new Uint8Array()
  if (!verifyIdentitySignature(identityKey, payload(keyId, publicKey), signature)) {
    throw new ParleyError(
      'BAD_REQUEST',
      `${what} ${keyId}: signature does not verify against the identity key`,
    )
  }
  return { keyId, publicKey, signature }
}

/**
 * Validates an upload: lengths, counts and every signature.
 * @throws ParleyError `TOO_LARGE` over the per-upload limit, `BAD_REQUEST` for a wrong length, a missing
 *   required key or a signature that does not verify
 */
export function validatePrekeys(
  upload: Upload | null | undefined,
  identityKey: Uint8Array,
  maxPerUpload: number,
  require: boolean,
): PrekeySet {
  const u = upload ?? {}
  const otpks = u.oneTimePrekeys ?? []
  const kems = u.oneTimeKemPrekeys ?? []
  const total = otpks.length + kems.length + (u.signedPrekey ? 1 : 0) + (u.lastResortKemPrekey ? 1 : 0)
  if (total > maxPerUpload) {
    throw new ParleyError('TOO_LARGE', `at most ${maxPerUpload} prekeys per upload, got ${total}`)
  }
  if (require && !u.signedPrekey) throw new ParleyError('BAD_REQUEST', 'a signed prekey is required')
  if (require && !u.lastResortKemPrekey)
    throw new ParleyError('BAD_REQUEST', 'a last-resort KEM prekey is required')
  const set: PrekeySet = {
    oneTimePrekeys: otpks.map((k) => ({
      keyId: k.keyId ?? 0,
      publicKey: requireBytes(k.publicKey, X25519_KEY_BYTES, 'one-time prekey'),
    })),
    oneTimeKemPrekeys: kems.map((k) =>
      signed(k, MLKEM768_KEY_BYTES, identityKey, kemPrekeyPayload, 'one-time KEM prekey'),
    ),
  }
  if (u.signedPrekey) {
    set.signedPrekey = signed(
      u.signedPrekey,
      X25519_KEY_BYTES,
      identityKey,
      signedPrekeyPayload,
      'signed prekey',
    )
  }
  if (u.lastResortKemPrekey) {
    set.lastResortKemPrekey = signed(
      u.lastResortKemPrekey,
      MLKEM768_KEY_BYTES,
      identityKey,
      kemPrekeyPayload,
      'last-resort KEM prekey',
    )
  }
  return set
}

/** `PrekeyUpload` → `PrekeyUploaded`. */
export async function prekeyUpload(conn: Connection, frame: ClientFrame): Promise<Reply> {
  const device = conn.device!
  const { store, config } = conn.ctx
  const account = await store.getAccount(device.address)
  if (!account || account.deviceId !== device.deviceId) {
    throw new ParleyError('UNAUTHENTICATED', 'this device is no longer registered')
  }
  const set = validatePrekeys(frame.prekeyUpload, account.identityKey, config.maxPrekeysPerUpload, false)
  const result = await store.putPrekeys(device.address, device.deviceId, set, config.maxStoredPrekeys)
  if (result.status === 'not_found')
    throw new ParleyError('UNAUTHENTICATED', 'this device is no longer registered')
  if (result.status === 'over_limit') {
    throw new ParleyError(
      'TOO_LARGE',
      `at most ${config.maxStoredPrekeys} one-time prekeys of each kind are stored`,
    )
  }
  return { prekeyUploaded: result.counts }
}

/** `PrekeyBundleQuery` → `PrekeyBundle`, consuming one one-time prekey of each kind. */
export async function prekeyBundleQuery(conn: Connection, frame: ClientFrame): Promise<Reply> {
  const device = conn.device!
  const address = requireBytes(frame.prekeyBundleQuery!.address, 32, 'address')
  await charge(conn, 'bundle', `bundle:acct:${device.quotaId}`, 1, conn.ctx.policies.bundle)
  const bundle = await conn.ctx.store.takePrekeyBundle(address)
  if (!bundle) throw new ParleyError('NOT_FOUND', 'no account at this address')
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
export async function prekeyCountQuery(conn: Connection): Promise<Reply> {
  const device = conn.device!
  return { prekeyCount: await conn.ctx.store.countPrekeys(device.address, device.deviceId) }
}
