/**
 * The ledger's vocabulary: account kinds and their floors, the shapes callers pass in and get
 * back, and the row shapes of the three tables. Convention: balance = credits − debits, as for
 * a liability, so money the platform holds for someone is a positive balance of theirs.
 *
 * @example
 * const wallet: AccountRef = { kind: 'consumer_wallet', ownerId: consumerId, environment: 'sandbox' }
 * const topUp: Transfer = { debit: { ...wallet, kind: 'sandbox_funding', ownerId: 'platform' },
 *   credit: wallet, amount: fen(10_000) }
 */
import type { Kysely } from 'kysely'
import type { Fen } from '../../platform/money/money.js'

export type AccountKind =
  | 'consumer_wallet' // a consumer's stored value; floor 0
  | 'merchant_pending' // merchant funds not yet settled; floor 0
  | 'merchant_available' // merchant funds settled; floor 0
  | 'platform_fee_revenue' // the operator's fee income; floor 0
  | 'isv_commission' // an ISV's commission earned; floor 0
  | 'royalty_receiver' // a profit-sharing receiver's funds; floor 0
  | 'channel_clearing' // money in flight with an upstream channel; unbounded (may go negative)
  | 'sandbox_funding' // the source of free sandbox top-ups; unbounded

export type AccountFloor = 'non_negative' | 'none'

/**
 * Each kind's floor. Only the two kinds that stand for money outside the platform (an
 * upstream channel, the sandbox's free supply) may go negative; every other account holds
 * money someone can withdraw, so it may never show more than was put in.
 *
 * @example
 * accountFloors.consumer_wallet // 'non_negative'
 */
export const accountFloors: Readonly<Record<AccountKind, AccountFloor>> = Object.freeze({
  consumer_wallet: 'non_negative',
  merchant_pending: 'non_negative',
  merchant_available: 'non_negative',
  platform_fee_revenue: 'non_negative',
  isv_commission: 'non_negative',
  royalty_receiver: 'non_negative',
  channel_clearing: 'none',
  sandbox_funding: 'none',
})

export type LedgerEnvironment = 'sandbox' | 'live'

/**
 * Names an account. Accounts are created on first use, so a caller never opens one: the
 * triple (kind, ownerId, environment) is the account. `ownerId` is whatever owns it: a
 * consumer id for a wallet, the merchant's organisation id for merchant_* accounts (which is
 * what `GET /v1/balances` reads), the ISV's organisation id for isv_commission, 'platform'
 * for the operator's accounts.
 *
 * @example
 * const pending: AccountRef = { kind: 'merchant_pending', ownerId: 'org_…', environment: 'live' }
 */
export interface AccountRef {
  readonly kind: AccountKind
  readonly ownerId: string
  readonly environment: LedgerEnvironment
}

/**
 * Moves `amount` from `debit` to `credit`: the debited account's balance falls and the
 * credited one's rises by the same amount.
 *
 * @example
 * const pay: Transfer = { debit: wallet, credit: merchantPending, amount: fen(1230) }
 */
export interface Transfer {
  readonly debit: AccountRef
  readonly credit: AccountRef
  readonly amount: Fen
}

/**
 * One atomic posting: all its transfers apply, or none do.
 *
 * @example
 * const posting: PostingInput = { reference: { type: 'trade.pay', id: trade.id },
 *   description: 'Payment 2026112522001', transfers: [pay, fee] }
 */
export interface PostingInput {
  /** What caused the posting, e.g. `{ type: 'trade.pay', id: trade id }`. */
  readonly reference: { readonly type: string; readonly id: string }
  readonly description: string
  /** 1 to {@link transfersPerPostingMax} transfers, all posted atomically. */
  readonly transfers: readonly Transfer[]
}

/**
 * An account's totals; `balance = credits − debits`.
 *
 * @example
 * const { balance } = await ledger.balance(db, wallet) // 8770 fen left
 */
export interface Balance {
  readonly debits: Fen
  readonly credits: Fen
  readonly balance: Fen
}

/**
 * An account whose stored totals differ from the sum of its entries.
 *
 * @example
 * drift[0] // { account: { kind: 'consumer_wallet', … }, stored: { … }, recomputed: { … } }
 */
export interface LedgerDrift {
  readonly account: AccountRef
  readonly stored: Balance
  readonly recomputed: Balance
}

/**
 * What {@link LedgerService.verify} found. `ok` is true exactly when `drift` and
 * `unbalancedPostings` are both empty.
 *
 * @example
 * const result = await ledger.verify(db)
 * if (!result.ok) console.error(result.drift, result.unbalancedPostings)
 */
export interface LedgerVerification {
  readonly ok: boolean
  /** How many accounts were checked. */
  readonly accounts: number
  /** How many postings exist. */
  readonly postings: number
  readonly drift: readonly LedgerDrift[]
  /** Ids of postings whose debit entries do not sum to their credit entries, or that have none. */
  readonly unbalancedPostings: readonly string[]
}

/**
 * The double-entry ledger, the source of truth for money. Resolve it from a capability that
 * declares `dependsOn: ['ledger']`.
 *
 * @example
 * const ledger = context.resolve<LedgerService>('ledger')
 * await db.transaction().execute(async (tx) => {
 *   await tx.updateTable('trades').set({ status: 'paid' }).where('id', '=', trade.id).execute()
 *   await ledger.post(tx, { reference: { type: 'trade.pay', id: trade.id }, description: 'Payment',
 *     transfers: [{ debit: wallet, credit: merchantPending, amount: trade.amount }] }, now)
 * })
 */
export interface LedgerService {
  /**
   * Posts inside the caller's transaction `db`. Throws AppError('LEDGER_INSUFFICIENT_FUNDS',
   * {details:{account_kind}}) when a floored account would go below its floor; the caller's
   * transaction then rolls back, so nothing is partially posted.
   * Also throws LEDGER_ACCOUNT_TOTALS_OVERFLOW when an account's running totals would pass
   * 2^53 fen, and SERVICE_UNAVAILABLE (transient: retry the transaction) on a PostgreSQL
   * deadlock or serialization failure. A malformed posting is an assertion failure.
   */
  post(db: Kysely<any>, posting: PostingInput, now: number): Promise<{ postingId: string }>
  /** Zero balance for an account never posted to. */
  balance(db: Kysely<any>, account: AccountRef): Promise<Balance>
  /** Recomputes every account's totals from its entries and checks that every posting balances. */
  verify(db: Kysely<any>): Promise<LedgerVerification>
}

/** The most transfers one posting may carry. */
export const transfersPerPostingMax = 32
/** Limits on the strings a posting carries; a longer one is a programmer error. */
export const ownerIdLengthMax = 128
export const referenceLengthMax = 128
export const descriptionLengthMax = 1024

export interface LedgerAccountsTable {
  id: string
  kind: AccountKind
  owner_id: string
  environment: LedgerEnvironment
  currency: 'CNY'
  floor: AccountFloor
  debits_posted: number
  credits_posted: number
  created_at: number
}

export interface LedgerPostingsTable {
  id: string
  reference_type: string
  reference_id: string
  description: string
  created_at: number
}

export interface LedgerEntriesTable {
  id: string
  posting_id: string
  account_id: string
  side: 'debit' | 'credit'
  amount: number
  created_at: number
}

export interface LedgerTables {
  ledger_accounts: LedgerAccountsTable
  ledger_postings: LedgerPostingsTable
  ledger_entries: LedgerEntriesTable
}

export type LedgerDb = Kysely<LedgerTables>
