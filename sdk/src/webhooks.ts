/**
 * Webhooks from Baseplate, signed like Standard Webhooks (https://www.standardwebhooks.com)
 * with its asymmetric `v1a` scheme: Ed25519 over `<webhook-id>.<webhook-timestamp>.<body>`,
 * signed with the platform key of the app's environment. Receivers verify with the public
 * key from `GET /v1/platform-keys/{environment}`; no shared secret exists to leak.
 *
 * The platform signs with {@link signWebhook} and receivers call {@link verifyWebhook}, so
 * both build the very same bytes.
 *
 * @example
 * import { verifyWebhook } from 'baseplate-sdk/webhooks'
 * // Verify the raw body, exactly as received: never a re-serialised JSON object.
 * const event = verifyWebhook({ headers: request.headers, body: rawBody, publicKey: platformPublicKeyPem })
 * if (await alreadyHandled(event.id)) return // delivery is at-least-once: dedupe on the id
 */
import crypto from 'node:crypto'
import { decodeBase64Strict } from './protocol.js'

export const webhookHeaderNames = {
  id: 'webhook-id',
  timestamp: 'webhook-timestamp',
  signature: 'webhook-signature',
} as const

/** Standard Webhooks' recommended window: five minutes either way. */
export const webhookToleranceSDefault = 300
const headerLengthMax = 4096
const ed25519SignatureBytes = 64

/** The JSON body of every webhook. */
export interface WebhookEvent<T = unknown> {
  /** The event id (`evt_…`): the same on every retry and redelivery, so dedupe on it. */
  readonly id: string
  readonly type: string
  /** When the event happened (ISO 8601, UTC), not when this attempt was made. */
  readonly created_at: string
  readonly environment: 'sandbox' | 'live'
  readonly data: T
}

export type WebhookVerificationCode =
  | 'SDK_WEBHOOK_HEADERS_MISSING'
  | 'SDK_WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE'
  | 'SDK_WEBHOOK_SIGNATURE_INVALID'
  | 'SDK_WEBHOOK_BODY_MALFORMED'

/** Why a webhook was refused; answer the sender with a 4xx and do not act on it. */
export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError'
  constructor(
    readonly code: WebhookVerificationCode,
    message: string,
  ) {
    super(message)
  }
}

/** Node's `IncomingHttpHeaders`, a plain record, or a fetch `Headers`. */
export type WebhookHeaders =
  { get(name: string): string | null } | Readonly<Record<string, string | readonly string[] | undefined>>

export interface VerifyWebhookInput {
  readonly headers: WebhookHeaders
  /** The raw request body, byte for byte as received. */
  readonly body: string | Uint8Array
  /** The platform's public key (PEM, or a parsed `KeyObject`) for the environment. */
  readonly publicKey: string | crypto.KeyObject
  /** How far `webhook-timestamp` may be from now, either way; default 300 s. */
  readonly toleranceS?: number
  /** Clock in milliseconds; tests move it. */
  readonly now?: () => number
}

/** The bytes a signature covers: `<id>.<timestamp>.<body>`. */
export function webhookSigningBytes(id: string, timestamp: string, body: string | Uint8Array): Buffer {
  return Buffer.concat([
    Buffer.from(`${id}.${timestamp}.`, 'utf8'),
    typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body),
  ])
}

/**
 * The `webhook-signature` value for a body: `v1a,<base64 Ed25519 signature>`.
 *
 * @example
 * const signature = signWebhook({ id: 'evt_…', timestampS: 1764043200, body, privateKey })
 */
export function signWebhook(input: {
  id: string
  timestampS: number
  body: string | Uint8Array
  privateKey: crypto.KeyObject
}): string {
  const bytes = webhookSigningBytes(input.id, String(input.timestampS), input.body)
  return `v1a,${crypto.sign(null, bytes, input.privateKey).toString('base64')}`
}

const keyCacheSizeMax = 16
const keyCache = new Map<string, crypto.KeyObject>()

