// Version-2 sealed envelopes (one message sealed once for many devices): the construction rebuilt byte for byte
// with OpenSSL and protobufjs, every device opening its copy, and the attacks a co-recipient or the relay can try
// with what it holds — another device's part, a changed ciphertext, a part made for a device the sender never
// chose, an ephemeral key that does not belong to the message key — each refused.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { type Device, errorCode, makeDevice, seededRandom } from '../test/fixtures.js'
import {
  cat,
  nodeHash,
  nodeHkdf,
  nodeIdentityX25519,
  nodeOpen,
  nodeSeal,
  nodeX25519,
  nodeX25519Public,
  pbEncode,
  utf8,
} from '../test/independent.js'
import {
  createSenderKey,
  joinSealed,
  openEnvelope,
  openSenderKeyDistribution,
  type RandomSource,
  SealAgreements,
  SHARED_ENVELOPE_VERSION,
  sealEnvelope,
  sealForDevices,
  senderKeyDecrypt,
  senderKeyDistribution,
  senderKeyEncrypt,
} from './index.js'
import { NOBLE } from './internal/e2eCrypto.js'
import { decodeMessage, encodeMessage } from './internal/pb.js'

const equalKey = (key: Uint8Array, d: Device) => Buffer.from(key).equals(Buffer.from(d.identity.publicKey))

const random = seededRandom('sealed-shared')
const alice = makeDevice('alice', random, 7)
const members: Device[] = ['bob', 'carol', 'dave', 'erin', 'frank'].map((n, i) =>
  makeDevice(n, random, i + 1),
)
const outsider = makeDevice('mallory', random, 9)
const chain = createSenderKey({ random })
const receiver = openSenderKeyDistribution(senderKeyDistribution(chain))
const { message: body } = senderKeyEncrypt(chain, utf8('to the group'))
const certificate = random(120)
const ZERO = new Uint8Array(12)

const sealed = (
  to: readonly Device[] = members,
  r: RandomSource = random,
  over: { from?: Device } & Omit<NonNullable<Parameters<typeof sealForDevices>[1]>, 'random'> = {},
) => {
  const { from = alice, ...options } = over
  return sealForDevices(
    {
      senderAddress: from.address,
      senderDeviceId: 7,
      senderIdentity: from.identity,
      recipientIdentityKeys: to.map((d) => d.identity.publicKey),
      message: { kind: 'senderKey', body },
      senderCertificate: certificate,
    },
    { random: r, ...options },
  )
}

/** M's keys as the module doc gives them, computed with OpenSSL. */
function keysOf(m: Uint8Array) {
  const out = nodeHkdf(m, new Uint8Array(0), utf8('Parley_Sealed_Shared_Message'), 64)
  const secret = out.slice(0, 32)
  return { secret, publicKey: nodeX25519Public(secret), key: out.slice(32) }
}

/** One device's part, made independently: M masked under DH(e, R), the tag under DH(S, R). */
function independentPart(m: Uint8Array, ciphertext: Uint8Array, to: Device, tagKeyFrom = alice) {
  const { secret, publicKey: e } = keysOf(m)
  const r = nodeIdentityX25519(to.identity.secretKey).publicKey
  const pad = nodeHkdf(nodeX25519(secret, r), cat(e, r), utf8('Parley_Sealed_Shared_Wrap'), 32)
  const wrappedKey = m.map((b, i) => b ^ pad[i]!)
  const s = nodeIdentityX25519(tagKeyFrom.identity.secretKey).secret
  const salt = cat(e, r, wrappedKey, nodeHash('sha256', ciphertext), tagKeyFrom.identity.publicKey)
  const authTag = nodeHkdf(nodeX25519(s, r), salt, utf8('Parley_Sealed_Shared_Auth'), 16)
  return pbEncode('SealedEnvelope', { version: 2, wrappedKey, authTag })
}

/** The message key M a device unmasks from its part, computed with OpenSSL. */
function unmask(part: Uint8Array, shared: Uint8Array, to: Device): Uint8Array {
  const env = decodeMessage('SealedEnvelope', joinSealed(part, shared))
  const { secret, publicKey: r } = nodeIdentityX25519(to.identity.secretKey)
  const e = env.ephemeralKey!
  const pad = nodeHkdf(nodeX25519(secret, e), cat(e, r), utf8('Parley_Sealed_Shared_Wrap'), 32)
  return env.wrappedKey!.map((b, i) => b ^ pad[i]!)
}

