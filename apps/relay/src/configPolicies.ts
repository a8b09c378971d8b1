/**
 * The rate-limit policies (token buckets) a configuration sets.
 * @module
 */
import { type RelayConfig, TIME } from './configOptions.js'

const { HOUR, DAY } = TIME

/** A token bucket: `capacity` tokens, refilled continuously at `refillTokens` per `refillIntervalMs`. */
export interface BucketPolicy {
  capacity: number
  refillTokens: number
  refillIntervalMs: number
}

/**
 * Rate-limit policies derived from a configuration.
 * @param config - the configuration
 * @returns one bucket policy per limited action
 */
export function policies(config: RelayConfig) {
  return {
    oprfAccount: {
      capacity: config.oprfAccountCapacity,
      refillTokens: config.oprfAccountPerDay,
      refillIntervalMs: DAY,
    },
    oprfIp: { capacity: config.oprfIpCapacity, refillTokens: config.oprfIpPerDay, refillIntervalMs: DAY },
    // "3 requests per number per hour": a bucket of 3 that refills one request per hour.
    codeRequests: { capacity: config.codeRequestsPerHour, refillTokens: 1, refillIntervalMs: HOUR },
    codeGuesses: {
      capacity: config.codeGuessesPerNumberPerHour,
      refillTokens: config.codeGuessesPerNumberPerHour,
      refillIntervalMs: HOUR,
    },
    registrationLockGuesses: {
      capacity: config.registrationLockGuessesPerDay,
      refillTokens: config.registrationLockGuessesPerDay,
      refillIntervalMs: DAY,
    },
    smsPrefix: {
      capacity: config.smsPerPrefixPerHour,
      refillTokens: config.smsPerPrefixPerHour,
      refillIntervalMs: HOUR,
    },
    smsGlobal: { capacity: config.smsPerHour, refillTokens: config.smsPerHour, refillIntervalMs: HOUR },
    activationConfirmNetwork: {
      capacity: config.activationConfirmsPerNetworkPerHour,
      refillTokens: config.activationConfirmsPerNetworkPerHour,
      refillIntervalMs: HOUR,
    },
    activationIp: {
      capacity: config.activationsPerIpPerHour,
      refillTokens: config.activationsPerIpPerHour,
      refillIntervalMs: HOUR,
    },
    send: { capacity: config.sendCapacity, refillTokens: config.sendPerMinute, refillIntervalMs: 60_000 },
    bundle: { capacity: config.bundleCapacity, refillTokens: config.bundlePerHour, refillIntervalMs: HOUR },
    sendBytes: {
      capacity: config.sendBytesCapacity,
      refillTokens: config.sendBytesPerDay,
      refillIntervalMs: DAY,
    },
    links: { capacity: config.linksPerHour, refillTokens: config.linksPerHour, refillIntervalMs: HOUR },
    blobUploads: {
      capacity: config.blobUploadsPerHour,
      refillTokens: config.blobUploadsPerHour,
      refillIntervalMs: HOUR,
    },
    // A new device polls the rendezvous for its answer: a read every few seconds for a few minutes.
    rendezvousNetwork: {
      capacity: config.rendezvousPerNetworkPerHour,
      refillTokens: config.rendezvousPerNetworkPerHour,
      refillIntervalMs: HOUR,
    },
    // RebindAddress: one OPRF evaluation each, needed once per key rotation; a few retries a day are plenty.
    rebind: { capacity: 10, refillTokens: 10, refillIntervalMs: DAY },
    // ChangeNumber: each moves the account (and costs an SMS before it, charged as every ActivationStart is).
    numberChange: {
      capacity: config.numberChangesPerDay,
      refillTokens: config.numberChangesPerDay,
      refillIntervalMs: DAY,
    },
    prekeySignatures: {
      capacity: config.prekeySignaturesCapacity,
      refillTokens: config.prekeySignaturesPerDay,
      refillIntervalMs: DAY,
    },
    membership: {
      capacity: config.membershipAddressesCapacity,
      refillTokens: config.membershipAddressesPerDay,
      refillIntervalMs: DAY,
    },
    unidentifiedRecipient: {
      capacity: config.unidentifiedRecipientCapacity,
      refillTokens: config.unidentifiedRecipientPerMinute,
      refillIntervalMs: 60_000,
    },
    unidentifiedNetwork: {
      capacity: config.unidentifiedNetworkCapacity,
      refillTokens: config.unidentifiedNetworkPerMinute,
      refillIntervalMs: 60_000,
    },
    unidentifiedNetworkBytes: {
      capacity: config.unidentifiedNetworkBytesCapacity,
      refillTokens: config.unidentifiedNetworkBytesPerMinute,
      refillIntervalMs: 60_000,
    },
  } satisfies Record<string, BucketPolicy>
}
