// Attachment encryption: round trips whole and streamed, the construction checked against node:crypto, and every
// kind of tampering refused before any plaintext of a chunk that does not authenticate is released.
import { createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { nodeHkdf, nodeOpen, nodeSeal } from '../test/independent.js'
import {
  type AttachmentDecryptOptions,
  attachmentCiphertextSize,
  type CryptoProvider,
  createAttachmentDecryptor,
  createAttachmentEncryptor,
  DEFAULT_ATTACHMENT_CHUNK_BYTES,
  decryptAttachment,
  encryptAttachment,
  MAX_ATTACHMENT_CHUNK_BYTES,
  MIN_ATTACHMENT_CHUNK_BYTES,
  ParleyError,
} from './index.js'

const CHUNK = DEFAULT_ATTACHMENT_CHUNK_BYTES
const TAG = 16

/** A deterministic xorshift32, so that a failing split can be replayed from its seed. */
function prng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1
  return (n) => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) % n
  }
}

/** Cuts bytes into pieces at random points: empty pieces, single bytes and long runs all occur. */
function split(bytes: Uint8Array, random: (n: number) => number): Uint8Array[] {
  const pieces: Uint8Array[] = []
  for (let at = 0; at < bytes.length; ) {
    const kind = random(4)
    const n = kind === 0 ? 0 : kind === 1 ? 1 : random(Math.min(bytes.length - at, 3 * CHUNK) + 1)
    pieces.push(bytes.subarray(at, at + n))
    at += n
  }
  pieces.push(new Uint8Array(0))
  return pieces
}

const concat = (parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest())
/** A short stand-in for bytes, to compare (toEqual walks a large Uint8Array byte by byte, slowly). */
const id = (b: Uint8Array) => `${b.length}:${createHash('sha256').update(b).digest('hex')}`

/** The error code a call throws, or 'no error'. */
function codeOf(f: () => unknown): string {
  try {
    f()
    return 'no error'
  } catch (e) {
    return e instanceof ParleyError ? e.code : String(e)
  }
}

/** Streams a blob through a decryptor; returns the plaintext pieces released and the error code, if any. */
function streamOpen(
  blob: Uint8Array,
  options: AttachmentDecryptOptions,
  pieces: Uint8Array[] = [blob],
): { released: Uint8Array[]; code: string } {
  const dec = createAttachmentDecryptor(options)
  const released: Uint8Array[] = []
  const code = codeOf(() => {
    for (const piece of pieces) released.push(...dec.push(piece))
    dec.finish()
  })
  return { released, code }
}

/** The sealed chunks of a blob, cut where the module doc says they end. */
function chunksOf(blob: Uint8Array, size: number, chunkSize: number): Uint8Array[] {
  const count = size === 0 ? 1 : Math.ceil(size / chunkSize)
  const out: Uint8Array[] = []
  for (let i = 0, at = 0; i < count; i++) {
    const n = (i < count - 1 ? chunkSize : size - (count - 1) * chunkSize) + TAG
    out.push(blob.subarray(at, at + n))
    at += n
  }
  return out
}

