/**
 * The consent pages a merchant's browser visits, outside the JSON API and hidden from the
 * OpenAPI document:
 *
 * - `GET /oauth/authorize?app_id&redirect_uri&scope&state`: the login form without a
 *   session (or with `prompt=login`), else the consent form;
 * - `POST /oauth/login`: logs in and returns to the consent page;
 * - `POST /oauth/authorize`: approve (302 to `redirect_uri?app_id&app_auth_code&state`) or
 *   decline (302 to `redirect_uri?error=access_denied&state`).
 *
 * They live in an encapsulated Fastify plugin, so the urlencoded body parser and the HTML
 * error handler they need apply to them alone; the API stays JSON-only.
 *
 * @example
 * await app.register(authorizationPages, { db: storage.db, config, clock, scopes: registry.scopes })
 */
import crypto from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { Config } from '../../config.js'
import { AppError } from '../../errors.js'
import { requestErrorToAppError } from '../../server/http-errors.js'
import { LoginThrottledError, loginAccount, type LoginThrottle } from '../identity/login-throttle.js'
import { login, sessionCookieName, userForSession } from '../identity/service.js'
import type { Clock } from '../ids.js'
import {
  authorizableMerchants,
  checkAuthorizeRequest,
  csrfToken,
  csrfTokenMatches,
  decide,
  parseAuthorizeRequest,
  type CheckedRequest,
  type Decision,
} from './consent.js'
import { consentPage, contentSecurityPolicy, errorMessageHtml, errorPage, loginPage } from './html.js'
import type { Db } from './tables.js'

export interface AuthorizationPagesOptions {
  readonly db: Kysely<any>
  readonly config: Config
  readonly clock: Clock
  /** Every scope a capability declares, with its description (`registry.scopes`). */
  readonly scopes: ReadonlyMap<string, string>
  /** Shared with the console's login: one count of failures per account and per address. */
  readonly loginThrottle: LoginThrottle
  /**
   * Audits a refusal (ADR 0020), as the platform's error handler does; the pages name the
   * browser's signed-in user and the app of the consent request, which the handler cannot know.
   */
  readonly recordRefusal: (request: FastifyRequest, error: AppError, caller: PageCaller) => Promise<unknown>
}

/** The forms hold a few short fields; anything bigger is not from these pages. */
const formBodyLimitBytes = 16 * 1024
/** Double-submit cookie against login CSRF (logging a victim into the attacker's account). */
const loginCsrfCookie = 'bp_oauth_login'
const loginCsrfTtlS = 3600

/** A parsed form body; a class so that a JSON body can never pass for one. */
class FormBody {
  readonly fields: Readonly<Record<string, string | string[]>>
  constructor(text: string) {
    const fields: Record<string, string | string[]> = Object.create(null)
    for (const [name, value] of new URLSearchParams(text)) {
      const existing = fields[name]
      fields[name] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value]
    }
    this.fields = fields
  }
}

function formOf(request: FastifyRequest): Readonly<Record<string, string | string[]>> {
  if (!(request.body instanceof FormBody)) throw new AppError('REQUEST_UNSUPPORTED_MEDIA_TYPE')
  return request.body.fields
}

function field(form: Readonly<Record<string, unknown>>, name: string, lengthMax: number): string | null {
  const value = form[name]
  return typeof value === 'string' && value.length <= lengthMax ? value : null
}

function authorizeUrl(request: CheckedRequest, extra: Readonly<Record<string, string>> = {}): string {
  const query = new URLSearchParams({
    app_id: request.app.id,
    redirect_uri: request.redirectUri,
    scope: request.scopes.join(','),
    ...(request.state === null ? {} : { state: request.state }),
    ...extra,
  })
  return `/oauth/authorize?${query.toString()}`
}

function sendHtml(reply: FastifyReply, status: number, html: string, formTarget: string | null = null) {
  return reply
    .code(status)
    .headers({
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': contentSecurityPolicy(formTarget),
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-store',
    })
    .send(html)
}

export interface PageCaller {
  readonly actor: string
  readonly claimedApp: string | null
}

