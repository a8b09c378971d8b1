/**
 * A cheap check, before a message is stored, that an envelope is shaped like a version-1 `parley.v1.SealedEnvelope`
 * (proto/parley/v1/e2e.proto): `version` (field 1, varint) = 1, `ephemeral_key` (2) of 32 bytes,
 * `encrypted_sender_key` (3) of 48 bytes and a non-empty `ciphertext` (4), each exactly once and nothing else.
 * The relay cannot open an envelope; this only refuses bytes that no client could have sealed, so a mailbox
 * cannot be filled with arbitrary data. It walks the protobuf fields by hand, allocates nothing and never throws.
 * @module
 */

/** `ephemeral_key`: an X25519 public key. */
const EPHEMERAL_KEY_BYTES = 32
/** `encrypted_sender_key`: an Ed25519 identity key sealed with ChaCha20-Poly1305 (32 + 16 bytes). */
const ENCRYPTED_SENDER_KEY_BYTES = 48

/**
 * Why `envelope` is not a well-formed version-1 sealed envelope, or null when it is.
 * @param envelope - `SendMessage.envelope` / `UnidentifiedSend.envelope`
 * @returns a short reason for the BAD_REQUEST message (no envelope bytes in it), or null
 */
export function envelopeShapeProblem(envelope: Uint8Array): string | null {
  const end = envelope.length
  let at = 0
  /** Reads a varint of at most `maxBytes` bytes at `at`; -1 when it is truncated or longer. */
  const varint = (maxBytes: number): number => {
    let value = 0
    let scale = 1
    for (let i = 0; i < maxBytes && at < end; i++) {
      const b = envelope[at++]!
      value += (b & 0x7f) * scale
      if ((b & 0x80) === 0) return value
      scale *= 128
    }
    return -1
  }
  let version = -1
  let ephemeral = -1
  let senderKey = -1
  let ciphertext = -1
  while (at < end) {
    // Keys of fields 1..4 fit one byte; a longer key names a field that does not belong here.
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
    if (field < 2 || field > 4) return 'unknown field'
    if (wireType !== 2) return 'wrong wire type'
    const length = varint(5)
    if (length < 0 || length > end - at) return 'truncated field'
    at += length
    if (field === 2) {
      if (ephemeral !== -1) return 'ephemeral_key repeated'
      ephemeral = length
    } else if (field === 3) {
      if (senderKey !== -1) return 'encrypted_sender_key repeated'
      senderKey = length
    } else {
      if (ciphertext !== -1) return 'ciphertext repeated'
      ciphertext = length
    }
  }
  if (version !== 1) return 'version is not 1'
  if (ephemeral !== EPHEMERAL_KEY_BYTES) return `ephemeral_key is not ${EPHEMERAL_KEY_BYTES} bytes`
  if (senderKey !== ENCRYPTED_SENDER_KEY_BYTES) {
    return `encrypted_sender_key is not ${ENCRYPTED_SENDER_KEY_BYTES} bytes`
  }
  if (ciphertext <= 0) return 'ciphertext is empty'
  return null
}
