// Pipelined requests on one connection: a client may send many SendMessage / AckMessages frames without waiting
// for the replies. The relay overlaps their commits (one group commit for the run) when the store orders
// concurrent writes (SQLite), and handles them one by one when it does not (PostgreSQL). Either way: mail lands in
// arrival order, MessageAccepted only after the commit, a failing send fails alone, quotas apply per message, and
// any other request waits for the run.
import { parleyErrorFromWire, type ServerFrame } from '@parley/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RelayOptions } from '../src/index.js'
import { PostgresStore } from '../src/PostgresStore.js'
import { SqliteStore } from '../src/SqliteStore.js'
import type { Store } from '../src/Store.js'
import {
  type Account,
  activate,
  inProcess,
  login,
  messageId,
  RawClient,
  type RelayProcess,
  sealedShape,
  shapeText,
  spawnDevRelay,
  tempDir,
} from '../testing/index.js'
import { describeWith, PG_URL, probePostgres, uniqueName } from './conformance/services.js'

const enc = new TextEncoder()

/** The body a burst sends as message `i` (`bad` picks a failure for it). */
function sendBody(to: Account, i: number, bad?: 'stale' | 'unknown' | 'large' | 'empty' | 'malformed') {
  return {
    sendMessage: {
      recipientAddress: bad === 'unknown' ? new Uint8Array(32).fill(0xee) : to.address,
      recipientDeviceId: bad === 'stale' ? to.deviceId + 7 : to.deviceId,
      messageId: messageId(),
      envelope:
        bad === 'large'
          ? new Uint8Array(300 * 1024)
          : bad === 'empty'
            ? new Uint8Array()
            : bad === 'malformed'
              ? enc.encode(`m${i}`)
              : sealedShape(`m${i}`),
    },
  }
}

/** What each reply was: 'ok' for MessageAccepted, else the error code. */
const outcome = (f: ServerFrame) =>
  f.body === 'messageAccepted' ? 'ok' : f.body === 'error' ? parleyErrorFromWire(f.error!).code : f.body

/** Envelope texts of the deliveries `c` got, in push (= seq) order, and their seqs. */
function received(c: RawClient) {
  const d = c.deliveries()
  return { texts: d.map((x) => shapeText(x.envelope!)), seqs: d.map((x) => Number(x.seq)) }
}

