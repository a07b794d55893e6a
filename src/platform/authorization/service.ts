/**
 * Merchant authorisation of ISV apps, the way Alipay's app-to-app authorisation works: the
 * merchant approves on the consent page, the app receives a single-use code and exchanges
 * it, with a signed call, for an app auth token and a refresh token. Codes and tokens are
 * 256-bit random secrets shown once; only their SHA-256 is stored, so a database leak
 * yields nothing usable. One authorisation per app and merchant is live at a time.
 *
 * Every grant, exchange, refresh and revocation is audited and emits an outbox event in the
 * same transaction as the change.
 */
import type { Kysely } from 'kysely'
import { AppError } from '../../errors.js'
import type { AppAuthTokenResolver } from '../../server/authenticate.js'
import type { AppPrincipal, UserPrincipal } from '../../server/route-kit.js'
import { isoTime, toPage } from '../../server/schemas.js'
import { isUniqueViolation } from '../../storage/database.js'
import { prepared } from '../../storage/prepared.js'
import { appendAudit } from '../audit/audit-log.js'
import { getApp } from '../apps/service.js'
import { requireMember, roles } from '../identity/service.js'
import { newId, newSecret, sha256Hex } from '../ids.js'
import { authorizationEventPublisher, type AuthorizationEventType } from './events.js'
import type { AuthorizationListQueryInput, AuthorizationView, TokenGrantView } from './schema.js'
import { normalizeScopes, parseStoredScopes } from './scopes.js'
import type { AuthorizationsTable, Db, RevokeReason } from './tables.js'
import { deleteExpired } from '../../storage/expiry.js'

/** Codes live ten minutes, as OAuth recommends: long enough to exchange, too short to farm. */
export const codeTtlS = 10 * 60
/** The token a call carries; the app refreshes it well before it ends. */
export const appAuthTokenTtlS = 30 * 24 * 3600
/** Refreshing slides this window, so an app in regular use never has to ask the merchant again. */
export const refreshTokenTtlS = 365 * 24 * 3600

/** Prefixes make a leaked secret recognisable to scanners and to people. */
export const secretPrefixes = { code: 'bpac', token: 'bpat', refresh: 'bprt' } as const

interface GrantInput {
  readonly appId: string
  readonly merchantId: string
  readonly scopes: readonly string[]
  readonly actor: string
  readonly sourceCodeHash: string | null
}

async function appOwner(db: Kysely<any>, appId: string): Promise<string> {
  const app = await (db as Db)
    .selectFrom('apps')
    .select('organization_id')
    .where('id', '=', appId)
    .executeTakeFirstOrThrow()
  return app.organization_id
}

async function emit(
  db: Kysely<any>,
  type: AuthorizationEventType,
  row: AuthorizationsTable,
  actor: string,
  now: number,
): Promise<void> {
  await authorizationEventPublisher.emit(
    db,
    {
      // The merchant is the tenant; the app is who is told (its webhooks), as the outbox routes by app_id.
      type,
      organizationId: row.merchant_id,
      appId: row.app_id,
      payload: {
        id: row.id,
        app_id: row.app_id,
        isv_organization_id: await appOwner(db, row.app_id),
        merchant_id: row.merchant_id,
        scopes: parseStoredScopes(row.scopes),
        status: row.status,
        actor,
        at: isoTime(now),
        revoke_reason: row.revoke_reason,
      },
    },
    now,
  )
}

function freshTokens(now: number) {
  const token = newSecret(secretPrefixes.token)
  const refresh = newSecret(secretPrefixes.refresh)
  return {
    token,
    refresh,
    columns: {
      token_hash: sha256Hex(token),
      token_expires_at: now + appAuthTokenTtlS * 1000,
      refresh_hash: sha256Hex(refresh),
      refresh_expires_at: now + refreshTokenTtlS * 1000,
    },
  }
}

function grantView(row: AuthorizationsTable, token: string, refresh: string): TokenGrantView {
  return {
    authorization_id: row.id,
    merchant_id: row.merchant_id,
    scopes: parseStoredScopes(row.scopes),
    app_auth_token: token,
    app_refresh_token: refresh,
    token_expires_at: isoTime(row.token_expires_at!),
    refresh_expires_at: isoTime(row.refresh_expires_at!),
  }
}

