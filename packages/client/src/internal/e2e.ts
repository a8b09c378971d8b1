// The engine's view of @parley/protocol's end-to-end layer: one place that composes sessions, sealed
// envelopes, content encoding and prekey generation. Not exported from the package.
import {
  type CiphertextMessage,
  type Content,
  type CryptoProvider,
  decodeContent,
  encodeContent,
  generateKemPrekey,
  generateOneTimePrekeys,
  generateSignedPrekey,
  type IdentityKeyPair,
  openSealedMessage,
  ParleyError,
  parleyErrorFromWire,
  prekeyBundleFromWire,
  safetyNumber as protocolSafetyNumber,
  type SealAgreements,
  type SealedMessage,
  type ServerBodyOf,
  Session,
  type SharedSeal,
  sealEnvelope,
  sealForDevices,
  signWithIdentity,
  type wire,
} from '@parley/protocol'
import {
  type AttachmentRecord,
  K,
  type LinkUploadRecord,
  type OutgoingBody,
  type PrekeyKind,
  put,
} from '../engine/keyspace.js'
import type { StoreWrite } from '../Store.js'
import { decodeRecord, toHex as toHexString } from './codec.js'

type Random = (n: number) => Uint8Array

/**
 * The randomness and primitives every call of this module uses: the client's own (`ParleyClientOptions.random`
 * and `.crypto`), never a process-wide setting. The engine's shared state has this shape.
 */
export interface Env {
  readonly random: Random
  readonly crypto: CryptoProvider | undefined
  /** The device's remembered static secrets (the engine's); sealing and opening work without. */
  readonly agreements?: SealAgreements | undefined
}
type Upload = NonNullable<NonNullable<import('@parley/protocol').ClientFrameInput['prekeyUpload']>>

export interface Ours {
  address: Uint8Array
  deviceId: number
  identity: IdentityKeyPair
}

/** An opened envelope whose sender the certificate proved. */
export interface Opened {
  senderAddress: Uint8Array
  senderDeviceId: number
  senderIdentityKey: Uint8Array
  /** The sender's number when it stated it and the certified commitment opened to it. */
  senderNumber: string | undefined
  /** An address-change notice the sender carried (not yet verified: `Contacts.followNumberChange` does). */
  addressChange: Uint8Array | undefined
  /** A session message, or (kind `senderKey`) a group message for engine/groups.ts. */
  message: SealedMessage
}

/** An opened envelope that carries a session message (what {@link decrypt} takes). */
export type OpenedSession = Opened & { message: CiphertextMessage }

export interface DecryptedContent {
  messageId: Uint8Array
  sentAtMs: number
  text: string
  /** The sender's delivery token for unidentified replies. */
  deliveryToken?: Uint8Array
  /** On a sent transcript from another device of this account: the address the message went to. */
  transcriptTo?: Uint8Array
  /** A part of the account's history (an encoded `HistoryChunk`) instead of a text; `text` is then empty. */
  history?: Uint8Array
  /** An address-change notice (a control message) instead of a text; `text` is then empty. */
  addressChange?: Uint8Array
  /** With `addressChange`, from this account's primary: the account's new number and its commitment salt. */
  accountNumber?: { e164: string; salt: Uint8Array }
  /**
   * A body this SDK does not show yet (an attachment, a reaction, an edit, a deletion, or a newer peer's type):
   * `text` is then the sender's fallback text.
   */
  unsupported?: true
  /** A typing indicator: not a message, never shown as one (the `typing` event). */
  typing?: { started: boolean }
  /** A reaction, an edit, a deletion for everyone or a receipt (ids in hex): acts on other messages. */
  action?: OutgoingBody
  /** With a text: the id (hex) of the message it quotes. */
  replyTo?: string
  /** An attachment (then `text` is its caption). */
  attachment?: AttachmentRecord
  /** A group's new state (an encoded `GroupUpdate`): a control message. */
  groupUpdate?: Uint8Array
  /** A member device's sender key for a group (an encoded `GroupKey`): a control message. */
  groupKey?: Uint8Array
  /** In a group message: the group's id (hex). */
  groupId?: string
}

