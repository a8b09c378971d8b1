/**
 * Web Push for the relay with nothing but `node:crypto`: the message encryption of RFC 8291 (the `aes128gcm`
 * content coding of RFC 8188, keyed by an ECDH between a fresh P-256 key and the subscription's `p256dh` and
 * mixed with its `auth` secret) and the VAPID identification of RFC 8292 (an ES256 JWT in the `Authorization`
 * header). Each side has its counterpart here — {@link decryptPushMessage} is what a browser does and
 * {@link verifyVapid} what a push service does — for the tests and the local push-service stand-in.
 *
 * A message is always a single record (RFC 8291 §4) and at most 4096 bytes, the most a push service has to
 * accept, which leaves {@link MAX_PUSH_PLAINTEXT_BYTES} of plaintext. Keys and messages are Uint8Array in and
 * out; base64url appears only inside the VAPID header. Inputs are checked before any key is used, so a bad key
 * is a TypeError or RangeError that says what is wrong, never an OpenSSL error; a message or header that does
 * not open or verify is a {@link WebPushError}.
 * @module
 */
import {
  createCipheriv,
  createDecipheriv,
  createECDH,
  createPrivateKey,
  createPublicKey,
  type ECDH,
  hkdfSync,
  type KeyObject,
  randomBytes,
  sign,
  verify,
} from 'node:crypto'

/** An uncompressed P-256 point: 0x04 ‖ x ‖ y. */
const POINT_BYTES = 65
/** A P-256 private key (scalar) or coordinate. */
const SCALAR_BYTES = 32
/** The subscription's `auth` secret (RFC 8291 §3.2). */
const AUTH_SECRET_BYTES = 16
/** The RFC 8188 header salt. */
const SALT_BYTES = 16
/** The AES-128-GCM tag at the end of a record. */
const TAG_BYTES = 16
/** The RFC 8188 header with a P-256 key as keyid: salt ‖ rs (uint32) ‖ idlen ‖ keyid. */
const HEADER_BYTES = SALT_BYTES + 4 + 1 + POINT_BYTES
/** The record size written when none is asked for. */
const DEFAULT_RECORD_SIZE = 4096
/** RFC 8188 §2: rs is at least 18 (a 16-byte tag and a record of at least two bytes). */
const MIN_RECORD_SIZE = 18
/** rs is a uint32. */
const MAX_RECORD_SIZE = 0xffff_ffff
/** RFC 8291 §4 (after RFC 8030 §7.2): a push service need not accept a larger body. */
const MAX_PUSH_BODY_BYTES = 4096
/** The byte after the plaintext of the last (here: only) record (RFC 8188 §2). */
const LAST_RECORD_DELIMITER = 0x02
/** The byte after the plaintext of any other record. */
const MORE_RECORDS_DELIMITER = 0x01
/** RFC 8292 §2: a VAPID token expires at most 24 hours after it is made. */
const VAPID_MAX_LIFETIME_SECONDS = 24 * 60 * 60
/** Draws of 32 random bytes that may be out of range before {@link drawScalar} gives up (each is p ≈ 2^-32). */
const MAX_SCALAR_DRAWS = 64

/**
 * The longest plaintext {@link encryptPushMessage} takes at the default record size and no padding: 4096 bytes
 * of body less the 86-byte header, the 1-byte padding delimiter and the 16-byte tag (RFC 8291 §4).
 * @example
 * if (payload.length > MAX_PUSH_PLAINTEXT_BYTES) sendWithoutPayload()
 */
export const MAX_PUSH_PLAINTEXT_BYTES = MAX_PUSH_BODY_BYTES - HEADER_BYTES - 1 - TAG_BYTES

const KEY_INFO_LABEL = new TextEncoder().encode('WebPush: info\0')
const CEK_INFO = new TextEncoder().encode('Content-Encoding: aes128gcm\0')
const NONCE_INFO = new TextEncoder().encode('Content-Encoding: nonce\0')

