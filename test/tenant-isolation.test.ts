/**
 * Every route refuses cross-tenant access. The routes come from the OpenAPI document, not
 * from a list kept here, so a new route cannot be left out: an operation this suite has no
 * rule for (an unknown path parameter, a body it cannot build, a tenant-wide operation it
 * does not classify) fails the suite until someone decides how it must be isolated.
 *
 * Each tenant (see isolation-fixtures.ts) is a user owning an ISV organisation and a
 * merchant organisation; the ISV's sandbox app has a key, redirect URIs and a webhook
 * endpoint with a delivery, and acts for the merchant with an app auth token from the real
 * authorisation module: a store, a sandbox consumer, a paid trade with a refund and a
 * profit-sharing request to a bound receiver, unpaid trades, and an unused consent code.
 * Tenant A also has a developer. Every non-public operation is called as B with A's
 * identifiers in the path (and, for routes with several identifiers, every mix of A's and
 * B's), and must answer 403 or 404 with a registered error code; app operations are called
 * both with B's app acting for B's merchant and with B's app acting as itself. Operations
 * without path parameters act on the caller's own tenant: lists must not show A's data,
 * creates must create for B, lookups by A's identifiers (in the query or the body) are
 * refused, and "self" operations (log out, change password) must touch only B. An app may
 * act only for a merchant that authorised it, and only within the granted scopes. The
 * operator may read any organisation but write none it does not belong to. At the end A's
 * resources are exactly as they were, and A's unused code and refresh token still work.
 *
 * Governance: A is a partner of the education council, admitted through the operator's
 * recruitment batch, with its developer as its seat's proxy, a draft, a proposal in
 * discussion, one in voting with A's secret ballot, an improvement request, the training
 * session's one place, and two proposals enacted while the fixture was built. B has applied
 * to the same batch and is waitlisted: no partner. Council resources (the industry, its
 * proposal types, the batch, the session, proposals, requests, outcomes) belong to no tenant,
 * so B names the very ones A does, and the organisation in the path, or the caller's role,
 * decides: operator-only operations refuse everyone else with AUTH_FORBIDDEN, and only the
 * proposer's owners and admins steer a proposal. C, a fellow partner of A's council, may
 * take part in it but must not act as A either. The public view of governance shows nothing
 * private of A (its applications, drafts, proxy, inbox, secret ballot), and A's governance
 * writes are never replayed to B, who sends A's own Idempotency-Keys.
 */
import crypto from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { beforeAll, expect, it } from 'vitest'
import { errorTable } from '../src/errors.js'
import type { PolicySource } from '../src/platform/policy/policy-service.js'
import {
  createAppWithKey,
  ed25519KeyPair,
  json,
  session,
  signed,
  signUp,
  testPassword,
  type Tenant,
  type TestApp,
  eachOperation,
  type Injected,
} from './fixtures.js'
import { forEachDialect, useTestPlatform } from './harness.js'
import {
  admitPartners,
  allScopes,
  governanceText,
  grantScopes,
  openCouncil,
  partnerWorld,
  proposalRules,
  submitConsent,
  tenantWorld,
  type Council,
  type PartnerWorld,
  type TenantWorld,
} from './isolation-fixtures.js'

type AuthMode = 'public' | 'session' | 'app'

interface OpenApiOperation {
  readonly operationId: string
  readonly 'x-baseplate-auth': AuthMode
  readonly 'x-baseplate-scope'?: string
  readonly 'x-baseplate-idempotency'?: string
  readonly parameters?: ReadonlyArray<{ readonly name: string; readonly in: string; readonly required?: boolean }>
  readonly requestBody?: unknown
}

interface Operation {
  readonly method: string
  readonly template: string
  readonly operationId: string
  readonly auth: AuthMode
  /** The scope a merchant must have granted, for app operations that need one. */
  readonly scope: string | undefined
  readonly idempotency: string
  readonly pathParams: readonly string[]
  readonly requiredQuery: readonly string[]
  readonly optionalQuery: readonly string[]
  readonly hasBody: boolean
}

/** Adding a public route is a conscious act: it must be added here too. */
const expectedPublicOperations = [
  'getGovernanceCouncil',
  'getPlatformKey',
  'getPolicyVersion',
  'getProposal',
  'getRoadmap',
  'listCapabilities',
  'listGovernanceAudit',
  'listGovernanceIndustries',
  'listOutcomes',
  'listPolicyVersions',
  'listProposalComments',
  'listProposalVersions',
  'listProposalVotes',
  'listProposals',
  'listRecruitmentBatches',
  'listTrainingSessions',
  'logIn',
  'signUp',
]

/** The identifiers one tenant owns, by the path parameter that names them. */
interface TenantIds {
  readonly organizationId: string
  readonly appId: string
  readonly keyId: string
  readonly storeId: string
  readonly merchantId: string
  readonly tradeId: string
  readonly outTradeNo: string
  readonly outRequestNo: string
  readonly receiverId: string
  readonly consumerId: string
  readonly authorizationId: string
  readonly endpointId: string
  readonly deliveryId: string
  readonly eventId: string
  readonly governance: GovernanceIds
}

/**
 * What a tenant names in governance. The council's own resources are shared: B names the
 * very ones A does. Proposals and requests are A's, which B (no partner) cannot have, so B
 * names A's too; applications and inbox messages are each tenant's own.
 */
interface GovernanceIds {
  readonly industry: string
  readonly typeKey: string
  readonly batchId: string
  readonly sessionId: string
  readonly outcomeId: string
  /** In discussion. */
  readonly proposalId: string
  readonly draftProposalId: string
  /** In voting, with A's secret ballot. */
  readonly votingProposalId: string
  readonly requestId: string
  readonly applicationId: string
  readonly inboxMessageId: string
}

function idsOf(world: TenantWorld, governance: GovernanceIds): TenantIds {
  return {
    organizationId: world.user.organizationId,
    appId: world.testApp.appId,
    keyId: world.keyId,
    storeId: world.storeId,
    merchantId: world.merchantId,
    tradeId: world.tradeId,
    outTradeNo: (world.bodies.payTrade as { out_trade_no: string }).out_trade_no,
    outRequestNo: world.outRequestNo,
    receiverId: world.receiverId,
    consumerId: world.consumerId,
    authorizationId: world.grant.authorization_id,
    endpointId: world.endpointId,
    deliveryId: world.deliveryId,
    eventId: world.eventId,
    governance,
  }
}

/**
 * Each path parameter the API uses, mapped to the tenant's value. A path parameter missing
 * here fails the suite. `environment` names no tenant's data (it appears only in the public
 * GET /v1/platform-keys/{environment}); a non-public route taking it must pair it with a
 * tenant identifier, which then decides the answer. `out_request_no` is the tenant's own
 * number of both its refund and its profit-sharing request on `trade_id`.
 */
const pathParameterValues: Record<string, (ids: TenantIds) => string> = {
  organization_id: (ids) => ids.organizationId,
  app_id: (ids) => ids.appId,
  key_id: (ids) => ids.keyId,
  store_id: (ids) => ids.storeId,
  environment: () => 'sandbox',
  trade_id: (ids) => ids.tradeId,
  out_request_no: (ids) => ids.outRequestNo,
  receiver_id: (ids) => ids.receiverId,
  consumer_id: (ids) => ids.consumerId,
  authorization_id: (ids) => ids.authorizationId,
  endpoint_id: (ids) => ids.endpointId,
  delivery_id: (ids) => ids.deliveryId,
  industry: (ids) => ids.governance.industry,
  type_key: (ids) => ids.governance.typeKey,
  batch_id: (ids) => ids.governance.batchId,
  session_id: (ids) => ids.governance.sessionId,
  outcome_id: (ids) => ids.governance.outcomeId,
  proposal_id: (ids) => ids.governance.proposalId,
  request_id: (ids) => ids.governance.requestId,
  application_id: (ids) => ids.governance.applicationId,
}

/** Path parameters that name a council's resources, which belong to no tenant (see GovernanceIds). */
const councilParameters = [
  'industry',
  'type_key',
  'batch_id',
  'session_id',
  'outcome_id',
  'proposal_id',
  'request_id',
  'application_id',
]

/**
 * Operations whose parameter names something else than the usual value: the merchant's
 * console names the merchant organisation in `organization_id`, not the ISV.
 */
const operationPathValues: Record<string, Record<string, (ids: TenantIds) => string>> = {
  listMerchantAuthorizations: { organization_id: (ids) => ids.merchantId },
  revokeAuthorization: { organization_id: (ids) => ids.merchantId },
  // Where a request that got through would do most harm: submit A's draft to the council,
  // replace A's ballot, or recuse A's seat (which withdraws its ballot).
  submitProposal: { proposal_id: (ids) => ids.governance.draftProposalId },
  castGovernanceVote: { proposal_id: (ids) => ids.governance.votingProposalId },
  declareGovernanceConflict: { proposal_id: (ids) => ids.governance.votingProposalId },
}

/**
 * Operations only the operator may call, whatever they name: anyone else gets 403
 * AUTH_FORBIDDEN (with A's identifiers and with B's own alike). Those without path
 * parameters are classified `operator-only` in tenantWideRules instead.
 */
const operatorOnlyOperations = [
  'putProposalType',
  'createOperatorProposal',
  'vetoProposal',
  'commentOnProposalAsOperator',
  'listBatchApplications',
  'decideApplication',
  'updateOutcome',
  'moveImprovementRequest',
]

/** Refusals allowed to differ from a made-up id on A's draft, by caller; none today. */
const draftLeaks: Record<string, readonly string[]> = {}

