// Sender certificates: the chain to the trust root, expiry, binding to the sealing identity, number commitments,
// junk input, and an independent check of the signatures with node:crypto (OpenSSL's Ed25519).
import { createPublicKey, verify } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { errorCode, makeDevice, makeRelayKeys, seededRandom } from '../test/fixtures.js'
import {
  CERTIFICATE_SKEW_MS,
  type CiphertextMessage,
  type CryptoProvider,
  createOprfKeyCertificate,
  createSenderCertificate,
  deliveryTokenVerifier,
  numberCommitment,
  openSealedMessage,
  sealEnvelope,
  verifyOprfKeyCertificate,
  verifySenderCertificate,
} from './index.js'
import { decodeMessage, encodeMessage } from './internal/pb.js'

const NOW = 1_700_000_000_000
const random = seededRandom('certificates')
const relay = makeRelayKeys(random, NOW + 30 * 86_400_000)
const otherRelay = makeRelayKeys(random, NOW + 30 * 86_400_000)
const alice = makeDevice('alice', random, 3)
const bob = makeDevice('bob', random, 1)
const mallory = makeDevice('mallory', random, 1)
const salt = random(32)
const commitment = numberCommitment('+14155550100', salt)
const aliceCert = relay.certify(alice, { nowMs: NOW, numberCommitment: commitment })
const message: CiphertextMessage = {
  kind: 'ratchet',
  body: new Uint8Array(
    encodeMessage('RatchetMessage', { ratchetKey: random(32), counter: 1, ciphertext: random(40) }),
  ),
}

const opts = { trustRoot: relay.trustRoot, atMs: NOW }

function seal(over: Partial<Parameters<typeof sealEnvelope>[0]> = {}) {
  return sealEnvelope({
    senderAddress: alice.address,
    senderDeviceId: alice.deviceId,
    senderIdentity: alice.identity,
    recipientIdentityKey: bob.identity.publicKey,
    message,
    senderCertificate: aliceCert,
    senderNumber: { e164: '+14155550100', salt },
    ...over,
  })
}
const open = (envelope: Uint8Array, at = NOW) =>
  openSealedMessage(bob.identity, envelope, { trustRoot: relay.trustRoot, receivedAtMs: at })

