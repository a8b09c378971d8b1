/**
 * A cheap check, before a message is stored, that an envelope is shaped like a `parley.v1.SealedEnvelope`
 * (proto/parley/v1/e2e.proto) a client could have sealed: `version` (field 1, varint) 1 or 2, `ephemeral_key` (2)
 * of 32 bytes and a non-empty `ciphertext` (4); version 1 with `encrypted_sender_key` (3) of 48 bytes, version 2
 * (one copy of a message sealed for many devices) with `wrapped_key` (5) of 32 and `auth_tag` (6) of 16 bytes;
 * each exactly once and nothing else. The relay cannot open an envelope; this only refuses bytes that no client
 * could have sealed, so a mailbox cannot be filled with arbitrary data. It walks the protobuf fields by hand into
 * one small table of lengths, copies nothing and never throws.
 * @module
 */

/** `ephemeral_key`: an X25519 public key. */
const EPHEMERAL_KEY_BYTES = 32
/** `encrypted_sender_key`: an Ed25519 identity key sealed with ChaCha20-Poly1305 (32 + 16 bytes). */
const ENCRYPTED_SENDER_KEY_BYTES = 48
/** `wrapped_key`: the message key masked for one device. */
const WRAPPED_KEY_BYTES = 32
/** `auth_tag`: what proves the sender to one device. */
const AUTH_TAG_BYTES = 16

/**
 * Why `envelope` is not a well-formed sealed envelope, or null when it is.
 * @param envelope - `SendMessage.envelope` / `UnidentifiedSend.envelope`; or a device's part of a message sealed
 *   once, with `tail` its `MultiRecipientSend.shared`: checked as the joined envelope, without joining them
 * @param tail - bytes that follow `envelope` in the envelope to check
 * @returns a short reason for the BAD_REQUEST message (no envelope bytes in it), or null
 */
export function envelopeShapeProblem(envelope: Uint8Array, tail?: Uint8Array): string | null {
  let bytes = envelope
  let end = bytes.length
  let at = 0
  /** Reads a varint of at most `maxBytes` bytes at `at`; -1 when it is truncated or longer. */
  const varint = (maxBytes: number): number => {
    let value = 0
    let scale = 1
    for (let i = 0; i < maxBytes && at < end; i++) {
      const b = bytes[at++]!
      value += (b & 0x7f) * scale
      if ((b & 0x80) === 0) return value
      scale *= 128
    }
    return -1
  }
  let version = -1
  // The length of each length-delimited field 2..6 seen, -1 while unseen.
  const lengths = [-1, -1, -1, -1, -1, -1, -1]
  for (;;) {
    if (at >= end) {
      // The joined form `envelope ‖ tail`, walked in place: a field must end where the first part does.
      if (tail === undefined || bytes === tail) break
      bytes = tail
      end = tail.length
      at = 0
      continue
    }
    // Keys of fields 1..6 fit one byte; a longer key names a field that does not belong here.
    const key = varint(1)
    if (key < 0) return 'unknown field'
    const field = key >>> 3
    const wireType = key & 7
    if (field === 1) {
      if (wireType !== 0) return 'version is not a varint'
      if (version !== -1) return 'version repeated'
      version = varint(10)
      if (version < 0) return 'truncated version'
      continue
    }
    if (field < 2 || field > 6) return 'unknown field'
    if (wireType !== 2) return 'wrong wire type'
    const length = varint(5)
    if (length < 0 || length > end - at) return 'truncated field'
    at += length
    if (lengths[field] !== -1) return `${FIELD_NAMES[field]} repeated`
    lengths[field] = length
  }
  if (version !== 1 && version !== 2) return 'version is not 1 or 2'
  if (lengths[2] !== EPHEMERAL_KEY_BYTES) return `ephemeral_key is not ${EPHEMERAL_KEY_BYTES} bytes`
  if (version === 1 && lengths[3] !== ENCRYPTED_SENDER_KEY_BYTES) {
    return `encrypted_sender_key is not ${ENCRYPTED_SENDER_KEY_BYTES} bytes`
  }
  if (version === 2 && lengths[5] !== WRAPPED_KEY_BYTES)
    return `wrapped_key is not ${WRAPPED_KEY_BYTES} bytes`
  if (version === 2 && lengths[6] !== AUTH_TAG_BYTES) return `auth_tag is not ${AUTH_TAG_BYTES} bytes`
  if ((lengths[4] ?? -1) <= 0) return 'ciphertext is empty'
  if (version === 1 && (lengths[5] !== -1 || lengths[6] !== -1))
    return 'a version-2 field in a version-1 envelope'
  if (version === 2 && lengths[3] !== -1) return 'a version-1 field in a version-2 envelope'
  return null
}

const FIELD_NAMES = [
  '',
  'version',
  'ephemeral_key',
  'encrypted_sender_key',
  'ciphertext',
  'wrapped_key',
  'auth_tag',
]
