/**
 * Builds the HTTP application without listening, so tests call `inject()` or listen on a
 * port of their choosing. Layers, outside in: JSON parsing that keeps the raw body (for
 * signatures), authentication per route, schema validation, idempotency and a transaction
 * around every write, the thin handler, then response signing.
 *
 * @example
 * const app = await buildApp({ config, storage, registry, platformKeys })
 * const response = await app.inject({ method: 'GET', url: '/healthz' })
 */
import cookie from '@fastify/cookie'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { Type } from '@sinclair/typebox'
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify'
import { sql, type Kysely } from 'kysely'
import { headerNames, responseSigningString, signText } from '../../sdk/src/protocol.js'
import { assert } from '../assert.js'
import type { Registry } from '../capabilities/registry.js'
import type { Config } from '../config.js'
import { AppError, type CoreErrorCode } from '../errors.js'
import type { PaymentServices } from '../capabilities/payment/index.js'
import { alipaySettingsRoutes, registerAlipayGateway } from '../gateway/alipay/index.js'
import { governanceRoutes } from '../governance/index.js'
import { appRoutes } from '../platform/apps/routes.js'
import { authorizationPages, authorizationRoutes } from '../platform/authorization/index.js'
import type { PageCaller } from '../platform/authorization/pages.js'
import { createRefusalAudit, refusalReasons, type RefusalOfRequest } from '../platform/audit/refusals.js'
import { createLoginThrottle } from '../platform/identity/login-throttle.js'
import { identityRoutes } from '../platform/identity/routes.js'
import { notificationRoutes } from '../platform/notifications/routes.js'
import { newId, sha256Hex, systemClock, type Clock } from '../platform/ids.js'
import {
  checkIdempotencyKey,
  complete,
  release,
  reserve,
  type IdempotencyRequest,
} from '../platform/idempotency/idempotency.js'
import { maskUrl } from '../platform/signing/masked.js'
import type { PlatformKey } from '../platform/signing/platform-keys.js'
import type { Storage } from '../storage/database.js'
import { PendingCommits } from '../storage/group-commit.js'
import type { AppEnvironment } from '../storage/tables.js'
import { createAdmission, type Admission } from './admission.js'
import {
  authenticateApp,
  authenticateSession,
  type AppAuthTokenResolver,
  type SignatureContext,
} from './authenticate.js'
import { errorResponse, internalError, requestErrorToAppError } from './http-errors.js'
import { openApiOptions } from './openapi.js'
import { registerPages } from './pages.js'
import { platformRoutes } from './platform-routes.js'
import { isWrite, type Principal, type RouteSpec } from './route-kit.js'
import { ErrorBody } from './schemas.js'
import { createLazySchemas } from './lazy-schemas.js'
import { createValidatorCompiler } from './validation.js'

export interface AppDependencies {
  readonly config: Config
  readonly storage: Storage
  readonly registry: Registry
  readonly platformKeys: ReadonlyMap<AppEnvironment, PlatformKey>
  readonly clock?: Clock
  readonly appAuthTokenResolver?: AppAuthTokenResolver | null
  /** Fastify logger options; silent unless given. */
  readonly logger?: boolean | { level: string }
}

interface RequestState {
  rawBody: string
  principal: Principal
  signing: SignatureContext | null
  readonly now: number
  /** Commits of this request's early writes (nonce, reservation), settled before it answers. */
  readonly owed: PendingCommits
}

