/**
 * What only the operator does: extend the list of industries, set proposal types and their
 * rules, propose where the rules allow it, veto in public, comment, run recruitment, keep
 * outcomes current, move the roadmap and schedule training. Every route refuses any other
 * caller with AUTH_FORBIDDEN.
 */
import { Type } from '@sinclair/typebox'
import { defineRoute, type RouteSpec } from '../server/route-kit.js'
import { Id, IsoTime, Page, isoTime, pageSizeDefault, pageSizeMax, toPage } from '../server/schemas.js'
import { updateOutcome } from './accountability.js'
import { createIndustry, putProposalType, requireOperator } from './council.js'
import type { GovernanceDependencies } from './index.js'
import { createProposal, vetoProposal } from './proposals.js'
import { createBatch, decide, listApplications, requireBatch } from './recruitment.js'
import { moveRequest } from './roadmap.js'
import { Application, applicationView } from './routes-partner.js'
import {
  Batch,
  Industry,
  Outcome,
  ProposalType,
  Request,
  TrainingSession,
  batchView,
  outcomeView,
  requestView,
  sessionView,
} from './routes-public.js'
import { ContentFields, IndustryCode, Proposal, Reason, Rules, Text, TypeKey, Comment } from './schema.js'
import { createSession } from './training.js'
import { commentView, proposalView } from './views.js'
import { addComment } from './voting.js'

const Limit = Type.Optional(Type.Integer({ minimum: 1, maximum: pageSizeMax, default: pageSizeDefault }))
const ProposalParams = Type.Object({ proposal_id: Id('prop') })
const Count = Type.Integer({ minimum: 0, maximum: 1_000_000_000_000 })

