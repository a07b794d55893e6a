/**
 * The gateway's closed set of answers, in Alipay's shape: a gateway `code` with its fixed
 * `msg`, and a `sub_code` with a human `sub_msg`. Every failure the gateway reports is one
 * row of {@link subCodes}; Baseplate's own error codes (from the capabilities) are mapped
 * onto these rows by {@link fromAppError}, in one table, so the mapping is reviewed in one
 * place and an unmapped code is visible (it falls back to `isp.unknow-error` and is logged).
 *
 * The sub-codes are Alipay's where Alipay has one for the same condition; the few without an
 * Alipay equivalent keep Alipay's style (`ACQ.` for trades, `isv.` for the caller's mistakes)
 * and are marked in docs/guides/alipay-compatibility.md.
 *
 * @example
 * throw new AlipayError('ACQ.TRADE_NOT_EXIST')
 * throw new AlipayError('ACQ.INVALID_PARAMETER', 'total_amount must be yuan, e.g. "88.88"')
 */
import { errorTable, isAppError } from '../../errors.js'
import type { RefusalOfRequest, RefusalReason } from '../../platform/audit/refusals.js'

/** Gateway codes and their fixed messages, as alipay-sdk and ISV code expect them. */
export const gatewayCodes = {
  '10000': 'Success',
  '10003': 'Waiting for user to pay',
  '20000': 'Service Currently Unavailable',
  '20001': 'Insufficient Token Permissions',
  '40001': 'Missing Required Arguments',
  '40002': 'Invalid Arguments',
  '40004': 'Business Failed',
  '40006': 'Insufficient Permissions',
} as const

export type GatewayCode = keyof typeof gatewayCodes

interface SubCodeSpec {
  readonly code: GatewayCode
  /** The default sub_msg; a thrower may give a more precise one. */
  readonly message: string
  /** HTTP status of the v3 error answer (v2 always answers 200). */
  readonly status: number
}

