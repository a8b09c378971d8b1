// This device's prekeys (docs/architecture.md §6.2): the first set at activation, refills of the one-time
// prekeys when the relay runs low, and the weekly signed-prekey rotation. Not exported.
import type { IdentityKeyPair } from '@parley/protocol'
import * as e2e from '../internal/e2e.js'
import { type Engine, expectBody } from './context.js'
import { type AccountRecord, del, get, K, type PrekeyMeta, put } from './keyspace.js'

const ONE_TIME_PREKEY_BATCH = 100
const ONE_TIME_PREKEY_LOW_WATER = 10
const KEM_PREKEY_BATCH = 10
const KEM_PREKEY_LOW_WATER = 3
const SIGNED_PREKEY_ROTATE_MS = 7 * 24 * 3600_000
const SIGNED_PREKEY_GRACE_MS = 31 * 24 * 3600_000

export type InitialPrekeys = ReturnType<typeof e2e.generateInitialPrekeys>

export class Prekeys {
  readonly #engine: Engine

  constructor(engine: Engine) {
    this.#engine = engine
  }

  /**
   * The first prekeys of an activation, with ids after those recorded in `used` (the prekey meta of an identity
   * used before), so that none is overwritten.
   */
  initial(identity: IdentityKeyPair, used: PrekeyMeta | undefined): InitialPrekeys {
    return e2e.generateInitialPrekeys(
      identity,
      this.#engine,
      ONE_TIME_PREKEY_BATCH,
      KEM_PREKEY_BATCH,
      used === undefined
        ? undefined
        : { spk: used.signedPrekeyId + 1, otp: used.nextOtpId, kem: used.nextKemId },
    )
  }

  /** The prekey meta recording `keys`, made now. */
  metaOf(keys: InitialPrekeys): PrekeyMeta {
    return {
      nextOtpId: keys.nextOtpId,
      nextKemId: keys.nextKemId,
      signedPrekeyId: keys.signedPrekeyId,
      lastResortKemId: keys.lastResortKemId,
      signedPrekeyAt: this.#engine.clock.now(),
    }
  }

  /** Rotates the signed prekey when due, then tops up the one-time prekeys the relay is short of. */
  async refill(): Promise<void> {
    const { store, link } = this.#engine
    const account = this.#engine.account
    if (account === null || !this.#engine.authenticated) return
    await this.#rotateSignedPrekey(account)
    const frame = await link.request({ prekeyCountQuery: {} })
    const count = expectBody(frame, 'prekeyCount')
    const needOtp = count.oneTimeCount < ONE_TIME_PREKEY_LOW_WATER
    const needKem = count.kemOneTimeCount < KEM_PREKEY_LOW_WATER
    if (!needOtp && !needKem) return
    const meta = await get(store, K.prekeyMeta)
    if (meta === undefined) return
    const refill = e2e.generateRefill(
      account.identity,
      this.#engine,
      needOtp ? { startId: meta.nextOtpId, count: ONE_TIME_PREKEY_BATCH } : null,
      needKem ? { startId: meta.nextKemId, count: KEM_PREKEY_BATCH } : null,
    )
    const nextMeta: PrekeyMeta = {
      ...meta,
      nextOtpId: needOtp ? meta.nextOtpId + ONE_TIME_PREKEY_BATCH : meta.nextOtpId,
      nextKemId: needKem ? meta.nextKemId + KEM_PREKEY_BATCH : meta.nextKemId,
    }
    // Secrets first, then the upload: a crash in between leaves unused secrets, never unusable public keys.
    await store.write([...refill.secrets, put(K.prekeyMeta, nextMeta)])
    await link.request({ prekeyUpload: refill.upload })
  }

  /** Replaces the signed prekey once a week (docs/architecture.md §6); old ones stay for mail in flight, then go. */
  async #rotateSignedPrekey(account: AccountRecord): Promise<void> {
    const { store, link, clock } = this.#engine
    const meta = await get(store, K.prekeyMeta)
    if (meta === undefined) return
    const now = clock.now()
    const retired = meta.retiredSignedPrekeys ?? []
    const expired = retired.filter((r) => now - r.retiredAt > SIGNED_PREKEY_GRACE_MS)
    if (
      meta.signedPrekeyAt !== undefined &&
      now - meta.signedPrekeyAt < SIGNED_PREKEY_ROTATE_MS &&
      expired.length === 0
    ) {
      return
    }
    const rotate = meta.signedPrekeyAt === undefined || now - meta.signedPrekeyAt >= SIGNED_PREKEY_ROTATE_MS
    const next = rotate
      ? e2e.generateSignedPrekeyWrite(account.identity, meta.signedPrekeyId + 1, this.#engine)
      : null
    const nextMeta: PrekeyMeta = {
      ...meta,
      signedPrekeyId: next === null ? meta.signedPrekeyId : meta.signedPrekeyId + 1,
      signedPrekeyAt: next === null ? meta.signedPrekeyAt : now,
      retiredSignedPrekeys: [
        ...retired.filter((r) => !expired.includes(r)),
        ...(next === null ? [] : [{ id: meta.signedPrekeyId, retiredAt: now }]),
      ],
    }
    await store.write([
      ...(next === null ? [] : [next.secret]),
      ...expired.map((r) => del(K.prekey('spk', r.id))),
      put(K.prekeyMeta, nextMeta),
    ])
    if (next !== null) await link.request({ prekeyUpload: { signedPrekey: next.upload } })
  }
}
