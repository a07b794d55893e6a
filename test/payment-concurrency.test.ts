import { afterEach, beforeAll, expect, it } from 'vitest'
import { json } from './fixtures.js'
import { forEachDialect, useTestPlatform } from './harness.js'
import { expectLedgerConsistent } from './ledger-helpers.js'
import { balanceOf, paymentCode, paymentWorld, testTokenResolver, type PaymentWorld } from './payment-fixtures.js'

let counter = 0
const orderNo = (prefix: string) => `${prefix}-${Date.now()}-${(counter += 1)}`
const form = { 'content-type': 'application/x-www-form-urlencoded' }

forEachDialect('payment races', (dialect) => {
  const bp = useTestPlatform(dialect, { appAuthTokenResolver: testTokenResolver() })
  let world: PaymentWorld

  beforeAll(async () => {
    world = await paymentWorld(bp(), { balance: 1_000_000 })
  })
  afterEach(async () => expectLedgerConsistent(bp().storage.db))

  it('pay vs close: exactly one wins, and money moves only if the trade is paid', async () => {
    for (let round = 0; round < 8; round += 1) {
      const trade = json(
        await world.call({
          method: 'POST',
          url: '/v1/trades/precreate',
          body: { out_trade_no: orderNo('RACE'), total_amount: 100, subject: 'race' },
        }),
      )
      const walletBefore = await balanceOf(bp(), 'consumer_wallet', world.consumerId)
      const code = await paymentCode(world)
      const [paid, closed] = await Promise.all([
        bp().app.inject({
          method: 'POST',
          url: new URL(trade.qr_code).pathname,
          headers: form,
          payload: `code=${code}`,
        }),
        world.call({ method: 'POST', url: `/v1/trades/${trade.id}/close` }),
      ])
      const final = json(await world.call({ method: 'GET', url: `/v1/trades/${trade.id}` }))
      const walletAfter = await balanceOf(bp(), 'consumer_wallet', world.consumerId)
      if (final.status === 'paid') {
        expect(paid.statusCode).toBe(200)
        expect(json(closed).code).toBe('PAYMENT_TRADE_NOT_CLOSABLE')
        expect(walletAfter).toBe(walletBefore - 100)
      } else {
        expect(final.status).toBe('closed')
        expect(closed.statusCode).toBe(200)
        expect(paid.statusCode).toBe(409)
        expect(walletAfter).toBe(walletBefore)
      }
    }
  })

  it('a refund storm never refunds more than was paid', async () => {
    const trade = json(
      await world.call({
        method: 'POST',
        url: '/v1/trades/pay',
        body: {
          out_trade_no: orderNo('STORM'),
          total_amount: 1_000,
          subject: 'storm',
          auth_code: await paymentCode(world),
        },
      }),
    )
    expect(trade.status).toBe('paid')
    const walletBefore = await balanceOf(bp(), 'consumer_wallet', world.consumerId)
    const responses = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        world.call({
          method: 'POST',
          url: `/v1/trades/${trade.id}/refunds`,
          body: { out_request_no: `STORM-${i}`, amount: 100 },
        }),
      ),
    )
    const succeeded = responses.filter((response) => response.statusCode === 201)
    expect(succeeded).toHaveLength(10)
    for (const refused of responses.filter((response) => response.statusCode !== 201)) {
      expect(['PAYMENT_REFUND_EXCEEDS_PAID', 'PAYMENT_TRADE_NOT_REFUNDABLE']).toContain(json(refused).code)
    }
    const final = json(await world.call({ method: 'GET', url: `/v1/trades/${trade.id}` }))
    expect(final).toMatchObject({ status: 'fully_refunded', refunded_amount: 1_000 })
    expect(await balanceOf(bp(), 'consumer_wallet', world.consumerId)).toBe(walletBefore + 1_000)
  })

  it('duplicate refunds and duplicate payments fired at once execute once', async () => {
    const code = await paymentCode(world, true)
    const body = { out_trade_no: orderNo('DUP'), total_amount: 700, subject: 'dup', auth_code: code }
    const walletBefore = await balanceOf(bp(), 'consumer_wallet', world.consumerId)
    const payments = await Promise.all(
      Array.from({ length: 10 }, () => world.call({ method: 'POST', url: '/v1/trades/pay', body })),
    )
    const ids = new Set(payments.filter((r) => r.statusCode === 200).map((r) => json(r).id))
    expect(ids.size).toBe(1)
    expect(await balanceOf(bp(), 'consumer_wallet', world.consumerId)).toBe(walletBefore - 700)
    const [tradeId] = [...ids]
    const refunds = await Promise.all(
      Array.from({ length: 10 }, () =>
        world.call({
          method: 'POST',
          url: `/v1/trades/${tradeId}/refunds`,
          body: { out_request_no: 'ONCE', amount: 300 },
        }),
      ),
    )
    expect(new Set(refunds.filter((r) => r.statusCode === 201).map((r) => json(r).id)).size).toBe(1)
    expect(json(await world.call({ method: 'GET', url: `/v1/trades/${tradeId}` })).refunded_amount).toBe(300)
  })
})
