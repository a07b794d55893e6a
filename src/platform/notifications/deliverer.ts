/**
 * Delivery: claim due deliveries, POST each signed body, record the outcome.
 *
 * A claim is a short transaction that moves due rows to `delivering` with a lease
 * (`locked_until`) and a fresh `lock_token`; the HTTP calls happen after it commits. On
 * PostgreSQL the claim's `FOR UPDATE SKIP LOCKED` lets any number of workers, in any number
 * of processes, share the queue without waiting on each other or taking the same row. A
 * worker that dies leaves its rows `delivering`; once the lease passes they are due again.
 * Outcomes are recorded only under the claim's token, so a worker that outlived its lease
 * cannot overwrite what the worker that re-claimed the row recorded.
 *
 * @example
 * const attempted = await deliverDue(storage, { ...limits, now: clock.now(), clock, fetch, platformKeys })
 */
import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely'
import { webhookHeaderNames, signWebhook } from '../../../sdk/src/webhooks.js'
import { assert } from '../../assert.js'
import { isoTime } from '../../server/schemas.js'
import type { DialectName, Storage } from '../../storage/database.js'
import { prepared } from '../../storage/prepared.js'
import type { AppEnvironment } from '../../storage/tables.js'
import { newId, type Clock } from '../ids.js'
import type { PlatformKey } from '../signing/platform-keys.js'
import type { DeliveryOwner, DeliverySlots } from './slots.js'
import type { NotificationTables } from './tables.js'

/** Informational headers beside the signed ones; they help receivers read their own logs. */
export const deliveryHeaderNames = {
  deliveryId: 'baseplate-delivery-id',
  attempt: 'baseplate-delivery-attempt',
} as const

const userAgent = 'Baseplate-Webhooks/1'
/** How much of a failing response's body the delivery log keeps. */
const errorTextLengthMax = 500

export interface DeliverOptions {
  readonly now: number
  readonly clock: Clock
  readonly fetch: typeof fetch
  readonly platformKeys: ReadonlyMap<AppEnvironment, PlatformKey>
  /** The stage's attempts in flight: a claim takes what they leave free, within the receiver's and app's caps. */
  readonly slots: DeliverySlots
  readonly deliveryTimeoutMs: number
  /** How long a claim holds its rows: longer than an attempt can take. */
  readonly leaseMs: number
  readonly attemptsMax: number
  /** Milliseconds to wait after failed attempt n (1-based) before attempt n + 1. */
  readonly retryDelayMs: (attempt: number) => number
}

interface Claimed {
  readonly id: string
  readonly attempts: number
  readonly lock_token: string
  readonly endpoint_id: string
  readonly app_id: string
  readonly event_id: string
  readonly type: string
  readonly event_created_at: number
  readonly payload: string
  readonly url: string
  readonly enabled: number
  readonly environment: AppEnvironment
}

/** What one attempt came to; both delivery queues record it. */
export interface AttemptOutcome {
  readonly ok: boolean
  readonly statusCode: number | null
  readonly error: string | null
  /** No answer within the timeout: the receiver held its slot all that time. */
  readonly timedOut: boolean
}

/** Whether a failed fetch was cut short by its timeout. */
export function isTimeout(error: unknown): boolean {
  const name = (error as { name?: unknown } | null | undefined)?.name
  return name === 'TimeoutError' || name === 'AbortError'
}

/**
 * One step of a delivery queue (native webhooks, Alipay notifications): claims for the free
 * slots, then starts each claimed delivery in its slot without waiting for it. An attempt tells
 * the slots what it learnt of its receiver before its outcome is recorded, as the record may
 * fail. Returns how many it started, plus those the claim retired.
 */
