/**
 * The ledger capability: double-entry postings, account balances with floors, and a verifier
 * that recomputes every total from the entries. Other capabilities declare
 * `dependsOn: ['ledger']` and post inside the transaction of the change that moves money.
 *
 * @example
 * const ledger = context.resolve<LedgerService>('ledger')
 * await ledger.post(tx, { reference: { type: 'trade.pay', id: trade.id }, description: 'Payment',
 *   transfers: [{ debit: wallet, credit: merchantPending, amount: fen(1230) }] }, now)
 */
import { defineCapability } from '../contract.js'
import { ledgerErrors } from './errors.js'
import * as createLedger from './migrations/2026-11-25T00-05_create_ledger.js'
import { routes } from './routes.js'
import { createLedgerService, type LedgerModuleService } from './service.js'

export type {
  AccountKind,
  AccountRef,
  Balance,
  LedgerDrift,
  LedgerService,
  LedgerVerification,
  PostingInput,
  Transfer,
} from './model.js'
export { verifyLedger } from './verify.js'

export default defineCapability<LedgerModuleService>({
  id: 'ledger',
  version: '1.0.0',
  title: { en: 'Ledger', zh: '账务' },
  dependsOn: [],
  scopes: { 'ledger:read': "Read the merchant's pending and available balances" },
  events: {},
  parameters: {},
  errors: ledgerErrors,
  migrations: { '2026-11-25T00-05_create_ledger': createLedger },
  createService: () => createLedgerService(),
  routes,
})
