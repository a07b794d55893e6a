/**
 * The redirect URIs an app registers. The consent page only ever redirects to one of them,
 * compared as exact strings (no prefix or pattern matching, the cause of many OAuth token
 * leaks). Plain http is allowed only on loopback, for development.
 */
import type { Kysely } from 'kysely'
import { AppError } from '../../errors.js'
import type { UserPrincipal } from '../../server/route-kit.js'
import { appendAudit } from '../audit/audit-log.js'
import { getApp } from '../apps/service.js'
import { requireMember, roles } from '../identity/service.js'
import { redirectUriLengthMax, redirectUrisMax } from './schema.js'
import type { Db } from './tables.js'

const loopbackHosts: readonly string[] = ['127.0.0.1', 'localhost', '[::1]']

/**
 * Why a redirect URI is refused, or null when it is acceptable.
 *
 * @example
 * redirectUriProblem('https://isv.example.com/callback') // null
 * redirectUriProblem('http://isv.example.com/callback')  // 'http is allowed only on …'
 */
export function redirectUriProblem(raw: string): string | null {
  if (raw.length === 0 || raw.length > redirectUriLengthMax) return `must be 1-${redirectUriLengthMax} characters`
  // URL() would silently strip tabs and line breaks; refuse them so what is stored is what matches.
  if (/[\s\u0000-\u001f\u007f]/.test(raw)) return 'must not contain whitespace or control characters'
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return 'is not an absolute URL'
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must use https'
  if (url.protocol === 'http:' && !loopbackHosts.includes(url.hostname)) {
    return 'http is allowed only on 127.0.0.1, [::1] or localhost; use https'
  }
  if (url.username !== '' || url.password !== '') return 'must not carry a user name or password'
  // The platform appends the code to the query; a fragment would hide it from the server.
  if (raw.includes('#')) return 'must not have a fragment (#)'
  return null
}

async function checkedApp(db: Kysely<any>, principal: UserPrincipal, organizationId: string, appId: string) {
  await requireMember(db, principal, organizationId, roles.developer)
  return getApp(db, principal, organizationId, appId)
}

/**
 * Replaces the app's redirect URIs (developer, admin or owner of the app's organisation).
 *
 * @example
 * await setRedirectUris(tx, principal, orgId, appId, ['https://isv.example.com/callback'], now)
 */
export async function setRedirectUris(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  appId: string,
  uris: readonly string[],
  now: number,
): Promise<string[]> {
  await checkedApp(db, principal, organizationId, appId)
  if (uris.length > redirectUrisMax) {
    throw new AppError('AUTHZ_REDIRECT_URI_INVALID', {
      field: 'body.redirect_uris',
      message: `At most ${redirectUrisMax} redirect URIs`,
    })
  }
  uris.forEach((uri, index) => {
    const problem = redirectUriProblem(uri)
    if (problem !== null) {
      throw new AppError('AUTHZ_REDIRECT_URI_INVALID', {
        field: `body.redirect_uris.${index}`,
        message: `redirect_uris[${index}] ${problem}`,
      })
    }
    if (uris.indexOf(uri) !== index) {
      throw new AppError('AUTHZ_REDIRECT_URI_INVALID', {
        field: `body.redirect_uris.${index}`,
        message: `redirect_uris[${index}] repeats an earlier entry`,
      })
    }
  })
  await (db as Db).deleteFrom('app_redirect_uris').where('app_id', '=', appId).execute()
  if (uris.length > 0) {
    await (db as Db)
      .insertInto('app_redirect_uris')
      .values(
        uris.map((uri, position) => ({
          app_id: appId,
          redirect_uri: uri,
          position,
          created_at: now,
        })),
      )
      .execute()
  }
  await appendAudit(
    db,
    { actor: principal.userId, action: 'app.redirect_uris_set', target: appId, data: { redirect_uris: [...uris] } },
    now,
  )
  return [...uris]
}

/**
 * The app's redirect URIs, in the order they were given (any member of the organisation).
 *
 * @example
 * const uris = await listRedirectUris(db, principal, orgId, appId)
 */
export async function listRedirectUris(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  appId: string,
): Promise<string[]> {
  await getApp(db, principal, organizationId, appId)
  return registeredRedirectUris(db, appId)
}

/**
 * What the consent page checks against.
 *
 * @example
 * const ok = (await registeredRedirectUris(db, appId)).includes(redirectUri)
 */
export async function registeredRedirectUris(db: Kysely<any>, appId: string): Promise<string[]> {
  const rows = await (db as Db)
    .selectFrom('app_redirect_uris')
    .select('redirect_uri')
    .where('app_id', '=', appId)
    .orderBy('position')
    .execute()
  return rows.map((row) => row.redirect_uri)
}
