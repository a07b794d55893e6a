/**
 * A malformed request of any kind gets a 4xx with a registered, stable code, never a 5xx,
 * and changes nothing. The operations come from the OpenAPI document, and the malformed
 * requests are derived from each operation's own schemas (every property of every body,
 * every path and query parameter), so a new route is covered without editing this file —
 * except that a route with an unknown path parameter or a body this file cannot build fails
 * the suite until it is added below.
 *
 * Each request is otherwise proper: signed by a real app for app routes (the signature
 * covers the malformed bytes themselves), acting for a merchant that authorised it through
 * the real authorisation module, with a live session for console routes, and with a fresh
 * Idempotency-Key where the route takes one. The caller has data behind every route
 * (isolation-fixtures.ts), and the valid bodies name it: a real unused payment code, consent
 * code and refresh token, so that a malformed request that got through would show as a
 * change. Most cases also name the exact codes they expect: a schema violation must be
 * REQUEST_VALIDATION_FAILED, which also proves the request got past authentication (that
 * runs before schema validation).
 *
 * Decisions:
 * - Bodies are not sent to GET routes: HTTP gives a GET body no meaning and the server never
 *   reads one.
 * - "Nothing changed" compares every table before and after, except `request_nonces`: every
 *   verified signed request records its nonce, by design, so a replay is refused even when
 *   the first call failed. Failed logins are audited; the battery never sends a well-formed
 *   logIn, and a separate test pins that a wrong password adds exactly one audit entry.
 * - A body sent to a write route that declares none, and a query parameter sent to a route
 *   that declares none, are refused (they used to be ignored while the write ran).
 * - URLs the router itself refuses (a path parameter over 200 characters, a malformed
 *   percent-escape such as `%ZZ`) get the standard error body too; an integer path parameter
 *   must be plain decimal digits (`1 `, `01`, `0x1` are refused).
 * - Governance: the caller is also a partner of the education council (isolation-fixtures.ts:
 *   a proposal in discussion, a draft, one in voting with its ballot, an improvement request,
 *   the training session's one place, an enacted policy version and an outcome), and the
 *   operator-only operations are sent with the operator's session, so that a malformed
 *   request that got through would change something instead of being refused for its caller.
 *
 * Property-based part: fast-check with a fixed seed sends random JSON values as bodies and
 * random strings as path parameters to every operation.
 */
import crypto from 'node:crypto'
import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import { sql, type Kysely } from 'kysely'
import { beforeAll, expect, it } from 'vitest'
import { signRequest } from '../sdk/src/index.js'
import { errorTable } from '../src/errors.js'
import { verifyAuditLog } from '../src/platform/audit/audit-log.js'
import { createValidatorCompiler } from '../src/server/validation.js'
import type { DialectName } from '../src/storage/database.js'
import {
  ed25519KeyPair,
  json,
  session,
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
  governanceText,
  openCouncil,
  partnerWorld,
  proposalRules,
  tenantWorld,
  type Council,
  type PartnerWorld,
  type TenantWorld,
} from './isolation-fixtures.js'

type AuthMode = 'public' | 'session' | 'app'

interface Schema {
  readonly type?: string | readonly string[]
  readonly properties?: Readonly<Record<string, Schema>>
  readonly required?: readonly string[]
  readonly additionalProperties?: boolean | Schema
  readonly anyOf?: readonly Schema[]
  readonly enum?: readonly unknown[]
  readonly const?: unknown
  readonly items?: Schema
  readonly minItems?: number
  readonly maxItems?: number
  readonly minLength?: number
  readonly maxLength?: number
  readonly pattern?: string
  readonly format?: string
  readonly minimum?: number
  readonly maximum?: number
}

interface Parameter {
  readonly name: string
  readonly in: 'path' | 'query' | 'header' | 'cookie'
  readonly required?: boolean
  readonly schema: Schema
}

interface OpenApiOperation {
  readonly operationId: string
  readonly 'x-baseplate-auth': AuthMode
  readonly parameters?: readonly Parameter[]
  readonly requestBody?: { readonly content: Record<string, { readonly schema: Schema }> }
}

interface Operation {
  readonly method: string
  readonly template: string
  readonly operationId: string
  readonly auth: AuthMode
  readonly pathParams: readonly Parameter[]
  readonly queryParams: readonly Parameter[]
  readonly takesIdempotencyKey: boolean
  readonly requiresIdempotencyKey: boolean
  readonly bodySchema: Schema | null
}

/** Fixed, so a failure replays; fast-check prints the seed and the shrunk counterexample. */
const seed = 20_261_125
const numRuns = 50
const codePattern = /^[A-Z][A-Z0-9_]+$/

const VALIDATION = 'REQUEST_VALIDATION_FAILED'
const MALFORMED = 'REQUEST_MALFORMED_JSON'
const MEDIA_TYPE = 'REQUEST_UNSUPPORTED_MEDIA_TYPE'
const TOO_LARGE = 'REQUEST_BODY_TOO_LARGE'
const NO_ROUTE = 'REQUEST_ROUTE_NOT_FOUND'
const KEY_INVALID = 'IDEMPOTENCY_KEY_INVALID'

/**
 * The caller: a tenant (see isolation-fixtures.ts) whose user owns an ISV organisation and a
 * merchant, whose app acts for that merchant with a real app auth token, and which has data
 * behind every route: a store, a consumer, a paid trade with a refund and a profit-sharing
 * request, a webhook endpoint with a delivery, an unused consent code.
 */
interface Fixture {
  readonly tenant: Tenant
  readonly other: Tenant
  readonly testApp: TestApp
  readonly world: TenantWorld
  readonly keyId: string
  readonly storeId: string
  readonly publicKeyPem: string
  /** The operator's session, for operator-only reads and operator-only operations. */
  readonly operatorToken: string
  /** The education council, of which the tenant is a partner. */
  readonly council: Council
  readonly partner: PartnerWorld
  /** An application of `other` to the council's batch, not yet decided. */
  readonly pendingApplicationId: string
}

/** A valid value per path parameter name (the caller's own resources). Unknown names fail. */
const pathValues: Record<string, (f: Fixture) => string> = {
  organization_id: (f) => f.tenant.organizationId,
  app_id: (f) => f.testApp.appId,
  key_id: (f) => f.keyId,
  store_id: (f) => f.storeId,
  environment: () => 'sandbox',
  trade_id: (f) => f.world.tradeId,
  // The caller's number of both the refund and the profit-sharing request on trade_id.
  out_request_no: (f) => f.world.outRequestNo,
  receiver_id: (f) => f.world.receiverId,
  consumer_id: (f) => f.world.consumerId,
  authorization_id: (f) => f.world.grant.authorization_id,
  endpoint_id: (f) => f.world.endpointId,
  delivery_id: (f) => f.world.deliveryId,
  industry: (f) => f.council.industry,
  type_key: (f) => f.council.typeKey,
  batch_id: (f) => f.council.batchId,
  session_id: (f) => f.council.sessionId,
  // The partner's proposal in discussion, its request, its enacted policy version and outcome.
  proposal_id: (f) => f.partner.proposalId,
  request_id: (f) => f.partner.requestId,
  number: (f) => String(f.partner.policyVersion),
  outcome_id: (f) => f.partner.outcomeId,
  // Undecided: a decision that got through would admit it.
  application_id: (f) => f.pendingApplicationId,
}
/**
 * Where an operation's parameter takes another value: the merchant's console names the
 * merchant; a submit names the partner's draft, and a ballot or a conflict its proposal in
 * voting, where a request that got through would change them.
 */
