/**
 * The world the two acceptance suites (tenant isolation, bad input) run in: one tenant with
 * data behind every route of the API, built through the real routes and the real
 * authorisation module (no stand-in token resolver).
 *
 * A tenant is a user who owns an ISV organisation and a merchant organisation. The ISV's
 * sandbox app has a key and registered redirect URIs, and the merchant authorised it for
 * every scope (`grantAuthorization`, the sandbox grant); acting for the merchant with that
 * app auth token, the app opened a store, created a sandbox consumer (owned by the ISV, the
 * app's organisation), topped it up, took a barcode payment from it, refunded part of it,
 * bound the ISV as a profit-sharing receiver and shared profit, and made two unpaid trades.
 * The app has a webhook endpoint with one delivery (a test event). The merchant also approved
 * the app on the consent page, and the code it got back is kept unused.
 *
 * Governance (see {@link openCouncil}, {@link admitPartners} and {@link partnerWorld}): the
 * operator sets up one industry's council with a recruitment batch and a training session; a
 * tenant admitted through the batch is a partner with a proxy, a draft, a proposal in
 * discussion, one in voting with its secret ballot, two proposals enacted while the fixture
 * was built (a policy version and a commitment with its outcome record), an improvement
 * request and the session's one place.
 *
 * @example
 * const a = await tenantWorld(bp(), 'A')
 * await a.act({ method: 'GET', url: `/v1/trades/${a.tradeId}` })
 */
import crypto from 'node:crypto'
import { expect } from 'vitest'
import { governanceJobs } from '../src/governance/index.js'
import { grantAuthorization, type TokenGrantView } from '../src/platform/authorization/index.js'
import type { Platform } from '../src/server/platform.js'
import {
  createAppWithKey,
  ed25519KeyPair,
  json,
  session,
  signed,
  signUp,
  type Injected,
  type SignedCall,
  type Tenant,
  type TestApp,
} from './fixtures.js'

export interface TenantWorld {
  readonly label: string
  /** The user; `organizationId` is the ISV organisation. */
  readonly user: Tenant
  readonly testApp: TestApp
  readonly keyId: string
  /** A merchant organisation the same user owns, which authorised the app. */
  readonly merchantId: string
  /** The sandbox grant: authorization_id, app_auth_token, app_refresh_token. */
  readonly grant: TokenGrantView
  /** An app_auth_code from the consent page, never exchanged. */
  readonly code: string
  readonly redirectUri: string
  readonly storeId: string
  /** A sandbox consumer of the ISV organisation, with money. */
  readonly consumerId: string
  /** A reusable payment code of that consumer. */
  readonly reusableCode: string
  /** A one-time payment code of that consumer, never used. */
  readonly unusedCode: string
  /** A barcode trade, paid, partly refunded, with a profit-sharing request. */
  readonly tradeId: string
  readonly precreatedTradeId: string
  readonly createdTradeId: string
  /** The out_request_no of both the refund and the profit-sharing request on `tradeId`. */
  readonly outRequestNo: string
  /** The bound profit-sharing receiver: the ISV organisation. */
  readonly receiverId: string
  readonly endpointId: string
  readonly endpointUrl: string
  readonly deliveryId: string
  /** The event the delivery carries (a webhook.test event). */
  readonly eventId: string
  /** The bodies the tenant's creates were sent with, by operationId. */
  readonly bodies: Readonly<Record<string, unknown>>
  /** The Idempotency-Key the tenant's create of this operation used. */
  idempotencyKey(operationId: string): string
  /** A signed call as the app, acting for the merchant unless `appAuthToken` says otherwise. */
  act(call: SignedCall): Promise<Injected>
}

/** Every scope the capabilities declare. */
export function allScopes(platform: Platform): string[] {
  return [...platform.registry.scopes.keys()].sort()
}

/** A sandbox grant of these scopes (all by default) to the app, through the real module. */
export function grantScopes(
  platform: Platform,
  appId: string,
  merchantId: string,
  scopes: readonly string[] = allScopes(platform),
): Promise<TokenGrantView> {
  return grantAuthorization(
    platform.storage.db,
    { appId, merchantId, scopes, actor: 'isolation-fixtures', knownScopes: platform.registry.scopes },
    Date.now(),
  )
}

