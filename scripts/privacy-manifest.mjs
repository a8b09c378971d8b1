// Generates docs/privacy-manifest.md from the (parley.v1.data_class) annotation of every field in proto/parley/v1
// (docs/architecture.md §1 P2, §3). `--check` exits 1 when the committed manifest differs from what the schema gives, and
// 2 when the schema itself breaks a rule the manifest relies on (a field without a class, a never-sent type
// reachable from a frame, a personal field outside activation, plaintext inside the end-to-end section).
//
//   node scripts/privacy-manifest.mjs           # (re)writes docs/privacy-manifest.md
//   node scripts/privacy-manifest.mjs --check   # CI: fails when the committed file is stale
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
export const PROTO_DIR = join(ROOT, 'proto', 'parley', 'v1')
export const MANIFEST_PATH = join(ROOT, 'docs', 'privacy-manifest.md')
// protobufjs is a dependency of @parley/protocol, not of the workspace root.
const protobuf = createRequire(join(ROOT, 'packages', 'protocol', 'package.json'))('protobufjs')

const OPTION = '(parley.v1.data_class)'
const PKG = 'parley.v1'

/** The data classes, in the order the manifest explains them. */
export const CLASSES = [
  'DATA_CLASS_PUBLIC',
  'DATA_CLASS_PSEUDONYMOUS',
  'DATA_CLASS_CIPHERTEXT',
  'DATA_CLASS_PERSONAL',
  'DATA_CLASS_SECRET_NEVER_SENT',
]

/**
 * Where the bytes of an end-to-end message travel. These messages are never referenced by type from a frame:
 * they are the contents of `bytes` fields, so the path is stated here and checked against the schema below.
 */
export const CARRIED_IN = {
  SealedEnvelope: [
    'SendMessage.envelope',
    'UnidentifiedSend.envelope',
    'DeviceEnvelope.envelope',
    'Delivery.envelope',
  ],
  SealedContent: ['SealedEnvelope.ciphertext'],
  Content: ['RatchetMessage.ciphertext'],
  HistoryChunk: ['Content.history'],
  // Sealed under the link secret of a link code, which the relay never has (docs/architecture.md §9.3).
  LinkRequest: ['RendezvousPost.sealed', 'RendezvousMessage.sealed'],
  LinkGrant: ['RendezvousPost.sealed', 'RendezvousMessage.sealed'],
}

/** What the relay gets of a field of each class, by the section the field is in. */
const RELAY_GETS = {
  wire: {
    DATA_CLASS_PUBLIC: 'reads it',
    DATA_CLASS_PSEUDONYMOUS: 'reads it (pseudonym or public key)',
    DATA_CLASS_CIPHERTEXT: 'opaque ciphertext',
    DATA_CLASS_PERSONAL: 'reads it, hands it to the verifier, keeps it only in memory',
    DATA_CLASS_SECRET_NEVER_SENT: '— (a bug if sent)',
  },
  inside: 'nothing (inside end-to-end ciphertext)',
  local: 'nothing (never sent)',
}

/** Parses every .proto file in `dir` (comments kept) into one protobufjs root. */
export function loadSchema(dir = PROTO_DIR) {
  const root = new protobuf.Root()
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.proto'))
    .sort()
  const fileOf = new Map()
  for (const file of files) {
    const parsed = protobuf.parse(readFileSync(join(dir, file), 'utf8'), root, {
      keepCase: true,
      alternateCommentMode: true,
    })
    void parsed
    for (const t of root.lookup(PKG).nestedArray) if (!fileOf.has(t.name)) fileOf.set(t.name, file)
  }
  const ns = root.lookup(PKG)
  const types = ns.nestedArray.filter((t) => t instanceof protobuf.Type)
  // Not root.resolveAll(): the extension of google.protobuf.FieldOptions is deliberately not loaded.
  for (const t of types) for (const f of t.fieldsArray) f.resolve()
  const enums = ns.nestedArray.filter((t) => t instanceof protobuf.Enum)
  return { root, types, enums, fileOf }
}

/** Message names reachable from `start` through message-typed fields, in breadth-first (field) order. */
export function reachable(schema, start) {
  const byName = new Map(schema.types.map((t) => [t.name, t]))
  const order = []
  const seen = new Set()
  const queue = [start]
  while (queue.length > 0) {
    const name = queue.shift()
    if (seen.has(name) || !byName.has(name)) continue
    seen.add(name)
    order.push(name)
    for (const f of byName.get(name).fieldsArray) {
      if (f.resolvedType instanceof protobuf.Type) queue.push(f.resolvedType.name)
    }
  }
  return order
}

