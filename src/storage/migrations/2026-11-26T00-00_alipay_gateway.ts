// Frozen in time: this migration must never import application code or change once released.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // The platform's RSA key per environment, beside the Ed25519 one: the Alipay protocol signs
  // responses and notifications with SHA256withRSA, which Ed25519 cannot stand in for.
  await db.schema
    .createTable('platform_rsa_keys')
    .addColumn('environment', 'text', (c) => c.primaryKey())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('bits', 'integer', (c) => c.notNull())
    .addColumn('public_key_pem', 'text', (c) => c.notNull())
    .addColumn('private_key_pem', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()

  // The notify_url (and passback_params) a trade was created with through the gateway.
  await db.schema
    .createTable('alipay_trade_notify')
    .addColumn('trade_id', 'text', (c) => c.primaryKey())
    .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id'))
    .addColumn('notify_url', 'text')
    .addColumn('passback_params', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()

  // The app-level notify URL, used when a trade named none.
  await db.schema
    .createTable('alipay_app_settings')
    .addColumn('app_id', 'text', (c) => c.primaryKey().references('apps.id'))
    .addColumn('notify_url', 'text')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute()

  // Alipay-format notifications: one per outbox event and notify URL, retried until the
  // receiver answers `success`. Claimed like webhook deliveries (lease plus lock token).
  await db.schema
    .createTable('alipay_notifications')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('event_id', 'text', (c) => c.notNull().references('outbox_events.id'))
    .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id'))
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('merchant_id', 'text', (c) => c.notNull())
    .addColumn('auth_app_id', 'text', (c) => c.notNull())
    .addColumn('trade_id', 'text', (c) => c.notNull())
    .addColumn('notify_url', 'text', (c) => c.notNull())
    .addColumn('passback_params', 'text')
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
    .addUniqueConstraint('alipay_notifications_event', ['event_id'])
    .execute()
  await sql`create index alipay_notifications_due on alipay_notifications (next_attempt_at)
    where status in ('pending', 'delivering')`.execute(db)
  await db.schema
    .createIndex('alipay_notifications_trade')
    .on('alipay_notifications')
    .columns(['trade_id', 'created_at'])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('alipay_notifications').execute()
  await db.schema.dropTable('alipay_app_settings').execute()
  await db.schema.dropTable('alipay_trade_notify').execute()
  await db.schema.dropTable('platform_rsa_keys').execute()
}
