/**
 * Sender keys (docs/architecture.md §6.10): how a group message is encrypted once for every member device. Each
 * sending device keeps, per group, a chain of symmetric keys and an Ed25519 signing key, and hands the chain's
 * current state to each other member device inside their pairwise (PQXDH + Double Ratchet) session as a
 * `SenderKeyDistribution`. A group message is then one `SenderKeyMessage`, the same bytes for every member, which
 * each member checks against the chain's signing key and opens with the message key of its index. Version 1:
 *
 *   messageSeed_i  = HMAC-SHA-256(chainKey_i, 0x01)                                          (RFC 2104)
 *   chainKey_i+1   = HMAC-SHA-256(chainKey_i, 0x02)
 *   key_i ‖ nonce_i = HKDF-SHA-256(ikm messageSeed_i, salt empty, info "parley/v1/sender-key", 44) (RFC 5869)
 *   header         = the SenderKeyMessage's distribution_id and iteration, encoded (fields 1, 2)
 *   ciphertext     = ChaCha20-Poly1305(key_i, nonce_i, plaintext, ad header)                   (RFC 8439)
 *   signature      = Ed25519(signingSecret, "parley/v1/sender-key-message" ‖ fields 1–3 encoded)  (RFC 8032)
 *
 * The chain only moves forward, so a distribution given at iteration n opens nothing sent before it (a member
 * added later cannot read the group's past), and a sender rekeys — a fresh chain and signing key under a new
 * distribution id — when a member is removed, so the removed member's copy opens nothing sent after. A receiver
 * checks the signature before it derives anything, derives at most {@link MAX_SENDER_KEY_SKIP} message keys
 * ahead, keeps at most {@link MAX_SENDER_KEY_KEPT} keys of messages it has not seen yet (for mail that arrives out
 * of order), and uses each message key once: a replay is refused `DUPLICATE`. What sender keys do not give,
 * and the pairwise ratchet does, is post-compromise security within a chain: whoever steals a chain key reads
 * that chain until the next rekey. Every function here is pure: states are values, and each step returns a new
 * one for the caller to store.
 * @module
 */
import { ed25519 } from '@noble/curves/ed25519.js'
import type { CryptoOptions } from './cryptoProvider.js'
import { ParleyError } from './errors.js'
import { abytes, concatBytes, equalBytes, SIGNATURE_BYTES } from './internal/bytes.js'
import {
  AEAD_TAG_BYTES,
  aeadOpen,
  aeadSeal,
  defaultRandom,
  draw,
  hmac256,
  label,
  own,
  primitives,
  type RandomSource,
} from './internal/e2eCrypto.js'
import { encodeMessage } from './internal/pb.js'
import { decodeCanonical } from './internal/signedBody.js'

/** Length of a chain's distribution id. */
export const SENDER_KEY_DISTRIBUTION_ID_BYTES = 16
/** Length of a chain key. */
export const SENDER_KEY_CHAIN_KEY_BYTES = 32
/** The most message keys a receiver derives ahead of its chain for one message (a gap in the mail). */
export const MAX_SENDER_KEY_SKIP = 2000
/** The most keys of skipped messages a receiver keeps per chain; beyond it, the oldest are dropped. */
export const MAX_SENDER_KEY_KEPT = 2000
/** The highest iteration of a chain; a sender rekeys before it. */
export const MAX_SENDER_KEY_ITERATION = 0xffff_ffff

const KEY_INFO = label('parley/v1/sender-key')
const SIGNATURE_LABEL = label('parley/v1/sender-key-message')
const SEED = new Uint8Array([1])
const NEXT = new Uint8Array([2])

/** A sending device's own chain for one group: secret, stored like session state, never sent as it is. */
export interface SenderKeyState {
  /** The chain's 16-byte distribution id. */
  readonly distributionId: Uint8Array
  /** The index of the next message this device sends on the chain. */
  readonly iteration: number
  /** The chain key at `iteration`. */
  readonly chainKey: Uint8Array
  /** The chain's Ed25519 public key. */
  readonly signingKey: Uint8Array
  /** Its 32-byte Ed25519 secret key (seed). */
  readonly signingSecret: Uint8Array
}