const oneLine = (s) => (s ?? '').replace(/\s*\n\s*/g, ' ').trim()
const cell = (s) => oneLine(s).replace(/\|/g, '\\|')

/** Every rule the manifest relies on; returns the violations (empty when the schema is sound). */
export function schemaProblems(schema) {
  const problems = []
  const byName = new Map(schema.types.map((t) => [t.name, t]))
  for (const t of schema.types) {
    for (const f of t.fieldsArray) {
      if (!CLASSES.includes(f.options?.[OPTION])) problems.push(`${t.name}.${f.name} has no data class`)
    }
  }
  const wire = new Set([...reachable(schema, 'ClientFrame'), ...reachable(schema, 'ServerFrame')])
  for (const name of wire) {
    for (const f of byName.get(name).fieldsArray) {
      if (f.options?.[OPTION] === 'DATA_CLASS_SECRET_NEVER_SENT') {
        problems.push(`${name}.${f.name} is SECRET_NEVER_SENT but reachable from a frame`)
      }
    }
  }
  for (const t of schema.types) {
    for (const f of t.fieldsArray) {
      if (f.options?.[OPTION] !== 'DATA_CLASS_PERSONAL') continue
      // The activating user's own number at activation, and once more after an OPRF key rotation (RebindAddress).
      const allowed =
        (t.name === 'ActivationStart' && f.name === 'phone_number') ||
        (t.name === 'ClientFrame' && f.name === 'activation_start') ||
        (t.name === 'RebindAddress' && f.name === 'phone_number') ||
        (t.name === 'ClientFrame' && f.name === 'rebind_address')
      if (!allowed) problems.push(`${t.name}.${f.name} is PERSONAL outside ActivationStart and RebindAddress`)
    }
  }
  for (const [name, carriers] of Object.entries(CARRIED_IN)) {
    if (!byName.has(name)) problems.push(`${name} is listed in CARRIED_IN but not defined`)
    for (const c of carriers) {
      const [m, f] = c.split('.')
      const field = byName.get(m)?.fields[f]
      if (field === undefined || field.type !== 'bytes')
        problems.push(`${c} (carrier of ${name}) is not a bytes field`)
    }
  }
  for (const name of insideCiphertext(schema)) {
    for (const f of byName.get(name).fieldsArray) {
      if (f.options?.[OPTION] !== 'DATA_CLASS_CIPHERTEXT') {
        problems.push(`${name}.${f.name} travels inside end-to-end ciphertext but is not CIPHERTEXT`)
      }
    }
  }
  for (const t of schema.types) {
    const file = schema.fileOf.get(t.name)
    if (file === 'frames.proto' && !wire.has(t.name))
      problems.push(`${t.name} is in frames.proto but in no frame`)
    if (file === 'session_state.proto' && wire.has(t.name))
      problems.push(`${t.name} is local state but on the wire`)
  }
  return problems
}

/** Messages that only exist inside end-to-end ciphertext: everything reachable from the sealed content. */
export function insideCiphertext(schema) {
  const out = []
  for (const start of Object.keys(CARRIED_IN)) {
    if (start === 'SealedEnvelope') continue
    for (const n of reachable(schema, start)) if (!out.includes(n)) out.push(n)
  }
  return out
}

