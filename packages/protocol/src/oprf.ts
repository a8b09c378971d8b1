/**
 * RFC 9497 oblivious pseudorandom function over ristretto255-SHA512, in the verifiable (VOPRF) mode that
 * Parley's discovery uses (docs/architecture.md §4): the client blinds a number, the relay evaluates it with its secret
 * key and proves with one batched DLEQ proof that it used the key the client pinned, and the client unblinds
 * and hashes the result into a token that neither side could compute alone.
 *
 * The protocol logic (context strings, HashToScalar, DeriveKeyPair, Blind, BlindEvaluate, Finalize,
 * Evaluate, GenerateProof / VerifyProof with ComputeComposites, and (de)serialisation) is written here;
 * `@noble/curves` supplies only the group arithmetic, `hash_to_ristretto255` and `expand_message_xmd`.
 *
 * Errors: a caller mistake (wrong type, wrong length of a local value, a non-canonical local scalar)
 * throws `TypeError` / `RangeError`; malformed data that came over the network throws
 * `ParleyError('BAD_REQUEST')`; a proof that does not verify throws `ParleyError('VERIFICATION_FAILED')`.
 * No message contains an input, a scalar or an element.
 * @module
 */
import { pippenger } from '@noble/curves/abstract/curve.js'
import { expand_message_xmd } from '@noble/curves/abstract/hash-to-curve.js'
import { invertCt } from '@noble/curves/abstract/modular.js'
import { ristretto255, ristretto255_hasher } from '@noble/curves/ed25519.js'
import { bytesToNumberLE, numberToBytesLE, randomBytes } from '@noble/curves/utils.js'
import { sha512 } from '@noble/hashes/sha2.js'
import { ParleyError } from './errors.js'
import { concatBytes } from './internal/bytes.js'

/** Length of a serialised ristretto255 element (RFC 9497 §4.1: `Ne = 32`). */
export const OPRF_ELEMENT_BYTES = 32
/** Length of a serialised scalar (RFC 9497 §4.1: `Ns = 32`). */
export const OPRF_SCALAR_BYTES = 32
/** Length of a serialised DLEQ proof `c ‖ s` (RFC 9497 §2.2.1: two scalars). */
export const OPRF_PROOF_BYTES = 64
/** Length of an OPRF output (RFC 9497 §4.1: `Nh = 64`, SHA-512). */
export const OPRF_OUTPUT_BYTES = 64

/** A server key pair: `publicKey = secretKey · G` (RFC 9497 §3.2). */
export interface OprfKeyPair {
  /** The 32-byte little-endian secret scalar `skS`; never leaves the keyholder. */
  secretKey: Uint8Array
  /** The 32-byte serialised element `pkS`, published with a key id and pinned by clients. */
  publicKey: Uint8Array
}

/** The client's state after {@link oprfBlind}. */
export interface OprfBlinded {
  /** The 32-byte blind scalar; keep it locally until {@link oprfFinalize}, then discard it. */
  blind: Uint8Array
  /** The 32-byte blinded element sent to the relay. */
  blindedElement: Uint8Array
}

/** The relay's answer to a batch of blinded elements, from {@link oprfBlindEvaluate}. */
export interface OprfEvaluation {
  /** One 32-byte evaluated element per blinded element, in the same order. */
  evaluatedElements: Uint8Array[]
  /** One 64-byte DLEQ proof `c ‖ s` covering the whole batch. */
  proof: Uint8Array
}

const Point = ristretto255.Point
type Point = InstanceType<typeof Point>
const ORDER = Point.Fn.ORDER
const G = Point.BASE

/** RFC 9497 §1.2: inputs are length-prefixed with two bytes, so at most 2^16 − 1 bytes. */
const MAX_INPUT_BYTES = 0xffff
/** RFC 9497 §4.7 random number reduction: ceil((ceil(log2 L) + 128) / 8) = 48 bytes for ristretto255. */
const MIN_RANDOM_BYTES = 48
/** We draw 64 random bytes when we choose the randomness ourselves (bias < 2^-260). */
const RANDOM_BYTES = 64
const SEED_BYTES = 32

