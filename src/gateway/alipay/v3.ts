/**
 * The v3 RESTful gateway, `/v3/…`: the `ALIPAY-SHA256withRSA` authorization header (with a
 * nonce that may be used once), business parameters as a JSON body (or the query string of a
 * GET), the app auth token in `alipay-app-auth-token`. A success is HTTP 200 with the fields
 * as JSON, signed in `alipay-timestamp` / `alipay-nonce` / `alipay-signature`; a failure is
 * HTTP 4xx/5xx with `{code, message, links}`, which alipay-sdk raises as AlipayRequestError.
 *
 * @example
 * const answer = await answerV3(deps, { method: 'POST', url: '/v3/alipay/trade/query', headers, rawBody, now })
 */
import crypto from 'node:crypto'
import { requestCredentials } from '../../platform/signing/masked.js'
import type { AppEnvironment } from '../../storage/tables.js'
import { checkTimestamp, findApp, principalFor, recordNonce, verifyAppSignature, verifyRsa2 } from './auth.js'
import type { RefusalOfRequest } from '../../platform/audit/refusals.js'
import { AlipayError, gatewayRefusal, toAlipayError } from './errors.js'
import type { GatewayDeps } from './gateway-deps.js'
import { lookupMethod, methodsForScopes } from './methods.js'
import { bizReader } from './params.js'
import { parseV3Authorization, v3Method, v3ResponseSigningString, v3SigningString } from './protocol.js'

export interface V3Request {
  readonly method: string
  /** The request target exactly as received: what the client signed. */
  readonly url: string
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly rawBody: string
  readonly now: number
}

export interface V3Answer {
  readonly status: number
  readonly body: string
  readonly headers: Readonly<Record<string, string>>
  readonly unexpected: unknown
  /** A refused credential or right: audit it (ADR 0020). */
  readonly refusal: RefusalOfRequest | null
}

function header(request: V3Request, name: string): string | undefined {
  const value = request.headers[name]
  return Array.isArray(value) ? value[0] : value
}

function businessParameters(request: V3Request, query: string): Record<string, unknown> {
  const params: Record<string, unknown> = Object.fromEntries(new URLSearchParams(query))
  if (request.rawBody === '') return params
  let body: unknown
  try {
    body = JSON.parse(request.rawBody)
  } catch {
    throw new AlipayError('isv.invalid-parameter', 'The body is not valid JSON')
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new AlipayError('isv.invalid-parameter', 'The body must be a JSON object')
  }
  for (const name of Object.keys(body)) {
    if (name in params) throw new AlipayError('isv.invalid-parameter', `${name} is given in the query and the body`)
  }
  return { ...params, ...(body as Record<string, unknown>) }
}

/** The app id the request's authorization header names, if it can be read. */
function claimedAppOf(request: V3Request): string | null {
  try {
    return parseV3Authorization(header(request, 'authorization')).fields.get('app_id') ?? null
  } catch {
    return null
  }
}

/** Checks who is calling: the header, the app, the signature, the time and the nonce. */
async function authenticate(deps: GatewayDeps, request: V3Request) {
  const authorization = parseV3Authorization(header(request, 'authorization'))
  const app = await findApp(deps.db, authorization.fields.get('app_id'), request.now)
  if (authorization.fields.has('app_cert_sn') || header(request, 'alipay-root-cert-sn') !== undefined) {
    throw new AlipayError('isv.invalid-cert-mode')
  }
  const appAuthToken = header(request, 'alipay-app-auth-token')
  const signedString = v3SigningString({
    authString: authorization.authString,
    method: request.method,
    url: request.url,
    body: request.rawBody,
    appAuthToken,
  })
  verifyAppSignature(
    app,
    (publicKey) => verifyRsa2(signedString, authorization.signature, publicKey),
    () => signedString,
    requestCredentials({ appAuthToken, url: request.url, body: request.rawBody }),
  )
  const timestamp = authorization.fields.get('timestamp') ?? ''
  const windowS = deps.config.alipay.timestampWindowS
  checkTimestamp(/^\d{1,15}$/.test(timestamp) ? Number(timestamp) : null, request.now, windowS, timestamp)
  await recordNonce(deps.db, app.id, authorization.fields.get('nonce') ?? '', request.now, windowS)
  if (header(request, 'alipay-encrypt-type') !== undefined) throw new AlipayError('isv.invalid-encrypt-type')
  return { app, appAuthToken }
}

export async function answerV3(deps: GatewayDeps, request: V3Request): Promise<V3Answer> {
  let environment: AppEnvironment = 'sandbox'
  try {
    const queryAt = request.url.indexOf('?')
    const path = queryAt < 0 ? request.url : request.url.slice(0, queryAt)
    const name = v3Method(path)
    const spec = lookupMethod(name, deps.payment)
    if (spec === undefined)
      throw new AlipayError('isv.invalid-method', `不存在的方法名: ${request.method} ${path.slice(0, 200)}`)
    const { app, appAuthToken } = await authenticate(deps, request)
    environment = app.environment
    // Methods that act for no merchant (the token exchanges) ignore an app auth token.
    const actingToken = spec.scope === undefined ? undefined : appAuthToken
    const principal = await principalFor(deps.db, app, actingToken, spec.scope, deps.resolver, request.now)
    const biz = bizReader(businessParameters(request, queryAt < 0 ? '' : request.url.slice(queryAt + 1)))
    const result = await spec.run({
      db: deps.db,
      principal,
      now: request.now,
      biz,
      notifyUrl: biz.text('notify_url', { max: 2048 }),
      payment: spec.payment,
      resolver: deps.resolver,
      settings: deps.config.alipay,
      methodsForScopes,
    })
    const body = JSON.stringify(result.fields)
    const timestamp = String(request.now)
    const nonce = crypto.randomUUID()
    const signature = await deps.signer.sign(environment, v3ResponseSigningString(timestamp, nonce, body))
    return {
      status: 200,
      body,
      headers: { 'alipay-timestamp': timestamp, 'alipay-nonce': nonce, 'alipay-signature': signature },
      unexpected: null,
      refusal: null,
    }
  } catch (error) {
    const mapped = toAlipayError(error)
    const failure = mapped.error
    return {
      status: failure.status,
      body: JSON.stringify({ code: failure.subCode, message: failure.message, links: [] }),
      headers: {},
      unexpected: mapped.unexpected ? error : null,
      refusal: gatewayRefusal(failure.subCode, claimedAppOf(request)),
    }
  }
}
