/**
 * Model-based test: fast-check drives random sequences of precreate, pay, refund, close,
 * expiry and query across several trades, and after every command checks that the platform
 * agrees with a plain model, and that the buyer's wallet equals what the model says it holds.
 */
import fc from 'fast-check'
import { afterEach, beforeAll, expect, it } from 'vitest'
import { json } from './fixtures.js'
import { forEachDialect, manualClock, useTestPlatform } from './harness.js'
import { expectLedgerConsistent } from './ledger-helpers.js'
import { balanceOf, paymentCode, paymentWorld, testTokenResolver, type PaymentWorld } from './payment-fixtures.js'

interface ModelTrade {
  id: string
  path: string
  total: number
  refunded: number
  expiresAt: number
  status: 'wait_buyer_pay' | 'paid' | 'closed' | 'fully_refunded'
  refundNo: number
}
interface Model {
  trades: ModelTrade[]
  wallet: number
}
interface Real {
  world: PaymentWorld
  now: () => number
  advance: (ms: number) => void
  platform: () => any
}

const form = { 'content-type': 'application/x-www-form-urlencoded' }
let serial = 0

/** Expiry happens whenever a trade is touched after its time; the model applies the same rule. */
function expire(model: Model, now: number): void {
  for (const trade of model.trades)
    if (trade.status === 'wait_buyer_pay' && trade.expiresAt <= now) trade.status = 'closed'
}

async function check(model: Model, real: Real, trade?: ModelTrade): Promise<void> {
  if (trade !== undefined) {
    const actual = json(await real.world.call({ method: 'GET', url: `/v1/trades/${trade.id}` }, real.now()))
    expect({ status: actual.status, refunded: actual.refunded_amount }).toEqual({
      status: trade.status,
      refunded: trade.refunded,
    })
  }
  expect(await balanceOf(real.platform(), 'consumer_wallet', real.world.consumerId)).toBe(model.wallet)
}

class Precreate implements fc.AsyncCommand<Model, Real> {
  constructor(readonly amount: number) {}
  check = (model: Readonly<Model>) => model.trades.length < 6
  async run(model: Model, real: Real) {
    const response = json(
      await real.world.call(
        {
          method: 'POST',
          url: '/v1/trades/precreate',
          body: {
            out_trade_no: `M-${(serial += 1)}`,
            total_amount: this.amount,
            subject: 'model',
            timeout_seconds: 600,
          },
        },
        real.now(),
      ),
    )
    model.trades.push({
      id: response.id,
      path: new URL(response.qr_code).pathname,
      total: this.amount,
      refunded: 0,
      expiresAt: real.now() + 600_000,
      status: 'wait_buyer_pay',
      refundNo: 0,
    })
    await check(model, real, model.trades.at(-1))
  }
  toString = () => `precreate(${this.amount})`
}

class Pay implements fc.AsyncCommand<Model, Real> {
  constructor(readonly index: number) {}
  check = (model: Readonly<Model>) => model.trades.length > 0
  async run(model: Model, real: Real) {
    const trade = model.trades[this.index % model.trades.length]!
    expire(model, real.now())
    const response = await real.platform().app.inject({
      method: 'POST',
      url: trade.path,
      headers: form,
      payload: `code=${await paymentCode(real.world, false, real.now())}`,
    })
    if (trade.status === 'wait_buyer_pay') {
      expect(response.statusCode).toBe(200)
      trade.status = 'paid'
      model.wallet -= trade.total
    } else expect(response.statusCode).toBe(409)
    await check(model, real, trade)
  }
  toString = () => `pay(${this.index})`
}

class Refund implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly index: number,
    readonly amount: number,
  ) {}
  check = (model: Readonly<Model>) => model.trades.length > 0
  async run(model: Model, real: Real) {
    const trade = model.trades[this.index % model.trades.length]!
    expire(model, real.now())
    trade.refundNo += 1
    const response = json(
      await real.world.call(
        {
          method: 'POST',
          url: `/v1/trades/${trade.id}/refunds`,
          body: { out_request_no: `R${trade.refundNo}`, amount: this.amount },
        },
        real.now(),
      ),
    )
    if (trade.status !== 'paid') expect(response.code).toBe('PAYMENT_TRADE_NOT_REFUNDABLE')
    else if (trade.refunded + this.amount > trade.total) expect(response.code).toBe('PAYMENT_REFUND_EXCEEDS_PAID')
    else {
      expect(response.amount).toBe(this.amount)
      trade.refunded += this.amount
      model.wallet += this.amount
      if (trade.refunded === trade.total) trade.status = 'fully_refunded'
    }
    await check(model, real, trade)
  }
  toString = () => `refund(${this.index}, ${this.amount})`
}

class Close implements fc.AsyncCommand<Model, Real> {
  constructor(readonly index: number) {}
  check = (model: Readonly<Model>) => model.trades.length > 0
  async run(model: Model, real: Real) {
    const trade = model.trades[this.index % model.trades.length]!
    expire(model, real.now())
    const response = await real.world.call({ method: 'POST', url: `/v1/trades/${trade.id}/close` }, real.now())
    if (trade.status === 'wait_buyer_pay' || trade.status === 'closed') {
      expect(response.statusCode).toBe(200)
      trade.status = 'closed'
    } else expect(json(response).code).toBe('PAYMENT_TRADE_NOT_CLOSABLE')
    await check(model, real, trade)
  }
  toString = () => `close(${this.index})`
}

class Wait implements fc.AsyncCommand<Model, Real> {
  constructor(readonly seconds: number) {}
  check = () => true
  async run(model: Model, real: Real) {
    real.advance(this.seconds * 1000)
    expire(model, real.now())
    for (const trade of model.trades) await check(model, real, trade)
  }
  toString = () => `wait(${this.seconds}s)`
}

const commands = [
  fc.integer({ min: 1, max: 5_000 }).map((amount) => new Precreate(amount)),
  fc.nat(20).map((index) => new Pay(index)),
  fc.tuple(fc.nat(20), fc.integer({ min: 1, max: 3_000 })).map(([index, amount]) => new Refund(index, amount)),
  fc.nat(20).map((index) => new Close(index)),
  fc.integer({ min: 1, max: 400 }).map((seconds) => new Wait(seconds)),
]

forEachDialect('payment model', (dialect) => {
  const clock = manualClock(Date.now())
  const bp = useTestPlatform(dialect, { clock, appAuthTokenResolver: testTokenResolver() })
  afterEach(async () => expectLedgerConsistent(bp().storage.db))
  let seedWorld: PaymentWorld

  beforeAll(async () => {
    seedWorld = await paymentWorld(bp(), { now: clock.now, balance: 0 })
  })

  it('agrees with the model for random command sequences', async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 25 }), async (sequence) => {
        // Each run gets its own consumer, so the wallet model starts from a known balance.
        const world = await paymentWorld(bp(), { now: clock.now, balance: 1_000_000 })
        const real: Real = { world, now: clock.now, advance: clock.advance, platform: bp }
        await fc.asyncModelRun(() => ({ model: { trades: [], wallet: 1_000_000 }, real }), sequence)
      }),
      { numRuns: 12, seed: 20261125, endOnFailure: true },
    )
    expect(seedWorld.merchantId).toMatch(/^org_/)
  })
})
