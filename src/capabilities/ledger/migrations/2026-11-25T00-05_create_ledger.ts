// Frozen in time: this migration must never import application code or change once released.
// It runs before the stores' (00-10) and any capability that posts to the ledger.
import { sql, type Kysely } from 'kysely'

const accountKinds = [
  'consumer_wallet',
  'merchant_pending',
  'merchant_available',
  'platform_fee_revenue',
  'isv_commission',
  'royalty_receiver',
  'channel_clearing',
  'sandbox_funding',
]

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('ledger_accounts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull().check(sqlIn('kind', accountKinds)))
    .addColumn('owner_id', 'text', (c) => c.notNull())
    .addColumn('environment', 'text', (c) => c.notNull().check(sqlIn('environment', ['sandbox', 'live'])))
    .addColumn('currency', 'text', (c) =>
      c
        .notNull()
        .defaultTo('CNY')
        .check(sqlIn('currency', ['CNY'])),
    )
    .addColumn('floor', 'text', (c) => c.notNull().check(sqlIn('floor', ['non_negative', 'none'])))
    .addColumn('debits_posted', 'bigint', (c) =>
      c
        .notNull()
        .defaultTo(0)
        .check(sql`debits_posted >= 0`),
    )
    .addColumn('credits_posted', 'bigint', (c) =>
      c
        .notNull()
        .defaultTo(0)
        .check(sql`credits_posted >= 0`),
    )
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    // The service guards every debit; this is the database's own last line of defence.
    .addCheckConstraint('ledger_accounts_floor', sql`floor = 'none' or credits_posted - debits_posted >= 0`)
    .addUniqueConstraint('ledger_accounts_identity', ['kind', 'owner_id', 'environment', 'currency'])
    .execute()
  await db.schema
    .createTable('ledger_postings')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('reference_type', 'text', (c) => c.notNull())
    .addColumn('reference_id', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  // Finding the postings of a trade or refund (support, reconciliation) must not scan.
  await db.schema
    .createIndex('ledger_postings_reference')
    .on('ledger_postings')
    .columns(['reference_type', 'reference_id'])
    .execute()
  await db.schema
    .createTable('ledger_entries')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('posting_id', 'text', (c) => c.notNull().references('ledger_postings.id'))
    .addColumn('account_id', 'text', (c) => c.notNull().references('ledger_accounts.id'))
    .addColumn('side', 'text', (c) => c.notNull().check(sqlIn('side', ['debit', 'credit'])))
    .addColumn('amount', 'bigint', (c) => c.notNull().check(sql`amount > 0`))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('ledger_entries_account').on('ledger_entries').column('account_id').execute()
  // Reading one posting's entries, and `ledger verify` finding postings without entries.
  await db.schema.createIndex('ledger_entries_posting').on('ledger_entries').column('posting_id').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('ledger_entries').execute()
  await db.schema.dropTable('ledger_postings').execute()
  await db.schema.dropTable('ledger_accounts').execute()
}

function sqlIn(column: string, values: readonly string[]) {
  // Both dialects accept a plain IN list; the values are constants of this file.
  return sql.raw(`${column} in (${values.map((value) => `'${value}'`).join(', ')})`)
}