const MODE_OPRF = 0x00
const MODE_VOPRF = 0x01
const SUITE_ID = 'ristretto255-SHA512'

const encoder = new TextEncoder()
const ascii = (s: string): Uint8Array => encoder.encode(s)
const LABEL_FINALIZE = ascii('Finalize')
const LABEL_COMPOSITE = ascii('Composite')
const LABEL_CHALLENGE = ascii('Challenge')

/** Per-mode domain separation (RFC 9497 §3.1). */
interface Suite {
  readonly dstHashToGroup: Uint8Array
  readonly dstHashToScalar: Uint8Array
  readonly dstDeriveKeyPair: Uint8Array
  readonly seedDst: Uint8Array
}

function makeSuite(mode: number): Suite {
  // RFC 9497 §3.1: contextString = "OPRFV1-" ‖ I2OSP(mode, 1) ‖ "-" ‖ identifier
  const contextString = concatBytes(ascii('OPRFV1-'), Uint8Array.of(mode), ascii(`-${SUITE_ID}`))
  return {
    dstHashToGroup: concatBytes(ascii('HashToGroup-'), contextString),
    dstHashToScalar: concatBytes(ascii('HashToScalar-'), contextString),
    dstDeriveKeyPair: concatBytes(ascii('DeriveKeyPair'), contextString),
    seedDst: concatBytes(ascii('Seed-'), contextString),
  }
}

const OPRF = makeSuite(MODE_OPRF)
const VOPRF = makeSuite(MODE_VOPRF)

// ── bytes ────────────────────────────────────────────────────────────────────────────────────────────

/** RFC 9497 §1.2 I2OSP(n, 2). */
function i2osp2(n: number): Uint8Array {
  return Uint8Array.of(n >>> 8, n & 0xff)
}

/** `I2OSP(len(x), 2) ‖ x`, the length prefix used in every RFC 9497 transcript. */
function lp(x: Uint8Array): Uint8Array {
  return concatBytes(i2osp2(x.length), x)
}

function assertBytes(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`)
}

function assertArray(value: unknown, name: string): asserts value is unknown[] {
  if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of Uint8Array`)
}

function assertInput(input: unknown, name: string): asserts input is Uint8Array {
  assertBytes(input, name)
  if (input.length > MAX_INPUT_BYTES) throw new RangeError(`${name} must be at most 65535 bytes`)
}

// ── group and scalar helpers (RFC 9497 §2.1, §4.1) ───────────────────────────────────────────────────

/** RFC 9497 §4.1 HashToScalar: expand_message_xmd(SHA-512) to 64 bytes, little-endian, mod L. */
function hashToScalar(msg: Uint8Array, dst: Uint8Array): bigint {
  return bytesToNumberLE(expand_message_xmd(msg, dst, 64, sha512)) % ORDER
}

/** RFC 9497 §4.1 HashToGroup: hash_to_ristretto255 (RFC 9380 App. B) with DST "HashToGroup-" ‖ contextString. */
function hashToGroup(input: Uint8Array, suite: Suite): Point {
  const element = ristretto255_hasher.hashToCurve(input, { DST: suite.dstHashToGroup })
  // RFC 9497 §3.3.1 Blind / §3.3.2 Evaluate raise InvalidInputError on the identity. For ristretto255
  // that needs a SHA-512 preimage, so this is unreachable in practice; it is a caller-side condition.
  if (element.is0()) throw new RangeError('input hashes to the identity element')
  return element
}

/** RFC 9497 §4.1 SerializeScalar: 32 bytes, little-endian. */
function serializeScalar(s: bigint): Uint8Array {
  return numberToBytesLE(s, OPRF_SCALAR_BYTES)
}

