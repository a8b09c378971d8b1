/**
 * Group state (docs/architecture.md §6.10): what a group is, held only by its members. A `GroupUpdate` is the
 * group's whole state after one change — id, revision, the state it replaces (its SHA-256), who made it, name,
 * members with their admin flags, avatar key — sent over the pairwise session to every member device. The
 * session's sender certificate proves who sent it; {@link judgeGroupUpdate} decides whether a member takes it:
 *
 * - only from a sender that the state it replaces made an admin, or from a member whose change is leaving;
 * - of two states, the higher revision wins; of two with the same revision (two admins' concurrent changes), the
 *   one whose SHA-256 is lower — so every member that has both ends on the same state, in any order of arrival.
 *
 * The relay sees none of this. Every function here is pure.
 * @module
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { GROUP_ID_BYTES } from './content.js'
import { ParleyError } from './errors.js'
import { abytes, equalBytes } from './internal/bytes.js'
import { own } from './internal/e2eCrypto.js'
import { encodeMessage } from './internal/pb.js'
import { decodeCanonical } from './internal/signedBody.js'

/** The most members a group may have (Parley members and SMS members together). */
export const MAX_GROUP_MEMBERS = 1000
/** The longest group name, in UTF-8 bytes. */
export const MAX_GROUP_NAME_BYTES = 256

const E164 = /^\+[1-9][0-9]{6,14}$/
const utf8 = new TextEncoder()

/** One member of a group. */
export interface GroupMemberFields {
  /** The member's 32-byte account address; absent for a member not on Parley (reached by SMS). */
  readonly address?: Uint8Array | undefined
  /** The member's number (E.164), as the admin who added it stated it. */
  readonly e164: string
  /** Whether the member may change the group. */
  readonly admin: boolean
}

/** A group's whole state after one change: the fields of a `GroupUpdate`. */
export interface GroupUpdateFields {
  /** The group's 32-byte id. */
  readonly groupId: Uint8Array
  /** 0 at creation, one more with each change. */
  readonly revision: number
  /** SHA-256 of the encoded update this one replaces ({@link groupUpdateHash}); absent at revision 0. */
  readonly parent?: Uint8Array | undefined
  /** The 32-byte address of the account that made this state. */
  readonly author: Uint8Array
  /** The group's name. */
  readonly name: string
  /** Every member, each once (by address, and SMS members by number). */
  readonly members: readonly GroupMemberFields[]
  /** A 32-byte key for the group's avatar; absent when none. */
  readonly avatarKey?: Uint8Array | undefined
}

/** A device's sender key for a group: the fields of a `GroupKey`. */
export interface GroupKeyFields {
  /** The group's 32-byte id. */
  readonly groupId: Uint8Array
  /** The encoded `SenderKeyDistribution` of the sending device's chain (`senderKeyDistribution`). */
  readonly distribution: Uint8Array
}

/** A received update beside what a member already holds, for {@link judgeGroupUpdate}. */
export interface GroupUpdateCandidate {
  /** The decoded update. */
  readonly update: GroupUpdateFields
  /** Its {@link groupUpdateHash}. */
  readonly hash: Uint8Array
}

/** What a member does with a received update. */
export type GroupUpdateVerdict =
  /** Take it: it is the group's state now. */
  | 'apply'
  /** Keep the state held: the update is the same, older, or lost to a concurrent one. */
  | 'ignore'

const hexOf = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')

/** Members in their one canonical order: by address, then SMS members by number. */
function canonicalOrder(members: readonly GroupMemberFields[]): GroupMemberFields[] {
  const key = (m: GroupMemberFields) => (m.address === undefined ? `1${m.e164}` : `0${hexOf(m.address)}`)
  return [...members].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
}

function checkUpdate(u: GroupUpdateFields): void {
  if (typeof u !== 'object' || u === null) throw new TypeError('update must be an object')
  abytes(u.groupId, GROUP_ID_BYTES, 'groupId')
  abytes(u.author, 32, 'author')
  if (!Number.isSafeInteger(u.revision) || u.revision < 0)
    throw new RangeError('revision must be a non-negative safe integer')
  if (u.revision === 0 ? u.parent !== undefined : u.parent === undefined)
    throw new TypeError('parent is set exactly when revision is above 0')
  if (u.parent !== undefined) abytes(u.parent, 32, 'parent')
  if (u.avatarKey !== undefined) abytes(u.avatarKey, 32, 'avatarKey')
  if (typeof u.name !== 'string' || utf8.encode(u.name).length > MAX_GROUP_NAME_BYTES)
    throw new RangeError(`name must be a string of at most ${MAX_GROUP_NAME_BYTES} UTF-8 bytes`)
  if (!Array.isArray(u.members)) throw new TypeError('members must be an array')
  if (u.members.length > MAX_GROUP_MEMBERS)
    throw new RangeError(`a group has at most ${MAX_GROUP_MEMBERS} members`)
  const seen = new Set<string>()
  for (const m of u.members) {
    if (typeof m !== 'object' || m === null) throw new TypeError('a member must be an object')
    if (m.address !== undefined) abytes(m.address, 32, 'member address')
    if (typeof m.e164 !== 'string' || !(E164.test(m.e164) || (m.e164 === '' && m.address !== undefined)))
      throw new TypeError('a member needs an E.164 number (only a Parley member may go without)')
    if (typeof m.admin !== 'boolean') throw new TypeError('admin must be a boolean')
    if (m.address === undefined && m.admin) throw new TypeError('an SMS member cannot be an admin')
    const key = m.address === undefined ? `n${m.e164}` : `a${hexOf(m.address)}`
    if (seen.has(key)) throw new TypeError('a member is listed twice')
    seen.add(key)
  }
  if (u.members.some((m) => m.address !== undefined) && !u.members.some((m) => m.admin))
    throw new TypeError('a group with Parley members needs an admin')
}

