/**
 * The app-level gateway setting: the notify URL used for a trade whose request named none
 * (Alipay's console calls it the app's 应用网关 / notify address). Console routes, for a
 * developer, admin or owner of the app's organisation; another tenant's app is not found.
 *
 * @example
 * await setAlipaySettings(tx, principal, organizationId, appId, { notify_url: 'https://isv.example/notify' }, now)
 */
import { Type } from '@sinclair/typebox'
import type { Kysely } from 'kysely'
import { AppError } from '../../errors.js'
import { appendAudit } from '../../platform/audit/audit-log.js'
import { requireMember, roles } from '../../platform/identity/service.js'
import { checkEndpointUrl, urlLengthMax } from '../../platform/notifications/service.js'
import { defineRoute, type RouteSpec, type UserPrincipal } from '../../server/route-kit.js'
import { Id, IsoTime, isoTime } from '../../server/schemas.js'
import type { AppsTable } from '../../storage/tables.js'
import type { GatewayTables } from './tables.js'

const AlipaySettings = Type.Object({
  app_id: Id('app'),
  notify_url: Type.Union([Type.String(), Type.Null()], {
    description: 'Where Alipay-format notifications go when the request named no notify_url',
  }),
  updated_at: Type.Union([IsoTime, Type.Null()]),
})
const AlipaySettingsInput = Type.Object(
  { notify_url: Type.Union([Type.String({ minLength: 1, maxLength: urlLengthMax }), Type.Null()]) },
  { additionalProperties: false },
)
const AppParams = Type.Object({ organization_id: Id('org'), app_id: Id('app') })

async function requireApp(db: Kysely<any>, principal: UserPrincipal, organizationId: string, appId: string) {
  await requireMember(db, principal, organizationId, roles.developer)
  const app = await (db as Kysely<{ apps: AppsTable }>)
    .selectFrom('apps')
    .selectAll()
    .where('id', '=', appId)
    .where('organization_id', '=', organizationId)
    .executeTakeFirst()
  if (app === undefined) throw new AppError('APP_NOT_FOUND', { field: 'params.app_id' })
  return app
}

export async function getAlipaySettings(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  appId: string,
) {
  await requireApp(db, principal, organizationId, appId)
  const row = await (db as Kysely<GatewayTables>)
    .selectFrom('alipay_app_settings')
    .selectAll()
    .where('app_id', '=', appId)
    .executeTakeFirst()
  return {
    app_id: appId,
    notify_url: row?.notify_url ?? null,
    updated_at: row === undefined ? null : isoTime(row.updated_at),
  }
}

export async function setAlipaySettings(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  appId: string,
  input: { notify_url: string | null },
  now: number,
) {
  const app = await requireApp(db, principal, organizationId, appId)
  // The same rules as webhook URLs: live apps notify https URLs with a DNS name only.
  const notifyUrl = input.notify_url === null ? null : checkEndpointUrl(input.notify_url, app.environment)
  await (db as Kysely<GatewayTables>)
    .insertInto('alipay_app_settings')
    .values({ app_id: appId, notify_url: notifyUrl, updated_at: now })
    .onConflict((oc) => oc.column('app_id').doUpdateSet({ notify_url: notifyUrl, updated_at: now }))
    .execute()
  await appendAudit(
    db,
    { actor: principal.userId, action: 'alipay.settings_updated', target: appId, data: { notify_url: notifyUrl } },
    now,
  )
  return { app_id: appId, notify_url: notifyUrl, updated_at: isoTime(now) }
}

export function alipaySettingsRoutes(): RouteSpec[] {
  const tags = ['alipay-gateway']
  const url = '/v1/organizations/:organization_id/apps/:app_id/alipay-settings'
  return [
    defineRoute({
      method: 'GET',
      url,
      operationId: 'getAlipaySettings',
      auth: 'session',
      tags,
      summary: "The app's Alipay-compatible gateway settings (developer or above)",
      schema: { params: AppParams, response: AlipaySettings },
      handler: ({ db, principal, params }) => getAlipaySettings(db, principal, params.organization_id, params.app_id),
    }),
    defineRoute({
      method: 'PUT',
      url,
      operationId: 'setAlipaySettings',
      auth: 'session',
      tags,
      summary: 'Set the notify URL for Alipay-format notifications of trades that named none (developer or above)',
      schema: { params: AppParams, body: AlipaySettingsInput, response: AlipaySettings },
      handler: ({ db, principal, params, body, now }) =>
        setAlipaySettings(db, principal, params.organization_id, params.app_id, body, now),
    }),
  ]
}
