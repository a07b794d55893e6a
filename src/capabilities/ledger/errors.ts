import type { ErrorSpec } from '../../errors.js'

export const ledgerErrors = {
  // Details carry `account_kind`, the kind of the account that would have gone below its floor.
  LEDGER_INSUFFICIENT_FUNDS: { status: 422, message: 'The account does not hold enough funds' },
  // An account's running totals are kept below 2^53 fen so they stay exact in JavaScript; an
  // account that reaches that (only an unbounded one can, realistically) takes no more postings.
  LEDGER_ACCOUNT_TOTALS_OVERFLOW: {
    status: 422,
    message: "The account's running totals would exceed 2^53 fen; it takes no more postings",
  },
} as const satisfies Record<string, ErrorSpec>