/** The "What the relay can and cannot see" text; README.md carries the same section. */
export const RELAY_SEES = `## What the relay can and cannot see

**It can see:**
- Your own phone number, once, when you activate: it is sent in \`ActivationStart\` so that the verifier can send
  you a code, is held in memory for the code's lifetime (10 minutes), and is never written to disk or logs. At
  the same moment it computes a salted **commitment** to the number (the salt comes from your device and is not
  kept), stores only the commitment, and certifies it in your sender certificates so that your contacts can
  check the number you state to them.
- Your own phone number once more after the operator rotates the OPRF key: the device sends it with the salt in
  \`RebindAddress\` so that the relay can check it against the commitment and compute your address under the new
  key; it is held for that one request and never written to disk or logs.
- Your account's **address**: a 32-byte pseudonym derived from your number with the relay's OPRF key. The relay
  stores it with your device's public keys (identity key, signed prekey, one-time prekeys, KEM prekeys), the
  number commitment, and the **verifier** (a hash) of your delivery token.
- During contact discovery: **how many** numbers you look up, their **blinded** OPRF elements (random-looking
  group elements that reveal nothing about the numbers) and short **prefixes** of the resulting addresses (at
  most 16 bits; fewer on a relay with few accounts, so that each prefix is shared by at least 32 registered
  accounts on average).
- Whose prekey bundle you fetch, and who sends a **first** message to whom: until a contact has written back
  (and so given you its delivery token), your message goes on your authenticated connection. This is not stored.
- For later messages, sent by **unidentified delivery**: the recipient's address and device, the recipient's
  delivery token, and the connection's IP address — but not which account sends, as that connection never
  authenticates. A relay that also watches IP addresses and timing can still guess who is behind both of your
  connections.
- For stored mail: the recipient's address and device, a random message id, the sealed envelope's size
  (padded to 160-byte buckets) and its arrival time.
- With linked devices: each device's id and public device key, in the account's **device list** (signed by the
  account identity; the relay checks the signature and serves the list, but cannot make one), which devices are
  one account's, whose list a sender fetches, and that a message went to every device of an account (one
  \`MultiSend\`). Linking a device: a random rendezvous id and two messages sealed under the link code's secret,
  which the relay never sees, deleted on pickup or after ten minutes.
- Network metadata: your IP address (used for per-network quotas, kept in memory) and connection times.

**It cannot see:**
- The phone numbers of your contacts, in any form: discovery sends only blinded elements and short prefixes.
- Message contents, or who sent a stored message: the sender's identity and certificate are inside the
  end-to-end ciphertext (PQXDH + Double Ratchet, sealed envelopes); a mailbox row has no sender column.
- Your delivery token itself, until a contact presents it to send to you; the database holds only its hash.
- Any device identifier (IMEI, serial number, MAC address, carrier, model, advertising id): the wire schema
  has no field for one, and every field is listed below with its class.
- Anything before you activate: the SDK opens no connection until \`activate({ consent: true })\`.

**After you deactivate**, the relay deletes your address, keys, prekeys, number commitment, token verifier and
pending mail. Its abuse counters (how much of your quotas you used) are kept until they would have refilled —
under a keyed hash, not your address — so that deactivating and activating again buys no new quota.

Every field that crosses the wire is listed below with its data class; the tests in \`tests/privacy\` check
these promises (docs/architecture.md §1, P1–P8) against a real relay in CI.
`

function fieldRows(schema, name, relayGets) {
  const t = schema.types.find((x) => x.name === name)
  const classMeaning = (c) => schema.enums.find((e) => e.name === 'DataClass')?.comments[c] ?? ''
  const rows = []
  for (const f of t.fieldsArray) {
    const cls = f.options?.[OPTION] ?? '(none)'
    let type = f.type
    if (f.repeated) type = `repeated ${type}`
    if (f.partOf && !f.partOf.name.startsWith('_')) type = `${type} (oneof ${f.partOf.name})`
    const nested = f.resolvedType instanceof protobuf.Type ? f.resolvedType : null
    // A field without its own comment is explained by its message's comment, else by its class.
    let why = oneLine(f.comment) || oneLine(nested?.comment)
    if (!why) why = `_${oneLine(classMeaning(cls))}_`
    let gets = typeof relayGets === 'string' ? relayGets : (relayGets[cls] ?? '?')
    if (nested && typeof relayGets !== 'string') gets = `see \`${nested.name}\``
    rows.push(`| \`${f.name}\` | \`${type}\` | ${cls.replace('DATA_CLASS_', '')} | ${gets} | ${cell(why)} |`)
  }
  return rows
}

function messageSection(schema, name, relayGets, note) {
  const t = schema.types.find((x) => x.name === name)
  const out = [`### \`${name}\``, '']
  const about = oneLine(t.comment)
  if (about) out.push(about, '')
  if (note) out.push(note, '')
  if (t.fieldsArray.length === 0) {
    out.push('No fields: the message type itself is the request.', '')
    return out
  }
  out.push('| field | type | class | what the relay gets | why |', '|---|---|---|---|---|')
  out.push(...fieldRows(schema, name, relayGets), '')
  return out
}

