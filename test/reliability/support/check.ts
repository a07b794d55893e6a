/**
 * What a reliability run checks in the database once the server is down: every payment the
 * client saw acknowledged is there and paid; no trade was charged twice; the buyer's wallet
 * moved by exactly the sum of the paid trades; and the ledger recomputes without drift
 * (`baseplate ledger verify`'s own function).
 *
 * @example
 * const report = await checkPayments(storage.db, world, acknowledged)
 * expect(report.lost).toEqual([])
 */
import type { Kysely } from 'kysely'
import { verifyLedger } from '../../../src/capabilities/ledger/index.js'
import { walletBalance, type World } from './world.js'

export interface Acknowledged {
  readonly amountFen: number
  readonly tradeId: string
}

export interface PaymentReport {
  /** Acknowledged out_trade_no that the database does not hold as paid (with that amount). */
  readonly lost: string[]
  /** Trades with more than one payment posting. */
  readonly duplicated: string[]
  /** Paid trades in the database. */
  readonly paid: number
  /** Opening balance − Σ paid amounts − the wallet's balance: 0 unless money appeared or vanished. */
  readonly walletDriftFen: number
  /** Accounts whose totals differ from their entries, plus postings that do not balance. */
  readonly ledgerDrift: number
  readonly ledgerPostings: number
}

export async function checkPayments(
  db: Kysely<any>,
  world: World,
  acknowledged: ReadonlyMap<string, Acknowledged>,
): Promise<PaymentReport> {
  const trades = await db
    .selectFrom('payment_trades')
    .select(['id', 'out_trade_no', 'status', 'total_amount', 'buyer_id'])
    .where('merchant_id', '=', world.merchantId)
    .execute()
  const byOrder = new Map(trades.map((trade) => [trade.out_trade_no as string, trade]))
  const lost: string[] = []
  for (const [outTradeNo, ack] of acknowledged) {
    const trade = byOrder.get(outTradeNo)
    if (trade === undefined || trade.status !== 'paid' || Number(trade.total_amount) !== ack.amountFen) {
      lost.push(outTradeNo)
    } else if (trade.id !== ack.tradeId) lost.push(outTradeNo)
  }
  const duplicated = await db
    .selectFrom('ledger_postings')
    .select('reference_id')
    .where('reference_type', '=', 'trade.pay')
    .groupBy('reference_id')
    .having((eb) => eb.fn.countAll(), '>', 1)
    .execute()
  const paidByBuyer = trades.filter((trade) => trade.status === 'paid' && trade.buyer_id === world.buyerId)
  const spent = paidByBuyer.reduce((sum, trade) => sum + Number(trade.total_amount), 0)
  const balance = await walletBalance(db, world.buyerId)
  const verification = await verifyLedger(db)
  return {
    lost,
    duplicated: duplicated.map((row) => String(row.reference_id)),
    paid: trades.filter((trade) => trade.status === 'paid').length,
    walletDriftFen: world.openingBalanceFen - spent - balance,
    ledgerDrift: verification.drift.length + verification.unbalancedPostings.length,
    ledgerPostings: verification.postings,
  }
}
