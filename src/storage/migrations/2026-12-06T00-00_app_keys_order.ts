// Frozen in time: this migration must never import application code or change once released.
//
// Every signed request reads its app's keys newest first; with the keys of an app kept in that
// order, the read is an index walk instead of a sort (ADR 0014).
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('app_keys_by_app_newest').on('app_keys').columns(['app_id', 'created_at', 'id']).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('app_keys_by_app_newest').execute()
}
