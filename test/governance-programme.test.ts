/**
 * Who may act in governance, and the partner programme around it: recruitment batches with
 * measured criteria and the operator's decisions, one seat per partner and industry,
 * proxies inside the partner's organisation, conflict-of-interest recusal, refusal of
 * non-partners, improvement requests on a public roadmap, and training with a waitlist.
 */
import { beforeAll, expect, it } from 'vitest'
import { createAppWithKey, ed25519KeyPair, json, session, signUp, type Tenant } from './fixtures.js'
import {
  admit,
  content,
  elapse,
  expectCode,
  expectStatus,
  governanceTestConfig,
  hourMs,
  operatorToken,
  proposeAndOpen,
  putType,
  readProposal,
  signUpIsvs,
  vote,
} from './governance-helpers.js'
import { forEachDialect, manualClock, useTestPlatform } from './harness.js'

const industry = 'healthcare'

forEachDialect('governance seats and programme', (dialect) => {
  const clock = manualClock(Date.now())
  let operatorLogin: { email: string; password: string } | undefined
  const bp = useTestPlatform(dialect, {
    clock,
    config: governanceTestConfig,
    onOperatorCreated: (login) => {
      operatorLogin = login
    },
  })
  const app = () => bp().app
  let operator: string
  let p: Tenant[]
  let outsider: Tenant

  beforeAll(async () => {
    operator = await operatorToken(app(), operatorLogin!)
    p = await signUpIsvs(app(), 3)
    outsider = await signUp(app(), 'isv')
    await admit(app(), operator, p, [industry], clock.now())
    await putType(app(), operator, industry, 'quick')
  })

  const post = (token: string, url: string, body?: unknown) => session(app(), 'POST', url, token, body)
  const org = (tenant: Tenant) => `/v1/organizations/${tenant.organizationId}/governance`

  it('recruits by batch: criteria measured for both sides, decisions with reasons', async () => {
    const now = clock.now()
    const batchBody = {
      name: '第一批 First batch',
      industries: ['mobility', 'education', 'healthcare'],
      criteria: { merchants_served_min: 0, live_apps_min: 1, payment_volume_min: 100_000 },
      opens_at: new Date(now).toISOString(),
      closes_at: new Date(now + 7 * 24 * hourMs).toISOString(),
    }
    expectCode(await post(outsider.token, '/v1/governance/batches', batchBody), 'AUTH_FORBIDDEN')
    expectCode(
      await post(operator, '/v1/governance/batches', { ...batchBody, closes_at: batchBody.opens_at }),
      'GOV_BATCH_INVALID',
    )
    expectCode(
      await post(operator, '/v1/governance/batches', { ...batchBody, industries: ['nowhere'] }),
      'GOV_INDUSTRY_NOT_FOUND',
    )
    const batch = expectStatus(await post(operator, '/v1/governance/batches', batchBody), 201)
    const later = expectStatus(
      await post(operator, '/v1/governance/batches', {
        ...batchBody,
        name: 'Later',
        opens_at: new Date(now + 24 * hourMs).toISOString(),
      }),
      201,
    )
    await createAppWithKey(app(), outsider, ed25519KeyPair(), 'live')
    const application = {
      batch_id: batch.id,
      industries: ['mobility', 'education'],
      company: { name: '行者科技 Walker Tech', description: 'Bike-sharing and campus payments', founded_year: 2018 },
      founder: { name: '李雷', title: 'CEO', record: 'Launched the first city-wide QR bike rental' },
    }
    expectCode(
      await post(outsider.token, `${org(outsider)}/applications`, { ...application, industries: ['retail'] }),
      'GOV_APPLICATION_INDUSTRY_INVALID',
    )
    expectCode(
      await post(outsider.token, `${org(outsider)}/applications`, { ...application, batch_id: later.id }),
      'GOV_BATCH_CLOSED',
    )
    const merchant = await signUp(app(), 'merchant', 'education')
    expectCode(await post(merchant.token, `${org(merchant)}/applications`, application), 'GOV_APPLICANT_NOT_ISV')
    const submitted = expectStatus(await post(outsider.token, `${org(outsider)}/applications`, application), 201)
    expectCode(await post(outsider.token, `${org(outsider)}/applications`, application), 'GOV_APPLICATION_EXISTS')

    // Measured from platform data (payment volume through the payment capability: this ISV has
    // processed no live trades); a metric no module provides is shown as unmeasured.
    expect(submitted.evaluation).toEqual(
      expect.arrayContaining([
        { criterion: 'live_apps_min', industry: null, required: 1, measured: 1, met: true },
        { criterion: 'merchants_served_min', industry: 'mobility', required: 0, measured: 0, met: true },
        { criterion: 'payment_volume_min', industry: 'education', required: 100_000, measured: 0, met: false },
      ]),
    )
    const operatorView = json(await session(app(), 'GET', `/v1/governance/batches/${batch.id}/applications`, operator))
    expect(operatorView.data[0].evaluation).toEqual(submitted.evaluation)
    expectCode(
      await session(app(), 'GET', `/v1/governance/batches/${batch.id}/applications`, outsider.token),
      'AUTH_FORBIDDEN',
    )

    const decide = (decision: string, reason: string) =>
      post(operator, `/v1/governance/applications/${submitted.id}/decision`, { decision, reason })
    expect(expectStatus(await decide('waitlist', 'Waiting for payment volume data'), 200).status).toBe('waitlisted')
    expect(expectStatus(await decide('reject', 'Payment volume below the bar'), 200)).toMatchObject({
      status: 'rejected',
      decision_reason: 'Payment volume below the bar',
    })
    expectCode(await decide('admit', 'Changed our mind after all'), 'GOV_APPLICATION_DECIDED')
    const own = json(await session(app(), 'GET', `${org(outsider)}/applications`, outsider.token))
    expect(own.data[0]).toMatchObject({ status: 'rejected', decision_reason: 'Payment volume below the bar' })
    const inbox = json(await session(app(), 'GET', `${org(outsider)}/inbox`, outsider.token))
    expect(inbox.data.map((item: { type: string }) => item.type)).toContain('governance.application.decided')
    expect(json(await session(app(), 'GET', `${org(outsider)}/seats`, outsider.token)).data).toEqual([])
  })

  it('refuses a non-partner, lets a proxy vote inside the organisation, and a direct ballot prevails', async () => {
    const [a, b, c] = p as [Tenant, Tenant, Tenant]
    const opened = await proposeAndOpen(app(), a, { industry, type: 'quick', ...content('Seats') })
    // A non-partner organisation, and a user outside the partner's organisation.
    expectCode(await vote(app(), outsider, opened, { vote: 'yes' }), 'GOV_NOT_PARTNER')
    expectCode(
      await session(app(), 'POST', `${org(a)}/proposals/${opened.id}/votes`, outsider.token, {
        content_hash: opened.content_hash,
        vote: 'yes',
      }),
      'IDENTITY_ORGANIZATION_NOT_FOUND',
    )
    expectCode(
      await session(app(), 'POST', `${org(outsider)}/proposals`, outsider.token, {
        industry,
        type: 'quick',
        ...content('Not a partner'),
      }),
      'GOV_NOT_PARTNER',
    )

    // b names a developer of its own organisation as proxy; an outsider cannot be one.
    const deputy = await signUp(app(), 'isv')
    expectStatus(
      await post(b.token, `/v1/organizations/${b.organizationId}/members`, { email: deputy.email, role: 'developer' }),
      201,
    )
    const proxyUrl = `${org(b)}/seats/${industry}/proxy`
    expectCode(await session(app(), 'PUT', proxyUrl, b.token, { email: outsider.email }), 'GOV_PROXY_NOT_MEMBER')
    expectCode(await session(app(), 'PUT', proxyUrl, deputy.token, { email: deputy.email }), 'AUTH_FORBIDDEN')
    const asDeputy = { ...deputy, organizationId: b.organizationId }
    expectCode(await vote(app(), asDeputy, opened, { vote: 'no' }), 'GOV_VOTER_NOT_ALLOWED')
    expectStatus(await session(app(), 'PUT', proxyUrl, b.token, { email: deputy.email }), 200)
    expect(json(await session(app(), 'GET', `${org(b)}/seats`, b.token)).data).toEqual([
      expect.objectContaining({ industry, proxy_user_id: deputy.userId }),
    ])
    expect(expectStatus(await vote(app(), asDeputy, opened, { vote: 'no' }), 200)).toMatchObject({ via_proxy: true })
    expect(expectStatus(await vote(app(), b, opened, { vote: 'yes' }), 200)).toMatchObject({
      via_proxy: false,
      replaced: true,
    })
    expectCode(await vote(app(), asDeputy, opened, { vote: 'no' }), 'GOV_PROXY_OVERRIDE_REFUSED')
    expectStatus(await session(app(), 'DELETE', proxyUrl, b.token), 200)
    expectCode(await session(app(), 'DELETE', proxyUrl, b.token), 'GOV_PROXY_NOT_FOUND')

    // c votes, then declares a conflict: its ballot is withdrawn and it leaves the count.
    expectStatus(await vote(app(), c, opened, { vote: 'no' }), 200)
    expectCode(
      await post(c.token, `${org(c)}/proposals/${opened.id}/conflicts`, { reason: 'short' }),
      'REQUEST_VALIDATION_FAILED',
    )
    const conflict = { reason: 'Our subsidiary is the merchant this standard targets' }
    expectStatus(await post(c.token, `${org(c)}/proposals/${opened.id}/conflicts`, conflict), 200)
    expectCode(await post(c.token, `${org(c)}/proposals/${opened.id}/conflicts`, conflict), 'GOV_RECUSED')
    expectCode(await vote(app(), c, opened, { vote: 'no' }), 'GOV_RECUSED')
    const ballots = json(await app().inject({ method: 'GET', url: `/v1/governance/proposals/${opened.id}/votes` }))
    expect(ballots.data.map((ballot: { organization_id: string }) => ballot.organization_id).sort()).toEqual(
      [b.organizationId].sort(),
    )
    expect((await readProposal(app(), opened.id)).recused).toEqual([c.organizationId])

    await elapse(bp(), clock, hourMs)
    // Electorate 3 minus 1 recused: b's single yes is 1 of 2 seats, exactly the 50% quorum.
    expect(await readProposal(app(), opened.id)).toMatchObject({
      state: 'queued',
      tally: { electorate: 2, ballots: 1, quorum_met: true, counts: { yes: 1, no: 0 } },
    })
    await elapse(bp(), clock, 10 * 60_000)
  })

  it('lets partners file and support improvement requests that the operator moves on a public roadmap', async () => {
    const [a, b] = p as [Tenant, Tenant]
    const request = { capability: 'payment', title: 'Split refunds across receivers', body: 'Needed for rentals' }
    expectCode(await post(outsider.token, `${org(outsider)}/improvement-requests`, request), 'GOV_NOT_PARTNER')
    expectCode(
      await post(a.token, `${org(a)}/improvement-requests`, { ...request, capability: 'teleport' }),
      'GOV_CAPABILITY_UNKNOWN',
    )
    const filed = expectStatus(await post(a.token, `${org(a)}/improvement-requests`, request), 201)
    expect(filed).toMatchObject({ status: 'open', support_count: 1 })
    const support = (tenant: Tenant, value: boolean) =>
      post(tenant.token, `${org(tenant)}/improvement-requests/${filed.id}/support`, { support: value })
    expect(expectStatus(await support(b, true), 200).support_count).toBe(2)
    expect(expectStatus(await support(b, true), 200).support_count).toBe(2)
    expect(expectStatus(await support(b, false), 200).support_count).toBe(1)
    expect(expectStatus(await support(b, true), 200).support_count).toBe(2)
    expectCode(
      await post(a.token, `/v1/governance/improvement-requests/${filed.id}/status`, { status: 'planned', note: 'x' }),
      'AUTH_FORBIDDEN',
    )
    expectStatus(
      await post(operator, `/v1/governance/improvement-requests/${filed.id}/status`, {
        status: 'planned',
        note: 'Scheduled for the next quarter',
      }),
      200,
    )
    const roadmap = json(await app().inject({ method: 'GET', url: '/v1/governance/roadmap?capability=payment' }))
    expect(roadmap.data[0]).toMatchObject({
      request: { id: filed.id, status: 'planned', support_count: 2 },
      changelog: [{ status: 'planned', note: 'Scheduled for the next quarter' }],
    })
  })

  it('runs training with a capacity and a waitlist that moves up on cancellation', async () => {
    const [a, b] = p as [Tenant, Tenant]
    const body = {
      kind: 'office_hours',
      title: { en: 'Expert office hours: risk rules', zh: '专家答疑：风控规则' },
      industry,
      starts_at: new Date(clock.now() + 48 * hourMs).toISOString(),
      capacity: 1,
    }
    expectCode(await post(a.token, '/v1/governance/training-sessions', body), 'AUTH_FORBIDDEN')
    const created = expectStatus(await post(operator, '/v1/governance/training-sessions', body), 201)
    const enrolment = (tenant: Tenant) => `${org(tenant)}/training-sessions/${created.id}/enrolment`
    expectCode(await post(outsider.token, enrolment(outsider)), 'GOV_NOT_PARTNER')
    expect(expectStatus(await post(a.token, enrolment(a)), 201)).toEqual({
      status: 'enrolled',
      waitlist_position: null,
    })
    expect(expectStatus(await post(b.token, enrolment(b)), 201)).toEqual({ status: 'waitlisted', waitlist_position: 1 })
    expectCode(await post(a.token, enrolment(a)), 'GOV_ENROLMENT_EXISTS')
    const cancelled = expectStatus(await session(app(), 'DELETE', enrolment(a), a.token), 200)
    expect(cancelled).toEqual({ cancelled: true, promoted_organization_id: b.organizationId })
    expectCode(await session(app(), 'DELETE', enrolment(a), a.token), 'GOV_ENROLMENT_NOT_FOUND')
    const inbox = json(await session(app(), 'GET', `${org(b)}/inbox`, b.token))
    const promoted = inbox.data.find((item: { type: string }) => item.type === 'governance.training.enrolment_changed')
    expect(promoted).toMatchObject({ payload: { session_id: created.id, status: 'enrolled' } })
    const sessions = json(await app().inject({ method: 'GET', url: '/v1/governance/training-sessions' }))
    expect(sessions.data.find((entry: { id: string }) => entry.id === created.id)).toMatchObject({ enrolled: 1 })
    clock.advance(49 * hourMs)
    expectCode(await post(a.token, enrolment(a)), 'GOV_SESSION_STARTED')
  })

  it('lets the operator propose where the rules allow it, and caps open proposals per partner', async () => {
    const [, , c] = p as [Tenant, Tenant, Tenant]
    await putType(app(), operator, industry, 'open_to_all', { proposers: 'partners_and_operator' })
    const asOperator = (type: string) =>
      post(operator, `/v1/governance/industries/${industry}/proposals`, { type, ...content('From the operator') })
    expectCode(await asOperator('quick'), 'GOV_PROPOSER_NOT_ALLOWED')
    const created = expectStatus(await asOperator('open_to_all'), 201)
    expect(created.proposer).toEqual({ organization_id: null, operator: true })
    expectCode(await post(c.token, `/v1/governance/proposals/${created.id}/submit`), 'AUTH_FORBIDDEN')
    expectStatus(await post(operator, `/v1/governance/proposals/${created.id}/submit`), 200)
    expectCode(
      await post(c.token, `${org(c)}/proposals`, {
        industry,
        type: 'quick',
        ...content('Too far ahead'),
        effective_from: new Date(clock.now() + 400 * 24 * hourMs).toISOString(),
      }),
      'GOV_ACTION_INVALID',
    )
    for (let index = 0; index < 5; index += 1) {
      expectStatus(
        await post(c.token, `${org(c)}/proposals`, { industry, type: 'quick', ...content(`Draft ${index}`) }),
        201,
      )
    }
    const sixth = await post(c.token, `${org(c)}/proposals`, { industry, type: 'quick', ...content('One too many') })
    expectCode(sixth, 'GOV_PROPOSAL_QUOTA_REACHED')
  })

  it('lets the operator extend industries and rejects incoherent rules', async () => {
    const name = { en: 'Logistics', zh: '物流' }
    expectCode(await post(p[0]!.token, '/v1/governance/industries', { code: 'logistics', name }), 'AUTH_FORBIDDEN')
    expectStatus(await post(operator, '/v1/governance/industries', { code: 'logistics', name }), 201)
    expectCode(await post(operator, '/v1/governance/industries', { code: 'logistics', name }), 'GOV_INDUSTRY_EXISTS')
    const council = json(await app().inject({ method: 'GET', url: '/v1/governance/industries/logistics' }))
    expect(council.proposal_types.map((type: { key: string }) => type.key)).toEqual([
      'parameter_change',
      'priorities',
      'ranked_priorities',
      'service_standard',
    ])
    const bad = await session(app(), 'PUT', '/v1/governance/industries/logistics/proposal-types/bad', operator, {
      name,
      rules: {
        method: 'majority',
        quorum_bps: 5000,
        threshold_bps: 5000,
        discussion_min_s: 7200,
        discussion_max_s: 3600,
        voting_period_s: 3600,
        veto_window_s: 600,
        execution_window_s: 600,
        reminder_before_s: 60,
        proposers: 'partners',
        ballots: 'public',
      },
    })
    expectCode(bad, 'GOV_RULES_INVALID')
    const industries = json(await app().inject({ method: 'GET', url: '/v1/governance/industries' }))
    expect(industries.data.map((entry: { code: string }) => entry.code)).toEqual(
      expect.arrayContaining([
        'mobility',
        'education',
        'healthcare',
        'retail',
        'parking',
        'pharmacy',
        'rental',
        'logistics',
      ]),
    )
  })
})
