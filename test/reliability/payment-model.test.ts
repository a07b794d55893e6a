/**
 * The trade state machine against a plain model (reference figure 5): fast-check drives random
 * sequences of create, precreate, barcode pay (wallet and every sandbox script), a repeated
 * barcode order, pay-page payment, refund (new, replayed, conflicting), cancel, close, lookup,
 * settlement and the passing of time. After every command the trade the command touched must
 * agree with the model (status, refunded amount, settlement), and so must the money: the
 * consumer's wallet, the sandbox channel's clearing account, and the merchant's side (pending,
 * available, fee and the ISV's commission), each as a change since the sequence began. Every
 * refund stays within what was paid, no floored account goes negative, and the ledger verifies
 * after the run.
 *
 * It runs in-process through the signed HTTP API (Fastify's inject, an Ed25519 app key, so the
 * client's signature costs little), one merchant and one consumer for all sequences; the
 * model keeps changes, not totals, so sequences need no fresh world. Sizes and the seed are in
 * support/settings.ts; a failure prints the seed and the shrunk sequence to replay.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createAppWithKey, ed25519KeyPair, json, signed, signUp, type Injected } from '../fixtures.js'
import { forEachDialect, manualClock, useTestPlatform } from '../harness.js'
import { expectLedgerConsistent } from '../ledger-helpers.js'
import { balanceOf, testTokenResolver } from '../payment-fixtures.js'
import { budgetMs, mode, settings } from './support/settings.js'

type Status = 'wait_buyer_pay' | 'paid' | 'closed' | 'fully_refunded'
type Payer = 'wallet' | 'sandbox-success' | 'sandbox-decline' | 'sandbox-pending' | 'sandbox-timeout'

/** The platform's documented constants the model relies on (ADR 0009, channels.ts, pricing.ts). */
const sandboxAnswerMs = 5_000
const settlementDelayMs = 86_400_000
const defaultTimeoutMs = 900_000
const tradesPerSequenceMax = 8

interface ModelTrade {
  id: string
  outTradeNo: string
  /** The pay page's path, for created and precreated trades. */
  page: string | null
  total: number
  payer: 'wallet' | 'sandbox'
  status: Status
  refunded: number
  refunds: Map<string, number>
  expiresAt: number
  /** A sandbox payment the channel holds, confirmed at the first look from this time on. */
  channelReadyAt: number | null
  settleAfter: number | null
  settled: boolean
}

interface Model {
  trades: ModelTrade[]
  /** Changes since the sequence began, in fen. */
  wallet: number
  clearing: number
  merchantSide: number
}

interface Money {
  wallet: number
  clearing: number
  merchantSide: number
}

interface Real {
  now(): number
  advance(ms: number): void
  call(request: { method: string; url: string; body?: unknown; idempotencyKey?: string }): Promise<Injected>
  payOnPage(path: string): Promise<Injected>
  /** Changes since the sequence began. */
  money(): Promise<Money>
}

/** How often each outcome happened: the run must reach every branch of the model. */
const seen = new Map<string, number>()
function saw(outcome: string): void {
  seen.set(outcome, (seen.get(outcome) ?? 0) + 1)
}

let serial = 0
const nextNo = (prefix: string) => `${prefix}-${(serial += 1)}`

function pick(model: Model, index: number): ModelTrade | undefined {
  return model.trades.length === 0 ? undefined : model.trades[index % model.trades.length]
}

function pay(model: Model, trade: ModelTrade, now: number): void {
  saw(`paid by ${trade.payer}${trade.channelReadyAt === null ? '' : ', confirmed later'}`)
  trade.status = 'paid'
  trade.channelReadyAt = null
  trade.settleAfter = now + settlementDelayMs
  if (trade.payer === 'wallet') model.wallet -= trade.total
  else model.clearing -= trade.total
  model.merchantSide += trade.total
}