/** The P-256 field prime, the curve's `b` (its `a` is -3) and the group order (SEC 2 §2.4.2). */
const P256_P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn
const P256_B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n

/** Hosts a VAPID audience may name over plain http (a local push-service stand-in). */
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]'])

/**
 * A push message that does not open (wrong key or auth secret, a changed or missing byte, a malformed header,
 * more than one record) or a VAPID `Authorization` header that does not verify. The message says which.
 * @example
 * try {
 *   decryptPushMessage({ body, uaPrivateKey, uaPublicKey, auth })
 * } catch (e) {
 *   if (e instanceof WebPushError) dropMessage(e.message)
 * }
 */
export class WebPushError extends Error {
  override readonly name = 'WebPushError'
}

/** The RFC 8188 header of a push message. */
interface PushHeader {
  salt: Uint8Array
  recordSize: number
  /** The application server's ECDH public key (the header's keyid). */
  asPublic: Uint8Array
}

/**
 * Encrypts one push message for a subscription (RFC 8291 with the RFC 8188 `aes128gcm` content coding): ECDH
 * between a fresh P-256 key pair and `p256dh`, the key mixed with `auth`, a random salt, one record of plaintext
 * ‖ 0x02 ‖ `padding` zero bytes sealed with AES-128-GCM. The result is the request body, sent with
 * `Content-Encoding: aes128gcm`.
 * @param input - `plaintext`; the subscription's `p256dh` (65-byte uncompressed P-256 point) and `auth`
 *   (16 bytes); `recordSize` (the header's rs, default 4096) and `padding` (zero bytes after the delimiter,
 *   default 0)
 * @param options - `random(n)`, which must return `n` bytes (default: `crypto.randomBytes`). It is asked first
 *   for the 32-byte private key of the application server's key pair (asked again, 32 bytes at a time, while
 *   the bytes are 0 or not below the P-256 order), then for the 16-byte salt. Only tests pass it, to make the
 *   output deterministic.
 * @returns the body: salt (16) ‖ rs (uint32 big-endian) ‖ 65 ‖ the application server's public key (65) ‖ the
 *   record (plaintext + 1 + padding + 16 bytes)
 * @throws TypeError when an input is not a Uint8Array or `random` returns something else or the wrong length
 * @throws RangeError when `p256dh` is not an uncompressed point on P-256, `auth` is not 16 bytes, `recordSize`
 *   or `padding` is out of range, or the plaintext and padding do not fit one record or a 4096-byte body
 * @example
 * const body = encryptPushMessage({
 *   plaintext: new TextEncoder().encode('{"wake":true}'),
 *   subscription: { p256dh, auth },
 * })
 * await fetch(endpoint, { method: 'POST', body, headers: { 'content-encoding': 'aes128gcm', ttl: '60' } })
 */
export function encryptPushMessage(
  input: {
    plaintext: Uint8Array
    subscription: { p256dh: Uint8Array; auth: Uint8Array }
    recordSize?: number
    padding?: number
  },
  options: { random?: (n: number) => Uint8Array } = {},
): Uint8Array {
  const { plaintext, subscription } = input
  assertBytes('plaintext', plaintext)
  assertPoint('subscription.p256dh', subscription.p256dh)
  assertBytes('subscription.auth', subscription.auth, AUTH_SECRET_BYTES)
  const recordSize = input.recordSize ?? DEFAULT_RECORD_SIZE
  const padding = input.padding ?? 0
  assertFitsOneRecord(plaintext.length, padding, recordSize)

  const random = options.random ?? secureRandom
  const server = keyPair(drawScalar(random))
  const salt = draw(random, SALT_BYTES)
  const ecdhSecret = server.ecdh.computeSecret(subscription.p256dh)
  const { key, nonce } = contentKeys(
    ecdhSecret,
    subscription.auth,
    subscription.p256dh,
    server.publicKey,
    salt,
  )

  const record = new Uint8Array(plaintext.length + 1 + padding)
  record.set(plaintext)
  record[plaintext.length] = LAST_RECORD_DELIMITER
  const cipher = createCipheriv('aes-128-gcm', key, nonce)
  const sealed = concat(cipher.update(record), cipher.final(), cipher.getAuthTag())
  return concat(encodeHeader({ salt, recordSize, asPublic: server.publicKey }), sealed)
}

