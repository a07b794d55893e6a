// Frozen in time: this migration must never import application code or change once released.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('stores')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('out_store_no', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('city_code', 'text')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('created_by_app_id', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('closed_at', 'bigint')
    .addUniqueConstraint('stores_out_store_no', ['organization_id', 'environment', 'out_store_no'])
    .execute()
  await db.schema
    .createIndex('stores_organization_status')
    .on('stores')
    .columns(['organization_id', 'environment', 'status'])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('stores').execute()
}
