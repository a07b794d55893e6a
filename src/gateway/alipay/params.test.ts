import crypto from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { AlipayError } from './errors.js'
import { bizReader, formatTime, parseLocalTime, tradeTimeoutS, yuanToFen } from './params.js'
import {
  notificationSigningString,
  parseV3Authorization,
  readFormParameters,
  v2Envelope,
  v2SigningString,
  v3Method,
} from './protocol.js'

function subCodeOf(action: () => unknown): string | undefined {
  try {
    action()
  } catch (error) {
    if (error instanceof AlipayError) return error.subCode
    throw error
  }
  return undefined
}

describe('Alipay timestamps', () => {
  it('reads yyyy-MM-dd HH:mm:ss in the configured zone (UTC+8 by default)', () => {
    expect(parseLocalTime('2026-11-25 12:00:00', 480)).toBe(Date.UTC(2026, 10, 25, 4, 0, 0))
    expect(parseLocalTime('2026-11-25 12:00:00', 0)).toBe(Date.UTC(2026, 10, 25, 12, 0, 0))
    expect(parseLocalTime('2026-11-25 12:00:00', -300)).toBe(Date.UTC(2026, 10, 25, 17, 0, 0))
    expect(formatTime(Date.UTC(2026, 10, 25, 20, 30, 5), 480)).toBe('2026-11-26 04:30:05')
  })

  it('refuses what is not such a time', () => {
    for (const text of ['2026-02-30 00:00:00', '2026-11-25T12:00:00', '2026-11-25 24:00:00', '1764072000', '']) {
      expect(parseLocalTime(text, 480), text).toBeNull()
    }
  })
})

describe('yuan amounts', () => {
  it('converts yuan strings with up to two decimals exactly', () => {
    expect(yuanToFen('88.80', 'total_amount')).toBe(8880)
    expect(yuanToFen('0.01', 'total_amount')).toBe(1)
    expect(yuanToFen('12.3', 'total_amount')).toBe(1230)
    expect(yuanToFen('10000000000.00', 'total_amount')).toBe(1_000_000_000_000)
    // JSON numbers through their shortest decimal form: exact for any literal of a valid amount.
    expect(yuanToFen(19.99, 'total_amount')).toBe(1999)
  })

  it('refuses everything else with ACQ.INVALID_PARAMETER', () => {
    for (const value of [
      '1.005',
      '-1',
      '0',
      '0.00',
      '1e3',
      ' 1.00',
      '1,00',
      '10000000000.01',
      '',
      0.1 + 0.2,
      null,
      {},
    ]) {
      expect(
        subCodeOf(() => yuanToFen(value, 'total_amount')),
        JSON.stringify(value),
      ).toBe('ACQ.INVALID_PARAMETER')
    }
  })
})

describe('business parameters', () => {
  it('reads order numbers, texts and timeouts, naming the field on refusal', () => {
    const now = Date.UTC(2026, 10, 25, 4, 0, 0)
    expect(tradeTimeoutS(bizReader({ timeout_express: '90m' }), now, 480)).toBe(5400)
    expect(tradeTimeoutS(bizReader({ timeout_express: '1c' }), now, 480)).toBe(12 * 3600 - 1)
    expect(tradeTimeoutS(bizReader({ time_expire: '2026-11-25 13:00:00', timeout_express: '5m' }), now, 480)).toBe(3600)
    expect(tradeTimeoutS(bizReader({}), now, 480)).toBeUndefined()
    expect(subCodeOf(() => tradeTimeoutS(bizReader({ timeout_express: '30s' }), now, 480))).toBe(
      'ACQ.INVALID_PARAMETER',
    )
    expect(subCodeOf(() => tradeTimeoutS(bizReader({ timeout_express: '16d' }), now, 480))).toBe(
      'ACQ.INVALID_PARAMETER',
    )
    expect(subCodeOf(() => bizReader({ out_trade_no: 'a b' }).outNo('out_trade_no', true))).toBe(
      'ACQ.INVALID_PARAMETER',
    )
    expect(subCodeOf(() => bizReader({}).requiredText('subject'))).toBe('ACQ.INVALID_PARAMETER')
    expect(subCodeOf(() => bizReader({ auth_no: 'A1' }).unsupported('auth_no', 'no'))).toBe('ACQ.INVALID_PARAMETER')
    expect(bizReader({ subject: '纯'.repeat(256) }).requiredText('subject', 256)).toHaveLength(256)
  })
})

describe('the v2 and v3 wire forms', () => {
  it('signs v2 over sorted raw k=v without sign, with or without empty values', () => {
    const { params, duplicate } = readFormParameters(
      'method=alipay.trade.query&app_id=app_1&sign=abc&timestamp=2026-11-25+12%3A00%3A00',
      'biz_content=%7B%22out_trade_no%22%3A%22100%25%22%7D&return_url=',
    )
    expect(duplicate).toBeNull()
    expect(v2SigningString(params, false)).toBe(
      'app_id=app_1&biz_content={"out_trade_no":"100%"}&method=alipay.trade.query&timestamp=2026-11-25 12:00:00',
    )
    expect(v2SigningString(params, true)).toContain('&return_url=&')
    expect(readFormParameters('a=1', 'a=2').duplicate).toBe('a')
  })

  it('puts the response key first and sign last, as alipay-sdk extracts the signed bytes', () => {
    const inner = JSON.stringify({ code: '10000', msg: 'Success', subject: '纯棉 {x}' })
    const signature = crypto.randomBytes(256).toString('base64')
    const envelope = v2Envelope('alipay_trade_query_response', inner, signature)
    expect(JSON.parse(envelope)).toEqual({ alipay_trade_query_response: JSON.parse(inner), sign: signature })
    expect(envelope.startsWith(`{"alipay_trade_query_response":${inner},"sign":`)).toBe(true)
  })

  it('reads v3 paths and authorization headers', () => {
    expect(v3Method('/v3/alipay/trade/fastpay/refund/query')).toBe('alipay.trade.fastpay.refund.query')
    expect(v3Method('/v3/alipay/../trade')).toBeNull()
    const parsed = parseV3Authorization(
      'ALIPAY-SHA256withRSA app_id=app_1,nonce=n-1,timestamp=1764072000000,sign=a+b/c==',
    )
    expect(parsed.authString).toBe('app_id=app_1,nonce=n-1,timestamp=1764072000000')
    expect(parsed.signature).toBe('a+b/c==')
    expect(parsed.fields.get('nonce')).toBe('n-1')
    expect(subCodeOf(() => parseV3Authorization(undefined))).toBe('isv.missing-signature')
    expect(subCodeOf(() => parseV3Authorization('Bearer x'))).toBe('isv.invalid-signature-type')
    expect(subCodeOf(() => parseV3Authorization('ALIPAY-SHA256withRSA app_id=a,app_id=b,sign=x'))).toBe(
      'isv.invalid-signature',
    )
  })

  it('signs notifications without sign and sign_type', () => {
    expect(notificationSigningString({ b: '2', sign: 's', sign_type: 'RSA2', a: '100% 纯' })).toBe('a=100% 纯&b=2')
  })
})