/**
 * Decrypts a push message as a user agent does (RFC 8291, RFC 8188 `aes128gcm`), for tests and the local
 * push-service stand-in. Only single-record messages are taken (RFC 8291 §4 lets a user agent refuse others).
 * RFC 8188 does not authenticate the header's rs: a changed rs that still covers the record decrypts to the same
 * plaintext, so pass `recordSize` to refuse any rs but the one the sender is known to use.
 * @param input - `body` (the request body); the subscription's key pair, `uaPrivateKey` (32-byte scalar) and
 *   `uaPublicKey` (65-byte uncompressed point); its `auth` secret (16 bytes); optionally the `recordSize` the
 *   header must carry
 * @returns the plaintext, without the delimiter and padding
 * @throws TypeError when an input is not a Uint8Array
 * @throws RangeError when a key or `auth` has the wrong length, `uaPrivateKey` is not a P-256 scalar,
 *   `uaPublicKey` is not on P-256 or is not the public key of `uaPrivateKey`
 * @throws WebPushError when the body is truncated or malformed, does not authenticate (wrong key or auth
 *   secret, any changed byte), has more than one record, or its record does not end in the 0x02 delimiter
 *   followed by zeros
 * @example
 * const plaintext = decryptPushMessage({ body, uaPrivateKey, uaPublicKey, auth })
 */
export function decryptPushMessage(input: {
  body: Uint8Array
  uaPrivateKey: Uint8Array
  uaPublicKey: Uint8Array
  auth: Uint8Array
  recordSize?: number
}): Uint8Array {
  const { body, uaPrivateKey, uaPublicKey, auth } = input
  assertBytes('body', body)
  assertScalar('uaPrivateKey', uaPrivateKey)
  assertPoint('uaPublicKey', uaPublicKey)
  assertBytes('auth', auth, AUTH_SECRET_BYTES)
  const ua = keyPair(uaPrivateKey)
  if (!sameBytes(ua.publicKey, uaPublicKey)) {
    throw new RangeError('uaPublicKey is not the public key of uaPrivateKey')
  }

  const header = decodeHeader(body)
  if (input.recordSize !== undefined && header.recordSize !== input.recordSize) {
    throw new WebPushError(`the record size is ${header.recordSize}, not ${input.recordSize}`)
  }
  const sealed = body.subarray(HEADER_BYTES)
  if (sealed.length > header.recordSize) {
    throw new WebPushError('the message has more than one record, which is not supported')
  }
  if (sealed.length < TAG_BYTES + 1) throw new WebPushError('the record is truncated')
  const ecdhSecret = ua.ecdh.computeSecret(header.asPublic)
  const { key, nonce } = contentKeys(ecdhSecret, auth, uaPublicKey, header.asPublic, header.salt)
  return removePadding(openRecord(key, nonce, sealed))
}

