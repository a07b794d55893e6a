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
 * posting and nothing of the others'. test/ledger-bank.test.ts is the small, always-on version.
 */
import type { Kysely } from 'kysely'
import { expect, it } from 'vitest'
import type { AccountRef, LedgerService, PostingInput } from '../../src/capabilities/ledger/index.js'
import { fen } from '../../src/platform/money/money.js'
import { forEachDialect, useTestPlatform } from '../harness.js'
import { expectLedgerConsistent, freshAccount, ledgerOf } from '../ledger-helpers.js'
import { between, seeded } from './support/random.js'
import { budgetMs, mode, settings } from './support/settings.js'

const { operations, accounts, writers } = settings.bank
const fundedEachFen = 1_000_000
const seed = settings.seed

class DeliberateFailure extends Error {}

forEachDialect(`ledger conservation (${mode}, seed ${seed})`, (dialect) => {
  const bp = useTestPlatform(dialect)

  it(
    `${operations} mixed operations with concurrent reads: every read sums to the total`,
    async () => {
      const db = bp().storage.db as Kysely<any>
      const ledger: LedgerService = ledgerOf(bp())
      const random = seeded(seed)
      const wallets: AccountRef[] = Array.from({ length: accounts }, () => freshAccount('consumer_wallet'))
      const funding = freshAccount('sandbox_funding', 'sandbox', 'platform')
      const totalFen = accounts * fundedEachFen
      await db.transaction().execute((tx) =>
        ledger.post(
          tx,
          {
            reference: { type: 'test.fund', id: 'conservation' },
            description: 'fund the wallets',
            transfers: wallets.map((wallet) => ({ debit: funding, credit: wallet, amount: fen(fundedEachFen) })),
          },
          Date.now(),
        ),
      )
      const pick = () => wallets[Math.floor(random() * accounts)]!
      const other = (than: AccountRef) => {
        let account = pick()
        while (account === than) account = pick()
        return account
      }
      const posted: Array<{ from: AccountRef; to: AccountRef; amount: number }> = []
      const counts = { transfer: 0, chain: 0, reversal: 0, refused: 0, aborted: 0 }

      const operation = (index: number): { posting: PostingInput; abort: boolean; kind: keyof typeof counts } => {
        const roll = random()
        const reference = { type: 'test.conservation', id: String(index) }
        if (roll < 0.15 && posted.length > 0) {
          // A refund: reverse an earlier transfer (which the floor may refuse if the money moved on).
          const earlier = posted[Math.floor(random() * posted.length)]!
          return {
            posting: {
              reference,
              description: 'reversal',
              transfers: [{ debit: earlier.to, credit: earlier.from, amount: fen(earlier.amount) }],
            },
            abort: false,
            kind: 'reversal',
          }
        }
        const from = pick()
        const to = other(from)
        if (roll < 0.3) {
          const third = other(to)
          return {
            posting: {
              reference,
              description: 'two hops',
              transfers: [
                { debit: from, credit: to, amount: fen(between(random, 1, 50_000)) },
                { debit: to, credit: third, amount: fen(between(random, 1, 50_000)) },
              ],
            },
            abort: false,
            kind: 'chain',
          }
        }
        // Now and then more than any wallet holds, which the floor must refuse.
        const amount = roll < 0.35 ? totalFen + 1 : between(random, 1, 200_000)
        return {
          posting: {
            reference,
            description: 'transfer',
            transfers: [{ debit: from, credit: to, amount: fen(amount) }],
          },
          abort: roll > 0.95,
          kind: 'transfer',
        }
      }

      let writing = true
      const reads = { statement: 0, snapshot: 0, verify: 0 }
      const owners = wallets.map((wallet) => wallet.ownerId)
      const readStatement = async () => {
        const row = await db
          .selectFrom('ledger_accounts')
          .select((eb) => [
            eb.fn.sum<number>(eb('credits_posted', '-', eb.ref('debits_posted'))).as('total'),
            eb.fn.min<number>(eb('credits_posted', '-', eb.ref('debits_posted'))).as('lowest'),
          ])
          .where('kind', '=', 'consumer_wallet')
          .where('owner_id', 'in', owners)
          .executeTakeFirstOrThrow()
        expect(Number(row.total), `sum of the wallets in one statement (seed ${seed})`).toBe(totalFen)
        expect(Number(row.lowest)).toBeGreaterThanOrEqual(0)
        reads.statement += 1
      }
      const readSnapshot = async () => {
        const balances = await db
          .transaction()
          .setIsolationLevel('repeatable read')
          .execute(async (tx) => {
            const seen: number[] = []
            for (const wallet of wallets) seen.push((await ledger.balance(tx, wallet)).balance)
            return seen
          })
        expect(
          balances.reduce((sum, balance) => sum + balance, 0),
          `sum of balance() in one snapshot (seed ${seed})`,
        ).toBe(totalFen)
        reads.snapshot += 1
      }
      const reader = async (which: number) => {
        for (let round = 0; writing; round += 1) {
          await (round % 2 === which % 2 ? readStatement() : readSnapshot())
          if (round % 50 === 49) {
            const result = await ledger.verify(db)
            expect(result.drift).toEqual([])
            expect(result.unbalancedPostings).toEqual([])
            reads.verify += 1
          }
          // Let the writers through; on SQLite readers share the one connection with them.
          await new Promise((resolve) => setTimeout(resolve, dialect === 'postgres' ? 5 : 1))
        }
      }
      const run = async (op: ReturnType<typeof operation>) => {
        try {
          await db.transaction().execute(async (tx) => {
            const result = await ledger.post(tx, op.posting, Date.now())
            // Posted, then the request fails: its posting must vanish, and no one else's.
            if (op.abort) throw new DeliberateFailure(result.postingId)
          })
          counts[op.kind] += 1
          if (op.kind === 'transfer') {
            const transfer = op.posting.transfers[0]!
            posted.push({ from: transfer.debit, to: transfer.credit, amount: transfer.amount })
          }
        } catch (error) {
          if (error instanceof DeliberateFailure) counts.aborted += 1
          else if ((error as { code?: string }).code === 'LEDGER_INSUFFICIENT_FUNDS') counts.refused += 1
          else throw error
        }
      }

      const readers = Array.from({ length: settings.bank.readers }, (_, index) => reader(index))
      const started = performance.now()
      try {
        for (let start = 0; start < operations; start += writers) {
          const batch = Array.from({ length: Math.min(writers, operations - start) }, (_, offset) =>
            operation(start + offset),
          )
          await Promise.all(batch.map(run))
        }
      } finally {
        writing = false
        await Promise.all(readers)
      }
      const elapsedMs = performance.now() - started
      await readStatement()
      await readSnapshot()
      await expectLedgerConsistent(db)
      const stored = await db
        .selectFrom('ledger_postings')
        .select((eb) => eb.fn.countAll<number>().as('count'))
        .where('reference_type', '=', 'test.conservation')
        .executeTakeFirstOrThrow()
      const committed = counts.transfer + counts.chain + counts.reversal
      console.info(
        `[${dialect}] conservation: ${JSON.stringify(counts)} in ${Math.round(elapsedMs)} ms ` +
          `(${Math.round((operations / elapsedMs) * 1000)} ops/s); reads ${JSON.stringify(reads)}`,
      )
      expect(Number(stored.count), 'postings stored = postings that committed (aborted ones vanished)').toBe(committed)
      expect(committed + counts.refused + counts.aborted).toBe(operations)
      expect(counts.refused).toBeGreaterThan(0)
      expect(counts.aborted).toBeGreaterThan(0)
      expect(reads.statement + reads.snapshot).toBeGreaterThan(10)
    },
    budgetMs(120_000, 900_000),
  )
})
