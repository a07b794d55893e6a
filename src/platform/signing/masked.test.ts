import { describe, expect, it } from 'vitest'
import { sha256Hex } from '../ids.js'
import { credentialsIn, maskSecrets, maskUrl } from './masked.js'

const fingerprint = (secret: string) => `<secret sha256:${sha256Hex(secret).slice(0, 16)}>`

describe('masking credentials', () => {
  it('finds credentials by name, in query strings (raw and decoded) and at the top of JSON objects', () => {
    const found = credentialsIn({
      named: [
        ['app_auth_token', 'bpat_named_0001'],
        ['method', 'alipay.trade.query'],
      ],
      queries: ['a=1&auth_token=tok%2Fen_0002&x=2', undefined],
      json: ['{"refresh_token":"bprt_json_0003","code":"code_json_0004","out_trade_no":"T1"}', 'not json', ''],
    })
    expect(found).toEqual(['bpat_named_0001', 'tok/en_0002', 'tok%2Fen_0002', 'bprt_json_0003', 'code_json_0004'])
  })

  it('replaces each secret by its fingerprint, longest first, and leaves short values alone', () => {
    const text = 'line\nbpat_long_secret_value\nbpat_long\nab'
    const masked = maskSecrets(text, ['bpat_long', 'bpat_long_secret_value', 'ab', undefined])
    expect(masked).toBe(`line\n${fingerprint('bpat_long_secret_value')}\n${fingerprint('bpat_long')}\nab`)
  })

  it('masks the credential parameters of a URL and keeps the rest as sent', () => {
    const url = '/gateway.do?app_id=app_1&app_auth_token=bpat_abc%2B123&method=alipay.trade.query&sign=x%2By'
    const masked = maskUrl(url)
    expect(masked).not.toContain('bpat_abc')
    expect(masked).toBe(
      `/gateway.do?app_id=app_1&app_auth_token=${encodeURIComponent(fingerprint('bpat_abc+123'))}` +
        '&method=alipay.trade.query&sign=x%2By',
    )
    expect(maskUrl('/v1/stores')).toBe('/v1/stores')
    expect(maskUrl('/p?code&%E0=1')).toBe('/p?code&%E0=1')
  })
})
