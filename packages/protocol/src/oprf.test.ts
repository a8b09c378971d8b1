// RFC 9497 OPRF/VOPRF over ristretto255-SHA512: the Appendix A.1 vectors (loaded from
// test/vectors/rfc9497/, source cited in its README), refusal of forged or malformed data,
// a byte-exact cross-check against @noble/curves' independent OPRF module, and a round-trip property.
import { readFileSync } from 'node:fs'
import { mapHashToField } from '@noble/curves/abstract/modular.js'
import { ristretto255, ristretto255_oprf } from '@noble/curves/ed25519.js'
import { bytesToHex, hexToBytes, numberToBytesLE } from '@noble/curves/utils.js'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { expectParleyError } from '../test/fixtures.js'
import {
  _oprfBaseModeForTests as base,
  OPRF_ELEMENT_BYTES,
  OPRF_OUTPUT_BYTES,
  OPRF_PROOF_BYTES,
  OPRF_SCALAR_BYTES,
  oprfBlind,
  oprfBlindEvaluate,
  oprfDeriveKeyPair,
  oprfEvaluate,
  oprfFinalize,
  oprfGenerateKeyPair,
} from './oprf.js'

// ── vectors ──────────────────────────────────────────────────────────────────────────────────────────

interface VectorTest {
  name: string
  batchSize: number
  data: {
    Input: string[]
    Blind: string[]
    BlindedElement: string[]
    EvaluationElement: string[]
    Output: string[]
    Proof?: string
    ProofRandomScalar?: string
  }
}
interface VectorMode {
  mode: string
  common: { Seed: string; KeyInfo: string; skSm: string; pkSm?: string }
  tests: VectorTest[]
}
interface VectorFile {
  source: string
  suites: { suite: string; modes: VectorMode[] }[]
}

const vectorFile: VectorFile = JSON.parse(
  readFileSync(new URL('../test/vectors/rfc9497/ristretto255-sha512.json', import.meta.url), 'utf8'),
)
const suite = vectorFile.suites.find((s) => s.suite === 'ristretto255-SHA512')!
const modeVectors = (mode: string): VectorMode => {
  const m = suite.modes.find((x) => x.mode === mode)
  if (m === undefined) throw new Error(`no ${mode} vectors`)
  return m
}
const oprfMode = modeVectors('OPRF Mode')
const voprfMode = modeVectors('VOPRF Mode')
const h = hexToBytes
const hex = (b: Uint8Array): string => bytesToHex(b)
const hexAll = (bs: Uint8Array[]): string[] => bs.map(hex)

describe('RFC 9497 A.1.1 ristretto255-SHA512, OPRF mode (0x00)', () => {
  const { common, tests } = oprfMode
  it('has the vectors the RFC lists', () => {
    expect(tests.length).toBe(2)
  })

  it('DeriveKeyPair reproduces skSm', () => {
    const keys = base.deriveKeyPair(h(common.Seed), h(common.KeyInfo))
    expect(hex(keys.secretKey)).toBe(common.skSm)
  })

  for (const t of tests) {
    it(`${t.name}: Blind, BlindEvaluate, Finalize and Evaluate match`, () => {
      const sk = h(common.skSm)
      t.data.Input.forEach((inputHex, i) => {
        const input = h(inputHex)
        const { blind, blindedElement } = base.blind(input, h(t.data.Blind[i]!))
        expect(hex(blind)).toBe(t.data.Blind[i])
        expect(hex(blindedElement)).toBe(t.data.BlindedElement[i])
        const evaluated = base.blindEvaluate(sk, blindedElement)
        expect(hex(evaluated)).toBe(t.data.EvaluationElement[i])
        expect(hex(base.finalize(input, blind, evaluated))).toBe(t.data.Output[i])
        expect(hex(base.evaluate(sk, input))).toBe(t.data.Output[i])
      })
    })
  }
})