/** DeserializeScalar for values the caller holds locally: canonical (< L) and non-zero, else RangeError. */
function localScalar(bytes: unknown, name: string): bigint {
  assertBytes(bytes, name)
  if (bytes.length !== OPRF_SCALAR_BYTES) throw new RangeError(`${name} must be ${OPRF_SCALAR_BYTES} bytes`)
  const s = bytesToNumberLE(bytes)
  if (s >= ORDER) throw new RangeError(`${name} is not a canonical scalar`)
  if (s === 0n) throw new RangeError(`${name} must not be zero`)
  return s
}

/**
 * RFC 9497 §4.1 DeserializeElement for data that came over the network: the RFC 9496 §4.3.1 decoding
 * (which rejects non-canonical and negative encodings) plus the §3.3 rule that the identity is refused.
 */
function wireElement(bytes: unknown, name: string): Point {
  assertBytes(bytes, name)
  if (bytes.length !== OPRF_ELEMENT_BYTES) {
    throw new ParleyError('BAD_REQUEST', `${name} must be ${OPRF_ELEMENT_BYTES} bytes`)
  }
  let element: Point
  try {
    element = Point.fromBytes(bytes)
  } catch (cause) {
    throw new ParleyError('BAD_REQUEST', `${name} is not a valid ristretto255 encoding`, { cause })
  }
  if (element.is0()) throw new ParleyError('BAD_REQUEST', `${name} is the identity element`)
  return element
}

/** RFC 9497 §2.1 RandomScalar via §4.7 random number reduction of `bytes` (≥ 48 uniform bytes). */
function scalarFromRandom(bytes: Uint8Array): bigint {
  const s = bytesToNumberLE(bytes) % ORDER
  if (s === 0n) throw new RangeError('randomness reduces to the zero scalar')
  return s
}

function randomScalar(): bigint {
  // A zero result has probability ~2^-252; loop rather than throw.
  for (;;) {
    const bytes = randomBytes(RANDOM_BYTES)
    const s = bytesToNumberLE(bytes) % ORDER
    bytes.fill(0)
    if (s !== 0n) return s
  }
}

/** Scalar multiplication with a public scalar that may be zero (variable time is fine: nothing is secret). */
function mulPublic(p: Point, s: bigint): Point {
  return s === 0n ? Point.ZERO : p.multiplyUnsafe(s)
}

// ── DLEQ proofs (RFC 9497 §2.2) ──────────────────────────────────────────────────────────────────────

/** Elements with their canonical encodings, so that no element is serialised twice. */
interface Elements {
  points: Point[]
  bytes: Uint8Array[]
}

/**
 * RFC 9497 §2.2.1 ComputeComposites / ComputeCompositesFast. With `k` (server side), `Z = k·M`
 * instead of a second multi-scalar multiplication over `D`; the result is the same.
 * The sums `Σ di·Ci` (and `Σ di·Di`) are computed as one multi-scalar multiplication (Pippenger), which
 * gives the same point as the RFC's loop of additions; variable time is fine, every di and Ci is public.
 * The transcripts use the elements' encodings as received: RFC 9496 decoding accepts only canonical
 * encodings, so they equal SerializeElement of the decoded points.
 */
function computeComposites(
  B: Uint8Array,
  C: Elements,
  D: Elements,
  suite: Suite,
  k?: bigint,
): { M: Point; Z: Point } {
  const seed = sha512(concatBytes(lp(B), lp(suite.seedDst)))
  const lpSeed = lp(seed)
  const d: bigint[] = new Array(C.points.length)
  for (let i = 0; i < C.points.length; i++) {
    const transcript = concatBytes(lpSeed, i2osp2(i), lp(C.bytes[i]!), lp(D.bytes[i]!), LABEL_COMPOSITE)
    d[i] = hashToScalar(transcript, suite.dstHashToScalar)
  }
  const M = msm(C.points, d)
  if (k !== undefined) return { M, Z: M.is0() ? Point.ZERO : M.multiply(k) }
  return { M, Z: msm(D.points, d) }
}

