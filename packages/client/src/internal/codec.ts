// JSON records with Uint8Array fields, as bytes for the Store. Not exported from the package.

const enc = new TextEncoder()
const dec = new TextDecoder()
const BYTES_TAG = '$b64'

function toBase64(bytes: Uint8Array): string {
  let s = ''
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(s)
}

function fromBase64(b64: string): Uint8Array {
  const s = atob(b64)
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}

/** Encodes a JSON-like value whose leaves may be Uint8Arrays. */
export function encodeRecord(value: unknown): Uint8Array {
  return enc.encode(
    JSON.stringify(value, (_k, v) => (v instanceof Uint8Array ? { [BYTES_TAG]: toBase64(v) } : v)),
  )
}

/** Decodes what {@link encodeRecord} wrote. */
export function decodeRecord<T>(bytes: Uint8Array): T {
  return JSON.parse(dec.decode(bytes), (_k, v) =>
    v !== null && typeof v === 'object' && typeof v[BYTES_TAG] === 'string' && Object.keys(v).length === 1
      ? fromBase64(v[BYTES_TAG])
      : v,
  ) as T
}

/** Lower-case hex of bytes (for store keys). */
export function toHex(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += b.toString(16).padStart(2, '0')
  return s
}

/** Bytes of a lower-case hex string. */
export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1)
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return out
}

/** A fixed-width decimal key part so that lexicographic order is numeric order. */
export function pad(n: number): string {
  return n.toString().padStart(16, '0')
}
