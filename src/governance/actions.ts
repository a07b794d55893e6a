/**
 * A proposal's content: its texts and the parameter changes it would enact. Each change is
 * checked against the schema its capability declared, pinned to the current version of its
 * scope (the base of the later compare-and-set), and rendered as a plain-language diff: the
 * value in force now and where it comes from, the new value, the scope, and how many
 * merchants it reaches.
 *
 * @example
 * const { content, diff } = await prepareContent(db, env, { industry: 'education', method: 'majority' }, body, now)
 * diff[0].summary.en // 'Platform fee on each trade…: 60 → 45 for the education industry (3 merchants)'
 */
import type { Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { Kysely } from 'kysely'
import { assert } from '../assert.js'
import type { ParameterDeclaration } from '../capabilities/contract.js'
import { AppError } from '../errors.js'
import { organizationDirectory } from '../platform/identity/directory.js'
import type { CoreTables } from '../storage/tables.js'
import { currentVersions, scopeKey, type GovernancePolicySource, type ScopedChanges } from './policy-store.js'
import { choosesAmongOptions, type VotingMethod } from './rules.js'
import type { ActionInput, ContentFields, DiffEntry } from './schema.js'

export interface Action {
  readonly parameter: string
  readonly scope: 'industry' | 'merchant'
  readonly merchant_id: string | null
  readonly scope_key: string
  readonly op: 'set' | 'unset'
  readonly value?: unknown
  readonly base_version: number
}

export interface ProposalOption {
  readonly key: string
  readonly title: { readonly en: string; readonly zh: string }
  readonly actions: readonly Action[]
}

export interface ProposalContent {
  readonly title: { readonly en: string; readonly zh: string }
  readonly body: { readonly en: string; readonly zh: string }
  readonly actions: readonly Action[]
  readonly options: readonly ProposalOption[] | null
  readonly effective_from: number | null
}

export type DiffLine = Static<typeof DiffEntry>

type ContentInput = {
  title: { en: string; zh: string }
  body: { en: string; zh: string }
  actions?: Static<typeof ActionInput>[] | undefined
  options?: Array<{ key: string; title: { en: string; zh: string }; actions: Static<typeof ActionInput>[] }> | undefined
  effective_from?: string | undefined
}
export type { ContentFields }

/** What checking content needs from the platform: the declared parameters and a resolver. */
export interface ContentEnvironment {
  readonly declarations: ReadonlyMap<string, ParameterDeclaration>
  readonly source: GovernancePolicySource
}

const scopeRank = { global: 0, industry: 1, merchant: 2 } as const
/** How far ahead a proposal may schedule its changes. */
const effectiveFromAheadMaxMs = 366 * 86_400_000

function invalid(field: string, message: string): never {
  throw new AppError('GOV_ACTION_INVALID', { field, message })
}

async function checkAction(
  db: Kysely<any>,
  env: ContentEnvironment,
  industry: string,
  input: Static<typeof ActionInput>,
  field: string,
): Promise<Omit<Action, 'base_version'> & { base_version?: number | undefined }> {
  const declaration = env.declarations.get(input.parameter)
  if (declaration === undefined) invalid(`${field}.parameter`, `No capability declares ${input.parameter}`)
  if (scopeRank[input.scope] > scopeRank[declaration.scope]) {
    invalid(`${field}.scope`, `${input.parameter} may be set at most per ${declaration.scope}`)
  }
  let merchantId: string | null = null
  if (input.scope === 'merchant') {
    if (input.merchant_id === undefined) invalid(`${field}.merchant_id`, 'A merchant-scope change names the merchant')
    const merchant = await organizationDirectory.organization(db, input.merchant_id)
    if (merchant === null || merchant.kind !== 'merchant' || merchant.industry !== industry) {
      invalid(`${field}.merchant_id`, `No merchant ${input.merchant_id} in the ${industry} industry`)
    }
    merchantId = merchant.id
  } else if (input.merchant_id !== undefined) {
    invalid(`${field}.merchant_id`, 'Only a merchant-scope change names a merchant')
  }
  if (input.op === 'set') {
    if (input.value === undefined) invalid(`${field}.value`, 'A set names the new value')
    if (!Value.Check(declaration.schema, input.value)) {
      const first = Value.Errors(declaration.schema, input.value).First()
      invalid(`${field}.value`, `${input.parameter}: ${first?.message ?? 'does not match its schema'}`)
    }
  } else if (input.value !== undefined) {
    invalid(`${field}.value`, 'An unset takes no value')
  }
  const key =
    merchantId === null ? scopeKey({ kind: 'industry', industry }) : scopeKey({ kind: 'merchant', merchantId })
  return {
    parameter: input.parameter,
    scope: input.scope,
    merchant_id: merchantId,
    scope_key: key,
    op: input.op,
    ...(input.op === 'set' ? { value: input.value } : {}),
    base_version: input.base_version,
  }
}

async function checkActions(
  db: Kysely<any>,
  env: ContentEnvironment,
  industry: string,
  inputs: readonly Static<typeof ActionInput>[],
  field: string,
): Promise<Action[]> {
  const checked = []
  const seen = new Set<string>()
  for (const [index, input] of inputs.entries()) {
    const action = await checkAction(db, env, industry, input, `${field}.${index}`)
    const identity = `${action.scope_key} ${action.parameter}`
    if (seen.has(identity)) invalid(`${field}.${index}`, `${action.parameter} is changed twice in ${action.scope_key}`)
    seen.add(identity)
    checked.push(action)
  }
  const versions = await currentVersions(db, [...new Set(checked.map((action) => action.scope_key))])
  return checked.map((action, index) => {
    const current = versions.get(action.scope_key)!
    if (action.base_version !== undefined && action.base_version !== current) {
      throw new AppError('GOV_PROPOSAL_BASE_OUTDATED', {
        field: `${field}.${index}.base_version`,
        message: `${action.scope_key} is at version ${current}, not ${action.base_version}`,
      })
    }
    return { ...action, base_version: current }
  })
}

/** Checks content sent by a proposer and pins every change to its scope's current version. */
export async function prepareContent(
  db: Kysely<any>,
  env: ContentEnvironment,
  target: { readonly industry: string; readonly method: VotingMethod },
  input: ContentInput,
  now: number,
): Promise<{ content: ProposalContent; diff: DiffLine[] }> {
  let actions: Action[] = []
  let options: ProposalOption[] | null = null
  if (choosesAmongOptions(target.method)) {
    if (input.options === undefined) invalid('body.options', `A ${target.method} vote chooses among options`)
    if ((input.actions ?? []).length > 0) invalid('body.actions', 'Put the changes inside each option')
    const keys = new Set(input.options.map((option) => option.key))
    if (keys.size !== input.options.length) invalid('body.options', 'Option keys must be unique')
    options = []
    for (const [index, option] of input.options.entries()) {
      const checked = await checkActions(db, env, target.industry, option.actions, `body.options.${index}.actions`)
      options.push({ key: option.key, title: option.title, actions: checked })
    }
  } else {
    if (input.options !== undefined) invalid('body.options', `A ${target.method} vote takes actions, not options`)
    actions = await checkActions(db, env, target.industry, input.actions ?? [], 'body.actions')
  }
  let effectiveFrom: number | null = null
  if (input.effective_from !== undefined) {
    effectiveFrom = Date.parse(input.effective_from)
    if (effectiveFrom < now) invalid('body.effective_from', 'effective_from is in the past')
    // Versions of a scope take effect in order, so a far-off date would hold back every later one.
    if (effectiveFrom > now + effectiveFromAheadMaxMs) {
      invalid('body.effective_from', 'effective_from is at most a year ahead')
    }
  }
  const content: ProposalContent = {
    title: input.title,
    body: input.body,
    actions,
    options,
    effective_from: effectiveFrom,
  }
  return { content, diff: await renderDiff(db, env, target.industry, content, now) }
}

/** Every action of the content with the option it belongs to (null outside options). */
export function allActions(content: ProposalContent): Array<{ option: string | null; action: Action }> {
  if (content.options === null) return content.actions.map((action) => ({ option: null, action }))
  return content.options.flatMap((option) => option.actions.map((action) => ({ option: option.key, action })))
}

/** The actions to enact, grouped by scope for the compare-and-set. */
export function scopedChanges(actions: readonly Action[]): ScopedChanges[] {
  const byScope = new Map<string, { baseVersion: number; changes: ScopedChanges['changes'][number][] }>()
  for (const action of actions) {
    const entry = byScope.get(action.scope_key) ?? { baseVersion: action.base_version, changes: [] }
    // Content is pinned in one go, so all the actions on a scope share its version.
    assert(entry.baseVersion === action.base_version, `two base versions for ${action.scope_key}`)
    entry.changes.push({
      parameter: action.parameter,
      op: action.op,
      ...(action.op === 'set' ? { value: action.value } : {}),
    })
    byScope.set(action.scope_key, entry)
  }
  return [...byScope].map(([key, entry]) => ({ scopeKey: key, baseVersion: entry.baseVersion, changes: entry.changes }))
}

function formatValue(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value)
}

