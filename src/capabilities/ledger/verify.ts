/**
 * Recomputes the ledger from its entries: every account's stored totals must equal the sums
 * of its entries, and every posting's debit entries must equal its credit entries. Editing
 * or deleting an entry, or editing an account's totals, shows up as drift or an unbalanced
 * posting. Like the audit chain, this makes tampering evident, not impossible: someone who
 * rewrites entries and totals consistently is caught only by reconciling with the outside
 * world (the channel's statements).
 *
 * @example
 * const result = await verifyLedger(storage.db)
 * if (!result.ok) process.exitCode = 1
 */
import { sql, type Kysely } from 'kysely'
import type { Fen } from '../../platform/money/money.js'
import type { Balance, LedgerDb, LedgerDrift, LedgerVerification } from './model.js'

/** Accounts are checked a page at a time so memory stays flat however large the ledger. */
const accountPageSize = 500

// Totals are read without the assertions of the hot path: verify exists to report corrupt
// data, so it must describe a broken row, not crash on it.
function rawBalance(debits: number, credits: number): Balance {
  return { debits: debits as Fen, credits: credits as Fen, balance: (credits - debits) as Fen }
}

// SUM over BIGINT is NUMERIC on PostgreSQL, which the driver returns as a string; casting
// back to BIGINT gets a number from the BIGINT parser, which asserts it is a safe integer.
const debitSum = sql<number>`cast(coalesce(sum(case when side = 'debit' then amount else 0 end), 0) as bigint)`
const creditSum = sql<number>`cast(coalesce(sum(case when side = 'credit' then amount else 0 end), 0) as bigint)`

async function accountDrift(db: LedgerDb): Promise<{ accounts: number; drift: LedgerDrift[] }> {
  const drift: LedgerDrift[] = []
  let accounts = 0
  let afterId = ''
  for (;;) {
    const rows = await db
      .selectFrom('ledger_accounts')
      .selectAll()
      .where('id', '>', afterId)
      .orderBy('id')
      .limit(accountPageSize)
      .execute()
    if (rows.length === 0) break
    const sums = await db
      .selectFrom('ledger_entries')
      .select(['account_id', debitSum.as('debits'), creditSum.as('credits')])
      .where(
        'account_id',
        'in',
        rows.map((row) => row.id),
      )
      .groupBy('account_id')
      .execute()
    const byAccount = new Map(sums.map((sum) => [sum.account_id, sum]))
    for (const row of rows) {
      const sum = byAccount.get(row.id)
      const recomputed = rawBalance(Number(sum?.debits ?? 0), Number(sum?.credits ?? 0))
      if (recomputed.debits !== row.debits_posted || recomputed.credits !== row.credits_posted) {
        drift.push({
          account: { kind: row.kind, ownerId: row.owner_id, environment: row.environment },
          stored: rawBalance(row.debits_posted, row.credits_posted),
          recomputed,
        })
      }
    }
    accounts += rows.length
    afterId = rows[rows.length - 1]!.id
    if (rows.length < accountPageSize) break
  }
  return { accounts, drift }
}

async function unbalancedPostings(db: LedgerDb): Promise<string[]> {
  const unbalanced = await db
    .selectFrom('ledger_entries')
    .select('posting_id')
    .groupBy('posting_id')
    .having(
      sql<boolean>`sum(case when side = 'debit' then amount else 0 end)
      <> sum(case when side = 'credit' then amount else 0 end)`,
    )
    .execute()
  // A posting carries at least one transfer, so one left without entries was tampered with.
  const empty = await db
    .selectFrom('ledger_postings')
    .select('id')
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('ledger_entries').select('id').whereRef('ledger_entries.posting_id', '=', 'ledger_postings.id'),
        ),
      ),
    )
    .execute()
  return [...unbalanced.map((row) => row.posting_id), ...empty.map((row) => row.id)].sort()
}

async function verifySnapshot(db: LedgerDb): Promise<LedgerVerification> {
  const { accounts, drift } = await accountDrift(db)
  const unbalanced = await unbalancedPostings(db)
  const count = await db
    .selectFrom('ledger_postings')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .executeTakeFirstOrThrow()
  return {
    ok: drift.length === 0 && unbalanced.length === 0,
    accounts,
    postings: Number(count.count),
    drift,
    unbalancedPostings: unbalanced,
  }
}

/**
 * Checks the whole ledger. Given the root database it reads in one REPEATABLE READ snapshot
 * on PostgreSQL (SQLite's single connection gives one anyway), so postings committed while it
 * runs never show up as false drift; given a transaction, it reads in that.
 *
 * @example
 * const { ok, drift, unbalancedPostings } = await verifyLedger(db)
 */
export async function verifyLedger(db: Kysely<any>): Promise<LedgerVerification> {
  if (db.isTransaction) return verifySnapshot(db as LedgerDb)
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .setAccessMode('read only')
    .execute((tx) => verifySnapshot(tx as LedgerDb))
}
