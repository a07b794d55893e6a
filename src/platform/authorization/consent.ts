/**
 * What the consent page decides, apart from HTML: parsing and checking an authorisation
 * request, the merchants a user may authorise for, the CSRF token, and the redirect back to
 * the app. Nothing here redirects before the app and its redirect URI have been checked, so
 * an error never sends the browser to an address the app did not register.
 */
import crypto from 'node:crypto'
import type { Kysely } from 'kysely'
import { AppError } from '../../errors.js'
import type { AppEnvironment } from '../../storage/tables.js'
import { sha256Hex } from '../ids.js'
import { registeredRedirectUris } from './redirect-uris.js'
import { redirectUriLengthMax } from './schema.js'
import { normalizeScopes, splitScopeParameter } from './scopes.js'
import { issueCode, recordDecline } from './service.js'
import type { Db } from './tables.js'

export const stateLengthMax = 512
const appIdPattern = /^app_[0-9a-z]{20}$/

/** The parameters of `/oauth/authorize`, checked for shape only. */
export interface AuthorizeRequest {
  readonly appId: string
  readonly redirectUri: string
  readonly scopeParameter: string
  readonly state: string | null
}

/** An authorisation request whose app, redirect URI and scopes are known to be valid. */
export interface CheckedRequest extends AuthorizeRequest {
  readonly scopes: readonly string[]
  readonly app: { readonly id: string; readonly name: string; readonly environment: AppEnvironment }
  readonly isv: { readonly id: string; readonly name: string }
}

export interface MerchantChoice {
  readonly id: string
  readonly name: string
}

function single(input: Readonly<Record<string, unknown>>, name: string, required: boolean): string | null {
  const value = input[name]
  if (value === undefined || value === '') {
    if (!required) return null
    throw new AppError('AUTHZ_REQUEST_INVALID', { field: name, message: `The parameter ${name} is missing` })
  }
  if (typeof value !== 'string') {
    throw new AppError('AUTHZ_REQUEST_INVALID', { field: name, message: `The parameter ${name} must be given once` })
  }
  return value
}

/**
 * Reads the request from a query string or a form; refuses repeated or oversized parameters.
 *
 * @example
 * parseAuthorizeRequest({ app_id, redirect_uri, scope: 'stores:read', state: 'xyz' })
 */
export function parseAuthorizeRequest(input: Readonly<Record<string, unknown>>): AuthorizeRequest {
  const appId = single(input, 'app_id', true)!
  if (!appIdPattern.test(appId)) throw new AppError('APP_NOT_FOUND', { field: 'app_id' })
  const redirectUri = single(input, 'redirect_uri', true)!
  if (redirectUri.length > redirectUriLengthMax) throw new AppError('AUTHZ_REDIRECT_URI_NOT_REGISTERED')
  const scopeParameter = single(input, 'scope', true)!
  const state = single(input, 'state', false)
  if (state !== null && (state.length > stateLengthMax || /[\u0000-\u001f\u007f]/.test(state))) {
    throw new AppError('AUTHZ_REQUEST_INVALID', {
      field: 'state',
      message: `state must be at most ${stateLengthMax} printable characters`,
    })
  }
  return { appId, redirectUri, scopeParameter, state }
}

/**
 * Checks, in this order, that the app exists, that the redirect URI is one it registered,
 * and that every scope is declared by a capability.
 *
 * @example
 * const checked = await checkAuthorizeRequest(db, parseAuthorizeRequest(query), registry.scopes)
 */
export async function checkAuthorizeRequest(
  db: Kysely<any>,
  request: AuthorizeRequest,
  knownScopes: ReadonlyMap<string, string>,
): Promise<CheckedRequest> {
  const row = await (db as Db)
    .selectFrom('apps')
    .innerJoin('organizations', 'organizations.id', 'apps.organization_id')
    .select(['apps.id', 'apps.name', 'apps.environment'])
    .select(['organizations.id as isv_id', 'organizations.name as isv_name'])
    .where('apps.id', '=', request.appId)
    .executeTakeFirst()
  if (row === undefined) throw new AppError('APP_NOT_FOUND', { field: 'app_id' })
  if (!(await registeredRedirectUris(db, row.id)).includes(request.redirectUri)) {
    throw new AppError('AUTHZ_REDIRECT_URI_NOT_REGISTERED', { field: 'redirect_uri' })
  }
  const scopes = normalizeScopes(splitScopeParameter(request.scopeParameter), knownScopes)
  return {
    ...request,
    scopes,
    app: { id: row.id, name: row.name, environment: row.environment },
    isv: { id: row.isv_id, name: row.isv_name },
  }
}