describe('sender certificates', () => {
  it('verifies a certificate chained to the trust root and returns what it certifies', () => {
    const c = verifySenderCertificate(aliceCert, opts)
    expect(c.address).toEqual(alice.address)
    expect(c.deviceId).toBe(3)
    expect(c.identityKey).toEqual(alice.identity.publicKey)
    expect(c.expiresAtMs).toBe(NOW + 86_400_000)
    expect(c.numberCommitment).toEqual(commitment)
    expect(c.signerKeyId).toBe(1)
  })

  it('has signatures that an independent Ed25519 implementation (OpenSSL) accepts', () => {
    const outer = decodeMessage('SenderCertificate', aliceCert)
    const body = decodeMessage('SenderCertificateBody', outer.body!)
    const key = (raw: Uint8Array) =>
      createPublicKey({
        key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') },
        format: 'jwk',
      })
    const signerBody = decodeMessage('ServerCertificateBody', body.signer!.body!)
    const label = (s: string) => Buffer.from(s)
    expect(
      verify(
        null,
        Buffer.concat([label('parley/v1/server-certificate'), body.signer!.body!]),
        key(relay.trustRoot),
        body.signer!.signature!,
      ),
    ).toBe(true)
    expect(
      verify(
        null,
        Buffer.concat([label('parley/v1/sender-certificate'), outer.body!]),
        key(signerBody.publicKey!),
        outer.signature!,
      ),
    ).toBe(true)
  })

  it('refuses a certificate from another trust root', () => {
    const foreign = otherRelay.certify(alice, { nowMs: NOW })
    expect(errorCode(() => verifySenderCertificate(foreign, opts))).toBe('SENDER_UNVERIFIED')
  })

  it('refuses an expired certificate, tolerating only the clock skew', () => {
    const expires = NOW + 86_400_000
    expect(
      errorCode(() => verifySenderCertificate(aliceCert, { ...opts, atMs: expires + CERTIFICATE_SKEW_MS })),
    ).toBe('no error')
    expect(
      errorCode(() =>
        verifySenderCertificate(aliceCert, { ...opts, atMs: expires + CERTIFICATE_SKEW_MS + 1 }),
      ),
    ).toBe('SENDER_UNVERIFIED')
  })

  it('refuses a sender certificate that outlives its signing key', () => {
    const long = relay.certify(alice, { nowMs: NOW, validMs: 31 * 86_400_000 })
    expect(errorCode(() => verifySenderCertificate(long, opts))).toBe('SENDER_UNVERIFIED')
  })

  it('refuses a certificate signed by a key the root never certified', () => {
    const rogue = createSenderCertificate(random(32), relay.serverCertificate, {
      address: alice.address,
      deviceId: 3,
      identityKey: alice.identity.publicKey,
      expiresAtMs: NOW + 1000,
      numberCommitment: new Uint8Array(0),
    })
    expect(errorCode(() => verifySenderCertificate(rogue, opts))).toBe('SENDER_UNVERIFIED')
  })

  it('refuses every single-bit change of a certificate', () => {
    for (let i = 0; i < aliceCert.length; i++) {
      const bad = aliceCert.slice()
      bad[i]! ^= 1 << (i % 8)
      expect(errorCode(() => verifySenderCertificate(bad, opts))).toBe('SENDER_UNVERIFIED')
    }
  })

  it('refuses junk with SENDER_UNVERIFIED, never another error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (junk) => {
        expect(errorCode(() => verifySenderCertificate(junk, opts))).toBe('SENDER_UNVERIFIED')
      }),
      { numRuns: 300 },
    )
  })

  it('uses the ed25519Verify it is given and gives the same answers', () => {
    // A relay never seen in this process, so that no signing key of it is cached as verified yet.
    const fresh = makeRelayKeys(random, NOW + 86_400_000)
    const cert = fresh.certify(alice, { nowMs: NOW })
    let calls = 0
    const crypto: CryptoProvider = {
      ed25519Verify: (k, m, s) => {
        calls++
        const key = createPublicKey({
          key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(k).toString('base64url') },
          format: 'jwk',
        })
        return verify(null, m, key, s)
      },
    }
    const freshOpts = { trustRoot: fresh.trustRoot, atMs: NOW, crypto }
    expect(errorCode(() => verifySenderCertificate(cert, freshOpts))).toBe('no error')
    expect(calls).toBe(2) // the signing key's certificate, then the sender certificate
    expect(errorCode(() => verifySenderCertificate(cert, freshOpts))).toBe('no error')
    expect(calls).toBe(3) // the signing key is now known: only the sender certificate is checked
    expect(errorCode(() => verifySenderCertificate(otherRelay.certify(alice), freshOpts))).toBe(
      'SENDER_UNVERIFIED',
    )
    expect(calls).toBe(4)
    // Nothing is process-wide: a call without the option never reaches this provider.
    expect(errorCode(() => verifySenderCertificate(cert, { trustRoot: fresh.trustRoot, atMs: NOW }))).toBe(
      'no error',
    )
    expect(calls).toBe(4)
    // What the default verifier cached is not taken on trust by another provider: it checks the signer itself.
    const other: CryptoProvider = {
      ed25519Verify: (k, m, s) => {
        calls++
        return crypto.ed25519Verify!(k, m, s)
      },
    }
    expect(errorCode(() => verifySenderCertificate(cert, { ...freshOpts, crypto: other }))).toBe('no error')
    expect(calls).toBe(4 + 2 + 2) // other's two calls, each going through crypto's counting verifier
  })

  it('never lets a cached signing key vouch under another trust root or for altered bytes', () => {
    expect(errorCode(() => verifySenderCertificate(aliceCert, opts))).toBe('no error') // now cached
    expect(
      errorCode(() => verifySenderCertificate(aliceCert, { ...opts, trustRoot: otherRelay.trustRoot })),
    ).toBe('SENDER_UNVERIFIED')
    const outer = decodeMessage('SenderCertificate', aliceCert)
    const body = decodeMessage('SenderCertificateBody', outer.body!)
    const sig = body.signer!.signature!.slice()
    sig[0]! ^= 1
    const tampered = encodeMessage('SenderCertificate', {
      body: encodeMessage('SenderCertificateBody', {
        ...body,
        signer: { body: body.signer!.body, signature: sig },
      }),
      signature: outer.signature,
    })
    expect(errorCode(() => verifySenderCertificate(tampered, opts))).toBe('SENDER_UNVERIFIED')
  })

  it('throws TypeError / RangeError for caller mistakes', () => {
    expect(
      errorCode(() => verifySenderCertificate(aliceCert, { trustRoot: new Uint8Array(3), atMs: NOW })),
    ).toBe('RangeError')
    expect(
      errorCode(() => verifySenderCertificate(aliceCert, { trustRoot: relay.trustRoot, atMs: -1 })),
    ).toBe('RangeError')
    expect(errorCode(() => numberCommitment('+1', new Uint8Array(31)))).toBe('RangeError')
    expect(errorCode(() => deliveryTokenVerifier(new Uint8Array(16)))).toBe('RangeError')
  })
})

