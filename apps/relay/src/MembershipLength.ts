/**
 * The membership prefix length the relay announces, adapted to how many accounts are registered, so that a
 * bucket (the registered addresses under one prefix) holds `minBucket` addresses on average and a membership
 * query never singles out a contact on a small relay.
 * @module
 */

/**
 * The longest prefix, up to `maxBits`, at which `population / 2^bits ≥ minBucket`, and never shorter than 1 bit
 * (the wire's shortest prefix): below `2 × minBucket` accounts a bucket is half the directory. `minBucket` 0
 * turns adaptation off: always `maxBits`.
 */
export function membershipBits(population: number, maxBits: number, minBucket: number): number {
  if (minBucket <= 0) return maxBits
  if (population < 2 * minBucket) return 1
  return Math.max(1, Math.min(maxBits, Math.floor(Math.log2(population / minBucket))))
}

/** Options of {@link MembershipLength}. */
export interface MembershipLengthOptions {
  maxBits: number
  minBucket: number
  /** Counts the registered accounts (the store's `accountCount`). */
  count: () => Promise<number>
}

/** The announced length, recomputed from the account count at each {@link MembershipLength.refresh}. */
export class MembershipLength {
  readonly #options: MembershipLengthOptions
  #bits: number
  #population = 0

  constructor(options: MembershipLengthOptions) {
    this.#options = options
    // Until the first count: the shortest length, never a too-long one.
    this.#bits = membershipBits(0, options.maxBits, options.minBucket)
  }

  /** The prefix length to announce now. */
  get bits(): number {
    return this.#bits
  }

  /** The account count the length was last computed from. */
  get population(): number {
    return this.#population
  }

  /** Counts the accounts again (no count at all when adaptation is off). */
  async refresh(): Promise<number> {
    const { maxBits, minBucket, count } = this.#options
    if (minBucket <= 0) return this.#bits
    this.#population = await count()
    this.#bits = membershipBits(this.#population, maxBits, minBucket)
    return this.#bits
  }
}