/**
 * A VAPID `Authorization` header (RFC 8292) for one push request: a JWT with the claims `aud` (the push
 * endpoint's origin), `exp` and `sub`, signed ES256 with the application server's key, and that key as `k`.
 * @param input - `audience`: the origin of the push endpoint (`https://host[:port]`, no path; `http` only for
 *   localhost); `subject`: a `mailto:` or `https:` contact for the push service's operator; `privateKey`: the
 *   32-byte P-256 scalar of {@link generateVapidKeys}; `expiresAtSeconds`: the token's `exp`, after `nowSeconds`
 *   and at most 24 hours after it; `nowSeconds`: the current time (default: the clock)
 * @returns `{ authorization: 'vapid t=<jwt>, k=<base64url public key>' }`
 * @throws TypeError when an input has the wrong type
 * @throws RangeError when the audience is not such an origin, the subject not such a URI, the expiry not in
 *   (now, now + 24 h], or the private key not 32 bytes in the range of P-256 scalars
 * @example
 * const { authorization } = vapidHeaders({
 *   audience: new URL(endpoint).origin,
 *   subject: 'mailto:ops@relay.example.org',
 *   privateKey: vapid.privateKey,
 *   expiresAtSeconds: Math.floor(Date.now() / 1000) + 12 * 3600,
 * })
 */
export function vapidHeaders(input: {
  audience: string
  subject: string
  privateKey: Uint8Array
  expiresAtSeconds: number
  nowSeconds?: number
}): { authorization: string } {
  const now = input.nowSeconds ?? currentSeconds()
  assertNow(now)
  throwIfProblem(RangeError, 'audience', audienceProblem(input.audience))
  throwIfProblem(RangeError, 'subject', subjectProblem(input.subject))
  throwIfProblem(RangeError, 'expiresAtSeconds', expiryProblem(input.expiresAtSeconds, now))
  assertScalar('privateKey', input.privateKey)

  const { publicKey } = keyPair(input.privateKey)
  const key = privateKeyObject(input.privateKey, publicKey)
  const header = base64url(jsonBytes({ typ: 'JWT', alg: 'ES256' }))
  const claims = base64url(
    jsonBytes({ aud: input.audience, exp: input.expiresAtSeconds, sub: input.subject }),
  )
  const signingInput = `${header}.${claims}`
  const signature = sign('sha256', Buffer.from(signingInput, 'ascii'), { key, dsaEncoding: 'ieee-p1363' })
  return { authorization: `vapid t=${signingInput}.${base64url(signature)}, k=${base64url(publicKey)}` }
}

/**
 * A new VAPID key pair (P-256), from the operating system's random source.
 * @returns `privateKey`, the 32-byte scalar for {@link vapidHeaders}, and `publicKey`, the 65-byte uncompressed
 *   point that browsers take as `applicationServerKey`
 * @example
 * const { privateKey, publicKey } = generateVapidKeys()
 */
export function generateVapidKeys(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const ecdh = createECDH('prime256v1')
  ecdh.generateKeys()
  return {
    privateKey: leftPad(ecdh.getPrivateKey(), SCALAR_BYTES),
    publicKey: new Uint8Array(ecdh.getPublicKey()),
  }
}

/**
 * Checks a VAPID `Authorization` header as a push service does (RFC 8292): the scheme and its `t` and `k`
 * parameters, the ES256 signature of the JWT `t` by the key `k`, its `aud`, `exp` (in the future and at most
 * 24 hours ahead) and `sub`. For tests and the local push-service stand-in.
 * @param authorization - the header's value, `vapid t=<jwt>, k=<base64url public key>`
 * @param options - `audience`: the origin of the push service's endpoint, which `aud` must equal; `nowSeconds`:
 *   the current time (default: the clock)
 * @returns the application server's public key (`k`, 65 bytes) and the token's subject
 * @throws RangeError when `audience` is not an https (or localhost http) origin or `nowSeconds` not a time
 * @throws WebPushError when anything about the header is wrong: not `vapid`, a missing or repeated parameter,
 *   bad base64url, a `k` that is not a P-256 point, a JWT that is not ES256 or whose signature does not verify
 *   with `k`, another `aud`, an `exp` past or too far ahead, or a missing or odd `sub`
 * @example
 * const { publicKey } = verifyVapid(request.headers.authorization, { audience: 'https://push.example.net' })
 */
