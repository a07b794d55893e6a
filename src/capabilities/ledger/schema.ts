import { Type, type Static } from '@sinclair/typebox'
import { Id } from '../../server/schemas.js'

const amountDescription = 'Integer fen (分, 1/100 CNY); never a float'

export const MerchantBalance = Type.Object({
  object: Type.Literal('balance'),
  organization_id: Id('org'),
  environment: Type.Union([Type.Literal('sandbox'), Type.Literal('live')], {
    description: "The calling app's environment; sandbox and live money never mix",
  }),
  currency: Type.Literal('CNY'),
  pending_amount: Type.Integer({
    minimum: 0,
    description: `Funds from payments that are not settled yet. ${amountDescription}`,
  }),
  available_amount: Type.Integer({ minimum: 0, description: `Settled funds. ${amountDescription}` }),
})
export type MerchantBalanceView = Static<typeof MerchantBalance>