export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const { config, storage, registry } = deps
  const clock = deps.clock ?? systemClock
  // Route schemas compile at first use, not at boot: a restart answers sooner (lazy-schemas.ts).
  const lazySchemas = createLazySchemas()
  // One count of failed logins for the console's login and the consent page's (ADR 0019).
  const loginThrottle = createLoginThrottle(clock, { proxiesNamed: config.trustProxy.length > 0 })
  const app = Fastify({
    logger: loggerOptions(deps.logger),
    schemaController: { compilersFactory: { buildSerializer: lazySchemas.buildSerializer } },
    bodyLimit: config.bodyLimitBytes,
    genReqId: () => newId('req'),
    // Only the proxies the operator names; otherwise the peer is the client (ADR 0019).
    ...(config.trustProxy.length > 0 ? { trustProxy: [...config.trustProxy] } : {}),
    // Malformed URLs and over-long parameters get the same error body as every other failure.
    frameworkErrors: (error, request, reply) => {
      // These fire before any route is matched, so the error handler below never sees them.
      const response = errorResponse(
        requestErrorToAppError(error) ?? new AppError('REQUEST_VALIDATION_FAILED'),
        request.id,
      )
      // The reply here is typed for no route in particular; it takes any status and body.
      const untyped = reply as unknown as FastifyReply
      void untyped
        .code(response.status)
        .header(headerNames.requestId, request.id)
        .type('application/json; charset=utf-8')
        .send(JSON.stringify(response.body))
    },
    requestIdHeader: false,
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
  })
  const states = new WeakMap<FastifyRequest, RequestState>()
  const state = (request: FastifyRequest): RequestState => {
    let current = states.get(request)
    if (current === undefined) {
      current = {
        rawBody: '',
        principal: { kind: 'anonymous' },
        signing: null,
        now: clock.now(),
        owed: new PendingCommits(),
      }
      states.set(request, current)
    }
    return current
  }

  app.setValidatorCompiler(lazySchemas.validators(createValidatorCompiler()))
  app.decorate('compileAllSchemas', () => lazySchemas.compileAll())
  // JSON only: without the text/plain parser a cross-site form can never reach an API route.
  app.removeContentTypeParser('text/plain')
  await app.register(cookie)
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    state(request).rawBody = body as string
    parseJson(request, body as string, done)
  })

  app.addHook('onRequest', async (request, reply) => {
    state(request)
    reply.header(headerNames.requestId, request.id)
    // Answers carry tokens, balances and trades: no shared or private cache may keep them.
    reply.header('cache-control', 'no-store')
  })
  // Admission control: under overload a request is refused here, before its body is read or
  // the database touched, rather than queued without bound (ADR 0012, admission.ts).
  const admission = createAdmission(config.admission, {
    report: (refused) => app.log.warn({ admission: refused }, 'refusing requests: overloaded (503), over rate (429)'),
  })
  if (admission.onRequest !== null) app.addHook('onRequest', admission.onRequest)
  app.addHook('onSend', async (request, reply, payload) => {
    const signing = states.get(request)?.signing
    if (signing === undefined || signing === null || typeof payload !== 'string') return payload
    const key = deps.platformKeys.get(signing.environment)!
    const timestamp = String(Math.floor(clock.now() / 1000))
    const text = responseSigningString({
      appId: signing.appId,
      timestamp,
      nonce: signing.nonce,
      status: reply.statusCode,
      body: payload,
    })
    reply.header(headerNames.timestamp, timestamp)
    reply.header(headerNames.nonce, signing.nonce)
    reply.header(headerNames.keyId, key.keyId)
    reply.header(headerNames.signature, signText(text, key.privateKey))
    return payload
  })

  // Refused credentials and rights leave an audit entry, within a budget per caller (ADR 0020).
  const refusals = createRefusalAudit(clock, {
    proxiesNamed: config.trustProxy.length > 0,
    onError: (error) => app.log.error({ err: error }, 'could not audit a refused request'),
  })
  /** Audits a refusal of `request`'s credentials or rights (ADR 0020). */
  const recordRefusal = (request: FastifyRequest, refusal: RefusalOfRequest) =>
    refusals.record(
      storage.db,
      {
        ...refusal,
        method: request.method,
        route: request.routeOptions.url ?? null,
        clientAddress: request.ip,
        requestId: request.id,
      },
      clock.now(),
    )
  /** Audits `error` if it refuses the request's credentials or rights; anything else passes. */
  const recordRefusedError = async (request: FastifyRequest, error: AppError, caller?: PageCaller) => {
    const reason = refusalReasons[error.code as CoreErrorCode]
    if (reason === undefined) return
    const { principal, signing } = state(request)
    // A login's wrong password is its own entry (session.login_failed); a signed-in user's is not.
    if (error.code === 'AUTH_INVALID_CREDENTIALS' && principal.kind !== 'user') return
    const claimed = request.headers[headerNames.appId]
    // The proven caller: a session's user, or an app whose signature verified (a scope or token
    // refused after that); before that, nobody.
    const actor =
      principal.kind === 'user'
        ? principal.userId
        : principal.kind === 'app'
          ? principal.appId
          : signing?.proven === true
            ? signing.appId
            : 'anonymous'
    await recordRefusal(request, {
      reason,
      code: error.code,
      actor,
      claimedApp: typeof claimed === 'string' ? claimed : null,
      ...caller,
    })
  }
  app.setErrorHandler(async (error, request, reply) => {
    const appError = idempotencyHeaderError(error) ?? requestErrorToAppError(error)
    if (appError === null) {
      request.log.error({ err: error }, 'unhandled error')
      const response = internalError(request.id)
      return reply.code(response.status).type('application/json; charset=utf-8').send(JSON.stringify(response.body))
    }
    await recordRefusedError(request, appError)
    const response = errorResponse(appError, request.id)
    return reply.code(response.status).type('application/json; charset=utf-8').send(JSON.stringify(response.body))
  })
  app.setNotFoundHandler(async (request, reply) => {
    const response = errorResponse(
      new AppError('REQUEST_ROUTE_NOT_FOUND', {
        message: `No route ${request.method} ${request.url.split('?')[0]}`,
      }),
      request.id,
    )
    return reply.code(404).type('application/json; charset=utf-8').send(JSON.stringify(response.body))
  })

  await app.register(swagger, openApiOptions(config, registry))
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true } })

  const routes: RouteSpec[] = [
    ...identityRoutes(config, loginThrottle),
    ...appRoutes(() => deps.platformKeys),
    ...authorizationRoutes(),
    ...notificationRoutes(),
    ...platformRoutes(registry),
    ...governanceRoutes(registry),
    ...alipaySettingsRoutes(),
    ...registry.routes,
  ]
  const operationIds = new Set<string>()
  for (const spec of routes) {
    if (operationIds.has(spec.operationId)) throw new Error(`duplicate operationId ${spec.operationId}`)
    // Anonymous callers share no identity to scope an Idempotency-Key by, so public writes
    // must be safe to repeat on their own.
    assert(
      spec.auth !== 'public' || !isWrite(spec.method) || spec.idempotency === 'none',
      `public write ${spec.operationId} must declare idempotency 'none'`,
    )
    operationIds.add(spec.operationId)
    registerRoute(app, spec, { deps, state, admission, recordRefusedError })
  }

  await registerPages(app, registry.pages, storage, clock)
  await app.register(authorizationPages, {
    db: storage.db,
    config,
    clock,
    scopes: registry.scopes,
    loginThrottle,
    recordRefusal: recordRefusedError,
  })
  // The Alipay-compatible gateway: an adapter over the same services, with its own parsers.
  await registerAlipayGateway(app, {
    config,
    storage,
    payment: registry.modules.some((module) => module.id === 'payment')
      ? registry.service<PaymentServices>('payment')
      : null,
    platformKeys: deps.platformKeys,
    clock,
    resolver: deps.appAuthTokenResolver ?? null,
    recordRefusal,
  })

  app.get('/healthz', { schema: { hide: true } }, async () => {
    await sql`select 1`.execute(storage.db)
    return { status: 'ok', database: storage.dialect }
  })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  return app
}