/** What any look at a waiting trade does first: the channel's answer, then expiry. */
function refresh(model: Model, trade: ModelTrade, now: number): void {
  if (trade.status !== 'wait_buyer_pay') return
  if (trade.channelReadyAt !== null) {
    if (now >= trade.channelReadyAt) pay(model, trade, now)
    return
  }
  if (trade.expiresAt <= now) {
    saw('expired')
    trade.status = 'closed'
  }
}

function refund(model: Model, trade: ModelTrade, amount: number): void {
  trade.refunded += amount
  if (trade.payer === 'wallet') model.wallet += amount
  else model.clearing += amount
  model.merchantSide -= amount
  saw(trade.settled ? 'refunded after settlement' : 'refunded')
  if (trade.refunded === trade.total) trade.status = 'fully_refunded'
}

function expectCode(response: Injected, code: string): void {
  expect(json(response).code, response.body).toBe(code)
  saw(code)
}

/** The touched trade as the platform shows it (a look, so it refreshes), then the money. */
async function check(model: Model, real: Real, trade?: ModelTrade): Promise<void> {
  if (trade !== undefined) {
    refresh(model, trade, real.now())
    const response = await real.call({ method: 'GET', url: `/v1/trades/${trade.id}` })
    const actual = json(response)
    expect(
      { status: actual.status, refunded: actual.refunded_amount, settled: actual.settle_status === 'settled' },
      response.body,
    ).toEqual({ status: trade.status, refunded: trade.refunded, settled: trade.settled })
    expect(actual.refunded_amount).toBeLessThanOrEqual(actual.total_amount)
  }
  expect(await real.money()).toEqual({
    wallet: model.wallet,
    clearing: model.clearing,
    merchantSide: model.merchantSide,
  })
}

/** A new waiting trade in the model. */
function opened(
  model: Model,
  id: string,
  outTradeNo: string,
  total: number,
  how: Partial<Pick<ModelTrade, 'page' | 'payer'>> & Pick<ModelTrade, 'expiresAt'>,
): ModelTrade {
  const trade: ModelTrade = {
    id,
    outTradeNo,
    page: null,
    payer: 'wallet',
    total,
    status: 'wait_buyer_pay',
    refunded: 0,
    refunds: new Map(),
    channelReadyAt: null,
    settleAfter: null,
    settled: false,
    ...how,
  }
  model.trades.push(trade)
  return trade
}

abstract class Command implements fc.AsyncCommand<Model, Real> {
  check(_model: Readonly<Model>): boolean {
    return true
  }
  abstract run(model: Model, real: Real): Promise<void>
}

/** A command that adds a trade, while the sequence holds fewer than its most. */
abstract class Opening extends Command {
  override check = (model: Readonly<Model>) => model.trades.length < tradesPerSequenceMax
}

/** Creates a trade for the consumer (kind create) or for whoever pays its page (precreate). */
class Open extends Opening {
  constructor(
    readonly kind: 'create' | 'precreate',
    readonly amount: number,
    readonly timeoutS: number,
  ) {
    super()
  }
  async run(model: Model, real: Real) {
    const outTradeNo = nextNo('M')
    const body = {
      out_trade_no: outTradeNo,
      total_amount: this.amount,
      subject: 'model',
      timeout_seconds: this.timeoutS,
    }
    const response = await real.call({
      method: 'POST',
      url: this.kind === 'create' ? '/v1/trades' : '/v1/trades/precreate',
      body: this.kind === 'create' ? { ...body, buyer_id: consumerId } : body,
    })
    expect(response.statusCode, response.body).toBe(201)
    const created = json(response)
    const trade = opened(model, created.id, outTradeNo, this.amount, {
      page: new URL(created.qr_code).pathname,
      expiresAt: real.now() + this.timeoutS * 1000,
    })
    await check(model, real, trade)
  }
  override toString = () => `${this.kind}(${this.amount}, ${this.timeoutS}s)`
}

