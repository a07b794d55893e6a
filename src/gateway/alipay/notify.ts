/**
 * Asynchronous notifications in Alipay's form (`notify_type=trade_status_sync`), a second
 * delivery format of the notification worker beside native webhooks.
 *
 * - **Which events.** A trade paid (`TRADE_SUCCESS`), closed (`TRADE_CLOSED`) or refunded
 *   (`TRADE_SUCCESS` with `refund_fee`, or `TRADE_CLOSED` once fully refunded), for trades
 *   whose request named a `notify_url`, or else whose app has one set
 *   (`PUT …/apps/{app_id}/alipay-settings`). The trade may have been made through the gateway
 *   or the native API: the notification follows the app's choice, not the protocol.
 * - **When.** Queued when the dispatcher fans events out, in its transaction, so each event
 *   is queued once; attempted right away, then after 4 m, 10 m, 10 m, 1 h, 2 h, 6 h and 15 h
 *   (8 attempts over about 25 h) until the receiver answers the plain text `success`.
 * - **How.** A form POST, signed RSA2 with the platform's RSA key of the app's environment,
 *   over the sorted `k=v` of every field but `sign` and `sign_type`, raw values, with no empty
 *   field sent, so that `checkNotifySignV2` (and `checkNotifySign`, when no value holds a `%`)
 *   verify it. `notify_id` is the same on every retry of a notification; `notify_time` is the
 *   time of the attempt. Beside Alipay's form, two unsigned headers name the notification and
 *   count its attempts (`baseplate-delivery-id`, `baseplate-delivery-attempt`), as on webhooks.
 *
 * @example
 * const format = alipayNotificationFormat({ storage, payment, platformKeys, settings: config.alipay })
 * startNotificationWorker({ storage, platformKeys, formats: [format] })
 */
import { sql, type Kysely, type Transaction } from 'kysely'
import type { PaymentServices } from '../../capabilities/payment/index.js'
import type { AlipayGatewayConfig } from '../../config.js'
import { assert } from '../../assert.js'
import { newId } from '../../platform/ids.js'
import type {
  DeliveryOwner,
  DeliverySlots,
  DispatchedEvent,
  NotificationFormat,
} from '../../platform/notifications/index.js'
import {
  anyDue,
  candidatesMax,
  chooseDue,
  claimDue,
  claimableFor,
  deliveryHeaderNames,
  isTimeout,
  startClaimed,
  type AttemptOutcome,
} from '../../platform/notifications/deliverer.js'
import type { PlatformKey } from '../../platform/signing/platform-keys.js'
import type { AppPrincipal } from '../../server/route-kit.js'
import type { Storage } from '../../storage/database.js'
import type { AppEnvironment } from '../../storage/tables.js'
import type { TradeView } from './method-kit.js'
import { formatAmount, formatIsoTime, formatTime } from './params.js'
import { notificationSigningString } from './protocol.js'
import { signInline } from './signer.js'
import type { AlipayNotificationsTable, GatewayTables } from './tables.js'
import { fundChannel, tradeStatus } from './trade-methods.js'

const minuteMs = 60_000
const hourMs = 60 * minuteMs
/** The wait after failed attempt n (index n - 1): Alipay's schedule. */
export const alipayRetryDelaysMs: readonly number[] = Object.freeze([
  4 * minuteMs,
  10 * minuteMs,
  10 * minuteMs,
  hourMs,
  2 * hourMs,
  6 * hourMs,
  15 * hourMs,
])
export const alipayAttemptsMax = alipayRetryDelaysMs.length + 1
export const notifyIdPrefix = 'ntf'
const timeoutMsDefault = 10_000
const leaseMarginMs = 30_000
const errorTextLengthMax = 500
const userAgent = 'Baseplate-Alipay-Notify/1'

const tradeEvents = new Set(['payment.trade.paid', 'payment.trade.closed'])
const refundEvent = 'payment.refund.succeeded'

interface RefundPayload {
  readonly trade_id: string
  readonly out_request_no: string
  readonly amount: number
  readonly trade_refunded_amount: number
  readonly created_at: string
}

