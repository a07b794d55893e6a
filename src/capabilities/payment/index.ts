/**
 * The payment capability: consumers and wallets, channels, trades, refunds, fees, settlement
 * and profit sharing. Money moves only through the ledger capability.
 */
import { defineCapability } from '../contract.js'
import type { LedgerService } from '../ledger/index.js'
import { createConsumerService } from './consumers.js'
import { paymentErrors } from './errors.js'
import * as createPayment from './migrations/2026-11-25T00-20_create_payment.js'
import { pages } from './pages.js'
import { paymentParameters } from './pricing.js'
import { createRefundService } from './refunds.js'
import { routes, type PaymentServices } from './routes.js'
import { Refund, Royalty, Trade } from './schema.js'
import { createSettlementService } from './settlement.js'
import { createTradeService } from './trades.js'

export type { PaymentServices } from './routes.js'

export default defineCapability<PaymentServices>({
  id: 'payment',
  version: '1.0.0',
  title: { en: 'Payments', zh: '支付' },
  dependsOn: ['ledger'],
  scopes: {
    'payment:trade': "Create, query, close and cancel the merchant's trades",
    'payment:refund': "Refund the merchant's trades",
    'payment:settlement': 'Settle trades and share profit with bound receivers',
    'payment:sandbox': 'Create and fund sandbox test consumers',
  },
  events: {
    'payment.trade.created': Trade,
    'payment.trade.paid': Trade,
    'payment.trade.closed': Trade,
    'payment.trade.settled': Trade,
    'payment.refund.succeeded': Refund,
    'payment.royalty.settled': Royalty,
  },
  parameters: paymentParameters,
  errors: paymentErrors,
  migrations: { '2026-11-25T00-20_create_payment': createPayment },
  createService(context) {
    const ledger = context.resolve<LedgerService>('ledger')
    const consumers = createConsumerService(context, ledger)
    const trades = createTradeService(context, ledger, consumers)
    return {
      consumers,
      trades,
      refunds: createRefundService(context, ledger, trades),
      settlement: createSettlementService(context, ledger, trades),
    }
  },
  routes,
  pages: (services, context) => pages(services.trades, context),
  jobs: (services) => [
    { name: 'expire-trades', intervalMs: 5_000, run: (db, now, clock) => services.trades.expireDue(db, now, clock) },
    {
      name: 'poll-channels',
      intervalMs: 5_000,
      run: (db, now, clock) => services.trades.pollChannels(db, now, clock),
    },
    {
      name: 'settle-trades',
      intervalMs: 30_000,
      run: async (db, now, clock) => (await services.settlement.settleDue(db, null, now, clock)).settled_trades,
    },
  ],
})
