import { Type } from '@sinclair/typebox'
import { fen } from '../../platform/money/money.js'
import { defineRoute, type RouteSpec } from '../../server/route-kit.js'
import type { ConsumerService } from './consumers.js'
import type { RefundService } from './refunds.js'
import {
  BindReceiver,
  CancelResult,
  Consumer,
  ConsumerParams,
  CreateConsumer,
  CreateRefund,
  CreateTrade,
  PayTrade,
  PaymentCode,
  PaymentCodeInput,
  PrecreateTrade,
  ReceiverParams,
  Refund,
  RefundParams,
  Royalty,
  RoyaltyParams,
  RoyaltyReceiver,
  Settlement,
  SettleRoyalty,
  TopUp,
  Trade,
  TradeLookup,
  TradeParams,
} from './schema.js'
import type { SettlementService } from './settlement.js'
import type { TradeService } from './trades.js'

export interface PaymentServices {
  readonly trades: TradeService
  readonly refunds: RefundService
  readonly settlement: SettlementService
  readonly consumers: ConsumerService
}

export function routes({ trades, refunds, settlement, consumers }: PaymentServices): RouteSpec[] {
  const tags = ['payment']
  const trade = { auth: 'app', scope: 'payment:trade', tags } as const
  return [
    defineRoute({
      ...trade,
      method: 'POST',
      url: '/v1/trades',
      operationId: 'createTrade',
      status: 201,
      summary: 'Create a trade for a known buyer, who pays on its pay page (qr_code)',
      schema: { body: CreateTrade, response: Trade },
      handler: ({ db, principal, body, now }) => trades.create(db, principal, body, now),
    }),
    defineRoute({
      ...trade,
      method: 'POST',
      url: '/v1/trades/precreate',
      operationId: 'precreateTrade',
      status: 201,
      summary: "Create a trade and a QR payload whose URL opens the consumer's pay page",
      schema: { body: PrecreateTrade, response: Trade },
      handler: ({ db, principal, body, now }) => trades.precreate(db, principal, body, now),
    }),
    defineRoute({
      ...trade,
      method: 'POST',
      url: '/v1/trades/pay',
      operationId: 'payTrade',
      summary: 'Barcode payment: charge the payment code the consumer shows at the till',
      description:
        'Returns the trade paid, or waiting (wait_buyer_pay) when the channel has not answered yet: ' +
        'query it again. A decline or an insufficient balance is an error and records nothing.',
      schema: { body: PayTrade, response: Trade },
      handler: ({ db, principal, body, now }) => trades.pay(db, principal, body, now),
    }),
    defineRoute({
      ...trade,
      method: 'GET',
      url: '/v1/trades/lookup',
      operationId: 'lookupTrade',
      summary: 'Query a trade by your out_trade_no',
      schema: { querystring: TradeLookup, response: Trade },
      handler: ({ db, principal, query, now }) => trades.get(db, principal, { out_trade_no: query.out_trade_no }, now),
    }),
    defineRoute({
      ...trade,
      method: 'GET',
      url: '/v1/trades/:trade_id',
      operationId: 'getTrade',
      summary: 'Query a trade',
      schema: { params: TradeParams, response: Trade },
      handler: ({ db, principal, params, now }) => trades.get(db, principal, { id: params.trade_id }, now),
    }),
    defineRoute({
      ...trade,
      method: 'POST',
      url: '/v1/trades/:trade_id/close',
      operationId: 'closeTrade',
      summary: 'Close an unpaid trade',
      schema: { params: TradeParams, response: Trade },
      handler: ({ db, principal, params, now }) => trades.close(db, principal, params.trade_id, now),
    }),
    defineRoute({
      ...trade,
      method: 'POST',
      url: '/v1/trades/:trade_id/cancel',
      operationId: 'cancelTrade',
      summary: 'Cancel: close an unpaid trade, or refund all of a paid one',
      schema: { params: TradeParams, response: CancelResult },
      handler: ({ db, principal, params, now }) => refunds.cancel(db, principal, params.trade_id, now),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/trades/:trade_id/refunds',
      operationId: 'refundTrade',
      auth: 'app',
      scope: 'payment:refund',
      tags,
      status: 201,
      summary: 'Refund part or all of a paid trade; idempotent on out_request_no',
      schema: { params: TradeParams, body: CreateRefund, response: Refund },
      handler: ({ db, principal, params, body, now }) => refunds.refund(db, principal, params.trade_id, body, now),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/trades/:trade_id/refunds/:out_request_no',
      operationId: 'getRefund',
      auth: 'app',
      scope: 'payment:refund',
      tags,
      summary: 'Query a refund by your out_request_no',
      schema: { params: RefundParams, response: Refund },
      handler: ({ db, principal, params }) => refunds.get(db, principal, params.trade_id, params.out_request_no),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/settlements',
      operationId: 'settleDueTrades',
      auth: 'app',
      scope: 'payment:settlement',
      tags,
      summary: "Settle the merchant's trades whose settlement delay has passed",
      schema: { response: Settlement },
      handler: ({ db, principal, now }) =>
        settlement.settleDue(db, { merchantId: principal.tenantId, environment: principal.environment }, now),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/royalty-receivers',
      operationId: 'bindRoyaltyReceiver',
      auth: 'app',
      scope: 'payment:settlement',
      tags,
      status: 201,
      summary: 'Bind an organisation as a profit-sharing receiver',
      schema: { body: BindReceiver, response: RoyaltyReceiver },
      handler: ({ db, principal, body, now }) => settlement.bindReceiver(db, principal, body, now),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/royalty-receivers',
      operationId: 'listRoyaltyReceivers',
      auth: 'app',
      scope: 'payment:settlement',
      tags,
      summary: "List the merchant's profit-sharing receivers",
      schema: { response: Type.Object({ data: Type.Array(RoyaltyReceiver) }) },
      handler: ({ db, principal }) => settlement.listReceivers(db, principal),
    }),
    defineRoute({
      method: 'DELETE',
      url: '/v1/royalty-receivers/:receiver_id',
      operationId: 'unbindRoyaltyReceiver',
      auth: 'app',
      scope: 'payment:settlement',
      tags,
      summary: 'Unbind a profit-sharing receiver',
      schema: {
        params: ReceiverParams,
        response: Type.Object({ receiver_id: Type.String(), unbound: Type.Boolean() }),
      },
      handler: ({ db, principal, params }) => settlement.unbindReceiver(db, principal, params.receiver_id),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/trades/:trade_id/royalties',
      operationId: 'settleRoyalty',
      auth: 'app',
      scope: 'payment:settlement',
      tags,
      status: 201,
      summary: 'Pay bound receivers a share of a paid trade; idempotent on out_request_no',
      schema: { params: TradeParams, body: SettleRoyalty, response: Royalty },
      handler: ({ db, principal, params, body, now }) =>
        settlement.settleRoyalty(db, principal, params.trade_id, body, now),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/trades/:trade_id/royalties/:out_request_no',
      operationId: 'getRoyalty',
      auth: 'app',
      scope: 'payment:settlement',
      tags,
      summary: 'Query a profit-sharing request',
      schema: { params: RoyaltyParams, response: Royalty },
      handler: ({ db, principal, params }) =>
        settlement.getRoyalty(db, principal, params.trade_id, params.out_request_no),
    }),
    ...sandboxRoutes(consumers),
  ]
}