/**
 * Makes the (app, merchant) authorisation live with these scopes and fresh tokens. A live
 * one is replaced in place (same id, new scopes, its old tokens stop working); otherwise a
 * new one starts. Runs inside the caller's transaction.
 */
async function grantInTransaction(db: Kysely<any>, input: GrantInput, now: number): Promise<TokenGrantView> {
  const { token, refresh, columns } = freshTokens(now)
  const scopes = JSON.stringify([...input.scopes].sort())
  const live = await (db as Db)
    .selectFrom('authorizations')
    .selectAll()
    .where('app_id', '=', input.appId)
    .where('merchant_id', '=', input.merchantId)
    .where('status', '=', 'active')
    .executeTakeFirst()
  const changes = {
    ...columns,
    scopes,
    source_code_hash: input.sourceCodeHash,
    granted_by: input.actor,
    updated_at: now,
  }
  let row: AuthorizationsTable | undefined
  if (live !== undefined) {
    const updated = await (db as Db)
      .updateTable('authorizations')
      .set(changes)
      .where('id', '=', live.id)
      .where('status', '=', 'active')
      .executeTakeFirst()
    // Revoked in between: start a new authorisation rather than revive a revoked one.
    if (updated.numUpdatedRows === 1n) row = { ...live, ...changes }
  }
  if (row === undefined) {
    row = {
      id: newId('authz'),
      app_id: input.appId,
      merchant_id: input.merchantId,
      status: 'active',
      created_at: now,
      revoked_at: null,
      revoked_by: null,
      revoke_reason: null,
      ...changes,
    }
    try {
      await (db as Db).insertInto('authorizations').values(row).execute()
    } catch (error) {
      // The partial unique index saw a concurrent grant for the same app and merchant.
      if (isUniqueViolation(error)) throw new AppError('AUTHZ_GRANT_CONFLICT')
      throw error
    }
  }
  await appendAudit(
    db,
    {
      actor: input.actor,
      action: 'authorization.granted',
      target: row.id,
      data: {
        app_id: row.app_id,
        merchant_id: row.merchant_id,
        scopes: parseStoredScopes(scopes),
        replaced_scopes: live === undefined ? null : parseStoredScopes(live.scopes),
        source: input.sourceCodeHash === null ? 'direct' : 'code',
      },
    },
    now,
  )
  await emit(db, 'authorization.granted', row, input.actor, now)
  return grantView(row, token, refresh)
}

async function revokeRow(
  db: Kysely<any>,
  row: AuthorizationsTable,
  actor: string,
  reason: RevokeReason,
  now: number,
): Promise<boolean> {
  const changes = {
    status: 'revoked' as const,
    token_hash: null,
    refresh_hash: null,
    revoked_at: now,
    revoked_by: actor,
    revoke_reason: reason,
    updated_at: now,
  }
  const updated = await (db as Db)
    .updateTable('authorizations')
    .set(changes)
    .where('id', '=', row.id)
    .where('status', '=', 'active')
    .executeTakeFirst()
  if (updated.numUpdatedRows === 0n) return false
  await appendAudit(
    db,
    {
      actor,
      action: 'authorization.revoked',
      target: row.id,
      data: { app_id: row.app_id, merchant_id: row.merchant_id, reason },
    },
    now,
  )
  await emit(db, 'authorization.revoked', { ...row, ...changes }, actor, now)
  return true
}

export interface DirectGrant {
  readonly appId: string
  readonly merchantId: string
  readonly scopes: readonly string[]
  /** Who is recorded in the audit log; defaults to `platform`. */
  readonly actor?: string
  /** When given (e.g. `registry.scopes`), every scope must be one of these. */
  readonly knownScopes?: ReadonlyMap<string, string>
}

