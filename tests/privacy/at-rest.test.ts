// At-rest scan (docs/architecture.md §1 P4, P5, P6, P8): after a full scenario against a real relay process — 20 accounts,
// discovery, 1,000 messages, a restart, a number change, half the accounts deactivated — nothing the relay holds on disk or wrote
// to its log contains a number, a verification code, a message text, a sender, or a deactivated account. Run once
// with the SQLite store (its file, WAL and shared memory) and once with the PostgreSQL store: there the scan reads
// PostgreSQL's own files after a CHECKPOINT — the database's directory `base/<oid>/`, which keeps dead row
// versions, and every WAL segment written since the scenario began — so it needs to run on the database host
// with the right to read the data directory (it skips, or fails with PARLEY_REQUIRE_SERVICES=1, otherwise).
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { createClient, type ParleyClient, WsTransport } from '@parley/node'
import { decodeClientFrame, numberCommitment } from '@parley/protocol'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { StoreKey } from '../../apps/relay/src/internal/accountKeys.js'
import { STORE_KEY_FILE } from '../../apps/relay/src/storeKeyFile.js'
import {
  checkpoint,
  createScratchDatabase,
  currentWalSegment,
  databaseFiles,
  eachFile,
  pgQuery,
  probePostgresFiles,
  type ScratchDatabase,
  walSegmentsFrom,
} from '../../apps/relay/test/conformance/postgresFiles.js'
import { describeWith, probePostgres } from '../../apps/relay/test/conformance/services.js'
import { recordingTransport } from '../../packages/client/src/testing/recordingTransport.js'
import { metric } from '../contract/attacker.js'
import { CodeInbox, clientDir, type Relay, startRelay, until } from '../contract/harness.js'
import { generateNumbers } from './numbers.js'
import {
  bytesNeedles,
  describeHits,
  type Needle,
  NeedleSet,
  NumberScanner,
  textNeedles,
  withinDigitRun,
} from './scan.js'

const ACCOUNTS = 20
const DEACTIVATED = 10 // accounts 0..9
const OFFLINE = [15, 16, 17, 18, 19] // closed before the last messages, so their mail is still pending

interface Account {
  e164: string
  client: ParleyClient
  transport: ReturnType<typeof recordingTransport>
  address: Uint8Array
  received: string[]
}

/** A file (or the log) to scan: its name and its bytes, read when the scan gets to it. */
type Source = [string, Uint8Array]

const frames = (a: Account) => a.transport.sent.map((raw) => decodeClientFrame(raw))

/** Every public key and signature a client uploaded (activation and later prekey uploads). */
function uploadedKeys(a: Account): Uint8Array[] {
  const out: Uint8Array[] = []
  for (const f of frames(a)) {
    const upload = f.activationConfirm?.prekeys ?? f.prekeyUpload
    if (f.activationConfirm) out.push(f.activationConfirm.identityKey!)
    if (!upload) continue
    for (const k of [upload.signedPrekey, upload.lastResortKemPrekey, ...(upload.oneTimeKemPrekeys ?? [])]) {
      if (k?.publicKey) out.push(k.publicKey)
      if (k && 'signature' in k && k.signature) out.push(k.signature)
    }
    for (const k of upload.oneTimePrekeys ?? []) out.push(k.publicKey!)
  }
  return out
}

/** What the relay derived and stored for the account from what it sent: number commitments, token verifiers. */
function derivedValues(a: Account): { kind: string; bytes: Uint8Array }[] {
  return frames(a).flatMap((f) => {
    const salt = f.activationConfirm?.numberSalt
    const verifier = f.setDeliveryToken?.verifier
    return [
      ...(salt?.length === 32 ? [{ kind: 'commitment', bytes: numberCommitment(a.e164, salt) }] : []),
      ...(verifier?.length === 32 ? [{ kind: 'verifier', bytes: verifier }] : []),
    ]
  })
}

