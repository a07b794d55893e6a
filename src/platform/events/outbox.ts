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
import { Value } from '@sinclair/typebox/value'
import type { Kysely } from 'kysely'
import { assert } from '../../assert.js'
import '../typebox-formats.js'
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

export interface EventPublisher {
  emit(db: Kysely<any>, event: EventInput, now: number): Promise<string>
}

export function createEventPublisher(schemas: ReadonlyMap<string, TSchema>): EventPublisher {
  return {
    async emit(db, event, now) {
      const schema = schemas.get(event.type)
      assert(schema !== undefined, `event type ${event.type} is not declared by any capability`)
      assert(Value.Check(schema, event.payload), `payload of ${event.type} does not match its schema`)
      const id = newId('evt')
      await (db as Kysely<OutboxTables>)
        .insertInto('outbox_events')
        .values({
          id,
          type: event.type,
          organization_id: event.organizationId,
          app_id: event.appId ?? null,
          payload: JSON.stringify(event.payload),
          created_at: now,
        })
        .execute()
      return id
    },
  }
}