export interface AlipayNotificationOptions {
  readonly storage: Pick<Storage, 'db' | 'dialect'>
  readonly payment: PaymentServices
  readonly platformKeys: ReadonlyMap<AppEnvironment, PlatformKey>
  readonly settings: AlipayGatewayConfig
  readonly timeoutMs?: number
}

function tradeIdOf(event: DispatchedEvent): string | null {
  if (!tradeEvents.has(event.type) && event.type !== refundEvent) return null
  const payload = JSON.parse(event.payload) as { id?: string; trade_id?: string }
  return (event.type === refundEvent ? payload.trade_id : payload.id) ?? null
}

/** Queues a notification for every trade event whose trade or app has a notify URL. */
async function fanOut(tx: Kysely<any>, events: readonly DispatchedEvent[], now: number): Promise<void> {
  const relevant = events.flatMap((event) => {
    const tradeId = event.app_id === null ? null : tradeIdOf(event)
    return tradeId === null ? [] : [{ event, tradeId, appId: event.app_id! }]
  })
  if (relevant.length === 0) return
  const db = tx as Kysely<GatewayTables>
  const tradeIds = [...new Set(relevant.map((item) => item.tradeId))]
  const appIds = [...new Set(relevant.map((item) => item.appId))]
  const perTrade = await db.selectFrom('alipay_trade_notify').selectAll().where('trade_id', 'in', tradeIds).execute()
  const perApp = await db.selectFrom('alipay_app_settings').selectAll().where('app_id', 'in', appIds).execute()
  const apps = await db
    .selectFrom('apps')
    .select(['id', 'organization_id', 'environment'])
    .where('id', 'in', appIds)
    .execute()
  const rows: AlipayNotificationsTable[] = []
  for (const { event, tradeId, appId } of relevant) {
    const trade = perTrade.find((row) => row.trade_id === tradeId)
    const url = trade?.notify_url ?? perApp.find((row) => row.app_id === appId)?.notify_url ?? null
    const app = apps.find((row) => row.id === appId)
    if (url === null || app === undefined) continue
    rows.push({
      id: newId(notifyIdPrefix),
      event_id: event.id,
      app_id: appId,
      environment: app.environment,
      merchant_id: event.organization_id,
      // The authorising merchant when the app acts for one; the app itself otherwise.
      auth_app_id: app.organization_id === event.organization_id ? appId : event.organization_id,
      trade_id: tradeId,
      notify_url: url,
      receiver: originOf(url),
      passback_params: trade?.passback_params ?? null,
      status: 'pending',
      attempts: 0,
      next_attempt_at: now,
      locked_until: null,
      lock_token: null,
      last_status_code: null,
      last_error: null,
      last_attempt_at: null,
      created_at: now,
      delivered_at: null,
    })
  }
  if (rows.length === 0) return
  await db
    .insertInto('alipay_notifications')
    .values(rows)
    .onConflict((oc) => oc.column('event_id').doNothing())
    .execute()
}

interface Claimed extends AlipayNotificationsTable {
  readonly event_type: string
  readonly event_payload: string
}

/**
 * The server a notify URL is delivered to, for the slots' caps: its origin, so that URLs which
 * differ only in path or query (one per trade, say) share one cap and one timeout limit.
 */
function originOf(notifyUrl: string): string {
  try {
    return new URL(notifyUrl).origin
  } catch {
    return notifyUrl
  }
}

/**
 * A notification's share of the slots (ADR 0021): its app's, and the receiving server's as this
 * app uses it, so an app that points its notify URL at another tenant's host cannot spend that
 * tenant's share or lower its limit. A row queued by a process older than the `receiver` column
 * (a rolling upgrade) counts by its URL, as before. `receiverKey` is the same key in SQL; they
 * must agree, or the claim would not skip a receiver at its cap (a test fails if they do not).
 */
const ownerOf = (row: {
  readonly receiver: string | null
  readonly notify_url: string
  readonly app_id: string
}): DeliveryOwner => ({
  receiver: `${row.app_id} ${row.receiver ?? row.notify_url}`,
  app: row.app_id,
})

