/**
 * The public, read-only view of governance: councils, proposals with their versions, diffs,
 * comments and ballots (or only who voted, where ballots are secret), vetoes with their
 * reasons, the policy history, the roadmap, outcomes, training and the governance part of
 * the audit log with its hashes. No login: anyone may read how the platform is governed.
 */
import { Type } from '@sinclair/typebox'
import type { Kysely } from 'kysely'
import { AppError } from '../errors.js'
import { defineRoute, type RouteSpec } from '../server/route-kit.js'
import { Id, IsoTime, Page, isoTime, pageSizeDefault, pageSizeMax, toPage } from '../server/schemas.js'
import { activePartnerIds, listIndustries, listProposalTypes, requireIndustry } from './council.js'
import type { GovernanceDependencies } from './index.js'
import { findProposal } from './proposal-store.js'
import { listOutcomes } from './accountability.js'
import { listBatches } from './recruitment.js'
import { roadmap } from './roadmap.js'
import {
  Comment,
  IndustryCode,
  Nullable,
  PolicyVersion,
  Proposal,
  ProposalVersion,
  Rules,
  TextOut,
  Vote,
} from './schema.js'
import type { GovernanceTables, GovProposalsTable } from './tables.js'
import { listSessions } from './training.js'
import { commentView, policyVersionView, proposalView, versionView, votesView } from './views.js'

type Db = Kysely<GovernanceTables>

const Limit = Type.Optional(Type.Integer({ minimum: 1, maximum: pageSizeMax, default: pageSizeDefault }))
const ProposalParams = Type.Object({ proposal_id: Id('prop') })
const publicStates = [
  'discussion',
  'voting',
  'defeated',
  'queued',
  'vetoed',
  'enacted',
  'stale',
  'expired',
  'withdrawn',
]

/** Actions of the audit log that are public; applications, proxies and training stay private. */
const publicAuditActions = [
  'governance.industry.',
  'governance.proposal_type.',
  'governance.proposal.',
  'governance.vote.',
  'governance.conflict.',
  'governance.comment.',
  'governance.policy.',
  'governance.outcome.',
  'governance.request.',
  'governance.batch.',
]

/** A proposal the public may see: anything but a draft, which stays with its authors. */
export async function publicProposal(db: Kysely<any>, id: string): Promise<GovProposalsTable> {
  const row = await findProposal(db, id)
  if (row.state === 'draft') throw new AppError('GOV_PROPOSAL_NOT_FOUND', { field: 'params.proposal_id' })
  return row
}

export const Industry = Type.Object({ code: Type.String(), name: TextOut, created_at: IsoTime })
export const ProposalType = Type.Object({
  key: Type.String(),
  name: TextOut,
  rules: Rules,
  rules_version: Type.Integer(),
  updated_at: IsoTime,
})

const Outcome = Type.Object({
  id: Type.String(),
  proposal_id: Type.String(),
  industry: Type.String(),
  owner: Nullable(Type.String()),
  status: Type.String(),
  progress_bps: Type.Integer(),
  review_on: IsoTime,
  milestones: Type.Array(Type.Object({ title: Type.String(), due_on: Nullable(IsoTime), done_at: Nullable(IsoTime) })),
  updated_at: IsoTime,
})

export function outcomeView(row: GovernanceTables['gov_outcomes']) {
  const milestones = JSON.parse(row.milestones) as Array<{
    title: string
    due_on: number | null
    done_at: number | null
  }>
  return {
    id: row.id,
    proposal_id: row.proposal_id,
    industry: row.industry,
    owner: row.owner,
    status: row.status,
    progress_bps: row.progress_bps,
    review_on: isoTime(row.review_on),
    milestones: milestones.map((milestone) => ({
      title: milestone.title,
      due_on: milestone.due_on === null ? null : isoTime(milestone.due_on),
      done_at: milestone.done_at === null ? null : isoTime(milestone.done_at),
    })),
    updated_at: isoTime(row.updated_at),
  }
}
export { Outcome }

export const Request = Type.Object({
  id: Type.String(),
  capability: Type.String(),
  organization_id: Type.String(),
  title: Type.String(),
  body: Type.String(),
  status: Type.String(),
  support_count: Type.Integer(),
  created_at: IsoTime,
  updated_at: IsoTime,
})

export function requestView(row: GovernanceTables['gov_improvement_requests']) {
  return { ...row, created_at: isoTime(row.created_at), updated_at: isoTime(row.updated_at) }
}

export const TrainingSession = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  title: TextOut,
  industry: Nullable(Type.String()),
  starts_at: IsoTime,
  capacity: Type.Integer(),
  enrolled: Type.Integer(),
})