/** Barcode payment with the consumer's code, or a sandbox script in place of a code. */
class Barcode extends Opening {
  constructor(
    readonly payer: Payer,
    readonly amount: number,
  ) {
    super()
  }
  async run(model: Model, real: Real) {
    const outTradeNo = nextNo('B')
    const response = await real.call({
      method: 'POST',
      url: '/v1/trades/pay',
      body: {
        out_trade_no: outTradeNo,
        total_amount: this.amount,
        subject: 'model',
        auth_code: this.payer === 'wallet' ? paymentCode : this.payer,
      },
    })
    if (this.payer === 'sandbox-decline') {
      expectCode(response, 'PAYMENT_DECLINED')
      // A declined payment leaves nothing behind: the order number is still free.
      const lookup = await real.call({ method: 'GET', url: `/v1/trades/lookup?out_trade_no=${outTradeNo}` })
      expectCode(lookup, 'PAYMENT_TRADE_NOT_FOUND')
      return check(model, real)
    }
    expect(response.statusCode, response.body).toBe(200)
    const trade = opened(model, json(response).id, outTradeNo, this.amount, {
      payer: this.payer === 'wallet' ? 'wallet' : 'sandbox',
      expiresAt: real.now() + defaultTimeoutMs,
    })
    if (this.payer === 'wallet' || this.payer === 'sandbox-success') pay(model, trade, real.now())
    else trade.channelReadyAt = real.now() + sandboxAnswerMs
    expect(json(response).status).toBe(trade.status)
    await check(model, real, trade)
  }
  override toString = () => `barcode(${this.payer}, ${this.amount})`
}

/** The same barcode order again: its order number finds the trade, and nothing is charged twice. */
class RepeatBarcode extends Command {
  constructor(readonly index: number) {
    super()
  }
  async run(model: Model, real: Real) {
    const barcodes = model.trades.filter((trade) => trade.page === null)
    const trade = barcodes[this.index % Math.max(1, barcodes.length)]
    if (trade === undefined) return
    const response = await real.call({
      method: 'POST',
      url: '/v1/trades/pay',
      body: {
        out_trade_no: trade.outTradeNo,
        total_amount: trade.total,
        subject: 'model',
        auth_code: trade.payer === 'wallet' ? paymentCode : 'sandbox-success',
      },
    })
    refresh(model, trade, real.now())
    expect(response.statusCode, response.body).toBe(200)
    expect({ id: json(response).id, status: json(response).status }).toEqual({ id: trade.id, status: trade.status })
    saw('barcode repeated')
    await check(model, real, trade)
  }
  override toString = () => `repeatBarcode(${this.index})`
}

class PayOnPage extends Command {
  constructor(readonly index: number) {
    super()
  }
  async run(model: Model, real: Real) {
    const pages = model.trades.filter((trade) => trade.page !== null)
    const trade = pages[this.index % Math.max(1, pages.length)]
    if (trade === undefined) return
    const response = await real.payOnPage(trade.page!)
    refresh(model, trade, real.now())
    if (trade.status === 'wait_buyer_pay') {
      expect(response.statusCode, response.body).toBe(200)
      pay(model, trade, real.now())
    } else {
      expect(response.statusCode, response.body).toBe(409)
      saw(`page refused ${trade.status}`)
    }
    await check(model, real, trade)
  }
  override toString = () => `payOnPage(${this.index})`
}