function hiddenField(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html)
  expect(match, `hidden field ${name}`).not.toBeNull()
  return match![1]!.replace(/&amp;/g, '&')
}

export interface ConsentRequest {
  readonly appId: string
  readonly merchantId: string
  readonly redirectUri: string
  readonly scopes: readonly string[]
}

/** The user opens the consent page and approves the app for the merchant; returns the form's answer. */
export async function submitConsent(platform: Platform, user: Tenant, request: ConsentRequest): Promise<Injected> {
  const query = { app_id: request.appId, redirect_uri: request.redirectUri, scope: request.scopes.join(',') }
  const page = await platform.app.inject({
    method: 'GET',
    url: '/oauth/authorize',
    query,
    cookies: { bp_session: user.token },
  })
  expect(page.statusCode, page.body).toBe(200)
  return platform.app.inject({
    method: 'POST',
    url: '/oauth/authorize',
    cookies: { bp_session: user.token },
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({
      ...query,
      csrf_token: hiddenField(page.body, 'csrf_token'),
      merchant_id: request.merchantId,
      decision: 'approve',
    }).toString(),
  })
}

/** The merchant's user approves the app on the consent page; returns the app_auth_code. */
export async function approveOnConsentPage(platform: Platform, user: Tenant, request: ConsentRequest): Promise<string> {
  const decided = await submitConsent(platform, user, request)
  expect(decided.statusCode, decided.body).toBe(302)
  const code = new URL(String(decided.headers.location)).searchParams.get('app_auth_code')
  expect(code).toMatch(/^bpac_/)
  return code!
}

