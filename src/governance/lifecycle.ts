/**
 * What time alone does to a proposal, run by the `governance.advance` job: the closing-soon
 * reminder, the tally when voting closes (passed proposals are queued for the operator's
 * veto window), enactment when the window ends, and expiry. Each proposal advances in its
 * own transaction under its row lock, so several workers may run the job at once.
 *
 * Enactment applies the actions of the passed content (or of the winning option) as one
 * compare-and-set over the scopes they touch: if any scope moved since the proposal was
 * written, nothing is enacted and the proposal is stale. A decision with nothing to execute
 * is enacted as a commitment and gets an accountability record instead.
 *
 * @example
 * const advanced = await advanceDueProposals(storage.db, env, now) // proposals moved on
 */
import { Value } from '@sinclair/typebox/value'
import type { Kysely } from 'kysely'
import { appendAudit } from '../platform/audit/audit-log.js'
import { allActions, scopedChanges, type Action, type ContentEnvironment, type ProposalContent } from './actions.js'
import { createOutcome } from './accountability.js'
import { activePartnerIds } from './council.js'
import { notify, proposalEvent } from './events.js'
import { enactChanges } from './policy-store.js'
import { contentOf, electorateOf, lockProposal, recusedOf, rulesOf } from './proposal-store.js'
import { saveProposal } from './proposals.js'
import { tally, type Ballot, type Tally } from './tally.js'
import type { GovernanceTables, GovProposalsTable } from './tables.js'

type Db = Kysely<GovernanceTables>

/** Proposals advanced per job run; the rest wait for the next run. */
const advanceBatchMax = 100
/** Transitions one proposal may make in one go (voting -> queued -> enacted is two). */
const transitionsMax = 4
const system = 'system'

/** Counts the ballots of the seats still in the electorate (recused seats are out). */
export async function countBallots(db: Kysely<any>, row: GovProposalsTable, content: ProposalContent): Promise<Tally> {
  const recused = new Set(await recusedOf(db, row.id))
  const eligible = electorateOf(row).filter((organizationId) => !recused.has(organizationId))
  const votes = await (db as Db)
    .selectFrom('gov_votes')
    .select(['organization_id', 'choice', 'content_hash'])
    .where('proposal_id', '=', row.id)
    .execute()
  const ballots = votes
    .filter((vote) => eligible.includes(vote.organization_id) && vote.content_hash === row.content_hash)
    .map((vote) => JSON.parse(vote.choice) as Ballot)
  const options = (content.options ?? []).map((option) => option.key)
  return tally(rulesOf(row), eligible.length, ballots, options)
}

async function announce(db: Kysely<any>, row: GovProposalsTable, content: ProposalContent, now: number) {
  await notify(
    db,
    'governance.proposal.result',
    await activePartnerIds(db, row.industry),
    proposalEvent(row, content),
    now,
  )
}

async function remind(db: Kysely<any>, row: GovProposalsTable, content: ProposalContent, now: number) {
  const recused = new Set(await recusedOf(db, row.id))
  const voted = new Set(
    (
      await (db as Db).selectFrom('gov_votes').select('organization_id').where('proposal_id', '=', row.id).execute()
    ).map((vote) => vote.organization_id),
  )
  const undecided = electorateOf(row).filter((id) => !recused.has(id) && !voted.has(id))
  await notify(db, 'governance.proposal.closing_soon', undecided, proposalEvent(row, content), now)
  return saveProposal(db, { ...row, reminded_at: now })
}

async function close(db: Kysely<any>, row: GovProposalsTable, content: ProposalContent, now: number) {
  const result = await countBallots(db, row, content)
  const rules = rulesOf(row)
  const saved = result.passed
    ? await saveProposal(db, {
        ...row,
        state: 'queued',
        tally: JSON.stringify(result),
        winner: result.winner,
        decided_at: now,
        executable_at: now + rules.veto_window_s * 1000,
        execution_deadline_at: now + (rules.veto_window_s + rules.execution_window_s) * 1000,
      })
    : await saveProposal(db, {
        ...row,
        state: 'defeated',
        tally: JSON.stringify(result),
        decided_at: now,
        closed_reason: result.explanation.en,
        closed_at: now,
      })
  await appendAudit(
    db,
    {
      actor: system,
      action: result.passed ? 'governance.proposal.passed' : 'governance.proposal.defeated',
      target: row.id,
      data: { tally: result, content_hash: row.content_hash, executable_at: saved.executable_at },
    },
    now,
  )
  await announce(db, saved, content, now)
  return saved
}

/** Why the actions can no longer be applied as written (a parameter or its schema changed). */
function undeclared(env: ContentEnvironment, actions: readonly Action[]): string | null {
  for (const action of actions) {
    const declaration = env.declarations.get(action.parameter)
    if (declaration === undefined) return `${action.parameter} is no longer declared`
    if (action.op === 'set' && !Value.Check(declaration.schema, action.value)) {
      return `${action.parameter}: the value no longer fits its schema`
    }
  }
  return null
}

