/**
 * The closed set of error codes and the one table that maps each code to an HTTP status.
 *
 * Codes are forever: never rename or reuse one; mark it `deprecated` instead. Capabilities
 * declare their own codes with {@link defineErrors}, prefixed with their area, and the
 * registry merges them here at boot; `docs/errors.md` must list exactly the merged set (a
 * test checks it). `transient: true` marks codes where retrying the same request can succeed.
 *
 * @example
 * throw new AppError('APP_NOT_FOUND', { field: 'app_id' })
 */
import { assert } from './assert.js'

export interface ErrorSpec {
  readonly status: number
  readonly message: string
  readonly transient?: boolean
  readonly deprecated?: boolean
}

export const coreErrors = {
  REQUEST_VALIDATION_FAILED: { status: 400, message: 'The request does not match the schema' },
  REQUEST_MALFORMED_JSON: { status: 400, message: 'The request body is not valid JSON' },
  REQUEST_BODY_TOO_LARGE: { status: 413, message: 'The request body is too large' },
  REQUEST_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Send bodies as application/json' },
  REQUEST_ROUTE_NOT_FOUND: { status: 404, message: 'No such route' },
  REQUEST_RATE_LIMITED: { status: 429, message: 'Too many requests', transient: true },
  AUTH_SESSION_REQUIRED: { status: 401, message: 'Log in first' },
  AUTH_INVALID_CREDENTIALS: { status: 401, message: 'Email or password is wrong' },
  AUTH_LOGIN_THROTTLED: {
    status: 429,
    message: 'Too many failed logins for this account or from this address; retry after Retry-After seconds',
    transient: true,
  },
  AUTH_FORBIDDEN: { status: 403, message: 'You may not do this' },
  AUTH_SIGNATURE_MISSING: { status: 401, message: 'The request is not signed' },
  AUTH_SIGNATURE_INVALID: { status: 401, message: 'The signature does not verify' },
  AUTH_TIMESTAMP_OUT_OF_WINDOW: { status: 401, message: 'The request timestamp is too far from now' },
  AUTH_NONCE_REPLAYED: { status: 401, message: 'This nonce has been used already' },
  AUTH_APP_NOT_FOUND: { status: 401, message: 'No such app' },
  AUTH_APP_NO_ACTIVE_KEY: { status: 401, message: 'The app has no active public key' },
  AUTH_APP_AUTH_TOKEN_INVALID: { status: 401, message: 'The app auth token is invalid or revoked' },
  AUTH_SCOPE_MISSING: { status: 403, message: 'The app lacks the scope this call needs' },
  IDEMPOTENCY_KEY_INVALID: { status: 400, message: 'Idempotency-Key must be 1-255 printable characters' },
  IDEMPOTENCY_KEY_REQUIRED: { status: 400, message: 'This call needs an Idempotency-Key header' },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    message: 'This Idempotency-Key was used with a different request',
  },
  IDEMPOTENCY_REQUEST_IN_PROGRESS: {
    status: 409,
    message: 'A request with this Idempotency-Key is still running',
    transient: true,
  },
  IDENTITY_EMAIL_TAKEN: { status: 409, message: 'A user with this email exists' },
  IDENTITY_USER_NOT_FOUND: { status: 404, message: 'No such user' },
  IDENTITY_ORGANIZATION_NOT_FOUND: { status: 404, message: 'No such organisation' },
  IDENTITY_MEMBER_EXISTS: { status: 409, message: 'This user is already a member' },
  IDENTITY_LAST_OWNER: { status: 409, message: 'An organisation keeps at least one owner' },
  APP_NOT_FOUND: { status: 404, message: 'No such app' },
  APP_KEY_NOT_FOUND: { status: 404, message: 'No such key' },
  APP_KEY_PEM_MALFORMED: { status: 400, message: 'The public key is not a valid PEM' },
  APP_KEY_PRIVATE_KEY_SENT: {
    status: 400,
    message: 'That is a private key; send only the public key (the private key was not stored)',
  },
  APP_KEY_TYPE_UNSUPPORTED: { status: 400, message: 'Only RSA (2048 bits or more) and Ed25519 keys are accepted' },
  APP_KEY_TOO_SHORT: { status: 400, message: 'RSA keys must have at least 2048 bits' },
  APP_KEY_ALREADY_REGISTERED: { status: 409, message: 'This key is already registered for the app' },
  APP_KEY_LIMIT_REACHED: { status: 409, message: 'Too many active keys; wait for an overlap to end' },
  AUTHZ_REQUEST_INVALID: { status: 400, message: 'The authorisation request is malformed' },
  AUTHZ_REDIRECT_URI_INVALID: {
    status: 400,
    message: 'Redirect URIs must be https, or http on 127.0.0.1, [::1] or localhost, without fragment',
  },
  AUTHZ_REDIRECT_URI_NOT_REGISTERED: { status: 400, message: 'This redirect_uri is not registered for the app' },
  AUTHZ_SCOPE_INVALID: { status: 400, message: 'The scope must list known scopes, separated by commas' },
  AUTHZ_MERCHANT_ROLE_REQUIRED: {
    status: 403,
    message: 'Only an owner or admin of a merchant organisation may authorise an app',
  },
  AUTHZ_CSRF_TOKEN_INVALID: { status: 403, message: 'The form is stale or was not sent from this page; reload it' },
  AUTHZ_CODE_INVALID: { status: 400, message: "The authorisation code is unknown, expired, used or not this app's" },
  AUTHZ_REFRESH_TOKEN_INVALID: { status: 400, message: 'The refresh token is unknown, expired, rotated or revoked' },
  AUTHZ_NOT_FOUND: { status: 404, message: 'No such authorisation' },
  AUTHZ_CONSENT_REQUIRED: {
    status: 403,
    message: "Only sandbox apps may be authorised without the merchant's consent",
  },
  AUTHZ_GRANT_CONFLICT: {
    status: 409,
    message: 'Another authorisation of this app by this merchant is being granted; retry',
    transient: true,
  },
  WEBHOOK_ENDPOINT_NOT_FOUND: { status: 404, message: 'No such webhook endpoint' },
  WEBHOOK_DELIVERY_NOT_FOUND: { status: 404, message: 'No such webhook delivery' },
  WEBHOOK_URL_INVALID: {
    status: 400,
    message: 'Webhook URLs are http(s) without credentials or fragment; live apps need https',
  },
  WEBHOOK_ENDPOINT_LIMIT_REACHED: {
    status: 409,
    message: 'The app has reached its limit of enabled webhook endpoints',
  },
  WEBHOOK_ENDPOINT_DISABLED: { status: 409, message: 'The webhook endpoint is disabled' },
  WEBHOOK_DELIVERY_IN_PROGRESS: {
    status: 409,
    message: 'This delivery is being attempted right now; retry in a few seconds',
    transient: true,
  },
  GOV_INDUSTRY_NOT_FOUND: { status: 404, message: 'No such industry' },
  GOV_INDUSTRY_EXISTS: { status: 409, message: 'An industry with this code exists' },
  GOV_PROPOSAL_TYPE_NOT_FOUND: { status: 404, message: 'No such proposal type in this industry' },
  GOV_RULES_INVALID: { status: 400, message: 'The rules do not hold together' },
  GOV_PROPOSAL_NOT_FOUND: { status: 404, message: 'No such proposal' },
  GOV_POLICY_VERSION_NOT_FOUND: { status: 404, message: 'No such policy version' },
  GOV_NOT_PARTNER: { status: 403, message: 'This organisation holds no seat on this council' },
  GOV_PROPOSER_NOT_ALLOWED: { status: 403, message: 'The rules of this proposal type do not let you propose it' },
  GOV_PROPOSAL_QUOTA_REACHED: { status: 409, message: 'Too many open proposals' },
  GOV_PROPOSAL_STATE_INVALID: { status: 409, message: 'The proposal is not in a state that allows this' },
  GOV_PROPOSAL_NOT_EDITABLE: { status: 409, message: 'The proposal can no longer be edited' },
  GOV_DISCUSSION_TOO_SHORT: { status: 409, message: 'The discussion has not lasted long enough' },
  GOV_PROPOSAL_BASE_OUTDATED: { status: 409, message: 'A parameter changed since this was written' },
  GOV_ACTION_INVALID: { status: 400, message: 'A proposed action is not valid' },
  GOV_CONTENT_HASH_MISMATCH: { status: 409, message: 'The ballot names another version of the proposal' },
  GOV_VOTING_CLOSED: { status: 409, message: 'Voting has closed' },
  GOV_VOTE_INVALID: { status: 400, message: 'The ballot does not fit the voting method' },
  GOV_VOTER_NOT_ALLOWED: { status: 403, message: 'You may not vote for this seat' },
  GOV_RECUSED: { status: 409, message: 'The seat is recused from this proposal' },
  GOV_PROXY_OVERRIDE_REFUSED: { status: 409, message: 'A direct ballot was cast; the proxy cannot replace it' },
  GOV_PROXY_NOT_MEMBER: { status: 400, message: 'The proxy must be a member of the organisation' },
  GOV_PROXY_NOT_FOUND: { status: 404, message: 'This seat has no proxy' },
  GOV_VETO_WINDOW_CLOSED: { status: 409, message: 'The veto window is closed' },
  GOV_VETO_REASON_REQUIRED: { status: 400, message: 'A veto needs a public written reason' },
  GOV_BATCH_NOT_FOUND: { status: 404, message: 'No such recruitment batch' },
  GOV_BATCH_INVALID: { status: 400, message: 'The batch is not valid' },
  GOV_BATCH_CLOSED: { status: 409, message: 'The batch is not taking applications' },
  GOV_APPLICANT_NOT_ISV: { status: 403, message: 'Only ISV organisations may apply' },
  GOV_APPLICATION_INDUSTRY_INVALID: { status: 400, message: 'The batch does not recruit for this industry' },
  GOV_APPLICATION_EXISTS: { status: 409, message: 'The organisation has applied to this batch' },
  GOV_APPLICATION_NOT_FOUND: { status: 404, message: 'No such application' },
  GOV_APPLICATION_DECIDED: { status: 409, message: 'The application has been decided' },
  GOV_OUTCOME_NOT_FOUND: { status: 404, message: 'No such outcome record' },
  GOV_REQUEST_NOT_FOUND: { status: 404, message: 'No such improvement request' },
  GOV_CAPABILITY_UNKNOWN: { status: 400, message: 'No such capability' },
  GOV_SESSION_NOT_FOUND: { status: 404, message: 'No such training session' },
  GOV_SESSION_STARTED: { status: 409, message: 'The training session has started' },
  GOV_ENROLMENT_EXISTS: { status: 409, message: 'The organisation is enrolled or waitlisted' },
  GOV_ENROLMENT_NOT_FOUND: { status: 404, message: 'No enrolment to cancel' },
  GOV_CONFLICT: { status: 409, message: 'The record changed meanwhile; retry', transient: true },
  PLATFORM_ENVIRONMENT_UNKNOWN: { status: 404, message: 'No such environment' },
  SERVICE_UNAVAILABLE: { status: 503, message: 'Try again shortly', transient: true },
  INTERNAL_ERROR: { status: 500, message: 'Something went wrong on our side', transient: true },
} as const satisfies Record<string, ErrorSpec>