/** A member device's copy of another device's chain: what opens that device's group messages. */
export interface SenderKeyReceiver {
  /** The chain's 16-byte distribution id. */
  readonly distributionId: Uint8Array
  /** The index of the first message not yet derived. */
  readonly iteration: number
  /** The chain key at `iteration`. */
  readonly chainKey: Uint8Array
  /** The chain's Ed25519 public key, which every message must be signed by. */
  readonly signingKey: Uint8Array
  /** Keys of messages below `iteration` not yet opened (skipped over), oldest first. */
  readonly skipped: readonly SkippedSenderKey[]
}

/** The key of one message a receiver skipped over, kept until that message arrives. */
export interface SkippedSenderKey {
  /** The message's index in the chain. */
  readonly iteration: number
  /** Its message key (the seed of its AEAD key and nonce). */
  readonly messageKey: Uint8Array
}

/** What {@link senderKeyEncrypt} returns. */
export interface SenderKeyEncrypted {
  /** The encoded `SenderKeyMessage`: the same bytes for every member device. */
  message: Uint8Array
  /** The sender's state after it, to store before the message goes out. */
  state: SenderKeyState
}

/** What {@link senderKeyDecrypt} returns. */
export interface SenderKeyOpened {
  /** The message's plaintext (the encoded content). */
  plaintext: Uint8Array
  /** The receiver's state after it, to store. */
  receiver: SenderKeyReceiver
}

/** What {@link peekSenderKeyMessage} reads of a message before any check: which chain, which index. */
export interface SenderKeyMessageHeader {
  /** The chain's 16-byte distribution id. */
  distributionId: Uint8Array
  /** The message's index in the chain. */
  iteration: number
}

/** Options of {@link createSenderKey}. */
export interface CreateSenderKeyOptions {
  /** CSPRNG returning `n` bytes (tests inject a seeded one); default `crypto.getRandomValues`. */
  random?: RandomSource
}

const malformed = (what: string, cause?: unknown) =>
  new ParleyError('BAD_REQUEST', `malformed ${what}`, cause === undefined ? {} : { cause })

/** The message key (the AEAD key ‖ nonce seed) of `chainKey`, and the chain key after it. */
function step(chainKey: Uint8Array): { messageKey: Uint8Array; next: Uint8Array } {
  return { messageKey: hmac256(chainKey, SEED), next: hmac256(chainKey, NEXT) }
}

function header(distributionId: Uint8Array, iteration: number): Uint8Array {
  return encodeMessage('SenderKeyMessage', { distributionId, iteration })
}

/**
 * Starts a new chain: a fresh distribution id, chain key and signing key, at iteration 0. Make one per group on
 * the first send, and a new one at every rekey.
 * @param options - `random`
 * @returns the sender's state
 * @example let mine = createSenderKey()
 */
export function createSenderKey(options: CreateSenderKeyOptions = {}): SenderKeyState {
  const random = options.random ?? defaultRandom
  const signingSecret = draw(random, 32)
  return {
    distributionId: draw(random, SENDER_KEY_DISTRIBUTION_ID_BYTES),
    iteration: 0,
    chainKey: draw(random, SENDER_KEY_CHAIN_KEY_BYTES),
    signingKey: ed25519.getPublicKey(signingSecret),
    signingSecret,
  }
}

/**
 * The chain as other member devices need it, from the sender's current iteration on: send it to each of them
 * inside the pairwise session (never in the clear, never through the group).
 * @param state - the sender's state
 * @returns an encoded `SenderKeyDistribution`
 * @example const distribution = senderKeyDistribution(mine) // into Content, to every other member device
 */
export function senderKeyDistribution(state: SenderKeyState): Uint8Array {
  checkState(state)
  return encodeMessage('SenderKeyDistribution', {
    distributionId: state.distributionId,
    iteration: state.iteration,
    chainKey: state.chainKey,
    signingKey: state.signingKey,
  })
}

/**
 * A receiver's copy of a chain from a `SenderKeyDistribution` (untrusted bytes: the pairwise session proved who
 * sent them, not that they are well formed).
 * @param bytes - the encoded distribution
 * @returns the receiver state, with nothing skipped
 * @throws ParleyError `BAD_REQUEST` for anything but a canonical distribution with fields of the right sizes
 * @example const theirs = openSenderKeyDistribution(content.senderKeyDistribution)
 */