const operationPathValues: Record<string, Record<string, (f: Fixture) => string>> = {
  listMerchantAuthorizations: { organization_id: (f) => f.world.merchantId },
  revokeAuthorization: { organization_id: (f) => f.world.merchantId },
  submitProposal: { proposal_id: (f) => f.partner.draftId },
  castGovernanceVote: { proposal_id: (f) => f.partner.votingId },
  declareGovernanceConflict: { proposal_id: (f) => f.partner.votingId },
}
/** Sent with the operator's session: only the operator may call them. */
const operatorOperations = [
  'createGovernanceIndustry',
  'putProposalType',
  'createOperatorProposal',
  'vetoProposal',
  'commentOnProposalAsOperator',
  'createRecruitmentBatch',
  'listBatchApplications',
  'decideApplication',
  'updateOutcome',
  'moveImprovementRequest',
  'createTrainingSession',
]
/**
 * Path parameters that name what a PUT creates: a well-formed value is no malformation (the
 * operator's PUT of a new proposal type key creates it), so only ill-formed ones are sent.
 */
const upsertKeys: Record<string, readonly string[]> = { putProposalType: ['type_key'] }
/**
 * Refusals other than not found for a well-formed path value that names nothing: a seat's
 * proxy needs a seat, and the organisation holds none on the council of an unknown industry
 * any more than on that of a known one, so it is refused alike.
 */
const wellFormedRefusals: Record<string, Record<string, readonly string[]>> = {
  setGovernanceProxy: { industry: ['GOV_NOT_PARTNER'] },
}
/** Cases the server gets wrong today, by operation and case name: reported as bugs, not enshrined. */
const leftOut: Record<string, readonly string[]> = {}
/** Values a pattern-less path parameter accepts, so random strings can avoid them. */
const alsoValid: Record<string, readonly string[]> = { environment: ['sandbox', 'live'] }

/**
 * A schema-valid body per operation, with every optional property filled in so that each
 * gets mutated. Never sent as is, except with a malformed header or credential that must
 * stop it. A missing entry fails the suite.
 */
const validBodies: Record<string, (f: Fixture) => unknown> = {
  signUp: () => ({
    email: 'newcomer@example.com',
    password: testPassword,
    organization: { name: 'Newcomer', kind: 'merchant', industry: 'education' },
  }),
  logIn: (f) => ({ email: f.tenant.email, password: testPassword }),
  changePassword: () => ({ current_password: testPassword, new_password: `${testPassword} changed` }),
  createOrganization: () => ({ name: 'Second organisation', kind: 'merchant', industry: 'retail' }),
  addMember: (f) => ({ email: f.other.email, role: 'viewer' }),
  createApp: () => ({ name: 'Another app', environment: 'sandbox' }),
  registerAppKey: (f) => ({ public_key_pem: f.publicKeyPem, overlap_seconds: 60 }),
  createStore: () => ({ out_store_no: 'BAD-1', name: 'Bad input store', address: 'Nowhere 1', city_code: '110108' }),
  setAppRedirectUris: () => ({ redirect_uris: ['https://isv.example.com/oauth/callback', 'http://127.0.0.1:8765/cb'] }),
  // The caller's real, unused code and live refresh token: a refused request must spend neither.
  exchangeAppAuthToken: (f) => ({
    grant_type: 'authorization_code',
    code: f.world.code,
    refresh_token: f.world.grant.app_refresh_token,
  }),
  createWebhookEndpoint: () => ({ url: 'https://isv.example.com/webhooks/bad-input' }),
  createTrade: (f) => ({ ...tradeBody('BAD-BUY-1', f), buyer_id: f.world.consumerId }),
  precreateTrade: (f) => tradeBody('BAD-QR-1', f),
  // A real one-time payment code: a refused payment must not consume it.
  payTrade: (f) => ({ ...tradeBody('BAD-PAY-1', f), auth_code: f.world.unusedCode, scene: 'bar_code' }),
  refundTrade: () => ({ out_request_no: 'bad-refund-1', amount: 100, reason: 'bad input' }),
  bindRoyaltyReceiver: (f) => ({ receiver_id: f.other.organizationId, name: 'Partner', memo: 'bad input' }),
  settleRoyalty: (f) => ({
    out_request_no: 'bad-royalty-1',
    royalties: [{ receiver_id: f.world.receiverId, amount: 100 }],
  }),
  createSandboxConsumer: () => ({ display_name: 'Bad input buyer' }),
  topUpSandboxConsumer: () => ({ amount: 100 }),
  mintPaymentCode: () => ({ reusable: true }),
  setAlipaySettings: () => ({ notify_url: 'https://isv.example.com/alipay/notify' }),
  // Governance, partner side: on the caller's own seat, proposals, request and session.
  setGovernanceProxy: (f) => ({ email: f.other.email }),
  createProposal: (f) => ({ industry: f.council.industry, type: f.council.typeKey, ...proposalContent(f) }),
  amendProposal: (f) => ({ ...proposalContent(f), note: 'Bad input amendment' }),
  castGovernanceVote: (f) => ({
    content_hash: f.partner.votingHash,
    vote: 'yes',
    approve: ['keep'],
    ranking: ['keep', 'lower'],
    reason: 'Bad input ballot',
  }),
  declareGovernanceConflict: () => ({ reason: 'Bad input conflict of interest' }),
  commentOnProposal: () => ({ body: 'Bad input comment' }),
  withdrawProposal: () => ({ reason: 'Bad input withdrawal' }),
  applyToRecruitmentBatch: (f) => ({ ...f.partner.application, batch_id: f.council.batchId }),
  fileImprovementRequest: () => ({ capability: 'payment', title: 'Bad input request', body: 'Bad input, explained' }),
  supportImprovementRequest: () => ({ support: false }),
  // Governance, operator side.
  createGovernanceIndustry: () => ({ code: 'bad_input', name: governanceText('Bad input') }),
  putProposalType: () => ({ name: governanceText('Bad input type'), rules: proposalRules() }),
  createOperatorProposal: (f) => ({ type: f.council.typeKey, ...proposalContent(f) }),
  vetoProposal: () => ({ reason: 'Bad input veto, with a reason long enough' }),
  commentOnProposalAsOperator: () => ({ body: 'Bad input comment of the operator' }),
  createRecruitmentBatch: (f) => ({
    name: 'Bad input batch',
    industries: [f.council.industry],
    criteria: { merchants_served_min: 1, live_apps_min: 1, payment_volume_min: 100, open_risk_incidents_max: 0 },
    opens_at: inDays(1),
    closes_at: inDays(30),
  }),
  decideApplication: () => ({ decision: 'admit', reason: 'Bad input decision' }),
  updateOutcome: () => ({
    owner: 'Bad input owner',
    status: 'in_progress',
    progress_bps: 5000,
    review_on: inDays(60),
    milestones: [{ title: 'Bad input milestone', due_on: inDays(30), done_at: inDays(1) }],
  }),
  moveImprovementRequest: () => ({ status: 'planned', note: 'Bad input note' }),
  createTrainingSession: (f) => ({
    kind: 'office_hours',
    title: governanceText('Bad input office hours'),
    industry: f.council.industry,
    starts_at: inDays(10),
    capacity: 5,
  }),
}