describe('attachment round trips', () => {
  const sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 1024 * 1024 + 7]

  it.each(sizes)('encrypts and decrypts %i bytes whole and streamed, split at random points', (size) => {
    const plaintext = new Uint8Array(randomBytes(size))
    const sealed = encryptAttachment(plaintext)
    const count = Math.max(1, Math.ceil(size / CHUNK))
    expect(sealed.size).toBe(size)
    expect(sealed.chunkSize).toBe(CHUNK)
    expect(sealed.ciphertextSize).toBe(size + TAG * count)
    expect(sealed.blob.length).toBe(sealed.ciphertextSize)
    expect(id(sealed.digest)).toBe(id(sha256(sealed.blob)))
    expect(sealed.key.length).toBe(32)
    expect(id(decryptAttachment(sealed.blob, sealed))).toBe(id(plaintext))

    for (const seed of [1, 2, 3]) {
      const random = prng(seed * 7919 + size)
      const enc = createAttachmentEncryptor({ key: sealed.key })
      const out: Uint8Array[] = []
      for (const piece of split(plaintext, random)) out.push(...enc.push(piece))
      const done = enc.finish()
      expect(done.chunks.length).toBe(1)
      out.push(...done.chunks)
      expect(out.length).toBe(count)
      // The same key gives the same blob, however the plaintext arrived.
      expect(id(concat(out))).toBe(id(sealed.blob))
      expect(id(done.digest)).toBe(id(sealed.digest))
      expect(done.size).toBe(size)
      expect(done.ciphertextSize).toBe(sealed.ciphertextSize)

      const { released, code } = streamOpen(sealed.blob, sealed, split(sealed.blob, random))
      expect(code).toBe('no error')
      expect(id(concat(released))).toBe(id(plaintext))
    }
  })

  it('round-trips any size and chunk size, pushed in any pieces (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 6000 }),
        fc.integer({ min: MIN_ATTACHMENT_CHUNK_BYTES, max: 3000 }),
        fc.array(fc.nat({ max: 7000 }), { maxLength: 8 }),
        (plaintext, chunkSize, cuts) => {
          const at = [...new Set(cuts.map((c) => c % (plaintext.length + 1)))].sort((a, b) => a - b)
          const cutAt = (b: Uint8Array, points: number[]) =>
            [0, ...points, b.length].slice(1).map((end, i, ends) => b.subarray(i ? ends[i - 1] : 0, end))
          const enc = createAttachmentEncryptor({ chunkSize })
          const out: Uint8Array[] = []
          for (const piece of cutAt(plaintext, at)) out.push(...enc.push(piece))
          const done = enc.finish()
          const blob = concat([...out, ...done.chunks])
          expect(blob.length).toBe(attachmentCiphertextSize(plaintext.length, chunkSize))
          const options = { key: done.key, digest: done.digest, size: plaintext.length, chunkSize }
          expect(id(decryptAttachment(blob, options))).toBe(id(plaintext))
          const { released, code } = streamOpen(blob, options, cutAt(blob, at))
          expect(code).toBe('no error')
          expect(id(concat(released))).toBe(id(plaintext))
        },
      ),
      { numRuns: 150 },
    )
  })

  it('encrypts and decrypts 20 MiB, streamed', { timeout: 120_000 }, () => {
    const size = 20 * 1024 * 1024
    const piece = new Uint8Array(randomBytes(1024 * 1024 + 3))
    const enc = createAttachmentEncryptor()
    const hashIn = createHash('sha256')
    const blobParts: Uint8Array[] = []
    for (let sent = 0; sent < size; ) {
      const n = Math.min(piece.length, size - sent)
      hashIn.update(piece.subarray(0, n))
      blobParts.push(...enc.push(piece.subarray(0, n)))
      sent += n
    }
    const done = enc.finish()
    blobParts.push(...done.chunks)
    expect(done.size).toBe(size)
    const dec = createAttachmentDecryptor(done)
    const hashOut = createHash('sha256')
    let received = 0
    for (const part of blobParts) {
      for (const plain of dec.push(part)) {
        hashOut.update(plain)
        received += plain.length
      }
    }
    dec.finish()
    expect(received).toBe(size)
    expect(hashOut.digest('hex')).toBe(hashIn.digest('hex'))
  })

  it('gives the same blob with node:crypto as the crypto option', () => {
    const node: CryptoProvider = {
      hkdfSha256: nodeHkdf,
      chacha20poly1305: { seal: nodeSeal, open: nodeOpen },
    }
    const plaintext = new Uint8Array(randomBytes(3 * CHUNK + 5))
    const ours = encryptAttachment(plaintext)
    const theirs = encryptAttachment(plaintext, { key: ours.key, crypto: node })
    expect(id(theirs.blob)).toBe(id(ours.blob))
    expect(id(decryptAttachment(ours.blob, { ...ours, crypto: node }))).toBe(id(plaintext))
  })
})

describe('the construction, checked with node:crypto', () => {
  it('is HKDF-SHA-256 → one chunk key, ChaCha20-Poly1305 with a big-endian counter nonce and u64be(i) ‖ final as AD', () => {
    const chunkSize = MIN_ATTACHMENT_CHUNK_BYTES
    for (const size of [0, 1, chunkSize, 3 * chunkSize + 100]) {
      const plaintext = new Uint8Array(randomBytes(size))
      const { blob, key, digest } = encryptAttachment(plaintext, { chunkSize })
      expect(id(digest)).toBe(id(sha256(blob)))
      const chunkKey = Buffer.from(hkdfSync('sha256', key, new Uint8Array(0), 'parley/v1/attachment', 32))
      const chunks = chunksOf(blob, size, chunkSize)
      expect(id(concat(chunks))).toBe(id(blob))
      const open = (sealed: Uint8Array, i: number, final: boolean) => {
        const nonce = Buffer.alloc(12)
        nonce.writeBigUInt64BE(BigInt(i), 4)
        const ad = Buffer.alloc(9)
        ad.writeBigUInt64BE(BigInt(i), 0)
        ad[8] = final ? 1 : 0
        const d = createDecipheriv('chacha20-poly1305', chunkKey, nonce, { authTagLength: 16 })
        d.setAAD(ad, { plaintextLength: sealed.length - TAG })
        d.setAuthTag(sealed.subarray(sealed.length - TAG))
        return new Uint8Array(Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG)), d.final()]))
      }
      const opened = chunks.map((sealed, i) => open(sealed, i, i === chunks.length - 1))
      expect(id(concat(opened))).toBe(id(plaintext))
      for (const [i, p] of opened.entries()) {
        expect(p.length).toBe(i < opened.length - 1 ? chunkSize : size - (opened.length - 1) * chunkSize)
      }
      // The final flag and the index are authenticated: the same chunk does not open with either changed.
      const last = chunks.length - 1
      expect(() => open(chunks[last]!, last, false)).toThrow()
      expect(() => open(chunks[last]!, last + 1, true)).toThrow()
    }
  })
})

