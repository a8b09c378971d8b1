// Web Push encryption and VAPID (src/push/webPush.ts): the RFC 8291 Appendix A vector byte for byte, round trips
// up to the largest plaintext that fits, refusal of every changed bit, truncation, wrong key or secret, bad
// delimiters and multi-record bodies (made here by a second, independent aes128gcm encoder written with HMAC),
// bad subscription keys; VAPID headers that verify, with node's own verify too, and every way one is refused.
import {
  createCipheriv,
  createECDH,
  createHmac,
  createPublicKey,
  verify as nodeVerify,
  randomBytes,
} from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  decryptPushMessage,
  encryptPushMessage,
  generateVapidKeys,
  MAX_PUSH_PLAINTEXT_BYTES,
  vapidHeaders,
  verifyVapid,
  WebPushError,
} from '../src/push/webPush.js'

const b64 = (text: string) => new Uint8Array(Buffer.from(text, 'base64url'))
const toB64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url')
const utf8 = (text: string) => new TextEncoder().encode(text)
const bytes = (n: number) => new Uint8Array(randomBytes(n))

/** RFC 8291 Appendix A (inputs), §5 and Appendix A (the message). */
const RFC = {
  plaintext: 'When I grow up, I want to be a watermelon',
  uaPrivate: b64('q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94'),
  uaPublic: b64('BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4'),
  auth: b64('BTBZMqHH6r4Tts7J_aSIgg'),
  asPrivate: b64('yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw'),
  asPublic: b64('BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8'),
  salt: b64('DGv6ra1nlYgDCS1FRnbzlw'),
  // Intermediate values of Appendix A, for the independent encoder below.
  ecdhSecret: b64('kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs'),
  ikm: b64('S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg'),
  cek: b64('oIhVW04MRdy2XN9CiKLxTg'),
  message:
    'DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PB' +
    'ru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN',
}

/** A `random` that hands out `chunks` in order, each only to a request of its own length. */
function scripted(...chunks: Uint8Array[]): (n: number) => Uint8Array {
  const queue = [...chunks]
  return (n) => {
    const next = queue.shift()
    if (next === undefined || next.length !== n) throw new Error(`unexpected random(${n})`)
    return next
  }
}

/** A user agent's subscription keys. */
function userAgent() {
  const ecdh = createECDH('prime256v1')
  ecdh.generateKeys()
  const privateKey = new Uint8Array(32)
  const d = ecdh.getPrivateKey()
  privateKey.set(d, 32 - d.length)
  return { privateKey, publicKey: new Uint8Array(ecdh.getPublicKey()), auth: bytes(16) }
}

const rfcDecrypt = (body: Uint8Array, recordSize?: number) =>
  decryptPushMessage({
    body,
    uaPrivateKey: RFC.uaPrivate,
    uaPublicKey: RFC.uaPublic,
    auth: RFC.auth,
    recordSize,
  })

/** HKDF-Extract and one block of HKDF-Expand (RFC 5869), with HMAC, independently of the module's hkdfSync. */
function hkdfByHand(salt: Uint8Array, ikm: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const prk = createHmac('sha256', salt).update(ikm).digest()
  const t1 = createHmac('sha256', prk).update(info).update(Uint8Array.of(1)).digest()
  return new Uint8Array(t1.subarray(0, length))
}

/**
 * A second aes128gcm encoder, to make bodies encryptPushMessage never makes: `records` are the plaintext
 * records as they are sealed (data, delimiter and padding included), record i under NONCE XOR i.
 */
