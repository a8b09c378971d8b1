// @parley/protocol — the public API is exactly what this file exports.

// Activation proof of work (ServerHello.activation_pow_bits, ActivationStart.pow_solution).
export {
  ACTIVATION_POW_LABEL,
  activationPowDigest,
  checkActivationPow,
  MAX_ACTIVATION_POW_BITS,
  MAX_POW_SOLUTION_BYTES,
  solveActivationPow,
} from './activationPow.js'
export { ADDRESS_BYTES, addressFromToken, addressHasPrefix, addressPrefix } from './address.js'
// Number-change notices (docs/architecture.md §9.8).
export type { AddressChangeFields, VerifyAddressChangeOptions } from './addressChange.js'
export { addressChangeClaims, signAddressChange, verifyAddressChange } from './addressChange.js'
// Attachments: chunked encryption of files, whose key and digest travel in Content.attachment.
export type {
  AttachmentDecryptOptions,
  AttachmentDecryptor,
  AttachmentEncryptOptions,
  AttachmentEncryptor,
  AttachmentEncryptorResult,
  AttachmentSecrets,
  EncryptedAttachment,
} from './attachment.js'
export {
  ATTACHMENT_DIGEST_BYTES,
  ATTACHMENT_KEY_BYTES,
  attachmentCiphertextSize,
  createAttachmentDecryptor,
  createAttachmentEncryptor,
  DEFAULT_ATTACHMENT_CHUNK_BYTES,
  decryptAttachment,
  encryptAttachment,
  MAX_ATTACHMENT_CHUNK_BYTES,
  MIN_ATTACHMENT_CHUNK_BYTES,
} from './attachment.js'
// Backup archives (docs/architecture.md §9.7).
export type { SealBackupOptions } from './backup.js'
export {
  BACKUP_HEADER_BYTES,
  BACKUP_LOG_N,
  BACKUP_VERSION,
  MAX_BACKUP_LOG_N,
  MIN_BACKUP_LOG_N,
  MIN_BACKUP_PASSPHRASE_LENGTH,
  openBackup,
  sealBackup,
} from './backup.js'
// Sender certificates and unidentified delivery tokens.
export type {
  OprfKeyCertificateFields,
  SenderCertificate,
  SenderCertificateFields,
  VerifyCertificateOptions,
} from './certificates.js'
export {
  CERTIFICATE_SKEW_MS,
  COMMITMENT_BYTES,
  createOprfKeyCertificate,
  createSenderCertificate,
  createServerCertificate,
  deliveryTokenVerifier,
  numberCommitment,
  opensNumberCommitment,
  verifyOprfKeyCertificate,
  verifySenderCertificate,
} from './certificates.js'
// Message content: the padded plaintext of every message and its bodies.
export type {
  AttachmentFields,
  Content,
  EditFields,
  HistoryChunkFields,
  HistoryEntryFields,
  ReactionFields,
  ReceiptFields,
  TypingFields,
} from './content.js'
export {
  BLOB_ID_BYTES,
  CONTENT_BUCKET_BYTES,
  decodeContent,
  decodeHistoryChunk,
  encodeContent,
  encodeHistoryChunk,
  GROUP_ID_BYTES,
  MAX_PREVIEW_BYTES,
  MAX_REACTION_BYTES,
  MAX_RECEIPT_IDS,
  MESSAGE_ID_BYTES,
} from './content.js'
// End-to-end encryption (docs/architecture.md §6): identity, prekeys, PQXDH + Double Ratchet sessions, sealed envelopes.
export type {
  AeadProvider,
  CryptoOptions,
  CryptoProvider,
  Sha256Hasher,
  X25519Provider,
} from './cryptoProvider.js'
export { assertCryptoProvider } from './cryptoProvider.js'
// Signed device lists (docs/architecture.md §9.2).
export type {
  DeviceListEntry,
  DeviceListFields,
  VerifiedDeviceList,
  VerifyDeviceListOptions,
} from './deviceList.js'
export {
  deviceKeyNamedIn,
  MAX_DEVICES,
  PRIMARY_DEVICE_ID,
  signDeviceList,
  verifyDeviceList,
} from './deviceList.js'
export type { ErrorCode, ParleyErrorOptions, RegistrationLockChallenge } from './errors.js'
export { ERROR_CODES, errorCodeFromWire, errorCodeToWire, isErrorCode, ParleyError } from './errors.js'
export type {
  ClientBody,
  ClientBodyOf,
  ClientFrame,
  ClientFrameDecodeOptions,
  ClientFrameInput,
  ServerBody,
  ServerBodyOf,
  ServerFrame,
  ServerFrameInput,
  WireError,
} from './frames.js'
export {
  DEFAULT_LIMITS,
  decodeClientFrame,
  decodeServerFrame,
  encodeClientFrame,
  encodeServerFrame,
  frameBody,
  frameBodyOf,
  GapReason,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  parleyErrorFromWire,
  peekClientFrame,
  WireErrorCode,
  wireErrorFrom,
} from './frames.js'
/** Every wire message type as decoded (`wire.Delivery`) and as encoded (`wire.DeliveryInput`), generated from proto/. */
export type * as wire from './gen/types.js'
export type {
  GroupKeyFields,
  GroupMemberFields,
  GroupUpdateCandidate,
  GroupUpdateFields,
  GroupUpdateVerdict,
} from './group.js'
export {
  decodeGroupKey,
  decodeGroupUpdate,
  encodeGroupKey,
  encodeGroupUpdate,
  groupMember,
  groupUpdateHash,
  judgeGroupUpdate,
  MAX_GROUP_MEMBERS,
  MAX_GROUP_NAME_BYTES,
  withAdmin,
} from './group.js'
export type { IdentityKeyPair, RandomSource } from './identity.js'
export { generateIdentity } from './identity.js'
// Linking a device (docs/architecture.md §9.3): link codes, link messages and what they carry.
export type {
  LinkCode,
  LinkDirection,
  LinkGrantFields,
  LinkRequestFields,
  OpenLinkInput,
  SealLinkInput,
} from './linking.js'
export {
  createLinkSecret,
  decodeLinkCode,
  decodeLinkGrant,
  decodeLinkRequest,
  encodeLinkCode,
  encodeLinkGrant,
  encodeLinkRequest,
  LINK_CODE_PREFIX,
  LINK_CODE_VERSION,
  LINK_NONCE_BYTES,
  LINK_SECRET_BYTES,
  linkFingerprint,
  openLinkMessage,
  RENDEZVOUS_ID_BYTES,
  sealLinkMessage,
} from './linking.js'
export { normalizeNumber } from './normalizeNumber.js'
export type { OprfBlinded, OprfEvaluation, OprfKeyPair } from './oprf.js'
export {
  OPRF_ELEMENT_BYTES,
  OPRF_OUTPUT_BYTES,
  OPRF_PROOF_BYTES,
  OPRF_SCALAR_BYTES,
  oprfBlind,
  oprfBlindEvaluate,
  oprfDeriveKeyPair,
  oprfEvaluate,
  oprfFinalize,
  oprfGenerateKeyPair,
} from './oprf.js'
export type { CountryCode, NumberMetadata } from './phoneNumbers.js'
export { loadNumberMetadata, normalizeNumberWith, numberToOprfInput } from './phoneNumbers.js'
export type { KemPrekeyPair, OneTimePrekeyPair, PrekeyBundle, SignedPrekeyPair } from './prekeys.js'
export {
  generateKemPrekey,
  generateOneTimePrekeys,
  generateSignedPrekey,
  KEM_CIPHERTEXT_BYTES,
  KEM_PUBLIC_KEY_BYTES,
  prekeyBundleFromWire,
  prekeyBundleToWire,
  verifyPrekeyBundle,
} from './prekeys.js'
// Registration lock (SetRegistrationLock, ActivationConfirm.registration_lock_proof).
export {
  isRegistrationLockLogN,
  MAX_PIN_LENGTH,
  MAX_REGISTRATION_LOCK_LOG_N,
  MIN_PIN_LENGTH,
  MIN_REGISTRATION_LOCK_LOG_N,
  normalizePin,
  REGISTRATION_LOCK_LABEL,
  REGISTRATION_LOCK_LOG_N,
  REGISTRATION_LOCK_PROOF_BYTES,
  REGISTRATION_LOCK_SALT_BYTES,
  registrationLockProof,
  registrationLockVerifier,
} from './registrationLock.js'
export type {
  CiphertextMessage,
  MaybePromise,
  PrekeyLookup,
  PrekeySender,
  RespondResult,
  SessionOptions,
} from './Session.js'
export { MAX_PLAINTEXT_BYTES, Session } from './Session.js'
export {
  SAFETY_NUMBER_ITERATIONS,
  SAFETY_NUMBER_QR_VERSION,
  safetyNumber,
  safetyNumberQr,
  verifySafetyNumberQr,
} from './safetyNumber.js'
export type {
  GroupCiphertext,
  OpenedEnvelope,
  SealedMessage,
  SealInput,
  SharedSeal,
  SharedSealInput,
  VerifiedSender,
} from './sealedEnvelope.js'
export {
  joinSealed,
  MAX_ADDRESS_CHANGE_BYTES,
  MAX_ENVELOPE_BYTES,
  openEnvelope,
  openSealedMessage,
  SEALED_ENVELOPE_VERSION,
  SealAgreements,
  SHARED_ENVELOPE_VERSION,
  sealEnvelope,
  sealForDevices,
} from './sealedEnvelope.js'
export type {
  CreateSenderKeyOptions,
  SenderKeyEncrypted,
  SenderKeyMessageHeader,
  SenderKeyOpened,
  SenderKeyReceiver,
  SenderKeyState,
  SkippedSenderKey,
} from './senderKey.js'
export {
  createSenderKey,
  MAX_SENDER_KEY_ITERATION,
  MAX_SENDER_KEY_KEPT,
  MAX_SENDER_KEY_SKIP,
  openSenderKeyDistribution,
  peekSenderKeyMessage,
  SENDER_KEY_CHAIN_KEY_BYTES,
  SENDER_KEY_DISTRIBUTION_ID_BYTES,
  senderKeyDecrypt,
  senderKeyDistribution,
  senderKeyEncrypt,
} from './senderKey.js'
export {
  AUTH_NONCE_BYTES,
  activationPayload,
  authPayload,
  kemPrekeyPayload,
  signedPrekeyPayload,
  signWithIdentity,
  verifyIdentitySignature,
} from './signing.js'
// A client store's records sealed at rest under the app's key (storeEncryptionKey).
export type { OpenedStoreRecord, StoreKeys } from './storeSeal.js'
export { deriveStoreKeys, openStoreRecord, sealStoreRecord, storedName } from './storeSeal.js'