/** Operations that steer a proposal: only its proposer's owners and admins; others get 403 AUTH_FORBIDDEN. */
const proposerOnlyOperations = ['amendProposal', 'submitProposal', 'openProposalVoting', 'withdrawProposal']

function hasPathValue(operation: Operation, name: string): boolean {
  return name in pathParameterValues || name in (operationPathValues[operation.operationId] ?? {})
}

function pathValue(operation: Operation, name: string, ids: TenantIds): string {
  return (operationPathValues[operation.operationId]?.[name] ?? pathParameterValues[name]!)(ids)
}

interface BodyContext {
  readonly caller: Tenant
  /** B, whose app and user make the calls. */
  readonly attacker: TenantWorld
  /** A, whose very bodies the attacker replays where that makes a sharper test. */
  readonly victim: TenantWorld
  /** A as a partner of the council. */
  readonly victimPartner: PartnerWorld
  readonly council: Council
  readonly publicKeyPem: string
}

/** A body that looks up a resource, and one naming nothing, which must be refused alike. */
interface Probe {
  readonly what: string
  readonly victim: unknown
  readonly unknown: unknown
}

/**
 * What B may do with an operation that has no path parameter: it acts on B's own tenant.
 * `list` answers 200 with B's data and without A's; `create` creates for B (`owner` reads
 * the owning organisation off the result, `readBack` names where B, and not A, finds it);
 * `own-write` changes only B's data (`effect` counts what it changed, so the test is not
 * vacuous); `self` touches only B's user; `operator-only` is refused; `lookup` finds a
 * resource by A's identifiers in the query (see queries) or in the body (`probes`) and must
 * be refused like a path lookup, or, for probes, exactly like a lookup of nothing.
 */
type TenantWideRule =
  | { readonly kind: 'list' }
  | {
      readonly kind: 'create'
      readonly status?: 200 | 201
      readonly owner?: (created: any) => string
      readonly readBack?: (created: any) => { readonly url: string; readonly marker: string }
    }
  | { readonly kind: 'own-write'; readonly effect: (result: any) => number }
  | { readonly kind: 'self'; readonly endsSession: boolean }
  | { readonly kind: 'operator-only' }
  | { readonly kind: 'lookup'; readonly probes?: (context: BodyContext) => readonly Probe[] }

const tradeReadBack = (created: { id: string }) => ({ url: `/v1/trades/${created.id}`, marker: created.id })
/** An identifier of the same kind that names nothing. */
const madeUpId = (id: string) => {
  const suffix = Array.from(crypto.randomBytes(20), (byte) => (byte % 36).toString(36)).join('')
  return `${id.slice(0, id.lastIndexOf('_'))}_${suffix}`
}
const madeUpSecret = (prefix: string) => `${prefix}_${crypto.randomBytes(32).toString('base64url')}`

const tenantWideRules: Record<string, TenantWideRule> = {
  getMe: { kind: 'list' },
  listStores: { kind: 'list' },
  getBalances: { kind: 'list' },
  listRoyaltyReceivers: { kind: 'list' },
  // The authorisation behind the caller's own token: B's, never A's.
  getCurrentAuthorization: { kind: 'list' },
  createOrganization: { kind: 'create' },
  createStore: {
    kind: 'create',
    owner: (created) => created.organization_id,
    readBack: (created) => ({ url: `/v1/stores/${created.id}`, marker: created.id }),
  },
  createTrade: { kind: 'create', owner: (created) => created.merchant_id, readBack: tradeReadBack },
  precreateTrade: { kind: 'create', owner: (created) => created.merchant_id, readBack: tradeReadBack },
  payTrade: { kind: 'create', status: 200, owner: (created) => created.merchant_id, readBack: tradeReadBack },
  createSandboxConsumer: {
    kind: 'create',
    readBack: (created) => ({ url: `/v1/sandbox/consumers/${created.id}`, marker: created.id }),
  },
  bindRoyaltyReceiver: {
    kind: 'create',
    readBack: (created) => ({ url: '/v1/royalty-receivers', marker: created.receiver_id }),
  },
  // Settles B's due trades; A's trade is due too (no settlement delay here) and must stay unsettled.
  settleDueTrades: { kind: 'own-write', effect: (result) => result.settled_trades },
  logOut: { kind: 'self', endsSession: true },
  changePassword: { kind: 'self', endsSession: true },
  listAuditEvents: { kind: 'operator-only' },
  createGovernanceIndustry: { kind: 'operator-only' },
  createRecruitmentBatch: { kind: 'operator-only' },
  createTrainingSession: { kind: 'operator-only' },
  lookupTrade: { kind: 'lookup' },
  // B's app presents A's code or A's refresh token: refused as if they did not exist.
  exchangeAppAuthToken: {
    kind: 'lookup',
    probes: ({ victim }) => [
      {
        what: "A's app_auth_code",
        victim: { grant_type: 'authorization_code', code: victim.code },
        unknown: { grant_type: 'authorization_code', code: madeUpSecret('bpac') },
      },
      {
        what: "A's refresh token",
        victim: { grant_type: 'refresh_token', refresh_token: victim.grant.app_refresh_token },
        unknown: { grant_type: 'refresh_token', refresh_token: madeUpSecret('bprt') },
      },
    ],
  },
}

/** A schema-valid body per operation that takes one. A missing entry fails the suite. */
const validBodies: Record<string, (context: BodyContext) => unknown> = {
  changePassword: () => ({ current_password: testPassword, new_password: `${testPassword} changed` }),
  createOrganization: () => ({ name: 'B second organisation', kind: 'isv' }),
  // The attacker tries to make itself an owner of the victim's organisation.
  addMember: ({ caller }) => ({ email: caller.email, role: 'owner' }),
  createApp: () => ({ name: 'intruder app', environment: 'sandbox' }),
  // The attacker tries to register its own key on the victim's app, to sign as it.
  registerAppKey: ({ publicKeyPem }) => ({ public_key_pem: publicKeyPem }),
  // The attacker tries to make the victim's consent page send merchants' codes to itself.
  setAppRedirectUris: () => ({ redirect_uris: ['https://intruder.example.com/oauth/callback'] }),
  // The attacker tries to receive the victim's app's events.
  createWebhookEndpoint: () => ({ url: 'https://intruder.example.com/webhooks' }),
  exchangeAppAuthToken: ({ victim }) => ({ grant_type: 'authorization_code', code: victim.code }),
  // The very bodies (and idempotency keys) the victim used: must not replay the victim's
  // resources, nor collide with the victim's out_trade_no, which is unique per merchant.
  createStore: ({ victim }) => victim.bodies.createStore,
  precreateTrade: ({ victim }) => victim.bodies.precreateTrade,
  // A buyer and a payment code are the attacker's own: a consumer's code pays any merchant.
  createTrade: ({ victim, attacker }) => ({
    ...(victim.bodies.createTrade as object),
    buyer_id: attacker.consumerId,
    store_id: attacker.storeId,
  }),
  payTrade: ({ victim, attacker }) => ({
    ...(victim.bodies.payTrade as object),
    auth_code: attacker.reusableCode,
  }),
  createSandboxConsumer: ({ victim }) => victim.bodies.createSandboxConsumer,
  // Binding any organisation as one's own receiver is allowed; the attacker binds its own.
  bindRoyaltyReceiver: ({ attacker }) => attacker.bodies.bindRoyaltyReceiver,
  // On the victim's trade, the victim's own refund and profit sharing again: must not replay them.
  refundTrade: ({ victim }) => victim.bodies.refundTrade,
  settleRoyalty: ({ victim }) => victim.bodies.settleRoyalty,
  // The attacker tries to fund, or mint a code to spend, the victim's consumer.
  topUpSandboxConsumer: () => ({ amount: 100 }),
  mintPaymentCode: () => ({ reusable: true }),
  // The attacker tries to send the Alipay-format notifications of the victim's app to itself.
  setAlipaySettings: () => ({ notify_url: 'https://intruder.example.com/alipay/notify' }),
  // Governance. The attacker tries to become the victim's proxy, to propose, comment, apply
  // and file in the victim's name with the victim's very bodies, to turn the victim's `no`
  // into a `yes` on the content under vote, to recuse the victim's seat (which withdraws its
  // ballot), to withdraw the victim's support of its own request, and to rewrite, open or
  // withdraw the victim's proposals.
  setGovernanceProxy: ({ caller }) => ({ email: caller.email }),
  createProposal: ({ victimPartner }) => victimPartner.bodies.createProposal,
  commentOnProposal: () => ({ body: 'Written by an intruder' }),
  castGovernanceVote: ({ victimPartner }) => ({ content_hash: victimPartner.votingHash, vote: 'yes' }),
  declareGovernanceConflict: () => ({ reason: 'An intruder declares a conflict for this seat' }),
  applyToRecruitmentBatch: ({ victimPartner }) => victimPartner.bodies.applyToRecruitmentBatch,
  fileImprovementRequest: ({ victimPartner }) => victimPartner.bodies.fileImprovementRequest,
  supportImprovementRequest: () => ({ support: false }),
  amendProposal: () => ({
    title: governanceText('Rewritten by an intruder'),
    body: governanceText('Rewritten by an intruder'),
    note: 'An intruder amends',
  }),
  withdrawProposal: () => ({ reason: 'Withdrawn by an intruder' }),
  // And the operator's part: to extend the industries, change the rules of the victim's
  // council, propose or comment as the operator, veto, recruit and admit (itself, too),
  // close the victim's outcome, decline the victim's request, schedule training.
  createGovernanceIndustry: () => ({ code: 'intruders', name: governanceText('Intruders') }),
  putProposalType: () => ({
    name: governanceText('Rules of an intruder'),
    rules: proposalRules({ quorum_bps: 10_000 }),
  }),
  createOperatorProposal: ({ council }) => ({
    type: council.typeKey,
    title: governanceText('Proposed by an intruder'),
    body: governanceText('Proposed by an intruder'),
  }),
  vetoProposal: () => ({ reason: 'An intruder vetoes this proposal, at length' }),
  commentOnProposalAsOperator: () => ({ body: 'An intruder speaking as the operator' }),
  createRecruitmentBatch: ({ council }) => ({
    ...(council.bodies.createRecruitmentBatch as object),
    name: 'Batch of an intruder',
  }),
  decideApplication: () => ({ decision: 'admit', reason: 'Admitted by an intruder' }),
  updateOutcome: () => ({ owner: 'An intruder', status: 'done', progress_bps: 10_000 }),
  moveImprovementRequest: () => ({ status: 'declined', note: 'Declined by an intruder' }),
  createTrainingSession: ({ council }) => council.bodies.createTrainingSession,
}

