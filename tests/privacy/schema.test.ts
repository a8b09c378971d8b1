// P2 and the privacy manifest (docs/architecture.md §1, §3). packages/protocol/test/schema.test.ts checks that every field
// is annotated and that no field name or field comment names a device identifier; this adds message, enum and
// enum-value names and comments, the rules the manifest relies on, and that the committed manifest is current.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
// @ts-expect-error — a plain .mjs script without type declarations
import * as manifest from '../../scripts/privacy-manifest.mjs'

interface Named {
  name: string
  comment: string | null
  fieldsArray?: Named[]
  values?: Record<string, number>
  comments?: Record<string, string | null>
}

/** Device identifiers the wire must never carry (issue 7): IMEI, serial, MAC, carrier, model, advertising id. */
const DEVICE_ID =
  /\b(imei|imsi|meid|esn|iccid|msisdn|serial([ _]?(number|no))?|mac([ _]?addr(ess)?)?|carrier|operator|mcc|mnc|model|manufacturer|brand|advertising([ _]?id)?|ad[ _]?id|idfa|idfv|gaid|aaid|android[ _]?id|hardware|udid|device[ _]?fingerprint|user[ _]?agent|os[ _]?version)\b/i

/** Every name and comment in the schema, as "what: text" pairs. */
function texts(dir?: string): [string, string][] {
  const schema = manifest.loadSchema(dir)
  const out: [string, string][] = []
  const words = (s: string) => s.replace(/_/g, ' ').replace(/([a-z])([A-Z])/g, '$1 $2')
  for (const t of schema.types as Named[]) {
    out.push([`message ${t.name}`, words(t.name)], [`message ${t.name} comment`, t.comment ?? ''])
    for (const f of t.fieldsArray ?? []) {
      out.push([`${t.name}.${f.name}`, words(f.name)], [`${t.name}.${f.name} comment`, f.comment ?? ''])
    }
  }
  for (const e of schema.enums as Named[]) {
    out.push([`enum ${e.name}`, words(e.name)], [`enum ${e.name} comment`, e.comment ?? ''])
    for (const v of Object.keys(e.values ?? {})) {
      out.push([`${e.name}.${v}`, words(v.toLowerCase())], [`${e.name}.${v} comment`, e.comments?.[v] ?? ''])
    }
  }
  return out
}

const deviceIds = (dir?: string) =>
  texts(dir)
    .filter(([, text]) => DEVICE_ID.test(text))
    .map(([what]) => what)

/** A copy of proto/parley/v1 with `edit` applied to frames.proto. */
function editedProtos(edit: (frames: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'parley-proto-'))
  for (const f of ['options.proto', 'frames.proto', 'e2e.proto', 'session_state.proto']) {
    const text = readFileSync(join(manifest.PROTO_DIR, f), 'utf8')
    writeFileSync(join(dir, f), f === 'frames.proto' ? edit(text) : text)
  }
  return dir
}

describe('wire schema and privacy manifest (P2)', () => {
  it('names no device identifier in any message, field, enum, value or comment', () => {
    expect(texts().length).toBeGreaterThan(200)
    expect(deviceIds()).toEqual([])
  })

  it('would notice a device identifier in a field, a message or a comment (the check itself works)', () => {
    const dir = editedProtos((f) =>
      f
        .replace(
          'uint32 protocol_minor = 2',
          'string phone_model = 3 [(parley.v1.data_class) = DATA_CLASS_PUBLIC];\n  uint32 protocol_minor = 2',
        )
        .replace('message Ping {}', '// Sends the IMEI.\nmessage Ping {}\nmessage AdvertisingId {}'),
    )
    expect(deviceIds(dir)).toEqual(
      expect.arrayContaining(['Hello.phone_model', 'message Ping comment', 'message AdvertisingId']),
    )
  })

  it('keeps the rules the manifest relies on: classes, never-sent types, personal fields, ciphertext', () => {
    expect(manifest.schemaProblems(manifest.loadSchema())).toEqual([])
    const broken = editedProtos((f) =>
      f
        .replace(
          'uint32 protocol_minor = 2 [(parley.v1.data_class) = DATA_CLASS_PUBLIC];',
          'uint32 protocol_minor = 2;',
        )
        .replace(
          'bytes auth_nonce = 5 [(parley.v1.data_class) = DATA_CLASS_PUBLIC];',
          'bytes auth_nonce = 5 [(parley.v1.data_class) = DATA_CLASS_PERSONAL];\n  SessionRecord leaked = 99 [(parley.v1.data_class) = DATA_CLASS_PUBLIC];',
        ),
    )
    const problems = manifest.schemaProblems(manifest.loadSchema(broken)) as string[]
    expect(problems).toEqual(
      expect.arrayContaining([
        'Hello.protocol_minor has no data class',
        'ServerHello.auth_nonce is PERSONAL outside ActivationStart and RebindAddress',
        'SessionRecord.version is SECRET_NEVER_SENT but reachable from a frame',
      ]),
    )
    expect(() => manifest.renderManifest(broken)).toThrow(/breaks the privacy manifest's rules/)
  })

  it('docs/privacy-manifest.md is what the schema generates (run `pnpm privacy:manifest`)', () => {
    const committed = readFileSync(manifest.MANIFEST_PATH, 'utf8')
    expect(committed).toBe(manifest.renderManifest())
    expect(committed).toContain('## What the relay can and cannot see')
    expect(committed).toContain('| `phone_number` | `string` | PERSONAL |')
  })
})