function councilRoutes(deps: GovernanceDependencies): RouteSpec[] {
  const tags = ['governance']
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/governance/industries',
      operationId: 'createGovernanceIndustry',
      auth: 'session',
      tags,
      status: 201,
      summary: 'Add an industry and its council, with the default proposal types (operator only)',
      schema: {
        body: Type.Object({ code: IndustryCode, name: Text(100) }, { additionalProperties: false }),
        response: Industry,
      },
      handler: async ({ db, principal, body, now }) => {
        const row = await createIndustry(db, requireOperator(principal), body, now)
        return { code: row.code, name: { en: row.name_en, zh: row.name_zh }, created_at: isoTime(row.created_at) }
      },
    }),
    defineRoute({
      method: 'PUT',
      url: '/v1/governance/industries/:industry/proposal-types/:type_key',
      operationId: 'putProposalType',
      auth: 'session',
      tags,
      summary: 'Create a proposal type or change its rules; proposals already made keep theirs (operator only)',
      schema: {
        params: Type.Object({ industry: IndustryCode, type_key: TypeKey }),
        body: Type.Object({ name: Text(100), rules: Rules }, { additionalProperties: false }),
        response: ProposalType,
      },
      handler: async ({ db, principal, params, body, now }) => {
        const target = { industry: params.industry, key: params.type_key }
        const row = await putProposalType(db, requireOperator(principal), target, body, now)
        return {
          key: row.type_key,
          name: { en: row.name_en, zh: row.name_zh },
          rules: JSON.parse(row.rules),
          rules_version: row.rules_version,
          updated_at: isoTime(row.updated_at),
        }
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/governance/industries/:industry/proposals',
      operationId: 'createOperatorProposal',
      auth: 'session',
      tags,
      status: 201,
      summary: "Draft a proposal as the operator, where the type's rules allow it (operator only)",
      schema: {
        params: Type.Object({ industry: IndustryCode }),
        body: Type.Object({ type: TypeKey, ...ContentFields }, { additionalProperties: false }),
        response: Proposal,
      },
      handler: async ({ db, principal, params, body, now }) => {
        const proposer = { kind: 'operator' as const, principal: requireOperator(principal) }
        return proposalView(
          db,
          await createProposal(db, deps.env, proposer, { ...body, industry: params.industry }, now),
        )
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/governance/proposals/:proposal_id/veto',
      operationId: 'vetoProposal',
      auth: 'session',
      tags,
      summary: 'Veto a queued proposal during its window, with a public written reason (operator only)',
      schema: {
        params: ProposalParams,
        body: Type.Object({ reason: Reason(1) }, { additionalProperties: false }),
        response: Proposal,
      },
      handler: async ({ db, principal, params, body, now }) =>
        proposalView(db, await vetoProposal(db, principal, params.proposal_id, body.reason, now)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/governance/proposals/:proposal_id/comments',
      operationId: 'commentOnProposalAsOperator',
      auth: 'session',
      tags,
      status: 201,
      summary: 'Comment on a proposal as the operator (operator only)',
      schema: {
        params: ProposalParams,
        body: Type.Object({ body: Type.String({ minLength: 1, maxLength: 8000 }) }, { additionalProperties: false }),
        response: Comment,
      },
      handler: async ({ db, principal, params, body, now }) =>
        commentView(await addComment(db, requireOperator(principal), null, params.proposal_id, body.body, now)),
    }),
  ]
}

function programmeRoutes(deps: GovernanceDependencies): RouteSpec[] {
  const tags = ['governance']
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/governance/batches',
      operationId: 'createRecruitmentBatch',
      auth: 'session',
      tags,
      status: 201,
      summary: 'Open a partner recruitment batch for some industries, with criteria and dates (operator only)',
      schema: {
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 200 }),
            industries: Type.Array(IndustryCode, { minItems: 1, maxItems: 50 }),
            criteria: Type.Object(
              {
                merchants_served_min: Type.Optional(Count),
                live_apps_min: Type.Optional(Count),
                payment_volume_min: Type.Optional(Count),
                open_risk_incidents_max: Type.Optional(Count),
              },
              { additionalProperties: false },
            ),
            opens_at: IsoTime,
            closes_at: IsoTime,
          },
          { additionalProperties: false },
        ),
        response: Batch,
      },
      handler: async ({ db, principal, body, now }) => {
        const input = { ...body, opens_at: Date.parse(body.opens_at), closes_at: Date.parse(body.closes_at) }
        return batchView(await createBatch(db, requireOperator(principal), input, now))
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/governance/batches/:batch_id/applications',
      operationId: 'listBatchApplications',
      auth: 'session',
      tags,
      summary: "A batch's applications with their profiles and evaluations (operator only)",
      schema: {
        params: Type.Object({ batch_id: Id('gbat') }),
        querystring: Type.Object(
          { limit: Limit, starting_after: Type.Optional(Id('gapp')) },
          { additionalProperties: false },
        ),
        response: Page(Application),
      },
      handler: async ({ db, principal, params, query }) => {
        requireOperator(principal)
        await requireBatch(db, params.batch_id, 'params.batch_id')
        const limit = query.limit ?? pageSizeDefault
        const rows = await listApplications(db, { batchId: params.batch_id }, limit, query.starting_after)
        return toPage(rows, limit, applicationView)
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/governance/applications/:application_id/decision',
      operationId: 'decideApplication',
      auth: 'session',
      tags,
      summary: 'Admit, waitlist or reject an application, with a reason (operator only)',
      schema: {
        params: Type.Object({ application_id: Id('gapp') }),
        body: Type.Object(
          {
            decision: Type.Union([Type.Literal('admit'), Type.Literal('waitlist'), Type.Literal('reject')]),
            reason: Reason(10),
          },
          { additionalProperties: false },
        ),
        response: Application,
      },
      handler: async ({ db, principal, params, body, now }) =>
        applicationView(await decide(db, deps.metrics, requireOperator(principal), params.application_id, body, now)),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/v1/governance/outcomes/:outcome_id',
      operationId: 'updateOutcome',
      auth: 'session',
      tags,
      summary:
        'Keep an accountability record current: owner, status, progress, milestones, review date (operator only)',
      schema: {
        params: Type.Object({ outcome_id: Id('gout') }),
        body: Type.Object(
          {
            owner: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
            status: Type.Optional(
              Type.Union([
                Type.Literal('not_started'),
                Type.Literal('in_progress'),
                Type.Literal('done'),
                Type.Literal('blocked'),
              ]),
            ),
            progress_bps: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
            review_on: Type.Optional(IsoTime),
            milestones: Type.Optional(
              Type.Array(
                Type.Object(
                  {
                    title: Type.String({ minLength: 1, maxLength: 200 }),
                    due_on: Type.Optional(IsoTime),
                    done_at: Type.Optional(IsoTime),
                  },
                  { additionalProperties: false },
                ),
                { maxItems: 50 },
              ),
            ),
          },
          { additionalProperties: false },
        ),
        response: Outcome,
      },
      handler: async ({ db, principal, params, body, now }) => {
        const milestones = body.milestones?.map((milestone) => ({
          title: milestone.title,
          due_on: milestone.due_on === undefined ? null : Date.parse(milestone.due_on),
          done_at: milestone.done_at === undefined ? null : Date.parse(milestone.done_at),
        }))
        const update = {
          owner: body.owner,
          status: body.status,
          progress_bps: body.progress_bps,
          review_on: body.review_on === undefined ? undefined : Date.parse(body.review_on),
          milestones,
        }
        return outcomeView(await updateOutcome(db, requireOperator(principal), params.outcome_id, update, now))
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/governance/improvement-requests/:request_id/status',
      operationId: 'moveImprovementRequest',
      auth: 'session',
      tags,
      summary: 'Move a request on the public roadmap, with a changelog note (operator only)',
      schema: {
        params: Type.Object({ request_id: Id('greq') }),
        body: Type.Object(
          {
            status: Type.Union([
              Type.Literal('open'),
              Type.Literal('planned'),
              Type.Literal('in_progress'),
              Type.Literal('shipped'),
              Type.Literal('declined'),
            ]),
            note: Type.String({ minLength: 1, maxLength: 2000 }),
          },
          { additionalProperties: false },
        ),
        response: Request,
      },
      handler: async ({ db, principal, params, body, now }) =>
        requestView(await moveRequest(db, requireOperator(principal), params.request_id, body, now)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/governance/training-sessions',
      operationId: 'createTrainingSession',
      auth: 'session',
      tags,
      status: 201,
      summary: 'Schedule office hours, a course or a study tour for partners (operator only)',
      schema: {
        body: Type.Object(
          {
            kind: Type.Union([Type.Literal('office_hours'), Type.Literal('course'), Type.Literal('study_tour')]),
            title: Text(200),
            industry: Type.Optional(IndustryCode),
            starts_at: IsoTime,
            capacity: Type.Integer({ minimum: 1, maximum: 10_000 }),
          },
          { additionalProperties: false },
        ),
        response: TrainingSession,
      },
      handler: async ({ db, principal, body, now }) => {
        const input = { ...body, starts_at: Date.parse(body.starts_at) }
        return sessionView(await createSession(db, requireOperator(principal), input, now))
      },
    }),
  ]
}

export function operatorRoutes(deps: GovernanceDependencies): RouteSpec[] {
  return [...councilRoutes(deps), ...programmeRoutes(deps)]
}
