/**
 * Versioned parameter sets, one per scope (`global`, `industry:education`,
 * `merchant:org_…`), and the {@link PolicySource} that makes enacted values change the
 * platform's behaviour. Enactment is a compare-and-set: each action names the version of its
 * scope it was written against, and if any scope has moved on, nothing is written and the
 * proposal is stale.
 *
 * Every version gets a number that is unique across scopes (1, 2, 3…); that number is what
 * the policy service reports as `version` and what a trade records as `fee_policy_version`,
 * so `GET /v1/governance/policy-versions/{number}` always names exactly one enactment.
 *
 * @example
 * const source = createGovernancePolicySource()
 * await source.resolve(tx, 'payment.fee_rate_bps', { industry: 'education', at: now }) // { value: 45, version: 3 }
 */
import type { Kysely } from 'kysely'
import { assert } from '../assert.js'
import { newId } from '../platform/ids.js'
import { prepared } from '../storage/prepared.js'
import type { PolicyScope, PolicySource } from '../platform/policy/policy-service.js'
import type { GovernanceTables, GovPolicyVersionsTable } from './tables.js'

type Db = Kysely<GovernanceTables>

export type ScopeRef =
  | { readonly kind: 'global' }
  | { readonly kind: 'industry'; readonly industry: string }
  | { readonly kind: 'merchant'; readonly merchantId: string }

export function scopeKey(scope: ScopeRef): string {
  switch (scope.kind) {
    case 'global':
      return 'global'
    case 'industry':
      return `industry:${scope.industry}`
    case 'merchant':
      return `merchant:${scope.merchantId}`
  }
}

/** One change to one parameter of one scope's set. */
export interface ParameterChange {
  readonly parameter: string
  readonly op: 'set' | 'unset'
  readonly value?: unknown
}

export interface ScopedChanges {
  readonly scopeKey: string
  /** The scope's version the changes were written against. */
  readonly baseVersion: number
  readonly changes: readonly ParameterChange[]
}

export interface ResolvedValue {
  readonly value: unknown
  /** The policy version number (unique across scopes). */
  readonly number: number
  readonly scopeKey: string
}

interface CachedVersion {
  readonly number: number
  readonly version: number
  readonly effectiveFrom: number
  readonly parameters: Readonly<Record<string, unknown>>
}

interface Snapshot {
  readonly token: string
  readonly scopes: ReadonlyMap<string, readonly CachedVersion[]>
}

export interface GovernancePolicySource extends PolicySource {
  /** Like `resolve`, and says which scope supplied the value. */
  resolveDetailed(db: Kysely<any>, key: string, scope: PolicyScope): Promise<ResolvedValue | null>
  /** The merchants with a value of their own for the parameter in force at `at`. */
  merchantOverrides(db: Kysely<any>, key: string, at: number): Promise<string[]>
}

const emptySnapshot: Snapshot = { token: 'genesis', scopes: new Map() }

/**
 * The head read once per transaction: a payment resolves three parameters, and they come from
 * one consistent policy head. Keyed by Kysely's transaction object (a new one per
 * transaction); an enactment forgets its transaction's entry, since it moved the head.
 */
const headsByTransaction = new WeakMap<Kysely<any>, Promise<{ number: number; token: string } | undefined>>()

const policyHead = prepared((db: Db, _p: Record<string, never>) =>
  db.selectFrom('gov_policy_head').select(['number', 'token']).where('id', '=', 1),
)

function readHead(db: Kysely<any>): Promise<{ number: number; token: string } | undefined> {
  const read = () => policyHead.first(db, {})
  if (!db.isTransaction) return read()
  let head = headsByTransaction.get(db)
  if (head === undefined) {
    head = read()
    headsByTransaction.set(db, head)
  }
  return head
}

/**
 * The policy source governance provides. It reads the one-row head (a primary-key lookup, in
 * the caller's transaction, once per transaction); the enacted versions are cached per process
 * and reloaded only when the head's token changed, so a trade costs one tiny query.
 */
export function createGovernancePolicySource(): GovernancePolicySource {
  let cache: Snapshot = emptySnapshot

  async function snapshot(db: Kysely<any>): Promise<Snapshot> {
    const head = await readHead(db)
    assert(head !== undefined, 'gov_policy_head is missing: the governance migration did not run')
    if (head.number === 0) return emptySnapshot
    if (head.token === cache.token) return cache
    const rows = await (db as Db)
      .selectFrom('gov_policy_versions')
      .select(['number', 'scope_key', 'version', 'effective_from', 'parameters'])
      // Only what the head read covers: a version enacted since belongs to a later token.
      .where('number', '<=', head.number)
      .orderBy('scope_key')
      .orderBy('version')
      .execute()
    const scopes = new Map<string, CachedVersion[]>()
    for (const row of rows) {
      const list = scopes.get(row.scope_key) ?? []
      list.push({
        number: row.number,
        version: row.version,
        effectiveFrom: row.effective_from,
        parameters: JSON.parse(row.parameters) as Record<string, unknown>,
      })
      scopes.set(row.scope_key, list)
    }
    cache = { token: head.token, scopes }
    return cache
  }

  async function resolveDetailed(db: Kysely<any>, key: string, scope: PolicyScope): Promise<ResolvedValue | null> {
    const current = await snapshot(db)
    if (current.scopes.size === 0) return null
    const chain: string[] = []
    if (scope.merchantId) chain.push(scopeKey({ kind: 'merchant', merchantId: scope.merchantId }))
    if (scope.industry) chain.push(scopeKey({ kind: 'industry', industry: scope.industry }))
    chain.push('global')
    for (const candidate of chain) {
      const entry = versionInForce(current.scopes.get(candidate), scope.at)
      if (entry !== null && Object.hasOwn(entry.parameters, key)) {
        return { value: entry.parameters[key], number: entry.number, scopeKey: candidate }
      }
    }
    return null
  }

  return {
    resolveDetailed,
    async merchantOverrides(db, key, at) {
      const current = await snapshot(db)
      const merchants: string[] = []
      for (const [scope, versions] of current.scopes) {
        if (!scope.startsWith('merchant:')) continue
        const entry = versionInForce(versions, at)
        if (entry !== null && Object.hasOwn(entry.parameters, key)) merchants.push(scope.slice('merchant:'.length))
      }
      return merchants
    },
    async resolve(db, key, scope) {
      const resolved = await resolveDetailed(db, key, scope)
      return resolved === null ? null : { value: resolved.value, version: resolved.number }
    },
  }
}

