// Groups bench (issue 20): what a sender's device does for one text to a 100-member group (one device each) —
// the content encoded once, encrypted once under its sender key, then sealed once for all member devices — against the
// same text sent 1:1 to one member (the content encoded, a ratchet step, one seal), in the same run, with the
// node:crypto provider @parley/node uses. Also the bytes each member's mailbox stores for it against the 1:1
// envelope, and what removing one of 100 members costs the admin's device (the new state to 99 member accounts,
// each a ratchet step and a seal), for every remaining device then starts a new chain.
// Run: cd bench && npx tsx groups.ts [--quick]
import { nodeCryptoProvider } from '../packages/node/src/nodeCrypto.js'
import {
  createSenderKey,
  encodeContent,
  encodeGroupUpdate,
  generateIdentity,
  generateKemPrekey,
  generateSignedPrekey,
  type IdentityKeyPair,
  joinSealed,
  type PrekeyBundle,
  SealAgreements,
  Session,
  sealEnvelope,
  sealForDevices,
  senderKeyEncrypt,
} from '../packages/protocol/src/index.js' // the source, so the bench needs no build step
import { certifiedSender } from './certified.js'
import { record } from './lib.js'

const quick = process.argv.includes('--quick')
const MEMBERS = 100
const NOW = Date.now()
const crypto = nodeCryptoProvider
const opts = { crypto }
const text = 'on my way, see you at the trailhead in ten minutes'

async function time(fn: () => unknown, minMs = quick ? 300 : 1500): Promise<number> {
  for (let i = 0; i < 3; i++) await fn()
  let n = 0
  const start = performance.now()
  while (performance.now() - start < minMs) {
    await fn()
    n++
  }
  return (performance.now() - start) / n
}

const alice = generateIdentity()
const aliceAddress = new Uint8Array(32).fill(1)
const { senderCertificate, salt } = certifiedSender(alice, aliceAddress, '+14155550100', NOW)
// The device's remembered static secrets, as @parley/client keeps them (one SealAgreements for everything it seals).
const agreements = new SealAgreements()
const seal = (recipient: IdentityKeyPair, message: Parameters<typeof sealEnvelope>[0]['message']) =>
  sealEnvelope(
    {
      senderAddress: aliceAddress,
      senderDeviceId: 1,
      senderIdentity: alice,
      recipientIdentityKey: recipient.publicKey,
      message,
      senderCertificate,
      senderNumber: { e164: '+14155550100', salt },
    },
    { ...opts, agreements },
  )

/** A running (answered) session from alice to a new member. */
async function sessionWith(i: number) {
  const bob = generateIdentity()
  const bobAddress = new Uint8Array(32).fill(0).map((_, j) => (j === 0 ? i : 2))
  const spk = generateSignedPrekey(bob, 1)
  const kem = generateKemPrekey(bob, 1)
  const bundle: PrekeyBundle = {
    address: bobAddress,
    deviceId: 1,
    identityKey: bob.publicKey,
    signedPrekey: { keyId: 1, publicKey: spk.publicKey, signature: spk.signature },
    kemPrekey: { keyId: 1, publicKey: kem.publicKey, signature: kem.signature },
    kemPrekeyIsLastResort: true,
  }
  const { session: a } = Session.initiate(alice, aliceAddress, 1, bundle, opts)
  const { session: b } = await Session.respond(
    bob,
    bobAddress,
    1,
    {
      senderAddress: aliceAddress,
      senderDeviceId: 1,
      senderIdentityKey: alice.publicKey,
      message: a.encrypt(new Uint8Array(160)),
    },
    { signedPrekey: () => spk, oneTimePrekey: () => undefined, kemPrekey: () => kem },
    opts,
  )
  a.decrypt(b.encrypt(new Uint8Array(160)))
  return { identity: bob, address: bobAddress, session: a }
}

const members = await Promise.all(Array.from({ length: MEMBERS }, (_, i) => sessionWith(i + 10)))
const one = members[0]!
let chain = createSenderKey()
const groupId = new Uint8Array(32).fill(9)
const content = () =>
  encodeContent({
    messageId: globalThis.crypto.getRandomValues(new Uint8Array(16)),
    sentAtMs: NOW,
    text,
    groupId,
  })