function toDecrypted(c: ReturnType<typeof decodeContent>): DecryptedContent {
  // Content.sender_number is ignored: only the certified opening in the sealed envelope proves a number.
  const action = actionOf(c)
  const a = c.attachment
  const attachment: AttachmentRecord | undefined =
    a === undefined
      ? undefined
      : {
          blobId: toHexString(a.blobId),
          key: a.key,
          digest: a.digest,
          size: a.size,
          ciphertextSize: a.ciphertextSize,
          chunkSize: a.chunkSize,
          ...(a.mimeType === undefined ? {} : { mimeType: a.mimeType }),
          ...(a.fileName === undefined ? {} : { fileName: a.fileName }),
          ...(a.caption === undefined ? {} : { caption: a.caption }),
          ...(a.preview === undefined ? {} : { preview: a.preview }),
        }
  const shown =
    attachment !== undefined ||
    c.text !== undefined ||
    c.data !== undefined ||
    c.history !== undefined ||
    c.addressChange !== undefined ||
    c.groupUpdate !== undefined ||
    c.groupKey !== undefined ||
    action !== undefined
  const typing = c.typing
  return {
    messageId: c.messageId,
    sentAtMs: c.sentAtMs,
    text: c.text ?? attachment?.caption ?? (shown ? '' : (c.fallbackText ?? '')),
    ...(attachment === undefined ? {} : { attachment }),
    ...(typing !== undefined
      ? { typing: { started: typing.started } }
      : !shown
        ? { unsupported: true as const }
        : {}),
    ...(action === undefined ? {} : { action }),
    ...(c.replyTo !== undefined && c.text !== undefined ? { replyTo: toHexString(c.replyTo) } : {}),
    ...(c.deliveryToken ? { deliveryToken: c.deliveryToken } : {}),
    ...(c.transcriptTo ? { transcriptTo: c.transcriptTo } : {}),
    ...(c.history ? { history: c.history } : {}),
    ...(c.groupUpdate ? { groupUpdate: c.groupUpdate } : {}),
    ...(c.groupKey ? { groupKey: c.groupKey } : {}),
    ...(c.groupId ? { groupId: toHexString(c.groupId) } : {}),
    ...(c.addressChange ? { addressChange: c.addressChange } : {}),
    ...(c.accountNumber ? { accountNumber: { e164: c.accountNumber.e164, salt: c.accountNumber.salt } } : {}),
  }
}

/** The action a decoded content carries, its ids in hex; undefined for any other body. */
function actionOf(c: ReturnType<typeof decodeContent>): OutgoingBody | undefined {
  if (c.reaction) {
    const r = c.reaction
    return { reaction: { targetId: toHexString(r.targetId), emoji: r.emoji, remove: r.remove === true } }
  }
  if (c.edit) return { edit: { targetId: toHexString(c.edit.targetId), text: c.edit.text } }
  if (c.deleteForEveryone) return { deleteForEveryone: toHexString(c.deleteForEveryone) }
  if (c.receipt)
    return { receipt: { kind: c.receipt.kind, messageIds: c.receipt.messageIds.map(toHexString) } }
  return undefined
}

export interface Decrypted {
  /** The session that decrypted, now the current one. */
  state: Uint8Array
  /** The contact's other recent sessions, most recent first. */
  previous: Uint8Array[]
  content: DecryptedContent
  consumedOneTimePrekeys: number[]
  consumedKemPrekeys: number[]
  /** Set when a new session was started from a first message: record it so a replay is refused. */
  replayKey?: { signedPrekeyId: number; baseKey: Uint8Array }
}

/** Ed25519 signature by the identity key. */
export function sign(identity: IdentityKeyPair, message: Uint8Array): Uint8Array {
  return signWithIdentity(identity.secretKey, message)
}

/** Constant-time byte equality. */
export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!
  return d === 0
}

/** The wire error as a ParleyError. */
export function wireError(err: ServerBodyOf<'error'>): ParleyError {
  return parleyErrorFromWire(err)
}

