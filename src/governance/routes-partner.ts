/**
 * What partners do, as an organisation (`/v1/organizations/{organization_id}/governance/…`):
 * seats and proxies, proposals, ballots, conflict declarations, comments, applications,
 * improvement requests, training and the in-app inbox. The organisation in the path is the
 * seat that acts; the caller must belong to it (others get 404, as everywhere). Proposers
 * steer their own proposals through `/v1/governance/proposals/{proposal_id}/…`.
 */
import { Type } from '@sinclair/typebox'
import type { Kysely } from 'kysely'
import { requireMember } from '../platform/identity/service.js'
import { defineRoute, type RouteSpec } from '../server/route-kit.js'
import { Email, Id, IsoTime, Name, Page, isoTime, pageSizeDefault, pageSizeMax, toPage } from '../server/schemas.js'
import { revokeProxy, seatsOf, setProxy } from './council.js'
import type { GovernanceDependencies } from './index.js'
import { amendProposal, createProposal, openVoting, submitProposal, withdrawProposal } from './proposals.js'
import { apply, listApplications } from './recruitment.js'
import { fileRequest, supportRequest } from './roadmap.js'
import { Request, requestView } from './routes-public.js'
import { Comment, ContentFields, IndustryCode, Nullable, Proposal, Reason, TypeKey, VoteInput } from './schema.js'
import type { GovernanceTables } from './tables.js'
import { cancelEnrolment, enrol } from './training.js'
import { commentView, proposalView } from './views.js'
import { addComment, castVote, declareConflict } from './voting.js'

type Db = Kysely<GovernanceTables>

const Organization = { organization_id: Id('org') }
const OrganizationParams = Type.Object(Organization)
const OrganizationProposalParams = Type.Object({ ...Organization, proposal_id: Id('prop') })
const ProposalParams = Type.Object({ proposal_id: Id('prop') })
const Limit = Type.Optional(Type.Integer({ minimum: 1, maximum: pageSizeMax, default: pageSizeDefault }))

export const Application = Type.Object({
  id: Type.String(),
  batch_id: Type.String(),
  organization_id: Type.String(),
  industries: Type.Array(Type.String()),
  company: Type.Record(Type.String(), Type.Unknown()),
  founder: Type.Record(Type.String(), Type.Unknown()),
  evaluation: Type.Array(
    Type.Object({
      criterion: Type.String(),
      industry: Nullable(Type.String()),
      required: Type.Integer(),
      measured: Nullable(Type.Integer()),
      met: Nullable(Type.Boolean()),
    }),
  ),
  status: Type.String(),
  decision_reason: Nullable(Type.String()),
  decided_at: Nullable(IsoTime),
  created_at: IsoTime,
})

export function applicationView(row: GovernanceTables['gov_applications']) {
  return {
    id: row.id,
    batch_id: row.batch_id,
    organization_id: row.organization_id,
    industries: JSON.parse(row.industries),
    company: JSON.parse(row.company),
    founder: JSON.parse(row.founder),
    evaluation: JSON.parse(row.evaluation),
    status: row.status,
    decision_reason: row.decision_reason,
    decided_at: row.decided_at === null ? null : isoTime(row.decided_at),
    created_at: isoTime(row.created_at),
  }
}

const CompanyProfile = Type.Object(
  {
    name: Name,
    description: Type.String({ minLength: 1, maxLength: 4000 }),
    website: Type.Optional(Type.String({ format: 'uri', maxLength: 500 })),
    founded_year: Type.Optional(Type.Integer({ minimum: 1900, maximum: 2100 })),
    employees: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000 })),
  },
  { additionalProperties: false },
)
const FounderProfile = Type.Object(
  {
    name: Name,
    title: Type.String({ minLength: 1, maxLength: 200 }),
    record: Type.String({
      minLength: 1,
      maxLength: 4000,
      description: 'The founder or CEO’s record of innovation and influence',
    }),
    links: Type.Optional(Type.Array(Type.String({ format: 'uri', maxLength: 500 }), { maxItems: 10 })),
  },
  { additionalProperties: false },
)

