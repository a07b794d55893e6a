/**
 * `alipay.open.auth.token.app` and `.query`: the app-to-app authorisation, on the very
 * functions behind `POST /v1/oauth/token` and `GET /v1/oauth/token/current`. Alipay's
 * `user_id` and `auth_app_id` (the authorising merchant) are the merchant's organisation id.
 */
import type { TokenGrantView } from '../../platform/authorization/index.js'
import { currentAuthorization, exchangeCode, refreshTokens } from '../../platform/authorization/service.js'
import { AlipayError } from './errors.js'
import type { MethodContext, MethodSpec } from './method-kit.js'
import { formatIsoTime } from './params.js'

function secondsUntil(iso: string, now: number): number {
  return Math.max(0, Math.floor((Date.parse(iso) - now) / 1000))
}

function grantFields(grant: TokenGrantView, now: number) {
  const token = {
    app_auth_token: grant.app_auth_token,
    app_refresh_token: grant.app_refresh_token,
    auth_app_id: grant.merchant_id,
    user_id: grant.merchant_id,
    expires_in: secondsUntil(grant.token_expires_at, now),
    re_expires_in: secondsUntil(grant.refresh_expires_at, now),
  }
  // Alipay answers both the (deprecated) top-level fields and the batch list.
  return { ...token, tokens: [token] }
}

async function tokenApp(context: MethodContext) {
  const { biz, db, principal, now } = context
  const grantType = biz.requiredText('grant_type', 32)
  if (grantType === 'authorization_code') {
    const code = biz.text('code', { required: true, max: 200 })!
    return { fields: grantFields(await exchangeCode(db, principal, code, now), now) }
  }
  if (grantType === 'refresh_token') {
    const refreshToken = biz.text('refresh_token', { required: true, max: 200 })!
    return { fields: grantFields(await refreshTokens(db, principal, refreshToken, now), now) }
  }
  throw new AlipayError('isv.invalid-parameter', 'grant_type must be authorization_code or refresh_token')
}

async function tokenAppQuery(context: MethodContext) {
  const { biz, db, principal, now } = context
  const token = biz.requiredText('app_auth_token', 200)
  const actingFor = context.resolver === null ? null : await context.resolver.resolve(db, principal.appId, token, now)
  if (actingFor === null) throw new AlipayError('isv.invalid-app-auth-token')
  const view = await currentAuthorization(db, { ...principal, actingFor, tenantId: actingFor.merchantId })
  const offset = context.settings.timezoneOffsetMinutes
  return {
    fields: {
      user_id: view.merchant_id,
      auth_app_id: view.merchant_id,
      expires_in: secondsUntil(view.token_expires_at, now),
      auth_methods: context.methodsForScopes(view.scopes),
      auth_start: formatIsoTime(view.created_at, offset),
      auth_end: formatIsoTime(view.token_expires_at, offset),
      status: view.status === 'active' ? 'valid' : 'invalid',
      is_by_app_auth: true,
    },
  }
}

export const tokenMethods: Readonly<Record<string, MethodSpec>> = {
  'alipay.open.auth.token.app': { run: tokenApp },
  'alipay.open.auth.token.app.query': { run: tokenAppQuery },
}
