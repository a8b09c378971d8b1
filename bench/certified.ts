// A sender certified as the relay would certify it, for the benches that seal envelopes (crypto.ts, groups.ts):
// a trust root certifies a signing key for two days, which certifies the device for one, with a commitment to its
// number; the device states the number and salt in every envelope.
import {
  createSenderCertificate,
  createServerCertificate,
  generateIdentity,
  type IdentityKeyPair,
  numberCommitment,
} from '../packages/protocol/src/index.js' // the source, so the bench needs no build step

const DAY_MS = 86_400_000

/** The trust root's public key, the device's sender certificate and the salt of its number commitment. */
export function certifiedSender(identity: IdentityKeyPair, address: Uint8Array, e164: string, now: number) {
  const trustRoot = generateIdentity() // any Ed25519 key pair
  const signer = generateIdentity()
  const serverCertificate = createServerCertificate(trustRoot.secretKey, {
    keyId: 1,
    publicKey: signer.publicKey,
    expiresAtMs: now + 2 * DAY_MS,
  })
  const salt = new Uint8Array(32).fill(3)
  const senderCertificate = createSenderCertificate(signer.secretKey, serverCertificate, {
    address,
    deviceId: 1,
    identityKey: identity.publicKey,
    expiresAtMs: now + DAY_MS,
    numberCommitment: numberCommitment(e164, salt),
  })
  return { trustRoot: trustRoot.publicKey, senderCertificate, salt }
}