describe('RFC 9497 A.1.2 ristretto255-SHA512, VOPRF mode (0x01)', () => {
  const { common, tests } = voprfMode
  it('has the vectors the RFC lists, including a batch', () => {
    expect(tests.length).toBe(3)
    expect(tests.some((t) => t.batchSize > 1)).toBe(true)
  })

  it('DeriveKeyPair reproduces skSm and pkSm', () => {
    const keys = oprfDeriveKeyPair(h(common.Seed), h(common.KeyInfo))
    expect(hex(keys.secretKey)).toBe(common.skSm)
    expect(hex(keys.publicKey)).toBe(common.pkSm)
  })

  for (const t of tests) {
    it(`${t.name}: blinded elements, evaluated elements, proof and outputs match`, () => {
      const sk = h(common.skSm)
      const pk = h(common.pkSm!)
      const inputs = t.data.Input.map(h)
      expect(inputs.length).toBe(t.batchSize)
      const blinded = inputs.map((input, i) => oprfBlind(input, h(t.data.Blind[i]!)))
      expect(hexAll(blinded.map((b) => b.blindedElement))).toEqual(t.data.BlindedElement)

      const blindedElements = blinded.map((b) => b.blindedElement)
      const { evaluatedElements, proof } = oprfBlindEvaluate(
        sk,
        pk,
        blindedElements,
        h(t.data.ProofRandomScalar!),
      )
      expect(hexAll(evaluatedElements)).toEqual(t.data.EvaluationElement)
      expect(hex(proof)).toBe(t.data.Proof)

      // Finalize from the vector's own bytes (not from our evaluation), so a bug cannot cancel itself out.
      const outputs = oprfFinalize(
        inputs,
        t.data.Blind.map(h),
        t.data.EvaluationElement.map(h),
        t.data.BlindedElement.map(h),
        h(t.data.Proof!),
        pk,
      )
      expect(hexAll(outputs)).toEqual(t.data.Output)
      expect(inputs.map((input) => hex(oprfEvaluate(sk, input)))).toEqual(t.data.Output)
    })
  }
})

// ── refusals ─────────────────────────────────────────────────────────────────────────────────────────

const L = ristretto255.Point.Fn.ORDER
const IDENTITY = new Uint8Array(32)
/** The field prime p, little-endian: a non-canonical encoding of 0 (RFC 9496 §4.3.1 rejects s ≥ p). */
const NON_CANONICAL_P = h('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f')
/** s = 1 is "negative" (odd), which RFC 9496 decoding rejects. */
const NEGATIVE_S = h(`01${'00'.repeat(31)}`)
/** A valid element with the unused top bit set. */
const validElement = ristretto255.Point.BASE.toBytes()
const HIGH_BIT = Uint8Array.from(validElement, (b, i) => (i === 31 ? b | 0x80 : b))
const MALFORMED: [string, Uint8Array][] = [
  ['a 31-byte element', new Uint8Array(31).fill(1)],
  ['a 33-byte element', new Uint8Array(33).fill(1)],
  ['the identity element', IDENTITY],
  ['a non-canonical encoding (s = p)', NON_CANONICAL_P],
  ['a negative field element', NEGATIVE_S],
  ['an encoding with the top bit set', HIGH_BIT],
]

/** One honest VOPRF exchange over two inputs. */
function exchange() {
  const keys = oprfDeriveKeyPair(new Uint8Array(32).fill(9), new TextEncoder().encode('test epoch'))
  const inputs = [new TextEncoder().encode('+14155550100'), new TextEncoder().encode('+442079460000')]
  const blinded = inputs.map((i) => oprfBlind(i))
  const blinds = blinded.map((b) => b.blind)
  const blindedElements = blinded.map((b) => b.blindedElement)
  const { evaluatedElements, proof } = oprfBlindEvaluate(keys.secretKey, keys.publicKey, blindedElements)
  return { keys, inputs, blinds, blindedElements, evaluatedElements, proof }
}

