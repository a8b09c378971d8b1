/**
 * Structured logs (pino) with redaction. The relay never passes a phone number, a code or key material to the
 * logger; the redaction list is the second line of defence should one slip into a logged object.
 * @module
 */
import { pino } from 'pino'

/** The logger type used across the relay. */
export type Logger = pino.Logger

const SECRET_KEYS = [
  'phoneNumber',
  'phone_number',
  'number',
  'e164',
  'code',
  'secretKey',
  'identityKey',
  'identity_key',
  'signature',
  'envelope',
  'publicKey',
  'authorization',
  'secret',
  'webhookSecret',
  'webhook_secret',
  'numberHashKey',
]

/** Redacted paths: each secret key at the top level and one or two levels down. */
export const REDACT_PATHS = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`])

/**
 * pino's error serializer, with an error's symbolic code (`EADDRINUSE`, `UNAVAILABLE`) kept as `errorCode`: under
 * `code` it would be redacted like a verification code (six digits, which never look like this).
 */
function serializeError(err: Error): Record<string, unknown> {
  const out = pino.stdSerializers.err(err) as unknown as Record<string, unknown>
  if (typeof out.code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(out.code)) out.errorCode = out.code
  delete out.code
  return out
}

/**
 * Creates the relay's logger.
 * @param level - pino level
 * @param destination - where lines go (default stdout)
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'parley-relay' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: serializeError },
    },
    destination ?? pino.destination({ fd: 1, sync: true }),
  )
}
