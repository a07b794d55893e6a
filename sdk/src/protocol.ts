/**
 * The native API's signing protocol, shared by the platform and the SDK so that both build
 * the very same bytes. `docs/api/signing.md` explains it with a worked example.
 *
 * A request is signed over seven lines and the raw body:
 *
 *     BASEPLATE-REQUEST-V1
 *     <app id>
 *     <timestamp: unix seconds>
 *     <nonce>
 *     <METHOD> <path with query, exactly as sent>
 *     <app auth token, or empty>
 *     <idempotency key, or empty>
 *     <raw body, or empty>
 *
 * A response is signed over five lines and the raw body:
 *
 *     BASEPLATE-RESPONSE-V1
 *     <app id>
 *     <timestamp>
 *     <nonce of the request it answers>
 *     <HTTP status>
 *     <raw body>
 *
 * @example
 * const text = requestSigningString({ appId, timestamp, nonce, method: 'POST',
 *   pathWithQuery: '/v1/stores', appAuthToken: '', idempotencyKey: 'k1', body: '{}' })
 */
import crypto from 'node:crypto'

export const headerNames = {
  appId: 'baseplate-app-id',
  timestamp: 'baseplate-timestamp',
  nonce: 'baseplate-nonce',
  signature: 'baseplate-signature',
  appAuthToken: 'baseplate-app-auth-token',
  idempotencyKey: 'idempotency-key',
  keyId: 'baseplate-key-id',
  idempotentReplayed: 'idempotent-replayed',
  requestId: 'request-id',
} as const

export interface RequestSigningInput {
  readonly appId: string
  readonly timestamp: string
  readonly nonce: string
  readonly method: string
  readonly pathWithQuery: string
  readonly appAuthToken: string
  readonly idempotencyKey: string
  readonly body: string
}

export interface ResponseSigningInput {
  readonly appId: string
  readonly timestamp: string
  readonly nonce: string
  readonly status: number
  readonly body: string
}

/**
 * A fresh nonce: a UUIDv7 (RFC 9562), 48 bits of Unix milliseconds and then 74 random bits,
 * in lowercase hex, so nonces made later sort later. The platform keeps an index of every
 * nonce for ten minutes; nonces in time order land on that index's newest pages and expire
 * from its oldest, where random ones each cost a page of their own on insert and on delete
 * (ADR 0002). Any 16-64 characters of `[A-Za-z0-9_-]` are accepted, time-ordered or not.
 *
 * @example
 * newNonce(Date.parse('2026-11-25T04:00:00Z')) // '019aba2e-d600-7…', unique per call
 */
export function newNonce(nowMs: number = Date.now()): string {
  const ms = Math.floor(nowMs)
  if (!Number.isSafeInteger(ms) || ms < 0 || ms >= 2 ** 48) throw new RangeError('nowMs must be Unix milliseconds')
  const bytes = crypto.randomBytes(16)
  bytes.writeUIntBE(ms, 0, 6)
  bytes[6] = (bytes[6]! & 0x0f) | 0x70 // version 7
  bytes[8] = (bytes[8]! & 0x3f) | 0x80 // variant 10
  const hex = bytes.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** Header values that enter a signing string may not contain a line break. */
export function isSingleLine(value: string): boolean {
  return !/[\r\n]/.test(value)
}

export function requestSigningString(input: RequestSigningInput): string {
  return [
    'BASEPLATE-REQUEST-V1',
    input.appId,
    input.timestamp,
    input.nonce,
    `${input.method.toUpperCase()} ${input.pathWithQuery}`,
    input.appAuthToken,
    input.idempotencyKey,
    input.body,
  ].join('\n')
}

export function responseSigningString(input: ResponseSigningInput): string {
  return ['BASEPLATE-RESPONSE-V1', input.appId, input.timestamp, input.nonce, String(input.status), input.body].join(
    '\n',
  )
}

/**
 * Signs with RSA (SHA256withRSA, PKCS#1 v1.5) or Ed25519, whichever the key is.
 * Returns standard base64.
 */
export function signText(text: string, privateKey: crypto.KeyObject): string {
  const algorithm = privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256'
  return crypto.sign(algorithm, Buffer.from(text, 'utf8'), privateKey).toString('base64')
}

const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * Decodes canonical standard base64 (RFC 4648 §4, padded), or returns null. Node's own decoder
 * is lenient (it takes base64url, skips whitespace and junk, ignores stray bits), so one
 * signature would have many spellings; here each signature has exactly one.
 */
export function decodeBase64Strict(text: string): Buffer | null {
  if (!base64Pattern.test(text)) return null
  const bytes = Buffer.from(text, 'base64')
  // Non-zero bits after the last full byte ('QR==' for 'QQ==') decode to the same bytes.
  return bytes.toString('base64') === text ? bytes : null
}

export function verifyText(text: string, signatureBase64: string, publicKey: crypto.KeyObject): boolean {
  const signature = decodeBase64Strict(signatureBase64)
  if (signature === null || signature.length === 0) return false
  const algorithm = publicKey.asymmetricKeyType === 'ed25519' ? null : 'sha256'
  try {
    return crypto.verify(algorithm, Buffer.from(text, 'utf8'), publicKey, signature)
  } catch {
    return false
  }
}
