// Checks the wire schema itself (docs/architecture.md §1 P2, §3): every field is annotated with a data class, nothing
// names a device identifier, and the checked-in descriptor matches the .proto sources.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import protobuf from 'protobufjs'
import { describe, expect, it } from 'vitest'

const protoDir = join(import.meta.dirname, '..', '..', '..', 'proto', 'parley', 'v1')
const files = readdirSync(protoDir).filter((f) => f.endsWith('.proto'))
const CLASSES = new Set([
  'DATA_CLASS_PUBLIC',
  'DATA_CLASS_PSEUDONYMOUS',
  'DATA_CLASS_CIPHERTEXT',
  'DATA_CLASS_PERSONAL',
  'DATA_CLASS_SECRET_NEVER_SENT',
])

interface FieldInfo {
  message: string
  field: string
  dataClass: unknown
  comment: string | null
}

/** Every field of every message in the given proto sources, parsed independently of the generated code. */
function fieldsOf(sources: Record<string, string>): FieldInfo[] {
  const root = new protobuf.Root()
  for (const [name, text] of Object.entries(sources)) {
    protobuf.parse(text, root, { keepCase: true, alternateCommentMode: true })
    void name
  }
  const out: FieldInfo[] = []
  const walk = (ns: protobuf.NamespaceBase): void => {
    for (const child of ns.nestedArray) {
      if (child instanceof protobuf.Type) {
        for (const f of child.fieldsArray) {
          out.push({
            message: child.fullName,
            field: f.name,
            dataClass: f.options?.['(parley.v1.data_class)'],
            comment: f.comment,
          })
        }
      }
      if (child instanceof protobuf.Namespace) walk(child)
    }
  }
  walk(root)
  return out
}

const sources = Object.fromEntries(files.map((f) => [f, readFileSync(join(protoDir, f), 'utf8')]))

describe('wire schema', () => {
  const fields = fieldsOf(sources)

  it('has the frame envelopes and a reasonable number of fields', () => {
    const messages = new Set(fields.map((f) => f.message))
    expect(messages.has('.parley.v1.ClientFrame')).toBe(true)
    expect(messages.has('.parley.v1.ServerFrame')).toBe(true)
    expect(fields.length).toBeGreaterThan(50)
  })

  it('annotates every field with a known data class', () => {
    const missing = fields
      .filter((f) => !CLASSES.has(String(f.dataClass)))
      .map((f) => `${f.message}.${f.field}`)
    expect(missing).toEqual([])
  })

  it('fails for a field without an annotation (the check itself works)', () => {
    const broken = fieldsOf({
      'x.proto':
        'syntax = "proto3"; package t; message M { bytes imei = 1; string a = 2 [(parley.v1.data_class) = DATA_CLASS_PUBLIC]; }',
    })
    expect(broken.filter((f) => !CLASSES.has(String(f.dataClass))).map((f) => f.field)).toEqual(['imei'])
  })

  it('names no device identifier in any field or comment (P2)', () => {
    const banned =
      /\b(imei|imsi|meid|iccid|serial|mac[_ ]?addr|mac|carrier|operator|model|manufacturer|advertising|idfa|gaid|android[_ ]?id|hardware)\b/i
    const hits = fields
      .filter((f) => banned.test(f.field.replace(/_/g, ' ')) || banned.test(f.comment ?? ''))
      .map((f) => `${f.message}.${f.field}`)
    expect(hits).toEqual([])
  })

  it('sends the personal phone number only in ActivationStart and, after an OPRF key rotation, RebindAddress', () => {
    const personal = fields
      .filter((f) => f.dataClass === 'DATA_CLASS_PERSONAL')
      .map((f) => `${f.message}.${f.field}`)
    expect(personal.sort()).toEqual([
      '.parley.v1.ActivationStart.phone_number',
      '.parley.v1.ClientFrame.activation_start',
      '.parley.v1.ClientFrame.rebind_address',
      '.parley.v1.RebindAddress.phone_number',
    ])
  })

  it('matches the checked-in descriptor (run `pnpm gen` after editing proto/)', () => {
    const schema = JSON.parse(
      readFileSync(join(import.meta.dirname, '..', 'src', 'gen', 'schema.json'), 'utf8'),
    )
    const nested = schema.nested.parley.nested.v1.nested as Record<
      string,
      { fields?: Record<string, { options?: Record<string, string> }> }
    >
    const generated = Object.entries(nested).flatMap(([m, t]) =>
      Object.entries(t.fields ?? {}).map(
        ([f, d]) => `.parley.v1.${m}:${f}:${d.options?.['(parley.v1.data_class)']}`,
      ),
    )
    const camel = (s: string) => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())
    const parsed = fields.map((f) => `${f.message}:${camel(f.field)}:${f.dataClass}`)
    expect(new Set(generated)).toEqual(new Set(parsed))
  })
})