export function openSenderKeyDistribution(bytes: Uint8Array): SenderKeyReceiver {
  const d = decodeOrRefuse('SenderKeyDistribution', bytes, 'sender key distribution')
  const distributionId = own(d.distributionId)
  const chainKey = own(d.chainKey)
  const signingKey = own(d.signingKey)
  if (distributionId.length !== SENDER_KEY_DISTRIBUTION_ID_BYTES)
    throw malformed('sender key distribution: id')
  if (chainKey.length !== SENDER_KEY_CHAIN_KEY_BYTES) throw malformed('sender key distribution: chain key')
  if (signingKey.length !== 32) throw malformed('sender key distribution: signing key')
  return { distributionId, iteration: d.iteration, chainKey, signingKey, skipped: [] }
}

/**
 * Encrypts one group message on the sender's chain.
 * @param state - the sender's state
 * @param plaintext - the encoded content
 * @param options - `crypto`: a faster HKDF / ChaCha20-Poly1305 / Ed25519 signing (see {@link CryptoOptions})
 * @returns the encoded `SenderKeyMessage` (the same bytes for every member device), and the state to store
 *   before the message goes out
 * @throws ParleyError `INVALID_STATE` when the chain is at its last iteration (rekey first)
 * @example const { message, state } = senderKeyEncrypt(mine, content); mine = state
 */
export function senderKeyEncrypt(
  state: SenderKeyState,
  plaintext: Uint8Array,
  options: CryptoOptions = {},
): SenderKeyEncrypted {
  checkState(state)
  abytes(plaintext, undefined, 'plaintext')
  if (state.iteration >= MAX_SENDER_KEY_ITERATION)
    throw new ParleyError('INVALID_STATE', 'the sender key chain is exhausted: start a new one')
  const c = primitives(options?.crypto)
  const { messageKey, next } = step(state.chainKey)
  const ad = header(state.distributionId, state.iteration)
  const ciphertext = withMessageKey(c, messageKey, aeadSeal, plaintext, ad)
  const unsigned = encodeMessage('SenderKeyMessage', {
    distributionId: state.distributionId,
    iteration: state.iteration,
    ciphertext,
  })
  const signature = c.ed25519Sign(state.signingSecret, concatBytes(SIGNATURE_LABEL, unsigned))
  if (!(signature instanceof Uint8Array) || signature.length !== 64) {
    throw new TypeError('crypto.ed25519Sign must return 64 bytes')
  }
  const message = encodeMessage('SenderKeyMessage', {
    distributionId: state.distributionId,
    iteration: state.iteration,
    ciphertext,
    signature,
  })
  return { message, state: { ...state, iteration: state.iteration + 1, chainKey: next } }
}

/**
 * Which chain and index a message claims, so the caller can find the receiver state for it. Nothing here is
 * checked yet: {@link senderKeyDecrypt} does that.
 * @param bytes - an encoded `SenderKeyMessage`
 * @throws ParleyError `BAD_REQUEST` for anything but a canonical message
 */
export function peekSenderKeyMessage(bytes: Uint8Array): SenderKeyMessageHeader {
  const m = decodeMessageOrRefuse(bytes)
  return { distributionId: m.distributionId, iteration: m.iteration }
}

/**
 * Checks and opens one group message of a chain.
 * @param receiver - the receiver state of the chain the message names ({@link peekSenderKeyMessage})
 * @param bytes - the encoded `SenderKeyMessage` (untrusted)
 * @param options - `crypto`: faster primitives (Ed25519 verification included)
 * @returns the plaintext and the receiver state to store (the same state is never good for the message twice)
 * @throws ParleyError `BAD_REQUEST` (malformed), `INVALID_STATE` (a message of another chain),
 *   `VERIFICATION_FAILED` (not signed by the chain's key), `DUPLICATE` (already opened, or older than the copy
 *   and not kept), `DECRYPT_FAILED` (more than {@link MAX_SENDER_KEY_SKIP} ahead, or a ciphertext that does not
 *   authenticate)
 * @example const { plaintext, receiver } = senderKeyDecrypt(theirs, bytes); theirs = receiver
 */
