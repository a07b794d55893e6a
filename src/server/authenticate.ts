/**
 * Who is calling. Console routes take a session (cookie `bp_session` or `Authorization:
 * Bearer`); native API routes take a signed request (see `docs/api/signing.md`).
 *
 * For a signed request the order matters: the signature is checked before the nonce is
 * recorded, so that a stranger cannot burn an app's nonces, and the nonce is recorded in its
 * own committed write before any work, so a replay is refused even if the first call failed.
 */
import type { Kysely } from 'kysely'
import { headerNames, isSingleLine, requestSigningString, verifyText } from '../../sdk/src/protocol.js'
import type { Config } from '../config.js'
import { maskSecrets, requestCredentials } from '../platform/signing/masked.js'
import { AppError } from '../errors.js'
import { signingApp } from '../platform/apps/service.js'
import { cachedPublicKey } from '../platform/apps/public-keys.js'
import { sessionCookieName, userForSession } from '../platform/identity/service.js'
import { isUniqueViolation } from '../storage/database.js'
import { prepared } from '../storage/prepared.js'
import type { AppEnvironment, CoreTables } from '../storage/tables.js'
import type { ActingFor, AppPrincipal, UserPrincipal } from './route-kit.js'

/** Turns an app auth token into what it grants; the authorisation module provides it. */
export interface AppAuthTokenResolver {
  resolve(db: Kysely<any>, appId: string, token: string, now: number): Promise<ActingFor | null>
}

export interface SignedRequestParts {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly method: string
  readonly pathWithQuery: string
  readonly rawBody: string
}

export interface SignatureContext {
  readonly appId: string
  readonly environment: AppEnvironment
  readonly nonce: string
  /** Whether the signature verified and the nonce was new: the request is the app's own. */
  readonly proven: boolean
}

const nonceLengthMin = 16
const noncePattern = /^[A-Za-z0-9_-]{16,64}$/
const appIdPattern = /^app_[0-9a-z]{20}$/

const recordNonce = prepared((db: Kysely<CoreTables>, p: { appId: string; nonce: string; expiresAt: number }) =>
  db.insertInto('request_nonces').values({ app_id: p.appId, nonce: p.nonce, expires_at: p.expiresAt }),
)

function header(parts: SignedRequestParts, name: string): string | undefined {
  const value = parts.headers[name]
  return Array.isArray(value) ? value[0] : value
}

export async function authenticateSession(
  db: Kysely<any>,
  headers: SignedRequestParts['headers'],
  cookies: Readonly<Record<string, string | undefined>>,
  now: number,
): Promise<UserPrincipal> {
  const authorization = typeof headers.authorization === 'string' ? headers.authorization : undefined
  const bearer = authorization?.startsWith('Bearer ') === true ? authorization.slice(7).trim() : undefined
  const token = bearer ?? cookies[sessionCookieName]
  if (token === undefined || token === '' || token.length > 200) throw new AppError('AUTH_SESSION_REQUIRED')
  const principal = await userForSession(db, token, now)
  if (principal === null)
    throw new AppError('AUTH_SESSION_REQUIRED', { message: 'The session is unknown or has expired' })
  return principal
}

/**
 * Verifies a signed request and returns the app principal. `onContext` learns the app and
 * nonce as soon as they are known, so that even an error response can be signed.
 */
