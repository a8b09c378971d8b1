// Builds the end-to-end known-answer vectors from fixed seeds. Used by scripts/gen-e2e-vectors.ts (to write
// test/vectors/parley-e2e/kat.json) and by src/kat.test.ts (to check that nothing changed).
import { sha256 } from '@noble/hashes/sha2.js'
import {
  type CiphertextMessage,
  type CryptoProvider,
  encodeContent,
  openEnvelope,
  Session,
  safetyNumber,
  safetyNumberQr,
  sealEnvelope,
} from '../../src/index.js'
import { primitives as resolve } from '../../src/internal/e2eCrypto.js'
import { pqxdhInitiate, pqxdhKdf } from '../../src/internal/pqxdh.js'
import { kdfCk, kdfRk, messageKeys } from '../../src/internal/ratchet.js'
import { hex, makeDevice, seededRandom } from './helpers.js'

/** The vectors, computed with `crypto`'s primitives where given (the frozen file is the noble default's). */
export async function computeVectors(crypto?: CryptoProvider): Promise<Record<string, unknown>> {
  const c = resolve(crypto)
  const seq = (n: number, start = 0) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff)
  const [rk, ck] = kdfRk(c, seq(32), seq(32, 100))
  const [nextCk, mk] = kdfCk(seq(32, 7))
  const keys = messageKeys(c, seq(32, 9))
  const primitives = {
    pqxdhKdf: hex(pqxdhKdf(c, [seq(32), seq(32, 32), seq(32, 64), seq(32, 96)])),
    kdfRk: { rootKey: hex(rk), chainKey: hex(ck) },
    kdfCk: { chainKey: hex(nextCk), messageKey: hex(mk) },
    messageKeys: { key: hex(keys.key), nonce: hex(keys.nonce) },
  }

  const cases: Record<string, unknown>[] = []
  for (const variant of ['one-time', 'last-resort'] as const) {
    const random = seededRandom(`parley-e2e-kat/${variant}`)
    const alice = makeDevice('alice', random, 1)
    const bob = makeDevice('bob', random, 2)
    const bundle = bob.bundle(variant === 'one-time' ? {} : { oneTime: false, oneTimeKem: false })
    const pq = pqxdhInitiate(c, alice.identity, bundle, seededRandom(`parley-e2e-kat/${variant}/pqxdh`))
    const { session: a } = Session.initiate(alice.identity, alice.address, 1, bundle, { random, crypto })
    const transcript: { from: string; kind: string; body: string; plaintext: string }[] = []
    const content = (n: number) =>
      encodeContent({ messageId: seq(16, n), sentAtMs: 1_700_000_000_000 + n, text: `message ${n}` })
    const first = a.encrypt(content(0))
    transcript.push({ from: 'alice', kind: first.kind, body: hex(first.body), plaintext: hex(content(0)) })
    const { session: b, consumed } = await Session.respond(
      bob.identity,
      bob.address,
      2,
      {
        senderAddress: alice.address,
        senderDeviceId: 1,
        senderIdentityKey: alice.identity.publicKey,
        message: first,
      },
      bob.lookup,
      { random, crypto },
    )
    const order = ['bob', 'bob', 'alice', 'bob', 'alice', 'alice']
    order.forEach((from, i) => {
      const [tx, rx] = from === 'alice' ? [a, b] : [b, a]
      const m = tx.encrypt(content(i + 1))
      rx.decrypt(m)
      transcript.push({ from, kind: m.kind, body: hex(m.body), plaintext: hex(content(i + 1)) })
    })
    const envelope = sealEnvelope(
      {
        senderAddress: alice.address,
        senderDeviceId: 1,
        senderIdentity: alice.identity,
        recipientIdentityKey: bob.identity.publicKey,
        message: a.encrypt(content(99)),
        // Empty: encodes to no bytes, so the frozen envelope vectors are those of the format before certificates.
        senderCertificate: new Uint8Array(0),
      },
      { random, crypto },
    )
    b.decrypt(openEnvelope(bob.identity, envelope, { crypto }).message as CiphertextMessage)
    cases.push({
      variant,
      alice: { identityKey: hex(alice.identity.publicKey), address: hex(alice.address) },
      bob: {
        identityKey: hex(bob.identity.publicKey),
        address: hex(bob.address),
        signedPrekey: hex(bob.signedPrekey.publicKey),
        signedPrekeySignature: hex(bob.signedPrekey.signature),
        kemPrekeySha256: hex(sha256(bundle.kemPrekey.publicKey)),
        kemPrekeySignature: hex(bundle.kemPrekey.signature),
      },
      pqxdh: {
        sharedKey: hex(pq.sharedKey),
        baseKey: hex(pq.baseKey.publicKey),
        kemCiphertextSha256: hex(sha256(pq.kemCiphertext)),
      },
      consumed,
      transcript,
      sealedEnvelope: hex(envelope),
      aliceStateSha256: hex(sha256(a.serialize())),
      bobStateSha256: hex(sha256(b.serialize())),
      safetyNumber: safetyNumber(
        alice.identity.publicKey,
        alice.address,
        bob.identity.publicKey,
        bob.address,
      ),
      safetyNumberQr: hex(
        safetyNumberQr(alice.identity.publicKey, alice.address, bob.identity.publicKey, bob.address),
      ),
    })
  }
  return {
    source:
      'Parley e2e (docs/architecture.md §6): PQXDH rev. 3 + Double Ratchet rev. 4 as profiled in packages/protocol/src/internal; ' +
      'generated from fixed seeds by packages/protocol/scripts/gen-e2e-vectors.ts — regenerate only for an intended format change.',
    primitives,
    cases,
  }
}
