// Frozen in time: this migration must never import application code or change once released.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // The app an event is meant for (null: every app of the event's organisation), and when
  // the dispatcher fanned it out into deliveries (null: not yet).
  await db.schema.alterTable('outbox_events').addColumn('app_id', 'text').execute()
  await db.schema.alterTable('outbox_events').addColumn('dispatched_at', 'bigint').execute()
  // The dispatcher's scan touches only events not fanned out yet, however long the outbox grows.
  await sql`create index outbox_events_undispatched on outbox_events (created_at, id)
    where dispatched_at is null`.execute(db)

  await db.schema
    .createTable('webhook_endpoints')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id'))
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('disabled_at', 'bigint')
    .execute()
  await db.schema
    .createIndex('webhook_endpoints_app')
    .on('webhook_endpoints')
    .columns(['app_id', 'created_at'])
    .execute()

  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('event_id', 'text', (c) => c.notNull().references('outbox_events.id'))
    .addColumn('endpoint_id', 'text', (c) => c.notNull().references('webhook_endpoints.id'))
    // Copied from the endpoint so that the delivery log is scoped and paged by one index.
    .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id'))
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('pending', 'delivering', 'delivered', 'dead')`),
    )
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint')
    .addColumn('locked_until', 'bigint')
    .addColumn('lock_token', 'text')
    .addColumn('last_status_code', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('last_attempt_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('delivered_at', 'bigint')
    .addUniqueConstraint('webhook_deliveries_event_endpoint', ['event_id', 'endpoint_id'])
    .execute()
  // The claim query: due deliveries in order of due time. A claimed delivery keeps its row
  // here with next_attempt_at = locked_until, so a dead worker's claim comes due again.
  await sql`create index webhook_deliveries_due on webhook_deliveries (next_attempt_at)
    where status in ('pending', 'delivering')`.execute(db)
  await db.schema
    .createIndex('webhook_deliveries_app')
    .on('webhook_deliveries')
    .columns(['app_id', 'created_at', 'id'])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('webhook_deliveries').execute()
  await db.schema.dropTable('webhook_endpoints').execute()
  await db.schema.dropIndex('outbox_events_undispatched').execute()
  await db.schema.alterTable('outbox_events').dropColumn('dispatched_at').execute()
  await db.schema.alterTable('outbox_events').dropColumn('app_id').execute()
}