function handMade(opts: {
  records: Uint8Array[]
  recordSize?: number
  uaPublic?: Uint8Array
  auth?: Uint8Array
  asPrivate?: Uint8Array
  salt?: Uint8Array
}): { body: Uint8Array; ecdhSecret: Uint8Array; ikm: Uint8Array; cek: Uint8Array } {
  const uaPublic = opts.uaPublic ?? RFC.uaPublic
  const auth = opts.auth ?? RFC.auth
  const salt = opts.salt ?? RFC.salt
  const as = createECDH('prime256v1')
  as.setPrivateKey(opts.asPrivate ?? RFC.asPrivate)
  const asPublic = as.getPublicKey()
  const ecdhSecret = new Uint8Array(as.computeSecret(uaPublic))
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), uaPublic, asPublic])
  const ikm = hkdfByHand(auth, ecdhSecret, keyInfo, 32)
  const cek = hkdfByHand(salt, ikm, Buffer.from('Content-Encoding: aes128gcm\0'), 16)
  const nonce = hkdfByHand(salt, ikm, Buffer.from('Content-Encoding: nonce\0'), 12)
  const header = Buffer.alloc(21)
  Buffer.from(salt).copy(header)
  header.writeUInt32BE(opts.recordSize ?? 4096, 16)
  header[20] = 65
  const sealed = opts.records.map((record, seq) => {
    const iv = Buffer.from(nonce)
    iv.writeUInt32BE(iv.readUInt32BE(8) ^ seq, 8)
    const cipher = createCipheriv('aes-128-gcm', cek, iv)
    return Buffer.concat([cipher.update(record), cipher.final(), cipher.getAuthTag()])
  })
  return { body: new Uint8Array(Buffer.concat([header, asPublic, ...sealed])), ecdhSecret, ikm, cek }
}

