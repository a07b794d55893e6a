import { defineRoute, type RouteSpec } from '../../server/route-kit.js'
import { MerchantBalance } from './schema.js'
import type { LedgerModuleService } from './service.js'

export function routes(ledger: LedgerModuleService): RouteSpec[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/balances',
      operationId: 'getBalances',
      auth: 'app',
      scope: 'ledger:read',
      tags: ['ledger'],
      summary: "Read the merchant's pending and available balances",
      description: "Balances of the merchant the app acts for, in the app's environment, as integer fen.",
      schema: { response: MerchantBalance },
      handler: ({ db, principal }) => ledger.merchantBalances(db, principal),
    }),
  ]
}
