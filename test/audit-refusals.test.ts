/**
 * Refused credentials and rights leave an audit entry (ADR 0020; reference figure 12: "
 * authentication or authorisation failures without an audit record → 0"), within a budget per
 * caller whose overflow is counted into the next entry; other failures leave none, and the chain
 * still verifies.
 */
import { beforeAll, expect, it } from 'vitest'
import { verifyAuditLog } from '../src/platform/audit/audit-log.js'
import {
  createRefusalAudit,
  refusalRecordRefillS,
  refusalRecordsBurst,
  type Refusal,
} from '../src/platform/audit/refusals.js'
import { createAppWithKey, ed25519KeyPair, json, session, signed, signUp, type Injected } from './fixtures.js'
import { forEachDialect, manualClock, useTestPlatform } from './harness.js'
import { testTokenResolver } from './payment-fixtures.js'

interface Entry {
  seq: number
  actor: string
  action: string
  target: string
  data: Record<string, unknown>
}

forEachDialect('audit of refused requests', (dialect) => {
  const clock = manualClock()
  // The token grants only `payment:trade`: a refund is out of scope.
  const bp = useTestPlatform(dialect, { clock, appAuthTokenResolver: testTokenResolver(['payment:trade']) })
  let entriesBefore = 0

  const entries = async (): Promise<Entry[]> =>
    (await bp().storage.db.selectFrom('audit_log').selectAll().orderBy('seq').execute())
      .filter((row) => row.seq > entriesBefore)
      .map((row) => ({ ...row, data: JSON.parse(row.data) as Record<string, unknown> }))
  const refusals = async () => (await entries()).filter((entry) => entry.action === 'access.refused')
  const requestIdOf = (response: Injected) => response.headers['request-id']

  let merchant: Awaited<ReturnType<typeof signUp>>
  let isvApp: Awaited<ReturnType<typeof createAppWithKey>>
  beforeAll(async () => {
    merchant = await signUp(bp().app, 'merchant', 'education')
    isvApp = await createAppWithKey(bp().app, await signUp(bp().app, 'isv'), ed25519KeyPair())
  })
  beforeAll(async () => {
    const head = await bp().storage.db.selectFrom('audit_head').select('seq').executeTakeFirstOrThrow()
    entriesBefore = head.seq
  })

  it('records a refused signature as the app it claimed, with the route and request id', async () => {
    const response = await signed(
      bp().app,
      isvApp,
      {
        method: 'GET',
        url: '/v1/trades/trade_x',
        appAuthToken: `token:${merchant.organizationId}`,
        tamper: (request) => {
          request.headers['baseplate-signature'] = `x${request.headers['baseplate-signature']!.slice(1)}`
        },
      },
      clock.now(),
    )
    expect(json(response).code).toBe('AUTH_SIGNATURE_INVALID')
    const [entry, ...rest] = await refusals()
    expect(rest).toEqual([])
    expect(entry).toMatchObject({
      actor: 'anonymous',
      target: 'GET /v1/trades/:trade_id',
      data: {
        reason: 'authentication',
        code: 'AUTH_SIGNATURE_INVALID',
        claimed_app: isvApp.appId,
        request_id: requestIdOf(response),
      },
    })
    // The route's template, never the URL: a query or path may carry what must not be kept.
    expect(JSON.stringify(entry)).not.toContain('trade_x')
  })

  it('records a refused right as the proven app or user', async () => {
    const outOfScope = await signed(
      bp().app,
      isvApp,
      {
        method: 'POST',
        url: '/v1/trades/trade_x/refunds',
        body: { out_request_no: 'R1', amount: 1 },
        appAuthToken: `token:${merchant.organizationId}`,
      },
      clock.now(),
    )
    expect(json(outOfScope).code).toBe('AUTH_SCOPE_MISSING')
    const notOperator = await session(bp().app, 'GET', '/v1/audit-events', merchant.token)
    expect(json(notOperator).code).toBe('AUTH_FORBIDDEN')
    const noSession = await session(bp().app, 'GET', '/v1/me', 'sess_not-a-session')
    expect(json(noSession).code).toBe('AUTH_SESSION_REQUIRED')
    const recorded = (await refusals()).slice(-3)
    expect(recorded.map((entry) => [entry.actor, entry.data.reason, entry.data.code, entry.target])).toEqual([
      [isvApp.appId, 'authorization', 'AUTH_SCOPE_MISSING', 'POST /v1/trades/:trade_id/refunds'],
      [merchant.userId, 'authorization', 'AUTH_FORBIDDEN', 'GET /v1/audit-events'],
      ['anonymous', 'authentication', 'AUTH_SESSION_REQUIRED', 'GET /v1/me'],
    ])
    expect(recorded.map((entry) => entry.data.request_id)).toEqual(
      [outOfScope, notOperator, noSession].map(requestIdOf),
    )
  })

  it('records nothing for a refusal that is not about credentials or rights, nor for a success', async () => {
    const before = (await entries()).length
    const invalid = await session(
      bp().app,
      'POST',
      `/v1/organizations/${merchant.organizationId}/apps`,
      merchant.token,
      {
        name: '',
      },
    )
    expect(invalid.statusCode).toBe(400)
    const fine = await session(bp().app, 'GET', '/v1/me', merchant.token)
    expect(fine.statusCode).toBe(200)
    expect((await entries()).length).toBe(before)
  })

  it('keeps a flood to its budget, and counts the rest into the next entry', async () => {
    const address = '203.0.113.9'
    // Each request claims another app: an unproven caller's claims buy it no fresh budget.
    let claims = 0
    const flood = () =>
      bp().app.inject({
        method: 'GET',
        url: '/v1/trades/trade_y',
        headers: { 'baseplate-app-id': `app_flood${(claims += 1)}`, 'baseplate-signature': 'nonsense' },
        remoteAddress: address,
      })
    const before = (await refusals()).length
    const extra = 7
    for (let i = 0; i < refusalRecordsBurst + extra; i += 1) expect((await flood()).statusCode).toBe(401)
    let recorded = (await refusals()).slice(before)
    expect(recorded.length).toBe(refusalRecordsBurst)
    expect(recorded.map((entry) => [entry.data.address, entry.data.claimed_app])).toEqual(
      Array.from({ length: refusalRecordsBurst }, (_, i) => [address, `app_flood${i + 1}`]),
    )
    // Another caller keeps its own budget meanwhile.
    const other = await bp().app.inject({ method: 'GET', url: '/v1/me', remoteAddress: '198.51.100.4' })
    expect(other.statusCode).toBe(401)
    expect((await refusals()).length).toBe(before + refusalRecordsBurst + 1)

    clock.advance(refusalRecordRefillS * 1000)
    await flood()
    recorded = (await refusals()).slice(before)
    expect(recorded.at(-1)!.data).toMatchObject({ claimed_app: `app_flood${claims}`, unrecorded: extra })
    expect((await verifyAuditLog(bp().storage.db)).ok).toBe(true)
  })

  it('records a refusal the route answers itself: a lasting one kept for an Idempotency-Key', async () => {
    const refused = await session(
      bp().app,
      'POST',
      '/v1/governance/industries',
      merchant.token,
      { code: 'logistics', name: { en: 'Logistics', zh: '物流' } },
      { 'idempotency-key': 'not-the-operator' },
    )
    expect(json(refused).code).toBe('AUTH_FORBIDDEN')
    expect((await refusals()).at(-1)).toMatchObject({
      actor: merchant.userId,
      target: 'POST /v1/governance/industries',
      data: { code: 'AUTH_FORBIDDEN', request_id: requestIdOf(refused) },
    })
  })

  it("records a signed-in user's wrong current password, but not a login's twice", async () => {
    const changer = await signUp(bp().app)
    const wrong = await session(bp().app, 'POST', '/v1/me/password', changer.token, {
      current_password: 'not my password',
      new_password: 'another long passphrase',
    })
    expect(json(wrong).code).toBe('AUTH_INVALID_CREDENTIALS')
    expect((await refusals()).at(-1)).toMatchObject({
      actor: changer.userId,
      data: { code: 'AUTH_INVALID_CREDENTIALS', request_id: requestIdOf(wrong) },
    })
    const login = await bp().app.inject({
      method: 'POST',
      url: '/v1/sessions',
      payload: { email: changer.email, password: 'not my password' },
    })
    expect(json(login).code).toBe('AUTH_INVALID_CREDENTIALS')
    const last = (await entries()).at(-1)!
    expect([last.action, last.target]).toEqual(['session.login_failed', changer.email])
  })

  it('records a throttled console login', async () => {
    const address = '192.0.2.77'
    const login = () =>
      bp().app.inject({
        method: 'POST',
        url: '/v1/sessions',
        payload: { email: merchant.email, password: 'wrong password' },
        remoteAddress: address,
      })
    let last = await login()
    while (last.statusCode === 401) last = await login()
    expect(json(last).code).toBe('AUTH_LOGIN_THROTTLED')
    const throttled = (await refusals()).filter((entry) => entry.data.code === 'AUTH_LOGIN_THROTTLED')
    expect(throttled.map((entry) => [entry.actor, entry.target, entry.data.address])).toEqual([
      ['anonymous', 'POST /v1/sessions', address],
    ])
  })
  it('counts a refusal whose append failed into the next entry, and reports the failure', async () => {
    const errors: unknown[] = []
    const audit = createRefusalAudit(clock, { proxiesNamed: false, onError: (error) => errors.push(error) })
    const refusal: Refusal = {
      reason: 'authentication',
      code: 'AUTH_SIGNATURE_INVALID',
      actor: 'anonymous',
      claimedApp: null,
      method: 'GET',
      route: '/v1/me',
      clientAddress: '192.0.2.77',
      requestId: 'req_append_failed',
    }
    const db = bp().storage.db
    // The database refuses the append (a full disk, say).
    const failing = new Proxy(db, {
      get: (target, property) =>
        property === 'transaction'
          ? () => ({
              execute: async () => {
                throw new Error('disk full')
              },
            })
          : Reflect.get(target, property),
    })
    expect(await audit.record(failing, refusal, clock.now())).toBe('failed')
    expect(errors.map((error) => (error as Error).message)).toEqual(['disk full'])
    expect(await audit.record(db, { ...refusal, requestId: 'req_after' }, clock.now())).toBe('recorded')
    expect((await refusals()).at(-1)!.data).toMatchObject({ request_id: 'req_after', unrecorded: 1 })
    expect((await verifyAuditLog(db)).ok).toBe(true)
  })
})
