/**
 * The v2 gateway, `/gateway.do`: checks a request in the order a developer fixes problems
 * (what is missing, which app, how it is signed, whether the signature verifies, whether it is
 * fresh), runs the method, and answers in the signed envelope. Every answer is HTTP 200 and
 * every answer is signed, errors included, so `exec(…, { validateSign: true })` verifies them.
 *
 * @example
 * const { body } = await answerV2(deps, { rawQuery, rawBody, now })
 */
import type { AppEnvironment } from '../../storage/tables.js'
import { credentialsIn } from '../../platform/signing/masked.js'
import { PendingCommits } from '../../storage/group-commit.js'
import { checkTimestamp, findApp, principalFor, verifyAppSignature, verifyRsa2, type GatewayApp } from './auth.js'
import type { RefusalOfRequest } from '../../platform/audit/refusals.js'
import { AlipayError, gatewayCodes, gatewayRefusal, toAlipayError } from './errors.js'
import type { GatewayDeps } from './gateway-deps.js'
import { lookupMethod, methodsForScopes } from './methods.js'
import { bizReader, parseLocalTime } from './params.js'
import { isMethodName, readFormParameters, responseKey, v2Envelope, v2SigningString } from './protocol.js'

export interface V2Request {
  readonly rawQuery: string
  readonly rawBody: string
  readonly now: number
}

export interface V2Answer {
  readonly body: string
  /** A failure that is not the caller's: log it. */
  readonly unexpected: unknown
  /** A refused credential or right: audit it (ADR 0020). */
  readonly refusal: RefusalOfRequest | null
}

const urlLengthMax = 2048

function parseBizContent(text: string | undefined): Record<string, unknown> {
  if (text === undefined || text === '') return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new AlipayError('isv.invalid-parameter', 'biz_content is not valid JSON')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new AlipayError('isv.invalid-parameter', 'biz_content must be a JSON object')
  }
  return parsed as Record<string, unknown>
}

function checkProtocolParameters(params: ReadonlyMap<string, string>): void {
  const charset = params.get('charset')
  if (charset !== undefined && charset.toLowerCase() !== 'utf-8') throw new AlipayError('isv.invalid-charset')
  const format = params.get('format')
  if (format !== undefined && format.toUpperCase() !== 'JSON') throw new AlipayError('isv.invalid-format')
  const version = params.get('version')
  if (version === undefined || version === '') throw new AlipayError('isv.missing-version')
  if (version !== '1.0') throw new AlipayError('isv.invalid-version')
  if (params.has('app_cert_sn') || params.has('alipay_root_cert_sn')) throw new AlipayError('isv.invalid-cert-mode')
  if (params.has('encrypt_type')) throw new AlipayError('isv.invalid-encrypt-type')
}

/** Checks who is calling and how: the app, the signature, the protocol parameters, the time. */
async function authenticate(
  deps: GatewayDeps,
  params: ReadonlyMap<string, string>,
  app: GatewayApp,
  method: string,
  now: number,
) {
  const { db, config } = deps
  const signType = params.get('sign_type')
  if (signType === undefined || signType === '') throw new AlipayError('isv.missing-signature-type')
  if (signType !== 'RSA2') {
    throw new AlipayError(
      'isv.invalid-signature-type',
      signType === 'RSA'
        ? '无效的签名类型: sign_type RSA (SHA1withRSA) is refused; sign with RSA2 (SHA256withRSA)'
        : `无效的签名类型: ${signType.slice(0, 20)}; use RSA2`,
    )
  }
  const signature = params.get('sign')
  if (signature === undefined || signature === '') throw new AlipayError('isv.missing-signature')
  const spec = isMethodName(method) ? lookupMethod(method, deps.payment) : undefined
  if (spec === undefined) throw new AlipayError('isv.invalid-method', `不存在的方法名: ${method.slice(0, 128)}`)
  const dropEmpty = v2SigningString(params, false)
  const withEmpty = v2SigningString(params, true)
  verifyAppSignature(
    app,
    (publicKey) =>
      verifyRsa2(dropEmpty, signature, publicKey) ||
      (withEmpty !== dropEmpty && verifyRsa2(withEmpty, signature, publicKey)),
    () => dropEmpty,
    credentialsIn({ named: params, json: [params.get('biz_content')] }),
  )
  checkProtocolParameters(params)
  const timestamp = params.get('timestamp')
  if (timestamp === undefined || timestamp === '') throw new AlipayError('isv.missing-timestamp')
  checkTimestamp(
    parseLocalTime(timestamp, config.alipay.timezoneOffsetMinutes),
    now,
    config.alipay.timestampWindowS,
    timestamp,
  )
  // Methods that act for no merchant (the token exchanges) ignore an app_auth_token.
  const appAuthToken = spec.scope === undefined ? undefined : params.get('app_auth_token')
  const principal = await principalFor(db, app, appAuthToken, spec.scope, deps.resolver, now)
  return { spec, principal }
}

export async function answerV2(deps: GatewayDeps, request: V2Request): Promise<V2Answer> {
  const { now } = request
  let key = 'error_response'
  // Before the app is known, answers are signed with the sandbox key: the likeliest reader.
  let environment: AppEnvironment = 'sandbox'
  let inner: Record<string, unknown>
  let unexpected: unknown = null
  let refusal: RefusalOfRequest | null = null
  let claimedApp: string | null = null
  const owed = new PendingCommits()
  try {
    const { params, duplicate } = readFormParameters(request.rawQuery, request.rawBody)
    claimedApp = params.get('app_id') ?? null
    const method = params.get('method')
    if (isMethodName(method)) key = responseKey(method)
    if (duplicate !== null) throw new AlipayError('isv.invalid-parameter', `${duplicate} is given more than once`)
    if (method === undefined || method === '') throw new AlipayError('isv.missing-method')
    // One held connection for the app, its key, the signature check and the nonce (ADR 0013).
    const { spec, principal } = await deps.deferDurability(owed, async (db) => {
      const app = await findApp(db, params.get('app_id'), now)
      // Known as soon as the app is: even a signature failure is signed with its environment's key.
      environment = app.environment
      return authenticate({ ...deps, db }, params, app, method, now)
    })
    // Methods open their own transactions: the nonce must be durable before they start, so
    // that no work commits on a nonce that was rolled back.
    await owed.settle()
    const notifyUrl = params.get('notify_url')
    if (notifyUrl !== undefined && notifyUrl.length > urlLengthMax) throw new AlipayError('isv.invalid-notify-url')
    const result = await spec.run({
      db: deps.db,
      principal,
      now,
      biz: bizReader(parseBizContent(params.get('biz_content'))),
      notifyUrl,
      payment: spec.payment,
      resolver: deps.resolver,
      settings: deps.config.alipay,
      methodsForScopes,
    })
    const code = result.waiting === true ? '10003' : '10000'
    inner = { code, msg: gatewayCodes[code], ...result.fields }
  } catch (error) {
    const mapped = toAlipayError(error)
    if (mapped.unexpected) unexpected = error
    const failure = mapped.error
    refusal = gatewayRefusal(failure.subCode, claimedApp)
    inner = { code: failure.code, msg: gatewayCodes[failure.code], sub_code: failure.subCode, sub_msg: failure.message }
  }
  const innerJson = JSON.stringify(inner)
  const signature = await deps.signer.sign(environment, innerJson)
  return { body: v2Envelope(key, innerJson, signature), unexpected, refusal }
}