/** Builds a tenant; `label` (A, B, …) names its data, so that two worlds never collide. */
export async function tenantWorld(platform: Platform, label: string): Promise<TenantWorld> {
  const app = platform.app
  const lower = label.toLowerCase()
  const user = await signUp(app, 'isv')
  const expectStatus = (response: Injected, status: number) => {
    expect(response.statusCode, `${label}: ${response.body}`).toBe(status)
    return json(response)
  }

  const merchantId = expectStatus(
    await session(app, 'POST', '/v1/organizations', user.token, {
      name: `tenant ${label} merchant`,
      kind: 'merchant',
      industry: 'education',
    }),
    201,
  ).id as string
  const testApp = await createAppWithKey(app, user, ed25519KeyPair())
  const appUrl = `/v1/organizations/${user.organizationId}/apps/${testApp.appId}`
  const keyId = expectStatus(await session(app, 'GET', `${appUrl}/keys`, user.token), 200).data[0].id as string
  const redirectUri = `https://tenant-${lower}.example.com/oauth/callback`
  expectStatus(await session(app, 'PUT', `${appUrl}/redirect-uris`, user.token, { redirect_uris: [redirectUri] }), 200)
  const grant = await grantScopes(platform, testApp.appId, merchantId)
  const code = await approveOnConsentPage(platform, user, {
    appId: testApp.appId,
    merchantId,
    redirectUri,
    scopes: allScopes(platform),
  })

  const act = (call: SignedCall) => signed(app, testApp, { appAuthToken: grant.app_auth_token, ...call })
  const idempotencyKey = (operationId: string) => `tenant-${lower}-${operationId}`
  const bodies: Record<string, unknown> = {}
  const create = async (operationId: string, url: string, body: unknown, status: number) => {
    bodies[operationId] = body
    return expectStatus(await act({ method: 'POST', url, body, idempotencyKey: idempotencyKey(operationId) }), status)
  }

  const storeId = (
    await create(
      'createStore',
      '/v1/stores',
      { out_store_no: `${label}-1`, name: `${label} 五道口店`, address: '北京市海淀区成府路 1 号' },
      201,
    )
  ).id as string
  const consumerId = (await create('createSandboxConsumer', '/v1/sandbox/consumers', { display_name: '小明' }, 201))
    .id as string
  const consumerUrl = `/v1/sandbox/consumers/${consumerId}`
  await create('topUpSandboxConsumer', `${consumerUrl}/top-ups`, { amount: 100_000 }, 201)
  const mint = async (reusable: boolean) =>
    expectStatus(await act({ method: 'POST', url: `${consumerUrl}/payment-codes`, body: { reusable } }), 201)
      .code as string
  const reusableCode = await mint(true)

  const paid = await create(
    'payTrade',
    '/v1/trades/pay',
    { out_trade_no: `${label}-PAY-1`, total_amount: 10_000, subject: '咖啡 Coffee', auth_code: await mint(false) },
    200,
  )
  expect(paid.status, `${label}: the barcode payment`).toBe('paid')
  const tradeId = paid.id as string
  const outRequestNo = `req-${lower}-1`
  const receiverId = user.organizationId
  await create('refundTrade', `/v1/trades/${tradeId}/refunds`, { out_request_no: outRequestNo, amount: 1000 }, 201)
  await create(
    'bindRoyaltyReceiver',
    '/v1/royalty-receivers',
    { receiver_id: receiverId, name: `tenant ${label} ISV`, memo: 'commission' },
    201,
  )
  await create(
    'settleRoyalty',
    `/v1/trades/${tradeId}/royalties`,
    { out_request_no: outRequestNo, royalties: [{ receiver_id: receiverId, amount: 500 }] },
    201,
  )
  // Unpaid trades outlive the suite: an expired one would close when read.
  const unpaid = { total_amount: 2500, subject: '停车费 Parking', timeout_seconds: 86_400 }
  const precreatedTradeId = (
    await create('precreateTrade', '/v1/trades/precreate', { ...unpaid, out_trade_no: `${label}-QR-1` }, 201)
  ).id as string
  const createdTradeId = (
    await create(
      'createTrade',
      '/v1/trades',
      { ...unpaid, out_trade_no: `${label}-BUY-1`, buyer_id: consumerId, store_id: storeId },
      201,
    )
  ).id as string
  const unusedCode = await mint(false)

  const endpointUrl = `https://tenant-${lower}.example.com/webhooks`
  const endpointId = expectStatus(
    await session(app, 'POST', `${appUrl}/webhook-endpoints`, user.token, { url: endpointUrl }),
    201,
  ).id as string
  const delivery = expectStatus(
    await session(app, 'POST', `${appUrl}/webhook-endpoints/${endpointId}/test`, user.token),
    202,
  )

  return {
    label,
    user,
    testApp,
    keyId,
    merchantId,
    grant,
    code,
    redirectUri,
    storeId,
    consumerId,
    reusableCode,
    unusedCode,
    tradeId,
    precreatedTradeId,
    createdTradeId,
    outRequestNo,
    receiverId,
    endpointId,
    endpointUrl,
    deliveryId: delivery.id as string,
    eventId: delivery.event_id as string,
    bodies,
    idempotencyKey,
    act,
  }
}

// ---- Governance ------------------------------------------------------------------------

const hourMs = 3_600_000
const dayS = 86_400

/** One industry's council as the operator sets it up: proposal types, a batch, a training session. */
export interface Council {
  readonly industry: string
  /** Long windows and secret ballots: the proposals that outlive the fixture are of this type. */
  readonly typeKey: string
  /** Minute-long windows, for the proposals enacted while the fixture is built. */
  readonly quickTypeKey: string
  /** Open for a month, recruiting for `industry`. */
  readonly batchId: string
  /** A course of `industry` in a month, with a single place. */
  readonly sessionId: string
  readonly operatorToken: string
  /** What the operator sent, by operationId. */
  readonly bodies: Readonly<Record<string, unknown>>
}

/** A partner's governance write, made with an Idempotency-Key that another caller may replay. */
export interface GovernanceWrite {
  readonly operationId: string
  readonly method: string
  readonly url: string
  readonly body: unknown
  readonly idempotencyKey: string
}

