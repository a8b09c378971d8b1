// The Double Ratchet (Signal, "The Double Ratchet Algorithm", revision 4, §3) with the §5.2 recommended
// KDFs, and ChaCha20-Poly1305 as the AEAD (§5.2 allows "an AEAD encryption scheme" in place of CBC+HMAC).
// Not exported from the package; Session.ts wraps it.
//
// Decryption is transactional: everything is computed on locals and committed only after the AEAD tag
// verified, so a forged, tampered or replayed message leaves the state exactly as it was.
import { ParleyError } from '../errors.js'
import { equalBytes } from './bytes.js'
import {
  aeadOpen,
  aeadSeal,
  dh,
  hkdf256,
  hmac256,
  label,
  type Primitives,
  type RandomSource,
  X25519_BYTES,
  x25519KeyPair,
} from './e2eCrypto.js'

/** libsignal's limits: skipped keys kept per chain, and how far ahead one message may jump. */
export const MAX_SKIPPED_PER_CHAIN = 2000
export const MAX_FORWARD_JUMP = 25_000
/** Receiving chains remembered (libsignal's MAX_RECEIVER_CHAINS), so replays of old chains read as duplicates. */
export const MAX_CHAINS = 5

const ROOT_INFO = label('Parley_Ratchet_Root')
const MESSAGE_KEYS_INFO = label('Parley_Ratchet_MessageKeys')
const ZERO_SALT = new Uint8Array(32)
const CK_MESSAGE = Uint8Array.of(0x01)
const CK_NEXT = Uint8Array.of(0x02)

export interface SkippedChain {
  /** The peer's ratchet public key of this receiving chain. */
  ratchetKey: Uint8Array
  /** counter → message key, ascending by counter (insertion order). */
  keys: Map<number, Uint8Array>
}

export interface RatchetState {
  rootKey: Uint8Array
  sendSecret: Uint8Array
  sendPublic: Uint8Array
  recvKey: Uint8Array | undefined
  sendChain: Uint8Array | undefined
  recvChain: Uint8Array | undefined
  ns: number
  nr: number
  pn: number
  /** Receiving chains, oldest first; the last one is the current chain (recvKey) once there is one. */
  chains: SkippedChain[]
}

export interface Header {
  ratchetKey: Uint8Array
  counter: number
  previousCounter: number
}

/** §5.2 KDF_RK: HKDF-SHA-256 with the root key as salt → (new root key, chain key). */
export function kdfRk(c: Primitives, rootKey: Uint8Array, dhOut: Uint8Array): [Uint8Array, Uint8Array] {
  const out = hkdf256(c, dhOut, rootKey, ROOT_INFO, 64)
  return [out.slice(0, 32), out.slice(32)]
}

/** §5.2 KDF_CK: HMAC-SHA-256(ck, 0x02) is the next chain key, HMAC-SHA-256(ck, 0x01) the message key. */
export function kdfCk(chainKey: Uint8Array): [Uint8Array, Uint8Array] {
  return [hmac256(chainKey, CK_NEXT), hmac256(chainKey, CK_MESSAGE)]
}

/**
 * §5.2 ENCRYPT's key schedule adapted to an AEAD: HKDF(mk, salt 0^32) → 32-byte key ‖ 12-byte nonce.
 * A deterministic nonce is safe because every message key is used exactly once.
 */
export function messageKeys(c: Primitives, mk: Uint8Array): { key: Uint8Array; nonce: Uint8Array } {
  const out = hkdf256(c, mk, ZERO_SALT, MESSAGE_KEYS_INFO, 44)
  return { key: out.subarray(0, 32), nonce: out.subarray(32) }
}

/** §3.4 CONCAT(AD, header): a fixed 40-byte header encoding, independent of the protobuf on the wire. */
export function headerAd(ad: Uint8Array, h: Header): Uint8Array {
  const out = new Uint8Array(ad.length + 40)
  out.set(ad)
  out.set(h.ratchetKey, ad.length)
  const view = new DataView(out.buffer)
  view.setUint32(ad.length + 32, h.counter, false)
  view.setUint32(ad.length + 36, h.previousCounter, false)
  return out
}

/** §3.3 RatchetInitAlice: the responder's signed prekey is its first ratchet key. */
export function initAlice(
  c: Primitives,
  sharedKey: Uint8Array,
  bobRatchetKey: Uint8Array,
  random: RandomSource,
): RatchetState {
  const { secretKey, publicKey } = x25519KeyPair(c, random)
  const [rootKey, sendChain] = kdfRk(c, sharedKey, dh(c, secretKey, bobRatchetKey))
  return {
    rootKey,
    sendSecret: secretKey,
    sendPublic: publicKey,
    // §3.3 sets DHr = SPK_B, but with no receiving chain it is never used: Bob's first reply carries a new key.
    recvKey: undefined,
    sendChain,
    recvChain: undefined,
    ns: 0,
    nr: 0,
    pn: 0,
    chains: [],
  }
}

/** §3.3 RatchetInitBob. */
export function initBob(
  sharedKey: Uint8Array,
  signedPrekey: { secretKey: Uint8Array; publicKey: Uint8Array },
): RatchetState {
  return {
    rootKey: sharedKey.slice(),
    sendSecret: signedPrekey.secretKey,
    sendPublic: signedPrekey.publicKey,
    recvKey: undefined,
    sendChain: undefined,
    recvChain: undefined,
    ns: 0,
    nr: 0,
    pn: 0,
    chains: [],
  }
}