describe('encryptPushMessage / decryptPushMessage', () => {
  it('reproduces the RFC 8291 Appendix A message byte for byte (random: as_private, then the salt)', () => {
    const body = encryptPushMessage(
      {
        plaintext: utf8(RFC.plaintext),
        subscription: { p256dh: RFC.uaPublic, auth: RFC.auth },
        recordSize: 4096,
      },
      { random: scripted(RFC.asPrivate, RFC.salt) },
    )
    expect(body).toBeInstanceOf(Uint8Array)
    expect(toB64(body)).toBe(RFC.message)
    expect(body.subarray(21, 86)).toEqual(RFC.asPublic)
    // The defaults are the vector's record size and no padding.
    const again = encryptPushMessage(
      { plaintext: utf8(RFC.plaintext), subscription: { p256dh: RFC.uaPublic, auth: RFC.auth } },
      { random: scripted(RFC.asPrivate, RFC.salt) },
    )
    expect(toB64(again)).toBe(RFC.message)
  })

  it('decrypts the RFC 8291 message with ua_private', () => {
    expect(new TextDecoder().decode(rfcDecrypt(b64(RFC.message)))).toBe(RFC.plaintext)
  })

  it('the independent encoder matches the RFC intermediate values and message', () => {
    const made = handMade({ records: [Uint8Array.from([...utf8(RFC.plaintext), 2])] })
    expect(made.ecdhSecret).toEqual(RFC.ecdhSecret)
    expect(made.ikm).toEqual(RFC.ikm)
    expect(made.cek).toEqual(RFC.cek)
    expect(toB64(made.body)).toBe(RFC.message)
  })

  it('draws the private key again while random gives 0 or a value not below the order', () => {
    const zero = new Uint8Array(32)
    const tooBig = new Uint8Array(32).fill(0xff)
    const body = encryptPushMessage(
      { plaintext: utf8(RFC.plaintext), subscription: { p256dh: RFC.uaPublic, auth: RFC.auth } },
      { random: scripted(zero, tooBig, RFC.asPrivate, RFC.salt) },
    )
    expect(toB64(body)).toBe(RFC.message)
  })

  it('refuses a random that returns the wrong length or type', () => {
    const subscription = { p256dh: RFC.uaPublic, auth: RFC.auth }
    expect(() =>
      encryptPushMessage({ plaintext: utf8('x'), subscription }, { random: () => bytes(31) }),
    ).toThrow(TypeError)
    const notBytes = (() => 'x'.repeat(32)) as unknown as (n: number) => Uint8Array
    expect(() => encryptPushMessage({ plaintext: utf8('x'), subscription }, { random: notBytes })).toThrow(
      TypeError,
    )
  })

  it('round trips 0, 1, 100 and the largest plaintext that fits, with fresh keys and salt each time', () => {
    const ua = userAgent()
    for (const length of [0, 1, 100, MAX_PUSH_PLAINTEXT_BYTES]) {
      const plaintext = bytes(length)
      const body = encryptPushMessage({ plaintext, subscription: { p256dh: ua.publicKey, auth: ua.auth } })
      expect(body.length).toBe(86 + length + 1 + 16)
      const opened = decryptPushMessage({
        body,
        uaPrivateKey: ua.privateKey,
        uaPublicKey: ua.publicKey,
        auth: ua.auth,
      })
      expect(opened).toEqual(plaintext)
    }
    expect(MAX_PUSH_PLAINTEXT_BYTES).toBe(3993)
    const subscription = { p256dh: ua.publicKey, auth: ua.auth }
    const one = encryptPushMessage({ plaintext: utf8('same'), subscription })
    const two = encryptPushMessage({ plaintext: utf8('same'), subscription })
    expect(one.subarray(0, 16)).not.toEqual(two.subarray(0, 16))
    expect(one.subarray(21, 86)).not.toEqual(two.subarray(21, 86))
  })

  it('pads with zeros after the delimiter, and padding counts against the limit', () => {
    const ua = userAgent()
    const subscription = { p256dh: ua.publicKey, auth: ua.auth }
    const keys = { uaPrivateKey: ua.privateKey, uaPublicKey: ua.publicKey, auth: ua.auth }
    const plaintext = bytes(10)
    const body = encryptPushMessage({ plaintext, subscription, padding: 50 })
    expect(body.length).toBe(86 + 10 + 1 + 50 + 16)
    expect(decryptPushMessage({ body, ...keys })).toEqual(plaintext)
    const full = encryptPushMessage({
      plaintext: bytes(MAX_PUSH_PLAINTEXT_BYTES - 7),
      subscription,
      padding: 7,
    })
    expect(full.length).toBe(4096)
    expect(() =>
      encryptPushMessage({ plaintext: bytes(MAX_PUSH_PLAINTEXT_BYTES - 7), subscription, padding: 8 }),
    ).toThrow(RangeError)
    for (const padding of [-1, 1.5, Number.NaN]) {
      expect(() => encryptPushMessage({ plaintext, subscription, padding })).toThrow(RangeError)
    }
  })

  it('keeps to one record of a smaller record size, and refuses a record size out of range', () => {
    const ua = userAgent()
    const subscription = { p256dh: ua.publicKey, auth: ua.auth }
    // rs must exceed plaintext + delimiter + tag (RFC 8291 §4): with rs = 100, 82 bytes fit and 83 do not.
    const plaintext = bytes(82)
    const body = encryptPushMessage({ plaintext, subscription, recordSize: 100 })
    expect(Buffer.from(body).readUInt32BE(16)).toBe(100)
    const keys = { uaPrivateKey: ua.privateKey, uaPublicKey: ua.publicKey, auth: ua.auth }
    expect(decryptPushMessage({ body, ...keys })).toEqual(plaintext)
    expect(decryptPushMessage({ body, ...keys, recordSize: 100 })).toEqual(plaintext)
    expect(() => encryptPushMessage({ plaintext: bytes(83), subscription, recordSize: 100 })).toThrow(
      RangeError,
    )
    expect(encryptPushMessage({ plaintext: new Uint8Array(0), subscription, recordSize: 18 }).length).toBe(
      86 + 17,
    )
    for (const recordSize of [17, 0, -1, 4096.5, 2 ** 32]) {
      expect(() => encryptPushMessage({ plaintext: new Uint8Array(0), subscription, recordSize })).toThrow(
        RangeError,
      )
    }
  })

  it('refuses a plaintext that does not fit one 4096-byte message with a RangeError', () => {
    const ua = userAgent()
    const subscription = { p256dh: ua.publicKey, auth: ua.auth }
    expect(() =>
      encryptPushMessage({ plaintext: bytes(MAX_PUSH_PLAINTEXT_BYTES + 1), subscription }),
    ).toThrow(/at most 3993 bytes/)
    expect(() =>
      encryptPushMessage({ plaintext: bytes(MAX_PUSH_PLAINTEXT_BYTES + 1), subscription }),
    ).toThrow(RangeError)
    // A larger record size does not lift the limit on the body.
    expect(() => encryptPushMessage({ plaintext: bytes(5000), subscription, recordSize: 10_000 })).toThrow(
      RangeError,
    )
    expect(() => encryptPushMessage({ plaintext: bytes(5000), subscription })).toThrow(RangeError)
  })

  it('refuses every single-bit change of the RFC message', () => {
    const body = b64(RFC.message)
    let acceptedWithoutRecordSize = 0
    for (let bit = 0; bit < body.length * 8; bit++) {
      const changed = body.slice()
      changed[bit >> 3]! ^= 0x80 >> (bit & 7)
      expect(() => rfcDecrypt(changed, 4096), `bit ${bit}`).toThrow(WebPushError)
      // Without an expected rs, only a change of the unauthenticated rs (bytes 16..19) can go unnoticed, and
      // then the plaintext is the same.
      let opened: Uint8Array | undefined
      try {
        opened = rfcDecrypt(changed)
      } catch (e) {
        expect(e).toBeInstanceOf(WebPushError)
      }
      if (opened !== undefined) {
        acceptedWithoutRecordSize++
        expect(bit >> 3, `bit ${bit}`).toBeGreaterThanOrEqual(16)
        expect(bit >> 3, `bit ${bit}`).toBeLessThan(20)
        expect(new TextDecoder().decode(opened)).toBe(RFC.plaintext)
      }
    }
    // rs = 0x00001000: 31 of its 32 bits raise it; clearing bit 12 makes it 0, which is refused.
    expect(acceptedWithoutRecordSize).toBe(31)
  })

  it('refuses every truncation and an appended byte', () => {
    const body = b64(RFC.message)
    for (let length = 0; length < body.length; length++) {
      expect(() => rfcDecrypt(body.subarray(0, length)), `length ${length}`).toThrow(WebPushError)
    }
    expect(() => rfcDecrypt(Uint8Array.from([...body, 0]))).toThrow(WebPushError)
  })

  it('refuses the wrong auth secret and another subscription key', () => {
    const body = b64(RFC.message)
    const wrongAuth = RFC.auth.slice()
    wrongAuth[0]! ^= 1
    const keys = { uaPrivateKey: RFC.uaPrivate, uaPublicKey: RFC.uaPublic }
    expect(() => decryptPushMessage({ body, ...keys, auth: wrongAuth })).toThrow(WebPushError)
    expect(() => decryptPushMessage({ body, ...keys, auth: bytes(16) })).toThrow(/does not authenticate/)
    const other = userAgent()
    expect(() =>
      decryptPushMessage({
        body,
        uaPrivateKey: other.privateKey,
        uaPublicKey: other.publicKey,
        auth: RFC.auth,
      }),
    ).toThrow(WebPushError)
    expect(() =>
      decryptPushMessage({ body, uaPrivateKey: other.privateKey, uaPublicKey: RFC.uaPublic, auth: RFC.auth }),
    ).toThrow(RangeError)
    expect(() => decryptPushMessage({ body, ...keys, auth: bytes(15) })).toThrow(RangeError)
    expect(() =>
      decryptPushMessage({ body, ...keys, uaPrivateKey: new Uint8Array(32), auth: RFC.auth }),
    ).toThrow(RangeError)
  })

  it('refuses a record without the 0x02 delimiter, with 0x01, or with data after the padding', () => {
    const text = utf8(RFC.plaintext)
    const cases: [string, Uint8Array, RegExp][] = [
      ['no delimiter', text, /0x02 padding delimiter/],
      ['delimiter 0x03', Uint8Array.from([...text, 3]), /0x02 padding delimiter/],
      ['only zeros', new Uint8Array(20), /0x02 padding delimiter/],
      ['a byte after the padding', Uint8Array.from([...text, 2, 0, 0, 7]), /0x02 padding delimiter/],
      ['delimiter 0x01 (not the last record)', Uint8Array.from([...text, 1, 0]), /multi-record/],
    ]
    for (const [what, record, message] of cases) {
      const { body } = handMade({ records: [record] })
      expect(() => rfcDecrypt(body), what).toThrow(message)
      expect(() => rfcDecrypt(body), what).toThrow(WebPushError)
    }
    // The same encoder's well-formed records do open, padding and all.
    const { body } = handMade({ records: [Uint8Array.from([...text, 2, 0, 0, 0])] })
    expect(new TextDecoder().decode(rfcDecrypt(body))).toBe(RFC.plaintext)
  })

  it('refuses a body of two records', () => {
    const first = Uint8Array.from([...bytes(33), 1])
    const second = Uint8Array.from([...bytes(5), 2])
    const { body } = handMade({ records: [first, second], recordSize: 50 })
    expect(() => rfcDecrypt(body)).toThrow(/more than one record/)
  })

  it('refuses a header with a bad keyid length, a keyid off the curve, or rs below 18', () => {
    const body = b64(RFC.message)
    const idlen = body.slice()
    idlen[20] = 33
    expect(() => rfcDecrypt(idlen)).toThrow(/keyid is 33 bytes/)
    const offCurve = body.slice()
    offCurve[85]! ^= 1
    expect(() => rfcDecrypt(offCurve)).toThrow(/keyid is not a point on P-256/)
    const small = body.slice()
    Buffer.from(small.buffer).writeUInt32BE(17, 16)
    expect(() => rfcDecrypt(small)).toThrow(/below 18/)
    expect(() => rfcDecrypt(body, 100)).toThrow(/record size is 4096, not 100/)
  })

  it('refuses a bad p256dh or auth with a TypeError or RangeError that names it', () => {
    const ecdh = createECDH('prime256v1')
    ecdh.generateKeys()
    const compressed = new Uint8Array(ecdh.getPublicKey(null, 'compressed'))
    const offCurve = RFC.uaPublic.slice()
    offCurve[64]! ^= 1
    const wrongPrefix = RFC.uaPublic.slice()
    wrongPrefix[0] = 0x05
    const outsideField = Uint8Array.from([4, ...new Uint8Array(64).fill(0xff)])
    const bad: [string, unknown][] = [
      ['empty', new Uint8Array(0)],
      ['64 bytes', RFC.uaPublic.subarray(1)],
      ['66 bytes', Uint8Array.from([...RFC.uaPublic, 0])],
      ['compressed', compressed],
      ['off the curve', offCurve],
      ['0x05 prefix', wrongPrefix],
      ['coordinates ≥ p', outsideField],
      ['all zeros', new Uint8Array(65)],
      ['a string', toB64(RFC.uaPublic)],
    ]
    for (const [what, p256dh] of bad) {
      let error: unknown
      try {
        encryptPushMessage({
          plaintext: utf8('x'),
          subscription: { p256dh: p256dh as Uint8Array, auth: RFC.auth },
        })
      } catch (e) {
        error = e
      }
      expect(error instanceof TypeError || error instanceof RangeError, what).toBe(true)
      expect((error as Error).message, what).toMatch(/^subscription\.p256dh /)
    }
    expect(() =>
      encryptPushMessage({ plaintext: utf8('x'), subscription: { p256dh: compressed, auth: RFC.auth } }),
    ).toThrow(/compressed/)
    for (const auth of [bytes(15), bytes(17), new Uint8Array(0)]) {
      expect(() =>
        encryptPushMessage({ plaintext: utf8('x'), subscription: { p256dh: RFC.uaPublic, auth } }),
      ).toThrow(/^subscription\.auth is \d+ bytes, not 16$/)
    }
    expect(() =>
      encryptPushMessage({
        plaintext: 'x' as unknown as Uint8Array,
        subscription: { p256dh: RFC.uaPublic, auth: RFC.auth },
      }),
    ).toThrow(TypeError)
  })

  it('judges points as OpenSSL does (the curve constants are right)', () => {
    const openSslAccepts = (point: Uint8Array) => {
      try {
        createPublicKey({
          key: { kty: 'EC', crv: 'P-256', x: toB64(point.subarray(1, 33)), y: toB64(point.subarray(33)) },
          format: 'jwk',
        })
        return true
      } catch {
        return false
      }
    }
    const accepts = (point: Uint8Array) => {
      try {
        encryptPushMessage({ plaintext: utf8('x'), subscription: { p256dh: point, auth: RFC.auth } })
        return true
      } catch (e) {
        expect(e).toBeInstanceOf(RangeError)
        return false
      }
    }
    for (let i = 0; i < 50; i++) {
      const valid = userAgent().publicKey
      expect(accepts(valid)).toBe(true)
      expect(openSslAccepts(valid)).toBe(true)
      const random = Uint8Array.from([4, ...bytes(64)])
      expect(accepts(random)).toBe(openSslAccepts(random))
    }
  })
})

