/**
 * Row shapes of the notification tables (migration `2026-11-25T02-00_notifications`), and
 * the two columns that migration added to the outbox. Times are epoch milliseconds and
 * booleans 0/1 integers, as everywhere else.
 *
 * @example
 * const db = storage.db as unknown as Kysely<NotificationTables>
 * await db.selectFrom('webhook_deliveries').selectAll().where('status', '=', 'dead').execute()
 */
import type { AppsTable, OutboxEventsTable } from '../../storage/tables.js'

/**
 * pending: waiting for `next_attempt_at`; delivering: a worker holds it until `locked_until`;
 * delivered: a 2xx came back; dead: every attempt of the schedule failed (or the endpoint
 * was disabled). Redelivery puts any of them back to pending.
 */
export type DeliveryStatus = 'pending' | 'delivering' | 'delivered' | 'dead'

export interface WebhookEndpointsTable {
  id: string
  app_id: string
  url: string
  enabled: number
  created_at: number
  disabled_at: number | null
}

export interface WebhookDeliveriesTable {
  id: string
  event_id: string
  endpoint_id: string
  /** The endpoint's app, copied so that the delivery log is scoped by one indexed column. */
  app_id: string
  status: DeliveryStatus
  /** Attempts since the delivery was created or last redelivered. */
  attempts: number
  /** When the next attempt is due; while delivering, equal to `locked_until`. Null when final. */
  next_attempt_at: number | null
  locked_until: number | null
  /** Identifies the claim that holds the row, so a worker whose lease expired cannot record over another. */
  lock_token: string | null
  last_status_code: number | null
  last_error: string | null
  last_attempt_at: number | null
  created_at: number
  /** The last time an attempt succeeded (kept across a redelivery until the next success). */
  delivered_at: number | null
}

export interface NotificationTables {
  outbox_events: OutboxEventsTable & { app_id: string | null; dispatched_at: number | null }
  apps: AppsTable
  webhook_endpoints: WebhookEndpointsTable
  webhook_deliveries: WebhookDeliveriesTable
}
