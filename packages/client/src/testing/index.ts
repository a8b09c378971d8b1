/**
 * `@parley/client/testing`: tools for testing code built on the Parley client engine without a relay process —
 * an in-process {@link FakeRelay}, a {@link ManualClock}, a {@link recordingTransport} and the `Store`
 * conformance suite ({@link storeConformance}). Not for production use. The public API is exactly what this file exports.
 * @module
 */
export type {
  FakeAccount,
  FakeAnswer,
  FakeAnswerContext,
  FakeAnswerHandler,
  FakeFrameRecord,
  FakeMail,
  FakeOprfKey,
  FakeRelayOptions,
  FakeReply,
  FakeSignedKey,
  FakeText,
} from './FakeRelay.js'
export { FakeConnection, FakeRelay, NO_ANSWER } from './FakeRelay.js'
export { ManualClock } from './ManualClock.js'
export type { RecordingTransport } from './recordingTransport.js'
export { recordingTransport } from './recordingTransport.js'
export type { StoreUnderTest, TestRegistrar } from './storeSuite.js'
export { storeConformance } from './storeSuite.js'