describe('commitments and delivery tokens', () => {
  it('commit to the number under a salt: other numbers or salts give other values', () => {
    expect(numberCommitment('+14155550100', salt)).toEqual(commitment)
    expect(numberCommitment('+14155550101', salt)).not.toEqual(commitment)
    expect(numberCommitment('+14155550100', random(32))).not.toEqual(commitment)
    expect(deliveryTokenVerifier(salt)).not.toEqual(commitment)
    expect(deliveryTokenVerifier(salt)).toHaveLength(32)
  })
})

describe('openSealedMessage: the impersonation attempts', () => {
  it('accepts a genuine message and proves address, device, identity and number', () => {
    const { sender, message: m } = open(seal())
    expect(sender.address).toEqual(alice.address)
    expect(sender.deviceId).toBe(3)
    expect(sender.identityKey).toEqual(alice.identity.publicKey)
    expect(sender.number).toBe('+14155550100')
    expect(m.body).toEqual(message.body)
    expect(open(seal({ senderNumber: undefined })).sender.number).toBeUndefined()
  })

  it('refuses a message with no certificate', () => {
    expect(errorCode(() => open(seal({ senderCertificate: new Uint8Array(0) })))).toBe('SENDER_UNVERIFIED')
  })

  it("refuses mallory's own valid certificate while claiming alice's address", () => {
    const malloryCert = relay.certify({ ...mallory, deviceId: 3 }, { nowMs: NOW })
    const forged = seal({
      senderIdentity: mallory.identity,
      senderCertificate: malloryCert,
      senderNumber: undefined,
    })
    expect(errorCode(() => open(forged))).toBe('SENDER_UNVERIFIED')
  })

  it("refuses alice's certificate presented by another identity key", () => {
    const forged = seal({ senderIdentity: mallory.identity })
    expect(errorCode(() => open(forged))).toBe('SENDER_UNVERIFIED')
  })

  it('refuses a claim of another device than the certified one', () => {
    expect(errorCode(() => open(seal({ senderDeviceId: 4 })))).toBe('SENDER_UNVERIFIED')
  })

  it('refuses a stated number that does not open the commitment', () => {
    expect(errorCode(() => open(seal({ senderNumber: { e164: '+14155550199', salt } })))).toBe(
      'SENDER_UNVERIFIED',
    )
    expect(errorCode(() => open(seal({ senderNumber: { e164: '+14155550100', salt: random(32) } })))).toBe(
      'SENDER_UNVERIFIED',
    )
    // A certificate without a commitment cannot carry any number.
    const bare = relay.certify(alice, { nowMs: NOW })
    expect(errorCode(() => open(seal({ senderCertificate: bare })))).toBe('SENDER_UNVERIFIED')
  })

  it('checks expiry at the time the relay received the message', () => {
    const envelope = seal()
    expect(errorCode(() => open(envelope, NOW + 86_400_000))).toBe('no error')
    expect(errorCode(() => open(envelope, NOW + 2 * 86_400_000))).toBe('SENDER_UNVERIFIED')
  })

  it('refuses a certificate from another root even when everything else matches', () => {
    const foreign = otherRelay.certify(alice, { nowMs: NOW, numberCommitment: commitment })
    expect(errorCode(() => open(seal({ senderCertificate: foreign })))).toBe('SENDER_UNVERIFIED')
  })
})

