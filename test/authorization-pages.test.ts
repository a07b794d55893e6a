/**
 * The consent pages refuse every malformed or dishonest request with an error page, never a
 * redirect, and change nothing without the session's CSRF token; the ISV's redirect URIs are
 * checked when registered. Runs on SQLite and PostgreSQL.
 */
import type { Kysely } from 'kysely'
import { beforeAll, expect, it } from 'vitest'
import stores from '../src/capabilities/stores/index.js'
import {
  createAppWithKey,
  json,
  rsaKeyPair,
  session,
  signUp,
  testPassword,
  type Tenant,
  type TestApp,
  type Injected,
} from './fixtures.js'
import { forEachDialect, useTestPlatform } from './harness.js'

const callback = 'https://isv.example.com/cb'

function hidden(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html)
  expect(match, `hidden field ${name}`).not.toBeNull()
  return match![1]!.replace(/&amp;/g, '&')
}

/** The refusal entry the request left in the audit log (ADR 0020). */
async function refusalEntry(
  db: Kysely<any>,
  response: Injected,
): Promise<{ actor: string; target: string; data: any } | undefined> {
  const rows = await db.selectFrom('audit_log').selectAll().where('action', '=', 'access.refused').execute()
  return rows
    .map((row) => ({ actor: row.actor as string, target: row.target as string, data: JSON.parse(row.data) }))
    .find((entry) => entry.data.request_id === response.headers['request-id'])
}

function expectErrorPage(response: Injected, status: number, code: string): void {
  expect(response.statusCode, response.body).toBe(status)
  expect(response.headers['content-type']).toMatch(/^text\/html/)
  expect(response.headers.location).toBeUndefined()
  expect(response.body).toContain(`<code>${code}</code>`)
  expect(response.headers['x-frame-options']).toBe('DENY')
}

