// @parley/protocol — the public API is exactly what this file exports.

export type { ErrorCode, ParleyErrorOptions } from './errors.js'
export { ERROR_CODES, errorCodeFromWire, errorCodeToWire, isErrorCode, ParleyError } from './errors.js'
export type {
  ClientBody,
  ClientFrame,
  ClientFrameInput,
  ServerBody,
  ServerFrame,
  ServerFrameInput,
  Wire,
  WireError,
} from './frames.js'
export {
  DEFAULT_LIMITS,
  decodeClientFrame,
  decodeServerFrame,
  encodeClientFrame,
  encodeServerFrame,
  GapReason,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  parleyErrorFromWire,
  WireErrorCode,
  wireErrorFrom,
} from './frames.js'
export {
  AUTH_NONCE_BYTES,
  activationPayload,
  authPayload,
  kemPrekeyPayload,
  signedPrekeyPayload,
  verifyIdentitySignature,
} from './signing.js'
