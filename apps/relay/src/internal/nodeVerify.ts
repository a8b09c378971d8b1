// Ed25519 verification through OpenSSL for the relay: ~0.13 ms a signature instead of ~1.3 ms in pure JS, which
// matters because prekey uploads carry up to 200 signatures the relay checks on its event loop
// (bench/README.md, "abuse"). Given as the `crypto` option to every signature check the relay makes.
import { createPublicKey, type KeyObject, verify } from 'node:crypto'
import type { CryptoOptions } from '@parley/protocol'

/** Imported public keys by their base64url form: an upload checks up to 200 signatures by one identity key. */
const imported = new Map<string, KeyObject>()
const IMPORTED_MAX = 256

function publicKeyOf(key: Uint8Array): KeyObject {
  const x = Buffer.from(key.buffer, key.byteOffset, key.length).toString('base64url')
  let k = imported.get(x)
  if (k === undefined) {
    k = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' })
    if (imported.size >= IMPORTED_MAX) imported.delete(imported.keys().next().value!)
    imported.set(x, k)
  }
  return k
}

/** Strict Ed25519 verification (RFC 8032) by OpenSSL; false for anything malformed. */
export function nodeEd25519Verify(key: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (key.length !== 32 || signature.length !== 64) return false
  try {
    return verify(null, message, publicKeyOf(key), signature)
  } catch {
    return false
  }
}

/** The `crypto` option of the relay's signature checks: OpenSSL's Ed25519, the protocol's defaults for the rest. */
export const RELAY_CRYPTO: CryptoOptions = Object.freeze({
  crypto: Object.freeze({ ed25519Verify: nodeEd25519Verify }),
})