function publicKeyObject(key: string | crypto.KeyObject): crypto.KeyObject {
  if (typeof key !== 'string') return key
  // Parsing a PEM on every webhook is the slow part of verifying; keep the few keys in use.
  let parsed = keyCache.get(key)
  if (parsed === undefined) {
    parsed = crypto.createPublicKey(key)
    if (keyCache.size >= keyCacheSizeMax) keyCache.clear()
    keyCache.set(key, parsed)
  }
  return parsed
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined
  }
  const record = headers as Readonly<Record<string, string | readonly string[] | undefined>>
  const value = record[name] ?? Object.entries(record).find(([key]) => key.toLowerCase() === name)?.[1]
  return Array.isArray(value) ? value.join(' ') : (value as string | undefined)
}

/**
 * Checks a webhook's signature and timestamp and returns its parsed body; throws a
 * {@link WebhookVerificationError} otherwise. Several space-separated signatures are
 * accepted (one valid `v1a` is enough), so key rotation can sign with two keys at once.
 *
 * @example
 * try {
 *   const event = verifyWebhook({ headers: req.headers, body: rawBody, publicKey, toleranceS: 300 })
 *   await handle(event)
 *   res.writeHead(204).end()
 * } catch (error) {
 *   if (error instanceof WebhookVerificationError) res.writeHead(400).end(error.code)
 *   else throw error
 * }
 */
export function verifyWebhook<T = unknown>(input: VerifyWebhookInput): WebhookEvent<T> {
  const id = header(input.headers, webhookHeaderNames.id)
  const timestamp = header(input.headers, webhookHeaderNames.timestamp)
  const signatures = header(input.headers, webhookHeaderNames.signature)
  if (id === undefined || timestamp === undefined || signatures === undefined) {
    throw new WebhookVerificationError(
      'SDK_WEBHOOK_HEADERS_MISSING',
      'Expected webhook-id, webhook-timestamp and webhook-signature headers',
    )
  }
  if (id.length > headerLengthMax || signatures.length > headerLengthMax || !/^\d{1,12}$/.test(timestamp)) {
    throw new WebhookVerificationError('SDK_WEBHOOK_HEADERS_MISSING', 'The webhook headers are malformed')
  }
  const toleranceS = input.toleranceS ?? webhookToleranceSDefault
  const nowS = Math.floor((input.now ?? Date.now)() / 1000)
  if (Math.abs(nowS - Number(timestamp)) > toleranceS) {
    throw new WebhookVerificationError(
      'SDK_WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE',
      `webhook-timestamp ${timestamp} is more than ${toleranceS} s from now (${nowS}); a replay, or a wrong clock`,
    )
  }
  const key = publicKeyObject(input.publicKey)
  const bytes = webhookSigningBytes(id, timestamp, input.body)
  const valid = signatures.split(' ').some((entry) => {
    const [version, value] = entry.split(',', 2)
    if (version !== 'v1a' || value === undefined) return false
    const signature = decodeBase64Strict(value)
    if (signature === null || signature.length !== ed25519SignatureBytes) return false
    try {
      return crypto.verify(null, bytes, key, signature)
    } catch {
      return false // a key of another type (RSA) cannot verify a v1a signature
    }
  })
  if (!valid) {
    throw new WebhookVerificationError(
      'SDK_WEBHOOK_SIGNATURE_INVALID',
      'No v1a signature verifies with this public key; check the environment and that the body is the raw bytes',
    )
  }
  let event: WebhookEvent<T>
  try {
    event = JSON.parse(typeof input.body === 'string' ? input.body : Buffer.from(input.body).toString('utf8'))
  } catch {
    throw new WebhookVerificationError('SDK_WEBHOOK_BODY_MALFORMED', 'The signed body is not JSON')
  }
  // The body is signed too, so this only catches a sender bug; still, never act on a mismatch.
  if (typeof event !== 'object' || event === null || event.id !== id) {
    throw new WebhookVerificationError('SDK_WEBHOOK_BODY_MALFORMED', "The body's id differs from webhook-id")
  }
  return event
}
