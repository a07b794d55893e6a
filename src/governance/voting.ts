/**
 * Ballots, conflict-of-interest declarations and comments. One seat per partner and
 * industry casts one ballot, bound to the content hash it was cast on; the seat's owners and
 * admins vote directly, or the proxy they named does. A direct ballot replaces the proxy's;
 * a proxy cannot replace a direct ballot. A seat that declares a conflict is recused: its
 * ballot is withdrawn and it leaves the count, quorum included.
 *
 * @example
 * await castVote(tx, principal, organizationId, proposalId, { content_hash, vote: 'yes' }, now)
 */
import type { Kysely } from 'kysely'
import { AppError } from '../errors.js'
import { appendAudit } from '../platform/audit/audit-log.js'
import { requireMember } from '../platform/identity/service.js'
import { newId } from '../platform/ids.js'
import type { UserPrincipal } from '../server/route-kit.js'
import { hasSeat, requireOperator, requireSeat, voterRole } from './council.js'
import {
  contentOf,
  electorateOf,
  lockProposal,
  lockProposalFor,
  objectionReasonLengthMin,
  requireState,
  rulesOf,
} from './proposal-store.js'
import type { Ballot } from './tally.js'
import type { GovCommentsTable, GovernanceTables, GovProposalsTable } from './tables.js'

type Db = Kysely<GovernanceTables>

const memberRoles = ['owner', 'admin', 'developer', 'viewer'] as const

export interface VoteInput {
  readonly content_hash: string
  readonly vote?: 'yes' | 'no' | 'abstain' | 'consent' | 'object' | undefined
  readonly approve?: readonly string[] | undefined
  readonly ranking?: readonly string[] | undefined
  readonly reason?: string | undefined
}

function invalidVote(message: string, field = 'body'): never {
  throw new AppError('GOV_VOTE_INVALID', { field, message })
}

/** Turns the request into the ballot the proposal's method counts, or refuses it. */
function ballotFor(row: GovProposalsTable, optionKeys: readonly string[], input: VoteInput): Ballot {
  const method = rulesOf(row).method
  const only = (present: 'vote' | 'approve' | 'ranking') => {
    for (const key of ['vote', 'approve', 'ranking'] as const) {
      if (key !== present && input[key] !== undefined) invalidVote(`A ${method} ballot has no ${key}`, `body.${key}`)
    }
  }
  const checkOptions = (keys: readonly string[], field: string) => {
    if (new Set(keys).size !== keys.length) invalidVote('An option appears twice', field)
    for (const key of keys) if (!optionKeys.includes(key)) invalidVote(`No option ${key}`, field)
  }
  switch (method) {
    case 'majority':
    case 'consent': {
      only('vote')
      const allowed = method === 'majority' ? ['yes', 'no', 'abstain'] : ['consent', 'object', 'abstain']
      if (input.vote === undefined || !allowed.includes(input.vote)) {
        invalidVote(`A ${method} ballot is one of ${allowed.join(', ')}`, 'body.vote')
      }
      if (input.vote === 'object' && (input.reason ?? '').trim().length < objectionReasonLengthMin) {
        invalidVote(`An objection needs a reason of at least ${objectionReasonLengthMin} characters`, 'body.reason')
      }
      return { vote: input.vote }
    }
    case 'approval':
      only('approve')
      if (input.approve === undefined) invalidVote('An approval ballot lists the approved options', 'body.approve')
      checkOptions(input.approve, 'body.approve')
      return { approve: [...input.approve] }
    case 'ranked':
      only('ranking')
      if (input.ranking === undefined) invalidVote('A ranked ballot lists options, best first', 'body.ranking')
      checkOptions(input.ranking, 'body.ranking')
      return { ranking: [...input.ranking] }
  }
}

async function isRecused(db: Kysely<any>, proposalId: string, organizationId: string): Promise<boolean> {
  const row = await (db as Db)
    .selectFrom('gov_conflicts')
    .select('organization_id')
    .where('proposal_id', '=', proposalId)
    .where('organization_id', '=', organizationId)
    .executeTakeFirst()
  return row !== undefined
}

