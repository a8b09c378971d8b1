// The Store conformance suite for number changes and address forwards (Store.rebindAddress with its options,
// Store.addressForward): the new number commitment, the forward kept from the old address, its chain, its end,
// and what erasure, a new account at the old address and the TTL sweep do to it. Every implementation runs
// exactly these tests beside `storeConformance`. The forward row's format (table `address_forwards`: old_key,
// new_key, target, expires_at_ms) is checked here too: both stores must write the same opaque rows, since
// `parley-relay migrate` copies them as they are.
import { createDecipheriv, createHash, hkdfSync } from 'node:crypto'
import { expect, it } from 'vitest'
import { MAX_FORWARD_HOPS, type RebindOptions, type Store } from '../../src/Store.js'
import { bytes, hex, register, type StoreHarness } from './store.js'

/** The forwards' table. */
const TABLE = 'address_forwards'
/** The end of the forwards the tests keep, and times before, at and after it. */
const UNTIL = 100_000
const BEFORE = 50_000
const AFTER = UNTIL + 1

/** SHA-256 of a domain string and bytes, as the forward keys are computed (written out here, not imported). */
const sha256 = (domain: string, b: Uint8Array) => createHash('sha256').update(domain).update(b).digest()

/** Opens a stored target as the format says: key HKDF-SHA256(from, "", "parley/v1/forward-key"), nonce ‖ ct ‖ tag. */
function openTarget(from: Uint8Array, target: Uint8Array): Buffer {
  const key = Buffer.from(hkdfSync('sha256', from, Buffer.alloc(0), 'parley/v1/forward-key', 32))
  const t = Buffer.from(target)
  const d = createDecipheriv('chacha20-poly1305', key, t.subarray(0, 12), { authTagLength: 16 })
  d.setAuthTag(t.subarray(t.length - 16))
  return Buffer.concat([d.update(t.subarray(12, t.length - 16)), d.final()])
}

