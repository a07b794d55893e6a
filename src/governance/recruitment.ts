/**
 * Partner recruitment by cohort: the operator opens a batch for some industries with
 * criteria and dates; ISVs apply with a company and a founder profile; the criteria the
 * platform can measure are evaluated automatically and shown to both sides; the operator
 * admits, waitlists or rejects with a reason. Admission gives one seat per applied industry.
 *
 * A criterion the platform cannot measure on this deployment (a metric no module provides)
 * is shown as unmeasured (`met: null`) and left to the operator's review, never guessed.
 *
 * @example
 * const batch = await createBatch(tx, operator, { name: '第一批', industries: ['mobility'], criteria, … }, now)
 * const application = await apply(tx, metrics, principal, organizationId, { batch_id: batch.id, … }, now)
 * await decide(tx, metrics, operator, application.id, { decision: 'admit', reason: '…' }, now)
 */
import type { Kysely } from 'kysely'
import { AppError } from '../errors.js'
import { appendAudit } from '../platform/audit/audit-log.js'
import { organizationDirectory } from '../platform/identity/directory.js'
import { requireMember, roles } from '../platform/identity/service.js'
import { newId } from '../platform/ids.js'
import type { UserPrincipal } from '../server/route-kit.js'
import { requireIndustry, requireOperator } from './council.js'
import { notify } from './events.js'
import type { ApplicationStatus, GovApplicationsTable, GovBatchesTable, GovernanceTables } from './tables.js'

type Db = Kysely<GovernanceTables>

export interface Criteria {
  readonly merchants_served_min?: number | undefined
  readonly live_apps_min?: number | undefined
  readonly payment_volume_min?: number | undefined
  readonly open_risk_incidents_max?: number | undefined
}

/**
 * Measures of an applicant, from platform data. Each returns null when this deployment has
 * no way to measure it. Capabilities that own the data (payments, risk) plug their measures
 * in through {@link createGovernance}'s `metrics` option.
 */
export interface PartnerMetrics {
  merchantsServed(db: Kysely<any>, organizationId: string, industry: string): Promise<number | null>
  liveApps(db: Kysely<any>, organizationId: string): Promise<number | null>
  paymentVolume(db: Kysely<any>, organizationId: string, industry: string): Promise<number | null>
  openRiskIncidents(db: Kysely<any>, organizationId: string): Promise<number | null>
}

/** What the platform itself knows: authorisations by merchants of the industry, and live apps. */
export const platformMetrics: PartnerMetrics = {
  async merchantsServed(db, organizationId, industry) {
    const row = await (db as Kysely<any>)
      .selectFrom('authorizations')
      .innerJoin('apps', 'apps.id', 'authorizations.app_id')
      .innerJoin('organizations', 'organizations.id', 'authorizations.merchant_id')
      .select((eb) => eb.fn.count('authorizations.merchant_id').distinct().as('count'))
      .where('apps.organization_id', '=', organizationId)
      .where('authorizations.status', '=', 'active')
      .where('organizations.industry', '=', industry)
      .executeTakeFirstOrThrow()
    return Number(row.count)
  },
  async liveApps(db, organizationId) {
    const row = await (db as Db)
      .selectFrom('apps')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('organization_id', '=', organizationId)
      .where('environment', '=', 'live')
      .executeTakeFirstOrThrow()
    return Number(row.count)
  },
  paymentVolume: async () => null,
  openRiskIncidents: async () => null,
}

export interface CriterionResult {
  readonly criterion: string
  readonly industry: string | null
  readonly required: number
  readonly measured: number | null
  /** null: not measurable here; the operator decides. */
  readonly met: boolean | null
}