export const subCodes = {
  'isp.unknow-error': { code: '20000', status: 500, message: '服务暂不可用 (service unavailable; retry)' },
  'aop.invalid-app-auth-token': { code: '20001', status: 401, message: '无效的应用授权令牌 (invalid app_auth_token)' },
  'aop.invalid-app-auth-token-no-api': {
    code: '20001',
    status: 403,
    message: '商户未授权当前接口 (the merchant did not grant the scope this method needs)',
  },
  'isv.missing-method': { code: '40001', status: 400, message: '缺少方法名参数 (method is missing)' },
  'isv.missing-signature': { code: '40001', status: 401, message: '缺少签名参数 (sign is missing)' },
  'isv.missing-signature-type': { code: '40001', status: 400, message: '缺少签名类型参数 (sign_type is missing)' },
  'isv.missing-signature-key': {
    code: '40001',
    status: 401,
    message: '缺少签名配置 (the app has no active RSA public key)',
  },
  'isv.missing-app-id': { code: '40001', status: 400, message: '缺少appId参数 (app_id is missing)' },
  'isv.missing-timestamp': { code: '40001', status: 400, message: '缺少时间戳参数 (timestamp is missing)' },
  'isv.missing-version': { code: '40001', status: 400, message: '缺少版本参数 (version is missing)' },
  'isv.invalid-method': { code: '40002', status: 404, message: '不存在的方法名 (no such method)' },
  'isv.invalid-format': { code: '40002', status: 400, message: '无效的数据格式 (format must be JSON)' },
  'isv.invalid-signature-type': {
    code: '40002',
    status: 400,
    message: '无效的签名类型 (sign_type must be RSA2; RSA with SHA1 is refused)',
  },
  'isv.invalid-signature': { code: '40002', status: 401, message: '无效签名 (the signature does not verify)' },
  'isv.invalid-app-id': { code: '40002', status: 401, message: '无效的AppID参数 (no such app)' },
  'isv.invalid-timestamp': { code: '40002', status: 401, message: '非法的时间戳参数 (timestamp is invalid or stale)' },
  'isv.invalid-nonce': { code: '40002', status: 401, message: '重复的请求 (this nonce was used already)' },
  'isv.invalid-charset': { code: '40002', status: 400, message: '字符集错误 (charset must be utf-8)' },
  'isv.invalid-version': { code: '40002', status: 400, message: '无效的版本号 (version must be 1.0)' },
  'isv.invalid-encrypt-type': {
    code: '40002',
    status: 400,
    message: '不支持的加密类型 (content encryption is not supported)',
  },
  'isv.invalid-cert-mode': {
    code: '40002',
    status: 400,
    message: '不支持证书模式 (certificate mode is not supported; use public key mode)',
  },
  'isv.invalid-parameter': { code: '40002', status: 400, message: '参数无效 (invalid parameter)' },
  'isv.invalid-notify-url': { code: '40002', status: 400, message: 'notify_url 无效 (invalid notify_url)' },
  'isv.code-invalid': {
    code: '40002',
    status: 400,
    message: '授权码code无效 (the app_auth_code is unknown, expired, used or not this app’s)',
  },
  'isv.refresh-token-invalid': {
    code: '40002',
    status: 400,
    message: '刷新令牌无效 (the refresh token is unknown, expired, rotated or revoked)',
  },
  'isv.invalid-app-auth-token': { code: '40004', status: 400, message: '无效的应用授权令牌 (invalid app_auth_token)' },
  'isv.insufficient-isv-permissions': {
    code: '40006',
    status: 403,
    message: 'ISV权限不足 (act for a merchant: send its app_auth_token)',
  },
  'ACQ.INVALID_PARAMETER': { code: '40004', status: 400, message: '参数无效 (invalid parameter)' },
  'ACQ.ACCESS_FORBIDDEN': { code: '40004', status: 403, message: '无权限使用接口 (not allowed here)' },
  'ACQ.TRADE_NOT_EXIST': { code: '40004', status: 404, message: '交易不存在 (no such trade)' },
  'ACQ.CONTEXT_INCONSISTENT': {
    code: '40004',
    status: 400,
    message: '交易信息被篡改 (another trade with this out_trade_no exists)',
  },
  'ACQ.TRADE_STATUS_ERROR': {
    code: '40004',
    status: 400,
    message: '交易状态不合法 (the trade is not in a state for this)',
  },
  'ACQ.REFUND_AMT_NOT_EQUAL_TOTAL': {
    code: '40004',
    status: 400,
    message: '退款金额超限 (refunds would exceed the paid amount)',
  },
  'ACQ.DISCORDANT_REPEAT_REQUEST': {
    code: '40004',
    status: 400,
    message: '不一致的请求 (this out_request_no was used with other parameters)',
  },
  'ACQ.SELLER_BALANCE_NOT_ENOUGH': {
    code: '40004',
    status: 400,
    message: '卖家余额不足 (the merchant balance is too low)',
  },
  'ACQ.BUYER_BALANCE_NOT_ENOUGH': {
    code: '40004',
    status: 400,
    message: '买家余额不足 (the buyer balance is too low)',
  },
  'ACQ.BUYER_NOT_EXIST': { code: '40004', status: 400, message: '买家不存在 (no such buyer)' },
  'ACQ.PAYMENT_AUTH_CODE_INVALID': {
    code: '40004',
    status: 400,
    message: '支付授权码无效 (the payment code is unknown, used or expired)',
  },
  'ACQ.PAYMENT_FAIL': { code: '40004', status: 400, message: '支付失败 (the channel declined the payment)' },
  'ACQ.ROYALTY_RECEIVER_NOT_BOUND': {
    code: '40004',
    status: 400,
    message: '分账收入方未绑定 (the receiver is not bound to this merchant)',
  },
  'ACQ.ROYALTY_RECEIVER_NOT_EXIST': {
    code: '40004',
    status: 400,
    message: '分账收入方不存在 (no such organisation to receive profit sharing)',
  },
  'ACQ.ALLOC_AMOUNT_VALIDATE_ERROR': {
    code: '40004',
    status: 400,
    message: '分账金额超过最大可分账金额 (profit sharing would exceed the maximum share)',
  },
  'ACQ.SETTLE_NOT_EXIST': { code: '40004', status: 404, message: '分账请求不存在 (no such profit-sharing request)' },
} as const satisfies Record<string, SubCodeSpec>

export type SubCode = keyof typeof subCodes

/**
 * The sub codes that refuse a caller's credentials or rights, audited like the platform's own
 * codes (ADR 0020). `proven`: the gateway answers it only once the signature has verified (and,
 * on v3, the nonce was new), so the app it names is the caller.
 */
const refusalSubCodes: Readonly<
  Partial<Record<SubCode, { readonly reason: RefusalReason; readonly proven: boolean }>>
> = {
  'isv.missing-signature': { reason: 'authentication', proven: false },
  'isv.missing-signature-key': { reason: 'authentication', proven: false },
  'isv.invalid-signature': { reason: 'authentication', proven: false },
  'isv.invalid-app-id': { reason: 'authentication', proven: false },
  'isv.invalid-timestamp': { reason: 'authentication', proven: false },
  'isv.invalid-nonce': { reason: 'authentication', proven: false },
  'aop.invalid-app-auth-token': { reason: 'authentication', proven: true },
  'aop.invalid-app-auth-token-no-api': { reason: 'authorization', proven: true },
  'isv.insufficient-isv-permissions': { reason: 'authorization', proven: true },
}

/** The audit's account of a gateway failure, or null when the failure refuses no credential or right. */
export function gatewayRefusal(subCode: SubCode, claimedApp: string | null): RefusalOfRequest | null {
  const refusal = refusalSubCodes[subCode]
  if (refusal === undefined) return null
  return {
    reason: refusal.reason,
    code: subCode,
    actor: refusal.proven && claimedApp !== null ? claimedApp : 'anonymous',
    claimedApp,
  }
}

