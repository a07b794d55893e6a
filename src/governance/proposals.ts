/**
 * The proposal lifecycle driven by people: create (rules pinned), amend (a new version with
 * its diff, only before voting), submit for discussion, open voting (the electorate is
 * fixed and the content hash frozen), withdraw, and the operator's public veto while the
 * proposal is queued. Time-driven steps (tally, enactment, expiry) are in `lifecycle.ts`.
 *
 * @example
 * const row = await createProposal(tx, env, { kind: 'partner', principal, organizationId }, input, now)
 * await submitProposal(tx, principal, row.id, now)          // draft -> discussion
 * await openVoting(tx, principal, row.id, now)              // discussion -> voting
 */
import type { Kysely } from 'kysely'
import { AppError } from '../errors.js'
import { appendAudit } from '../platform/audit/audit-log.js'
import { requireMember, roles } from '../platform/identity/service.js'
import { newId } from '../platform/ids.js'
import type { UserPrincipal } from '../server/route-kit.js'
import type { CoreTables } from '../storage/tables.js'
import { prepareContent, allActions, type ContentEnvironment, type ProposalContent } from './actions.js'
import { contentHash } from './canonical.js'
import { activePartnerIds, requireIndustry, requireOperator, requireProposalType, requireSeat } from './council.js'
import { notify, proposalEvent } from './events.js'
import { currentVersions } from './policy-store.js'
import {
  contentOf,
  lockProposal,
  nextDueAt,
  openProposalsPerPartnerMax,
  recusedOf,
  requireState,
  rulesOf,
  vetoReasonLengthMin,
} from './proposal-store.js'
import type { ProposalRules } from './rules.js'
import type { GovernanceTables, GovProposalsTable } from './tables.js'

type Db = Kysely<GovernanceTables>

export type Proposer =
  | { readonly kind: 'partner'; readonly principal: UserPrincipal; readonly organizationId: string }
  | { readonly kind: 'operator'; readonly principal: UserPrincipal }

export type ContentInput = Parameters<typeof prepareContent>[3]

const editableStates = ['draft', 'discussion'] as const

async function audit(
  db: Kysely<any>,
  actor: string,
  action: string,
  row: GovProposalsTable,
  data: Record<string, unknown>,
  now: number,
): Promise<void> {
  await appendAudit(db, { actor, action: `governance.proposal.${action}`, target: row.id, data }, now)
}

async function save(db: Kysely<any>, row: GovProposalsTable): Promise<GovProposalsTable> {
  const next = { ...row, due_at: nextDueAt(row) }
  const { id, ...rest } = next
  await (db as Db).updateTable('gov_proposals').set(rest).where('id', '=', id).execute()
  return next
}

async function checkProposer(db: Kysely<any>, proposer: Proposer, industry: string, rules: ProposalRules) {
  if (proposer.kind === 'operator') {
    requireOperator(proposer.principal)
    if (rules.proposers === 'partners') {
      throw new AppError('GOV_PROPOSER_NOT_ALLOWED', { message: 'Only partners may propose this type' })
    }
    return
  }
  await requireMember(db, proposer.principal, proposer.organizationId, roles.write)
  await requireSeat(db, proposer.organizationId, industry)
  if (rules.proposers === 'operator') {
    throw new AppError('GOV_PROPOSER_NOT_ALLOWED', { message: 'Only the operator may propose this type' })
  }
  const open = await (db as Db)
    .selectFrom('gov_proposals')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('proposer_org_id', '=', proposer.organizationId)
    .where('industry', '=', industry)
    .where('state', 'in', ['draft', 'discussion', 'voting'])
    .executeTakeFirstOrThrow()
  if (Number(open.count) >= openProposalsPerPartnerMax) {
    throw new AppError('GOV_PROPOSAL_QUOTA_REACHED', {
      message: `At most ${openProposalsPerPartnerMax} open proposals per partner and industry`,
    })
  }
}

async function insertVersion(
  db: Kysely<any>,
  row: GovProposalsTable,
  prepared: { content: ProposalContent; diff: unknown },
  note: string,
  authorId: string,
  now: number,
): Promise<void> {
  await (db as Db)
    .insertInto('gov_proposal_versions')
    .values({
      proposal_id: row.id,
      version: row.version,
      content: JSON.stringify(prepared.content),
      content_hash: row.content_hash,
      diff: JSON.stringify(prepared.diff),
      note,
      author_user_id: authorId,
      created_at: now,
    })
    .execute()
}