const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString()

/** A proposal's content with every optional property, options and actions alike. */
function proposalContent(f: Fixture) {
  const action = {
    parameter: 'payment.fee_rate_bps',
    scope: 'merchant',
    merchant_id: f.world.merchantId,
    op: 'set',
    value: 50,
    base_version: 0,
  }
  return {
    title: governanceText('Bad input proposal'),
    body: governanceText('Bad input, explained'),
    actions: [action],
    options: [
      { key: 'keep', title: governanceText('Keep'), actions: [action] },
      { key: 'lower', title: governanceText('Lower'), actions: [action] },
    ],
    effective_from: inDays(7),
  }
}

function tradeBody(outTradeNo: string, f: Fixture) {
  return {
    out_trade_no: outTradeNo,
    total_amount: 990,
    subject: 'Bad input',
    store_id: f.storeId,
    timeout_seconds: 600,
  }
}

/**
 * Valid query parameters for operations that require some. An operation with a required
 * query parameter and no entry here fails the suite.
 */
const validQueries: Record<string, (f: Fixture) => Record<string, string>> = {
  lookupTrade: (f) => ({ out_trade_no: (f.world.bodies.payTrade as { out_trade_no: string }).out_trade_no }),
}

const compileValidator = createValidatorCompiler()
const validators = new Map<Schema, (value: unknown) => boolean>()
/** Validates exactly as the server does (same Ajv options), on a copy: defaults mutate. */
function matches(schema: Schema, value: unknown, httpPart: 'body' | 'params' = 'body'): boolean {
  let validate = validators.get(schema)
  if (validate === undefined) {
    const compiled = compileValidator({ schema, httpPart, method: 'POST', url: '/' }) as (value: unknown) => boolean
    validate = (value) => compiled(structuredClone(value))
    validators.set(schema, validate)
  }
  return validate(value)
}

function operationsOf(document: { paths: Record<string, Record<string, OpenApiOperation>> }): Operation[] {
  return eachOperation(document).map(({ method, template, operation }) => {
    const parameters = operation.parameters ?? []
    return {
      method,
      template,
      operationId: operation.operationId,
      auth: operation['x-baseplate-auth'],
      pathParams: parameters.filter((p) => p.in === 'path'),
      queryParams: parameters.filter((p) => p.in === 'query'),
      takesIdempotencyKey: parameters.some((p) => p.in === 'header' && p.name === 'idempotency-key'),
      requiresIdempotencyKey: parameters.some(
        (p) => p.in === 'header' && p.name === 'idempotency-key' && p.required === true,
      ),
      bodySchema: operation.requestBody?.content['application/json']?.schema ?? null,
    }
  })
}

// ---- Body mutations derived from the schema -------------------------------------------

const typeSamples: ReadonlyArray<readonly [string, unknown]> = [
  ['string', 'text'],
  ['integer', 7],
  ['number', 1.5],
  ['boolean', true],
  ['null', null],
  ['array', []],
  ['object', {}],
]

function allowedTypes(schema: Schema): Set<string> {
  const types = new Set<string>()
  const add = (s: Schema) => {
    if (typeof s.type === 'string') types.add(s.type)
    else if (Array.isArray(s.type)) for (const t of s.type) types.add(t)
    for (const branch of s.anyOf ?? []) add(branch)
  }
  add(schema)
  if (types.has('number')) types.add('integer')
  return types
}

function wrongTypes(schema: Schema): Array<[string, unknown]> {
  const allowed = allowedTypes(schema)
  if (allowed.size === 0) return []
  return typeSamples.filter(([type]) => !allowed.has(type)).map(([type, value]) => [`a ${type}`, value])
}

/** A fixed set of values: a const, an enum, or a union of them. */
const isChoice = (schema: Schema): boolean =>
  schema.enum !== undefined || schema.const !== undefined || (schema.anyOf?.every(isChoice) ?? false)

function outOfBounds(schema: Schema): Array<[string, unknown]> {
  const values: Array<[string, unknown]> = []
  const types = allowedTypes(schema)
  if (types.has('string')) {
    // A union of types (a string or null, say) bounds the string by its own branch.
    const string = schema.anyOf?.find((branch) => allowedTypes(branch).has('string') && !isChoice(branch)) ?? schema
    if (string.maxLength !== undefined) values.push([`over maxLength ${string.maxLength}`, tooLong(string.maxLength)])
    if ((string.minLength ?? 0) > 0) values.push(['empty', ''])
    if (string.pattern !== undefined) values.push([`not matching ${string.pattern}`, ' not matching! '])
    if (string.format !== undefined) values.push([`not a ${string.format}`, `not a ${string.format}`])
    if (isChoice(schema)) values.push(['not one of the choices', 'not_a_choice'])
  }
  if (types.has('integer') || types.has('number')) {
    if (schema.minimum !== undefined) values.push([`below minimum ${schema.minimum}`, schema.minimum - 1])
    if (schema.maximum !== undefined) values.push([`above maximum ${schema.maximum}`, schema.maximum + 1])
  }
  return values
}

const tooLong = (maxLength: number) => 'x'.repeat(maxLength + 1)

type Change = (parent: Record<string, unknown>, key: string) => void

function withChange(root: unknown, path: readonly string[], change: Change): unknown {
  const copy = structuredClone(root) as Record<string, unknown>
  let parent = copy
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string, unknown>
  change(parent, path[path.length - 1]!)
  return copy
}

function valueAt(root: unknown, path: readonly string[]): unknown {
  let value = root
  for (const key of path) value = (value as Record<string, unknown>)[key]
  return value
}

/**
 * Every single-point violation of an object schema, applied to a valid value: into nested
 * objects, and into the first item of arrays (whose length is also pushed out of bounds).
 */
function bodyMutations(schema: Schema, valid: unknown): Array<[string, unknown]> {
  const result: Array<[string, unknown]> = []
  const walk = (s: Schema, path: readonly string[]) => {
    const where = path.length === 0 ? 'body' : `body.${path.join('.')}`
    const current = valueAt(valid, path)
    if (s.items !== undefined && Array.isArray(current) && current.length > 0) {
      if ((s.minItems ?? 0) > 0) {
        result.push([`${where} empty`, withChange(valid, path, (p, k) => void (p[k] = []))])
      }
      if (s.maxItems !== undefined) {
        const tooMany = Array.from({ length: s.maxItems + 1 }, () => current[0])
        result.push([`${where} over maxItems ${s.maxItems}`, withChange(valid, path, (p, k) => void (p[k] = tooMany))])
      }
      const at = [...path, '0']
      for (const [label, value] of [...wrongTypes(s.items), ...outOfBounds(s.items)]) {
        result.push([`${where}.0 ${label}`, withChange(valid, at, (p, k) => void (p[k] = value))])
      }
      walk(s.items, at)
      return
    }
    if (s.properties === undefined) return
    if (s.additionalProperties === false) {
      const extra = withChange(valid, [...path, 'unexpected_field'], (p, k) => {
        p[k] = 1
      })
      result.push([`unknown property in ${where}`, extra])
    }
    for (const name of s.required ?? []) {
      result.push([
        `${where}.${name} missing`,
        withChange(valid, [...path, name], (p, k) => {
          delete p[k]
        }),
      ])
    }
    for (const [name, property] of Object.entries(s.properties)) {
      const at = [...path, name]
      for (const [label, value] of [...wrongTypes(property), ...outOfBounds(property)]) {
        result.push([
          `body.${at.join('.')} ${label}`,
          withChange(valid, at, (p, k) => {
            p[k] = value
          }),
        ])
      }
      walk(property, at)
    }
  }
  walk(schema, [])
  return result
}

