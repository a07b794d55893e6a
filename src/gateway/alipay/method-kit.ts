/**
 * What every gateway method receives and returns. A method reads Alipay business parameters,
 * calls the native services (the same functions the /v1 routes call) and maps the result
 * back; it never touches another module's tables.
 *
 * @example
 * const query: MethodSpec = {
 *   scope: 'payment:trade',
 *   run: async (context) => ({ fields: tradeFields(await findTrade(context), context) }),
 * }
 */
import type { Kysely } from 'kysely'
import type { PaymentServices } from '../../capabilities/payment/index.js'
import type { AlipayGatewayConfig } from '../../config.js'
import { isAppError } from '../../errors.js'
import type { AppAuthTokenResolver } from '../../server/authenticate.js'
import type { AppPrincipal } from '../../server/route-kit.js'
import { AlipayError } from './errors.js'
import type { BizReader } from './params.js'

/** The trade as the payment service returns it. */
export type TradeView = ReturnType<PaymentServices['trades']['view']>

export interface MethodContext {
  /** The root database: each method opens the transactions it needs. */
  readonly db: Kysely<any>
  readonly principal: AppPrincipal
  readonly now: number
  readonly biz: BizReader
  /** `notify_url` of the request (v2: a top-level parameter; v3: in the body). */
  readonly notifyUrl: string | undefined
  readonly payment: PaymentServices
  readonly resolver: AppAuthTokenResolver | null
  readonly settings: AlipayGatewayConfig
  /** The methods an app may call with a token of these scopes (for token.app.query). */
  readonly methodsForScopes: (scopes: readonly string[]) => string[]
}

export interface MethodResult {
  /** Business fields in Alipay's names; `null` and `undefined` are left out of the answer. */
  readonly fields: Readonly<Record<string, unknown>>
  /** A payment the buyer has not confirmed yet: v2 answers code 10003 rather than 10000. */
  readonly waiting?: boolean
}

export interface MethodSpec {
  /** The scope a merchant must have granted, when the app acts for one. */
  readonly scope?: string
  readonly run: (context: MethodContext) => Promise<MethodResult>
}

const tradeIdPattern = /^trade_[0-9a-z]{20}$/

/** Drops null and undefined members, keeping the order of the rest. */
export function compact(fields: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== null && value !== undefined))
}

/**
 * The trade named by `trade_no` (Baseplate's trade id, which wins when both are given, as on
 * Alipay) or `out_trade_no`, brought up to date by the payment service (expiry, channel).
 */
export async function findTrade(context: MethodContext): Promise<TradeView> {
  const { biz, payment, principal, now, db } = context
  const tradeNo = biz.text('trade_no', { max: 64 })
  const outTradeNo = biz.text('out_trade_no', { max: 64 })
  if (tradeNo === undefined && outTradeNo === undefined) {
    throw new AlipayError('ACQ.INVALID_PARAMETER', '缺少参数: trade_no or out_trade_no is required')
  }
  // A number that cannot be Baseplate's is simply not found, as an unknown one would be.
  if (tradeNo !== undefined && !tradeIdPattern.test(tradeNo)) throw new AlipayError('ACQ.TRADE_NOT_EXIST')
  const where = tradeNo !== undefined ? { id: tradeNo } : { out_trade_no: outTradeNo! }
  return payment.trades.get(db, principal, where, now)
}

/** Runs `action`, turning one Baseplate error code into a value instead of a failure. */
export async function unless<T, F>(code: string, action: () => Promise<T>, fallback: F): Promise<T | F> {
  try {
    return await action()
  } catch (error) {
    if (isAppError(error) && error.code === code) return fallback
    throw error
  }
}