/** The last version whose effective time has come. Effective times never decrease within a scope. */
function versionInForce(versions: readonly CachedVersion[] | undefined, at: number): CachedVersion | null {
  if (versions === undefined) return null
  for (let index = versions.length - 1; index >= 0; index -= 1) {
    const entry = versions[index]!
    if (entry.effectiveFrom <= at) return entry
  }
  return null
}

/** The current version of each scope (0 for a scope nothing was ever enacted in). */
export async function currentVersions(db: Kysely<any>, keys: readonly string[]): Promise<Map<string, number>> {
  const versions = new Map<string, number>(keys.map((key) => [key, 0]))
  if (keys.length === 0) return versions
  const rows = await (db as Db)
    .selectFrom('gov_parameter_sets')
    .select(['scope_key', 'version'])
    .where('scope_key', 'in', [...keys])
    .execute()
  for (const row of rows) versions.set(row.scope_key, row.version)
  return versions
}

export interface StaleScope {
  readonly scope_key: string
  readonly base_version: number
  readonly current_version: number
}

export type EnactResult =
  | { readonly kind: 'enacted'; readonly versions: readonly GovPolicyVersionsTable[] }
  | { readonly kind: 'stale'; readonly scopes: readonly StaleScope[] }

/**
 * Applies every scope's changes, or none. Call inside the transaction that records the
 * enactment. The scope rows are locked (in a fixed order, so two enactments cannot deadlock)
 * before their versions are compared; on SQLite the single writer serialises anyway.
 */
export async function enactChanges(
  db: Kysely<any>,
  input: {
    readonly proposalId: string | null
    readonly contentHash: string | null
    readonly scopes: readonly ScopedChanges[]
    readonly effectiveFrom: number
  },
  now: number,
): Promise<EnactResult> {
  const gov = db as Db
  const scopes = [...input.scopes].sort((a, b) => (a.scopeKey < b.scopeKey ? -1 : 1))
  const keys = scopes.map((scope) => scope.scopeKey)
  assert(new Set(keys).size === keys.length, 'each scope appears once in an enactment')
  if (scopes.length === 0) return { kind: 'enacted', versions: [] }
  for (const key of keys) {
    await gov
      .insertInto('gov_parameter_sets')
      .values({ scope_key: key, version: 0, updated_at: now })
      .onConflict((oc) => oc.column('scope_key').doNothing())
      .execute()
  }
  for (const key of keys) {
    // A no-op update: it takes the row lock on PostgreSQL before the version is read.
    await gov
      .updateTable('gov_parameter_sets')
      .set((eb) => ({ version: eb.ref('version') }))
      .where('scope_key', '=', key)
      .execute()
  }
  const current = await currentVersions(db, keys)
  const stale = scopes
    .filter((scope) => current.get(scope.scopeKey) !== scope.baseVersion)
    .map((scope) => ({
      scope_key: scope.scopeKey,
      base_version: scope.baseVersion,
      current_version: current.get(scope.scopeKey)!,
    }))
  if (stale.length > 0) return { kind: 'stale', scopes: stale }

  const versions: GovPolicyVersionsTable[] = []
  for (const scope of scopes) {
    const previous =
      scope.baseVersion === 0
        ? null
        : await gov
            .selectFrom('gov_policy_versions')
            .select(['parameters', 'effective_from'])
            .where('scope_key', '=', scope.scopeKey)
            .where('version', '=', scope.baseVersion)
            .executeTakeFirstOrThrow()
    const parameters: Record<string, unknown> = previous === null ? {} : JSON.parse(previous.parameters)
    for (const change of scope.changes) {
      if (change.op === 'set') parameters[change.parameter] = change.value
      else delete parameters[change.parameter]
    }
    const head = await gov
      .updateTable('gov_policy_head')
      .set((eb) => ({ number: eb('number', '+', 1), token: newId('ptok') }))
      .where('id', '=', 1)
      .returning(['number'])
      .executeTakeFirstOrThrow()
    const row: GovPolicyVersionsTable = {
      number: head.number,
      scope_key: scope.scopeKey,
      version: scope.baseVersion + 1,
      proposal_id: input.proposalId,
      content_hash: input.contentHash,
      parameters: JSON.stringify(sortedObject(parameters)),
      changes: JSON.stringify(scope.changes),
      // A later version never takes effect before an earlier one.
      effective_from: Math.max(input.effectiveFrom, previous?.effective_from ?? 0),
      enacted_at: now,
    }
    await gov.insertInto('gov_policy_versions').values(row).execute()
    const bumped = await gov
      .updateTable('gov_parameter_sets')
      .set({ version: row.version, updated_at: now })
      .where('scope_key', '=', scope.scopeKey)
      .where('version', '=', scope.baseVersion)
      .executeTakeFirst()
    assert(bumped.numUpdatedRows === 1n, `parameter set ${scope.scopeKey} moved while locked`)
    versions.push(row)
  }
  headsByTransaction.delete(db)
  return { kind: 'enacted', versions }
}

function sortedObject(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : 1)))
}
