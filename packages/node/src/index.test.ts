import * as client from '@parley/client'
import { describe, expect, it } from 'vitest'
import * as sdk from './index.js'

describe('@parley/node public API', () => {
  it('is all of @parley/client (the list @parley/node and @parley/browser share), plus its own parts', () => {
    for (const [name, value] of Object.entries(client)) expect(sdk, name).toHaveProperty(name, value)
    expect(typeof sdk.createClient).toBe('function')
  })
})
