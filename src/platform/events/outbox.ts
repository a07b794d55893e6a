/**
 * The outbox: a capability's event is written in the same transaction as the change that
 * caused it, so an event exists if and only if the change committed. Delivery (signed
 * webhooks with retries) reads this table; see the notifications module.
 *
 * @example
 * await events.emit(tx, { type: 'stores.created', organizationId, payload: view }, now)
 * await events.emit(tx, { type: 'payment.trade.created', organizationId, appId: principal.appId, payload }, now)
 */
import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { Kysely } from 'kysely'
import { assert } from '../../assert.js'
import '../typebox-formats.js'
import { prepared } from '../../storage/prepared.js'
import type { CoreTables } from '../../storage/tables.js'
import { newId } from '../ids.js'

export interface EventInput {
  readonly type: string
  readonly organizationId: string
  /**
   * The app to notify (usually the acting app, `principal.appId`); its environment signs and
   * labels the webhook. Null or absent: every app of `organizationId`, each in its own
   * environment (see docs/decisions/0008-webhooks.md).
   */
  readonly appId?: string | null
  readonly payload: Readonly<Record<string, unknown>>
}

/** The outbox row as this module writes it; `app_id` came with the notifications migration. */
type OutboxTables = { outbox_events: CoreTables['outbox_events'] & { app_id: string | null } }

/** At most this many events go into one INSERT; more take several. */
const eventsPerInsertMax = 4

/** The event's columns, as the prepared insert of `count` rows names its values. */
type EventValues = Record<string, string | number | null>

/** Inserts of 1..{@link eventsPerInsertMax} events, each prepared on first use. */
const insertEvents = Array.from({ length: eventsPerInsertMax }, (_, index) =>
  prepared((db: Kysely<OutboxTables>, p: EventValues) =>
    db.insertInto('outbox_events').values(
      Array.from({ length: index + 1 }, (_, row) => ({
        id: p[`id${row}`] as string,
        type: p[`type${row}`] as string,
        organization_id: p[`organizationId${row}`] as string,
        app_id: p[`appId${row}`] as string | null,
        payload: p[`payload${row}`] as string,
        created_at: p.now as number,
      })),
    ),
  ),
)

export interface EventPublisher {
  /** Writes one event; returns its id. */
  emit(db: Kysely<any>, event: EventInput, now: number): Promise<string>
  /**
   * Writes several events of one change, in one statement where they fit (on PostgreSQL each
   * statement is a round trip); returns their ids in order.
   */
  emitAll(db: Kysely<any>, events: readonly EventInput[], now: number): Promise<string[]>
}

export function createEventPublisher(schemas: ReadonlyMap<string, TSchema>): EventPublisher {
  // Compiled checkers: an interpreted check per event was a visible share of a payment's CPU.
  const checks = new Map([...schemas].map(([type, schema]) => [type, TypeCompiler.Compile(schema)]))
  const emitAll = async (db: Kysely<any>, events: readonly EventInput[], now: number) => {
    for (const event of events) {
      const check = checks.get(event.type)
      assert(check !== undefined, `event type ${event.type} is not declared by any capability`)
      assert(check.Check(event.payload), `payload of ${event.type} does not match its schema`)
    }
    // Ids lead with their millisecond and then random characters: sorted, they keep the list's
    // order among themselves, so the dispatcher (by created_at, then id) sends them in order.
    const ids = events.map(() => newId('evt')).sort()
    for (let start = 0; start < events.length; start += eventsPerInsertMax) {
      const chunk = events.slice(start, start + eventsPerInsertMax)
      const values: EventValues = { now }
      chunk.forEach((event, row) => {
        values[`id${row}`] = ids[start + row]!
        values[`type${row}`] = event.type
        values[`organizationId${row}`] = event.organizationId
        values[`appId${row}`] = event.appId ?? null
        values[`payload${row}`] = JSON.stringify(event.payload)
      })
      await insertEvents[chunk.length - 1]!.affected(db, values)
    }
    return ids
  }
  return {
    emitAll,
    async emit(db, event, now) {
      return (await emitAll(db, [event], now))[0]!
    },
  }
}