export async function createProposal(
  db: Kysely<any>,
  env: ContentEnvironment,
  proposer: Proposer,
  input: ContentInput & { industry: string; type: string },
  now: number,
): Promise<GovProposalsTable> {
  await requireIndustry(db, input.industry, 'body.industry')
  const type = await requireProposalType(db, input.industry, input.type, 'body.type')
  const rules = JSON.parse(type.rules) as ProposalRules
  await checkProposer(db, proposer, input.industry, rules)
  const prepared = await prepareContent(db, env, { industry: input.industry, method: rules.method }, input, now)
  const row: GovProposalsTable = {
    id: newId('prop'),
    industry: input.industry,
    type_id: type.id,
    type_key: type.type_key,
    proposer_org_id: proposer.kind === 'partner' ? proposer.organizationId : null,
    proposer_user_id: proposer.principal.userId,
    state: 'draft',
    version: 1,
    content_hash: contentHash(prepared.content),
    // The rules as they are now, for the proposal's whole life.
    rules: JSON.stringify({ ...rules, rules_version: type.rules_version }),
    electorate: null,
    tally: null,
    winner: null,
    effective_from: prepared.content.effective_from,
    policy_versions: null,
    closed_reason: null,
    veto_reason: null,
    vetoed_by: null,
    created_at: now,
    updated_at: now,
    discussion_at: null,
    expires_at: now + rules.discussion_max_s * 1000,
    voting_opens_at: null,
    voting_closes_at: null,
    reminded_at: null,
    decided_at: null,
    executable_at: null,
    execution_deadline_at: null,
    closed_at: null,
    due_at: null,
  }
  row.due_at = nextDueAt(row)
  await (db as Db).insertInto('gov_proposals').values(row).execute()
  await insertVersion(db, row, prepared, 'Initial version', proposer.principal.userId, now)
  await audit(
    db,
    proposer.principal.userId,
    'created',
    row,
    {
      industry: row.industry,
      type: row.type_key,
      proposer_org_id: row.proposer_org_id,
      rules_version: type.rules_version,
      version: 1,
      content_hash: row.content_hash,
    },
    now,
  )
  return row
}

/** The proposer's owners and admins (or the operator, for its own proposals) steer it. */
async function requireProposer(db: Kysely<any>, principal: UserPrincipal, row: GovProposalsTable): Promise<void> {
  if (row.proposer_org_id === null) {
    requireOperator(principal)
    return
  }
  const member = await (db as Kysely<CoreTables>)
    .selectFrom('memberships')
    .select('role')
    .where('organization_id', '=', row.proposer_org_id)
    .where('user_id', '=', principal.userId)
    .executeTakeFirst()
  if (member === undefined || !roles.write.includes(member.role)) {
    throw new AppError('AUTH_FORBIDDEN', { message: "Only the proposer's owners and admins may do this" })
  }
}

/** A new version of the content, with its diff; refused once voting has opened. */
export async function amendProposal(
  db: Kysely<any>,
  env: ContentEnvironment,
  principal: UserPrincipal,
  id: string,
  input: ContentInput & { note: string },
  now: number,
): Promise<GovProposalsTable> {
  const row = await lockProposal(db, id, now)
  await requireProposer(db, principal, row)
  if (!editableStates.includes(row.state as (typeof editableStates)[number])) {
    throw new AppError('GOV_PROPOSAL_NOT_EDITABLE', {
      message: `The proposal is ${row.state}: its content is frozen once voting opens; propose anew instead`,
      details: { state: row.state },
    })
  }
  const rules = rulesOf(row)
  const prepared = await prepareContent(db, env, { industry: row.industry, method: rules.method }, input, now)
  const previousHash = row.content_hash
  const next: GovProposalsTable = {
    ...row,
    version: row.version + 1,
    content_hash: contentHash(prepared.content),
    effective_from: prepared.content.effective_from,
    updated_at: now,
  }
  await insertVersion(db, next, prepared, input.note, principal.userId, now)
  const saved = await save(db, next)
  await audit(
    db,
    principal.userId,
    'amended',
    saved,
    { version: saved.version, content_hash: saved.content_hash, previous_hash: previousHash, note: input.note },
    now,
  )
  return saved
}

export async function submitProposal(
  db: Kysely<any>,
  principal: UserPrincipal,
  id: string,
  now: number,
): Promise<GovProposalsTable> {
  const row = await lockProposal(db, id, now)
  await requireProposer(db, principal, row)
  requireState(row, ['draft'])
  const saved = await save(db, { ...row, state: 'discussion', discussion_at: now })
  const { content } = await contentOf(db, saved)
  await notify(
    db,
    'governance.proposal.discussion_opened',
    await activePartnerIds(db, saved.industry),
    proposalEvent(saved, content),
    now,
  )
  await audit(db, principal.userId, 'discussion_opened', saved, { version: saved.version }, now)
  return saved
}

