/**
 * Reading and locking proposals, shared by the lifecycle, voting and view code. A proposal's
 * row holds its state and pinned rules; its content lives in one row per version.
 */
import type { Kysely } from 'kysely'
import { AppError } from '../errors.js'
import type { ProposalContent, DiffLine } from './actions.js'
import type { ProposalRules } from './rules.js'
import type { GovernanceTables, GovProposalsTable } from './tables.js'
import { notBefore } from '../storage/expressions.js'

type Db = Kysely<GovernanceTables>

/** Open proposals (draft, discussion, voting) one partner may have per industry at once. */
export const openProposalsPerPartnerMax = 5
/** The shortest written reason for a veto or a consent objection, in characters. */
export const vetoReasonLengthMin = 20
export const objectionReasonLengthMin = 10

export interface PinnedRules extends ProposalRules {
  readonly rules_version: number
}

export function rulesOf(row: Pick<GovProposalsTable, 'rules'>): PinnedRules {
  return JSON.parse(row.rules) as PinnedRules
}

export function electorateOf(row: Pick<GovProposalsTable, 'electorate'>): string[] {
  return row.electorate === null ? [] : (JSON.parse(row.electorate) as string[])
}

/**
 * Takes the proposal's row lock (a write on PostgreSQL; SQLite serialises writers) and reads
 * the row, so that state checks and the change that follows see the same state.
 */
export async function lockProposal(db: Kysely<any>, id: string, now: number): Promise<GovProposalsTable> {
  const locked = await (db as Db)
    .updateTable('gov_proposals')
    .set({ updated_at: notBefore('updated_at', now) })
    .where('id', '=', id)
    .executeTakeFirst()
  if (locked.numUpdatedRows === 0n) throw new AppError('GOV_PROPOSAL_NOT_FOUND', { field: 'params.proposal_id' })
  return (db as Db).selectFrom('gov_proposals').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
}

/**
 * Locks a proposal for a participant speaking for `organizationId`: someone else's draft is
 * not found, exactly as an id that names nothing, so drafts stay with their authors.
 */
export async function lockProposalFor(
  db: Kysely<any>,
  id: string,
  organizationId: string,
  now: number,
): Promise<GovProposalsTable> {
  const row = await lockProposal(db, id, now)
  if (row.state === 'draft' && row.proposer_org_id !== organizationId) {
    throw new AppError('GOV_PROPOSAL_NOT_FOUND', { field: 'params.proposal_id' })
  }
  return row
}

export async function findProposal(db: Kysely<any>, id: string): Promise<GovProposalsTable> {
  const row = await (db as Db).selectFrom('gov_proposals').selectAll().where('id', '=', id).executeTakeFirst()
  if (row === undefined) throw new AppError('GOV_PROPOSAL_NOT_FOUND', { field: 'params.proposal_id' })
  return row
}

export async function contentOf(
  db: Kysely<any>,
  row: Pick<GovProposalsTable, 'id' | 'version'>,
): Promise<{ content: ProposalContent; diff: DiffLine[] }> {
  const version = await (db as Db)
    .selectFrom('gov_proposal_versions')
    .select(['content', 'diff'])
    .where('proposal_id', '=', row.id)
    .where('version', '=', row.version)
    .executeTakeFirstOrThrow()
  return { content: JSON.parse(version.content) as ProposalContent, diff: JSON.parse(version.diff) as DiffLine[] }
}

export async function recusedOf(db: Kysely<any>, proposalId: string): Promise<string[]> {
  const rows = await (db as Db)
    .selectFrom('gov_conflicts')
    .select('organization_id')
    .where('proposal_id', '=', proposalId)
    .orderBy('organization_id')
    .execute()
  return rows.map((row) => row.organization_id)
}

/** Refuses an action the proposal's state does not allow, naming the state. */
export function requireState(row: GovProposalsTable, allowed: readonly GovProposalsTable['state'][]): void {
  if (!allowed.includes(row.state)) {
    throw new AppError('GOV_PROPOSAL_STATE_INVALID', {
      message: `The proposal is ${row.state}; this needs ${allowed.join(' or ')}`,
      details: { state: row.state },
    })
  }
}

/**
 * When time alone next changes the proposal: its expiry while in draft or discussion, the
 * closing-soon reminder and the close of voting, the end of the veto window.
 */
export function nextDueAt(row: GovProposalsTable): number | null {
  const rules = rulesOf(row)
  switch (row.state) {
    case 'draft':
    case 'discussion':
      return row.expires_at
    case 'voting': {
      const closes = row.voting_closes_at!
      const reminder = closes - rules.reminder_before_s * 1000
      return rules.reminder_before_s > 0 && row.reminded_at === null ? Math.min(reminder, closes) : closes
    }
    case 'queued':
      return row.executable_at
    default:
      return null
  }
}