/**
 * The merchant organisations in which the user is owner or admin: those it may authorise for.
 *
 * @example
 * const merchants = await authorizableMerchants(db, userId)
 */
export async function authorizableMerchants(db: Kysely<any>, userId: string): Promise<MerchantChoice[]> {
  return (db as Db)
    .selectFrom('memberships')
    .innerJoin('organizations', 'organizations.id', 'memberships.organization_id')
    .select(['organizations.id', 'organizations.name'])
    .where('memberships.user_id', '=', userId)
    .where('memberships.role', 'in', ['owner', 'admin'])
    .where('organizations.kind', '=', 'merchant')
    .orderBy('organizations.name')
    .orderBy('organizations.id')
    .limit(200)
    .execute()
}

/**
 * The CSRF token of the consent form, bound to the session: a keyed hash of the session
 * token, so it needs no storage, cannot be computed without the session cookie, and differs
 * from the `sessions.token_hash` column so that reading the database does not yield it.
 *
 * @example
 * const token = csrfToken(sessionToken)
 */
export function csrfToken(sessionToken: string): string {
  return sha256Hex(`baseplate-consent-csrf\n${sessionToken}`)
}

/**
 * Compares in constant time, so the response time says nothing about the expected token.
 *
 * @example
 * if (!csrfTokenMatches(sessionToken, form.csrf_token)) throw new AppError('AUTHZ_CSRF_TOKEN_INVALID')
 */
export function csrfTokenMatches(sessionToken: string, presented: string | null): boolean {
  const expected = Buffer.from(csrfToken(sessionToken))
  const given = Buffer.from(presented ?? '')
  return given.length === expected.length && crypto.timingSafeEqual(given, expected)
}

/**
 * The address the browser returns to: the registered redirect URI with the answer added to
 * its query (any query it already has is kept).
 *
 * @example
 * redirectLocation('https://isv.example.com/cb', { app_id, app_auth_code, state })
 */
export function redirectLocation(redirectUri: string, parameters: Readonly<Record<string, string | null>>): string {
  const url = new URL(redirectUri)
  for (const [name, value] of Object.entries(parameters)) if (value !== null) url.searchParams.set(name, value)
  return url.toString()
}

export type Decision =
  | { readonly kind: 'approve'; readonly merchantId: string }
  | { readonly kind: 'decline'; readonly merchantId: string | null }

/**
 * Acts on the user's decision and returns where to send the browser. Approving needs the
 * user to be owner or admin of the chosen merchant at this moment, not when the page loaded.
 *
 * @example
 * const location = await decide(tx, userId, checked, { kind: 'approve', merchantId }, now)
 */
export async function decide(
  db: Kysely<any>,
  userId: string,
  request: CheckedRequest,
  decision: Decision,
  now: number,
): Promise<string> {
  const merchants = await authorizableMerchants(db, userId)
  if (decision.kind === 'decline') {
    const merchantId = merchants.some((merchant) => merchant.id === decision.merchantId) ? decision.merchantId : null
    await recordDecline(
      db,
      { userId, appId: request.app.id, merchantId, scopes: request.scopes, redirectUri: request.redirectUri },
      now,
    )
    return redirectLocation(request.redirectUri, { error: 'access_denied', state: request.state })
  }
  if (!merchants.some((merchant) => merchant.id === decision.merchantId)) {
    throw new AppError('AUTHZ_MERCHANT_ROLE_REQUIRED', { field: 'merchant_id' })
  }
  const code = await issueCode(
    db,
    {
      userId,
      appId: request.app.id,
      merchantId: decision.merchantId,
      scopes: request.scopes,
      redirectUri: request.redirectUri,
    },
    now,
  )
  return redirectLocation(request.redirectUri, { app_id: request.app.id, app_auth_code: code, state: request.state })
}
