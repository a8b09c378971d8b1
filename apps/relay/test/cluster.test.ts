// Three relay processes on loopback sharing one PostgreSQL (a fresh schema) and one Redis (a fresh key prefix):
// Node SDK clients spread over the nodes exchange 5,000 messages while one node is killed with SIGKILL; every
// accepted message must reach the API exactly once. Also: a code requested through one node is confirmed through
// another, a re-activation on one node revokes the old device's connection on another, and an enumerator
// spreading OPRF calls over every node still stops at its (cluster-wide) quota, and an attachment uploaded through
// one node is downloaded through another (blobs in PostgreSQL).
import { randomBytes } from 'node:crypto'
import {
  createClient,
  type IncomingMessage,
  type ParleyClient,
  type Transport,
  WsTransport,
} from '@parley/node'
import { activationPayload, parleyErrorFromWire } from '@parley/protocol'
import { Redis } from 'ioredis'
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  CodeInbox,
  expectError,
  Identity,
  login,
  prekeys,
  RawClient,
  type RelayProcess,
  spawnDevRelay,
  tempDir,
} from '../testing/index.js'
import {
  describeWith,
  PG_URL,
  probePostgres,
  probeRedis,
  REDIS_URL,
  uniqueName,
  waitFor,
} from './conformance/services.js'

const MESSAGES = 5000
const CLIENTS = 6
const OPRF_ACCOUNT_QUOTA = 40

/** A transport that opens each new connection to the next live node, so a client fails over on reconnect. */
class RoundRobinTransport implements Transport {
  readonly #ws = new WsTransport({ handshakeTimeoutMs: 3000 })
  readonly #urls: () => string[]
  #next: number

  constructor(urls: () => string[], start: number) {
    this.#urls = urls
    this.#next = start
  }

  open(_url: string, signal?: AbortSignal): ReturnType<Transport['open']> {
    const urls = this.#urls()
    return this.#ws.open(urls[this.#next++ % urls.length]!, signal)
  }
}

const pgAbsent = await probePostgres()
const redisAbsent = await probeRedis()