interface PageContext extends AuthorizationPagesOptions {
  /** Cookies get the Secure flag when the platform is served over https. */
  readonly secure: boolean
}

/**
 * Registers the consent pages; register it as its own plugin so its parser and error
 * handler stay encapsulated.
 *
 * @example
 * await app.register(authorizationPages, { db: storage.db, config, clock, scopes: registry.scopes })
 */
export async function authorizationPages(app: FastifyInstance, options: AuthorizationPagesOptions): Promise<void> {
  const context: PageContext = { ...options, secure: options.config.publicUrl.startsWith('https:') }
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: formBodyLimitBytes },
    (_request, body, done) => done(null, new FormBody(body as string)),
  )
  app.setErrorHandler(async (error, request, reply) => {
    const appError = requestErrorToAppError(error)
    if (appError === null) request.log.error({ err: error }, 'unhandled error on a consent page')
    const shown = appError ?? new AppError('INTERNAL_ERROR')
    if (appError !== null) await context.recordRefusal(request, appError, await pageCaller(context, request))
    const switchAccountUrl = shown.code === 'AUTHZ_MERCHANT_ROLE_REQUIRED' ? switchUrlOf(request) : null
    return sendHtml(
      reply,
      shown.status,
      errorPage({ code: shown.code, message: shown.message, requestId: request.id, switchAccountUrl }),
    )
  })
  app.get('/oauth/authorize', { schema: { hide: true } }, (request, reply) => showAuthorize(context, request, reply))
  app.post('/oauth/login', { schema: { hide: true } }, (request, reply) => submitLogin(context, request, reply))
  app.post('/oauth/authorize', { schema: { hide: true } }, (request, reply) => submitDecision(context, request, reply))
}

/** Who a refused page request came from: the browser's signed-in user, and the app it asked for. */
async function pageCaller(context: PageContext, request: FastifyRequest): Promise<PageCaller> {
  const session = await browserSession(context, request, context.clock.now()).catch(() => null)
  const appId = requestFields(request).app_id
  return { actor: session?.user.userId ?? 'anonymous', claimedApp: typeof appId === 'string' ? appId : null }
}

/** The fields of the consent request: the query of a GET, the form of a POST. */
function requestFields(request: FastifyRequest): Readonly<Record<string, unknown>> {
  const source = request.method === 'GET' ? request.query : request.body instanceof FormBody ? request.body.fields : {}
  return (source ?? {}) as Record<string, unknown>
}

/** The signed-in user of the browser, from the session cookie only (a page has no bearer). */
async function browserSession(context: PageContext, request: FastifyRequest, now: number) {
  const token = request.cookies[sessionCookieName]
  if (token === undefined || token === '' || token.length > 200) return null
  const user = await userForSession(context.db, token, now)
  return user === null ? null : { user, token }
}

function showLogin(
  context: PageContext,
  request: FastifyRequest,
  reply: FastifyReply,
  checked: CheckedRequest,
  login: { status: number; email: string; errorHtml: string | null },
) {
  let token = request.cookies[loginCsrfCookie]
  if (token === undefined || !/^[A-Za-z0-9_-]{43}$/.test(token)) {
    token = crypto.randomBytes(32).toString('base64url')
    reply.setCookie(loginCsrfCookie, token, {
      path: '/oauth',
      httpOnly: true,
      sameSite: 'lax',
      secure: context.secure,
      maxAge: loginCsrfTtlS,
    })
  }
  return sendHtml(
    reply,
    login.status,
    loginPage({ request: checked, csrfToken: token, email: login.email, errorHtml: login.errorHtml }),
  )
}

