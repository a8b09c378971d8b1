// The signed-body envelope the account identity's statements share (DeviceList, AddressChange): an encoded body
// kept as the exact signed bytes, and an Ed25519 signature over label ‖ body. Not exported from the package.
import { ed25519 } from '@noble/curves/ed25519.js'
import { ParleyError } from '../errors.js'
import type { MessageInputs, Messages } from '../gen/types.js'
import { concatBytes, equalBytes, SIGNATURE_BYTES } from './bytes.js'
import { own, type Primitives } from './e2eCrypto.js'
import { type DecodeOptions, decodeMessage, encodeMessage } from './pb.js'

/** The messages that are `{ body, signature }` around another message. */
type Envelope = 'DeviceList' | 'AddressChange'

/**
 * Decodes `bytes` as `type` and refuses any encoding but the canonical one (what re-encoding the decoded value
 * gives): unknown fields, repeated or out-of-order fields, non-minimal varints. Throws whatever decoding throws.
 */
export function decodeCanonical<N extends keyof Messages>(
  type: N,
  bytes: Uint8Array,
  options?: DecodeOptions,
): Messages[N] {
  const value = decodeMessage(type, bytes, options)
  if (!equalBytes(encodeMessage(type, value as MessageInputs[N]), bytes)) {
    throw new Error(`not a canonical ${type}`)
  }
  return value
}

/** Encodes `body` as `bodyType`, signs `label ‖ body` with the 32-byte Ed25519 seed, and wraps both. */
export function signBody<B extends keyof MessageInputs>(
  envelope: Envelope,
  bodyType: B,
  body: MessageInputs[B],
  label: Uint8Array,
  secretKey: Uint8Array,
): Uint8Array {
  const encoded = encodeMessage(bodyType, body)
  const signature = ed25519.sign(concatBytes(label, encoded), secretKey)
  return encodeMessage(envelope, { body: encoded, signature })
}

/**
 * Checks the signature of an envelope from the network before anything in its body is read, then decodes the
 * body. Every failure (undecodable, non-canonical, bad signature) is `VERIFICATION_FAILED` with `what` in its
 * message; the decoded body is returned only when the signature verified. `publicKey` is the caller's, checked
 * by it to be 32 bytes.
 */
export function openSignedBody<B extends keyof Messages>(
  c: Primitives,
  envelope: Envelope,
  bodyType: B,
  bytes: Uint8Array,
  label: Uint8Array,
  publicKey: Uint8Array,
  what: string,
  options?: DecodeOptions,
): Messages[B] {
  const fail = (why: string, cause?: unknown): never => {
    throw new ParleyError('VERIFICATION_FAILED', `${what}: ${why}`, cause === undefined ? {} : { cause })
  }
  let body: Uint8Array
  let signature: Uint8Array
  try {
    const outer = decodeCanonical(envelope, bytes)
    body = own(outer.body)
    signature = own(outer.signature)
  } catch (cause) {
    return fail('malformed', cause)
  }
  if (
    signature.length !== SIGNATURE_BYTES ||
    !c.ed25519Verify(publicKey, concatBytes(label, body), signature)
  ) {
    fail('the signature does not verify against the account identity')
  }
  try {
    return decodeCanonical(bodyType, body, options)
  } catch (cause) {
    return fail('malformed body', cause)
  }
}