function seatRoutes(): RouteSpec[] {
  const tags = ['governance']
  const SeatParams = Type.Object({ ...Organization, industry: IndustryCode })
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/organizations/:organization_id/governance/seats',
      operationId: 'listGovernanceSeats',
      auth: 'session',
      tags,
      summary: 'The council seats of the organisation and the proxy of each',
      schema: {
        params: OrganizationParams,
        response: Type.Object({
          data: Type.Array(
            Type.Object({
              industry: Type.String(),
              status: Type.String(),
              admitted_at: IsoTime,
              proxy_user_id: Nullable(Type.String()),
            }),
          ),
        }),
      },
      handler: async ({ db, principal, params }) => {
        await requireMember(db, principal, params.organization_id, 'read')
        const seats = await seatsOf(db, params.organization_id)
        return { data: seats.map((seat) => ({ ...seat, admitted_at: isoTime(seat.admitted_at) })) }
      },
    }),
    defineRoute({
      method: 'PUT',
      url: '/v1/organizations/:organization_id/governance/seats/:industry/proxy',
      operationId: 'setGovernanceProxy',
      auth: 'session',
      tags,
      summary: "Name a member of the organisation to vote for its seat; the owners' direct ballot still prevails",
      schema: {
        params: SeatParams,
        body: Type.Object({ email: Email }, { additionalProperties: false }),
        response: Type.Object({ industry: Type.String(), proxy_user_id: Type.String() }),
      },
      handler: async ({ db, principal, params, body, now }) => {
        const proxy = await setProxy(db, principal, params.organization_id, params.industry, body.email, now)
        return { industry: params.industry, proxy_user_id: proxy.user_id }
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/v1/organizations/:organization_id/governance/seats/:industry/proxy',
      operationId: 'revokeGovernanceProxy',
      auth: 'session',
      tags,
      summary: 'Revoke the proxy of a seat',
      schema: { params: SeatParams, response: Type.Object({ revoked: Type.Boolean() }) },
      handler: async ({ db, principal, params, now }) => {
        await revokeProxy(db, principal, params.organization_id, params.industry, now)
        return { revoked: true }
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/organizations/:organization_id/governance/inbox',
      operationId: 'listGovernanceInbox',
      auth: 'session',
      tags,
      summary: "The organisation's governance notifications, newest first (also sent as webhooks)",
      schema: {
        params: OrganizationParams,
        querystring: Type.Object(
          { limit: Limit, starting_after: Type.Optional(Id('gmsg')) },
          { additionalProperties: false },
        ),
        response: Page(
          Type.Object({ id: Type.String(), type: Type.String(), payload: Type.Unknown(), created_at: IsoTime }),
        ),
      },
      handler: async ({ db, principal, params, query }) => {
        await requireMember(db, principal, params.organization_id, 'read')
        const limit = query.limit ?? pageSizeDefault
        let select = (db as Db)
          .selectFrom('gov_inbox')
          .selectAll()
          .where('organization_id', '=', params.organization_id)
          .orderBy('created_at', 'desc')
          .orderBy('id', 'desc')
          .limit(limit + 1)
        if (query.starting_after !== undefined) {
          const cursor = await (db as Db)
            .selectFrom('gov_inbox')
            .select(['created_at', 'id'])
            .where('id', '=', query.starting_after)
            .where('organization_id', '=', params.organization_id)
            .executeTakeFirst()
          if (cursor !== undefined) {
            select = select.where((eb) =>
              eb.or([
                eb('created_at', '<', cursor.created_at),
                eb.and([eb('created_at', '=', cursor.created_at), eb('id', '<', cursor.id)]),
              ]),
            )
          }
        }
        return toPage(await select.execute(), limit, (row) => ({
          id: row.id,
          type: row.type,
          payload: JSON.parse(row.payload) as unknown,
          created_at: isoTime(row.created_at),
        }))
      },
    }),
  ]
}