/** The Idempotency-Key header has codes of its own, clearer than a generic schema failure. */
function idempotencyHeaderError(error: unknown): AppError | null {
  const validation = error as {
    validationContext?: string
    validation?: Array<{ instancePath?: string; params?: Record<string, unknown> }>
  }
  if (validation.validationContext !== 'headers' || !Array.isArray(validation.validation)) return null
  const first = validation.validation[0]
  const field = 'headers.idempotency-key'
  if (first?.params?.missingProperty === 'idempotency-key') return new AppError('IDEMPOTENCY_KEY_REQUIRED', { field })
  if (first?.instancePath === '/idempotency-key') return new AppError('IDEMPOTENCY_KEY_INVALID', { field })
  return null
}

interface RouteContext {
  readonly deps: AppDependencies
  readonly state: (request: FastifyRequest) => RequestState
  readonly admission: Admission
  /** Audits a refusal the route answers itself, not through the error handler (ADR 0020). */
  readonly recordRefusedError: (request: FastifyRequest, error: AppError) => Promise<void>
}

function principalKey(principal: Principal): string {
  switch (principal.kind) {
    case 'app':
      return `app:${principal.appId}:${principal.tenantId}`
    case 'user':
      return `user:${principal.userId}`
    default:
      return 'anonymous'
  }
}

