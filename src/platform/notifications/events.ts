/**
 * The notification module's own event type. Like authorisation, notifications are a platform
 * service rather than a capability, so `webhook.test` is declared here and published through
 * the same outbox (same table, same schema check) with a publisher of its own; capability
 * publishers stay untouched.
 *
 * @example
 * await notificationEventPublisher.emit(tx, { type: 'webhook.test', organizationId, appId,
 *   payload: { endpoint_id, message: testEventMessage } }, now)
 */
import { Type, type TSchema } from '@sinclair/typebox'
import { Id } from '../../server/schemas.js'
import { createEventPublisher, type EventPublisher } from '../events/outbox.js'

export const endpointIdPrefix = 'we'
export const deliveryIdPrefix = 'whd'
export const testEventType = 'webhook.test'
export const testEventMessage = 'A test event from Baseplate: your endpoint receives and verifies webhooks.'

export const WebhookTestEvent = Type.Object({
  endpoint_id: Id(endpointIdPrefix),
  message: Type.String(),
})

export const notificationEvents = Object.freeze({
  /** Sent on request to one endpoint, to check that it receives and verifies webhooks. */
  [testEventType]: WebhookTestEvent,
} satisfies Record<string, TSchema>)

/** Checks payloads against {@link notificationEvents} and writes them to the outbox. */
export const notificationEventPublisher: EventPublisher = createEventPublisher(
  new Map(Object.entries(notificationEvents)),
)