// ---- Sending requests ------------------------------------------------------------------

interface Case {
  readonly name: string
  readonly method: string
  readonly url: string
  /** The raw body; omitted means none. */
  readonly body?: string
  /** Defaults to application/json when there is a body; null sends none. */
  readonly contentType?: string | null
  /** undefined: a fresh valid key when the route takes one; null: none. */
  readonly idempotencyKey?: string | null
  readonly auth: AuthMode
  /** The session to present; the tenant's unless set. */
  readonly token?: string
  /** The app auth token to sign with: the fixture's unless set; null sends none. */
  readonly appAuthToken?: string | null
  /** Changes the headers after signing, to malform credentials. */
  readonly tamper?: (headers: Record<string, string>) => void
  /** The codes that may answer; each must also be registered with the status it came with. */
  readonly codes: readonly string[]
}

let keyCounter = 0
const freshKey = () => `bad-input-${(keyCounter += 1)}-${crypto.randomBytes(3).toString('hex')}`

async function send(app: FastifyInstance, fixture: Fixture, operation: Operation | null, c: Case): Promise<Injected> {
  const body = c.body ?? ''
  const key =
    c.idempotencyKey === null
      ? undefined
      : (c.idempotencyKey ?? (operation?.takesIdempotencyKey === true ? freshKey() : undefined))
  const headers: Record<string, string> = {}
  if (c.auth === 'app') {
    Object.assign(
      headers,
      signRequest({
        appId: fixture.testApp.appId,
        privateKey: fixture.testApp.keyPair.privateKey,
        method: c.method,
        pathWithQuery: c.url,
        body,
        idempotencyKey: key,
        appAuthToken: c.appAuthToken === undefined ? fixture.world.grant.app_auth_token : (c.appAuthToken ?? undefined),
        timestampS: Math.floor(Date.now() / 1000),
      }),
    )
  } else if (c.auth === 'session') {
    headers.authorization = `Bearer ${c.token ?? fixture.tenant.token}`
  }
  if (key !== undefined) headers['idempotency-key'] = key
  delete headers['content-type']
  const contentType = c.contentType === undefined ? (body === '' ? null : 'application/json') : c.contentType
  if (contentType !== null) headers['content-type'] = contentType
  c.tamper?.(headers)
  return app.inject({
    method: c.method as 'GET',
    url: c.url,
    headers,
    ...(body !== '' || contentType !== null ? { payload: body } : {}),
  })
}

/** What is wrong with the answer to a malformed request, or null. */
function problemWith(c: Case, response: Injected): string | null {
  const where = `${c.method} ${c.url.length > 120 ? `${c.url.slice(0, 120)}…` : c.url} [${c.name}]`
  const got = `${response.statusCode} ${response.body.slice(0, 300)}`
  if (response.statusCode < 400 || response.statusCode > 499) return `${where}: expected 4xx, got ${got}`
  let body: { code?: unknown; requestId?: unknown }
  try {
    body = JSON.parse(response.body) as typeof body
  } catch {
    return `${where}: the body is not JSON: ${got}`
  }
  if (typeof body.code !== 'string' || !codePattern.test(body.code)) return `${where}: no stable code: ${got}`
  if (typeof body.requestId !== 'string' || !/^req_/.test(body.requestId)) return `${where}: no requestId: ${got}`
  const spec = errorTable().get(body.code)
  if (spec === undefined) return `${where}: ${body.code} is not a registered code`
  if (spec.status !== response.statusCode) return `${where}: ${body.code} is registered as ${spec.status}: ${got}`
  if (!c.codes.includes(body.code)) return `${where}: expected one of ${c.codes.join(', ')}: ${got}`
  return null
}

function fill(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{([^}]+)\}/g, (_, name: string) => values[name] ?? `{${name}}`)
}

function notFoundCodes(): string[] {
  return [...errorTable()].filter(([code, spec]) => spec.status === 404 && code !== NO_ROUTE).map(([code]) => code)
}

/**
 * The codes a malformed path parameter may get: a validation failure, or not found when
 * unpatterned; and a value its schema lets through (a merchant's out_request_no is free
 * text) is well formed, so it may only be not found.
 */
function pathCodes(parameter: Parameter, value?: string): string[] {
  // An integer is written in decimal digits only: `1 ` or `0x1` is malformed, not a number.
  if (value !== undefined && parameter.schema.type === 'integer' && !/^-?(0|[1-9][0-9]*)$/.test(value)) {
    return [VALIDATION]
  }
  if (value !== undefined && matches(parameter.schema, value, 'params')) return notFoundCodes()
  return parameter.schema.pattern === undefined ? [VALIDATION, ...notFoundCodes()] : [VALIDATION]
}

/** A path segment as the router hands it to validation. */
function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}

const badPathValues: ReadonlyArray<readonly [string, (valid: string) => string]> = [
  ['not an id', () => 'not-an-id'],
  ['wrong prefix', (valid) => `zzz_${valid.slice(valid.indexOf('_') + 1)}`],
  ['upper case', (valid) => valid.toUpperCase()],
  ['one character short', (valid) => valid.slice(0, -1)],
  ['one character long', (valid) => `${valid}a`],
  ['trailing space', (valid) => encodeURIComponent(`${valid} `)],
  ['SQL', () => encodeURIComponent("' OR '1'='1")],
  ['traversal', () => '..%2F..%2Fetc%2Fpasswd'],
  ['non-ASCII', () => encodeURIComponent('门店_一号')],
  ['NUL byte', (valid) => `${valid}%00`],
  ['100 characters', () => 'a'.repeat(100)],
]

function pathValueOf(operation: Operation, name: string): ((f: Fixture) => string) | undefined {
  return operationPathValues[operation.operationId]?.[name] ?? pathValues[name]
}

/** The caller's own, valid value for each path parameter, or null when one is unknown. */
function validPathOf(operation: Operation, fixture: Fixture): Record<string, string> | null {
  if (operation.pathParams.some((p) => pathValueOf(operation, p.name) === undefined)) return null
  return Object.fromEntries(operation.pathParams.map((p) => [p.name, pathValueOf(operation, p.name)!(fixture)]))
}

/** Valid query parameters (none unless required), or null when required ones have no entry. */
function validQueryOf(operation: Operation, fixture: Fixture): Record<string, string> | null {
  const build = validQueries[operation.operationId]
  if (build !== undefined) return build(fixture)
  return operation.queryParams.some((p) => p.required === true) ? null : {}
}