async function merchantsInIndustry(db: Kysely<any>, industry: string, excluding: readonly string[]): Promise<number> {
  let query = (db as Kysely<CoreTables>)
    .selectFrom('organizations')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('kind', '=', 'merchant')
    .where('industry', '=', industry)
  if (excluding.length > 0) query = query.where('id', 'not in', [...excluding])
  const row = await query.executeTakeFirstOrThrow()
  return Number(row.count)
}

/** The plain-language diff of the content against the values in force at `now`. */
export async function renderDiff(
  db: Kysely<any>,
  env: ContentEnvironment,
  industry: string,
  content: ProposalContent,
  now: number,
): Promise<DiffLine[]> {
  const lines: DiffLine[] = []
  for (const { option, action } of allActions(content)) {
    const declaration = env.declarations.get(action.parameter)
    const description = declaration?.description ?? { en: action.parameter, zh: action.parameter }
    const fallback = declaration?.default ?? null
    const merchantId = action.merchant_id
    const here = await env.source.resolveDetailed(db, action.parameter, { industry, merchantId, at: now })
    const below =
      merchantId === null
        ? await env.source.resolveDetailed(db, action.parameter, { at: now })
        : await env.source.resolveDetailed(db, action.parameter, { industry, at: now })
    const oldValue = here === null ? fallback : here.value
    const newValue = action.op === 'set' ? action.value : below === null ? fallback : below.value
    let affected = 1
    let label = { en: `merchant ${merchantId}`, zh: `商家 ${merchantId}` }
    if (merchantId === null) {
      const overriding = await env.source.merchantOverrides(db, action.parameter, now)
      affected = await merchantsInIndustry(db, industry, overriding)
      label = { en: `the ${industry} industry`, zh: `${industry} 行业` }
    }
    const change = `${formatValue(oldValue)} → ${formatValue(newValue)}`
    lines.push({
      option,
      parameter: action.parameter,
      description,
      scope_key: action.scope_key,
      scope_label: label,
      op: action.op,
      old_value: oldValue,
      old_source: here === null ? 'default' : here.scopeKey,
      old_policy_version: here === null ? 0 : here.number,
      new_value: newValue,
      merchants_affected: affected,
      summary: {
        en: `${description.en}: ${change} for ${label.en} (${affected} merchant${affected === 1 ? '' : 's'} affected)`,
        zh: `${description.zh}：${change}，适用于${label.zh}（影响 ${affected} 个商家）`,
      },
    })
  }
  return lines
}
