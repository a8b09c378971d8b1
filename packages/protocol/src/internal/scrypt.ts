import { ParleyError } from '../errors.js'

// scrypt (RFC 7914) with p = 1, for the registration lock's PIN stretching. PBKDF2-HMAC-SHA256 comes from
// WebCrypto (browsers and Node ≥ 20 have it); only ROMix and its Salsa20/8 core are here, which keeps the
// browser bundle small. Checked against RFC 7914's vectors and node:crypto's scrypt in registrationLock.test.ts.

/** PBKDF2-HMAC-SHA256 with one iteration, `bytes` long (all scrypt needs of it). */
async function pbkdf2(password: Uint8Array, salt: Uint8Array, bytes: number): Promise<Uint8Array> {
  const subtle = globalThis.crypto?.subtle
  if (!subtle) {
    throw new ParleyError(
      'UNSUPPORTED',
      'WebCrypto (crypto.subtle) is not available: browsers offer it only to pages served over https or localhost',
    )
  }
  const key = await subtle.importKey('raw', password as BufferSource, 'PBKDF2', false, ['deriveBits'])
  const bits = await subtle.deriveBits(
    { name: 'PBKDF2', hash: 'SHA-256', salt: salt as BufferSource, iterations: 1 },
    key,
    bytes * 8,
  )
  return new Uint8Array(bits)
}

const rotl = (a: number, b: number) => (a << b) | (a >>> (32 - b))

/** Salsa20/8 core (RFC 7914 §3) of the 16 words at `x[xi…]`, written to `out[oi…]`, in place allowed. */
function salsa8(x: Uint32Array, xi: number, out: Uint32Array, oi: number): void {
  let x0 = x[xi]!,
    x1 = x[xi + 1]!,
    x2 = x[xi + 2]!,
    x3 = x[xi + 3]!
  let x4 = x[xi + 4]!,
    x5 = x[xi + 5]!,
    x6 = x[xi + 6]!,
    x7 = x[xi + 7]!
  let x8 = x[xi + 8]!,
    x9 = x[xi + 9]!,
    x10 = x[xi + 10]!,
    x11 = x[xi + 11]!
  let x12 = x[xi + 12]!,
    x13 = x[xi + 13]!,
    x14 = x[xi + 14]!,
    x15 = x[xi + 15]!
  for (let i = 0; i < 8; i += 2) {
    x4 ^= rotl(x0 + x12, 7)
    x8 ^= rotl(x4 + x0, 9)
    x12 ^= rotl(x8 + x4, 13)
    x0 ^= rotl(x12 + x8, 18)
    x9 ^= rotl(x5 + x1, 7)
    x13 ^= rotl(x9 + x5, 9)
    x1 ^= rotl(x13 + x9, 13)
    x5 ^= rotl(x1 + x13, 18)
    x14 ^= rotl(x10 + x6, 7)
    x2 ^= rotl(x14 + x10, 9)
    x6 ^= rotl(x2 + x14, 13)
    x10 ^= rotl(x6 + x2, 18)
    x3 ^= rotl(x15 + x11, 7)
    x7 ^= rotl(x3 + x15, 9)
    x11 ^= rotl(x7 + x3, 13)
    x15 ^= rotl(x11 + x7, 18)
    x1 ^= rotl(x0 + x3, 7)
    x2 ^= rotl(x1 + x0, 9)
    x3 ^= rotl(x2 + x1, 13)
    x0 ^= rotl(x3 + x2, 18)
    x6 ^= rotl(x5 + x4, 7)
    x7 ^= rotl(x6 + x5, 9)
    x4 ^= rotl(x7 + x6, 13)
    x5 ^= rotl(x4 + x7, 18)
    x11 ^= rotl(x10 + x9, 7)
    x8 ^= rotl(x11 + x10, 9)
    x9 ^= rotl(x8 + x11, 13)
    x10 ^= rotl(x9 + x8, 18)
    x12 ^= rotl(x15 + x14, 7)
    x13 ^= rotl(x12 + x15, 9)
    x14 ^= rotl(x13 + x12, 13)
    x15 ^= rotl(x14 + x13, 18)
  }
  const r = [x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15]
  for (let i = 0; i < 16; i++) out[oi + i] = (r[i]! + x[xi + i]!) | 0
}

/**
 * scryptBlockMix (RFC 7914 §4) of the 2r 16-word blocks in `b`, into `out`; `t` is a 16-word scratch block.
 */
function blockMix(b: Uint32Array, out: Uint32Array, t: Uint32Array, r: number): void {
  t.set(b.subarray((2 * r - 1) * 16, 2 * r * 16))
  for (let i = 0; i < 2 * r; i++) {
    for (let k = 0; k < 16; k++) t[k] = t[k]! ^ b[i * 16 + k]!
    salsa8(t, 0, t, 0)
    // Even blocks go to the first half of the output, odd ones to the second.
    out.set(t, ((i & 1) * r + (i >> 1)) * 16)
  }
}

/** Test hook: the Salsa20/8 core of 64 bytes (little-endian words), for RFC 7914 §8's vector. */
export function salsa20_8(input: Uint8Array): Uint8Array {
  const w = new Uint32Array(16)
  const dv = new DataView(input.buffer, input.byteOffset, 64)
  for (let i = 0; i < 16; i++) w[i] = dv.getUint32(i * 4, true)
  salsa8(w, 0, w, 0)
  const out = new Uint8Array(64)
  const ov = new DataView(out.buffer)
  for (let i = 0; i < 16; i++) ov.setUint32(i * 4, w[i]!, true)
  return out
}

/**
 * scrypt(password, salt, N, r, p = 1, dkLen) (RFC 7914 §6). Takes 128·r·N bytes of memory; yields to the event
 * loop every few thousand steps so a page stays responsive.
 */
export async function scrypt(
  password: Uint8Array,
  salt: Uint8Array,
  N: number,
  r: number,
  dkLen: number,
): Promise<Uint8Array> {
  if (!Number.isInteger(Math.log2(N)) || N < 2 || !Number.isInteger(r) || r < 1) {
    throw new RangeError('scrypt needs N a power of two above 1 and r a positive integer')
  }
  const words = 32 * r
  const b = await pbkdf2(password, salt, 128 * r)
  const dv = new DataView(b.buffer, b.byteOffset, b.length)
  let x = new Uint32Array(words)
  for (let i = 0; i < words; i++) x[i] = dv.getUint32(i * 4, true)
  let y = new Uint32Array(words)
  const t = new Uint32Array(16)
  const v = new Uint32Array(N * words)
  const pause = () => new Promise((resolve) => setTimeout(resolve, 0))
  for (let i = 0; i < N; i++) {
    v.set(x, i * words)
    blockMix(x, y, t, r)
    ;[x, y] = [y, x]
    if ((i & 4095) === 4095) await pause()
  }
  for (let i = 0; i < N; i++) {
    const j = x[(2 * r - 1) * 16]! & (N - 1)
    for (let k = 0; k < words; k++) x[k] = x[k]! ^ v[j * words + k]!
    blockMix(x, y, t, r)
    ;[x, y] = [y, x]
    if ((i & 4095) === 4095) await pause()
  }
  for (let i = 0; i < words; i++) dv.setUint32(i * 4, x[i]!, true)
  v.fill(0)
  const dk = await pbkdf2(password, b, dkLen)
  b.fill(0)
  return dk
}
