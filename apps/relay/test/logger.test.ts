// The relay's log: an error's symbolic code stays readable, while a verification code is still redacted.
import { Writable } from 'node:stream'
import { ParleyError } from '@parley/protocol'
import { describe, expect, it } from 'vitest'
import { createLogger } from '../src/logger.js'

function capture() {
  const lines: Record<string, unknown>[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)))
      done()
    },
  })
  return { log: createLogger('info', stream), lines }
}

describe('createLogger', () => {
  it("keeps an error's symbolic code as errorCode and redacts a six-digit code", () => {
    const { log, lines } = capture()
    const listen = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' })
    log.error({ err: listen }, 'server error')
    log.error({ err: new ParleyError('UNAVAILABLE', 'store unavailable') }, 'store')
    log.error({ err: Object.assign(new Error('x'), { code: '123456' }), code: '654321' }, 'leak')
    expect(lines[0]!.err).toMatchObject({ errorCode: 'EADDRINUSE', message: 'listen EADDRINUSE' })
    expect(lines[0]!.err).not.toHaveProperty('code')
    expect(lines[1]!.err).toMatchObject({ errorCode: 'UNAVAILABLE' })
    expect(JSON.stringify(lines[2])).not.toMatch(/123456|654321/)
  })
})
