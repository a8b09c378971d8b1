// Group state: the encoding bit for bit against protobufjs, malformed and non-canonical bytes refused, and the
// judge as members and attackers would meet it — a forged author, a non-admin's change, a member leaving, and
// concurrent admin changes arriving in every order, which must leave every member on the same state.
import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { pbEncode } from '../test/independent.js'
import { decodeContent, encodeContent } from './content.js'
import { ParleyError } from './errors.js'
import {
  decodeGroupKey,
  decodeGroupUpdate,
  encodeGroupKey,
  encodeGroupUpdate,
  type GroupMemberFields,
  type GroupUpdateCandidate,
  type GroupUpdateFields,
  groupUpdateHash,
  judgeGroupUpdate,
  MAX_GROUP_MEMBERS,
} from './group.js'

const addr = (n: number) => new Uint8Array(32).fill(n)
const groupId = new Uint8Array(32).fill(0xaa)
const alice = addr(1)
const bob = addr(2)
const carol = addr(3)
const dave = addr(4)

const member = (
  address: Uint8Array,
  admin = false,
  e164 = `+1555000${address[0]!.toString().padStart(4, '0')}`,
) => ({
  address,
  e164,
  admin,
})

function candidate(update: GroupUpdateFields): GroupUpdateCandidate {
  const bytes = encodeGroupUpdate(update)
  return { update: decodeGroupUpdate(bytes), hash: groupUpdateHash(bytes) }
}

const genesis = candidate({
  groupId,
  revision: 0,
  author: alice,
  name: 'Hikers',
  members: [member(alice, true), member(bob, true), member(carol)],
})

const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.from(a).equals(b)
const without = (base: GroupUpdateCandidate, gone: Uint8Array) =>
  base.update.members.filter((m) => !same(m.address, gone))

/** A change of `base` by `author`: its revision and parent follow from the base. */
function change(
  base: GroupUpdateCandidate,
  author: Uint8Array,
  edit: Partial<Pick<GroupUpdateFields, 'name' | 'members' | 'avatarKey'>>,
): GroupUpdateCandidate {
  return candidate({
    ...base.update,
    revision: base.update.revision + 1,
    parent: base.hash,
    author,
    ...edit,
  })
}

function codeOf(f: () => unknown): string {
  try {
    f()
    return 'none'
  } catch (err) {
    return err instanceof ParleyError ? err.code : (err as Error).name
  }
}