/**
 * Authorises a sandbox app for a merchant without the consent page, as approval and code
 * exchange together would: for the sandbox command and demos. Live apps always need the
 * merchant's consent. Takes the root database or a transaction; audited and evented.
 *
 * @example
 * const grant = await grantAuthorization(storage.db,
 *   { appId, merchantId, scopes: ['payment:trade'], actor: 'cli' }, Date.now())
 * grant.app_auth_token // 'bpat_…', shown once
 */
export async function grantAuthorization(db: Kysely<any>, input: DirectGrant, now: number): Promise<TokenGrantView> {
  const run = async (tx: Kysely<any>): Promise<TokenGrantView> => {
    const app = await (tx as Db)
      .selectFrom('apps')
      .select(['id', 'environment'])
      .where('id', '=', input.appId)
      .executeTakeFirst()
    if (app === undefined) throw new AppError('APP_NOT_FOUND', { field: 'app_id' })
    if (app.environment !== 'sandbox') throw new AppError('AUTHZ_CONSENT_REQUIRED', { field: 'app_id' })
    const merchant = await (tx as Db)
      .selectFrom('organizations')
      .select('id')
      .where('id', '=', input.merchantId)
      .where('kind', '=', 'merchant')
      .executeTakeFirst()
    if (merchant === undefined) throw new AppError('IDENTITY_ORGANIZATION_NOT_FOUND', { field: 'merchant_id' })
    const scopes = normalizeScopes(input.scopes, input.knownScopes, 'scopes')
    return grantInTransaction(
      tx,
      { appId: app.id, merchantId: merchant.id, scopes, actor: input.actor ?? 'platform', sourceCodeHash: null },
      now,
    )
  }
  return db.isTransaction ? run(db) : db.transaction().execute(run)
}

export interface Approval {
  readonly userId: string
  readonly appId: string
  readonly merchantId: string
  readonly scopes: readonly string[]
  readonly redirectUri: string
}

/**
 * Records the merchant's consent and returns the code, in clear, to put in the redirect.
 * The caller has checked the app, redirect URI, scopes and the user's role.
 *
 * @example
 * const code = await issueCode(tx, { userId, appId, merchantId, scopes, redirectUri }, now)
 */
export async function issueCode(db: Kysely<any>, approval: Approval, now: number): Promise<string> {
  const code = newSecret(secretPrefixes.code)
  const expiresAt = now + codeTtlS * 1000
  const scopes = [...approval.scopes].sort()
  await (db as Db)
    .insertInto('authorization_codes')
    .values({
      code_hash: sha256Hex(code),
      app_id: approval.appId,
      merchant_id: approval.merchantId,
      scopes: JSON.stringify(scopes),
      redirect_uri: approval.redirectUri,
      approved_by: approval.userId,
      created_at: now,
      expires_at: expiresAt,
      used_at: null,
      authorization_id: null,
    })
    .execute()
  await appendAudit(
    db,
    {
      actor: approval.userId,
      action: 'authorization.approved',
      target: approval.appId,
      data: { merchant_id: approval.merchantId, scopes, redirect_uri: approval.redirectUri },
    },
    now,
  )
  await authorizationEventPublisher.emit(
    db,
    {
      type: 'authorization.approved',
      organizationId: approval.merchantId,
      appId: approval.appId,
      payload: {
        app_id: approval.appId,
        isv_organization_id: await appOwner(db, approval.appId),
        merchant_id: approval.merchantId,
        scopes,
        approved_by: approval.userId,
        at: isoTime(now),
        code_expires_at: isoTime(expiresAt),
      },
    },
    now,
  )
  return code
}

/**
 * Records that a merchant user declined; nothing else changes.
 *
 * @example
 * await recordDecline(tx, { userId, appId, merchantId: null, scopes, redirectUri }, now)
 */
export async function recordDecline(
  db: Kysely<any>,
  approval: Omit<Approval, 'merchantId'> & {
    readonly merchantId: string | null
  },
  now: number,
): Promise<void> {
  await appendAudit(
    db,
    {
      actor: approval.userId,
      action: 'authorization.declined',
      target: approval.appId,
      data: { merchant_id: approval.merchantId, scopes: [...approval.scopes].sort() },
    },
    now,
  )
}

