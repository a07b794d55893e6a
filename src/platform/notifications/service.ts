/**
 * Webhook endpoints and the delivery log, for the console. Every operation starts from an
 * organisation the caller is a developer (or admin, or owner) of and an app of that
 * organisation; endpoints and deliveries are then looked up within that app only, so
 * another tenant's ids are simply not found.
 *
 * @example
 * const endpoint = await createEndpoint(tx, principal, organizationId, appId, { url }, now)
 * await sendTestEvent(tx, principal, organizationId, appId, endpoint.id, now)
 */
import net from 'node:net'
import type { Kysely } from 'kysely'
import { AppError } from '../../errors.js'
import type { UserPrincipal } from '../../server/route-kit.js'
import type { AppEnvironment } from '../../storage/tables.js'
import { appendAudit } from '../audit/audit-log.js'
import { getApp } from '../apps/service.js'
import { roles } from '../identity/service.js'
import { newId } from '../ids.js'
import { newDelivery } from './dispatcher.js'
import { endpointIdPrefix, notificationEventPublisher, testEventMessage, testEventType } from './events.js'
import type { DeliveryStatus, NotificationTables, WebhookDeliveriesTable, WebhookEndpointsTable } from './tables.js'

type Db = Kysely<NotificationTables>

/** Enabled endpoints per app: each event is POSTed to every one of them. */
export const endpointsEnabledMax = 16
export const urlLengthMax = 2048

export interface DeliveryRow extends WebhookDeliveriesTable {
  readonly event_type: string
  readonly url: string
}

export interface DeliveryQuery {
  readonly limit: number
  readonly starting_after?: string | undefined
  readonly status?: DeliveryStatus | undefined
  readonly endpoint_id?: string | undefined
  readonly event_id?: string | undefined
}

/** The app, once the caller is known to be a developer+ of its organisation. */
function requireApp(db: Kysely<any>, principal: UserPrincipal, organizationId: string, appId: string) {
  return getApp(db, principal, organizationId, appId, roles.developer)
}

async function findEndpoint(db: Kysely<any>, appId: string, endpointId: string): Promise<WebhookEndpointsTable> {
  const endpoint = await (db as Db)
    .selectFrom('webhook_endpoints')
    .selectAll()
    .where('id', '=', endpointId)
    .where('app_id', '=', appId)
    .executeTakeFirst()
  if (endpoint === undefined) throw new AppError('WEBHOOK_ENDPOINT_NOT_FOUND', { field: 'endpoint_id' })
  return endpoint
}

/**
 * Normalises an endpoint URL. Live apps need https and a DNS name: an IP literal or localhost
 * would let a tenant aim the platform's POSTs (and read the answers in its delivery log) at
 * the platform's own network. Sandbox apps may use http and any host, so that a developer can
 * receive on 127.0.0.1. Credentials in the URL would sit in the log in clear.
 */
export function checkEndpointUrl(text: string, environment: AppEnvironment): string {
  const invalid = (message: string) => new AppError('WEBHOOK_URL_INVALID', { field: 'url', message })
  if (text.length > urlLengthMax) throw invalid(`The URL is longer than ${urlLengthMax} characters`)
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw invalid('The URL is not an absolute URL')
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid('Webhook URLs use https (or http)')
  if (environment === 'live' && url.protocol !== 'https:') throw invalid('Endpoints of live apps must use https')
  const host = url.hostname.replace(/^\[|\]$/g, '')
  if (environment === 'live' && (net.isIP(host) !== 0 || host === 'localhost' || host.endsWith('.localhost'))) {
    throw invalid('Endpoints of live apps need a DNS name, not an IP address or localhost')
  }
  if (url.username !== '' || url.password !== '') throw invalid('Put no credentials in the URL')
  if (url.hash !== '' || text.includes('#')) throw invalid('Webhook URLs take no #fragment')
  return url.href
}