export interface PartnerWorld {
  readonly user: Tenant
  readonly applicationId: string
  /** What the partner applied with; its profiles are private to it and the operator. */
  readonly application: { readonly company: { description: string }; readonly founder: { record: string } }
  /** The member named proxy of the partner's seat, if any. */
  readonly proxy: Tenant | null
  /** A draft: the partner's alone until submitted. */
  readonly draftId: string
  /** A proposal in discussion, with a comment of the partner. */
  readonly proposalId: string
  readonly commentId: string
  /** A proposal in voting with secret ballots: the partner voted `no` with `ballotReason`. */
  readonly votingId: string
  readonly votingHash: string
  readonly ballotReason: string
  readonly requestId: string
  /** Enacted while the fixture was built: a policy version, and a commitment with its outcome. */
  readonly policyVersion: number
  readonly outcomeId: string
  readonly inboxIds: readonly string[]
  /** The bodies the partner's writes were sent with, by operationId (the last of each). */
  readonly bodies: Readonly<Record<string, unknown>>
  readonly writes: readonly GovernanceWrite[]
}

function governanceCaller(platform: Platform) {
  return async (token: string, method: string, url: string, status: number, body?: unknown, key?: string) => {
    const response = await session(platform.app, method, url, token, body, key ? { 'idempotency-key': key } : {})
    expect(response.statusCode, `${method} ${url}: ${response.body}`).toBe(status)
    return json(response)
  }
}

export const governanceText = (text: string) => ({ en: text, zh: `${text}（中文）` })

/** Rules every field of which is set; `overrides` changes some. */
export function proposalRules(overrides: Record<string, unknown> = {}) {
  return {
    method: 'majority',
    quorum_bps: 0,
    threshold_bps: 0,
    discussion_min_s: 0,
    discussion_max_s: 60 * dayS,
    voting_period_s: 30 * dayS,
    veto_window_s: dayS,
    execution_window_s: 7 * dayS,
    reminder_before_s: 0,
    proposers: 'partners_and_operator',
    ballots: 'secret',
    ...overrides,
  }
}

/** The operator opens a council: two proposal types, a batch and a one-place training session. */
export async function openCouncil(
  platform: Platform,
  operatorLogin: { email: string; password: string },
  industry = 'education',
): Promise<Council> {
  const login = await platform.app.inject({ method: 'POST', url: '/v1/sessions', payload: operatorLogin })
  expect(login.statusCode, login.body).toBe(201)
  const operatorToken = json(login).token as string
  const call = governanceCaller(platform)
  const now = Date.now()
  const typeKey = 'isolation_secret'
  const quickTypeKey = 'isolation_quick'
  const bodies: Record<string, unknown> = {
    putProposalType: { name: governanceText('Secret ballot, long windows'), rules: proposalRules() },
    createRecruitmentBatch: {
      name: `${industry} partners`,
      industries: [industry],
      criteria: {},
      opens_at: new Date(now - 60_000).toISOString(),
      closes_at: new Date(now + 30 * 24 * hourMs).toISOString(),
    },
    createTrainingSession: {
      kind: 'course',
      title: governanceText('Settlement for partners'),
      industry,
      starts_at: new Date(now + 30 * 24 * hourMs).toISOString(),
      capacity: 1,
    },
  }
  const types = `/v1/governance/industries/${industry}/proposal-types`
  await call(operatorToken, 'PUT', `${types}/${typeKey}`, 200, bodies.putProposalType)
  const quickRules = proposalRules({
    discussion_max_s: 3600,
    voting_period_s: 60,
    veto_window_s: 60,
    execution_window_s: 3600,
    ballots: 'public',
  })
  await call(operatorToken, 'PUT', `${types}/${quickTypeKey}`, 200, {
    name: governanceText('Quick'),
    rules: quickRules,
  })
  const batchId = (await call(operatorToken, 'POST', '/v1/governance/batches', 201, bodies.createRecruitmentBatch))
    .id as string
  const sessionId = (
    await call(operatorToken, 'POST', '/v1/governance/training-sessions', 201, bodies.createTrainingSession)
  ).id as string
  return { industry, typeKey, quickTypeKey, batchId, sessionId, operatorToken, bodies }
}

