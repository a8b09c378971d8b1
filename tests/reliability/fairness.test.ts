// Who waits for whom on the relay's one thread (issue 14, pre-login CPU and the abuse bench): frames that anyone
// can send in bulk — everything before authentication, frames over LIGHT_FRAME_BYTES — are handled on the heavy
// lane, one per event-loop turn across all connections, and the socket they came from is not read meanwhile;
// an authenticated client's small frames are handled as they are read. Asserted by the relay's
// `parley_relay_frames_deferred_total` counter, and by what a sender sees: deferring a frame never reorders it
// behind the frames that followed it on its connection, and loses none of them.
import {
  type Account,
  activate,
  login,
  messageId,
  RawClient,
  type RelayProcess,
  sealedShape,
  shapeText,
  spawnDevRelay,
} from '@parley/relay/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { metric, scrape } from './relayDb.js'

/** The relay's LIGHT_FRAME_BYTES: frames over it are deferred. */
const LIGHT_FRAME_BYTES = 4096

describe('the heavy lane on a relay process', () => {
  let relay: RelayProcess
  let alice: Account
  let bob: Account

  const deferred = async () => metric(await scrape(relay.metricsUrl), 'parley_relay_frames_deferred_total')

  beforeAll(async () => {
    relay = await spawnDevRelay(['--frames-burst', '1000', '--frames-per-second', '1000'])
    const a = await RawClient.open(relay.url)
    alice = await activate(a, relay, '+14155550190')
    a.close()
    const b = await RawClient.open(relay.url)
    bob = await activate(b, relay, '+14155550191')
    b.close()
  })
  afterAll(async () => {
    await relay?.stop()
  })

  it('defers every frame before authentication, and none of a logged-in client’s small frames', async () => {
    const before = await deferred()
    // The attacker's script: no account, a burst of cheap frames on one socket.
    const stranger = await RawClient.open(relay.url) // says Hello: 1 frame
    const PINGS = 40
    const pongs = await Promise.all(Array.from({ length: PINGS }, () => stranger.send({ ping: {} })))
    expect(pongs.map((f) => f.body)).toEqual(Array(PINGS).fill('pong'))
    stranger.close()
    const afterStranger = await deferred()
    expect(afterStranger - before).toBe(1 + PINGS)

    // An honest logged-in client: its login is pre-auth (deferred), its pings and small sends afterwards are not.
    const { client: a } = await login(relay.url, alice)
    const afterLogin = await deferred()
    const loginFrames = afterLogin - afterStranger
    expect(loginFrames).toBeGreaterThanOrEqual(1)
    const SMALL = 30
    await Promise.all([
      ...Array.from({ length: SMALL }, () => a.send({ ping: {} })),
      ...Array.from({ length: SMALL }, (_, i) =>
        a.send({
          sendMessage: {
            recipientAddress: bob.address,
            recipientDeviceId: bob.deviceId,
            messageId: messageId(),
            envelope: sealedShape(`small ${i}`),
          },
        }),
      ),
    ])
    expect(await deferred()).toBe(afterLogin)
    a.close()
  })

  it('defers large frames without reordering a connection’s frames or losing any', async () => {
    const { client: a } = await login(relay.url, alice)
    const { client: b, head } = await login(relay.url, bob)
    const before = await deferred()
    // Alternate large and small messages, all pipelined: each small one arrives while a large one before it is
    // still waiting for the lane, so handling the small one as it is read would put it into Bob's mailbox first.
    const N = 24
    const texts = Array.from({ length: N }, (_, i) =>
      i % 2 === 0 ? `large ${i} `.padEnd(6000, '.') : `small ${i}`,
    )
    const replies = await Promise.all(
      texts.map((text) =>
        a.send({
          sendMessage: {
            recipientAddress: bob.address,
            recipientDeviceId: bob.deviceId,
            messageId: messageId(),
            envelope: sealedShape(text),
          },
        }),
      ),
    )
    expect(replies.every((f) => f.body === 'messageAccepted')).toBe(true)
    const large = texts.filter((t) => t.length > LIGHT_FRAME_BYTES).length
    // Every large frame is deferred, and every small one behind a deferred frame waits in the same queue.
    expect((await deferred()) - before).toBeGreaterThanOrEqual(large)

    const done = await b.request({ syncMailbox: { afterSeq: head } })
    expect(done.syncDone!.headSeq).toBe(head + N)
    const bySeq = new Map(b.deliveries().map((d) => [d.seq!, shapeText(d.envelope!)]))
    const got = [...bySeq].filter(([seq]) => seq > head).sort(([x], [y]) => x - y)
    expect(got.map(([, text]) => text)).toEqual(texts)
    a.close()
    b.close()
  })
})