describe('oprfFinalize refuses what it must not accept', () => {
  it('accepts an honest batch and matches direct evaluation', () => {
    const x = exchange()
    const out = oprfFinalize(
      x.inputs,
      x.blinds,
      x.evaluatedElements,
      x.blindedElements,
      x.proof,
      x.keys.publicKey,
    )
    expect(out.map(hex)).toEqual(x.inputs.map((i) => hex(oprfEvaluate(x.keys.secretKey, i))))
    expect(out.every((o) => o.length === OPRF_OUTPUT_BYTES)).toBe(true)
  })

  it('refuses a proof with a flipped bit in c or in s with VERIFICATION_FAILED', () => {
    const x = exchange()
    for (const at of [0, 5, 33, 40]) {
      const bad = x.proof.slice()
      bad[at]! ^= 0x01
      expectParleyError(
        () => oprfFinalize(x.inputs, x.blinds, x.evaluatedElements, x.blindedElements, bad, x.keys.publicKey),
        'VERIFICATION_FAILED',
      )
    }
  })

  it('refuses a valid proof checked against another public key with VERIFICATION_FAILED', () => {
    const x = exchange()
    const other = oprfGenerateKeyPair()
    expectParleyError(
      () =>
        oprfFinalize(x.inputs, x.blinds, x.evaluatedElements, x.blindedElements, x.proof, other.publicKey),
      'VERIFICATION_FAILED',
    )
  })

  it('refuses an evaluation made with another key, even with its own valid proof, with VERIFICATION_FAILED', () => {
    const x = exchange()
    const rogue = oprfGenerateKeyPair()
    const forged = oprfBlindEvaluate(rogue.secretKey, rogue.publicKey, x.blindedElements)
    expectParleyError(
      () =>
        oprfFinalize(
          x.inputs,
          x.blinds,
          forged.evaluatedElements,
          x.blindedElements,
          forged.proof,
          x.keys.publicKey,
        ),
      'VERIFICATION_FAILED',
    )
  })

  it('refuses a tampered evaluated element (a valid but different element) with VERIFICATION_FAILED', () => {
    const x = exchange()
    const tampered = [ristretto255.Point.BASE.multiply(7n).toBytes(), x.evaluatedElements[1]!]
    expectParleyError(
      () => oprfFinalize(x.inputs, x.blinds, tampered, x.blindedElements, x.proof, x.keys.publicKey),
      'VERIFICATION_FAILED',
    )
  })

  it('refuses evaluated elements returned in swapped order with VERIFICATION_FAILED', () => {
    const x = exchange()
    const swapped = [x.evaluatedElements[1]!, x.evaluatedElements[0]!]
    expectParleyError(
      () => oprfFinalize(x.inputs, x.blinds, swapped, x.blindedElements, x.proof, x.keys.publicKey),
      'VERIFICATION_FAILED',
    )
  })

  it('refuses a proof whose scalars are not canonical (c + L) with BAD_REQUEST', () => {
    // c + L still fits in 32 bytes and would verify if it were silently reduced mod L.
    const x = exchange()
    const c = BigInt(`0x${hex(x.proof.slice(0, 32).reverse())}`)
    const bad = x.proof.slice()
    bad.set(numberToBytesLE(c + L, 32), 0)
    expectParleyError(
      () => oprfFinalize(x.inputs, x.blinds, x.evaluatedElements, x.blindedElements, bad, x.keys.publicKey),
      'BAD_REQUEST',
    )
  })

  it('refuses a proof of the wrong length with BAD_REQUEST', () => {
    const x = exchange()
    for (const bad of [x.proof.subarray(0, 63), new Uint8Array(65), new Uint8Array(0)]) {
      expectParleyError(
        () => oprfFinalize(x.inputs, x.blinds, x.evaluatedElements, x.blindedElements, bad, x.keys.publicKey),
        'BAD_REQUEST',
      )
    }
  })

  for (const [what, bytes] of MALFORMED) {
    it(`refuses ${what} as an evaluated element, a blinded element or the public key with BAD_REQUEST`, () => {
      const x = exchange()
      expectParleyError(
        () =>
          oprfFinalize(
            x.inputs,
            x.blinds,
            [bytes, x.evaluatedElements[1]!],
            x.blindedElements,
            x.proof,
            x.keys.publicKey,
          ),
        'BAD_REQUEST',
      )
      expectParleyError(
        () =>
          oprfFinalize(
            x.inputs,
            x.blinds,
            x.evaluatedElements,
            [x.blindedElements[0]!, bytes],
            x.proof,
            x.keys.publicKey,
          ),
        'BAD_REQUEST',
      )
      expectParleyError(
        () => oprfFinalize(x.inputs, x.blinds, x.evaluatedElements, x.blindedElements, x.proof, bytes),
        'BAD_REQUEST',
      )
    })
  }

  it('throws RangeError when the batch arrays differ in length or are empty', () => {
    const x = exchange()
    const pk = x.keys.publicKey
    expect(() =>
      oprfFinalize(x.inputs, x.blinds.slice(0, 1), x.evaluatedElements, x.blindedElements, x.proof, pk),
    ).toThrow(RangeError)
    expect(() =>
      oprfFinalize(x.inputs, x.blinds, x.evaluatedElements.slice(0, 1), x.blindedElements, x.proof, pk),
    ).toThrow(RangeError)
    expect(() =>
      oprfFinalize(x.inputs, x.blinds, x.evaluatedElements, x.blindedElements.slice(1), x.proof, pk),
    ).toThrow(RangeError)
    expect(() => oprfFinalize([], [], [], [], x.proof, pk)).toThrow(RangeError)
  })

  it('throws TypeError for arguments of the wrong type', () => {
    const x = exchange()
    const pk = x.keys.publicKey
    const notBytes = 'aa' as unknown as Uint8Array
    expect(() =>
      oprfFinalize(x.inputs, x.blinds, x.evaluatedElements, x.blindedElements, notBytes, pk),
    ).toThrow(TypeError)
    expect(() =>
      oprfFinalize(x.inputs, x.blinds, [notBytes, notBytes], x.blindedElements, x.proof, pk),
    ).toThrow(TypeError)
    expect(() =>
      oprfFinalize(
        'ab' as unknown as Uint8Array[],
        x.blinds,
        x.evaluatedElements,
        x.blindedElements,
        x.proof,
        pk,
      ),
    ).toThrow(TypeError)
  })
})

