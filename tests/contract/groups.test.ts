// End-to-end encrypted groups against a real relay process (docs/architecture.md §6.10): a 50-member group with
// an SMS member, messages in order at every member, a removal after which the removed member gets nothing (no
// ciphertext at all, counted by the relay and the client), a member offline during the rekey who catches up,
// two admins' concurrent changes converging everywhere, and a tampered client's forged change refused by every
// member. At rest: the relay's database never holds the group id, the group's name or the SMS member's number.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { type RecordingTransport, recordingTransport } from '@parley/client/testing'
import {
  type GroupInfo,
  type IncomingMessage,
  type ParleyClient,
  type ParleyError,
  SqliteStore,
  WsTransport,
} from '@parley/node'
import {
  decodeGroupUpdate,
  encodeGroupUpdate,
  openSealedMessage,
  peekSenderKeyMessage,
  senderKeyDecrypt,
} from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { login, metric, readDevice } from './attacker.js'
import { activatedClient, clientDir, nodeClient, until } from './harness.js'
import { useRelay } from './useRelay.js'

const MEMBERS = 50
const number = (i: number) => `+1415556${String(1000 + i).padStart(4, '0')}`
const SMS_MEMBER = '+14155569999'
const WAIT = 60_000

interface Member {
  client: ParleyClient
  number: string
  path: string
  /** For the first two members: every frame they send, recorded for the egress scan. */
  transport?: RecordingTransport
  got: IncomingMessage[]
  errors: ParleyError[]
}

