/**
 * `@parley/relay/testing`: what tests and benches use to run the relay as a process — {@link spawnRelay} and
 * {@link RelayProcess} (flags, data directory, readiness, logs, console-verifier codes, stop/kill/restart,
 * signals, subcommands), the {@link CodeInbox} that receives its SMS codes over the signed webhook, and the
 * {@link RawClient} with its helpers (keys, activation, login, envelope shapes, {@link inProcess} relays) for
 * speaking the wire protocol below the SDK. Not part of the relay's runtime: nothing in `src/` imports it.
 * @module
 */
export { CodeInbox, type WebhookCall } from './codeInbox.js'
export {
  type Account,
  activate,
  CapturingVerifier,
  expectError,
  Identity,
  inProcess,
  junkEnvelope,
  login,
  messageId,
  prekeys,
  RawClient,
  sealedShape,
  shapePayload,
  shapeText,
  tempDir,
} from './rawClient.js'
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