/**
 * The query string for operations with required query parameters, naming A's (the victim's)
 * resources. An operation with a required query parameter and no entry fails the suite.
 */
const queries: Record<string, (ids: TenantIds) => string> = {
  // A's paid trade's number. B's creates later reuse it for B's own trade (they must land in
  // B): the lookup test runs before them.
  lookupTrade: (ids) => `out_trade_no=${encodeURIComponent(ids.outTradeNo)}`,
}

/**
 * Optional query parameters that name something (a cursor, a filter by identifier), with A's
 * value for each: B's own list given A's identifier must ignore it or refuse it, and show
 * nothing of A. A cursor or `…_id` filter missing here fails the suite.
 */
const victimFilters: Record<string, Record<string, (ids: TenantIds) => string>> = {
  listApps: { starting_after: (ids) => ids.appId },
  listStores: { starting_after: (ids) => ids.storeId },
  listAppAuthorizations: { starting_after: (ids) => ids.authorizationId },
  listMerchantAuthorizations: { starting_after: (ids) => ids.authorizationId },
  listWebhookEndpoints: { starting_after: (ids) => ids.endpointId },
  listWebhookDeliveries: {
    starting_after: (ids) => ids.deliveryId,
    endpoint_id: (ids) => ids.endpointId,
    event_id: (ids) => ids.eventId,
  },
  listGovernanceInbox: { starting_after: (ids) => ids.governance.inboxMessageId },
  listOrganizationApplications: { starting_after: (ids) => ids.governance.applicationId },
  listBatchApplications: { starting_after: (ids) => ids.governance.applicationId },
}

const namesSomething = (parameter: string) => parameter === 'starting_after' || parameter.endsWith('_id')

/**
 * Refusals that answer the wrong status today but leak nothing: reported as bugs, and
 * accepted here only until fixed (then remove the entry), so that the rest of the
 * operation's checks (a registered code, nothing of A's in the answer, A unchanged) still run.
 */
/** Operations allowed a status other than 403/404 for another tenant's ids; none today. */
const knownWrongStatuses: Record<string, readonly number[]> = {}

/** Reads the operator must be able to make in any organisation. */
const operatorReads = [
  'getOrganization',
  'listMembers',
  'listApps',
  'getApp',
  'listAppKeys',
  'listGovernanceSeats',
  'listGovernanceInbox',
  'listOrganizationProposals',
  'listOrganizationApplications',
]

function operationsOf(document: { paths: Record<string, Record<string, OpenApiOperation>> }): Operation[] {
  return eachOperation(document).map(({ method, template, operation }): Operation => ({
    method,
    template,
    operationId: operation.operationId,
    auth: operation['x-baseplate-auth'],
    scope: operation['x-baseplate-scope'],
    idempotency: operation['x-baseplate-idempotency'] ?? 'none',
    pathParams: [...template.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]!),
    requiredQuery: (operation.parameters ?? [])
      .filter((p) => p.in === 'query' && p.required === true)
      .map((p) => p.name),
    optionalQuery: (operation.parameters ?? [])
      .filter((p) => p.in === 'query' && p.required !== true)
      .map((p) => p.name),
    hasBody: operation.requestBody !== undefined,
  }))
}

/** Why the suite cannot judge an operation, or null when it has every rule it needs. */
function missingRule(operation: Operation): string | null {
  if (!['public', 'session', 'app'].includes(operation.auth)) {
    return `${operation.operationId}: unknown x-baseplate-auth ${String(operation.auth)}`
  }
  if (operation.auth === 'public') return null
  const unknown = operation.pathParams.filter((name) => !hasPathValue(operation, name))
  if (unknown.length > 0) {
    return (
      `${operation.operationId}: no tenant value for path parameter(s) ${unknown.join(', ')}; ` +
      'add them to pathParameterValues'
    )
  }
  if (operation.requiredQuery.length > 0 && !(operation.operationId in queries)) {
    return (
      `${operation.operationId}: requires query parameter(s) ${operation.requiredQuery.join(', ')}; ` +
      'add an entry to queries'
    )
  }
  if (operation.hasBody && !(operation.operationId in validBodies)) {
    return `${operation.operationId}: takes a body but validBodies has none`
  }
  const filters = operation.optionalQuery.filter(
    (name) => namesSomething(name) && victimFilters[operation.operationId]?.[name] === undefined,
  )
  if (filters.length > 0) {
    return (
      `${operation.operationId}: query parameter(s) ${filters.join(', ')} name something; ` +
      'add them to victimFilters'
    )
  }
  if (
    operation.pathParams.length > 0 &&
    operation.pathParams.every((name) => councilParameters.includes(name)) &&
    !operatorOnlyOperations.includes(operation.operationId) &&
    !proposerOnlyOperations.includes(operation.operationId)
  ) {
    return (
      `${operation.operationId}: names only council resources, which belong to no tenant; ` +
      'say who may call it in operatorOnlyOperations or proposerOnlyOperations'
    )
  }
  if (operation.pathParams.length === 0 && !(operation.operationId in tenantWideRules)) {
    return (
      `${operation.operationId}: has no path parameter; ` +
      'classify it in tenantWideRules (list, create, own-write, self, operator-only, lookup)'
    )
  }
  return null
}

/** The URL with the given path values, and the operation's query (naming `queried`) when it needs one. */
function urlOf(operation: Operation, values: Readonly<Record<string, string>>, queried: TenantIds): string {
  const path = operation.template.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const value = values[name]
    if (value === undefined) throw new Error(`no value for {${name}} in ${operation.template}`)
    return value
  })
  const query = queries[operation.operationId]?.(queried)
  return query === undefined ? path : `${path}?${query}`
}

/** Every path parameter of the operation with one tenant's value. */
function pathValuesOf(operation: Operation, ids: TenantIds): Record<string, string> {
  return Object.fromEntries(operation.pathParams.map((name) => [name, pathValue(operation, name, ids)]))
}

/** The operation's URL with every identifier one tenant's. */
function ownUrl(operation: Operation, ids: TenantIds): string {
  return urlOf(operation, pathValuesOf(operation, ids), ids)
}

/** Every assignment of A's or B's value to each parameter, except all of B's (B's own data). */
function mixes(operation: Operation, a: TenantIds, b: TenantIds): Array<Record<string, string>> {
  const params = operation.pathParams
  const result: Array<Record<string, string>> = []
  for (let mask = 1; mask < 2 ** params.length; mask += 1) {
    result.push(
      Object.fromEntries(params.map((name, index) => [name, pathValue(operation, name, (mask >> index) & 1 ? a : b)])),
    )
  }
  return result
}

/** A session, or an app acting for the merchant whose app auth token it sends (or for itself, without one). */
type Caller =
  | { readonly kind: 'session'; readonly token: string }
  | { readonly kind: 'app'; readonly app: TestApp; readonly appAuthToken: string | null }

const describeCaller = (caller: Caller) =>
  caller.kind === 'session' ? 'session' : caller.appAuthToken === null ? 'app as itself' : 'app for its merchant'

let idempotencyCounter = 0

async function call(
  app: FastifyInstance,
  caller: Caller,
  operation: Operation,
  url: string,
  body: unknown,
  idempotencyKey?: string,
): Promise<Injected> {
  const key =
    operation.idempotency === 'none'
      ? undefined
      : (idempotencyKey ?? `isolation-${(idempotencyCounter += 1)}-${crypto.randomBytes(4).toString('hex')}`)
  if (caller.kind === 'app') {
    return signed(app, caller.app, {
      method: operation.method,
      url,
      body,
      ...(key === undefined ? {} : { idempotencyKey: key }),
      ...(caller.appAuthToken === null ? {} : { appAuthToken: caller.appAuthToken }),
    })
  }
  return session(app, operation.method, url, caller.token, body, key === undefined ? {} : { 'idempotency-key': key })
}

/** The registered error code with its registered status, and a request id. */
function expectStableError(response: Injected, statuses: readonly number[], what: string): void {
  expect(statuses, `${what} answered ${response.statusCode}: ${response.body}`).toContain(response.statusCode)
  const body = json(response)
  expect(body.code, what).toMatch(/^[A-Z][A-Z0-9_]+$/)
  expect(errorTable().get(body.code)?.status, `${what}: ${body.code} is not registered with this status`).toBe(
    response.statusCode,
  )
  expect(body.requestId, what).toMatch(/^req_/)
  // A 404 from the router would mean the test built a wrong URL, not that access was refused.
  expect(body.code, what).not.toBe('REQUEST_ROUTE_NOT_FOUND')
}

/** No settlement delay: A's paid trade is due at once, so a settlement that strays would take it. */
const settleAtOnce: PolicySource = {
  resolve: async (_db, key) => (key === 'payment.settlement_delay_seconds' ? { value: 0, version: 1 } : null),
}

