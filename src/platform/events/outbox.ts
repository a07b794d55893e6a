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

const insertEvent = prepared(
  (
    db: Kysely<OutboxTables>,
    p: { id: string; type: string; organizationId: string; appId: string | null; payload: string; now: number },
  ) =>
    db.insertInto('outbox_events').values({
      id: p.id,
      type: p.type,
      organization_id: p.organizationId,
      app_id: p.appId,
      payload: p.payload,
      created_at: p.now,
    }),
)

export interface EventPublisher {
  emit(db: Kysely<any>, event: EventInput, now: number): Promise<string>
}

export function createEventPublisher(schemas: ReadonlyMap<string, TSchema>): EventPublisher {
  // Compiled checkers: an interpreted check per event was a visible share of a payment's CPU.
  const checks = new Map([...schemas].map(([type, schema]) => [type, TypeCompiler.Compile(schema)]))
  return {
    async emit(db, event, now) {
      const check = checks.get(event.type)
      assert(check !== undefined, `event type ${event.type} is not declared by any capability`)
      assert(check.Check(event.payload), `payload of ${event.type} does not match its schema`)
      const id = newId('evt')
      await insertEvent.affected(db, {
        id,
        type: event.type,
        organizationId: event.organizationId,
        appId: event.appId ?? null,
        payload: JSON.stringify(event.payload),
        now,
      })
      return id
    },
  }
}
