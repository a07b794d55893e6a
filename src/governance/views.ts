/**
 * What the API shows of governance records. Ballots follow the proposal's pinned rules:
 * with public ballots every choice and the running tally are visible; with secret ballots
 * only who voted is, and the tally once voting has closed.
 */
import type { Static } from '@sinclair/typebox'
import type { Kysely } from 'kysely'
import { isoTime } from '../server/schemas.js'
import { countBallots } from './lifecycle.js'
import { contentOf, electorateOf, recusedOf, rulesOf } from './proposal-store.js'
import type { Comment, PolicyVersion, Proposal, ProposalVersion, Vote } from './schema.js'
import type { Tally } from './tally.js'
import type {
  GovCommentsTable,
  GovernanceTables,
  GovPolicyVersionsTable,
  GovProposalsTable,
  GovProposalVersionsTable,
} from './tables.js'

type Db = Kysely<GovernanceTables>

const time = (ms: number | null) => (ms === null ? null : isoTime(ms))

function contentView(content: Awaited<ReturnType<typeof contentOf>>['content']) {
  return { ...content, effective_from: time(content.effective_from) } as Static<typeof Proposal>['content']
}

export async function proposalView(db: Kysely<any>, row: GovProposalsTable): Promise<Static<typeof Proposal>> {
  const { content, diff } = await contentOf(db, row)
  const { rules_version: rulesVersion, ...rules } = rulesOf(row)
  let tally: Tally | null = row.tally === null ? null : (JSON.parse(row.tally) as Tally)
  // A running tally, for public ballots only: secret ones are counted when voting closes.
  if (tally === null && row.state === 'voting' && rules.ballots === 'public')
    tally = await countBallots(db, row, content)
  return {
    id: row.id,
    industry: row.industry,
    type: row.type_key,
    proposer: { organization_id: row.proposer_org_id, operator: row.proposer_org_id === null },
    state: row.state,
    version: row.version,
    content_hash: row.content_hash,
    content: contentView(content),
    diff,
    rules,
    rules_version: rulesVersion,
    electorate: row.electorate === null ? null : electorateOf(row),
    recused: await recusedOf(db, row.id),
    tally: tally as Static<typeof Proposal>['tally'],
    winner: row.winner,
    policy_versions: row.policy_versions === null ? [] : (JSON.parse(row.policy_versions) as number[]),
    closed_reason: row.closed_reason,
    veto: row.veto_reason === null ? null : { reason: row.veto_reason, at: isoTime(row.closed_at!) },
    timeline: {
      created_at: isoTime(row.created_at),
      discussion_at: time(row.discussion_at),
      expires_at: time(row.expires_at),
      voting_opens_at: time(row.voting_opens_at),
      voting_closes_at: time(row.voting_closes_at),
      decided_at: time(row.decided_at),
      executable_at: time(row.executable_at),
      execution_deadline_at: time(row.execution_deadline_at),
      closed_at: time(row.closed_at),
    },
  }
}

export function versionView(row: GovProposalVersionsTable): Static<typeof ProposalVersion> {
  return {
    version: row.version,
    content_hash: row.content_hash,
    content: contentView(JSON.parse(row.content)),
    diff: JSON.parse(row.diff),
    note: row.note,
    created_at: isoTime(row.created_at),
  }
}

export function commentView(row: GovCommentsTable): Static<typeof Comment> {
  return {
    id: row.id,
    version: row.version,
    organization_id: row.organization_id,
    operator: row.organization_id === null,
    body: row.body,
    created_at: isoTime(row.created_at),
  }
}

export async function votesView(db: Kysely<any>, row: GovProposalsTable): Promise<Static<typeof Vote>[]> {
  const secret = rulesOf(row).ballots === 'secret'
  const votes = await (db as Db)
    .selectFrom('gov_votes')
    .selectAll()
    .where('proposal_id', '=', row.id)
    .orderBy('organization_id')
    .execute()
  return votes.map((vote) => ({
    organization_id: vote.organization_id,
    content_hash: vote.content_hash,
    choice: secret ? null : (JSON.parse(vote.choice) as unknown),
    reason: secret ? null : vote.reason,
    via_proxy: vote.via_proxy === 1,
    cast_at: isoTime(vote.updated_at),
  }))
}

export function policyVersionView(row: GovPolicyVersionsTable): Static<typeof PolicyVersion> {
  return {
    number: row.number,
    scope_key: row.scope_key,
    version: row.version,
    proposal_id: row.proposal_id,
    content_hash: row.content_hash,
    parameters: JSON.parse(row.parameters),
    changes: JSON.parse(row.changes),
    effective_from: isoTime(row.effective_from),
    enacted_at: isoTime(row.enacted_at),
  }
}
