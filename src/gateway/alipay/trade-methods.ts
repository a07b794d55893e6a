/**
 * `alipay.trade.*`: create, precreate, pay, query, refund, fastpay.refund.query, close and
 * cancel, each a thin mapping onto the payment capability's trade and refund services.
 *
 * Trade numbers: `trade_no` is Baseplate's trade id (`trade_…`); `out_trade_no` and
 * `out_request_no` are the merchant's and stay the natural idempotency keys they are natively.
 */
import type { Kysely } from 'kysely'
import { isAppError } from '../../errors.js'
import { checkEndpointUrl } from '../../platform/notifications/service.js'
import type { AppEnvironment } from '../../storage/tables.js'
import { AlipayError } from './errors.js'
import { compact, findTrade, unless, type MethodContext, type MethodSpec, type TradeView } from './method-kit.js'
import { formatAmount, formatIsoTime, tradeTimeoutS } from './params.js'
import type { GatewayTables } from './tables.js'

const tradeScope = 'payment:trade'
const refundScope = 'payment:refund'

/** Alipay's trade states, from Baseplate's. A fully refunded trade is closed, as on Alipay. */
export function tradeStatus(status: TradeView['status']): string {
  switch (status) {
    case 'wait_buyer_pay':
      return 'WAIT_BUYER_PAY'
    case 'paid':
      return 'TRADE_SUCCESS'
    case 'closed':
    case 'fully_refunded':
      return 'TRADE_CLOSED'
  }
}

/** Where the money came from, in Alipay's fund channel names. */
export function fundChannel(channel: TradeView['channel']): string {
  return channel === 'sandbox' ? 'BANKCARD' : 'ALIPAYACCOUNT'
}

/** The fields a paid trade reports in pay and query answers. */
function paymentFields(trade: TradeView, offsetMinutes: number) {
  if (trade.paid_at === null) return {}
  const total = formatAmount(trade.total_amount)
  return {
    buyer_user_id: trade.buyer_id,
    receipt_amount: total,
    buyer_pay_amount: total,
    invoice_amount: total,
    point_amount: '0.00',
    gmt_payment: formatIsoTime(trade.paid_at, offsetMinutes),
    fund_bill_list: [{ fund_channel: fundChannel(trade.channel), amount: total }],
  }
}

function optionalNotify(context: MethodContext, environment: AppEnvironment) {
  const notifyUrl = context.notifyUrl
  const passback = context.biz.text('passback_params', { max: 512 })
  if (notifyUrl !== undefined && notifyUrl !== '') {
    try {
      checkEndpointUrl(notifyUrl, environment)
    } catch (error) {
      if (isAppError(error)) throw new AlipayError('isv.invalid-notify-url', `notify_url 无效: ${error.message}`)
      throw error
    }
  }
  return { notifyUrl: notifyUrl === '' ? undefined : notifyUrl, passback }
}

/**
 * Remembers where to notify about this trade, in the transaction that created it. A repeated
 * request (same out_trade_no) keeps what the first one said.
 */
async function rememberNotify(
  tx: Kysely<any>,
  context: MethodContext,
  tradeId: string,
  notify: { notifyUrl: string | undefined; passback: string | undefined },
) {
  if (notify.notifyUrl === undefined && notify.passback === undefined) return
  await (tx as Kysely<GatewayTables>)
    .insertInto('alipay_trade_notify')
    .values({
      trade_id: tradeId,
      app_id: context.principal.appId,
      notify_url: notify.notifyUrl ?? null,
      passback_params: notify.passback ?? null,
      created_at: context.now,
    })
    .onConflict((oc) => oc.column('trade_id').doNothing())
    .execute()
}