export async function evaluate(
  db: Kysely<any>,
  metrics: PartnerMetrics,
  criteria: Criteria,
  organizationId: string,
  industries: readonly string[],
): Promise<CriterionResult[]> {
  const results: CriterionResult[] = []
  const atLeast = (criterion: string, industry: string | null, required: number, measured: number | null) =>
    results.push({ criterion, industry, required, measured, met: measured === null ? null : measured >= required })
  for (const industry of industries) {
    if (criteria.merchants_served_min !== undefined) {
      const measured = await metrics.merchantsServed(db, organizationId, industry)
      atLeast('merchants_served_min', industry, criteria.merchants_served_min, measured)
    }
    if (criteria.payment_volume_min !== undefined) {
      const measured = await metrics.paymentVolume(db, organizationId, industry)
      atLeast('payment_volume_min', industry, criteria.payment_volume_min, measured)
    }
  }
  if (criteria.live_apps_min !== undefined) {
    atLeast('live_apps_min', null, criteria.live_apps_min, await metrics.liveApps(db, organizationId))
  }
  if (criteria.open_risk_incidents_max !== undefined) {
    const measured = await metrics.openRiskIncidents(db, organizationId)
    const required = criteria.open_risk_incidents_max
    results.push({
      criterion: 'open_risk_incidents_max',
      industry: null,
      required,
      measured,
      met: measured === null ? null : measured <= required,
    })
  }
  return results
}

export async function createBatch(
  db: Kysely<any>,
  principal: UserPrincipal,
  input: { name: string; industries: string[]; criteria: Criteria; opens_at: number; closes_at: number },
  now: number,
): Promise<GovBatchesTable> {
  requireOperator(principal)
  if (input.closes_at <= input.opens_at) {
    throw new AppError('GOV_BATCH_INVALID', { field: 'body.closes_at', message: 'closes_at must be after opens_at' })
  }
  const industries = [...new Set(input.industries)]
  for (const [index, code] of industries.entries()) await requireIndustry(db, code, `body.industries.${index}`)
  const row: GovBatchesTable = {
    id: newId('gbat'),
    name: input.name,
    industries: JSON.stringify(industries),
    criteria: JSON.stringify(input.criteria),
    opens_at: input.opens_at,
    closes_at: input.closes_at,
    created_by: principal.userId,
    created_at: now,
  }
  await (db as Db).insertInto('gov_batches').values(row).execute()
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: 'governance.batch.created',
      target: row.id,
      data: { name: row.name, industries, criteria: input.criteria, opens_at: row.opens_at, closes_at: row.closes_at },
    },
    now,
  )
  return row
}

async function requireBatch(db: Kysely<any>, id: string, field: string): Promise<GovBatchesTable> {
  const row = await (db as Db).selectFrom('gov_batches').selectAll().where('id', '=', id).executeTakeFirst()
  if (row === undefined) throw new AppError('GOV_BATCH_NOT_FOUND', { field })
  return row
}

export interface ApplicationInput {
  readonly batch_id: string
  readonly industries: string[]
  readonly company: Readonly<Record<string, unknown>>
  readonly founder: Readonly<Record<string, unknown>>
}

export async function apply(
  db: Kysely<any>,
  metrics: PartnerMetrics,
  principal: UserPrincipal,
  organizationId: string,
  input: ApplicationInput,
  now: number,
): Promise<GovApplicationsTable> {
  await requireMember(db, principal, organizationId, roles.write)
  const organization = await organizationDirectory.organization(db, organizationId)
  if (organization?.kind !== 'isv') throw new AppError('GOV_APPLICANT_NOT_ISV')
  const batch = await requireBatch(db, input.batch_id, 'body.batch_id')
  if (now < batch.opens_at || now >= batch.closes_at) {
    throw new AppError('GOV_BATCH_CLOSED', {
      message:
        `The batch takes applications from ${new Date(batch.opens_at).toISOString()} ` +
        `until ${new Date(batch.closes_at).toISOString()}`,
    })
  }
  const offered = JSON.parse(batch.industries) as string[]
  const industries = [...new Set(input.industries)]
  for (const [index, industry] of industries.entries()) {
    if (!offered.includes(industry)) {
      throw new AppError('GOV_APPLICATION_INDUSTRY_INVALID', {
        field: `body.industries.${index}`,
        message: `This batch recruits for ${offered.join(', ')}`,
      })
    }
  }
  const evaluation = await evaluate(db, metrics, JSON.parse(batch.criteria) as Criteria, organizationId, industries)
  const row: GovApplicationsTable = {
    id: newId('gapp'),
    batch_id: batch.id,
    organization_id: organizationId,
    industries: JSON.stringify(industries),
    company: JSON.stringify(input.company),
    founder: JSON.stringify(input.founder),
    evaluation: JSON.stringify(evaluation),
    status: 'submitted',
    decision_reason: null,
    decided_by: null,
    decided_at: null,
    created_at: now,
  }
  const inserted = await (db as Db)
    .insertInto('gov_applications')
    .values(row)
    .onConflict((oc) => oc.columns(['batch_id', 'organization_id']).doNothing())
    .executeTakeFirst()
  if (inserted.numInsertedOrUpdatedRows !== 1n) throw new AppError('GOV_APPLICATION_EXISTS', { field: 'body.batch_id' })
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: 'governance.application.submitted',
      target: row.id,
      data: { batch_id: batch.id, organization_id: organizationId, industries, evaluation },
    },
    now,
  )
  return row
}