async function showAuthorize(context: PageContext, request: FastifyRequest, reply: FastifyReply) {
  const { db, clock, scopes } = context
  const query = request.query as Record<string, unknown>
  const checked = await checkAuthorizeRequest(db, parseAuthorizeRequest(query), scopes)
  const session = await browserSession(context, request, clock.now())
  if (session === null || query.prompt === 'login') {
    return showLogin(context, request, reply, checked, { status: 200, email: '', errorHtml: null })
  }
  const merchants = await authorizableMerchants(db, session.user.userId)
  if (merchants.length === 0) throw new AppError('AUTHZ_MERCHANT_ROLE_REQUIRED')
  const user = await (db as Db)
    .selectFrom('users')
    .select('email')
    .where('id', '=', session.user.userId)
    .executeTakeFirstOrThrow()
  return sendHtml(
    reply,
    200,
    consentPage({
      request: checked,
      merchants,
      scopeDescriptions: scopes,
      email: user.email,
      csrfToken: csrfToken(session.token),
      switchAccountUrl: authorizeUrl(checked, { prompt: 'login' }),
    }),
    new URL(checked.redirectUri).origin,
  )
}

async function submitLogin(context: PageContext, request: FastifyRequest, reply: FastifyReply) {
  const { db, clock, scopes, config } = context
  const form = formOf(request)
  const checked = await checkAuthorizeRequest(db, parseAuthorizeRequest(form), scopes)
  const cookie = request.cookies[loginCsrfCookie]
  if (cookie === undefined || field(form, 'csrf_token', 100) !== cookie) throw new AppError('AUTHZ_CSRF_TOKEN_INVALID')
  const email = field(form, 'email', 254) ?? ''
  try {
    const password = field(form, 'password', 200) ?? ''
    const session = await context.loginThrottle.guarded(loginAccount(email), request.ip, () =>
      login(db, email, password, clock.now(), config.sessionTtlS),
    )
    reply.setCookie(sessionCookieName, session.token, {
      path: '/',
      httpOnly: true,
      sameSite: 'lax',
      secure: context.secure,
      maxAge: config.sessionTtlS,
    })
  } catch (error) {
    if (error instanceof LoginThrottledError) {
      reply.header('retry-after', String(error.retryAfterS))
      await context.recordRefusal(request, error, await pageCaller(context, request))
    } else if (!(error instanceof AppError) || error.code !== 'AUTH_INVALID_CREDENTIALS') throw error
    return showLogin(context, request, reply, checked, {
      status: (error as AppError).status,
      email,
      errorHtml: errorMessageHtml(error.code, error.message),
    })
  }
  return reply.code(303).header('location', authorizeUrl(checked)).send()
}

async function submitDecision(context: PageContext, request: FastifyRequest, reply: FastifyReply) {
  const { db, clock, scopes } = context
  const now = clock.now()
  const form = formOf(request)
  const checked = await checkAuthorizeRequest(db, parseAuthorizeRequest(form), scopes)
  const session = await browserSession(context, request, now)
  if (session === null) throw new AppError('AUTH_SESSION_REQUIRED')
  // Before anything changes: the form must come from the consent page of this session.
  if (!csrfTokenMatches(session.token, field(form, 'csrf_token', 100))) throw new AppError('AUTHZ_CSRF_TOKEN_INVALID')
  const decision = decisionOf(form)
  const location = await db.transaction().execute((tx) => decide(tx, session.user.userId, checked, decision, now))
  return reply.code(302).headers({ location, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' }).send()
}

function decisionOf(form: Readonly<Record<string, unknown>>): Decision {
  const merchantId = field(form, 'merchant_id', 64)
  switch (form.decision) {
    case 'approve':
      if (merchantId === null) throw new AppError('AUTHZ_REQUEST_INVALID', { field: 'merchant_id' })
      return { kind: 'approve', merchantId }
    case 'decline':
      return { kind: 'decline', merchantId }
    default:
      throw new AppError('AUTHZ_REQUEST_INVALID', { field: 'decision', message: 'Approve or decline' })
  }
}

/** Where "use another account" leads: the same request, with the login form forced. */
function switchUrlOf(request: FastifyRequest): string | null {
  const source = requestFields(request)
  const keep = ['app_id', 'redirect_uri', 'scope', 'state'] as const
  const query = new URLSearchParams({ prompt: 'login' })
  for (const name of keep) {
    const value = source[name]
    if (typeof value === 'string') query.set(name, value)
  }
  return `/oauth/authorize?${query.toString()}`
}
