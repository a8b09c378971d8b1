// Blobs (end-to-end encrypted attachments) against a real relay process: BlobUploadRequest on an authenticated raw
// connection, then the ciphertext over HTTP (PUT /v1/blobs/<id> with the single-use token, GET by the id alone).
// Uploads and downloads are streamed; the stored file is exactly the ciphertext; a blob goes with its last
// download; wrong, used and expired tokens, unknown ids, bodies of the wrong length and grants over a limit are
// refused and counted, and a refused upload leaves nothing stored.
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { attachmentCiphertextSize, MIN_ATTACHMENT_CHUNK_BYTES } from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DeviceKeys, login, metric, RawConn, readDevice } from './attacker.js'
import { activatedClient, clientDir, until } from './harness.js'
import { useRelay } from './useRelay.js'

const ALICE = '+14155550180'
const CAROL = '+14155550181'
const DAVE = '+14155550182'
const ERIN = '+14155550183'
const FRANK = '+14155550189'
const MiB = 1024 * 1024
const BIG = 20 * MiB

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** A registered account's raw connection (its keys read from its own SDK store). */
async function account(env: ReturnType<typeof useRelay>, e164: string, dir: string): Promise<DeviceKeys> {
  const storePath = join(dir, `${e164}.db`)
  const client = await activatedClient(env.relay, env.codes, e164, { storePath })
  await client.close()
  return readDevice(storePath)
}

/** A grant for `size` bytes and `downloads` downloads. */
async function grant(conn: RawConn, size: number, downloads = 1) {
  const g = (await conn.request({ blobUploadRequest: { size, downloads } })).blobUploadGranted!
  return { id: hex(g.blobId), token: hex(g.uploadToken), expiresAtMs: g.expiresAtMs, downloads: g.downloads }
}

/** `bytes` as a request body streamed in 1 MiB chunks (chunked transfer encoding, no Content-Length). */
function streamed(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let at = 0
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close()
      controller.enqueue(bytes.subarray(at, at + MiB))
      at += MiB
    },
  })
}

/**
 * A raw HTTP request whose body never ends: the headers announce `length` bytes, and one byte goes every 100 ms
 * until the relay closes the connection. Resolves what the relay answered (its status line, or '' for none) once
 * it has closed.
 */
function dripped(httpUrl: string, head: string, length: number): Promise<string> {
  const { hostname, port } = new URL(httpUrl)
  return new Promise((resolve) => {
    const socket: Socket = connect(Number(port), hostname)
    let answer = ''
    const drip = setInterval(() => socket.write('x'), 100)
    socket.on('connect', () =>
      socket.write(`${head}\r\nhost: ${hostname}\r\ncontent-length: ${length}\r\n\r\n`),
    )
    socket.on('data', (d) => {
      answer += d.toString('latin1')
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      clearInterval(drip)
      resolve(answer.split('\r\n')[0] ?? '')
    })
  })
}

/** The code of a refused frame, or 'no error'. */
async function frameError(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'no error'
  } catch (err) {
    return (err as { code?: string }).code ?? String(err)
  }
}