describe('attachment tampering', () => {
  const chunkSize = MIN_ATTACHMENT_CHUNK_BYTES
  const size = 2 * chunkSize + 52
  const plaintext = new Uint8Array(randomBytes(size))
  const sealed = encryptAttachment(plaintext, { chunkSize })
  const options = { key: sealed.key, digest: sealed.digest, size, chunkSize }
  const chunks = chunksOf(sealed.blob, size, chunkSize)
  const plainChunks = [0, 1, 2].map((i) => plaintext.subarray(i * chunkSize, (i + 1) * chunkSize))

  it('refuses every single-bit flip, and releases no plaintext of the chunk it is in', () => {
    for (let bit = 0; bit < sealed.blob.length * 8; bit++) {
      const blob = sealed.blob.slice()
      blob[bit >> 3]! ^= 1 << (bit & 7)
      expect(codeOf(() => decryptAttachment(blob, options))).toBe('VERIFICATION_FAILED')
      // Even with a digest that matches the changed blob, the chunk's tag refuses it: pushed chunk by chunk,
      // only the chunks before the changed one come out, and they are the sender's.
      const hit = Math.min(Math.floor((bit >> 3) / (chunkSize + TAG)), 2)
      const { released, code } = streamOpen(
        blob,
        { ...options, digest: sha256(blob) },
        chunksOf(blob, size, chunkSize),
      )
      expect(code).toBe('VERIFICATION_FAILED')
      expect(released.map(id)).toEqual(plainChunks.slice(0, hit).map(id))
    }
  })

  it('refuses a swapped chunk pair', () => {
    const swapped = concat([chunks[1]!, chunks[0]!, chunks[2]!])
    expect(codeOf(() => decryptAttachment(swapped, options))).toBe('VERIFICATION_FAILED')
    const { released, code } = streamOpen(swapped, { ...options, digest: sha256(swapped) })
    expect(code).toBe('VERIFICATION_FAILED')
    expect(released).toEqual([])
  })

  it('refuses a blob without its last chunk, also when the size is made to match', () => {
    const dropped = concat([chunks[0]!, chunks[1]!])
    expect(codeOf(() => decryptAttachment(dropped, options))).toBe('VERIFICATION_FAILED')
    const cut = streamOpen(dropped, { ...options, digest: sha256(dropped) })
    expect(cut.code).toBe('VERIFICATION_FAILED')
    // A reader told the file ends after two chunks reads the second as final: it was not sealed so.
    const truncated = { ...options, digest: sha256(dropped), size: 2 * chunkSize }
    expect(codeOf(() => decryptAttachment(dropped, truncated))).toBe('VERIFICATION_FAILED')
    const { released, code } = streamOpen(dropped, truncated, [chunks[0]!, chunks[1]!])
    expect(code).toBe('VERIFICATION_FAILED')
    expect(released.map(id)).toEqual([id(plainChunks[0]!)])
  })

  it('refuses an appended chunk, also when the size is made to match', () => {
    const appended = concat([sealed.blob, chunks[2]!])
    expect(codeOf(() => decryptAttachment(appended, options))).toBe('VERIFICATION_FAILED')
    const past = streamOpen(appended, { ...options, digest: sha256(appended) })
    expect(past.code).toBe('VERIFICATION_FAILED')
    // A file of two full chunks, then a valid last chunk of a longer file under the same key, whose first two
    // chunks hold the same bytes: the reader, told the longer size, finds the short file's second chunk sealed
    // as final, so only the first comes out.
    const two = plaintext.slice(0, 2 * chunkSize)
    const short = encryptAttachment(two, { key: sealed.key, chunkSize })
    const long = encryptAttachment(concat([two, new Uint8Array(9)]), { key: sealed.key, chunkSize })
    const extended = concat([short.blob, chunksOf(long.blob, 2 * chunkSize + 9, chunkSize)[2]!])
    const claim = { ...options, digest: sha256(extended), size: 2 * chunkSize + 9 }
    expect(codeOf(() => decryptAttachment(extended, claim))).toBe('VERIFICATION_FAILED')
    const { released, code } = streamOpen(extended, claim, chunksOf(extended, 2 * chunkSize + 9, chunkSize))
    expect(code).toBe('VERIFICATION_FAILED')
    expect(released.map(id)).toEqual([id(plainChunks[0]!)])
    // The same chunks, in the longer file's own blob, open.
    expect(id(decryptAttachment(long.blob, long))).toBe(id(concat([two, new Uint8Array(9)])))
  })

  it('refuses a wrong digest, a wrong key and a wrong size', () => {
    const digest = sealed.digest.slice()
    digest[31]! ^= 1
    expect(codeOf(() => decryptAttachment(sealed.blob, { ...options, digest }))).toBe('VERIFICATION_FAILED')
    const streamed = streamOpen(sealed.blob, { ...options, digest })
    expect(streamed.code).toBe('VERIFICATION_FAILED')
    const key = sealed.key.slice()
    key[0]! ^= 1
    expect(codeOf(() => decryptAttachment(sealed.blob, { ...options, key }))).toBe('VERIFICATION_FAILED')
    expect(streamOpen(sealed.blob, { ...options, key }).released).toEqual([])
    for (const s of [size - 1, size + 1, 0]) {
      expect(codeOf(() => decryptAttachment(sealed.blob, { ...options, size: s }))).toBe(
        'VERIFICATION_FAILED',
      )
      expect(streamOpen(sealed.blob, { ...options, size: s }).code).toBe('VERIFICATION_FAILED')
    }
  })

  it('stays refused after a refusal, and refuses pushes after finish', () => {
    const dec = createAttachmentDecryptor(options)
    const bad = chunks[0]!.slice()
    bad[0]! ^= 1
    expect(codeOf(() => dec.push(bad))).toBe('VERIFICATION_FAILED')
    expect(codeOf(() => dec.push(chunks[1]!))).toBe('VERIFICATION_FAILED')
    expect(codeOf(() => dec.finish())).toBe('VERIFICATION_FAILED')
    const ok = createAttachmentDecryptor(options)
    ok.push(sealed.blob)
    ok.finish()
    expect(codeOf(() => ok.push(new Uint8Array(0)))).toBe('INVALID_STATE')
    const enc = createAttachmentEncryptor({ chunkSize })
    enc.finish()
    expect(codeOf(() => enc.push(new Uint8Array(1)))).toBe('INVALID_STATE')
    expect(codeOf(() => enc.finish())).toBe('INVALID_STATE')
  })
})

