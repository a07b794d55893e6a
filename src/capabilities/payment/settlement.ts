/**
 * Settlement and profit sharing.
 *
 * Settlement moves what a trade left in the merchant's pending balance (total − refunds −
 * net fee − profit shared) to its available balance once the governable delay has passed,
 * and credits the ISV its commission: its share of the net fee, taken from the platform's
 * fee revenue. Profit sharing (分账) pays receivers the merchant has bound, from the
 * merchant's balance, capped at a governable share of the trade.
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
import { bpsDenominator, parameterKeys } from './pricing.js'
import type { PaymentTables, RoyaltiesTable, RoyaltyReceiversTable, TradesTable } from './tables.js'
import { feeAccount, merchantAccount, merchantShare, type TradeService } from './trades.js'

type Db = Kysely<PaymentTables>

export const settlementBatchMax = 500

function receiverView(row: RoyaltyReceiversTable) {
  return { receiver_id: row.receiver_id, name: row.name, memo: row.memo, created_at: isoTime(row.created_at) }
}

function royaltyView(tradeId: string, outRequestNo: string, rows: readonly RoyaltiesTable[]) {
  assert(rows.length > 0, 'a royalty request has at least one line')
  return {
    trade_id: tradeId,
    out_request_no: outRequestNo,
    created_at: isoTime(rows[0]!.created_at),
    royalties: rows.map((row) => ({ receiver_id: row.receiver_id, amount: row.amount, status: row.status })),
  }
}

export function createSettlementService(context: CapabilityContext, ledger: LedgerService, trades: TradeService) {
  async function settleLocked(db: Kysely<any>, trade: TradesTable, now: number) {
    assert(trade.settle_status === 'unsettled' && trade.paid_at !== null, 'only a paid, unsettled trade settles')
    const netFee = trade.fee_amount - trade.fee_refunded_amount
    const remaining = trade.total_amount - trade.refunded_amount - netFee - trade.royalty_amount
    const commission =
      trade.isv_id === null ? 0 : multiplyRatio(fen(netFee), trade.commission_share_bps, bpsDenominator, 'down')
    assert(remaining >= 0 && commission <= netFee, 'settlement amounts are within the trade')
    const transfers: Transfer[] = []
    if (remaining > 0) {
      transfers.push({
        debit: merchantAccount(trade, 'merchant_pending'),
        credit: merchantAccount(trade, 'merchant_available'),
        amount: fen(remaining),
      })
    }
    if (commission > 0) {
      transfers.push({
        debit: feeAccount(trade),
        credit: { kind: 'isv_commission', ownerId: trade.isv_id!, environment: trade.environment },
        amount: fen(commission),
      })
    }
    if (transfers.length > 0) {
      await ledger.post(
        db,
        {
          reference: { type: 'trade.settle', id: trade.id },
          description: `settlement of ${trade.out_trade_no}`,
          transfers,
        },
        now,
      )
    }
    await (db as Db)
      .updateTable('payment_trades')
      .set({ settle_status: 'settled', settled_at: now, commission_amount: commission, updated_at: now })
      .where('id', '=', trade.id)
      .where('settle_status', '=', 'unsettled')
      .execute()
    const settled: TradesTable = { ...trade, settle_status: 'settled', settled_at: now, commission_amount: commission }
    await context.events.emit(
      db,
      {
        type: 'payment.trade.settled',
        organizationId: trade.merchant_id,
        appId: trade.app_id,
        payload: trades.view(settled),
      },
      now,
    )
    return { settled: remaining, commission }
  }

  return {
    /**
     * Settles trades whose delay has passed: the merchant's own (an app asking) or all of
     * them (the worker, `merchantId` null). Each trade settles under its row lock, stamped with
     * `clock()` read there (JobSpec).
     */
    async settleDue(
      db: Kysely<any>,
      scope: { merchantId: string; environment: 'sandbox' | 'live' } | null,
      now: number,
      clock: () => number = () => now,
    ) {
      let query = (db as Db)
        .selectFrom('payment_trades')
        .select(['id', 'merchant_id', 'environment'])
        .where('settle_status', '=', 'unsettled')
        .where('settle_after', '<=', now)
        .where('status', 'in', ['paid', 'fully_refunded'])
      if (scope !== null) {
        query = query.where('merchant_id', '=', scope.merchantId).where('environment', '=', scope.environment)
      }
      const due = await query.orderBy('settle_after').orderBy('id').limit(settlementBatchMax).execute()
      const result = { settled_trades: 0, settled_amount: 0, commission_amount: 0 }
      const failed: string[] = []
      for (const row of due) {
        const principal = { tenantId: row.merchant_id, environment: row.environment } as AppPrincipal
        const settle = async (tx: Kysely<any>) => {
          const trade = await trades.lock(tx, principal, row.id, now)
          if (trade.settle_status !== 'unsettled') return
          // Stamped under the lock: after any refund that committed on the trade meanwhile.
          const { settled, commission } = await settleLocked(tx, trade, clock())
          result.settled_trades += 1
          result.settled_amount += settled
          result.commission_amount += commission
        }
        // The worker settles each trade in its own transaction, so one trade that cannot
        // settle never holds back the others (nor holds their locks); an app's request runs
        // in its own transaction and fails as a whole.
        if (db.isTransaction) await settle(db)
        else
          await db
            .transaction()
            .execute(settle)
            .catch((error: unknown) => {
              failed.push(`${row.id} (${String(error)})`)
            })
      }
      if (failed.length > 0) throw new Error(`settlement failed for trades ${failed.join(', ')}; the rest settled`)
      return result
    },

    async bindReceiver(
      db: Kysely<any>,
      principal: AppPrincipal,
      input: { receiver_id: string; name: string; memo?: string | undefined },
      now: number,
    ) {
      await trades.requireMerchant(db, principal)
      const receiver = await context.directory.organization(db, input.receiver_id)
      if (receiver === null) throw new AppError('PAYMENT_ORGANIZATION_NOT_FOUND', { field: 'body.receiver_id' })
      const row: RoyaltyReceiversTable = {
        merchant_id: principal.tenantId,
        environment: principal.environment,
        receiver_id: input.receiver_id,
        name: input.name,
        memo: input.memo ?? null,
        created_at: now,
      }
      // Binding again updates the name and memo: binding is idempotent by receiver.
      await (db as Db)
        .insertInto('payment_royalty_receivers')
        .values(row)
        .onConflict((oc) =>
          oc.columns(['merchant_id', 'environment', 'receiver_id']).doUpdateSet({ name: row.name, memo: row.memo }),
        )
        .execute()
      return receiverView(row)
    },

    async unbindReceiver(db: Kysely<any>, principal: AppPrincipal, receiverId: string) {
      const deleted = await (db as Db)
        .deleteFrom('payment_royalty_receivers')
        .where('merchant_id', '=', principal.tenantId)
        .where('environment', '=', principal.environment)
        .where('receiver_id', '=', receiverId)
        .executeTakeFirst()
      if (deleted.numDeletedRows === 0n)
        throw new AppError('PAYMENT_ROYALTY_RECEIVER_NOT_FOUND', { field: 'params.receiver_id' })
      return { receiver_id: receiverId, unbound: true }
    },

    async listReceivers(db: Kysely<any>, principal: AppPrincipal) {
      const rows = await (db as Db)
        .selectFrom('payment_royalty_receivers')
        .selectAll()
        .where('merchant_id', '=', principal.tenantId)
        .where('environment', '=', principal.environment)
        .orderBy('receiver_id')
        .limit(200)
        .execute()
      return { data: rows.map(receiverView) }
    },

    async settleRoyalty(
      db: Kysely<any>,
      principal: AppPrincipal,
      tradeId: string,
      input: { out_request_no: string; royalties: ReadonlyArray<{ receiver_id: string; amount: number }> },
      now: number,
    ) {
      const trade = await trades.lock(db, principal, tradeId, now)
      const existing = await (db as Db)
        .selectFrom('payment_royalties')
        .selectAll()
        .where('trade_id', '=', trade.id)
        .where('out_request_no', '=', input.out_request_no)
        .orderBy('id')
        .execute()
      if (existing.length > 0) {
        const lines = (items: ReadonlyArray<{ receiver_id: string; amount: number }>) =>
          items
            .map((line) => `${line.receiver_id}:${line.amount}`)
            .sort()
            .join(',')
        const same = lines(existing) === lines(input.royalties)
        if (!same) throw new AppError('PAYMENT_ROYALTY_REQUEST_CONFLICT', { field: 'body.out_request_no' })
        return royaltyView(trade.id, input.out_request_no, existing)
      }
      if (trade.status !== 'paid') throw new AppError('PAYMENT_TRADE_NOT_PAID')
      const bound = await (db as Db)
        .selectFrom('payment_royalty_receivers')
        .select('receiver_id')
        .where('merchant_id', '=', trade.merchant_id)
        .where('environment', '=', trade.environment)
        .execute()
      const boundIds = new Set(bound.map((row) => row.receiver_id))
      for (const line of input.royalties) {
        if (!boundIds.has(line.receiver_id))
          throw new AppError('PAYMENT_ROYALTY_RECEIVER_UNKNOWN', { field: 'body.royalties' })
      }
      const merchant = await context.directory.organization(db, trade.merchant_id)
      const shareMax = await context.policy.get<number>(db, parameterKeys.royaltyShareMaxBps, {
        industry: merchant?.industry ?? null,
        merchantId: trade.merchant_id,
        at: now,
      })
      const requested = input.royalties.reduce((sum, line) => sum + line.amount, 0)
      // The policy caps the share of the trade; what the merchant still holds of it caps it too.
      const policyCap = multiplyRatio(
        fen(trade.total_amount - trade.refunded_amount),
        shareMax.value,
        bpsDenominator,
        'down',
      )
      const cap = Math.min(policyCap, trade.royalty_amount + merchantShare(trade))
      if (trade.royalty_amount + requested > cap) {
        throw new AppError('PAYMENT_ROYALTY_EXCEEDS_SHARE', {
          field: 'body.royalties',
          message:
            `Profit sharing would total ${trade.royalty_amount + requested}; the cap is ${cap} ` +
            `(${shareMax.value} bps, policy version ${shareMax.version})`,
        })
      }
      const source = merchantAccount(
        trade,
        trade.settle_status === 'settled' ? 'merchant_available' : 'merchant_pending',
      )
      try {
        await ledger.post(
          db,
          {
            reference: { type: 'trade.royalty', id: trade.id },
            description: `profit sharing ${input.out_request_no} of ${trade.out_trade_no}`,
            transfers: input.royalties.map((line) => ({
              debit: source,
              amount: fen(line.amount),
              credit: { kind: 'royalty_receiver', ownerId: line.receiver_id, environment: trade.environment },
            })),
          },
          now,
        )
      } catch (error) {
        if (isAppError(error) && error.code === 'LEDGER_INSUFFICIENT_FUNDS')
          throw new AppError('PAYMENT_MERCHANT_FUNDS_INSUFFICIENT')
        throw error
      }
      const rows: RoyaltiesTable[] = input.royalties.map((line) => ({
        id: newId('roy'),
        trade_id: trade.id,
        out_request_no: input.out_request_no,
        receiver_id: line.receiver_id,
        amount: line.amount,
        status: 'succeeded',
        created_at: now,
      }))
      await (db as Db).insertInto('payment_royalties').values(rows).execute()
      await (db as Db)
        .updateTable('payment_trades')
        .set({ royalty_amount: trade.royalty_amount + requested, updated_at: now })
        .where('id', '=', trade.id)
        .execute()
      const result = royaltyView(trade.id, input.out_request_no, rows)
      await context.events.emit(
        db,
        { type: 'payment.royalty.settled', organizationId: trade.merchant_id, appId: trade.app_id, payload: result },
        now,
      )
      return result
    },

    async getRoyalty(db: Kysely<any>, principal: AppPrincipal, tradeId: string, outRequestNo: string) {
      const rows = await (db as Db)
        .selectFrom('payment_royalties')
        .innerJoin('payment_trades', 'payment_trades.id', 'payment_royalties.trade_id')
        .selectAll('payment_royalties')
        .where('payment_trades.id', '=', tradeId)
        .where('payment_trades.merchant_id', '=', principal.tenantId)
        .where('payment_trades.environment', '=', principal.environment)
        .where('payment_royalties.out_request_no', '=', outRequestNo)
        .orderBy('payment_royalties.id')
        .execute()
      if (rows.length === 0) throw new AppError('PAYMENT_ROYALTY_NOT_FOUND', { field: 'params.out_request_no' })
      return royaltyView(tradeId, outRequestNo, rows)
    },
  }
}

export type SettlementService = ReturnType<typeof createSettlementService>
