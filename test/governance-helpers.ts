/**
 * Builders for governance suites: the operator's session, partners admitted through a real
 * recruitment batch, proposal types with short windows, and a proposal driven through its
 * lifecycle over HTTP with the job run by hand after moving the clock.
 */
import type { FastifyInstance } from 'fastify'
import { expect } from 'vitest'
import type { Platform } from '../src/server/platform.js'
import { json, session, signUp, type Injected, type Tenant } from './fixtures.js'

export const hourMs = 3_600_000

/** Windows short enough to run many lifecycles inside one session's lifetime. */
export const quickRules = {
  method: 'majority',
  quorum_bps: 5000,
  threshold_bps: 5000,
  discussion_min_s: 0,
  discussion_max_s: 24 * 3600,
  voting_period_s: 3600,
  veto_window_s: 600,
  execution_window_s: 3600,
  reminder_before_s: 600,
  proposers: 'partners',
  ballots: 'public',
} as const

/** Session lifetime for suites that move the clock by days. */
export const governanceTestConfig = { BASEPLATE_SESSION_TTL_S: String(30 * 24 * 3600) }

export function expectStatus(response: Injected, status: number): any {
  expect(response.statusCode, response.body).toBe(status)
  return json(response)
}

export function expectCode(response: Injected, code: string): void {
  expect(json(response).code, response.body).toBe(code)
}

export async function operatorToken(app: FastifyInstance, login: { email: string; password: string }) {
  const response = await app.inject({ method: 'POST', url: '/v1/sessions', payload: login })
  return expectStatus(response, 201).token as string
}

export async function putType(
  app: FastifyInstance,
  operator: string,
  industry: string,
  key: string,
  rules: Record<string, unknown> = {},
) {
  const response = await session(app, 'PUT', `/v1/governance/industries/${industry}/proposal-types/${key}`, operator, {
    name: { en: key, zh: key },
    rules: { ...quickRules, ...rules },
  })
  return expectStatus(response, 200)
}

/** Opens a batch now, has each ISV apply, and admits them all to the industries. */
export async function admit(
  app: FastifyInstance,
  operator: string,
  tenants: readonly Tenant[],
  industries: readonly string[],
  now: number,
): Promise<void> {
  const batch = expectStatus(
    await session(app, 'POST', '/v1/governance/batches', operator, {
      name: `batch ${now}`,
      industries,
      criteria: {},
      opens_at: new Date(now - 1000).toISOString(),
      closes_at: new Date(now + 30 * 24 * hourMs).toISOString(),
    }),
    201,
  )
  for (const tenant of tenants) {
    const application = expectStatus(
      await session(app, 'POST', `/v1/organizations/${tenant.organizationId}/governance/applications`, tenant.token, {
        batch_id: batch.id,
        industries,
        company: { name: 'Acme 科技', description: 'Mobility and education software' },
        founder: { name: '王芳', title: 'CEO', record: 'Built two campus payment systems' },
      }),
      201,
    )
    expectStatus(
      await session(app, 'POST', `/v1/governance/applications/${application.id}/decision`, operator, {
        decision: 'admit',
        reason: 'Meets every criterion of the batch',
      }),
      200,
    )
  }
}

export async function signUpIsvs(app: FastifyInstance, count: number): Promise<Tenant[]> {
  const tenants: Tenant[] = []
  for (let index = 0; index < count; index += 1) tenants.push(await signUp(app, 'isv'))
  return tenants
}

export function feeAction(value: number, extra: Record<string, unknown> = {}) {
  return { parameter: 'payment.fee_rate_bps', scope: 'industry', op: 'set', value, ...extra }
}

export function content(title: string, extra: Record<string, unknown> = {}) {
  return { title: { en: title, zh: title }, body: { en: `${title}, explained`, zh: `${title}，说明` }, ...extra }
}

/** Drafts, submits and opens voting; answers the proposal as voting opens. */
export async function proposeAndOpen(
  app: FastifyInstance,
  proposer: Tenant,
  body: Record<string, unknown>,
): Promise<any> {
  const created = expectStatus(
    await session(
      app,
      'POST',
      `/v1/organizations/${proposer.organizationId}/governance/proposals`,
      proposer.token,
      body,
    ),
    201,
  )
  expectStatus(await session(app, 'POST', `/v1/governance/proposals/${created.id}/submit`, proposer.token), 200)
  return expectStatus(
    await session(app, 'POST', `/v1/governance/proposals/${created.id}/open-voting`, proposer.token),
    200,
  )
}

export function vote(
  app: FastifyInstance,
  voter: Tenant,
  proposal: { id: string; content_hash: string },
  ballot: object,
) {
  return session(
    app,
    'POST',
    `/v1/organizations/${voter.organizationId}/governance/proposals/${proposal.id}/votes`,
    voter.token,
    { content_hash: proposal.content_hash, ...ballot },
  )
}

export async function readProposal(app: FastifyInstance, id: string): Promise<any> {
  return expectStatus(await app.inject({ method: 'GET', url: `/v1/governance/proposals/${id}` }), 200)
}

/** Moves the clock and runs the platform's jobs once, as the timer would. */
export async function elapse(platform: Platform, clock: { advance(ms: number): void }, ms: number): Promise<void> {
  clock.advance(ms)
  await platform.workers.jobs.runOnce()
}