/**
 * Encodes a group's state, members in canonical order.
 * @param update - the state (see {@link GroupUpdateFields})
 * @returns an encoded `GroupUpdate`, for `Content.groupUpdate`
 * @throws TypeError / RangeError for a bad id, author, parent or avatar key, a name over
 *   {@link MAX_GROUP_NAME_BYTES}, over {@link MAX_GROUP_MEMBERS} members, a member twice, a member with neither
 *   address nor number, an SMS admin, or Parley members and no admin
 * @example const bytes = encodeGroupUpdate({ groupId, revision: 0, author: me, name: 'Hikers', members })
 */
export function encodeGroupUpdate(update: GroupUpdateFields): Uint8Array {
  checkUpdate(update)
  return encodeMessage('GroupUpdate', {
    groupId: update.groupId,
    revision: update.revision,
    parent: update.parent ?? new Uint8Array(0),
    author: update.author,
    name: update.name,
    members: canonicalOrder(update.members).map((m) => ({
      address: m.address ?? new Uint8Array(0),
      e164: m.e164,
      admin: m.admin,
    })),
    avatarKey: update.avatarKey ?? new Uint8Array(0),
  })
}

/**
 * Decodes a group state a member sent (untrusted: the pairwise session proved the sender, not the contents).
 * @param bytes - an encoded `GroupUpdate`
 * @returns the state
 * @throws ParleyError `BAD_REQUEST` for anything {@link encodeGroupUpdate} would not have written (members out of
 *   canonical order included)
 * @example const update = decodeGroupUpdate(content.groupUpdate)
 */
export function decodeGroupUpdate(bytes: Uint8Array): GroupUpdateFields {
  abytes(bytes, undefined, 'bytes')
  let update: GroupUpdateFields
  try {
    const m = decodeCanonical('GroupUpdate', bytes)
    const parent = own(m.parent)
    const avatarKey = own(m.avatarKey)
    update = {
      groupId: own(m.groupId),
      revision: Number(m.revision),
      ...(parent.length === 0 ? {} : { parent }),
      author: own(m.author),
      name: m.name,
      members: m.members.map((x) => {
        const address = own(x.address)
        return { ...(address.length === 0 ? {} : { address }), e164: x.e164, admin: x.admin }
      }),
      ...(avatarKey.length === 0 ? {} : { avatarKey }),
    }
    checkUpdate(update)
  } catch (cause) {
    throw new ParleyError('BAD_REQUEST', 'malformed group update', { cause })
  }
  const sorted = canonicalOrder(update.members)
  if (sorted.some((m, i) => m !== update.members[i]))
    throw new ParleyError('BAD_REQUEST', 'malformed group update: members out of order')
  return update
}

/**
 * The hash that names a group state: the next state's `parent`, and the tie-break between concurrent states.
 * @param encoded - an encoded `GroupUpdate`
 * @returns its SHA-256 (32 bytes)
 */
export function groupUpdateHash(encoded: Uint8Array): Uint8Array {
  abytes(encoded, undefined, 'encoded')
  return sha256(encoded)
}

/** The member of `update` at `address`, if any. */
export function groupMember(update: GroupUpdateFields, address: Uint8Array): GroupMemberFields | undefined {
  return update.members.find((m) => m.address !== undefined && equalBytes(m.address, address))
}

/** Whether `next` is `base` with only `author` gone (a member leaving), everything else as it was. */
function isLeaving(base: GroupUpdateFields, next: GroupUpdateFields, author: Uint8Array): boolean {
  const kept = base.members.filter((m) => m.address === undefined || !equalBytes(m.address, author))
  if (kept.length !== base.members.length - 1 || next.name !== base.name) return false
  if ((base.avatarKey === undefined) !== (next.avatarKey === undefined)) return false
  if (base.avatarKey !== undefined && !equalBytes(base.avatarKey, next.avatarKey!)) return false
  // A leaving last admin hands the group to the first member left: the one change beside its own leaving.
  const expected = withAdmin(kept)
  const a = encodeMembers(expected)
  const b = encodeMembers(next.members)
  return a === b
}

