import { describe, expect, it } from 'vitest'
import { encodeRecord } from '../internal/codec.js'
import { MemoryStore } from '../Store.js'
import {
  contactRecord,
  del,
  get,
  groupHeldPrefix,
  heldPrefix,
  K,
  KEYSPACE_VERSION,
  put,
  sessionRecord,
} from './keyspace.js'

// The keyspace is the on-disk format of every device: these are the keys and encodings that stores written by
// earlier versions hold. A change here needs a migration and a new KEYSPACE_VERSION.
describe('the engine keyspace', () => {
  it('names every key as stores written so far have it', () => {
    expect(KEYSPACE_VERSION).toBe(1)
    const keys = {
      account: K.account.key,
      pending: K.pending.key,
      previous: K.previous.key,
      cursor: K.cursor.key,
      prekeyMeta: K.prekeyMeta.key,
      spk: K.prekey('spk', 2).key,
      otp: K.prekey('otp', 101).key,
      kem: K.prekey('kem', 12).key,
      oprfPin: K.oprfPin(3).key,
      trustRoot: K.trustRoot.key,
      senderCertificate: K.senderCertificate.key,
      verified: K.verified('ab12').key,
      held: K.held('ab12', 7).key,
      heldPrefix: heldPrefix('ab12'),
      groupHeld: K.groupHeld('ab12', 2, 'cd34', 9).key,
      groupHeldFrom: groupHeldPrefix('ab12'),
      groupHeldChain: groupHeldPrefix('ab12', { deviceId: 2, distributionIdHex: 'cd34' }),
      peerToken: K.peerToken('ab12').key,
      replay: K.replay(4, 'cd34').key,
      token: K.token(3, '+14155550101').key,
      contact: K.contact('+14155550101').key,
      byAddress: K.byAddress('ab12').key,
      session: K.session('ab12').key,
      identity: K.identity('ab12').key,
      outbox: K.outbox(42).key,
      seen: K.seen('ef56').key,
      inbox: K.inbox(1_700_000_000_000, 'ef56').key,
    }
    expect(keys).toEqual({
      account: 'account',
      pending: 'activation/pending',
      previous: 'account/previous',
      cursor: 'mailbox/cursor',
      prekeyMeta: 'prekey/meta',
      spk: 'prekey/spk/0000000000000002',
      otp: 'prekey/otp/0000000000000101',
      kem: 'prekey/kem/0000000000000012',
      oprfPin: 'oprf/pin/0000000000000003',
      trustRoot: 'relay/trust-root',
      senderCertificate: 'account/sender-certificate',
      verified: 'verified/ab12',
      held: 'held/ab12/0000000000000007',
      heldPrefix: 'held/ab12/',
      groupHeld: 'group/held/ab12/0000000000000002/cd34/0000000000000009',
      groupHeldFrom: 'group/held/ab12/',
      groupHeldChain: 'group/held/ab12/0000000000000002/cd34/',
      peerToken: 'delivery/peer/ab12',
      replay: 'replay/0000000000000004/cd34',
      token: 'oprf/token/0000000000000003/+14155550101',
      contact: 'contact/+14155550101',
      byAddress: 'address/ab12',
      session: 'session/ab12',
      identity: 'identity/ab12',
      outbox: 'outbox/0000000000000042',
      seen: 'inbox/seen/ef56',
      inbox: 'inbox/message/0001700000000000/ef56',
    })
    expect([K.session.prefix, K.outbox.prefix, K.inbox.prefix]).toEqual([
      'session/',
      'outbox/',
      'inbox/message/',
    ])
  })

  it('stores records as JSON with bytes inlined, and keys, tokens and certificates as the bytes themselves', () => {
    const address = new Uint8Array([1, 2, 3])
    const contact = { e164: '+14155550101', address, registered: true, checkedAt: 5 }
    expect(put(K.contact(contact.e164), contact)).toEqual({
      key: 'contact/+14155550101',
      value: encodeRecord(contact),
    })
    expect(put(K.cursor, 9)).toEqual({ key: 'mailbox/cursor', value: encodeRecord(9) })
    expect(put(K.byAddress('ab12'), '+14155550101').value).toEqual(encodeRecord('+14155550101'))
    const root = new Uint8Array(32).fill(7)
    expect(put(K.trustRoot, root).value).toBe(root)
    expect(del(K.pending)).toEqual({ key: 'activation/pending' })
    expect(del('outbox/0000000000000001')).toEqual({ key: 'outbox/0000000000000001' })
  })

  it('reads back what it wrote, and nothing where nothing was written', async () => {
    const store = new MemoryStore()
    const address = new Uint8Array([0xab, 0x12])
    const session = { deviceId: 1, identityKey: new Uint8Array([9]), state: new Uint8Array([8]), stale: true }
    const contact = { e164: '+14155550101', address, registered: true, checkedAt: 5, keyId: 2 }
    expect(await get(store, K.cursor)).toBeUndefined()
    expect(await contactRecord(store, contact.e164)).toBeNull()
    expect(await sessionRecord(store, address)).toBeNull()
    await store.write([
      put(K.cursor, 12),
      put(K.contact(contact.e164), contact),
      put(K.session('ab12'), session),
    ])
    expect(await get(store, K.cursor)).toBe(12)
    expect(await contactRecord(store, contact.e164)).toEqual(contact)
    expect(await sessionRecord(store, address)).toEqual(session)
  })
})
