import { ParleyError } from '@parley/protocol'
import { describe, expect, it } from 'vitest'
import { ParleyClient } from './Client.js'
import { MemoryStore } from './Store.js'
import { recordingTransport } from './testing/recordingTransport.js'

async function fresh() {
  const transport = recordingTransport()
  const client = await ParleyClient.create({
    relayUrl: 'ws://127.0.0.1:9',
    transport,
    store: new MemoryStore(),
    defaultRegion: 'US',
    smsFallback: () => {},
  })
  return { client, transport }
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    if (err instanceof ParleyError) return err.code
    return (err as Error).constructor.name
  }
  return 'resolved'
}

describe('ParleyClient before activation (P1)', () => {
  it('opens no connection when created, asked to discover, send or show a safety number', async () => {
    const { client, transport } = await fresh()
    expect(await codeOf(client.discover(['+1 415 555 0101', '(415) 555-0102']))).toBe('INVALID_STATE')
    expect(await codeOf(client.send('+1 415 555 0101', 'hi'))).toBe('INVALID_STATE')
    expect(await codeOf(client.safetyNumber('+1 415 555 0101'))).toBe('INVALID_STATE')
    expect(await codeOf(client.deactivate())).toBe('INVALID_STATE')
    expect(client.connectionState).toBe('offline')
    expect(transport.opened).toEqual([])
    expect(transport.sent).toEqual([])
    await client.close()
    expect(transport.opened).toEqual([])
  })

  it('refuses activate() without consent: true, before touching the network', async () => {
    const { client, transport } = await fresh()
    for (const consent of [false, undefined, 'yes', 1, null]) {
      await expect(
        client.activate({ phoneNumber: '+1 415 555 0100', consent } as unknown as {
          phoneNumber: string
          consent: true
        }),
      ).rejects.toThrow(TypeError)
    }
    expect(await codeOf(client.activate({ phoneNumber: 'not a number', consent: true }))).toBe(
      'INVALID_NUMBER',
    )
    expect(transport.opened).toEqual([])
    await client.close()
  })

  it('refuses confirm() without a pending activation or with a malformed code', async () => {
    const { client, transport } = await fresh()
    await expect(client.confirm('12345')).rejects.toThrow(TypeError)
    await expect(client.confirm('abcdef')).rejects.toThrow(TypeError)
    expect(await codeOf(client.confirm('123456'))).toBe('INVALID_STATE')
    expect(transport.opened).toEqual([])
    await client.close()
  })

  it('validates its options', async () => {
    const store = new MemoryStore()
    const transport = recordingTransport()
    await expect(ParleyClient.create({ relayUrl: 'http://x', transport, store })).rejects.toThrow(TypeError)
    await expect(ParleyClient.create({ relayUrl: 'ws://x', transport: {} as never, store })).rejects.toThrow(
      TypeError,
    )
    await expect(
      ParleyClient.create({ relayUrl: 'ws://x', transport, store, smsFallback: 'no' as never }),
    ).rejects.toThrow(TypeError)
  })

  it('rejects every call after close() with CLOSED', async () => {
    const { client } = await fresh()
    await client.close()
    expect(await codeOf(client.activate({ phoneNumber: '+1 415 555 0100', consent: true }))).toBe('CLOSED')
    expect(await codeOf(client.history())).toBe('CLOSED')
  })
})
