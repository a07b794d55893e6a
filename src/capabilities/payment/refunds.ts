/**
 * Refunds: partial and repeated, idempotent on the merchant's out_request_no, and never
 * above what was paid. The fee is refunded in proportion, computed on cumulative totals so
 * that rounding never drifts (the last refund returns exactly the rest of the fee). After
 * settlement the money comes from the merchant's available balance, and the ISV's commission
 * on the refunded fee is clawed back first.
 */
import type { Kysely } from 'kysely'
import { assert } from '../../assert.js'
import { AppError, isAppError } from '../../errors.js'
import { newId } from '../../platform/ids.js'
import { fen, multiplyRatio } from '../../platform/money/money.js'
import type { AppPrincipal } from '../../server/route-kit.js'
import { isoTime } from '../../server/schemas.js'
import type { CapabilityContext } from '../contract.js'
import type { LedgerService, Transfer } from '../ledger/index.js'
import { channels } from './channels.js'
import { bpsDenominator } from './pricing.js'
import type { RefundView } from './schema.js'
import type { PaymentTables, RefundsTable, TradesTable } from './tables.js'
import { feeAccount, merchantAccount, merchantShare, type TradeService } from './trades.js'

type Db = Kysely<PaymentTables>

/** Cancel's refund number: `#` is outside the schema of `out_request_no`, so it never collides. */
export const cancelRequestNo = '#cancel'

function refundView(row: RefundsTable, tradeRefunded: number): RefundView {
  return {
    id: row.id,
    trade_id: row.trade_id,
    out_request_no: row.out_request_no,
    amount: row.amount,
    fee_refund_amount: row.fee_refund_amount,
    status: row.status,
    reason: row.reason,
    trade_refunded_amount: tradeRefunded,
    created_at: isoTime(row.created_at),
  }
}

export interface RefundInput {
  readonly out_request_no: string
  readonly amount: number
  readonly reason?: string | undefined
}