export function senderKeyDecrypt(
  receiver: SenderKeyReceiver,
  bytes: Uint8Array,
  options: CryptoOptions = {},
): SenderKeyOpened {
  const c = primitives(options?.crypto)
  const m = decodeMessageOrRefuse(bytes)
  if (!equalBytes(m.distributionId, receiver.distributionId))
    throw new ParleyError('INVALID_STATE', 'the message is of another sender key chain')
  const unsigned = encodeMessage('SenderKeyMessage', {
    distributionId: m.distributionId,
    iteration: m.iteration,
    ciphertext: m.ciphertext,
  })
  if (
    m.signature.length !== SIGNATURE_BYTES ||
    !c.ed25519Verify(receiver.signingKey, concatBytes(SIGNATURE_LABEL, unsigned), m.signature)
  ) {
    throw new ParleyError('VERIFICATION_FAILED', 'the group message is not signed by its sender key')
  }
  const ad = header(m.distributionId, m.iteration)
  if (m.iteration < receiver.iteration) {
    const at = receiver.skipped.findIndex((s) => s.iteration === m.iteration)
    if (at < 0) throw new ParleyError('DUPLICATE', 'this group message was opened before, or is too old')
    const plaintext = withMessageKey(c, receiver.skipped[at]!.messageKey, aeadOpen, m.ciphertext, ad)
    return {
      plaintext,
      receiver: { ...receiver, skipped: receiver.skipped.filter((_, i) => i !== at) },
    }
  }
  if (m.iteration - receiver.iteration > MAX_SENDER_KEY_SKIP)
    throw new ParleyError('DECRYPT_FAILED', 'the group message is too far ahead of its chain')
  // Derived on a copy: nothing of the receiver changes unless the message opens.
  let chainKey = receiver.chainKey
  const skipped = [...receiver.skipped]
  for (let i = receiver.iteration; i < m.iteration; i++) {
    const s = step(chainKey)
    skipped.push({ iteration: i, messageKey: s.messageKey })
    chainKey = s.next
  }
  const { messageKey, next } = step(chainKey)
  const plaintext = withMessageKey(c, messageKey, aeadOpen, m.ciphertext, ad)
  return {
    plaintext,
    receiver: {
      ...receiver,
      iteration: m.iteration + 1,
      chainKey: next,
      skipped: skipped.slice(Math.max(0, skipped.length - MAX_SENDER_KEY_KEPT)),
    },
  }
}

/** Seals (`aeadSeal`) or opens (`aeadOpen`) with the AEAD key and nonce of a message key. */
function withMessageKey(
  c: ReturnType<typeof primitives>,
  messageKey: Uint8Array,
  aead: typeof aeadSeal | typeof aeadOpen,
  data: Uint8Array,
  ad: Uint8Array,
): Uint8Array {
  const km = c.hkdf(messageKey, new Uint8Array(0), KEY_INFO, 44)
  return aead(c, km.subarray(0, 32), km.subarray(32, 44), data, ad)
}

function decodeMessageOrRefuse(bytes: Uint8Array): {
  distributionId: Uint8Array
  iteration: number
  ciphertext: Uint8Array
  signature: Uint8Array
} {
  const m = decodeOrRefuse('SenderKeyMessage', bytes, 'sender key message')
  const distributionId = own(m.distributionId)
  const ciphertext = own(m.ciphertext)
  if (distributionId.length !== SENDER_KEY_DISTRIBUTION_ID_BYTES) throw malformed('sender key message: id')
  if (ciphertext.length < AEAD_TAG_BYTES) throw malformed('sender key message: ciphertext')
  return { distributionId, iteration: m.iteration, ciphertext, signature: own(m.signature) }
}

/** The canonical decoding of untrusted bytes, or `BAD_REQUEST` naming `what`. */
function decodeOrRefuse<N extends 'SenderKeyDistribution' | 'SenderKeyMessage'>(
  type: N,
  bytes: Uint8Array,
  what: string,
): ReturnType<typeof decodeCanonical<N>> {
  abytes(bytes, undefined, 'bytes')
  try {
    return decodeCanonical(type, bytes)
  } catch (cause) {
    throw malformed(what, cause)
  }
}

function checkState(state: SenderKeyState): void {
  if (typeof state !== 'object' || state === null) throw new TypeError('state must be a sender key state')
  abytes(state.distributionId, SENDER_KEY_DISTRIBUTION_ID_BYTES, 'state.distributionId')
  abytes(state.chainKey, SENDER_KEY_CHAIN_KEY_BYTES, 'state.chainKey')
  abytes(state.signingKey, 32, 'state.signingKey')
  abytes(state.signingSecret, 32, 'state.signingSecret')
  if (!Number.isInteger(state.iteration) || state.iteration < 0 || state.iteration > MAX_SENDER_KEY_ITERATION)
    throw new RangeError('state.iteration must be an integer from 0 to 2^32 − 1')
}