const receiverKey = sql<string>`app_id || ' ' || coalesce(receiver, notify_url)`

async function claim(
  options: AlipayNotificationOptions,
  now: number,
  slots: DeliverySlots,
  leaseMs: number,
): Promise<{ claimed: Claimed[]; exhausted: number }> {
  if (!(await anyDue(options.storage.db, 'alipay_notifications', now))) return { claimed: [], exhausted: 0 }
  const token = newId('lock')
  const lockedUntil = now + leaseMs
  return options.storage.db.transaction().execute(async (transaction) => {
    const tx = transaction as unknown as Transaction<GatewayTables>
    const candidates = await tx
      .selectFrom('alipay_notifications')
      .select(['id', 'status', 'attempts', 'receiver', 'notify_url', 'app_id'])
      .where(sql<boolean>`status in ('pending', 'delivering')`)
      .where('next_attempt_at', '<=', now)
      .where(claimableFor(options.storage.dialect, receiverKey, slots))
      .orderBy('next_attempt_at')
      .limit(candidatesMax(slots))
      .$if(options.storage.dialect === 'postgres', (query) => query.forUpdate().skipLocked())
      .execute()
    const due = chooseDue(candidates, alipayAttemptsMax, slots, ownerOf)
    const { ids, exhausted } = await claimDue(tx, 'alipay_notifications', due, alipayAttemptsMax, {
      now,
      lockedUntil,
      token,
    })
    if (ids.length === 0) return { claimed: [], exhausted }
    const rows = await tx
      .selectFrom('alipay_notifications as n')
      .innerJoin('outbox_events as e', 'e.id', 'n.event_id')
      .selectAll('n')
      .select(['e.type as event_type', 'e.payload as event_payload'])
      .where('n.id', 'in', ids)
      .execute()
    assert(rows.length === ids.length, 'every claimed notification has its event')
    return { claimed: rows as Claimed[], exhausted }
  })
}

/** The notification's fields, unsigned: the trade as the event left it. */
async function fields(options: AlipayNotificationOptions, row: Claimed, now: number): Promise<Record<string, string>> {
  const offset = options.settings.timezoneOffsetMinutes
  let trade: TradeView
  let refund: RefundPayload | null = null
  if (row.event_type === refundEvent) {
    refund = JSON.parse(row.event_payload) as RefundPayload
    // What a refund event does not carry (order number, subject, payment time) never changes
    // once a trade is paid, so the trade as it is now supplies it.
    const principal = { kind: 'app', appId: row.app_id, tenantId: row.merchant_id, environment: row.environment }
    trade = await options.payment.trades.get(options.storage.db, principal as AppPrincipal, { id: row.trade_id }, now)
  } else {
    trade = JSON.parse(row.event_payload) as TradeView
  }
  const refunded = refund?.trade_refunded_amount ?? 0
  const status =
    refund === null ? tradeStatus(trade.status) : refunded >= trade.total_amount ? 'TRADE_CLOSED' : 'TRADE_SUCCESS'
  const total = formatAmount(trade.total_amount)
  const paid = trade.paid_at !== null
  const all: Record<string, string | null> = {
    notify_time: formatTime(now, offset),
    notify_type: 'trade_status_sync',
    notify_id: row.id,
    app_id: row.app_id,
    auth_app_id: row.auth_app_id,
    charset: 'utf-8',
    version: '1.0',
    sign_type: 'RSA2',
    trade_no: trade.id,
    out_trade_no: trade.out_trade_no,
    out_biz_no: refund?.out_request_no ?? null,
    buyer_id: trade.buyer_id,
    seller_id: trade.merchant_id,
    trade_status: status,
    total_amount: total,
    receipt_amount: paid ? total : null,
    invoice_amount: paid ? total : null,
    buyer_pay_amount: paid ? total : null,
    point_amount: paid ? '0.00' : null,
    refund_fee: refunded > 0 ? formatAmount(refunded) : null,
    subject: trade.subject,
    gmt_create: formatIsoTime(trade.created_at, offset),
    gmt_payment: formatIsoTime(trade.paid_at, offset),
    gmt_refund: refund === null ? null : formatIsoTime(refund.created_at, offset),
    gmt_close:
      refund !== null
        ? status === 'TRADE_CLOSED'
          ? formatIsoTime(refund.created_at, offset)
          : null
        : formatIsoTime(trade.closed_at, offset),
    fund_bill_list: paid ? JSON.stringify([{ amount: total, fundChannel: fundChannel(trade.channel) }]) : null,
    passback_params: row.passback_params,
  }
  // No empty field is ever sent: verifiers that sign `k=` and those that skip it then agree.
  return Object.fromEntries(
    Object.entries(all).filter((entry): entry is [string, string] => entry[1] !== null && entry[1] !== ''),
  )
}

