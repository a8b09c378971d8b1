// Shared fixtures for the end-to-end tests and the vector script: a seeded random source and simulated devices.
import { ed25519 } from '@noble/curves/ed25519.js'
import { sha256 } from '@noble/hashes/sha2.js'
import {
  createSenderCertificate,
  createServerCertificate,
  generateIdentity,
  generateKemPrekey,
  generateOneTimePrekeys,
  generateSignedPrekey,
  type IdentityKeyPair,
  type KemPrekeyPair,
  type OneTimePrekeyPair,
  type PrekeyBundle,
  type PrekeyLookup,
  type RandomSource,
  type SignedPrekeyPair,
} from '../../src/index.js'

/** Deterministic bytes: SHA-256(label ‖ u32 counter) blocks. For tests and vectors only. */
export function seededRandom(label: string): RandomSource {
  const seed = new TextEncoder().encode(label)
  let counter = 0
  return (n: number) => {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i += 32) {
      const input = new Uint8Array(seed.length + 4)
      input.set(seed)
      new DataView(input.buffer).setUint32(seed.length, counter++)
      out.set(sha256(input).subarray(0, Math.min(32, n - i)), i)
    }
    return out
  }
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
export const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))

export interface Device {
  name: string
  identity: IdentityKeyPair
  address: Uint8Array
  deviceId: number
  signedPrekey: SignedPrekeyPair
  oneTimePrekeys: Map<number, OneTimePrekeyPair>
  lastResortKem: KemPrekeyPair
  oneTimeKems: Map<number, KemPrekeyPair>
  lookup: PrekeyLookup
  /** Bundle as a relay would hand it out; consumes nothing locally. */
  bundle(opts?: { oneTime?: boolean; oneTimeKem?: boolean }): PrekeyBundle
  /** Deletes what `Session.respond` reported as consumed. */
  consume(c: { oneTimePrekeyId: number | undefined; kemPrekeyId: number }): void
}

export function makeDevice(name: string, random: RandomSource, deviceId = 1): Device {
  const identity = generateIdentity(random)
  const signedPrekey = generateSignedPrekey(identity, 1, random)
  const oneTimePrekeys = new Map(generateOneTimePrekeys(100, 3, random).map((k) => [k.keyId, k]))
  const lastResortKem = generateKemPrekey(identity, 1, random)
  const oneTimeKems = new Map([2, 3].map((id) => [id, generateKemPrekey(identity, id, random)]))
  const address = sha256(new TextEncoder().encode(`address:${name}`))
  const d: Device = {
    name,
    identity,
    address,
    deviceId,
    signedPrekey,
    oneTimePrekeys,
    lastResortKem,
    oneTimeKems,
    lookup: {
      signedPrekey: (id) => (id === signedPrekey.keyId ? signedPrekey : undefined),
      oneTimePrekey: (id) => oneTimePrekeys.get(id),
      kemPrekey: (id) => (id === lastResortKem.keyId ? lastResortKem : oneTimeKems.get(id)),
    },
    bundle({ oneTime = true, oneTimeKem = true } = {}) {
      const otp = oneTime ? [...oneTimePrekeys.values()][0] : undefined
      const kem = (oneTimeKem ? [...oneTimeKems.values()][0] : undefined) ?? lastResortKem
      return {
        address,
        deviceId,
        identityKey: identity.publicKey,
        signedPrekey: {
          keyId: signedPrekey.keyId,
          publicKey: signedPrekey.publicKey,
          signature: signedPrekey.signature,
        },
        oneTimePrekey: otp ? { keyId: otp.keyId, publicKey: otp.publicKey } : undefined,
        kemPrekey: { keyId: kem.keyId, publicKey: kem.publicKey, signature: kem.signature },
        kemPrekeyIsLastResort: kem === lastResortKem,
      }
    },
    consume({ oneTimePrekeyId, kemPrekeyId }) {
      if (oneTimePrekeyId !== undefined) oneTimePrekeys.delete(oneTimePrekeyId)
      oneTimeKems.delete(kemPrekeyId)
    },
  }
  return d
}

/** A relay's certificate keys for tests: a trust root and one signing key it certified. */
export interface TestRelayKeys {
  trustRoot: Uint8Array
  rootSecretKey: Uint8Array
  signerSecretKey: Uint8Array
  serverCertificate: Uint8Array
  /** Issues a sender certificate for a device (valid for a day from `nowMs` unless told otherwise). */
  certify(
    device: { address: Uint8Array; deviceId: number; identity: IdentityKeyPair },
    options?: { nowMs?: number; validMs?: number; numberCommitment?: Uint8Array },
  ): Uint8Array
}

export function makeRelayKeys(random: RandomSource, signerExpiresAtMs = 4_000_000_000_000): TestRelayKeys {
  const rootSecretKey = random(32)
  const signerSecretKey = random(32)
  const serverCertificate = createServerCertificate(rootSecretKey, {
    keyId: 1,
    publicKey: ed25519.getPublicKey(signerSecretKey),
    expiresAtMs: signerExpiresAtMs,
  })
  return {
    trustRoot: ed25519.getPublicKey(rootSecretKey),
    rootSecretKey,
    signerSecretKey,
    serverCertificate,
    certify(device, options = {}) {
      return createSenderCertificate(signerSecretKey, serverCertificate, {
        address: device.address,
        deviceId: device.deviceId,
        identityKey: device.identity.publicKey,
        expiresAtMs: (options.nowMs ?? 1_700_000_000_000) + (options.validMs ?? 86_400_000),
        numberCommitment: options.numberCommitment ?? new Uint8Array(0),
      })
    },
  }
}