describe('groups', { timeout: 240_000 }, () => {
  // Fifty devices on one loopback address: their activations, their two connections each, and their
  // unidentified sends all count against that one source network.
  const env = useRelay([
    '--activations-per-ip-per-hour',
    '200',
    '--activation-confirms-per-network-per-hour',
    '200',
    '--max-connections-per-ip',
    '256',
    '--unidentified-network-capacity',
    '100000',
    '--unidentified-network-per-minute',
    '100000',
  ])
  const dir = clientDir()
  const members: Member[] = []
  const sms: { to: string; text: string; group?: string }[] = []
  let groupId = ''

  const open = async (m: Member, fresh: boolean) => {
    const options = {
      storePath: m.path,
      ...(m.transport === undefined ? {} : { transport: m.transport }),
      smsFallback: (to: string, text: string, context?: { group?: { id: string } }) => {
        sms.push({ to, text, ...(context?.group ? { group: context.group.id } : {}) })
      },
    }
    m.client = fresh
      ? await activatedClient(env.relay, env.codes, m.number, options)
      : await nodeClient(env.relay, options)
    m.client.on('message', (msg) => m.got.push(msg))
    m.client.on('error', (e) => m.errors.push(e))
  }
  const groupAt = (m: Member) => m.client.group(groupId)
  const texts = (m: Member) => m.got.filter((g) => g.group === groupId).map((g) => `${g.from}:${g.text}`)

  beforeAll(async () => {
    for (let i = 0; i < MEMBERS; i += 10) {
      await Promise.all(
        Array.from({ length: Math.min(10, MEMBERS - i) }, async (_, j) => {
          const m: Member = {
            number: number(i + j),
            path: join(dir, `m${i + j}.db`),
            got: [],
            errors: [],
            ...(i + j < 2 ? { transport: recordingTransport(new WsTransport()) } : {}),
          } as unknown as Member
          members[i + j] = m
          await open(m, true)
        }),
      )
    }
  })
  afterAll(async () => {
    await Promise.all(members.map((m) => m?.client?.close()))
  })

  it('a 50-member group with an SMS member: created, and every message in order at every member', async () => {
    const [alice, bob] = members as [Member, Member]
    const group = await alice.client.createGroup({
      name: 'Hikers',
      members: [...members.slice(1).map((m) => m.number), SMS_MEMBER],
    })
    groupId = group.id
    expect(group.members).toHaveLength(MEMBERS + 1)
    expect(group.members.find((m) => m.number === SMS_MEMBER)?.route).toBe('sms')
    for (const m of members) await until(async () => (await groupAt(m)) !== null, WAIT, `${m.number} joined`)
    // Bob becomes an admin (for the concurrent changes below).
    await alice.client.setGroupAdmin(groupId, bob.number, true)
    await until(async () => (await groupAt(bob))?.admin === true, WAIT, 'bob an admin')

    const stored = () => metric(env.relay.metricsUrl, 'parley_relay_multi_sends_total', '{outcome="stored"}')
    const before = await stored()
    const sent = await alice.client.sendGroup(groupId, 'one')
    expect(sent.routes.filter((r) => r.route === 'sms').map((r) => r.number)).toEqual([SMS_MEMBER])
    expect(sent.routes.filter((r) => r.route === 'ip')).toHaveLength(MEMBERS - 1)
    await alice.client.sendGroup(groupId, 'two')
    await bob.client.sendGroup(groupId, 'three')
    await alice.client.sendGroup(groupId, 'four')
    const others = members.slice(1)
    for (const m of others) {
      await until(() => texts(m).length >= (m === bob ? 3 : 4), WAIT, `${m.number} got the messages`)
    }
    // Each sender's messages in its order at every member (senders are not ordered among themselves: bob's first
    // message waits for his sender key to reach every mailbox first).
    for (const m of others.slice(1)) {
      expect(texts(m).filter((t) => t.startsWith(alice.number))).toEqual([
        `${alice.number}:one`,
        `${alice.number}:two`,
        `${alice.number}:four`,
      ])
      expect(texts(m).filter((t) => t.startsWith(bob.number))).toEqual([`${bob.number}:three`])
    }
    expect(texts(alice)).toEqual([`${bob.number}:three`])
    // And one conversation at every member, sent messages included.
    const histories = await Promise.all(
      members.map(async (m) => {
        const c = (await m.client.conversations()).find((x) => x.group === groupId)
        return (await m.client.conversationHistory(c!.id)).messages.map((x) => `${x.from}:${x.text}`)
      }),
    )
    // Received messages stand at the time the relay put them in that member's mailbox, which for two senders'
    // messages can differ from member to member; each sender's own stay in its order everywhere.
    for (const h of histories) {
      expect(h.slice().sort()).toEqual(histories[2]!.slice().sort())
      expect(h.filter((t) => t.startsWith(alice.number))).toEqual([
        `${alice.number}:one`,
        `${alice.number}:two`,
        `${alice.number}:four`,
      ])
    }
    expect(histories[0]!.slice().sort()).toEqual(
      [`${alice.number}:one`, `${alice.number}:two`, `${bob.number}:three`, `${alice.number}:four`].sort(),
    )
    // One mailbox write per member account and message, no more: 49 for each of alice's three, 49 for bob's.
    await until(async () => (await stored()) - before >= 4 * (MEMBERS - 1), WAIT, 'every mailbox write')
    expect((await stored()) - before).toBe(4 * (MEMBERS - 1))
    // The SMS member got each text through the hook, named with the group, and nothing else went to it.
    expect(sms.filter((s) => s.to === SMS_MEMBER).map((s) => [s.text, s.group])).toEqual([
      ['one', groupId],
      ['two', groupId],
      ['three', groupId],
      ['four', groupId],
    ])
    for (const m of members) expect(m.errors.map((e) => e.code)).toEqual([])
  })

  it("reactions, edits and deletions in the group reach every member, each on the sender's own messages", async () => {
    const [alice, bob] = members as [Member, Member]
    const watcher = members[5]!
    const { id } = await alice.client.sendGroup(groupId, 'react to me')
    // Bob reacts to it, so he must have it too (members get their copies in no set order).
    for (const m of [watcher, bob])
      await until(() => texts(m).includes(`${alice.number}:react to me`), WAIT, 'the message')
    const messageOf = async (m: Member) => {
      const c = (await m.client.conversations()).find((x) => x.group === groupId)!
      return (await m.client.conversationHistory(c.id)).messages.find((x) => x.id === id)
    }
    await bob.client.react(id, '👍')
    await until(
      async () => (await messageOf(watcher))?.reactions?.[bob.client.address!] === '👍',
      WAIT,
      'the reaction',
    )
    await alice.client.edit(id, 'react to me (edited)')
    await until(async () => (await messageOf(watcher))?.edited === true, WAIT, 'the edit')
    expect((await messageOf(watcher))?.text).toBe('react to me (edited)')
    expect((await messageOf(bob))?.text).toBe('react to me (edited)')
    // Bob cannot edit alice's message (refused here before anything is sent)…
    await expect(bob.client.edit(id, 'mine now')).rejects.toMatchObject({ code: 'FORBIDDEN' })
    // …nor can a tampered client of his that thinks the message is its own: every member ignores the edit.
    await bob.client.close()
    const store = SqliteStore.open(bob.path)
    const at = new TextDecoder().decode(await store.get(`conversation/index/${id}`))
    const key = JSON.parse(at) as string
    const record = JSON.parse(new TextDecoder().decode(await store.get(key)))
    await store.write([
      { key, value: new TextEncoder().encode(JSON.stringify({ ...record, outgoing: true })) },
    ])
    await store.close()
    await open(bob, false)
    await bob.client.edit(id, 'forged by bob')
    await bob.client.sendGroup(groupId, 'after the forged edit')
    await until(() => texts(watcher).includes(`${bob.number}:after the forged edit`), WAIT, 'bob after it')
    expect((await messageOf(watcher))?.text).toBe('react to me (edited)')
    expect((await messageOf(alice))?.text).toBe('react to me (edited)')
    await alice.client.deleteForEveryone(id)
    await until(async () => (await messageOf(watcher))?.deleted === true, WAIT, 'the deletion')
    expect((await messageOf(watcher))?.text).toBe('')
    expect((await messageOf(alice))?.deleted).toBe(true)
    for (const m of members) expect(m.errors.map((e) => e.code)).toEqual([])
  })

  it('delivery and read receipts come back from each member; the state moves once every member has it', async () => {
    const [alice] = members as [Member]
    const { id } = await alice.client.sendGroup(groupId, 'receipts, please')
    const conversationOf = async (m: Member) =>
      (await m.client.conversations()).find((x) => x.group === groupId)!
    const mine = async () =>
      (await alice.client.conversationHistory((await conversationOf(alice)).id)).messages.find(
        (x) => x.id === id,
      )
    await until(async () => (await mine())?.state === 'delivered', WAIT, 'delivered to every member')
    expect((await mine())?.receipts?.delivered).toHaveLength(MEMBERS - 1)
    expect((await mine())?.receipts?.read).toEqual([])
    // Three members read it: counted, the state stays delivered.
    const readers = members.slice(1, 4)
    for (const m of readers) {
      await until(() => texts(m).includes(`${alice.number}:receipts, please`), WAIT, 'the message')
      await m.client.markRead((await conversationOf(m)).id)
    }
    await until(async () => (await mine())?.receipts?.read.length === 3, WAIT, 'three read receipts')
    expect(new Set((await mine())?.receipts?.read)).toEqual(new Set(readers.map((m) => m.client.address)))
    expect((await mine())?.state).toBe('delivered')
    // Everyone reads it: read.
    for (const m of members.slice(4)) await m.client.markRead((await conversationOf(m)).id)
    await until(async () => (await mine())?.state === 'read', WAIT, 'read by every member')
    // Each receipt carried its sender's delivery token: alice's next message reaches all 49 unidentified, members
    // who never sent her anything else included (the relay does not learn who sent it to them).
    const unidentified = () =>
      metric(env.relay.metricsUrl, 'parley_relay_multi_recipient_recipients_total', '{outcome="stored"}')
    const before = await unidentified()
    await alice.client.sendGroup(groupId, 'all sealed now')
    await until(async () => (await unidentified()) - before === MEMBERS - 1, WAIT, 'every copy unidentified')
  })

  it('a file to the group: uploaded once, every member fetches and opens it, the SMS member is unreached', async () => {
    const [alice] = members as [Member]
    const data = new Uint8Array(200_000).map((_, i) => (i * 7 + 3) & 0xff)
    const sent = await alice.client.sendGroupAttachment(groupId, {
      data,
      mimeType: 'application/octet-stream',
      fileName: 'map.bin',
      caption: 'the map',
    })
    expect(sent.routes.find((r) => r.number === SMS_MEMBER)?.route).toBe('unreached')
    const readers = [members[1]!, members[5]!, members[MEMBERS - 1]!]
    for (const m of readers) {
      await until(() => m.got.some((g) => g.id === sent.id), WAIT, `${m.number} got the file's message`)
      const got = m.got.find((g) => g.id === sent.id)!
      expect(got.group).toBe(groupId)
      expect(got.text).toBe('the map')
      expect(got.attachment?.fileName).toBe('map.bin')
      expect(Buffer.from(await m.client.downloadAttachment(sent.id)).equals(Buffer.from(data))).toBe(true)
    }
    // The sender's own conversation shows it too.
    const c = (await alice.client.conversations()).find((x) => x.group === groupId)!
    const mine = (await alice.client.conversationHistory(c.id)).messages.find((x) => x.id === sent.id)
    expect(mine?.attachment?.size).toBe(data.length)
  })

  it("a device linked to a member later gets the group's state and chains, reads its new messages and sends to it", async () => {
    const [alice, bob] = members as [Member, Member]
    const laptop: Member = {
      number: bob.number,
      path: join(dir, 'bob-laptop.db'),
      got: [],
      errors: [],
    } as unknown as Member
    // This device allows groups of 10 at most: it cannot make a bigger one, and the 51-member group still works.
    laptop.client = await nodeClient(env.relay, { storePath: laptop.path, maxGroupMembers: 10 })
    laptop.client.on('message', (msg) => laptop.got.push(msg))
    laptop.client.on('error', (e) => laptop.errors.push(e))
    const invitation = await bob.client.createLinkCode()
    await laptop.client.link(invitation.code)
    await invitation.linked
    await until(async () => (await groupAt(laptop)) !== null, WAIT, "the laptop has the group's state")
    expect((await groupAt(laptop))?.members).toHaveLength(MEMBERS + 1)
    await expect(
      laptop.client.createGroup({ name: 'too big', members: members.slice(2, 12).map((m) => m.number) }),
    ).rejects.toBeInstanceOf(RangeError)
    // Alice's next message finds bob's list changed, gives bob's account her chain again, then reaches both devices.
    await alice.client.sendGroup(groupId, 'to both of bob')
    await until(
      () => texts(laptop).includes(`${alice.number}:to both of bob`),
      WAIT,
      'the laptop reads alice',
    )
    await until(() => texts(bob).includes(`${alice.number}:to both of bob`), WAIT, 'the phone reads alice')
    // The laptop sends: every member reads it, and bob's phone shows it as its own.
    const fromLaptop = await laptop.client.sendGroup(groupId, 'from the laptop')
    // The laptop has no SMS hook: the SMS member is reported unreached, and nothing else changes.
    expect(fromLaptop.routes.find((r) => r.number === SMS_MEMBER)?.route).toBe('unreached')
    const third = members[3]!
    await until(
      () => texts(third).includes(`${bob.number}:from the laptop`),
      WAIT,
      'a member reads the laptop',
    )
    await until(() => texts(alice).includes(`${bob.number}:from the laptop`), WAIT, 'alice reads the laptop')
    await until(
      () => bob.got.some((m) => m.group === groupId && m.text === 'from the laptop'),
      WAIT,
      "bob's phone sees the laptop's message",
    )
    // And the phone's next message reaches the laptop too.
    await bob.client.sendGroup(groupId, 'from the phone')
    await until(
      () => texts(laptop).includes(`${bob.number}:from the phone`),
      WAIT,
      "the laptop sees the phone's",
    )
    expect(laptop.errors.map((e) => e.code)).toEqual([])
    expect(laptop.client.stats.groupRefused).toBe(0)
    await laptop.client.close()
  })

  it('a removed member gets no ciphertext of what follows; a member offline during the rekey catches up', async () => {
    const [alice, bob, carol, dave] = members as [Member, Member, Member, Member]
    // Carol, as an attacker, keeps a copy of every sender key she holds before she is removed.
    await carol.client.close()
    const carolStore = SqliteStore.open(carol.path)
    const carolChains = (await carolStore.list('group/peer-key/')).map(
      (e) => JSON.parse(new TextDecoder().decode(e.value)) as Record<string, unknown>,
    )
    await carolStore.close()
    expect(carolChains.length).toBeGreaterThanOrEqual(2) // alice's and bob's
    await open(carol, false)
    // Dave is offline while carol is removed and the group rekeys.
    await dave.client.close()
    const carolGot = carol.got.length
    const carolRefused = carol.client.stats.groupRefused
    const removed = await alice.client.removeGroupMembers(groupId, [carol.number])
    expect(removed.members.some((m) => m.number === carol.number)).toBe(false)
    await until(async () => (await groupAt(carol))?.left === true, WAIT, 'carol told she was removed')
    await until(async () => (await groupAt(bob))?.members.length === MEMBERS, WAIT, 'bob saw the removal')
    await alice.client.sendGroup(groupId, 'after carol')
    await bob.client.sendGroup(groupId, 'bob after carol')
    const remaining = members.filter((m) => m !== carol && m !== dave)
    for (const m of remaining) {
      const want = [`${alice.number}:after carol`, `${bob.number}:bob after carol`].filter(
        (t) => !t.startsWith(m.number),
      )
      await until(() => want.every((t) => texts(m).includes(t)), WAIT, `${m.number} after the removal`)
    }
    // Nothing reached carol's device: no message shown, and no ciphertext it could not open.
    expect(carol.got.length).toBe(carolGot)
    expect(carol.client.stats.groupRefused).toBe(carolRefused)
    await expect(carol.client.sendGroup(groupId, 'still here?')).rejects.toMatchObject({ code: 'FORBIDDEN' })
    // And her mailbox on the relay holds nothing either (she acked all she had before).
    await carol.client.close()
    const carolSpy = await login(env.relay.baseUrl, await readDevice(carol.path))
    await carolSpy.request({ syncMailbox: { afterSeq: 0 } })
    carolSpy.close()
    expect(carolSpy.pushes.filter((f) => f.body === 'delivery')).toHaveLength(0)
    await open(carol, false)
    // The ciphertext the group's members do get (taken from dave's mailbox, as the relay could): two group
    // messages under chains carol never had, which none of her old chains opens.
    const daveKeys = await readDevice(dave.path)
    const spy = await login(env.relay.baseUrl, daveKeys)
    await spy.request({ syncMailbox: { afterSeq: 0 } })
    spy.close()
    const groupMessages = spy.pushes
      .filter((f) => f.body === 'delivery')
      .map((f) =>
        openSealedMessage(daveKeys.identity, f.delivery!.envelope!, {
          trustRoot: spy.hello.trustRoot!,
          receivedAtMs: Number(f.delivery!.receivedAtMs),
        }),
      )
      .filter((o) => o.message.kind === 'senderKey')
      .map((o) => o.message.body)
    expect(groupMessages).toHaveLength(2)
    const revive = (v: unknown) => Buffer.from((v as { $b64: string }).$b64, 'base64')
    for (const body of groupMessages) {
      const { distributionId } = peekSenderKeyMessage(body)
      for (const c of carolChains) {
        expect(revive(c.distributionId).equals(Buffer.from(distributionId))).toBe(false)
        const receiver = {
          distributionId: new Uint8Array(revive(c.distributionId)),
          iteration: c.iteration as number,
          chainKey: new Uint8Array(revive(c.chainKey)),
          signingKey: new Uint8Array(revive(c.signingKey)),
          skipped: [],
        }
        expect(() => senderKeyDecrypt(receiver, body)).toThrow()
      }
    }
    // Dave comes back: the removal, both new keys and both messages are in his mailbox, in order.
    await open(dave, false)
    const late = [`${alice.number}:after carol`, `${bob.number}:bob after carol`]
    await until(() => late.every((t) => texts(dave).includes(t)), WAIT, 'dave caught up')
    expect(texts(dave).slice(-2).sort()).toEqual(late)
    expect((await groupAt(dave))?.members.some((m) => m.number === carol.number)).toBe(false)
  })

  it('a member added back reads what is sent from then on, and nothing sent while out', async () => {
    const [alice, bob, carol] = members as [Member, Member, Member]
    const added = await alice.client.addGroupMembers(groupId, [carol.number])
    expect(added.members.some((m) => m.number === carol.number)).toBe(true)
    await until(async () => (await groupAt(carol))?.left === false, WAIT, 'carol back in the group')
    await bob.client.sendGroup(groupId, 'welcome back')
    await until(() => texts(carol).includes(`${bob.number}:welcome back`), WAIT, 'carol reads bob')
    // What was sent while she was out never reached her.
    expect(texts(carol).some((t) => t.endsWith('after carol'))).toBe(false)
    expect(carol.errors.map((e) => e.code)).toEqual([])
  })

  it("two admins' concurrent changes converge on every member, both applied", async () => {
    const [alice, bob] = members as [Member, Member]
    const eve = members[MEMBERS - 1]!
    // Both at once, each on the same revision: alice renames, bob removes eve.
    await Promise.all([
      alice.client.renameGroup(groupId, 'Hikers 2'),
      bob.client.removeGroupMembers(groupId, [eve.number]),
    ])
    const stateOf = async (m: Member) => {
      const g = (await groupAt(m)) as GroupInfo
      return `${g.name}|${g.members.map((x) => `${x.number}${x.admin ? '*' : ''}`).join(',')}`
    }
    const present = members.filter((m) => m !== members[2] && m !== eve)
    await until(
      async () => {
        const states = new Set(await Promise.all(present.map(stateOf)))
        const g = await groupAt(alice)
        return states.size === 1 && g?.name === 'Hikers 2' && !g.members.some((x) => x.number === eve.number)
      },
      WAIT,
      'every member on one state with both changes',
    )
    await until(async () => (await groupAt(eve))?.left === true, WAIT, 'eve told she was removed')
  })

  it("a member's forged change (a tampered client that thinks it is an admin) is refused by every member", async () => {
    const [alice] = members as [Member]
    const mallory = members[10]!
    const refusedBefore = await Promise.all(members.map((m) => m.client.stats.groupRefused))
    // Mallory's own store says she is an admin: her client then makes and sends the change like an admin's.
    await mallory.client.close()
    const store = SqliteStore.open(mallory.path)
    const key = `group/state/${groupId}`
    const record = JSON.parse(new TextDecoder().decode(await store.get(key)))
    const state = decodeGroupUpdate(Buffer.from(record.current.$b64, 'base64'))
    const promoted = encodeGroupUpdate({
      ...state,
      members: state.members.map((m) => (m.e164 === mallory.number ? { ...m, admin: true } : m)),
    })
    record.current = { $b64: Buffer.from(promoted).toString('base64') }
    await store.write([{ key, value: new TextEncoder().encode(JSON.stringify(record)) }])
    await store.close()
    await open(mallory, false)
    await mallory.client.renameGroup(groupId, 'Mallory rules')
    const honest = members.filter((m) => m !== mallory && m !== members[2] && m !== members[MEMBERS - 1])
    await until(
      async () => {
        const counts = await Promise.all(honest.map((m) => m.client.stats.groupRefused))
        return honest.every((m, i) => counts[i]! > refusedBefore[members.indexOf(m)]!)
      },
      WAIT,
      'every member refused the forged change',
    )
    for (const m of honest) {
      expect((await groupAt(m))?.name).toBe('Hikers 2')
      expect(m.errors.filter((e) => e.code === 'FORBIDDEN').length).toBeGreaterThan(0)
    }
    // The group goes on for everyone honest.
    await alice.client.sendGroup(groupId, 'still ours')
    const bob = members[1]!
    await until(() => texts(bob).includes(`${alice.number}:still ours`), WAIT, 'the group goes on')
  })

  it('a member who leaves is gone for everyone and its device forgets every key of the group', async () => {
    const [alice] = members as [Member]
    const leaver = members[7]!
    const info = await leaver.client.leaveGroup(groupId)
    expect(info.left).toBe(true)
    await until(
      async () => (await groupAt(alice))?.members.every((m) => m.number !== leaver.number) === true,
      WAIT,
      'alice saw the member leave',
    )
    await expect(leaver.client.sendGroup(groupId, 'still here?')).rejects.toMatchObject({ code: 'FORBIDDEN' })
    await leaver.client.close()
    const store = SqliteStore.open(leaver.path)
    const keys = [
      ...(await store.list('group/peer-key/')).filter(
        (e) => JSON.parse(new TextDecoder().decode(e.value)).groupId === groupId,
      ),
      ...(await store.list(`group/own-key/${groupId}`)),
    ]
    await store.close()
    expect(keys).toEqual([])
    await open(leaver, false)
  })

  it("the relay's database, its log and the frames sent hold no group id, name, or other member's number", async () => {
    await env.relay.stop()
    const needles = [
      Buffer.from(groupId, 'hex'),
      Buffer.from(groupId),
      Buffer.from('Hikers'),
      Buffer.from(SMS_MEMBER),
      Buffer.from(SMS_MEMBER.slice(1)),
    ]
    const files: string[] = []
    const walk = (d: string) => {
      for (const name of readdirSync(d)) {
        const p = join(d, name)
        if (statSync(p).isDirectory()) walk(p)
        else files.push(p)
      }
    }
    walk(env.relay.dataDir)
    expect(files.length).toBeGreaterThan(0)
    for (const f of files) {
      const bytes = readFileSync(f)
      for (const n of needles) expect(bytes.includes(n), `${n.toString('hex')} in ${f}`).toBe(false)
    }
    // Nor any frame that the group's creator and its other admin sent, all along.
    const other = members.slice(2).map((m) => m.number.slice(1))
    for (const m of members.slice(0, 2)) {
      const frames = m.transport!.sent.map((f) => Buffer.from(f))
      expect(frames.length).toBeGreaterThan(50)
      for (const n of [...needles, ...other.map((d) => Buffer.from(d))])
        expect(
          frames.some((f) => f.includes(n)),
          `${n.toString('hex')} sent by ${m.number}`,
        ).toBe(false)
    }
    // Nor its log, and no log line names two members together.
    const log = env.relay.output.join('\n')
    for (const n of [groupId, 'Hikers', SMS_MEMBER, SMS_MEMBER.slice(1)]) expect(log.includes(n)).toBe(false)
    const addresses = members.map((m) => m.client.address!).filter((a) => a !== null)
    const together = env.relay.output.filter((line) => addresses.filter((a) => line.includes(a)).length > 1)
    expect(together).toEqual([])
    await env.relay.start()
  })
})
