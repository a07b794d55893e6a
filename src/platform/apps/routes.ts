import { Type } from '@sinclair/typebox'
import type { Kysely } from 'kysely'
import { AppError } from '../../errors.js'
import { defineRoute, type RouteSpec } from '../../server/route-kit.js'
import { Id, IsoTime, Name, Page, PageQuery, isoTime, pageSizeDefault, toPage } from '../../server/schemas.js'
import type { AppKeysTable, AppsTable, CoreTables } from '../../storage/tables.js'
import { requireMember } from '../identity/service.js'
import type { PlatformKey } from '../signing/platform-keys.js'
import type { AppEnvironment } from '../../storage/tables.js'
import { createApp, getApp, overlapSDefault, overlapSMax, registerKey, revokeKey } from './service.js'

const Environment = Type.Union([Type.Literal('sandbox'), Type.Literal('live')])
const App = Type.Object({
  id: Id('app'),
  organization_id: Id('org'),
  name: Type.String(),
  environment: Environment,
  created_at: IsoTime,
})
const AppKey = Type.Object({
  id: Id('key'),
  app_id: Id('app'),
  algorithm: Type.Union([Type.Literal('RSA'), Type.Literal('Ed25519')]),
  bits: Type.Integer(),
  public_key_pem: Type.String(),
  fingerprint: Type.String({ description: 'SHA-256 of the DER SPKI' }),
  created_at: IsoTime,
  not_after: Type.Union([IsoTime, Type.Null()], { description: 'When the key stops verifying' }),
})
const OrganizationParams = Type.Object({ organization_id: Id('org') })
const AppParams = Type.Object({ organization_id: Id('org'), app_id: Id('app') })

function appView(row: AppsTable) {
  return { ...row, created_at: isoTime(row.created_at) }
}

function keyView(row: AppKeysTable) {
  return {
    id: row.id,
    app_id: row.app_id,
    algorithm: row.algorithm,
    bits: row.bits,
    public_key_pem: row.public_key_pem,
    fingerprint: row.fingerprint,
    created_at: isoTime(row.created_at),
    not_after: row.not_after === null ? null : isoTime(row.not_after),
  }
}

export function appRoutes(platformKeys: () => ReadonlyMap<AppEnvironment, PlatformKey>): RouteSpec[] {
  const tags = ['apps']
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/organizations/:organization_id/apps',
      operationId: 'createApp',
      auth: 'session',
      tags,
      status: 201,
      summary: 'Create an app in the sandbox or live environment',
      schema: {
        params: OrganizationParams,
        body: Type.Object({ name: Name, environment: Environment }, { additionalProperties: false }),
        response: App,
      },
      handler: async ({ db, principal, params, body, now }) =>
        appView(await createApp(db, principal, params.organization_id, body, now)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/organizations/:organization_id/apps',
      operationId: 'listApps',
      auth: 'session',
      tags,
      summary: "List the organisation's apps",
      schema: { params: OrganizationParams, querystring: PageQuery, response: Page(App) },
      handler: async ({ db, principal, params, query }) => {
        await requireMember(db, principal, params.organization_id, 'read')
        const limit = query.limit ?? pageSizeDefault
        let select = (db as Kysely<CoreTables>)
          .selectFrom('apps')
          .selectAll()
          .where('organization_id', '=', params.organization_id)
        if (query.starting_after !== undefined) select = select.where('id', '>', query.starting_after)
        return toPage(
          await select
            .orderBy('id')
            .limit(limit + 1)
            .execute(),
          limit,
          appView,
        )
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/organizations/:organization_id/apps/:app_id',
      operationId: 'getApp',
      auth: 'session',
      tags,
      summary: 'Read an app',
      schema: { params: AppParams, response: App },
      handler: async ({ db, principal, params }) =>
        appView(await getApp(db, principal, params.organization_id, params.app_id)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/organizations/:organization_id/apps/:app_id/keys',
      operationId: 'registerAppKey',
      auth: 'session',
      tags,
      status: 201,
      summary: 'Register a public key (RSA 2048+ or Ed25519); earlier keys keep verifying for the overlap',
      schema: {
        params: AppParams,
        body: Type.Object(
          {
            public_key_pem: Type.String({ minLength: 1, maxLength: 16384 }),
            overlap_seconds: Type.Optional(
              Type.Integer({
                minimum: 0,
                maximum: overlapSMax,
                default: overlapSDefault,
                description: 'How long the previous key keeps verifying',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: AppKey,
      },
      handler: async ({ db, principal, params, body, now }) =>
        keyView(
          await registerKey(
            db,
            principal,
            params.organization_id,
            params.app_id,
            { publicKeyPem: body.public_key_pem, overlapS: body.overlap_seconds ?? overlapSDefault },
            now,
          ),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/organizations/:organization_id/apps/:app_id/keys',
      operationId: 'listAppKeys',
      auth: 'session',
      tags,
      summary: "List an app's keys, current and past",
      schema: { params: AppParams, response: Type.Object({ data: Type.Array(AppKey) }) },
      handler: async ({ db, principal, params }) => {
        await getApp(db, principal, params.organization_id, params.app_id)
        const rows = await (db as Kysely<CoreTables>)
          .selectFrom('app_keys')
          .selectAll()
          .where('app_id', '=', params.app_id)
          .orderBy('created_at', 'desc')
          .orderBy('id')
          .limit(100)
          .execute()
        return { data: rows.map(keyView) }
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/organizations/:organization_id/apps/:app_id/keys/:key_id/revoke',
      operationId: 'revokeAppKey',
      auth: 'session',
      tags,
      summary: 'Stop a key verifying, now',
      schema: {
        params: Type.Object({ organization_id: Id('org'), app_id: Id('app'), key_id: Id('key') }),
        response: AppKey,
      },
      handler: async ({ db, principal, params, now }) =>
        keyView(await revokeKey(db, principal, params.organization_id, params.app_id, params.key_id, now)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/platform-keys/:environment',
      operationId: 'getPlatformKey',
      auth: 'public',
      tags,
      summary: "The platform's public key for an environment; verify responses and webhooks with it",
      description:
        'Ed25519 (the default) signs native responses and webhooks. algorithm=RSA returns the RSA-2048 key ' +
        'that signs what the Alipay-compatible gateway sends: configure it as alipayPublicKey in alipay-sdk.',
      schema: {
        params: Type.Object({ environment: Type.String({ maxLength: 20 }) }),
        querystring: Type.Object(
          { algorithm: Type.Optional(Type.Union([Type.Literal('Ed25519'), Type.Literal('RSA')])) },
          { additionalProperties: false },
        ),
        response: Type.Object({
          environment: Environment,
          key_id: Type.String(),
          algorithm: Type.Union([Type.Literal('Ed25519'), Type.Literal('RSA')]),
          public_key_pem: Type.String(),
        }),
      },
      handler: async ({ params, query }) => {
        const key = platformKeys().get(params.environment as AppEnvironment)
        if (key === undefined) throw new AppError('PLATFORM_ENVIRONMENT_UNKNOWN', { field: 'params.environment' })
        if (query.algorithm === 'RSA') {
          return {
            environment: key.environment,
            key_id: key.rsa.keyId,
            algorithm: 'RSA' as const,
            public_key_pem: key.rsa.publicKeyPem,
          }
        }
        return {
          environment: key.environment,
          key_id: key.keyId,
          algorithm: 'Ed25519' as const,
          public_key_pem: key.publicKeyPem,
        }
      },
    }),
  ]
}