function actionsToEnact(row: GovProposalsTable, content: ProposalContent): readonly Action[] {
  if (content.options === null) return content.actions
  return content.options.find((option) => option.key === row.winner)?.actions ?? []
}

async function enact(
  db: Kysely<any>,
  env: ContentEnvironment,
  row: GovProposalsTable,
  content: ProposalContent,
  now: number,
) {
  const actions = actionsToEnact(row, content)
  const problem = undeclared(env, actions)
  const result =
    problem === null
      ? await enactChanges(
          db,
          {
            proposalId: row.id,
            contentHash: row.content_hash,
            scopes: scopedChanges(actions),
            effectiveFrom: Math.max(now, row.effective_from ?? now),
          },
          now,
        )
      : null
  if (result === null || result.kind === 'stale') {
    const reason =
      result === null
        ? problem!
        : result.scopes
            .map((scope) => `${scope.scope_key} moved from version ${scope.base_version} to ${scope.current_version}`)
            .join('; ')
    const saved = await saveProposal(db, { ...row, state: 'stale', closed_reason: reason, closed_at: now })
    await appendAudit(
      db,
      {
        actor: system,
        action: 'governance.proposal.stale',
        target: row.id,
        data: { reason, scopes: result?.scopes ?? [] },
      },
      now,
    )
    await announce(db, saved, content, now)
    return saved
  }
  for (const version of result.versions) {
    await appendAudit(
      db,
      {
        actor: system,
        action: 'governance.policy.version_created',
        target: `${version.scope_key}@${version.version}`,
        data: {
          number: version.number,
          proposal_id: row.id,
          content_hash: row.content_hash,
          changes: JSON.parse(version.changes),
          effective_from: version.effective_from,
        },
      },
      now,
    )
  }
  const numbers = result.versions.map((version) => version.number)
  const saved = await saveProposal(db, {
    ...row,
    state: 'enacted',
    policy_versions: JSON.stringify(numbers),
    closed_at: now,
  })
  if (actions.length === 0) await createOutcome(db, saved, now)
  await appendAudit(
    db,
    {
      actor: system,
      action: 'governance.proposal.enacted',
      target: row.id,
      data: { content_hash: row.content_hash, winner: row.winner, policy_versions: numbers },
    },
    now,
  )
  await announce(db, saved, content, now)
  return saved
}

async function expire(db: Kysely<any>, row: GovProposalsTable, content: ProposalContent, reason: string, now: number) {
  const saved = await saveProposal(db, { ...row, state: 'expired', closed_reason: reason, closed_at: now })
  await appendAudit(db, { actor: system, action: 'governance.proposal.expired', target: row.id, data: { reason } }, now)
  if (row.state !== 'draft') await announce(db, saved, content, now)
  return saved
}

/** One step, if one is due; null when nothing is. */
async function step(
  db: Kysely<any>,
  env: ContentEnvironment,
  row: GovProposalsTable,
  content: ProposalContent,
  now: number,
): Promise<GovProposalsTable | null> {
  const rules = rulesOf(row)
  switch (row.state) {
    case 'draft':
    case 'discussion':
      return row.expires_at !== null && now >= row.expires_at
        ? expire(db, row, content, 'not brought to a vote in time', now)
        : null
    case 'voting': {
      if (now >= row.voting_closes_at!) return close(db, row, content, now)
      const reminderAt = row.voting_closes_at! - rules.reminder_before_s * 1000
      return rules.reminder_before_s > 0 && row.reminded_at === null && now >= reminderAt
        ? remind(db, row, content, now)
        : null
    }
    case 'queued':
      if (now < row.executable_at!) return null
      return now <= row.execution_deadline_at!
        ? enact(db, env, row, content, now)
        : expire(db, row, content, 'not enacted before the execution deadline', now)
    default:
      return null
  }
}

/**
 * Applies every transition due at `now` to one proposal; call inside a transaction. `clock`
 * (the job's, JobSpec) stamps the transitions with the time read once the proposal is locked.
 */
export async function advanceProposal(
  db: Kysely<any>,
  env: ContentEnvironment,
  id: string,
  start: number,
  clock: () => number = () => start,
): Promise<GovProposalsTable> {
  let row = await lockProposal(db, id, start)
  const now = clock()
  const { content } = await contentOf(db, row)
  for (let count = 0; count < transitionsMax; count += 1) {
    const next = await step(db, env, row, content, now)
    if (next === null) break
    row = next
  }
  return row
}

/** The job: advances every proposal whose due time has come, each in its own transaction. */
export async function advanceDueProposals(
  db: Kysely<any>,
  env: ContentEnvironment,
  now: number,
  clock: () => number = () => now,
): Promise<number> {
  const due = await (db as Db)
    .selectFrom('gov_proposals')
    .select('id')
    .where('due_at', '<=', now)
    .orderBy('due_at')
    .limit(advanceBatchMax)
    .execute()
  for (const { id } of due) {
    await db.transaction().execute((tx) => advanceProposal(tx, env, id, now, clock))
  }
  return due.length
}

export { allActions }