/** §3.4 RatchetEncrypt. Mutates `s`. */
export function ratchetEncrypt(
  c: Primitives,
  s: RatchetState,
  plaintext: Uint8Array,
  ad: Uint8Array,
): { header: Header; ciphertext: Uint8Array } {
  if (!s.sendChain) throw new ParleyError('INVALID_STATE', 'the session cannot send before it has received')
  if (s.ns >= 0xffffffff) throw new ParleyError('INVALID_STATE', 'sending chain exhausted')
  const [next, mk] = kdfCk(s.sendChain)
  const header: Header = { ratchetKey: s.sendPublic, counter: s.ns, previousCounter: s.pn }
  const { key, nonce } = messageKeys(c, mk)
  const ciphertext = aeadSeal(c, key, nonce, plaintext, headerAd(ad, header))
  s.sendChain = next
  s.ns += 1
  return { header, ciphertext }
}

function openWith(
  c: Primitives,
  mk: Uint8Array,
  ciphertext: Uint8Array,
  ad: Uint8Array,
  h: Header,
): Uint8Array {
  const { key, nonce } = messageKeys(c, mk)
  return aeadOpen(c, key, nonce, ciphertext, headerAd(ad, h))
}

/** §3.5 SkipMessageKeys on locals: returns the advanced chain key and the keys skipped on the way. */
function skip(chain: Uint8Array, from: number, until: number, out: [number, Uint8Array][]): Uint8Array {
  if (until - from > MAX_FORWARD_JUMP) {
    throw new ParleyError('DECRYPT_FAILED', `message is more than ${MAX_FORWARD_JUMP} messages ahead`)
  }
  let ck = chain
  for (let n = from; n < until; n++) {
    const [next, mk] = kdfCk(ck)
    // Only the newest MAX_SKIPPED_PER_CHAIN keys survive the commit; do not hold on to the rest.
    if (until - n <= MAX_SKIPPED_PER_CHAIN) out.push([n, mk])
    ck = next
  }
  return ck
}

function addKeys(chain: SkippedChain, keys: [number, Uint8Array][]): void {
  for (const [n, mk] of keys) chain.keys.set(n, mk)
  const excess = chain.keys.size - MAX_SKIPPED_PER_CHAIN
  if (excess > 0) {
    let i = 0
    for (const n of chain.keys.keys()) {
      if (i++ >= excess) break
      chain.keys.delete(n)
    }
  }
}

/**
 * §3.5 RatchetDecrypt, transactional. Mutates `s` only when the message authenticates.
 * @throws ParleyError DUPLICATE for a message already received (or whose key was dropped),
 *   DECRYPT_FAILED for anything that does not authenticate or jumps too far
 */
export function ratchetDecrypt(
  c: Primitives,
  s: RatchetState,
  h: Header,
  ciphertext: Uint8Array,
  ad: Uint8Array,
  random: RandomSource,
): Uint8Array {
  if (h.ratchetKey.length !== X25519_BYTES)
    throw new ParleyError('BAD_REQUEST', 'ratchet key must be 32 bytes')
  const isCurrent =
    s.recvKey !== undefined && s.recvChain !== undefined && equalBytes(h.ratchetKey, s.recvKey)
  const known = isCurrent
    ? s.chains[s.chains.length - 1]
    : s.chains.find((c) => equalBytes(c.ratchetKey, h.ratchetKey))
  if (known) {
    const mk = known.keys.get(h.counter)
    if (mk) {
      const plaintext = openWith(c, mk, ciphertext, ad, h)
      known.keys.delete(h.counter)
      return plaintext
    }
    if (!isCurrent || h.counter < s.nr) {
      throw new ParleyError('DUPLICATE', 'message was already received (or is too old to decrypt)')
    }
  }

  let { rootKey, sendSecret, sendPublic, sendChain, recvChain, ns, nr, pn } = s
  const oldChainKeys: [number, Uint8Array][] = []
  const newChainKeys: [number, Uint8Array][] = []
  if (!isCurrent) {
    // §3.5 DHRatchet, after skipping what is left of the current receiving chain.
    if (recvChain) {
      if (h.previousCounter < nr) throw new ParleyError('DECRYPT_FAILED', 'previous counter went backwards')
      skip(recvChain, nr, h.previousCounter, oldChainKeys)
    }
    pn = ns
    ns = 0
    nr = 0
    let chainKey: Uint8Array
    ;[rootKey, chainKey] = kdfRk(c, rootKey, dh(c, sendSecret, h.ratchetKey))
    recvChain = chainKey
    const next = x25519KeyPair(c, random)
    sendSecret = next.secretKey
    sendPublic = next.publicKey
    ;[rootKey, chainKey] = kdfRk(c, rootKey, dh(c, sendSecret, h.ratchetKey))
    sendChain = chainKey
  }
  recvChain = skip(recvChain!, nr, h.counter, newChainKeys)
  const [nextChain, mk] = kdfCk(recvChain)
  const plaintext = openWith(c, mk, ciphertext, ad, h)

  // Commit.
  if (!isCurrent) {
    const current = s.chains[s.chains.length - 1]
    if (current && s.recvKey) addKeys(current, oldChainKeys)
    s.chains.push({ ratchetKey: h.ratchetKey.slice(), keys: new Map() })
    while (s.chains.length > MAX_CHAINS) s.chains.shift()
    s.recvKey = h.ratchetKey.slice()
  }
  addKeys(s.chains[s.chains.length - 1]!, newChainKeys)
  Object.assign(s, { rootKey, sendSecret, sendPublic, sendChain, ns, pn })
  s.recvChain = nextChain
  s.nr = h.counter + 1
  return plaintext
}

/** Deep copy, so that a Session can hand out an independent clone. */
export function cloneState(s: RatchetState): RatchetState {
  return {
    ...s,
    chains: s.chains.map((c) => ({ ratchetKey: c.ratchetKey, keys: new Map(c.keys) })),
  }
}