/** A refund with a new number, or with one already used (same amount: replayed; other: refused). */
class Refund extends Command {
  constructor(
    readonly index: number,
    readonly amount: number,
    readonly reuse: 'new' | 'same' | 'other',
  ) {
    super()
  }
  async run(model: Model, real: Real) {
    // Aim at trades where the outcome is interesting: a replay needs an earlier refund, and a
    // new refund mostly a paid trade; otherwise (or with none of those) any trade.
    const used = (trade: ModelTrade) => [...trade.refunds.entries()].filter(([no]) => no !== '#cancel')
    const aimed =
      this.reuse !== 'new'
        ? model.trades.filter((trade) => used(trade).length > 0)
        : this.index % 3 !== 0
          ? model.trades.filter((trade) => trade.status === 'paid')
          : []
    const trade = aimed.length > 0 ? aimed[this.index % aimed.length]! : pick(model, this.index)
    if (trade === undefined) return
    const earlier = aimed.length > 0 && this.reuse !== 'new' ? used(trade)[this.index % used(trade).length]! : undefined
    const outRequestNo = earlier?.[0] ?? nextNo('R')
    const amount = earlier === undefined ? this.amount : this.reuse === 'same' ? earlier[1] : earlier[1] + 1
    const response = await real.call({
      method: 'POST',
      url: `/v1/trades/${trade.id}/refunds`,
      body: { out_request_no: outRequestNo, amount },
    })
    refresh(model, trade, real.now())
    if (earlier !== undefined && amount !== earlier[1]) expectCode(response, 'PAYMENT_REFUND_REQUEST_CONFLICT')
    else if (earlier !== undefined) {
      saw('refund replayed')
      expect(response.statusCode, response.body).toBe(201)
      expect(json(response).amount).toBe(amount)
    } else if (trade.status !== 'paid') expectCode(response, 'PAYMENT_TRADE_NOT_REFUNDABLE')
    else if (trade.refunded + amount > trade.total) expectCode(response, 'PAYMENT_REFUND_EXCEEDS_PAID')
    else {
      expect(response.statusCode, response.body).toBe(201)
      expect(json(response).amount).toBe(amount)
      trade.refunds.set(outRequestNo, amount)
      refund(model, trade, amount)
    }
    await check(model, real, trade)
  }
  override toString = () => `refund(${this.index}, ${this.amount}, ${this.reuse})`
}

/** Cancel closes a waiting trade and refunds the rest of a paid one; close only closes. */
class End extends Command {
  constructor(
    readonly how: 'close' | 'cancel',
    readonly index: number,
  ) {
    super()
  }
  async run(model: Model, real: Real) {
    const trade = pick(model, this.index)
    if (trade === undefined) return
    const response = await real.call({ method: 'POST', url: `/v1/trades/${trade.id}/${this.how}` })
    refresh(model, trade, real.now())
    if (trade.status === 'wait_buyer_pay' && trade.channelReadyAt !== null) {
      // The channel may hold the consumer's money: neither may close the trade yet.
      expectCode(response, 'PAYMENT_TRADE_NOT_CLOSABLE')
      saw(`${this.how} refused while the channel holds the payment`)
    } else if (trade.status === 'wait_buyer_pay') {
      expect(response.statusCode, response.body).toBe(200)
      saw(`${this.how} closed`)
      trade.status = 'closed'
    } else if (this.how === 'close' && trade.status !== 'closed') {
      expectCode(response, 'PAYMENT_TRADE_NOT_CLOSABLE')
    } else {
      expect(response.statusCode, response.body).toBe(200)
      saw(`${this.how} answered ${trade.status}${trade.settled ? ', settled' : ''}`)
      if (this.how === 'cancel' && trade.status === 'paid') {
        trade.refunds.set('#cancel', trade.total - trade.refunded)
        refund(model, trade, trade.total - trade.refunded)
      }
    }
    await check(model, real, trade)
  }
  override toString = () => `${this.how}(${this.index})`
}

class Lookup extends Command {
  constructor(readonly index: number) {
    super()
  }
  async run(model: Model, real: Real) {
    const trade = pick(model, this.index)
    if (trade === undefined) return
    const response = await real.call({ method: 'GET', url: `/v1/trades/lookup?out_trade_no=${trade.outTradeNo}` })
    refresh(model, trade, real.now())
    expect(response.statusCode, response.body).toBe(200)
    expect({ id: json(response).id, status: json(response).status }).toEqual({ id: trade.id, status: trade.status })
    await check(model, real)
  }
  override toString = () => `lookup(${this.index})`
}

/**
 * The merchant's app settles what is due, at once or a day later; settlement moves money within
 * the merchant's side.
 */
