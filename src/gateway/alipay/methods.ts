/**
 * The methods the gateway implements, by Alipay method name. The v2 gateway takes the name
 * from `method`; v3 from the path (`/v3/alipay/trade/query` is `alipay.trade.query`).
 *
 * @example
 * const spec = gatewayMethods.get('alipay.trade.query') // { scope: 'payment:trade', run }
 */
import type { PaymentServices } from '../../capabilities/payment/index.js'
import type { MethodSpec } from './method-kit.js'
import { royaltyMethods } from './royalty-methods.js'
import { tokenMethods } from './token-methods.js'
import { tradeMethods } from './trade-methods.js'

export const gatewayMethods: ReadonlyMap<string, MethodSpec> = new Map(
  Object.entries({ ...tradeMethods, ...royaltyMethods, ...tokenMethods }),
)

/**
 * The method of that name, if this platform can answer it: the payment methods exist only
 * when the payment capability runs (some deployments and tests load other capabilities only).
 */
export function lookupMethod(
  name: string | null | undefined,
  payment: PaymentServices | null,
): (MethodSpec & { readonly payment: PaymentServices }) | undefined {
  const spec = name === null || name === undefined ? undefined : gatewayMethods.get(name)
  if (spec === undefined) return undefined
  if (payment !== null) return { ...spec, payment }
  // Only the token methods (no scope) do without the payment services; they never read them.
  return spec.scope === undefined ? { ...spec, payment: null as unknown as PaymentServices } : undefined
}

/** The methods a token with these scopes may call, as `auth_methods` lists them. */
export function methodsForScopes(scopes: readonly string[]): string[] {
  return [...gatewayMethods]
    .filter(([, spec]) => spec.scope !== undefined && scopes.includes(spec.scope))
    .map(([name]) => name)
    .sort()
}
