/**
 * The bank workload, Jepsen's `bank` test on the ledger service: writers move money at random
 * between floored wallets while readers keep adding them up. Money is neither created nor
 * destroyed, so every read must sum to what was funded and no wallet may ever be seen below
 * zero; at the end every account's totals must equal its entries and every posting balance.
 * test/ledger-bank.test.ts (small, always on) and test/reliability/ledger-conservation.test.ts
 * (10^5 operations in the full run) are two sizes and mixes of this one loop.
 *
 * Writers are a pool: each takes the next operation as soon as its last one finished. The
 * operations are drawn from the seed in index order, so the sequence replays; which earlier
 * transfer a reversal undoes, and the interleaving, are up to the database. Readers
 * alternate between one statement over all wallets and one snapshot through the ledger
 * service (REPEATABLE READ), with a full `verifyLedger` every `verifyEvery` reads. A read
 * that breaks an invariant is recorded as a violation (the first 20 in detail) and stops the
 * run; an error a writer did not expect fails it.
 *
 * @example
 * const report = await runBank(bp().storage.db, ledgerOf(bp()), { ...conservationBank, dialect, operations: 4000 })
 * expect(report.violations).toEqual([])
 */
import type { Kysely } from 'kysely'
import type { AccountRef, LedgerService, PostingInput } from '../../../src/capabilities/ledger/index.js'
import { fen } from '../../../src/platform/money/money.js'
import type { DialectName } from '../../../src/storage/database.js'
import { freshAccount } from '../../ledger-helpers.js'
import { between, seeded } from './random.js'

/** Shares of the operations (the rest are plain single transfers). */
export interface BankMix {
  /** Reverse an earlier committed transfer, as a refund would (the floor may refuse it). */
  readonly reversal: number
  /** Two hops in one posting: a → b → c, each hop its own amount. */
  readonly chain: number
  /** A transfer of more than all the money there is, which the floor must refuse. */
  readonly overdraw: number
  /** A transfer posted, then failed on purpose inside its transaction: it must vanish. */
  readonly abort: number
}

export interface BankOptions {
  readonly dialect: DialectName
  readonly seed: number
  readonly accounts: number
  readonly fundedEachFen: number
  readonly operations: number
  readonly writers: number
  readonly readers: number
  /** Largest amount of a transfer or of one hop of a chain. */
  readonly amountFenMax: number
  readonly mix: BankMix
  /** A full `verifyLedger` every this many reads of each reader. */
  readonly verifyEvery: number
  /** The postings' reference type, so that the test can count what was stored. */
  readonly referenceType: string
}

export interface BankCounts {
  transfer: number
  chain: number
  reversal: number
  /** Refused by a floor (LEDGER_INSUFFICIENT_FUNDS), overdraws included. */
  refused: number
  /** Of which overdraws: the floor must refuse every one. */
  overdrawRefused: number
  /** Posted, then rolled back on purpose. */
  aborted: number
}

export interface BankReport {
  readonly seed: number
  readonly operations: number
  readonly totalFen: number
  readonly counts: BankCounts
  /** Operations that were meant to be overdraws. */
  readonly overdraws: number
  /** Postings that committed: transfers, chains and reversals. */
  readonly committed: number
  readonly reads: { statement: number; snapshot: number; verify: number }
  /** Reads (or verifications) that broke an invariant: the first 20 in detail. */
  readonly violations: string[]
  readonly violationCount: number
  /** Postings with the run's reference type in the database at the end. */
  readonly storedPostings: number
  /** verifyLedger at the end: accounts whose totals differ from their entries, unbalanced postings. */
  readonly finalDrift: number
  readonly finalUnbalanced: number
  readonly elapsedMs: number
  readonly operationsPerS: number
}

type Kind = 'transfer' | 'chain' | 'reversal'

interface Operation {
  readonly posting: PostingInput
  readonly kind: Kind
  readonly overdraw: boolean
  readonly abort: boolean
}

class DeliberateFailure extends Error {}

const violationDetailsMax = 20