export function verifyVapid(
  authorization: string,
  options: { audience: string; nowSeconds?: number },
): { publicKey: Uint8Array; subject: string } {
  const now = options.nowSeconds ?? currentSeconds()
  assertNow(now)
  throwIfProblem(RangeError, 'audience', audienceProblem(options.audience))
  const params = vapidParameters(authorization)
  const publicKey = fromBase64url(params.k, 'k')
  throwIfProblem(WebPushError, 'k', pointProblem(publicKey))

  const parts = params.t.split('.')
  if (parts.length !== 3) throw new WebPushError('t is not a JWT (three base64url parts)')
  const [headerPart, claimsPart, signaturePart] = parts as [string, string, string]
  const header = jsonObject(fromBase64url(headerPart, 'the JWT header'), 'the JWT header')
  if (header.alg !== 'ES256') throw new WebPushError('the JWT is not signed ES256')
  if (header.typ !== undefined && header.typ !== 'JWT') throw new WebPushError('the JWT typ is not JWT')
  const signature = fromBase64url(signaturePart, 'the JWT signature')
  if (signature.length !== 2 * SCALAR_BYTES) throw new WebPushError('the JWT signature is not 64 bytes')
  const signed = Buffer.from(`${headerPart}.${claimsPart}`, 'ascii')
  const key = publicKeyObject(publicKey)
  if (!verify('sha256', signed, { key, dsaEncoding: 'ieee-p1363' }, signature)) {
    throw new WebPushError('the JWT signature does not verify with k')
  }

  const claims = jsonObject(fromBase64url(claimsPart, 'the JWT claims'), 'the JWT claims')
  if (claims.aud !== options.audience) throw new WebPushError(`the JWT aud is not ${options.audience}`)
  throwIfProblem(WebPushError, 'the JWT exp', expiryProblem(claims.exp, now))
  throwIfProblem(WebPushError, 'the JWT sub', subjectProblem(claims.sub))
  return { publicKey, subject: claims.sub as string }
}

/** Bytes from the operating system's random source. */
function secureRandom(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n))
}

/** `n` bytes from `random`, checked. */
function draw(random: (n: number) => Uint8Array, n: number): Uint8Array {
  const bytes = random(n)
  if (!(bytes instanceof Uint8Array) || bytes.length !== n) {
    throw new TypeError(`random(${n}) must return a Uint8Array of ${n} bytes`)
  }
  return bytes
}

/** A P-256 private key from `random`: 32 bytes, drawn again while they are 0 or not below the group order. */
function drawScalar(random: (n: number) => Uint8Array): Uint8Array {
  for (let i = 0; i < MAX_SCALAR_DRAWS; i++) {
    const d = draw(random, SCALAR_BYTES)
    if (isScalar(d)) return d
  }
  throw new Error(`random gave no valid P-256 private key in ${MAX_SCALAR_DRAWS} draws`)
}

/** An ECDH object holding the private key `d` (already checked), and its uncompressed public key. */
function keyPair(d: Uint8Array): { ecdh: ECDH; publicKey: Uint8Array } {
  const ecdh = createECDH('prime256v1')
  ecdh.setPrivateKey(d)
  return { ecdh, publicKey: new Uint8Array(ecdh.getPublicKey()) }
}

/**
 * The content-encryption key and nonce of a single-record message: IKM from the ECDH secret and the auth secret
 * (RFC 8291 §3.3–3.4), then CEK and NONCE from the salt and IKM (RFC 8188 §2.2–2.3). `hkdfSync` is
 * HKDF-Extract followed by HKDF-Expand, the two steps both RFCs write out.
 */