type ExchangeOutcome = { kind: 'granted'; grant: TokenGrantView } | { kind: 'refused'; message: string }

/**
 * Exchanges a code for tokens, once, for the app it was issued to. A second use is refused
 * and, as OAuth recommends, revokes what the first use issued (a replayed code means it
 * leaked). Takes the root database: that revocation must commit although the call fails.
 *
 * @example
 * const grant = await exchangeCode(storage.db, principal, body.code, now)
 */
export async function exchangeCode(
  db: Kysely<any>,
  principal: AppPrincipal,
  code: string,
  now: number,
): Promise<TokenGrantView> {
  const codeHash = sha256Hex(code)
  const outcome = await db.transaction().execute(async (tx): Promise<ExchangeOutcome> => {
    const find = () =>
      (tx as Db).selectFrom('authorization_codes').selectAll().where('code_hash', '=', codeHash).executeTakeFirst()
    const row = await find()
    // Another app's code is refused like an unknown one: it says nothing about the code.
    if (row === undefined || row.app_id !== principal.appId) return { kind: 'refused', message: 'Unknown code' }
    if (row.used_at !== null) return revokeReplayed(tx, principal, codeHash, row.authorization_id, now)
    if (row.expires_at <= now) return { kind: 'refused', message: 'The code has expired; ask the merchant again' }
    const claimed = await (tx as Db)
      .updateTable('authorization_codes')
      .set({ used_at: now })
      .where('code_hash', '=', codeHash)
      .where('used_at', 'is', null)
      .executeTakeFirst()
    if (claimed.numUpdatedRows === 0n) {
      // A concurrent exchange won; read what it issued, now committed, and treat this as a replay.
      return revokeReplayed(tx, principal, codeHash, (await find())?.authorization_id ?? null, now)
    }
    const grant = await grantInTransaction(
      tx,
      {
        appId: row.app_id,
        merchantId: row.merchant_id,
        scopes: parseStoredScopes(row.scopes),
        actor: principal.appId,
        sourceCodeHash: codeHash,
      },
      now,
    )
    await (tx as Db)
      .updateTable('authorization_codes')
      .set({ authorization_id: grant.authorization_id })
      .where('code_hash', '=', codeHash)
      .execute()
    return { kind: 'granted', grant }
  })
  if (outcome.kind === 'refused') {
    throw new AppError('AUTHZ_CODE_INVALID', { field: 'body.code', message: outcome.message })
  }
  return outcome.grant
}

async function revokeReplayed(
  db: Kysely<any>,
  principal: AppPrincipal,
  codeHash: string,
  authorizationId: string | null,
  now: number,
): Promise<ExchangeOutcome> {
  const message = 'The code was used already; the authorisation it issued is revoked'
  if (authorizationId === null) return { kind: 'refused', message }
  // Only if its tokens still descend from this code: a later re-authorisation is not touched.
  const row = await (db as Db)
    .selectFrom('authorizations')
    .selectAll()
    .where('id', '=', authorizationId)
    .where('source_code_hash', '=', codeHash)
    .where('status', '=', 'active')
    .executeTakeFirst()
  if (row !== undefined) await revokeRow(db, row, principal.appId, 'code_reused', now)
  return { kind: 'refused', message }
}

/**
 * Rotates both tokens: the old token and refresh token stop working at once.
 *
 * @example
 * const grant = await refreshTokens(storage.db, principal, body.refresh_token, now)
 */
