// EncryptedStore: the store contract holds over the sealed records, numbers in names never reach the inner store,
// and paging under a prefix with a number in it still runs in key order.
import { describe, expect, it } from 'vitest'
import { EncryptedStore } from './EncryptedStore.js'
import { MemoryStore } from './Store.js'
import { storeConformance } from './testing/storeConformance.js'

const KEY = new Uint8Array(32).fill(3)
const bytes = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b))

storeConformance('EncryptedStore over MemoryStore', async () => ({
  store: await EncryptedStore.open(new MemoryStore(), KEY),
}))

describe('EncryptedStore', () => {
  it('hands the inner store no number and no value in the clear, and gives both back', async () => {
    const inner = new MemoryStore()
    const store = await EncryptedStore.open(inner, KEY)
    await store.write([
      { key: 'contact/+14155550100', value: bytes('alice-record') },
      { key: 'conversation/message/sms:+14155550100/0002/bb', value: bytes('second') },
      { key: 'conversation/message/sms:+14155550100/0001/aa', value: bytes('first') },
      { key: 'conversation/message/sms:+14155550100/0003/cc', value: bytes('third') },
    ])
    const raw = await inner.list('')
    for (const e of raw) {
      expect(e.key).not.toContain('4155550100')
      expect(Buffer.from(e.value).toString('latin1')).not.toMatch(
        /alice-record|first|second|third|4155550100/,
      )
    }
    expect(text(await store.get('contact/+14155550100'))).toBe('alice-record')
    const prefix = 'conversation/message/sms:+14155550100/'
    expect((await store.list(prefix)).map((e) => e.key)).toEqual([
      `${prefix}0001/aa`,
      `${prefix}0002/bb`,
      `${prefix}0003/cc`,
    ])
    const page = await store.page(prefix, { before: `${prefix}0003/cc`, limit: 1, reverse: true })
    expect(page.map((e) => text(e.value))).toEqual(['second'])
    // The mark that proves the key is not one of the client's records.
    expect((await store.list('')).map((e) => e.key)).not.toContain('store/sealed')
    await expect(EncryptedStore.open(inner, new Uint8Array(32))).rejects.toMatchObject({
      code: 'DECRYPT_FAILED',
    })
    expect(text(await (await EncryptedStore.open(inner, KEY)).get('contact/+14155550100'))).toBe(
      'alice-record',
    )
  })

  it('refuses a value moved to another name', async () => {
    const inner = new MemoryStore()
    const store = await EncryptedStore.open(inner, KEY)
    await store.write([{ key: 'account', value: bytes('a') }])
    const sealed = await inner.get('account')
    await inner.write([{ key: 'mailbox/cursor', value: sealed }])
    await expect(store.get('mailbox/cursor')).rejects.toMatchObject({ code: 'DECRYPT_FAILED' })
  })
})
