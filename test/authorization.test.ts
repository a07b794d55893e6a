/**
 * Merchant authorisation of ISV apps, end to end through HTTP: the consent pages, the signed
 * token endpoint, scoped calls with the app auth token, refresh, revocation, and the consoles
 * of both sides. Runs on SQLite and PostgreSQL with a hand-moved clock.
 */
import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import { beforeAll, describe, expect, it } from 'vitest'
import stores from '../src/capabilities/stores/index.js'
import { sha256Hex } from '../src/platform/ids.js'
import { grantAuthorization, purgeAuthorizationCodes } from '../src/platform/authorization/index.js'
import { escapeHtml } from '../src/server/html.js'
import {
  createAppWithKey,
  json,
  rsaKeyPair,
  session,
  signed,
  signUp,
  testPassword,
  type Tenant,
  type TestApp,
  type Injected,
} from './fixtures.js'
import { forEachDialect, manualClock, useTestPlatform } from './harness.js'

const callback = 'https://isv.example.com/oauth/callback?from=baseplate'
const loopback = 'http://127.0.0.1:8765/cb'

function hidden(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html)
  expect(match, `hidden field ${name}`).not.toBeNull()
  return match![1]!
    .replace(/&amp;/g, '&')
    .replace(/&#39;/g, "'")
    .replace(/&quot;/g, '"')
}

function cookie(response: Injected, name: string): string {
  const found = response.cookies.find((entry) => entry.name === name)
  expect(found, `cookie ${name}`).toBeDefined()
  return found!.value
}

function form(fields: Record<string, string | undefined>): string {
  const params = new URLSearchParams()
  for (const [name, value] of Object.entries(fields)) if (value !== undefined) params.append(name, value)
  return params.toString()
}

interface Consent {
  readonly appId: string
  readonly redirectUri?: string
  readonly scope?: string
  readonly state?: string
}

function authorizeQuery(consent: Consent): Record<string, string> {
  return {
    app_id: consent.appId,
    redirect_uri: consent.redirectUri ?? callback,
    scope: consent.scope ?? 'stores:read',
    ...(consent.state === undefined ? {} : { state: consent.state }),
  }
}