export async function startClaimed<T extends { readonly id: string }>(
  slots: DeliverySlots,
  queue: {
    readonly claim: () => Promise<{ readonly claimed: readonly T[]; readonly exhausted: number }>
    readonly ownerOf: (row: T) => DeliveryOwner
    readonly attempt: (row: T) => Promise<AttemptOutcome>
    readonly record: (row: T, outcome: AttemptOutcome) => Promise<unknown>
  },
): Promise<number> {
  if (slots.free === 0) return 0
  const { claimed, exhausted } = await queue.claim()
  for (const row of claimed) {
    slots.start({ id: row.id, ...queue.ownerOf(row) }, async (report) => {
      const outcome = await queue.attempt(row)
      report({ answered: outcome.statusCode !== null, timedOut: outcome.timedOut })
      await queue.record(row, outcome)
    })
  }
  return claimed.length + exhausted
}

/** The claim a worker puts on the rows it will attempt. */
export interface Claim {
  readonly now: number
  readonly lockedUntil: number
  readonly token: string
}

/**
 * Marks claimed rows of a delivery queue (native webhooks, Alipay notifications) as being
 * attempted: counted at claim time, so a delivery that keeps crashing workers still runs out;
 * due again when the claim lapses, so a dead worker's rows are picked up.
 */
async function markClaimed(
  tx: Transaction<any>,
  table: DeliveryQueue,
  ids: readonly string[],
  claim: Claim,
): Promise<void> {
  await tx
    .updateTable(table)
    .set((eb: any) => ({
      status: 'delivering',
      attempts: eb('attempts', '+', 1),
      locked_until: claim.lockedUntil,
      next_attempt_at: claim.lockedUntil,
      lock_token: claim.token,
      last_attempt_at: claim.now,
    }))
    .where('id', 'in', ids)
    .execute()
}

/** What a delivery that ran out of attempts inside a dead worker is left with in the log. */
const lastAttemptLostError = 'No outcome: the worker stopped during the last attempt'

/** A due row of a delivery queue, as the claim step reads it. */
export interface DueRow {
  readonly id: string
  readonly status: string
  readonly attempts: number
}

/** Whether a due row's last attempt died with its worker and was its last allowed one. */
function isExhausted(row: DueRow, attemptsMax: number): boolean {
  return row.status === 'delivering' && row.attempts >= attemptsMax
}

/**
 * Due rows a claim reads for `slots`: at least twice what is free, so that a receiver reaching
 * its cap within the read does not leave the rest of the free slots empty until the next claim.
 * Rounded up to a power of two: the limit is written into the SQL text (sqlite-compiler.ts), so
 * this keeps the texts, and SQLite's prepared statements, to a handful.
 */
export function candidatesMax(slots: DeliverySlots): number {
  return 2 ** Math.ceil(Math.log2(slots.free * 2))
}

/**
 * `column` (a column name, or an SQL expression) is none of `values`, in SQL whose text is the
 * same for every list, so that a claim stays one prepared statement however many receivers are
 * saturated or deliveries in flight: the list is one bound parameter (a JSON array on SQLite, an
 * array on PostgreSQL).
 */
export function notAmong(
  dialect: DialectName,
  column: string | RawBuilder<string>,
  values: readonly string[],
): RawBuilder<boolean> {
  const value = typeof column === 'string' ? sql.ref(column) : column
  return dialect === 'postgres'
    ? sql<boolean>`${value} <> all(${[...values]}::text[])`
    : sql<boolean>`${value} not in (select value from json_each(${JSON.stringify(values)}))`
}

/**
 * A claim's filter for `slots` (ADR 0021): no row of a receiver or an app at its cap, and none
 * of the deliveries the stage has in flight, even once their lease has run out.
 */
export function claimableFor(
  dialect: DialectName,
  receiverColumn: 'endpoint_id' | RawBuilder<string>,
  slots: DeliverySlots,
): RawBuilder<boolean> {
  const { receivers, apps } = slots.saturated()
  const freeReceivers = notAmong(dialect, receiverColumn, receivers)
  const freeApps = notAmong(dialect, 'app_id', apps)
  return sql<boolean>`${freeReceivers} and ${freeApps} and ${notAmong(dialect, 'id', slots.inFlightIds())}`
}

