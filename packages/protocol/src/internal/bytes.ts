// Small byte helpers shared inside @parley/protocol. Not exported from the package.

/** Ed25519 public identity key length. */
export const IDENTITY_KEY_BYTES = 32
/** Ed25519 signature length. */
export const SIGNATURE_BYTES = 64
/** Length of an OPRF-derived account address. */
export const ADDRESS_BYTES = 32

/** Asserts a Uint8Array (of an exact length when given); throws TypeError / RangeError for caller mistakes. */
export function abytes(
  value: unknown,
  length: number | undefined,
  name: string,
): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`)
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`${name} must be ${length} bytes, got ${value.length}`)
  }
}

/** Asserts an unsigned 32-bit integer. */
export function au32(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`${name} must be an unsigned 32-bit integer`)
  }
}

/** Big-endian encoding of an unsigned 32-bit integer. */
export function u32be(n: number): Uint8Array {
  au32(n, 'value')
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, n, false)
  return out
}

/** Concatenates byte arrays into a new one. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0
  for (const p of parts) length += p.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

/** Constant-time equality of two byte arrays (time depends only on the length). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!
  return diff === 0
}
