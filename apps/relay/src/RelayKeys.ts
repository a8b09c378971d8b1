/**
 * The relay's certificate keys: a long-term Ed25519 **trust root**, generated at first start and kept in
 * `<dataDir>/relay-keys.json` (mode 0600) beside the OPRF keys, and a short-lived **signing key** that the root
 * certifies. Clients pin the root (first use, or given it by the app); the signing key issues sender
 * certificates and is replaced automatically before it expires, without clients re-pinning anything.
 *
 * Several nodes of one deployment share the file (like `oprf-keys.json`); each may rotate its signing key on
 * its own, which is harmless, as every signing key is certified by the same root.
 * @module
 */
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto'
import { chmodSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createOprfKeyCertificate, createSenderCertificate, createServerCertificate } from '@parley/protocol'

// RFC 8410 PKCS #8 prefix for an Ed25519 secret seed (OID 1.3.101.112); the raw 32 bytes follow.
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex')

/** The Ed25519 public key of a 32-byte secret seed (RFC 8032 §5.1.5), through OpenSSL. */
function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  const der = Buffer.concat([PKCS8_ED25519, secretKey])
  try {
    const { x } = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({
      format: 'jwk',
    })
    return new Uint8Array(Buffer.from(x!, 'base64url'))
  } finally {
    der.fill(0)
  }
}

const randomSecret = () => new Uint8Array(randomBytes(32))

const DAY = 24 * 3600_000
/** How long a signing key is certified for. */
export const SIGNER_VALIDITY_MS = 30 * DAY
/** A signing key with less validity left than this is replaced, so certificates it issues keep their full life. */
const SIGNER_RENEW_MS = 3 * DAY

interface Signer {
  keyId: number
  secretKey: Uint8Array
  publicKey: Uint8Array
  expiresAtMs: number
  /** Encoded ServerCertificate. */
  certificate: Uint8Array
}

interface KeyFile {
  version: 1
  root: { secretKey: string; publicKey: string }
  /** Key of the keyed hashes that abuse counters are filed under (absent in files from before it). */
  quotaKey?: string
  signer: { keyId: number; secretKey: string; publicKey: string; expiresAtMs: number; certificate: string }
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'))

/** What a sender certificate certifies about a device. */
export interface CertifiedDevice {
  address: Uint8Array
  deviceId: number
  identityKey: Uint8Array
  /** 32 bytes, or empty. */
  numberCommitment: Uint8Array
}

/** The trust root and the current signing key. */
export class RelayKeys {
  readonly #rootSecret: Uint8Array
  readonly trustRoot: Uint8Array
  /**
   * 32 secret bytes keying the hashes under which abuse counters are kept (`quotaId`), so that counters can
   * outlive an account and a restart without naming its address or number.
   */
  readonly quotaKey: Uint8Array
  #signer: Signer
  readonly #path: string | undefined

  private constructor(
    rootSecret: Uint8Array,
    signer: Signer | null,
    path: string | undefined,
    nowMs: number,
    quotaKey: Uint8Array = randomSecret(),
  ) {
    this.#rootSecret = rootSecret
    this.trustRoot = publicKeyOf(rootSecret)
    this.quotaKey = quotaKey
    this.#path = path
    this.#signer = signer ?? this.#newSigner(1, nowMs)
  }

  /**
   * Loads `<dataDir>/relay-keys.json`, creating it with a fresh trust root on first start.
   * @param warn - called when the file is readable by others
   * @throws Error for a file that is not a valid key file
   */
  static open(dataDir: string, warn: (msg: string) => void = () => {}, nowMs = Date.now()): RelayKeys {
    const path = join(dataDir, 'relay-keys.json')
    if (!existsSync(path)) {
      const keys = new RelayKeys(randomSecret(), null, path, nowMs)
      keys.#save()
      return keys
    }
    if ((statSync(path).mode & 0o077) !== 0) warn('relay-keys.json is readable by other users; chmod 600 it')
    let file: KeyFile
    try {
      file = JSON.parse(readFileSync(path, 'utf8')) as KeyFile
    } catch {
      throw new Error(`${path} is not valid JSON`)
    }
    if (
      file.version !== 1 ||
      typeof file.root?.secretKey !== 'string' ||
      typeof file.signer?.keyId !== 'number'
    ) {
      throw new Error(`${path} is not a valid relay key file`)
    }
    const rootSecret = unhex(file.root.secretKey)
    if (rootSecret.length !== 32 || hex(publicKeyOf(rootSecret)) !== file.root.publicKey) {
      throw new Error(`${path} holds an inconsistent trust root`)
    }
    const signer: Signer = {
      keyId: file.signer.keyId,
      secretKey: unhex(file.signer.secretKey),
      publicKey: unhex(file.signer.publicKey),
      expiresAtMs: file.signer.expiresAtMs,
      certificate: unhex(file.signer.certificate),
    }
    const quotaKey = typeof file.quotaKey === 'string' ? unhex(file.quotaKey) : undefined
    const keys = new RelayKeys(
      rootSecret,
      signer,
      path,
      nowMs,
      quotaKey?.length === 32 ? quotaKey : undefined,
    )
    if (quotaKey?.length !== 32) keys.#save()
    return keys
  }