/**
 * Of a claim's candidate rows (in queue order), those to take now: every row to retire (it
 * needs no slot), and as many of the others as the slots have room for, within each
 * receiver's and app's cap ({@link DeliverySlots.pick}).
 */
export function chooseDue<T extends DueRow>(
  candidates: readonly T[],
  attemptsMax: number,
  slots: DeliverySlots,
  ownerOf: (row: T) => DeliveryOwner,
): T[] {
  const retiring = candidates.filter((row) => isExhausted(row, attemptsMax))
  const attemptable = candidates.filter((row) => !isExhausted(row, attemptsMax))
  return [...retiring, ...slots.pick(attemptable, ownerOf)]
}

type DeliveryQueue = 'webhook_deliveries' | 'alipay_notifications'

/** A webhook's share of the slots: its endpoint's, and its app's. */
const webhookOwner = (row: { readonly endpoint_id: string; readonly app_id: string }): DeliveryOwner => ({
  receiver: row.endpoint_id,
  app: row.app_id,
})

const dueProbe = (table: DeliveryQueue) =>
  prepared((db: Kysely<any>, p: { now: number }) =>
    db
      .selectFrom(table)
      .select('id')
      // Literal, not bound, as in the claims: both planners then match the partial index of due rows.
      .where(sql<boolean>`status in ('pending', 'delivering')`)
      .where('next_attempt_at', '<=', p.now)
      // Ordered as the claims are, so that both planners read the partial index, not the table.
      .orderBy('next_attempt_at')
      .limit(1),
  )
const dueProbes = {
  webhook_deliveries: dueProbe('webhook_deliveries'),
  alipay_notifications: dueProbe('alipay_notifications'),
}

/**
 * Whether a delivery queue has a row due, rows whose attempt died with its worker included:
 * one plain read. Most worker steps find nothing, and a claim that finds nothing still costs a
 * transaction, three round trips on PostgreSQL. A row that falls due just after the read waits
 * for the next step, as it would have had it fallen due just after the claim.
 */
export async function anyDue(db: Kysely<any>, table: DeliveryQueue, now: number): Promise<boolean> {
  return (await dueProbes[table].first(db, { now })) !== undefined
}

/**
 * The part of a claim both delivery queues share. A due row still `delivering` lost its
 * attempt with its worker (the lease lapsed): that attempt counts as failed, and if it was the
 * last allowed one the row is made `dead` here instead of being claimed again — otherwise a
 * delivery that crashes every worker trying it would loop one lease after another. The other
 * rows are marked claimed. Returns the claimed ids and how many rows were retired.
 */
export async function claimDue(
  tx: Transaction<any>,
  table: DeliveryQueue,
  due: readonly DueRow[],
  attemptsMax: number,
  claim: Claim,
): Promise<{ ids: string[]; exhausted: number }> {
  const exhausted = due.filter((row) => isExhausted(row, attemptsMax)).map((row) => row.id)
  if (exhausted.length > 0) {
    await tx
      .updateTable(table)
      .set({
        status: 'dead',
        next_attempt_at: null,
        locked_until: null,
        lock_token: null,
        last_status_code: null,
        last_error: lastAttemptLostError,
      })
      .where('id', 'in', exhausted)
      .execute()
  }
  const ids = due.filter((row) => !exhausted.includes(row.id)).map((row) => row.id)
  if (ids.length > 0) await markClaimed(tx, table, ids, claim)
  return { ids, exhausted: exhausted.length }
}

/**
 * Claims due deliveries for the slots that are free and starts their attempts in them, without
 * waiting for the attempts (`options.slots` tracks them). Returns how many it started, plus
 * those it found dead (see {@link claim}).
 */