function urlWith(
  template: string,
  path: Readonly<Record<string, string>>,
  query: Readonly<Record<string, string>> | URLSearchParams,
): string {
  const search = new URLSearchParams(query).toString()
  return search === '' ? fill(template, path) : `${fill(template, path)}?${search}`
}

/** A valid URL for the operation, or null when this file lacks what it takes to build one. */
function validUrlOf(operation: Operation, fixture: Fixture): string | null {
  const path = validPathOf(operation, fixture)
  const query = validQueryOf(operation, fixture)
  return path === null || query === null ? null : urlWith(operation.template, path, query)
}

interface Battery {
  readonly cases: Case[]
  readonly problems: string[]
}

/** The deterministic battery for one operation, and what keeps this file from building it. */
function casesFor(operation: Operation, fixture: Fixture, token: string | undefined): Battery {
  const problems: string[] = []
  const cases: Case[] = []
  const { method, auth, operationId } = operation
  const validPath = validPathOf(operation, fixture)
  if (validPath === null) {
    const unknown = operation.pathParams.filter((p) => pathValueOf(operation, p.name) === undefined).map((p) => p.name)
    problems.push(`${operationId}: no valid value for path parameter(s) ${unknown.join(', ')}; add them to pathValues`)
    return { cases, problems }
  }
  const validQuery = validQueryOf(operation, fixture)
  if (validQuery === null) {
    const required = operation.queryParams.filter((p) => p.required === true).map((p) => p.name)
    problems.push(`${operationId}: requires query parameter(s) ${required.join(', ')}; add an entry to validQueries`)
    return { cases, problems }
  }
  const url = urlWith(operation.template, validPath, validQuery)
  let validBody: string | undefined
  if (operation.bodySchema !== null) {
    const build = validBodies[operation.operationId]
    if (build === undefined) {
      problems.push(`${operationId}: takes a body but validBodies has none`)
      return { cases, problems }
    }
    const value = build(fixture)
    if (!matches(operation.bodySchema, value)) problems.push(`${operationId}: its validBodies entry breaks the schema`)
    validBody = JSON.stringify(value)
  }
  const base = {
    method,
    url,
    auth,
    ...(token === undefined ? {} : { token }),
    ...(validBody === undefined ? {} : { body: validBody }),
  }

  // Bodies that fail to parse, or are too large, or are not JSON at all.
  if (method !== 'GET') {
    const huge = JSON.stringify({ padding: 'a'.repeat(1_100_000) })
    for (const [name, body, contentType, codes] of [
      ['invalid JSON', '{', 'application/json', [MALFORMED]],
      ['truncated JSON', '{"name":', 'application/json', [MALFORMED]],
      ['single-quoted JSON', "{'name':1}", 'application/json', [MALFORMED]],
      ['trailing garbage', '{}x', 'application/json', [MALFORMED]],
      ['__proto__ key', '{"__proto__":{"admin":true}}', 'application/json', [MALFORMED]],
      ['empty body declared as JSON', '', 'application/json', [MALFORMED]],
      ['form-urlencoded', 'name=x&kind=isv', 'application/x-www-form-urlencoded', [MEDIA_TYPE]],
      ['XML', '<name>x</name>', 'application/xml', [MEDIA_TYPE]],
      ['multipart', '--x\r\n\r\n--x--', 'multipart/form-data; boundary=x', [MEDIA_TYPE]],
      ['unknown content type', validBody ?? '{}', 'application/vnd.baseplate+json', [MEDIA_TYPE]],
      ['body over 1 MiB', huge, 'application/json', [TOO_LARGE]],
      // The server has no text/plain parser (so that no cross-site form reaches an API route):
      // it may refuse the media type before it reads the size.
      ['body over 1 MiB as text', huge, 'text/plain', [TOO_LARGE, MEDIA_TYPE]],
    ] as const) {
      cases.push({ ...base, name, body, contentType, codes })
    }
  }
  if (operation.bodySchema !== null) {
    for (const [name, body] of [
      ['array', '[]'],
      ['string', '"text"'],
      ['number', '42'],
      ['null', 'null'],
      ['boolean', 'true'],
      ['empty object', '{}'],
    ] as const) {
      // An object of optional properties only takes {}: that is no malformation.
      if (matches(operation.bodySchema, JSON.parse(body))) continue
      cases.push({ ...base, name: `JSON ${name} as body`, body, codes: [VALIDATION] })
    }
    cases.push({ ...base, name: 'no body', body: '', contentType: null, codes: [VALIDATION] })
    // Fastify parses text/plain into a string, which the schema then refuses; for a signed
    // request the server verifies the signature over the JSON body it did not get.
    cases.push({
      ...base,
      name: 'JSON sent as text/plain',
      contentType: 'text/plain',
      codes: [MEDIA_TYPE, VALIDATION, 'AUTH_SIGNATURE_INVALID'],
    })
    for (const [name, value] of bodyMutations(operation.bodySchema, JSON.parse(validBody!))) {
      if (matches(operation.bodySchema, value)) {
        problems.push(`${operation.operationId}: the mutation "${name}" is valid per the schema`)
        continue
      }
      cases.push({ ...base, name, body: JSON.stringify(value), codes: [VALIDATION] })
    }
  }

  // A body sent to a write route that declares none is refused, not ignored while the write runs.
  if (method !== 'GET' && operation.bodySchema === null) {
    cases.push({ ...base, name: 'a JSON object to a route that takes no body', body: '{}', codes: [VALIDATION] })
    cases.push({
      ...base,
      name: 'a text/plain body to a route that takes no body',
      body: '{}',
      contentType: 'text/plain',
      codes: [MEDIA_TYPE],
    })
  }

  // Path parameters that do not match their schema; the rest of the request is valid.
  for (const parameter of operation.pathParams) {
    for (const [name, make] of badPathValues) {
      const value = make(validPath[parameter.name]!)
      if (decoded(value) === validPath[parameter.name]) continue // not a malformation of this value
      const wellFormed = matches(parameter.schema, decoded(value), 'params')
      if (wellFormed && upsertKeys[operationId]?.includes(parameter.name)) continue // names what the PUT creates
      if (leftOut[operationId]?.includes(`path ${parameter.name} ${name}`)) continue
      cases.push({
        ...base,
        // A well-formed value reaches the handler, and the server keeps a lasting failure
        // under its Idempotency-Key, by design: such a request goes without one.
        ...(wellFormed && !operation.requiresIdempotencyKey ? { idempotencyKey: null } : {}),
        name: `path ${parameter.name} ${name}`,
        url: urlWith(operation.template, { ...validPath, [parameter.name]: value }, validQuery),
        codes: [
          ...pathCodes(parameter, decoded(value)),
          ...(wellFormed ? (wellFormedRefusals[operationId]?.[parameter.name] ?? []) : []),
        ],
      })
    }
  }

  // Query parameters of the wrong type, out of range, unknown or very long.
  if (operation.queryParams.length > 0) {
    const withQuery = (change: (query: URLSearchParams) => void) => {
      const query = new URLSearchParams(validQuery)
      change(query)
      return urlWith(operation.template, validPath, query)
    }
    for (const parameter of operation.queryParams) {
      const { name, schema } = parameter
      const values: Array<[string, string]> = []
      const types = allowedTypes(schema)
      if (types.has('integer') || types.has('number')) {
        values.push(['abc', 'abc'], ['1.5', '1.5'], ['empty', ''], ['true', 'true'])
        if (schema.minimum !== undefined) values.push([`${schema.minimum - 1}`, String(schema.minimum - 1)])
        if (schema.maximum !== undefined) values.push([`${schema.maximum + 1}`, String(schema.maximum + 1)])
        values.push(['huge', '9'.repeat(400)])
      }
      if (types.has('string')) {
        const max = schema.maxLength
        if (max !== undefined) values.push([`over maxLength ${max}`, tooLong(max)])
        if ((schema.minLength ?? 0) > 0) values.push(['empty', ''])
        if (schema.pattern !== undefined) values.push([`not matching ${schema.pattern}`, ' not matching! '])
        if (schema.format !== undefined) values.push([`not a ${schema.format}`, `not a ${schema.format}`])
        if (schema.anyOf !== undefined || schema.enum !== undefined) values.push(['not one of the choices', 'bogus'])
        values.push(['100 000 characters (a very long URL)', 'x'.repeat(100_000)])
      }
      for (const [label, value] of values) {
        cases.push({
          ...base,
          name: `query ${name} ${label}`,
          url: withQuery((q) => q.set(name, value)),
          codes: [VALIDATION],
        })
      }
      cases.push({
        ...base,
        name: `query ${name} given twice`,
        codes: [VALIDATION],
        url: withQuery((q) => {
          q.set(name, String(schema.minimum ?? 1))
          q.append(name, String(schema.minimum ?? 1))
        }),
      })
      cases.push({
        ...base,
        name: `query ${name}[]`,
        url: withQuery((q) => q.append(`${name}[]`, '1')),
        codes: [VALIDATION],
      })
      if (parameter.required === true) {
        cases.push({
          ...base,
          name: `query ${name} missing`,
          url: withQuery((q) => q.delete(name)),
          codes: [VALIDATION],
        })
      }
    }
    cases.push({
      ...base,
      name: 'unknown query parameter',
      url: withQuery((q) => q.append('unknown_param', '1')),
      codes: [VALIDATION],
    })
  } else {
    // A route that declares no query takes none: `?dry_run=true` must not be silently ignored.
    cases.push({
      ...base,
      name: 'a query parameter on a route that takes none',
      url: urlWith(operation.template, validPath, { unknown_param: '1' }),
      codes: [VALIDATION],
    })
  }

  // Malformed Idempotency-Key headers on an otherwise valid write.
  if (operation.takesIdempotencyKey) {
    for (const [name, key] of [
      ['256 characters', 'k'.repeat(256)],
      ['empty', ''],
      ['a space', 'has space'],
      ['a tab', 'has\ttab'],
      ['a control character', 'ctl\u0001x'],
      ['DEL', 'del\u007fx'],
      ['non-ASCII', 'ключ-1'],
    ] as const) {
      cases.push({ ...base, name: `idempotency-key with ${name}`, idempotencyKey: key, codes: [KEY_INVALID] })
    }
    // A line break could forge the signing string, so a signed request refuses it first.
    cases.push({
      ...base,
      name: 'idempotency-key with a line break',
      idempotencyKey: 'line\nbreak',
      codes: auth === 'app' ? ['AUTH_SIGNATURE_INVALID'] : [KEY_INVALID],
    })
  }

  // Malformed credentials on an otherwise valid request.
  if (auth === 'session') {
    for (const [name, value] of [
      ['an over-long bearer token', `Bearer ${'x'.repeat(300)}`],
      ['an empty bearer token', 'Bearer '],
      ['Basic credentials', 'Basic dXNlcjpwYXNzd29yZA=='],
      ['an unknown token', `Bearer sess_${'A'.repeat(43)}`],
      ['control characters', 'Bearer \u0001\u0002'],
    ] as const) {
      cases.push({
        ...base,
        name: `authorization with ${name}`,
        tamper: (h) => {
          h.authorization = value
        },
        codes: ['AUTH_SESSION_REQUIRED'],
      })
    }
    const junkCookie = (h: Record<string, string>) => {
      delete h.authorization
      h.cookie = 'bp_session=%ZZ%00'
    }
    cases.push({ ...base, name: 'junk session cookie', tamper: junkCookie, codes: ['AUTH_SESSION_REQUIRED'] })
  }
  if (auth === 'app') {
    // [what, header, value (undefined removes it), expected code]
    for (const [name, header, value, code] of [
      ['no signature', 'baseplate-signature', undefined, 'AUTH_SIGNATURE_MISSING'],
      ['a non-numeric timestamp', 'baseplate-timestamp', 'yesterday', 'AUTH_TIMESTAMP_OUT_OF_WINDOW'],
      ['a 13-digit timestamp', 'baseplate-timestamp', '1'.repeat(13), 'AUTH_TIMESTAMP_OUT_OF_WINDOW'],
      ['a short nonce', 'baseplate-nonce', 'short', 'AUTH_SIGNATURE_INVALID'],
      ['a nonce with spaces', 'baseplate-nonce', 'a nonce with spaces!!', 'AUTH_SIGNATURE_INVALID'],
      ['a malformed app id', 'baseplate-app-id', 'app_NOT-VALID', 'AUTH_APP_NOT_FOUND'],
      ['a signature that is not base64', 'baseplate-signature', '%%%not base64%%%', 'AUTH_SIGNATURE_INVALID'],
      // Added after signing, so the signature no longer covers it.
      ['an over-long app auth token', 'baseplate-app-auth-token', 't'.repeat(300), 'AUTH_SIGNATURE_INVALID'],
      ['no app auth token', 'baseplate-app-auth-token', undefined, 'AUTH_SIGNATURE_INVALID'],
    ] as const) {
      const tamper = (h: Record<string, string>) => {
        if (value === undefined) delete h[header]
        else h[header] = value
      }
      cases.push({ ...base, name: `signed request with ${name}`, tamper, codes: [code] })
    }
    // Signed app auth tokens that grant nothing: the merchant authorised no such thing.
    for (const [name, token, code] of [
      ['an unknown app auth token', `bpat_${'A'.repeat(43)}`, 'AUTH_APP_AUTH_TOKEN_INVALID'],
      ['an over-long app auth token, signed', `bpat_${'A'.repeat(300)}`, 'AUTH_APP_AUTH_TOKEN_INVALID'],
      ['the refresh token as app auth token', fixture.world.grant.app_refresh_token, 'AUTH_APP_AUTH_TOKEN_INVALID'],
      ['a non-ASCII app auth token', 'bpat_ключ', 'AUTH_APP_AUTH_TOKEN_INVALID'],
      ['a line break in the app auth token', 'bpat_a\nb', 'AUTH_SIGNATURE_INVALID'],
    ] as const) {
      cases.push({ ...base, name: `signed request with ${name}`, appAuthToken: token, codes: [code] })
    }
  }
  return { cases, problems }
}

