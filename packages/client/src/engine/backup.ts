// Backup and restore (docs/architecture.md §9.7): the primary's whole store — account identity, prekey secrets,
// sessions, contacts, history, outbox — sealed under a passphrase (`sealBackup`: scrypt, ChaCha20-Poly1305, a
// versioned header), and turned back into the same account on a fresh device, which then verifies the number by
// SMS again and activates with the restored identity, so contacts see no identity change. Not exported.
import { openBackup, ParleyError, sealBackup } from '@parley/protocol'
import { decodeRecord, encodeRecord } from '../internal/codec.js'
import type { StoreWrite } from '../Store.js'
import type { RestoredBackup } from '../types.js'
import type { Engine } from './context.js'
import { isPrimary } from './devices.js'
import { decodeEntry, K, type PreviousRecord, put, putAt } from './keyspace.js'

/** What the archive's plaintext says it is (a later format gets another `format` or `version`). */
const FORMAT = 'parley-client-backup'
const FORMAT_VERSION = 1

interface BackupPlaintext {
  format: string
  version: number
  createdAt: number
  entries: { key: string; value: Uint8Array }[]
}

/**
 * Keys not carried over: what belongs to the device's registration on the relay (the account record, its
 * certificate, cursor, pending activation, a linked device's first upload) and sessions with linked devices,
 * which the relay erases when the number is activated again.
 */
function restorable(key: string): boolean {
  return !(
    key === K.account.key ||
    key === K.pending.key ||
    key === K.previous.key ||
    key === K.cursor.key ||
    key === K.senderCertificate.key ||
    key === K.linkUpload.key ||
    key.startsWith(K.deviceSession.prefix)
  )
}

export class Backups {
  readonly #engine: Engine

  constructor(engine: Engine) {
    this.#engine = engine
  }

  /** `ParleyClient.exportBackup`: the store, sealed under `passphrase`. */
  async export(passphrase: string, options: { logN?: number }): Promise<Uint8Array> {
    const engine = this.#engine
    const account = engine.requireAccount()
    if (!isPrimary(account)) {
      throw new ParleyError(
        'INVALID_STATE',
        'only the primary holds the account identity a backup must carry',
      )
    }
    // A consistent snapshot: no session step or received message lands halfway through the listing.
    const entries = await engine.serial.run(() => engine.store.list(''))
    const plaintext: BackupPlaintext = {
      format: FORMAT,
      version: FORMAT_VERSION,
      createdAt: engine.clock.now(),
      entries: entries.map((e) => ({ key: e.key, value: e.value })),
    }
    return sealBackup(encodeRecord(plaintext), passphrase, {
      random: engine.random,
      crypto: engine.crypto,
      ...(options.logN === undefined ? {} : { logN: options.logN }),
    })
  }

  /**
   * `ParleyClient.restoreBackup`: writes the archive's store into this (empty) device's store, with every session
   * marked stale (it still decrypts mail in flight, and the next send to that contact starts a fresh PQXDH
   * session), and keeps the account identity for the next activation of the number.
   */
  async restore(archive: Uint8Array, passphrase: string): Promise<RestoredBackup> {
    const engine = this.#engine
    if (engine.account !== null) throw new ParleyError('INVALID_STATE', 'this device has an account already')
    if ((await engine.store.list('')).length > 0) {
      throw new ParleyError('INVALID_STATE', 'restore into an empty store (a fresh device)')
    }
    // A wrong passphrase or a damaged archive: openBackup's DECRYPT_FAILED / BAD_REQUEST / UNSUPPORTED.
    const opened = await openBackup(archive, passphrase, { crypto: engine.crypto })
    let plaintext: BackupPlaintext
    try {
      plaintext = decodeRecord<BackupPlaintext>(opened)
    } catch (cause) {
      throw new ParleyError('BAD_REQUEST', 'the backup does not hold a Parley client store', { cause })
    }
    if (
      plaintext?.format !== FORMAT ||
      plaintext.version !== FORMAT_VERSION ||
      !Array.isArray(plaintext.entries)
    ) {
      throw new ParleyError('UNSUPPORTED', 'not a Parley client backup of a version this SDK reads')
    }
    const byKey = new Map(plaintext.entries.map((e) => [e.key, e.value]))
    const accountBytes = byKey.get(K.account.key)
    if (accountBytes === undefined) throw new ParleyError('BAD_REQUEST', 'the backup holds no account')
    const account = K.account.codec.decode(accountBytes)
    const writes: StoreWrite[] = []
    let messages = 0
    for (const { key, value } of plaintext.entries) {
      if (typeof key !== 'string' || !(value instanceof Uint8Array) || !restorable(key)) continue
      if (key.startsWith(K.session.prefix)) {
        const record = decodeEntry(K.session, { key, value })
        writes.push(putAt(K.session, key, { ...record, stale: true }))
        continue
      }
      if (key.startsWith(K.inbox.prefix)) messages++
      writes.push({ key, value })
    }
    const previous: PreviousRecord = { e164: account.e164, identity: account.identity }
    writes.push(put(K.previous, previous))
    await engine.serial.run(() => engine.store.write(writes))
    return { number: account.e164, messages }
  }
}
