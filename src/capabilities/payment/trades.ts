/**
 * Trades: create (buyer known), precreate (QR), pay by barcode, query, close, cancel, expiry.
 *
 * State machine (docs/guides/payments.md):
 *
 *     wait_buyer_pay --pay--> paid --refund (all)--> fully_refunded
 *           |
 *           +--close / cancel / expiry--> closed
 *
 * Every transition runs under the trade's row lock (a no-op UPDATE taken first in the
 * transaction: a row lock on PostgreSQL, and SQLite serialises writers anyway), so pay,
 * close and expiry of one trade never interleave; whichever commits first wins and the
 * others see its result. Money moves in the same transaction as the state change.
 */
import crypto from 'node:crypto'
import type { Kysely } from 'kysely'
import { assert } from '../../assert.js'
import { AppError, isAppError } from '../../errors.js'
import { newId } from '../../platform/ids.js'
import { fen, multiplyRatio } from '../../platform/money/money.js'
import type { AppPrincipal } from '../../server/route-kit.js'
import { isoTime } from '../../server/schemas.js'
import { everyColumn, pickColumns, prepared } from '../../storage/prepared.js'
import type { CapabilityContext, EventInput, OrganizationProfile } from '../contract.js'
import type { LedgerService, Transfer } from '../ledger/index.js'
import { channels, sandboxScripts, type PaymentSource, type SandboxScript } from './channels.js'
import type { ConsumerService } from './consumers.js'
import { bpsDenominator, parameterKeys, priceFor } from './pricing.js'
import type { TradeView } from './schema.js'
import type { ChannelId, PaymentTables, TradeKind, TradesTable } from './tables.js'
import { notBefore } from '../../storage/expressions.js'

type Db = Kysely<PaymentTables>

const tradeColumns = everyColumn<TradesTable>()([
  'id',
  'environment',
  'merchant_id',
  'app_id',
  'isv_id',
  'out_trade_no',
  'subject',
  'store_id',
  'kind',
  'status',
  'total_amount',
  'refunded_amount',
  'fee_amount',
  'fee_refunded_amount',
  'fee_rate_bps',
  'fee_policy_version',
  'commission_share_bps',
  'commission_policy_version',
  'commission_amount',
  'royalty_amount',
  'buyer_id',
  'channel',
  'channel_state',
  'channel_ready_at',
  'qr_token',
  'settle_status',
  'settle_after',
  'settled_at',
  'paid_at',
  'closed_at',
  'close_reason',
  'expires_at',
  'created_at',
  'updated_at',
])

// ON CONFLICT DO NOTHING rather than catching the violation: on PostgreSQL a failed statement
// aborts the whole transaction, and the caller still needs to read the winner.
const insertTradeUnlessTaken = prepared((db: Db, row: TradesTable) =>
  db
    .insertInto('payment_trades')
    .values(pickColumns(row, tradeColumns))
    .onConflict((oc) => oc.columns(['merchant_id', 'environment', 'out_trade_no']).doNothing()),
)

const markPaid = prepared(
  (db: Db, p: { id: string; channel: ChannelId; buyerId: string | null; now: number; settleAfter: number }) =>
    db
      .updateTable('payment_trades')
      .set({
        status: 'paid',
        channel: p.channel,
        channel_state: 'succeeded',
        buyer_id: p.buyerId,
        paid_at: p.now,
        settle_after: p.settleAfter,
        updated_at: p.now,
      })
      .where('id', '=', p.id)
      .where('status', '=', 'wait_buyer_pay'),
)

export const tradeTimeoutSDefault = 900
export const expiryBatchMax = 200

export interface TradeInput {
  readonly out_trade_no: string
  readonly total_amount: number
  readonly subject: string
  readonly store_id?: string | undefined
  readonly timeout_seconds?: number | undefined
}

