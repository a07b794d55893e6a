/**
 * The bank test: money moves at random between a fixed set of wallets, many transactions at
 * once, while readers keep adding up the wallets. Money is neither created nor destroyed, so
 * every consistent read must sum to what was funded, and no floored wallet may ever be seen
 * below zero. On PostgreSQL this exercises the guarded UPDATE under real row-lock contention
 * and the lock order that keeps postings from deadlocking.
 */
import type { Kysely } from 'kysely'
import { expect, it } from 'vitest'
import type { AccountRef, LedgerService, PostingInput } from '../src/capabilities/ledger/index.js'
import { fen } from '../src/platform/money/money.js'
import { forEachDialect, useTestPlatform } from './harness.js'
import { expectLedgerConsistent, freshAccount, ledgerOf } from './ledger-helpers.js'

const walletCount = 8
const fundedEachFen = 50_000
const postingCount = 2_000
const batchSize = 24
const transferFenMax = 20_000
const readPauseMs = 5
// A fixed seed makes the sequence of postings reproducible; the interleaving is up to the database.
const seed = 20261125

/** mulberry32: a tiny seeded generator, good enough to pick accounts and amounts. */
function generator(state: number): () => number {
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

forEachDialect('ledger bank test', (dialect) => {
  const bp = useTestPlatform(dialect)

  it(`conserves money across ${postingCount} concurrent postings, read consistently all along`, async () => {
    const db = bp().storage.db as Kysely<any>
    const ledger: LedgerService = ledgerOf(bp())
    const random = generator(seed)
    const wallets = Array.from({ length: walletCount }, () => freshAccount('consumer_wallet'))
    const funding = freshAccount('sandbox_funding', 'sandbox', 'platform')
    const totalFen = walletCount * fundedEachFen
    await db.transaction().execute((tx) =>
      ledger.post(
        tx,
        {
          reference: { type: 'test.fund', id: 'bank' },
          description: 'fund the wallets',
          transfers: wallets.map((wallet) => ({ debit: funding, credit: wallet, amount: fen(fundedEachFen) })),
        },
        Date.now(),
      ),
    )

    const pick = (): AccountRef => wallets[Math.floor(random() * walletCount)]!
    const amount = () => fen(1 + Math.floor(random() * transferFenMax))
    const nextPosting = (index: number): PostingInput => {
      const source = pick()
      let target = pick()
      while (target === source) target = pick()
      const transfers = [{ debit: source, credit: target, amount: amount() }]
      // Every fifth posting chains a second hop, so postings touch three accounts too.
      if (index % 5 === 0) {
        let third = pick()
        while (third === target) third = pick()
        transfers.push({ debit: target, credit: third, amount: amount() })
      }
      return { reference: { type: 'test.transfer', id: String(index) }, description: 'random transfer', transfers }
    }

    const outcomes = { posted: 0, refused: 0 }
    const postOne = async (posting: PostingInput) => {
      try {
        await db.transaction().execute((tx) => ledger.post(tx, posting, Date.now()))
        outcomes.posted += 1
      } catch (error) {
        // Only a floor may refuse a posting here; a deadlock or anything else fails the test.
        if ((error as { code?: string }).code !== 'LEDGER_INSUFFICIENT_FUNDS') throw error
        outcomes.refused += 1
      }
    }

    let writing = true
    const reads = { statement: 0, transaction: 0, verify: 0 }
    const walletOwners = wallets.map((wallet) => wallet.ownerId)
    const readStatement = async () => {
      // One statement sees one snapshot on both dialects.
      const row = await db
        .selectFrom('ledger_accounts')
        .select((eb) => [
          eb.fn.sum<number>(eb('credits_posted', '-', eb.ref('debits_posted'))).as('total'),
          eb.fn.min<number>(eb('credits_posted', '-', eb.ref('debits_posted'))).as('lowest'),
          eb.fn.countAll<number>().as('accounts'),
        ])
        .where('kind', '=', 'consumer_wallet')
        .where('owner_id', 'in', walletOwners)
        .executeTakeFirstOrThrow()
      expect(Number(row.accounts)).toBe(walletCount)
      expect(Number(row.total), 'sum of all wallets in one statement').toBe(totalFen)
      expect(Number(row.lowest)).toBeGreaterThanOrEqual(0)
      reads.statement += 1
    }
    const readThroughService = async () => {
      // Eight balance() calls inside one REPEATABLE READ transaction share one snapshot.
      const balances = await db
        .transaction()
        .setIsolationLevel('repeatable read')
        .execute(async (tx) => {
          const seen = []
          for (const wallet of wallets) seen.push((await ledger.balance(tx, wallet)).balance)
          return seen
        })
      expect(
        balances.reduce((sum, balance) => sum + balance, 0),
        'sum of balance() in one snapshot',
      ).toBe(totalFen)
      expect(Math.min(...balances)).toBeGreaterThanOrEqual(0)
      reads.transaction += 1
    }
    const reader = async (index: number) => {
      for (let round = 0; writing; round += 1) {
        await (round % 2 === index % 2 ? readStatement() : readThroughService())
        // On PostgreSQL a short pause leaves the two shared cores mostly to the writers. Not on
        // SQLite: its driver is synchronous, so writers never yield to timers and a paused reader
        // would wait out the whole run; there readers interleave through the connection's queue.
        if (dialect === 'postgres') await new Promise((resolve) => setTimeout(resolve, readPauseMs))
        if (round % 20 === 19) {
          // verify reads in its own snapshot, so postings in flight never look like drift.
          const result = await ledger.verify(db)
          expect(result.drift).toEqual([])
          expect(result.unbalancedPostings).toEqual([])
          reads.verify += 1
        }
      }
    }

    const readers = [reader(0), reader(1)]
    const startedMs = performance.now()
    try {
      for (let start = 0; start < postingCount; start += batchSize) {
        const batch = Array.from({ length: Math.min(batchSize, postingCount - start) }, (_, offset) =>
          nextPosting(start + offset),
        )
        await Promise.all(batch.map(postOne))
      }
    } finally {
      writing = false
      await Promise.all(readers)
    }
    const elapsedMs = performance.now() - startedMs

    expect(outcomes.posted + outcomes.refused).toBe(postingCount)
    // The amounts are chosen so that both outcomes are common; otherwise the test proves little.
    expect(outcomes.posted).toBeGreaterThan(postingCount / 4)
    expect(outcomes.refused).toBeGreaterThan(10)
    expect(reads.statement + reads.transaction).toBeGreaterThan(10)
    await readStatement()
    await readThroughService()
    await expectLedgerConsistent(db)
    const postings = await db
      .selectFrom('ledger_postings')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('reference_type', '=', 'test.transfer')
      .executeTakeFirstOrThrow()
    expect(Number(postings.count)).toBe(outcomes.posted)
    console.info(
      `[${dialect}] ${outcomes.posted} posted, ${outcomes.refused} refused in ${Math.round(elapsedMs)} ms; ` +
        `reads: ${reads.statement} statements, ${reads.transaction} snapshots, ${reads.verify} verifies`,
    )
  })
})
