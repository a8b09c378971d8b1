// Sizes of the reliability runs: a small configuration by default (CI), the full figures with
// PARLEY_RELIABILITY_FULL=1 (`pnpm reliability:full`); each figure can also be set on its own.
const FULL = process.env.PARLEY_RELIABILITY_FULL === '1'
const num = (name: string, ci: number, full: number) => {
  const raw = process.env[name]
  return raw === undefined || raw === '' ? (FULL ? full : ci) : Number(raw)
}

export const RUN = {
  full: FULL,
  /** SIGKILLs of the relay process during the two-client exchange. */
  relayKills: num('PARLEY_CRASH_KILLS', 3, 10),
  /** Messages exchanged in total (half each way) while the relay is being killed. */
  relayMessages: num('PARLEY_CRASH_MESSAGES', 1_500, 10_000),
  /** SIGKILLs of the sending client process. */
  clientKills: num('PARLEY_CLIENT_KILLS', 3, 10),
  /** Messages sent by the client process that is being killed. */
  clientMessages: num('PARLEY_CLIENT_MESSAGES', 600, 3_000),
  /** Generated frames sent to the relay by the fuzzer. */
  fuzzFrames: num('PARLEY_FUZZ_FRAMES', 5_000, 100_000),
  /** Seed of the fuzzer (printed with the results, so a failing run can be replayed). */
  fuzzSeed: num('PARLEY_FUZZ_SEED', Date.now() % 2 ** 31, Date.now() % 2 ** 31),
}

/** Test timeout scaled to the run. */
export const timeoutFor = (ci: number, full: number) => (FULL ? full : ci)

/** A line of figures for the test log (and the issue note). */
export function report(name: string, figures: Record<string, unknown>): void {
  console.log(`[reliability] ${name} ${JSON.stringify(figures)}`)
}