/** The operator's decision, with the criteria measured again at that moment. */
export async function decide(
  db: Kysely<any>,
  metrics: PartnerMetrics,
  principal: UserPrincipal,
  applicationId: string,
  input: { decision: 'admit' | 'waitlist' | 'reject'; reason: string },
  now: number,
): Promise<GovApplicationsTable> {
  requireOperator(principal)
  const existing = await (db as Db)
    .selectFrom('gov_applications')
    .selectAll()
    .where('id', '=', applicationId)
    .executeTakeFirst()
  if (existing === undefined) throw new AppError('GOV_APPLICATION_NOT_FOUND', { field: 'params.application_id' })
  if (existing.status === 'admitted' || existing.status === 'rejected') {
    throw new AppError('GOV_APPLICATION_DECIDED', { details: { status: existing.status } })
  }
  const batch = await requireBatch(db, existing.batch_id, 'params.application_id')
  const industries = JSON.parse(existing.industries) as string[]
  const evaluation = await evaluate(
    db,
    metrics,
    JSON.parse(batch.criteria) as Criteria,
    existing.organization_id,
    industries,
  )
  const status: ApplicationStatus =
    input.decision === 'admit' ? 'admitted' : input.decision === 'waitlist' ? 'waitlisted' : 'rejected'
  const updated = await (db as Db)
    .updateTable('gov_applications')
    .set({
      status,
      evaluation: JSON.stringify(evaluation),
      decision_reason: input.reason,
      decided_by: principal.userId,
      decided_at: now,
    })
    .where('id', '=', applicationId)
    .where('status', '=', existing.status)
    .executeTakeFirst()
  if (updated.numUpdatedRows !== 1n) throw new AppError('GOV_CONFLICT')
  if (status === 'admitted') {
    for (const industry of industries) {
      await (db as Db)
        .insertInto('gov_partners')
        .values({
          organization_id: existing.organization_id,
          industry,
          status: 'active',
          application_id: applicationId,
          admitted_at: now,
        })
        .onConflict((oc) => oc.columns(['organization_id', 'industry']).doUpdateSet({ status: 'active' }))
        .execute()
    }
  }
  await notify(
    db,
    'governance.application.decided',
    [existing.organization_id],
    { application_id: applicationId, batch_id: batch.id, status, reason: input.reason, industries },
    now,
  )
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: 'governance.application.decided',
      target: applicationId,
      data: { organization_id: existing.organization_id, status, reason: input.reason, industries, evaluation },
    },
    now,
  )
  return {
    ...existing,
    status,
    evaluation: JSON.stringify(evaluation),
    decision_reason: input.reason,
    decided_by: principal.userId,
    decided_at: now,
  }
}

export async function listBatches(db: Kysely<any>): Promise<GovBatchesTable[]> {
  return (db as Db).selectFrom('gov_batches').selectAll().orderBy('opens_at', 'desc').orderBy('id').limit(100).execute()
}

export async function listApplications(
  db: Kysely<any>,
  where: { batchId?: string; organizationId?: string },
  limit: number,
  after?: string,
): Promise<GovApplicationsTable[]> {
  let query = (db as Db)
    .selectFrom('gov_applications')
    .selectAll()
    .orderBy('id')
    .limit(limit + 1)
  if (where.batchId !== undefined) query = query.where('batch_id', '=', where.batchId)
  if (where.organizationId !== undefined) query = query.where('organization_id', '=', where.organizationId)
  if (after !== undefined) query = query.where('id', '>', after)
  return query.execute()
}

export { requireBatch }
