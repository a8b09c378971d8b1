// Known-answer tests: the frozen vectors in test/vectors/parley-e2e/kat.json (source named in the file) must be
// reproduced exactly from their seeds, and the frozen ciphertexts must still decrypt.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { computeVectors } from '../test/e2e/vectors.js'
import { makeDevice, respondTo, seededRandom, senderOf, unhex } from '../test/fixtures.js'
import { Session } from './index.js'

const file = join(import.meta.dirname, '..', 'test', 'vectors', 'parley-e2e', 'kat.json')
const frozen = JSON.parse(readFileSync(file, 'utf8'))

describe('parley-e2e known-answer vectors', () => {
  it('reproduces every frozen value (run scripts/gen-e2e-vectors.ts only for an intended change)', async () => {
    expect(await computeVectors()).toEqual(frozen)
  })

  it('decrypts the frozen first message with a responder rebuilt from its seed', async () => {
    for (const c of frozen.cases) {
      const random = seededRandom(`parley-e2e-kat/${c.variant}`)
      const alice = makeDevice('alice', random, 1)
      const bob = makeDevice('bob', random, 2)
      const first = c.transcript[0]
      const res = await respondTo(bob, senderOf(alice, { kind: 'prekey', body: unhex(first.body) }))
      expect(res.plaintext).toEqual(unhex(first.plaintext))
      const second = c.transcript[1]
      const a = Session.initiate(
        alice.identity,
        alice.address,
        1,
        bob.bundle(c.variant === 'one-time' ? {} : { oneTime: false, oneTimeKem: false }),
      ).session
      // A fresh initiator has different keys, so Bob's frozen reply is not for it.
      expect(() => a.decrypt({ kind: 'ratchet', body: unhex(second.body) })).toThrow()
    }
  })
})