export function tradeView(row: TradesTable, publicUrl: string): TradeView {
  const time = (ms: number | null) => (ms === null ? null : isoTime(ms))
  return {
    id: row.id,
    out_trade_no: row.out_trade_no,
    merchant_id: row.merchant_id,
    app_id: row.app_id,
    environment: row.environment,
    kind: row.kind,
    status: row.status,
    subject: row.subject,
    store_id: row.store_id,
    total_amount: row.total_amount,
    refunded_amount: row.refunded_amount,
    fee_amount: row.fee_amount,
    fee_rate_bps: row.fee_rate_bps,
    fee_policy_version: row.fee_policy_version,
    commission_share_bps: row.commission_share_bps,
    commission_policy_version: row.commission_policy_version,
    buyer_id: row.buyer_id,
    channel: row.channel,
    qr_code: row.qr_token === null ? null : `${publicUrl}/pay/${row.qr_token}`,
    settle_status: row.settle_status,
    paid_at: time(row.paid_at),
    closed_at: time(row.closed_at),
    close_reason: row.close_reason,
    settled_at: time(row.settled_at),
    expires_at: isoTime(row.expires_at),
    created_at: isoTime(row.created_at),
  }
}

export function merchantAccount(trade: TradesTable, kind: 'merchant_pending' | 'merchant_available') {
  return { kind, ownerId: trade.merchant_id, environment: trade.environment } as const
}

/**
 * The platform's fee revenue from one merchant. One account per merchant rather than one for
 * the platform: every payment credits it, and a single shared row would serialise all
 * payments on its lock. The platform's revenue is the sum over merchants.
 */
/**
 * What the merchant still holds of a trade: paid, less the fee, less refunds (net of their
 * fee), less profit shared. It must never go below zero: a refund or a share that would take
 * it there would be paid with another trade's money.
 */
export function merchantShare(
  trade: Pick<
    TradesTable,
    'total_amount' | 'fee_amount' | 'refunded_amount' | 'fee_refunded_amount' | 'royalty_amount'
  >,
): number {
  return (
    trade.total_amount - trade.fee_amount - (trade.refunded_amount - trade.fee_refunded_amount) - trade.royalty_amount
  )
}

export function feeAccount(trade: Pick<TradesTable, 'merchant_id' | 'environment'>) {
  return { kind: 'platform_fee_revenue', ownerId: trade.merchant_id, environment: trade.environment } as const
}