function proposalRoutes(deps: GovernanceDependencies): RouteSpec[] {
  const tags = ['governance']
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/organizations/:organization_id/governance/proposals',
      operationId: 'listOrganizationProposals',
      auth: 'session',
      tags,
      summary: 'The proposals the organisation made, drafts included, newest first',
      schema: {
        params: OrganizationParams,
        querystring: Type.Object({ limit: Limit }, { additionalProperties: false }),
        response: Type.Object({ data: Type.Array(Proposal) }),
      },
      handler: async ({ db, principal, params, query }) => {
        await requireMember(db, principal, params.organization_id, 'read')
        const rows = await (db as Db)
          .selectFrom('gov_proposals')
          .selectAll()
          .where('proposer_org_id', '=', params.organization_id)
          .orderBy('created_at', 'desc')
          .orderBy('id', 'desc')
          .limit(query.limit ?? pageSizeDefault)
          .execute()
        return { data: await Promise.all(rows.map((row) => proposalView(db, row))) }
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/organizations/:organization_id/governance/proposals',
      operationId: 'createProposal',
      auth: 'session',
      tags,
      status: 201,
      summary: "Draft a proposal for one of the organisation's councils; the type's rules are pinned into it",
      schema: {
        params: OrganizationParams,
        body: Type.Object({ industry: IndustryCode, type: TypeKey, ...ContentFields }, { additionalProperties: false }),
        response: Proposal,
      },
      handler: async ({ db, principal, params, body, now }) => {
        const proposer = { kind: 'partner' as const, principal, organizationId: params.organization_id }
        return proposalView(db, await createProposal(db, deps.env, proposer, body, now))
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/organizations/:organization_id/governance/proposals/:proposal_id/votes',
      operationId: 'castGovernanceVote',
      auth: 'session',
      tags,
      summary: "Cast (or replace) the seat's ballot, bound to the content hash under vote",
      schema: {
        params: OrganizationProposalParams,
        body: VoteInput,
        response: Type.Object({ proposal_id: Type.String(), replaced: Type.Boolean(), via_proxy: Type.Boolean() }),
      },
      handler: async ({ db, principal, params, body, now }) => {
        const cast = await castVote(db, principal, params.organization_id, params.proposal_id, body, now)
        return { proposal_id: params.proposal_id, ...cast }
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/organizations/:organization_id/governance/proposals/:proposal_id/conflicts',
      operationId: 'declareGovernanceConflict',
      auth: 'session',
      tags,
      summary: 'Declare a conflict of interest: the seat is recused from this proposal, in public',
      schema: {
        params: OrganizationProposalParams,
        body: Type.Object({ reason: Reason(10) }, { additionalProperties: false }),
        response: Type.Object({ proposal_id: Type.String(), recused: Type.Boolean() }),
      },
      handler: async ({ db, principal, params, body, now }) => {
        await declareConflict(db, principal, params.organization_id, params.proposal_id, body.reason, now)
        return { proposal_id: params.proposal_id, recused: true }
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/organizations/:organization_id/governance/proposals/:proposal_id/comments',
      operationId: 'commentOnProposal',
      auth: 'session',
      tags,
      status: 201,
      summary: 'Comment on a proposal in discussion or voting, as a member of a partner',
      schema: {
        params: OrganizationProposalParams,
        body: Type.Object({ body: Type.String({ minLength: 1, maxLength: 8000 }) }, { additionalProperties: false }),
        response: Comment,
      },
      handler: async ({ db, principal, params, body, now }) =>
        commentView(await addComment(db, principal, params.organization_id, params.proposal_id, body.body, now)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/governance/proposals/:proposal_id/versions',
      operationId: 'amendProposal',
      auth: 'session',
      tags,
      status: 201,
      summary: 'Amend a draft or a proposal in discussion: a new version with its diff (refused once voting opens)',
      schema: {
        params: ProposalParams,
        body: Type.Object(
          { ...ContentFields, note: Type.String({ minLength: 1, maxLength: 2000 }) },
          { additionalProperties: false },
        ),
        response: Proposal,
      },
      handler: async ({ db, principal, params, body, now }) =>
        proposalView(db, await amendProposal(db, deps.env, principal, params.proposal_id, body, now)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/governance/proposals/:proposal_id/submit',
      operationId: 'submitProposal',
      auth: 'session',
      tags,
      summary: 'Open a draft for discussion by the council',
      schema: { params: ProposalParams, response: Proposal },
      handler: async ({ db, principal, params, now }) =>
        proposalView(db, await submitProposal(db, principal, params.proposal_id, now)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/governance/proposals/:proposal_id/open-voting',
      operationId: 'openProposalVoting',
      auth: 'session',
      tags,
      summary: 'Open voting on the current version: the content hash is frozen and the electorate fixed',
      schema: { params: ProposalParams, response: Proposal },
      handler: async ({ db, principal, params, now }) =>
        proposalView(db, await openVoting(db, principal, params.proposal_id, now)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/governance/proposals/:proposal_id/withdraw',
      operationId: 'withdrawProposal',
      auth: 'session',
      tags,
      summary: 'Withdraw a proposal before its vote closes',
      schema: {
        params: ProposalParams,
        body: Type.Object({ reason: Reason(1) }, { additionalProperties: false }),
        response: Proposal,
      },
      handler: async ({ db, principal, params, body, now }) =>
        proposalView(db, await withdrawProposal(db, principal, params.proposal_id, body.reason, now)),
    }),
  ]
}

function programmeRoutes(deps: GovernanceDependencies): RouteSpec[] {
  const tags = ['governance']
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/organizations/:organization_id/governance/applications',
      operationId: 'applyToRecruitmentBatch',
      auth: 'session',
      tags,
      status: 201,
      summary: 'Apply to a recruitment batch; measurable criteria are evaluated at once',
      schema: {
        params: OrganizationParams,
        body: Type.Object(
          {
            batch_id: Id('gbat'),
            industries: Type.Array(IndustryCode, { minItems: 1, maxItems: 20 }),
            company: CompanyProfile,
            founder: FounderProfile,
          },
          { additionalProperties: false },
        ),
        response: Application,
      },
      handler: async ({ db, principal, params, body, now }) =>
        applicationView(await apply(db, deps.metrics, principal, params.organization_id, body, now)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/organizations/:organization_id/governance/applications',
      operationId: 'listOrganizationApplications',
      auth: 'session',
      tags,
      summary: "The organisation's applications, with the evaluation of each criterion and the decision",
      schema: {
        params: OrganizationParams,
        querystring: Type.Object(
          { limit: Limit, starting_after: Type.Optional(Id('gapp')) },
          { additionalProperties: false },
        ),
        response: Page(Application),
      },
      handler: async ({ db, principal, params, query }) => {
        await requireMember(db, principal, params.organization_id, 'read')
        const limit = query.limit ?? pageSizeDefault
        const rows = await listApplications(db, { organizationId: params.organization_id }, limit, query.starting_after)
        return toPage(rows, limit, applicationView)
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/organizations/:organization_id/governance/improvement-requests',
      operationId: 'fileImprovementRequest',
      auth: 'session',
      tags,
      status: 201,
      summary: 'File an improvement request against a capability (partners only)',
      schema: {
        params: OrganizationParams,
        body: Type.Object(
          {
            capability: Type.String({ minLength: 1, maxLength: 40 }),
            title: Type.String({ minLength: 1, maxLength: 200 }),
            body: Type.String({ minLength: 1, maxLength: 8000 }),
          },
          { additionalProperties: false },
        ),
        response: Request,
      },
      handler: async ({ db, principal, params, body, now }) =>
        requestView(await fileRequest(db, deps.capabilities, principal, params.organization_id, body, now)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/organizations/:organization_id/governance/improvement-requests/:request_id/support',
      operationId: 'supportImprovementRequest',
      auth: 'session',
      tags,
      summary: "Add or withdraw the organisation's support for a request (one per partner)",
      schema: {
        params: Type.Object({ ...Organization, request_id: Id('greq') }),
        body: Type.Object({ support: Type.Boolean() }, { additionalProperties: false }),
        response: Request,
      },
      handler: async ({ db, principal, params, body, now }) =>
        requestView(await supportRequest(db, principal, params.organization_id, params.request_id, body.support, now)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/organizations/:organization_id/governance/training-sessions/:session_id/enrolment',
      operationId: 'enrolInTraining',
      auth: 'session',
      tags,
      status: 201,
      summary: 'Take a place in a training session, or join its waitlist when it is full',
      schema: {
        params: Type.Object({ ...Organization, session_id: Id('gtrn') }),
        response: Type.Object({ status: Type.String(), waitlist_position: Nullable(Type.Integer()) }),
      },
      handler: async ({ db, principal, params, now }) => {
        const result = await enrol(db, principal, params.organization_id, params.session_id, now)
        return { status: result.status, waitlist_position: result.position }
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/v1/organizations/:organization_id/governance/training-sessions/:session_id/enrolment',
      operationId: 'cancelTrainingEnrolment',
      auth: 'session',
      tags,
      summary: 'Give the place back; the first organisation on the waitlist takes it',
      schema: {
        params: Type.Object({ ...Organization, session_id: Id('gtrn') }),
        response: Type.Object({ cancelled: Type.Boolean(), promoted_organization_id: Nullable(Type.String()) }),
      },
      handler: async ({ db, principal, params, now }) => {
        const result = await cancelEnrolment(db, principal, params.organization_id, params.session_id, now)
        return { cancelled: true, promoted_organization_id: result.promoted }
      },
    }),
  ]
}

export function partnerRoutes(deps: GovernanceDependencies): RouteSpec[] {
  return [...seatRoutes(), ...proposalRoutes(deps), ...programmeRoutes(deps)]
}
