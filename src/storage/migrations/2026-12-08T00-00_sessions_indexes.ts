// Frozen in time: this migration must never import application code or change once released.
//
// Housekeeping deletes expired sessions every few seconds, and a password change or "log out
// everywhere" deletes a user's sessions: with these indexes both find their rows instead of
// reading the whole table.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('sessions_expiry').on('sessions').column('expires_at').execute()
  await db.schema.createIndex('sessions_user').on('sessions').column('user_id').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('sessions_user').execute()
  await db.schema.dropIndex('sessions_expiry').execute()
}
