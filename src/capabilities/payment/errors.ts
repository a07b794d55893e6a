import type { ErrorSpec } from '../../errors.js'

export const paymentErrors = {
  PAYMENT_MERCHANT_REQUIRED: {
    status: 403,
    message: 'Trades are made for a merchant; act for one with an app auth token',
  },
  PAYMENT_TRADE_NOT_FOUND: { status: 404, message: 'No such trade' },
  PAYMENT_OUT_TRADE_NO_TAKEN: { status: 409, message: 'A different trade with this out_trade_no exists' },
  PAYMENT_TRADE_NOT_PAYABLE: { status: 409, message: 'The trade is not waiting for payment' },
  PAYMENT_TRADE_NOT_CLOSABLE: { status: 409, message: 'Only a trade waiting for payment can be closed' },
  PAYMENT_TRADE_NOT_REFUNDABLE: { status: 409, message: 'Only a paid trade can be refunded' },
  PAYMENT_REFUND_EXCEEDS_PAID: { status: 422, message: 'The refund would exceed what was paid' },
  PAYMENT_REFUND_BLOCKED_BY_ROYALTY: {
    status: 422,
    message: 'Profit already shared from this trade leaves too little to refund',
  },
  PAYMENT_TRADE_NOT_PAID: { status: 409, message: 'Only a paid trade can share profit' },
  PAYMENT_REFUND_REQUEST_CONFLICT: {
    status: 409,
    message: 'This out_request_no was used for a refund with another amount',
  },
  PAYMENT_REFUND_NOT_FOUND: { status: 404, message: 'No such refund' },
  PAYMENT_CODE_INVALID: { status: 422, message: 'The payment code is unknown, used or expired' },
  PAYMENT_BALANCE_INSUFFICIENT: { status: 422, message: "The buyer's balance is too low" },
  PAYMENT_MERCHANT_FUNDS_INSUFFICIENT: { status: 422, message: "The merchant's balance cannot cover this refund" },
  PAYMENT_DECLINED: { status: 402, message: 'The channel declined the payment' },
  PAYMENT_CONSUMER_NOT_FOUND: { status: 404, message: 'No such consumer' },
  PAYMENT_SANDBOX_ONLY: { status: 403, message: 'This call exists only in the sandbox' },
  PAYMENT_CHANNEL_UNAVAILABLE: { status: 422, message: 'No channel can do this in this environment' },
  PAYMENT_ROYALTY_RECEIVER_NOT_FOUND: { status: 404, message: 'The merchant has not bound this receiver' },
  PAYMENT_ROYALTY_RECEIVER_UNKNOWN: { status: 422, message: 'The receiver is not bound to this merchant' },
  PAYMENT_ROYALTY_EXCEEDS_SHARE: { status: 422, message: 'Profit sharing would exceed the maximum share' },
  PAYMENT_ROYALTY_REQUEST_CONFLICT: { status: 409, message: 'This out_request_no was used with other parameters' },
  PAYMENT_ROYALTY_NOT_FOUND: { status: 404, message: 'No such profit-sharing request' },
  PAYMENT_ORGANIZATION_NOT_FOUND: { status: 422, message: 'No such organisation to receive profit sharing' },
} as const satisfies Record<string, ErrorSpec>
