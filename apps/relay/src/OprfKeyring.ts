/**
 * The relay's OPRF keys (docs/architecture.md §4.2): generated on first start and kept in `<dataDir>/oprf-keys.json`
 * (mode 0600). Each key has an id (its epoch). Rotation (`parley-relay oprf rotate`) adds a new current key and
 * gives the previous one a retirement time; both are announced in `ServerHello` and evaluated until then, while
 * every device moves its account to its address under the new key (`RebindAddress`). A retired key is deleted
 * from the file at the first sweep after its grace period. Running relays re-read the file when it changes
 * (checked at every sweep, and on SIGHUP), so every node sharing it switches within a sweep interval.
 * @module
 */
import { chmodSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { oprfGenerateKeyPair } from '@parley/protocol'

/** One OPRF key epoch. */
export interface OprfKey {
  keyId: number
  secretKey: Uint8Array
  publicKey: Uint8Array
  createdAtMs: number
  /** 0 while current; otherwise when the grace period ends. */
  retireAtMs: number
}

interface KeyFile {
  version: 1
  keys: { keyId: number; secretKey: string; publicKey: string; createdAtMs: number; retireAtMs: number }[]
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'))

/** The key ring; `current` evaluates new requests and derives addresses at activation. */
export class OprfKeyring {
  #keys: OprfKey[]
  readonly #path: string | undefined
  /** The file's modification time and size when last read or written, to notice a rotation by another process. */
  #stamp = ''

  private constructor(keys: OprfKey[], path: string | undefined) {
    this.#keys = keys
    this.#path = path
    this.#stamp = this.#fileStamp()
  }

  #fileStamp(): string {
    if (!this.#path || !existsSync(this.#path)) return ''
    const st = statSync(this.#path)
    return `${st.mtimeMs}:${st.size}:${st.ino}`
  }

  static #read(path: string): OprfKey[] {
    const file = JSON.parse(readFileSync(path, 'utf8')) as KeyFile
    if (file.version !== 1 || !Array.isArray(file.keys) || file.keys.length === 0) {
      throw new Error(`${path} is not a valid OPRF key file`)
    }
    return file.keys.map((k) => ({
      ...k,
      secretKey: unhex(k.secretKey),
      publicKey: unhex(k.publicKey),
    }))
  }

  /**
   * Re-reads the key file if another process (`parley-relay oprf rotate`, another node) changed it.
   * @returns whether the keys changed
   * @throws Error when the changed file is not a valid key file (the keys in memory stay)
   */
  reload(): boolean {
    if (!this.#path) return false
    const stamp = this.#fileStamp()
    if (stamp === this.#stamp) return false
    const keys = OprfKeyring.#read(this.#path)
    this.#stamp = stamp
    const before = this.#keys.map((k) => `${k.keyId}:${k.retireAtMs}`).join(',')
    this.#keys = keys
    return keys.map((k) => `${k.keyId}:${k.retireAtMs}`).join(',') !== before
  }

  /**
   * Deletes the keys whose grace period has ended (from memory and the file): an OPRF key is then gone for good,
   * so a leaked one stops mattering once every account has moved.
   * @returns the ids deleted
   */
  prune(nowMs = Date.now()): number[] {
    const gone = this.#keys.filter((k) => k.retireAtMs !== 0 && k.retireAtMs <= nowMs)
    if (gone.length === 0) return []
    this.#keys = this.#keys.filter((k) => !gone.includes(k))
    this.#save()
    return gone.map((k) => k.keyId)
  }

  /**
   * Loads the key file from a data directory, creating it with a fresh key on first start.
   * @param warn - called when the file is readable by others
   */
  static open(dataDir: string, warn: (msg: string) => void = () => {}): OprfKeyring {
    const path = join(dataDir, 'oprf-keys.json')
    if (!existsSync(path)) {
      const ring = new OprfKeyring([OprfKeyring.#fresh(1)], path)
      ring.#save()
      return ring
    }
    if ((statSync(path).mode & 0o077) !== 0) warn('oprf-keys.json is readable by other users; chmod 600 it')
    return new OprfKeyring(OprfKeyring.#read(path), path)
  }

  /** A key ring held in memory only (tests). */
  static ephemeral(): OprfKeyring {
    return new OprfKeyring([OprfKeyring.#fresh(1)], undefined)
  }

  static #fresh(keyId: number): OprfKey {
    const { secretKey, publicKey } = oprfGenerateKeyPair()
    return { keyId, secretKey, publicKey, createdAtMs: Date.now(), retireAtMs: 0 }
  }

  #save(): void {
    if (!this.#path) return
    const file: KeyFile = {
      version: 1,
      keys: this.#keys.map((k) => ({ ...k, secretKey: hex(k.secretKey), publicKey: hex(k.publicKey) })),
    }
    const tmp = `${this.#path}.tmp`
    writeFileSync(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 })
    chmodSync(tmp, 0o600)
    renameSync(tmp, this.#path)
    this.#stamp = this.#fileStamp()
  }

  /** The key new evaluations and activations use. */
  get current(): OprfKey {
    return this.#keys.reduce((a, b) => (b.retireAtMs === 0 && b.keyId > a.keyId ? b : a), this.#keys[0]!)
  }

  /** Keys still served at `nowMs`, current first. */
  served(nowMs = Date.now()): OprfKey[] {
    const current = this.current
    const others = this.#keys
      .filter((k) => k !== current && k.retireAtMs > nowMs)
      .sort((a, b) => b.keyId - a.keyId)
    return [current, ...others]
  }

  /** The served key with this id, if any. */
  get(keyId: number, nowMs = Date.now()): OprfKey | undefined {
    return this.served(nowMs).find((k) => k.keyId === keyId)
  }

  /**
   * Starts a new epoch: a fresh current key; the previous one is served for `graceMs` more, while devices move
   * their accounts to their addresses under the new key (`RebindAddress`; a device that comes back after the grace
   * period can still move, as the move needs only the current key).
   */
  rotate(graceMs: number, nowMs = Date.now()): OprfKey {
    const previous = this.current
    previous.retireAtMs = nowMs + graceMs
    const next = OprfKeyring.#fresh(Math.max(...this.#keys.map((k) => k.keyId)) + 1)
    this.#keys = [...this.#keys.filter((k) => k.retireAtMs === 0 || k.retireAtMs > nowMs), next]
    this.#save()
    return next
  }
}
