// The engine's end-to-end layer: bundles must be for the address asked for; sessions of every identity a
// contact has had stay archived (and keep decrypting); a first message is accepted once.
import {
  createSenderCertificate,
  createServerCertificate,
  generateIdentity,
  generateKemPrekey,
  generateSignedPrekey,
  ParleyError,
  prekeyBundleToWire,
} from '@parley/protocol'
import { describe, expect, it } from 'vitest'
import * as e2e from './e2e.js'

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n))
const env: e2e.Env = { random, crypto: undefined }
const NOW = Date.now()

function device(fill: number) {
  const identity = generateIdentity()
  const address = new Uint8Array(32).fill(fill)
  const spk = generateSignedPrekey(identity, 1)
  const kem = generateKemPrekey(identity, 1)
  return {
    ours: { address, deviceId: 1, identity },
    bundle: prekeyBundleToWire({
      address,
      deviceId: 1,
      identityKey: identity.publicKey,
      signedPrekey: { keyId: 1, publicKey: spk.publicKey, signature: spk.signature },
      kemPrekey: { keyId: 1, publicKey: kem.publicKey, signature: kem.signature },
      kemPrekeyIsLastResort: true,
    }),
    secrets: { spk, kem },
  }
}

// A relay's certificate chain (Ed25519 key pairs, as identities are), to seal with.
const root = generateIdentity()
const signerSecret = generateIdentity()
const trustRoot = root.publicKey
const serverCert = createServerCertificate(root.secretKey, {
  keyId: 1,
  publicKey: signerSecret.publicKey,
  expiresAtMs: NOW + 86_400_000,
})
const certify = (d: ReturnType<typeof device>) =>
  createSenderCertificate(signerSecret.secretKey, serverCert, {
    address: d.ours.address,
    deviceId: 1,
    identityKey: d.ours.identity.publicKey,
    expiresAtMs: NOW + 3_600_000,
    numberCommitment: new Uint8Array(0),
  })

const loadPrekey = (d: ReturnType<typeof device>) => async (kind: 'spk' | 'otp' | 'kem', id: number) => {
  if (kind === 'spk' && id === 1) {
    return new TextEncoder().encode(
      JSON.stringify({
        publicKey: { $b64: Buffer.from(d.secrets.spk.publicKey).toString('base64') },
        secretKey: { $b64: Buffer.from(d.secrets.spk.secretKey).toString('base64') },
      }),
    )
  }
  if (kind === 'kem' && id === 1) {
    return new TextEncoder().encode(
      JSON.stringify({
        secretKey: { $b64: Buffer.from(d.secrets.kem.secretKey).toString('base64') },
        lastResort: true,
      }),
    )
  }
  return undefined
}

/** `from` starts a session with `to` and sends one first message; `to` opens it. */
function firstMessage(from: ReturnType<typeof device>, to: ReturnType<typeof device>, text: string) {
  const started = e2e.initiate(from.ours, to.ours.address, to.bundle, env)
  const { message } = e2e.encrypt({
    session: started.state,
    content: { messageId: random(16), sentAtMs: NOW, text },
    env,
  })
  const envelope = e2e.seal({
    ours: from.ours,
    recipientIdentityKey: to.ours.identity.publicKey,
    message,
    certificate: certify(from),
    number: undefined,
    env,
  })
  return e2e.open(to.ours.identity, envelope, trustRoot, NOW, env) as e2e.OpenedSession
}

describe('engine end-to-end layer', () => {
  it('refuses a prekey bundle for another address than the one asked for', () => {
    const alice = device(1)
    const bob = device(2)
    expect(() => e2e.initiate(alice.ours, new Uint8Array(32).fill(3), bob.bundle, env)).toThrow(
      expect.objectContaining({ code: 'VERIFICATION_FAILED' }),
    )
    expect(e2e.initiate(alice.ours, bob.ours.address, bob.bundle, env).deviceId).toBe(1)
  })

  it('keeps the sessions of a previous identity archived when a new identity writes', async () => {
    const bob = device(2)
    const aliceOld = device(1)
    const fresh = device(1) // the same address (the same number), a new identity key
    const aliceNew = { ...fresh, ours: { ...fresh.ours, address: aliceOld.ours.address } }
    const first = await e2e.decrypt({
      ours: bob.ours,
      current: null,
      previous: [],
      opened: firstMessage(aliceOld, bob, 'old phone'),
      loadPrekey: loadPrekey(bob),
      replayed: async () => false,
      env,
    })
    expect(first.content.text).toBe('old phone')
    const second = await e2e.decrypt({
      ours: bob.ours,
      current: first.state,
      previous: first.previous,
      opened: firstMessage(aliceNew, bob, 'new phone'),
      loadPrekey: loadPrekey(bob),
      replayed: async () => false,
      env,
    })
    expect(second.content.text).toBe('new phone')
    // The old identity's session is still there, behind the new one.
    expect(second.previous).toHaveLength(1)
    expect(second.previous[0]).toEqual(first.state)
  })

  it('never keeps more than the archive limit', async () => {
    const bob = device(2)
    const alice = device(1)
    let current: Uint8Array | null = null
    let previous: Uint8Array[] = []
    for (let i = 0; i < e2e.MAX_PREVIOUS_SESSIONS + 3; i++) {
      const r: e2e.Decrypted = await e2e.decrypt({
        ours: bob.ours,
        current,
        previous,
        opened: firstMessage(alice, bob, `m${i}`),
        loadPrekey: loadPrekey(bob),
        replayed: async () => false,
        env,
      })
      current = r.state
      previous = r.previous
    }
    expect(previous).toHaveLength(e2e.MAX_PREVIOUS_SESSIONS)
  }, 60_000)

  it('refuses a first message the replay cache has seen, before touching any key', async () => {
    const bob = device(2)
    const alice = device(1)
    const opened = firstMessage(alice, bob, 'once')
    let looked = 0
    const err = await e2e
      .decrypt({
        ours: bob.ours,
        current: null,
        previous: [],
        opened,
        loadPrekey: async (k, id) => {
          looked++
          return loadPrekey(bob)(k, id)
        },
        replayed: async () => true,
        env,
      })
      .catch((e: unknown) => e)
    expect(ParleyError.is(err, 'DUPLICATE')).toBe(true)
    expect(looked).toBe(0)
    const ok = await e2e.decrypt({
      ours: bob.ours,
      current: null,
      previous: [],
      opened,
      loadPrekey: loadPrekey(bob),
      replayed: async () => false,
      env,
    })
    expect(ok.replayKey?.signedPrekeyId).toBe(1)
  })
})