describe('sealed envelopes for many devices (version 2)', () => {
  it('is byte for byte what OpenSSL and protobufjs make of the documented construction', () => {
    const seed = seededRandom('shared-vector')
    const m = seededRandom('shared-vector')(32) // the first 32 bytes drawn are the message key
    const { shared, parts } = sealed(members, seed)
    const { publicKey: e, key } = keysOf(m)
    const env = decodeMessage('SealedEnvelope', shared)
    expect(env.ephemeralKey).toEqual(e)
    // The content: what version 1 encrypts, here under K with the ephemeral key as associated data.
    const content = nodeOpen(key, ZERO, env.ciphertext!, e)
    const decoded = decodeMessage('SealedContent', content)
    expect(decoded.senderAddress).toEqual(alice.address)
    expect(decoded.senderDeviceId).toBe(7)
    expect(decoded.senderIdentityKey).toEqual(alice.identity.publicKey)
    expect(decoded.senderCertificate).toEqual(certificate)
    expect(nodeSeal(key, ZERO, content, e)).toEqual(env.ciphertext)
    expect(shared).toEqual(pbEncode('SealedEnvelope', { ephemeralKey: e, ciphertext: env.ciphertext }))
    expect(parts.map((p) => Buffer.from(p).toString('hex'))).toEqual(
      members.map((d) => Buffer.from(independentPart(m, env.ciphertext!, d)).toString('hex')),
    )
    expect(parts.every((p) => p.length === 54)).toBe(true)
  })

  it('lets every device open its copy, proving the sender, and the group message inside opens under its chain', () => {
    const { shared, parts } = sealed()
    for (const [i, d] of members.entries()) {
      const opened = openEnvelope(d.identity, joinSealed(parts[i]!, shared))
      expect(opened.senderAddress).toEqual(alice.address)
      expect(opened.senderDeviceId).toBe(7)
      expect(opened.senderIdentityKey).toEqual(alice.identity.publicKey)
      expect(opened.senderCertificate).toEqual(certificate)
      expect(opened.message).toEqual({ kind: 'senderKey', body })
      expect(new TextDecoder().decode(senderKeyDecrypt(receiver, opened.message.body).plaintext)).toBe(
        'to the group',
      )
    }
    // The secret key alone opens it too.
    expect(openEnvelope(members[0]!.identity.secretKey, joinSealed(parts[0]!, shared)).senderDeviceId).toBe(7)
  })

  it("refuses another device's part, and a part joined to another message's shared bytes", () => {
    const { shared, parts } = sealed()
    const other = sealed()
    expect(errorCode(() => openEnvelope(members[1]!.identity, joinSealed(parts[0]!, shared)))).toBe(
      'DECRYPT_FAILED',
    )
    expect(errorCode(() => openEnvelope(outsider.identity, joinSealed(parts[0]!, shared)))).toBe(
      'DECRYPT_FAILED',
    )
    expect(errorCode(() => openEnvelope(members[0]!.identity, joinSealed(parts[0]!, other.shared)))).toBe(
      'DECRYPT_FAILED',
    )
  })

  it("refuses a co-recipient's change of the ciphertext for another member, though it knows the message key", () => {
    // Bob opened his copy, so he knows M and K. He writes other content under K, as alice, for carol, and keeps
    // carol's part: her tag covers the ciphertext's hash, so she refuses it.
    const { shared, parts } = sealed()
    const m = unmask(parts[0]!, shared, members[0]!)
    const { publicKey: e, key } = keysOf(m)
    const forgedContent = encodeMessage('SealedContent', {
      senderAddress: alice.address,
      senderDeviceId: 7,
      senderIdentityKey: alice.identity.publicKey,
      senderKeyMessage: decodeMessage('SenderKeyMessage', senderKeyEncrypt(chain, utf8('forged')).message),
      senderCertificate: certificate,
    })
    const forgedShared = pbEncode('SealedEnvelope', {
      ephemeralKey: e,
      ciphertext: nodeSeal(key, ZERO, forgedContent, e),
    })
    expect(errorCode(() => openEnvelope(members[1]!.identity, joinSealed(parts[1]!, forgedShared)))).toBe(
      'DECRYPT_FAILED',
    )
    // The control: the same forgery with a tag alice's key makes is taken, so it is the tag that refuses it.
    const ciphertext = decodeMessage('SealedEnvelope', forgedShared).ciphertext!
    expect(
      openEnvelope(
        members[1]!.identity,
        joinSealed(independentPart(m, ciphertext, members[1]!), forgedShared),
      ).senderIdentityKey,
    ).toEqual(alice.identity.publicKey)
  })

  it('refuses a part a co-recipient made with the message key for a device alice never sealed for', () => {
    // Bob can mask M for mallory, but not make the tag alice's and mallory's static secret gives: with his own
    // static key the tag proves bob, not the alice the content names.
    const { shared, parts } = sealed()
    const m = unmask(parts[0]!, shared, members[0]!)
    const ciphertext = decodeMessage('SealedEnvelope', shared).ciphertext!
    const byBob = independentPart(m, ciphertext, outsider, members[0]!)
    expect(errorCode(() => openEnvelope(outsider.identity, joinSealed(byBob, shared)))).toBe('DECRYPT_FAILED')
    const randomTag = pbEncode('SealedEnvelope', {
      version: 2,
      wrappedKey: decodeMessage('SealedEnvelope', independentPart(m, ciphertext, outsider)).wrappedKey,
      authTag: random(16),
    })
    expect(errorCode(() => openEnvelope(outsider.identity, joinSealed(randomTag, shared)))).toBe(
      'DECRYPT_FAILED',
    )
  })

  it('refuses an ephemeral key that the message key does not give, even with a tag from the sender itself', () => {
    // ChaCha20-Poly1305 does not commit to its key: only E = X25519(e(M), 9), with E shared by every copy, makes
    // every member who opens one message use the same M. Here alice herself breaks that: her tag is valid.
    const { shared, parts } = sealed(members.slice(0, 1))
    const m = unmask(parts[0]!, shared, members[0]!)
    const { key } = keysOf(m)
    const env = decodeMessage('SealedEnvelope', shared)
    const content = nodeOpen(key, ZERO, env.ciphertext!, env.ephemeralKey!)
    const build = (e: Uint8Array, eSecret: Uint8Array) => {
      const ciphertext = nodeSeal(key, ZERO, content, e)
      const r = nodeIdentityX25519(members[0]!.identity.secretKey).publicKey
      const pad = nodeHkdf(nodeX25519(eSecret, r), cat(e, r), utf8('Parley_Sealed_Shared_Wrap'), 32)
      const wrappedKey = m.map((b, i) => b ^ pad[i]!)
      const s = nodeIdentityX25519(alice.identity.secretKey).secret
      const salt = cat(e, r, wrappedKey, nodeHash('sha256', ciphertext), alice.identity.publicKey)
      const authTag = nodeHkdf(nodeX25519(s, r), salt, utf8('Parley_Sealed_Shared_Auth'), 16)
      return pbEncode('SealedEnvelope', { version: 2, ephemeralKey: e, wrappedKey, authTag, ciphertext })
    }
    const other = random(32)
    expect(errorCode(() => openEnvelope(members[0]!.identity, build(nodeX25519Public(other), other)))).toBe(
      'DECRYPT_FAILED',
    )
    // The control: built the same way with the E that M gives, it opens.
    const { secret, publicKey } = keysOf(m)
    expect(openEnvelope(members[0]!.identity, build(publicKey, secret)).senderIdentityKey).toEqual(
      alice.identity.publicKey,
    )
  })

  it('refuses every single-bit change of a copy, and mixed or missing fields', () => {
    const { shared, parts } = sealed(members.slice(0, 1))
    const whole = joinSealed(parts[0]!, shared)
    for (let i = 0; i < whole.length; i++) {
      const bad = whole.slice()
      bad[i]! ^= 1 << (i % 8)
      expect(['DECRYPT_FAILED', 'BAD_REQUEST', 'UNSUPPORTED', 'VERIFICATION_FAILED']).toContain(
        errorCode(() => openEnvelope(members[0]!.identity, bad)),
      )
    }
    const env = decodeMessage('SealedEnvelope', whole)
    for (const broken of [
      { ...env, encryptedSenderKey: random(48) }, // a version-1 field in a version-2 envelope
      { ...env, wrappedKey: undefined },
      { ...env, authTag: random(15) },
      { ...env, ephemeralKey: random(31) },
    ]) {
      expect(errorCode(() => openEnvelope(members[0]!.identity, pbEncode('SealedEnvelope', broken)))).toBe(
        'BAD_REQUEST',
      )
    }
    // A version-2 field in a version-1 envelope.
    const one = decodeMessage(
      'SealedEnvelope',
      sealEnvelope({
        senderAddress: alice.address,
        senderDeviceId: 7,
        senderIdentity: alice.identity,
        recipientIdentityKey: members[0]!.identity.publicKey,
        message: { kind: 'senderKey', body },
        senderCertificate: certificate,
      }),
    )
    expect(
      errorCode(() =>
        openEnvelope(members[0]!.identity, pbEncode('SealedEnvelope', { ...one, authTag: random(16) })),
      ),
    ).toBe('BAD_REQUEST')
  })

  it('refuses random version-2 envelopes with a ParleyError, never another error', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 40 }),
        fc.uint8Array({ minLength: 0, maxLength: 40 }),
        fc.uint8Array({ minLength: 0, maxLength: 20 }),
        fc.uint8Array({ maxLength: 200 }),
        (ephemeralKey, wrappedKey, authTag, ciphertext) => {
          const junk = pbEncode('SealedEnvelope', {
            version: 2,
            ephemeralKey,
            wrappedKey,
            authTag,
            ciphertext,
          })
          expect(['DECRYPT_FAILED', 'BAD_REQUEST', 'VERIFICATION_FAILED']).toContain(
            errorCode(() => openEnvelope(members[0]!.identity, junk)),
          )
        },
      ),
      { numRuns: 300 },
    )
  })

  it('shows the relay neither the sender address nor its identity key, and costs 54 bytes per further device', () => {
    const { shared, parts } = sealed()
    for (const bytes of [shared, ...parts]) {
      const hay = Buffer.from(bytes)
      expect(hay.indexOf(Buffer.from(alice.address))).toBe(-1)
      expect(hay.indexOf(Buffer.from(alice.identity.publicKey))).toBe(-1)
    }
    const one = sealEnvelope({
      senderAddress: alice.address,
      senderDeviceId: 7,
      senderIdentity: alice.identity,
      recipientIdentityKey: members[0]!.identity.publicKey,
      message: { kind: 'senderKey', body },
      senderCertificate: certificate,
    })
    // Each copy is as large as a version-1 envelope, within a few bytes; the sender uploads one shared part.
    expect(Math.abs(joinSealed(parts[0]!, shared).length - one.length)).toBeLessThanOrEqual(8)
    expect(decodeMessage('SealedEnvelope', joinSealed(parts[0]!, shared)).version).toBe(
      SHARED_ENVELOPE_VERSION,
    )
  })

  it('remembers the static secrets in SealAgreements: later messages compute one X25519 per device, still open', () => {
    let agreements = 0
    const counting = {
      x25519: {
        getPublicKey: NOBLE.x25519.getPublicKey,
        getSharedSecret: NOBLE.x25519.getSharedSecret,
        getSharedSecrets: (sk: Uint8Array, peers: readonly Uint8Array[]) => {
          agreements += peers.length
          return peers.map((p) => NOBLE.x25519.getSharedSecret(sk, p))
        },
      },
    }
    const cache = new SealAgreements(4)
    const seal = (to: readonly Device[], from = alice) =>
      sealed(to, random, { from, crypto: counting, agreements: cache })
    const opens = (sealed: ReturnType<typeof seal>, to: readonly Device[], from = alice) =>
      to.every((d, i) =>
        equalKey(
          openEnvelope(d.identity, joinSealed(sealed.parts[i]!, sealed.shared)).senderIdentityKey,
          from,
        ),
      )
    const three = members.slice(0, 3)
    expect(opens(seal(three), three)).toBe(true)
    expect([agreements, cache.size]).toEqual([6, 3]) // the ephemeral's three, and the three static ones
    agreements = 0
    expect(opens(seal(three), three)).toBe(true)
    expect(agreements).toBe(3) // the ephemeral's only
    // Two more devices: the cache holds 4, the oldest is forgotten, and every copy still opens.
    agreements = 0
    expect(opens(seal(members), members)).toBe(true)
    expect([agreements, cache.size]).toEqual([5 + 2, 4])
    // Another sender with the same cache: it starts over rather than use alice's secrets.
    agreements = 0
    expect(opens(seal(three, outsider), three, outsider)).toBe(true)
    expect([agreements, cache.size]).toEqual([6, 3])
    cache.clear()
    expect(cache.size).toBe(0)
    expect(() => new SealAgreements(0)).toThrow(RangeError)
    expect(() =>
      sealForDevices(
        {
          senderAddress: alice.address,
          senderDeviceId: 7,
          senderIdentity: alice.identity,
          recipientIdentityKeys: [members[0]!.identity.publicKey],
          message: { kind: 'senderKey', body },
          senderCertificate: certificate,
        },
        { agreements: {} as never },
      ),
    ).toThrow(TypeError)
  })

  it('serves sealing and opening of both versions from one SealAgreements per device: one X25519 fewer each time', () => {
    let dhs = 0
    const counting = {
      x25519: {
        getPublicKey: NOBLE.x25519.getPublicKey,
        getSharedSecret: (sk: Uint8Array, p: Uint8Array) => {
          dhs++
          return NOBLE.x25519.getSharedSecret(sk, p)
        },
      },
    }
    const aliceCache = new SealAgreements()
    const bobCache = new SealAgreements()
    const bob = members[0]!
    const one = () =>
      sealEnvelope(
        {
          senderAddress: alice.address,
          senderDeviceId: 7,
          senderIdentity: alice.identity,
          recipientIdentityKey: bob.identity.publicKey,
          message: { kind: 'senderKey', body },
          senderCertificate: certificate,
        },
        { crypto: counting, agreements: aliceCache },
      )
    const open = (envelope: Uint8Array) =>
      openEnvelope(bob.identity, envelope, { crypto: counting, agreements: bobCache }).senderIdentityKey
    const costs: number[] = []
    for (let i = 0; i < 2; i++) {
      dhs = 0
      const envelope = one()
      costs.push(dhs)
      dhs = 0
      expect(equalKey(open(envelope), alice)).toBe(true)
      costs.push(dhs)
    }
    // Version 1: two agreements to seal and two to open the first time, one each after.
    expect(costs).toEqual([2, 2, 1, 1])
    // Version 2, opened with the same cache: the static secret bob already holds for alice serves it too.
    const { shared, parts } = sealed([bob])
    dhs = 0
    expect(equalKey(open(joinSealed(parts[0]!, shared)), alice)).toBe(true)
    expect(dhs).toBe(1)
    // A forged sender key in a copy is computed afresh, never taken from what alice's entry holds.
    expect(
      errorCode(() =>
        openEnvelope(members[1]!.identity, joinSealed(parts[0]!, shared), { agreements: bobCache }),
      ),
    ).toBe('DECRYPT_FAILED')
  })

  it('throws TypeError / RangeError for caller mistakes and TOO_LARGE beyond 256 KiB', () => {
    const base = {
      senderAddress: alice.address,
      senderDeviceId: 7,
      senderIdentity: alice.identity,
      message: { kind: 'senderKey' as const, body },
      senderCertificate: certificate,
    }
    expect(errorCode(() => sealForDevices({ ...base, recipientIdentityKeys: [] }))).toBe('TypeError')
    expect(errorCode(() => sealForDevices(null as never))).toBe('TypeError')
    expect(errorCode(() => sealForDevices({ ...base, recipientIdentityKeys: [random(31)] }))).toBe(
      'RangeError',
    )
    expect(
      errorCode(() =>
        sealForDevices({
          ...base,
          recipientIdentityKeys: [members[0]!.identity.publicKey],
          message: { kind: 'senderKey', body: new Uint8Array(256 * 1024) },
        }),
      ),
    ).toBe('TOO_LARGE')
    expect(errorCode(() => joinSealed(new Uint8Array(54), new Uint8Array(256 * 1024)))).toBe('TOO_LARGE')
    expect(errorCode(() => joinSealed('x' as never, new Uint8Array(1)))).toBe('TypeError')
  })
})
