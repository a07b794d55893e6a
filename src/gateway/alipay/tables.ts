/**
 * Row shapes of the gateway's own tables (migration `2026-11-26T00-00_alipay_gateway`). Times
 * are epoch milliseconds, as everywhere else.
 */
import type { AppEnvironment, AppsTable, OutboxEventsTable } from '../../storage/tables.js'

export interface AlipayTradeNotifyTable {
  trade_id: string
  app_id: string
  notify_url: string | null
  passback_params: string | null
  created_at: number
}

export interface AlipayAppSettingsTable {
  app_id: string
  notify_url: string | null
  updated_at: number
}

export type AlipayNotificationStatus = 'pending' | 'delivering' | 'delivered' | 'dead'

export interface AlipayNotificationsTable {
  /** Also the `notify_id` the receiver sees, the same on every retry. */
  id: string
  event_id: string
  app_id: string
  environment: AppEnvironment
  merchant_id: string
  auth_app_id: string
  trade_id: string
  notify_url: string
  /**
   * The notify URL's origin (scheme, host and port): with the app, the receiver whose share of
   * the delivery slots this notification takes (ADR 0021), so per-trade URLs of one server share
   * one cap. Null on rows that were finished before the column came, or queued by an older process.
   */
  receiver: string | null
  passback_params: string | null
  status: AlipayNotificationStatus
  attempts: number
  next_attempt_at: number | null
  locked_until: number | null
  lock_token: string | null
  last_status_code: number | null
  last_error: string | null
  last_attempt_at: number | null
  created_at: number
  delivered_at: number | null
}

export interface GatewayTables {
  alipay_trade_notify: AlipayTradeNotifyTable
  alipay_app_settings: AlipayAppSettingsTable
  alipay_notifications: AlipayNotificationsTable
  apps: AppsTable
  outbox_events: OutboxEventsTable
}