/** Every sealed envelope any client sent to `to`, on either path. */
function envelopesTo(accounts: Account[], to: Account): Uint8Array[] {
  const hex = Buffer.from(to.address).toString('hex')
  return accounts.flatMap((a) =>
    frames(a).flatMap((f) => {
      const m = f.sendMessage ?? f.unidentifiedSend
      return m?.envelope && Buffer.from(m.recipientAddress!).toString('hex') === hex ? [m.envelope] : []
    }),
  )
}

/** Every file in the relay's data directory (SQLite: the database, its WAL and shared memory; the key files). */
function dataFiles(dir: string): Source[] {
  return readdirSync(dir).map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))])
}

/** The log as scanned: pino's own `time` and `pid` values are digits that no request put there. */
function logText(relay: Relay): Uint8Array {
  return Buffer.from(relay.output.join('\n').replace(/"(time|pid)":\d+,?/g, ''))
}

/** The store a scenario runs on, and how its files are read. */
interface Engine {
  /** Relay flags choosing the store. */
  args: string[]
  /** Everything to scan once the scenario is over (read lazily), the log aside. */
  sources(relay: Relay): Promise<Iterable<Source>>
  /** Columns of every table of the store. */
  tables(relay: Relay): Promise<Map<string, string[]>>
  /** The mailbox rows as stored. */
  mailboxRows(relay: Relay): Promise<{ address: Buffer; envelope: Buffer }[]>
  /** Values only the store knows, read just before the deactivations (PostgreSQL: the data keys). */
  secretsOf?(relay: Relay, accounts: Account[]): Promise<Map<number, Uint8Array[]>>
  /** Kinds of deactivated values that are a documented limit of the store: reported, not asserted. */
  remains?: Set<string>
  /** Resolves once the store has done what it does after erasures (SQLite: the scrub of its file). */
  settled?(relay: Relay): Promise<void>
  close(): Promise<void>
}

/**
 * The WAL is shared by every database of the server and runs to hundreds of megabytes, so it is scanned only for
 * values that cannot occur there by chance: the numbers' 9-digit runs as text (72+ bits), message texts and the
 * deactivated accounts' values. Verification codes (6 digits), BCD runs (4 bits a digit: a 9-digit run matches
 * random bytes about once per 16 MiB segment) and integers are looked for in the database's own files and the
 * log — anything the relay stored went through those files.
 */
const isWal = (name: string) => name.startsWith('pg_wal/')

/** Every 9-digit run of the numbers' E.164 digits, as text. */
function numberRunNeedles(numbers: { e164: string }[]): Needle[] {
  return numbers.flatMap(({ e164 }) => {
    const digits = e164.slice(1)
    return Array.from({ length: digits.length - 8 }, (_, i) =>
      textNeedles(`${e164} digits ${i}..${i + 8}`, digits.slice(i, i + 9)),
    ).flat()
  })
}

/** Passes `sources` through, noting each name in `names`. */
function* noting(sources: Iterable<Source>, names: string[]): Generator<Source> {
  for (const s of sources) {
    names.push(s[0])
    yield s
  }
}

