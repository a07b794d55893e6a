/**
 * Profit sharing (分账): `alipay.trade.royalty.relation.bind` / `.unbind` and
 * `alipay.trade.order.settle` / `.query`, on the payment capability's settlement service.
 * Receivers are organisations: `type` is `userId` and `account` (or `trans_in`) is the
 * organisation id. `settle_no` is `<trade_no>.<out_request_no>`, so a query by settle_no
 * needs nothing stored beside the native record.
 */
import type { Fen } from '../../platform/money/money.js'
import { AlipayError } from './errors.js'
import { compact, findTrade, type MethodContext, type MethodSpec } from './method-kit.js'
import { bizReader, formatAmount, formatIsoTime, yuanToFen } from './params.js'

const settlementScope = 'payment:settlement'
const receiversMax = 20
const organizationIdPattern = /^org_[0-9a-z]{20}$/
const settleNoPattern = /^(trade_[0-9a-z]{20})\.([A-Za-z0-9_.:-]{1,64})$/

function receiverId(value: string | undefined, field: string, typeValue: string | undefined): string {
  if (typeValue !== undefined && typeValue !== 'userId') {
    throw new AlipayError('ACQ.INVALID_PARAMETER', `${field} type ${typeValue} is not supported; use userId`)
  }
  if (value === undefined) throw new AlipayError('ACQ.INVALID_PARAMETER', `缺少参数 ${field}`)
  if (!organizationIdPattern.test(value)) throw new AlipayError('ACQ.ROYALTY_RECEIVER_NOT_EXIST')
  return value
}

function receivers(context: MethodContext) {
  context.biz.outNo('out_request_no', true)
  return context.biz.list('receiver_list', receiversMax).map((item, index) => {
    const entry = bizReader(item, `receiver_list[${index}].`)
    const id = receiverId(entry.text('account', { max: 64 }), `receiver_list[${index}].account`, entry.text('type'))
    return { receiver_id: id, name: entry.text('name', { max: 128 }) ?? id, memo: entry.text('memo', { max: 256 }) }
  })
}

async function bind(context: MethodContext) {
  const list = receivers(context)
  await context.db.transaction().execute(async (tx) => {
    for (const receiver of list)
      await context.payment.settlement.bindReceiver(tx, context.principal, receiver, context.now)
  })
  return { fields: { result_code: 'SUCCESS' } }
}

async function unbind(context: MethodContext) {
  const list = receivers(context)
  await context.db.transaction().execute(async (tx) => {
    for (const receiver of list) {
      await context.payment.settlement.unbindReceiver(tx, context.principal, receiver.receiver_id)
    }
  })
  return { fields: { result_code: 'SUCCESS' } }
}

function royaltyLines(context: MethodContext): Array<{ receiver_id: string; amount: Fen }> {
  return context.biz.list('royalty_parameters', receiversMax).map((item, index) => {
    const field = `royalty_parameters[${index}].`
    const line = bizReader(item, field)
    const royaltyType = line.text('royalty_type', { max: 32 }) ?? 'transfer'
    if (royaltyType !== 'transfer') {
      throw new AlipayError(
        'ACQ.INVALID_PARAMETER',
        `${field}royalty_type ${royaltyType} is not supported; use transfer`,
      )
    }
    line.unsupported('amount_percentage', 'give amount in yuan')
    line.unsupported('trans_out', 'the money always comes from the merchant of the trade')
    const id = receiverId(line.text('trans_in', { max: 64 }), `${field}trans_in`, line.text('trans_in_type'))
    if (item.amount === undefined) throw new AlipayError('ACQ.INVALID_PARAMETER', `缺少参数 ${field}amount`)
    return { receiver_id: id, amount: yuanToFen(item.amount, `${field}amount`) }
  })
}

async function settle(context: MethodContext) {
  const outRequestNo = context.biz.outNo('out_request_no', true)
  const lines = royaltyLines(context)
  const mode = context.biz.text('royalty_mode', { max: 8 }) ?? 'sync'
  if (mode !== 'sync' && mode !== 'async')
    throw new AlipayError('ACQ.INVALID_PARAMETER', 'royalty_mode is sync or async')
  const trade = await findTrade(context)
  // Both modes settle at once: a synchronous answer is also a correct asynchronous one.
  const result = await context.db
    .transaction()
    .execute((tx) =>
      context.payment.settlement.settleRoyalty(
        tx,
        context.principal,
        trade.id,
        { out_request_no: outRequestNo, royalties: lines },
        context.now,
      ),
    )
  return { fields: { trade_no: trade.id, settle_no: `${trade.id}.${result.out_request_no}` } }
}

async function settleQuery(context: MethodContext) {
  const settleNo = context.biz.text('settle_no', { max: 128 })
  let tradeId: string
  let outRequestNo: string
  if (settleNo !== undefined) {
    const match = settleNoPattern.exec(settleNo)
    if (match === null) throw new AlipayError('ACQ.SETTLE_NOT_EXIST')
    tradeId = match[1]!
    outRequestNo = match[2]!
  } else {
    outRequestNo = context.biz.outNo('out_request_no', true)
    tradeId = (await findTrade(context)).id
  }
  const view = await context.payment.settlement.getRoyalty(context.db, context.principal, tradeId, outRequestNo)
  const at = formatIsoTime(view.created_at, context.settings.timezoneOffsetMinutes)
  return {
    fields: compact({
      out_request_no: view.out_request_no,
      settle_no: `${view.trade_id}.${view.out_request_no}`,
      operation_dt: at,
      royalty_detail_list: view.royalties.map((line) => ({
        operation_type: 'transfer',
        execute_dt: at,
        trans_out: context.principal.tenantId,
        trans_out_type: 'userId',
        trans_in: line.receiver_id,
        trans_in_type: 'userId',
        amount: formatAmount(line.amount),
        state: line.status === 'succeeded' ? 'SUCCESS' : 'PROCESSING',
      })),
    }),
  }
}

export const royaltyMethods: Readonly<Record<string, MethodSpec>> = {
  'alipay.trade.royalty.relation.bind': { scope: settlementScope, run: bind },
  'alipay.trade.royalty.relation.unbind': { scope: settlementScope, run: unbind },
  'alipay.trade.order.settle': { scope: settlementScope, run: settle },
  'alipay.trade.order.settle.query': { scope: settlementScope, run: settleQuery },
}
