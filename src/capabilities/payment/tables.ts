/** Row shapes of the payment capability's own tables. */
export interface ConsumersTable {
  id: string
  environment: 'sandbox' | 'live'
  display_name: string
  /** The organisation whose app made this (sandbox) consumer; only it reads or funds it. */
  owner_organization_id: string
  created_by_app_id: string | null
  created_at: number
}

export interface PaymentCodesTable {
  code_hash: string
  consumer_id: string
  reusable: number
  expires_at: number
  used_at: number | null
  created_at: number
}

export type TradeKind = 'create' | 'precreate' | 'barcode'
export type TradeStatus = 'wait_buyer_pay' | 'paid' | 'closed' | 'fully_refunded'
export type ChannelId = 'wallet' | 'sandbox'
/** Where a channel call stands: settled either way, or still open with the upstream. */
export type ChannelState = 'succeeded' | 'pending' | 'unknown'

export interface TradesTable {
  id: string
  environment: 'sandbox' | 'live'
  merchant_id: string
  app_id: string
  isv_id: string | null
  out_trade_no: string
  subject: string
  store_id: string | null
  kind: TradeKind
  status: TradeStatus
  total_amount: number
  refunded_amount: number
  fee_amount: number
  fee_refunded_amount: number
  fee_rate_bps: number
  fee_policy_version: number
  commission_share_bps: number
  commission_policy_version: number
  commission_amount: number
  royalty_amount: number
  buyer_id: string | null
  channel: ChannelId | null
  channel_state: ChannelState | null
  channel_ready_at: number | null
  qr_token: string | null
  settle_status: 'unsettled' | 'settled'
  settle_after: number | null
  settled_at: number | null
  paid_at: number | null
  closed_at: number | null
  close_reason: string | null
  expires_at: number
  created_at: number
  updated_at: number
}

export interface RefundsTable {
  id: string
  trade_id: string
  out_request_no: string
  amount: number
  fee_refund_amount: number
  commission_clawback_amount: number
  reason: string | null
  status: 'succeeded'
  created_at: number
}

export interface RoyaltyReceiversTable {
  merchant_id: string
  environment: 'sandbox' | 'live'
  receiver_id: string
  name: string
  memo: string | null
  created_at: number
}

export interface RoyaltiesTable {
  id: string
  trade_id: string
  out_request_no: string
  receiver_id: string
  amount: number
  status: 'succeeded'
  created_at: number
}

export interface PaymentTables {
  payment_consumers: ConsumersTable
  payment_codes: PaymentCodesTable
  payment_trades: TradesTable
  payment_refunds: RefundsTable
  payment_royalty_receivers: RoyaltyReceiversTable
  payment_royalties: RoyaltiesTable
}