forEachDialect('merchant authorisation', (dialect) => {
  const clock = manualClock()
  // Only the stores capability: the flow needs its scopes, and nothing of modules in progress.
  const bp = useTestPlatform(dialect, { clock, capabilities: [stores] })
  const db = () => bp().storage.db as Kysely<any>
  let isv: Tenant
  let merchant: Tenant
  let otherMerchant: Tenant
  let testApp: TestApp
  let otherApp: TestApp

  const call = (testApp: TestApp, request: Parameters<typeof signed>[2]) =>
    signed(bp().app, testApp, request, clock.now())
  const exchange = (testApp: TestApp, code: string) =>
    call(testApp, { method: 'POST', url: '/v1/oauth/token', body: { grant_type: 'authorization_code', code } })
  const refresh = (testApp: TestApp, token: string) =>
    call(testApp, {
      method: 'POST',
      url: '/v1/oauth/token',
      body: { grant_type: 'refresh_token', refresh_token: token },
    })
  const listStores = (testApp: TestApp, appAuthToken: string) =>
    call(testApp, { method: 'GET', url: '/v1/stores', appAuthToken })

  const consentPage = (sessionToken: string | null, query: Record<string, string>) =>
    bp().app.inject({
      method: 'GET',
      url: '/oauth/authorize',
      query,
      ...(sessionToken === null ? {} : { cookies: { bp_session: sessionToken } }),
    })
  const decide = (sessionToken: string, fields: Record<string, string | undefined>) =>
    bp().app.inject({
      method: 'POST',
      url: '/oauth/authorize',
      cookies: { bp_session: sessionToken },
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: form(fields),
    })

  /** Opens the consent page as the tenant and approves; returns the redirect's parameters. */
  async function approve(tenant: Tenant, consent: Consent, merchantId = tenant.organizationId) {
    const page = await consentPage(tenant.token, authorizeQuery(consent))
    expect(page.statusCode, page.body).toBe(200)
    const response = await decide(tenant.token, {
      ...authorizeQuery(consent),
      csrf_token: hidden(page.body, 'csrf_token'),
      merchant_id: merchantId,
      decision: 'approve',
    })
    expect(response.statusCode, response.body).toBe(302)
    return new URL(String(response.headers.location)).searchParams
  }

  async function authorized(testApp: TestApp, tenant: Tenant, consent: Partial<Consent> = {}) {
    const code = (await approve(tenant, { appId: testApp.appId, ...consent })).get('app_auth_code')!
    const response = await exchange(testApp, code)
    expect(response.statusCode, response.body).toBe(200)
    // Tokens in clear: no cache (RFC 6749 §5.1) may keep the answer.
    expect(response.headers['cache-control']).toBe('no-store')
    return json(response)
  }

  /** Console sessions last hours; after the clock jumps weeks ahead, everyone logs in again. */
  async function logInAgain(): Promise<void> {
    const fresh = async (tenant: Tenant): Promise<Tenant> => {
      const response = await bp().app.inject({
        method: 'POST',
        url: '/v1/sessions',
        payload: { email: tenant.email, password: testPassword },
      })
      expect(response.statusCode, response.body).toBe(201)
      return { ...tenant, token: json(response).token }
    }
    ;[isv, merchant, otherMerchant] = await Promise.all([fresh(isv), fresh(merchant), fresh(otherMerchant)])
  }

  beforeAll(async () => {
    const app = bp().app
    isv = await signUp(app, 'isv')
    merchant = await signUp(app, 'merchant', 'retail')
    otherMerchant = await signUp(app, 'merchant', 'retail')
    testApp = await createAppWithKey(app, isv, rsaKeyPair(0))
    otherApp = await createAppWithKey(app, isv, rsaKeyPair(1))
    for (const target of [testApp, otherApp]) {
      const url = `/v1/organizations/${isv.organizationId}/apps/${target.appId}/redirect-uris`
      const set = await session(app, 'PUT', url, isv.token, { redirect_uris: [callback, loopback] })
      expect(set.statusCode, set.body).toBe(200)
    }
  })

  it('runs the whole journey: login, consent, code, token, scoped calls, refresh, revocation', async () => {
    const app = bp().app
    const query = authorizeQuery({ appId: testApp.appId, scope: 'stores:read', state: 'opaque/state+1' })
    // No session: the login form, carrying the request and a login CSRF cookie.
    const loginForm = await consentPage(null, query)
    expect(loginForm.statusCode).toBe(200)
    expect(loginForm.headers['content-type']).toMatch(/^text\/html/)
    expect(loginForm.headers['content-security-policy']).toContain("frame-ancestors 'none'")
    expect(loginForm.body).toContain('action="/oauth/login"')
    const loggedIn = await app.inject({
      method: 'POST',
      url: '/oauth/login',
      cookies: { bp_oauth_login: cookie(loginForm, 'bp_oauth_login') },
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: form({
        ...query,
        csrf_token: hidden(loginForm.body, 'csrf_token'),
        email: merchant.email,
        password: testPassword,
      }),
    })
    expect(loggedIn.statusCode, loggedIn.body).toBe(303)
    const sessionToken = cookie(loggedIn, 'bp_session')
    const back = new URL(String(loggedIn.headers.location), 'http://localhost')
    expect(back.pathname).toBe('/oauth/authorize')
    expect(back.searchParams.get('state')).toBe('opaque/state+1')

    // The consent page names the app, the ISV and what each scope means.
    const page = await app.inject({
      method: 'GET',
      url: String(loggedIn.headers.location),
      cookies: { bp_session: sessionToken },
    })
    expect(page.statusCode, page.body).toBe(200)
    expect(page.body).toContain('test app')
    expect(page.body).toContain(escapeHtml(`isv ${isv.email}`))
    expect(page.body).toContain(escapeHtml(bp().registry.scopes.get('stores:read')!))
    expect(page.body).toContain('同意授权')
    expect(page.headers['content-security-policy']).toContain("form-action 'self' https://isv.example.com")
    const approved = await decide(sessionToken, {
      ...query,
      csrf_token: hidden(page.body, 'csrf_token'),
      merchant_id: hidden(page.body, 'merchant_id'),
      decision: 'approve',
    })
    expect(approved.statusCode, approved.body).toBe(302)
    const location = new URL(String(approved.headers.location))
    expect(`${location.origin}${location.pathname}`).toBe('https://isv.example.com/oauth/callback')
    expect(location.searchParams.get('from')).toBe('baseplate')
    expect(location.searchParams.get('app_id')).toBe(testApp.appId)
    expect(location.searchParams.get('state')).toBe('opaque/state+1')
    const code = location.searchParams.get('app_auth_code')!
    expect(code).toMatch(/^bpac_/)

    // The app exchanges the code with a signed call.
    const exchanged = await exchange(testApp, code)
    expect(exchanged.statusCode, exchanged.body).toBe(200)
    const grant = json(exchanged)
    expect(grant).toMatchObject({ merchant_id: merchant.organizationId, scopes: ['stores:read'] })
    expect(grant.app_auth_token).toMatch(/^bpat_/)
    expect(grant.app_refresh_token).toMatch(/^bprt_/)
    expect(Date.parse(grant.token_expires_at)).toBeGreaterThan(clock.now())

    // Within the granted scope the app acts for the merchant; beyond it, it is refused.
    const listed = await listStores(testApp, grant.app_auth_token)
    expect(listed.statusCode, listed.body).toBe(200)
    const created = await call(testApp, {
      method: 'POST',
      url: '/v1/stores',
      appAuthToken: grant.app_auth_token,
      idempotencyKey: 'scope-check',
      body: { out_store_no: 'S-1', name: 'x', address: 'y' },
    })
    expect(created.statusCode).toBe(403)
    expect(json(created).code).toBe('AUTH_SCOPE_MISSING')
    const current = await call(testApp, {
      method: 'GET',
      url: '/v1/oauth/token/current',
      appAuthToken: grant.app_auth_token,
    })
    expect(json(current)).toMatchObject({
      id: grant.authorization_id,
      merchant_id: merchant.organizationId,
      scopes: ['stores:read'],
      status: 'active',
      app_name: 'test app',
    })

    // Refresh rotates both tokens; the old ones stop working.
    const refreshed = await refresh(testApp, grant.app_refresh_token)
    expect(refreshed.statusCode, refreshed.body).toBe(200)
    const next = json(refreshed)
    expect(next.authorization_id).toBe(grant.authorization_id)
    expect(next.app_auth_token).not.toBe(grant.app_auth_token)
    expect(json(await listStores(testApp, grant.app_auth_token)).code).toBe('AUTH_APP_AUTH_TOKEN_INVALID')
    expect(json(await refresh(testApp, grant.app_refresh_token)).code).toBe('AUTHZ_REFRESH_TOKEN_INVALID')
    expect((await listStores(testApp, next.app_auth_token)).statusCode).toBe(200)

    // Both consoles see it; the merchant revokes it.
    const merchantList = json(
      await session(app, 'GET', `/v1/organizations/${merchant.organizationId}/authorizations`, merchant.token),
    )
    expect(merchantList.data).toEqual([
      expect.objectContaining({
        id: grant.authorization_id,
        app_name: 'test app',
        isv_organization_name: `isv ${isv.email}`,
        status: 'active',
      }),
    ])
    const isvList = json(
      await session(
        app,
        'GET',
        `/v1/organizations/${isv.organizationId}/apps/${testApp.appId}/authorizations`,
        isv.token,
      ),
    )
    expect(isvList.data.map((item: { merchant_name: string }) => item.merchant_name)).toContain(
      `merchant ${merchant.email}`,
    )
    const revoked = await session(
      app,
      'POST',
      `/v1/organizations/${merchant.organizationId}/authorizations/${grant.authorization_id}/revoke`,
      merchant.token,
    )
    expect(revoked.statusCode, revoked.body).toBe(200)
    expect(json(revoked)).toMatchObject({ status: 'revoked', revoke_reason: 'merchant' })
    expect(json(await listStores(testApp, next.app_auth_token)).code).toBe('AUTH_APP_AUTH_TOKEN_INVALID')
    expect(json(await refresh(testApp, next.app_refresh_token)).code).toBe('AUTHZ_REFRESH_TOKEN_INVALID')

    // Each step is audited and evented.
    const actions = (
      await db()
        .selectFrom('audit_log')
        .select('action')
        .where('target', 'in', [grant.authorization_id, testApp.appId])
        .execute()
    ).map((row) => row.action)
    expect(actions).toEqual(
      expect.arrayContaining([
        'authorization.approved',
        'authorization.granted',
        'authorization.refreshed',
        'authorization.revoked',
      ]),
    )
    const events = await db()
      .selectFrom('outbox_events')
      .select(['type', 'organization_id', 'payload'])
      .where('type', 'like', 'authorization.%')
      .execute()
    const mine = events.filter((event) => event.organization_id === merchant.organizationId)
    expect(mine.map((event) => event.type)).toEqual(
      expect.arrayContaining([
        'authorization.approved',
        'authorization.granted',
        'authorization.refreshed',
        'authorization.revoked',
      ]),
    )
  })

  it('sends a declining merchant back with error=access_denied and the state', async () => {
    const query = authorizeQuery({ appId: testApp.appId, state: 'decline-state' })
    const page = await consentPage(merchant.token, query)
    const response = await decide(merchant.token, {
      ...query,
      csrf_token: hidden(page.body, 'csrf_token'),
      decision: 'decline',
    })
    expect(response.statusCode).toBe(302)
    const location = new URL(String(response.headers.location))
    expect(location.searchParams.get('error')).toBe('access_denied')
    expect(location.searchParams.get('state')).toBe('decline-state')
    expect(location.searchParams.has('app_auth_code')).toBe(false)
  })

  it('refuses a replayed code and revokes what it issued', async () => {
    const code = (await approve(merchant, { appId: testApp.appId })).get('app_auth_code')!
    const first = json(await exchange(testApp, code))
    expect((await listStores(testApp, first.app_auth_token)).statusCode).toBe(200)
    const replay = await exchange(testApp, code)
    expect(replay.statusCode).toBe(400)
    expect(json(replay).code).toBe('AUTHZ_CODE_INVALID')
    expect(json(await listStores(testApp, first.app_auth_token)).code).toBe('AUTH_APP_AUTH_TOKEN_INVALID')
    const row = await db()
      .selectFrom('authorizations')
      .select(['status', 'revoke_reason'])
      .where('id', '=', first.authorization_id)
      .executeTakeFirstOrThrow()
    expect(row).toEqual({ status: 'revoked', revoke_reason: 'code_reused' })
  })

  it('accepts a code for ten minutes and refuses it after', async () => {
    const early = (await approve(merchant, { appId: testApp.appId })).get('app_auth_code')!
    const late = (await approve(merchant, { appId: testApp.appId })).get('app_auth_code')!
    clock.advance(10 * 60 * 1000 - 1)
    expect((await exchange(testApp, early)).statusCode).toBe(200)
    clock.advance(1)
    const response = await exchange(testApp, late)
    expect(response.statusCode).toBe(400)
    expect(json(response)).toMatchObject({ code: 'AUTHZ_CODE_INVALID', field: 'body.code' })
  })

  it('refuses a code presented by another app, which leaves it usable by its own', async () => {
    const code = (await approve(merchant, { appId: testApp.appId })).get('app_auth_code')!
    expect(json(await exchange(otherApp, code)).code).toBe('AUTHZ_CODE_INVALID')
    expect((await exchange(testApp, code)).statusCode).toBe(200)
  })

  it('refuses unknown codes and incomplete token requests', async () => {
    expect(json(await exchange(testApp, 'bpac_nope')).code).toBe('AUTHZ_CODE_INVALID')
    const missing = await call(testApp, {
      method: 'POST',
      url: '/v1/oauth/token',
      body: { grant_type: 'refresh_token' },
    })
    expect(json(missing)).toMatchObject({ code: 'REQUEST_VALIDATION_FAILED', field: 'body.refresh_token' })
    const wrongType = await call(testApp, { method: 'POST', url: '/v1/oauth/token', body: { grant_type: 'password' } })
    expect(json(wrongType).code).toBe('REQUEST_VALIDATION_FAILED')
  })

  it('keeps one live authorisation per app and merchant: re-authorising replaces scopes and tokens', async () => {
    const first = await authorized(otherApp, otherMerchant, { scope: 'stores:read' })
    const second = await authorized(otherApp, otherMerchant, { scope: 'stores:read,stores:write' })
    expect(second.authorization_id).toBe(first.authorization_id)
    expect(second.scopes).toEqual(['stores:read', 'stores:write'])
    expect(json(await listStores(otherApp, first.app_auth_token)).code).toBe('AUTH_APP_AUTH_TOKEN_INVALID')
    const created = await call(otherApp, {
      method: 'POST',
      url: '/v1/stores',
      appAuthToken: second.app_auth_token,
      idempotencyKey: 'reauthorised',
      body: { out_store_no: 'R-1', name: 'x', address: 'y' },
    })
    expect(created.statusCode, created.body).toBe(201)
    expect(json(created).organization_id).toBe(otherMerchant.organizationId)
    const live = await db()
      .selectFrom('authorizations')
      .select('id')
      .where('app_id', '=', otherApp.appId)
      .where('merchant_id', '=', otherMerchant.organizationId)
      .where('status', '=', 'active')
      .execute()
    expect(live).toHaveLength(1)
  })

  it('never lets a token work for another app, and expires tokens but not refresh tokens', async () => {
    const grant = await authorized(testApp, otherMerchant)
    expect(json(await listStores(otherApp, grant.app_auth_token)).code).toBe('AUTH_APP_AUTH_TOKEN_INVALID')
    expect(json(await refresh(otherApp, grant.app_refresh_token)).code).toBe('AUTHZ_REFRESH_TOKEN_INVALID')
    clock.advance(31 * 24 * 3600 * 1000)
    expect(json(await listStores(testApp, grant.app_auth_token)).code).toBe('AUTH_APP_AUTH_TOKEN_INVALID')
    const renewed = json(await refresh(testApp, grant.app_refresh_token))
    expect((await listStores(testApp, renewed.app_auth_token)).statusCode).toBe(200)
    await logInAgain()
  })

  it('lets only owners and admins of the merchant list and revoke its authorisations', async () => {
    const grant = await authorized(testApp, merchant)
    const base = `/v1/organizations/${merchant.organizationId}/authorizations`
    // An ISV user, and a user of another merchant, see nothing and change nothing.
    for (const outsider of [isv, otherMerchant]) {
      const list = await session(bp().app, 'GET', base, outsider.token)
      expect(list.statusCode).toBe(404)
      expect(json(list).code).toBe('IDENTITY_ORGANIZATION_NOT_FOUND')
      const revoke = await session(bp().app, 'POST', `${base}/${grant.authorization_id}/revoke`, outsider.token)
      expect(json(revoke).code).toBe('IDENTITY_ORGANIZATION_NOT_FOUND')
    }
    // Through its own organisation, another merchant cannot reach this authorisation either.
    const sidewaysUrl =
      `/v1/organizations/${otherMerchant.organizationId}/authorizations/` + `${grant.authorization_id}/revoke`
    const sideways = await session(bp().app, 'POST', sidewaysUrl, otherMerchant.token)
    expect(json(sideways).code).toBe('AUTHZ_NOT_FOUND')
    // Nor can the merchant read the ISV side of the app.
    const isvSide = await session(
      bp().app,
      'GET',
      `/v1/organizations/${isv.organizationId}/apps/${testApp.appId}/authorizations`,
      merchant.token,
    )
    expect(json(isvSide).code).toBe('IDENTITY_ORGANIZATION_NOT_FOUND')
    expect((await listStores(testApp, grant.app_auth_token)).statusCode).toBe(200)
  })

  it('grants directly for the sandbox command, audited, and refuses live apps', async () => {
    const grant = await grantAuthorization(
      db(),
      {
        appId: otherApp.appId,
        merchantId: merchant.organizationId,
        scopes: ['stores:write', 'stores:read'],
        actor: 'cli',
        knownScopes: bp().registry.scopes,
      },
      clock.now(),
    )
    expect(grant).toMatchObject({ merchant_id: merchant.organizationId, scopes: ['stores:read', 'stores:write'] })
    expect(Object.keys(grant).sort()).toEqual([
      'app_auth_token',
      'app_refresh_token',
      'authorization_id',
      'merchant_id',
      'refresh_expires_at',
      'scopes',
      'token_expires_at',
    ])
    expect((await listStores(otherApp, grant.app_auth_token)).statusCode).toBe(200)
    const audit = await db()
      .selectFrom('audit_log')
      .select(['actor', 'action'])
      .where('target', '=', grant.authorization_id)
      .execute()
    expect(audit).toContainEqual({ actor: 'cli', action: 'authorization.granted' })
    const live = await createAppWithKey(bp().app, isv, rsaKeyPair(0), 'live')
    await expect(
      grantAuthorization(
        db(),
        { appId: live.appId, merchantId: merchant.organizationId, scopes: ['stores:read'] },
        clock.now(),
      ),
    ).rejects.toMatchObject({ code: 'AUTHZ_CONSENT_REQUIRED' })
    await expect(
      grantAuthorization(
        db(),
        {
          appId: otherApp.appId,
          merchantId: merchant.organizationId,
          scopes: ['stores:nope'],
          knownScopes: bp().registry.scopes,
        },
        clock.now(),
      ),
    ).rejects.toMatchObject({ code: 'AUTHZ_SCOPE_INVALID' })
    await expect(
      grantAuthorization(
        db(),
        { appId: otherApp.appId, merchantId: isv.organizationId, scopes: ['stores:read'] },
        clock.now(),
      ),
    ).rejects.toMatchObject({ code: 'IDENTITY_ORGANIZATION_NOT_FOUND' })
  })

  it('stores codes, tokens and refresh tokens only as SHA-256', async () => {
    const code = (await approve(merchant, { appId: otherApp.appId })).get('app_auth_code')!
    const grant = json(await exchange(otherApp, code))
    const renewed = json(await refresh(otherApp, grant.app_refresh_token))
    const secrets = [
      code,
      grant.app_auth_token,
      grant.app_refresh_token,
      renewed.app_auth_token,
      renewed.app_refresh_token,
    ]
    const tables =
      dialect === 'sqlite'
        ? (await sql<{ name: string }>`select name from sqlite_master where type = 'table'`.execute(db())).rows
        : (
            await sql<{ name: string }>`select table_name as name from information_schema.tables
          where table_schema = current_schema()`.execute(db())
          ).rows
    expect(tables.map((table) => table.name)).toContain('authorizations')
    let dump = ''
    for (const { name } of tables) {
      const rows = await sql<Record<string, unknown>>`select * from ${sql.table(name)}`.execute(db())
      dump += JSON.stringify(rows.rows)
    }
    for (const secret of secrets) {
      expect(dump.includes(secret)).toBe(false)
      expect(dump.includes(secret.slice(5, 25))).toBe(false)
    }
    expect(dump).toContain(sha256Hex(code))
    expect(dump).toContain(sha256Hex(renewed.app_auth_token))
  })

  it('purges codes a day after they expire, not before', async () => {
    const code = (await approve(merchant, { appId: otherApp.appId })).get('app_auth_code')!
    const remaining = () =>
      db().selectFrom('authorization_codes').select('code_hash').where('code_hash', '=', sha256Hex(code)).execute()
    await purgeAuthorizationCodes(db(), clock.now() + 24 * 3600 * 1000)
    expect(await remaining()).toHaveLength(1)
    expect(await purgeAuthorizationCodes(db(), clock.now() + 24 * 3600 * 1000 + 10 * 60 * 1000)).toBeGreaterThan(0)
    expect(await remaining()).toHaveLength(0)
  })
})

describe('authorisation module surface', () => {
  it('escapes what strangers choose', () => {
    expect(escapeHtml('<img src=x onerror="a()">&\'')).toBe('&lt;img src=x onerror=&quot;a()&quot;&gt;&amp;&#39;')
  })
})