describe('GroupUpdate encoding', () => {
  it('is what protobufjs writes for the same fields, members in canonical order', () => {
    const members = [member(carol), { e164: '+15550009999', admin: false }, member(alice, true)]
    const bytes = encodeGroupUpdate({
      groupId,
      revision: 3,
      parent: addr(9),
      author: alice,
      name: 'A',
      members,
    })
    const expected = pbEncode('GroupUpdate', {
      groupId,
      revision: 3,
      parent: addr(9),
      author: alice,
      name: 'A',
      members: [
        { address: alice, e164: members[2]!.e164, admin: true },
        { address: carol, e164: members[0]!.e164 },
        { e164: '+15550009999' },
      ],
    })
    expect(Buffer.from(bytes).toString('hex')).toBe(Buffer.from(expected).toString('hex'))
    expect(Buffer.from(groupUpdateHash(bytes))).toEqual(createHash('sha256').update(bytes).digest())
    const back = decodeGroupUpdate(bytes)
    expect(back.members.map((m) => m.e164)).toEqual([members[2]!.e164, members[0]!.e164, '+15550009999'])
    expect(back.members[2]!.address).toBeUndefined()
    expect(back.revision).toBe(3)
  })

  it('refuses members out of canonical order, a member twice, an SMS admin and no admin', () => {
    const outOfOrder = pbEncode('GroupUpdate', {
      groupId,
      revision: 0,
      author: alice,
      members: [
        { address: carol, e164: '+15550000003' },
        { address: alice, e164: '+15550000001', admin: true },
      ],
    })
    expect(codeOf(() => decodeGroupUpdate(outOfOrder))).toBe('BAD_REQUEST')
    const base = { groupId, revision: 0, author: alice, name: '' }
    expect(codeOf(() => encodeGroupUpdate({ ...base, members: [member(alice, true), member(alice)] }))).toBe(
      'TypeError',
    )
    expect(
      codeOf(() =>
        encodeGroupUpdate({ ...base, members: [member(alice, true), { e164: '+15550001111', admin: true }] }),
      ),
    ).toBe('TypeError')
    expect(codeOf(() => encodeGroupUpdate({ ...base, members: [member(alice)] }))).toBe('TypeError')
    expect(codeOf(() => encodeGroupUpdate({ ...base, members: [{ e164: 'nope', admin: false }] }))).toBe(
      'TypeError',
    )
    expect(codeOf(() => encodeGroupUpdate({ ...base, revision: 1, members: [] }))).toBe('TypeError')
  })

  it(`holds ${MAX_GROUP_MEMBERS} members and refuses one more`, () => {
    const many: GroupMemberFields[] = Array.from({ length: MAX_GROUP_MEMBERS }, (_, i) => ({
      address: Uint8Array.from({ length: 32 }, (_, j) => (j < 2 ? (i >> (8 * j)) & 0xff : 7)),
      e164: '',
      admin: i === 0,
    }))
    const bytes = encodeGroupUpdate({
      groupId,
      revision: 0,
      author: many[0]!.address!,
      name: 'big',
      members: many,
    })
    expect(decodeGroupUpdate(bytes).members).toHaveLength(MAX_GROUP_MEMBERS)
    const more = [...many, { e164: '+15550001111', admin: false }]
    expect(
      codeOf(() => encodeGroupUpdate({ groupId, revision: 0, author: alice, name: '', members: more })),
    ).toBe('RangeError')
  })

  it('refuses junk bytes with BAD_REQUEST, never another error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
        const code = codeOf(() => decodeGroupUpdate(junk))
        expect(['none', 'BAD_REQUEST']).toContain(code)
        expect(['none', 'BAD_REQUEST']).toContain(codeOf(() => decodeGroupKey(junk)))
      }),
    )
  })

  it('a group key round-trips and needs a 32-byte id and a distribution', () => {
    const bytes = encodeGroupKey({ groupId, distribution: new Uint8Array([1, 2, 3]) })
    expect(bytes).toEqual(pbEncode('GroupKey', { groupId, distribution: new Uint8Array([1, 2, 3]) }))
    expect(decodeGroupKey(bytes).distribution).toEqual(new Uint8Array([1, 2, 3]))
    expect(codeOf(() => decodeGroupKey(pbEncode('GroupKey', { groupId: addr(1).subarray(0, 16) })))).toBe(
      'BAD_REQUEST',
    )
  })

  it('Content carries an update, a key, and a group id with a text only', () => {
    const head = { messageId: new Uint8Array(16).fill(1), sentAtMs: 5 }
    const update = encodeGroupUpdate(genesis.update)
    expect(decodeContent(encodeContent({ ...head, groupUpdate: update })).groupUpdate).toEqual(update)
    expect(decodeContent(encodeContent({ ...head, text: 'hi', groupId })).groupId).toEqual(groupId)
    expect(codeOf(() => encodeContent({ ...head, groupKey: update, groupId }))).toBe('TypeError')
    const forged = pbEncode('Content', { ...head, typing: { started: true }, groupId })
    expect(codeOf(() => decodeContent(forged))).toBe('BAD_REQUEST')
  })
})