function sandboxRoutes(consumers: ConsumerService): RouteSpec[] {
  const sandbox = { auth: 'app', scope: 'payment:sandbox', tags: ['sandbox'] } as const
  return [
    defineRoute({
      ...sandbox,
      method: 'POST',
      url: '/v1/sandbox/consumers',
      operationId: 'createSandboxConsumer',
      status: 201,
      summary: 'Create a test consumer (sandbox only)',
      schema: { body: CreateConsumer, response: Consumer },
      handler: ({ db, principal, body, now }) => consumers.create(db, principal, body.display_name, now),
    }),
    defineRoute({
      ...sandbox,
      method: 'GET',
      url: '/v1/sandbox/consumers/:consumer_id',
      operationId: 'getSandboxConsumer',
      summary: 'Read a test consumer and its wallet balance',
      schema: { params: ConsumerParams, response: Consumer },
      handler: ({ db, principal, params }) => consumers.get(db, principal, params.consumer_id),
    }),
    defineRoute({
      ...sandbox,
      method: 'POST',
      url: '/v1/sandbox/consumers/:consumer_id/top-ups',
      operationId: 'topUpSandboxConsumer',
      status: 201,
      idempotency: 'required',
      summary: "Add free sandbox money to a test consumer's wallet",
      schema: { params: ConsumerParams, body: TopUp, response: Consumer },
      handler: ({ db, principal, params, body, now }) =>
        consumers.topUp(db, principal, params.consumer_id, fen(body.amount), now),
    }),
    defineRoute({
      ...sandbox,
      method: 'POST',
      url: '/v1/sandbox/consumers/:consumer_id/payment-codes',
      operationId: 'mintPaymentCode',
      status: 201,
      summary: 'The payment code a consumer would show at a till (one-time, 60 s; or reusable in the sandbox)',
      schema: { params: ConsumerParams, body: PaymentCodeInput, response: PaymentCode },
      handler: ({ db, principal, params, body, now }) =>
        consumers.mintCode(db, principal, params.consumer_id, body.reusable === true, now),
    }),
  ]
}