describe('OPRF key certificates', () => {
  const random = seededRandom('oprf-key-certificates')
  const relay = makeRelayKeys(random)
  const other = makeRelayKeys(random)
  const publicKey = random(32)
  const fields = { keyId: 3, publicKey, validFromMs: 1_700_000_000_000, validUntilMs: 0 }
  const cert = createOprfKeyCertificate(relay.rootSecretKey, fields)

  it('verifies for the key it names under the root that signed it, and says what it certifies', () => {
    const v = verifyOprfKeyCertificate(cert, relay.trustRoot, { keyId: 3, publicKey }, Date.now())
    expect(v).toEqual(fields)
    // Independently: OpenSSL checks the trust root's signature over the label and the exact body bytes.
    const outer = decodeMessage('OprfKeyCertificate', cert)
    const root = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(relay.trustRoot).toString('base64url') },
      format: 'jwk',
    })
    const signed = Buffer.concat([Buffer.from('parley/v1/oprf-key'), outer.body!])
    expect(verify(null, signed, root, outer.signature!)).toBe(true)
  })

  it('refuses a missing, forged, mismatched, tampered, expired or junk certificate with VERIFICATION_FAILED', () => {
    const check = (
      c: Uint8Array | undefined,
      root = relay.trustRoot,
      key = { keyId: 3, publicKey },
      at?: number,
    ) => errorCode(() => verifyOprfKeyCertificate(c, root, key, at))
    expect(check(undefined)).toBe('VERIFICATION_FAILED') // unsigned key
    expect(check(new Uint8Array(0))).toBe('VERIFICATION_FAILED')
    expect(check(cert, other.trustRoot)).toBe('VERIFICATION_FAILED') // another relay's root
    expect(check(createOprfKeyCertificate(other.rootSecretKey, fields))).toBe('VERIFICATION_FAILED')
    expect(check(cert, relay.trustRoot, { keyId: 4, publicKey })).toBe('VERIFICATION_FAILED') // another epoch
    expect(check(cert, relay.trustRoot, { keyId: 3, publicKey: random(32) })).toBe('VERIFICATION_FAILED')
    for (let i = 0; i < cert.length; i++) {
      const t = cert.slice()
      t[i]! ^= 0x01
      expect(check(t)).toBe('VERIFICATION_FAILED')
    }
    const retired = createOprfKeyCertificate(relay.rootSecretKey, {
      ...fields,
      validUntilMs: 1_800_000_000_000,
    })
    expect(check(retired, relay.trustRoot, { keyId: 3, publicKey }, 1_799_999_999_999)).toBe('no error')
    expect(
      check(retired, relay.trustRoot, { keyId: 3, publicKey }, 1_800_000_000_000 + CERTIFICATE_SKEW_MS + 1),
    ).toBe('VERIFICATION_FAILED')
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
        expect(check(junk)).toBe('VERIFICATION_FAILED')
      }),
      { numRuns: 500 },
    )
  })
})