export function createTradeService(context: CapabilityContext, ledger: LedgerService, consumers: ConsumerService) {
  const publicUrl = context.config.publicUrl
  const view = (row: TradesTable) => tradeView(row, publicUrl)
  const event = (type: string, trade: TradesTable, payload: Record<string, unknown>): EventInput => ({
    type,
    organizationId: trade.merchant_id,
    appId: trade.app_id,
    payload,
  })
  const emit = (db: Kysely<any>, type: string, trade: TradesTable, payload: Record<string, unknown>, now: number) =>
    context.events.emit(db, event(type, trade, payload), now)

  async function requireMerchant(db: Kysely<any>, principal: AppPrincipal): Promise<OrganizationProfile> {
    const merchant = await context.directory.organization(db, principal.tenantId)
    if (merchant === null || merchant.kind !== 'merchant') throw new AppError('PAYMENT_MERCHANT_REQUIRED')
    return merchant
  }

  /** Takes the trade's row lock and reads it; another tenant's trade is not found. */
  async function lock(db: Kysely<any>, principal: AppPrincipal, tradeId: string, now: number): Promise<TradesTable> {
    const locked = await (db as Db)
      .updateTable('payment_trades')
      .set({ updated_at: notBefore('updated_at', now) })
      .where('id', '=', tradeId)
      .where('merchant_id', '=', principal.tenantId)
      .where('environment', '=', principal.environment)
      .executeTakeFirst()
    if (locked.numUpdatedRows === 0n) throw new AppError('PAYMENT_TRADE_NOT_FOUND', { field: 'params.trade_id' })
    return (db as Db).selectFrom('payment_trades').selectAll().where('id', '=', tradeId).executeTakeFirstOrThrow()
  }

  async function lockByQrToken(db: Kysely<any>, qrToken: string, now: number): Promise<TradesTable | null> {
    const locked = await (db as Db)
      .updateTable('payment_trades')
      .set({ updated_at: notBefore('updated_at', now) })
      .where('qr_token', '=', qrToken)
      .executeTakeFirst()
    if (locked.numUpdatedRows === 0n) return null
    return (db as Db).selectFrom('payment_trades').selectAll().where('qr_token', '=', qrToken).executeTakeFirstOrThrow()
  }

  /**
   * Inserts the trade, or finds the one with the same out_trade_no. The merchant's order
   * number is a natural idempotency key: the same order again returns the same trade;
   * another order under the same number is refused. A new trade's `payment.trade.created`
   * event is the caller's to write (`created`), so that a trade paid at once writes it with the
   * payment's event in one statement.
   */
  async function insert(
    db: Kysely<any>,
    principal: AppPrincipal,
    merchant: OrganizationProfile,
    input: TradeInput,
    kind: TradeKind,
    buyerId: string | null,
    now: number,
  ): Promise<{ trade: TradesTable; created: EventInput | null }> {
    const pricing = await priceFor(context.policy, db, merchant, now)
    const total = fen(input.total_amount)
    const row: TradesTable = {
      id: newId('trade'),
      environment: principal.environment,
      merchant_id: merchant.id,
      app_id: principal.appId,
      isv_id: principal.actingFor === null ? null : principal.organizationId,
      out_trade_no: input.out_trade_no,
      subject: input.subject,
      store_id: input.store_id ?? null,
      kind,
      status: 'wait_buyer_pay',
      total_amount: total,
      refunded_amount: 0,
      fee_amount: multiplyRatio(total, pricing.feeRateBps, bpsDenominator, 'half-even'),
      fee_refunded_amount: 0,
      fee_rate_bps: pricing.feeRateBps,
      fee_policy_version: pricing.feePolicyVersion,
      commission_share_bps: pricing.commissionShareBps,
      commission_policy_version: pricing.commissionPolicyVersion,
      commission_amount: 0,
      royalty_amount: 0,
      buyer_id: buyerId,
      channel: null,
      channel_state: null,
      channel_ready_at: null,
      qr_token: kind === 'barcode' ? null : crypto.randomBytes(18).toString('base64url'),
      settle_status: 'unsettled',
      settle_after: null,
      settled_at: null,
      paid_at: null,
      closed_at: null,
      close_reason: null,
      expires_at: now + (input.timeout_seconds ?? tradeTimeoutSDefault) * 1000,
      created_at: now,
      updated_at: now,
    }
    if ((await insertTradeUnlessTaken.affected(db, row)) === 1) {
      return { trade: row, created: event('payment.trade.created', row, view(row)) }
    }
    const existing = await (db as Db)
      .selectFrom('payment_trades')
      .selectAll()
      .where('merchant_id', '=', merchant.id)
      .where('environment', '=', principal.environment)
      .where('out_trade_no', '=', input.out_trade_no)
      .executeTakeFirstOrThrow()
    // The buyer is part of the order only when the merchant named it (create); a barcode or
    // QR trade learns its buyer when paid, and a retry must still find it.
    const same =
      existing.kind === kind &&
      existing.total_amount === total &&
      existing.subject === input.subject &&
      (kind !== 'create' || existing.buyer_id === buyerId)
    if (!same) throw new AppError('PAYMENT_OUT_TRADE_NO_TAKEN', { field: 'body.out_trade_no' })
    return { trade: await lock(db, principal, existing.id, now), created: null }
  }

  /** {@link insert}, writing a new trade's created event at once. */
  async function insertAndAnnounce(...args: Parameters<typeof insert>): Promise<TradesTable> {
    const [db, , , , , , now] = args
    const { trade, created } = await insert(...args)
    if (created !== null) await context.events.emit(db, created, now)
    return trade
  }

  /**
   * Pays a waiting trade; call with the trade locked and waiting. `alsoEmit` are events of the
   * same change, written in one statement with the payment's (the trade's creation, when it is
   * paid at once). The ledger posting comes last: on PostgreSQL it locks the merchant's hot
   * accounts (pending, fee), which every payment of that merchant updates, so the fewer
   * statements run between it and the COMMIT, the less concurrent payments queue. If the
   * posting is refused, the caller's transaction (trade update and event included) rolls back.
   */
  async function completePayment(
    db: Kysely<any>,
    trade: TradesTable,
    channelId: 'wallet' | 'sandbox',
    buyerId: string | null,
    now: number,
    knownMerchant?: OrganizationProfile,
    alsoEmit: readonly EventInput[] = [],
  ): Promise<TradesTable> {
    assert(trade.status === 'wait_buyer_pay', 'only a waiting trade can be paid')
    assert(knownMerchant === undefined || knownMerchant.id === trade.merchant_id, 'the trade belongs to the merchant')
    const paying = { ...trade, channel: channelId, buyer_id: buyerId }
    const funding = channels[channelId].fundingAccount(paying)
    const transfers: Transfer[] = [
      { debit: funding, credit: merchantAccount(trade, 'merchant_pending'), amount: fen(trade.total_amount) },
    ]
    if (trade.fee_amount > 0) {
      transfers.push({
        debit: merchantAccount(trade, 'merchant_pending'),
        credit: feeAccount(trade),
        amount: fen(trade.fee_amount),
      })
    }
    const merchant = knownMerchant ?? (await context.directory.organization(db, trade.merchant_id))
    const delay = await context.policy.get<number>(db, parameterKeys.settlementDelayS, {
      industry: merchant?.industry ?? null,
      merchantId: trade.merchant_id,
      at: now,
    })
    const paid: TradesTable = {
      ...paying,
      status: 'paid',
      channel_state: 'succeeded',
      paid_at: now,
      settle_after: now + delay.value * 1000,
      updated_at: now,
    }
    const updated = await markPaid.affected(db, {
      id: trade.id,
      channel: channelId,
      buyerId,
      now,
      settleAfter: paid.settle_after!,
    })
    assert(updated === 1, 'the locked trade was waiting for payment')
    await context.events.emitAll(db, [...alsoEmit, event('payment.trade.paid', paid, view(paid))], now)
    try {
      await ledger.post(
        db,
        { reference: { type: 'trade.pay', id: trade.id }, description: `payment of ${trade.out_trade_no}`, transfers },
        now,
      )
    } catch (error) {
      if (isAppError(error) && error.code === 'LEDGER_INSUFFICIENT_FUNDS')
        throw new AppError('PAYMENT_BALANCE_INSUFFICIENT')
      throw error
    }
    return paid
  }

  async function close(db: Kysely<any>, trade: TradesTable, reason: 'closed' | 'cancelled' | 'expired', now: number) {
    assert(trade.status === 'wait_buyer_pay', 'only a waiting trade can be closed')
    if (holdsPayment(trade)) {
      // The channel may hold the consumer's money: closing now would lose it. Query again.
      throw new AppError('PAYMENT_TRADE_NOT_CLOSABLE', {
        message: 'The channel has not answered for this payment yet; query the trade and try again',
      })
    }
    const updated = await (db as Db)
      .updateTable('payment_trades')
      .set({ status: 'closed', closed_at: now, close_reason: reason, updated_at: now })
      .where('id', '=', trade.id)
      .where('status', '=', 'wait_buyer_pay')
      .executeTakeFirst()
    assert(updated.numUpdatedRows === 1n, 'the locked trade was waiting')
    const closed: TradesTable = { ...trade, status: 'closed', closed_at: now, close_reason: reason, updated_at: now }
    await emit(db, 'payment.trade.closed', closed, view(closed), now)
    return closed
  }

  /** Whether the channel may hold this trade's money without having confirmed it yet. */
  function holdsPayment(trade: TradesTable): boolean {
    return trade.channel !== null && (trade.channel_state === 'pending' || trade.channel_state === 'unknown')
  }

  /**
   * Brings a waiting trade up to date: asks the channel about an open payment, and closes a
   * trade whose time ran out. A payment the channel already holds is never closed by expiry:
   * the money moved, so the trade becomes paid once the channel confirms.
   */
  async function refresh(db: Kysely<any>, current: TradesTable, now: number): Promise<TradesTable> {
    let trade = current
    if (trade.status !== 'wait_buyer_pay') return trade
    if (holdsPayment(trade)) {
      const outcome = await channels[trade.channel!].query(trade, now)
      if (outcome.state === 'succeeded') return completePayment(db, trade, trade.channel!, trade.buyer_id, now)
      if (outcome.state !== 'declined') return trade
      // The channel let go of the payment: the trade waits again, and expiry applies.
      await (db as Db)
        .updateTable('payment_trades')
        .set({ channel_state: null, channel_ready_at: null, updated_at: now })
        .where('id', '=', trade.id)
        .execute()
      trade = { ...trade, channel_state: null, channel_ready_at: null }
    }
    if (trade.expires_at <= now) return close(db, trade, 'expired', now)
    return trade
  }

  function sourceFor(authCode: string): { script: SandboxScript } | null {
    return (sandboxScripts as readonly string[]).includes(authCode) ? { script: authCode as SandboxScript } : null
  }

  return {
    lock,
    refresh,
    view,
    requireMerchant,

    async create(db: Kysely<any>, principal: AppPrincipal, input: TradeInput & { buyer_id: string }, now: number) {
      const merchant = await requireMerchant(db, principal)
      if (!(await consumers.exists(db, principal.environment, input.buyer_id))) {
        throw new AppError('PAYMENT_CONSUMER_NOT_FOUND', { field: 'body.buyer_id' })
      }
      return view(await insertAndAnnounce(db, principal, merchant, input, 'create', input.buyer_id, now))
    },

    async precreate(db: Kysely<any>, principal: AppPrincipal, input: TradeInput, now: number) {
      const merchant = await requireMerchant(db, principal)
      return view(await insertAndAnnounce(db, principal, merchant, input, 'precreate', null, now))
    },

    /** Barcode payment: the merchant submits the code the consumer shows. */
    async pay(db: Kysely<any>, principal: AppPrincipal, input: TradeInput & { auth_code: string }, now: number) {
      const merchant = await requireMerchant(db, principal)
      const sandbox = sourceFor(input.auth_code)
      if (sandbox !== null && principal.environment !== 'sandbox') {
        throw new AppError('PAYMENT_CODE_INVALID', { field: 'body.auth_code' })
      }
      // The order first: a retry of a paid order finds it without spending the code again.
      // A second, concurrent insert of the same order waits on the first and then finds it.
      const { trade, created } = await insert(db, principal, merchant, input, 'barcode', null, now)
      if (created === null) return view(await refresh(db, trade, now))
      const buyerId =
        sandbox === null ? await consumers.redeemCode(db, input.auth_code, principal.environment, now) : null
      const channelId = sandbox === null ? 'wallet' : 'sandbox'
      const source: PaymentSource =
        sandbox === null ? { kind: 'wallet', consumerId: buyerId! } : { kind: 'sandbox', script: sandbox.script }
      const outcome = await channels[channelId].initiate(trade, source, now)
      switch (outcome.state) {
        case 'succeeded':
          return view(await completePayment(db, trade, channelId, buyerId, now, merchant, [created]))
        case 'declined':
          throw new AppError('PAYMENT_DECLINED', { message: outcome.reason })
        default: {
          await context.events.emit(db, created, now)
          await (db as Db)
            .updateTable('payment_trades')
            .set({
              channel: channelId,
              channel_state: outcome.state,
              channel_ready_at: outcome.readyAt,
              updated_at: now,
            })
            .where('id', '=', trade.id)
            .execute()
          return view({ ...trade, channel: channelId, channel_state: outcome.state, channel_ready_at: outcome.readyAt })
        }
      }
    },

    /** The consumer pays a precreated or created trade on its pay page, with a payment code. */
    async payOnPage(db: Kysely<any>, qrToken: string, code: string, now: number): Promise<TradesTable> {
      let trade = await lockByQrToken(db, qrToken, now)
      if (trade === null) throw new AppError('PAYMENT_TRADE_NOT_FOUND')
      trade = await refresh(db, trade, now)
      if (trade.status !== 'wait_buyer_pay') throw new AppError('PAYMENT_TRADE_NOT_PAYABLE')
      const buyerId = await consumers.redeemCode(db, code, trade.environment, now)
      if (trade.buyer_id !== null && trade.buyer_id !== buyerId) throw new AppError('PAYMENT_CODE_INVALID')
      return completePayment(db, trade, 'wallet', buyerId, now)
    },

    async findByQrToken(db: Kysely<any>, qrToken: string): Promise<TradesTable | null> {
      return (
        (await (db as Db)
          .selectFrom('payment_trades')
          .selectAll()
          .where('qr_token', '=', qrToken)
          .executeTakeFirst()) ?? null
      )
    },

    /** Reads a trade, first settling what time and the channel decided (in its own transaction). */
    async get(db: Kysely<any>, principal: AppPrincipal, where: { id: string } | { out_trade_no: string }, now: number) {
      let query = (db as Db)
        .selectFrom('payment_trades')
        .selectAll()
        .where('merchant_id', '=', principal.tenantId)
        .where('environment', '=', principal.environment)
      query = 'id' in where ? query.where('id', '=', where.id) : query.where('out_trade_no', '=', where.out_trade_no)
      const found = await query.executeTakeFirst()
      if (found === undefined) throw new AppError('PAYMENT_TRADE_NOT_FOUND')
      // Most reads change nothing: lock and write only when time or the channel has news.
      const stale = found.status === 'wait_buyer_pay' && (holdsPayment(found) || found.expires_at <= now)
      if (!stale) return view(found)
      const run = async (tx: Kysely<any>) => view(await refresh(tx, await lock(tx, principal, found.id, now), now))
      return db.isTransaction ? run(db) : db.transaction().execute(run)
    },

    async close(db: Kysely<any>, principal: AppPrincipal, tradeId: string, now: number) {
      const trade = await refresh(db, await lock(db, principal, tradeId, now), now)
      if (trade.status === 'closed') return view(trade)
      if (trade.status !== 'wait_buyer_pay') throw new AppError('PAYMENT_TRADE_NOT_CLOSABLE')
      return view(await close(db, trade, 'closed', now))
    },

    closeLocked: close,

    /**
     * Closes trades whose time ran out; the worker calls it. Returns how many it closed. Each
     * trade is stamped with `clock()` read under its lock (JobSpec).
     */
    async expireDue(db: Kysely<any>, now: number, clock: () => number = () => now): Promise<number> {
      const due = await (db as Db)
        .selectFrom('payment_trades')
        .select(['id', 'merchant_id', 'environment'])
        .where('status', '=', 'wait_buyer_pay')
        .where('expires_at', '<=', now)
        // A payment the channel may hold never expires; pollChannels settles those.
        .where((eb) => eb.or([eb('channel_state', 'is', null), eb('channel_state', '=', 'succeeded')]))
        .orderBy('expires_at')
        .orderBy('id')
        .limit(expiryBatchMax)
        .execute()
      let closed = 0
      for (const row of due) {
        await db.transaction().execute(async (tx) => {
          const principal = { tenantId: row.merchant_id, environment: row.environment } as AppPrincipal
          const locked = await lock(tx, principal, row.id, now)
          const trade = await refresh(tx, locked, clock())
          if (trade.status === 'closed') closed += 1
        })
      }
      return closed
    },

    /** Asks the channels about payments they have not confirmed; the worker calls it (as expireDue). */
    async pollChannels(db: Kysely<any>, now: number, clock: () => number = () => now): Promise<number> {
      const open = await (db as Db)
        .selectFrom('payment_trades')
        .select(['id', 'merchant_id', 'environment'])
        .where('status', '=', 'wait_buyer_pay')
        .where('channel_state', 'in', ['pending', 'unknown'])
        .where('channel_ready_at', '<=', now)
        .orderBy('channel_ready_at')
        .orderBy('id')
        .limit(expiryBatchMax)
        .execute()
      let resolved = 0
      for (const row of open) {
        await db.transaction().execute(async (tx) => {
          const principal = { tenantId: row.merchant_id, environment: row.environment } as AppPrincipal
          const locked = await lock(tx, principal, row.id, now)
          const trade = await refresh(tx, locked, clock())
          if (trade.status !== 'wait_buyer_pay') resolved += 1
        })
      }
      return resolved
    },

    lockByQrToken,

    /**
     * Live volume an ISV's apps processed for these merchants, in fen, net of refunds: the
     * figure partner recruitment measures. Sandbox trades never count.
     */
    async isvVolume(db: Kysely<any>, isvId: string, merchantIds: readonly string[]): Promise<number> {
      if (merchantIds.length === 0) return 0
      const row = await (db as Db)
        .selectFrom('payment_trades')
        .select((eb) =>
          eb.fn.sum<number | string | null>(eb('total_amount', '-', eb.ref('refunded_amount'))).as('volume'),
        )
        .where('isv_id', '=', isvId)
        .where('environment', '=', 'live')
        .where('status', 'in', ['paid', 'fully_refunded'])
        .where('merchant_id', 'in', merchantIds)
        .executeTakeFirstOrThrow()
      const volume = Number(row.volume ?? 0)
      assert(Number.isSafeInteger(volume) && volume >= 0, 'volume is whole fen')
      return volume
    },
  }
}

export type TradeService = ReturnType<typeof createTradeService>
