// Session.serialize() format: wire.SessionRecord (proto/parley/v1/session_state.proto), local storage only.
import { ParleyError } from '../errors.js'
import type * as wire from '../gen/types.js'
import { ADDRESS_BYTES, concatBytes, equalBytes, IDENTITY_KEY_BYTES } from './bytes.js'
import { own, X25519_BYTES } from './e2eCrypto.js'
import { decodeMessage, encodeMessage } from './pb.js'
import { MAX_CHAINS, MAX_SKIPPED_PER_CHAIN, type RatchetState, type SkippedChain } from './ratchet.js'

export const SESSION_RECORD_VERSION = 1

export interface PendingPrekey {
  signedPrekeyId: number
  oneTimePrekeyId: number | undefined
  kemPrekeyId: number
  kemCiphertext: Uint8Array
}

/** A session as Session.ts holds it: the record's identity fields as stored, the ratchet state decoded. */
export interface SessionData
  extends Pick<
    wire.SessionRecord,
    | 'localIdentityKey'
    | 'remoteIdentityKey'
    | 'remoteAddress'
    | 'remoteDeviceId'
    | 'associatedData'
    | 'baseKey'
  > {
  ratchet: RatchetState
  pending: PendingPrekey | undefined
  /** Responder only: the PQXDH values of the prekey message that created the session. */
  accepted: PendingPrekey | undefined
}

function prekeyProps(p: PendingPrekey): wire.PendingPrekeyInput {
  const out: wire.PendingPrekeyInput = {
    signedPrekeyId: p.signedPrekeyId,
    kemPrekeyId: p.kemPrekeyId,
    kemCiphertext: p.kemCiphertext,
  }
  if (p.oneTimePrekeyId !== undefined) out.oneTimePrekeyId = p.oneTimePrekeyId
  return out
}

function prekeyFrom(p: wire.PendingPrekeyInput | null | undefined): PendingPrekey | undefined {
  if (!p) return undefined
  return {
    signedPrekeyId: p.signedPrekeyId ?? 0,
    oneTimePrekeyId: p.oneTimePrekeyId ?? undefined,
    kemPrekeyId: p.kemPrekeyId ?? 0,
    kemCiphertext: key(p.kemCiphertext, 1088, 'KEM ciphertext'),
  }
}

export function encodeSessionRecord(d: SessionData): Uint8Array {
  const r = d.ratchet
  const props: wire.SessionRecordInput = {
    version: SESSION_RECORD_VERSION,
    localIdentityKey: d.localIdentityKey,
    remoteIdentityKey: d.remoteIdentityKey,
    remoteAddress: d.remoteAddress,
    remoteDeviceId: d.remoteDeviceId,
    associatedData: d.associatedData,
    baseKey: d.baseKey,
    rootKey: r.rootKey,
    sendingRatchetSecret: r.sendSecret,
    sendingRatchetPublic: r.sendPublic,
    sendingCounter: r.ns,
    receivingCounter: r.nr,
    previousCounter: r.pn,
    skippedChains: r.chains.map((c) => ({
      ratchetKey: c.ratchetKey,
      counters: [...c.keys.keys()],
      messageKeys: concatBytes(...c.keys.values()),
    })),
  }
  if (r.recvKey) props.receivingRatchetKey = r.recvKey
  if (r.sendChain) props.sendingChainKey = r.sendChain
  if (r.recvChain) props.receivingChainKey = r.recvChain
  if (d.pending) props.pendingPrekey = prekeyProps(d.pending)
  if (d.accepted) props.acceptedPrekey = prekeyProps(d.accepted)
  return encodeMessage('SessionRecord', props)
}

const invalid = (why: string, cause?: unknown) =>
  new ParleyError('BAD_REQUEST', `invalid session record: ${why}`, cause === undefined ? {} : { cause })

function key(value: Uint8Array | null | undefined, length: number, what: string): Uint8Array {
  const b = own(value)
  if (b.length !== length) throw invalid(what)
  return b
}

function optionalKey(value: Uint8Array | null | undefined, what: string): Uint8Array | undefined {
  return value && value.length > 0 ? key(value, 32, what) : undefined
}

export function decodeSessionRecord(bytes: Uint8Array): SessionData {
  let r: wire.SessionRecord
  try {
    r = decodeMessage('SessionRecord', bytes)
  } catch (cause) {
    throw invalid('undecodable', cause)
  }
  if (r.version !== SESSION_RECORD_VERSION) throw invalid('unknown version')
  const chains: SkippedChain[] = (r.skippedChains ?? []).map((c) => {
    const counters = c.counters ?? []
    const mks = own(c.messageKeys)
    if (counters.length > MAX_SKIPPED_PER_CHAIN || mks.length !== counters.length * 32)
      throw invalid('skipped keys')
    const keys = new Map<number, Uint8Array>()
    for (const [i, n] of counters.entries()) keys.set(n, mks.slice(i * 32, i * 32 + 32))
    return { ratchetKey: key(c.ratchetKey, X25519_BYTES, 'chain key'), keys }
  })
  if (chains.length > MAX_CHAINS) throw invalid('too many chains')
  const recvKey = optionalKey(r.receivingRatchetKey, 'receiving ratchet key')
  const recvChain = optionalKey(r.receivingChainKey, 'receiving chain key')
  if ((recvKey === undefined) !== (recvChain === undefined)) throw invalid('receiving chain')
  const last = chains[chains.length - 1]
  if (recvKey && !(last && equalBytes(last.ratchetKey, recvKey))) throw invalid('receiving chain')
  return {
    localIdentityKey: key(r.localIdentityKey, IDENTITY_KEY_BYTES, 'local identity'),
    remoteIdentityKey: key(r.remoteIdentityKey, IDENTITY_KEY_BYTES, 'remote identity'),
    remoteAddress: key(r.remoteAddress, ADDRESS_BYTES, 'remote address'),
    remoteDeviceId: r.remoteDeviceId ?? 0,
    associatedData: key(
      r.associatedData,
      2 * IDENTITY_KEY_BYTES + 2 * (ADDRESS_BYTES + 4),
      'associated data',
    ),
    baseKey: key(r.baseKey, X25519_BYTES, 'base key'),
    ratchet: {
      rootKey: key(r.rootKey, 32, 'root key'),
      sendSecret: key(r.sendingRatchetSecret, X25519_BYTES, 'ratchet secret'),
      sendPublic: key(r.sendingRatchetPublic, X25519_BYTES, 'ratchet public key'),
      recvKey,
      sendChain: optionalKey(r.sendingChainKey, 'sending chain key'),
      recvChain,
      ns: r.sendingCounter ?? 0,
      nr: r.receivingCounter ?? 0,
      pn: r.previousCounter ?? 0,
      chains,
    },
    pending: prekeyFrom(r.pendingPrekey),
    accepted: prekeyFrom(r.acceptedPrekey),
  }
}