function tradeInput(context: MethodContext, productCodes: readonly string[]) {
  const { biz } = context
  const productCode = biz.text('product_code', { max: 64 })
  if (productCode !== undefined && !productCodes.includes(productCode)) {
    throw new AlipayError(
      'ACQ.INVALID_PARAMETER',
      `product_code ${productCode} is not supported here; use ${productCodes.join(' or ')}`,
    )
  }
  // Fields that would change who is paid or how much, which Baseplate does not implement:
  // refusing them beats silently ignoring them.
  biz.unsupported('auth_no', 'pre-authorisation is not available through the gateway')
  biz.unsupported('agreement_params', 'withholding agreements are not implemented')
  biz.unsupported('sub_merchant', 'pay to the merchant of the app_auth_token instead')
  biz.unsupported('settle_info', 'settlement follows the merchant’s governed settlement delay')
  biz.unsupported('royalty_info', 'share profit with alipay.trade.order.settle after payment')
  const currency = biz.text('trans_currency', { max: 8 }) ?? biz.text('settle_currency', { max: 8 })
  if (currency !== undefined && currency !== 'CNY') {
    throw new AlipayError('ACQ.INVALID_PARAMETER', `trans_currency ${currency} is not supported; amounts are CNY`)
  }
  const timeout = tradeTimeoutS(biz, context.now, context.settings.timezoneOffsetMinutes)
  return {
    out_trade_no: biz.outNo('out_trade_no', true),
    total_amount: biz.amount('total_amount'),
    subject: biz.requiredText('subject', 256),
    store_id: biz.text('store_id', { max: 64 }),
    timeout_seconds: timeout,
  }
}

async function precreate(context: MethodContext) {
  const input = tradeInput(context, ['FACE_TO_FACE_PAY'])
  const notify = optionalNotify(context, context.principal.environment)
  const trade = await context.db.transaction().execute(async (tx) => {
    const view = await context.payment.trades.precreate(tx, context.principal, input, context.now)
    await rememberNotify(tx, context, view.id, notify)
    return view
  })
  return { fields: { out_trade_no: trade.out_trade_no, qr_code: trade.qr_code } }
}

async function create(context: MethodContext) {
  const input = tradeInput(context, ['FACE_TO_FACE_PAY', 'JSAPI_PAY'])
  const buyerId = context.biz.text('buyer_id', { max: 64 }) ?? context.biz.text('buyer_open_id', { max: 64 })
  if (buyerId === undefined) throw new AlipayError('ACQ.INVALID_PARAMETER', '缺少参数: buyer_id is required')
  if (!/^cons_[0-9a-z]{20}$/.test(buyerId)) throw new AlipayError('ACQ.BUYER_NOT_EXIST')
  const notify = optionalNotify(context, context.principal.environment)
  const trade = await context.db.transaction().execute(async (tx) => {
    const view = await context.payment.trades.create(
      tx,
      context.principal,
      { ...input, buyer_id: buyerId },
      context.now,
    )
    await rememberNotify(tx, context, view.id, notify)
    return view
  })
  return { fields: { out_trade_no: trade.out_trade_no, trade_no: trade.id } }
}

async function pay(context: MethodContext) {
  const input = tradeInput(context, ['FACE_TO_FACE_PAY'])
  const scene = context.biz.text('scene', { max: 32 }) ?? 'bar_code'
  if (scene !== 'bar_code' && scene !== 'security_code') {
    throw new AlipayError('ACQ.INVALID_PARAMETER', `scene ${scene} is not supported; use bar_code`)
  }
  const authCode = context.biz.requiredText('auth_code', 64)
  const notify = optionalNotify(context, context.principal.environment)
  const trade = await context.db.transaction().execute(async (tx) => {
    const view = await context.payment.trades.pay(tx, context.principal, { ...input, auth_code: authCode }, context.now)
    await rememberNotify(tx, context, view.id, notify)
    return view
  })
  if (trade.status === 'closed') throw new AlipayError('ACQ.TRADE_STATUS_ERROR', '交易已关闭 (the trade is closed)')
  const offset = context.settings.timezoneOffsetMinutes
  return {
    waiting: trade.status === 'wait_buyer_pay',
    fields: compact({
      trade_no: trade.id,
      out_trade_no: trade.out_trade_no,
      total_amount: formatAmount(trade.total_amount),
      ...paymentFields(trade, offset),
    }),
  }
}