/** First prekeys of a new device: signed prekey 1, one-time prekeys 1..n, last-resort KEM 1, one-time KEMs 2... */
export function generateInitialPrekeys(
  identity: IdentityKeyPair,
  env: Env,
  otpCount: number,
  kemCount: number,
  /** First key ids (default 1 each): after the ids an identity already used, so none is overwritten. */
  first: { spk: number; otp: number; kem: number } = { spk: 1, otp: 1, kem: 1 },
) {
  const spk = generateSignedPrekey(identity, first.spk, env.random, env)
  const otps = generateOneTimePrekeys(first.otp, otpCount, env.random, env)
  const lastResort = generateKemPrekey(identity, first.kem, env.random)
  const kems = Array.from({ length: kemCount }, (_, i) =>
    generateKemPrekey(identity, first.kem + 1 + i, env.random),
  )
  const secrets: StoreWrite[] = [
    put(K.prekey('spk', spk.keyId), { publicKey: spk.publicKey, secretKey: spk.secretKey }),
    ...otps.map((k) => put(K.prekey('otp', k.keyId), { secretKey: k.secretKey })),
    put(K.prekey('kem', lastResort.keyId), { secretKey: lastResort.secretKey, lastResort: true }),
    ...kems.map((k) => put(K.prekey('kem', k.keyId), { secretKey: k.secretKey })),
  ]
  const upload: LinkUploadRecord = {
    signedPrekey: { keyId: spk.keyId, publicKey: spk.publicKey, signature: spk.signature },
    oneTimePrekeys: otps.map((k) => ({ keyId: k.keyId, publicKey: k.publicKey })),
    lastResortKemPrekey: {
      keyId: lastResort.keyId,
      publicKey: lastResort.publicKey,
      signature: lastResort.signature,
    },
    oneTimeKemPrekeys: kems.map((k) => ({ keyId: k.keyId, publicKey: k.publicKey, signature: k.signature })),
  }
  return {
    upload,
    secrets,
    signedPrekeyId: spk.keyId,
    lastResortKemId: lastResort.keyId,
    nextOtpId: first.otp + otpCount,
    nextKemId: first.kem + 1 + kemCount,
  }
}

/** A new signed prekey: its secret as a store write and its public part for upload. */
export function generateSignedPrekeyWrite(identity: IdentityKeyPair, keyId: number, env: Env) {
  const spk = generateSignedPrekey(identity, keyId, env.random, env)
  return {
    secret: put(K.prekey('spk', spk.keyId), { publicKey: spk.publicKey, secretKey: spk.secretKey }),
    upload: { keyId: spk.keyId, publicKey: spk.publicKey, signature: spk.signature },
  }
}

/** A batch of new one-time prekeys (X25519 and/or KEM) with their secrets as store writes. */
export function generateRefill(
  identity: IdentityKeyPair,
  env: Env,
  otp: { startId: number; count: number } | null,
  kem: { startId: number; count: number } | null,
): { upload: Upload; secrets: StoreWrite[] } {
  const otps = otp === null ? [] : generateOneTimePrekeys(otp.startId, otp.count, env.random, env)
  const kems =
    kem === null
      ? []
      : Array.from({ length: kem.count }, (_, i) => generateKemPrekey(identity, kem.startId + i, env.random))
  return {
    upload: {
      oneTimePrekeys: otps.map((k) => ({ keyId: k.keyId, publicKey: k.publicKey })),
      oneTimeKemPrekeys: kems.map((k) => ({
        keyId: k.keyId,
        publicKey: k.publicKey,
        signature: k.signature,
      })),
    },
    secrets: [
      ...otps.map((k) => put(K.prekey('otp', k.keyId), { secretKey: k.secretKey })),
      ...kems.map((k) => put(K.prekey('kem', k.keyId), { secretKey: k.secretKey })),
    ],
  }
}

/**
 * Starts a session from a relay bundle (verifying its signatures), refusing a bundle for another address than
 * the one asked for: a relay must not be able to substitute someone else's keys.
 */
export function initiate(ours: Ours, requested: Uint8Array, bundleWire: wire.PrekeyBundleInput, env: Env) {
  const bundle = prekeyBundleFromWire(bundleWire)
  if (!equal(bundle.address, requested)) {
    throw new ParleyError('VERIFICATION_FAILED', 'the relay returned a prekey bundle for another address')
  }
  const { session } = Session.initiate(ours.identity, ours.address, ours.deviceId, bundle, env)
  return { state: session.serialize(), identityKey: bundle.identityKey, deviceId: bundle.deviceId }
}