class Settle extends Command {
  constructor(readonly afterS: number) {
    super()
  }
  async run(model: Model, real: Real) {
    real.advance(this.afterS * 1000)
    const response = await real.call({ method: 'POST', url: '/v1/settlements' })
    expect(response.statusCode, response.body).toBe(200)
    for (const trade of model.trades) {
      const due = trade.settleAfter !== null && trade.settleAfter <= real.now()
      if (due && !trade.settled && (trade.status === 'paid' || trade.status === 'fully_refunded')) {
        saw('settled')
        trade.settled = true
      }
    }
    for (const trade of model.trades) await check(model, real, trade)
  }
  override toString = () => `settle(after ${this.afterS}s)`
}

class Wait extends Command {
  constructor(readonly seconds: number) {
    super()
  }
  async run(model: Model, real: Real) {
    real.advance(this.seconds * 1000)
    for (const trade of model.trades) await check(model, real, trade)
  }
  override toString = () => `wait(${this.seconds}s)`
}

const amount = fc.integer({ min: 1, max: 5_000 })
const index = fc.nat(31)
const commands = [
  fc
    .tuple(fc.constantFrom('create', 'precreate'), amount, fc.integer({ min: 60, max: 900 }))
    .map(([kind, total, timeoutS]) => new Open(kind as 'create' | 'precreate', total, timeoutS)),
  fc
    .tuple(
      fc.constantFrom<Payer>(
        'wallet',
        'wallet',
        'sandbox-success',
        'sandbox-decline',
        'sandbox-pending',
        'sandbox-timeout',
      ),
      amount,
    )
    .map(([payer, total]) => new Barcode(payer, total)),
  index.map((i) => new RepeatBarcode(i)),
  index.map((i) => new PayOnPage(i)),
  index.map((i) => new PayOnPage(i)),
  fc
    .tuple(
      index,
      fc.integer({ min: 1, max: 3_000 }),
      fc.constantFrom<'new' | 'same' | 'other'>('new', 'new', 'same', 'other'),
    )
    .map(([i, refunded, reuse]) => new Refund(i, refunded, reuse)),
  fc.tuple(index, fc.integer({ min: 1, max: 3_000 })).map(([i, refunded]) => new Refund(i, refunded, 'new')),
  fc.tuple(fc.constantFrom<'close' | 'cancel'>('close', 'cancel'), index).map(([how, i]) => new End(how, i)),
  index.map((i) => new Lookup(i)),
  fc.constant(new Settle(0)),
  fc.integer({ min: 86_400, max: 100_000 }).map((s) => new Settle(s)),
  fc.oneof(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 80_000, max: 100_000 })).map((s) => new Wait(s)),
]

/** Set once per dialect in beforeAll; the commands read them. */
let consumerId = ''
let paymentCode = ''
const walletFloor = 1_000_000
const topUpAmount = 50_000_000