/** Renders the whole manifest from the schema in `dir`. Throws when the schema breaks a rule. */
export function renderManifest(dir = PROTO_DIR) {
  const schema = loadSchema(dir)
  const problems = schemaProblems(schema)
  if (problems.length > 0) {
    const err = new Error(`the schema breaks the privacy manifest's rules:\n- ${problems.join('\n- ')}`)
    err.problems = problems
    throw err
  }
  const classEnum = schema.enums.find((e) => e.name === 'DataClass')
  const toRelay = reachable(schema, 'ClientFrame')
  const toClient = reachable(schema, 'ServerFrame')
  const inside = insideCiphertext(schema)
  const local = schema.types
    .filter((t) => schema.fileOf.get(t.name) === 'session_state.proto')
    .map((t) => t.name)
  const count = (names) =>
    names.reduce((n, m) => n + schema.types.find((t) => t.name === m).fieldsArray.length, 0)
  const src = relative(ROOT, dir)

  const out = [
    '# Parley privacy manifest',
    '',
    `<!-- Generated by scripts/privacy-manifest.mjs from ${src}/*.proto. Do not edit: change the .proto comments`,
    '     or annotations and run `pnpm privacy:manifest`; CI runs `pnpm privacy:check`. -->',
    '',
    'This file lists every message that crosses the wire between a Parley client and the relay, every field in',
    'it, the data class the schema gives that field (`(parley.v1.data_class)`), what the relay gets of it, and',
    'why it is sent (the comment in the `.proto` source). It is generated from the schema, so it cannot drift',
    'from what the SDKs actually encode.',
    '',
    RELAY_SEES,
    '## Data classes',
    '',
    '| class | meaning |',
    '|---|---|',
    ...CLASSES.map((c) => `| ${c.replace('DATA_CLASS_', '')} | ${cell(classEnum.comments[c])} |`),
    '',
    '## Summary',
    '',
    `- Client → relay: ${toRelay.length} message types, ${count(toRelay)} fields.`,
    `- Relay → client: ${toClient.length} message types, ${count(toClient)} fields.`,
    `- Stored and forwarded as an opaque envelope: \`SealedEnvelope\` (${count(['SealedEnvelope'])} fields).`,
    `- Inside end-to-end ciphertext only: ${inside.length} message types, ${count(inside)} fields.`,
    `- Never sent (local state): ${local.length} message types, ${count(local)} fields.`,
    "- The only personal fields: `ActivationStart.phone_number` and `RebindAddress.phone_number` (the user's own number, client → relay, at activation and after an OPRF key rotation).",
    '- No field holds a device identifier (IMEI, serial, MAC, carrier, model, advertising id).',
    '',
    '## Client → relay (`ClientFrame`)',
    '',
    ...toRelay.flatMap((n) => messageSection(schema, n, RELAY_GETS.wire)),
    '## Relay → client (`ServerFrame`)',
    '',
    ...toClient.flatMap((n) => messageSection(schema, n, RELAY_GETS.wire)),
    '## Stored and forwarded by the relay: the sealed envelope',
    '',
    ...messageSection(
      schema,
      'SealedEnvelope',
      RELAY_GETS.wire,
      `Carried in ${CARRIED_IN.SealedEnvelope.map((c) => `\`${c}\``).join(' and ')}; the relay stores these bytes and cannot open them.`,
    ),
    '## Inside end-to-end ciphertext (the relay never sees these)',
    '',
    ...inside.flatMap((n) =>
      messageSection(
        schema,
        n,
        RELAY_GETS.inside,
        CARRIED_IN[n] ? `Plaintext of ${CARRIED_IN[n].map((c) => `\`${c}\``).join(', ')}.` : undefined,
      ),
    ),
    '## Never sent (local storage only)',
    '',
    ...local.flatMap((n) => messageSection(schema, n, RELAY_GETS.local)),
  ]
  return `${out.join('\n').trimEnd()}\n`
}

function main(argv) {
  let text
  try {
    text = renderManifest()
  } catch (err) {
    console.error(err.message)
    return 2
  }
  if (argv.includes('--check')) {
    let committed = ''
    try {
      committed = readFileSync(MANIFEST_PATH, 'utf8')
    } catch {}
    if (committed !== text) {
      console.error(
        `${relative(ROOT, MANIFEST_PATH)} is out of date with proto/. Run \`pnpm privacy:manifest\` and commit it.`,
      )
      return 1
    }
    console.log(`${relative(ROOT, MANIFEST_PATH)} matches proto/`)
    return 0
  }
  writeFileSync(MANIFEST_PATH, text)
  console.log(`wrote ${relative(ROOT, MANIFEST_PATH)}`)
  return 0
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2))
}