async function query(context: MethodContext) {
  const trade = await findTrade(context)
  const offset = context.settings.timezoneOffsetMinutes
  const payment = paymentFields(trade, offset)
  return {
    fields: compact({
      trade_no: trade.id,
      out_trade_no: trade.out_trade_no,
      trade_status: tradeStatus(trade.status),
      total_amount: formatAmount(trade.total_amount),
      ...payment,
      send_pay_date: payment.gmt_payment,
      subject: trade.subject,
      store_id: trade.store_id,
      buyer_user_id: trade.buyer_id,
      refund_amount: trade.refunded_amount > 0 ? formatAmount(trade.refunded_amount) : undefined,
      gmt_create: formatIsoTime(trade.created_at, offset),
      gmt_close: formatIsoTime(trade.closed_at, offset),
    }),
  }
}

async function refund(context: MethodContext) {
  const { biz, payment, principal, now } = context
  const amount = biz.amount('refund_amount')
  const reason = biz.text('refund_reason', { max: 256 })
  biz.unsupported('refund_royalty_parameters', 'profit sharing is not reversed by a refund')
  const trade = await findTrade(context)
  // Without out_request_no Alipay refunds the trade once; its own number is then the key.
  const outRequestNo = biz.outNo('out_request_no') ?? trade.out_trade_no
  const { result, replayed } = await context.db.transaction().execute(async (tx) => {
    const earlier = await unless(
      'PAYMENT_REFUND_NOT_FOUND',
      () => payment.refunds.get(tx, principal, trade.id, outRequestNo),
      null,
    )
    const input = { out_request_no: outRequestNo, amount, reason }
    return { result: await payment.refunds.refund(tx, principal, trade.id, input, now), replayed: earlier !== null }
  })
  return {
    fields: compact({
      trade_no: trade.id,
      out_trade_no: trade.out_trade_no,
      buyer_user_id: trade.buyer_id,
      fund_change: replayed ? 'N' : 'Y',
      refund_fee: formatAmount(result.trade_refunded_amount),
      send_back_fee: formatAmount(result.amount),
      gmt_refund_pay: formatIsoTime(result.created_at, context.settings.timezoneOffsetMinutes),
    }),
  }
}

async function refundQuery(context: MethodContext) {
  const trade = await findTrade(context)
  const outRequestNo = context.biz.outNo('out_request_no') ?? trade.out_trade_no
  const found = await unless(
    'PAYMENT_REFUND_NOT_FOUND',
    () => context.payment.refunds.get(context.db, context.principal, trade.id, outRequestNo),
    null,
  )
  const base = { trade_no: trade.id, out_trade_no: trade.out_trade_no, out_request_no: outRequestNo }
  // As on Alipay: no refund under this number is a successful answer without refund_status.
  if (found === null) return { fields: base }
  return {
    fields: compact({
      ...base,
      total_amount: formatAmount(trade.total_amount),
      refund_amount: formatAmount(found.amount),
      refund_status: 'REFUND_SUCCESS',
      refund_reason: found.reason,
      gmt_refund_pay: formatIsoTime(found.created_at, context.settings.timezoneOffsetMinutes),
    }),
  }
}

async function close(context: MethodContext) {
  const trade = await findTrade(context)
  const closed = await context.db
    .transaction()
    .execute((tx) => context.payment.trades.close(tx, context.principal, trade.id, context.now))
  return { fields: { trade_no: closed.id, out_trade_no: closed.out_trade_no } }
}

async function cancel(context: MethodContext) {
  const trade = await findTrade(context)
  const result = await context.db
    .transaction()
    .execute((tx) => context.payment.refunds.cancel(tx, context.principal, trade.id, context.now))
  return {
    fields: {
      trade_no: result.trade.id,
      out_trade_no: result.trade.out_trade_no,
      retry_flag: 'N',
      action: result.action,
    },
  }
}

export const tradeMethods: Readonly<Record<string, MethodSpec>> = {
  'alipay.trade.precreate': { scope: tradeScope, run: precreate },
  'alipay.trade.create': { scope: tradeScope, run: create },
  'alipay.trade.pay': { scope: tradeScope, run: pay },
  'alipay.trade.query': { scope: tradeScope, run: query },
  'alipay.trade.close': { scope: tradeScope, run: close },
  'alipay.trade.cancel': { scope: tradeScope, run: cancel },
  'alipay.trade.refund': { scope: refundScope, run: refund },
  'alipay.trade.fastpay.refund.query': { scope: refundScope, run: refundQuery },
}