/** What an ISV applies with; the profiles carry a marker that must stay private. */
export function applicationBody(council: Council, label: string) {
  const marker = crypto.randomBytes(6).toString('hex')
  const lower = label.toLowerCase()
  return {
    batch_id: council.batchId,
    industries: [council.industry],
    company: {
      name: `${label} 科技`,
      description: `Campus payments, private profile ${marker}`,
      website: `https://tenant-${lower}.example.com`,
      founded_year: 2018,
      employees: 40,
    },
    founder: {
      name: '王芳',
      title: 'CEO',
      record: `Built two campus payment systems, private record ${marker}`,
      links: [`https://tenant-${lower}.example.com/founder`],
    },
  }
}

/**
 * Each of `partners` applies to the council's batch and the operator admits it; each of
 * `applicants` applies and stays undecided. Answers the application of each organisation.
 */
export async function admitPartners(
  platform: Platform,
  council: Council,
  partners: ReadonlyArray<{ readonly label: string; readonly user: Tenant }>,
  applicants: ReadonlyArray<{ readonly label: string; readonly user: Tenant }> = [],
): Promise<Map<string, { id: string; body: ReturnType<typeof applicationBody> }>> {
  const call = governanceCaller(platform)
  const applications = new Map<string, { id: string; body: ReturnType<typeof applicationBody> }>()
  for (const { label, user } of [...partners, ...applicants]) {
    const body = applicationBody(council, label)
    const url = `/v1/organizations/${user.organizationId}/governance/applications`
    const key = `tenant-${label.toLowerCase()}-applyToRecruitmentBatch`
    applications.set(user.organizationId, { id: (await call(user.token, 'POST', url, 201, body, key)).id, body })
  }
  for (const { user } of partners) {
    const decision = { decision: 'admit', reason: 'Meets every criterion of the batch' }
    const url = `/v1/governance/applications/${applications.get(user.organizationId)!.id}/decision`
    expect((await call(council.operatorToken, 'POST', url, 200, decision)).status).toBe('admitted')
  }
  return applications
}

/** Runs the governance job (tally, enactment) as its timer would at `at`. */
export async function advanceGovernance(platform: Platform, at: number): Promise<void> {
  const job = governanceJobs(platform.registry).find((spec) => spec.name === 'governance.advance')
  expect(job, 'the governance job').toBeDefined()
  await job!.run(platform.storage.db, at, () => at)
}

/**
 * Gives an admitted partner its governance data (see {@link PartnerWorld}), through the real
 * routes; the job is run by hand at a later instant to enact two quick proposals. Each write
 * is sent with an Idempotency-Key `tenant-<label>-<operationId>[-n]`.
 */
