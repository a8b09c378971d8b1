/**
 * `BlobUploadRequest` → `BlobUploadGranted`: room for one end-to-end encrypted attachment. The relay picks a
 * random 32-byte id and a random single-use upload token (it keeps only the token's hash), records the grant under
 * the account's quota id, and the client PUTs the ciphertext over HTTP (blobHttp.ts). Refused, each counted in
 * `parley_relay_blobs_total{event}`: TOO_LARGE (a size of 0 or beyond --blob-max-bytes, BAD_REQUEST for a
 * download count outside 1..5000), RATE_LIMITED (--blob-uploads-per-hour, or the account's blobs would hold more
 * than --blob-bytes-per-account), UNAVAILABLE (the disk of the blob directory nearly full).
 * @module
 */
import { createHash, randomBytes } from 'node:crypto'
import {
  attachmentCiphertextSize,
  type ClientBodyOf,
  MIN_ATTACHMENT_CHUNK_BYTES,
  ParleyError,
} from '@parley/protocol'
import { MAILBOX_FULL_RETRY_MS } from './mailboxGuard.js'
import type { DeviceScope } from './scope.js'
import { charge, type Reply } from './util.js'

/**
 * Complete downloads any blob may be granted (its recipients' devices and its sender's other ones), whatever its
 * size; a smaller one may have more, up to {@link MAX_REQUESTED_DOWNLOADS} (see {@link grantedDownloads}).
 */
export const MAX_BLOB_DOWNLOADS = 64
/** The most downloads a request may ask for: a group's 1,000 members with five devices each. */
export const MAX_REQUESTED_DOWNLOADS = 5000

/**
 * The downloads a blob of `size` bytes is granted for a request of `requested`: at most what keeps the relay's
 * egress for it (downloads × size) within {@link MAX_BLOB_DOWNLOADS} downloads of the largest blob, and never
 * fewer than {@link MAX_BLOB_DOWNLOADS}: one upload costs the relay no more egress however it is sized.
 */
export function grantedDownloads(requested: number, size: number, largest: number): number {
  const byEgress = Math.floor((MAX_BLOB_DOWNLOADS * largest) / size)
  return Math.min(requested, Math.max(MAX_BLOB_DOWNLOADS, byEgress))
}

/** SHA-256 of an upload token, hex: what the blob store keeps in its place. */
export function blobTokenHash(token: Uint8Array): string {
  return createHash('sha256').update('parley/relay/blob-upload-token\0').update(token).digest('hex')
}

/** `BlobUploadRequest` → `BlobUploadGranted`. */
/**
 * The largest blob a grant may be for: the encrypted form of a file of `maxFileBytes` (`--blob-max-bytes` counts
 * the file, as users see it), in the smallest chunks the protocol allows, whose tags cost the most (1.6%).
 */
export function largestBlob(maxFileBytes: number): number {
  return attachmentCiphertextSize(maxFileBytes, MIN_ATTACHMENT_CHUNK_BYTES)
}

export async function blobUploadRequest(
  scope: DeviceScope,
  request: ClientBodyOf<'blobUploadRequest'>,
): Promise<Reply> {
  const { config, metrics, blobs, blobDisk, policies } = scope.ctx
  const size = request.size
  const downloads = request.downloads
  const largest = largestBlob(config.blobMaxBytes)
  if (!Number.isSafeInteger(size) || size < 1 || size > largest) {
    metrics.blobs.inc({ event: 'refused_too_large' })
    throw new ParleyError(
      'TOO_LARGE',
      `size must be 1..${largest} bytes (a file of up to ${config.blobMaxBytes} bytes, encrypted)`,
    )
  }
  if (!Number.isInteger(downloads) || downloads < 1 || downloads > MAX_REQUESTED_DOWNLOADS) {
    metrics.blobs.inc({ event: 'refused_downloads' })
    throw new ParleyError('BAD_REQUEST', `downloads must be 1..${MAX_REQUESTED_DOWNLOADS}`)
  }
  const granted = grantedDownloads(downloads, size, largest)
  if (await blobDisk.low()) {
    metrics.blobs.inc({ event: 'refused_disk' })
    throw new ParleyError('UNAVAILABLE', 'the relay is nearly out of disk space; try again later', {
      retryAfterMs: MAILBOX_FULL_RETRY_MS,
    })
  }
  const owner = scope.device.quotaId
  try {
    await charge(scope, 'blob_uploads', `blobs:acct:${owner}`, 1, policies.blobUploads)
  } catch (err) {
    metrics.blobs.inc({ event: 'refused_rate' })
    throw err
  }
  const id = randomBytes(32)
  const token = randomBytes(32)
  const now = Date.now()
  const expiresAtMs = now + config.blobTtlSeconds * 1000
  const created = await blobs.create(
    {
      id: id.toString('hex'),
      owner,
      size,
      downloadsLeft: granted,
      expiresAtMs,
      uploadExpiresAtMs: now + config.blobUploadTtlSeconds * 1000,
      tokenHash: blobTokenHash(token),
      state: 'pending',
    },
    config.blobBytesPerAccount,
  )
  if (!created) {
    metrics.blobs.inc({ event: 'refused_quota' })
    metrics.rateLimited.inc({ scope: 'blob_bytes' })
    throw new ParleyError(
      'RATE_LIMITED',
      `this account's blobs would hold more than ${config.blobBytesPerAccount} bytes; try again once some are downloaded or expired`,
      { retryAfterMs: MAILBOX_FULL_RETRY_MS },
    )
  }
  metrics.blobs.inc({ event: 'granted' })
  return { blobUploadGranted: { blobId: id, uploadToken: token, expiresAtMs, downloads: granted } }
}
