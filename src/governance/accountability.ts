/**
 * Follow-through for decisions that cannot execute themselves (a service standard, a
 * commitment): when such a proposal is enacted it gets an outcome record with an owner,
 * milestones, a progress figure and a review date, which the operator keeps current in
 * public (Decidim's accountability component, Loomio's outcome with `review_on`).
 *
 * @example
 * await updateOutcome(tx, operator, outcomeId, { owner: 'Platform ops', status: 'in_progress' }, now)
 */
import type { Kysely } from 'kysely'
import { AppError } from '../errors.js'
import { appendAudit } from '../platform/audit/audit-log.js'
import { newId } from '../platform/ids.js'
import type { UserPrincipal } from '../server/route-kit.js'
import { requireOperator } from './council.js'
import type { GovernanceTables, GovOutcomesTable, GovProposalsTable, OutcomeStatus } from './tables.js'

type Db = Kysely<GovernanceTables>

/** A new outcome is reviewed this long after enactment unless the operator sets a date. */
const reviewAfterMs = 90 * 86_400_000
export const milestonesMax = 50

export interface Milestone {
  readonly title: string
  readonly due_on: number | null
  readonly done_at: number | null
}

export async function createOutcome(db: Kysely<any>, proposal: GovProposalsTable, now: number) {
  const row: GovOutcomesTable = {
    id: newId('gout'),
    proposal_id: proposal.id,
    industry: proposal.industry,
    owner: null,
    status: 'not_started',
    progress_bps: 0,
    review_on: now + reviewAfterMs,
    milestones: '[]',
    created_at: now,
    updated_at: now,
  }
  await (db as Db).insertInto('gov_outcomes').values(row).execute()
  await appendAudit(
    db,
    { actor: 'system', action: 'governance.outcome.created', target: row.id, data: { proposal_id: proposal.id } },
    now,
  )
  return row
}

export interface OutcomeUpdate {
  readonly owner?: string | undefined
  readonly status?: OutcomeStatus | undefined
  readonly progress_bps?: number | undefined
  readonly review_on?: number | undefined
  readonly milestones?: readonly Milestone[] | undefined
}

export async function updateOutcome(
  db: Kysely<any>,
  principal: UserPrincipal,
  id: string,
  update: OutcomeUpdate,
  now: number,
): Promise<GovOutcomesTable> {
  requireOperator(principal)
  const existing = await (db as Db).selectFrom('gov_outcomes').selectAll().where('id', '=', id).executeTakeFirst()
  if (existing === undefined) throw new AppError('GOV_OUTCOME_NOT_FOUND', { field: 'params.outcome_id' })
  const row: GovOutcomesTable = {
    ...existing,
    owner: update.owner ?? existing.owner,
    status: update.status ?? existing.status,
    progress_bps: update.progress_bps ?? (update.status === 'done' ? 10_000 : existing.progress_bps),
    review_on: update.review_on ?? existing.review_on,
    milestones: update.milestones === undefined ? existing.milestones : JSON.stringify(update.milestones),
    updated_at: now,
  }
  const { id: _id, ...rest } = row
  await (db as Db).updateTable('gov_outcomes').set(rest).where('id', '=', id).execute()
  await appendAudit(
    db,
    { actor: principal.userId, action: 'governance.outcome.updated', target: id, data: { ...update } },
    now,
  )
  return row
}

export async function listOutcomes(db: Kysely<any>, industry: string | undefined, limit: number, after?: string) {
  let query = (db as Db)
    .selectFrom('gov_outcomes')
    .selectAll()
    .orderBy('id')
    .limit(limit + 1)
  if (industry !== undefined) query = query.where('industry', '=', industry)
  if (after !== undefined) query = query.where('id', '>', after)
  return query.execute()
}