/** Σ scalars[i]·points[i] for public values (RFC 9497's composite sums). */
function msm(points: Point[], scalars: bigint[]): Point {
  return points.length === 1 ? mulPublic(points[0]!, scalars[0]!) : pippenger(Point, points, scalars)
}

/** The challenge of RFC 9497 §2.2.1 GenerateProof / §2.2.2 VerifyProof. */
function challenge(B: Uint8Array, M: Point, Z: Point, t2: Point, t3: Point, suite: Suite): bigint {
  const transcript = concatBytes(
    lp(B),
    lp(M.toBytes()),
    lp(Z.toBytes()),
    lp(t2.toBytes()),
    lp(t3.toBytes()),
    LABEL_CHALLENGE,
  )
  return hashToScalar(transcript, suite.dstHashToScalar)
}

/** RFC 9497 §2.2.1 GenerateProof(k, A = G, B = k·G, C, D) with proof randomness `r`. */
function generateProof(
  k: bigint,
  B: Uint8Array,
  C: Elements,
  D: Elements,
  r: bigint,
  suite: Suite,
): Uint8Array {
  const { M, Z } = computeComposites(B, C, D, suite, k)
  const t2 = G.multiply(r)
  const t3 = M.is0() ? Point.ZERO : M.multiply(r)
  const c = challenge(B, M, Z, t2, t3, suite)
  const s = (((r - c * k) % ORDER) + ORDER) % ORDER
  return concatBytes(serializeScalar(c), serializeScalar(s))
}

/** RFC 9497 §2.2.2 VerifyProof(A = G, B, C, D, proof). */
function verifyProof(B: Point, C: Elements, D: Elements, proof: Uint8Array, suite: Suite): boolean {
  // Deviation, stricter than the RFC's generic DeserializeScalar error: a proof that is not exactly
  // two canonical scalars is malformed network data, reported as BAD_REQUEST before any verification.
  if (proof.length !== OPRF_PROOF_BYTES) {
    throw new ParleyError('BAD_REQUEST', `proof must be ${OPRF_PROOF_BYTES} bytes`)
  }
  const c = bytesToNumberLE(proof.subarray(0, OPRF_SCALAR_BYTES))
  const s = bytesToNumberLE(proof.subarray(OPRF_SCALAR_BYTES))
  if (c >= ORDER || s >= ORDER) throw new ParleyError('BAD_REQUEST', 'proof holds a non-canonical scalar')
  const Bbytes = B.toBytes()
  const { M, Z } = computeComposites(Bbytes, C, D, suite)
  const t2 = mulPublic(G, s).add(mulPublic(B, c))
  const t3 = mulPublic(M, s).add(mulPublic(Z, c))
  return challenge(Bbytes, M, Z, t2, t3, suite) === c
}

// ── protocol steps, parameterised by mode ────────────────────────────────────────────────────────────

function keyPairFromScalar(sk: bigint): OprfKeyPair {
  return { secretKey: serializeScalar(sk), publicKey: G.multiply(sk).toBytes() }
}

/** RFC 9497 §3.2.1 DeriveKeyPair. */
function deriveKeyPair(seed: Uint8Array, info: Uint8Array, suite: Suite): OprfKeyPair {
  assertBytes(seed, 'seed')
  if (seed.length !== SEED_BYTES) throw new RangeError(`seed must be ${SEED_BYTES} bytes`)
  assertInput(info, 'info')
  const deriveInput = concatBytes(seed, lp(info))
  for (let counter = 0; counter <= 255; counter++) {
    const sk = hashToScalar(concatBytes(deriveInput, Uint8Array.of(counter)), suite.dstDeriveKeyPair)
    if (sk !== 0n) return keyPairFromScalar(sk)
  }
  // RFC 9497 §3.2.1 DeriveKeyPairError: 256 zero scalars in a row, probability ~2^-64000.
  throw new RangeError('no key pair can be derived from this seed')
}