async function attempt(
  options: AlipayNotificationOptions,
  row: Claimed,
  context: { now: number; fetch: typeof fetch },
  timeoutMs: number,
): Promise<AttemptOutcome> {
  const key = options.platformKeys.get(row.environment)
  assert(key !== undefined, `platform key for ${row.environment} is loaded`)
  let body: Record<string, string>
  try {
    body = await fields(options, row, context.now)
  } catch (error) {
    // Counted as a failed attempt, so it is retried on the schedule and visible in last_error.
    const message = `Could not build the notification: ${String(error)}`.slice(0, 500)
    return { ok: false, statusCode: null, error: message, timedOut: false }
  }
  body.sign = signInline(key.rsa.privateKey, notificationSigningString(body))
  try {
    const response = await context.fetch(row.notify_url, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
        'user-agent': userAgent,
        // Not Alipay's, and not signed: for the receiver's logs, as on native webhooks.
        [deliveryHeaderNames.deliveryId]: row.id,
        [deliveryHeaderNames.attempt]: String(row.attempts),
      },
      body: new URLSearchParams(body).toString(),
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    })
    const text = (await response.text()).slice(0, errorTextLengthMax)
    // Alipay's rule: only the plain text `success` ends the retries.
    if (response.status >= 200 && response.status < 300 && text.trim() === 'success') {
      return { ok: true, statusCode: response.status, error: null, timedOut: false }
    }
    const error = `HTTP ${response.status}: ${text.trim() || '(empty)'}`
    return { ok: false, statusCode: response.status, error, timedOut: false }
  } catch (error) {
    const timedOut = isTimeout(error)
    const cause =
      error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error)
    const message = timedOut ? `No response within ${timeoutMs} ms` : `Network error: ${cause}`
    return { ok: false, statusCode: null, error: message.slice(0, errorTextLengthMax), timedOut }
  }
}

async function record(
  options: AlipayNotificationOptions,
  row: Claimed,
  outcome: AttemptOutcome,
  now: number,
): Promise<void> {
  const final = outcome.ok || row.attempts >= alipayAttemptsMax
  const delay = alipayRetryDelaysMs[Math.min(row.attempts, alipayRetryDelaysMs.length) - 1]!
  await (options.storage.db as unknown as Kysely<GatewayTables>)
    .updateTable('alipay_notifications')
    .set({
      status: outcome.ok ? 'delivered' : final ? 'dead' : 'pending',
      next_attempt_at: final ? null : now + delay,
      locked_until: null,
      lock_token: null,
      last_status_code: outcome.statusCode,
      last_error: outcome.error,
      ...(outcome.ok ? { delivered_at: now } : {}),
    })
    .where('id', '=', row.id)
    .where('lock_token', '=', row.lock_token)
    .where('status', '=', 'delivering')
    .execute()
}

export function alipayNotificationFormat(options: AlipayNotificationOptions): NotificationFormat {
  const timeoutMs = options.timeoutMs ?? timeoutMsDefault
  return {
    name: 'alipay',
    fanOut,
    // Retiring rows counts as work done too: the worker goes on at once rather than sleep a poll.
    deliverDue: (context) =>
      startClaimed(context.slots, {
        claim: () => claim(options, context.now, context.slots, timeoutMs + leaseMarginMs),
        ownerOf,
        attempt: (row) => attempt(options, row, context, timeoutMs),
        record: (row, outcome) => record(options, row, outcome, context.clock.now()),
      }),
  }
}