export function sessionView(row: GovernanceTables['gov_training_sessions']) {
  return {
    id: row.id,
    kind: row.kind,
    title: { en: row.title_en, zh: row.title_zh },
    industry: row.industry,
    starts_at: isoTime(row.starts_at),
    capacity: row.capacity,
    enrolled: row.enrolled_count,
  }
}

export const Batch = Type.Object({
  id: Type.String(),
  name: Type.String(),
  industries: Type.Array(Type.String()),
  criteria: Type.Record(Type.String(), Type.Integer()),
  opens_at: IsoTime,
  closes_at: IsoTime,
})

export function batchView(row: GovernanceTables['gov_batches']) {
  return {
    id: row.id,
    name: row.name,
    industries: JSON.parse(row.industries) as string[],
    criteria: JSON.parse(row.criteria) as Record<string, number>,
    opens_at: isoTime(row.opens_at),
    closes_at: isoTime(row.closes_at),
  }
}

function councilRoutes(deps: GovernanceDependencies): RouteSpec[] {
  const tags = ['governance']
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/governance/industries',
      operationId: 'listGovernanceIndustries',
      auth: 'public',
      tags,
      summary: 'The industries, each with its own council',
      schema: { response: Type.Object({ data: Type.Array(Industry) }) },
      handler: async ({ db }) => ({
        data: (await listIndustries(db)).map((row) => ({
          code: row.code,
          name: { en: row.name_en, zh: row.name_zh },
          created_at: isoTime(row.created_at),
        })),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/governance/industries/:industry',
      operationId: 'getGovernanceCouncil',
      auth: 'public',
      tags,
      summary: "An industry's council: its partners (one seat each), proposal types and the parameters in force",
      schema: {
        params: Type.Object({ industry: IndustryCode }),
        response: Type.Object({
          industry: Industry,
          seats: Type.Array(Type.Object({ organization_id: Type.String(), name: Type.String() })),
          operator: Type.Object({ role: Type.String() }),
          proposal_types: Type.Array(ProposalType),
          parameters: Type.Array(
            Type.Object({
              key: Type.String(),
              value: Type.Unknown(),
              policy_version: Type.Integer(),
              source: Type.String(),
            }),
          ),
        }),
      },
      handler: async ({ db, params, now }) => {
        const industry = await requireIndustry(db, params.industry)
        const partnerIds = await activePartnerIds(db, industry.code)
        const names =
          partnerIds.length === 0
            ? []
            : await (db as Db)
                .selectFrom('organizations')
                .select(['id', 'name'])
                .where('id', 'in', partnerIds)
                .execute()
        const parameters = []
        for (const [key, declaration] of deps.env.declarations) {
          if (declaration.scope === 'global') continue
          const resolved = await deps.env.source.resolveDetailed(db, key, { industry: industry.code, at: now })
          parameters.push({
            key,
            value: resolved === null ? declaration.default : resolved.value,
            policy_version: resolved?.number ?? 0,
            source: resolved?.scopeKey ?? 'default',
          })
        }
        return {
          industry: {
            code: industry.code,
            name: { en: industry.name_en, zh: industry.name_zh },
            created_at: isoTime(industry.created_at),
          },
          seats: partnerIds.map((id) => ({
            organization_id: id,
            name: names.find((row) => row.id === id)?.name ?? id,
          })),
          operator: {
            role: 'Sits on every council; may veto a passed proposal in public, with a reason, during its window',
          },
          proposal_types: (await listProposalTypes(db, industry.code)).map((row) => {
            const { rules_version: _pinned, ...rules } = JSON.parse(row.rules) as Record<string, unknown>
            return {
              key: row.type_key,
              name: { en: row.name_en, zh: row.name_zh },
              rules: rules as never,
              rules_version: row.rules_version,
              updated_at: isoTime(row.updated_at),
            }
          }),
          parameters,
        }
      },
    }),
  ]
}