/** Requests no operation owns: unknown routes and methods, a very long path. */
const strayCases: readonly Case[] = [
  { name: 'unknown route', method: 'GET', url: '/v1/does-not-exist', auth: 'public', codes: [NO_ROUTE] },
  { name: 'unknown method', method: 'PUT', url: '/v1/stores', auth: 'public', codes: [NO_ROUTE] },
  { name: 'unknown method', method: 'PATCH', url: '/v1/me', auth: 'public', codes: [NO_ROUTE] },
  { name: 'trailing slash', method: 'GET', url: '/v1/capabilities/', auth: 'public', codes: [NO_ROUTE] },
  // An empty last segment still reaches GET /v1/stores/:store_id, which wants a signature first.
  {
    name: 'empty path parameter',
    method: 'GET',
    url: '/v1/stores/',
    auth: 'public',
    codes: [NO_ROUTE, 'AUTH_SIGNATURE_MISSING'],
  },
  { name: 'extra segments', method: 'POST', url: '/v1/stores/a/b/c', auth: 'public', codes: [NO_ROUTE] },
  { name: 'double slash', method: 'GET', url: '//v1/me', auth: 'public', codes: [NO_ROUTE] },
  { name: 'very long path', method: 'GET', url: `/v1/${'a'.repeat(100_000)}`, auth: 'public', codes: [NO_ROUTE] },
  { name: 'very long nested path', method: 'GET', url: `/v1${'/a'.repeat(20_000)}`, auth: 'public', codes: [NO_ROUTE] },
]