/** Encrypts content in a session; returns the new session state and the session message (not yet sealed). */
export function encrypt(args: { session: Uint8Array; content: Content; env: Env }): {
  state: Uint8Array
  message: CiphertextMessage
} {
  const session = Session.deserialize(args.session, args.env)
  const message = session.encrypt(encodeContent(args.content))
  return { state: session.serialize(), message }
}

/**
 * Seals a session message for the recipient with this device's current sender certificate and, when the
 * account has one, the opening of its number commitment. Sealing is repeated on every send attempt, so a
 * message that waited in the outbox goes out with a fresh certificate.
 */
export function seal(args: {
  ours: Ours
  recipientIdentityKey: Uint8Array
  message: SealedMessage
  certificate: Uint8Array
  number: { e164: string; salt: Uint8Array } | undefined
  /** The account's address-change notice, carried for a while after a number change. */
  addressChange?: Uint8Array | undefined
  env: Env
}): Uint8Array {
  return sealEnvelope(
    {
      senderAddress: args.ours.address,
      senderDeviceId: args.ours.deviceId,
      senderIdentity: args.ours.identity,
      recipientIdentityKey: args.recipientIdentityKey,
      message: args.message,
      senderCertificate: args.certificate,
      senderNumber: args.number,
      ...(args.addressChange ? { addressChange: args.addressChange } : {}),
    },
    args.env,
  )
}

/** What a sealed message states of its sender beside its keys: the certificate, number and notice of {@link seal}. */
export interface SenderStatement {
  certificate: Uint8Array
  number: { e164: string; salt: Uint8Array } | undefined
  /** The account's address-change notice, carried for a while after a number change. */
  addressChange?: Uint8Array | undefined
}

/**
 * Seals one group message once for many devices (a version-2 envelope: the content encrypted once, a 54-byte
 * part per device); each device's envelope is its part followed by `shared`.
 */
export function sealForMany(
  args: SenderStatement & {
    ours: Ours
    recipientIdentityKeys: Uint8Array[]
    message: SealedMessage
    env: Env
  },
): SharedSeal {
  return sealForDevices(
    {
      senderAddress: args.ours.address,
      senderDeviceId: args.ours.deviceId,
      senderIdentity: args.ours.identity,
      recipientIdentityKeys: args.recipientIdentityKeys,
      message: args.message,
      senderCertificate: args.certificate,
      senderNumber: args.number,
      ...(args.addressChange ? { addressChange: args.addressChange } : {}),
    },
    args.env,
  )
}

/**
 * Opens a sealed envelope addressed to us and proves its sender against the pinned trust root (throws
 * `SENDER_UNVERIFIED` otherwise), at the time the relay received it.
 */
export function open(
  identity: IdentityKeyPair,
  envelope: Uint8Array,
  trustRoot: Uint8Array,
  receivedAtMs: number,
  env: Env,
): Opened {
  const { sender, message } = openSealedMessage(identity, envelope, {
    trustRoot,
    receivedAtMs,
    crypto: env.crypto,
    agreements: env.agreements,
  })
  return {
    senderAddress: sender.address,
    senderDeviceId: sender.deviceId,
    senderIdentityKey: sender.identityKey,
    senderNumber: sender.number,
    addressChange: sender.addressChange,
    message,
  }
}

/**
 * Sessions kept besides the current one, of every identity the contact has had (libsignal archives 40 too):
 * mail still in flight under a replaced session, or under the contact's previous identity, keeps decrypting.
 */
export const MAX_PREVIOUS_SESSIONS = 40

/**
 * Decrypts an opened envelope with the contact's current session, one of its recent previous sessions
 * (libsignal keeps these too), or a new session from our prekeys. The session that decrypted becomes the
 * current one. This is what makes simultaneous first messages work: both sides start a session, each then
 * answers the other's, and mail under either session still decrypts while the two converge.
 */