export function deliverDue(storage: Pick<Storage, 'db' | 'dialect'>, options: DeliverOptions): Promise<number> {
  return startClaimed(options.slots, {
    claim: () => claim(storage, options),
    ownerOf: webhookOwner,
    attempt: (delivery) => attempt(delivery, options),
    record: (delivery, outcome) => record(storage, delivery, outcome, options),
  })
}

/** Claims the due rows, retiring those whose last attempt died with its worker ({@link claimDue}). */
async function claim(
  storage: Pick<Storage, 'db' | 'dialect'>,
  options: DeliverOptions,
): Promise<{ claimed: Claimed[]; exhausted: number }> {
  const { now } = options
  if (!(await anyDue(storage.db, 'webhook_deliveries', now))) return { claimed: [], exhausted: 0 }
  const token = newId('lock')
  const lockedUntil = now + options.leaseMs
  return storage.db.transaction().execute(async (transaction) => {
    const tx = transaction as unknown as Transaction<NotificationTables>
    const candidates = await tx
      .selectFrom('webhook_deliveries')
      .select(['id', 'status', 'attempts', 'endpoint_id', 'app_id'])
      // Literal, not bound: both planners then match the partial index webhook_deliveries_due.
      .where(sql<boolean>`status in ('pending', 'delivering')`)
      .where('next_attempt_at', '<=', now)
      // Implied by next_attempt_at (it equals locked_until while delivering); stated for the reader.
      .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
      .where(claimableFor(storage.dialect, 'endpoint_id', options.slots))
      .orderBy('next_attempt_at')
      .limit(candidatesMax(options.slots))
      .$if(storage.dialect === 'postgres', (query) => query.forUpdate().skipLocked())
      .execute()
    const due = chooseDue(candidates, options.attemptsMax, options.slots, webhookOwner)
    const { ids, exhausted } = await claimDue(tx, 'webhook_deliveries', due, options.attemptsMax, {
      now,
      lockedUntil,
      token,
    })
    if (ids.length === 0) return { claimed: [], exhausted }
    const rows = await tx
      .selectFrom('webhook_deliveries as d')
      .innerJoin('outbox_events as e', 'e.id', 'd.event_id')
      .innerJoin('webhook_endpoints as w', 'w.id', 'd.endpoint_id')
      .innerJoin('apps as a', 'a.id', 'd.app_id')
      .select([
        'd.id',
        'd.attempts',
        'd.endpoint_id',
        'd.app_id',
        'e.id as event_id',
        'e.type',
        'e.created_at as event_created_at',
        'e.payload',
        'w.url',
        'w.enabled',
        'a.environment',
      ])
      .where('d.id', 'in', ids)
      .execute()
    assert(rows.length === ids.length, 'every claimed delivery has its event, endpoint and app')
    return { claimed: rows.map((row) => ({ ...row, lock_token: token })), exhausted }
  })
}

/**
 * The webhook body. The stored payload is already JSON text written by the outbox, so it
 * is embedded as is: the body is byte-identical on every retry of the event.
 */
export function webhookBody(
  event: { id: string; type: string; created_at: number; payload: string },
  environment: AppEnvironment,
): string {
  return (
    `{"id":${JSON.stringify(event.id)},"type":${JSON.stringify(event.type)},` +
    `"created_at":${JSON.stringify(isoTime(event.created_at))},"environment":${JSON.stringify(environment)},` +
    `"data":${event.payload}}`
  )
}

