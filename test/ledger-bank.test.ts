/**
 * The bank test: money moves at random between a fixed set of wallets, many transactions at
 * once, while readers keep adding up the wallets. Money is neither created nor destroyed, so
 * every consistent read must sum to what was funded, and no floored wallet may ever be seen
 * below zero. On PostgreSQL this exercises the guarded UPDATE under real row-lock contention
 * and the lock order that keeps postings from deadlocking: 8 wallets, so that most postings
 * contend. The loop is test/reliability/support/bank.ts, which the full-size
 * test/reliability/ledger-conservation.test.ts runs with a richer mix.
 */
import type { Kysely } from 'kysely'
import { expect, it } from 'vitest'
import { forEachDialect, useTestPlatform } from './harness.js'
import { expectLedgerConsistent, ledgerOf } from './ledger-helpers.js'
import { describeBank, runBank } from './reliability/support/bank.js'

const postingCount = 2_000
// A fixed seed makes the sequence of postings reproducible; the interleaving is up to the database.
const seed = 20261125

forEachDialect('ledger bank test', (dialect) => {
  const bp = useTestPlatform(dialect)

  it(`conserves money across ${postingCount} concurrent postings, read consistently all along`, async () => {
    const db = bp().storage.db as Kysely<any>
    const report = await runBank(db, ledgerOf(bp()), {
      dialect,
      seed,
      accounts: 8,
      fundedEachFen: 50_000,
      operations: postingCount,
      writers: 24,
      readers: 2,
      amountFenMax: 20_000,
      // Transfers, and one in five chains a second hop, so postings touch three accounts too.
      mix: { reversal: 0, chain: 0.2, overdraw: 0, abort: 0 },
      verifyEvery: 20,
      referenceType: 'test.transfer',
    })
    console.info(`[${dialect}] bank: ${describeBank(report)}`)
    expect(report.violations, 'reads that did not sum to the total, or saw a wallet below zero').toEqual([])
    const posted = report.committed
    expect(posted + report.counts.refused).toBe(postingCount)
    // The amounts are chosen so that both outcomes are common; otherwise the test proves little.
    expect(posted).toBeGreaterThan(postingCount / 4)
    expect(report.counts.refused).toBeGreaterThan(10)
    expect(report.reads.statement + report.reads.snapshot).toBeGreaterThan(10)
    expect(report.reads.verify).toBeGreaterThan(0)
    await expectLedgerConsistent(db)
    expect(report.storedPostings).toBe(posted)
  })
})
