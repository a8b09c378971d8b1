/**
 * How a running relay learns of a ban or a device revocation made by `parley-relay admin` in another process:
 * the store is the channel. Every authentication and activation reads the holds, so a held device is refused
 * at once; connections already authenticated are closed at the relay's next sweep (`--sweep-interval-seconds`),
 * which reads the operator actions recorded since the last one and tells the connections of each address, as
 * an erasure does (`DeviceReplaced`, close code `revoked`). Through the fan-out, so with Redis every node's
 * connections are reached, whichever node read the action.
 * @module
 */
import type { RelayContext } from '../context.js'

/** Actions read per sweep at the most; more wait for the next sweep. */
const ACTIONS_PER_SWEEP = 1000

/** Each relay's cursor: the last action it acted on, and its start (actions before it concern no connection). */
const cursors = new WeakMap<RelayContext, { seq: number; sinceMs: number }>()

/**
 * Closes the connections of the addresses banned, and of the devices revoked, since the last call (the first
 * call: since the relay started).
 * @param ctx - the relay's context
 * @returns how many actions were acted on
 * @throws what the store throws (the sweep logs it and tries again next time)
 */
export async function closeHeldConnections(ctx: RelayContext): Promise<number> {
  let cursor = cursors.get(ctx)
  if (!cursor) {
    // A little before now: an action recorded while the relay was starting still reaches its connections.
    cursor = { seq: 0, sinceMs: Date.now() - 60_000 }
    cursors.set(ctx, cursor)
  }
  const actions = await ctx.store.operatorActions(cursor.seq, cursor.sinceMs, ACTIONS_PER_SWEEP)
  for (const action of actions) {
    // One device per address: closing every connection of the address closes the revoked device's. A ban is told
    // as such (FORBIDDEN), so the device keeps its account for the day it is unbanned.
    await ctx.fanout.publish(
      Buffer.from(action.address).toString('hex'),
      action.deviceId === 0 ? { kind: 'banned' } : { kind: 'revoked', keepDeviceId: 0 },
    )
    cursor.seq = action.seq
  }
  if (actions.length > 0)
    ctx.log.info({ actions: actions.length }, 'operator holds applied to open connections')
  return actions.length
}