export async function partnerWorld(
  platform: Platform,
  council: Council,
  partner: { readonly label: string; readonly user: Tenant; readonly proxy?: Tenant },
  application: { readonly id: string; readonly body: ReturnType<typeof applicationBody> },
): Promise<PartnerWorld> {
  const { label, user } = partner
  const call = governanceCaller(platform)
  const lower = label.toLowerCase()
  const org = `/v1/organizations/${user.organizationId}/governance`
  const bodies: Record<string, unknown> = { applyToRecruitmentBatch: application.body }
  const writes: GovernanceWrite[] = [
    {
      operationId: 'applyToRecruitmentBatch',
      method: 'POST',
      url: `${org}/applications`,
      body: application.body,
      idempotencyKey: `tenant-${lower}-applyToRecruitmentBatch`,
    },
  ]
  const counts = new Map<string, number>()
  const write = async (operationId: string, method: string, url: string, status: number, body?: unknown) => {
    const count = (counts.get(operationId) ?? 0) + 1
    counts.set(operationId, count)
    const idempotencyKey = `tenant-${lower}-${operationId}${count === 1 ? '' : `-${count}`}`
    if (body !== undefined) bodies[operationId] = body
    writes.push({ operationId, method, url, body, idempotencyKey })
    return call(user.token, method, url, status, body, idempotencyKey)
  }
  const propose = async (type: string, title: string, actions: unknown[] = []) =>
    (
      await write('createProposal', 'POST', `${org}/proposals`, 201, {
        industry: council.industry,
        type,
        title: governanceText(`${label}: ${title}`),
        body: governanceText(`${title}, explained by ${label}`),
        actions,
      })
    ).id as string
  const steer = (id: string, step: 'submit' | 'open-voting') =>
    write(
      step === 'submit' ? 'submitProposal' : 'openProposalVoting',
      'POST',
      `/v1/governance/proposals/${id}/${step}`,
      200,
    )
  const vote = (id: string, ballot: Record<string, unknown>) =>
    write('castGovernanceVote', 'POST', `${org}/proposals/${id}/votes`, 200, ballot)

  // Two quick proposals pass, and the job, run as at a later instant, enacts them: one changes
  // a parameter (a policy version, to take effect then), the other is a commitment (an outcome).
  const cap = [{ parameter: 'payment.royalty_share_max_bps', scope: 'industry', op: 'set', value: 3000 }]
  const enacted: string[] = []
  for (const [title, actions] of [
    ['Keep the profit-sharing cap', cap],
    ['Answer partner tickets within a day', []],
  ] as const) {
    const id = await propose(council.quickTypeKey, title, [...actions])
    await steer(id, 'submit')
    const opened = await steer(id, 'open-voting')
    await vote(id, { content_hash: opened.content_hash, vote: 'yes' })
    enacted.push(id)
  }
  // A day ahead, so that the policy version cannot come into force while a suite runs.
  await advanceGovernance(platform, Date.now() + 24 * hourMs)
  await advanceGovernance(platform, Date.now() + 25 * hourMs)
  const read = async (url: string) => {
    const response = await platform.app.inject({ method: 'GET', url })
    expect(response.statusCode, `${url}: ${response.body}`).toBe(200)
    return json(response)
  }
  const [withPolicy, commitment] = await Promise.all(enacted.map((id) => read(`/v1/governance/proposals/${id}`)))
  expect([withPolicy.state, commitment.state], `${label}: the quick proposals`).toEqual(['enacted', 'enacted'])
  expect(withPolicy.policy_versions).toHaveLength(1)
  const outcomes = await read(`/v1/governance/outcomes?industry=${council.industry}&limit=100`)
  const outcome = outcomes.data.find((entry: { proposal_id: string }) => entry.proposal_id === commitment.id)
  expect(outcome, `${label}: the commitment's outcome`).toBeDefined()

  let proxy: Tenant | null = null
  if (partner.proxy !== undefined) {
    proxy = partner.proxy
    const url = `${org}/seats/${council.industry}/proxy`
    await write('setGovernanceProxy', 'PUT', url, 200, { email: proxy.email })
  }
  const draftId = await propose(council.typeKey, 'A draft, not yet shared')
  const proposalId = await propose(council.typeKey, 'Office hours every month')
  await steer(proposalId, 'submit')
  const commentId = (
    await write('commentOnProposal', 'POST', `${org}/proposals/${proposalId}/comments`, 201, {
      body: `${label} explains the proposal`,
    })
  ).id as string
  const votingId = await propose(council.typeKey, 'A training budget')
  await steer(votingId, 'submit')
  const voting = await steer(votingId, 'open-voting')
  const ballotReason = `secret reason ${crypto.randomBytes(6).toString('hex')}`
  await vote(votingId, { content_hash: voting.content_hash, vote: 'no', reason: ballotReason })
  const requestId = (
    await write('fileImprovementRequest', 'POST', `${org}/improvement-requests`, 201, {
      capability: 'payment',
      title: `${label}: refunds in batches`,
      body: 'Let an app refund many trades in one request',
    })
  ).id as string
  const enrolled = await write(
    'enrolInTraining',
    'POST',
    `${org}/training-sessions/${council.sessionId}/enrolment`,
    201,
  )
  expect(enrolled.status, `${label}: the training session's place`).toBe('enrolled')
  const inbox = await call(user.token, 'GET', `${org}/inbox?limit=100`, 200)
  expect(inbox.data.length, `${label}: the inbox`).toBeGreaterThan(0)

  return {
    user,
    applicationId: application.id,
    application: application.body,
    proxy,
    draftId,
    proposalId,
    commentId,
    votingId,
    votingHash: voting.content_hash as string,
    ballotReason,
    requestId,
    policyVersion: withPolicy.policy_versions[0] as number,
    outcomeId: outcome.id as string,
    inboxIds: inbox.data.map((message: { id: string }) => message.id),
    bodies,
    writes,
  }
}