  /** Keys held in memory only (tests, `--data-dir :memory:`). */
  static ephemeral(nowMs = Date.now()): RelayKeys {
    return new RelayKeys(randomSecret(), null, undefined, nowMs)
  }

  #newSigner(keyId: number, nowMs: number): Signer {
    const secretKey = randomSecret()
    const publicKey = publicKeyOf(secretKey)
    const expiresAtMs = nowMs + SIGNER_VALIDITY_MS
    const certificate = createServerCertificate(this.#rootSecret, { keyId, publicKey, expiresAtMs })
    return { keyId, secretKey, publicKey, expiresAtMs, certificate }
  }

  #save(): void {
    if (!this.#path) return
    const s = this.#signer
    const file: KeyFile = {
      version: 1,
      root: { secretKey: hex(this.#rootSecret), publicKey: hex(this.trustRoot) },
      quotaKey: hex(this.quotaKey),
      signer: {
        keyId: s.keyId,
        secretKey: hex(s.secretKey),
        publicKey: hex(s.publicKey),
        expiresAtMs: s.expiresAtMs,
        certificate: hex(s.certificate),
      },
    }
    const tmp = `${this.#path}.tmp`
    writeFileSync(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 })
    chmodSync(tmp, 0o600)
    renameSync(tmp, this.#path)
  }

  /** OPRF key certificates by key id, public key and validity (each is signed once). */
  readonly #oprfCertificates = new Map<string, Uint8Array>()

  /**
   * The trust root's certificate of an OPRF key epoch (`OprfPublicKey.certificate` in `ServerHello`): clients
   * use no key without one. A rotation changes the previous key's `validUntilMs`, so it is certified again.
   */
  certifyOprfKey(key: {
    keyId: number
    publicKey: Uint8Array
    validFromMs: number
    validUntilMs: number
  }): Uint8Array {
    const id = `${key.keyId}:${Buffer.from(key.publicKey).toString('hex')}:${key.validFromMs}:${key.validUntilMs}`
    let cert = this.#oprfCertificates.get(id)
    if (cert === undefined) {
      cert = createOprfKeyCertificate(this.#rootSecret, key)
      if (this.#oprfCertificates.size >= 64) this.#oprfCertificates.clear()
      this.#oprfCertificates.set(id, cert)
    }
    return cert
  }

  /** The current signing key's id (it changes on renewal). */
  get signerKeyId(): number {
    return this.#signer.keyId
  }

  /**
   * Issues a sender certificate valid for `ttlMs` (never beyond the signing key's own certificate), renewing
   * the signing key first when it is close to expiry.
   * @returns the encoded certificate and its expiry
   */
  issue(
    device: CertifiedDevice,
    ttlMs: number,
    nowMs = Date.now(),
  ): { certificate: Uint8Array; expiresAtMs: number } {
    if (this.#signer.expiresAtMs - nowMs < Math.max(SIGNER_RENEW_MS, ttlMs)) {
      this.#signer = this.#newSigner(this.#signer.keyId + 1, nowMs)
      this.#save()
    }
    const expiresAtMs = Math.min(nowMs + ttlMs, this.#signer.expiresAtMs)
    const certificate = createSenderCertificate(this.#signer.secretKey, this.#signer.certificate, {
      ...device,
      expiresAtMs,
    })
    return { certificate, expiresAtMs }
  }
}