export async function decrypt(args: {
  ours: Ours
  current: Uint8Array | null
  previous: readonly Uint8Array[]
  opened: OpenedSession
  loadPrekey: (kind: PrekeyKind, id: number) => Promise<Uint8Array | undefined>
  /** Whether a first message with this base key under this signed prekey was already accepted. */
  replayed: (signedPrekeyId: number, baseKey: Uint8Array) => Promise<boolean>
  env: Env
}): Promise<Decrypted> {
  const { opened } = args
  // Every session is kept (up to the archive limit), whatever its identity; only those with the identity that
  // sealed this message may decrypt it. A session of another identity is never dropped because of a message.
  const all = [args.current, ...args.previous]
    .filter((b): b is Uint8Array => b !== null)
    .map((bytes) => ({ bytes, session: Session.deserialize(bytes, args.env) }))
  const known = all.filter((c) => equal(c.session.remoteIdentityKey, opened.senderIdentityKey))
  const promote = (i: number, plaintext: Uint8Array): Decrypted => ({
    state: known[i]!.session.serialize(),
    previous: all
      .filter((c) => c !== known[i])
      .map((c) => c.bytes)
      .slice(0, MAX_PREVIOUS_SESSIONS),
    content: toDecrypted(decodeContent(plaintext)),
    consumedOneTimePrekeys: [],
    consumedKemPrekeys: [],
  })
  if (opened.message.kind === 'ratchet') {
    let first: unknown
    for (let i = 0; i < known.length; i++) {
      try {
        return promote(i, known[i]!.session.decrypt(opened.message))
      } catch (err) {
        // DUPLICATE means this very session has seen the message: no other session can be right.
        if (ParleyError.is(err, 'DUPLICATE')) throw err
        first ??= err
      }
    }
    throw first ?? new ParleyError('DECRYPT_FAILED', 'no session with the sender for this message')
  }
  for (let i = 0; i < known.length; i++) {
    if (known[i]!.session.matchesPrekeyMessage(opened.message)) {
      return promote(i, known[i]!.session.decrypt(opened.message))
    }
  }
  const info = Session.prekeyMessageInfo(opened.message)
  if (await args.replayed(info.signedPrekeyId, info.baseKey)) {
    throw new ParleyError('DUPLICATE', 'this first message was already accepted (replay)')
  }
  const load = async <T>(kind: PrekeyKind, id: number): Promise<T | undefined> => {
    const raw = await args.loadPrekey(kind, id)
    return raw === undefined ? undefined : decodeRecord<T>(raw)
  }
  let kemIsLastResort = false
  const result = await Session.respond(
    args.ours.identity,
    args.ours.address,
    args.ours.deviceId,
    opened,
    {
      signedPrekey: (id) => load<{ publicKey: Uint8Array; secretKey: Uint8Array }>('spk', id),
      oneTimePrekey: (id) => load<{ secretKey: Uint8Array }>('otp', id),
      kemPrekey: async (id) => {
        const k = await load<{ secretKey: Uint8Array; lastResort?: boolean }>('kem', id)
        kemIsLastResort = k?.lastResort === true
        return k
      },
    },
    args.env,
  )
  return {
    state: result.session.serialize(),
    previous: all.map((c) => c.bytes).slice(0, MAX_PREVIOUS_SESSIONS),
    content: toDecrypted(decodeContent(result.plaintext)),
    consumedOneTimePrekeys:
      result.consumed.oneTimePrekeyId === undefined ? [] : [result.consumed.oneTimePrekeyId],
    consumedKemPrekeys: kemIsLastResort ? [] : [result.consumed.kemPrekeyId],
    replayKey: { signedPrekeyId: info.signedPrekeyId, baseKey: info.baseKey },
  }
}

/** The content of a group message's plaintext (opened by `senderKeyDecrypt`). */
export function groupContent(plaintext: Uint8Array): DecryptedContent {
  return toDecrypted(decodeContent(plaintext))
}

/**
 * Whether a stored session is still waiting for the peer's first reply (its messages are first messages, bound
 * to the addresses it was started with).
 */
export function awaitingReply(state: Uint8Array): boolean {
  return Session.deserialize(state).awaitingReply
}

/** The 60-digit safety number of two identities. */
export function safetyNumber(
  localKey: Uint8Array,
  localAddress: Uint8Array,
  remoteKey: Uint8Array,
  remoteAddress: Uint8Array,
): string {
  return protocolSafetyNumber(localKey, localAddress, remoteKey, remoteAddress)
}