function routeSchema(spec: RouteSpec) {
  const status = spec.status ?? 200
  const security: Array<Record<string, string[]>> =
    spec.auth === 'app'
      ? [{ signedRequest: [] }]
      : spec.auth === 'session'
        ? [{ sessionCookie: [] }, { sessionBearer: [] }]
        : []
  const headers: Record<string, ReturnType<typeof Type.String>> = {}
  if (isWrite(spec.method) && spec.idempotency !== 'none') {
    headers['idempotency-key'] = Type.String({
      minLength: 1,
      maxLength: 255,
      description: 'Retries with the same key return the first result (kept 24 h)',
    })
  }
  if (spec.auth === 'app') {
    headers[headerNames.appAuthToken] = Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'Act for a merchant that authorised the app',
    })
  }
  return {
    operationId: spec.operationId,
    summary: spec.summary,
    description: spec.description,
    tags: [...spec.tags],
    security,
    'x-baseplate-auth': spec.auth,
    'x-baseplate-scope': spec.scope,
    'x-baseplate-idempotency': isWrite(spec.method) ? (spec.idempotency ?? 'optional') : 'none',
    ...(Object.keys(headers).length > 0
      ? {
          headers: Type.Object(
            Object.fromEntries(
              Object.entries(headers).map(([name, schema]) => [
                name,
                spec.idempotency === 'required' && name === 'idempotency-key' ? schema : Type.Optional(schema),
              ]),
            ),
          ),
        }
      : {}),
    ...(spec.schema.params === undefined ? {} : { params: spec.schema.params }),
    // A route that declares no query takes none: `?dry_run=true` must not be silently ignored.
    querystring: spec.schema.querystring ?? Type.Object({}, { additionalProperties: false }),
    ...(spec.schema.body === undefined ? {} : { body: spec.schema.body }),
    response: { [status]: spec.schema.response, '4xx': ErrorBody, '5xx': ErrorBody },
  }
}