// ---- Data that must not change ---------------------------------------------------------

async function databaseContents(db: Kysely<any>, dialect: DialectName): Promise<Record<string, string[]>> {
  let tables = await db.introspection.getTables()
  if (dialect === 'postgres') {
    const current = await sql<{ schema: string }>`select current_schema() as schema`.execute(db)
    tables = tables.filter((table) => table.schema === current.rows[0]!.schema)
  }
  const contents: Record<string, string[]> = {}
  for (const table of tables) {
    // Nonces are recorded by every verified signed request, by design (replay protection); the
    // audit log records refused credentials and rights (ADR 0020): checked on their own below.
    if (['request_nonces', 'audit_log', 'audit_head'].includes(table.name)) continue
    const rows = await db.selectFrom(table.name).selectAll().execute()
    const text = (row: unknown) => JSON.stringify(row, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))
    contents[table.name] = rows.map(text).sort()
  }
  return contents
}

forEachDialect('bad input', (dialect) => {
  let operatorLogin: { email: string; password: string } | undefined
  const bp = useTestPlatform(dialect, {
    onOperatorCreated: (login) => {
      operatorLogin = login
    },
  })
  const app = () => bp().app
  let fixture: Fixture
  let operations: Operation[]
  let before: Record<string, string[]>
  let auditSeqBefore = 0
  /** Per session operation, the session that may call it: the tenant's, or the operator's. */
  const tokens = new Map<string, string>()
  /** Reads that failed when sent well-formed; the battery reports them. */
  const controlProblems: string[] = []

  beforeAll(async () => {
    const world = await tenantWorld(bp(), 'T')
    const other = await signUp(app(), 'isv')
    const council = await openCouncil(bp(), operatorLogin!)
    const applications = await admitPartners(
      bp(),
      council,
      [{ label: 'T', user: world.user }],
      [{ label: 'O', user: other }],
    )
    const partner = await partnerWorld(
      bp(),
      council,
      { label: 'T', user: world.user },
      applications.get(world.user.organizationId)!,
    )
    fixture = {
      tenant: world.user,
      other,
      testApp: world.testApp,
      world,
      keyId: world.keyId,
      storeId: world.storeId,
      publicKeyPem: ed25519KeyPair().publicKeyPem,
      operatorToken: council.operatorToken,
      council,
      partner,
      pendingApplicationId: applications.get(other.organizationId)!.id,
    }
    const document = await app().inject({ method: 'GET', url: '/openapi.json' })
    operations = operationsOf(json(document))
    expect(operations.length).toBeGreaterThan(10)
    const known = new Set(operations.map((operation) => operation.operationId))
    for (const operationId of operatorOperations) {
      if (known.has(operationId)) tokens.set(operationId, fixture.operatorToken)
      else controlProblems.push(`${operationId}: listed in operatorOperations but not in the document; remove it`)
    }
    // Control: every read, sent well-formed, succeeds, so the battery below is refused for
    // its malformation and not for want of access. A read the tenant may not make (the
    // audit log) is exercised as the operator.
    for (const operation of operations.filter((o) => o.method === 'GET')) {
      const url = validUrlOf(operation, fixture)
      if (url === null) continue // reported by the battery
      const control = (token = tokens.get(operation.operationId)) =>
        send(app(), fixture, operation, {
          name: 'control',
          method: 'GET',
          url,
          auth: operation.auth,
          ...(token === undefined ? {} : { token }),
          codes: [],
        })
      let response = await control()
      if (response.statusCode === 403 && operation.auth === 'session') {
        response = await control(fixture.operatorToken)
        tokens.set(operation.operationId, fixture.operatorToken)
      }
      if (response.statusCode !== 200) {
        controlProblems.push(
          `${operation.operationId}: a well-formed GET ${url} answered ${response.statusCode} ` +
            `${response.body.slice(0, 200)}; give this file what the call needs`,
        )
      }
    }
    before = await databaseContents(bp().storage.db, dialect)
    auditSeqBefore = (await bp().storage.db.selectFrom('audit_head').select('seq').executeTakeFirstOrThrow()).seq
  })

  it('answers every malformed request with a 4xx and a registered code', async () => {
    const problems: string[] = [...controlProblems]
    let sent = 0
    for (const operation of operations) {
      const { cases, problems: setupProblems } = casesFor(operation, fixture, tokens.get(operation.operationId))
      problems.push(...setupProblems)
      for (const c of cases) {
        const problem = problemWith(c, await send(app(), fixture, operation, c))
        if (problem !== null) problems.push(`${operation.operationId}: ${problem}`)
        sent += 1
      }
    }
    for (const c of strayCases) {
      const problem = problemWith(c, await send(app(), fixture, null, c))
      if (problem !== null) problems.push(problem)
      sent += 1
    }
    expect(problems).toEqual([])
    expect(sent).toBeGreaterThan(400)
  })

  it('answers random JSON bodies that break the schema with a 4xx (property-based)', async () => {
    const withBody = operations.filter((operation) => operation.bodySchema !== null)
    expect(withBody.length).toBeGreaterThanOrEqual(5)
    for (const operation of withBody) {
      const schema = operation.bodySchema!
      const url = validUrlOf(operation, fixture)
      if (url === null) continue // reported by the battery
      await fc.assert(
        fc.asyncProperty(fc.jsonValue(), async (value) => {
          fc.pre(!matches(schema, value))
          const token = tokens.get(operation.operationId)
          const c: Case = {
            name: 'random JSON body',
            method: operation.method,
            url,
            auth: operation.auth,
            ...(token === undefined ? {} : { token }),
            body: JSON.stringify(value),
            codes: [VALIDATION, MALFORMED],
          }
          const problem = problemWith(c, await send(app(), fixture, operation, c))
          expect(problem, `${operation.operationId} (fast-check seed ${seed})`).toBeNull()
        }),
        { seed, numRuns },
      )
    }
  })

  it('answers random path parameters with a 4xx (property-based)', async () => {
    const withParams = operations.filter((operation) => operation.pathParams.length > 0)
    expect(withParams.length).toBeGreaterThanOrEqual(5)
    const pathString = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.string({ unit: 'binary', maxLength: 20 }),
      fc.stringMatching(/^[a-z]{2,6}_[0-9a-zA-Z]{18,22}$/),
    )
    for (const operation of withParams) {
      const validPath = validPathOf(operation, fixture)
      const validQuery = validQueryOf(operation, fixture)
      const buildBody = validBodies[operation.operationId]
      if (validPath === null || validQuery === null || (operation.bodySchema !== null && buildBody === undefined)) {
        continue // reported by the battery
      }
      const validBody = buildBody === undefined ? undefined : JSON.stringify(buildBody(fixture))
      const accepts = (parameter: Parameter, value: string) =>
        (alsoValid[parameter.name] ?? []).includes(value) ||
        value === validPath[parameter.name] ||
        (parameter.schema.pattern !== undefined && matches(parameter.schema, value, 'params'))
      const encodable = (value: string) => {
        try {
          return encodeURIComponent(value).length <= 200
        } catch {
          return false
        }
      }
      await fc.assert(
        fc.asyncProperty(fc.nat(operation.pathParams.length - 1), pathString, async (index, value) => {
          const parameter = operation.pathParams[index]!
          fc.pre(encodable(value) && !accepts(parameter, value))
          const token = tokens.get(operation.operationId)
          const c: Case = {
            name: `random ${parameter.name}`,
            method: operation.method,
            auth: operation.auth,
            ...(token === undefined ? {} : { token }),
            url: urlWith(operation.template, { ...validPath, [parameter.name]: encodeURIComponent(value) }, validQuery),
            ...(validBody === undefined ? {} : { body: validBody }),
            codes: [...pathCodes(parameter), NO_ROUTE],
          }
          const problem = problemWith(c, await send(app(), fixture, operation, c))
          expect(problem, `${operation.operationId} (fast-check seed ${seed})`).toBeNull()
        }),
        { seed, numRuns },
      )
    }
  })

  it('changed nothing', async () => {
    expect(await databaseContents(bp().storage.db, dialect)).toEqual(before)
    // The audit log gained refusals only, appended to an intact chain.
    const appended = await bp()
      .storage.db.selectFrom('audit_log')
      .select('action')
      .where('seq', '>', auditSeqBefore)
      .execute()
    expect(new Set(appended.map((row) => row.action))).toEqual(new Set(['access.refused']))
    expect((await verifyAuditLog(bp().storage.db)).ok).toBe(true)
    // And the caller's credentials still work, so the battery was not refused for lack of them.
    expect((await session(app(), 'GET', '/v1/me', fixture.tenant.token)).statusCode).toBe(200)
    const stores = await send(app(), fixture, null, {
      name: 'control',
      method: 'GET',
      url: '/v1/stores',
      auth: 'app',
      codes: [],
    })
    expect(stores.statusCode, stores.body).toBe(200)
    expect(json(stores).data.map((s: { id: string; status: string }) => [s.id, s.status])).toEqual([
      [fixture.storeId, 'open'],
    ])
    // The app still acts for the merchant: the battery was not refused for want of a grant.
    const current = await send(app(), fixture, null, {
      name: 'control',
      method: 'GET',
      url: '/v1/oauth/token/current',
      auth: 'app',
      codes: [],
    })
    expect(current.statusCode, current.body).toBe(200)
    expect(json(current)).toMatchObject({ id: fixture.world.grant.authorization_id, status: 'active' })
  })

  it('audits a well-formed failed login, and changes nothing else', async () => {
    const db = bp().storage.db
    const start = await databaseContents(db, dialect)
    const seqBefore = (await db.selectFrom('audit_head').select('seq').executeTakeFirstOrThrow()).seq
    const response = await app().inject({
      method: 'POST',
      url: '/v1/sessions',
      payload: { email: fixture.tenant.email, password: 'wrong password, well formed' },
    })
    expect(response.statusCode).toBe(401)
    expect(json(response).code).toBe('AUTH_INVALID_CREDENTIALS')
    const added = await db.selectFrom('audit_log').select(['action', 'target']).where('seq', '>', seqBefore).execute()
    // A wrong password is the login's own entry, not also a refusal (ADR 0020).
    expect(added.map((row) => [row.action, row.target])).toEqual([['session.login_failed', fixture.tenant.email]])
    expect(await databaseContents(db, dialect)).toEqual(start)
  })

  it('accepts, as they are, the valid bodies the battery malformed (control)', async () => {
    // Last: it spends the one-time payment code and the consent code the battery had to leave
    // alone, and changes the governance records the battery named.
    const valid = async (operationId: string, body: unknown = validBodies[operationId]!(fixture)) => {
      const operation = operations.find((o) => o.operationId === operationId)!
      const token = tokens.get(operationId)
      const response = await send(app(), fixture, operation, {
        name: 'control',
        method: operation.method,
        url: validUrlOf(operation, fixture)!,
        auth: operation.auth,
        ...(token === undefined ? {} : { token }),
        body: JSON.stringify(body),
        codes: [],
      })
      expect(response.statusCode, `${operationId}: ${response.body}`).toBeLessThan(300)
      return json(response)
    }
    expect(await valid('payTrade')).toMatchObject({ status: 'paid', buyer_id: fixture.world.consumerId })
    expect(await valid('exchangeAppAuthToken')).toMatchObject({
      authorization_id: fixture.world.grant.authorization_id,
      merchant_id: fixture.world.merchantId,
    })
    // Governance bodies that also make sense as they are (others fill in every optional
    // property, such as both actions and options, which no single proposal takes).
    expect(await valid('setAlipaySettings')).toMatchObject({ notify_url: 'https://isv.example.com/alipay/notify' })
    expect(await valid('commentOnProposal')).toMatchObject({ organization_id: fixture.tenant.organizationId })
    expect(await valid('commentOnProposalAsOperator')).toMatchObject({ operator: true })
    const {
      approve: _approve,
      ranking: _ranking,
      ...ballot
    } = validBodies.castGovernanceVote!(fixture) as object & {
      approve: unknown
      ranking: unknown
    }
    expect(await valid('castGovernanceVote', ballot)).toMatchObject({ replaced: true, via_proxy: false })
    expect(await valid('supportImprovementRequest')).toMatchObject({ support_count: 0 })
    expect(await valid('moveImprovementRequest')).toMatchObject({ status: 'planned' })
    expect(await valid('updateOutcome')).toMatchObject({ status: 'in_progress', progress_bps: 5000 })
    expect(await valid('decideApplication')).toMatchObject({ status: 'admitted' })
    expect(await valid('createTrainingSession')).toMatchObject({ kind: 'office_hours', capacity: 5 })
    expect(await valid('createRecruitmentBatch')).toMatchObject({ name: 'Bad input batch' })
    expect(await valid('withdrawProposal')).toMatchObject({ state: 'withdrawn' })
  })
})
