// Attachments (docs/architecture.md §6.9, §7): a file is encrypted here with a fresh key, its blob uploaded to the
// relay's blob store over HTTP (granted by `BlobUploadRequest`), and the key, digest and blob id go inside the
// end-to-end message; the recipient downloads the blob by its id and decrypts it, checking the digest. The relay
// sees only ciphertext under a random id. Not exported.
import { decryptAttachment, encryptAttachment, ParleyError } from '@parley/protocol'
import { toHex } from '../internal/codec.js'
import type { OutgoingAttachment } from '../types.js'
import { type Engine, expectBody } from './context.js'
import type { AttachmentRecord } from './keyspace.js'

/** The most a preview may be (it travels inside the end-to-end message). */
const MAX_PREVIEW_BYTES = 64 * 1024

/** The HTTP base of the relay (`http(s)://host:port`) from its WebSocket URL. */
export function httpBaseOf(relayUrl: string): string {
  const url = new URL(relayUrl)
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:'
  return `${url.protocol}//${url.host}`
}

export class Attachments {
  readonly #engine: Engine
  readonly #base: string
  readonly #fetch: typeof fetch

  constructor(engine: Engine, relayUrl: string, fetchImpl: typeof fetch | undefined) {
    this.#engine = engine
    this.#base = httpBaseOf(relayUrl)
    this.#fetch = fetchImpl ?? ((...args) => globalThis.fetch(...args))
  }

  /** Checks what the app gave, before anything is encrypted or sent. */
  static check(file: OutgoingAttachment): void {
    if (typeof file !== 'object' || file === null || !(file.data instanceof Uint8Array))
      throw new TypeError('the attachment needs data (a Uint8Array)')
    for (const k of ['mimeType', 'fileName', 'caption'] as const) {
      if (file[k] !== undefined && typeof file[k] !== 'string') throw new TypeError(`${k} must be a string`)
    }
    if (
      file.preview !== undefined &&
      (!(file.preview instanceof Uint8Array) || file.preview.length > MAX_PREVIEW_BYTES)
    )
      throw new RangeError('preview must be at most 64 KiB of bytes')
  }

  /**
   * Encrypts `file`, has the relay grant room for it (`downloads`: how many devices will fetch it) and uploads the
   * blob. Resolves what the message carries.
   * @throws ParleyError TOO_LARGE over the relay's limit, RATE_LIMITED over the account's quotas, UNAVAILABLE
   *   when the upload fails
   */
  async upload(file: OutgoingAttachment, downloads: number): Promise<AttachmentRecord> {
    const engine = this.#engine
    const sealed = encryptAttachment(file.data, { crypto: engine.crypto })
    const granted = expectBody(
      await engine.link.request({
        blobUploadRequest: { size: sealed.blob.length, downloads: Math.min(64, Math.max(1, downloads)) },
      }),
      'blobUploadGranted',
    )
    const id = toHex(granted.blobId)
    let response: Response
    try {
      response = await this.#fetch(`${this.#base}/v1/blobs/${id}`, {
        method: 'PUT',
        headers: {
          authorization: `Bearer ${toHex(granted.uploadToken)}`,
          'content-type': 'application/octet-stream',
        },
        body: sealed.blob as Uint8Array<ArrayBuffer>,
      })
    } catch (err) {
      throw new ParleyError('UNAVAILABLE', 'the attachment upload failed', { cause: err })
    }
    if (response.status !== 201) {
      throw new ParleyError(
        'UNAVAILABLE',
        `the relay refused the attachment upload (HTTP ${response.status})`,
      )
    }
    return {
      blobId: id,
      key: sealed.key,
      digest: sealed.digest,
      size: sealed.size,
      ciphertextSize: sealed.ciphertextSize,
      chunkSize: sealed.chunkSize,
      ...(file.mimeType === undefined ? {} : { mimeType: file.mimeType }),
      ...(file.fileName === undefined ? {} : { fileName: file.fileName }),
      ...(file.caption === undefined ? {} : { caption: file.caption }),
      ...(file.preview === undefined ? {} : { preview: file.preview }),
    }
  }

  /**
   * Downloads and decrypts an attachment.
   * @throws ParleyError NOT_FOUND when the relay no longer has it (fetched by every device it was for, or
   *   expired), VERIFICATION_FAILED when the blob is not the one the message named, UNAVAILABLE when the
   *   download fails
   */
  async download(a: AttachmentRecord): Promise<Uint8Array> {
    let response: Response
    try {
      response = await this.#fetch(`${this.#base}/v1/blobs/${a.blobId}`)
    } catch (err) {
      throw new ParleyError('UNAVAILABLE', 'the attachment download failed', { cause: err })
    }
    if (response.status === 404) throw new ParleyError('NOT_FOUND', 'the relay no longer has this attachment')
    if (response.status !== 200)
      throw new ParleyError('UNAVAILABLE', `attachment download: HTTP ${response.status}`)
    const blob = new Uint8Array(await response.arrayBuffer())
    return decryptAttachment(blob, {
      key: a.key,
      digest: a.digest,
      size: a.size,
      chunkSize: a.chunkSize,
      crypto: this.#engine.crypto,
    })
  }
}
