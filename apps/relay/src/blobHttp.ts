/**
 * The HTTP side of blobs (end-to-end encrypted attachments), on the client port:
 * - `PUT /v1/blobs/<64 hex id>` with `Authorization: Bearer <64 hex token>` (from `BlobUploadGranted`) and exactly
 *   the granted size of body bytes → 201. The body is streamed to the blob store, never held in memory. A body
 *   longer than granted → 413, shorter (or cut off) → 400; either way the partial bytes and the grant are deleted
 *   (the token was single use). An unknown id, a wrong token or an expired one → 404, the same answer for each, so
 *   a guess learns nothing; a PUT with the right token to a blob already uploaded, or being uploaded → 409.
 * - `GET /v1/blobs/<id>` → 200 with the ciphertext (Content-Length set), streamed; 404 when the id is unknown,
 *   not yet uploaded or expired. Nothing else is asked: the 32 random bytes of the id are the capability, handed
 *   to recipients inside end-to-end messages. A response whose every byte was written counts one of the blob's
 *   downloads; with the last one the blob is deleted.
 * Both answer CORS (any origin, `Authorization` and `Content-Type` allowed) and its preflight `OPTIONS`, so a
 * browser client can use them. Ids and tokens are never logged; every refusal is counted in
 * `parley_relay_blobs_total{event}`.
 * @module
 */
import { timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RelayContext } from './context.js'
import { blobTokenHash } from './handlers/blobs.js'

/** The path prefix of blob requests. */
export const BLOB_PATH = '/v1/blobs/'

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'PUT, GET, OPTIONS',
  'access-control-allow-headers': 'Authorization, Content-Type',
  'access-control-expose-headers': 'Content-Length',
  'access-control-max-age': '86400',
} as const

const ID_RE = /^[0-9a-f]{64}$/

function answer(res: ServerResponse, status: number, text: string, close = false): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  res.writeHead(status, {
    ...CORS,
    'content-type': 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    ...(close ? { connection: 'close' } : {}),
  })
  res.end(`${text}\n`)
}

/** The bearer token of a request, as bytes, or undefined when there is none of the right form. */
function bearer(req: IncomingMessage): Buffer | undefined {
  const m = /^Bearer ([0-9a-fA-F]{64})$/.exec(req.headers.authorization ?? '')
  return m ? Buffer.from(m[1]!, 'hex') : undefined
}

/**
 * Answers a request under `/v1/blobs/`.
 * @param path - the request's path, without the query
 * @returns false when `path` is not a blob path (the caller answers it)
 */
export function serveBlob(
  ctx: RelayContext,
  path: string,
  req: IncomingMessage,
  res: ServerResponse,
): boolean {
  if (!path.startsWith(BLOB_PATH)) return false
  const id = path.slice(BLOB_PATH.length).toLowerCase()
  if (req.method === 'OPTIONS') {
    res.writeHead(204, CORS).end()
    return true
  }
  if (!ID_RE.test(id)) {
    // Not an id at all: refused as an unknown one is.
    ctx.metrics.blobs.inc({ event: req.method === 'PUT' ? 'refused_token' : 'missing' })
    answer(res, 404, 'not found', req.method === 'PUT')
    if (req.method === 'PUT') req.resume()
    return true
  }
  const done = (err: unknown) => {
    ctx.log.error({ err: { message: (err as Error).message } }, 'blob request failed')
    answer(res, 500, 'internal error', true)
  }
  if (req.method === 'PUT') upload(ctx, id, req, res).catch(done)
  else if (req.method === 'GET' || req.method === 'HEAD') download(ctx, id, req, res).catch(done)
  else {
    ctx.metrics.blobs.inc({ event: 'refused_method' })
    res.writeHead(405, { ...CORS, allow: 'PUT, GET, OPTIONS', connection: 'close' }).end()
  }
  return true
}