/** RFC 9497 §3.3.1 Blind. */
function blindInput(input: Uint8Array, blind: Uint8Array | undefined, suite: Suite): OprfBlinded {
  assertInput(input, 'input')
  const r = blind === undefined ? randomScalar() : localScalar(blind, 'blind')
  const blindedElement = hashToGroup(input, suite).multiply(r)
  return { blind: serializeScalar(r), blindedElement: blindedElement.toBytes() }
}

/** RFC 9497 §3.3.1 Finalize's unblinding and output hash: Hash(lp(input) ‖ lp(N) ‖ "Finalize"). */
function finalizeOne(input: Uint8Array, blind: bigint, evaluated: Point): Uint8Array {
  // Fermat inversion with a public exponent: constant time in the (secret) blind.
  const N = evaluated.multiply(invertCt(blind, ORDER))
  return sha512(concatBytes(lp(input), lp(N.toBytes()), LABEL_FINALIZE))
}

/** RFC 9497 §3.3.1 / §3.3.2 Evaluate: Hash(lp(input) ‖ lp(skS · HashToGroup(input)) ‖ "Finalize"). */
function evaluate(secretKey: Uint8Array, input: Uint8Array, suite: Suite): Uint8Array {
  const sk = localScalar(secretKey, 'secretKey')
  assertInput(input, 'input')
  const issued = hashToGroup(input, suite).multiply(sk)
  return sha512(concatBytes(lp(input), lp(issued.toBytes()), LABEL_FINALIZE))
}

function wireElements(elements: unknown, name: string): Elements {
  assertArray(elements, name)
  return {
    points: elements.map((e, i) => wireElement(e, `${name}[${i}]`)),
    bytes: elements as Uint8Array[],
  }
}

// ── public API: VOPRF mode (0x01) ────────────────────────────────────────────────────────────────────

/**
 * Generates a random VOPRF server key pair (RFC 9497 §3.2 GenerateKeyPair).
 *
 * @param random - optional uniform randomness, at least 48 bytes, reduced mod the group order as in
 *   RFC 9497 §4.7 ("random number reduction"); omit it to use `crypto.getRandomValues`
 * @returns `{ secretKey, publicKey }`, 32 bytes each
 * @throws TypeError if `random` is not a Uint8Array; RangeError if it is shorter than 48 bytes or
 *   reduces to zero
 * @example
 * const { secretKey, publicKey } = oprfGenerateKeyPair()
 */
export function oprfGenerateKeyPair(random?: Uint8Array): OprfKeyPair {
  if (random === undefined) return keyPairFromScalar(randomScalar())
  assertBytes(random, 'random')
  if (random.length < MIN_RANDOM_BYTES)
    throw new RangeError(`random must be at least ${MIN_RANDOM_BYTES} bytes`)
  return keyPairFromScalar(scalarFromRandom(random))
}

/**
 * Derives a VOPRF server key pair deterministically from a seed (RFC 9497 §3.2.1 DeriveKeyPair, mode 0x01).
 *
 * @param seed - 32 bytes of secret, uniformly random seed
 * @param info - public key info (e.g. a key id or epoch label), at most 65535 bytes
 * @returns `{ secretKey, publicKey }`, 32 bytes each
 * @throws TypeError if an argument is not a Uint8Array; RangeError if `seed` is not 32 bytes or `info`
 *   is longer than 65535 bytes
 * @example
 * const keys = oprfDeriveKeyPair(seed, new TextEncoder().encode('parley/v1/oprf-epoch-1'))
 */
export function oprfDeriveKeyPair(seed: Uint8Array, info: Uint8Array): OprfKeyPair {
  return deriveKeyPair(seed, info, VOPRF)
}

/**
 * Client, step 1: blinds an input so the relay can evaluate it without learning it
 * (RFC 9497 §3.3.2 Blind, mode 0x01).
 *
 * @param input - the private input, at most 65535 bytes (for numbers: {@link numberToOprfInput})
 * @param blind - optional 32-byte blind scalar (canonical, non-zero); omit it for a fresh random one.
 *   Pass one only to reproduce test vectors: reusing a blind links requests.
 * @returns `{ blind, blindedElement }`; send only `blindedElement`
 * @throws TypeError if an argument is not a Uint8Array; RangeError if `input` is too long or `blind` is
 *   not a canonical non-zero scalar
 * @example
 * const { blind, blindedElement } = oprfBlind(numberToOprfInput('+14155550100'))
 */