describe('judgeGroupUpdate', () => {
  it('takes a new group only from one of its admins', () => {
    expect(judgeGroupUpdate({ incoming: genesis, sender: alice })).toBe('apply')
    const byCarol = candidate({ ...genesis.update, author: carol })
    expect(codeOf(() => judgeGroupUpdate({ incoming: byCarol, sender: carol }))).toBe('FORBIDDEN')
  })

  it('refuses an update whose author is not its sender (a forwarded or forged change)', () => {
    const renamed = change(genesis, alice, { name: 'Bikers' })
    expect(codeOf(() => judgeGroupUpdate({ incoming: renamed, sender: carol, current: genesis }))).toBe(
      'FORBIDDEN',
    )
  })

  it("refuses a non-admin's change, and takes its leaving", () => {
    const carolAdds = change(genesis, carol, { members: [...genesis.update.members, member(dave)] })
    expect(codeOf(() => judgeGroupUpdate({ incoming: carolAdds, sender: carol, current: genesis }))).toBe(
      'FORBIDDEN',
    )
    const carolPromotes = change(genesis, carol, {
      members: genesis.update.members.map((m) => ({ ...m, admin: true })),
    })
    expect(codeOf(() => judgeGroupUpdate({ incoming: carolPromotes, sender: carol, current: genesis }))).toBe(
      'FORBIDDEN',
    )
    const carolLeaves = change(genesis, carol, {
      members: without(genesis, carol),
    })
    expect(judgeGroupUpdate({ incoming: carolLeaves, sender: carol, current: genesis })).toBe('apply')
    // Leaving while renaming the group is a change, not a leave.
    const leaveAndRename = change(genesis, carol, { name: 'mine', members: carolLeaves.update.members })
    expect(
      codeOf(() => judgeGroupUpdate({ incoming: leaveAndRename, sender: carol, current: genesis })),
    ).toBe('FORBIDDEN')
  })

  it('ignores the same update again and an older one', () => {
    const renamed = change(genesis, alice, { name: 'Bikers' })
    expect(judgeGroupUpdate({ incoming: renamed, sender: alice, current: renamed, previous: genesis })).toBe(
      'ignore',
    )
    expect(judgeGroupUpdate({ incoming: genesis, sender: alice, current: renamed, previous: genesis })).toBe(
      'ignore',
    )
  })

  it('a removed admin cannot change the group after its removal', () => {
    const bobRemoved = change(genesis, alice, { members: without(genesis, bob) })
    const bobStrikesBack = change(bobRemoved, bob, { name: 'ours' })
    expect(
      codeOf(() =>
        judgeGroupUpdate({ incoming: bobStrikesBack, sender: bob, current: bobRemoved, previous: genesis }),
      ),
    ).toBe('FORBIDDEN')
  })

  it('concurrent admin changes converge on one state in every order of arrival', () => {
    const addDave = change(genesis, alice, { members: [...genesis.update.members, member(dave)] })
    const rename = change(genesis, bob, { name: 'Bikers' })
    const removeCarol = change(genesis, bob, {
      members: without(genesis, carol),
    })
    const later = change(addDave, alice, { name: 'Hikers 2' })
    const updates = [
      { c: addDave, by: alice },
      { c: rename, by: bob },
      { c: removeCarol, by: bob },
      { c: later, by: alice },
    ]
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
    const finals = new Set<string>()
    fc.assert(
      fc.property(fc.shuffledSubarray(updates, { minLength: 4, maxLength: 4 }), (order) => {
        let current = genesis
        let previous: GroupUpdateCandidate | undefined
        for (const { c, by } of order) {
          if (judgeGroupUpdate({ incoming: c, sender: by, current, previous }) === 'apply') {
            previous =
              c.update.parent !== undefined && hex(c.update.parent) === hex(current.hash) ? current : previous
            if (c.update.revision === 1) previous = genesis
            current = c
          }
        }
        finals.add(hex(current.hash))
      }),
      { numRuns: 200 },
    )
    // Every order ends on the highest revision: `later`.
    expect([...finals]).toEqual([hex(later.hash)])
    // Among the three siblings alone, every order ends on the one with the lowest hash.
    const siblings = [addDave, rename, removeCarol]
    const lowest = siblings.map((s) => hex(s.hash)).sort()[0]
    const ends = new Set<string>()
    fc.assert(
      fc.property(fc.shuffledSubarray([0, 1, 2], { minLength: 3, maxLength: 3 }), (order) => {
        let current = genesis
        for (const i of order) {
          const s = siblings[i]!
          const by = i === 0 ? alice : bob
          if (judgeGroupUpdate({ incoming: s, sender: by, current, previous: genesis }) === 'apply')
            current = s
        }
        ends.add(hex(current.hash))
      }),
    )
    expect([...ends]).toEqual([lowest])
  })
})
