/**
 * Notifications: signed webhooks from the outbox. The worker fans events out into
 * deliveries and delivers them with retries; the routes manage endpoints and the delivery
 * log. Receivers verify with `verifyWebhook` from `sdk/src/webhooks.ts`.
 *
 * @example
 * import { startNotificationWorker, notificationRoutes } from './platform/notifications/index.js'
 * const worker = startNotificationWorker({ storage, platformKeys })
 */
export {
  attemptsMaxDefault,
  batchSizeMaxDefault,
  deliveriesInFlightMaxDefault,
  deliveryTimeoutMsDefault,
  appShareOfSlots,
  receiverShareOfAppShare,
  retryDelaysMsDefault,
  retryDelayMs,
  startNotificationWorker,
  type NotificationFormat,
  type NotificationWorker,
  type NotificationWorkerOptions,
  type NotificationWorkerSettings,
} from './worker.js'
export { notificationRoutes } from './routes.js'
export { notificationEvents, testEventType } from './events.js'
export { deliveryHeaderNames, webhookBody } from './deliverer.js'
export { DeliverySlots, type DeliveryOwner } from './slots.js'
export type { DispatchedEvent, FanOut } from './dispatcher.js'
export type { DeliveryStatus, NotificationTables, WebhookDeliveriesTable, WebhookEndpointsTable } from './tables.js'