// 1:1: content, ratchet step (persisted as the client does), one seal.
const direct = () => {
  const message = one.session.encrypt(
    encodeContent({ messageId: globalThis.crypto.getRandomValues(new Uint8Array(16)), sentAtMs: NOW, text }),
  )
  one.session.serialize()
  return seal(one.identity, message)
}
// Group: content once, sender key once, sealed once for every member device (a 54-byte part each); the mailbox
// copy of each member is its part followed by the shared bytes.
const group = (cold = false) => {
  const { message, state } = senderKeyEncrypt(chain, content(), opts)
  chain = state
  // A device keeps its static secrets between a group's messages; `cold` is its first message to these members.
  if (cold) agreements.clear()
  const { shared, parts } = sealForDevices(
    {
      senderAddress: aliceAddress,
      senderDeviceId: 1,
      senderIdentity: alice,
      recipientIdentityKeys: members.map((m) => m.identity.publicKey),
      message: { kind: 'senderKey', body: message },
      senderCertificate,
      senderNumber: { e164: '+14155550100', salt },
    },
    { ...opts, agreements },
  )
  return { shared, parts }
}
// Version 1, as until 2026-12-07: a whole seal per member device (reported beside the figure).
const groupOneByOne = () => {
  const { message, state } = senderKeyEncrypt(chain, content(), opts)
  chain = state
  return members.map((m) => seal(m.identity, { kind: 'senderKey', body: message }))
}
// Removing one of 100: the admin's new state to the 99 remaining accounts and the removed one, pairwise.
const state = encodeGroupUpdate({
  groupId,
  revision: 1,
  parent: new Uint8Array(32).fill(4),
  author: aliceAddress,
  name: 'Hikers',
  members: [
    { address: aliceAddress, e164: '+14155550100', admin: true },
    ...members.slice(1).map((m, i) => ({ address: m.address, e164: `+1415556${1000 + i}`, admin: false })),
  ],
})
const removal = () =>
  members.map((m) => {
    const message = m.session.encrypt(
      encodeContent({
        messageId: globalThis.crypto.getRandomValues(new Uint8Array(16)),
        sentAtMs: NOW,
        groupUpdate: state,
      }),
    )
    return seal(m.identity, message)
  })

const directMs = await time(direct)
const groupMs = await time(() => group())
const coldMs = await time(() => group(true))
const oneByOneMs = await time(groupOneByOne)
const removalMs = await time(removal, quick ? 300 : 1000)
const directBytes = direct().length
const sealed = group()
const groupBytes = joinSealed(sealed.parts[0]!, sealed.shared).length
const uploadBytes = sealed.shared.length + sealed.parts.reduce((n, p) => n + p.length, 0)
const removalBytes = removal().reduce((n, e) => n + e.length, 0)

record(
  'groups',
  [
    {
      metric: `sender CPU, one text to ${MEMBERS} members (1 device each)`,
      unit: 'ms',
      value: groupMs,
      baselineName: 'the same text 1:1 to one member',
      baseline: directMs,
      target: '≤ 10×',
      met: groupMs / directMs <= 10,
    },
    {
      metric: 'bytes stored per member mailbox',
      unit: 'B',
      value: groupBytes,
      baselineName: 'the 1:1 envelope of the same text',
      baseline: directBytes,
      target: '≤ 1.2×',
      met: groupBytes / directBytes <= 1.2,
    },
    {
      metric: `remove one of ${MEMBERS}: the admin's new state to every member account`,
      unit: 'ms',
      value: removalMs,
      baselineName: `one group text to ${MEMBERS} members`,
      baseline: groupMs,
    },
  ],
  [
    `per member device, a group text costs ${(groupMs / MEMBERS).toFixed(3)} ms (one X25519 and two HKDFs, the static secret remembered; the content is encrypted once; a device's first message to these members, computing the static secrets, ${coldMs.toFixed(1)} ms, ${(coldMs / directMs).toFixed(1)}×) where 1:1 costs a ratchet step and a seal (${directMs.toFixed(3)} ms); a whole seal per device (version 1) took ${oneByOneMs.toFixed(1)} ms, ${(oneByOneMs / directMs).toFixed(1)}×`,
    `the sender uploads ${uploadBytes} B for the ${MEMBERS} copies (${(uploadBytes / MEMBERS).toFixed(0)} B per member; whole envelopes would be ${MEMBERS * groupBytes} B)`,
    `the removal's state is ${state.length} B, ${removalBytes} B on the wire in all; each of the ${MEMBERS - 1} remaining devices then sends its new chain to ${MEMBERS - 2} others on its next message (O(n²) for the group)`,
  ],
)
