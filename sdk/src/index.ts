/**
 * The Baseplate SDK for the native API. It signs every request with the app's private key,
 * verifies the platform's signature on every response, and retries safely: each write gets
 * an `Idempotency-Key` (yours, or a generated one) that is resent unchanged on every retry,
 * so a retried payment can never execute twice.
 *
 * @example
 * import { createClient } from 'baseplate-sdk'
 * const client = createClient({ endpoint, appId, privateKey, platformPublicKey })
 * const store = await client.post('/v1/stores', {
 *   body: { out_store_no: 'S1', name: '五道口店', address: '北京市海淀区' },
 *   idempotencyKey: 'store-S1',
 * })
 */
import crypto from 'node:crypto'
import type { ErrorCode } from './generated/error-codes.js'
import type { paths } from './generated/openapi.js'
import { writesWithoutIdempotency } from './generated/operations.js'
import { headerNames, newNonce, requestSigningString, responseSigningString, signText, verifyText } from './protocol.js'

export type { paths } from './generated/openapi.js'
export { errorCodes, type ErrorCode } from './generated/error-codes.js'
export {
  headerNames,
  newNonce,
  requestSigningString,
  responseSigningString,
  signText,
  verifyText,
} from './protocol.js'
export { verifyWebhook, WebhookVerificationError, webhookHeaderNames, type WebhookEvent } from './webhooks.js'

/** Codes raised by the SDK itself, never by the server. */
export type SdkErrorCode = 'SDK_RESPONSE_SIGNATURE_INVALID' | 'SDK_NETWORK_ERROR' | 'SDK_RESPONSE_MALFORMED'

export class BaseplateError extends Error {
  override readonly name = 'BaseplateError'
  constructor(
    readonly code: ErrorCode | SdkErrorCode,
    message: string,
    readonly status: number,
    readonly requestId: string | undefined,
    readonly field: string | undefined,
    /** On AUTH_SIGNATURE_INVALID: the exact string the server verified. */
    readonly signedString: string | undefined,
    /**
     * False for an error the platform could not sign because it could not tell which app
     * called (a missing header, an unknown app): trust its code for debugging only.
     */
    readonly verified = true,
    /** The pause the platform asked for (`Retry-After` on 429 and 503), in milliseconds. */
    readonly retryAfterMs?: number,
  ) {
    super(message)
  }
}

/** `Retry-After` in whole seconds (the platform never sends a date), or undefined. */
function retryAfterMsOf(response: Response): number | undefined {
  const value = response.headers.get('retry-after')
  return value !== null && /^\d{1,6}$/.test(value) ? Number(value) * 1000 : undefined
}

export interface ClientOptions {
  readonly endpoint: string
  readonly appId: string
  /** PEM (PKCS#8) or a KeyObject: RSA 2048+ or Ed25519. */
  readonly privateKey: string | crypto.KeyObject
  /** The platform's public key for the app's environment (GET /v1/platform-keys/{env}). */
  readonly platformPublicKey: string | crypto.KeyObject
  /** Act for this merchant on every call (can be overridden per call). */
  readonly appAuthToken?: string
  /**
   * Retries after a network error, 409 in-progress, 429 or 5xx. Default 2. A 429 or 503 is
   * retried no sooner than its `Retry-After`, and not at all if that is over `retryDelayMsMax`.
   */
  readonly retriesMax?: number
  readonly retryDelayMsMin?: number
  readonly retryDelayMsMax?: number
  readonly timeoutMs?: number
  readonly fetch?: typeof fetch
  /** Clock in milliseconds; tests move it. */
  readonly now?: () => number
}

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete'
type PathsWith<M extends Method> = {
  [P in keyof paths]: paths[P] extends Record<M, infer O> ? (O extends undefined | never ? never : P) : never
}[keyof paths]
type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M & keyof paths[P]]>
type ParamsOf<O> = O extends { parameters: { path: infer T } } ? T : never
type QueryOf<O> = O extends { parameters: { query?: infer T } } ? T : never
type BodyOf<O> = O extends { requestBody: { content: { 'application/json': infer T } } } ? T : never
type SuccessOf<O> = O extends { responses: infer R }
  ? {
      [S in keyof R]: S extends 200 | 201 | 202
        ? R[S] extends { content: { 'application/json': infer T } }
          ? T
          : never
        : never
    }[keyof R]
  : never