async function attempt(delivery: Claimed, options: DeliverOptions): Promise<AttemptOutcome> {
  if (delivery.enabled !== 1) return { ok: false, statusCode: null, error: 'The endpoint is disabled', timedOut: false }
  const key = options.platformKeys.get(delivery.environment)
  assert(key !== undefined, `platform key for ${delivery.environment} is loaded`)
  const body = webhookBody(
    { id: delivery.event_id, type: delivery.type, created_at: delivery.event_created_at, payload: delivery.payload },
    delivery.environment,
  )
  const timestampS = Math.floor(options.clock.now() / 1000)
  const headers = {
    'content-type': 'application/json',
    'user-agent': userAgent,
    [webhookHeaderNames.id]: delivery.event_id,
    [webhookHeaderNames.timestamp]: String(timestampS),
    [webhookHeaderNames.signature]: signWebhook({
      id: delivery.event_id,
      timestampS,
      body,
      privateKey: key.privateKey,
    }),
    [deliveryHeaderNames.deliveryId]: delivery.id,
    [deliveryHeaderNames.attempt]: String(delivery.attempts),
  }
  try {
    // Redirects are not followed: a 3xx is a failure, as a moved endpoint must be re-registered.
    const response = await options.fetch(delivery.url, {
      method: 'POST',
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(options.deliveryTimeoutMs),
    })
    if (response.status >= 200 && response.status < 300) {
      await response.body?.cancel().catch(() => undefined)
      return { ok: true, statusCode: response.status, error: null, timedOut: false }
    }
    // A status then a body that stalls until the timeout held the slot as long as no answer.
    const excerpt = await responseExcerpt(response)
    return { ok: false, statusCode: response.status, error: excerpt.text, timedOut: excerpt.timedOut }
  } catch (error) {
    const timedOut = isTimeout(error)
    return { ok: false, statusCode: null, error: describeNetworkError(error, options.deliveryTimeoutMs), timedOut }
  }
}

async function responseExcerpt(response: Response): Promise<{ text: string; timedOut: boolean }> {
  const prefix = `HTTP ${response.status}`
  try {
    const reader = response.body?.getReader()
    if (reader === undefined) return { text: prefix, timedOut: false }
    // Read no more than the log keeps: a receiver's error page can be arbitrarily large.
    const chunks: Uint8Array[] = []
    let length = 0
    while (length < errorTextLengthMax) {
      const { done, value } = await reader.read()
      if (done) break
      chunks.push(value)
      length += value.length
    }
    await reader.cancel().catch(() => undefined)
    const text = Buffer.concat(chunks).toString('utf8').slice(0, errorTextLengthMax).trim()
    return { text: text === '' ? prefix : `${prefix}: ${text}`, timedOut: false }
  } catch (error) {
    return { text: prefix, timedOut: isTimeout(error) }
  }
}

function describeNetworkError(error: unknown, timeoutMs: number): string {
  if (isTimeout(error)) return `No response within ${timeoutMs} ms`
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause
  const detail =
    typeof cause?.code === 'string'
      ? cause.code
      : typeof cause?.message === 'string'
        ? cause.message
        : error instanceof Error
          ? error.message
          : String(error)
  return `Network error: ${detail}`.slice(0, errorTextLengthMax)
}

async function record(
  storage: Pick<Storage, 'db'>,
  delivery: Claimed,
  outcome: AttemptOutcome,
  options: DeliverOptions,
): Promise<boolean> {
  const now = options.clock.now()
  const final = outcome.ok || delivery.enabled !== 1 || delivery.attempts >= options.attemptsMax
  const status = outcome.ok ? ('delivered' as const) : final ? ('dead' as const) : ('pending' as const)
  const db = storage.db as unknown as Kysely<NotificationTables>
  const result = await db
    .updateTable('webhook_deliveries')
    .set({
      status,
      next_attempt_at: final ? null : now + options.retryDelayMs(delivery.attempts),
      locked_until: null,
      lock_token: null,
      last_status_code: outcome.statusCode,
      last_error: outcome.error,
      ...(outcome.ok ? { delivered_at: now } : {}),
    })
    .where('id', '=', delivery.id)
    .where('lock_token', '=', delivery.lock_token)
    .where('status', '=', 'delivering')
    .executeTakeFirst()
  // Zero rows: the lease ran out and another worker re-claimed the row (or it was disabled
  // or redelivered meanwhile); its record wins, as the newer one.
  return result.numUpdatedRows === 1n
}