/** A failure the gateway answers in Alipay's shape. */
export class AlipayError extends Error {
  override readonly name = 'AlipayError'
  readonly code: GatewayCode
  readonly subCode: SubCode
  readonly status: number

  constructor(subCode: SubCode, subMessage?: string) {
    const spec: SubCodeSpec = subCodes[subCode]
    super(subMessage ?? spec.message)
    this.code = spec.code
    this.subCode = subCode
    this.status = spec.status
  }
}

/**
 * Baseplate's codes (src/errors.ts and the payment capability) as the gateway answers them.
 * The message of the AppError, when it is more precise than the code's own, becomes sub_msg.
 */
const appErrorMap: Readonly<Record<string, SubCode>> = {
  PAYMENT_MERCHANT_REQUIRED: 'isv.insufficient-isv-permissions',
  PAYMENT_TRADE_NOT_FOUND: 'ACQ.TRADE_NOT_EXIST',
  PAYMENT_OUT_TRADE_NO_TAKEN: 'ACQ.CONTEXT_INCONSISTENT',
  PAYMENT_TRADE_NOT_PAYABLE: 'ACQ.TRADE_STATUS_ERROR',
  PAYMENT_TRADE_NOT_CLOSABLE: 'ACQ.TRADE_STATUS_ERROR',
  PAYMENT_TRADE_NOT_REFUNDABLE: 'ACQ.TRADE_STATUS_ERROR',
  PAYMENT_REFUND_EXCEEDS_PAID: 'ACQ.REFUND_AMT_NOT_EQUAL_TOTAL',
  PAYMENT_REFUND_REQUEST_CONFLICT: 'ACQ.DISCORDANT_REPEAT_REQUEST',
  PAYMENT_CODE_INVALID: 'ACQ.PAYMENT_AUTH_CODE_INVALID',
  PAYMENT_BALANCE_INSUFFICIENT: 'ACQ.BUYER_BALANCE_NOT_ENOUGH',
  PAYMENT_MERCHANT_FUNDS_INSUFFICIENT: 'ACQ.SELLER_BALANCE_NOT_ENOUGH',
  PAYMENT_DECLINED: 'ACQ.PAYMENT_FAIL',
  PAYMENT_CONSUMER_NOT_FOUND: 'ACQ.BUYER_NOT_EXIST',
  PAYMENT_SANDBOX_ONLY: 'ACQ.ACCESS_FORBIDDEN',
  PAYMENT_CHANNEL_UNAVAILABLE: 'ACQ.PAYMENT_FAIL',
  PAYMENT_ROYALTY_RECEIVER_UNKNOWN: 'ACQ.ROYALTY_RECEIVER_NOT_BOUND',
  PAYMENT_ROYALTY_EXCEEDS_SHARE: 'ACQ.ALLOC_AMOUNT_VALIDATE_ERROR',
  PAYMENT_ROYALTY_REQUEST_CONFLICT: 'ACQ.DISCORDANT_REPEAT_REQUEST',
  PAYMENT_ROYALTY_NOT_FOUND: 'ACQ.SETTLE_NOT_EXIST',
  PAYMENT_ORGANIZATION_NOT_FOUND: 'ACQ.ROYALTY_RECEIVER_NOT_EXIST',
  AUTH_APP_AUTH_TOKEN_INVALID: 'aop.invalid-app-auth-token',
  AUTH_SCOPE_MISSING: 'aop.invalid-app-auth-token-no-api',
  AUTHZ_CODE_INVALID: 'isv.code-invalid',
  AUTHZ_REFRESH_TOKEN_INVALID: 'isv.refresh-token-invalid',
  REQUEST_VALIDATION_FAILED: 'isv.invalid-parameter',
}

/** Codes whose detailed messages count in fen: the gateway speaks yuan, so it keeps only its own text. */
const fenMessages = new Set(['PAYMENT_REFUND_EXCEEDS_PAID', 'PAYMENT_ROYALTY_EXCEEDS_SHARE'])

/**
 * The gateway answer for any thrown value: an AlipayError as is, a mapped AppError (its
 * detailed message, if it has one, follows the sub-code's own), anything else (a bug, a lost
 * connection) as `isp.unknow-error`, which the caller should log.
 */
export function toAlipayError(error: unknown): { error: AlipayError; unexpected: boolean } {
  if (error instanceof AlipayError) return { error, unexpected: false }
  if (isAppError(error)) {
    const subCode = appErrorMap[error.code] ?? (error.transient ? 'isp.unknow-error' : undefined)
    if (subCode !== undefined) {
      const detailed = error.message !== errorTable().get(error.code)?.message && !fenMessages.has(error.code)
      const message: string = subCodes[subCode].message
      return { error: new AlipayError(subCode, detailed ? `${message}: ${error.message}` : message), unexpected: false }
    }
  }
  return { error: new AlipayError('isp.unknow-error'), unexpected: true }
}