describe('attachment caller mistakes', () => {
  it('throws TypeError / RangeError', () => {
    const ok = encryptAttachment(new Uint8Array(10))
    expect(() => encryptAttachment('x' as never)).toThrow(TypeError)
    expect(() => encryptAttachment(new Uint8Array(1), { key: new Uint8Array(31) })).toThrow(RangeError)
    for (const chunkSize of [
      0,
      MIN_ATTACHMENT_CHUNK_BYTES - 1,
      MAX_ATTACHMENT_CHUNK_BYTES + 1,
      1.5,
      Number.NaN,
    ]) {
      expect(() => createAttachmentEncryptor({ chunkSize })).toThrow(RangeError)
      expect(() => createAttachmentDecryptor({ ...ok, chunkSize })).toThrow(RangeError)
    }
    expect(() => createAttachmentEncryptor().push([1, 2] as never)).toThrow(TypeError)
    expect(() => createAttachmentDecryptor({ ...ok, digest: new Uint8Array(31) })).toThrow(RangeError)
    expect(() => createAttachmentDecryptor({ ...ok, key: 'k' as never })).toThrow(TypeError)
    expect(() => createAttachmentDecryptor({ ...ok, size: -1 })).toThrow(RangeError)
    expect(() => createAttachmentDecryptor({ ...ok, size: 2 ** 53 })).toThrow(RangeError)
    expect(() => createAttachmentDecryptor(null as never)).toThrow(TypeError)
    expect(() => decryptAttachment('x' as never, ok)).toThrow(TypeError)
    expect(attachmentCiphertextSize(0, CHUNK)).toBe(16)
    expect(attachmentCiphertextSize(CHUNK, CHUNK)).toBe(CHUNK + 16)
    expect(attachmentCiphertextSize(CHUNK + 1, CHUNK)).toBe(CHUNK + 33)
    expect(() => attachmentCiphertextSize(2 ** 53 - 2, CHUNK)).toThrow(RangeError)
  })
})