describe('oprfBlindEvaluate refuses malformed requests', () => {
  const keys = oprfDeriveKeyPair(new Uint8Array(32).fill(3), new Uint8Array(0))
  for (const [what, bytes] of MALFORMED) {
    it(`refuses ${what} as a blinded element with BAD_REQUEST`, () => {
      const ok = oprfBlind(new Uint8Array([1])).blindedElement
      expectParleyError(() => oprfBlindEvaluate(keys.secretKey, keys.publicKey, [ok, bytes]), 'BAD_REQUEST')
    })
  }

  it('refuses an empty batch with BAD_REQUEST', () => {
    expectParleyError(() => oprfBlindEvaluate(keys.secretKey, keys.publicKey, []), 'BAD_REQUEST')
  })

  it('throws RangeError for a public key that does not match the secret key', () => {
    const other = oprfGenerateKeyPair()
    const b = oprfBlind(new Uint8Array([1])).blindedElement
    expect(() => oprfBlindEvaluate(keys.secretKey, other.publicKey, [b])).toThrow(RangeError)
  })

  it('throws RangeError for a secret key or proof scalar that is zero, too long or not canonical', () => {
    const b = oprfBlind(new Uint8Array([1])).blindedElement
    for (const bad of [new Uint8Array(32), new Uint8Array(31).fill(1), numberToBytesLE(L, 32)]) {
      expect(() => oprfBlindEvaluate(bad, keys.publicKey, [b])).toThrow(RangeError)
      expect(() => oprfBlindEvaluate(keys.secretKey, keys.publicKey, [b], bad)).toThrow(RangeError)
    }
  })
})