function registerRoute(app: FastifyInstance, spec: RouteSpec, context: RouteContext): void {
  const { deps, state, admission, recordRefusedError } = context
  const { config, storage } = deps
  app.route({
    method: spec.method,
    url: spec.url,
    schema: routeSchema(spec),
    preValidation: async (request, reply) => {
      const current = state(request)
      if (spec.auth === 'session') {
        current.principal = await authenticateSession(storage.db, request.headers, request.cookies, current.now)
      } else if (spec.auth === 'app') {
        // The nonce's commit is owed, not awaited: the answer settles it (ADR 0013).
        current.principal = await storage.deferDurability(current.owed, (db) =>
          authenticateApp(
            db,
            config,
            {
              headers: request.headers,
              method: request.method,
              pathWithQuery: request.url,
              rawBody: current.rawBody,
            },
            current.now,
            spec.scope,
            deps.appAuthTokenResolver ?? null,
            (signing) => {
              current.signing = signing
            },
          ),
        )
        // Per-app rate limit: once the app is proven, before validation, idempotency and work.
        admission.throttle(current.principal, reply)
      }
      if (spec.schema.body === undefined && current.rawBody !== '') {
        throw new AppError('REQUEST_VALIDATION_FAILED', { field: 'body', message: 'This route takes no body' })
      }
    },
    handler: async (request, reply) => {
      const current = state(request)
      const status = spec.status ?? 200
      const input = {
        params: request.params as never,
        query: request.query as never,
        body: request.body as never,
        principal: current.principal as never,
        requestId: request.id,
        now: current.now,
        setCookie: (name: string, value: string, options: { maxAgeS: number; httpOnly: boolean }) => {
          reply.setCookie(name, value, {
            path: '/',
            maxAge: options.maxAgeS,
            httpOnly: options.httpOnly,
            sameSite: 'lax',
            secure: config.publicUrl.startsWith('https:'),
          })
        },
        setHeader: (name: string, value: string) => {
          reply.header(name, value)
        },
        clientAddress: request.ip,
      }
      const serialize = (data: unknown): string => {
        reply.code(status)
        return reply.serialize(data) as string
      }
      // Nothing leaves before every write the request made, or read uncommitted, is durable.
      const send = async (code: number, body: string) => {
        await current.owed.settle()
        return reply.code(code).type('application/json; charset=utf-8').send(body)
      }

      if (!isWrite(spec.method)) return send(status, serialize(await spec.handler({ ...input, db: storage.db })))
      const rawKey = request.headers['idempotency-key']
      const key = typeof rawKey === 'string' ? rawKey : undefined
      const mode = spec.idempotency ?? 'optional'
      if (mode === 'required' && key === undefined) {
        throw new AppError('IDEMPOTENCY_KEY_REQUIRED', { field: 'headers.idempotency-key' })
      }
      if (spec.ownTransactions === true) {
        // Such routes take no idempotency key: they must be safe to repeat by themselves. They
        // open their own transactions, so the nonce must be durable before they start.
        await current.owed.settle()
        return send(status, serialize(await spec.handler({ ...input, db: storage.db })))
      }
      /** The route's work in its transaction; `record` stores the answer in the same one. */
      const work = (record: (tx: Kysely<any>, text: string) => Promise<void>) =>
        storage.db.transaction().execute(async (tx) => {
          // Never commit work whose nonce or reservation (or what authentication read) was
          // rolled back (ADR 0013).
          current.owed.throwIfLost()
          const text = serialize(await spec.handler({ ...input, db: tx }))
          await record(tx, text)
          if (config.testMutantAckBeforeCommit) await acknowledgeBeforeCommit(reply, status, text)
          return text
        })
      if (mode === 'none' || key === undefined) {
        const body = await work(async () => undefined)
        return reply.sent ? reply : send(status, body)
      }
      checkIdempotencyKey(key)
      const idempotency: IdempotencyRequest = {
        principal: principalKey(current.principal),
        key,
        now: current.now,
        fingerprint: sha256Hex(`${request.method} ${request.url}\n${current.rawBody}`),
        ttlS: config.idempotencyTtlS,
        lockS: config.idempotencyLockS,
      }
      const reservation = await storage.deferDurability(current.owed, (db) => reserve(db, idempotency))
      if (reservation.kind === 'replay') {
        reply.header(headerNames.idempotentReplayed, 'true')
        return send(reservation.response.status, reservation.response.body)
      }
      try {
        const body = await work((tx, text) => complete(tx, idempotency, reservation.lockedAt, { status, body: text }))
        return reply.sent ? reply : send(status, body)
      } catch (error) {
        const appError = requestErrorToAppError(error)
        if (appError === null || appError.transient) {
          // Nothing committed: give the key back so a retry can run.
          await release(storage.db, idempotency, reservation.lockedAt)
          throw error
        }
        // Like Stripe, a request that began executing and failed for a lasting reason keeps
        // that failure: the same key answers the same way.
        const response = errorResponse(appError, request.id)
        const body = JSON.stringify(response.body)
        await recordRefusedError(request, appError)
        await complete(storage.db, idempotency, reservation.lockedAt, { status: response.status, body })
        return send(response.status, body)
      }
    },
  })
}

/**
 * The deliberately broken build of the test suite (BASEPLATE_TEST_MUTANT_ACK_BEFORE_COMMIT, refused
 * unless NODE_ENV=test): the answer leaves before the transaction commits, and the commit waits
 * 50 ms, as behind a slow disk, so that a kill at a random moment almost always lands in the gap.
 * A crash there loses a payment the client was told succeeded; test/reliability/crash.test.ts
 * must catch it doing so.
 */
async function acknowledgeBeforeCommit(reply: FastifyReply, status: number, body: string): Promise<void> {
  await reply.code(status).type('application/json; charset=utf-8').send(body)
  await new Promise((resolve) => setTimeout(resolve, mutantCommitDelayMs))
}

const mutantCommitDelayMs = 50

export type { FastifyInstance, FastifyReply }

/**
 * Fastify's logger, with its request serializer's fields but the URL's credential parameters
 * (an Alipay v2 client sends `app_auth_token` in the query) shown as fingerprints (ADR 0018).
 */
function loggerOptions(logger: AppDependencies['logger']): false | FastifyServerOptions['logger'] {
  if (logger === undefined || logger === false) return false
  return {
    ...(logger === true ? {} : logger),
    serializers: {
      req: (request: FastifyRequest) => ({
        method: request.method,
        url: maskUrl(request.url),
        version: [request.headers['accept-version']].flat()[0],
        host: request.host,
        remoteAddress: request.ip,
        remotePort: request.socket?.remotePort,
      }),
    },
  }
}