forEachDialect(`payment model (${mode})`, (dialect) => {
  const clock = manualClock()
  const bp = useTestPlatform(dialect, { clock, appAuthTokenResolver: testTokenResolver() })
  const { seed } = settings
  const runs = dialect === 'sqlite' ? settings.model.sequences : settings.model.postgresSequences
  let call: Real['call']
  let money: () => Promise<Money>

  beforeAll(async () => {
    const app = bp().app
    const merchant = await signUp(app, 'merchant', 'education')
    const isv = await signUp(app, 'isv')
    const isvApp = await createAppWithKey(app, isv, ed25519KeyPair())
    const token = `token:${merchant.organizationId}`
    call = (request) => signed(app, isvApp, { ...request, appAuthToken: token }, clock.now())
    const consumer = await call({ method: 'POST', url: '/v1/sandbox/consumers', body: { display_name: '小明' } })
    consumerId = json(consumer).id
    const balance = (kind: Parameters<typeof balanceOf>[1], owner: string) => balanceOf(bp(), kind, owner)
    money = async () => {
      const pending = await balance('merchant_pending', merchant.organizationId)
      const available = await balance('merchant_available', merchant.organizationId)
      const wallet = await balance('consumer_wallet', consumerId)
      // The floored accounts never go negative, whatever the sequence did.
      expect({ wallet, pending, available }).toEqual({
        wallet: Math.max(0, wallet),
        pending: Math.max(0, pending),
        available: Math.max(0, available),
      })
      return {
        wallet,
        clearing: await balance('channel_clearing', `sandbox:${merchant.organizationId}`),
        merchantSide:
          pending +
          available +
          (await balance('platform_fee_revenue', merchant.organizationId)) +
          (await balance('isv_commission', isv.organizationId)),
      }
    }
  })
  afterAll(async () => {
    if (bp() !== undefined) await expectLedgerConsistent(bp().storage.db)
  })

  it(
    `agrees with the model in ${runs} random sequences (seed ${seed + 9})`,
    async () => {
      let sequences = 0
      seen.clear()
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, { maxCommands: 24, size: 'max' }), async (sequence) => {
          sequences += 1
          // Earlier sequences' trades that fell due settle now, so that a settlement inside this
          // sequence (at most 500 trades a call) reaches this sequence's own.
          while ((await bp().workers.jobs.runOnce())['settle-trades']! > 0);
          if ((await money()).wallet < walletFloor) {
            const topUp = await call({
              method: 'POST',
              url: `/v1/sandbox/consumers/${consumerId}/top-ups`,
              body: { amount: topUpAmount },
              idempotencyKey: nextNo('topup'),
            })
            expect(topUp.statusCode, topUp.body).toBe(201)
          }
          // A reusable code lives a year, and the sequences together span decades of the clock.
          const code = await call({
            method: 'POST',
            url: `/v1/sandbox/consumers/${consumerId}/payment-codes`,
            body: { reusable: true },
          })
          expect(code.statusCode, code.body).toBe(201)
          paymentCode = json(code).code
          const start = await money()
          const real: Real = {
            now: clock.now,
            advance: clock.advance,
            call,
            payOnPage: (path) =>
              bp().app.inject({
                method: 'POST',
                url: path,
                headers: { 'content-type': 'application/x-www-form-urlencoded' },
                payload: `code=${paymentCode}`,
              }),
            money: async () => {
              const now = await money()
              return {
                wallet: now.wallet - start.wallet,
                clearing: now.clearing - start.clearing,
                merchantSide: now.merchantSide - start.merchantSide,
              }
            },
          }
          const model: Model = { trades: [], wallet: 0, clearing: 0, merchantSide: 0 }
          await fc.asyncModelRun(() => ({ model, real }), sequence)
        }),
        { numRuns: runs, seed: seed + 9, endOnFailure: true },
      )
      expect(sequences).toBe(runs)
      const outcomes = Object.fromEntries([...seen.entries()].sort())
      console.info(`payment model [${dialect}]: ${sequences} sequences, ${JSON.stringify(outcomes)}`)
      for (const outcome of [
        'paid by wallet',
        'paid by sandbox',
        'paid by sandbox, confirmed later',
        'barcode repeated',
        'close refused while the channel holds the payment',
        'cancel refused while the channel holds the payment',
        'expired',
        'refunded',
        'refunded after settlement',
        'cancel answered paid, settled',
        'refund replayed',
        'settled',
        'cancel closed',
        'close closed',
        'cancel answered paid',
        'page refused closed',
        'page refused paid',
        'PAYMENT_DECLINED',
        'PAYMENT_TRADE_NOT_CLOSABLE',
        'PAYMENT_TRADE_NOT_REFUNDABLE',
        'PAYMENT_REFUND_EXCEEDS_PAID',
        'PAYMENT_REFUND_REQUEST_CONFLICT',
      ])
        expect(seen.get(outcome) ?? 0, `the run reached "${outcome}"`).toBeGreaterThan(0)
    },
    budgetMs(600_000, 3_600_000),
  )
})