/** Registers the forward conformance tests of {@link Store} for one implementation (call inside a describe). */
export function storeForwardsConformance(h: StoreHarness): void {
  const open = () => h.open()
  /** Moves the account of device 1 (a registration's first device, kept across moves) from `from` to `to`. */
  const move = (s: Store, from: Uint8Array, to: Uint8Array, options?: RebindOptions) =>
    s.rebindAddress(from, 1, to, options)
  /** A forward until {@link UNTIL}. */
  const forward = { forwardUntilMs: UNTIL }
  /** An account at a fresh address, moved along `n` fresh addresses with forwards; the addresses in order. */
  const chain = async (s: Store, n: number) => {
    const at = [(await register(s)).address]
    for (let i = 0; i < n; i++) {
      const to = bytes(32)
      expect(await move(s, at[at.length - 1]!, to, forward)).toBe('moved')
      at.push(to)
    }
    return at
  }
  const found = async (s: Store, from: Uint8Array, nowMs = BEFORE) => {
    const to = await s.addressForward(from, nowMs)
    return to === undefined ? undefined : hex(to)
  }

  it('forwards: a number change moves the account with the new commitment, and leaves nothing at the old address', async () => {
    const s = await open()
    const [c1, c2] = [bytes(32), bytes(32)]
    const { address: a } = await register(s, bytes(32), { numberCommitment: c1 })
    const before = (await s.getAccount(a))!
    expect(hex(before.numberCommitment)).toBe(hex(c1))
    const b = bytes(32)
    expect(await move(s, a, b, { numberCommitment: c2 })).toBe('moved')
    const after = (await s.getAccount(b))!
    expect(hex(after.numberCommitment)).toBe(hex(c2))
    expect(after.deviceId).toBe(1)
    expect(hex(after.identityKey)).toBe(hex(before.identityKey))
    expect(await s.getAccount(a)).toBeNull()
    expect(await s.getDevice(a, 1)).toBeNull()
    // A move without one keeps the commitment the account has.
    const c = bytes(32)
    expect(await move(s, b, c)).toBe('moved')
    expect(hex((await s.getAccount(c))!.numberCommitment)).toBe(hex(c2))
    // A commitment is 32 bytes.
    await expect(move(s, c, bytes(32), { numberCommitment: bytes(31) })).rejects.toThrow(RangeError)
    expect(hex((await s.getAccount(c))!.numberCommitment)).toBe(hex(c2))
  })

  it('forwards: a move with forwardUntilMs keeps a forward from the old address, one without keeps none', async () => {
    const s = await open()
    const [a, b] = await chain(s, 1)
    expect(await found(s, a!)).toBe(hex(b!))
    // It holds through its end.
    expect(await found(s, a!, UNTIL)).toBe(hex(b!))
    expect(await h.rows(s, TABLE)).toBe(1)
    const { address: x } = await register(s)
    const y = bytes(32)
    expect(await move(s, x, y)).toBe('moved')
    expect(await found(s, x)).toBeUndefined()
    expect(await h.rows(s, TABLE)).toBe(1)
    // A refused move keeps no forward either.
    expect(await move(s, y, b!, forward)).toBe('taken')
    expect(await found(s, y)).toBeUndefined()
    expect(await found(s, bytes(32))).toBeUndefined()
    expect(await h.rows(s, TABLE)).toBe(1)
  })

  it('forwards: an expired forward leads nowhere, and the sweep removes it once its end has passed', async () => {
    const s = await open()
    const [a, b] = await chain(s, 1)
    expect(await found(s, a!, AFTER)).toBeUndefined()
    // Not before its end has passed.
    await s.expire(0, UNTIL)
    expect(await h.rows(s, TABLE)).toBe(1)
    expect(await found(s, a!)).toBe(hex(b!))
    await s.expire(0, AFTER)
    expect(await h.rows(s, TABLE)).toBe(0)
    expect(await found(s, a!)).toBeUndefined()
    // By default the sweep's now is the clock's.
    const { address: x } = await register(s)
    const { address: p } = await register(s)
    expect(await move(s, x, bytes(32), { forwardUntilMs: Date.now() - 1000 })).toBe('moved')
    expect(await move(s, p, bytes(32), { forwardUntilMs: Date.now() + 3_600_000 })).toBe('moved')
    expect(await h.rows(s, TABLE)).toBe(2)
    await s.expire(0)
    expect(await h.rows(s, TABLE)).toBe(1)
    expect(await found(s, p, Date.now())).toBeDefined()
  })

  it(`forwards: follows a chain of moves to the account, at most ${MAX_FORWARD_HOPS} forwards`, async () => {
    const s = await open()
    // A → B → C: two hops.
    const [a, b, c] = await chain(s, 2)
    expect(await found(s, a!)).toBe(hex(c!))
    expect(await found(s, b!)).toBe(hex(c!))
    // An expired hop breaks the chain: D → E ends before E → F does.
    const { address: d } = await register(s)
    const [e, f] = [bytes(32), bytes(32)]
    expect(await move(s, d, e, forward)).toBe('moved')
    expect(await move(s, e, f, { forwardUntilMs: UNTIL * 2 })).toBe('moved')
    expect(await found(s, d)).toBe(hex(f))
    expect(await found(s, d, AFTER)).toBeUndefined()
    expect(await found(s, e, AFTER)).toBe(hex(f))
    // A chain longer than the hops followed: found from every address but the first.
    const at = await chain(s, MAX_FORWARD_HOPS + 1)
    const end = hex(at[at.length - 1]!)
    for (let i = 1; i <= MAX_FORWARD_HOPS; i++) expect(await found(s, at[at.length - 1 - i]!)).toBe(end)
    expect(await found(s, at[0]!)).toBeUndefined()
  })

  it('forwards: a chain that ends at no account leads nowhere', async () => {
    const s = await open()
    // A → B with a forward, B → C without: B has neither an account nor a forward.
    const [a, b] = await chain(s, 1)
    expect(await move(s, b!, bytes(32))).toBe('moved')
    expect(await found(s, a!)).toBeUndefined()
    // D → E → F, then F's account is erased.
    const [d, e, f] = await chain(s, 2)
    expect(await s.deleteAccount(f!)).toBe(true)
    expect(await found(s, d!)).toBeUndefined()
    expect(await found(s, e!)).toBeUndefined()
  })

  it('forwards: erasing an account erases the forwards that lead to its address, and only those', async () => {
    const s = await open()
    const [a, b, c] = await chain(s, 2)
    const [x, y] = await chain(s, 1)
    expect(await h.rows(s, TABLE)).toBe(3)
    expect(await s.deleteAccount(c!)).toBe(true)
    expect(await h.rows(s, TABLE)).toBe(2)
    const left = (await h.values(s, TABLE)).map(hex)
    expect(left).toContain(hex(sha256('parley/v1/forward', a!)))
    expect(left).toContain(hex(sha256('parley/v1/forward', x!)))
    expect(left).not.toContain(hex(sha256('parley/v1/forward', b!)))
    expect(await found(s, x!)).toBe(hex(y!))
  })

  it('forwards: a new account at the old address erases the forward kept from it', async () => {
    const s = await open()
    const [a, b] = await chain(s, 1)
    const [x, y] = await chain(s, 1)
    await register(s, a!)
    expect(await h.rows(s, TABLE)).toBe(1)
    // Once that account is gone too, the old address leads nowhere: not to the account that moved away.
    expect(await s.deleteAccount(a!)).toBe(true)
    expect(await found(s, a!)).toBeUndefined()
    expect(hex((await s.getAccount(b!))!.address)).toBe(hex(b!))
    expect(await found(s, x!)).toBe(hex(y!))
  })

  it('forwards: a move back to an address erases the forward kept from it', async () => {
    const s = await open()
    // A → B with a forward, then back B → A without one: A is the account's again, and A's forward goes.
    const [a, b] = await chain(s, 1)
    expect(await move(s, b!, a!)).toBe('moved')
    expect(await h.rows(s, TABLE)).toBe(0)
    // Once the account is erased at A, A leads nowhere (not along the stale A → B forward).
    expect(await s.deleteAccount(a!)).toBe(true)
    await register(s, b!)
    expect(await found(s, a!)).toBeUndefined()
  })

  it('forwards: a second move from an address replaces the forward kept from it', async () => {
    const s = await open()
    const [a, b] = await chain(s, 1)
    expect(await move(s, b!, a!)).toBe('moved')
    const c = bytes(32)
    expect(await move(s, a!, c, { forwardUntilMs: UNTIL * 2 })).toBe('moved')
    expect(await h.rows(s, TABLE)).toBe(1)
    expect(await found(s, a!, AFTER)).toBe(hex(c))
  })

  it('forwards: a forward that does not open leads nowhere, without an error', async () => {
    const s = await open()
    const [a] = await chain(s, 1)
    await h.run(s, `UPDATE ${TABLE} SET target = new_key`)
    expect(await s.addressForward(a!, BEFORE)).toBeUndefined()
  })

  it('forwards: the row holds neither address in the clear, only their hashes and the sealed target', async () => {
    const s = await open()
    const [a, b] = await chain(s, 1)
    expect((await h.columns(s, TABLE)).sort()).toEqual(['expires_at_ms', 'new_key', 'old_key', 'target'])
    const values = await h.values(s, TABLE)
    expect(values).toHaveLength(3)
    for (const v of values) {
      for (const address of [a!, b!]) expect(Buffer.from(v).includes(Buffer.from(address))).toBe(false)
    }
    const byHex = values.map(hex)
    expect(byHex).toContain(hex(sha256('parley/v1/forward', a!)))
    expect(byHex).toContain(hex(sha256('parley/v1/forward-to', b!)))
    const target = values.find((v) => v.length === 12 + 32 + 16)!
    expect(hex(openTarget(a!, target))).toBe(hex(b!))
    // A fresh nonce per forward: the same move sealed again is another ciphertext.
    expect(await move(s, b!, a!)).toBe('moved')
    expect(await move(s, a!, b!, forward)).toBe('moved')
    const again = (await h.values(s, TABLE)).find((v) => v.length === 12 + 32 + 16)!
    expect(hex(again)).not.toBe(hex(target))
    expect(hex(openTarget(a!, again))).toBe(hex(b!))
  })
}
