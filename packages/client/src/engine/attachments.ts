// Attachments (docs/architecture.md §6.9, §7): a file is encrypted here with a fresh key, its blob uploaded to the
// relay's blob store over HTTP (granted by `BlobUploadRequest`), and the key, digest and blob id go inside the
// end-to-end message; the recipient downloads the blob by its id and decrypts it, checking the digest. The relay
// sees only ciphertext under a random id. Not exported.
import {
  attachmentCiphertextSize,
  createAttachmentDecryptor,
  createAttachmentEncryptor,
  DEFAULT_ATTACHMENT_CHUNK_BYTES,
  decryptAttachment,
  encryptAttachment,
  ParleyError,
} from '@parley/protocol'
import { toHex } from '../internal/codec.js'
import type { OutgoingAttachment } from '../types.js'
import { type Engine, expectBody } from './context.js'
import type { AttachmentRecord } from './keyspace.js'

/** The most a preview may be (it travels inside the end-to-end message). */
const MAX_PREVIEW_BYTES = 64 * 1024
/** The most downloads a blob is asked for (the relay's limit: 1,000 members of five devices each). */
const MAX_DOWNLOADS = 5000

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

  readonly #streamUploads: boolean

  constructor(engine: Engine, relayUrl: string, fetchImpl: typeof fetch | undefined, streamUploads: boolean) {
    this.#engine = engine
    this.#base = httpBaseOf(relayUrl)
    this.#fetch = fetchImpl ?? ((...args) => globalThis.fetch(...args))
    this.#streamUploads = streamUploads
  }

  /** Checks what the app gave, before anything is encrypted or sent. */
  static check(file: OutgoingAttachment): void {
    const needs = 'the attachment needs data (a Uint8Array), or a stream and its size'
    if (typeof file !== 'object' || file === null) throw new TypeError(needs)
    // Exactly one of the two.
    const hasStream = file.stream !== undefined
    if ((file.data !== undefined) === hasStream) throw new TypeError(needs)
    if (!hasStream && !(file.data instanceof Uint8Array)) throw new TypeError(needs)
    if (hasStream) {
      const s = file.stream as Partial<AsyncIterable<Uint8Array> & ReadableStream<Uint8Array>>
      if (
        typeof s !== 'object' ||
        s === null ||
        (typeof s.getReader !== 'function' && typeof s[Symbol.asyncIterator] !== 'function')
      )
        throw new TypeError('stream must be a ReadableStream or an async iterable of Uint8Array')
      if (!Number.isSafeInteger(file.size) || (file.size as number) < 0)
        throw new TypeError('a stream needs its size: a non-negative integer of bytes')
    }
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
    const whole =
      file.data === undefined ? undefined : encryptAttachment(file.data, { crypto: engine.crypto })
    const chunkSize = whole?.chunkSize ?? DEFAULT_ATTACHMENT_CHUNK_BYTES
    const ciphertextSize = whole?.ciphertextSize ?? attachmentCiphertextSize(file.size!, chunkSize)
    const grant = async (asked: number) =>
      expectBody(
        await engine.link.request({ blobUploadRequest: { size: ciphertextSize, downloads: asked } }),
        'blobUploadGranted',
      )
    const asked = Math.min(MAX_DOWNLOADS, Math.max(1, downloads))
    // A relay from before 2026-12-07 grants at most 64, refusing more as BAD_REQUEST.
    const granted = await grant(asked).catch((err: unknown) => {
      if (asked > 64 && ParleyError.is(err, 'BAD_REQUEST')) return grant(64)
      throw err
    })
    // A large file to many devices: the relay grants fewer downloads (or, older, says nothing of it and 64).
    const got = granted.downloads || Math.min(64, downloads)
    if (got < downloads) {
      engine.emitRecoverable(
        new ParleyError(
          'TOO_LARGE',
          `the file can be fetched ${got} times, by fewer than its ${downloads} devices`,
        ),
      )
    }
    const id = toHex(granted.blobId)
    // A stream is encrypted as the upload reads it; what is wrong with it (its length, its own error) is the app's
    // to hear as it was, not as a failed upload.
    const streamed = whole === undefined ? sealedStream(file, chunkSize, engine) : undefined
    const put = (body: BodyInit) =>
      this.#fetch(`${this.#base}/v1/blobs/${id}`, {
        method: 'PUT',
        headers: {
          authorization: `Bearer ${toHex(granted.uploadToken)}`,
          'content-type': 'application/octet-stream',
        },
        body,
        // A streamed body (fetch requires it; ignored for the others).
        duplex: 'half',
      } as RequestInit)
    // A stream that failed: an empty upload gives the grant back at once (the relay deletes a grant whose upload
    // is short), rather than holding the account's quota until the token expires.
    const abandon = async (failure: unknown): Promise<never> => {
      await put(new Uint8Array(0)).catch(() => {})
      throw failure
    }
    let body: BodyInit
    if (whole !== undefined) body = whole.blob as Uint8Array<ArrayBuffer>
    else if (this.#streamUploads) body = toReadable(streamed!.chunks)
    else {
      const parts: Uint8Array<ArrayBuffer>[] = []
      try {
        for await (const c of streamed!.chunks) parts.push(c as Uint8Array<ArrayBuffer>)
      } catch (err) {
        return abandon(err)
      }
      body = new Blob(parts)
    }
    let response: Response
    try {
      response = await put(body)
    } catch (err) {
      if (streamed?.failure !== undefined) return abandon(streamed.failure)
      throw new ParleyError('UNAVAILABLE', 'the attachment upload failed', { cause: err })
    }
    if (streamed?.failure !== undefined) return abandon(streamed.failure)
    if (response.status !== 201) {
      throw new ParleyError(
        'UNAVAILABLE',
        `the relay refused the attachment upload (HTTP ${response.status})`,
      )
    }
    const sealed = whole ?? streamed!.result()
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
    const response = await this.#get(a)
    let blob: Uint8Array
    try {
      blob = new Uint8Array(await response.arrayBuffer())
    } catch (err) {
      throw new ParleyError('UNAVAILABLE', 'the attachment download failed', { cause: err })
    }
    return decryptAttachment(blob, this.#opening(a))
  }

  /** What opens an attachment's blob: the message's key, digest and sizes, and this client's primitives. */
  #opening(a: AttachmentRecord) {
    return { key: a.key, digest: a.digest, size: a.size, chunkSize: a.chunkSize, crypto: this.#engine.crypto }
  }

  /** GETs an attachment's blob: the response, once it answered 200. */
  async #get(a: AttachmentRecord): Promise<Response> {
    let response: Response
    try {
      response = await this.#fetch(`${this.#base}/v1/blobs/${a.blobId}`)
    } catch (err) {
      throw new ParleyError('UNAVAILABLE', 'the attachment download failed', { cause: err })
    }
    if (response.status === 404) throw new ParleyError('NOT_FOUND', 'the relay no longer has this attachment')
    if (response.status !== 200)
      throw new ParleyError('UNAVAILABLE', `attachment download: HTTP ${response.status}`)
    return response
  }

  /**
   * Downloads an attachment as a stream of its decrypted bytes, never holding the whole file. Each chunk is
   * released once its tag verifies, except the newest, which is held back until the next one has verified or,
   * at the end, until the whole blob matched its digest: the stream closes only when the file is whole and the
   * one the message named, and otherwise errors (`VERIFICATION_FAILED`) before its last bytes.
   * @throws ParleyError as {@link Attachments.download}: NOT_FOUND and UNAVAILABLE before the stream is returned;
   *   VERIFICATION_FAILED and UNAVAILABLE as the stream's error
   */
  async downloadStream(a: AttachmentRecord): Promise<ReadableStream<Uint8Array>> {
    const response = await this.#get(a)
    if (response.body === null) throw new ParleyError('UNAVAILABLE', 'attachment download: no body')
    const reader = response.body.getReader()
    const dec = createAttachmentDecryptor(this.#opening(a))
    let held: Uint8Array | undefined
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        for (;;) {
          let next: ReadableStreamReadResult<Uint8Array>
          try {
            next = await reader.read()
          } catch (err) {
            throw new ParleyError('UNAVAILABLE', 'the attachment download failed', { cause: err })
          }
          if (next.done) {
            dec.finish()
            if (held !== undefined) controller.enqueue(held)
            held = undefined
            controller.close()
            return
          }
          const out = dec.push(next.value)
          if (out.length === 0) continue
          if (held !== undefined) controller.enqueue(held)
          for (let i = 0; i < out.length - 1; i++) controller.enqueue(out[i]!)
          held = out[out.length - 1]
          return
        }
      },
      async cancel(reason) {
        held = undefined
        await reader.cancel(reason)
      },
    })
  }
}