function proposalRoutes(): RouteSpec[] {
  const tags = ['governance']
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/governance/proposals',
      operationId: 'listProposals',
      auth: 'public',
      tags,
      summary: 'Proposals out of draft, newest first',
      schema: {
        querystring: Type.Object(
          {
            industry: Type.Optional(IndustryCode),
            state: Type.Optional(Type.Union(publicStates.map((state) => Type.Literal(state)))),
            limit: Limit,
            starting_after: Type.Optional(Id('prop')),
          },
          { additionalProperties: false },
        ),
        response: Page(Proposal),
      },
      handler: async ({ db, query }) => {
        const limit = query.limit ?? pageSizeDefault
        let select = (db as Db)
          .selectFrom('gov_proposals')
          .selectAll()
          .where('state', '!=', 'draft')
          .orderBy('created_at', 'desc')
          .orderBy('id', 'desc')
          .limit(limit + 1)
        if (query.industry !== undefined) select = select.where('industry', '=', query.industry)
        if (query.state !== undefined) select = select.where('state', '=', query.state as GovProposalsTable['state'])
        if (query.starting_after !== undefined) {
          const cursor = await publicProposal(db, query.starting_after)
          select = select.where((eb) =>
            eb.or([
              eb('created_at', '<', cursor.created_at),
              eb.and([eb('created_at', '=', cursor.created_at), eb('id', '<', cursor.id)]),
            ]),
          )
        }
        const rows = await select.execute()
        const page = toPage(rows, limit, (row) => row)
        return { data: await Promise.all(page.data.map((row) => proposalView(db, row))), has_more: page.has_more }
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/governance/proposals/:proposal_id',
      operationId: 'getProposal',
      auth: 'public',
      tags,
      summary: 'A proposal: its current content, diff, pinned rules, tally, veto and enacted policy versions',
      schema: { params: ProposalParams, response: Proposal },
      handler: async ({ db, params }) => proposalView(db, await publicProposal(db, params.proposal_id)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/governance/proposals/:proposal_id/versions',
      operationId: 'listProposalVersions',
      auth: 'public',
      tags,
      summary: 'Every version of a proposal with its content hash and diff, oldest first',
      schema: { params: ProposalParams, response: Type.Object({ data: Type.Array(ProposalVersion) }) },
      handler: async ({ db, params }) => {
        await publicProposal(db, params.proposal_id)
        const rows = await (db as Db)
          .selectFrom('gov_proposal_versions')
          .selectAll()
          .where('proposal_id', '=', params.proposal_id)
          .orderBy('version')
          .execute()
        return { data: rows.map(versionView) }
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/governance/proposals/:proposal_id/comments',
      operationId: 'listProposalComments',
      auth: 'public',
      tags,
      summary: 'The discussion of a proposal, oldest first',
      schema: {
        params: ProposalParams,
        querystring: Type.Object(
          { limit: Limit, starting_after: Type.Optional(Id('gcom')) },
          { additionalProperties: false },
        ),
        response: Page(Comment),
      },
      handler: async ({ db, params, query }) => {
        await publicProposal(db, params.proposal_id)
        const limit = query.limit ?? pageSizeDefault
        let select = (db as Db)
          .selectFrom('gov_comments')
          .selectAll()
          .where('proposal_id', '=', params.proposal_id)
          .orderBy('created_at')
          .orderBy('id')
          .limit(limit + 1)
        if (query.starting_after !== undefined) {
          const cursor = await (db as Db)
            .selectFrom('gov_comments')
            .select(['created_at', 'id'])
            .where('id', '=', query.starting_after)
            .executeTakeFirst()
          if (cursor !== undefined) {
            select = select.where((eb) =>
              eb.or([
                eb('created_at', '>', cursor.created_at),
                eb.and([eb('created_at', '=', cursor.created_at), eb('id', '>', cursor.id)]),
              ]),
            )
          }
        }
        return toPage(await select.execute(), limit, commentView)
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/governance/proposals/:proposal_id/votes',
      operationId: 'listProposalVotes',
      auth: 'public',
      tags,
      summary: 'The ballots cast, one per seat; where ballots are secret, only who voted',
      schema: { params: ProposalParams, response: Type.Object({ data: Type.Array(Vote) }) },
      handler: async ({ db, params }) => ({ data: await votesView(db, await publicProposal(db, params.proposal_id)) }),
    }),
  ]
}

function recordRoutes(): RouteSpec[] {
  const tags = ['governance']
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/governance/policy-versions',
      operationId: 'listPolicyVersions',
      auth: 'public',
      tags,
      summary: 'The policy history: every enacted parameter-set version, newest first',
      schema: {
        querystring: Type.Object(
          {
            scope_key: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
            limit: Limit,
            before_number: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
          },
          { additionalProperties: false },
        ),
        response: Page(PolicyVersion),
      },
      handler: async ({ db, query }) => {
        const limit = query.limit ?? pageSizeDefault
        let select = (db as Db)
          .selectFrom('gov_policy_versions')
          .selectAll()
          .orderBy('number', 'desc')
          .limit(limit + 1)
        if (query.scope_key !== undefined) select = select.where('scope_key', '=', query.scope_key)
        if (query.before_number !== undefined) select = select.where('number', '<', query.before_number)
        return toPage(await select.execute(), limit, policyVersionView)
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/governance/policy-versions/:number',
      operationId: 'getPolicyVersion',
      auth: 'public',
      tags,
      summary: 'One policy version, by the number trades record (fee_policy_version)',
      schema: {
        params: Type.Object({ number: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) }),
        response: PolicyVersion,
      },
      handler: async ({ db, params }) => {
        const row = await (db as Db)
          .selectFrom('gov_policy_versions')
          .selectAll()
          .where('number', '=', params.number)
          .executeTakeFirst()
        if (row === undefined) throw new AppError('GOV_POLICY_VERSION_NOT_FOUND', { field: 'params.number' })
        return policyVersionView(row)
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/governance/batches',
      operationId: 'listRecruitmentBatches',
      auth: 'public',
      tags,
      summary: 'Partner recruitment batches with their industries, criteria and dates',
      schema: { response: Type.Object({ data: Type.Array(Batch) }) },
      handler: async ({ db }) => ({ data: (await listBatches(db)).map(batchView) }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/governance/outcomes',
      operationId: 'listOutcomes',
      auth: 'public',
      tags,
      summary: 'Accountability records of enacted decisions that do not execute themselves',
      schema: {
        querystring: Type.Object(
          { industry: Type.Optional(IndustryCode), limit: Limit, starting_after: Type.Optional(Id('gout')) },
          { additionalProperties: false },
        ),
        response: Page(Outcome),
      },
      handler: async ({ db, query }) => {
        const limit = query.limit ?? pageSizeDefault
        return toPage(await listOutcomes(db, query.industry, limit, query.starting_after), limit, outcomeView)
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/governance/roadmap',
      operationId: 'getRoadmap',
      auth: 'public',
      tags,
      summary: "Partners' improvement requests, most supported first, with each one's changelog",
      schema: {
        querystring: Type.Object(
          { capability: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })), limit: Limit },
          { additionalProperties: false },
        ),
        response: Type.Object({
          data: Type.Array(
            Type.Object({
              request: Request,
              changelog: Type.Array(Type.Object({ status: Type.String(), note: Type.String(), at: IsoTime })),
            }),
          ),
        }),
      },
      handler: async ({ db, query }) => ({
        data: (await roadmap(db, query.capability, query.limit ?? pageSizeDefault)).map((entry) => ({
          request: requestView(entry.request),
          changelog: entry.changelog.map((change) => ({
            status: change.status,
            note: change.note,
            at: isoTime(change.created_at),
          })),
        })),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/governance/training-sessions',
      operationId: 'listTrainingSessions',
      auth: 'public',
      tags,
      summary: 'Upcoming office hours, courses and study tours, with places taken',
      schema: {
        querystring: Type.Object({ limit: Limit }, { additionalProperties: false }),
        response: Type.Object({ data: Type.Array(TrainingSession) }),
      },
      handler: async ({ db, query, now }) => ({
        data: (await listSessions(db, now, query.limit ?? pageSizeDefault)).map(sessionView),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/governance/audit',
      operationId: 'listGovernanceAudit',
      auth: 'public',
      tags,
      summary: 'The governance entries of the hash-chained audit log, with their hashes and the chain head',
      description:
        'Each entry carries prev_hash and hash, so anyone can recompute sha256(prev_hash + "\\n" + ' +
        'JSON([seq, at_ms, actor, action, target, data])) and compare with the head. Secret ballots are recorded ' +
        'without their choice.',
      schema: {
        querystring: Type.Object(
          { after_seq: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })), limit: Limit },
          { additionalProperties: false },
        ),
        response: Type.Object({
          head: Type.Object({ seq: Type.Integer(), hash: Type.String() }),
          data: Type.Array(
            Type.Object({
              seq: Type.Integer(),
              at: IsoTime,
              at_ms: Type.Integer({ description: 'The time as hashed: epoch milliseconds' }),
              actor: Type.String(),
              action: Type.String(),
              target: Type.String(),
              data: Type.String({ description: 'The JSON text exactly as hashed' }),
              prev_hash: Type.String(),
              hash: Type.String(),
            }),
          ),
          has_more: Type.Boolean(),
        }),
      },
      handler: async ({ db, query }) => {
        const limit = query.limit ?? pageSizeDefault
        const rows = await (db as Db)
          .selectFrom('audit_log')
          .selectAll()
          .where('seq', '>', query.after_seq ?? 0)
          .where((eb) => eb.or(publicAuditActions.map((prefix) => eb('action', 'like', `${prefix}%`))))
          // A draft stays with its authors until submitted; its entries appear with it then.
          .where((eb) =>
            eb.not(eb('target', 'in', eb.selectFrom('gov_proposals').select('id').where('state', '=', 'draft'))),
          )
          .orderBy('seq')
          .limit(limit + 1)
          .execute()
        const head = await (db as Db)
          .selectFrom('audit_head')
          .select(['seq', 'hash'])
          .where('id', '=', 1)
          .executeTakeFirstOrThrow()
        return { head, ...toPage(rows, limit, (row) => ({ ...row, at: isoTime(row.at), at_ms: row.at })) }
      },
    }),
  ]
}

export function publicRoutes(deps: GovernanceDependencies): RouteSpec[] {
  return [...councilRoutes(deps), ...proposalRoutes(), ...recordRoutes()]
}