export function createRefundService(context: CapabilityContext, ledger: LedgerService, trades: TradeService) {
  async function refundLocked(db: Kysely<any>, trade: TradesTable, input: RefundInput, now: number) {
    const existing = await (db as Db)
      .selectFrom('payment_refunds')
      .selectAll()
      .where('trade_id', '=', trade.id)
      .where('out_request_no', '=', input.out_request_no)
      .executeTakeFirst()
    if (existing !== undefined) {
      if (existing.amount !== input.amount)
        throw new AppError('PAYMENT_REFUND_REQUEST_CONFLICT', { field: 'body.out_request_no' })
      return { refund: refundView(existing, trade.refunded_amount), trade }
    }
    if (trade.status !== 'paid') throw new AppError('PAYMENT_TRADE_NOT_REFUNDABLE')
    const refundedAfter = trade.refunded_amount + input.amount
    if (refundedAfter > trade.total_amount) {
      throw new AppError('PAYMENT_REFUND_EXCEEDS_PAID', {
        field: 'body.amount',
        message:
          `Refunding ${input.amount} would bring refunds to ${refundedAfter}, ` +
          `above the ${trade.total_amount} paid`,
      })
    }
    const feeRefundedAfter =
      refundedAfter === trade.total_amount
        ? trade.fee_amount
        : multiplyRatio(fen(trade.fee_amount), refundedAfter, trade.total_amount, 'down')
    const feeRefund = feeRefundedAfter - trade.fee_refunded_amount
    const settled = trade.settle_status === 'settled'
    const commissionAfter =
      settled && trade.isv_id !== null
        ? multiplyRatio(fen(trade.fee_amount - feeRefundedAfter), trade.commission_share_bps, bpsDenominator, 'down')
        : trade.commission_amount
    const clawback = trade.commission_amount - commissionAfter
    assert(feeRefund >= 0 && feeRefund <= input.amount && clawback >= 0, 'refund split is consistent')
    const shareAfter = merchantShare({
      ...trade,
      refunded_amount: refundedAfter,
      fee_refunded_amount: feeRefundedAfter,
    })
    if (shareAfter < 0) {
      throw new AppError('PAYMENT_REFUND_BLOCKED_BY_ROYALTY', {
        field: 'body.amount',
        message:
          `Profit already shared from this trade (${trade.royalty_amount}) leaves ` +
          `${merchantShare(trade)} to refund from; this refund needs ${input.amount - feeRefund}`,
      })
    }

    const channel = channels[trade.channel!]
    const payee = channel.fundingAccount(trade)
    const merchant = merchantAccount(trade, settled ? 'merchant_available' : 'merchant_pending')
    const transfers: Transfer[] = []
    if (clawback > 0) {
      transfers.push({
        debit: { kind: 'isv_commission', ownerId: trade.isv_id!, environment: trade.environment },
        credit: feeAccount(trade),
        amount: fen(clawback),
      })
    }
    if (input.amount - feeRefund > 0)
      transfers.push({ debit: merchant, credit: payee, amount: fen(input.amount - feeRefund) })
    if (feeRefund > 0) transfers.push({ debit: feeAccount(trade), credit: payee, amount: fen(feeRefund) })
    try {
      await ledger.post(
        db,
        {
          reference: { type: 'trade.refund', id: trade.id },
          description: `refund ${input.out_request_no} of ${trade.out_trade_no}`,
          transfers,
        },
        now,
      )
    } catch (error) {
      if (isAppError(error) && error.code === 'LEDGER_INSUFFICIENT_FUNDS') {
        throw new AppError('PAYMENT_MERCHANT_FUNDS_INSUFFICIENT')
      }
      throw error
    }
    // The channel moves the money back only once the ledger has accepted the refund, with the
    // refund's own number as its idempotency key, so a retry never refunds twice upstream.
    await channel.refund(trade, input.amount, `${trade.id}:${input.out_request_no}`, now)
    const status = refundedAfter === trade.total_amount ? 'fully_refunded' : 'paid'
    const updated = await (db as Db)
      .updateTable('payment_trades')
      .set({
        refunded_amount: refundedAfter,
        fee_refunded_amount: feeRefundedAfter,
        commission_amount: commissionAfter,
        status,
        updated_at: now,
      })
      .where('id', '=', trade.id)
      .where('refunded_amount', '=', trade.refunded_amount)
      .executeTakeFirst()
    assert(updated.numUpdatedRows === 1n, 'the locked trade did not change under us')
    const row: RefundsTable = {
      id: newId('refund'),
      trade_id: trade.id,
      out_request_no: input.out_request_no,
      amount: input.amount,
      fee_refund_amount: feeRefund,
      commission_clawback_amount: clawback,
      reason: input.reason ?? null,
      status: 'succeeded',
      created_at: now,
    }
    await (db as Db).insertInto('payment_refunds').values(row).execute()
    const after: TradesTable = {
      ...trade,
      refunded_amount: refundedAfter,
      fee_refunded_amount: feeRefundedAfter,
      commission_amount: commissionAfter,
      status,
      updated_at: now,
    }
    const refund = refundView(row, refundedAfter)
    await context.events.emit(
      db,
      { type: 'payment.refund.succeeded', organizationId: trade.merchant_id, appId: trade.app_id, payload: refund },
      now,
    )
    return { refund, trade: after }
  }

  return {
    async refund(db: Kysely<any>, principal: AppPrincipal, tradeId: string, input: RefundInput, now: number) {
      const trade = await trades.refresh(db, await trades.lock(db, principal, tradeId, now), now)
      return (await refundLocked(db, trade, input, now)).refund
    },

    async get(db: Kysely<any>, principal: AppPrincipal, tradeId: string, outRequestNo: string) {
      const trade = await (db as Db)
        .selectFrom('payment_trades')
        .selectAll()
        .where('id', '=', tradeId)
        .where('merchant_id', '=', principal.tenantId)
        .where('environment', '=', principal.environment)
        .executeTakeFirst()
      if (trade === undefined) throw new AppError('PAYMENT_TRADE_NOT_FOUND', { field: 'params.trade_id' })
      const row = await (db as Db)
        .selectFrom('payment_refunds')
        .selectAll()
        .where('trade_id', '=', tradeId)
        .where('out_request_no', '=', outRequestNo)
        .executeTakeFirst()
      if (row === undefined) throw new AppError('PAYMENT_REFUND_NOT_FOUND', { field: 'params.out_request_no' })
      return refundView(row, trade.refunded_amount)
    },

    /** Cancel: close an unpaid trade, or refund the rest of a paid one (Alipay's semantics). */
    async cancel(db: Kysely<any>, principal: AppPrincipal, tradeId: string, now: number) {
      const trade = await trades.refresh(db, await trades.lock(db, principal, tradeId, now), now)
      if (trade.status === 'wait_buyer_pay') {
        return { trade: trades.view(await trades.closeLocked(db, trade, 'cancelled', now)), action: 'close' as const }
      }
      if (trade.status === 'paid') {
        const rest = trade.total_amount - trade.refunded_amount
        const result = await refundLocked(
          db,
          trade,
          { out_request_no: cancelRequestNo, amount: rest, reason: 'cancelled' },
          now,
        )
        return { trade: trades.view(result.trade), action: 'refund' as const }
      }
      return { trade: trades.view(trade), action: trade.status === 'closed' ? ('close' as const) : ('refund' as const) }
    },
  }
}

export type RefundService = ReturnType<typeof createRefundService>