export async function castVote(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  proposalId: string,
  input: VoteInput,
  now: number,
): Promise<{ replaced: boolean; via_proxy: boolean }> {
  const row = await lockProposalFor(db, proposalId, organizationId, now)
  const role = await voterRole(db, principal, organizationId, row.industry)
  // Standing before state: a stranger learns nothing about where a proposal stands.
  await requireSeat(db, organizationId, row.industry)
  requireState(row, ['voting'])
  if (now >= row.voting_closes_at!) {
    throw new AppError('GOV_VOTING_CLOSED', {
      message: `Voting closed at ${new Date(row.voting_closes_at!).toISOString()}`,
    })
  }
  if (!electorateOf(row).includes(organizationId)) {
    throw new AppError('GOV_NOT_PARTNER', { message: 'This organisation holds no seat in this vote' })
  }
  if (await isRecused(db, row.id, organizationId)) throw new AppError('GOV_RECUSED')
  if (input.content_hash !== row.content_hash) {
    throw new AppError('GOV_CONTENT_HASH_MISMATCH', {
      field: 'body.content_hash',
      message: `The proposal under vote has content hash ${row.content_hash}`,
    })
  }
  const { content } = await contentOf(db, row)
  const ballot = ballotFor(
    row,
    (content.options ?? []).map((option) => option.key),
    input,
  )
  const existing = await (db as Db)
    .selectFrom('gov_votes')
    .select(['via_proxy'])
    .where('proposal_id', '=', row.id)
    .where('organization_id', '=', organizationId)
    .executeTakeFirst()
  if (existing !== undefined && existing.via_proxy === 0 && role === 'proxy') {
    throw new AppError('GOV_PROXY_OVERRIDE_REFUSED')
  }
  const values = {
    content_hash: row.content_hash,
    choice: JSON.stringify(ballot),
    reason: input.reason?.trim() ?? null,
    cast_by: principal.userId,
    via_proxy: role === 'proxy' ? 1 : 0,
    updated_at: now,
  }
  await (db as Db)
    .insertInto('gov_votes')
    .values({ proposal_id: row.id, organization_id: organizationId, created_at: now, ...values })
    .onConflict((oc) => oc.columns(['proposal_id', 'organization_id']).doUpdateSet(values))
    .execute()
  const secret = rulesOf(row).ballots === 'secret'
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: 'governance.vote.cast',
      target: row.id,
      data: {
        organization_id: organizationId,
        content_hash: row.content_hash,
        via_proxy: role === 'proxy',
        replaced: existing !== undefined,
        // A secret ballot's choice stays out of the public record.
        ...(secret ? {} : { choice: ballot, reason: values.reason }),
      },
    },
    now,
  )
  return { replaced: existing !== undefined, via_proxy: role === 'proxy' }
}

/**
 * Declares a conflict of interest: the seat is recused from this proposal. Its ballot, if
 * any, is withdrawn, and it no longer counts towards quorum. Declarations are public and
 * cannot be taken back.
 */
export async function declareConflict(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  proposalId: string,
  reason: string,
  now: number,
): Promise<void> {
  const proposal = await lockProposalFor(db, proposalId, organizationId, now)
  await voterRole(db, principal, organizationId, proposal.industry)
  await requireSeat(db, organizationId, proposal.industry)
  requireState(proposal, ['draft', 'discussion', 'voting'])
  if (proposal.state === 'voting' && now >= proposal.voting_closes_at!) throw new AppError('GOV_VOTING_CLOSED')
  const inserted = await (db as Db)
    .insertInto('gov_conflicts')
    .values({
      proposal_id: proposalId,
      organization_id: organizationId,
      reason: reason.trim(),
      declared_by: principal.userId,
      created_at: now,
    })
    .onConflict((oc) => oc.columns(['proposal_id', 'organization_id']).doNothing())
    .executeTakeFirst()
  if (inserted.numInsertedOrUpdatedRows !== 1n) throw new AppError('GOV_RECUSED')
  const withdrawn = await (db as Db)
    .deleteFrom('gov_votes')
    .where('proposal_id', '=', proposalId)
    .where('organization_id', '=', organizationId)
    .executeTakeFirst()
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: 'governance.conflict.declared',
      target: proposalId,
      data: {
        organization_id: organizationId,
        reason: reason.trim(),
        ballot_withdrawn: withdrawn.numDeletedRows === 1n,
      },
    },
    now,
  )
}

/** A comment from a partner's member (organizationId) or from the operator (null). */
export async function addComment(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string | null,
  proposalId: string,
  body: string,
  now: number,
): Promise<GovCommentsTable> {
  const proposal =
    organizationId === null
      ? await lockProposal(db, proposalId, now)
      : await lockProposalFor(db, proposalId, organizationId, now)
  if (organizationId === null) {
    requireOperator(principal)
  } else {
    // Any member may speak for its organisation; the operator, who reads every organisation,
    // comments only as itself.
    await requireMember(db, principal, organizationId, memberRoles)
    if (!(await hasSeat(db, organizationId, proposal.industry)) && proposal.proposer_org_id !== organizationId) {
      throw new AppError('GOV_NOT_PARTNER')
    }
  }
  requireState(proposal, ['discussion', 'voting'])
  const row: GovCommentsTable = {
    id: newId('gcom'),
    proposal_id: proposalId,
    version: proposal.version,
    organization_id: organizationId,
    user_id: principal.userId,
    body,
    created_at: now,
  }
  await (db as Db).insertInto('gov_comments').values(row).execute()
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: 'governance.comment.added',
      target: proposalId,
      data: { comment_id: row.id, organization_id: organizationId, version: row.version },
    },
    now,
  )
  return row
}