function contentKeys(
  ecdhSecret: Uint8Array,
  auth: Uint8Array,
  uaPublic: Uint8Array,
  asPublic: Uint8Array,
  salt: Uint8Array,
): { key: Uint8Array; nonce: Uint8Array } {
  const ikm = hkdf(ecdhSecret, auth, concat(KEY_INFO_LABEL, uaPublic, asPublic), 32)
  // The nonce of record 0 is NONCE itself (RFC 8188 §2.3: NONCE XOR the sequence number).
  return { key: hkdf(ikm, salt, CEK_INFO, 16), nonce: hkdf(ikm, salt, NONCE_INFO, 12) }
}

/** HKDF-SHA-256 (RFC 5869). */
function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length))
}

/** The RFC 8188 header: salt ‖ rs ‖ idlen ‖ keyid. */
function encodeHeader(header: PushHeader): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES)
  out.set(header.salt, 0)
  new DataView(out.buffer).setUint32(SALT_BYTES, header.recordSize)
  out[SALT_BYTES + 4] = POINT_BYTES
  out.set(header.asPublic, SALT_BYTES + 5)
  return out
}

/** The header of `body`, checked: complete, a sane rs, a keyid that is a P-256 point. */
function decodeHeader(body: Uint8Array): PushHeader {
  if (body.length < SALT_BYTES + 5) throw new WebPushError('the message is truncated (no complete header)')
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const recordSize = view.getUint32(SALT_BYTES)
  if (recordSize < MIN_RECORD_SIZE) throw new WebPushError(`the record size ${recordSize} is below 18`)
  const idLength = body[SALT_BYTES + 4]!
  if (idLength !== POINT_BYTES) {
    throw new WebPushError(`the keyid is ${idLength} bytes, not a 65-byte P-256 public key`)
  }
  if (body.length < HEADER_BYTES) throw new WebPushError('the message is truncated (no complete header)')
  const asPublic = body.slice(SALT_BYTES + 5, HEADER_BYTES)
  throwIfProblem(WebPushError, 'the keyid', pointProblem(asPublic))
  return { salt: body.slice(0, SALT_BYTES), recordSize, asPublic }
}

