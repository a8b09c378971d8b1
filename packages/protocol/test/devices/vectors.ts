// The linked-device constructions' known-answer vectors (test/vectors/parley-devices/kat.json): fixed inputs,
// from seeded random bytes, and what the package makes of them. Ed25519 signatures are deterministic and the
// nonces and salts come from the seeded source, so every output is fixed.
import {
  encodeLinkCode,
  encodeLinkGrant,
  encodeLinkRequest,
  generateIdentity,
  sealBackup,
  sealLinkMessage,
  signAddressChange,
  signDeviceList,
} from '../../src/index.js'
import { hex, seededRandom } from '../e2e/helpers.js'

export const SOURCE =
  'Parley linked devices (docs/architecture.md §9): device list, address change, link code and messages, ' +
  'backup archive, as built by packages/protocol/src; generated from fixed seeds by ' +
  'packages/protocol/scripts/gen-device-vectors.ts and checked against node:crypto in src/devicesKat.test.ts — ' +
  'regenerate only for an intended format change.'

export async function computeDeviceVectors() {
  const random = seededRandom('parley-devices-kat')
  const account = generateIdentity(random)
  const laptop = generateIdentity(random)
  const address = random(32)
  const newAddress = random(32)
  const rendezvousId = random(16)
  const secret = random(32)
  const numberSalt = random(32)
  const historyKey = random(32)
  const nonce = random(12)
  const devices = [
    { deviceId: 1, deviceKey: account.publicKey },
    { deviceId: 2, deviceKey: laptop.publicKey },
  ]
  const deviceList = signDeviceList({ address, version: 5, devices }, account.secretKey)
  const linkRequest = encodeLinkRequest({ deviceKey: laptop.publicKey })
  const linkGrant = encodeLinkGrant({
    address,
    deviceId: 2,
    deviceList,
    number: '+14155550100',
    numberSalt,
    historyKey,
  })
  const fixed = (bytes: Uint8Array) => (n: number) => bytes.slice(0, n)
  const backupRandom = seededRandom('parley-devices-kat/backup')
  return {
    source: SOURCE,
    inputs: {
      accountSecretKey: hex(account.secretKey),
      accountPublicKey: hex(account.publicKey),
      laptopPublicKey: hex(laptop.publicKey),
      address: hex(address),
      newAddress: hex(newAddress),
      rendezvousId: hex(rendezvousId),
      secret: hex(secret),
      numberSalt: hex(numberSalt),
      historyKey: hex(historyKey),
      linkNonce: hex(nonce),
      backupPassphrase: 'correct horse battery staple',
      backupLogN: 14,
      backupRandom: 'seededRandom("parley-devices-kat/backup"): salt (16), then nonce (12)',
    },
    deviceList: hex(deviceList),
    addressChange: hex(
      signAddressChange(
        { oldAddress: address, newAddress, changedAtMs: 1_700_000_000_000 },
        account.secretKey,
      ),
    ),
    linkCode: encodeLinkCode({ rendezvousId, secret }),
    linkRequest: hex(linkRequest),
    linkRequestSealed: hex(
      sealLinkMessage(
        { rendezvousId, secret, direction: 'to-primary', plaintext: linkRequest },
        { random: fixed(nonce) },
      ),
    ),
    linkGrant: hex(linkGrant),
    linkGrantSealed: hex(
      sealLinkMessage(
        { rendezvousId, secret, direction: 'to-new-device', plaintext: linkGrant },
        { random: fixed(nonce) },
      ),
    ),
    backup: hex(
      await sealBackup(linkGrant, 'correct horse battery staple', { logN: 14, random: backupRandom }),
    ),
  }
}
