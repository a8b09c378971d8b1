// Ed25519 verification through OpenSSL for the relay: ~0.13 ms a signature instead of ~1.3 ms in pure JS, which
// matters because prekey uploads carry up to 200 signatures the relay checks on its event loop
// (bench/README.md, "abuse"). Installed beside whatever provider the process already has.
import { createPublicKey, verify } from 'node:crypto'
import { getCryptoProvider, setCryptoProvider } from '@parley/protocol'

/** Strict Ed25519 verification (RFC 8032) by OpenSSL; false for anything malformed. */
export function nodeEd25519Verify(key: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (key.length !== 32 || signature.length !== 64) return false
  try {
    const x = Buffer.from(key.buffer, key.byteOffset, key.length).toString('base64url')
    const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' })
    return verify(null, message, publicKey, signature)
  } catch {
    return false
  }
}

/** Makes `@parley/protocol` verify Ed25519 signatures with OpenSSL in this process, keeping other primitives. */
export function installNodeVerify(): void {
  if (getCryptoProvider().ed25519Verify) return
  setCryptoProvider({ ...getCryptoProvider(), ed25519Verify: nodeEd25519Verify })
}
