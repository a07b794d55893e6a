/**
 * The JSON routes of merchant authorisation: the ISV's console (redirect URIs, who
 * authorised its app), the app's token endpoint, and the merchant's console (list, revoke).
 */
import { Type } from '@sinclair/typebox'
import { AppError } from '../../errors.js'
import { defineRoute, type RouteSpec } from '../../server/route-kit.js'
import { Id, Page } from '../../server/schemas.js'
import { listRedirectUris, setRedirectUris } from './redirect-uris.js'
import {
  Authorization,
  AuthorizationListQuery,
  CurrentAuthorization,
  RedirectUris,
  RedirectUrisInput,
  TokenGrant,
  TokenRequest,
} from './schema.js'
import {
  currentAuthorization,
  exchangeCode,
  listAppAuthorizations,
  listMerchantAuthorizations,
  refreshTokens,
  revokeAuthorization,
} from './service.js'

const AppParams = Type.Object({ organization_id: Id('org'), app_id: Id('app') })
const OrganizationParams = Type.Object({ organization_id: Id('org') })

/**
 * @example
 * const routes: RouteSpec[] = [...identityRoutes(config), ...authorizationRoutes()]
 */
export function authorizationRoutes(): RouteSpec[] {
  return [...isvRoutes(), ...tokenRoutes(), ...merchantRoutes()]
}

function isvRoutes(): RouteSpec[] {
  const tags = ['authorizations']
  return [
    defineRoute({
      method: 'PUT',
      url: '/v1/organizations/:organization_id/apps/:app_id/redirect-uris',
      operationId: 'setAppRedirectUris',
      auth: 'session',
      tags,
      summary: 'Replace the redirect URIs the consent page may send merchants back to (developer or above)',
      schema: { params: AppParams, body: RedirectUrisInput, response: RedirectUris },
      handler: async ({ db, principal, params, body, now }) => ({
        app_id: params.app_id,
        redirect_uris: await setRedirectUris(
          db,
          principal,
          params.organization_id,
          params.app_id,
          body.redirect_uris,
          now,
        ),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/organizations/:organization_id/apps/:app_id/redirect-uris',
      operationId: 'listAppRedirectUris',
      auth: 'session',
      tags,
      summary: "The app's registered redirect URIs",
      schema: { params: AppParams, response: RedirectUris },
      handler: async ({ db, principal, params }) => ({
        app_id: params.app_id,
        redirect_uris: await listRedirectUris(db, principal, params.organization_id, params.app_id),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/organizations/:organization_id/apps/:app_id/authorizations',
      operationId: 'listAppAuthorizations',
      auth: 'session',
      tags,
      summary: 'The merchants that authorised the app (developer or above)',
      schema: { params: AppParams, querystring: AuthorizationListQuery, response: Page(Authorization) },
      handler: ({ db, principal, params, query }) =>
        listAppAuthorizations(db, principal, params.organization_id, params.app_id, query),
    }),
  ]
}

function tokenRoutes(): RouteSpec[] {
  const tags = ['authorizations']
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/oauth/token',
      operationId: 'exchangeAppAuthToken',
      auth: 'app',
      tags,
      summary: 'Exchange an app_auth_code, or a refresh token, for an app auth token and a refresh token',
      description:
        'Like alipay.open.auth.token.app. The tokens are shown once. A code works once, for the app ' +
        'it was issued to; using it again revokes what it issued. Refreshing rotates both tokens. Takes no ' +
        'Idempotency-Key: a stored response would keep the tokens in clear.',
      // The revocation that answers a replayed code must commit although the call fails.
      idempotency: 'none',
      ownTransactions: true,
      schema: { body: TokenRequest, response: TokenGrant },
      handler: async ({ db, principal, body, now }) => {
        if (body.grant_type === 'authorization_code') {
          if (body.code === undefined) throw missing('code')
          return exchangeCode(db, principal, body.code, now)
        }
        if (body.refresh_token === undefined) throw missing('refresh_token')
        return refreshTokens(db, principal, body.refresh_token, now)
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/oauth/token/current',
      operationId: 'getCurrentAuthorization',
      auth: 'app',
      tags,
      summary: 'The authorisation behind the Baseplate-App-Auth-Token header: merchant, scopes, status',
      description:
        'Like alipay.open.auth.token.app.query. An invalid, expired or revoked token is refused ' +
        'with AUTH_APP_AUTH_TOKEN_INVALID.',
      schema: { response: CurrentAuthorization },
      handler: ({ db, principal }) => currentAuthorization(db, principal),
    }),
  ]
}

function merchantRoutes(): RouteSpec[] {
  const tags = ['authorizations']
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/organizations/:organization_id/authorizations',
      operationId: 'listMerchantAuthorizations',
      auth: 'session',
      tags,
      summary: 'The apps the merchant authorised, with app and service provider names (owner or admin)',
      schema: { params: OrganizationParams, querystring: AuthorizationListQuery, response: Page(Authorization) },
      handler: ({ db, principal, params, query }) =>
        listMerchantAuthorizations(db, principal, params.organization_id, query),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/organizations/:organization_id/authorizations/:authorization_id/revoke',
      operationId: 'revokeAuthorization',
      auth: 'session',
      tags,
      summary: 'Revoke an authorisation; its tokens stop working at once (owner or admin)',
      schema: {
        params: Type.Object({ organization_id: Id('org'), authorization_id: Id('authz') }),
        response: Authorization,
      },
      handler: ({ db, principal, params, now }) =>
        revokeAuthorization(db, principal, params.organization_id, params.authorization_id, now),
    }),
  ]
}

function missing(name: string): AppError {
  return new AppError('REQUEST_VALIDATION_FAILED', { field: `body.${name}`, message: `body.${name} is required` })
}
