// Codecs for the end-to-end messages of proto/parley/v1/e2e.proto, with the checks every receiver needs.
// Decoders accept only canonical encodings: they re-encode what they decoded and refuse anything that differs
// or carries unknown fields, so no byte of a message can change without being refused.
import { ParleyError } from '../errors.js'
import type * as wire from '../gen/types.js'
import { KEM_CIPHERTEXT_BYTES } from '../prekeys.js'
import { equalBytes, IDENTITY_KEY_BYTES } from './bytes.js'
import { AEAD_TAG_BYTES, own, X25519_BYTES } from './e2eCrypto.js'
import { decodeMessage, encodeMessage } from './pb.js'
import type { Header } from './ratchet.js'

export interface DecodedRatchetMessage {
  header: Header
  ciphertext: Uint8Array
}

export interface DecodedPrekeyMessage {
  identityKey: Uint8Array
  baseKey: Uint8Array
  signedPrekeyId: number
  oneTimePrekeyId: number | undefined
  kemPrekeyId: number
  kemCiphertext: Uint8Array
  message: DecodedRatchetMessage
}

const malformed = (what: string, cause?: unknown) =>
  new ParleyError('BAD_REQUEST', `malformed ${what}`, cause === undefined ? {} : { cause })

function ratchetProps(m: DecodedRatchetMessage): wire.RatchetMessageInput {
  return {
    ratchetKey: m.header.ratchetKey,
    counter: m.header.counter,
    previousCounter: m.header.previousCounter,
    ciphertext: m.ciphertext,
  }
}

export function encodeRatchetMessage(m: DecodedRatchetMessage): Uint8Array {
  return encodeMessage('RatchetMessage', ratchetProps(m))
}

export function encodePrekeyMessage(m: DecodedPrekeyMessage): Uint8Array {
  const props: wire.PrekeyMessageInput = {
    identityKey: m.identityKey,
    baseKey: m.baseKey,
    signedPrekeyId: m.signedPrekeyId,
    kemPrekeyId: m.kemPrekeyId,
    kemCiphertext: m.kemCiphertext,
    message: ratchetProps(m.message),
  }
  if (m.oneTimePrekeyId !== undefined) props.oneTimePrekeyId = m.oneTimePrekeyId
  return encodeMessage('PrekeyMessage', props)
}

// Unknown fields need no check here: decodeMessage drops them, so the canonical re-encoding differs.
function fromRatchetObject(r: wire.RatchetMessage | undefined): DecodedRatchetMessage {
  if (!r) throw malformed('ratchet message')
  const ratchetKey = own(r.ratchetKey)
  const ciphertext = own(r.ciphertext)
  if (ratchetKey.length !== X25519_BYTES) throw malformed('ratchet message: ratchet key')
  if (ciphertext.length < AEAD_TAG_BYTES) throw malformed('ratchet message: ciphertext')
  return {
    header: { ratchetKey, counter: r.counter, previousCounter: r.previousCounter },
    ciphertext,
  }
}

function decodeCanonical<T>(
  bytes: Uint8Array,
  what: string,
  decode: (b: Uint8Array) => T,
  encode: (v: T) => Uint8Array,
): T {
  let value: T
  try {
    value = decode(bytes)
  } catch (cause) {
    throw malformed(what, cause)
  }
  if (!equalBytes(encode(value), bytes)) throw malformed(`${what}: not canonically encoded`)
  return value
}

export function decodeRatchetMessage(bytes: Uint8Array): DecodedRatchetMessage {
  return decodeCanonical(
    bytes,
    'ratchet message',
    (b) => fromRatchetObject(decodeMessage('RatchetMessage', b)),
    encodeRatchetMessage,
  )
}

export function decodePrekeyMessage(bytes: Uint8Array): DecodedPrekeyMessage {
  return decodeCanonical(
    bytes,
    'prekey message',
    (b) => {
      const p = decodeMessage('PrekeyMessage', b)
      const identityKey = own(p.identityKey)
      const baseKey = own(p.baseKey)
      const kemCiphertext = own(p.kemCiphertext)
      if (identityKey.length !== IDENTITY_KEY_BYTES) throw malformed('prekey message: identity key')
      if (baseKey.length !== X25519_BYTES) throw malformed('prekey message: base key')
      if (kemCiphertext.length !== KEM_CIPHERTEXT_BYTES) {
        throw malformed(`prekey message: KEM ciphertext must be ${KEM_CIPHERTEXT_BYTES} bytes`)
      }
      return {
        identityKey,
        baseKey,
        signedPrekeyId: p.signedPrekeyId,
        oneTimePrekeyId: p.oneTimePrekeyId,
        kemPrekeyId: p.kemPrekeyId,
        kemCiphertext,
        message: fromRatchetObject(p.message),
      }
    },
    encodePrekeyMessage,
  )
}
