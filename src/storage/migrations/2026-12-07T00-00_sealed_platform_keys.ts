// Frozen in time: this migration must never import application code or change once released.
//
// The platform's private keys are stored sealed (AES-256-GCM under a key kept outside the
// database, ADR 0018). The columns are renamed for what they now hold; rows written before are
// sealed by the first start after this migration, which is the first code that has the key.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  for (const table of ['platform_keys', 'platform_rsa_keys']) {
    await db.schema.alterTable(table).renameColumn('private_key_pem', 'private_key_sealed').execute()
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  // The version before this one reads PEM from the column; sealed keys would not load there.
  for (const table of ['platform_keys', 'platform_rsa_keys']) {
    const sealed = await db
      .selectFrom(table)
      .select('environment')
      .where('private_key_sealed', 'like', 'bpseal1.%')
      .limit(1)
      .execute()
    if (sealed.length > 0) throw new Error(`${table} holds sealed keys, which the previous version cannot read`)
  }
  for (const table of ['platform_keys', 'platform_rsa_keys']) {
    await db.schema.alterTable(table).renameColumn('private_key_sealed', 'private_key_pem').execute()
  }
}