export async function createEndpoint(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  appId: string,
  input: { url: string },
  now: number,
): Promise<WebhookEndpointsTable> {
  const app = await requireApp(db, principal, organizationId, appId)
  const url = checkEndpointUrl(input.url, app.environment)
  const enabled = await (db as Db)
    .selectFrom('webhook_endpoints')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('app_id', '=', appId)
    .where('enabled', '=', 1)
    .executeTakeFirstOrThrow()
  if (Number(enabled.count) >= endpointsEnabledMax) {
    throw new AppError('WEBHOOK_ENDPOINT_LIMIT_REACHED', {
      message: `The app has ${enabled.count} enabled endpoints; the limit is ${endpointsEnabledMax}`,
    })
  }
  const row: WebhookEndpointsTable = {
    id: newId(endpointIdPrefix),
    app_id: appId,
    url,
    enabled: 1,
    created_at: now,
    disabled_at: null,
  }
  await (db as Db).insertInto('webhook_endpoints').values(row).execute()
  await appendAudit(
    db,
    { actor: principal.userId, action: 'webhook_endpoint.created', target: row.id, data: { app_id: appId, url } },
    now,
  )
  return row
}

export async function listEndpoints(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  appId: string,
  page: { limit: number; starting_after?: string | undefined },
): Promise<WebhookEndpointsTable[]> {
  await requireApp(db, principal, organizationId, appId)
  let select = (db as Db).selectFrom('webhook_endpoints').selectAll().where('app_id', '=', appId)
  if (page.starting_after !== undefined) select = select.where('id', '>', page.starting_after)
  return select
    .orderBy('id')
    .limit(page.limit + 1)
    .execute()
}

/**
 * Disables an endpoint for good: it receives no new events, and what was still waiting for
 * it is marked dead (a claim in flight loses its token, so its outcome is not recorded).
 */
export async function disableEndpoint(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  appId: string,
  endpointId: string,
  now: number,
): Promise<WebhookEndpointsTable> {
  await requireApp(db, principal, organizationId, appId)
  const endpoint = await findEndpoint(db, appId, endpointId)
  if (endpoint.enabled === 0) return endpoint
  await (db as Db)
    .updateTable('webhook_endpoints')
    .set({ enabled: 0, disabled_at: now })
    .where('id', '=', endpointId)
    .execute()
  await (db as Db)
    .updateTable('webhook_deliveries')
    .set({
      status: 'dead',
      next_attempt_at: null,
      locked_until: null,
      lock_token: null,
      last_error: 'The endpoint was disabled',
    })
    .where('endpoint_id', '=', endpointId)
    .where('status', 'in', ['pending', 'delivering'])
    .execute()
  await appendAudit(
    db,
    { actor: principal.userId, action: 'webhook_endpoint.disabled', target: endpointId, data: { app_id: appId } },
    now,
  )
  return { ...endpoint, enabled: 0, disabled_at: now }
}

function deliveries(db: Kysely<any>) {
  return (db as Db)
    .selectFrom('webhook_deliveries as d')
    .innerJoin('outbox_events as e', 'e.id', 'd.event_id')
    .innerJoin('webhook_endpoints as w', 'w.id', 'd.endpoint_id')
    .selectAll('d')
    .select(['e.type as event_type', 'w.url'])
}

/** The delivery log, newest first; `starting_after` is the last delivery id of the previous page. */
export async function listDeliveries(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  appId: string,
  query: DeliveryQuery,
): Promise<DeliveryRow[]> {
  await requireApp(db, principal, organizationId, appId)
  let select = deliveries(db).where('d.app_id', '=', appId)
  if (query.status !== undefined) select = select.where('d.status', '=', query.status)
  if (query.endpoint_id !== undefined) select = select.where('d.endpoint_id', '=', query.endpoint_id)
  if (query.event_id !== undefined) select = select.where('d.event_id', '=', query.event_id)
  if (query.starting_after !== undefined) {
    const cursor = await (db as Db)
      .selectFrom('webhook_deliveries')
      .select(['created_at', 'id'])
      .where('id', '=', query.starting_after)
      .where('app_id', '=', appId)
      .executeTakeFirst()
    if (cursor === undefined) throw new AppError('WEBHOOK_DELIVERY_NOT_FOUND', { field: 'starting_after' })
    select = select.where((eb) =>
      eb.or([
        eb('d.created_at', '<', cursor.created_at),
        eb.and([eb('d.created_at', '=', cursor.created_at), eb('d.id', '<', cursor.id)]),
      ]),
    )
  }
  return select
    .orderBy('d.created_at', 'desc')
    .orderBy('d.id', 'desc')
    .limit(query.limit + 1)
    .execute()
}