describeWith('cluster: three relay nodes on PostgreSQL + Redis', [pgAbsent, redisAbsent], () => {
  const schema = uniqueName('cluster')
  const prefix = `${uniqueName('cluster')}:`
  const hashKey = randomBytes(32).toString('hex')
  const dataDir = tempDir() // shared by the nodes for the OPRF key file only; the data is in PostgreSQL
  const codes = new CodeInbox()
  const nodes: RelayProcess[] = []
  const dead = new Set<RelayProcess>()
  const live = () => nodes.filter((n) => !dead.has(n)).map((n) => n.url)
  const clients: ParleyClient[] = []

  const args = () => [
    '--store',
    `${PG_URL}?schema=${schema}`,
    '--redis',
    `${REDIS_URL}?prefix=${prefix}`,
    '--number-hash-key',
    hashKey,
    '--verifier',
    'webhook',
    '--webhook-url',
    codes.url,
    '--webhook-secret',
    codes.secret,
    '--log-level',
    'info', // spawnDevRelay waits for the 'relay listening' line
    // Lift send and frame quotas: this measures delivery, not the per-account limits.
    '--send-capacity',
    '100000',
    '--send-per-minute',
    '100000',
    '--frames-burst',
    '100000',
    '--frames-per-second',
    '100000',
    '--bundle-capacity',
    '1000',
    '--bundle-per-hour',
    '100000',
    // Every client is on 127.0.0.1, one source network: once the receipts have given the senders their peers'
    // delivery tokens, the messages go unidentified, which the network's budget would hold to 600 a minute.
    '--unidentified-network-capacity',
    '100000',
    '--unidentified-network-per-minute',
    '100000',
    '--unidentified-recipient-capacity',
    '100000',
    '--unidentified-recipient-per-minute',
    '100000',
    '--oprf-account-capacity',
    String(OPRF_ACCOUNT_QUOTA),
    '--oprf-account-per-day',
    '1',
    '--sweep-interval-seconds',
    '5',
  ]

  beforeAll(async () => {
    await codes.start()
    // The first node writes the OPRF key file and migrates the schema; the others then start together.
    nodes.push(await spawnDevRelay(args(), dataDir))
    nodes.push(...(await Promise.all([spawnDevRelay(args(), dataDir), spawnDevRelay(args(), dataDir)])))
  }, 60_000)

  /** A query on the cluster's database. */
  const admin = async <T>(sql: string): Promise<T[]> => {
    const c = new pg.Client({ connectionString: PG_URL })
    await c.connect()
    try {
      return (await c.query(sql)).rows as T[]
    } finally {
      await c.end()
    }
  }

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()))
    await Promise.allSettled(nodes.filter((n) => !dead.has(n)).map((n) => n.stop('SIGTERM')))
    await codes.close()
    const admin = new pg.Client({ connectionString: PG_URL })
    await admin.connect()
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    await admin.end()
    const r = new Redis(REDIS_URL)
    const keys = await r.keys(`${prefix}*`)
    if (keys.length > 0) await r.del(...keys)
    r.disconnect()
  })

  it('refuses to start with --redis but no --number-hash-key, saying why', async () => {
    const err = await spawnDevRelay(
      args().filter((a, i, all) => a !== '--number-hash-key' && all[i - 1] !== '--number-hash-key'),
      tempDir(),
    ).then(
      () => null,
      (e: Error) => e,
    )
    expect(err?.message).toMatch(/--redis needs --number-hash-key/)
  })

  it('an enumerator spreading OPRF calls over every node still stops at its quota', async () => {
    // OPRF needs an account; the enumerator logs it in on every node, and its account's quota (in Redis) binds.
    const number = '+14155550151'
    const identity = new Identity()
    const first = await RawClient.open(nodes[0]!.url)
    const started = (await first.request({ activationStart: { phoneNumber: number, consent: true } }))
      .activationStarted!
    const a = (
      await first.request({
        activationConfirm: {
          activationId: started.activationId,
          code: await codes.next(number),
          identityKey: identity.publicKey,
          identitySignature: identity.sign(activationPayload(started.activationId!, identity.publicKey)),
          prekeys: prekeys(identity),
        },
      })
    ).activated!
    const account = { identity, address: a.address!, deviceId: a.deviceId!, number }
    const anon = [
      first,
      ...(await Promise.all(nodes.slice(1).map(async (n) => (await login(n.url, account)).client))),
    ]
    const key = anon[0]!.hello!.oprfKeys![0]!
    // Any valid ristretto255 element will do; the relay's public key is one.
    const evaluate = (c: RawClient) =>
      c.send({ oprfEvaluate: { keyId: key.keyId, blindedElements: [key.publicKey!] } })
    let allowed = 0
    const refusals: number[] = []
    for (let i = 0; i < OPRF_ACCOUNT_QUOTA * 2; i++) {
      const f = await evaluate(anon[i % anon.length]!)
      if (f.body === 'oprfEvaluated') allowed++
      else {
        const err = parleyErrorFromWire(f.error!)
        expect(err.code).toBe('RATE_LIMITED')
        refusals.push(err.retryAfterMs ?? 0)
      }
    }
    expect(allowed).toBe(OPRF_ACCOUNT_QUOTA)
    expect(refusals).toHaveLength(OPRF_ACCOUNT_QUOTA)
    expect(Math.min(...refusals)).toBeGreaterThan(0)
    for (const c of anon) c.close()
  })

  it('confirms a code on another node than the one that sent it, and revokes the old device across nodes', async () => {
    const number = '+14155550150'
    const activateVia = async (startNode: number, confirmNode: number) => {
      const identity = new Identity()
      const starter = await RawClient.open(nodes[startNode]!.url)
      const started = (await starter.request({ activationStart: { phoneNumber: number, consent: true } }))
        .activationStarted!
      starter.close()
      const code = await codes.next(number)
      const confirmer = await RawClient.open(nodes[confirmNode]!.url)
      const wrong = code === '000000' ? '111111' : '000000'
      const body = {
        activationId: started.activationId,
        identityKey: identity.publicKey,
        identitySignature: identity.sign(activationPayload(started.activationId!, identity.publicKey)),
        prekeys: prekeys(identity),
      }
      await expectError(confirmer.request({ activationConfirm: { ...body, code: wrong } }), 'INVALID_CODE')
      const f = await confirmer.request({ activationConfirm: { ...body, code } })
      return { client: confirmer, activated: f.activated! }
    }
    const first = await activateVia(0, 2)
    expect(first.activated.deviceId).toBe(1)
    // The second activation's start lands on node 1 and its confirm on node 0; node 2 holds the old device.
    const second = await activateVia(1, 0)
    expect(second.activated).toMatchObject({ deviceId: 2, replacedDevice: true })
    const push = await first.client.push((f) => f.body === 'error')
    expect(parleyErrorFromWire(push.error!).code).toBe('UNAUTHENTICATED')
    expect(await first.client.closed).toBe(4001)
    second.client.close()
  })

  it('serves an attachment uploaded through one node from another, and deletes it from PostgreSQL once fetched', async () => {
    const chunks = async () =>
      (await admin<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.blob_chunks`))[0]!.n
    const [alice, bob] = await Promise.all(
      ['+14155550160', '+14155550161'].map(async (number, i) => {
        const client = await createClient({ relayUrl: nodes[i * 2]!.url, defaultRegion: 'US' })
        const pending = await client.activate({ phoneNumber: number, consent: true })
        await client.confirm(await codes.next(pending.e164))
        return client
      }),
    )
    const got: IncomingMessage[] = []
    bob!.on('message', (m) => got.push(m))
    const data = new Uint8Array(randomBytes(3 * 1024 * 1024 + 5))
    const before = await chunks()
    const sent = await alice!.sendAttachment('+14155550161', { data, fileName: 'across.bin' })
    await waitFor(() => got.some((m) => m.id === sent.id), 30_000, 'the attachment message')
    // Uploaded through node 0: its ciphertext is in PostgreSQL, in 1 MiB chunks (the file's 3 MiB and more).
    expect((await chunks()) - before).toBe(4)
    // Downloaded through node 2, which never saw the upload.
    const back = await bob!.downloadAttachment(sent.id)
    expect(Buffer.from(back).equals(Buffer.from(data))).toBe(true)
    expect(await chunks()).toBe(before)
    await Promise.all([alice!.close(), bob!.close()])
  })

  it(`delivers ${MESSAGES} messages exactly once while a node is killed with SIGKILL mid-stream`, async () => {
    const numbers = Array.from({ length: CLIENTS }, (_, i) => `+1415555${String(200 + i).padStart(4, '0')}`)
    const received = new Map<string, IncomingMessage[]>(numbers.map((n) => [n, []]))
    let total = 0
    const onlines = numbers.map(() => 0)
    await Promise.all(
      numbers.map(async (number, i) => {
        const client = await createClient({
          relayUrl: nodes[i % nodes.length]!.url,
          transport: new RoundRobinTransport(live, i % nodes.length),
          defaultRegion: 'US',
          reconnect: { minDelayMs: 50, maxDelayMs: 500 },
        })
        client.on('connection', (e) => {
          if (e.state === 'online') onlines[i]!++
        })
        client.on('message', (m) => {
          received.get(number)!.push(m)
          total++
        })
        const pending = await client.activate({ phoneNumber: number, consent: true })
        await client.confirm(await codes.next(pending.e164))
        clients[i] = client
      }),
    )
    // Client i writes to clients i+1 and i+2: every client sends to two nodes' worth of peers and receives from
    // two, and each conversation runs one way, so no two clients start a session with each other at once (the
    // engine drops mail then — the known client bug in tests/reliability/crash.test.ts) and no message pays for
    // a DH ratchet step: this measures the relays, not X25519.
    const peersOf = (i: number) => [numbers[(i + 1) % CLIENTS]!, numbers[(i + 2) % CLIENTS]!]
    await Promise.all(clients.map((c, i) => c.discover(peersOf(i))))

    const sent = new Map<string, { to: string; text: string }>()
    const perClient = Math.ceil(MESSAGES / CLIENTS)
    const sending = Promise.all(
      clients.map(async (client, i) => {
        for (let k = 0; k < perClient && i * perClient + k < MESSAGES; k++) {
          const to = peersOf(i)[k % 2]!
          const text = `${i}:${k}`
          const { id } = await client.send(to, text)
          sent.set(id, { to, text })
          if (k % 50 === 49) await new Promise((r) => setImmediate(r))
        }
      }),
    )

    await waitFor(() => total >= MESSAGES / 4, 60_000, 'a quarter of the messages')
    const victim = nodes[1]!
    dead.add(victim)
    await victim.stop('SIGKILL')
    await sending
    expect(sent.size).toBe(MESSAGES)
    await waitFor(() => total >= MESSAGES, 90_000, `all ${MESSAGES} messages (have ${total})`)
    await new Promise((r) => setTimeout(r, 500)) // a duplicate would show up now

    const all = [...received.values()].flat()
    expect(all).toHaveLength(MESSAGES)
    expect(new Set(all.map((m) => m.id)).size).toBe(MESSAGES)
    for (const [number, got] of received) {
      for (const m of got) {
        const want = sent.get(m.id)
        expect(want, `message ${m.id} was never sent`).toBeDefined()
        expect(want!.to).toBe(number)
        expect(m.text).toBe(want!.text)
      }
    }
    // The killed node's clients (1 and 4) came back online through another node.
    expect(onlines[1]).toBeGreaterThanOrEqual(2)
    expect(onlines[4]).toBeGreaterThanOrEqual(2)
    // The survivors still answer.
    for (const n of nodes.filter((x) => !dead.has(x))) {
      expect((await fetch(`${n.httpUrl}/readyz`)).status).toBe(200)
    }
  }, 150_000)
})