export async function authenticateApp(
  db: Kysely<any>,
  config: Config,
  parts: SignedRequestParts,
  now: number,
  scope: string | undefined,
  resolver: AppAuthTokenResolver | null,
  onContext: (context: SignatureContext) => void,
): Promise<AppPrincipal> {
  const appId = header(parts, headerNames.appId)
  const timestamp = header(parts, headerNames.timestamp)
  const nonce = header(parts, headerNames.nonce)
  const signature = header(parts, headerNames.signature)
  for (const [name, value] of [
    [headerNames.appId, appId],
    [headerNames.timestamp, timestamp],
    [headerNames.nonce, nonce],
    [headerNames.signature, signature],
  ] as const) {
    if (value === undefined || value === '') {
      throw new AppError('AUTH_SIGNATURE_MISSING', { field: `headers.${name}`, message: `Missing header ${name}` })
    }
  }
  if (!appIdPattern.test(appId!)) throw new AppError('AUTH_APP_NOT_FOUND', { field: `headers.${headerNames.appId}` })
  if (!/^\d{1,12}$/.test(timestamp!)) {
    throw new AppError('AUTH_TIMESTAMP_OUT_OF_WINDOW', {
      field: `headers.${headerNames.timestamp}`,
      message: 'The timestamp must be whole seconds since the Unix epoch',
    })
  }
  if (!noncePattern.test(nonce!)) {
    throw new AppError('AUTH_SIGNATURE_INVALID', {
      field: `headers.${headerNames.nonce}`,
      message: `The nonce must be ${nonceLengthMin}-64 characters of A-Z a-z 0-9 _ -`,
    })
  }
  // The app and its keys in one read, though the keys are needed only once the timestamp passes.
  const app = await signingApp(db, appId!, now)
  if (app === undefined) throw new AppError('AUTH_APP_NOT_FOUND', { field: `headers.${headerNames.appId}` })
  const context: SignatureContext = { appId: app.id, environment: app.environment, nonce: nonce!, proven: false }
  onContext(context)

  const skewS = Math.abs(now / 1000 - Number(timestamp))
  if (skewS > config.signatureWindowS) {
    throw new AppError('AUTH_TIMESTAMP_OUT_OF_WINDOW', {
      field: `headers.${headerNames.timestamp}`,
      message:
        `The timestamp is ${Math.round(skewS)} s from the server clock; ` +
        `at most ${config.signatureWindowS} s is accepted`,
    })
  }
  const appAuthToken = header(parts, headerNames.appAuthToken) ?? ''
  const idempotencyKey = header(parts, headerNames.idempotencyKey) ?? ''
  if (!isSingleLine(appAuthToken) || !isSingleLine(idempotencyKey)) {
    throw new AppError('AUTH_SIGNATURE_INVALID', { message: 'Signed header values may not contain line breaks' })
  }
  const signedString = requestSigningString({
    appId: app.id,
    timestamp: timestamp!,
    nonce: nonce!,
    method: parts.method,
    pathWithQuery: parts.pathWithQuery,
    appAuthToken,
    idempotencyKey,
    body: parts.rawBody,
  })
  const keys = app.keys
  if (keys.length === 0) throw new AppError('AUTH_APP_NO_ACTIVE_KEY')
  const verified = keys.some((key) => verifyText(signedString, signature!, cachedPublicKey(key.id, key.public_key_pem)))
  if (!verified) {
    throw new AppError('AUTH_SIGNATURE_INVALID', {
      message: 'The signature does not verify with any active key of the app; signedString is what the server verified',
      // Credentials (the app auth token; tokens and codes in the query or body) show as fingerprints.
      details: {
        signedString: maskSecrets(
          signedString,
          requestCredentials({ appAuthToken, url: parts.pathWithQuery, body: parts.rawBody }),
        ),
      },
    })
  }

  try {
    // Kept a second past twice the window, so no timestamp still accepted can outlive its nonce.
    await recordNonce.affected(db, {
      appId: app.id,
      nonce: nonce!,
      expiresAt: now + (2 * config.signatureWindowS + 1) * 1000,
    })
  } catch (error) {
    if (isUniqueViolation(error)) throw new AppError('AUTH_NONCE_REPLAYED', { field: `headers.${headerNames.nonce}` })
    throw error
  }
  onContext({ ...context, proven: true })

  let actingFor: ActingFor | null = null
  if (appAuthToken !== '') {
    actingFor = resolver === null ? null : await resolver.resolve(db, app.id, appAuthToken, now)
    if (actingFor === null) {
      throw new AppError('AUTH_APP_AUTH_TOKEN_INVALID', { field: `headers.${headerNames.appAuthToken}` })
    }
    if (scope !== undefined && !actingFor.scopes.includes(scope)) {
      throw new AppError('AUTH_SCOPE_MISSING', {
        message: `This call needs the scope ${scope}, which the merchant has not granted`,
      })
    }
  }
  return {
    kind: 'app',
    appId: app.id,
    organizationId: app.organizationId,
    environment: app.environment,
    actingFor,
    tenantId: actingFor?.merchantId ?? app.organizationId,
  }
}
