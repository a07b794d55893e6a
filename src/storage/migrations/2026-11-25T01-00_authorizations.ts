// Frozen in time: this migration must never import application code or change once released.
//
// Merchant authorisation of ISV apps: the redirect URIs an app registered, the single-use
// authorisation codes of the consent page, and the authorisations themselves. Codes and
// tokens are high-entropy secrets, so only their SHA-256 is stored.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('app_redirect_uris')
    .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id'))
    .addColumn('redirect_uri', 'text', (c) => c.notNull())
    .addColumn('position', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('app_redirect_uris_pk', ['app_id', 'redirect_uri'])
    .execute()

  await db.schema
    .createTable('authorizations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id'))
    .addColumn('merchant_id', 'text', (c) => c.notNull().references('organizations.id'))
    // A JSON array of scope names, sorted.
    .addColumn('scopes', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql.raw(`status in ('active', 'revoked')`)))
    .addColumn('token_hash', 'text', (c) => c.unique())
    .addColumn('token_expires_at', 'bigint')
    .addColumn('refresh_hash', 'text', (c) => c.unique())
    .addColumn('refresh_expires_at', 'bigint')
    // The code the current tokens descend from, so that replaying that code revokes them
    // and nothing issued later by another code.
    .addColumn('source_code_hash', 'text')
    .addColumn('granted_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('revoked_at', 'bigint')
    .addColumn('revoked_by', 'text')
    .addColumn('revoke_reason', 'text')
    .execute()
  // One live authorisation per app and merchant; revoked ones stay as history.
  await db.schema
    .createIndex('authorizations_live')
    .on('authorizations')
    .columns(['app_id', 'merchant_id'])
    .unique()
    .where(sql.ref('status'), '=', 'active')
    .execute()
  await db.schema.createIndex('authorizations_merchant').on('authorizations').columns(['merchant_id', 'id']).execute()
  await db.schema.createIndex('authorizations_app').on('authorizations').columns(['app_id', 'id']).execute()

  await db.schema
    .createTable('authorization_codes')
    .addColumn('code_hash', 'text', (c) => c.primaryKey())
    .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id'))
    .addColumn('merchant_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('scopes', 'text', (c) => c.notNull())
    .addColumn('redirect_uri', 'text', (c) => c.notNull())
    .addColumn('approved_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .addColumn('authorization_id', 'text')
    .execute()
  await db.schema.createIndex('authorization_codes_expiry').on('authorization_codes').column('expires_at').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('authorization_codes').execute()
  await db.schema.dropTable('authorizations').execute()
  await db.schema.dropTable('app_redirect_uris').execute()
}
