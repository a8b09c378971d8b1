// The crypto provider is a per-client option, like the clock: each client uses the primitives it was given and
// no other, whatever else runs in the process (issue 16: a process-wide setting silently split between two
// copies of @parley/protocol, and one client's choice changed another's).
import { MemoryStore, ParleyClient } from '@parley/client'
import type { CryptoProvider } from '@parley/protocol'
import { describe, expect, it } from 'vitest'
import { ALICE, BOB, CAROL, collect, world } from './harness.js'
import { native } from './nativeCrypto.js'

/** A provider that forwards X25519 to node:crypto and counts every call. */
function counting(): { provider: CryptoProvider; calls: () => number } {
  let calls = 0
  const count = <A extends unknown[], R>(f: (...a: A) => R) => {
    return (...a: A): R => {
      calls++
      return f(...a)
    }
  }
  const provider: CryptoProvider = {
    x25519: {
      getPublicKey: count((sk: Uint8Array) => native.x25519.getPublicKey(sk)),
      getSharedSecret: count((sk: Uint8Array, pk: Uint8Array) => native.x25519.getSharedSecret(sk, pk)),
    },
  }
  return { provider, calls: () => calls }
}

describe('crypto provider per client', () => {
  it('each client uses only its own primitives, and a client without one uses none of them', async () => {
    const { relay, activated } = world()
    const a = counting()
    const b = counting()
    const alice = await activated(ALICE, { crypto: a.provider })
    const afterAlice = a.calls()
    // Activation makes 100 one-time prekeys: each is an X25519 public key through Alice's provider.
    expect(afterAlice).toBeGreaterThanOrEqual(100)
    expect(b.calls()).toBe(0)

    const bob = await activated(BOB, { crypto: b.provider })
    expect(a.calls()).toBe(afterAlice)
    const afterBob = b.calls()
    expect(afterBob).toBeGreaterThanOrEqual(100)

    const carol = await activated(CAROL, { crypto: undefined })
    const received = collect(bob, 'message')
    await carol.send(BOB, 'from carol')
    await relay.settle()
    expect(received.map((m) => m.text)).toEqual(['from carol'])
    // Carol sealed and encrypted with the defaults; Bob opened and decrypted with his own provider.
    expect(a.calls()).toBe(afterAlice)
    expect(b.calls()).toBeGreaterThan(afterBob)

    const beforeSend = { a: a.calls(), b: b.calls() }
    await alice.send(BOB, 'from alice')
    await relay.settle()
    expect(received.map((m) => m.text)).toEqual(['from carol', 'from alice'])
    expect(a.calls()).toBeGreaterThan(beforeSend.a) // PQXDH and the sealed envelope on Alice's side
    expect(b.calls()).toBeGreaterThan(beforeSend.b) // opening and PQXDH on Bob's side
    await Promise.all([alice.close(), bob.close(), carol.close()])
  })

  it('refuses a provider of the wrong shape when the client is made, with a TypeError', async () => {
    const { relay } = world()
    const bad = [
      { x25519: { getPublicKey: () => new Uint8Array(32) } },
      { chacha20poly1305: { seal: 'nope' } },
      { hkdfSha256: 42 },
      { ed25519Verify: {} },
      'node:crypto',
    ]
    for (const crypto of bad) {
      await expect(
        ParleyClient.create({
          relayUrl: relay.url,
          transport: relay.transport,
          store: new MemoryStore(),
          crypto: crypto as unknown as CryptoProvider,
        }),
      ).rejects.toThrow(TypeError)
    }
  })
})
