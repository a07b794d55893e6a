/**
 * Ledger conservation, Jepsen "bank" style, at volume: many writers move money between
 * floored wallets (single transfers, two-hop chains, reversals of earlier transfers, transfers
 * the floor must refuse, and transactions that post and then fail on purpose), while readers
 * add up every wallet — in one statement, in one snapshot through the ledger service, and
 * with the full `verifyLedger` now and then. Money is neither created nor destroyed, so every
 * read must sum to what was funded, no wallet is ever seen below zero, and at the end every
 * account's totals equal its entries and every posting balances.
 *
 * On SQLite this also proves the group commit (src/storage/group-commit.ts): hundreds of
 * writers share each commit, and a transaction that fails inside a group undoes its own
 * posting and nothing of the others'. The loop is test/reliability/support/bank.ts;
 * test/ledger-bank.test.ts is the small, always-on version with a simpler mix.
 */
import type { Kysely } from 'kysely'
import { expect, it } from 'vitest'
import { forEachDialect, useTestPlatform } from '../harness.js'
import { expectLedgerConsistent, ledgerOf } from '../ledger-helpers.js'
import { describeBank, runBank } from './support/bank.js'
import { budgetMs, mode, settings } from './support/settings.js'

const { operations, accounts, writers, readers } = settings.bank
const seed = settings.seed

forEachDialect(`ledger conservation (${mode}, seed ${seed})`, (dialect) => {
  const bp = useTestPlatform(dialect)

  it(
    `${operations} mixed operations with concurrent reads: every read sums to the total`,
    async () => {
      const db = bp().storage.db as Kysely<any>
      const report = await runBank(db, ledgerOf(bp()), {
        dialect,
        seed,
        accounts,
        fundedEachFen: 1_000_000,
        operations,
        writers,
        readers,
        amountFenMax: 200_000,
        mix: { reversal: 0.15, chain: 0.15, overdraw: 0.05, abort: 0.05 },
        verifyEvery: 50,
        referenceType: 'test.conservation',
      })
      console.info(`[${dialect}] conservation: ${describeBank(report)}`)
      expect(report.violations, `reads that broke an invariant (seed ${seed})`).toEqual([])
      expect(report.violationCount).toBe(0)
      await expectLedgerConsistent(db)
      expect(report.storedPostings, 'postings stored = postings that committed (aborted ones vanished)').toBe(
        report.committed,
      )
      const { counts } = report
      expect(report.committed + counts.refused + counts.aborted).toBe(operations)
      expect(counts.overdrawRefused, 'the floor refused every overdraw').toBe(report.overdraws)
      expect(counts.refused).toBeGreaterThan(counts.overdrawRefused)
      expect(counts.aborted).toBeGreaterThan(0)
      expect(counts.reversal).toBeGreaterThan(0)
      expect(report.reads.statement + report.reads.snapshot).toBeGreaterThan(10)
    },
    budgetMs(120_000, 900_000),
  )
})
