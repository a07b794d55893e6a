/**
 * Payment channels behind one interface, so that real upstream channels (bank cards, other
 * wallets) can be added as modules later. A channel decides whether money moved; the trade
 * service books it in the ledger against the channel's funding account, in the same
 * transaction as the trade's state change.
 *
 * Two channels ship:
 * - `wallet`: the consumer's closed-loop stored value (the money is the consumer_wallet account);
 * - `sandbox`: scriptable outcomes for tests, chosen by the auth code: `sandbox-success`,
 *   `sandbox-decline`, `sandbox-pending` (pending, then success once queried after
 *   {@link sandboxSettleDelayMs}) and `sandbox-timeout` (the channel does not answer; a later
 *   query finds the payment succeeded). Its money comes from channel_clearing.
 */
import type { AccountRef } from '../ledger/index.js'
import type { ChannelId, TradesTable } from './tables.js'

export type PaymentSource =
  | { readonly kind: 'wallet'; readonly consumerId: string }
  | { readonly kind: 'sandbox'; readonly script: SandboxScript }

export type SandboxScript = 'sandbox-success' | 'sandbox-decline' | 'sandbox-pending' | 'sandbox-timeout'
export const sandboxScripts: readonly SandboxScript[] = [
  'sandbox-success',
  'sandbox-decline',
  'sandbox-pending',
  'sandbox-timeout',
]

export type ChannelOutcome =
  | { readonly state: 'succeeded' }
  | { readonly state: 'declined'; readonly reason: string }
  /** Open with the upstream; ask again at `readyAt` or later. */
  | { readonly state: 'pending' | 'unknown'; readonly readyAt: number }

export interface PaymentChannel {
  readonly id: ChannelId
  /** The ledger account a payment draws from and a refund returns to. */
  fundingAccount(trade: Pick<TradesTable, 'buyer_id' | 'environment' | 'merchant_id'>): AccountRef
  initiate(trade: TradesTable, source: PaymentSource, now: number): Promise<ChannelOutcome>
  /** For a trade left pending or unknown: what the upstream says now. */
  query(trade: TradesTable, now: number): Promise<ChannelOutcome>
  /** `idempotencyKey` is stable per refund: the upstream must refund once however often it is asked. */
  refund(
    trade: TradesTable,
    amount: number,
    idempotencyKey: string,
    now: number,
  ): Promise<{ readonly state: 'succeeded' }>
}

export const sandboxSettleDelayMs = 5_000

const walletChannel: PaymentChannel = {
  id: 'wallet',
  fundingAccount: (trade) => ({ kind: 'consumer_wallet', ownerId: trade.buyer_id!, environment: trade.environment }),
  // The wallet is the ledger itself: the posting's floor check is the authorisation.
  initiate: async () => ({ state: 'succeeded' }),
  query: async () => ({ state: 'succeeded' }),
  refund: async () => ({ state: 'succeeded' }),
}

const sandboxChannel: PaymentChannel = {
  id: 'sandbox',
  // Clearing per merchant, so that sandbox payments of different merchants never queue on one row.
  fundingAccount: (trade) => ({
    kind: 'channel_clearing',
    ownerId: `sandbox:${trade.merchant_id}`,
    environment: trade.environment,
  }),
  async initiate(_trade, source, now) {
    const script = source.kind === 'sandbox' ? source.script : 'sandbox-success'
    switch (script) {
      case 'sandbox-success':
        return { state: 'succeeded' }
      case 'sandbox-decline':
        return { state: 'declined', reason: 'sandbox-decline: the scripted channel declined' }
      case 'sandbox-pending':
        return { state: 'pending', readyAt: now + sandboxSettleDelayMs }
      case 'sandbox-timeout':
        return { state: 'unknown', readyAt: now + sandboxSettleDelayMs }
    }
  },
  async query(trade, now) {
    const readyAt = trade.channel_ready_at ?? now
    return now >= readyAt
      ? { state: 'succeeded' }
      : { state: trade.channel_state === 'unknown' ? 'unknown' : 'pending', readyAt }
  },
  refund: async () => ({ state: 'succeeded' }),
}

export const channels: Readonly<Record<ChannelId, PaymentChannel>> = { wallet: walletChannel, sandbox: sandboxChannel }
