// Leak scanners for the privacy tests (docs/architecture.md §1 P3, P4, P8): find phone numbers in any of the encodings a
// careless or malicious implementation might use, and arbitrary byte strings (addresses, keys, codes, texts),
// in frames, database files and logs. Tested on planted values in scan.test.ts, so an audit built on them can fail.

/** Encodings a number is searched in. */
export type NumberEncoding =
  | 'ascii'
  | 'utf16le'
  | 'utf16be'
  | 'bcd'
  | 'bcd-swapped'
  | 'int-be'
  | 'int-le'
  | 'varint'

/** A place where (part of) a watched number was found. */
export interface NumberHit {
  /** The watched number (E.164) the digits belong to. */
  number: string
  encoding: NumberEncoding
  /** Byte offset in the scanned buffer (for BCD, of the byte holding the run's first nibble). */
  offset: number
  /** The digits found (for integer encodings, the whole national or international number). */
  digits: string
  /** Caller's label for the scanned buffer (file name, frame index, …). */
  source: string
  /**
   * How unlikely a chance match is, in bits: 8 per matched digit in text, 4 per digit in BCD (a 7-digit BCD run
   * is only 28 bits, so megabytes of random key material hold some by chance), 8 per byte of an integer.
   */
  bits: number
}

/** A byte string to look for, with a label to report. */
export interface Needle {
  label: string
  bytes: Uint8Array
}

/** A place where a {@link Needle} was found. */
export interface NeedleHit {
  label: string
  offset: number
  source: string
}

const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1')
const u32 = (b: Uint8Array, i: number): number =>
  ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0

/**
 * Many byte needles (each at least 4 bytes) searched in one pass: a map from each needle's first four bytes
 * to the needles that start with them, so a scan costs one lookup per byte however many needles there are.
 */
export class NeedleSet {
  readonly #byHead = new Map<number, Needle[]>()
  size = 0

  constructor(needles: Iterable<Needle> = []) {
    for (const n of needles) this.add(n)
  }

  add(needle: Needle): void {
    if (needle.bytes.length < 4) throw new RangeError(`needle "${needle.label}" is shorter than 4 bytes`)
    const head = u32(needle.bytes, 0)
    const list = this.#byHead.get(head) ?? []
    list.push(needle)
    this.#byHead.set(head, list)
    this.size++
  }

  /** Every occurrence of every needle in `data`. */
  scan(data: Uint8Array, source = ''): (NeedleHit & { length: number })[] {
    const hits: (NeedleHit & { length: number })[] = []
    for (let i = 0; i + 4 <= data.length; i++) {
      const list = this.#byHead.get(u32(data, i))
      if (list === undefined) continue
      for (const n of list) {
        if (i + n.bytes.length > data.length) continue
        let same = true
        for (let j = 4; j < n.bytes.length; j++) {
          if (data[i + j] !== n.bytes[j]) {
            same = false
            break
          }
        }
        if (same) hits.push({ label: n.label, offset: i, source, length: n.bytes.length })
      }
    }
    return hits
  }
}

/** Needles for a text in UTF-8 (ASCII) and UTF-16 LE/BE. */
export function textNeedles(label: string, text: string): Needle[] {
  const le = Buffer.from(text, 'utf16le')
  const be = Buffer.from(le)
  be.swap16()
  return [
    { label: `${label} (utf8)`, bytes: new Uint8Array(Buffer.from(text, 'utf8')) },
    { label: `${label} (utf16le)`, bytes: new Uint8Array(le) },
    { label: `${label} (utf16be)`, bytes: new Uint8Array(be) },
  ]
}

/**
 * Whether the `length` bytes at `offset` are part of a longer run of ASCII digits. A 6-digit verification code
 * found as text inside a 13-digit millisecond timestamp or a counter is chance (each such number holds eight
 * 6-digit windows), not the code: a code written out stands between non-digits (`"code":"483920"`, `=483920 `).
 * So is one inside a long hex run ({@link withinHexRun}).
 */