export function oprfBlind(input: Uint8Array, blind?: Uint8Array): OprfBlinded {
  return blindInput(input, blind, VOPRF)
}

/**
 * Relay, step 2: evaluates a batch of blinded elements with the secret key and proves, with one DLEQ proof
 * for the whole batch, that it used the key behind `publicKey`
 * (RFC 9497 §3.3.2 BlindEvaluate, with the batched proof of §2.2.1 GenerateProof / ComputeCompositesFast).
 *
 * @param secretKey - the 32-byte secret scalar
 * @param publicKey - the matching 32-byte public key (checked against `secretKey`)
 * @param blindedElements - the client's blinded elements (network data), at least one
 * @param proofRandom - optional 32-byte proof scalar `r` (canonical, non-zero), only to reproduce test
 *   vectors; omitted, a fresh random one is used. Reusing `r` with different inputs reveals `secretKey`.
 * @returns `{ evaluatedElements, proof }`, the elements in input order, the proof 64 bytes `c ‖ s`
 * @throws ParleyError `BAD_REQUEST` if the batch is empty or a blinded element is malformed, not a
 *   canonical encoding, or the identity; TypeError / RangeError for a wrong-type or invalid key,
 *   a public key that does not match the secret key, or an invalid `proofRandom`
 * @example
 * const { evaluatedElements, proof } = oprfBlindEvaluate(keys.secretKey, keys.publicKey, request.blinded)
 */
export function oprfBlindEvaluate(
  secretKey: Uint8Array,
  publicKey: Uint8Array,
  blindedElements: Uint8Array[],
  proofRandom?: Uint8Array,
): OprfEvaluation {
  const sk = localScalar(secretKey, 'secretKey')
  assertBytes(publicKey, 'publicKey')
  const pk = G.multiply(sk)
  // Not in the RFC: a public key that is not skS·G would yield proofs every client refuses, so we catch
  // the configuration mistake here instead of in the field.
  if (publicKey.length !== OPRF_ELEMENT_BYTES || !equalBytes(pk.toBytes(), publicKey)) {
    throw new RangeError('publicKey does not match secretKey')
  }
  const C = wireElements(blindedElements, 'blindedElements')
  if (C.points.length === 0) throw new ParleyError('BAD_REQUEST', 'blindedElements is empty')
  const r = proofRandom === undefined ? randomScalar() : localScalar(proofRandom, 'proofRandom')
  // Constant-time multiplications: the scalar is the secret key.
  const points = C.points.map((c) => c.multiply(sk))
  const D: Elements = { points, bytes: points.map((d) => d.toBytes()) }
  const proof = generateProof(sk, publicKey, C, D, r, VOPRF)
  return { evaluatedElements: D.bytes, proof }
}

/**
 * Client, step 3: verifies the relay's batch proof against the pinned public key, then unblinds each
 * evaluated element and hashes it into the OPRF output (RFC 9497 §3.3.2 Finalize, §2.2.2 VerifyProof).
 * Nothing is returned unless the proof verifies.
 *
 * @param inputs - the private inputs, in request order
 * @param blinds - the blinds from {@link oprfBlind}, same order
 * @param evaluatedElements - the relay's evaluated elements (network data), same order
 * @param blindedElements - the blinded elements that were sent, same order
 * @param proof - the relay's 64-byte batch proof (network data)
 * @param publicKey - the relay's pinned 32-byte OPRF public key
 * @returns one 64-byte output per input, in order
 * @throws ParleyError `VERIFICATION_FAILED` if the proof does not verify (forged, tampered, or made with
 *   another key); ParleyError `BAD_REQUEST` if an element, the public key or the proof is malformed
 *   (wrong length, non-canonical, identity); RangeError if the arrays are empty or of different lengths,
 *   an input is longer than 65535 bytes, or a blind is invalid; TypeError for wrong argument types
 * @example
 * const [token] = oprfFinalize([input], [blind], res.evaluated, [blindedElement], res.proof, pinnedKey)
 */