function atRestScan(store: string, engine: () => Promise<Engine>): void {
  const codes = new CodeInbox()
  let relay: Relay
  let e: Engine
  const dir = clientDir()
  const accounts: Account[] = []
  const issuedCodes: string[] = []
  const texts: string[] = []
  const numbers = generateNumbers(ACCOUNTS, 7000)
  const strangers = generateNumbers(40, 8000) // discovered, never registered
  const changedTo = generateNumbers(1, 9000) // account 12's new number (a number change)
  let storeSecrets = new Map<number, Uint8Array[]>()

  beforeAll(async () => {
    e = await engine()
    await codes.start()
    relay = await startRelay(codes, e.args)
    // Activate 20 accounts in 10 regions, capturing every code the verifier was asked to send.
    const activate = async (n: (typeof numbers)[number], i: number): Promise<Account> => {
      const transport = recordingTransport(new WsTransport())
      const client = await createClient({
        relayUrl: relay.baseUrl,
        storePath: join(dir, `a${i}.db`),
        transport,
        reconnect: { minDelayMs: 50, maxDelayMs: 500 },
      })
      const pending = await client.activate({ phoneNumber: n.e164, consent: true })
      const code = await codes.next(pending.e164)
      issuedCodes.push(code)
      const { address } = await client.confirm(code)
      const account: Account = {
        e164: n.e164,
        client,
        transport,
        address: new Uint8Array(Buffer.from(address, 'hex')),
        received: [],
      }
      client.on('message', (m) => account.received.push(m.text ?? ''))
      return account
    }
    // Four at a time: the relay's OPRF worker queue refuses a burst beyond a few batches per core (UNAVAILABLE).
    for (let i = 0; i < numbers.length; i += 4) {
      accounts.push(...(await Promise.all(numbers.slice(i, i + 4).map((n, j) => activate(n, i + j)))))
    }

    // Everyone discovers everyone, plus numbers that are not on Parley.
    const all = [...numbers, ...strangers].map((n) => n.e164)
    for (const a of accounts) {
      const found = await a.client.discover(all)
      expect(found.filter((r) => r.registered).length).toBe(ACCOUNTS)
    }

    // 1,000 messages with distinctive texts over many pairs, across a relay restart.
    const expected = new Map<number, number>()
    const send = async (m: number, to?: number) => {
      const from = to === undefined ? m % ACCOUNTS : m % OFFLINE[0]!
      const dest = to ?? (from + 1 + (m % 7)) % ACCOUNTS
      const text = `${m % 3 === 0 ? 'Grüße ' : 'pt '}${randomBytes(9).toString('base64url')} #${m}`
      texts.push(text)
      expected.set(dest, (expected.get(dest) ?? 0) + 1)
      expect((await accounts[from]!.client.send(accounts[dest]!.e164, text)).route).toBe('ip')
    }
    const delivered = (ids: number[]) =>
      ids.every((i) => accounts[i]!.received.length === (expected.get(i) ?? 0))
    const everyone = accounts.map((_, i) => i)
    for (let m = 0; m < 500; m++) await send(m)
    await until(() => delivered(everyone), 60_000, 'the first 500 messages')
    await relay.restart()
    await until(() => accounts.every((a) => a.client.connectionState === 'online'), 20_000, 'reconnects')
    for (let m = 500; m < 950; m++) await send(m)
    await until(() => delivered(everyone), 60_000, 'the next 450 messages')
    // The last 50 stay in the mailboxes of accounts that are offline, so mailbox rows exist when we look.
    for (const i of OFFLINE) await accounts[i]!.client.close()
    for (let m = 950; m < 1000; m++) await send(m, OFFLINE[m % OFFLINE.length])
    const senders = accounts.filter((_, i) => !OFFLINE.includes(i))
    await until(
      async () => (await Promise.all(senders.map((a) => a.client.pendingCount()))).every((n) => n === 0),
      30_000,
      'the last 50 to be accepted',
    )
    expect(texts.length).toBe(1000)

    // One account changes its number: the new one reaches the relay for its code and the move, and is not kept.
    const mover = accounts[12]!
    const change = await mover.client.changeNumber(changedTo[0]!.e164)
    const changeCode = await codes.next(change.e164)
    issuedCodes.push(changeCode)
    expect((await mover.client.confirmNumberChange(changeCode)).e164).toBe(changedTo[0]!.e164)

    // Half the accounts deactivate.
    storeSecrets = (await e.secretsOf?.(relay, accounts.slice(0, DEACTIVATED))) ?? storeSecrets
    for (const a of accounts.slice(0, DEACTIVATED)) await a.client.deactivate()
    await e.settled?.(relay)
  }, 240_000)

  afterAll(async () => {
    for (const a of accounts) await a.client.close()
    await relay?.close()
    await codes.close()
    await e?.close()
  })

  /** Every place any of the numbers used, a code, or a text is found in `sources`. */
  // A verification code's UTF-8 digits inside a longer digit run (quotas.json's millisecond timestamps, seen
  // twice in CI: 'quotas.json@978: code 6 (utf8)') are chance, not the code; see withinDigitRun.
  const CODE_DIGITS = 6
  const isCodeText = (label: string) => label.startsWith('code ') && label.endsWith('(utf8)')

  function findSecrets(sources: Iterable<Source>): string[] {
    const scanner = new NumberScanner([...numbers, ...strangers, ...changedTo])
    const textNeedleList = texts.flatMap((t, i) => textNeedles(`text ${i}`, t))
    const needles = new NeedleSet([
      ...issuedCodes.flatMap((c, i) => textNeedles(`code ${i}`, c)),
      ...textNeedleList,
    ])
    const walNeedles = new NeedleSet([
      ...numberRunNeedles([...numbers, ...strangers, ...changedTo]),
      ...textNeedleList,
    ])
    const out: string[] = []
    for (const [name, data] of sources) {
      if (isWal(name)) {
        out.push(...describeHits(walNeedles.scan(data, name), 20))
        continue
      }
      // 36+ bits: text and integers, and BCD runs of 9+ digits (every national number here has 9 or more).
      // Shorter BCD runs (28 bits) occur by chance in megabytes of keys and ciphertext. PostgreSQL's pages are
      // also full of small little-endian integers (transaction ids, item pointers, LSNs) whose nibbles read as
      // digits: seen, '015507000' of +12015507000 in a page header. There a BCD run must match 11+ digits.
      const minBits = (h: { encoding: string }) =>
        name.startsWith('base/') && h.encoding.startsWith('bcd') ? 44 : 36
      out.push(
        ...describeHits(
          scanner.scan(data, name).filter((h) => h.bits >= minBits(h)),
          20,
        ),
        ...describeHits(
          needles
            .scan(data, name)
            .filter((h) => !(isCodeText(h.label) && withinDigitRun(data, h.offset, CODE_DIGITS))),
          20,
        ),
      )
    }
    return out
  }

  /** The deactivated accounts' addresses and values, each needle labelled `account <i> <kind> <j>`. */
  function deactivatedNeedles(): Needle[] {
    return accounts.slice(0, DEACTIVATED).flatMap((a, i) => {
      const values: { kind: string; bytes: Uint8Array }[] = [
        ...uploadedKeys(a).map((bytes) => ({ kind: 'key', bytes })),
        ...derivedValues(a),
        ...envelopesTo(accounts, a).map((bytes) => ({ kind: 'envelope', bytes })),
        ...(storeSecrets.get(i) ?? []).map((bytes) => ({ kind: 'data-key', bytes })),
      ]
      return [
        ...bytesNeedles(`account ${i} address 0`, a.address),
        ...values.flatMap((v, j) => bytesNeedles(`account ${i} ${v.kind} ${j}`, v.bytes.slice(0, 32))),
      ]
    })
  }

  /**
   * Every place a deactivated account's address or value is found in `sources`, one line per file: which
   * accounts, and how many of their values of each kind survive there. Kinds in `remains` go to `remaining`.
   */
  function findDeactivated(sources: Iterable<Source>, remaining: string[] = []): string[] {
    const set = new NeedleSet(deactivatedNeedles())
    const out: string[] = []
    for (const [name, data] of sources) {
      const labels = new Set(set.scan(data, name).map((h) => h.label.replace(/ \(.*$/, '')))
      const byKind = new Map<string, Set<string>>()
      for (const l of labels) {
        const [, account, kind] = l.split(' ')
        if (!byKind.has(kind!)) byKind.set(kind!, new Set())
        byKind.get(kind!)!.add(`${account}/${l}`)
      }
      for (const [kind, found] of byKind) {
        const line = `${name}: ${found.size} ${kind} values of ${new Set([...found].map((f) => f.split('/')[0])).size} deactivated accounts`
        ;(e.remains?.has(kind) ? remaining : out).push(line)
      }
    }
    return out
  }

  const withLog = function* (sources: Iterable<Source>): Generator<Source> {
    yield* sources
    yield ['log', logText(relay)]
  }

  it(`P4, P5: no number, verification code or message text in any ${store} file or the log`, async () => {
    expect(issuedCodes.length).toBe(ACCOUNTS + changedTo.length)
    const names: string[] = []
    expect(findSecrets(noting(withLog(await e.sources(relay)), names))).toEqual([])
    expect(names).toContain('log')
  }, 180_000)

  it('P6: mailbox rows hold recipient, ciphertext and arrival time — no sender column, no sender inside', async () => {
    const tables = await e.tables(relay)
    expect(tables.get('mailbox')!.sort()).toEqual([
      'address',
      'device_id',
      'envelope',
      'message_id',
      'received_at_ms',
      'seq',
    ])
    for (const [t, cols] of tables) {
      expect(
        cols.filter((c) => /sender|from|source|origin|author|^ip$|_ip$|^ip_/i.test(c)),
        t,
      ).toEqual([])
    }
    // The pending mail of the offline accounts is there, and no row carries any sender in the clear.
    const rows = await e.mailboxRows(relay)
    const offline = new Set(OFFLINE.map((i) => Buffer.from(accounts[i]!.address).toString('hex')))
    expect(rows.filter((r) => offline.has(r.address.toString('hex'))).length).toBeGreaterThanOrEqual(50)
    const senders = new NeedleSet(
      accounts.flatMap((a, i) => [
        ...bytesNeedles(`account ${i} address`, a.address),
        ...uploadedKeys(a)
          .slice(0, 1)
          .flatMap((k) => bytesNeedles(`account ${i} identity key`, k)),
      ]),
    )
    const inside = rows.flatMap((r, i) => describeHits(senders.scan(r.envelope, `mailbox row ${i}`)))
    expect(inside).toEqual([])
  })

  it(`P8: no address or value of a deactivated account remains in any ${store} file or the log`, async () => {
    expect(deactivatedNeedles().length).toBeGreaterThan(DEACTIVATED * 30)
    const remaining: string[] = []
    expect(findDeactivated(withLog(await e.sources(relay)), remaining)).toEqual([])
    if (remaining.length > 0)
      console.info(`documented limit (SECURITY.md, Erasure):\n  ${remaining.join('\n  ')}`)
  }, 180_000)

  it('P4, P8: still none after the relay restarts and the store writes everything out', async () => {
    await relay.restart()
    expect(findSecrets(withLog(await e.sources(relay)))).toEqual([])
    expect(findDeactivated(withLog(await e.sources(relay)))).toEqual([])
  }, 240_000)
}

describe('at-rest scan of a relay on SQLite after a full scenario (P4, P5, P6, P8)', () => {
  const query = <T>(relay: Relay, sql: string) => {
    const db = new Database(join(relay.dataDir, 'relay.db'), { readonly: true, fileMustExist: true })
    try {
      return db.prepare(sql).all() as T[]
    } finally {
      db.close()
    }
  }
  atRestScan('data', async () => ({
    // Erasures are scrubbed (VACUUM) within a second rather than the default minute: the scan waits for it.
    args: ['--erasure-scrub-seconds', '1'],
    async settled(relay) {
      const scrub = async () => ({
        due: await metric(relay.metricsUrl, 'parley_relay_store_scrub_due'),
        done: await metric(relay.metricsUrl, 'parley_relay_store_scrubs_total', '{outcome="done"}'),
      })
      await until(async () => (await scrub()).due === 0, 30_000, 'the scrub after the deactivations')
      expect((await scrub()).done).toBeGreaterThan(0)
    },
    async sources(relay) {
      const files = dataFiles(relay.dataDir)
      expect(files.map(([f]) => f)).toEqual(expect.arrayContaining(['relay.db']))
      return files
    },
    async tables(relay) {
      const names = query<{ name: string }>(relay, "SELECT name FROM sqlite_master WHERE type = 'table'")
        .map((t) => t.name)
        .filter((t) => !t.startsWith('sqlite_'))
      return new Map(
        names.map((t) => [t, query<{ name: string }>(relay, `PRAGMA table_info(${t})`).map((c) => c.name)]),
      )
    },
    async mailboxRows(relay) {
      return query<{ address: Buffer; envelope: Buffer }>(relay, 'SELECT address, envelope FROM mailbox')
    },
    async close() {},
  }))
})

const pgAbsent = await probePostgres()
const pgFiles = pgAbsent === null ? await probePostgresFiles() : { absent: pgAbsent }

describeWith(
  'at-rest scan of a relay on PostgreSQL after a full scenario (P4, P5, P6, P8)',
  ['absent' in pgFiles ? pgFiles.absent : null],
  () => {
    atRestScan('PostgreSQL', async () => {
      const { dataDir } = pgFiles as { dataDir: string }
      const db: ScratchDatabase = await createScratchDatabase('atrest')
      // Every WAL segment from here on holds this scenario's writes (and other databases').
      const firstSegment = await currentWalSegment()
      const q = <T extends Record<string, unknown>>(sql: string) => pgQuery<T>(db.url, sql)
      return {
        args: ['--store', db.url],
        async sources(relay) {
          // Everything PostgreSQL holds in memory goes to the table files, as a thief of the disk would find it.
          await checkpoint()
          const inDb = databaseFiles(dataDir, db.oid)
          const segments = walSegmentsFrom(dataDir, firstSegment)
          expect(inDb.length).toBeGreaterThan(20)
          expect(segments.length).toBeGreaterThan(0)
          return (function* () {
            yield* dataFiles(relay.dataDir)
            yield* eachFile(inDb, (p) => `base/${db.oid}/${basename(p)}`)
            yield* eachFile(segments, (p) => `pg_wal/${basename(p)}`)
          })()
        },
        async tables() {
          const cols = await q<{ table_name: string; column_name: string }>(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'",
          )
          const out = new Map<string, string[]>()
          for (const c of cols) out.set(c.table_name, [...(out.get(c.table_name) ?? []), c.column_name])
          return out
        },
        mailboxRows: () => q<{ address: Buffer; envelope: Buffer }>('SELECT address, envelope FROM mailbox'),
        // The data keys the deactivated accounts' values were sealed under (the relay never writes them out
        // unwrapped): found anywhere, they would open every copy PostgreSQL keeps.
        async secretsOf(relay, deactivated) {
          // Wrapped under the store key in the relay's data directory (a database without one keeps them raw).
          const bound = (await q("SELECT 1 FROM store_meta WHERE name = 'store_key_check'")).length > 0
          const file = bound
            ? (JSON.parse(readFileSync(join(relay.dataDir, STORE_KEY_FILE), 'utf8')) as { key: string })
            : undefined
          const storeKey = file && new StoreKey(Buffer.from(file.key, 'hex'))
          const rows = await q<{ address: Buffer; key_id: Buffer; data_key: Buffer }>(
            'SELECT address, key_id, data_key FROM account_keys',
          )
          const out = new Map<number, Uint8Array[]>()
          for (const [i, a] of deactivated.entries()) {
            const row = rows.find((r) => r.address.equals(a.address))!
            out.set(i, [storeKey ? storeKey.unwrap(row.address, row.key_id, row.data_key) : row.data_key])
          }
          return out
        },
        // Addresses are the lookup keys, in the clear; PostgreSQL keeps deleted ones in dead row versions and
        // WAL until it reuses them (SECURITY.md, "Erasure"). Everything else of the account must be unreadable.
        remains: new Set(['address']),
        close: () => db.drop(),
      }
    })
  },
)
