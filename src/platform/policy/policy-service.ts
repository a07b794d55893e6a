/**
 * The policy service: the one way capabilities read governable parameters. It resolves a
 * parameter's value in force at an instant for a scope (merchant, then industry, then
 * global). Until governance enacts versions, every value is the declared default and its
 * version is 0; the governance module will plug enacted versions in through
 * {@link PolicySource} without any capability changing.
 *
 * @example
 * const fee = await policy.get<number>(db, 'payment.fee_rate_bps', { industry: 'education' })
 * fee.value   // 60
 * fee.version // 0 (the declared default)
 */
import { Value } from '@sinclair/typebox/value'
import type { Kysely } from 'kysely'
import { assert } from '../../assert.js'
import '../typebox-formats.js'
import type { ParameterDeclaration } from '../../capabilities/contract.js'

export interface PolicyScope {
  readonly industry?: string | null
  readonly merchantId?: string | null
  /** Epoch milliseconds; the value in force at that instant. */
  readonly at: number
}

export interface PolicyValue<T> {
  readonly key: string
  readonly value: T
  /** 0 means the declared default; enacted versions count from 1. */
  readonly version: number
}

/** Where enacted values come from; governance provides one. */
export interface PolicySource {
  resolve(db: Kysely<any>, key: string, scope: PolicyScope): Promise<{ value: unknown; version: number } | null>
}

export interface PolicyService {
  get<T>(db: Kysely<any>, key: string, scope: PolicyScope): Promise<PolicyValue<T>>
  declarations(): ReadonlyMap<string, ParameterDeclaration>
}

export function createPolicyService(
  declarations: ReadonlyMap<string, ParameterDeclaration>,
  source: PolicySource | null,
): PolicyService {
  return {
    declarations: () => declarations,
    async get<T>(db: Kysely<any>, key: string, scope: PolicyScope): Promise<PolicyValue<T>> {
      const declaration = declarations.get(key)
      assert(declaration !== undefined, `parameter ${key} is not declared by any capability`)
      assert(Number.isSafeInteger(scope.at), 'policy scope needs an instant')
      const enacted = source === null ? null : await source.resolve(db, key, scope)
      if (enacted !== null) {
        // A stored value that no longer fits its schema is corrupt state, not bad input.
        assert(Value.Check(declaration.schema, enacted.value), `enacted value of ${key} fails its schema`)
        return { key, value: enacted.value as T, version: enacted.version }
      }
      return { key, value: declaration.default as T, version: 0 }
    },
  }
}
