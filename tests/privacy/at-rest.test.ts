// At-rest scan (DESIGN.md §1 P4, P5, P6, P8): after a full scenario against a real relay process — 20 accounts,
// discovery, 1,000 messages, a restart, half the accounts deactivated — nothing the relay holds on disk or wrote
// to its log contains a number, a verification code, a message text, a sender, or a deactivated account.
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createClient, type ParleyClient, WsTransport } from '@parley/node'
import { decodeClientFrame } from '@parley/protocol'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { recordingTransport } from '../../packages/client/src/testing/recordingTransport.js'
import { CodeInbox, clientDir, type Relay, startRelay, until } from '../contract/harness.js'
import { generateNumbers } from './numbers.js'
import { bytesNeedles, describeHits, type Needle, NeedleSet, NumberScanner, textNeedles } from './scan.js'

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

/** Every public key and signature a client uploaded (activation and later prekey uploads). */
function uploadedKeys(sent: Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = []
  for (const raw of sent) {
    const f = decodeClientFrame(raw)
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

/** Every file in the relay's data directory (the database, its WAL and shared memory, the OPRF key file). */
function dataFiles(dir: string): [string, Uint8Array][] {
  return readdirSync(dir).map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))])
}

/** The log as scanned: pino's own `time` and `pid` values are digits that no request put there. */
function logText(relay: Relay): Uint8Array {
  return Buffer.from(relay.output.join('\n').replace(/"(time|pid)":\d+,?/g, ''))
}

describe('at-rest scan of a relay after a full scenario (P4, P5, P6, P8)', () => {
  const codes = new CodeInbox()
  let relay: Relay
  const dir = clientDir()
  const accounts: Account[] = []
  const issuedCodes: string[] = []
  const texts: string[] = []
  const numbers = generateNumbers(ACCOUNTS, 7000)
  const strangers = generateNumbers(40, 8000) // discovered, never registered

  beforeAll(async () => {
    await codes.start()
    relay = await startRelay(codes)
    // Activate 20 accounts in 10 regions, capturing every code the verifier was asked to send.
    const activate = async (n: (typeof numbers)[number], i: number): Promise<Account> => {
      const transport = recordingTransport(new WsTransport())
      const client = await createClient({
        relayUrl: relay.url,
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

    // Half the accounts deactivate.
    for (const a of accounts.slice(0, DEACTIVATED)) await a.client.deactivate()
  }, 180_000)

  afterAll(async () => {
    for (const a of accounts) await a.client.close()
    await relay?.stop()
    await codes.close()
  })

  /** Every place any of the numbers used, a code, or a text is found in `sources`. */
  function findSecrets(sources: [string, Uint8Array][]): string[] {
    const scanner = new NumberScanner([...numbers, ...strangers])
    const needles = new NeedleSet([
      ...issuedCodes.flatMap((c, i) => textNeedles(`code ${i}`, c)),
      ...texts.flatMap((t, i) => textNeedles(`text ${i}`, t)),
    ])
    // 36+ bits: text and integers, and BCD runs of 9+ digits (every national number here has 9 or more).
    // Shorter BCD runs (28 bits) occur by chance in megabytes of keys and ciphertext.
    return sources.flatMap(([name, data]) => [
      ...describeHits(
        scanner.scan(data, name).filter((h) => h.bits >= 36),
        20,
      ),
      ...describeHits(needles.scan(data, name), 20),
    ])
  }

  /** Every place an address or key of a deactivated account is found in `sources`. */
  function findDeactivated(sources: [string, Uint8Array][]): string[] {
    const needles: Needle[] = accounts
      .slice(0, DEACTIVATED)
      .flatMap((a, i) => [
        ...bytesNeedles(`account ${i} address`, a.address),
        ...uploadedKeys(a.transport.sent).flatMap((k, j) =>
          bytesNeedles(`account ${i} key ${j}`, k.slice(0, 32)),
        ),
      ])
    const set = new NeedleSet(needles)
    // One line per file: which accounts, and how many of their addresses and keys survive there.
    return sources.flatMap(([name, data]) => {
      const labels = new Set(set.scan(data, name).map((h) => h.label.replace(/ \(.*$/, '')))
      if (labels.size === 0) return []
      const accountsHit = new Set([...labels].map((l) => l.split(' ')[1]))
      const addresses = [...labels].filter((l) => l.endsWith('address')).length
      return [
        `${name}: ${accountsHit.size} deactivated accounts, ${addresses} addresses and ${labels.size - addresses} keys`,
      ]
    })
  }

  it('P4, P5: no number, verification code or message text in any data file (WAL and SHM included) or the log', () => {
    const files = dataFiles(relay.dataDir)
    expect(files.map(([f]) => f)).toEqual(expect.arrayContaining(['relay.db']))
    expect(issuedCodes.length).toBe(ACCOUNTS)
    expect(findSecrets([...files, ['log', logText(relay)]])).toEqual([])
  })

  it('P6: mailbox rows hold recipient, ciphertext and arrival time — no sender column, no sender inside', () => {
    const db = new Database(join(relay.dataDir, 'relay.db'), { readonly: true, fileMustExist: true })
    try {
      const columns = (db.prepare('PRAGMA table_info(mailbox)').all() as { name: string }[]).map(
        (c) => c.name,
      )
      expect(columns.sort()).toEqual([
        'address',
        'device_id',
        'envelope',
        'message_id',
        'received_at_ms',
        'seq',
      ])
      const tables = (
        db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]
      )
        .map((t) => t.name)
        .filter((t) => !t.startsWith('sqlite_'))
      for (const t of tables) {
        const cols = (db.prepare(`PRAGMA table_info(${t})`).all() as { name: string }[]).map((c) => c.name)
        expect(
          cols.filter((c) => /sender|from|source|origin|author|^ip$|_ip$|^ip_/i.test(c)),
          t,
        ).toEqual([])
      }
      // The pending mail of the offline accounts is there, and no row carries any sender in the clear.
      const rows = db.prepare('SELECT address, envelope FROM mailbox').all() as {
        address: Buffer
        envelope: Buffer
      }[]
      const offline = new Set(OFFLINE.map((i) => Buffer.from(accounts[i]!.address).toString('hex')))
      expect(rows.filter((r) => offline.has(r.address.toString('hex'))).length).toBeGreaterThanOrEqual(50)
      const senders = new NeedleSet(
        accounts.flatMap((a, i) => [
          ...bytesNeedles(`account ${i} address`, a.address),
          ...uploadedKeys(a.transport.sent)
            .slice(0, 1)
            .flatMap((k) => bytesNeedles(`account ${i} identity key`, k)),
        ]),
      )
      const inside = rows.flatMap((r, i) => describeHits(senders.scan(r.envelope, `mailbox row ${i}`)))
      expect(inside).toEqual([])
    } finally {
      db.close()
    }
  })

  it('P8: no address or key of a deactivated account remains in any data file or the log', () => {
    expect(findDeactivated([...dataFiles(relay.dataDir), ['log', logText(relay)]])).toEqual([])
  })

  it('P4, P8: still none after the relay shuts down and folds its WAL into the database', async () => {
    await relay.restart()
    const sources: [string, Uint8Array][] = [...dataFiles(relay.dataDir), ['log', logText(relay)]]
    expect(findSecrets(sources)).toEqual([])
    expect(findDeactivated(sources)).toEqual([])
  })
})
