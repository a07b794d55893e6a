/**
 * The Alipay-compatible gateway driven by the real `alipay-sdk` v4, unmodified, against a
 * running Baseplate on both databases: every method through v2 `exec` (responses verified,
 * `validateSign: true`) and v3 `curl` (the SDK verifies every v3 response), then the error
 * paths an ISV meets first. Money-moving tests end with the ledger checked.
 */
import crypto from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { sha256Hex } from '../src/platform/ids.js'
import { issueCode } from '../src/platform/authorization/service.js'
import { rsaPublicKeyPem } from '../src/platform/signing/platform-keys.js'
import type { CoreTables } from '../src/storage/tables.js'
import type { Kysely } from 'kysely'
import { useAlipayWorld, v3Path } from './alipay-gateway-world.js'
import { forEachDialect } from './harness.js'
import { expectLedgerConsistent } from './ledger-helpers.js'

const success = { code: '10000', msg: 'Success' }

forEachDialect('alipay gateway through alipay-sdk', (dialect) => {
  const world = useAlipayWorld(dialect)
  const run = crypto.randomBytes(3).toString('hex')
  const no = (name: string) => `${name}-${run}`

  describe('trades', () => {
    it('precreates, creates, pays, queries, closes and cancels through v2 exec with validateSign', async () => {
      const w = world()
      const precreated = await w.v2('alipay.trade.precreate', {
        outTradeNo: no('V2-PRE'),
        totalAmount: '12.30',
        subject: '停车费 Parking',
        timeoutExpress: '30m',
      })
      expect(precreated).toMatchObject({
        ...success,
        outTradeNo: no('V2-PRE'),
        qrCode: expect.stringContaining('/pay/'),
      })

      const created = await w.v2('alipay.trade.create', {
        outTradeNo: no('V2-CREATE'),
        totalAmount: '5.00',
        subject: '小程序 Mini program',
        buyerId: w.sandbox.buyer.id,
        productCode: 'JSAPI_PAY',
      })
      expect(created).toMatchObject({
        ...success,
        outTradeNo: no('V2-CREATE'),
        tradeNo: expect.stringMatching(/^trade_/),
      })

      const paid = await w.v2('alipay.trade.pay', {
        outTradeNo: no('V2-PAY'),
        totalAmount: '8.80',
        subject: '咖啡 Coffee',
        scene: 'bar_code',
        authCode: w.sandbox.buyer.paymentCode,
      })
      expect(paid).toMatchObject({
        ...success,
        outTradeNo: no('V2-PAY'),
        totalAmount: '8.80',
        receiptAmount: '8.80',
        buyerUserId: w.sandbox.buyer.id,
        gmtPayment: expect.stringMatching(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/),
        fundBillList: [{ fundChannel: 'ALIPAYACCOUNT', amount: '8.80' }],
      })

      const byOutTradeNo = await w.v2('alipay.trade.query', { outTradeNo: no('V2-PAY') })
      expect(byOutTradeNo).toMatchObject({ ...success, tradeNo: paid.tradeNo, tradeStatus: 'TRADE_SUCCESS' })
      const byTradeNo = await w.v2('alipay.trade.query', { tradeNo: created.tradeNo })
      expect(byTradeNo).toMatchObject({
        tradeStatus: 'WAIT_BUYER_PAY',
        totalAmount: '5.00',
        subject: '小程序 Mini program',
      })

      const closed = await w.v2('alipay.trade.close', { tradeNo: created.tradeNo })
      expect(closed).toMatchObject({ ...success, tradeNo: created.tradeNo, outTradeNo: no('V2-CREATE') })
      expect(await w.v2('alipay.trade.query', { tradeNo: created.tradeNo })).toMatchObject({
        tradeStatus: 'TRADE_CLOSED',
      })

      const cancelledUnpaid = await w.v2('alipay.trade.cancel', { outTradeNo: no('V2-PRE') })
      expect(cancelledUnpaid).toMatchObject({ ...success, action: 'close', retryFlag: 'N' })
      const cancelledPaid = await w.v2('alipay.trade.cancel', { outTradeNo: no('V2-PAY') })
      expect(cancelledPaid).toMatchObject({ ...success, action: 'refund' })
      expect(await w.v2('alipay.trade.query', { outTradeNo: no('V2-PAY') })).toMatchObject({
        tradeStatus: 'TRADE_CLOSED',
        refundAmount: '8.80',
      })
      await expectLedgerConsistent(w.platform.storage.db)
    })

    it('does the same through v3 curl, every response signature verified by the SDK', async () => {
      const w = world()
      const precreated = await w.v3('alipay.trade.precreate', {
        out_trade_no: no('V3-PRE'),
        total_amount: '3.20',
        subject: '充电 Charging',
      })
      expect(precreated.responseHttpStatus).toBe(200)
      expect(precreated.data).toEqual({ out_trade_no: no('V3-PRE'), qr_code: expect.stringContaining('/pay/') })
      await w.payOnPage(precreated.data.qr_code)
      expect((await w.v3('alipay.trade.query', { out_trade_no: no('V3-PRE') })).data).toMatchObject({
        trade_status: 'TRADE_SUCCESS',
        buyer_user_id: w.sandbox.buyer.id,
      })

      const created = await w.v3('alipay.trade.create', {
        out_trade_no: no('V3-CREATE'),
        total_amount: '2.00',
        subject: '课程 Course',
        buyer_id: w.sandbox.buyer.id,
      })
      expect(created.data).toEqual({ out_trade_no: no('V3-CREATE'), trade_no: expect.stringMatching(/^trade_/) })
      const paid = await w.v3('alipay.trade.pay', {
        out_trade_no: no('V3-PAY'),
        total_amount: '6.60',
        subject: '药店 Pharmacy',
        auth_code: w.sandbox.buyer.paymentCode,
        scene: 'bar_code',
      })
      expect(paid.data).toMatchObject({ trade_no: expect.stringMatching(/^trade_/), total_amount: '6.60' })
      // A GET with the parameters in the query string works too, signed over the full path.
      const queried = await w.sdk.curl('GET', v3Path('alipay.trade.query'), {
        appAuthToken: w.appAuthToken,
        query: { trade_no: paid.data.trade_no },
      })
      expect(queried.data).toMatchObject({ out_trade_no: no('V3-PAY'), trade_status: 'TRADE_SUCCESS' })

      expect((await w.v3('alipay.trade.close', { trade_no: created.data.trade_no })).data).toEqual({
        trade_no: created.data.trade_no,
        out_trade_no: no('V3-CREATE'),
      })
      const cancelled = await w.v3('alipay.trade.cancel', { out_trade_no: no('V3-PAY') })
      expect(cancelled.data).toMatchObject({ action: 'refund', retry_flag: 'N' })
      await expectLedgerConsistent(w.platform.storage.db)
    })

    it('refunds in parts, idempotently on out_request_no, and queries refunds (v2 and v3)', async () => {
      const w = world()
      const paid = await w.v2('alipay.trade.pay', {
        outTradeNo: no('REFUND'),
        totalAmount: '20.00',
        subject: '退款 Refund',
        authCode: w.sandbox.buyer.paymentCode,
      })
      const first = await w.v2('alipay.trade.refund', {
        outTradeNo: no('REFUND'),
        refundAmount: '5.50',
        outRequestNo: 'R1',
      })
      expect(first).toMatchObject({ ...success, fundChange: 'Y', refundFee: '5.50', sendBackFee: '5.50' })
      const again = await w.v2('alipay.trade.refund', {
        outTradeNo: no('REFUND'),
        refundAmount: '5.50',
        outRequestNo: 'R1',
      })
      expect(again).toMatchObject({ ...success, fundChange: 'N', refundFee: '5.50' })
      const second = await w.v3('alipay.trade.refund', {
        trade_no: paid.tradeNo,
        refund_amount: '4.50',
        out_request_no: 'R2',
        refund_reason: '质量问题',
      })
      expect(second.data).toMatchObject({ fund_change: 'Y', refund_fee: '10.00', send_back_fee: '4.50' })

      const queried = await w.v2('alipay.trade.fastpay.refund.query', { tradeNo: paid.tradeNo, outRequestNo: 'R1' })
      expect(queried).toMatchObject({
        ...success,
        outRequestNo: 'R1',
        refundAmount: '5.50',
        totalAmount: '20.00',
        refundStatus: 'REFUND_SUCCESS',
      })
      const v3Queried = await w.v3('alipay.trade.fastpay.refund.query', {
        out_trade_no: no('REFUND'),
        out_request_no: 'R2',
      })
      expect(v3Queried.data).toMatchObject({
        refund_amount: '4.50',
        refund_status: 'REFUND_SUCCESS',
        refund_reason: '质量问题',
      })
      // As on Alipay, no refund under the number is a success without refund_status.
      const none = await w.v2('alipay.trade.fastpay.refund.query', { tradeNo: paid.tradeNo, outRequestNo: 'R9' })
      expect(none).toMatchObject(success)
      expect(none.refundStatus).toBeUndefined()
      await expectLedgerConsistent(w.platform.storage.db)
    })
  })

  it('binds receivers, shares profit and queries it (v2 and v3)', async () => {
    const w = world()
    const receiver = { type: 'userId', account: w.sandbox.isv.id, name: '服务商 ISV' }
    expect(
      await w.v2('alipay.trade.royalty.relation.bind', { outRequestNo: no('BIND-1'), receiverList: [receiver] }),
    ).toEqual({
      ...success,
      resultCode: 'SUCCESS',
      traceId: expect.any(String),
    })
    const paid = await w.v2('alipay.trade.pay', {
      outTradeNo: no('ROYALTY'),
      totalAmount: '30.00',
      subject: '分账 Profit sharing',
      authCode: w.sandbox.buyer.paymentCode,
    })
    const settled = await w.v2('alipay.trade.order.settle', {
      outRequestNo: 'S1',
      tradeNo: paid.tradeNo,
      royaltyParameters: [
        { royaltyType: 'transfer', transInType: 'userId', transIn: w.sandbox.isv.id, amount: '3.00' },
      ],
    })
    expect(settled).toMatchObject({ ...success, tradeNo: paid.tradeNo, settleNo: `${paid.tradeNo}.S1` })
    const bySettleNo = await w.v2('alipay.trade.order.settle.query', { settleNo: settled.settleNo })
    expect(bySettleNo).toMatchObject({
      ...success,
      outRequestNo: 'S1',
      royaltyDetailList: [{ operationType: 'transfer', transIn: w.sandbox.isv.id, amount: '3.00', state: 'SUCCESS' }],
    })

    const v3Settled = await w.v3('alipay.trade.order.settle', {
      out_request_no: 'S2',
      trade_no: paid.tradeNo,
      royalty_parameters: [{ trans_in: w.sandbox.isv.id, amount: '2.00' }],
    })
    expect(v3Settled.data).toEqual({ trade_no: paid.tradeNo, settle_no: `${paid.tradeNo}.S2` })
    const v3Queried = await w.v3('alipay.trade.order.settle.query', { out_request_no: 'S2', trade_no: paid.tradeNo })
    expect(v3Queried.data.royalty_detail_list).toEqual([expect.objectContaining({ amount: '2.00', state: 'SUCCESS' })])
    // The governed cap (30 % of the trade by default) holds through the gateway too.
    const tooMuch = await w.v2('alipay.trade.order.settle', {
      outRequestNo: 'S3',
      tradeNo: paid.tradeNo,
      royaltyParameters: [{ transIn: w.sandbox.isv.id, amount: '5.00' }],
    })
    expect(tooMuch).toMatchObject({ code: '40004', subCode: 'ACQ.ALLOC_AMOUNT_VALIDATE_ERROR' })

    const unbound = await w.v3('alipay.trade.royalty.relation.unbind', {
      out_request_no: no('UNBIND-1'),
      receiver_list: [receiver],
    })
    expect(unbound.data).toEqual({ result_code: 'SUCCESS' })
    const notBound = await w.v3Error('alipay.trade.order.settle', {
      out_request_no: 'S4',
      trade_no: paid.tradeNo,
      royalty_parameters: [{ trans_in: w.sandbox.isv.id, amount: '1.00' }],
    })
    expect(notBound).toMatchObject({ code: 'ACQ.ROYALTY_RECEIVER_NOT_BOUND', responseHttpStatus: 400 })
    expect(
      (await w.v3('alipay.trade.royalty.relation.bind', { out_request_no: no('BIND-2'), receiver_list: [receiver] }))
        .data,
    ).toEqual({
      result_code: 'SUCCESS',
    })
    expect(
      await w.v2('alipay.trade.royalty.relation.unbind', { outRequestNo: no('UNBIND-2'), receiverList: [receiver] }),
    ).toMatchObject({
      ...success,
      resultCode: 'SUCCESS',
    })
    await expectLedgerConsistent(w.platform.storage.db)
  })

  it('answers the error paths in Alipay’s shapes (v2 signed, v3 as AlipayRequestError)', async () => {
    const w = world()
    // Unknown trade.
    expect(await w.v2('alipay.trade.query', { outTradeNo: no('NOPE') })).toMatchObject({
      code: '40004',
      msg: 'Business Failed',
      subCode: 'ACQ.TRADE_NOT_EXIST',
    })
    expect(await w.v3Error('alipay.trade.query', { out_trade_no: no('NOPE') })).toMatchObject({
      code: 'ACQ.TRADE_NOT_EXIST',
      responseHttpStatus: 404,
    })

    // A refund above what was paid.
    const paid = await w.v2('alipay.trade.pay', {
      outTradeNo: no('OVER'),
      totalAmount: '1.00',
      subject: 'over-refund',
      authCode: w.sandbox.buyer.paymentCode,
    })
    expect(
      await w.v2('alipay.trade.refund', { tradeNo: paid.tradeNo, refundAmount: '1.01', outRequestNo: 'X1' }),
    ).toMatchObject({
      code: '40004',
      subCode: 'ACQ.REFUND_AMT_NOT_EQUAL_TOTAL',
    })
    expect(
      await w.v3Error('alipay.trade.refund', { trade_no: paid.tradeNo, refund_amount: '2.00', out_request_no: 'X2' }),
    ).toMatchObject({
      code: 'ACQ.REFUND_AMT_NOT_EQUAL_TOTAL',
      responseHttpStatus: 400,
    })

    // A bad signature (the app key the second sandbox run replaced) echoes the verified string.
    const stale = w.sdkWith({ privateKey: w.staleSandbox.appPrivateKey })
    const badV2 = await stale.exec(
      'alipay.trade.query',
      { appAuthToken: w.appAuthToken, bizContent: { outTradeNo: 'X' } },
      { validateSign: true },
    )
    expect(badV2).toMatchObject({ code: '40002', msg: 'Invalid Arguments', subCode: 'isv.invalid-signature' })
    const echoed = (badV2.subMsg as string).split('验签字符串为：')[1]!
    // The app auth token is a bearer credential: the echo shows its fingerprint, never the token.
    expect(echoed).not.toContain(w.appAuthToken)
    expect(echoed).toMatch(
      new RegExp(`^app_auth_token=<secret sha256:${sha256Hex(w.appAuthToken).slice(0, 16)}>&app_id=`),
    )
    expect(echoed).toContain('&biz_content={"out_trade_no":"X"}&charset=utf-8&method=alipay.trade.query&sign_type=RSA2')
    const badV3 = await w.v3Error('alipay.trade.query', { out_trade_no: 'X' }, { sdk: stale })
    expect(badV3).toMatchObject({ code: 'isv.invalid-signature', responseHttpStatus: 401 })
    expect(badV3.message).toContain(`app_id=${w.sandbox.appId},nonce=`)
    expect(badV3.message).toContain('\nPOST\n/v3/alipay/trade/query\n{"out_trade_no":"X"}\n')
    expect(badV3.message).not.toContain(w.appAuthToken)
    // Both refusals are in the audit log, as the app they claimed (ADR 0020).
    const refused = await w.platform.storage.db
      .selectFrom('audit_log')
      .select(['actor', 'target', 'data'])
      .where('action', '=', 'access.refused')
      .orderBy('seq', 'desc')
      .limit(2)
      .execute()
    expect(refused.reverse().map((row) => ({ ...row, data: JSON.parse(row.data) }))).toMatchObject([
      {
        actor: 'anonymous',
        target: 'POST /gateway.do',
        data: { reason: 'authentication', code: 'isv.invalid-signature', claimed_app: w.sandbox.appId },
      },
      {
        actor: 'anonymous',
        target: 'POST /v3/*',
        data: { reason: 'authentication', code: 'isv.invalid-signature', claimed_app: w.sandbox.appId },
      },
    ])

    // A stale timestamp: v2 with the SDK's timestamp overridden, v3 with the server clock an hour on.
    const staleV2 = await w.v2('alipay.trade.query', { outTradeNo: 'X' }, { timestamp: '2020-01-01 00:00:00' })
    expect(staleV2).toMatchObject({ code: '40002', subCode: 'isv.invalid-timestamp' })
    w.skew = 3_600_000
    try {
      expect(await w.v3Error('alipay.trade.query', { out_trade_no: 'X' })).toMatchObject({
        code: 'isv.invalid-timestamp',
        responseHttpStatus: 401,
      })
    } finally {
      w.skew = 0
    }

    // An app_auth_token this app was never given.
    const forged = `bpat_${crypto.randomBytes(32).toString('base64url')}`
    expect(await w.v2('alipay.trade.query', { outTradeNo: 'X' }, { appAuthToken: forged })).toMatchObject({
      code: '20001',
      msg: 'Insufficient Token Permissions',
      subCode: 'aop.invalid-app-auth-token',
    })
    expect(await w.v3Error('alipay.trade.query', { out_trade_no: 'X' }, { appAuthToken: forged })).toMatchObject({
      code: 'aop.invalid-app-auth-token',
      responseHttpStatus: 401,
    })
    // No token at all: the ISV's own organisation is no merchant.
    const noToken = await w.sdk.exec(
      'alipay.trade.precreate',
      { bizContent: { outTradeNo: no('NO-TOKEN'), totalAmount: '1.00', subject: 'x' } },
      { validateSign: true },
    )
    expect(noToken).toMatchObject({ code: '40006', subCode: 'isv.insufficient-isv-permissions' })

    // sign_type RSA (SHA1withRSA) is refused; the SDK then verifies with SHA1, so no validateSign here.
    const sha1 = w.sdkWith({ signType: 'RSA' })
    expect(
      await sha1.exec('alipay.trade.query', { appAuthToken: w.appAuthToken, bizContent: { outTradeNo: 'X' } }),
    ).toMatchObject({
      code: '40002',
      subCode: 'isv.invalid-signature-type',
      subMsg: expect.stringContaining('SHA1'),
    })

    // Amounts: yuan with at most two decimals, exactly.
    const thirdDecimal = await w.v2('alipay.trade.precreate', {
      outTradeNo: no('AMOUNT'),
      totalAmount: '1.005',
      subject: 'x',
    })
    expect(thirdDecimal).toMatchObject({
      code: '40004',
      subCode: 'ACQ.INVALID_PARAMETER',
      subMsg: expect.stringContaining('total_amount'),
    })
    expect(
      await w.v3Error('alipay.trade.precreate', { out_trade_no: no('AMOUNT'), total_amount: '-1', subject: 'x' }),
    ).toMatchObject({
      code: 'ACQ.INVALID_PARAMETER',
      responseHttpStatus: 400,
    })
    expect(
      await w.v2('alipay.trade.precreate', { outTradeNo: no('AMOUNT'), totalAmount: '0.00', subject: 'x' }),
    ).toMatchObject({
      subCode: 'ACQ.INVALID_PARAMETER',
    })
    // A JSON number in biz_content is read through its decimal form: 0.1 + 0.2 never happens.
    expect(
      await w.v2('alipay.trade.precreate', { outTradeNo: no('NUMBER'), totalAmount: 19.99, subject: 'x' }),
    ).toMatchObject(success)
    expect(await w.v2('alipay.trade.query', { outTradeNo: no('NUMBER') })).toMatchObject({ totalAmount: '19.99' })

    // An unknown method.
    expect(await w.sdk.exec('alipay.trade.teleport', { bizContent: {} }, { validateSign: true })).toMatchObject({
      code: '40002',
      subCode: 'isv.invalid-method',
    })
    await expectLedgerConsistent(w.platform.storage.db)
  })

  it('refuses a replayed v3 nonce', async () => {
    const w = world()
    // The SDK never repeats a nonce, so this request is built by hand, signed with the sandbox key.
    const path = v3Path('alipay.trade.query')
    const body = JSON.stringify({ out_trade_no: 'X' })
    const auth = `app_id=${w.sandbox.appId},nonce=${crypto.randomUUID()},timestamp=${Date.now()}`
    const signed = `${auth}\nPOST\n${path}\n${body}\n${w.appAuthToken}\n`
    const sign = crypto.createSign('RSA-SHA256').update(signed).sign(w.sandbox.appPrivateKey, 'base64')
    const send = () =>
      fetch(`${w.endpoint}${path}`, {
        method: 'POST',
        headers: {
          authorization: `ALIPAY-SHA256withRSA ${auth},sign=${sign}`,
          'alipay-app-auth-token': w.appAuthToken,
          'content-type': 'application/json',
        },
        body,
      })
    expect((await send()).status).toBe(404)
    const replayed = await send()
    expect(replayed.status).toBe(401)
    expect(await replayed.json()).toMatchObject({ code: 'isv.invalid-nonce', links: [] })
  })

  it('exchanges and refreshes app auth tokens and queries them (v2 and v3)', async () => {
    const w = world()
    const merchantId = w.sandbox.merchant.id
    const queried = await w.v2('alipay.open.auth.token.app.query', { appAuthToken: w.appAuthToken })
    expect(queried).toMatchObject({
      ...success,
      userId: merchantId,
      authAppId: merchantId,
      status: 'valid',
      authMethods: expect.arrayContaining(['alipay.trade.pay', 'alipay.trade.refund', 'alipay.trade.order.settle']),
    })
    expect((await w.v3('alipay.open.auth.token.app.query', { app_auth_token: w.appAuthToken })).data).toMatchObject({
      user_id: merchantId,
      status: 'valid',
    })

    // refresh_token (v2), then with the rotated refresh token (v3); the old token stops working.
    const oldToken = w.appAuthToken
    const refreshed = await w.v2('alipay.open.auth.token.app', {
      grantType: 'refresh_token',
      refreshToken: w.sandbox.appRefreshToken,
    })
    expect(refreshed).toMatchObject({
      ...success,
      userId: merchantId,
      appAuthToken: expect.stringMatching(/^bpat_/),
      expiresIn: expect.any(Number),
      tokens: [expect.objectContaining({ userId: merchantId })],
    })
    w.appAuthToken = refreshed.appAuthToken
    expect(await w.v2('alipay.trade.query', { outTradeNo: 'X' }, { appAuthToken: oldToken })).toMatchObject({
      subCode: 'aop.invalid-app-auth-token',
    })
    const v3Refreshed = await w.v3('alipay.open.auth.token.app', {
      grant_type: 'refresh_token',
      refresh_token: refreshed.appRefreshToken,
    })
    expect(v3Refreshed.data).toMatchObject({ user_id: merchantId, app_auth_token: expect.stringMatching(/^bpat_/) })
    w.appAuthToken = v3Refreshed.data.app_auth_token

    // authorization_code: the code the consent page would issue once the merchant approves.
    const merchantUser = await (w.platform.storage.db as Kysely<CoreTables>)
      .selectFrom('memberships')
      .select('user_id')
      .where('organization_id', '=', merchantId)
      .executeTakeFirstOrThrow()
    const approval = {
      userId: merchantUser.user_id,
      appId: w.sandbox.appId,
      merchantId,
      scopes: ['payment:refund', 'payment:settlement', 'payment:trade'],
      redirectUri: 'https://isv.example/alipay/callback',
    }
    const db = w.platform.storage.db
    const firstCode = await db.transaction().execute((tx) => issueCode(tx, approval, Date.now()))
    const exchanged = await w.v2('alipay.open.auth.token.app', { grantType: 'authorization_code', code: firstCode })
    expect(exchanged).toMatchObject({
      ...success,
      userId: merchantId,
      appRefreshToken: expect.stringMatching(/^bprt_/),
    })
    w.appAuthToken = exchanged.appAuthToken
    // A code works once; using it again revokes what it issued (it leaked).
    expect(
      await w.v2('alipay.open.auth.token.app', { grantType: 'authorization_code', code: firstCode }),
    ).toMatchObject({
      code: '40002',
      subCode: 'isv.code-invalid',
    })
    const secondCode = await db.transaction().execute((tx) => issueCode(tx, approval, Date.now()))
    const v3Exchanged = await w.v3('alipay.open.auth.token.app', { grant_type: 'authorization_code', code: secondCode })
    w.appAuthToken = v3Exchanged.data.app_auth_token
    expect((await w.v2('alipay.open.auth.token.app.query', { appAuthToken: w.appAuthToken })).authMethods).toEqual([
      'alipay.trade.cancel',
      'alipay.trade.close',
      'alipay.trade.create',
      'alipay.trade.fastpay.refund.query',
      'alipay.trade.order.settle',
      'alipay.trade.order.settle.query',
      'alipay.trade.pay',
      'alipay.trade.precreate',
      'alipay.trade.query',
      'alipay.trade.refund',
      'alipay.trade.royalty.relation.bind',
      'alipay.trade.royalty.relation.unbind',
    ])
    expect(await w.v2('alipay.open.auth.token.app.query', { appAuthToken: oldToken })).toMatchObject({
      code: '40004',
      subCode: 'isv.invalid-app-auth-token',
    })
  })

  it('publishes the RSA key the sandbox prints as alipayPublicKey', async () => {
    const w = world()
    const response = await fetch(`${w.endpoint}/v1/platform-keys/sandbox?algorithm=RSA`)
    const key = await response.json()
    expect(key).toMatchObject({ environment: 'sandbox', algorithm: 'RSA', public_key_pem: w.sandbox.alipayPublicKey })
    expect(await rsaPublicKeyPem(w.platform.storage.db, 'sandbox')).toBe(w.sandbox.alipayPublicKey)
    expect(crypto.createPublicKey(w.sandbox.alipayPublicKey).asymmetricKeyDetails?.modulusLength).toBe(2048)
  })
})