export function withinDigitRun(data: Uint8Array, offset: number, length: number): boolean {
  const digit = (i: number) => i >= 0 && i < data.length && data[i]! >= 0x30 && data[i]! <= 0x39
  return digit(offset - 1) || digit(offset + length) || withinHexRun(data, offset, length)
}

/**
 * Whether the match at `offset` lies inside a run of at least 32 lower-case hex digits: a keyed hash or key written
 * as hex (the rate limiter's bucket names in quotas.json), where six given digits turn up by chance (seen in CI:
 * 'quotas.json@10678: code 10 (utf8)' inside a recipient's quota id) — a code is never written as part of one.
 */
export function withinHexRun(data: Uint8Array, offset: number, length: number): boolean {
  const hex = (i: number) =>
    i >= 0 &&
    i < data.length &&
    ((data[i]! >= 0x30 && data[i]! <= 0x39) || (data[i]! >= 0x61 && data[i]! <= 0x66))
  let start = offset
  while (hex(start - 1)) start--
  let end = offset + length
  while (hex(end)) end++
  return end - start >= 32
}

/** Needles for a binary value: raw, and as lower- and upper-case hex and base64 text. */
export function bytesNeedles(label: string, value: Uint8Array): Needle[] {
  const hex = Buffer.from(value).toString('hex')
  return [
    { label: `${label} (raw)`, bytes: value },
    ...textNeedles(`${label} (hex)`, hex),
    ...textNeedles(`${label} (HEX)`, hex.toUpperCase()),
    ...textNeedles(`${label} (base64)`, Buffer.from(value).toString('base64').replace(/=+$/, '')),
    ...textNeedles(`${label} (base64url)`, Buffer.from(value).toString('base64url')),
  ]
}

function beBytes(v: bigint): number[] {
  const out: number[] = []
  for (let x = v; x > 0n; x >>= 8n) out.unshift(Number(x & 0xffn))
  return out
}

function varint(v: bigint): number[] {
  const out: number[] = []
  let x = v
  do {
    const b = Number(x & 0x7fn)
    x >>= 7n
    out.push(x > 0n ? b | 0x80 : b)
  } while (x > 0n)
  return out
}

/** The national significant number of an E.164 number, given its country calling code. */
export interface WatchedNumber {
  e164: string
  /** National significant number (digits after the country code); omit to watch only the E.164 digits. */
  national?: string
}

/**
 * Finds any run of at least `minDigits` consecutive digits of any watched number, in ASCII, UTF-16 LE/BE and
 * packed BCD in both nibble orders (at any nibble offset), and the whole national and international numbers as
 * big- and little-endian integers of 4–8 bytes and as protobuf varints.
 */
export class NumberScanner {
  readonly minDigits: number
  /** Every `minDigits`-long window of every watched number's digits → the number. */
  readonly #windows = new Map<string, string>()
  readonly #ints = new NeedleSet()

  constructor(numbers: readonly WatchedNumber[], { minDigits = 7 }: { minDigits?: number } = {}) {
    if (minDigits < 4) throw new RangeError('minDigits must be at least 4')
    this.minDigits = minDigits
    for (const { e164, national } of numbers) {
      const digits = e164.replace(/^\+/, '')
      if (!/^\d+$/.test(digits) || (national !== undefined && !digits.endsWith(national))) {
        throw new TypeError(`not an E.164 number with its national part: ${e164}`)
      }
      // The national number is a suffix of the E.164 digits, so its windows are among these.
      for (let i = 0; i + minDigits <= digits.length; i++)
        this.#windows.set(digits.slice(i, i + minDigits), e164)
      for (const d of national === undefined ? [digits] : [digits, national]) {
        const v = BigInt(d)
        const be = beBytes(v)
        if (be.length > 8) continue
        // Width 4–8: any number of leading zeros up to the width; a shorter value needs some to reach 4 bytes.
        const pad = Math.max(0, 4 - be.length)
        const bePadded = [...new Array<number>(pad).fill(0), ...be]
        this.#ints.add({ label: `${e164}\0int-be\0${d}`, bytes: Uint8Array.from(bePadded) })
        this.#ints.add({ label: `${e164}\0int-le\0${d}`, bytes: Uint8Array.from(bePadded.slice().reverse()) })
        const vi = varint(v)
        if (vi.length >= 4) this.#ints.add({ label: `${e164}\0varint\0${d}`, bytes: Uint8Array.from(vi) })
      }
    }
  }

