/**
 * One `alipay.trade.pay` (barcode) request to the Alipay-compatible gateway, built and signed
 * exactly as `alipay-sdk` v4's `exec` does it: common parameters (and the RSA2 `sign` over all
 * parameters sorted, `k=v` joined by `&`, empty ones left out) in the URL query, `biz_content`
 * in a form-encoded body; the v2 `timestamp` in UTC+8, the gateway's default zone.
 *
 * @example
 * const request = gatewayPay(world, 'GW-1', 1)
 */
import crypto from 'node:crypto'
import type { PreparedRequest } from '../../test/reliability/support/http.js'
import type { World } from '../../test/reliability/support/world.js'

function beijingTimestamp(ms: number): string {
  return new Date(ms + 8 * 3600_000).toISOString().slice(0, 19).replace('T', ' ')
}

export function gatewayPay(world: World, outTradeNo: string, amountFen: number, nowMs = Date.now()): PreparedRequest {
  const yuan = `${Math.floor(amountFen / 100)}.${String(amountFen % 100).padStart(2, '0')}`
  const params: Record<string, string> = {
    app_id: world.appId,
    method: 'alipay.trade.pay',
    format: 'JSON',
    charset: 'utf-8',
    sign_type: 'RSA2',
    timestamp: beijingTimestamp(nowMs),
    version: '1.0',
    app_auth_token: world.appAuthToken,
    biz_content: JSON.stringify({
      out_trade_no: outTradeNo,
      scene: 'bar_code',
      auth_code: world.paymentCode,
      subject: 'bench',
      total_amount: yuan,
    }),
  }
  const text = Object.keys(params)
    .sort()
    .filter((key) => params[key] !== '')
    .map((key) => `${key}=${params[key]}`)
    .join('&')
  params.sign = crypto.sign('sha256', Buffer.from(text, 'utf8'), world.privateKey).toString('base64')
  const query = new URLSearchParams()
  const body = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) (key === 'biz_content' ? body : query).set(key, value)
  return {
    method: 'POST',
    path: `/gateway.do?${query.toString()}`,
    headers: { 'content-type': 'application/x-www-form-urlencoded;charset=utf-8', accept: 'application/json' },
    body: body.toString(),
  }
}