/** The plaintext record inside `sealed` (ciphertext ‖ tag). */
function openRecord(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Uint8Array {
  const decipher = createDecipheriv('aes-128-gcm', key, nonce)
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
  try {
    return concat(decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final())
  } catch {
    throw new WebPushError('the message does not authenticate (wrong key or auth secret, or changed bytes)')
  }
}

/** The data of the last record: everything before the 0x02 delimiter that is followed only by zeros. */
function removePadding(record: Uint8Array): Uint8Array {
  let end = record.length - 1
  while (end >= 0 && record[end] === 0) end--
  if (end >= 0 && record[end] === MORE_RECORDS_DELIMITER) {
    throw new WebPushError(
      'the record is not the last one (delimiter 0x01); multi-record messages are not supported',
    )
  }
  if (end < 0 || record[end] !== LAST_RECORD_DELIMITER) {
    throw new WebPushError('the record does not end in the 0x02 padding delimiter')
  }
  return record.slice(0, end)
}

/** Refuses a plaintext and padding that do not fit one record of `recordSize` or a 4096-byte body. */
function assertFitsOneRecord(plaintextBytes: number, padding: number, recordSize: number): void {
  if (!Number.isInteger(recordSize) || recordSize < MIN_RECORD_SIZE || recordSize > MAX_RECORD_SIZE) {
    throw new RangeError(`recordSize must be an integer from ${MIN_RECORD_SIZE} to ${MAX_RECORD_SIZE}`)
  }
  if (!Number.isSafeInteger(padding) || padding < 0) {
    throw new RangeError('padding must be a non-negative integer')
  }
  const recordBytes = plaintextBytes + 1 + padding + TAG_BYTES
  // RFC 8291 §4: rs must be greater than plaintext + delimiter + padding + tag.
  if (recordBytes >= recordSize) {
    throw new RangeError(
      `a ${plaintextBytes}-byte plaintext with ${padding} bytes of padding does not fit one record of ${recordSize}`,
    )
  }
  if (HEADER_BYTES + recordBytes > MAX_PUSH_BODY_BYTES) {
    throw new RangeError(
      `a ${plaintextBytes}-byte plaintext with ${padding} bytes of padding makes a body over ${MAX_PUSH_BODY_BYTES} ` +
        `bytes, more than a push service must accept (at most ${MAX_PUSH_PLAINTEXT_BYTES} bytes of plaintext)`,
    )
  }
}

/** Throws TypeError unless `value` is a Uint8Array, RangeError unless it has `length` bytes (when given). */
function assertBytes(name: string, value: unknown, length?: number): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`)
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`${name} is ${value.length} bytes, not ${length}`)
  }
}

/** Throws unless `value` is an uncompressed point on P-256. */
function assertPoint(name: string, value: unknown): asserts value is Uint8Array {
  assertBytes(name, value)
  throwIfProblem(RangeError, name, pointProblem(value))
}

/** Throws unless `value` is a 32-byte P-256 private key (1 ≤ d < n). */
function assertScalar(name: string, value: unknown): asserts value is Uint8Array {
  assertBytes(name, value, SCALAR_BYTES)
  if (!isScalar(value)) throw new RangeError(`${name} is not a P-256 private key (0, or not below the order)`)
}

/** Throws unless `now` is a time in seconds. */
function assertNow(now: unknown): void {
  if (typeof now !== 'number' || !Number.isFinite(now))
    throw new TypeError('nowSeconds must be a finite number')
}

/** Throws `new ErrorType(name + ' ' + problem)` when there is a problem. */
function throwIfProblem(
  ErrorType: new (message: string) => Error,
  name: string,
  problem: string | null,
): void {
  if (problem !== null) throw new ErrorType(`${name} ${problem}`)
}

/** Why `point` is not an uncompressed P-256 point (0x04 ‖ x ‖ y with y² = x³ - 3x + b mod p), or null. */
function pointProblem(point: Uint8Array): string | null {
  if (point.length === SCALAR_BYTES + 1 && (point[0] === 0x02 || point[0] === 0x03)) {
    return 'is a compressed point; a 65-byte uncompressed P-256 point (0x04 ‖ x ‖ y) is needed'
  }
  if (point.length !== POINT_BYTES) return `is ${point.length} bytes, not a 65-byte uncompressed P-256 point`
  if (point[0] !== 0x04) return 'does not start with 0x04 (an uncompressed point)'
  const x = bigint(point.subarray(1, 1 + SCALAR_BYTES))
  const y = bigint(point.subarray(1 + SCALAR_BYTES))
  if (x >= P256_P || y >= P256_P) return 'has a coordinate outside the P-256 field'
  const right = (((((x * x) % P256_P) * x) % P256_P) - 3n * x + P256_B) % P256_P
  const left = (y * y) % P256_P
  if (left !== (right + P256_P) % P256_P) return 'is not a point on P-256'
  return null
}

/** Whether `d` (32 bytes) is a P-256 private key: 1 ≤ d < n. */
function isScalar(d: Uint8Array): boolean {
  const value = bigint(d)
  return value > 0n && value < P256_N
}

/** The big-endian unsigned integer `bytes` stand for. */
function bigint(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`)
}

/** Why `audience` is not the origin of a push endpoint (https, or http on a loopback host), or null. */
function audienceProblem(audience: unknown): string | null {
  if (typeof audience !== 'string') return 'is not a string'
  let url: URL
  try {
    url = new URL(audience)
  } catch {
    return 'is not a URL'
  }
  if (url.protocol === 'http:' && !LOOPBACK_HOSTS.has(url.hostname)) return 'is http but not localhost'
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'is not an https origin'
  if (url.origin !== audience) {
    return 'is not an origin: scheme://host[:port] only, lower case, no default port, path, query or trailing /'
  }
  return null
}

