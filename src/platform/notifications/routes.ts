/**
 * Console routes for webhooks: an app's endpoints, its delivery log, redelivery and test
 * events. Session auth; the caller must be a developer, admin or owner of the app's
 * organisation. Ids of other tenants answer 404, like ids that do not exist.
 *
 * @example
 * const routes: RouteSpec[] = [...notificationRoutes()]
 */
import { Type } from '@sinclair/typebox'
import { defineRoute, type RouteSpec } from '../../server/route-kit.js'
import { Id, IsoTime, Page, PageQuery, isoTime, pageSizeDefault, pageSizeMax, toPage } from '../../server/schemas.js'
import { deliveryIdPrefix, endpointIdPrefix } from './events.js'
import {
  createEndpoint,
  disableEndpoint,
  listDeliveries,
  listEndpoints,
  redeliver,
  sendTestEvent,
  urlLengthMax,
  type DeliveryRow,
} from './service.js'
import type { WebhookEndpointsTable } from './tables.js'

const DeliveryStatus = Type.Union([
  Type.Literal('pending'),
  Type.Literal('delivering'),
  Type.Literal('delivered'),
  Type.Literal('dead'),
])
const NullableTime = Type.Union([IsoTime, Type.Null()])

const Endpoint = Type.Object({
  id: Id(endpointIdPrefix),
  app_id: Id('app'),
  url: Type.String(),
  enabled: Type.Boolean(),
  created_at: IsoTime,
  disabled_at: NullableTime,
})

const Delivery = Type.Object({
  id: Id(deliveryIdPrefix),
  event_id: Id('evt'),
  event_type: Type.String(),
  endpoint_id: Id(endpointIdPrefix),
  url: Type.String(),
  status: DeliveryStatus,
  attempts: Type.Integer({ description: 'Attempts since the delivery was created or last redelivered' }),
  next_attempt_at: Type.Union([IsoTime, Type.Null()], { description: 'Null once delivered or dead' }),
  last_attempt_at: NullableTime,
  last_status_code: Type.Union([Type.Integer(), Type.Null()], { description: 'Null after a network error' }),
  last_error: Type.Union([Type.String(), Type.Null()]),
  created_at: IsoTime,
  delivered_at: Type.Union([IsoTime, Type.Null()], { description: 'The last successful attempt' }),
})

const AppParams = Type.Object({ organization_id: Id('org'), app_id: Id('app') })
const EndpointParams = Type.Object({ organization_id: Id('org'), app_id: Id('app'), endpoint_id: Id(endpointIdPrefix) })
const DeliveryParams = Type.Object({ organization_id: Id('org'), app_id: Id('app'), delivery_id: Id(deliveryIdPrefix) })

const DeliveryQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: pageSizeMax, default: pageSizeDefault })),
    starting_after: Type.Optional(Id(deliveryIdPrefix)),
    status: Type.Optional(DeliveryStatus),
    endpoint_id: Type.Optional(Id(endpointIdPrefix)),
    event_id: Type.Optional(Id('evt')),
  },
  { additionalProperties: false },
)

const time = (ms: number | null) => (ms === null ? null : isoTime(ms))

function endpointView(row: WebhookEndpointsTable) {
  return {
    id: row.id,
    app_id: row.app_id,
    url: row.url,
    enabled: row.enabled === 1,
    created_at: isoTime(row.created_at),
    disabled_at: time(row.disabled_at),
  }
}

function deliveryView(row: DeliveryRow) {
  return {
    id: row.id,
    event_id: row.event_id,
    event_type: row.event_type,
    endpoint_id: row.endpoint_id,
    url: row.url,
    status: row.status,
    attempts: row.attempts,
    next_attempt_at: time(row.next_attempt_at),
    last_attempt_at: time(row.last_attempt_at),
    last_status_code: row.last_status_code,
    last_error: row.last_error,
    created_at: isoTime(row.created_at),
    delivered_at: time(row.delivered_at),
  }
}

export function notificationRoutes(): RouteSpec[] {
  const tags = ['webhooks']
  const base = '/v1/organizations/:organization_id/apps/:app_id'
  return [
    defineRoute({
      method: 'POST',
      url: `${base}/webhook-endpoints`,
      operationId: 'createWebhookEndpoint',
      auth: 'session',
      tags,
      status: 201,
      summary: "Register a URL that receives the app's events, signed (webhook-signature v1a)",
      schema: {
        params: AppParams,
        body: Type.Object(
          { url: Type.String({ minLength: 1, maxLength: urlLengthMax }) },
          { additionalProperties: false },
        ),
        response: Endpoint,
      },
      handler: async ({ db, principal, params, body, now }) =>
        endpointView(await createEndpoint(db, principal, params.organization_id, params.app_id, body, now)),
    }),
    defineRoute({
      method: 'GET',
      url: `${base}/webhook-endpoints`,
      operationId: 'listWebhookEndpoints',
      auth: 'session',
      tags,
      summary: "List the app's webhook endpoints, enabled and disabled",
      schema: { params: AppParams, querystring: PageQuery, response: Page(Endpoint) },
      handler: async ({ db, principal, params, query }) => {
        const limit = query.limit ?? pageSizeDefault
        const rows = await listEndpoints(db, principal, params.organization_id, params.app_id, {
          limit,
          starting_after: query.starting_after,
        })
        return toPage(rows, limit, endpointView)
      },
    }),
    defineRoute({
      method: 'POST',
      url: `${base}/webhook-endpoints/:endpoint_id/disable`,
      operationId: 'disableWebhookEndpoint',
      auth: 'session',
      tags,
      summary: 'Stop sending to an endpoint; deliveries still waiting for it become dead',
      schema: { params: EndpointParams, response: Endpoint },
      handler: async ({ db, principal, params, now }) =>
        endpointView(
          await disableEndpoint(db, principal, params.organization_id, params.app_id, params.endpoint_id, now),
        ),
    }),
    defineRoute({
      method: 'POST',
      url: `${base}/webhook-endpoints/:endpoint_id/test`,
      operationId: 'sendWebhookTestEvent',
      auth: 'session',
      tags,
      status: 202,
      summary: 'Send a webhook.test event to this endpoint only',
      schema: { params: EndpointParams, response: Delivery },
      handler: async ({ db, principal, params, now }) =>
        deliveryView(
          await sendTestEvent(db, principal, params.organization_id, params.app_id, params.endpoint_id, now),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: `${base}/webhook-deliveries`,
      operationId: 'listWebhookDeliveries',
      auth: 'session',
      tags,
      summary: 'The delivery log, newest first: status, attempts, last response and next attempt',
      schema: { params: AppParams, querystring: DeliveryQuery, response: Page(Delivery) },
      handler: async ({ db, principal, params, query }) => {
        const limit = query.limit ?? pageSizeDefault
        const rows = await listDeliveries(db, principal, params.organization_id, params.app_id, { ...query, limit })
        return toPage(rows, limit, deliveryView)
      },
    }),
    defineRoute({
      method: 'POST',
      url: `${base}/webhook-deliveries/:delivery_id/redeliver`,
      operationId: 'redeliverWebhook',
      auth: 'session',
      tags,
      status: 202,
      summary: 'Send a delivery again now, with a fresh retry schedule, whatever its status',
      schema: { params: DeliveryParams, response: Delivery },
      handler: async ({ db, principal, params, now }) =>
        deliveryView(await redeliver(db, principal, params.organization_id, params.app_id, params.delivery_id, now)),
    }),
  ]
}