forEachDialect('consent pages and redirect URIs', (dialect) => {
  const bp = useTestPlatform(dialect, { capabilities: [stores] })
  const db = () => bp().storage.db as Kysely<any>
  let isv: Tenant
  let merchant: Tenant
  let viewer: Tenant
  let testApp: TestApp
  let otherApp: TestApp
  let secondMerchantId: string

  const base = () => ({ app_id: testApp.appId, redirect_uri: callback, scope: 'stores:read', state: 's1' })
  const page = (query: Record<string, string | string[]>, sessionToken: string | null = merchant.token) =>
    bp().app.inject({
      method: 'GET',
      url: '/oauth/authorize',
      query,
      ...(sessionToken === null ? {} : { cookies: { bp_session: sessionToken } }),
    })
  const post = (url: string, fields: Record<string, string>, cookies: Record<string, string>) =>
    bp().app.inject({
      method: 'POST',
      url,
      cookies,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams(fields).toString(),
    })
  const codeCount = async () =>
    Number(
      (
        await db()
          .selectFrom('authorization_codes')
          .select((eb) => eb.fn.countAll().as('count'))
          .executeTakeFirstOrThrow()
      ).count,
    )

  beforeAll(async () => {
    const app = bp().app
    isv = await signUp(app, 'isv')
    merchant = await signUp(app, 'merchant')
    viewer = await signUp(app, 'isv')
    testApp = await createAppWithKey(app, isv, rsaKeyPair(0))
    otherApp = await createAppWithKey(app, isv, rsaKeyPair(1))
    const put = (appId: string, uris: string[]) =>
      session(app, 'PUT', `/v1/organizations/${isv.organizationId}/apps/${appId}/redirect-uris`, isv.token, {
        redirect_uris: uris,
      })
    expect((await put(testApp.appId, [callback])).statusCode).toBe(200)
    expect((await put(otherApp.appId, ['https://other.example.com/cb'])).statusCode).toBe(200)
    const added = await session(app, 'POST', `/v1/organizations/${merchant.organizationId}/members`, merchant.token, {
      email: viewer.email,
      role: 'viewer',
    })
    expect(added.statusCode, added.body).toBe(201)
    const second = await session(app, 'POST', '/v1/organizations', merchant.token, {
      name: '第二家店 <b>&</b>',
      kind: 'merchant',
    })
    secondMerchantId = json(second).id
  })

  it('shows an error page, and never redirects, for every malformed request', async () => {
    const cases: Array<[string, Record<string, string | string[]>, number, string]> = [
      ['no app_id', { ...base(), app_id: '' }, 400, 'AUTHZ_REQUEST_INVALID'],
      ['a malformed app_id', { ...base(), app_id: 'nope' }, 404, 'APP_NOT_FOUND'],
      ['an unknown app', { ...base(), app_id: 'app_00000000000000000000' }, 404, 'APP_NOT_FOUND'],
      ['app_id twice', { ...base(), app_id: [testApp.appId, testApp.appId] }, 400, 'AUTHZ_REQUEST_INVALID'],
      ['no redirect_uri', { ...base(), redirect_uri: '' }, 400, 'AUTHZ_REQUEST_INVALID'],
      [
        'another host',
        { ...base(), redirect_uri: 'https://evil.example.com/cb' },
        400,
        'AUTHZ_REDIRECT_URI_NOT_REGISTERED',
      ],
      ['a longer path', { ...base(), redirect_uri: `${callback}/more` }, 400, 'AUTHZ_REDIRECT_URI_NOT_REGISTERED'],
      [
        'an added query',
        { ...base(), redirect_uri: `${callback}?next=evil` },
        400,
        'AUTHZ_REDIRECT_URI_NOT_REGISTERED',
      ],
      ['a trailing slash', { ...base(), redirect_uri: `${callback}/` }, 400, 'AUTHZ_REDIRECT_URI_NOT_REGISTERED'],
      [
        "another app's URI",
        { ...base(), redirect_uri: 'https://other.example.com/cb' },
        400,
        'AUTHZ_REDIRECT_URI_NOT_REGISTERED',
      ],
      ['no scope', { ...base(), scope: '' }, 400, 'AUTHZ_REQUEST_INVALID'],
      ['only separators', { ...base(), scope: ', ,' }, 400, 'AUTHZ_SCOPE_INVALID'],
      ['an unknown scope', { ...base(), scope: 'stores:read,stores:delete' }, 400, 'AUTHZ_SCOPE_INVALID'],
      ['a malformed scope', { ...base(), scope: 'STORES' }, 400, 'AUTHZ_SCOPE_INVALID'],
      ['a state too long', { ...base(), state: 'x'.repeat(513) }, 400, 'AUTHZ_REQUEST_INVALID'],
      ['a state with a line break', { ...base(), state: 'a\nb' }, 400, 'AUTHZ_REQUEST_INVALID'],
    ]
    for (const [what, query, status, code] of cases) {
      // With and without a session: the request is checked before the login form is shown.
      for (const sessionToken of [merchant.token, null]) {
        const response = await page(query, sessionToken)
        expect(response.statusCode, what).toBe(status)
        expectErrorPage(response, status, code)
      }
    }
    expect((await page(base())).statusCode).toBe(200)
  })

  it('tells a user who is not owner or admin of any merchant, and offers another account', async () => {
    for (const tenant of [isv, viewer]) {
      const response = await page(base(), tenant.token)
      expectErrorPage(response, 403, 'AUTHZ_MERCHANT_ROLE_REQUIRED')
      expect(response.body).toContain('prompt=login')
      // Audited as the signed-in user, with the app the consent request named (ADR 0020).
      expect(await refusalEntry(bp().storage.db, response)).toMatchObject({
        actor: tenant.userId,
        target: 'GET /oauth/authorize',
        data: { code: 'AUTHZ_MERCHANT_ROLE_REQUIRED', claimed_app: base().app_id },
      })
    }
    const login = await page({ ...base(), prompt: 'login' }, isv.token)
    expect(login.statusCode).toBe(200)
    expect(login.body).toContain('action="/oauth/login"')
  })

  it('lets the user choose among its merchants, escaping names', async () => {
    const response = await page(base())
    expect(response.body).toContain('type="radio" name="merchant_id"')
    expect(response.body).toContain('第二家店 &lt;b&gt;&amp;&lt;/b&gt;')
    const approved = await post(
      '/oauth/authorize',
      {
        ...base(),
        csrf_token: hidden(response.body, 'csrf_token'),
        merchant_id: secondMerchantId,
        decision: 'approve',
      },
      { bp_session: merchant.token },
    )
    expect(approved.statusCode, approved.body).toBe(302)
    const row = await db()
      .selectFrom('authorization_codes')
      .select('merchant_id')
      .orderBy('created_at', 'desc')
      .executeTakeFirstOrThrow()
    expect(row.merchant_id).toBe(secondMerchantId)
  })

  it('escapes an app name chosen to inject markup', async () => {
    const evil = await session(bp().app, 'POST', `/v1/organizations/${isv.organizationId}/apps`, isv.token, {
      name: '<script>alert(1)</script>',
      environment: 'sandbox',
    })
    const appId = json(evil).id
    await session(bp().app, 'PUT', `/v1/organizations/${isv.organizationId}/apps/${appId}/redirect-uris`, isv.token, {
      redirect_uris: [callback],
    })
    const response = await page({ ...base(), app_id: appId })
    expect(response.statusCode).toBe(200)
    expect(response.body).not.toContain('<script>')
    expect(response.body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;')
  })

  it("refuses a decision without the session's CSRF token, and issues no code", async () => {
    const before = await codeCount()
    const form = await page(base())
    const csrf = hidden(form.body, 'csrf_token')
    const fields = { ...base(), merchant_id: merchant.organizationId, decision: 'approve' }
    const otherSession = json(
      await bp().app.inject({
        method: 'POST',
        url: '/v1/sessions',
        payload: { email: merchant.email, password: testPassword },
      }),
    ).token
    const attempts: Array<[string, Record<string, string>, string]> = [
      ['missing', fields, merchant.token],
      ['wrong', { ...fields, csrf_token: 'f'.repeat(64) }, merchant.token],
      ['of another session', { ...fields, csrf_token: csrf }, otherSession],
    ]
    for (const [what, body, sessionToken] of attempts) {
      const response = await post('/oauth/authorize', body, { bp_session: sessionToken })
      expect(response.statusCode, what).toBe(403)
      expectErrorPage(response, 403, 'AUTHZ_CSRF_TOKEN_INVALID')
    }
    expect(await codeCount()).toBe(before)
  })

  it('checks the decision form as strictly as the page', async () => {
    const csrf = hidden((await page(base())).body, 'csrf_token')
    const cookies = { bp_session: merchant.token }
    const fields = { ...base(), csrf_token: csrf, merchant_id: merchant.organizationId, decision: 'approve' }
    expectErrorPage(
      await post('/oauth/authorize', { ...fields, redirect_uri: 'https://evil.example.com/cb' }, cookies),
      400,
      'AUTHZ_REDIRECT_URI_NOT_REGISTERED',
    )
    expectErrorPage(
      await post('/oauth/authorize', { ...fields, scope: 'stores:read,stores:admin' }, cookies),
      400,
      'AUTHZ_SCOPE_INVALID',
    )
    // A merchant the user does not administer, and an ISV organisation, are not choices.
    for (const merchantId of [isv.organizationId, 'org_00000000000000000000']) {
      expectErrorPage(
        await post('/oauth/authorize', { ...fields, merchant_id: merchantId }, cookies),
        403,
        'AUTHZ_MERCHANT_ROLE_REQUIRED',
      )
    }
    expectErrorPage(
      await post('/oauth/authorize', { ...fields, decision: 'maybe' }, cookies),
      400,
      'AUTHZ_REQUEST_INVALID',
    )
    expectErrorPage(await post('/oauth/authorize', fields, {}), 401, 'AUTH_SESSION_REQUIRED')
    const asJson = await bp().app.inject({ method: 'POST', url: '/oauth/authorize', cookies, payload: fields })
    expectErrorPage(asJson, 415, 'REQUEST_UNSUPPORTED_MEDIA_TYPE')
  })

  it('refuses guessing on the form once an account has had its failures, in Chinese and English', async () => {
    const form = await page(base(), null)
    const loginCookie = form.cookies.find((entry) => entry.name === 'bp_oauth_login')!.value
    const guessed = `nobody-${Date.now()}@example.com`
    const fields = { ...base(), csrf_token: hidden(form.body, 'csrf_token'), email: guessed, password: 'guess' }
    for (let attempt = 0; attempt < 5; attempt += 1) {
      expect((await post('/oauth/login', fields, { bp_oauth_login: loginCookie })).statusCode).toBe(401)
    }
    const refused = await post('/oauth/login', fields, { bp_oauth_login: loginCookie })
    expect(refused.statusCode).toBe(429)
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0)
    expect(refused.body).toContain('登录失败次数过多')
    expect(refused.body).toContain('Too many failed logins')
    expect(refused.body).toContain('action="/oauth/login"')
    expect(await refusalEntry(bp().storage.db, refused)).toMatchObject({
      target: 'POST /oauth/login',
      data: { code: 'AUTH_LOGIN_THROTTLED', reason: 'authentication' },
    })
  })

  it('protects the login form and answers a wrong password on the form', async () => {
    const form = await page(base(), null)
    const loginCookie = form.cookies.find((entry) => entry.name === 'bp_oauth_login')!.value
    const fields = { ...base(), csrf_token: hidden(form.body, 'csrf_token'), email: merchant.email, password: 'wrong' }
    const forged = await post('/oauth/login', fields, {})
    expectErrorPage(forged, 403, 'AUTHZ_CSRF_TOKEN_INVALID')
    expect(await refusalEntry(bp().storage.db, forged)).toMatchObject({
      target: 'POST /oauth/login',
      data: { code: 'AUTHZ_CSRF_TOKEN_INVALID', reason: 'authorization' },
    })
    const wrong = await post('/oauth/login', fields, { bp_oauth_login: loginCookie })
    expect(wrong.statusCode).toBe(401)
    expect(wrong.body).toContain('邮箱或密码错误')
    expect(wrong.body).toContain('action="/oauth/login"')
    expect(wrong.cookies.some((entry) => entry.name === 'bp_session')).toBe(false)
    expectErrorPage(
      await post(
        '/oauth/login',
        { ...fields, redirect_uri: 'https://evil.example.com/' },
        { bp_oauth_login: loginCookie },
      ),
      400,
      'AUTHZ_REDIRECT_URI_NOT_REGISTERED',
    )
  })

  it('checks redirect URIs when the ISV registers them', async () => {
    const url = `/v1/organizations/${isv.organizationId}/apps/${otherApp.appId}/redirect-uris`
    const refused = [
      'http://isv.example.com/cb',
      'https://isv.example.com/cb#fragment',
      'javascript:alert(1)',
      'https://user:pass@isv.example.com/cb',
      '/relative/cb',
      'https://isv.example.com/c b',
      'http://localhost.evil.com/',
    ]
    for (const uri of refused) {
      const response = await session(bp().app, 'PUT', url, isv.token, {
        redirect_uris: ['https://ok.example.com/', uri],
      })
      expect(response.statusCode, uri).toBe(400)
      expect(json(response), uri).toMatchObject({ code: 'AUTHZ_REDIRECT_URI_INVALID', field: 'body.redirect_uris.1' })
    }
    const repeated = await session(bp().app, 'PUT', url, isv.token, { redirect_uris: [callback, callback] })
    expect(json(repeated).code).toBe('AUTHZ_REDIRECT_URI_INVALID')
    const tooMany = await session(bp().app, 'PUT', url, isv.token, {
      redirect_uris: Array.from({ length: 11 }, (_, index) => `https://isv.example.com/${index}`),
    })
    expect(json(tooMany).code).toBe('REQUEST_VALIDATION_FAILED')
    const accepted = ['https://isv.example.com/b', 'http://127.0.0.1:9000/cb', 'http://localhost/cb', 'http://[::1]:8/']
    const set = await session(bp().app, 'PUT', url, isv.token, { redirect_uris: accepted })
    expect(set.statusCode, set.body).toBe(200)
    expect(json(await session(bp().app, 'GET', url, isv.token)).redirect_uris).toEqual(accepted)
    // Only developers and above of the app's organisation.
    const addViewer = await session(bp().app, 'POST', `/v1/organizations/${isv.organizationId}/members`, isv.token, {
      email: merchant.email,
      role: 'viewer',
    })
    expect(addViewer.statusCode).toBe(201)
    expect(json(await session(bp().app, 'PUT', url, merchant.token, { redirect_uris: [] })).code).toBe('AUTH_FORBIDDEN')
    const isvList = `/v1/organizations/${isv.organizationId}/apps/${otherApp.appId}/authorizations`
    expect(json(await session(bp().app, 'GET', isvList, merchant.token)).code).toBe('AUTH_FORBIDDEN')
    expect(json(await session(bp().app, 'PUT', url, viewer.token, { redirect_uris: [] })).code).toBe(
      'IDENTITY_ORGANIZATION_NOT_FOUND',
    )
  })

  it('lets only owners and admins of the merchant list its authorisations', async () => {
    const url = `/v1/organizations/${merchant.organizationId}/authorizations`
    const list = await session(bp().app, 'GET', url, viewer.token)
    expect(json(list).code).toBe('AUTH_FORBIDDEN')
  })

  it('keeps the pages out of the OpenAPI document, and the token endpoint in it', async () => {
    const document = json(await bp().app.inject({ method: 'GET', url: '/openapi.json' }))
    expect(Object.keys(document.paths).filter((path) => path.startsWith('/oauth'))).toEqual([])
    expect(document.paths['/v1/oauth/token'].post['x-baseplate-auth']).toBe('app')
    expect(document.paths['/v1/oauth/token'].post.parameters ?? []).not.toContainEqual(
      expect.objectContaining({ name: 'idempotency-key' }),
    )
  })
})
