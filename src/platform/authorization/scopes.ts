/**
 * Scope lists as the consent link carries them (`scope=payment:trade,stores:read`, commas
 * as Alipay writes them, spaces as OAuth does) and as they are stored: distinct and sorted.
 */
import { AppError } from '../../errors.js'

export const scopesMax = 20
export const scopeParameterLengthMax = 1000
const scopePattern = /^[a-z][a-z0-9-]{0,39}:[a-z0-9_.-]{1,64}$/

/**
 * Distinct, sorted scopes; refuses an empty list, a malformed name, or, when `known` is
 * given, a scope no capability declares.
 *
 * @example
 * normalizeScopes(['stores:read', 'payment:trade', 'stores:read'], registry.scopes)
 * // ['payment:trade', 'stores:read']
 */
export function normalizeScopes(
  scopes: readonly string[],
  known: ReadonlyMap<string, string> | undefined,
  field = 'scope',
): string[] {
  const distinct = [...new Set(scopes)].sort()
  if (distinct.length === 0) throw new AppError('AUTHZ_SCOPE_INVALID', { field, message: 'Request at least one scope' })
  if (distinct.length > scopesMax) {
    throw new AppError('AUTHZ_SCOPE_INVALID', { field, message: `At most ${scopesMax} scopes` })
  }
  for (const scope of distinct) {
    if (!scopePattern.test(scope) || (known !== undefined && !known.has(scope))) {
      throw new AppError('AUTHZ_SCOPE_INVALID', {
        field,
        message: `Unknown scope ${JSON.stringify(scope.slice(0, 80))}`,
      })
    }
  }
  return distinct
}

/**
 * Splits the `scope` parameter of the consent link.
 *
 * @example
 * splitScopeParameter('payment:trade, stores:read') // ['payment:trade', 'stores:read']
 */
export function splitScopeParameter(raw: string): string[] {
  if (raw.length > scopeParameterLengthMax) {
    throw new AppError('AUTHZ_SCOPE_INVALID', { field: 'scope', message: 'The scope parameter is too long' })
  }
  return raw.split(/[\s,]+/).filter((scope) => scope !== '')
}

/**
 * Reads the JSON array the tables store.
 *
 * @example
 * parseStoredScopes('["stores:read"]') // ['stores:read']
 */
export function parseStoredScopes(text: string): string[] {
  return JSON.parse(text) as string[]
}
