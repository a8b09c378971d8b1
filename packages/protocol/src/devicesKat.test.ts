// Known-answer tests of the linked-device formats: the frozen vectors in test/vectors/parley-devices/kat.json
// (source named in the file) must be reproduced exactly from their inputs, and each frozen output must check
// out with node:crypto alone, so neither the package nor the file can drift without a test failing.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { computeDeviceVectors } from '../test/devices/vectors.js'
import { unhex } from '../test/fixtures.js'
import { cat, nodeHkdf, nodeOpen, nodeScrypt, nodeVerify, utf8 } from '../test/independent.js'
import { decodeMessage } from './internal/pb.js'

const file = join(import.meta.dirname, '..', 'test', 'vectors', 'parley-devices', 'kat.json')
const frozen = JSON.parse(readFileSync(file, 'utf8'))
const input = (name: string) => unhex(frozen.inputs[name])

describe('parley-devices known-answer vectors', () => {
  it('reproduces every frozen value (run scripts/gen-device-vectors.ts only for an intended change)', {
    timeout: 30_000,
  }, async () => {
    expect(await computeDeviceVectors()).toEqual(frozen)
  })

  it('has signatures OpenSSL verifies under their labels', () => {
    for (const [type, value, label] of [
      ['DeviceList', frozen.deviceList, 'parley/v1/device-list'],
      ['AddressChange', frozen.addressChange, 'parley/v1/address-change'],
    ] as const) {
      const outer = decodeMessage(type, unhex(value))
      expect(nodeVerify(input('accountPublicKey'), cat(utf8(label), outer.body), outer.signature)).toBe(true)
    }
  })

  it('has a link code and link messages that node:crypto reads', () => {
    const body = Buffer.from(frozen.linkCode.slice('parley-link:'.length), 'base64url')
    expect(new Uint8Array(body)).toEqual(cat(Uint8Array.of(1), input('rendezvousId'), input('secret')))
    for (const [direction, sealed, plaintext] of [
      ['to-primary', frozen.linkRequestSealed, frozen.linkRequest],
      ['to-new-device', frozen.linkGrantSealed, frozen.linkGrant],
    ]) {
      const info = utf8(`parley/v1/link/${direction}`)
      const key = nodeHkdf(input('secret'), input('rendezvousId'), info, 32)
      const bytes = unhex(sealed)
      expect(bytes.subarray(0, 12)).toEqual(input('linkNonce'))
      const ad = cat(Uint8Array.of(1), input('rendezvousId'), info)
      expect(nodeOpen(key, bytes.subarray(0, 12), bytes.subarray(12), ad)).toEqual(unhex(plaintext))
    }
  })

  it('has a backup archive that node:crypto opens', () => {
    const archive = unhex(frozen.backup)
    const header = archive.subarray(0, 41)
    expect(header.subarray(0, 13)).toEqual(cat(utf8('PRLYBKUP'), Uint8Array.of(1, 1, 14, 8, 1)))
    const key = nodeScrypt(utf8(frozen.inputs.backupPassphrase), header.subarray(13, 29), 14, 8, 32)
    expect(nodeOpen(key, header.subarray(29), archive.subarray(41), header)).toEqual(unhex(frozen.linkGrant))
  })
})