describe('VAPID', () => {
  const now = 1_800_000_000
  const audience = 'https://push.example.net'
  const subject = 'mailto:ops@relay.example.org'
  const keys = generateVapidKeys()
  const header = (over: Partial<Parameters<typeof vapidHeaders>[0]> = {}) =>
    vapidHeaders({
      audience,
      subject,
      privateKey: keys.privateKey,
      expiresAtSeconds: now + 3600,
      nowSeconds: now,
      ...over,
    }).authorization
  /** The t and k of a header this module made. */
  const parts = (authorization: string) => {
    const match = /^vapid t=([^,]+), k=(.+)$/.exec(authorization)
    if (!match) throw new Error(`unexpected header ${authorization}`)
    const [h, c, s] = match[1]!.split('.') as [string, string, string]
    return { h, c, s, k: match[2]! }
  }

  it('generates a 32-byte scalar and its 65-byte uncompressed public key', () => {
    expect(keys.privateKey).toBeInstanceOf(Uint8Array)
    expect(keys.privateKey.length).toBe(32)
    expect(keys.publicKey.length).toBe(65)
    expect(keys.publicKey[0]).toBe(4)
    const ecdh = createECDH('prime256v1')
    ecdh.setPrivateKey(keys.privateKey)
    expect(new Uint8Array(ecdh.getPublicKey())).toEqual(keys.publicKey)
    expect(generateVapidKeys().privateKey).not.toEqual(keys.privateKey)
  })

  it('makes a header that verifyVapid accepts', () => {
    const verified = verifyVapid(header(), { audience, nowSeconds: now })
    expect(verified.publicKey).toEqual(keys.publicKey)
    expect(verified.subject).toBe(subject)
    expect(
      verifyVapid(header({ subject: 'https://relay.example.org/contact' }), { audience, nowSeconds: now }),
    ).toEqual({
      publicKey: keys.publicKey,
      subject: 'https://relay.example.org/contact',
    })
    // Up to the last second, and with exactly 24 hours to go.
    expect(() => verifyVapid(header(), { audience, nowSeconds: now + 3599 })).not.toThrow()
    expect(() =>
      verifyVapid(header({ expiresAtSeconds: now + 86_400 }), { audience, nowSeconds: now }),
    ).not.toThrow()
    const local = vapidHeaders({
      audience: 'http://localhost:8080',
      subject,
      privateKey: keys.privateKey,
      expiresAtSeconds: now + 60,
      nowSeconds: now,
    })
    expect(() =>
      verifyVapid(local.authorization, { audience: 'http://localhost:8080', nowSeconds: now }),
    ).not.toThrow()
  })

  it('writes the RFC 8292 JWT: ES256 header, aud/exp/sub claims, a 64-byte signature, k the public key', () => {
    const { h, c, s, k } = parts(header())
    expect(JSON.parse(Buffer.from(h, 'base64url').toString())).toEqual({ typ: 'JWT', alg: 'ES256' })
    expect(Buffer.from(c, 'base64url').toString()).toBe(
      JSON.stringify({ aud: audience, exp: now + 3600, sub: subject }),
    )
    for (const part of [h, c, s, k]) expect(part).toMatch(/^[A-Za-z0-9_-]+$/)
    expect(Buffer.from(s, 'base64url').length).toBe(64)
    expect(b64(k)).toEqual(keys.publicKey)
  })

  it("the signature verifies with node's own ES256 check and a JWK made from k", () => {
    const { h, c, s, k } = parts(header())
    const point = b64(k)
    const key = createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: toB64(point.subarray(1, 33)), y: toB64(point.subarray(33)) },
      format: 'jwk',
    })
    const signed = Buffer.from(`${h}.${c}`)
    expect(nodeVerify('sha256', signed, { key, dsaEncoding: 'ieee-p1363' }, b64(s))).toBe(true)
    expect(nodeVerify('sha256', Buffer.from(`${h}.${c}x`), { key, dsaEncoding: 'ieee-p1363' }, b64(s))).toBe(
      false,
    )
  })

  it('refuses another audience, an expired token and one more than 24 hours ahead', () => {
    const authorization = header()
    expect(() =>
      verifyVapid(authorization, { audience: 'https://push.example.com', nowSeconds: now }),
    ).toThrow(/aud is not/)
    expect(() =>
      verifyVapid(authorization, { audience: 'https://push.example.net:8443', nowSeconds: now }),
    ).toThrow(WebPushError)
    expect(() => verifyVapid(authorization, { audience, nowSeconds: now + 3600 })).toThrow(
      /not in the future/,
    )
    expect(() => verifyVapid(authorization, { audience, nowSeconds: now + 7200 })).toThrow(WebPushError)
    expect(() => verifyVapid(authorization, { audience, nowSeconds: now - 86_400 })).toThrow(/24 hours/)
    expect(() =>
      verifyVapid(authorization, { audience: 'https://push.example.net/', nowSeconds: now }),
    ).toThrow(RangeError)
  })

  it('refuses a tampered payload, a tampered or shortened signature, and a signature by another key', () => {
    const { h, c, s, k } = parts(header())
    const claims = JSON.parse(Buffer.from(c, 'base64url').toString())
    const verifyT = (t: string, key = k) =>
      verifyVapid(`vapid t=${t}, k=${key}`, { audience, nowSeconds: now })
    expect(() => verifyT(`${h}.${c}.${s}`)).not.toThrow()

    for (const change of [
      { sub: 'mailto:someone@else.example' },
      { exp: now + 7200 },
      { aud: 'https://x.example' },
    ]) {
      const tampered = toB64(utf8(JSON.stringify({ ...claims, ...change })))
      expect(() => verifyT(`${h}.${tampered}.${s}`)).toThrow(/does not verify/)
    }
    const signature = b64(s)
    for (let i = 0; i < signature.length; i++) {
      const changed = signature.slice()
      changed[i]! ^= 1
      expect(() => verifyT(`${h}.${c}.${toB64(changed)}`), `byte ${i}`).toThrow(WebPushError)
    }
    expect(() => verifyT(`${h}.${c}.${toB64(signature.subarray(0, 63))}`)).toThrow(/64 bytes/)
    // The same 64 bytes with the 4 unused bits of the last character set: not the signature that was made.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const sibling = alphabet[alphabet.indexOf(s.at(-1)!) + 1]!
    expect(Buffer.from(`${s.slice(0, -1)}${sibling}`, 'base64url')).toEqual(Buffer.from(s, 'base64url'))
    expect(() => verifyT(`${h}.${c}.${s.slice(0, -1)}${sibling}`)).toThrow(/canonical/)

    const other = generateVapidKeys()
    const byOther = parts(
      vapidHeaders({
        audience,
        subject,
        privateKey: other.privateKey,
        expiresAtSeconds: now + 3600,
        nowSeconds: now,
      }).authorization,
    )
    expect(() => verifyT(`${byOther.h}.${byOther.c}.${byOther.s}`, k)).toThrow(/does not verify with k/)
    expect(() => verifyT(`${byOther.h}.${byOther.c}.${byOther.s}`, byOther.k)).not.toThrow()
  })

  it('refuses malformed headers', () => {
    const { h, c, s, k } = parts(header())
    const none = toB64(utf8(JSON.stringify({ typ: 'JWT', alg: 'none' })))
    const offCurve = b64(k)
    offCurve[64]! ^= 1
    const malformed = [
      `Bearer ${h}.${c}.${s}`,
      `vapid t=${h}.${c}.${s}`,
      `vapid k=${k}`,
      `vapid t=${h}.${c}.${s}, t=${h}.${c}.${s}, k=${k}`,
      `vapid t=${h}.${c}, k=${k}`,
      `vapid t=${none}.${c}.${s}, k=${k}`,
      `vapid t=${h}.${c}.${s}, k=${toB64(offCurve)}`,
      `vapid t=${h}.${c}.${s}, k=${k.slice(0, -2)}`,
      `vapid t=${h}.${c}.${s}+, k=${k}`,
      `vapid t=${h}.${toB64(utf8('[1]'))}.${s}, k=${k}`,
      '',
    ]
    for (const authorization of malformed) {
      expect(() => verifyVapid(authorization, { audience, nowSeconds: now }), authorization).toThrow(
        WebPushError,
      )
    }
    // Parameters in another order, quoted, with the scheme in capitals, are the same header.
    expect(() => verifyVapid(`Vapid k="${k}", t=${h}.${c}.${s}`, { audience, nowSeconds: now })).not.toThrow()
  })

  it('refuses to make a header for a bad audience, subject, expiry or key', () => {
    for (const bad of [
      'https://push.example.net/',
      'https://push.example.net/wpush/v2/abc',
      'https://push.example.net?x=1',
      'https://push.example.net:443',
      'https://Push.Example.net',
      'http://push.example.net',
      'ftp://push.example.net',
      'push.example.net',
    ]) {
      expect(() => header({ audience: bad }), bad).toThrow(RangeError)
    }
    for (const good of [
      'https://push.example.net:8443',
      'http://localhost',
      'http://127.0.0.1:9000',
      'http://[::1]:1',
    ]) {
      expect(() => header({ audience: good }), good).not.toThrow()
    }
    for (const bad of [
      'ops@relay.example.org',
      'mailto:',
      'http://relay.example.org',
      'https:',
      'mailto:a b',
    ]) {
      expect(() => header({ subject: bad }), bad).toThrow(RangeError)
    }
    expect(() => header({ expiresAtSeconds: now })).toThrow(/not in the future/)
    expect(() => header({ expiresAtSeconds: now - 1 })).toThrow(RangeError)
    expect(() => header({ expiresAtSeconds: now + 86_401 })).toThrow(/more than 24 hours/)
    expect(() => header({ expiresAtSeconds: now + 0.5 })).toThrow(RangeError)
    expect(() => header({ privateKey: keys.privateKey.subarray(1) })).toThrow(/32/)
    expect(() => header({ privateKey: new Uint8Array(32) })).toThrow(RangeError)
    expect(() => header({ privateKey: new Uint8Array(32).fill(0xff) })).toThrow(RangeError)
    expect(() => header({ privateKey: keys.publicKey })).toThrow(RangeError)
    // Without nowSeconds, the clock decides.
    const soon = Math.floor(Date.now() / 1000) + 600
    const made = vapidHeaders({ audience, subject, privateKey: keys.privateKey, expiresAtSeconds: soon })
    expect(verifyVapid(made.authorization, { audience }).subject).toBe(subject)
  })
})