export type RequestOptions<O> = ([ParamsOf<O>] extends [never] ? { params?: undefined } : { params: ParamsOf<O> }) &
  ([QueryOf<O>] extends [never] | [undefined] ? { query?: undefined } : { query?: QueryOf<O> }) &
  ([BodyOf<O>] extends [never] ? { body?: undefined } : { body: BodyOf<O> }) & {
    idempotencyKey?: string
    appAuthToken?: string
  }

export interface SignRequestInput {
  readonly appId: string
  readonly privateKey: crypto.KeyObject
  readonly method: string
  readonly pathWithQuery: string
  readonly body: string
  readonly appAuthToken?: string | undefined
  readonly idempotencyKey?: string | undefined
  readonly timestampS: number
  readonly nonce?: string
}

/** The headers of a signed request. Exposed for callers that use their own HTTP client. */
export function signRequest(input: SignRequestInput): Record<string, string> {
  const nonce = input.nonce ?? newNonce()
  const timestamp = String(input.timestampS)
  const text = requestSigningString({
    appId: input.appId,
    timestamp,
    nonce,
    method: input.method,
    pathWithQuery: input.pathWithQuery,
    appAuthToken: input.appAuthToken ?? '',
    idempotencyKey: input.idempotencyKey ?? '',
    body: input.body,
  })
  const headers: Record<string, string> = {
    [headerNames.appId]: input.appId,
    [headerNames.timestamp]: timestamp,
    [headerNames.nonce]: nonce,
    [headerNames.signature]: signText(text, input.privateKey),
  }
  if (input.appAuthToken !== undefined && input.appAuthToken !== '')
    headers[headerNames.appAuthToken] = input.appAuthToken
  if (input.idempotencyKey !== undefined && input.idempotencyKey !== '')
    headers[headerNames.idempotencyKey] = input.idempotencyKey
  if (input.body !== '') headers['content-type'] = 'application/json'
  return headers
}

/** True when the response carries a valid platform signature bound to the request's nonce. */
export function verifyResponse(input: {
  appId: string
  nonce: string
  status: number
  body: string
  headers: { get(name: string): string | null }
  platformPublicKey: crypto.KeyObject
}): boolean {
  const signature = input.headers.get(headerNames.signature)
  const timestamp = input.headers.get(headerNames.timestamp)
  if (signature === null || timestamp === null || input.headers.get(headerNames.nonce) !== input.nonce) return false
  const text = responseSigningString({
    appId: input.appId,
    timestamp,
    nonce: input.nonce,
    status: input.status,
    body: input.body,
  })
  return verifyText(text, signature, input.platformPublicKey)
}

function toPrivateKey(key: string | crypto.KeyObject): crypto.KeyObject {
  return typeof key === 'string' ? crypto.createPrivateKey(key) : key
}

function toPublicKey(key: string | crypto.KeyObject): crypto.KeyObject {
  return typeof key === 'string' ? crypto.createPublicKey(key) : key
}

function buildPath(
  template: string,
  params: Record<string, unknown> | undefined,
  query: Record<string, unknown> | undefined,
): string {
  const path = template.replace(/\{([a-z_]+)\}/g, (_, name: string) => {
    const value = params?.[name]
    if (value === undefined) throw new TypeError(`missing path parameter ${name}`)
    return encodeURIComponent(String(value))
  })
  const search = new URLSearchParams()
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined) search.append(name, String(value))
  }
  const text = search.toString()
  return text === '' ? path : `${path}?${text}`
}

const retryableCodes = new Set([
  'IDEMPOTENCY_REQUEST_IN_PROGRESS',
  'REQUEST_RATE_LIMITED',
  'SERVICE_UNAVAILABLE',
  'INTERNAL_ERROR',
])

export interface BaseplateClient {
  get<P extends PathsWith<'get'>>(
    path: P,
    options?: RequestOptions<Operation<P, 'get'>>,
  ): Promise<SuccessOf<Operation<P, 'get'>>>
  post<P extends PathsWith<'post'>>(
    path: P,
    options?: RequestOptions<Operation<P, 'post'>>,
  ): Promise<SuccessOf<Operation<P, 'post'>>>
  patch<P extends PathsWith<'patch'>>(
    path: P,
    options?: RequestOptions<Operation<P, 'patch'>>,
  ): Promise<SuccessOf<Operation<P, 'patch'>>>
  delete<P extends PathsWith<'delete'>>(
    path: P,
    options?: RequestOptions<Operation<P, 'delete'>>,
  ): Promise<SuccessOf<Operation<P, 'delete'>>>
}

