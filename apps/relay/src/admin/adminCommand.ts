/**
 * `parley-relay admin …`: the operator's view of the accounts and its holds on them, on the relay's store
 * (SQLite beside a running relay, in WAL mode; or PostgreSQL). Accounts are named by their address (hex): a
 * number given to `lookup`, `ban`, `unban`, `devices` or `revoke` is turned into its addresses under every OPRF
 * key the relay serves (`<dataDir>/oprf-keys.json`) and is never printed, stored or logged.
 *
 * A running relay refuses a banned address or a revoked device at its next authentication or activation, and
 * closes its open connections at its next sweep ({@link closeHeldConnections}).
 * @module
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { addressFromToken, normalizeNumber, numberToOprfInput, oprfEvaluate } from '@parley/protocol'
import { OprfKeyring } from '../OprfKeyring.js'
import type { AccountSummary, Store } from '../Store.js'
import {
  type CommandIo,
  guarded,
  type OperatorCommand,
  openStore,
  parseArgs,
  STORE_FLAGS,
  type StoreLocation,
  storeLocation,
  UsageError,
} from './options.js'

const USAGE = `Usage: parley-relay admin <command> [--data-dir <dir>] [--store sqlite|postgres://…]
  stats                          accounts registered, banned, revoked; unread mail in total
  accounts [--limit N] [--after <address>]
                                 each account by address: device, unread messages and bytes, activity, holds
  lookup <number | ->            the number's address under each served OPRF key, and its account
  ban <number | -> | --address <hex>
                                 refuses the account at authentication and activation, closes its connections;
                                 keeps its keys and mail (which expires as usual) until unbanned
  unban <number | -> | --address <hex>
  devices <number | -> | --address <hex>
                                 the account's registered device
  revoke <number | -> | --address <hex> [--device N]
                                 the device's credentials fail from now on; its connections are closed; the
                                 number must be activated again
A number given as - is read from standard input (it then appears in no process list or shell history); it is
never printed. The data directory and store default to PARLEY_DATA_DIR / PARLEY_STORE, else ./.parley-data and
sqlite, as for the relay. A running relay refuses held devices at once and closes their open connections at its
next sweep (--sweep-interval-seconds).`

const FLAGS = [...STORE_FLAGS, '--address', '--device', '--limit', '--after'] as const

/** Lower-case hex of bytes. */
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** An ISO time, or `-` for none. */
const when = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : '-')

/**
 * One account as one line of `admin` output: address, device, mailbox depth, activity and holds; no key, no
 * number.
 * @param a - the account's summary
 * @returns the line
 */
export function describeAccount(a: AccountSummary): string {
  const holds = [a.banned ? 'banned' : '', a.revoked ? 'revoked' : ''].filter((h) => h !== '').join(',')
  return (
    `${hex(a.address)} device ${a.deviceId} mailbox ${a.mailboxMessages} messages ${a.mailboxBytes} bytes ` +
    `created ${when(a.createdAtMs)} active ${when(a.lastActiveMs)}${holds ? ` ${holds}` : ''}`
  )
}

/** A 32-byte address from 64 hex digits. */
function parseAddress(text: string): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new UsageError('an address is 64 hex digits')
  return new Uint8Array(Buffer.from(text, 'hex'))
}