describe('caller mistakes and key generation', () => {
  it('oprfBlind throws RangeError for a zero or non-canonical blind and a too-long input', () => {
    const input = new Uint8Array([1, 2, 3])
    expect(() => oprfBlind(input, new Uint8Array(32))).toThrow(RangeError)
    expect(() => oprfBlind(input, numberToBytesLE(L, 32))).toThrow(RangeError)
    expect(() => oprfBlind(input, new Uint8Array(64).fill(1))).toThrow(RangeError)
    expect(() => oprfBlind(new Uint8Array(65536))).toThrow(RangeError)
    expect(() => oprfBlind('+14155550100' as unknown as Uint8Array)).toThrow(TypeError)
  })

  it('oprfBlind accepts an input of exactly 65535 bytes and an empty input', () => {
    expect(oprfBlind(new Uint8Array(65535)).blindedElement.length).toBe(OPRF_ELEMENT_BYTES)
    expect(oprfBlind(new Uint8Array(0)).blindedElement.length).toBe(OPRF_ELEMENT_BYTES)
  })

  it('oprfBlind draws a fresh blind each time', () => {
    const input = new Uint8Array([7])
    const a = oprfBlind(input)
    const b = oprfBlind(input)
    expect(a.blind.length).toBe(OPRF_SCALAR_BYTES)
    expect(hex(a.blind)).not.toBe(hex(b.blind))
    expect(hex(a.blindedElement)).not.toBe(hex(b.blindedElement))
  })

  it('oprfDeriveKeyPair throws RangeError for a seed that is not 32 bytes', () => {
    expect(() => oprfDeriveKeyPair(new Uint8Array(31), new Uint8Array(0))).toThrow(RangeError)
    expect(() => oprfDeriveKeyPair(new Uint8Array(32), new Uint8Array(65536))).toThrow(RangeError)
  })

  it('oprfGenerateKeyPair is random by default, deterministic given randomness, and refuses short randomness', () => {
    const a = oprfGenerateKeyPair()
    const b = oprfGenerateKeyPair()
    expect(hex(a.secretKey)).not.toBe(hex(b.secretKey))
    const r = new Uint8Array(64).fill(0x42)
    expect(oprfGenerateKeyPair(r)).toEqual(oprfGenerateKeyPair(r))
    expect(hex(oprfGenerateKeyPair(r).publicKey)).toBe(
      hex(ristretto255.Point.BASE.multiply(BigInt(`0x${hex(r.slice().reverse())}`) % L).toBytes()),
    )
    expect(() => oprfGenerateKeyPair(new Uint8Array(47))).toThrow(RangeError)
  })

  it('oprfEvaluate throws RangeError for an invalid secret key', () => {
    expect(() => oprfEvaluate(new Uint8Array(32), new Uint8Array([1]))).toThrow(RangeError)
    expect(() => oprfEvaluate(numberToBytesLE(L + 1n, 32), new Uint8Array([1]))).toThrow(RangeError)
  })

  it('never puts key material or elements in an error message', () => {
    const x = exchange()
    const bad = x.proof.slice()
    bad[1]! ^= 0xff
    const err = expectParleyError(
      () => oprfFinalize(x.inputs, x.blinds, x.evaluatedElements, x.blindedElements, bad, x.keys.publicKey),
      'VERIFICATION_FAILED',
    )
    for (const secret of [x.keys.publicKey, ...x.blinds, ...x.evaluatedElements, bad]) {
      expect(err.message).not.toContain(hex(secret).slice(0, 8))
    }
  })

  it('exports the RFC 9497 §4.1 sizes', () => {
    expect([OPRF_ELEMENT_BYTES, OPRF_SCALAR_BYTES, OPRF_PROOF_BYTES, OPRF_OUTPUT_BYTES]).toEqual([
      32, 32, 64, 64,
    ])
  })
})

// ── independent implementation: @noble/curves' own RFC 9497 module ───────────────────────────────────