/**
 * Opens voting on the current version. The content hash is frozen from here on, and the
 * electorate (the industry's active seats now) is fixed. Refused while the discussion is
 * shorter than the rules ask, and when a parameter the proposal changes moved meanwhile.
 */
export async function openVoting(
  db: Kysely<any>,
  principal: UserPrincipal,
  id: string,
  now: number,
): Promise<GovProposalsTable> {
  const row = await lockProposal(db, id, now)
  await requireProposer(db, principal, row)
  requireState(row, ['discussion'])
  const rules = rulesOf(row)
  const earliest = row.discussion_at! + rules.discussion_min_s * 1000
  if (now < earliest) {
    throw new AppError('GOV_DISCUSSION_TOO_SHORT', {
      message: `Voting may open from ${new Date(earliest).toISOString()}`,
      details: { voting_may_open_at: new Date(earliest).toISOString() },
    })
  }
  const { content } = await contentOf(db, row)
  const actions = allActions(content).map((entry) => entry.action)
  const versions = await currentVersions(db, [...new Set(actions.map((action) => action.scope_key))])
  const moved = actions.filter((action) => versions.get(action.scope_key) !== action.base_version)
  if (moved.length > 0) {
    throw new AppError('GOV_PROPOSAL_BASE_OUTDATED', {
      message: `${moved[0]!.scope_key} changed since this version was written; amend the proposal to rebase it`,
    })
  }
  const electorate = await activePartnerIds(db, row.industry)
  const saved = await save(db, {
    ...row,
    state: 'voting',
    electorate: JSON.stringify(electorate),
    expires_at: null,
    voting_opens_at: now,
    voting_closes_at: now + rules.voting_period_s * 1000,
  })
  await notify(db, 'governance.proposal.voting_opened', electorate, proposalEvent(saved, content), now)
  await audit(
    db,
    principal.userId,
    'voting_opened',
    saved,
    {
      version: saved.version,
      content_hash: saved.content_hash,
      electorate,
      recused: await recusedOf(db, saved.id),
      voting_closes_at: saved.voting_closes_at,
    },
    now,
  )
  return saved
}

export async function withdrawProposal(
  db: Kysely<any>,
  principal: UserPrincipal,
  id: string,
  reason: string,
  now: number,
): Promise<GovProposalsTable> {
  const row = await lockProposal(db, id, now)
  await requireProposer(db, principal, row)
  requireState(row, ['draft', 'discussion', 'voting'])
  const saved = await save(db, { ...row, state: 'withdrawn', closed_reason: reason, closed_at: now })
  if (row.state !== 'draft') {
    const { content } = await contentOf(db, saved)
    await notify(
      db,
      'governance.proposal.result',
      await activePartnerIds(db, saved.industry),
      proposalEvent(saved, content),
      now,
    )
  }
  await audit(db, principal.userId, 'withdrawn', saved, { from_state: row.state, reason }, now)
  return saved
}

/**
 * The operator's veto: only while the proposal is queued and its window is open, and only
 * with a written reason that is published with the proposal and in the audit log.
 */
export async function vetoProposal(
  db: Kysely<any>,
  principal: UserPrincipal,
  id: string,
  reason: string,
  now: number,
): Promise<GovProposalsTable> {
  const operator = requireOperator(principal)
  const trimmed = reason.trim()
  if (trimmed.length < vetoReasonLengthMin) {
    throw new AppError('GOV_VETO_REASON_REQUIRED', {
      field: 'body.reason',
      message: `A veto needs a public written reason of at least ${vetoReasonLengthMin} characters`,
    })
  }
  const row = await lockProposal(db, id, now)
  const windowOver =
    row.state === 'enacted' ||
    row.state === 'stale' ||
    (row.state === 'expired' && row.executable_at !== null) ||
    (row.state === 'queued' && now >= row.executable_at!)
  if (windowOver) {
    throw new AppError('GOV_VETO_WINDOW_CLOSED', {
      message:
        row.executable_at === null
          ? 'The veto window is over'
          : `The veto window closed at ${new Date(row.executable_at).toISOString()}`,
    })
  }
  requireState(row, ['queued'])
  const saved = await save(db, {
    ...row,
    state: 'vetoed',
    veto_reason: trimmed,
    vetoed_by: operator.userId,
    closed_reason: 'vetoed by the operator',
    closed_at: now,
  })
  const { content } = await contentOf(db, saved)
  await notify(
    db,
    'governance.proposal.result',
    await activePartnerIds(db, saved.industry),
    proposalEvent(saved, content),
    now,
  )
  await audit(db, operator.userId, 'vetoed', saved, { reason: trimmed, content_hash: saved.content_hash }, now)
  return saved
}

export { save as saveProposal, audit as auditProposal }
