/**
 * Wire shapes of merchant authorisation, snake_case like every Baseplate payload. The same
 * schemas validate requests, serialise responses, document the API and check event payloads.
 */
import { Type, type Static } from '@sinclair/typebox'
import { Id, IsoTime } from '../../server/schemas.js'

/** A limit on everything: an app registers at most this many redirect URIs. */
export const redirectUrisMax = 10
export const redirectUriLengthMax = 2000

export const Scopes = Type.Array(Type.String(), { description: 'Granted scopes, sorted' })

export const AuthorizationStatus = Type.Union([Type.Literal('active'), Type.Literal('revoked')])

export const Authorization = Type.Object({
  id: Id('authz'),
  app_id: Id('app'),
  app_name: Type.String(),
  isv_organization_id: Id('org'),
  isv_organization_name: Type.String(),
  merchant_id: Id('org'),
  merchant_name: Type.String(),
  scopes: Scopes,
  status: AuthorizationStatus,
  granted_by: Type.String({ description: 'The user who approved, or the actor of a sandbox grant' }),
  created_at: IsoTime,
  updated_at: IsoTime,
  revoked_at: Type.Union([IsoTime, Type.Null()]),
  revoke_reason: Type.Union([Type.Literal('merchant'), Type.Literal('code_reused'), Type.Null()], {
    description: 'merchant: revoked in the console; code_reused: the code it came from was replayed',
  }),
})
export type AuthorizationView = Static<typeof Authorization>

export const TokenGrant = Type.Object({
  authorization_id: Id('authz'),
  merchant_id: Id('org'),
  scopes: Scopes,
  app_auth_token: Type.String({ description: 'Shown once; send it as Baseplate-App-Auth-Token' }),
  app_refresh_token: Type.String({ description: 'Shown once; exchange it for new tokens before it expires' }),
  token_expires_at: IsoTime,
  refresh_expires_at: IsoTime,
})
export type TokenGrantView = Static<typeof TokenGrant>

export const TokenRequest = Type.Object(
  {
    grant_type: Type.Union([Type.Literal('authorization_code'), Type.Literal('refresh_token')]),
    code: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'With authorization_code' })),
    refresh_token: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'With refresh_token' })),
  },
  { additionalProperties: false },
)

export const CurrentAuthorization = Type.Object({
  ...Authorization.properties,
  token_expires_at: IsoTime,
})

export const RedirectUri = Type.String({ minLength: 1, maxLength: redirectUriLengthMax })

export const RedirectUris = Type.Object({
  app_id: Id('app'),
  redirect_uris: Type.Array(Type.String()),
})

export const RedirectUrisInput = Type.Object(
  {
    redirect_uris: Type.Array(RedirectUri, {
      maxItems: redirectUrisMax,
      description: `At most ${redirectUrisMax}; https, or http on 127.0.0.1, [::1] or localhost; matched exactly`,
    }),
  },
  { additionalProperties: false },
)

export const AuthorizationListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    starting_after: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    status: Type.Optional(AuthorizationStatus),
  },
  { additionalProperties: false },
)
export type AuthorizationListQueryInput = Static<typeof AuthorizationListQuery>

/** The payload of authorization.granted, .refreshed and .revoked: no secret, ever. */
export const AuthorizationEvent = Type.Object({
  id: Id('authz'),
  app_id: Id('app'),
  isv_organization_id: Id('org'),
  merchant_id: Id('org'),
  scopes: Scopes,
  status: AuthorizationStatus,
  actor: Type.String({ description: 'Who caused the change: a user, an app or the platform' }),
  at: IsoTime,
  revoke_reason: Type.Union([Type.Literal('merchant'), Type.Literal('code_reused'), Type.Null()]),
})
export type AuthorizationEventPayload = Static<typeof AuthorizationEvent>

/** The payload of authorization.approved: consent given, a code issued (never the code). */
export const ApprovalEvent = Type.Object({
  app_id: Id('app'),
  isv_organization_id: Id('org'),
  merchant_id: Id('org'),
  scopes: Scopes,
  approved_by: Id('user'),
  at: IsoTime,
  code_expires_at: IsoTime,
})
export type ApprovalEventPayload = Static<typeof ApprovalEvent>