/** The secrets of a streamed attachment, once all of it was read. */
type StreamedSecrets = ReturnType<ReturnType<typeof createAttachmentEncryptor>['finish']>

/**
 * The encrypted chunks of `file.stream`, read as they are asked for. `failure` is what went wrong with the stream
 * itself (its own error, or a length other than `file.size`), `result()` the secrets once it was read whole.
 */
function sealedStream(
  file: OutgoingAttachment,
  chunkSize: number,
  engine: Engine,
): { chunks: AsyncIterable<Uint8Array>; readonly failure: unknown; result(): StreamedSecrets } {
  const enc = createAttachmentEncryptor({ chunkSize, crypto: engine.crypto })
  const size = file.size!
  let done: StreamedSecrets | undefined
  let failure: unknown
  async function* chunks(): AsyncGenerator<Uint8Array> {
    let read = 0
    try {
      for await (const piece of iterate(file.stream!)) {
        if (!(piece instanceof Uint8Array)) throw new TypeError('the stream must yield Uint8Array pieces')
        read += piece.length
        if (read > size) throw new RangeError(`the stream is longer than its size (${size} bytes)`)
        yield* enc.push(piece)
      }
      if (read !== size) throw new RangeError(`the stream ended at ${read} of its ${size} bytes`)
    } catch (err) {
      failure = err
      throw err
    }
    done = enc.finish()
    yield* done.chunks
  }
  return {
    chunks: chunks(),
    get failure() {
      return failure
    },
    result() {
      if (done === undefined)
        throw new ParleyError('INVALID_STATE', 'the attachment stream was not read whole')
      return done
    },
  }
}

/** An async iterable of a ReadableStream (which not every browser makes iterable) or of an iterable itself. */
async function* iterate(
  source: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  if (typeof (source as ReadableStream<Uint8Array>).getReader !== 'function') {
    yield* source as AsyncIterable<Uint8Array>
    return
  }
  const reader = (source as ReadableStream<Uint8Array>).getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      yield value
    }
  } finally {
    reader.releaseLock()
  }
}

/** A request body that pulls `chunks` as the connection takes them. */
function toReadable(chunks: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const it = chunks[Symbol.asyncIterator]()
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await it.next()
      if (done) controller.close()
      else controller.enqueue(value)
    },
    async cancel() {
      await it.return?.()
    },
  })
}