/** Why `subject` is not a `mailto:` or `https:` contact, or null. */
function subjectProblem(subject: unknown): string | null {
  if (typeof subject !== 'string') return 'is not a string'
  if (!/^(mailto:|https:)\S+$/.test(subject)) return 'is not a mailto: or https: URI'
  return null
}

/** Why `exp` is not a whole second after `now` and at most 24 hours after it, or null. */
function expiryProblem(exp: unknown, now: number): string | null {
  if (typeof exp !== 'number' || !Number.isSafeInteger(exp)) return 'is not a whole number of seconds'
  if (exp <= now) return 'is not in the future'
  if (exp > now + VAPID_MAX_LIFETIME_SECONDS) return 'is more than 24 hours ahead'
  return null
}

/** The `t` and `k` of a `vapid` Authorization header (RFC 8292 §3), each exactly once; other parameters ignored. */
function vapidParameters(authorization: unknown): { t: string; k: string } {
  if (typeof authorization !== 'string') throw new WebPushError('the Authorization header is not a string')
  const scheme = /^\s*vapid\s+/i.exec(authorization)
  if (!scheme) throw new WebPushError('the Authorization header is not of the vapid scheme')
  const found = new Map<string, string>()
  for (const param of authorization.slice(scheme[0].length).split(',')) {
    const match = /^\s*([A-Za-z]+)\s*=\s*(?:"([^"]*)"|([^\s",]*))\s*$/.exec(param)
    if (!match) throw new WebPushError('the vapid parameters are malformed')
    const name = match[1]!.toLowerCase()
    if (found.has(name)) throw new WebPushError(`the vapid parameter ${name} is repeated`)
    found.set(name, match[2] ?? match[3] ?? '')
  }
  const t = found.get('t')
  const k = found.get('k')
  if (t === undefined || k === undefined) throw new WebPushError('the vapid header needs both t and k')
  return { t, k }
}

/** The JSON object in `bytes` (UTF-8). */
function jsonObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch {
    throw new WebPushError(`${what} is not JSON`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new WebPushError(`${what} is not a JSON object`)
  }
  return value as Record<string, unknown>
}

/** `value` as UTF-8 JSON. */
function jsonBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value))
}

/** A signing key for the scalar `d` whose public key is `publicKey`. */
function privateKeyObject(d: Uint8Array, publicKey: Uint8Array): KeyObject {
  return createPrivateKey({ key: { ...jwkCoordinates(publicKey), d: base64url(d) }, format: 'jwk' })
}

/** A verifying key for the uncompressed point `publicKey` (already checked). */
function publicKeyObject(publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: jwkCoordinates(publicKey), format: 'jwk' })
}

/** The public part of a P-256 JWK. */
function jwkCoordinates(publicKey: Uint8Array): { kty: 'EC'; crv: 'P-256'; x: string; y: string } {
  return {
    kty: 'EC',
    crv: 'P-256',
    x: base64url(publicKey.subarray(1, 1 + SCALAR_BYTES)),
    y: base64url(publicKey.subarray(1 + SCALAR_BYTES)),
  }
}

/** base64url without padding (RFC 4648 §5). */
function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')
}

/** The bytes of unpadded, canonical base64url `text` (Buffer's decoder alone skips stray characters). */
function fromBase64url(text: string, what: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new WebPushError(`${what} is not base64url`)
  const bytes = Buffer.from(text, 'base64url')
  if (bytes.toString('base64url') !== text) throw new WebPushError(`${what} is not canonical base64url`)
  return new Uint8Array(bytes)
}

/** The current time in whole seconds. */
function currentSeconds(): number {
  return Math.floor(Date.now() / 1000)
}

/** `parts` one after another, in a new array. */
function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0))
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}

/** `bytes` with zeros in front up to `length` bytes, in a new array. */
function leftPad(bytes: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length)
  out.set(bytes, length - bytes.length)
  return out
}

/** Whether `a` and `b` hold the same bytes. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i])
}