export type CoreErrorCode = keyof typeof coreErrors

const table = new Map<string, ErrorSpec & { readonly area: string }>()

const codePattern = /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$/

/**
 * Adds an area's codes to the table. Every code must start with the area's prefix and be
 * unique across the platform; breaking either rule is a programmer error caught at boot.
 *
 * @example
 * export const storeErrors = defineErrors('STORE', {
 *   STORE_NOT_FOUND: { status: 404, message: 'No such store' },
 * })
 */
export function defineErrors<const T extends Record<string, ErrorSpec>>(area: string, errors: T): T {
  for (const [code, spec] of Object.entries(errors)) {
    assert(codePattern.test(code), `error code ${code} is not SCREAMING_SNAKE`)
    assert(code.startsWith(`${area}_`) || area === 'CORE', `error code ${code} lacks prefix ${area}_`)
    const existing = table.get(code)
    assert(existing === undefined || existing.area === area, `error code ${code} defined twice`)
    assert(Number.isInteger(spec.status) && spec.status >= 400 && spec.status <= 599, `bad status for ${code}`)
    table.set(code, Object.freeze({ ...spec, area }))
  }
  return Object.freeze(errors)
}

defineErrors('CORE', coreErrors)

/** The merged table: every code that exists, with its status. */
export function errorTable(): ReadonlyMap<string, ErrorSpec & { readonly area: string }> {
  return table
}

export interface AppErrorOptions {
  readonly message?: string
  /** The offending input, as a JSON pointer-ish path (`body.public_key_pem`). */
  readonly field?: string
  /** Extra, safe-to-show data for the caller (never secrets). */
  readonly details?: Readonly<Record<string, unknown>>
  readonly cause?: unknown
}

/** An expected failure: a stable code the caller can branch on. */
export class AppError extends Error {
  override readonly name = 'AppError'
  readonly code: string
  readonly status: number
  readonly field: string | undefined
  readonly details: Readonly<Record<string, unknown>> | undefined
  readonly transient: boolean

  constructor(code: string, options: AppErrorOptions = {}) {
    const spec = table.get(code)
    assert(spec !== undefined, `unknown error code ${code}`)
    super(options.message ?? spec.message, { cause: options.cause })
    this.code = code
    this.status = spec.status
    this.field = options.field
    this.details = options.details
    this.transient = spec.transient === true
  }
}

export function isAppError(error: unknown): error is AppError {
  return error instanceof AppError
}
