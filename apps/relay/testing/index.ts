/**
 * `@parley/relay/testing`: what tests and benches use to run the relay as a process — {@link spawnRelay} and
 * {@link RelayProcess} (flags, data directory, readiness, logs, console-verifier codes, stop/kill/restart,
 * signals, subcommands), and the {@link CodeInbox} that receives its SMS codes over the signed webhook. Not part
 * of the relay's runtime: nothing in `src/` imports it.
 * @module
 */
export { CodeInbox, type WebhookCall } from './codeInbox.js'
export {
  type ListeningEntry,
  onLines,
  RELAY_DIR,
  RelayProcess,
  type RelayProcessOptions,
  spawnDevRelay,
  spawnRelay,
  type WebhookTarget,
} from './relayProcess.js'
export {
  keyOf,
  newWebhookSecret,
  signWebhook,
  WebhookReceiver,
  type WebhookRefusal,
} from './webhookReceiver.js'