export async function refreshTokens(
  db: Kysely<any>,
  principal: AppPrincipal,
  refreshToken: string,
  now: number,
): Promise<TokenGrantView> {
  const refreshHash = sha256Hex(refreshToken)
  const refused = () => new AppError('AUTHZ_REFRESH_TOKEN_INVALID', { field: 'body.refresh_token' })
  return db.transaction().execute(async (tx) => {
    const row = await (tx as Db)
      .selectFrom('authorizations')
      .selectAll()
      .where('refresh_hash', '=', refreshHash)
      .where('app_id', '=', principal.appId)
      .where('status', '=', 'active')
      .executeTakeFirst()
    if (row === undefined || row.refresh_expires_at === null || row.refresh_expires_at <= now) throw refused()
    const { token, refresh, columns } = freshTokens(now)
    // Compare-and-set on the old hash: of two concurrent refreshes, exactly one wins.
    const updated = await (tx as Db)
      .updateTable('authorizations')
      .set({ ...columns, updated_at: now })
      .where('id', '=', row.id)
      .where('refresh_hash', '=', refreshHash)
      .where('status', '=', 'active')
      .executeTakeFirst()
    if (updated.numUpdatedRows === 0n) throw refused()
    const next = { ...row, ...columns, updated_at: now }
    await appendAudit(
      tx,
      {
        actor: principal.appId,
        action: 'authorization.refreshed',
        target: row.id,
        data: { app_id: row.app_id, merchant_id: row.merchant_id },
      },
      now,
    )
    await emit(tx, 'authorization.refreshed', next, principal.appId, now)
    return grantView(next, token, refresh)
  })
}

/**
 * The merchant ends an authorisation (owner or admin of the merchant). Its tokens stop
 * working at once; revoking a revoked authorisation changes nothing.
 *
 * @example
 * const view = await revokeAuthorization(tx, principal, merchantId, authorizationId, now)
 */
export async function revokeAuthorization(
  db: Kysely<any>,
  principal: UserPrincipal,
  merchantId: string,
  authorizationId: string,
  now: number,
): Promise<AuthorizationView> {
  await requireMember(db, principal, merchantId, roles.write)
  // Scoped by the merchant: another merchant's authorisation is simply not found.
  const row = await (db as Db)
    .selectFrom('authorizations')
    .selectAll()
    .where('id', '=', authorizationId)
    .where('merchant_id', '=', merchantId)
    .executeTakeFirst()
  if (row === undefined) throw new AppError('AUTHZ_NOT_FOUND', { field: 'authorization_id' })
  if (row.status === 'active') await revokeRow(db, row, principal.userId, 'merchant', now)
  const [view] = await loadViews(db, (query) => query.where('authorizations.id', '=', authorizationId), 1)
  return withoutTokenTime(view!)
}

type ViewQuery = ReturnType<typeof viewQuery>

function viewQuery(db: Kysely<any>) {
  return (db as Db)
    .selectFrom('authorizations')
    .innerJoin('apps', 'apps.id', 'authorizations.app_id')
    .innerJoin('organizations as isv', 'isv.id', 'apps.organization_id')
    .innerJoin('organizations as merchant', 'merchant.id', 'authorizations.merchant_id')
    .selectAll('authorizations')
    .select(['apps.name as app_name', 'isv.id as isv_id', 'isv.name as isv_name', 'merchant.name as merchant_name'])
}

async function loadViews(db: Kysely<any>, where: (query: ViewQuery) => ViewQuery, limit: number) {
  const rows = await where(viewQuery(db)).orderBy('authorizations.id').limit(limit).execute()
  return rows.map((row): AuthorizationView & { token_expires_at: number | null } => ({
    id: row.id,
    app_id: row.app_id,
    app_name: row.app_name,
    isv_organization_id: row.isv_id,
    isv_organization_name: row.isv_name,
    merchant_id: row.merchant_id,
    merchant_name: row.merchant_name,
    scopes: parseStoredScopes(row.scopes),
    status: row.status,
    granted_by: row.granted_by,
    created_at: isoTime(row.created_at),
    updated_at: isoTime(row.updated_at),
    revoked_at: row.revoked_at === null ? null : isoTime(row.revoked_at),
    revoke_reason: row.revoke_reason,
    token_expires_at: row.token_expires_at,
  }))
}

function pageFilter(query: AuthorizationListQueryInput) {
  return (select: ViewQuery): ViewQuery => {
    let next = select
    if (query.status !== undefined) next = next.where('authorizations.status', '=', query.status)
    if (query.starting_after !== undefined) next = next.where('authorizations.id', '>', query.starting_after)
    return next
  }
}

function withoutTokenTime({ token_expires_at: _, ...view }: AuthorizationView & { token_expires_at: unknown }) {
  return view
}