/**
 * Members after one left: unchanged while one of them is an admin, else with the first Parley member (in canonical
 * order) made one — what a leaving last admin hands over, and all it may change besides its own leaving.
 */
export function withAdmin(members: readonly GroupMemberFields[]): GroupMemberFields[] {
  const sorted = canonicalOrder(members)
  if (sorted.some((m) => m.admin)) return sorted
  const first = sorted.findIndex((m) => m.address !== undefined)
  return sorted.map((m, i) => (i === first ? { ...m, admin: true } : m))
}

const encodeMembers = (members: readonly GroupMemberFields[]) =>
  canonicalOrder(members)
    .map((m) => `${m.address === undefined ? '' : hexOf(m.address)}/${m.e164}/${m.admin}`)
    .join(',')

/** -1, 0 or 1 as `a` sorts before, with or after `b`, byte by byte. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1
  return a.length - b.length
}

/**
 * Decides what a member does with a group update that `sender` sent it (the address the pairwise session's
 * certificate proved), given the state it holds (`current`) and the one that state replaced (`previous`, to
 * judge a concurrent change built on it). Only an authorised update can win; of authorised ones, the higher
 * revision, then the lower hash, so every member converges on the same state.
 * @param args - `incoming`, `sender`, and what the member holds: `current` (absent: a group it does not know
 *   yet) and `previous`
 * @returns `apply` or `ignore`
 * @throws ParleyError `FORBIDDEN` when the update is not the sender's to make: another author than the sender, a
 *   sender that is not an admin of the state the update builds on (unless it only leaves), or a new group whose
 *   author is not one of its admins; `INVALID_STATE` for an update of another group
 * @example if (judgeGroupUpdate({ incoming, sender, current, previous }) === 'apply') current = incoming
 */
export function judgeGroupUpdate(args: {
  incoming: GroupUpdateCandidate
  sender: Uint8Array
  current?: GroupUpdateCandidate | undefined
  previous?: GroupUpdateCandidate | undefined
}): GroupUpdateVerdict {
  const { incoming, sender, current, previous } = args
  const next = incoming.update
  if (!equalBytes(next.author, sender))
    throw new ParleyError('FORBIDDEN', 'a group update names another author than its sender')
  if (current === undefined) {
    // A group this member does not know (created, or joined later): trusted on first sight, if its author runs it.
    if (groupMember(next, sender)?.admin !== true)
      throw new ParleyError('FORBIDDEN', 'a new group whose author is not one of its admins')
    return 'apply'
  }
  if (!equalBytes(current.update.groupId, next.groupId))
    throw new ParleyError('INVALID_STATE', 'a group update of another group')
  if (equalBytes(current.hash, incoming.hash)) return 'ignore'
  // The state the update builds on: the one held, the one before it (a concurrent sibling), or, when its parent
  // is neither (updates missed), the one held.
  const base =
    next.parent !== undefined && previous !== undefined && equalBytes(next.parent, previous.hash)
      ? previous.update
      : current.update
  const author = groupMember(base, sender)
  if (author?.admin !== true && !(author !== undefined && isLeaving(base, next, sender)))
    throw new ParleyError('FORBIDDEN', 'a group change by a member who is not an admin')
  const c = current.update
  if (next.revision > c.revision) return 'apply'
  if (next.revision === c.revision && compareBytes(incoming.hash, current.hash) < 0) return 'apply'
  return 'ignore'
}

/**
 * Encodes a device's sender key for a group.
 * @param key - the group id and the encoded distribution
 * @returns an encoded `GroupKey`, for `Content.groupKey`
 * @throws TypeError for a group id not 32 bytes or a distribution that is not bytes
 */
export function encodeGroupKey(key: GroupKeyFields): Uint8Array {
  if (typeof key !== 'object' || key === null) throw new TypeError('key must be an object')
  abytes(key.groupId, GROUP_ID_BYTES, 'groupId')
  abytes(key.distribution, undefined, 'distribution')
  return encodeMessage('GroupKey', { groupId: key.groupId, distribution: key.distribution })
}

/**
 * Decodes a sender key a member device sent (its distribution is opened by `openSenderKeyDistribution`).
 * @param bytes - an encoded `GroupKey`
 * @throws ParleyError `BAD_REQUEST` for anything but a canonical key with a 32-byte group id and a distribution
 */
export function decodeGroupKey(bytes: Uint8Array): GroupKeyFields {
  abytes(bytes, undefined, 'bytes')
  let m: ReturnType<typeof decodeCanonical<'GroupKey'>>
  try {
    m = decodeCanonical('GroupKey', bytes)
  } catch (cause) {
    throw new ParleyError('BAD_REQUEST', 'malformed group key', { cause })
  }
  const groupId = own(m.groupId)
  const distribution = own(m.distribution)
  if (groupId.length !== GROUP_ID_BYTES || distribution.length === 0)
    throw new ParleyError('BAD_REQUEST', 'malformed group key')
  return { groupId, distribution }
}