export function oprfFinalize(
  inputs: Uint8Array[],
  blinds: Uint8Array[],
  evaluatedElements: Uint8Array[],
  blindedElements: Uint8Array[],
  proof: Uint8Array,
  publicKey: Uint8Array,
): Uint8Array[] {
  assertArray(inputs, 'inputs')
  assertArray(blinds, 'blinds')
  assertArray(evaluatedElements, 'evaluatedElements')
  assertArray(blindedElements, 'blindedElements')
  const n = inputs.length
  if (blinds.length !== n || evaluatedElements.length !== n || blindedElements.length !== n) {
    throw new RangeError('inputs, blinds, evaluatedElements and blindedElements must have the same length')
  }
  if (n === 0) throw new RangeError('nothing to finalize')
  for (const [i, input] of inputs.entries()) assertInput(input, `inputs[${i}]`)
  const r = blinds.map((b, i) => localScalar(b, `blinds[${i}]`))
  assertBytes(proof, 'proof')
  const pk = wireElement(publicKey, 'publicKey')
  const C = wireElements(blindedElements, 'blindedElements')
  const D = wireElements(evaluatedElements, 'evaluatedElements')
  if (!verifyProof(pk, C, D, proof, VOPRF)) {
    throw new ParleyError('VERIFICATION_FAILED', 'the OPRF proof does not verify against the pinned key')
  }
  return inputs.map((input, i) => finalizeOne(input, r[i]!, D.points[i]!))
}

/**
 * Relay: computes the OPRF output for an input directly with the secret key, no client round trip
 * (RFC 9497 §3.3.2 Evaluate, mode 0x01). Equals what {@link oprfFinalize} yields for the same input.
 *
 * @param secretKey - the 32-byte secret scalar
 * @param input - the input, at most 65535 bytes
 * @returns the 64-byte output
 * @throws TypeError if an argument is not a Uint8Array; RangeError for an invalid key or a too-long input
 * @example
 * const address = addressFromToken(oprfEvaluate(keys.secretKey, numberToOprfInput(e164)))
 */
export function oprfEvaluate(secretKey: Uint8Array, input: Uint8Array): Uint8Array {
  return evaluate(secretKey, input, VOPRF)
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!
  return diff === 0
}

/**
 * RFC 9497 base OPRF mode (0x00), through the same code paths as the VOPRF API above.
 * Parley does not use this mode; it exists so the Appendix A.1.1 vectors can be checked.
 * Not re-exported from `index.ts`, so it is not part of the package's API.
 * @internal
 */
export const _oprfBaseModeForTests = Object.freeze({
  deriveKeyPair: (seed: Uint8Array, info: Uint8Array): OprfKeyPair => deriveKeyPair(seed, info, OPRF),
  blind: (input: Uint8Array, blind?: Uint8Array): OprfBlinded => blindInput(input, blind, OPRF),
  /** RFC 9497 §3.3.1 BlindEvaluate: `skS · blindedElement`, no proof. */
  blindEvaluate: (secretKey: Uint8Array, blindedElement: Uint8Array): Uint8Array =>
    wireElement(blindedElement, 'blindedElement').multiply(localScalar(secretKey, 'secretKey')).toBytes(),
  /** RFC 9497 §3.3.1 Finalize. */
  finalize: (input: Uint8Array, blind: Uint8Array, evaluatedElement: Uint8Array): Uint8Array => {
    assertInput(input, 'input')
    return finalizeOne(input, localScalar(blind, 'blind'), wireElement(evaluatedElement, 'evaluatedElement'))
  },
  evaluate: (secretKey: Uint8Array, input: Uint8Array): Uint8Array => evaluate(secretKey, input, OPRF),
})