async function findDelivery(db: Kysely<any>, appId: string, deliveryId: string): Promise<DeliveryRow> {
  const row = await deliveries(db).where('d.id', '=', deliveryId).where('d.app_id', '=', appId).executeTakeFirst()
  if (row === undefined) throw new AppError('WEBHOOK_DELIVERY_NOT_FOUND', { field: 'delivery_id' })
  return row
}

/**
 * Puts a delivery back to pending, due now, with a fresh retry schedule, whatever its state
 * (dead and delivered included). The receiver gets the same event id again.
 */
export async function redeliver(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  appId: string,
  deliveryId: string,
  now: number,
): Promise<DeliveryRow> {
  await requireApp(db, principal, organizationId, appId)
  const delivery = await findDelivery(db, appId, deliveryId)
  const endpoint = await findEndpoint(db, appId, delivery.endpoint_id)
  if (endpoint.enabled === 0) throw new AppError('WEBHOOK_ENDPOINT_DISABLED', { field: 'delivery_id' })
  // A live claim means an attempt is on the wire; a second one beside it would race it.
  if (delivery.status === 'delivering' && delivery.locked_until !== null && delivery.locked_until > now) {
    throw new AppError('WEBHOOK_DELIVERY_IN_PROGRESS')
  }
  const reset = { status: 'pending' as const, attempts: 0, next_attempt_at: now, locked_until: null, lock_token: null }
  const updated = await (db as Db)
    .updateTable('webhook_deliveries')
    .set(reset)
    .where('id', '=', deliveryId)
    .where('status', '=', delivery.status)
    .where('attempts', '=', delivery.attempts)
    .executeTakeFirst()
  // A worker claimed or recorded it between the read and the write: say so rather than guess.
  if (updated.numUpdatedRows !== 1n) throw new AppError('WEBHOOK_DELIVERY_IN_PROGRESS')
  await appendAudit(
    db,
    {
      actor: principal.userId,
      action: 'webhook_delivery.redelivered',
      target: deliveryId,
      data: { app_id: appId, event_id: delivery.event_id, previous_status: delivery.status },
    },
    now,
  )
  return { ...delivery, ...reset }
}

/** Publishes a `webhook.test` event meant for one endpoint only, and its delivery, due now. */
export async function sendTestEvent(
  db: Kysely<any>,
  principal: UserPrincipal,
  organizationId: string,
  appId: string,
  endpointId: string,
  now: number,
): Promise<DeliveryRow> {
  const app = await requireApp(db, principal, organizationId, appId)
  const endpoint = await findEndpoint(db, appId, endpointId)
  if (endpoint.enabled === 0) throw new AppError('WEBHOOK_ENDPOINT_DISABLED', { field: 'endpoint_id' })
  const eventId = await notificationEventPublisher.emit(
    db,
    {
      type: testEventType,
      organizationId: app.organization_id,
      appId,
      payload: { endpoint_id: endpointId, message: testEventMessage },
    },
    now,
  )
  // Fanned out here, to this endpoint alone, in the same transaction: the dispatcher never sees it.
  await (db as Db).updateTable('outbox_events').set({ dispatched_at: now }).where('id', '=', eventId).execute()
  const delivery = newDelivery(eventId, endpoint, now)
  await (db as Db).insertInto('webhook_deliveries').values(delivery).execute()
  return { ...delivery, event_type: testEventType, url: endpoint.url }
}