/** Funds the wallets, runs the writers and readers to the end, and reports what happened. */
export async function runBank(db: Kysely<any>, ledger: LedgerService, options: BankOptions): Promise<BankReport> {
  const { seed, accounts, operations, mix } = options
  const random = seeded(seed)
  const wallets: AccountRef[] = Array.from({ length: accounts }, () => freshAccount('consumer_wallet'))
  const owners = wallets.map((wallet) => wallet.ownerId)
  const funding = freshAccount('sandbox_funding', 'sandbox', 'platform')
  const totalFen = accounts * options.fundedEachFen
  await db.transaction().execute((tx) =>
    ledger.post(
      tx,
      {
        reference: { type: `${options.referenceType}.fund`, id: String(seed) },
        description: 'fund the wallets',
        transfers: wallets.map((wallet) => ({ debit: funding, credit: wallet, amount: fen(options.fundedEachFen) })),
      },
      Date.now(),
    ),
  )

  const violations: string[] = []
  let violationCount = 0
  const violation = (detail: string) => {
    violationCount += 1
    if (violations.length < violationDetailsMax) violations.push(`${detail} (seed ${seed})`)
  }
  const counts: BankCounts = { transfer: 0, chain: 0, reversal: 0, refused: 0, overdrawRefused: 0, aborted: 0 }
  const reads = { statement: 0, snapshot: 0, verify: 0 }
  const posted: Array<{ from: AccountRef; to: AccountRef; amount: number }> = []
  let overdraws = 0

  const pick = () => wallets[Math.floor(random() * accounts)]!
  const other = (than: AccountRef) => {
    let account = pick()
    while (account === than) account = pick()
    return account
  }
  const amount = () => fen(between(random, 1, options.amountFenMax))
  const operation = (index: number): Operation => {
    const roll = random()
    const reference = { type: options.referenceType, id: String(index) }
    if (roll < mix.reversal && posted.length > 0) {
      const earlier = posted[Math.floor(random() * posted.length)]!
      const transfers = [{ debit: earlier.to, credit: earlier.from, amount: fen(earlier.amount) }]
      return {
        posting: { reference, description: 'reversal', transfers },
        kind: 'reversal',
        overdraw: false,
        abort: false,
      }
    }
    const from = pick()
    const to = other(from)
    if (roll < mix.reversal + mix.chain) {
      const transfers = [
        { debit: from, credit: to, amount: amount() },
        { debit: to, credit: other(to), amount: amount() },
      ]
      return {
        posting: { reference, description: 'two hops', transfers },
        kind: 'chain',
        overdraw: false,
        abort: false,
      }
    }
    const overdraw = roll < mix.reversal + mix.chain + mix.overdraw
    const transfers = [{ debit: from, credit: to, amount: overdraw ? fen(totalFen + 1) : amount() }]
    return {
      posting: { reference, description: 'transfer', transfers },
      kind: 'transfer',
      overdraw,
      abort: roll >= 1 - mix.abort,
    }
  }

  // Writers stop at the end, at the first violation a reader saw, or at an unexpected error.
  let stopped = false
  let next = 0
  const writer = async () => {
    while (!stopped && next < operations) {
      const op = operation(next)
      next += 1
      if (op.overdraw) overdraws += 1
      try {
        await db.transaction().execute(async (tx) => {
          const result = await ledger.post(tx, op.posting, Date.now())
          // Posted, then the request fails: its posting must vanish, and no one else's.
          if (op.abort) throw new DeliberateFailure(result.postingId)
        })
        if (op.overdraw) violation(`the floor let an overdraw through: ${JSON.stringify(op.posting.reference)}`)
        counts[op.kind] += 1
        if (op.kind === 'transfer') {
          const transfer = op.posting.transfers[0]!
          posted.push({ from: transfer.debit, to: transfer.credit, amount: transfer.amount })
        }
      } catch (error) {
        if (error instanceof DeliberateFailure) counts.aborted += 1
        else if ((error as { code?: string }).code === 'LEDGER_INSUFFICIENT_FUNDS') {
          counts.refused += 1
          if (op.overdraw) counts.overdrawRefused += 1
        } else {
          // Only a floor may refuse a posting here: a deadlock or anything else fails the run.
          stopped = true
          throw error
        }
      }
    }
  }

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
      .where('owner_id', 'in', owners)
      .executeTakeFirstOrThrow()
    reads.statement += 1
    if (Number(row.accounts) !== accounts) violation(`one statement saw ${row.accounts} of ${accounts} wallets`)
    if (Number(row.total) !== totalFen) violation(`one statement summed the wallets to ${row.total}, not ${totalFen}`)
    if (Number(row.lowest) < 0) violation(`one statement saw a wallet at ${row.lowest}`)
  }
  const readSnapshot = async () => {
    // One balance() per wallet inside one REPEATABLE READ transaction: one snapshot.
    const balances = await db
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute(async (tx) => {
        const seen: number[] = []
        for (const wallet of wallets) seen.push((await ledger.balance(tx, wallet)).balance)
        return seen
      })
    reads.snapshot += 1
    const sum = balances.reduce((total, balance) => total + balance, 0)
    if (sum !== totalFen) violation(`a snapshot of balance() summed to ${sum}, not ${totalFen}`)
    if (Math.min(...balances) < 0) violation(`a snapshot of balance() saw a wallet at ${Math.min(...balances)}`)
  }
  const verify = async () => {
    // verify reads in its own snapshot, so postings in flight never look like drift.
    const result = await ledger.verify(db)
    reads.verify += 1
    if (result.drift.length > 0) violation(`verify found drift: ${JSON.stringify(result.drift.slice(0, 3))}`)
    if (result.unbalancedPostings.length > 0) {
      violation(`verify found unbalanced postings: ${JSON.stringify(result.unbalancedPostings.slice(0, 3))}`)
    }
  }
  let writing = true
  const reader = async (which: number) => {
    for (let round = 0; writing; round += 1) {
      await (round % 2 === which % 2 ? readStatement() : readSnapshot())
      if (round % options.verifyEvery === options.verifyEvery - 1) await verify()
      if (violationCount > 0) stopped = true
      // On PostgreSQL a short pause leaves the two shared cores mostly to the writers. Not on
      // SQLite: its one connection is handed out in turn, so readers interleave with writers
      // through its queue, and a reader waiting on a timer would mostly wait.
      if (options.dialect === 'postgres') await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  const readers = Array.from({ length: options.readers }, (_, index) => reader(index))
  const started = performance.now()
  const outcome = await Promise.allSettled(Array.from({ length: options.writers }, writer))
  const elapsedMs = performance.now() - started
  writing = false
  await Promise.all(readers)
  const failure = outcome.find((result) => result.status === 'rejected')
  if (failure !== undefined) throw (failure as PromiseRejectedResult).reason

  await readStatement()
  await readSnapshot()
  const final = await ledger.verify(db)
  const stored = await db
    .selectFrom('ledger_postings')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('reference_type', '=', options.referenceType)
    .executeTakeFirstOrThrow()
  return {
    seed,
    operations,
    totalFen,
    counts,
    overdraws,
    committed: counts.transfer + counts.chain + counts.reversal,
    reads,
    violations,
    violationCount,
    storedPostings: Number(stored.count),
    finalDrift: final.drift.length,
    finalUnbalanced: final.unbalancedPostings.length,
    elapsedMs,
    operationsPerS: Math.round((operations / elapsedMs) * 1000),
  }
}

/** One line for the test log and docs/reliability.md. */
export function describeBank(report: BankReport): string {
  const { counts, reads } = report
  return (
    `${report.operations} operations in ${(report.elapsedMs / 1000).toFixed(1)} s (${report.operationsPerS}/s), ` +
    `seed ${report.seed}: ${counts.transfer} transfers, ${counts.chain} chains, ${counts.reversal} reversals, ` +
    `${counts.refused} refused (${counts.overdrawRefused} of ${report.overdraws} overdraws), ` +
    `${counts.aborted} aborted; reads: ${reads.statement} statements, ${reads.snapshot} snapshots, ` +
    `${reads.verify} verifies; violations ${report.violationCount}; ` +
    `final drift ${report.finalDrift}, unbalanced ${report.finalUnbalanced}, stored ${report.storedPostings}`
  )
}