  /** Number of distinct digit windows watched. */
  get windowCount(): number {
    return this.#windows.size
  }

  /** Every hit in `data`. */
  scan(data: Uint8Array, source = ''): NumberHit[] {
    const hits: NumberHit[] = []
    const text = latin1(data)
    const runs = (
      encoding: NumberEncoding,
      re: RegExp,
      digitsOf: (m: string) => string,
      offsetOf: (i: number) => number,
    ) => {
      for (const m of text.matchAll(re))
        this.#check(digitsOf(m[0]), encoding, offsetOf(m.index), source, hits)
    }
    const n = this.minDigits
    runs(
      'ascii',
      new RegExp(`[0-9]{${n},}`, 'g'),
      (m) => m,
      (i) => i,
    )
    runs(
      'utf16le',
      new RegExp(`(?:[0-9]\\x00){${n},}`, 'g'),
      (m) => m.replaceAll('\0', ''),
      (i) => i,
    )
    runs(
      'utf16be',
      new RegExp(`(?:\\x00[0-9]){${n},}`, 'g'),
      (m) => m.replaceAll('\0', ''),
      (i) => i,
    )
    // Packed BCD: each byte as two nibbles, high first ("bcd") or low first ("bcd-swapped", as in GSM TBCD).
    const hex = Buffer.from(data).toString('hex')
    let swapped = ''
    for (let i = 0; i < hex.length; i += 2) swapped += hex[i + 1]! + hex[i]!
    for (const [encoding, nibbles] of [
      ['bcd', hex],
      ['bcd-swapped', swapped],
    ] as const) {
      for (const m of nibbles.matchAll(new RegExp(`[0-9]{${n},}`, 'g'))) {
        this.#check(m[0], encoding, m.index >> 1, source, hits)
      }
    }
    for (const h of this.#ints.scan(data, source)) {
      const [number, encoding, digits] = h.label.split('\0') as [string, NumberEncoding, string]
      hits.push({ number, encoding, offset: h.offset, digits, source, bits: h.length * 8 })
    }
    return hits
  }

  #check(run: string, encoding: NumberEncoding, offset: number, source: string, hits: NumberHit[]): void {
    const found = new Map<string, number>()
    for (let i = 0; i + this.minDigits <= run.length; i++) {
      const number = this.#windows.get(run.slice(i, i + this.minDigits))
      if (number === undefined) continue
      found.set(number, Math.max(found.get(number) ?? 0, commonRun(run, i, number.slice(1), this.minDigits)))
    }
    const perDigit = encoding.startsWith('bcd') ? 4 : 8
    for (const [number, matched] of found) {
      hits.push({ number, encoding, offset, digits: run, source, bits: matched * perDigit })
    }
  }
}

/** Length of the longest run of `digits` that matches `run` around the window at `i`. */
function commonRun(run: string, i: number, digits: string, window: number): number {
  let best = window
  const w = run.slice(i, i + window)
  for (let j = digits.indexOf(w); j >= 0; j = digits.indexOf(w, j + 1)) {
    let a = 0
    while (i - a - 1 >= 0 && j - a - 1 >= 0 && run[i - a - 1] === digits[j - a - 1]) a++
    let b = window
    while (i + b < run.length && j + b < digits.length && run[i + b] === digits[j + b]) b++
    best = Math.max(best, a + b)
  }
  return best
}

/** A short, readable summary of hits for an assertion message. */
export function describeHits(hits: readonly (NumberHit | NeedleHit)[], max = 10): string[] {
  return hits
    .slice(0, max)
    .map((h) =>
      'number' in h
        ? `${h.source}@${h.offset}: ${h.number} as ${h.encoding} (${h.digits})`
        : `${h.source}@${h.offset}: ${h.label}`,
    )
}