async function upload(
  ctx: RelayContext,
  id: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const { blobs, metrics } = ctx
  const refuse = (event: string, status: number, text: string) => {
    metrics.blobs.inc({ event })
    // What is left of the body is read and dropped, never stored, and the connection closes after the answer.
    answer(res, status, text, true)
    req.resume()
  }
  const token = bearer(req)
  const meta = await blobs.get(id)
  const tokenOk =
    token !== undefined &&
    meta !== undefined &&
    timingSafeEqual(Buffer.from(blobTokenHash(token), 'hex'), Buffer.from(meta.tokenHash, 'hex'))
  const now = Date.now()
  if (!meta || !tokenOk || meta.expiresAtMs <= now) {
    return refuse('refused_token', 404, 'no upload with this id and token')
  }
  if (meta.state !== 'complete' && meta.uploadExpiresAtMs <= now) {
    return refuse('refused_token', 404, 'no upload with this id and token')
  }
  // One upload per grant, whichever node it reaches.
  if (!(await blobs.begin(id))) return refuse('refused_conflict', 409, 'this blob is already uploaded')
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) !== meta.size) {
    // Single use: the grant goes with a refused upload.
    await blobs.delete(id)
    if (Number(declared) > meta.size) return refuse('refused_oversize', 413, `the blob is ${meta.size} bytes`)
    return refuse('refused_short', 400, `the blob is ${meta.size} bytes`)
  }
  let over = false
  const limited = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let n = 0
    for await (const chunk of source) {
      n += chunk.length
      if (n > meta.size) {
        over = true
        throw new Error('body longer than granted')
      }
      yield chunk
    }
  }
  let written = -1
  try {
    // Not destroyed when the limit stops reading it: the refusal below still goes out on its socket.
    written = await blobs.write(id, limited(req.iterator({ destroyOnReturn: false })))
  } catch {}
  if (written !== meta.size) {
    await blobs.delete(id)
    if (over) return refuse('refused_oversize', 413, `the blob is ${meta.size} bytes`)
    return refuse('refused_short', 400, `the blob is ${meta.size} bytes`)
  }
  const completed = await blobs.complete(id).catch(async (err: unknown) => {
    // Never left claimed: a grant that failed here is gone, and its owner's bytes free.
    await blobs.delete(id)
    throw err
  })
  if (!completed) {
    // Expired during the upload: nothing of it stays.
    await blobs.delete(id)
    return refuse('refused_token', 404, 'no upload with this id and token')
  }
  metrics.blobs.inc({ event: 'uploaded' })
  metrics.blobBytes.set(await blobs.storedBytes())
  res.writeHead(201, { ...CORS, 'content-type': 'text/plain; charset=utf-8' }).end('uploaded\n')
}

async function download(
  ctx: RelayContext,
  id: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const { blobs, metrics } = ctx
  const meta = await blobs.get(id)
  const stream = meta && meta.expiresAtMs > Date.now() ? await blobs.read(id) : undefined
  if (!meta || !stream) {
    metrics.blobs.inc({ event: 'missing' })
    answer(res, 404, 'not found')
    return
  }
  res.writeHead(200, {
    ...CORS,
    'content-type': 'application/octet-stream',
    'content-length': meta.size,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  })
  if (req.method === 'HEAD') {
    stream.destroy()
    res.end()
    return
  }
  let sent = 0
  stream.on('data', (chunk: Buffer) => {
    sent += chunk.length
  })
  stream.on('error', () => res.destroy())
  res.on('close', () => stream.destroy())
  // Counted only once every byte was handed to the socket: a download cut short counts nothing.
  res.on('finish', () => {
    if (sent !== meta.size) return
    metrics.blobs.inc({ event: 'downloaded' })
    blobs
      .countDownload(id)
      .then(async (counted) => {
        if (!counted?.deleted) return
        metrics.blobs.inc({ event: 'deleted' })
        metrics.blobBytes.set(await blobs.storedBytes())
      })
      .catch((err: unknown) =>
        ctx.log.error({ err: { message: (err as Error).message } }, 'blob download count failed'),
      )
  })
  stream.pipe(res)
}