describe('pipelined sends against the relay process (SQLite)', () => {
  let relay: RelayProcess
  const dataDir = tempDir()
  let alice: Account
  let bob: Account
  let a: RawClient
  let b: RawClient
  let head = 0
  const args = ['--frames-burst', '20000', '--frames-per-second', '100000', '--send-capacity', '20000']

  beforeAll(async () => {
    relay = await spawnDevRelay(args, dataDir)
    a = await RawClient.open(relay.url)
    b = await RawClient.open(relay.url)
    alice = await activate(a, relay, '+14155550171')
    bob = await activate(b, relay, '+14155550172')
    b.close()
  })
  afterAll(async () => {
    a?.close()
    b?.close()
    await relay?.stop()
  })

  it('stores a burst in arrival order; each failing send in it fails alone', async () => {
    const N = 300
    const bad = new Map<number, 'stale' | 'unknown' | 'large' | 'empty' | 'malformed'>([
      [40, 'stale'],
      [41, 'stale'],
      [120, 'unknown'],
      [200, 'large'],
      [201, 'empty'],
      [202, 'malformed'],
      [299, 'stale'],
    ])
    const replies = await Promise.all(
      Array.from({ length: N }, (_, i) => a.send(sendBody(bob, i, bad.get(i)))),
    )
    const expected = Array.from(
      { length: N },
      (_, i) =>
        ({
          stale: 'CONFLICT',
          unknown: 'NOT_FOUND',
          large: 'TOO_LARGE',
          empty: 'BAD_REQUEST',
          malformed: 'BAD_REQUEST',
          none: 'ok',
        })[bad.get(i) ?? 'none'],
    )
    expect(replies.map(outcome)).toEqual(expected)
    const stored = Array.from({ length: N }, (_, i) => i).filter((i) => !bad.has(i))
    const { client } = await login(relay.url, bob)
    b = client
    await b.request({ syncMailbox: { afterSeq: head } })
    const got = received(b)
    expect(got.texts).toEqual(stored.map((i) => `m${i}`))
    expect(got.seqs).toEqual(stored.map((_, k) => head + k + 1))
    head += stored.length
    // Acks pipelined the same way delete exactly their own entries.
    const acks = await Promise.all(
      [got.seqs.slice(0, 100), got.seqs.slice(100, 200), [head + 1000], got.seqs.slice(200)].map((seqs) =>
        b.request({ ackMessages: { seqs } }),
      ),
    )
    expect(acks.map((f) => f.acked!.count ?? 0)).toEqual([100, 100, 0, stored.length - 200])
    b.close()
  })

  it('a request after a burst sees every send of the burst done (SyncMailbox of the sender’s own mailbox)', async () => {
    const N = 150
    const sends = Array.from({ length: N }, (_, i) => a.send(sendBody(alice, i)))
    const sync = a.request({ syncMailbox: { afterSeq: 0 } })
    const done = (await sync).syncDone!
    expect(done.headSeq).toBe(N)
    expect((await Promise.all(sends)).map(outcome)).toEqual(Array(N).fill('ok'))
    expect(received(a).texts).toEqual(Array.from({ length: N }, (_, i) => `m${i}`))
  })

  it('charges the send quota per message in arrival order', async () => {
    const r = await spawnDevRelay([
      '--frames-burst',
      '2000',
      '--send-capacity',
      '50',
      '--send-per-minute',
      '1',
    ])
    try {
      const c1 = await RawClient.open(r.url)
      const c2 = await RawClient.open(r.url)
      await activate(c1, r, '+14155550173')
      const carol = await activate(c2, r, '+14155550174')
      const replies = await Promise.all(Array.from({ length: 80 }, (_, i) => c1.send(sendBody(carol, i))))
      expect(replies.map(outcome)).toEqual([...Array(50).fill('ok'), ...Array(30).fill('RATE_LIMITED')])
      await c2.request({ syncMailbox: { afterSeq: 0 } })
      expect(received(c2).texts).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`))
      c1.close()
      c2.close()
    } finally {
      await r.stop()
    }
  })

  it('keeps every accepted message of a burst through kill -9, in order (accepted only once durable)', async () => {
    // The client keeps WINDOW sends unanswered at all times, refilling as replies arrive, until the socket drops:
    // the relay can never catch up with the burst, so the kill (sent after the 100th acceptance) always lands
    // with sends queued, in flight or being committed, however fast the relay or slow the test client is.
    const WINDOW = 2000
    const CEILING = 500_000 // a guard against a relay that never dies
    const accepted = new Set<number>()
    let killed: Promise<number | null> | undefined
    let sent = 0
    let answered = 0
    let closed = false
    const done = a.closed.then(() => {
      closed = true
    })
    const pump = () => {
      while (!closed && sent - answered < WINDOW && sent < CEILING) {
        const i = sent++
        a.send(sendBody(bob, i)).then(
          (f) => {
            answered++
            if (f.body === 'messageAccepted') accepted.add(i)
            if (accepted.size === 100) killed ??= relay.stop('SIGKILL')
            pump()
          },
          () => {}, // no answer before the socket dropped: not accepted
        )
      }
    }
    pump()
    await done
    await killed
    expect(accepted.size).toBeGreaterThanOrEqual(100)
    expect(sent - answered).toBeGreaterThan(0) // the kill did land mid-burst: sends were still unanswered
    expect(accepted.size).toBeLessThan(sent)
    relay = await spawnDevRelay(args, dataDir)
    const { client } = await login(relay.url, bob)
    b = client
    await b.request({ syncMailbox: { afterSeq: head } })
    const texts = received(b).texts
    // Committed mail is a prefix of the burst (group commits in arrival order) and holds everything accepted.
    expect(texts).toEqual(Array.from({ length: texts.length }, (_, i) => `m${i}`))
    expect(texts.length).toBeGreaterThanOrEqual(Math.max(...accepted) + 1)
    a = (await login(relay.url, alice)).client
  })
})

/** Wraps `store.enqueue` to record the most enqueues in flight at once. */
function countingEnqueues(store: Store) {
  const stats = { inFlight: 0, max: 0 }
  const enqueue = store.enqueue.bind(store)
  store.enqueue = async (input) => {
    stats.max = Math.max(stats.max, ++stats.inFlight)
    try {
      return await enqueue(input)
    } finally {
      stats.inFlight--
    }
  }
  return stats
}

/** Runs a burst from one connection through an in-process relay on `store`; returns outcomes and deliveries. */
async function burstThrough(store: Store, options: RelayOptions = {}) {
  const stats = countingEnqueues(store)
  const { relay, verifier } = await inProcess({ store, framesBurst: 1000, ...options })
  try {
    const c1 = await RawClient.open(relay.url)
    const c2 = await RawClient.open(relay.url)
    await activate(c1, verifier, '+14155550181')
    const dave = await activate(c2, verifier, '+14155550182')
    const N = 200
    const replies = await Promise.all(
      Array.from({ length: N }, (_, i) => c1.send(sendBody(dave, i, i === 77 ? 'stale' : undefined))),
    )
    await c2.request({ syncMailbox: { afterSeq: 0 } })
    const got = received(c2)
    c1.close()
    c2.close()
    return { outcomes: replies.map(outcome), ...got, maxInFlight: stats.max, N }
  } finally {
    await relay.close()
  }
}

describe('which stores overlap a connection’s sends', () => {
  it('SQLite (ordersConcurrentWrites): the burst shares commits, and lands in order', async () => {
    const store = new SqliteStore(':memory:')
    expect(store.ordersConcurrentWrites).toBe(true)
    const r = await burstThrough(store)
    expect(r.maxInFlight).toBeGreaterThan(1)
    expect(r.outcomes).toEqual(Array.from({ length: r.N }, (_, i) => (i === 77 ? 'CONFLICT' : 'ok')))
    const stored = Array.from({ length: r.N }, (_, i) => i).filter((i) => i !== 77)
    expect(r.texts).toEqual(stored.map((i) => `m${i}`))
    expect(r.seqs).toEqual(stored.map((_, k) => k + 1))
  })
})

const pgAbsent = await probePostgres()
describeWith('which stores overlap a connection’s sends (PostgreSQL)', [pgAbsent], () => {
  const opened: Store[] = []
  afterAll(async () => {
    for (const s of opened) await s.close().catch(() => {})
  })

  it('PostgreSQL (no ordersConcurrentWrites): one send at a time per connection, so seqs follow arrival', async () => {
    const store = await PostgresStore.open({ url: `${PG_URL}?schema=${uniqueName('pipe')}` })
    opened.push(store)
    expect(store.ordersConcurrentWrites).toBe(false)
    const r = await burstThrough(store)
    expect(r.maxInFlight).toBe(1)
    expect(r.outcomes).toEqual(Array.from({ length: r.N }, (_, i) => (i === 77 ? 'CONFLICT' : 'ok')))
    const stored = Array.from({ length: r.N }, (_, i) => i).filter((i) => i !== 77)
    expect(r.texts).toEqual(stored.map((i) => `m${i}`))
    expect(r.seqs).toEqual(stored.map((_, k) => k + 1))
  })
})
