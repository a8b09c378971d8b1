// The scanners must find what they look for, or the audits built on them prove nothing.
import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { bytesNeedles, NeedleSet, NumberScanner, textNeedles, withinDigitRun, withinHexRun } from './scan.js'

/** `length` pseudo-random bytes, the same on every run: SHA-256(seed ‖ counter) blocks. */
function noise(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let off = 0, n = 0; off < length; off += 32, n++) {
    out.set(
      createHash('sha256')
        .update(`${seed}:${n}`)
        .digest()
        .subarray(0, Math.min(32, length - off)),
      off,
    )
  }
  return out
}

const NUMBER = { e164: '+447700900123', national: '7700900123' }
const OTHER = { e164: '+14155550177', national: '4155550177' }

/** 4 KiB of noise bytes with `planted` written at offset 1000. */
function withPlanted(planted: Uint8Array | number[]): Uint8Array {
  const data = noise(-1, 4096)
  // No accidental digit runs near the plant: scrub ASCII digits from the noise.
  for (let i = 0; i < data.length; i++) if (data[i]! >= 0x30 && data[i]! <= 0x39) data[i] = 0xff
  data.set(planted, 1000)
  return data
}

const bcd = (digits: string, swapped: boolean, pad = 'f'): number[] => {
  const d = digits.length % 2 ? digits + pad : digits
  const out: number[] = []
  for (let i = 0; i < d.length; i += 2) {
    const [a, b] = swapped ? [d[i + 1]!, d[i]!] : [d[i]!, d[i + 1]!]
    out.push(Number.parseInt(a + b, 16))
  }
  return out
}

const be = (digits: string, width: number): number[] => {
  const out = new Array<number>(width).fill(0)
  let v = BigInt(digits)
  for (let i = width - 1; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn)
  return out
}

describe('NumberScanner', () => {
  const scanner = new NumberScanner([NUMBER, OTHER])

  const planted: [string, string, number[] | Uint8Array][] = [
    ['ascii', 'E.164 with +', [...Buffer.from('+447700900123')]],
    ['ascii', '7 digits of the national number', [...Buffer.from('x0900123x')]],
    ['ascii', 'national with trunk prefix', [...Buffer.from('07700900123')]],
    ['utf16le', 'E.164', [...Buffer.from('447700900123', 'utf16le')]],
    ['utf16be', 'E.164', [...Buffer.from('447700900123', 'utf16le').swap16()]],
    ['bcd', 'E.164, even nibble offset', bcd('447700900123', false)],
    ['bcd', 'national, odd nibble offset', bcd('f7700900123', false)],
    ['bcd-swapped', 'E.164 (TBCD)', bcd('447700900123', true)],
    ['bcd-swapped', 'national (TBCD)', bcd('7700900123', true)],
    ['int-be', 'E.164 in 8 bytes', be('447700900123', 8)],
    ['int-be', 'E.164 in 6 bytes', be('447700900123', 6)],
    ['int-be', 'national in 5 bytes', be('7700900123', 5)],
    ['int-le', 'national in 8 bytes', be('7700900123', 8).reverse()],
    ['varint', 'E.164 as a protobuf varint', [0x9b, 0xb2, 0xb6, 0xe8, 0x83, 0x0d]],
  ]

  it.each(planted)('finds a number planted as %s (%s)', (encoding, _what, bytes) => {
    const hits = scanner.scan(withPlanted(bytes), 'planted')
    expect(hits.some((h) => h.encoding === encoding && h.number === NUMBER.e164)).toBe(true)
  })

  it('checks its own varint fixture', () => {
    let v = 447700900123n
    const out: number[] = []
    do {
      const b = Number(v & 0x7fn)
      v >>= 7n
      out.push(v > 0n ? b | 0x80 : b)
    } while (v > 0n)
    expect(out).toEqual(planted.find(([e]) => e === 'varint')![2])
  })

  it('finds a 4-byte big-endian national number shorter than 4 bytes only with its leading zero', () => {
    const short = new NumberScanner([{ e164: '+3541234567', national: '1234567' }])
    expect(short.scan(withPlanted(be('1234567', 4))).map((h) => h.encoding)).toContain('int-be')
  })

  it('finds nothing in noise bytes, in 6-digit runs, or in other numbers', () => {
    expect(scanner.scan(withPlanted([...Buffer.from('x900123x')]))).toEqual([])
    expect(scanner.scan(withPlanted([...Buffer.from('+12125550100')]))).toEqual([])
    // Deterministic noise (SHA-256 in counter mode): a 7-digit BCD run is only 28 bits, so truly random
    // megabytes hold one by chance in about one run in seven; fixed bytes keep the test from flaking.
    let total = 0
    for (let i = 0; i < 16; i++) total += scanner.scan(noise(i, 64 * 1024)).length
    expect(total).toBe(0)
  })

  it('reports which number, where and how', () => {
    const hits = scanner.scan(withPlanted([...Buffer.from('call 4155550177 now')]), 'log')
    expect(hits).toEqual([
      { number: OTHER.e164, encoding: 'ascii', offset: 1005, digits: '4155550177', source: 'log', bits: 80 },
    ])
  })

  it('rates each hit by how unlikely it is by chance', () => {
    const bits = (bytes: number[]) => Math.max(...scanner.scan(withPlanted(bytes)).map((h) => h.bits))
    expect(bits([...Buffer.from('x0900123x')])).toBe(56)
    expect(bits(bcd('447700900123', false))).toBe(48)
    expect(bits(bcd('f0900123', false, 'f'))).toBe(28)
    expect(bits(be('7700900123', 8))).toBe(40)
  })

  it('watches 7-digit windows and refuses malformed input', () => {
    expect(scanner.windowCount).toBe(6 + 5)
    expect(() => new NumberScanner([{ e164: '+1415', national: '999' }])).toThrow(TypeError)
    expect(() => new NumberScanner([], { minDigits: 3 })).toThrow(RangeError)
  })
})

