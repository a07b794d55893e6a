/**
 * Who is calling the gateway: the app, checked against its registered RSA public keys, and
 * the merchant it acts for when it presents an app auth token. Both protocol versions end
 * here, with the same principal the native API builds, so every service call is scoped the
 * same way.
 *
 * @example
 * const app = await findApp(db, params.app_id, now)
 * verifyAppSignature(app, (key) => verifyRsa2(text, sign, key), () => signedString, credentialsIn({ json: [biz] }))
 * const principal = await principalFor(db, app, params.app_auth_token, 'payment:trade', resolver, now)
 */
import crypto from 'node:crypto'
import type { Kysely } from 'kysely'
import { decodeBase64Strict } from '../../../sdk/src/protocol.js'
import { signingApp, type SigningApp } from '../../platform/apps/service.js'
import { cachedPublicKey } from '../../platform/apps/public-keys.js'
import { maskSecrets } from '../../platform/signing/masked.js'
import type { AppAuthTokenResolver } from '../../server/authenticate.js'
import type { AppPrincipal } from '../../server/route-kit.js'
import { isUniqueViolation } from '../../storage/database.js'
import type { CoreTables } from '../../storage/tables.js'
import { AlipayError } from './errors.js'

/** The calling app, with its keys that verify now (newest first). */
export type GatewayApp = SigningApp

const appIdPattern = /^app_[0-9a-z]{20}$/
const tokenLengthMax = 200

export async function findApp(db: Kysely<any>, appId: string | undefined, now: number): Promise<GatewayApp> {
  if (appId === undefined || appId === '') throw new AlipayError('isv.missing-app-id')
  if (!appIdPattern.test(appId)) throw new AlipayError('isv.invalid-app-id')
  const app = await signingApp(db, appId, now)
  if (app === undefined) throw new AlipayError('isv.invalid-app-id')
  return app
}

/**
 * SHA256withRSA over the UTF-8 text, canonical standard base64 signature; a malformed
 * signature (another alphabet, whitespace, stray bits) does not verify.
 */
export function verifyRsa2(text: string, signature: string, key: crypto.KeyObject): boolean {
  const bytes = decodeBase64Strict(signature)
  if (bytes === null) return false
  try {
    return crypto.createVerify('RSA-SHA256').update(text, 'utf8').verify(key, bytes)
  } catch {
    return false
  }
}

/**
 * Passes when `verify` accepts one of the app's active RSA keys (Ed25519 keys serve the native
 * API only). A failure echoes, in sub_msg, the string the gateway verified, each of `secrets`
 * shown as its fingerprint (`masked.ts`): comparing it with the string the client signed finds
 * nearly every signing mistake, and the error never hands a bearer token back.
 */
export function verifyAppSignature(
  app: GatewayApp,
  verify: (key: crypto.KeyObject) => boolean,
  signedString: () => string,
  secrets: readonly string[],
): void {
  const keys = app.keys.filter((key) => key.algorithm === 'RSA')
  if (keys.length === 0) throw new AlipayError('isv.missing-signature-key')
  if (keys.some((key) => verify(cachedPublicKey(key.id, key.public_key_pem)))) return
  throw new AlipayError(
    'isv.invalid-signature',
    '验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：' +
      maskSecrets(signedString(), secrets),
  )
}

/**
 * Refuses a client timestamp (epoch milliseconds) further than `windowS` from the server clock.
 */
export function checkTimestamp(at: number | null, now: number, windowS: number, received: string): void {
  if (at === null)
    throw new AlipayError('isv.invalid-timestamp', `非法的时间戳参数: cannot read ${JSON.stringify(received)}`)
  const skewS = Math.abs(now - at) / 1000
  if (skewS > windowS) {
    throw new AlipayError(
      'isv.invalid-timestamp',
      `非法的时间戳参数: ${received} is ${Math.round(skewS)} s from the server clock; at most ${windowS} s is accepted`,
    )
  }
}

/**
 * Records a v3 nonce, in its own committed write, before any work: a replay is refused even
 * when the first call failed. Kept a second past twice the window, so no timestamp still
 * accepted can outlive its nonce (the native API's rule, on the same table).
 */
export async function recordNonce(db: Kysely<any>, appId: string, nonce: string, now: number, windowS: number) {
  if (nonce.length < 8 || nonce.length > 64 || !/^[A-Za-z0-9_-]+$/.test(nonce)) {
    throw new AlipayError('isv.invalid-nonce', 'nonce must be 8-64 characters of A-Z a-z 0-9 _ -')
  }
  try {
    await (db as Kysely<CoreTables>)
      .insertInto('request_nonces')
      .values({ app_id: appId, nonce, expires_at: now + (2 * windowS + 1) * 1000 })
      .execute()
  } catch (error) {
    if (isUniqueViolation(error)) throw new AlipayError('isv.invalid-nonce')
    throw error
  }
}

/**
 * The principal of the call: the app itself, or the merchant behind `appAuthToken`, which
 * must have granted `scope` (when the method needs one).
 */
export async function principalFor(
  db: Kysely<any>,
  app: GatewayApp,
  appAuthToken: string | undefined,
  scope: string | undefined,
  resolver: AppAuthTokenResolver | null,
  now: number,
): Promise<AppPrincipal> {
  let actingFor: AppPrincipal['actingFor'] = null
  if (appAuthToken !== undefined && appAuthToken !== '') {
    if (appAuthToken.length > tokenLengthMax) throw new AlipayError('aop.invalid-app-auth-token')
    actingFor = resolver === null ? null : await resolver.resolve(db, app.id, appAuthToken, now)
    if (actingFor === null) throw new AlipayError('aop.invalid-app-auth-token')
    if (scope !== undefined && !actingFor.scopes.includes(scope)) {
      throw new AlipayError(
        'aop.invalid-app-auth-token-no-api',
        `商户未授权当前接口: this method needs the scope ${scope}, which the merchant has not granted`,
      )
    }
  }
  return {
    kind: 'app',
    appId: app.id,
    organizationId: app.organizationId,
    environment: app.environment,
    actingFor,
    tenantId: actingFor?.merchantId ?? app.organizationId,
  }
}
