/**
 * Fan-out: turns outbox events into one delivery per target endpoint, and marks each event
 * dispatched in the same transaction, so an event is fanned out once and only once.
 *
 * Routing: an event with `app_id` goes to that app's enabled endpoints; an event without
 * goes to the enabled endpoints of every app of its organisation. Either way the endpoint's
 * app decides the environment (its key signs, its environment labels the body). Endpoints
 * created later do not receive earlier events. See docs/decisions/0008-webhooks.md.
 *
 * @example
 * const fannedOut = await dispatchEvents(storage, { now: clock.now(), batchSizeMax: 100 })
 */
import type { Kysely, Transaction } from 'kysely'
import type { Storage } from '../../storage/database.js'
import { prepared } from '../../storage/prepared.js'
import { newId } from '../ids.js'
import { deliveryIdPrefix } from './events.js'
import type { NotificationTables, WebhookDeliveriesTable } from './tables.js'

/** Rows per INSERT: well under SQLite's bound-parameter limit (14 columns each). */
const insertRowsMax = 500

export interface DispatchOptions {
  readonly now: number
  readonly batchSizeMax: number
  /**
   * Other delivery formats (the Alipay-compatible notifications): each queues its own
   * deliveries for the batch, in the same transaction that marks the events dispatched, so
   * that every format sees every event exactly once.
   */
  readonly fanOuts?: readonly FanOut[]
}

/** An outbox event as the dispatcher hands it to other delivery formats. */
export interface DispatchedEvent {
  readonly id: string
  readonly type: string
  readonly organization_id: string
  readonly app_id: string | null
  /** The payload as stored: JSON text. */
  readonly payload: string
  readonly created_at: number
}

/** Queues one delivery format's deliveries for a batch of events, inside the dispatcher's transaction. */
export type FanOut = (tx: Kysely<any>, events: readonly DispatchedEvent[], now: number) => Promise<void>

/** One event not fanned out yet, if any (the partial index outbox_events_undispatched). */
const anyUndispatched = prepared((db: Kysely<NotificationTables>, _p: Record<string, never>) =>
  db
    .selectFrom('outbox_events')
    .select('id')
    .where('dispatched_at', 'is', null)
    // Ordered as the fan-out is, so that both planners read the partial index, not the table.
    .orderBy('created_at')
    .orderBy('id')
    .limit(1),
)

/** Fans out up to `batchSizeMax` undispatched events; returns how many it fanned out. */
export async function dispatchEvents(
  storage: Pick<Storage, 'db' | 'dialect'>,
  options: DispatchOptions,
): Promise<number> {
  // Most steps find nothing to fan out: one plain read says so, where a transaction that finds
  // nothing costs three round trips on PostgreSQL.
  if ((await anyUndispatched.first(storage.db as unknown as Kysely<NotificationTables>, {})) === undefined) return 0
  return storage.db.transaction().execute(async (transaction) => {
    const tx = transaction as unknown as Transaction<NotificationTables>
    // On PostgreSQL several workers scan at once: each takes the rows it can lock and skips
    // those another worker holds, so no event is fanned out twice. SQLite has one writer.
    const events = await tx
      .selectFrom('outbox_events')
      .select(['id', 'type', 'organization_id', 'app_id', 'payload', 'created_at'])
      .where('dispatched_at', 'is', null)
      .orderBy('created_at')
      .orderBy('id')
      .limit(options.batchSizeMax)
      .$if(storage.dialect === 'postgres', (query) => query.forUpdate().skipLocked())
      .execute()
    if (events.length === 0) return 0
    const targets = await targetEndpoints(tx, events)
    const rows: WebhookDeliveriesTable[] = []
    for (const event of events) {
      const endpoints =
        event.app_id === null
          ? targets.filter((endpoint) => endpoint.organization_id === event.organization_id)
          : targets.filter((endpoint) => endpoint.app_id === event.app_id)
      for (const endpoint of endpoints) rows.push(newDelivery(event.id, endpoint, options.now))
    }
    for (let start = 0; start < rows.length; start += insertRowsMax) {
      await tx
        .insertInto('webhook_deliveries')
        .values(rows.slice(start, start + insertRowsMax))
        .execute()
    }
    for (const fanOut of options.fanOuts ?? []) await fanOut(tx, events, options.now)
    await tx
      .updateTable('outbox_events')
      .set({ dispatched_at: options.now })
      .where(
        'id',
        'in',
        events.map((event) => event.id),
      )
      .execute()
    return events.length
  })
}

interface Target {
  readonly id: string
  readonly app_id: string
  readonly organization_id: string
}

async function targetEndpoints(
  tx: Kysely<NotificationTables>,
  events: readonly { organization_id: string; app_id: string | null }[],
): Promise<Target[]> {
  const appIds = [...new Set(events.flatMap((event) => (event.app_id === null ? [] : [event.app_id])))]
  const organizationIds = [
    ...new Set(events.filter((event) => event.app_id === null).map((event) => event.organization_id)),
  ]
  return tx
    .selectFrom('webhook_endpoints')
    .innerJoin('apps', 'apps.id', 'webhook_endpoints.app_id')
    .select(['webhook_endpoints.id', 'webhook_endpoints.app_id', 'apps.organization_id'])
    .where('webhook_endpoints.enabled', '=', 1)
    .where((eb) =>
      eb.or([
        ...(appIds.length > 0 ? [eb('webhook_endpoints.app_id', 'in', appIds)] : []),
        ...(organizationIds.length > 0 ? [eb('apps.organization_id', 'in', organizationIds)] : []),
      ]),
    )
    .execute()
}

/** A delivery due now; the unique (event, endpoint) pair makes a second fan-out fail loudly. */
export function newDelivery(
  eventId: string,
  endpoint: { id: string; app_id: string },
  now: number,
): WebhookDeliveriesTable {
  return {
    id: newId(deliveryIdPrefix),
    event_id: eventId,
    endpoint_id: endpoint.id,
    app_id: endpoint.app_id,
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
  }
}