describe('blobs: encrypted attachments through the relay', () => {
  const env = useRelay(['--blob-max-bytes', String(24 * MiB), '--blob-bytes-per-account', String(32 * MiB)])
  const dir = clientDir()
  let alice: DeviceKeys
  let carol: DeviceKeys
  let conn: RawConn
  const url = (id: string) => `${env.relay.httpUrl}/v1/blobs/${id}`
  const put = (id: string, token: string, body: BodyInit, init: RequestInit = {}) =>
    fetch(url(id), {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}` },
      body,
      ...init,
      ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
    } as RequestInit)
  const blobsDir = () => join(env.relay.dataDir, 'blobs')
  const filesOf = (id: string) => readdirSync(blobsDir()).filter((f) => f.startsWith(id))
  const blobs = (event: string) =>
    metric(env.relay.metricsUrl, 'parley_relay_blobs_total', `{event="${event}"}`)

  beforeAll(async () => {
    alice = await account(env, ALICE, dir)
    carol = await account(env, CAROL, dir)
    conn = await login(env.relay.baseUrl, alice)
  }, 60_000)

  afterAll(() => conn?.close())

  it('refuses BlobUploadRequest before authentication (UNAUTHENTICATED)', async () => {
    const anon = await RawConn.open(env.relay.baseUrl)
    expect(await frameError(anon.request({ blobUploadRequest: { size: 10, downloads: 1 } }))).toBe(
      'UNAUTHENTICATED',
    )
    anon.close()
  })

  it('uploads 20 MiB streamed, serves it byte for byte, and deletes it after its last download', async () => {
    const bytes = new Uint8Array(randomBytes(BIG))
    const digest = createHash('sha256').update(bytes).digest('hex')
    const before = { uploaded: await blobs('uploaded'), deleted: await blobs('deleted') }
    const g = await grant(conn, BIG, 2)
    expect(g.id).toMatch(/^[0-9a-f]{64}$/)
    expect(g.expiresAtMs).toBeGreaterThan(Date.now() + 29 * 86_400_000)
    const up = await put(g.id, g.token, streamed(bytes))
    expect(up.status).toBe(201)
    expect(up.headers.get('access-control-allow-origin')).toBe('*')
    expect(await blobs('uploaded')).toBe(before.uploaded + 1)
    // What the relay stores is the ciphertext exactly (the relay has no other form of it).
    expect(readFileSync(join(blobsDir(), `${g.id}.blob`)).equals(bytes)).toBe(true)
    expect(await metric(env.relay.metricsUrl, 'parley_relay_blob_bytes')).toBeGreaterThanOrEqual(BIG)

    for (let i = 0; i < 2; i++) {
      const res = await fetch(url(g.id))
      expect(res.status).toBe(200)
      expect(res.headers.get('content-length')).toBe(String(BIG))
      expect(res.headers.get('access-control-allow-origin')).toBe('*')
      // Read as a stream, chunk by chunk.
      const hash = createHash('sha256')
      let length = 0
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        hash.update(chunk)
        length += chunk.length
      }
      expect(length).toBe(BIG)
      expect(hash.digest('hex')).toBe(digest)
    }
    await until(async () => (await blobs('deleted')) === before.deleted + 1, 10_000, 'the blob to be deleted')
    expect((await fetch(url(g.id))).status).toBe(404)
    expect(filesOf(g.id)).toEqual([])
  })

  it('counts only complete downloads: one cut short leaves the blob to be fetched in full', async () => {
    const bytes = randomBytes(BIG)
    const downloaded = await blobs('downloaded')
    const g = await grant(conn, BIG, 1)
    expect((await put(g.id, g.token, bytes)).status).toBe(201)
    const abort = new AbortController()
    const cut = await fetch(url(g.id), { signal: abort.signal })
    const reader = (cut.body as ReadableStream<Uint8Array>).getReader()
    await reader.read()
    abort.abort()
    await reader.cancel().catch(() => {})
    const full = await fetch(url(g.id))
    expect(full.status).toBe(200)
    expect(Buffer.from(await full.arrayBuffer()).equals(bytes)).toBe(true)
    await until(async () => (await fetch(url(g.id))).status === 404, 10_000, 'the blob to go')
    expect(await blobs('downloaded')).toBe(downloaded + 1)
  })

  it('refuses a wrong token and an unknown id alike (404), a reused token (409), and counts each', async () => {
    const before = { token: await blobs('refused_token'), conflict: await blobs('refused_conflict') }
    const bytes = randomBytes(1000)
    const g = await grant(conn, bytes.length)
    const wrong = await put(g.id, randomBytes(32).toString('hex'), bytes)
    const unknown = await put(randomBytes(32).toString('hex'), g.token, bytes)
    expect([wrong.status, unknown.status]).toEqual([404, 404])
    expect(await wrong.text()).toBe(await unknown.text())
    const noAuth = await fetch(url(g.id), { method: 'PUT', body: bytes })
    expect(noAuth.status).toBe(404)
    expect((await put(g.id, g.token, bytes)).status).toBe(201)
    expect((await put(g.id, g.token, bytes)).status).toBe(409)
    expect(await blobs('refused_token')).toBe(before.token + 3)
    expect(await blobs('refused_conflict')).toBe(before.conflict + 1)
    // GET of an unknown or not yet uploaded blob is 404 too.
    const pending = await grant(conn, 10)
    const missing = await blobs('missing')
    expect((await fetch(url(pending.id))).status).toBe(404)
    expect((await fetch(url(randomBytes(32).toString('hex')))).status).toBe(404)
    expect((await fetch(url('not-an-id'))).status).toBe(404)
    expect(await blobs('missing')).toBe(missing + 3)
    const method = await blobs('refused_method')
    expect((await fetch(url(g.id), { method: 'DELETE' })).status).toBe(405)
    expect(await blobs('refused_method')).toBe(method + 1)
  })

  it('refuses a longer body 413 and a shorter one 400, and keeps nothing of either', async () => {
    const before = { over: await blobs('refused_oversize'), short: await blobs('refused_short') }
    const size = 64 * 1024
    // With Content-Length: refused from the header.
    const a = await grant(conn, size)
    expect((await put(a.id, a.token, randomBytes(size + 1))).status).toBe(413)
    const b = await grant(conn, size)
    expect((await put(b.id, b.token, randomBytes(size - 1))).status).toBe(400)
    // Streamed without a length: refused once the bytes run past the size, or end before it.
    const c = await grant(conn, size)
    expect((await put(c.id, c.token, streamed(new Uint8Array(randomBytes(size + 10))))).status).toBe(413)
    const d = await grant(conn, size)
    expect((await put(d.id, d.token, streamed(new Uint8Array(randomBytes(size - 10))))).status).toBe(400)
    expect(await blobs('refused_oversize')).toBe(before.over + 2)
    expect(await blobs('refused_short')).toBe(before.short + 2)
    for (const g of [a, b, c, d]) {
      expect(filesOf(g.id)).toEqual([])
      expect((await fetch(url(g.id))).status).toBe(404)
      // The token was single use: the grant went with the refused upload.
      expect((await put(g.id, g.token, randomBytes(size))).status).toBe(404)
    }
  })

  it('refuses at the frame a size over --blob-max-bytes (encrypted) or of 0, and downloads outside 1..5000', async () => {
    const tooLarge = await blobs('refused_too_large')
    // --blob-max-bytes counts the file: its blob in the smallest chunks (1 KiB, a 16-byte tag each) still fits.
    const largest = attachmentCiphertextSize(24 * MiB, MIN_ATTACHMENT_CHUNK_BYTES)
    expect(largest).toBe(24 * MiB + 16 * 24 * 1024)
    expect(await frameError(grant(conn, largest + 1))).toBe('TOO_LARGE')
    expect(await frameError(grant(conn, 0))).toBe('TOO_LARGE')
    expect(await blobs('refused_too_large')).toBe(tooLarge + 2)
    expect(await frameError(grant(conn, 10, 0))).toBe('BAD_REQUEST')
    expect(await frameError(grant(conn, 10, 5001))).toBe('BAD_REQUEST')
    expect((await grant(conn, largest, 64)).id).toMatch(/^[0-9a-f]{64}$/)
  })

  it('grants a small blob a download per device of a large group, a large one 64: the egress of one upload is bounded', async () => {
    const c = await login(env.relay.baseUrl, await account(env, FRANK, dir))
    const largest = attachmentCiphertextSize(24 * MiB, MIN_ATTACHMENT_CHUNK_BYTES)
    /** The downloads granted for `size`, the grant given back at once (a short upload) to free the quota. */
    const granted = async (size: number, downloads: number) => {
      const g = await grant(c, size, downloads)
      expect((await put(g.id, g.token, randomBytes(1))).status).toBe(size === 1 ? 201 : 400)
      return g.downloads
    }
    // What 64 downloads of the largest blob would cost the relay is what any blob may cost it.
    expect(await granted(largest, 5000)).toBe(64)
    expect(await granted(Math.floor(largest / 2), 5000)).toBe(128)
    expect(await granted(1000, 5000)).toBe(5000)
    expect(await granted(1000, 3)).toBe(3)
    // The attacker's view: a 1 KB blob granted 200 downloads is fetched 200 times and then is gone.
    const small = await grant(c, 1000, 200)
    expect(small.downloads).toBe(200)
    expect((await put(small.id, small.token, randomBytes(1000))).status).toBe(201)
    const deleted = await blobs('deleted')
    let fetched = 0
    for (let i = 0; i < 200; i++) {
      const res = await fetch(url(small.id))
      await res.arrayBuffer()
      if (res.status === 200) fetched++
    }
    expect(fetched).toBe(200)
    // A download counts once its last byte is sent, which the client may see first: then the blob is gone.
    await until(async () => (await blobs('deleted')) === deleted + 1, 10_000, 'the blob deleted')
    expect((await fetch(url(small.id))).status).toBe(404)
    c.close()
  })

  it("refuses a grant beyond the account's stored bytes (granted sizes count) and frees them on deletion", async () => {
    const c = await login(env.relay.baseUrl, carol)
    const quota = await blobs('refused_quota')
    const first = await grant(c, 24 * MiB)
    const small = await grant(c, 8 * MiB)
    expect(await frameError(grant(c, 1))).toBe('RATE_LIMITED')
    expect(await blobs('refused_quota')).toBe(quota + 1)
    // A refused upload frees its grant's bytes at once.
    expect((await put(small.id, small.token, randomBytes(10))).status).toBe(400)
    const again = await grant(c, 8 * MiB)
    expect(await frameError(grant(c, 1))).toBe('RATE_LIMITED')
    // A blob downloaded as often as granted frees its bytes.
    const bytes = randomBytes(24 * MiB)
    expect((await put(first.id, first.token, bytes)).status).toBe(201)
    expect((await fetch(url(first.id)).then((r) => r.arrayBuffer())).byteLength).toBe(bytes.length)
    await until(async () => (await fetch(url(first.id))).status === 404, 10_000, 'the blob to go')
    expect((await grant(c, 24 * MiB)).id).toMatch(/^[0-9a-f]{64}$/)
    expect(again.id).not.toBe(first.id)
    c.close()
  })

  it('closes a connection that sends a body to any other path once answered, without waiting for the body', async () => {
    expect(await dripped(env.relay.httpUrl, 'POST /healthz HTTP/1.1', 1_000_000)).toBe(
      'HTTP/1.1 405 Method Not Allowed',
    )
  }, 20_000)

  it('answers the CORS preflight of a browser client', async () => {
    const res = await fetch(url(randomBytes(32).toString('hex')), {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'PUT',
        'access-control-request-headers': 'authorization, content-type',
      },
    })
    expect(res.status).toBe(204)
    expect(res.headers.get('access-control-allow-origin')).toBe('*')
    expect(res.headers.get('access-control-allow-methods')).toContain('PUT')
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization')
  })

  it("names the uploader's address nowhere in the blob files, nor in any other file beside the account store", async () => {
    const needles = [
      Buffer.from(alice.address),
      Buffer.from(hex(alice.address)),
      Buffer.from(Buffer.from(alice.address).toString('base64')),
      Buffer.from(Buffer.from(alice.address).toString('base64url')),
    ]
    const files: string[] = []
    const walk = (d: string) => {
      for (const name of readdirSync(d)) {
        const p = join(d, name)
        if (statSync(p).isDirectory()) walk(p)
        // relay.db holds the account itself (its address is its key); everything else is scanned.
        else if (!/^relay\.db/.test(name)) files.push(p)
      }
    }
    walk(env.relay.dataDir)
    expect(files.some((f) => f.includes(`${join('blobs', '')}`))).toBe(true)
    const hits = files.filter((f) => {
      const data = readFileSync(f)
      return needles.some((n) => data.includes(n))
    })
    expect(hits).toEqual([])
  })
})

describe('blobs: grants that are never uploaded, and the hourly grant quota', () => {
  const env = useRelay([
    '--blob-upload-ttl-seconds',
    '1',
    '--sweep-interval-seconds',
    '1',
    '--blob-uploads-per-hour',
    '3',
  ])
  const dir = clientDir()
  let conn: RawConn
  const blobs = (event: string) =>
    metric(env.relay.metricsUrl, 'parley_relay_blobs_total', `{event="${event}"}`)

  beforeAll(async () => {
    conn = await login(env.relay.baseUrl, await account(env, DAVE, dir))
  }, 60_000)

  afterAll(() => conn?.close())

  it('sweeps a grant whose token expired unused; its token is refused after', async () => {
    const g = await grant(conn, 100)
    const path = join(env.relay.dataDir, 'blobs', `${g.id}.json`)
    expect(existsSync(path)).toBe(true)
    await until(async () => (await blobs('abandoned')) >= 1, 20_000, 'the grant to be swept')
    expect(existsSync(path)).toBe(false)
    const res = await fetch(`${env.relay.httpUrl}/v1/blobs/${g.id}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${g.token}` },
      body: randomBytes(100),
    })
    expect(res.status).toBe(404)
  })

  it('refuses grants beyond --blob-uploads-per-hour (RATE_LIMITED), counted', async () => {
    const rate = await blobs('refused_rate')
    const granted = await blobs('granted')
    const codes: string[] = []
    for (let i = 0; i < 3; i++) codes.push(await frameError(grant(conn, 10)))
    // One of the three was spent by the previous test.
    expect(codes).toEqual(['no error', 'no error', 'RATE_LIMITED'])
    expect(await blobs('granted')).toBe(granted + 2)
    expect(await blobs('refused_rate')).toBe(rate + 1)
    expect(
      await metric(env.relay.metricsUrl, 'parley_relay_rate_limited_total', '{scope="blob_uploads"}'),
    ).toBe(1)
  })
})

describe('blobs: an upload slower than --blob-upload-timeout-seconds', () => {
  const env = useRelay(['--blob-upload-timeout-seconds', '2', '--headers-timeout-ms', '1000'])
  const dir = clientDir()
  let conn: RawConn

  beforeAll(async () => {
    conn = await login(env.relay.baseUrl, await account(env, ERIN, dir))
  }, 60_000)

  afterAll(() => conn?.close())

  it('is cut off, and neither its bytes nor its grant stay', async () => {
    const short = await metric(env.relay.metricsUrl, 'parley_relay_blobs_total', '{event="refused_short"}')
    const g = await grant(conn, 1_000_000)
    await dripped(
      env.relay.httpUrl,
      `PUT /v1/blobs/${g.id} HTTP/1.1\r\nauthorization: Bearer ${g.token}`,
      1_000_000,
    )
    await until(
      async () =>
        (await metric(env.relay.metricsUrl, 'parley_relay_blobs_total', '{event="refused_short"}')) ===
        short + 1,
      10_000,
      'the cut upload to be counted',
    )
    expect(readdirSync(join(env.relay.dataDir, 'blobs')).filter((f) => f.startsWith(g.id))).toEqual([])
    const again = await fetch(`${env.relay.httpUrl}/v1/blobs/${g.id}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${g.token}` },
      body: randomBytes(1_000_000),
    })
    expect(again.status).toBe(404)
  }, 20_000)
})