/**
 * The apps a merchant has authorised, with app and ISV names (owner or admin of the merchant).
 *
 * @example
 * const page = await listMerchantAuthorizations(db, principal, merchantId, { status: 'active' })
 */
export async function listMerchantAuthorizations(
  db: Kysely<any>,
  principal: UserPrincipal,
  merchantId: string,
  query: AuthorizationListQueryInput,
) {
  await requireMember(db, principal, merchantId, roles.write)
  const limit = query.limit ?? 20
  const filter = pageFilter(query)
  const rows = await loadViews(
    db,
    (select) => filter(select.where('authorizations.merchant_id', '=', merchantId)),
    limit + 1,
  )
  return toPage(rows, limit, withoutTokenTime)
}

/**
 * The merchants that authorised an app (developer, admin or owner of the app's organisation).
 *
 * @example
 * const page = await listAppAuthorizations(db, principal, organizationId, appId, {})
 */
export async function listAppAuthorizations(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  appId: string,
  query: AuthorizationListQueryInput,
) {
  await requireMember(db, principal, organizationId, roles.developer)
  await getApp(db, principal, organizationId, appId)
  const limit = query.limit ?? 20
  const filter = pageFilter(query)
  const rows = await loadViews(db, (select) => filter(select.where('authorizations.app_id', '=', appId)), limit + 1)
  return toPage(rows, limit, withoutTokenTime)
}

/**
 * The authorisation behind the app auth token of this call (like
 * `alipay.open.auth.token.app.query`).
 *
 * @example
 * const current = await currentAuthorization(db, principal)
 */
export async function currentAuthorization(db: Kysely<any>, principal: AppPrincipal) {
  if (principal.actingFor === null) {
    throw new AppError('AUTH_APP_AUTH_TOKEN_INVALID', {
      field: 'headers.baseplate-app-auth-token',
      message: 'Send the app auth token to query in the Baseplate-App-Auth-Token header',
    })
  }
  const authorizationId = principal.actingFor.authorizationId
  const [view] = await loadViews(db, (query) => query.where('authorizations.id', '=', authorizationId), 1)
  if (view === undefined || view.token_expires_at === null) throw new AppError('AUTH_APP_AUTH_TOKEN_INVALID')
  return { ...view, token_expires_at: isoTime(view.token_expires_at) }
}

/** Used and expired codes are kept this long, so a replay is still recognised (and revokes). */
export const codeRetentionS = 24 * 3600

/**
 * Deletes codes that expired more than {@link codeRetentionS} ago; for the housekeeping timer.
 * A replay after that is refused as an unknown code, without revoking anything.
 *
 * @example
 * await purgeAuthorizationCodes(storage.db, Date.now())
 */
export async function purgeAuthorizationCodes(db: Kysely<any>, now: number): Promise<number> {
  return deleteExpired(db, 'authorization_codes', now - codeRetentionS * 1000)
}

/**
 * Resolves an app auth token for `authenticateApp`: the live, unexpired authorisation of
 * this very app, or null. It reads the database on every call and caches nothing, so a
 * revocation takes effect on the next request.
 *
 * @example
 * await openPlatform(config, { appAuthTokenResolver: authorizationTokenResolver })
 */
const liveAuthorizationByToken = prepared((db: Db, p: { tokenHash: string; appId: string }) =>
  db
    .selectFrom('authorizations')
    .select(['id', 'merchant_id', 'scopes', 'token_expires_at'])
    .where('token_hash', '=', p.tokenHash)
    .where('app_id', '=', p.appId)
    .where('status', '=', 'active'),
)

export const authorizationTokenResolver: AppAuthTokenResolver = Object.freeze({
  async resolve(db: Kysely<any>, appId: string, token: string, now: number) {
    if (!token.startsWith(`${secretPrefixes.token}_`)) return null
    const row = await liveAuthorizationByToken.first(db, { tokenHash: sha256Hex(token), appId })
    if (row === undefined || row.token_expires_at === null || row.token_expires_at <= now) return null
    const scopes = Object.freeze(parseStoredScopes(row.scopes))
    return { merchantId: row.merchant_id, authorizationId: row.id, scopes }
  },
})
