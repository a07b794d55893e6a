import { Type, type Static } from '@sinclair/typebox'
import { Id, IsoTime } from '../../server/schemas.js'

/** An amount in fen (分): a positive whole number, at most ¥10,000,000,000.00. */
export const Amount = Type.Integer({ minimum: 1, maximum: 1_000_000_000_000, description: 'Amount in fen (1/100 CNY)' })
const OutNo = (description: string) =>
  Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.:-]+$', description })

export const TradeStatus = Type.Union(
  [Type.Literal('wait_buyer_pay'), Type.Literal('paid'), Type.Literal('closed'), Type.Literal('fully_refunded')],
  { description: 'wait_buyer_pay -> paid -> fully_refunded; wait_buyer_pay -> closed (closed, cancelled, expired)' },
)

export const Trade = Type.Object({
  id: Id('trade'),
  out_trade_no: Type.String(),
  merchant_id: Id('org'),
  app_id: Id('app'),
  environment: Type.Union([Type.Literal('sandbox'), Type.Literal('live')]),
  kind: Type.Union([Type.Literal('create'), Type.Literal('precreate'), Type.Literal('barcode')]),
  status: TradeStatus,
  subject: Type.String(),
  store_id: Type.Union([Type.String(), Type.Null()]),
  total_amount: Type.Integer(),
  refunded_amount: Type.Integer(),
  fee_amount: Type.Integer({ description: 'Platform fee charged to the merchant, fen' }),
  fee_rate_bps: Type.Integer(),
  fee_policy_version: Type.Integer({
    description: 'Version of payment.fee_rate_bps that priced this trade (0 = default)',
  }),
  commission_share_bps: Type.Integer(),
  commission_policy_version: Type.Integer(),
  buyer_id: Type.Union([Id('cons'), Type.Null()]),
  channel: Type.Union([Type.Literal('wallet'), Type.Literal('sandbox'), Type.Null()]),
  qr_code: Type.Union([Type.String(), Type.Null()], { description: 'URL of the pay page (precreate)' }),
  settle_status: Type.Union([Type.Literal('unsettled'), Type.Literal('settled')]),
  paid_at: Type.Union([IsoTime, Type.Null()]),
  closed_at: Type.Union([IsoTime, Type.Null()]),
  close_reason: Type.Union([Type.String(), Type.Null()]),
  settled_at: Type.Union([IsoTime, Type.Null()]),
  expires_at: IsoTime,
  created_at: IsoTime,
})
export type TradeView = Static<typeof Trade>

const TradeCommon = {
  out_trade_no: OutNo('Your order number; unique per merchant, and the natural idempotency key'),
  total_amount: Amount,
  subject: Type.String({ minLength: 1, maxLength: 256 }),
  store_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  timeout_seconds: Type.Optional(
    Type.Integer({
      minimum: 60,
      maximum: 15 * 24 * 3600,
      description: 'Close the trade if unpaid after this long (default 900)',
    }),
  ),
}

export const CreateTrade = Type.Object({ ...TradeCommon, buyer_id: Id('cons') }, { additionalProperties: false })
export const PrecreateTrade = Type.Object(TradeCommon, { additionalProperties: false })
export const PayTrade = Type.Object(
  {
    ...TradeCommon,
    auth_code: Type.String({
      minLength: 1,
      maxLength: 64,
      description:
        'The payment code the consumer shows (or a sandbox script: sandbox-success, sandbox-decline, ' +
        'sandbox-pending, sandbox-timeout)',
    }),
    scene: Type.Optional(Type.Literal('bar_code')),
  },
  { additionalProperties: false },
)

export const TradeParams = Type.Object({ trade_id: Id('trade') })
export const TradeLookup = Type.Object({ out_trade_no: OutNo('Your order number') }, { additionalProperties: false })

export const Refund = Type.Object({
  id: Id('refund'),
  trade_id: Id('trade'),
  out_request_no: Type.String(),
  amount: Type.Integer(),
  fee_refund_amount: Type.Integer(),
  status: Type.Literal('succeeded'),
  reason: Type.Union([Type.String(), Type.Null()]),
  trade_refunded_amount: Type.Integer({ description: 'Total refunded on the trade after this refund' }),
  created_at: IsoTime,
})
export type RefundView = Static<typeof Refund>

export const CreateRefund = Type.Object(
  {
    out_request_no: OutNo('Your refund number; unique per trade, the idempotency key of the refund'),
    amount: Amount,
    reason: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
)
export const RefundParams = Type.Object({ trade_id: Id('trade'), out_request_no: OutNo('Your refund number') })

export const CancelResult = Type.Object({
  trade: Trade,
  action: Type.Union([Type.Literal('close'), Type.Literal('refund')]),
})

export const Consumer = Type.Object({
  id: Id('cons'),
  environment: Type.Union([Type.Literal('sandbox'), Type.Literal('live')]),
  display_name: Type.String(),
  balance: Type.Integer({ description: 'Wallet balance, fen' }),
  created_at: IsoTime,
})
export const CreateConsumer = Type.Object(
  { display_name: Type.String({ minLength: 1, maxLength: 64 }) },
  { additionalProperties: false },
)
export const ConsumerParams = Type.Object({ consumer_id: Id('cons') })
/** A sandbox top-up is at most ¥1,000,000.00: test money, not a way to overflow accounts. */
export const topUpFenMax = 100_000_000
export const TopUp = Type.Object(
  {
    amount: Type.Integer({
      minimum: 1,
      maximum: topUpFenMax,
      description: 'Amount in fen, at most 100,000,000 (¥1,000,000.00)',
    }),
  },
  { additionalProperties: false },
)
export const PaymentCodeInput = Type.Object(
  {
    reusable: Type.Optional(Type.Boolean({ description: 'Sandbox only: a code that works many times, for tests' })),
  },
  { additionalProperties: false },
)
export const PaymentCode = Type.Object({
  code: Type.String({ description: '18 digits, shown once' }),
  consumer_id: Id('cons'),
  reusable: Type.Boolean(),
  expires_at: IsoTime,
})

export const Settlement = Type.Object({
  settled_trades: Type.Integer(),
  settled_amount: Type.Integer({ description: 'Moved from pending to available, fen' }),
  commission_amount: Type.Integer({ description: 'Credited to ISVs, fen' }),
})

export const RoyaltyReceiver = Type.Object({
  receiver_id: Id('org'),
  name: Type.String(),
  memo: Type.Union([Type.String(), Type.Null()]),
  created_at: IsoTime,
})
export const BindReceiver = Type.Object(
  {
    receiver_id: Id('org'),
    name: Type.String({ minLength: 1, maxLength: 128 }),
    memo: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
)
export const ReceiverParams = Type.Object({ receiver_id: Id('org') })
export const SettleRoyalty = Type.Object(
  {
    out_request_no: OutNo('Your profit-sharing request number; unique per trade'),
    royalties: Type.Array(Type.Object({ receiver_id: Id('org'), amount: Amount }, { additionalProperties: false }), {
      minItems: 1,
      maxItems: 20,
    }),
  },
  { additionalProperties: false },
)
export const Royalty = Type.Object({
  trade_id: Id('trade'),
  out_request_no: Type.String(),
  royalties: Type.Array(
    Type.Object({ receiver_id: Id('org'), amount: Type.Integer(), status: Type.Literal('succeeded') }),
  ),
  created_at: IsoTime,
})
export const RoyaltyParams = Type.Object({ trade_id: Id('trade'), out_request_no: OutNo('Your request number') })