/** A positive whole number option. */
function positiveInt(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} must be a whole number of at least 1`)
  return n
}

/**
 * The addresses a command acts on: `--address`, or the number's address under each OPRF key the relay serves
 * (two during a rotation's grace period), newest key first.
 */
async function targets(
  at: StoreLocation,
  positional: string[],
  flags: Map<string, string>,
  io: CommandIo,
): Promise<{ keyId: number | null; address: Uint8Array }[]> {
  const given = flags.get('--address')
  if (given !== undefined) {
    if (positional.length > 0) throw new UsageError('give a number or --address, not both')
    return [{ keyId: null, address: parseAddress(given) }]
  }
  if (positional.length !== 1) throw new UsageError('give one number (or - to read it from standard input)')
  const raw = positional[0] === '-' ? (await io.stdin()).trim() : positional[0]!
  // INVALID_NUMBER's messages never repeat the input.
  const number = normalizeNumber(raw)
  if (!existsSync(join(at.dataDir, 'oprf-keys.json'))) {
    throw new Error(`no oprf-keys.json in ${at.dataDir}: a number's address needs the relay's OPRF keys`)
  }
  const ring = OprfKeyring.open(at.dataDir, (m) => io.err(`warning: ${m}`))
  const input = numberToOprfInput(number)
  return ring
    .served()
    .map((k) => ({ keyId: k.keyId, address: addressFromToken(oprfEvaluate(k.secretKey, input)) }))
}

/** A target's label: `key 2 address …` for a number's, the address alone for `--address`. */
const label = (t: { keyId: number | null; address: Uint8Array }) =>
  t.keyId === null ? hex(t.address) : `key ${t.keyId} ${hex(t.address)}`

/** Every account, page by page. */
async function* allAccounts(store: Store): AsyncGenerator<AccountSummary> {
  for (let after: Uint8Array | null = null; ; ) {
    const page = await store.listAccounts(after, 1000)
    yield* page
    if (page.length < 1000) return
    after = page[page.length - 1]!.address
  }
}

/**
 * Runs `parley-relay admin <command>`.
 * @param args - the arguments after `admin`
 * @param env - the environment (`PARLEY_DATA_DIR`, `PARLEY_STORE`)
 * @param io - output, and standard input for a number given as `-`
 * @returns the exit code: 0 done, 1 failed (no such account, store unavailable), 2 usage
 * @example
 * await adminCommand(['ban', '--address', 'ab12…'], process.env, io) // 0
 * @see closeHeldConnections in admin/watch.ts, for how a running relay learns of a ban
 */
export const adminCommand: OperatorCommand = async (args, env, io) => {
  const [sub, ...rest] = args
  if (sub === undefined || sub === '--help' || sub === 'help') {
    io.out(USAGE)
    return sub === undefined ? 2 : 0
  }
  return guarded('admin', USAGE, io, async () => {
    const { flags, positional } = parseArgs(rest, FLAGS)
    const at = storeLocation(flags, env)
    if (!['stats', 'accounts', 'lookup', 'ban', 'unban', 'devices', 'revoke'].includes(sub)) {
      throw new UsageError(`unknown command ${sub}`)
    }
    if ((sub === 'stats' || sub === 'accounts') && positional.length > 0) {
      throw new UsageError(`${sub} takes no arguments`)
    }
    const limit = positiveInt(flags.get('--limit'), '--limit', 100)
    const after = flags.get('--after')
    const device = flags.has('--device') ? positiveInt(flags.get('--device'), '--device', 0) : undefined
    const chosen = sub === 'stats' || sub === 'accounts' ? [] : await targets(at, positional, flags, io)
    const store = await openStore(at)
    try {
      return await run(store, sub, chosen, { limit, after, device }, io)
    } finally {
      await store.close()
    }
  })
}

async function run(
  store: Store,
  sub: string,
  chosen: { keyId: number | null; address: Uint8Array }[],
  opts: { limit: number; after: string | undefined; device: number | undefined },
  io: CommandIo,
): Promise<number> {
  const now = Date.now()
  switch (sub) {
    case 'stats': {
      let banned = 0
      let revoked = 0
      let messages = 0
      let bytes = 0
      let count = 0
      for await (const a of allAccounts(store)) {
        count++
        if (a.banned) banned++
        if (a.revoked) revoked++
        messages += a.mailboxMessages
        bytes += a.mailboxBytes
      }
      io.out(`accounts ${count} (banned ${banned}, revoked ${revoked})`)
      io.out(`unread mail ${messages} messages ${bytes} bytes`)
      return 0
    }
    case 'accounts': {
      const page = await store.listAccounts(opts.after ? parseAddress(opts.after) : null, opts.limit)
      for (const a of page) io.out(describeAccount(a))
      if (page.length === opts.limit) {
        io.out(`more: --after ${hex(page[page.length - 1]!.address)}`)
      }
      return 0
    }
    case 'lookup':
    case 'devices': {
      let found = 0
      for (const t of chosen) {
        const a = await store.accountSummary(t.address)
        const banned = (await store.operatorHold(t.address, 0)) === 'banned'
        if (a) found++
        if (sub === 'devices' && !a) continue
        io.out(
          a
            ? `${t.keyId === null ? '' : `key ${t.keyId} `}${describeAccount(a)}`
            : `${label(t)} no account${banned ? ' banned' : ''}`,
        )
      }
      if (sub === 'devices' && found === 0) io.out('no account')
      return 0
    }
    case 'ban':
    case 'unban': {
      for (const t of chosen) {
        const changed = await store.setBanned(t.address, sub === 'ban', now)
        const state = sub === 'ban' ? 'banned' : 'not banned'
        io.out(`${label(t)} ${state}${changed ? '' : ' (already)'}`)
      }
      if (sub === 'ban') io.out('running relays refuse it now and close its connections at their next sweep')
      return 0
    }
    default: {
      // revoke
      let revoked = 0
      for (const t of chosen) {
        const a = await store.accountSummary(t.address)
        if (!a) continue
        if (opts.device !== undefined && opts.device !== a.deviceId) {
          io.err(`${label(t)}: device ${opts.device} is not the registered device (${a.deviceId})`)
          continue
        }
        if (await store.revokeDevice(t.address, a.deviceId, now)) {
          revoked++
          io.out(`${label(t)} device ${a.deviceId} revoked`)
        }
      }
      if (revoked === 0) {
        io.err('parley-relay admin: no device revoked (no account, or not that device)')
        return 1
      }
      io.out('running relays refuse it now and close its connections at their next sweep')
      return 0
    }
  }
}
