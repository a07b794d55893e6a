// Frozen in time: this migration must never import application code or change once released.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('payment_consumers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('display_name', 'text', (c) => c.notNull())
    .addColumn('owner_organization_id', 'text', (c) => c.notNull())
    .addColumn('created_by_app_id', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createTable('payment_codes')
    .addColumn('code_hash', 'text', (c) => c.primaryKey())
    .addColumn('consumer_id', 'text', (c) => c.notNull())
    .addColumn('reusable', 'integer', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createTable('payment_trades')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('merchant_id', 'text', (c) => c.notNull())
    .addColumn('app_id', 'text', (c) => c.notNull())
    .addColumn('isv_id', 'text')
    .addColumn('out_trade_no', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('store_id', 'text')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('total_amount', 'bigint', (c) => c.notNull())
    .addColumn('refunded_amount', 'bigint', (c) => c.notNull())
    .addColumn('fee_amount', 'bigint', (c) => c.notNull())
    .addColumn('fee_refunded_amount', 'bigint', (c) => c.notNull())
    .addColumn('fee_rate_bps', 'integer', (c) => c.notNull())
    .addColumn('fee_policy_version', 'integer', (c) => c.notNull())
    .addColumn('commission_share_bps', 'integer', (c) => c.notNull())
    .addColumn('commission_policy_version', 'integer', (c) => c.notNull())
    .addColumn('commission_amount', 'bigint', (c) => c.notNull())
    .addColumn('royalty_amount', 'bigint', (c) => c.notNull())
    .addColumn('buyer_id', 'text')
    .addColumn('channel', 'text')
    .addColumn('channel_state', 'text')
    .addColumn('channel_ready_at', 'bigint')
    .addColumn('qr_token', 'text')
    .addColumn('settle_status', 'text', (c) => c.notNull())
    .addColumn('settle_after', 'bigint')
    .addColumn('settled_at', 'bigint')
    .addColumn('paid_at', 'bigint')
    .addColumn('closed_at', 'bigint')
    .addColumn('close_reason', 'text')
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('payment_trades_out_trade_no', ['merchant_id', 'environment', 'out_trade_no'])
    .addUniqueConstraint('payment_trades_qr_token', ['qr_token'])
    .execute()
  await db.schema.createIndex('payment_trades_expiry').on('payment_trades').columns(['status', 'expires_at']).execute()
  await db.schema
    .createIndex('payment_trades_settlement')
    .on('payment_trades')
    .columns(['settle_status', 'settle_after'])
    .execute()
  await db.schema
    .createTable('payment_refunds')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('trade_id', 'text', (c) => c.notNull())
    .addColumn('out_request_no', 'text', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('fee_refund_amount', 'bigint', (c) => c.notNull())
    .addColumn('commission_clawback_amount', 'bigint', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('payment_refunds_request', ['trade_id', 'out_request_no'])
    .execute()
  await db.schema
    .createTable('payment_royalty_receivers')
    .addColumn('merchant_id', 'text', (c) => c.notNull())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('receiver_id', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('memo', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('payment_royalty_receivers_pk', ['merchant_id', 'environment', 'receiver_id'])
    .execute()
  await db.schema
    .createTable('payment_royalties')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('trade_id', 'text', (c) => c.notNull())
    .addColumn('out_request_no', 'text', (c) => c.notNull())
    .addColumn('receiver_id', 'text', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex('payment_royalties_request')
    .on('payment_royalties')
    .columns(['trade_id', 'out_request_no'])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'payment_royalties',
    'payment_royalty_receivers',
    'payment_refunds',
    'payment_trades',
    'payment_codes',
    'payment_consumers',
  ]) {
    await db.schema.dropTable(table).execute()
  }
}