describe('cross-check against @noble/curves ristretto255_oprf (independent implementation)', () => {
  const noble = ristretto255_oprf.voprf
  // noble 2.4.0 ships voprf.evaluate (RFC 9497 §3.3.2) but its .d.ts omits it from the voprf type.
  const nobleEvaluate = (sk: Uint8Array, input: Uint8Array): Uint8Array =>
    (noble as unknown as { evaluate(sk: Uint8Array, input: Uint8Array): Uint8Array }).evaluate(sk, input)
  /** noble's RandomScalar turns 48 random bytes into a scalar with mapHashToField; do the same. */
  const scalarOf = (random: Uint8Array) => mapHashToField(random, L, true)

  it('agrees byte for byte on keys, blinded and evaluated elements, batch proofs and outputs', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 24 }),
        fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.uint8Array({ minLength: 48, maxLength: 48 }), { minLength: 5, maxLength: 5 }),
        (seed, info, inputs, randoms) => {
          const mine = oprfDeriveKeyPair(seed, info)
          const theirs = noble.deriveKeyPair(seed, info)
          expect(hex(mine.secretKey)).toBe(hex(theirs.secretKey))
          expect(hex(mine.publicKey)).toBe(hex(theirs.publicKey))

          const theirBlinds = inputs.map((input, i) => noble.blind(input, () => randoms[i]!))
          const myBlinds = inputs.map((input, i) => oprfBlind(input, theirBlinds[i]!.blind))
          expect(hexAll(myBlinds.map((b) => b.blindedElement))).toEqual(
            hexAll(theirBlinds.map((b) => b.blinded)),
          )

          const blinded = myBlinds.map((b) => b.blindedElement)
          const proofRandom = randoms[4]!
          const theirEval = noble.blindEvaluateBatch(
            mine.secretKey,
            mine.publicKey,
            blinded,
            () => proofRandom,
          )
          const myEval = oprfBlindEvaluate(mine.secretKey, mine.publicKey, blinded, scalarOf(proofRandom))
          expect(hexAll(myEval.evaluatedElements)).toEqual(hexAll(theirEval.evaluated))
          expect(hex(myEval.proof)).toBe(hex(theirEval.proof))

          const blinds = myBlinds.map((b) => b.blind)
          const myOut = oprfFinalize(
            inputs,
            blinds,
            myEval.evaluatedElements,
            blinded,
            myEval.proof,
            mine.publicKey,
          )
          const theirOut = noble.finalizeBatch(
            inputs.map((input, i) => ({
              input,
              blind: blinds[i]!,
              evaluated: myEval.evaluatedElements[i]!,
              blinded: blinded[i]!,
            })),
            mine.publicKey,
            myEval.proof,
          )
          expect(hexAll(myOut)).toEqual(hexAll(theirOut))
          expect(inputs.map((i) => hex(oprfEvaluate(mine.secretKey, i)))).toEqual(
            inputs.map((i) => hex(nobleEvaluate(mine.secretKey, i))),
          )
        },
      ),
      { numRuns: 25 },
    )
  })

  it('verifies proofs made by noble with random proof scalars', () => {
    const keys = noble.generateKeyPair()
    const inputs = [new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])]
    const b = inputs.map((input) => noble.blind(input))
    const res = noble.blindEvaluateBatch(
      keys.secretKey,
      keys.publicKey,
      b.map((x) => x.blinded),
    )
    const out = oprfFinalize(
      inputs,
      b.map((x) => x.blind),
      res.evaluated,
      b.map((x) => x.blinded),
      res.proof,
      keys.publicKey,
    )
    expect(hexAll(out)).toEqual(inputs.map((i) => hex(nobleEvaluate(keys.secretKey, i))))
  })
})

describe('property: blind → evaluate → finalize equals direct evaluation', () => {
  it('holds for random keys, inputs and batch sizes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.array(fc.uint8Array({ maxLength: 64 }), { minLength: 1, maxLength: 5 }),
        (seed, inputs) => {
          const keys = oprfDeriveKeyPair(seed, new Uint8Array(0))
          const blinded = inputs.map((input) => oprfBlind(input))
          const blindedElements = blinded.map((b) => b.blindedElement)
          const { evaluatedElements, proof } = oprfBlindEvaluate(
            keys.secretKey,
            keys.publicKey,
            blindedElements,
          )
          const outputs = oprfFinalize(
            inputs,
            blinded.map((b) => b.blind),
            evaluatedElements,
            blindedElements,
            proof,
            keys.publicKey,
          )
          expect(hexAll(outputs)).toEqual(inputs.map((input) => hex(oprfEvaluate(keys.secretKey, input))))
        },
      ),
      { numRuns: 40 },
    )
  })
})