describe('NeedleSet', () => {
  it('finds raw, hex, base64 and UTF-16 forms of a value, and texts', () => {
    const key = new Uint8Array(randomBytes(32))
    const set = new NeedleSet([...bytesNeedles('key', key), ...textNeedles('code', '483920')])
    const forms: [string, Uint8Array][] = [
      ['key (raw)', key],
      ['key (hex) (utf8)', Buffer.from(Buffer.from(key).toString('hex'))],
      ['key (HEX) (utf16le)', Buffer.from(Buffer.from(key).toString('hex').toUpperCase(), 'utf16le')],
      ['key (base64) (utf8)', Buffer.from(Buffer.from(key).toString('base64'))],
      ['code (utf8)', Buffer.from('{"code":"483920"}')],
      ['code (utf16be)', Buffer.from('483920', 'utf16le').swap16()],
    ]
    for (const [label, bytes] of forms) {
      expect(set.scan(withPlanted(bytes), 'f').map((h) => h.label)).toContain(label)
    }
    expect(set.scan(noise(99, 64 * 1024))).toEqual([])
  })

  it('tells a code written out from the same digits inside a timestamp', () => {
    const enc = (s: string) => new Uint8Array(Buffer.from(s))
    const set = new NeedleSet(textNeedles('code', '483920'))
    const hitsIn = (text: string) => {
      const data = enc(text)
      return set.scan(data, 'f').filter((h) => !withinDigitRun(data, h.offset, 6))
    }
    expect(hitsIn('{"code":"483920"}')).toHaveLength(1)
    expect(hitsIn('code=483920 sent')).toHaveLength(1)
    expect(hitsIn('483920')).toHaveLength(1)
    expect(hitsIn('{"at":1764839205512}')).toHaveLength(0) // …483920… inside a millisecond timestamp
    expect(hitsIn('{"n":4839201}')).toHaveLength(0)
    expect(hitsIn('{"n":94839201}')).toHaveLength(0)
  })

  it('refuses needles too short to search for without false alarms', () => {
    expect(() => new NeedleSet([{ label: 'x', bytes: new Uint8Array(3) }])).toThrow(RangeError)
  })
})

describe('withinHexRun', () => {
  it('takes a code inside a 32+ digit hex run for chance, and one written out for the code', () => {
    const at = (text: string) => {
      const data = new Uint8Array(Buffer.from(text))
      return withinHexRun(data, text.indexOf('483920'), 6)
    }
    expect(at(`"ud:recipient:${'a'.repeat(13)}483920${'f'.repeat(13)}"`)).toBe(true)
    expect(at('"code":"483920"')).toBe(false)
    expect(at(`${'a'.repeat(10)}483920${'b'.repeat(10)}`)).toBe(false)
    expect(at(`${'A'.repeat(20)}483920${'B'.repeat(20)}`)).toBe(false)
  })
})
