import { afterEach, beforeAll, expect, it } from 'vitest'
import { json } from './fixtures.js'
import { forEachDialect, manualClock, useTestPlatform } from './harness.js'
import { expectLedgerConsistent } from './ledger-helpers.js'
import { balanceOf, paymentCode, paymentWorld, testTokenResolver, type PaymentWorld } from './payment-fixtures.js'

const clock = manualClock(Date.now())
let counter = 0
const orderNo = (prefix: string) => `${prefix}-${(counter += 1)}`

forEachDialect('payments', (dialect) => {
  const bp = useTestPlatform(dialect, { clock, appAuthTokenResolver: testTokenResolver() })
  let world: PaymentWorld

  beforeAll(async () => {
    world = await paymentWorld(bp(), { now: clock.now })
  })
  afterEach(async () => expectLedgerConsistent(bp().storage.db))

  const pay = async (amount: number, code?: string) =>
    world.call({
      method: 'POST',
      url: '/v1/trades/pay',
      body: {
        out_trade_no: orderNo('PAY'),
        total_amount: amount,
        subject: '课程 Course',
        auth_code: code ?? (await paymentCode(world)),
      },
    })
  /** A QR order nobody pays, which times out after 60 s. */
  const precreateExpiring = async (prefix: string, amount: number) =>
    json(
      await world.call({
        method: 'POST',
        url: '/v1/trades/precreate',
        body: { out_trade_no: orderNo(prefix), total_amount: amount, subject: prefix, timeout_seconds: 60 },
      }),
    )

  it('charges a barcode payment from the wallet, books fee and pending, and records the pricing policy', async () => {
    const walletBefore = await balanceOf(bp(), 'consumer_wallet', world.consumerId)
    const response = await pay(1230)
    expect(response.statusCode, response.body).toBe(200)
    const trade = json(response)
    expect(trade).toMatchObject({
      status: 'paid',
      total_amount: 1230,
      fee_rate_bps: 60,
      fee_amount: 7,
      fee_policy_version: 0,
      commission_policy_version: 0,
      channel: 'wallet',
      buyer_id: world.consumerId,
    })
    expect(await balanceOf(bp(), 'consumer_wallet', world.consumerId)).toBe(walletBefore - 1230)
    const query = json(await world.call({ method: 'GET', url: `/v1/trades/${trade.id}` }))
    expect(query.status).toBe('paid')
    const lookup = json(
      await world.call({ method: 'GET', url: `/v1/trades/lookup?out_trade_no=${trade.out_trade_no}` }),
    )
    expect(lookup.id).toBe(trade.id)
  })

  it('refuses an insufficient balance, a reused one-time code and a foreign code, recording nothing', async () => {
    const code = await paymentCode(world)
    const tooMuch = await pay(100_000_000, code)
    expect(json(tooMuch).code).toBe('PAYMENT_BALANCE_INSUFFICIENT')
    // The failed payment gave the code back: it still works once.
    expect((await pay(100, code)).statusCode).toBe(200)
    expect(json(await pay(100, code)).code).toBe('PAYMENT_CODE_INVALID')
    expect(json(await pay(100, '289999999999999999')).code).toBe('PAYMENT_CODE_INVALID')
  })

  it('pays a precreated trade on the consumer pay page', async () => {
    const created = json(
      await world.call({
        method: 'POST',
        url: '/v1/trades/precreate',
        body: { out_trade_no: orderNo('QR'), total_amount: 2500, subject: '停车费 Parking' },
      }),
    )
    expect(created.status).toBe('wait_buyer_pay')
    const path = new URL(created.qr_code).pathname
    const page = await bp().app.inject({ method: 'GET', url: path })
    expect(page.statusCode).toBe(200)
    expect(page.body).toContain('¥25.00')
    expect(page.body).toContain('停车费 Parking')
    const paid = await bp().app.inject({
      method: 'POST',
      url: path,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `code=${await paymentCode(world)}`,
    })
    expect(paid.statusCode, paid.body).toBe(200)
    expect(paid.body).toContain('支付成功')
    expect(json(await world.call({ method: 'GET', url: `/v1/trades/${created.id}` })).status).toBe('paid')
    const again = await bp().app.inject({
      method: 'POST',
      url: path,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `code=${await paymentCode(world)}`,
    })
    expect(again.statusCode).toBe(409)
  })

  it('treats out_trade_no as a natural idempotency key', async () => {
    const body = { out_trade_no: orderNo('NAT'), total_amount: 990, subject: 'x' }
    const first = json(await world.call({ method: 'POST', url: '/v1/trades/precreate', body }))
    const second = json(await world.call({ method: 'POST', url: '/v1/trades/precreate', body }))
    expect(second.id).toBe(first.id)
    const other = await world.call({
      method: 'POST',
      url: '/v1/trades/precreate',
      body: { ...body, total_amount: 991 },
    })
    expect(json(other).code).toBe('PAYMENT_OUT_TRADE_NO_TAKEN')
  })

  it('refunds partially and repeatedly, idempotently, never above what was paid', async () => {
    const trade = json(await pay(1000))
    const refund = (outRequestNo: string, amount: number) =>
      world.call({
        method: 'POST',
        url: `/v1/trades/${trade.id}/refunds`,
        body: { out_request_no: outRequestNo, amount },
      })
    const walletBefore = await balanceOf(bp(), 'consumer_wallet', world.consumerId)
    const first = json(await refund('R1', 300))
    expect(first).toMatchObject({ amount: 300, fee_refund_amount: 1, trade_refunded_amount: 300 })
    expect(json(await refund('R1', 300)).id).toBe(first.id)
    expect(json(await refund('R1', 200)).code).toBe('PAYMENT_REFUND_REQUEST_CONFLICT')
    expect(json(await refund('R2', 701)).code).toBe('PAYMENT_REFUND_EXCEEDS_PAID')
    const last = json(await refund('R2', 700))
    // Fee 6 in all: 1 returned with the first refund, the rest (5) with the last.
    expect(last).toMatchObject({ fee_refund_amount: 5, trade_refunded_amount: 1000 })
    expect(await balanceOf(bp(), 'consumer_wallet', world.consumerId)).toBe(walletBefore + 1000)
    expect(json(await world.call({ method: 'GET', url: `/v1/trades/${trade.id}` })).status).toBe('fully_refunded')
    expect(json(await refund('R3', 1)).code).toBe('PAYMENT_TRADE_NOT_REFUNDABLE')
    const queried = json(await world.call({ method: 'GET', url: `/v1/trades/${trade.id}/refunds/R1` }))
    expect(queried.id).toBe(first.id)
  })

  it('closes and cancels unpaid trades, cancels a paid one by refunding it, and expires the rest', async () => {
    const precreate = async () =>
      json(
        await world.call({
          method: 'POST',
          url: '/v1/trades/precreate',
          body: { out_trade_no: orderNo('CL'), total_amount: 500, subject: 'x', timeout_seconds: 120 },
        }),
      )
    const toClose = await precreate()
    expect(json(await world.call({ method: 'POST', url: `/v1/trades/${toClose.id}/close` }))).toMatchObject({
      status: 'closed',
      close_reason: 'closed',
    })
    const toCancel = await precreate()
    const cancelled = json(await world.call({ method: 'POST', url: `/v1/trades/${toCancel.id}/cancel` }))
    expect(cancelled).toMatchObject({ action: 'close', trade: { status: 'closed', close_reason: 'cancelled' } })
    const paid = json(await pay(800))
    const refunded = json(await world.call({ method: 'POST', url: `/v1/trades/${paid.id}/cancel` }))
    expect(refunded).toMatchObject({ action: 'refund', trade: { status: 'fully_refunded', refunded_amount: 800 } })
    expect(json(await world.call({ method: 'POST', url: `/v1/trades/${paid.id}/close` })).code).toBe(
      'PAYMENT_TRADE_NOT_CLOSABLE',
    )
    const toExpire = await precreate()
    const seenOnlyOnItsPage = await precreate()
    clock.advance(121_000)
    // The consumer's page is the first to look: it closes the expired trade, under its lock.
    const expiredPage = await bp().app.inject({ method: 'GET', url: new URL(seenOnlyOnItsPage.qr_code).pathname })
    expect(expiredPage.body).toContain('交易已关闭 Closed')
    expect(json(await world.call({ method: 'GET', url: `/v1/trades/${toExpire.id}` }))).toMatchObject({
      status: 'closed',
      close_reason: 'expired',
    })
    const late = await bp().app.inject({
      method: 'POST',
      url: new URL(toExpire.qr_code).pathname,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `code=${await paymentCode(world)}`,
    })
    expect(late.statusCode).toBe(409)
  })

  it('follows the sandbox channel scripts: decline records nothing, pending and timeout resolve on query', async () => {
    const declined = await pay(100, 'sandbox-decline')
    expect(declined.statusCode).toBe(402)
    expect(json(declined).code).toBe('PAYMENT_DECLINED')
    for (const script of ['sandbox-pending', 'sandbox-timeout']) {
      const waiting = json(await pay(300, script))
      expect(waiting).toMatchObject({ status: 'wait_buyer_pay', channel: 'sandbox' })
      expect(json(await world.call({ method: 'GET', url: `/v1/trades/${waiting.id}` })).status).toBe('wait_buyer_pay')
      clock.advance(5_000)
      expect(json(await world.call({ method: 'GET', url: `/v1/trades/${waiting.id}` })).status).toBe('paid')
    }
    expect(json(await pay(300, 'sandbox-success')).status).toBe('paid')
  })

  it('settles after the delay: pending to available, commission to the ISV', async () => {
    const trade = json(await pay(10_000))
    await world.call({
      method: 'POST',
      url: `/v1/trades/${trade.id}/refunds`,
      body: { out_request_no: 'S1', amount: 2_000 },
    })
    const early = json(await world.call({ method: 'POST', url: '/v1/settlements' }))
    expect(early.settled_trades).toBe(0)
    const availableBefore = await balanceOf(bp(), 'merchant_available', world.merchantId)
    const commissionBefore = await balanceOf(bp(), 'isv_commission', world.isvApp.tenant.organizationId)
    clock.advance(86_400_000)
    const settled = json(await world.call({ method: 'POST', url: '/v1/settlements' }))
    expect(settled.settled_trades).toBeGreaterThanOrEqual(1)
    // 10,000 paid, 2,000 refunded; fee 60 of which 12 refunded: 8,000 − 48 = 7,952 to available.
    const settledTrade = json(await world.call({ method: 'GET', url: `/v1/trades/${trade.id}` }))
    expect(settledTrade.settle_status).toBe('settled')
    expect(await balanceOf(bp(), 'merchant_available', world.merchantId)).toBeGreaterThanOrEqual(
      availableBefore + 7_952,
    )
    // Commission: 20% of the net fee 48 = 9 (rounded down).
    expect(await balanceOf(bp(), 'isv_commission', world.isvApp.tenant.organizationId)).toBeGreaterThanOrEqual(
      commissionBefore + 9,
    )
    // A refund after settlement comes from available and claws back commission.
    const after = json(
      await world.call({
        method: 'POST',
        url: `/v1/trades/${trade.id}/refunds`,
        body: { out_request_no: 'S2', amount: 8_000 },
      }),
    )
    expect(after.trade_refunded_amount).toBe(10_000)
  })

  it('shares profit with bound receivers, capped by the governable maximum share', async () => {
    const receiver = world.isvApp.tenant.organizationId
    const trade = json(await pay(10_000))
    const royalty = (outRequestNo: string, amount: number, receiverId = receiver) =>
      world.call({
        method: 'POST',
        url: `/v1/trades/${trade.id}/royalties`,
        body: { out_request_no: outRequestNo, royalties: [{ receiver_id: receiverId, amount }] },
      })
    expect(json(await royalty('ROY-0', 100)).code).toBe('PAYMENT_ROYALTY_RECEIVER_UNKNOWN')
    const bound = await world.call({
      method: 'POST',
      url: '/v1/royalty-receivers',
      body: { receiver_id: receiver, name: 'ISV' },
    })
    expect(bound.statusCode, bound.body).toBe(201)
    const first = await royalty('ROY-1', 2_000)
    expect(first.statusCode, first.body).toBe(201)
    expect(json(await royalty('ROY-1', 2_000)).royalties).toHaveLength(1)
    // Default cap 30% of 10,000 = 3,000: 2,000 + 1,001 is over it.
    expect(json(await royalty('ROY-2', 1_001)).code).toBe('PAYMENT_ROYALTY_EXCEEDS_SHARE')
    expect((await royalty('ROY-3', 1_000)).statusCode).toBe(201)
    expect(await balanceOf(bp(), 'royalty_receiver', receiver)).toBeGreaterThanOrEqual(3_000)
    const queried = json(await world.call({ method: 'GET', url: `/v1/trades/${trade.id}/royalties/ROY-1` }))
    expect(queried.royalties[0].amount).toBe(2_000)
  })

  it('finds a retried barcode order without spending its code, and a repeated precreate after payment', async () => {
    const code = await paymentCode(world)
    const body = { out_trade_no: orderNo('RETRY'), total_amount: 321, subject: 'retry', auth_code: code }
    const first = json(await world.call({ method: 'POST', url: '/v1/trades/pay', body }))
    const again = await world.call({ method: 'POST', url: '/v1/trades/pay', body })
    expect(again.statusCode, again.body).toBe(200)
    expect(json(again)).toMatchObject({ id: first.id, status: 'paid' })
    const qrBody = { out_trade_no: orderNo('QR-AGAIN'), total_amount: 500, subject: 'qr' }
    const qr = json(await world.call({ method: 'POST', url: '/v1/trades/precreate', body: qrBody }))
    await bp().app.inject({
      method: 'POST',
      url: new URL(qr.qr_code).pathname,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `code=${await paymentCode(world)}`,
    })
    const repeated = json(await world.call({ method: 'POST', url: '/v1/trades/precreate', body: qrBody }))
    expect(repeated).toMatchObject({ id: qr.id, status: 'paid' })
  })

  it('never closes or cancels a payment the channel may still hold', async () => {
    const waiting = json(await pay(300, 'sandbox-pending'))
    for (const action of ['close', 'cancel']) {
      const response = await world.call({ method: 'POST', url: `/v1/trades/${waiting.id}/${action}` })
      expect(json(response).code).toBe('PAYMENT_TRADE_NOT_CLOSABLE')
    }
    clock.advance(5_000)
    expect(json(await world.call({ method: 'GET', url: `/v1/trades/${waiting.id}` })).status).toBe('paid')
  })

  it("never refunds profit already shared, so no trade is refunded with another one's money", async () => {
    const receiver = world.isvApp.tenant.organizationId
    await world.call({ method: 'POST', url: '/v1/royalty-receivers', body: { receiver_id: receiver, name: 'ISV' } })
    const trade = json(await pay(10_000))
    const unpaid = json(
      await world.call({
        method: 'POST',
        url: '/v1/trades/precreate',
        body: { out_trade_no: orderNo('UNPAID'), total_amount: 100, subject: 'x' },
      }),
    )
    const early = await world.call({
      method: 'POST',
      url: `/v1/trades/${unpaid.id}/royalties`,
      body: { out_request_no: 'R', royalties: [{ receiver_id: receiver, amount: 10 }] },
    })
    expect(json(early).code).toBe('PAYMENT_TRADE_NOT_PAID')
    await world.call({
      method: 'POST',
      url: `/v1/trades/${trade.id}/royalties`,
      body: { out_request_no: 'SHARE', royalties: [{ receiver_id: receiver, amount: 3_000 }] },
    })
    // 10,000 paid, fee 60, 3,000 shared: the merchant holds 6,940 of this trade.
    const refund = (no: string, amount: number) =>
      world.call({ method: 'POST', url: `/v1/trades/${trade.id}/refunds`, body: { out_request_no: no, amount } })
    expect(json(await refund('ALL', 10_000)).code).toBe('PAYMENT_REFUND_BLOCKED_BY_ROYALTY')
    expect((await refund('PART', 6_900)).statusCode).toBe(201)
    expect(json(await refund('MORE', 100)).code).toBe('PAYMENT_REFUND_BLOCKED_BY_ROYALTY')
    clock.advance(86_400_000 + 1_000)
    const results = await bp().workers.jobs.runOnce()
    expect(results['payment.settle-trades']).toBeGreaterThanOrEqual(1)
  })

  it('expires and settles through the background jobs', async () => {
    const waiting = await precreateExpiring('JOB', 400)
    const paid = json(await pay(600))
    clock.advance(86_400_000 + 1_000)
    const results = await bp().workers.jobs.runOnce()
    expect(results['payment.expire-trades']).toBeGreaterThanOrEqual(1)
    expect(results['payment.settle-trades']).toBeGreaterThanOrEqual(1)
    const rows = (await bp()
      .storage.db.selectFrom('payment_trades' as never)
      .select(['id', 'status', 'settle_status'] as never)
      .where('id' as never, 'in', [waiting.id, paid.id] as never)
      .execute()) as Array<Record<string, string>>
    expect(rows.find((row) => row.id === waiting.id)?.status).toBe('closed')
    expect(rows.find((row) => row.id === paid.id)?.settle_status).toBe('settled')
  })

  it("stamps a worker's settlement after a refund that committed while the run was under way", async () => {
    const paid = json(await pay(800))
    clock.advance(86_400_000 + 1_000)
    const runStartedAt = clock.now()
    clock.advance(2_000)
    const refunded = await world.call({
      method: 'POST',
      url: `/v1/trades/${paid.id}/refunds`,
      body: { out_request_no: 'DURING-RUN', amount: 100 },
    })
    expect(refunded.statusCode, refunded.body).toBe(201)
    clock.advance(1_000)
    // The job's run began at `runStartedAt`; it reaches this trade only now (its clock says so).
    const job = bp().registry.jobs.find((spec) => spec.name === 'payment.settle-trades')!
    expect(await job.run(bp().storage.db, runStartedAt, clock.now)).toBeGreaterThanOrEqual(1)
    const events = await bp()
      .storage.db.selectFrom('outbox_events')
      .select(['type', 'payload', 'created_at'])
      .where('type', 'in', ['payment.refund.succeeded', 'payment.trade.settled'])
      .execute()
    const at = (type: string, field: 'id' | 'trade_id') =>
      Number(events.find((event) => event.type === type && JSON.parse(event.payload)[field] === paid.id)?.created_at)
    expect(at('payment.trade.settled', 'id')).toBe(clock.now())
    expect(at('payment.trade.settled', 'id')).toBeGreaterThan(at('payment.refund.succeeded', 'trade_id'))
  })

  it("stamps what a job closes with the time it reached the trade, not the run's start", async () => {
    const waiting = await precreateExpiring('STAMP', 300)
    clock.advance(61_000)
    const runStartedAt = clock.now()
    clock.advance(1_500)
    const job = bp().registry.jobs.find((spec) => spec.name === 'payment.expire-trades')!
    expect(await job.run(bp().storage.db, runStartedAt, clock.now)).toBeGreaterThanOrEqual(1)
    const closed = json(await world.call({ method: 'GET', url: `/v1/trades/${waiting.id}` }))
    expect({ status: closed.status, closed_at: closed.closed_at }).toEqual({
      status: 'closed',
      closed_at: new Date(clock.now()).toISOString(),
    })
  })

  it('refuses calls for an organisation that is not a merchant', async () => {
    const own = await world.isvApp.tenant
    const response = await (
      await import('./fixtures.js')
    ).signed(
      bp().app,
      world.isvApp,
      { method: 'POST', url: '/v1/trades/precreate', body: { out_trade_no: 'ISV-1', total_amount: 100, subject: 'x' } },
      clock.now(),
    )
    expect(own.organizationId).toMatch(/^org_/)
    expect(json(response).code).toBe('PAYMENT_MERCHANT_REQUIRED')
  })
})