export function createClient(options: ClientOptions): BaseplateClient {
  const privateKey = toPrivateKey(options.privateKey)
  const platformPublicKey = toPublicKey(options.platformPublicKey)
  const fetcher = options.fetch ?? fetch
  const now = options.now ?? (() => Date.now())
  const retriesMax = options.retriesMax ?? 2
  const delayMin = options.retryDelayMsMin ?? 200
  const delayMax = options.retryDelayMsMax ?? 5000
  const endpoint = options.endpoint.replace(/\/+$/, '')

  async function attempt(
    method: string,
    pathWithQuery: string,
    body: string,
    idempotencyKey: string | undefined,
    appAuthToken: string | undefined,
  ): Promise<unknown> {
    const nowMs = now()
    const nonce = newNonce(nowMs)
    const headers = signRequest({
      appId: options.appId,
      privateKey,
      method,
      pathWithQuery,
      body,
      appAuthToken,
      idempotencyKey,
      timestampS: Math.floor(nowMs / 1000),
      nonce,
    })
    let response: Response
    try {
      response = await fetcher(`${endpoint}${pathWithQuery}`, {
        method,
        headers,
        body: body === '' ? undefined : body,
        signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
      })
    } catch (error) {
      throw new BaseplateError(
        'SDK_NETWORK_ERROR',
        `request failed: ${String(error)}`,
        0,
        undefined,
        undefined,
        undefined,
      )
    }
    const text = await response.text()
    const requestId = response.headers.get(headerNames.requestId) ?? undefined
    const verified = verifyResponse({
      appId: options.appId,
      nonce,
      status: response.status,
      body: text,
      headers: response.headers,
      platformPublicKey,
    })
    // The platform signs every answer to a request it can tie to an app. An unsigned error
    // (a missing header, an unknown app) still carries a useful code; a success never may.
    const unsignedError = !response.ok && response.headers.get(headerNames.signature) === null
    if (!verified && !unsignedError) {
      throw new BaseplateError(
        'SDK_RESPONSE_SIGNATURE_INVALID',
        'The response is not signed by the platform key; it may have been altered',
        response.status,
        requestId,
        undefined,
        undefined,
      )
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      throw new BaseplateError(
        'SDK_RESPONSE_MALFORMED',
        'The response is not JSON',
        response.status,
        requestId,
        undefined,
        undefined,
      )
    }
    if (response.ok) return parsed
    const error = parsed as { code?: string; message?: string; field?: string; signedString?: string }
    throw new BaseplateError(
      (error.code ?? 'INTERNAL_ERROR') as ErrorCode,
      error.message ?? response.statusText,
      response.status,
      requestId,
      error.field,
      error.signedString,
      verified,
      retryAfterMsOf(response),
    )
  }

  async function request(
    method: string,
    path: string,
    call: {
      params?: Record<string, unknown>
      query?: Record<string, unknown>
      body?: unknown
      idempotencyKey?: string
      appAuthToken?: string
    } = {},
  ): Promise<unknown> {
    const pathWithQuery = buildPath(path, call.params, call.query)
    const body = call.body === undefined ? '' : JSON.stringify(call.body)
    // Every write carries a key so that a retry after a lost response cannot execute twice. A
    // UUIDv7, like the nonces: the platform keeps keys for a day, in an index they reach in order.
    const idempotencyKey = method === 'GET' ? undefined : (call.idempotencyKey ?? `sdk-retry-${newNonce(now())}`)
    const appAuthToken = call.appAuthToken ?? options.appAuthToken
    const resendable = method === 'GET' || !writesWithoutIdempotency.has(`${method} ${path}`)
    for (let retry = 0; ; retry += 1) {
      try {
        return await attempt(method, pathWithQuery, body, idempotencyKey, appAuthToken)
      } catch (error) {
        const retryable =
          resendable &&
          error instanceof BaseplateError &&
          (error.code === 'SDK_NETWORK_ERROR' || retryableCodes.has(error.code))
        if (!retryable || retry >= retriesMax) throw error
        // A server that asks for a longer pause than this client waits gets its answer back.
        const asked = error.retryAfterMs ?? 0
        if (asked > delayMax) throw error
        // Exponential backoff with full jitter, capped, and never sooner than the server asked;
        // the key and body stay the same.
        const ceiling = Math.min(delayMax, delayMin * 2 ** retry)
        await new Promise((resolve) => setTimeout(resolve, Math.max(asked, Math.random() * ceiling)))
      }
    }
  }

  return {
    get: (path, call) => request('GET', path, call as never) as never,
    post: (path, call) => request('POST', path, call as never) as never,
    patch: (path, call) => request('PATCH', path, call as never) as never,
    delete: (path, call) => request('DELETE', path, call as never) as never,
  }
}