forEachDialect('tenant isolation', (dialect) => {
  let operatorLogin: { email: string; password: string } | undefined
  const bp = useTestPlatform(dialect, {
    policySource: settleAtOnce,
    onOperatorCreated: (login) => {
      operatorLogin = login
    },
  })
  const app = () => bp().app

  let operations: Operation[]
  let worldA: TenantWorld
  let worldB: TenantWorld
  let tenantA: Tenant
  let memberA: Tenant
  let tenantB: Tenant
  let appA: TestApp
  let appB: TestApp
  /** A second app of B, authorised by B's merchant, for the scope test's grants. */
  let scopeAppB: TestApp
  /** A live app of A's own merchant: the same tenant, the other environment. */
  let liveAppA: TestApp
  let idsA: TenantIds
  let idsB: TenantIds
  let bodyContext: BodyContext
  let snapshotBefore: Awaited<ReturnType<typeof snapshotOfA>>
  let council: Council
  /** A as a partner of the council; `memberA` is its seat's proxy. */
  let partnerA: PartnerWorld
  /** A fellow partner of A's council, with a waitlisted place in A's training session. */
  let partnerC: Tenant
  /** The name of A's ISV organisation, which the council publishes with its seat. */
  let organizationNameA: string

  /** Everything A can see of itself, through the API. */
  async function snapshotOfA() {
    const read = async (url: string) => {
      const response = await session(app(), 'GET', url, tenantA.token)
      return { status: response.statusCode, body: json(response) }
    }
    const readSigned = async (url: string) => {
      const response = await worldA.act({ method: 'GET', url })
      return { status: response.statusCode, body: json(response) }
    }
    const org = `/v1/organizations/${idsA.organizationId}`
    const appUrl = `${org}/apps/${idsA.appId}`
    const trade = `/v1/trades/${idsA.tradeId}`
    return {
      me: await read('/v1/me'),
      organization: await read(org),
      members: await read(`${org}/members`),
      apps: await read(`${org}/apps`),
      app: await read(appUrl),
      keys: await read(`${appUrl}/keys`),
      redirectUris: await read(`${appUrl}/redirect-uris`),
      appAuthorizations: await read(`${appUrl}/authorizations`),
      merchantAuthorizations: await read(`/v1/organizations/${idsA.merchantId}/authorizations`),
      webhookEndpoints: await read(`${appUrl}/webhook-endpoints`),
      webhookDeliveries: await read(`${appUrl}/webhook-deliveries`),
      store: await readSigned(`/v1/stores/${idsA.storeId}`),
      stores: await readSigned('/v1/stores'),
      currentAuthorization: await readSigned('/v1/oauth/token/current'),
      balances: await readSigned('/v1/balances'),
      trade: await readSigned(trade),
      lookup: await readSigned(`/v1/trades/lookup?out_trade_no=${idsA.outTradeNo}`),
      precreatedTrade: await readSigned(`/v1/trades/${worldA.precreatedTradeId}`),
      createdTrade: await readSigned(`/v1/trades/${worldA.createdTradeId}`),
      refund: await readSigned(`${trade}/refunds/${idsA.outRequestNo}`),
      royalty: await readSigned(`${trade}/royalties/${idsA.outRequestNo}`),
      receivers: await readSigned('/v1/royalty-receivers'),
      consumer: await readSigned(`/v1/sandbox/consumers/${idsA.consumerId}`),
      alipaySettings: await read(`${appUrl}/alipay-settings`),
      ...(await governanceSnapshotOfA(read)),
    }
  }

  /** A's governance: its seat, inbox, proposals and applications, and the council's public record. */
  async function governanceSnapshotOfA(read: (url: string) => Promise<{ status: number; body: any }>) {
    const gov = `/v1/organizations/${idsA.organizationId}/governance`
    const { industry, proposalId, votingProposalId } = idsA.governance
    const proposal = `/v1/governance/proposals/${proposalId}`
    const voting = `/v1/governance/proposals/${votingProposalId}`
    return {
      seats: await read(`${gov}/seats`),
      inbox: await read(`${gov}/inbox?limit=100`),
      governanceProposals: await read(`${gov}/proposals?limit=100`),
      applications: await read(`${gov}/applications?limit=100`),
      proposal: await read(proposal),
      proposalVersions: await read(`${proposal}/versions`),
      proposalComments: await read(`${proposal}/comments?limit=100`),
      votingProposal: await read(voting),
      votingProposalVotes: await read(`${voting}/votes`),
      votingProposalVersions: await read(`${voting}/versions`),
      council: await read(`/v1/governance/industries/${industry}`),
      industries: await read('/v1/governance/industries'),
      publicProposals: await read('/v1/governance/proposals?limit=100'),
      batches: await read('/v1/governance/batches'),
      outcomes: await read('/v1/governance/outcomes?limit=100'),
      roadmap: await read('/v1/governance/roadmap?limit=100'),
      trainingSessions: await read('/v1/governance/training-sessions?limit=100'),
      policyVersions: await read('/v1/governance/policy-versions?limit=100'),
      // Every governance entry of the audit log; its head also moves with other entries.
      governanceAudit: { status: 200, body: await governanceAudit() },
    }
  }

  /** Every public governance entry of the audit log, page by page. */
  async function governanceAudit(): Promise<Array<{ seq: number; action: string; target: string; data: string }>> {
    const entries = []
    for (let after = 0; ;) {
      const page = await app().inject({ method: 'GET', url: `/v1/governance/audit?limit=100&after_seq=${after}` })
      expect(page.statusCode, page.body).toBe(200)
      const body = json(page)
      entries.push(...body.data)
      if (!body.has_more) return entries
      after = body.data[body.data.length - 1].seq
    }
  }

  beforeAll(async () => {
    worldA = await tenantWorld(bp(), 'A')
    tenantA = worldA.user
    appA = worldA.testApp
    memberA = await signUp(app(), 'isv')
    const added = await session(app(), 'POST', `/v1/organizations/${tenantA.organizationId}/members`, tenantA.token, {
      email: memberA.email,
      role: 'developer',
    })
    expect(added.statusCode, added.body).toBe(201)
    liveAppA = await createAppWithKey(
      app(),
      { ...tenantA, organizationId: worldA.merchantId },
      ed25519KeyPair(),
      'live',
    )

    worldB = await tenantWorld(bp(), 'B')
    tenantB = worldB.user
    appB = worldB.testApp
    scopeAppB = await createAppWithKey(app(), tenantB, ed25519KeyPair())

    // Governance: A and C are admitted partners of the education council; B applied and is
    // waitlisted, which leaves it no partner but with an inbox message of its own.
    council = await openCouncil(bp(), operatorLogin!)
    partnerC = await signUp(app(), 'isv')
    const applications = await admitPartners(
      bp(),
      council,
      [
        { label: 'A', user: tenantA },
        { label: 'C', user: partnerC },
      ],
      [{ label: 'B', user: tenantB }],
    )
    const applicationB = applications.get(tenantB.organizationId)!.id
    const waitlisted = await session(
      app(),
      'POST',
      `/v1/governance/applications/${applicationB}/decision`,
      council.operatorToken,
      {
        decision: 'waitlist',
        reason: 'Waiting for the next cohort',
      },
    )
    expect(json(waitlisted).status, waitlisted.body).toBe('waitlisted')
    partnerA = await partnerWorld(
      bp(),
      council,
      { label: 'A', user: tenantA, proxy: memberA },
      applications.get(tenantA.organizationId)!,
    )
    const enrolC = `/v1/organizations/${partnerC.organizationId}/governance/training-sessions/${council.sessionId}`
    expect(json(await session(app(), 'POST', `${enrolC}/enrolment`, partnerC.token)).status).toBe('waitlisted')
    const inboxB = json(
      await session(app(), 'GET', `/v1/organizations/${tenantB.organizationId}/governance/inbox`, tenantB.token),
    )
    expect(inboxB.data).toHaveLength(1)
    const shared = {
      industry: council.industry,
      typeKey: council.typeKey,
      batchId: council.batchId,
      sessionId: council.sessionId,
      outcomeId: partnerA.outcomeId,
      proposalId: partnerA.proposalId,
      draftProposalId: partnerA.draftId,
      votingProposalId: partnerA.votingId,
      requestId: partnerA.requestId,
    }
    idsA = idsOf(worldA, {
      ...shared,
      applicationId: partnerA.applicationId,
      inboxMessageId: partnerA.inboxIds[0]!,
    })
    idsB = idsOf(worldB, { ...shared, applicationId: applicationB, inboxMessageId: inboxB.data[0].id })
    organizationNameA = json(
      await session(app(), 'GET', `/v1/organizations/${idsA.organizationId}`, tenantA.token),
    ).name
    bodyContext = {
      caller: tenantB,
      attacker: worldB,
      victim: worldA,
      victimPartner: partnerA,
      council,
      publicKeyPem: ed25519KeyPair().publicKeyPem,
    }

    const document = await app().inject({ method: 'GET', url: '/openapi.json' })
    expect(document.statusCode).toBe(200)
    operations = operationsOf(json(document))
    expect(operations.length).toBeGreaterThan(10)
    snapshotBefore = await snapshotOfA()
  })

  /** A's ids and secrets that must never show in anything B receives. */
  const secretsOfA = () => [
    idsA.organizationId,
    idsA.appId,
    idsA.keyId,
    idsA.storeId,
    idsA.merchantId,
    idsA.tradeId,
    worldA.precreatedTradeId,
    worldA.createdTradeId,
    idsA.consumerId,
    idsA.authorizationId,
    idsA.endpointId,
    idsA.deliveryId,
    idsA.eventId,
    worldA.endpointUrl,
    worldA.redirectUri,
    worldA.code,
    worldA.grant.app_auth_token,
    worldA.grant.app_refresh_token,
    worldA.reusableCode,
    worldA.unusedCode,
    tenantA.userId,
    tenantA.email,
    memberA.userId,
    memberA.email,
    appA.keyPair.publicKeyPem.split('\n')[1]!,
    ...privateGovernanceOfA(),
  ]

  /** What of A's governance only A (and the operator) may see; the rest is public by design. */
  const privateGovernanceOfA = () => [
    partnerA.applicationId,
    partnerA.application.company.description,
    partnerA.application.founder.record,
    partnerA.draftId,
    partnerA.ballotReason,
    ...partnerA.inboxIds,
  ]

  const expectNoLeak = (response: Injected, what: string, sent = '') => {
    // Echoing an id B itself sent is no leak; anything else of A's is.
    for (const secret of secretsOfA().filter((value) => !sent.includes(value))) {
      expect(response.body, `${what} leaks ${secret}`).not.toContain(secret)
    }
  }

  const bodyFor = (operation: Operation, context: BodyContext = bodyContext) =>
    operation.hasBody ? validBodies[operation.operationId]!(context) : undefined

  /** B's callers for an operation: its user, or its app both acting for B's merchant and as itself. */
  const callersB = (operation: Operation): Caller[] =>
    operation.auth === 'app'
      ? [
          { kind: 'app', app: appB, appAuthToken: worldB.grant.app_auth_token },
          { kind: 'app', app: appB, appAuthToken: null },
        ]
      : [{ kind: 'session', token: tenantB.token }]
  const callerB = (operation: Operation): Caller => callersB(operation)[0]!

  /** The organisations B's data names: its ISV and its merchant. */
  const organizationsOfB = () => [tenantB.organizationId, worldB.merchantId]

  const isOperatorOnly = (operation: Operation) =>
    operatorOnlyOperations.includes(operation.operationId) ||
    tenantWideRules[operation.operationId]?.kind === 'operator-only'

  /** 403 AUTH_FORBIDDEN for operations that only the operator, or only the proposer, may call. */
  const expectRoleRefusal = (operation: Operation, response: Injected, what: string) => {
    if (isOperatorOnly(operation) || proposerOnlyOperations.includes(operation.operationId)) {
      expect([response.statusCode, json(response).code], what).toEqual([403, 'AUTH_FORBIDDEN'])
    }
  }

  /**
   * A governance route acting for an organisation answers a non-member as if the organisation
   * did not exist, before it looks at anything else the path names.
   */
  const expectOrganizationRefusal = (operation: Operation, url: string, response: Injected, what: string) => {
    const governance = operation.template.startsWith('/v1/organizations/{organization_id}/governance/')
    if (governance && url.startsWith(`/v1/organizations/${idsA.organizationId}/`)) {
      expect([response.statusCode, json(response).code], what).toEqual([404, 'IDENTITY_ORGANIZATION_NOT_FOUND'])
    }
  }

  /** The operations this suite has every rule for; the first test reports the others. */
  const judged = () => operations.filter((operation) => missingRule(operation) === null)

  const tenantWide = (kind: TenantWideRule['kind']) =>
    judged().filter(
      (operation) =>
        operation.auth !== 'public' &&
        operation.pathParams.length === 0 &&
        tenantWideRules[operation.operationId]?.kind === kind,
    )

  it('has a rule for every operation in the OpenAPI document', () => {
    const problems = operations.map(missingRule).filter((problem) => problem !== null)
    expect(problems).toEqual([])
    // Rules for operations that no longer exist are stale: remove them.
    const ids = new Set(operations.map((operation) => operation.operationId))
    for (const rules of [
      tenantWideRules,
      validBodies,
      queries,
      operationPathValues,
      victimFilters,
      knownWrongStatuses,
      draftLeaks,
    ]) {
      expect(Object.keys(rules).filter((id) => !ids.has(id))).toEqual([])
    }
    for (const list of [operatorOnlyOperations, proposerOnlyOperations, operatorReads]) {
      expect(list.filter((id) => !ids.has(id))).toEqual([])
    }
  })

  it('has exactly the expected public operations', () => {
    const publicIds = operations
      .filter((operation) => operation.auth === 'public')
      .map((operation) => operation.operationId)
      .sort()
    expect(publicIds).toEqual(expectedPublicOperations)
  })

  it("refuses B every operation on A's identifiers, with 403 or 404 and a registered code", async () => {
    let calls = 0
    for (const operation of operations) {
      if (operation.auth === 'public' || operation.pathParams.length === 0) continue
      expect(missingRule(operation)).toBeNull()
      // Only the operator may call these, even on B's own identifiers (B admitting itself, say).
      const own = isOperatorOnly(operation) ? [pathValuesOf(operation, idsB)] : []
      for (const caller of callersB(operation)) {
        for (const values of [...mixes(operation, idsA, idsB), ...own]) {
          const url = urlOf(operation, values, idsA)
          const what = `B (${describeCaller(caller)}) ${operation.method} ${url} (${operation.operationId})`
          const response = await call(app(), caller, operation, url, bodyFor(operation))
          expectStableError(response, [403, 404, ...(knownWrongStatuses[operation.operationId] ?? [])], what)
          expectRoleRefusal(operation, response, what)
          expectOrganizationRefusal(operation, url, response, what)
          expectNoLeak(response, what, url)
          calls += 1
        }
      }
    }
    expect(calls).toBeGreaterThanOrEqual(90)
  })

  it("refuses B the operator-only operations and lookups of A's resources", async () => {
    let lookups = 0
    for (const kind of ['operator-only', 'lookup'] as const) {
      for (const operation of tenantWide(kind)) {
        const rule = tenantWideRules[operation.operationId]!
        for (const caller of callersB(operation)) {
          const url = urlOf(operation, {}, idsA)
          const what = `B (${describeCaller(caller)}) ${operation.method} ${url} (${operation.operationId})`
          const probes = rule.kind === 'lookup' ? rule.probes?.(bodyContext) : undefined
          if (probes === undefined) {
            const response = await call(app(), caller, operation, url, bodyFor(operation))
            expectStableError(response, [403, 404], what)
            expectRoleRefusal(operation, response, what)
            expectNoLeak(response, what, url)
            lookups += 1
            continue
          }
          for (const probe of probes) {
            // Refused, and exactly as a lookup of nothing: B cannot tell A's secret from a made-up one.
            const victim = await call(app(), caller, operation, url, probe.victim)
            const unknown = await call(app(), caller, operation, url, probe.unknown)
            expectStableError(victim, [400, 403, 404], `${what} with ${probe.what}`)
            const { requestId: _victim, ...victimBody } = json(victim)
            const { requestId: _unknown, ...unknownBody } = json(unknown)
            expect([victim.statusCode, victimBody], `${what} with ${probe.what}`).toEqual([
              unknown.statusCode,
              unknownBody,
            ])
            expectNoLeak(victim, `${what} with ${probe.what}`, JSON.stringify(probe.victim))
            lookups += 1
          }
        }
      }
    }
    expect(lookups).toBeGreaterThanOrEqual(6)
  })

  it('answers B its own identifiers, showing none of A', async () => {
    // Not vacuous: the refusals above are for A's identifiers, not for want of a working call.
    let reads = 0
    for (const operation of judged()) {
      if (operation.auth === 'public' || operation.pathParams.length === 0 || operation.method !== 'GET') continue
      if (isOperatorOnly(operation)) continue // refused above; the operator's reads are tested below
      const url = ownUrl(operation, idsB)
      const what = `B ${operation.method} ${url} (${operation.operationId})`
      const response = await call(app(), callerB(operation), operation, url, undefined)
      expect(response.statusCode, `${what}: ${response.body}`).toBe(200)
      expectNoLeak(response, what)
      reads += 1
    }
    expect(reads).toBeGreaterThanOrEqual(12)
  })

  it("ignores or refuses A's identifiers in the cursors and filters of B's own lists", async () => {
    let calls = 0
    for (const operation of judged()) {
      for (const [name, value] of Object.entries(victimFilters[operation.operationId] ?? {})) {
        const own = ownUrl(operation, idsB)
        const url = `${own}${own.includes('?') ? '&' : '?'}${name}=${encodeURIComponent(value(idsA))}`
        const what = `B ${operation.method} ${url} (${operation.operationId})`
        const response = await call(app(), callerB(operation), operation, url, undefined)
        if (response.statusCode !== 200) expectStableError(response, [403, 404], what)
        expectNoLeak(response, what, url)
        // A's identifier is answered as one that names nothing: B cannot tell that it exists.
        const nothing = `${own}${own.includes('?') ? '&' : '?'}${name}=${madeUpId(value(idsA))}`
        const unknown = await call(app(), callerB(operation), operation, nothing, undefined)
        expect([response.statusCode, json(response).code], `${what}, and with a made-up one`).toEqual([
          unknown.statusCode,
          json(unknown).code,
        ])
        calls += 1
      }
    }
    expect(calls).toBeGreaterThanOrEqual(8)
  })

  it('shows B only its own data in tenant-wide lists', async () => {
    let lists = 0
    for (const operation of tenantWide('list')) {
      const response = await call(app(), callerB(operation), operation, urlOf(operation, {}, idsB), bodyFor(operation))
      const what = `B ${operation.method} ${operation.template}`
      expect(response.statusCode, `${what}: ${response.body}`).toBe(200)
      // Not vacuous: the list does show one of B's own organisations.
      expect(
        organizationsOfB().some((id) => response.body.includes(id)),
        `${what} shows none of B: ${response.body}`,
      ).toBe(true)
      expectNoLeak(response, what)
      lists += 1
    }
    expect(lists).toBeGreaterThanOrEqual(5)
  })

  it("creates for B, never for A, even with A's body and idempotency key", async () => {
    let creates = 0
    for (const operation of tenantWide('create')) {
      const rule = tenantWideRules[operation.operationId] as Extract<TenantWideRule, { kind: 'create' }>
      const what = `B ${operation.method} ${operation.template}`
      const response = await call(
        app(),
        callerB(operation),
        operation,
        urlOf(operation, {}, idsB),
        bodyFor(operation),
        worldA.idempotencyKey(operation.operationId),
      )
      expect(response.statusCode, `${what}: ${response.body}`).toBe(rule.status ?? 201)
      expect(response.headers['idempotent-replayed'], `${what} replayed A's response`).toBeUndefined()
      const created = json(response)
      expect(Object.values(idsA), what).not.toContain(created.id)
      expectNoLeak(response, what)
      if (operation.auth === 'app') {
        // Made for B's merchant: B finds it where A does not.
        if (rule.owner !== undefined) expect(rule.owner(created), what).toBe(worldB.merchantId)
        if (rule.readBack !== undefined) {
          const { url, marker } = rule.readBack(created)
          const byB = await worldB.act({ method: 'GET', url })
          expect(byB.statusCode, `${what}: B reads ${url}: ${byB.body}`).toBe(200)
          expect(byB.body, what).toContain(marker)
          const byA = await worldA.act({ method: 'GET', url })
          expect([200, 404], `${what}: A reads ${url}: ${byA.body}`).toContain(byA.statusCode)
          expect(byA.body, `${what}: A sees B's new resource`).not.toContain(marker)
        }
      } else {
        // An organisation created in the console lists B's user as its owner.
        const members = await session(app(), 'GET', `/v1/organizations/${created.id}/members`, tenantB.token)
        expect(
          json(members).data.map((m: { user_id: string; role: string }) => [m.user_id, m.role]),
          what,
        ).toEqual([[tenantB.userId, 'owner']])
        const byA = await session(app(), 'GET', `/v1/organizations/${created.id}`, tenantA.token)
        expect(byA.statusCode, what).toBe(404)
      }
      creates += 1
    }
    expect(creates).toBeGreaterThanOrEqual(7)
  })

  it("lets B's tenant-wide writes change only B's data", async () => {
    let writes = 0
    for (const operation of tenantWide('own-write')) {
      const rule = tenantWideRules[operation.operationId] as Extract<TenantWideRule, { kind: 'own-write' }>
      const what = `B ${operation.method} ${operation.template}`
      const response = await call(app(), callerB(operation), operation, urlOf(operation, {}, idsB), bodyFor(operation))
      expect(response.statusCode, `${what}: ${response.body}`).toBe(200)
      expectNoLeak(response, what)
      // Not vacuous: B's own due trades were there to change (A's are checked at the end).
      expect(rule.effect(json(response)), `${what}: ${response.body}`).toBeGreaterThanOrEqual(1)
      writes += 1
    }
    expect(writes).toBeGreaterThanOrEqual(1)
  })

  /** Governance operations: those under /v1/governance/ or an organisation's /governance/. */
  const governanceOperations = () =>
    judged().filter((operation) => operation.auth !== 'public' && operation.template.includes('/governance'))

  it("refuses a fellow partner of A's council to act as A", async () => {
    // C holds a seat on the same council, so it may vote, comment and enrol with its own
    // organisation; with A's it may not vote with A's seat, name A's proxy, read A's inbox or
    // applications, nor steer A's proposals or do the operator's part.
    const caller: Caller = { kind: 'session', token: partnerC.token }
    const context: BodyContext = { ...bodyContext, caller: partnerC }
    const seen = new Set<string>()
    for (const operation of governanceOperations()) {
      if (operation.pathParams.length === 0 && !isOperatorOnly(operation)) continue
      const url = ownUrl(operation, idsA)
      const what = `C ${operation.method} ${url} (${operation.operationId})`
      const response = await call(app(), caller, operation, url, bodyFor(operation, context))
      expectStableError(response, [403, 404, ...(knownWrongStatuses[operation.operationId] ?? [])], what)
      expectRoleRefusal(operation, response, what)
      expectOrganizationRefusal(operation, url, response, what)
      expectNoLeak(response, what, url)
      seen.add(operation.operationId)
    }
    for (const operationId of [
      'castGovernanceVote',
      'setGovernanceProxy',
      'listGovernanceInbox',
      'listOrganizationApplications',
      'amendProposal',
      'withdrawProposal',
      'cancelTrainingEnrolment',
      'supportImprovementRequest',
    ]) {
      expect(seen, operationId).toContain(operationId)
    }
    // Not vacuous: C is a partner, in the electorate of A's proposal under vote.
    const voting = json(await app().inject({ method: 'GET', url: `/v1/governance/proposals/${partnerA.votingId}` }))
    expect(voting.electorate).toContain(partnerC.organizationId)
    const seats = json(
      await session(app(), 'GET', `/v1/organizations/${partnerC.organizationId}/governance/seats`, partnerC.token),
    )
    expect(seats.data.map((seat: { industry: string; status: string }) => [seat.industry, seat.status])).toEqual([
      [council.industry, 'active'],
    ])
  })

  it('shows the public nothing private of A, and no secret ballot', async () => {
    // A's organisation is public as a council seat (with its name, which the fixtures make of
    // the owner's e-mail), and so is its owner's user id as the actor of its public acts in
    // the hash-chained audit log; the rest of secretsOfA must not show.
    const publicBody = (response: Injected) => response.body.split(organizationNameA).join('<name of A>')
    const notPublic = secretsOfA().filter((secret) => secret !== idsA.organizationId && secret !== tenantA.userId)
    const expectNothingPrivate = (response: Injected, what: string) => {
      const body = publicBody(response)
      for (const secret of notPublic) expect(body, `${what} shows ${secret}`).not.toContain(secret)
    }
    const { votingProposalId, proposalId, draftProposalId, industry } = idsA.governance
    /** The public's values for each path parameter of a public read; a missing one fails. */
    const publicPathValues: Record<string, readonly string[]> = {
      environment: ['sandbox'],
      industry: [industry],
      proposal_id: [proposalId, votingProposalId],
      number: [String(partnerA.policyVersion)],
    }
    const get = (url: string) => app().inject({ method: 'GET', url })
    let reads = 0
    for (const operation of operations.filter((o) => o.auth === 'public' && o.method === 'GET')) {
      const missing = operation.pathParams.filter((name) => publicPathValues[name] === undefined)
      expect(missing, `${operation.operationId}: add its path parameters to publicPathValues`).toEqual([])
      const assignments = operation.pathParams.reduce<Array<Record<string, string>>>(
        (partial, name) => partial.flatMap((values) => publicPathValues[name]!.map((v) => ({ ...values, [name]: v }))),
        [{}],
      )
      for (const values of assignments) {
        // The longest page, where the read pages: everything it has shows.
        const path = urlOf(operation, values, idsA)
        const url = operation.optionalQuery.includes('limit') ? `${path}?limit=100` : path
        const response = await get(url)
        const what = `the public GET ${url} (${operation.operationId})`
        expect(response.statusCode, `${what}: ${response.body}`).toBe(200)
        expectNothingPrivate(response, what)
        reads += 1
      }
      // A's draft is A's alone: answered exactly as a proposal that does not exist.
      if (operation.pathParams.includes('proposal_id')) {
        const draft = await get(urlOf(operation, { proposal_id: draftProposalId }, idsA))
        const unknown = await get(urlOf(operation, { proposal_id: madeUpId(draftProposalId) }, idsA))
        expectStableError(draft, [404], `the public ${operation.operationId} of A's draft`)
        expect([draft.statusCode, json(draft).code]).toEqual([unknown.statusCode, json(unknown).code])
      }
    }
    expect(reads).toBeGreaterThanOrEqual(20)
    // Every page of the public audit, and the public list with A's draft as its cursor.
    const audit = await governanceAudit()
    // A draft's entries (created, amended) stay out of the public log until it is submitted.
    expect(audit.filter((entry: { target: string }) => entry.target === draftProposalId)).toEqual([])
    expectNothingPrivate({ body: JSON.stringify(audit) } as Injected, 'the public audit log')
    const byDraft = await get(`/v1/governance/proposals?starting_after=${draftProposalId}`)
    const byNothing = await get(`/v1/governance/proposals?starting_after=${madeUpId(draftProposalId)}`)
    expectStableError(byDraft, [404], "the public list after A's draft")
    expect([byDraft.statusCode, json(byDraft).code]).toEqual([byNothing.statusCode, json(byNothing).code])

    // A's secret ballot: who voted is public, what it chose and why is not, nor a running tally.
    const votes = json(await get(`/v1/governance/proposals/${votingProposalId}/votes`)).data
    expect(votes).toEqual([
      expect.objectContaining({ organization_id: idsA.organizationId, choice: null, reason: null }),
    ])
    expect(json(await get(`/v1/governance/proposals/${votingProposalId}`))).toMatchObject({
      state: 'voting',
      rules: { ballots: 'secret' },
      tally: null,
    })
    const listed = json(await get('/v1/governance/proposals?state=voting&limit=100')).data
    expect(listed.find((p: { id: string }) => p.id === votingProposalId)).toMatchObject({ tally: null })
    const cast = audit.filter((entry) => entry.action === 'governance.vote.cast' && entry.target === votingProposalId)
    expect(cast).toHaveLength(1)
    expect(Object.keys(JSON.parse(cast[0]!.data)).sort()).toEqual(
      ['content_hash', 'organization_id', 'replaced', 'via_proxy'].sort(),
    )
    // Nor does a fellow partner see it in what the council sends it.
    const inboxC = await session(
      app(),
      'GET',
      `/v1/organizations/${partnerC.organizationId}/governance/inbox?limit=100`,
      partnerC.token,
    )
    expect(inboxC.statusCode).toBe(200)
    expect(json(inboxC).data.length).toBeGreaterThan(0)
    expectNothingPrivate(inboxC, "C's inbox")
  })

  it("refuses B and a fellow partner every operation on A's draft, which is A's alone", async () => {
    // A draft is its authors' until submitted: the public reads answer it as not found. With
    // A's organisation in the path, or with their own, B and C must get no further.
    let calls = 0
    for (const [label, user] of [
      ['B', tenantB],
      ['C', partnerC],
    ] as const) {
      const context: BodyContext = { ...bodyContext, caller: user }
      for (const operation of governanceOperations()) {
        if (!operation.pathParams.includes('proposal_id')) continue
        const organizations = operation.pathParams.includes('organization_id')
          ? [idsA.organizationId, user.organizationId]
          : [idsA.organizationId]
        for (const organizationId of organizations) {
          if (organizationId === user.organizationId && draftLeaks[operation.operationId]?.includes(label)) continue
          const values = { ...pathValuesOf(operation, idsA), organization_id: organizationId }
          const url = urlOf(operation, { ...values, proposal_id: idsA.governance.draftProposalId }, idsA)
          const what = `${label} ${operation.method} ${url} (${operation.operationId})`
          const response = await call(
            app(),
            { kind: 'session', token: user.token },
            operation,
            url,
            bodyFor(operation, context),
          )
          expectStableError(response, [403, 404], what)
          expectRoleRefusal(operation, response, what)
          expectOrganizationRefusal(operation, url, response, what)
          expect(response.body, `${what} tells the draft's state`).not.toContain('draft')
          expectNoLeak(response, what, url)
          calls += 1
        }
      }
    }
    expect(calls).toBeGreaterThanOrEqual(20)
    // And a proposal that does not exist is not found, whoever asks to steer it.
    for (const operation of governanceOperations().filter((o) => proposerOnlyOperations.includes(o.operationId))) {
      const url = urlOf(operation, { proposal_id: madeUpId(idsA.governance.proposalId) }, idsA)
      const response = await call(app(), { kind: 'session', token: tenantB.token }, operation, url, bodyFor(operation))
      expect([response.statusCode, json(response).code], url).toEqual([404, 'GOV_PROPOSAL_NOT_FOUND'])
    }
  })

  it("never replays A's governance writes to B, who sends A's Idempotency-Keys", async () => {
    let calls = 0
    for (const write of partnerA.writes) {
      const operation = operations.find((o) => o.operationId === write.operationId)!
      // First for B's own organisation: a key that B never used, so a 422 here would tell B
      // that A used it. Then A's very request, which must not replay A's answer; B has used the
      // key by then, with another request (422), unless the URL names no organisation.
      const own = write.url.split(idsA.organizationId).join(idsB.organizationId)
      for (const url of [...new Set([own, write.url])]) {
        const what = `B sends ${write.idempotencyKey}: ${write.method} ${url}`
        const response = await call(
          app(),
          { kind: 'session', token: tenantB.token },
          operation,
          url,
          write.body,
          write.idempotencyKey,
        )
        expect(response.headers['idempotent-replayed'], `${what} replayed A's response`).toBeUndefined()
        const reused = url !== own && json(response).code === 'IDEMPOTENCY_KEY_REUSED'
        expectStableError(response, reused ? [422] : [403, 404, 409], what)
        expectNoLeak(response, what, url)
        calls += 1
      }
    }
    expect(calls).toBeGreaterThanOrEqual(20)
  })

  it('refuses an app acting for a merchant that did not authorise it', async () => {
    // A's valid token, a made-up one and A's refresh token, each sent by B's app, on A's data.
    const tokens = [
      ["A's app auth token", worldA.grant.app_auth_token],
      ['a made-up app auth token', madeUpSecret('bpat')],
      ["A's refresh token", worldA.grant.app_refresh_token],
    ] as const
    let calls = 0
    for (const operation of judged().filter((o) => o.auth === 'app')) {
      const url = ownUrl(operation, idsA)
      for (const [name, token] of tokens) {
        const what = `B's app with ${name}: ${operation.method} ${url} (${operation.operationId})`
        const caller: Caller = { kind: 'app', app: appB, appAuthToken: token }
        const response = await call(app(), caller, operation, url, bodyFor(operation))
        expectStableError(response, [401], what)
        expect(json(response).code, what).toBe('AUTH_APP_AUTH_TOKEN_INVALID')
        expectNoLeak(response, what, url)
        calls += 1
      }
    }
    expect(calls).toBeGreaterThanOrEqual(3 * 20)
  })

  it("refuses B's user the consent page for A's merchant", async () => {
    // B's user approves its own app, or A's, for A's merchant: no code may come of it.
    for (const [world, appOf] of [
      [worldB, 'its own app'],
      [worldA, "A's app"],
    ] as const) {
      const response = await submitConsent(bp(), tenantB, {
        appId: world.testApp.appId,
        merchantId: idsA.merchantId,
        redirectUri: world.redirectUri,
        scopes: ['payment:trade'],
      })
      const what = `B approves ${appOf} for A's merchant`
      expect(response.statusCode, `${what}: ${response.body.slice(0, 300)}`).toBe(403)
      expect(response.headers.location, what).toBeUndefined()
      expect(response.body, what).not.toContain('bpac_')
      expectNoLeak(response, what, `${idsA.merchantId} ${world.testApp.appId} ${world.redirectUri}`)
    }
  })

  it("keeps A's sandbox data from the live app of A's own merchant", async () => {
    // Trades, refunds, profit sharing, consumers and stores are scoped by environment too.
    const caller: Caller = { kind: 'app', app: liveAppA, appAuthToken: null }
    let calls = 0
    for (const operation of judged()) {
      if (operation.auth !== 'app' || operation.pathParams.length === 0) continue
      const url = ownUrl(operation, idsA)
      const what = `A's live app ${operation.method} ${url} (${operation.operationId})`
      const response = await call(app(), caller, operation, url, bodyFor(operation))
      expectStableError(response, [403, 404, ...(knownWrongStatuses[operation.operationId] ?? [])], what)
      calls += 1
    }
    expect(calls).toBeGreaterThanOrEqual(10)
    for (const url of ['/v1/royalty-receivers', '/v1/stores', `/v1/trades/lookup?${queries.lookupTrade!(idsA)}`]) {
      const response = await signed(app(), liveAppA, { method: 'GET', url })
      const what = `A's live app GET ${url}`
      if (url.startsWith('/v1/trades/')) {
        expectStableError(response, [404], what)
      } else {
        expect(response.statusCode, `${what}: ${response.body}`).toBe(200)
        for (const id of [idsA.storeId, idsA.receiverId]) expect(response.body, what).not.toContain(id)
      }
    }
    const balances = json(await signed(app(), liveAppA, { method: 'GET', url: '/v1/balances' }))
    expect(balances).toMatchObject({ environment: 'live', pending_amount: 0, available_amount: 0 })
  })

  it('refuses every scoped app operation to a token granted without its scope', async () => {
    const scoped = judged().filter((operation) => operation.auth === 'app' && operation.scope !== undefined)
    expect(scoped.length).toBeGreaterThanOrEqual(20)
    const known = allScopes(bp())
    let calls = 0
    for (const scope of new Set(scoped.map((operation) => operation.scope!))) {
      expect(known, `${scope} is not a scope any capability declares`).toContain(scope)
      // A fresh grant replaces the app's previous one: one merchant, one live authorisation per app.
      const grant = await grantScopes(
        bp(),
        scopeAppB.appId,
        worldB.merchantId,
        known.filter((other) => other !== scope),
      )
      expect(grant.scopes).not.toContain(scope)
      const caller: Caller = { kind: 'app', app: scopeAppB, appAuthToken: grant.app_auth_token }
      for (const operation of scoped.filter((o) => o.scope === scope)) {
        // B's own identifiers and bodies: only the scope is missing.
        const url = ownUrl(operation, idsB)
        const what = `without ${scope}: ${operation.method} ${url} (${operation.operationId})`
        const response = await call(app(), caller, operation, url, bodyFor(operation))
        expectStableError(response, [403], what)
        expect(json(response).code, what).toBe('AUTH_SCOPE_MISSING')
        calls += 1
      }
    }
    expect(calls).toBe(scoped.length)
  })

  it("lets B's self-service operations touch only B", async () => {
    const loginB = async (password: string) => {
      const response = await app().inject({
        method: 'POST',
        url: '/v1/sessions',
        payload: { email: tenantB.email, password },
      })
      expect(response.statusCode, response.body).toBe(201)
      return json(response).token as string
    }
    let selfCalls = 0
    // Run the self operations in a fixed order: a password change ends all of B's sessions.
    const selfOps = tenantWide('self').sort(
      (x, y) => Number(x.operationId === 'changePassword') - Number(y.operationId === 'changePassword'),
    )
    for (const operation of selfOps) {
      const token = await loginB(testPassword)
      const response = await call(
        app(),
        { kind: 'session', token },
        operation,
        urlOf(operation, {}, idsB),
        bodyFor(operation),
      )
      const what = `B ${operation.method} ${operation.template}`
      expect(response.statusCode, `${what}: ${response.body}`).toBe(200)
      expectNoLeak(response, what)
      // B's session ends if the operation says so; A's session and password still work.
      const rule = tenantWideRules[operation.operationId] as { endsSession: boolean }
      expect((await session(app(), 'GET', '/v1/me', token)).statusCode, what).toBe(rule.endsSession ? 401 : 200)
      expect((await session(app(), 'GET', '/v1/me', tenantA.token)).statusCode, what).toBe(200)
      const loginA = await app().inject({
        method: 'POST',
        url: '/v1/sessions',
        payload: { email: tenantA.email, password: testPassword },
      })
      expect(loginA.statusCode, what).toBe(201)
      selfCalls += 1
    }
    expect(selfCalls).toBe(Object.values(tenantWideRules).filter((rule) => rule.kind === 'self').length)
  })

  it('lets the operator read another organisation but not write to it', async () => {
    expect(operatorLogin).toBeDefined()
    const login = await app().inject({ method: 'POST', url: '/v1/sessions', payload: operatorLogin })
    expect(login.statusCode, login.body).toBe(201)
    const operator: Caller = { kind: 'session', token: json(login).token }
    const operatorContext: BodyContext = {
      ...bodyContext,
      caller: { email: operatorLogin!.email, userId: json(login).user.id, organizationId: '', token: '' },
    }
    const read = new Set<string>()
    let writes = 0
    for (const operation of judged()) {
      if (operation.auth !== 'session' || !operation.pathParams.includes('organization_id')) continue
      const url = ownUrl(operation, idsA)
      const what = `operator ${operation.method} ${url} (${operation.operationId})`
      const response = await call(app(), operator, operation, url, bodyFor(operation, operatorContext))
      if (operation.method !== 'GET') {
        expectStableError(response, [403, 404], what)
        writes += 1
      } else if (operatorReads.includes(operation.operationId)) {
        expect(response.statusCode, `${what}: ${response.body}`).toBe(200)
        read.add(operation.operationId)
      } else if (response.statusCode !== 200) {
        // Other reads may withhold data (secrets, say) from the operator, but refuse cleanly.
        expectStableError(response, [403, 404], what)
      }
    }
    expect([...read].sort()).toEqual([...operatorReads].sort())
    expect(writes).toBeGreaterThanOrEqual(9)
    const audit = await session(app(), 'GET', '/v1/audit-events?limit=5', json(login).token)
    expect(audit.statusCode, audit.body).toBe(200)
    // Governance: the operator reads the batch's applications (A's among them) but does not
    // steer A's proposals, which are its proposer's.
    const applications = await session(
      app(),
      'GET',
      `/v1/governance/batches/${idsA.governance.batchId}/applications?limit=100`,
      json(login).token,
    )
    expect(applications.statusCode, applications.body).toBe(200)
    expect(json(applications).data.map((a: { id: string }) => a.id)).toEqual(
      expect.arrayContaining([idsA.governance.applicationId, idsB.governance.applicationId]),
    )
    for (const operation of judged().filter((o) => proposerOnlyOperations.includes(o.operationId))) {
      const url = ownUrl(operation, idsA)
      const what = `operator ${operation.method} ${url} (${operation.operationId})`
      const response = await call(app(), operator, operation, url, bodyFor(operation, operatorContext))
      expectStableError(response, [403], what)
      expectRoleRefusal(operation, response, what)
    }
  })

  it("leaves A's resources exactly as they were", async () => {
    const after = await snapshotOfA()
    expect(after).toEqual(snapshotBefore)
    for (const [name, read] of Object.entries(after)) expect(read.status, `A reads ${name}`).toBe(200)
    expect(after.store.body.status).toBe('open')
    expect(after.keys.body.data).toHaveLength(1)
    expect(after.keys.body.data[0].not_after).toBeNull()
    expect(after.members.body.data.map((m: { user_id: string }) => m.user_id).sort()).toEqual(
      [tenantA.userId, memberA.userId].sort(),
    )
    expect(after.apps.body.data.map((a: { id: string }) => a.id)).toEqual([idsA.appId])
    expect(after.redirectUris.body.redirect_uris).toEqual([worldA.redirectUri])
    // A's trade: paid, refunded 1000 once, still unsettled although due (no one settled it for A).
    expect(after.trade.body).toMatchObject({ status: 'paid', refunded_amount: 1000, settle_status: 'unsettled' })
    expect(after.lookup.body.id).toBe(idsA.tradeId)
    expect(after.precreatedTrade.body.status).toBe('wait_buyer_pay')
    expect(after.createdTrade.body.status).toBe('wait_buyer_pay')
    expect(after.royalty.body.royalties).toEqual([{ receiver_id: idsA.receiverId, amount: 500, status: 'succeeded' }])
    expect(after.receivers.body.data.map((r: { receiver_id: string }) => r.receiver_id)).toEqual([idsA.receiverId])
    expect(after.balances.body).toMatchObject({ organization_id: idsA.merchantId, available_amount: 0 })
    expect(after.balances.body.pending_amount).toBeGreaterThan(0)
    expect(after.consumer.body.balance).toBe(100_000 - 10_000 + 1000)
    const authorizations = [after.appAuthorizations.body.data, after.merchantAuthorizations.body.data]
    for (const list of authorizations) {
      expect(list.map((a: { id: string; status: string }) => [a.id, a.status])).toEqual([
        [idsA.authorizationId, 'active'],
      ])
    }
    expect(after.currentAuthorization.body).toMatchObject({ id: idsA.authorizationId, status: 'active' })
    expect(after.webhookEndpoints.body.data.map((e: { id: string; enabled: boolean }) => [e.id, e.enabled])).toEqual([
      [idsA.endpointId, true],
    ])
    expect(after.webhookDeliveries.body.data.map((d: { id: string }) => d.id)).toEqual([idsA.deliveryId])
    expect(after.alipaySettings.body).toMatchObject({ app_id: idsA.appId, notify_url: null })
    // A's seat, with its proxy; its application, admitted; its proposals where A left them.
    expect(after.seats.body.data).toEqual([
      expect.objectContaining({ industry: idsA.governance.industry, status: 'active', proxy_user_id: memberA.userId }),
    ])
    expect(after.applications.body.data.map((a: { id: string; status: string }) => [a.id, a.status])).toEqual([
      [idsA.governance.applicationId, 'admitted'],
    ])
    const states = new Map(
      after.governanceProposals.body.data.map((p: { id: string; state: string }) => [p.id, p.state] as const),
    )
    expect([
      states.get(idsA.governance.draftProposalId),
      states.get(idsA.governance.proposalId),
      states.get(idsA.governance.votingProposalId),
    ]).toEqual(['draft', 'discussion', 'voting'])
    expect(after.proposal.body).toMatchObject({ version: 1, recused: [] })
    expect(after.proposalComments.body.data.map((c: { id: string }) => c.id)).toEqual([partnerA.commentId])
    // A's ballot as A cast it, and A not recused.
    expect(after.votingProposal.body).toMatchObject({ content_hash: partnerA.votingHash, recused: [] })
    expect(
      after.votingProposalVotes.body.data.map((v: { organization_id: string; via_proxy: boolean }) => [
        v.organization_id,
        v.via_proxy,
      ]),
    ).toEqual([[idsA.organizationId, false]])
    const request = after.roadmap.body.data.find(
      (entry: { request: { id: string } }) => entry.request.id === idsA.governance.requestId,
    )
    expect(request).toMatchObject({ request: { status: 'open', support_count: 1 }, changelog: [] })
    const outcome = after.outcomes.body.data.find((o: { id: string }) => o.id === idsA.governance.outcomeId)
    expect(outcome).toMatchObject({ status: 'not_started', owner: null, progress_bps: 0 })
    const trainingSession = after.trainingSessions.body.data.find(
      (t: { id: string }) => t.id === idsA.governance.sessionId,
    )
    expect(trainingSession).toMatchObject({ capacity: 1, enrolled: 1 })
    expect(after.batches.body.data.map((b: { id: string }) => b.id)).toEqual([idsA.governance.batchId])
    expect(after.industries.body.data.map((i: { code: string }) => i.code)).not.toContain('intruders')
  })

  it("still holds A's place in the training session, and C still waits", async () => {
    // Had anyone cancelled A's enrolment, C would have taken the place and A would wait now.
    const org = (tenant: Tenant) => `/v1/organizations/${tenant.organizationId}/governance`
    const again = await session(
      app(),
      'POST',
      `${org(tenantA)}/training-sessions/${idsA.governance.sessionId}/enrolment`,
      tenantA.token,
    )
    expect([again.statusCode, json(again).code], again.body).toEqual([409, 'GOV_ENROLMENT_EXISTS'])
    const inboxC = json(await session(app(), 'GET', `${org(partnerC)}/inbox?limit=100`, partnerC.token))
    expect(inboxC.data.map((m: { type: string }) => m.type)).not.toContain('governance.training.enrolment_changed')
  })

  it("still honours A's refresh token and unused code, which B presented", async () => {
    const token = (body: unknown) => signed(app(), appA, { method: 'POST', url: '/v1/oauth/token', body })
    const refreshed = await token({ grant_type: 'refresh_token', refresh_token: worldA.grant.app_refresh_token })
    expect(refreshed.statusCode, refreshed.body).toBe(200)
    expect(json(refreshed)).toMatchObject({ authorization_id: idsA.authorizationId, merchant_id: idsA.merchantId })
    const exchanged = await token({ grant_type: 'authorization_code', code: worldA.code })
    expect(exchanged.statusCode, exchanged.body).toBe(200)
    expect(json(exchanged)).toMatchObject({ authorization_id: idsA.authorizationId, merchant_id: idsA.merchantId })
  })
})
